/* What the benchmarks share (Strata's and the peers' alike, so nothing here
 * depends on Strata): the clock, sorting, medians and percentiles of samples,
 * option parsing, and the line that names the machine. */
#ifndef STRATA_BENCH_COMMON_H
#define STRATA_BENCH_COMMON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* CLOCK_MONOTONIC in nanoseconds. */
uint64_t bench_now_ns(void);
/* qsort comparator of uint64_t. */
int bench_cmp_u64(const void *x, const void *y);
/* Sort v and return its median (the mean of the middle two for even n). */
uint64_t bench_median_u64(uint64_t *v, uint32_t n);
/* Nearest-rank percentile q (0..1] of a sorted array; 0 for an empty one. */
uint64_t bench_percentile(const uint64_t *sorted, uint32_t n, double q);
/* A decimal uint32_t option value; false for anything else. */
bool bench_parse_u32(const char *s, uint32_t *out);
/* A comma-separated list of at most cap uint32_t values, at least one. */
bool bench_parse_u32_list(const char *s, uint32_t *out, uint32_t cap, uint32_t *n);
/* Whether `name` is chosen by the --only list `only` (NULL chooses all): an
   entry names it whole, or, with `prefix`, begins it. */
bool bench_selected(const char *only, const char *name, bool prefix);
/* Whether argv holds --real (the DAG programs' real-kernel Cholesky); when it
   does, the run counts that suit it: 3 timed runs, exactly, after 1 warm-up. */
bool bench_real_preset(int argc, char **argv, uint32_t *reps, uint32_t *warmup, uint64_t *min_tasks);
/* "# <runtime>, <n> online CPUs, <CPU model><extra>" on stdout. */
void bench_print_machine(const char *runtime, const char *extra);

#endif
