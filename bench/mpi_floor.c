/* bench/mpi_floor: what Open MPI itself costs on this machine, the floor under
 * the remote workers of level 4 (issue 12): the one-way latency of a small
 * message between two ranks, and the CPU an idle rank burns while it waits.
 *
 *   mpirun -n 2 mpi_floor [--iters N] [--quick]
 *
 * Latency, three ways of waiting for the reply (rank 0 sends 64 bytes, rank 1
 * answers; half the round trip is the one-way figure):
 *   blocking   MPI_Send / MPI_Recv
 *   test-spin  MPI_Isend / MPI_Irecv, MPI_Test in a loop
 *   test-sleep the same, but after a short spin (200 tests) the waiter sleeps
 *              between tests, 20 us doubling up to 1 ms: how a rank that must
 *              not burn a core waits (Strata's pattern: spin briefly, then sleep)
 * The idle figure is also given with naps up to 10 ms: what an idle serving
 * rank pays for waking at most 10 ms late.
 * Idle CPU: rank 1 waits 1 s for a message that comes only then, blocking and
 * test-sleep; the waiting thread's CPU time (getrusage RUSAGE_THREAD) over that
 * second, in percent of a core.
 *
 * Run it over shared memory (the default: --mca btl self,vader) and over TCP
 * loopback (--mca btl self,tcp); bench/mpi_floor.sh runs both. Figures are
 * medians over --reps rounds, for docs/performance.md, never asserted. */
#define _GNU_SOURCE
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common.h"

enum { MSG = 64, TAG = 7, SPIN_TESTS = 200 };
enum wait_mode { BLOCKING, TEST_SPIN, TEST_SLEEP };
static const char *const mode_names[] = {"blocking", "test-spin", "test-sleep"};

static long max_nap_us = 1000;   /* test-sleep's longest nap */

static void nap_us(long us)
{
    struct timespec ts = {us / 1000000, (us % 1000000) * 1000};
    while (nanosleep(&ts, &ts) != 0)
        ;
}

/* Wait for request r the way `mode` says. */
static void wait_for(MPI_Request *r, enum wait_mode mode)
{
    if (mode == BLOCKING) {
        MPI_Wait(r, MPI_STATUS_IGNORE);
        return;
    }
    int done = 0;
    long nap = 20;   /* test-sleep: after the spin, naps doubling up to max_nap_us */
    for (unsigned i = 0; !done; i++) {
        MPI_Test(r, &done, MPI_STATUS_IGNORE);
        if (!done && mode == TEST_SLEEP && i >= SPIN_TESTS) {
            nap_us(nap);
            nap = nap * 2 < max_nap_us ? nap * 2 : max_nap_us;
        }
    }
}

static void send_msg(char *buf, int peer, enum wait_mode mode)
{
    if (mode == BLOCKING) {
        MPI_Send(buf, MSG, MPI_CHAR, peer, TAG, MPI_COMM_WORLD);
        return;
    }
    MPI_Request r;
    MPI_Isend(buf, MSG, MPI_CHAR, peer, TAG, MPI_COMM_WORLD, &r);
    wait_for(&r, mode);
}

static void recv_msg(char *buf, int peer, enum wait_mode mode)
{
    if (mode == BLOCKING) {
        MPI_Recv(buf, MSG, MPI_CHAR, peer, TAG, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
        return;
    }
    MPI_Request r;
    MPI_Irecv(buf, MSG, MPI_CHAR, peer, TAG, MPI_COMM_WORLD, &r);
    wait_for(&r, mode);
}

/* Median one-way latency (ns) of `iters` ping-pongs, on rank 0. */
static uint64_t pingpong(int rank, enum wait_mode mode, uint32_t iters, uint64_t *samples)
{
    char buf[MSG];
    memset(buf, rank, sizeof buf);
    for (uint32_t i = 0; i < iters; i++) {
        uint64_t t0 = bench_now_ns();
        if (rank == 0) {
            send_msg(buf, 1, mode);
            recv_msg(buf, 1, mode);
        } else {
            recv_msg(buf, 0, mode);
            send_msg(buf, 0, mode);
        }
        samples[i] = (bench_now_ns() - t0) / 2;
    }
    return bench_median_u64(samples, iters);
}

/* CPU time of the calling thread (the waiting one; Open MPI's own threads are
   not counted). */
static double cpu_seconds(void)
{
    struct timespec t;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static double process_cpu_seconds(void)
{
    struct timespec t;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

/* Rank 1 waits for a message rank 0 sends after `idle_ms`; the CPU use of
   rank 1's waiting thread meanwhile, and *process_pct its whole process's
   (Open MPI's threads too), percent of one core (reported on rank 0). */
static double idle_cpu(int rank, enum wait_mode mode, uint32_t idle_ms, double *process_pct)
{
    char buf[MSG] = {0};
    double pct = 0;
    MPI_Barrier(MPI_COMM_WORLD);
    if (rank == 0) {
        nap_us((long)idle_ms * 1000);
        send_msg(buf, 1, mode);
        MPI_Recv(&pct, 1, MPI_DOUBLE, 1, TAG + 1, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
        MPI_Recv(process_pct, 1, MPI_DOUBLE, 1, TAG + 2, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
    } else {
        double c0 = cpu_seconds(), p0 = process_cpu_seconds();
        uint64_t t0 = bench_now_ns();
        recv_msg(buf, 0, mode);
        double wall = (double)(bench_now_ns() - t0) / 1e9;
        pct = 100.0 * (cpu_seconds() - c0) / wall;
        double ppct = 100.0 * (process_cpu_seconds() - p0) / wall;
        MPI_Send(&ppct, 1, MPI_DOUBLE, 0, TAG + 2, MPI_COMM_WORLD);
        MPI_Send(&pct, 1, MPI_DOUBLE, 0, TAG + 1, MPI_COMM_WORLD);
    }
    return pct;
}

int main(int argc, char **argv)
{
    MPI_Init(&argc, &argv);
    int rank, size;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    uint32_t iters = 20000, reps = 5, idle_ms = 1000;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--quick") == 0) {
            iters = 500;
            reps = 1;
            idle_ms = 100;
        } else if (strcmp(argv[i], "--iters") == 0 && i + 1 < argc && bench_parse_u32(argv[i + 1], &iters)) {
            i++;
        } else if (strcmp(argv[i], "--reps") == 0 && i + 1 < argc && bench_parse_u32(argv[i + 1], &reps)) {
            i++;
        } else {
            if (rank == 0)
                fprintf(stderr, "mpi_floor: unknown option '%s' (--iters N, --reps N, --quick)\n", argv[i]);
            MPI_Finalize();
            return 2;
        }
    }
    if (size != 2) {
        if (rank == 0)
            fprintf(stderr, "mpi_floor: run it with mpirun -n 2 (this job has %d ranks)\n", size);
        MPI_Finalize();
        return 2;
    }
    uint64_t *samples = malloc(iters * sizeof *samples);
    uint64_t *medians = malloc(reps * sizeof *medians);
    if (!samples || !medians)
        MPI_Abort(MPI_COMM_WORLD, 1);
    if (rank == 0)
        printf("%-12s %14s   (one way, 64 bytes, median of %u rounds of %u)\n", "wait", "latency", reps, iters);
    for (int m = BLOCKING; m <= TEST_SLEEP; m++) {
        pingpong(rank, (enum wait_mode)m, iters / 10 + 1, samples);   /* warm up */
        for (uint32_t r = 0; r < reps; r++)
            medians[r] = pingpong(rank, (enum wait_mode)m, iters, samples);
        if (rank == 0)
            printf("%-12s %11.2f us\n", mode_names[m], (double)bench_median_u64(medians, reps) / 1000.0);
    }
    double busy_all = 0, calm_all = 0, lazy_all = 0;
    double busy = idle_cpu(rank, BLOCKING, idle_ms, &busy_all);
    double calm = idle_cpu(rank, TEST_SLEEP, idle_ms, &calm_all);
    max_nap_us = 10000;
    double lazy = idle_cpu(rank, TEST_SLEEP, idle_ms, &lazy_all);
    if (rank == 0)
        printf("idle rank waiting %u ms, %% of a core (waiting thread / whole process): blocking %.1f / %.1f, "
               "test-sleep to 1 ms %.1f / %.1f, to 10 ms %.1f / %.1f\n", idle_ms, busy, busy_all, calm, calm_all,
               lazy, lazy_all);
    free(samples);
    free(medians);
    MPI_Finalize();
    return 0;
}
