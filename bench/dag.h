/* Backend-neutral task DAGs for the overhead benchmarks.
 *
 * A DAG is a list of tasks in program (submission) order. Each task has a kind
 * and a short list of accesses: (datum, mode). A datum is an abstract piece of
 * data (a tile, a vector), numbered 0..ndata-1; how a backend stores it is the
 * backend's business (a Strata chip buffer, an OpenMP depend address, a StarPU
 * data handle). The dependencies are those of sequential semantics, as every
 * task runtime with data-flow tags infers them:
 *   a READ follows the last earlier WRITE of the datum (RAW);
 *   a WRITE follows the last earlier WRITE (WAW) and every READ since (WAR);
 *   a READWRITE is both.
 * dag_for_each_dep() lists exactly those edges, so a backend can be checked
 * against them (dag_check_order()).
 *
 * Groups: some generators mark runs of data that a backend may place in one
 * contiguous allocation (the 64 partial results of a fan-in). A backend that
 * limits the number of arguments of one task (Strata: 32 tensors) can then pass
 * a run of accesses to a group as one view; a backend without such a limit
 * ignores groups.
 *
 * Pure C11, no dependency on any runtime. Not thread-safe; a dag is read-only
 * once generated, so threads may read it concurrently. */
#ifndef STRATA_BENCH_DAG_H
#define STRATA_BENCH_DAG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum dag_mode {
    DAG_READ = 1,
    DAG_WRITE = 2,
    DAG_READWRITE = 3   /* DAG_READ | DAG_WRITE */
} dag_mode;

typedef enum dag_kind {
    DAG_PLAIN = 0,
    DAG_POTRF,
    DAG_TRSM,
    DAG_SYRK,
    DAG_GEMM,
    DAG_NKINDS
} dag_kind;

typedef struct dag_access {
    uint32_t datum;
    dag_mode mode;
} dag_access;

typedef struct dag_task {
    dag_kind kind;
    uint32_t first;     /* index of its first access in dag.accesses */
    uint32_t naccess;   /* accesses first .. first + naccess - 1 */
} dag_task;

/* Data first .. first + count - 1 may share one contiguous allocation. */
typedef struct dag_group {
    uint32_t first, count;
} dag_group;

typedef struct dag {
    char        name[48];     /* "chain", "cholesky16", ... */
    uint32_t    ntasks;
    uint32_t    ndata;
    uint32_t    naccesses;
    uint32_t    max_access;   /* most accesses of one task */
    dag_task   *tasks;        /* ntasks, in submission order */
    dag_access *accesses;     /* naccesses, grouped by task */
    dag_group  *groups;       /* ngroups, disjoint; may be NULL */
    uint32_t    ngroups;
} dag;

/* Generators. Each fills *d (freed with dag_free) and returns 0, or -1 when out
   of memory or the size is out of range (*d is then empty). A size of 0 yields
   a DAG with no tasks. */

/* n tasks; task i writes datum i only. No edges. */
int dag_independent(dag *d, uint32_t n);

/* n tasks, each READWRITE on datum 0: a chain of n - 1 edges. */
int dag_chain(dag *d, uint32_t n);

/* `rounds` rounds of width + 2 tasks over data 0..width:
     producer:  WRITE datum 0
     consumer c (c = 1..width): READ datum 0, WRITE datum c
     reducer:   READ data 1..width, WRITE datum 0
   Data 1..width form one group. width >= 1. */
int dag_fanout_fanin(dag *d, uint32_t width, uint32_t rounds);

/* Right-looking tiled Cholesky on the lower triangle of a tiles x tiles tile
   matrix; tile (i, j), i >= j, is datum dag_cholesky_tile(i, j):
     for k:  POTRF(A[k][k] RW)
             for i > k:       TRSM(A[k][k] R, A[i][k] RW)
             for i > k:       SYRK(A[i][k] R, A[i][i] RW)
                              for j in (k, i): GEMM(A[i][k] R, A[j][k] R, A[i][j] RW)
   tasks: T + T(T-1) + T(T-1)(T-2)/6. */
int dag_cholesky(dag *d, uint32_t tiles);

static inline uint32_t dag_cholesky_tile(uint32_t i, uint32_t j)
{
    return i * (i + 1) / 2 + j;   /* i >= j */
}

/* Number of tasks dag_cholesky(tiles) makes. */
uint64_t dag_cholesky_ntasks(uint32_t tiles);

void dag_free(dag *d);

/* "plain", "POTRF", ... */
const char *dag_kind_name(dag_kind kind);

/* Task counts per kind into counts[DAG_NKINDS]. */
void dag_count_kinds(const dag *d, uint64_t counts[DAG_NKINDS]);

/* Call fn(ctx, pred, succ) for every dependency of sequential semantics (see
   the top of this file): pred < succ, task indices. A pair may be reported more
   than once (e.g. RAW on two data); fn returning nonzero stops the walk and that
   value is returned. Returns 0, fn's value, or -1 when out of memory. */
typedef int (*dag_dep_fn)(void *ctx, uint32_t pred, uint32_t succ);
int dag_for_each_dep(const dag *d, dag_dep_fn fn, void *ctx);

/* Distinct (pred, succ) pairs: the edges of the DAG. -1 when out of memory. */
int64_t dag_count_edges(const dag *d);

/* Longest path, in tasks (1 for independent tasks, n for a chain). -1 when out
   of memory. */
int64_t dag_critical_path(const dag *d);

/* The standard suite every backend runs, in order: independent(n), chain(n),
   fan-out/fan-in(width, rounds), then Cholesky(T) for each T of tiles. */
typedef struct dag_suite {
    uint32_t        n, width, rounds;
    const uint32_t *tiles;
    uint32_t        ntiles;
} dag_suite;

uint32_t dag_suite_count(const dag_suite *s);
/* The name of workload i, as the tables print it: "independent", "chain",
   "fanout_fanin64", "cholesky16". */
void dag_suite_name(const dag_suite *s, uint32_t i, char *buf, size_t cap);
/* Generate workload i into *d (release with dag_free); nonzero when out of
   memory or a size is out of range. */
int dag_suite_make(const dag_suite *s, uint32_t i, dag *d);

/* Run the suite as a DAG program's command line `cli` (common.h) says: each
   workload it selects is generated, handed to run(ctx, d), which prints its
   own row and returns nonzero on failure, and freed. Returns the program's
   exit status: 0, 1 when a workload failed, 2 when none was selected (after
   saying so, as `prog`). */
struct bench_dag_cli;
int dag_suite_run(const struct bench_dag_cli *cli, const char *prog, int (*run)(void *ctx, const dag *d),
                  void *ctx);

/* Whether `order` (ntasks task indices, each exactly once: the order in which
   a backend started or completed the tasks) respects every dependency. On a
   violation, writes a one-line reason into why (may be NULL) and returns false. */
bool dag_check_order(const dag *d, const uint32_t *order, uint32_t n, char *why, size_t why_size);

#ifdef __cplusplus
}
#endif

#endif
