/* What the benchmarks share: the clock, sorting and percentiles of samples,
 * number parsing for options, and the line that names the machine. */
#ifndef STRATA_BENCH_COMMON_H
#define STRATA_BENCH_COMMON_H

#include <stdbool.h>
#include <stdint.h>

/* CLOCK_MONOTONIC in nanoseconds. */
uint64_t bench_now_ns(void);
/* qsort comparator of uint64_t. */
int bench_cmp_u64(const void *x, const void *y);
/* Nearest-rank percentile q (0..1] of a sorted array; 0 for an empty one. */
uint64_t bench_percentile(const uint64_t *sorted, uint32_t n, double q);
/* A decimal uint32_t option value; false for anything else. */
bool bench_parse_u32(const char *s, uint32_t *out);
/* "# strata 0.1.0, 2 online CPUs, <model>" followed by `extra` (may be ""). */
void bench_print_machine(const char *extra);

#endif
