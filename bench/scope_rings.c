/* scope_rings: an inner scope looping in small rings beside a long task of the
 * outer scope, with one ring per scope depth and with fewer rings shared.
 *
 *   scope_rings [--iterations N] [--outer-ms T] [--reps R] [--rings LIST]
 *
 * One sim chip (1 AIC + 2 AIV cores). The orchestration function opens an
 * outer scope (depth 1) and submits one task that runs T ms (default 20), then
 * loops N times (default 10,000) over an inner scope (depth 2): a 64-byte
 * intermediate from the heap ring, a task that writes it, a task that adds it
 * into an accumulator. Every depth's rings are small: 16 task slots, 16 edge
 * records, 1 KiB of heap (16 intermediates). For each ring count in LIST
 * (default 1,2,3,4: STRATA_SCOPE_RINGS, set before the worker is created),
 * R runs (default 5), and per run:
 *
 *   inner_during  inner iterations finished while the outer task ran (read by
 *                 the outer task as it ends): the work a shared ring holds back
 *   reclaimed_kb  heap bytes the inner scope allocated, and so got back from
 *                 its ring, while the outer task ran (inner_during x 64 bytes)
 *   stalls        submits and allocations that waited (over 20 us) for room
 *   stalled_ms    how long they waited in all
 *   inner_ms      from the run's start to the inner loop's last task
 *   wall_ms       the run, from strata_worker_run_chip to its return
 *   ns_per_inner  inner_ms per inner task
 *
 * Medians over the runs. With one ring (and with two: depths 1 and 2 share
 * one) the inner loop waits behind the outer task: its window fills within 16
 * tasks, and nothing retires before the outer task does. With three or four,
 * the inner scope retires on its own. docs/performance.md records figures. */
#define _POSIX_C_SOURCE 200809L
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <strata/strata.h>

#include "common.h"

enum { OUTER = 0, PRODUCE = 1, ADD = 2 };

static _Atomic uint64_t inner_done, inner_during, inner_end_ns;
static uint64_t outer_ms, iterations;
static uint64_t stalls, stalled_ns;

static uint64_t *u64_at(const strata_tensor *t)
{
    return (uint64_t *)(uintptr_t)(t->addr + t->offset * strata_dtype_size(t->dtype));
}

static int outer(const strata_task_args *a)
{
    (void)a;
    struct timespec ts = {(time_t)(outer_ms / 1000), (long)(outer_ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
    atomic_store(&inner_during, atomic_load(&inner_done));
    return 0;
}

static int produce(const strata_task_args *a)
{
    *u64_at(&a->tensors[0]) = a->scalars[0];
    return 0;
}

static int add(const strata_task_args *a)
{
    *u64_at(&a->tensors[1]) += *u64_at(&a->tensors[0]);
    if (atomic_fetch_add(&inner_done, 1) + 1 == iterations)
        atomic_store(&inner_end_ns, bench_now_ns());
    return 0;
}

/* A call that took more than 20 us waited for room in a ring. */
static int timed(int rc, uint64_t t0)
{
    uint64_t dt = bench_now_ns() - t0;
    if (dt > 20000) {
        stalls++;
        stalled_ns += dt;
    }
    return rc;
}

static int orchestrate(strata_chip_orch *o, const strata_task_args *args, const strata_call_config *cfg)
{
    (void)cfg;
    strata_tensor acc = args->tensors[0];
    int rc = strata_chip_scope_begin(o);
    if (rc == 0)
        rc = strata_chip_submit(o, OUTER, NULL);
    for (uint64_t i = 1; rc == 0 && i <= iterations; i++) {
        strata_tensor tmp;
        uint64_t eight = 8;
        strata_tag out = STRATA_OUTPUT;
        strata_tensor both[2] = {{0}, acc};
        strata_tag tags[2] = {STRATA_INPUT, STRATA_INOUT};
        rc = strata_chip_scope_begin(o);
        if (rc == 0)
            rc = timed(strata_chip_alloc(o, STRATA_U64, 1, &eight, &tmp), bench_now_ns());
        if (rc == 0) {
            uint64_t t0 = bench_now_ns();
            rc = timed(strata_chip_submit(o, PRODUCE, &(strata_task_args){&tmp, &out, 1, &i, 1}), t0);
        }
        both[0] = tmp;
        if (rc == 0) {
            uint64_t t0 = bench_now_ns();
            rc = timed(strata_chip_submit(o, ADD, &(strata_task_args){both, tags, 2, NULL, 0}), t0);
        }
        if (rc == 0)
            rc = strata_chip_scope_end(o);
    }
    if (rc == 0)
        rc = strata_chip_scope_end(o);
    return rc;
}

static const strata_kernel_entry kernels[] = {
    {OUTER, STRATA_AIV, outer}, {PRODUCE, STRATA_AIV, produce}, {ADD, STRATA_AIC, add}};

typedef struct figures {
    uint64_t during, stalls, stalled_ns, inner_ns, wall_ns;
} figures;

static int measure(uint32_t rings, uint32_t reps, figures *med)
{
    char value[8];
    snprintf(value, sizeof value, "%u", rings);
    setenv("STRATA_SCOPE_RINGS", value, 1);
    strata_worker_config wc;
    strata_worker_config_init(&wc, 2);
    wc.aic_cores = 1;
    wc.aiv_cores = 2;   /* the outer task holds one AIV core */
    strata_worker *w = NULL;
    strata_handle h;
    strata_buffer acc;
    strata_chip_callable c = {"scope_rings", orchestrate, kernels, 3};
    int rc = strata_worker_create(&wc, &w);
    unsetenv("STRATA_SCOPE_RINGS");
    if (rc == 0)
        rc = strata_worker_register_chip(w, &c, &h);
    if (rc == 0)
        rc = strata_worker_init(w);
    if (rc == 0)
        rc = strata_worker_malloc(w, 0, 64, &acc);
    uint64_t *during = calloc(reps, 8), *st = calloc(reps, 8), *st_ns = calloc(reps, 8), *wall = calloc(reps, 8),
             *inner = calloc(reps, 8);
    for (uint32_t r = 0; rc == 0 && r < reps; r++) {
        uint64_t zero = 0, sum = 0;
        strata_tensor t = {.addr = acc.addr, .nbytes = 64, .dtype = STRATA_U64, .ndims = 1, .shape = {1}};
        strata_tag tag = STRATA_INOUT;
        strata_call_config cfg = {0};
        cfg.ring_task_window = 16;
        cfg.ring_dep_pool = 16;
        cfg.ring_heap = 1024;
        atomic_store(&inner_done, 0);
        atomic_store(&inner_during, 0);
        atomic_store(&inner_end_ns, 0);
        stalls = stalled_ns = 0;
        rc = strata_worker_copy_to(w, acc, 0, &zero, 8);
        uint64_t t0 = bench_now_ns();
        if (rc == 0)
            rc = strata_worker_run_chip(w, h, &(strata_task_args){&t, &tag, 1, NULL, 0}, &cfg);
        wall[r] = bench_now_ns() - t0;
        inner[r] = atomic_load(&inner_end_ns) - t0;
        if (rc == 0)
            rc = strata_worker_copy_from(w, &sum, acc, 0, 8);
        if (rc == 0 && sum != iterations * (iterations + 1) / 2) {
            fprintf(stderr, "scope_rings: the sum is %llu, not %llu\n", (unsigned long long)sum,
                    (unsigned long long)(iterations * (iterations + 1) / 2));
            rc = STRATA_EINVAL;
        }
        during[r] = atomic_load(&inner_during);
        st[r] = stalls;
        st_ns[r] = stalled_ns;
    }
    if (rc)
        fprintf(stderr, "scope_rings: %s\n", strata_last_error());
    else
        *med = (figures){bench_median_u64(during, reps), bench_median_u64(st, reps), bench_median_u64(st_ns, reps),
                         bench_median_u64(inner, reps), bench_median_u64(wall, reps)};
    free(during);
    free(st);
    free(st_ns);
    free(wall);
    free(inner);
    if (w)
        strata_worker_destroy(w);
    return rc;
}

int main(int argc, char **argv)
{
    uint32_t reps = 5, n = 10000, ms = 20, rings[4] = {1, 2, 3, 4}, nrings = 4;
    for (int i = 1; i < argc; i++) {
        const char *v;
        if (!strcmp(argv[i], "--iterations") && (v = bench_option_value("scope_rings", argc, argv, &i)) &&
            bench_parse_u32(v, &n) && n > 0)
            continue;
        if (!strcmp(argv[i], "--outer-ms") && (v = bench_option_value("scope_rings", argc, argv, &i)) &&
            bench_parse_u32(v, &ms))
            continue;
        if (!strcmp(argv[i], "--reps") && (v = bench_option_value("scope_rings", argc, argv, &i)) &&
            bench_parse_u32(v, &reps) && reps > 0)
            continue;
        if (!strcmp(argv[i], "--rings") && (v = bench_option_value("scope_rings", argc, argv, &i)) &&
            bench_parse_u32_list(v, rings, 4, &nrings))
            continue;
        fprintf(stderr, "usage: scope_rings [--iterations N] [--outer-ms T] [--reps R] [--rings LIST]\n");
        return 2;
    }
    iterations = n;
    outer_ms = ms;
    bench_print_machine("strata", "");
    printf("inner scope (depth 2): %u iterations of 2 tasks and a 64-byte intermediate, beside an outer task "
           "(depth 1) of %u ms; every depth's rings: 16 slots, 16 edges, 1 KiB heap; medians of %u runs\n",
           n, ms, reps);
    printf("%-6s %13s %13s %8s %11s %9s %9s %13s\n", "rings", "inner_during", "reclaimed_kb", "stalls",
           "stalled_ms", "inner_ms", "wall_ms", "ns_per_inner");
    for (uint32_t k = 0; k < nrings; k++) {
        figures f = {0};
        if (rings[k] < 1 || rings[k] > 4) {
            fprintf(stderr, "scope_rings: --rings takes values from 1 to 4\n");
            return 2;
        }
        if (measure(rings[k], reps, &f))
            return 1;
        printf("%-6u %13llu %13.1f %8llu %11.2f %9.2f %9.2f %13.0f\n", rings[k], (unsigned long long)f.during,
               (double)f.during * 64 / 1024, (unsigned long long)f.stalls, (double)f.stalled_ns / 1e6,
               (double)f.inner_ns / 1e6, (double)f.wall_ns / 1e6, (double)f.inner_ns / (2.0 * (double)n));
    }
    return 0;
}
