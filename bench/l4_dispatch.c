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
 * Built again as l4_dispatch_mpi (libstrata_mpi) and run with two ranks
 * (bench/l4_dispatch.sh, over shared memory and over TCP): rank 0 then times,
 * interleaved in the same rounds,
 *
 *   mpi-pingpong   a raw MPI round trip of 64 bytes (MPI_Isend + MPI_Irecv,
 *                  MPI_Test spinning: the floor under everything below);
 *   l4-remote      one task to the level-3 worker rank 1 serves, whose
 *                  orchestration function submits nothing;
 *   l4-remote-chip the same submitting one empty chip task on rank 1's chip,
 *
 * and the ratio l4-remote / mpi-pingpong (issue 12's target: within 3x).
 *
 * --quick (the CTest smoke test) runs small counts. docs/performance.md records
 * the figures and the command. */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <dirent.h>
#include <string.h>
#include <unistd.h>

#include <strata/strata.h>
#ifdef STRATA_BENCH_MPI
#include <strata/mpi.h>
#endif

#include "common.h"

#define PROG "l4_dispatch"

#ifndef STRATA_BENCH_MPI
enum { W_L3_CHIP, W_L4_L3, W_L4_L3_CHIP, NWORKLOADS };
static const char *const names[NWORKLOADS] = {"l3-chip", "l4-l3", "l4-l3-chip"};
#endif

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

static int parse(int argc, char **argv, uint32_t *runs, uint32_t *rounds)
{
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--quick") == 0) {
            *runs = 500;
            *rounds = 2;
        } else if (strcmp(argv[i], "--runs") == 0 && i + 1 < argc && bench_parse_u32(argv[i + 1], runs) && *runs) {
            i++;
        } else {
            fprintf(stderr, "usage: %s [--quick] [--runs N]   (N runs of each workload, in %u rounds)\n", PROG,
                    *rounds);
            return 2;
        }
    }
    return 0;
}

#ifndef STRATA_BENCH_MPI
int main(int argc, char **argv)
{
    uint32_t runs = 20000, rounds = 10;
    if (parse(argc, argv, &runs, &rounds))
        return 2;
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
#else
enum { M_PINGPONG, M_REMOTE, M_REMOTE_CHIP, NMPI };
static const char *const mpi_names[NMPI] = {"mpi-pingpong", "l4-remote", "l4-remote-chip"};

/* The top worker, the same on both ranks: the orchestration functions by name. */
static strata_worker *mpi_top(strata_handle *h_nothing, strata_handle *h_chip)
{
    strata_worker_config cfg;
    strata_worker_config_init(&cfg, 4);
    cfg.shared_heap_bytes = 16 << 20;
    strata_worker *w4;
    int rc = strata_worker_create(&cfg, &w4);
    if (rc == STRATA_OK)
        rc = strata_worker_register_orch_named(w4, "nothing", bench_orch_nothing, NULL, h_nothing);
    if (rc == STRATA_OK)
        rc = strata_worker_register_orch_named(w4, "one_chip_task", l3_one_chip_task, (void *)(uintptr_t)1, h_chip);
    if (rc)
        exit(bench_fail(PROG, "the top worker", rc));
    return w4;
}

/* Nanoseconds every thread of process pid spent on a CPU (the first field of
   /proc/<pid>/task/<tid>/schedstat: the serving loop's thread and MPI's own). */
static double cpu_ns(pid_t pid)
{
    char path[300];
    snprintf(path, sizeof path, "/proc/%d/task", (int)pid);
    DIR *d = opendir(path);
    double total = 0;
    for (struct dirent *e; d && (e = readdir(d));) {
        if (e->d_name[0] == '.')
            continue;
        snprintf(path, sizeof path, "/proc/%d/task/%s/schedstat", (int)pid, e->d_name);
        FILE *f = fopen(path, "r");
        unsigned long long ns = 0;
        if (f) {
            if (fscanf(f, "%llu", &ns) != 1)
                ns = 0;
            fclose(f);
        }
        total += (double)ns;
    }
    if (d)
        closedir(d);
    return total;
}

/* One raw round trip of 64 bytes, rank 0 to rank 1 and back. */
static void pingpong(MPI_Comm comm, int rank, char *buf)
{
    MPI_Request rq[2];
    int peer = 1 - rank, done = 0;
    if (rank == 0) {
        MPI_Irecv(buf + 64, 64, MPI_BYTE, peer, 9, comm, &rq[1]);
        MPI_Isend(buf, 64, MPI_BYTE, peer, 9, comm, &rq[0]);
    } else {
        MPI_Irecv(buf + 64, 64, MPI_BYTE, peer, 9, comm, &rq[1]);
        while (!done)
            MPI_Test(&rq[1], &done, MPI_STATUS_IGNORE);
        MPI_Isend(buf, 64, MPI_BYTE, peer, 9, comm, &rq[0]);
        rq[1] = MPI_REQUEST_NULL;
    }
    for (done = 0; !done;)
        MPI_Testall(2, rq, &done, MPI_STATUSES_IGNORE);
}

int main(int argc, char **argv)
{
    uint32_t runs = 20000, rounds = 10;
    int provided, rank, size;
    MPI_Init_thread(&argc, &argv, MPI_THREAD_FUNNELED, &provided);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    if (size != 2 || parse(argc, argv, &runs, &rounds)) {
        if (rank == 0)
            fprintf(stderr, "%s: run with two ranks (bench/l4_dispatch.sh)\n", PROG);
        MPI_Abort(MPI_COMM_WORLD, 2);
    }
    MPI_Comm comm;
    MPI_Comm_dup(MPI_COMM_WORLD, &comm);
    int rc = strata_mpi_init(MPI_COMM_WORLD);
    if (rc)
        return bench_fail(PROG, "strata_mpi_init", rc);
    strata_handle h_nothing, h_chip, chip;
    strata_worker *w4 = mpi_top(&h_nothing, &h_chip), *l3 = NULL;
    if ((rc = make_l3(&l3, &chip)) || chip != 1)
        return bench_fail(PROG, "the level-3 worker", rc ? rc : STRATA_EINVAL);
    uint32_t per_round = (runs + rounds - 1) / rounds;
    static char buf[128];
    if (rank == 1) {
        /* the ping-pongs of every round, then serving; rank 0 says when */
        for (uint32_t r = 0; r < rounds; r++)
            for (uint32_t i = 0; i < per_round / 10 + 10 + per_round; i++)
                pingpong(comm, 1, buf);
        if ((rc = strata_mpi_serve(w4, l3)))
            return bench_fail(PROG, "strata_mpi_serve", rc);
        strata_worker_destroy(l3);
        strata_worker_destroy(w4);
        strata_mpi_finalize();
        MPI_Comm_free(&comm);
        MPI_Finalize();
        return 0;
    }
    bench_print_machine("strata", "");
    uint64_t *samples[NMPI];
    uint32_t done[NMPI] = {0};
    for (int k = 0; k < NMPI; k++)
        if (!(samples[k] = malloc(runs * sizeof samples[k][0])))
            return 1;
    /* the ping-pongs first, all rounds (rank 1 cannot serve meanwhile) */
    for (uint32_t r = 0; r < rounds; r++) {
        for (uint32_t i = 0; i < per_round / 10 + 10; i++)
            pingpong(comm, 0, buf);
        for (uint32_t i = 0; i < per_round; i++) {
            uint64_t t0 = bench_now_ns();
            pingpong(comm, 0, buf);
            if (done[M_PINGPONG] < runs)
                samples[M_PINGPONG][done[M_PINGPONG]++] = bench_now_ns() - t0;
        }
    }
    int id;
    if ((rc = strata_mpi_add_rank(w4, 1, &id)) || (rc = strata_worker_init(w4)))
        return bench_fail(PROG, "the level-4 worker", rc);
    for (uint32_t r = 0; r < rounds; r++) {
        for (int k = M_REMOTE; k < NMPI; k++) {
            void *ctx = (void *)(uintptr_t)(k == M_REMOTE ? h_nothing : h_chip);
            for (uint32_t i = 0; i < per_round / 10 + 10; i++)
                if ((rc = strata_worker_run(w4, one_task, ctx, NULL, NULL)))
                    return bench_fail(PROG, mpi_names[k], rc);
            for (uint32_t i = 0; i < per_round && done[k] < runs; i++) {
                uint64_t t0 = bench_now_ns();
                rc = strata_worker_run(w4, one_task, ctx, NULL, NULL);
                samples[k][done[k]++] = bench_now_ns() - t0;
                if (rc)
                    return bench_fail(PROG, mpi_names[k], rc);
            }
        }
    }
    printf("# one round trip (MPI) or one run of one empty task, microseconds\n");
    printf("%-14s %8s %9s %9s %9s %9s\n", "workload", "runs", "min", "median", "p90", "p99");
    double med[NMPI];
    for (int k = 0; k < NMPI; k++) {
        print_row(mpi_names[k], samples[k], done[k]);
        med[k] = (double)bench_median_u64(samples[k], done[k]);
        free(samples[k]);
    }
    printf("ratio l4-remote / mpi-pingpong (median): %.2f   (target: at most 3)\n", med[M_REMOTE] / med[M_PINGPONG]);
    /* The serving rank at rest: its CPU time over 2 s without a request (same
       host, /proc). */
    pid_t server;
    if ((rc = strata_worker_child_pid(w4, 0, &server)))
        return bench_fail(PROG, "strata_worker_child_pid", rc);
    double t0 = cpu_ns(server), w0 = (double)bench_now_ns();
    sleep(2);
    double t1 = cpu_ns(server), w1 = (double)bench_now_ns();
    printf("idle serving rank (pid %d): %.2f %% of a core over %.1f s\n", (int)server,
           100.0 * (t1 - t0) / (w1 - w0), (w1 - w0) / 1e9);
    if ((rc = strata_worker_close(w4)))
        return bench_fail(PROG, "close", rc);
    strata_worker_destroy(w4);
    strata_worker_destroy(l3);
    strata_mpi_finalize();
    MPI_Comm_free(&comm);
    MPI_Finalize();
    return 0;
}
#endif
