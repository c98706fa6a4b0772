/* Real Cholesky tile kernels and their check: see tiles.h. */
#include "tiles.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define A(m, r, c) (m)[(size_t)(r) * TILE_N + (c)]

void tile_potrf(float *a)
{
    for (int j = 0; j < TILE_N; j++) {
        float d = A(a, j, j);
        for (int k = 0; k < j; k++)
            d -= A(a, j, k) * A(a, j, k);
        d = sqrtf(d);
        A(a, j, j) = d;
        for (int i = j + 1; i < TILE_N; i++) {
            float s = A(a, i, j);
            for (int k = 0; k < j; k++)
                s -= A(a, i, k) * A(a, j, k);
            A(a, i, j) = s / d;
        }
        for (int c = j + 1; c < TILE_N; c++)
            A(a, j, c) = 0.0f;   /* the upper triangle of a factor is zero */
    }
}

void tile_trsm(const float *l, float *b)
{
    /* solve X L^T = B row by row: X[r][c] = (B[r][c] - sum_{k<c} X[r][k] L[c][k]) / L[c][c] */
    for (int r = 0; r < TILE_N; r++)
        for (int c = 0; c < TILE_N; c++) {
            float s = A(b, r, c);
            for (int k = 0; k < c; k++)
                s -= A(b, r, k) * A(l, c, k);
            A(b, r, c) = s / A(l, c, c);
        }
}

void tile_syrk(const float *a, float *c)
{
    for (int i = 0; i < TILE_N; i++)
        for (int j = 0; j <= i; j++) {
            float s = 0.0f;
            for (int k = 0; k < TILE_N; k++)
                s += A(a, i, k) * A(a, j, k);
            A(c, i, j) -= s;
            if (j != i)
                A(c, j, i) = A(c, i, j);
        }
}

void tile_gemm(const float *a, const float *b, float *c)
{
    for (int i = 0; i < TILE_N; i++)
        for (int j = 0; j < TILE_N; j++) {
            float s = 0.0f;
            for (int k = 0; k < TILE_N; k++)
                s += A(a, i, k) * A(b, j, k);
            A(c, i, j) -= s;
        }
}

void tile_kernel(dag_kind kind, float *const *t)
{
    switch (kind) {
    case DAG_POTRF: tile_potrf(t[0]); break;
    case DAG_TRSM: tile_trsm(t[0], t[1]); break;
    case DAG_SYRK: tile_syrk(t[0], t[1]); break;
    case DAG_GEMM: tile_gemm(t[0], t[1], t[2]); break;
    default: break;
    }
}

/* Element (r, c) of the SPD input, r, c < n: a small symmetric pattern plus a
   dominant diagonal. */
static double input_at(uint32_t n, uint32_t r, uint32_t c)
{
    if (r == c)
        return (double)n + 1.0;
    uint32_t lo = r < c ? r : c, hi = r < c ? c : r;
    uint32_t h = (lo * 2654435761u) ^ (hi * 40503u + 12345u);
    return (double)(h % 2001u) / 1000.0 - 1.0;   /* in [-1, 1] */
}

float *tiles_input(uint32_t tiles)
{
    size_t ntiles = (size_t)tiles * (tiles + 1) / 2;
    float *m = malloc(ntiles * TILE_BYTES);
    if (!m)
        return NULL;
    uint32_t n = tiles * TILE_N;
    for (uint32_t i = 0; i < tiles; i++)
        for (uint32_t j = 0; j <= i; j++) {
            float *t = m + (size_t)dag_cholesky_tile(i, j) * TILE_FLOATS;
            for (uint32_t r = 0; r < TILE_N; r++)
                for (uint32_t c = 0; c < TILE_N; c++)
                    A(t, r, c) = (float)input_at(n, i * TILE_N + r, j * TILE_N + c);
        }
    return m;
}

bool tiles_check(uint32_t tiles, const float *result, char *why, size_t why_len)
{
    uint32_t n = tiles * TILE_N;
    double *l = malloc((size_t)n * n * sizeof l[0]);
    if (!l) {
        snprintf(why, why_len, "out of host memory for the reference");
        return false;
    }
    for (uint32_t r = 0; r < n; r++)
        for (uint32_t c = 0; c <= r; c++)
            l[(size_t)r * n + c] = input_at(n, r, c);
    /* unblocked Cholesky, lower, in double */
    for (uint32_t j = 0; j < n; j++) {
        double d = l[(size_t)j * n + j];
        for (uint32_t k = 0; k < j; k++)
            d -= l[(size_t)j * n + k] * l[(size_t)j * n + k];
        d = sqrt(d);
        l[(size_t)j * n + j] = d;
        for (uint32_t i = j + 1; i < n; i++) {
            double s = l[(size_t)i * n + j];
            for (uint32_t k = 0; k < j; k++)
                s -= l[(size_t)i * n + k] * l[(size_t)j * n + k];
            l[(size_t)i * n + j] = s / d;
        }
    }
    bool ok = true;
    for (uint32_t i = 0; i < tiles && ok; i++)
        for (uint32_t j = 0; j <= i && ok; j++) {
            const float *t = result + (size_t)dag_cholesky_tile(i, j) * TILE_FLOATS;
            for (uint32_t r = 0; r < TILE_N && ok; r++)
                for (uint32_t c = 0; c < TILE_N && ok; c++) {
                    uint32_t gr = i * TILE_N + r, gc = j * TILE_N + c;
                    if (gc > gr)
                        continue;   /* above the diagonal of a diagonal tile */
                    double want = l[(size_t)gr * n + gc], got = A(t, r, c);
                    if (!(fabs(got - want) <= 1e-3 * (fabs(want) + 1e-3))) {
                        snprintf(why, why_len, "L[%u][%u] (tile %u,%u element %u,%u) is %g, the reference %g", gr, gc,
                                 i, j, r, c, got, want);
                        ok = false;
                    }
                }
        }
    free(l);
    return ok;
}
