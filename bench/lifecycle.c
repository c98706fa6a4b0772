/* bench/lifecycle: what a worker's lifecycle costs and how fast it reacts.
 *
 *   init        strata_worker_init of a worker with 2 chips and 2 SUB workers
 *   detect      from SIGKILL of a child running a task to strata_worker_run's
 *               return with STRATA_ECHILD, the replacement started (RESTART)
 *   detect-fail the same under policy FAIL: the death alone, nothing restarted
 *   timeout     how long past a task's timeout (50 ms) the run returns
 *   restart     a run that reports a child killed between runs and replaces it
 *   close       strata_worker_close of an idle worker
 *   close-stop  strata_worker_close with a SIGSTOPped child (close_grace_ms
 *               100: the polite exit and SIGTERM cannot reach it)
 *   runs        10,000 empty runs: time per run, and RSS, descriptors and
 *               processes before and after
 *
 *   lifecycle [--reps N] [--quick]
 *
 * Figures are medians (and p90, max) over --reps repetitions; they are for
 * docs/performance.md, never asserted. */
#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <strata/strata.h>

#include "common.h"

static int spin_sub(const strata_task_args *a, void *ctx)
{
    (void)ctx;
    _Atomic uint64_t *flag = (_Atomic uint64_t *)(uintptr_t)a->tensors[0].addr;
    atomic_store(flag, (uint64_t)getpid());
    for (;;)
        pause();
    return 0;
}

static int ok_sub(const strata_task_args *a, void *ctx)
{
    (void)a;
    (void)ctx;
    return 0;
}

typedef struct bench {
    strata_worker *w;
    strata_handle  spin, ok;
    strata_tensor  flag;
    uint64_t      *flag_word;
} bench;

static int one_task(strata_orch *o, const strata_task_args *args, const strata_call_config *cfg, void *ctx)
{
    (void)args;
    (void)cfg;
    bench *b = ctx;
    strata_tag tag = STRATA_INOUT;
    return strata_submit_sub(o, b->spin, &(strata_task_args){&b->flag, &tag, 1, NULL, 0});
}

static int nothing(strata_orch *o, const strata_task_args *args, const strata_call_config *cfg, void *ctx)
{
    (void)o;
    (void)args;
    (void)cfg;
    (void)ctx;
    return 0;
}

static void die(const char *what)
{
    fprintf(stderr, "lifecycle: %s: %s\n", what, strata_last_error());
    exit(1);
}

static void make_policy(bench *b, uint32_t grace_ms, strata_death_policy policy);

static void make(bench *b, uint32_t grace_ms)
{
    make_policy(b, grace_ms, STRATA_ON_DEATH_RESTART);
}

static void make_policy(bench *b, uint32_t grace_ms, strata_death_policy policy)
{
    static int ids[2] = {0, 1};
    strata_worker_config cfg;
    strata_worker_config_init(&cfg, 3);
    cfg.device_ids = ids;
    cfg.ndevices = 2;
    cfg.num_sub_workers = 2;
    cfg.device_memory_bytes = 16 << 20;
    cfg.shared_heap_bytes = 1 << 20;
    cfg.close_grace_ms = grace_ms;
    cfg.on_child_death = policy;
    if (strata_worker_create(&cfg, &b->w) || strata_worker_register_sub(b->w, spin_sub, NULL, &b->spin) ||
        strata_worker_register_sub(b->w, ok_sub, NULL, &b->ok))
        die("create");
    void *p;
    if (strata_worker_host_alloc(b->w, 64, &p))
        die("host_alloc");
    b->flag_word = p;
    b->flag = strata_tensor_make(p, STRATA_U64, 1, (uint64_t[]){1});
}

static void report(const char *name, uint64_t *v, uint32_t n, const char *unit, double div)
{
    qsort(v, n, sizeof v[0], bench_cmp_u64);
    printf("| %s | %u | %.1f | %.1f | %.1f | %s |\n", name, n, (double)bench_median_u64(v, n) / div,
           (double)bench_percentile(v, n, 0.9) / div, (double)v[n - 1] / div, unit);
}

typedef struct killer {
    bench *b;
    uint64_t killed_at;
} killer;

static void *kill_when_running(void *arg)
{
    killer *k = arg;
    while (atomic_load((_Atomic uint64_t *)k->b->flag_word) == 0)
        sched_yield();
    pid_t victim = (pid_t)atomic_load((_Atomic uint64_t *)k->b->flag_word);
    k->killed_at = bench_now_ns();
    kill(victim, SIGKILL);
    return NULL;
}

int main(int argc, char **argv)
{
    uint32_t reps = 20, nruns = 10000;
    for (int i = 1; i < argc; i++) {
        const char *v;
        if (strcmp(argv[i], "--reps") == 0 && (v = bench_option_value("lifecycle", argc, argv, &i)))
            reps = (uint32_t)strtoul(v, NULL, 10);
        else if (strcmp(argv[i], "--quick") == 0)
            reps = 3, nruns = 500;
        else {
            fprintf(stderr, "usage: lifecycle [--reps N] [--quick]\n");
            return 2;
        }
    }
    if (reps == 0)
        reps = 1;
    bench_print_machine("Strata, a level-3 worker with 2 chips and 2 SUB workers", "");
    uint64_t *init_ns = calloc(reps, 8), *detect = calloc(reps, 8), *over = calloc(reps, 8),
             *restart = calloc(reps, 8), *close_ns = calloc(reps, 8), *close_stop = calloc(reps, 8),
             *detect_fail = calloc(reps, 8);
    for (uint32_t r = 0; r < reps; r++) {
        bench b;
        make(&b, 1000);
        uint64_t t0 = bench_now_ns();
        if (strata_worker_init(b.w))
            die("init");
        init_ns[r] = bench_now_ns() - t0;
        /* detect: kill the child running the task */
        *b.flag_word = 0;
        killer k = {&b, 0};
        pthread_t t;
        pthread_create(&t, NULL, kill_when_running, &k);
        int rc = strata_worker_run(b.w, one_task, &b, NULL, NULL);
        uint64_t back = bench_now_ns();
        pthread_join(t, NULL);
        if (rc != STRATA_ECHILD)
            die("detect");
        detect[r] = back - k.killed_at;
        /* timeout: 50 ms on a task that never returns */
        *b.flag_word = 0;
        strata_call_config cfg = {0};
        cfg.timeout_ms = 50;
        t0 = bench_now_ns();
        rc = strata_worker_run(b.w, one_task, &b, NULL, &cfg);
        uint64_t took = bench_now_ns() - t0;
        if (rc != STRATA_ETIMEDOUT)
            die("timeout");
        over[r] = took > 50000000u ? took - 50000000u : 0;
        /* restart: a child killed between runs */
        pid_t victim;
        if (strata_worker_child_pid(b.w, 3, &victim))
            die("child_pid");
        kill(victim, SIGKILL);
        while (strata_worker_child_pid(b.w, 3, &victim) == STRATA_OK)
            sched_yield();
        t0 = bench_now_ns();
        rc = strata_worker_run(b.w, nothing, NULL, NULL, NULL);
        restart[r] = bench_now_ns() - t0;
        if (rc != STRATA_ECHILD)
            die("restart");
        t0 = bench_now_ns();
        if (strata_worker_close(b.w))
            die("close");
        close_ns[r] = bench_now_ns() - t0;
        strata_worker_destroy(b.w);
        /* detection alone: policy FAIL replaces nothing */
        make_policy(&b, 1000, STRATA_ON_DEATH_FAIL);
        if (strata_worker_init(b.w))
            die("init");
        *b.flag_word = 0;
        killer kf = {&b, 0};
        pthread_create(&t, NULL, kill_when_running, &kf);
        rc = strata_worker_run(b.w, one_task, &b, NULL, NULL);
        back = bench_now_ns();
        pthread_join(t, NULL);
        if (rc != STRATA_ECHILD)
            die("detect under FAIL");
        detect_fail[r] = back - kf.killed_at;
        strata_worker_destroy(b.w);
        /* close with a stopped child */
        make(&b, 100);
        if (strata_worker_init(b.w) || strata_worker_child_pid(b.w, 0, &victim))
            die("init");
        kill(victim, SIGSTOP);
        t0 = bench_now_ns();
        if (strata_worker_close(b.w))
            die("close");
        close_stop[r] = bench_now_ns() - t0;
        strata_worker_destroy(b.w);
    }
    printf("\n| what | reps | median | p90 | max | unit |\n| --- | ---: | ---: | ---: | ---: | --- |\n");
    report("init (2 chips + 2 SUB)", init_ns, reps, "ms", 1e6);
    report("detect: SIGKILL mid-task to run() returning, replacement started", detect, reps, "us", 1e3);
    report("detect, policy FAIL: SIGKILL mid-task to run() returning", detect_fail, reps, "us", 1e3);
    report("timeout: run() return past a 50 ms timeout", over, reps, "ms", 1e6);
    report("restart: the run that reports and replaces a dead child", restart, reps, "ms", 1e6);
    report("close, idle", close_ns, reps, "ms", 1e6);
    report("close, a SIGSTOPped child, close_grace_ms 100", close_stop, reps, "ms", 1e6);

    bench b;
    make(&b, 1000);
    if (strata_worker_init(b.w))
        die("init");
    for (int i = 0; i < 100; i++)
        strata_worker_run(b.w, nothing, NULL, NULL, NULL);
    long rss0 = bench_rss_kib();
    int fds0 = bench_count_dir("/proc/self/fd"), thr0 = bench_count_dir("/proc/self/task");
    uint64_t t0 = bench_now_ns();
    for (uint32_t i = 0; i < nruns; i++)
        if (strata_worker_run(b.w, nothing, NULL, NULL, NULL))
            die("run");
    double per_run_us = (double)(bench_now_ns() - t0) / nruns / 1e3;
    printf("\n%u empty runs: %.2f us per run; RSS %ld -> %ld KiB, descriptors %d -> %d, threads %d -> %d\n", nruns,
           per_run_us, rss0, bench_rss_kib(), fds0, bench_count_dir("/proc/self/fd"), thr0, bench_count_dir("/proc/self/task"));
    strata_worker_destroy(b.w);
    free(init_ns);
    free(detect);
    free(over);
    free(restart);
    free(close_ns);
    free(close_stop);
    free(detect_fail);
    return 0;
}
