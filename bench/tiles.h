/* Real float kernels of the tiled Cholesky DAG (dag_cholesky), for every
 * backend: 64 x 64 single-precision tiles, row-major, plain C loops. A backend
 * maps datum dag_cholesky_tile(i, j) to one tile and calls the kernel of each
 * task's kind with the task's tiles in access order:
 *   POTRF(A[k][k])           A[k][k] := L, the lower Cholesky factor
 *   TRSM(A[k][k], A[i][k])   A[i][k] := A[i][k] L^-T
 *   SYRK(A[i][k], A[i][i])   A[i][i] := A[i][i] - A[i][k] A[i][k]^T
 *   GEMM(A[i][k], A[j][k], A[i][j])   A[i][j] := A[i][j] - A[i][k] A[j][k]^T
 * The input is a deterministic symmetric positive definite matrix, and the
 * result is checked against a factorisation of the whole matrix in double
 * precision. No Strata dependency: the peer programs use it too. */
#ifndef STRATA_BENCH_TILES_H
#define STRATA_BENCH_TILES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dag.h"

#define TILE_N 64
#define TILE_FLOATS (TILE_N * TILE_N)
#define TILE_BYTES (TILE_FLOATS * sizeof(float))

void tile_potrf(float *a);
void tile_trsm(const float *l, float *b);
void tile_syrk(const float *a, float *c);
void tile_gemm(const float *a, const float *b, float *c);

/* Run the kernel of task `kind` on its tiles (in access order). */
void tile_kernel(dag_kind kind, float *const *tiles);

/* The input of a T x T tile Cholesky: the lower tiles of an SPD matrix, in
   datum order (dag_cholesky_tile), T(T+1)/2 tiles of TILE_FLOATS each. NULL
   when out of memory. Free with free(). */
float *tiles_input(uint32_t tiles);

/* Check the factor held in `result` (same layout as tiles_input) against a
   double-precision Cholesky of the input. Returns true when every element of
   the lower triangle is within a relative 1e-3 of the reference; `why` says
   where it is not. */
bool tiles_check(uint32_t tiles, const float *result, char *why, size_t why_len);

#endif
