/* l4_dispatch: what a task to a worker one level down costs, side by side with
 * the level-3 chip round trip it is measured against.
 *
 * Every task is empty. Three workloads, one process, interleaved in rounds so
 * that a noisy moment of the machine falls on all of them alike:
 *
 *   l3-chip     a level-3 worker with one chip child: each run submits one chip
 *               task whose chip orchestration function submits nothing (the L3
 *               chip round trip of bench/l3_dispatch);
 *   l4-l3       a level-4 worker with one local level-3 child (itself with one
 *               chip child): each run submits one task to the level-3 child,
 *               whose orchestration function submits nothing: the round trip
 *               to a local level-3 child, a run of its engine included;
 *   l4-l3-chip  the same, the level-3 orchestration function submitting one
 *               empty chip task: a kernel's round trip two levels down.
 *
 * For each: the wall time of each run (CLOCK_MONOTONIC), min, median, p90, p99;
 * then the ratio l4-l3 / l3-chip (issue 12's target: within 2x).
 *
 * --quick (the CTest smoke test) runs small counts. docs/performance.md records
 * the figures and the command. */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <strata/strata.h>

#include "common.h"

#define PROG "l4_dispatch"

enum { W_L3_CHIP, W_L4_L3, W_L4_L3_CHIP, NWORKLOADS };
static const char *const names[NWORKLOADS] = {"l3-chip", "l4-l3", "l4-l3-chip"};

/* The level-3 orchestration functions, run in the level-3 child: nothing, or
   one empty chip task (the chip callable's handle in ctx). */
static int l3_one_chip_task(strata_orch *o, const strata_task_args *args, const strata_call_config *cfg,
                            void *ctx)
{
    (void)args;
    (void)cfg;
    return strata_submit_next_level(o, (strata_handle)(uintptr_t)ctx, NULL, NULL, 0);
}

/* The top's orchestration function: one task, handle in ctx, on worker 0. */
static int one_task(strata_orch *o, const strata_task_args *args, const strata_call_config *cfg, void *ctx)
{
    (void)args;
    (void)cfg;
    return strata_submit_next_level(o, (strata_handle)(uintptr_t)ctx, NULL, NULL, 0);
}

static const strata_kernel_entry no_kernels[] = {{0, STRATA_AIV, bench_kernel_empty}};
static const strata_chip_callable empty_chip = {"empty", bench_chip_orch_empty, no_kernels, 1};

/* A level-3 worker with one chip child, the empty chip callable as *chip. */
static int make_l3(strata_worker **out, strata_handle *chip)
{
    static int ids[1] = {0};
    strata_worker_config cfg;
    strata_worker_config_init(&cfg, 3);
    cfg.device_ids = ids;
    cfg.ndevices = 1;
    cfg.device_memory_bytes = 64 << 20;
    cfg.shared_heap_bytes = 16 << 20;
    int rc = strata_worker_create(&cfg, out);
    if (rc == STRATA_OK)
        rc = strata_worker_register_chip(*out, &empty_chip, chip);
    return rc;
}

static void print_row(const char *name, uint64_t *v, uint32_t n)
{
    qsort(v, n, sizeof v[0], bench_cmp_u64);
    printf("%-11s %8u %9.2f %9.2f %9.2f %9.2f\n", name, n, v[0] / 1e3, bench_median_u64(v, n) / 1e3,
           bench_percentile(v, n, 0.90) / 1e3, bench_percentile(v, n, 0.99) / 1e3);
}

int main(int argc, char **argv)
{
    uint32_t runs = 20000, rounds = 10;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--quick") == 0) {
            runs = 500;
            rounds = 2;
        } else if (strcmp(argv[i], "--runs") == 0 && i + 1 < argc && bench_parse_u32(argv[i + 1], &runs) && runs) {
            i++;
        } else {
            fprintf(stderr, "usage: %s [--quick] [--runs N]   (N runs of each workload, in %u rounds)\n", PROG,
                    rounds);
            return 2;
        }
    }
    bench_print_machine("strata", "");

    strata_worker *l3 = NULL, *w4 = NULL, *child = NULL;
    strata_handle chip3, chip_child, h_nothing, h_chip;
    int rc = make_l3(&l3, &chip3);
    if (rc == STRATA_OK)
        rc = strata_worker_init(l3);
    if (rc)
        return bench_fail(PROG, "the level-3 worker", rc);
    strata_worker_config cfg;
    strata_worker_config_init(&cfg, 4);
    cfg.shared_heap_bytes = 16 << 20;
    rc = strata_worker_create(&cfg, &w4);
    if (rc == STRATA_OK)
        rc = make_l3(&child, &chip_child);
    int id;
    if (rc == STRATA_OK)
        rc = strata_worker_add_worker(w4, child, &id);
    if (rc == STRATA_OK)
        rc = strata_worker_register_orch(w4, bench_orch_nothing, NULL, &h_nothing);
    if (rc == STRATA_OK)
        rc = strata_worker_register_orch(w4, l3_one_chip_task, (void *)(uintptr_t)chip_child, &h_chip);
    if (rc == STRATA_OK)
        rc = strata_worker_init(w4);
    if (rc)
        return bench_fail(PROG, "the level-4 worker", rc);

    uint64_t *samples[NWORKLOADS];
    for (int k = 0; k < NWORKLOADS; k++) {
        samples[k] = malloc(runs * sizeof samples[k][0]);
        if (!samples[k])
            return 1;
    }
    uint32_t per_round = (runs + rounds - 1) / rounds, done[NWORKLOADS] = {0};
    for (uint32_t r = 0; r < rounds; r++) {
        for (int k = 0; k < NWORKLOADS; k++) {
            strata_worker *w = k == W_L3_CHIP ? l3 : w4;
            void *ctx = (void *)(uintptr_t)(k == W_L3_CHIP ? chip3 : k == W_L4_L3 ? h_nothing : h_chip);
            for (uint32_t i = 0; i < per_round / 10 + 10; i++)   /* warm-up: the spin lengths settle */
                if ((rc = strata_worker_run(w, one_task, ctx, NULL, NULL)) != STRATA_OK)
                    return bench_fail(PROG, names[k], rc);
            for (uint32_t i = 0; i < per_round && done[k] < runs; i++) {
                uint64_t t0 = bench_now_ns();
                rc = strata_worker_run(w, one_task, ctx, NULL, NULL);
                samples[k][done[k]++] = bench_now_ns() - t0;
                if (rc)
                    return bench_fail(PROG, names[k], rc);
            }
        }
    }
    printf("# one run of one empty task, microseconds per run\n");
    printf("%-11s %8s %9s %9s %9s %9s\n", "workload", "runs", "min", "median", "p90", "p99");
    double med[NWORKLOADS];
    for (int k = 0; k < NWORKLOADS; k++) {
        print_row(names[k], samples[k], done[k]);
        med[k] = (double)bench_median_u64(samples[k], done[k]);
        free(samples[k]);
    }
    printf("ratio l4-l3 / l3-chip (median): %.2f   (target: at most 2)\n", med[W_L4_L3] / med[W_L3_CHIP]);
    printf("ratio l4-l3-chip / l3-chip (median): %.2f\n", med[W_L4_L3_CHIP] / med[W_L3_CHIP]);
    strata_run_stats st;
    if (strata_worker_stats(w4, &st) == STRATA_OK && st.tasks_failed)
        return bench_fail(PROG, "the level-4 tasks", STRATA_ETASK);
    if ((rc = strata_worker_close(w4)) || (rc = strata_worker_close(l3)))
        return bench_fail(PROG, "close", rc);
    strata_worker_destroy(w4);
    strata_worker_destroy(l3);
    return 0;
}
