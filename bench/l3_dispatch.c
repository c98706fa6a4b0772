/* l3_dispatch: what a level-3 (node) worker costs per task, per run and at rest.
 *
 * Every task is empty: a chip callable whose chip orchestration function submits
 * nothing (returns 0) or one empty in-core task, or a SUB function that returns
 * 0; no task has arguments.
 * So what is timed is the node engine and the processes: the submit, posting the
 * request into the child's mailbox, waking the child, the child's answer, waking
 * the parent, and the run's bookkeeping.
 *
 *   1. round trip: a worker with 1 chip child and 1 SUB child; each
 *      strata_worker_run submits exactly one task (a chip task, a chip task
 *      whose orchestration submits one empty in-core task, so the chip's lanes
 *      take part, or a SUB task), or none (the cost of a run alone). Untimed warm-up runs, then the wall
 *      time (CLOCK_MONOTONIC) of each run: min, median, p90, p99, p99.9, max, and
 *      the voluntary context switches per run (parent, children): how often a
 *      side went to sleep instead of catching the other while spinning.
 *   2. throughput: a worker with 2 chip children; runs of N independent empty
 *      chip tasks alternating chip 0 / chip 1 (N = 256, many runs; then runs of
 *      N = 20000), and the same with every task on chip 0: tasks per second and
 *      microseconds per task.
 *   3. the first task after the worker was idle 1 s: sleep, then time one run
 *      (and the run right after it), a few samples. These runs use "stamped"
 *      tasks that write CLOCK_MONOTONIC into shared host memory when the child
 *      starts them, and the orchestration function stamps its submit, which
 *      splits the run into: entering run(), the submit (post + wake), the
 *      child's wake-up, and the way back. An empty run after 1 s idle is the
 *      baseline without any process switch.
 *   4. idle CPU: after a few runs the worker is left alone for 1 s and 2 s; the
 *      CPU time the parent (getrusage RUSAGE_SELF) and every child (utime + stime
 *      from /proc/<pid>/stat, clock ticks) consumed meanwhile, as a percentage of
 *      one core; with the finer sum over the process's threads of
 *      /proc/<pid>/task/<tid>/schedstat (ns) and their voluntary context switches
 *      (wake-ups) per second.
 *
 * --quick (the CTest smoke test) runs small counts and 1 s idle only. The
 * benchmark checks every run's status and the completed-task counters, closes
 * and destroys its workers, and fails if a child is still alive after close.
 * docs/performance.md records the figures and commands. */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/time.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#include <strata/strata.h>

#include "common.h"

#define PROG "l3_dispatch"
#define MAX_CHILDREN 4

/* The system call counter (bench_syscalls_open), opened before the workers so
   that it sees their threads and children; -1 where it cannot be opened. */
static int syscalls_fd = -1;

/* System calls per unit ("n/a" without the counter) into buf. */
static const char *per(char *buf, size_t cap, long long calls, uint64_t units)
{
    if (calls < 0 || units == 0)
        snprintf(buf, cap, "n/a");
    else
        snprintf(buf, cap, "%.3f", (double)calls / (double)units);
    return buf;
}

typedef struct options {
    uint32_t runs, warmup;          /* round trips */
    uint32_t batch, batch_runs;     /* throughput: tasks per run, timed runs */
    uint32_t big, big_runs;         /* throughput: one large run, how many times */
    uint32_t idle_samples;          /* first run after 1 s idle */
    uint32_t syscall_cost_ns;       /* --syscall-cost: emulate slower system calls; 0 = no */
    uint32_t idle_secs[2], nidle;   /* idle CPU windows */
    bool     quick, samples;
    const char *only;               /* comma-separated section names; NULL = all */
} options;

/* ---- time ---- */


static void sleep_ns(uint64_t ns)
{
    struct timespec ts = {(time_t)(ns / 1000000000ull), (long)(ns % 1000000000ull)};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

/* ---- the tasks ---- */

/* One empty in-core task: the chip child's lanes wake for it. */
static int chip_orch_core(strata_chip_orch *o, const strata_task_args *args, const strata_call_config *cfg)
{
    (void)args;
    (void)cfg;
    return strata_chip_submit(o, 0, NULL);
}

/* The "stamped" variants write CLOCK_MONOTONIC (one clock for every process)
   into the shared host word of tensor 0 when the child starts the task, which
   splits a run into parent -> child and child -> parent. */
static void stamp(const strata_task_args *args)
{
    *(volatile uint64_t *)(uintptr_t)args->tensors[0].addr = bench_now_ns();
}

static int chip_orch_stamp(strata_chip_orch *o, const strata_task_args *args, const strata_call_config *cfg)
{
    (void)o;
    (void)cfg;
    stamp(args);
    return 0;
}

static int sub_stamp(const strata_task_args *args, void *ctx)
{
    (void)ctx;
    stamp(args);
    return 0;
}

static const strata_task_args no_args = {NULL, NULL, 0, NULL, 0};

typedef struct bench {
    strata_worker *w;
    strata_handle  chip, chip_core, sub, chip_stamp, sub_stamp;
    strata_tensor  stamp_t;   /* one uint64 in the shared host heap */
    strata_tag     stamp_tag;
    uint64_t       submit_ns[2];   /* stamped runs: before and after the submit (parent) */
    uint32_t       nchips, nsub;
    pid_t          pids[MAX_CHILDREN];
    uint32_t       ntasks;   /* orch_batch */
    uint32_t       spread;   /* orch_batch: tasks go to chip i % spread */
} bench;

static int orch_one_chip(strata_orch *o, const strata_task_args *args, const strata_call_config *cfg, void *ctx)
{
    (void)args;
    (void)cfg;
    const bench *b = ctx;
    return strata_submit_next_level(o, b->chip, &no_args, NULL, 0);
}

static int orch_one_chip_core(strata_orch *o, const strata_task_args *args, const strata_call_config *cfg,
                              void *ctx)
{
    (void)args;
    (void)cfg;
    const bench *b = ctx;
    return strata_submit_next_level(o, b->chip_core, &no_args, NULL, 0);
}

static int orch_one_sub(strata_orch *o, const strata_task_args *args, const strata_call_config *cfg, void *ctx)
{
    (void)args;
    (void)cfg;
    const bench *b = ctx;
    return strata_submit_sub(o, b->sub, &no_args);
}

static int orch_stamp_none(strata_orch *o, const strata_task_args *args, const strata_call_config *cfg,
                           void *ctx)
{
    (void)o;
    (void)args;
    (void)cfg;
    bench *b = ctx;
    b->submit_ns[0] = b->submit_ns[1] = bench_now_ns();
    return 0;
}

static int orch_stamp_chip(strata_orch *o, const strata_task_args *args, const strata_call_config *cfg,
                           void *ctx)
{
    (void)args;
    (void)cfg;
    bench *b = ctx;
    strata_task_args a = {&b->stamp_t, &b->stamp_tag, 1, NULL, 0};
    b->submit_ns[0] = bench_now_ns();
    int rc = strata_submit_next_level(o, b->chip_stamp, &a, NULL, 0);
    b->submit_ns[1] = bench_now_ns();
    return rc;
}

static int orch_stamp_sub(strata_orch *o, const strata_task_args *args, const strata_call_config *cfg, void *ctx)
{
    (void)args;
    (void)cfg;
    bench *b = ctx;
    strata_task_args a = {&b->stamp_t, &b->stamp_tag, 1, NULL, 0};
    b->submit_ns[0] = bench_now_ns();
    int rc = strata_submit_sub(o, b->sub_stamp, &a);
    b->submit_ns[1] = bench_now_ns();
    return rc;
}

static int orch_batch(strata_orch *o, const strata_task_args *args, const strata_call_config *cfg, void *ctx)
{
    (void)args;
    (void)cfg;
    const bench *b = ctx;
    for (uint32_t i = 0; i < b->ntasks; i++) {
        int rc = strata_submit_next_level(o, b->chip, &no_args, NULL, (int)(i % b->spread));
        if (rc)
            return rc;
    }
    return 0;
}

/* ---- workers ---- */

static int bench_open(bench *b, uint32_t nchips, uint32_t nsub)
{
    memset(b, 0, sizeof *b);
    static const int ids[MAX_CHILDREN] = {0, 1, 2, 3};
    strata_worker_config cfg;
    strata_worker_config_init(&cfg, 3);
    cfg.device_ids = ids;
    cfg.ndevices = nchips;
    cfg.num_sub_workers = nsub;
    cfg.device_memory_bytes = 64u << 20;
    cfg.shared_heap_bytes = 16u << 20;
    int rc = strata_worker_create(&cfg, &b->w);
    if (rc)
        return bench_fail(PROG, "strata_worker_create", rc);
    static const strata_kernel_entry kernels[] = {{0, STRATA_AIV, bench_kernel_empty}};
    strata_chip_callable empty = {"l3_dispatch_empty", bench_chip_orch_empty, kernels, 1};
    strata_chip_callable stamped = {"l3_dispatch_stamp", chip_orch_stamp, kernels, 1};
    strata_chip_callable core = {"l3_dispatch_core", chip_orch_core, kernels, 1};
    if ((rc = strata_worker_register_chip(b->w, &empty, &b->chip)) ||
        (rc = strata_worker_register_chip(b->w, &core, &b->chip_core)) ||
        (rc = strata_worker_register_chip(b->w, &stamped, &b->chip_stamp)) ||
        (nsub && (rc = strata_worker_register_sub(b->w, bench_sub_empty, NULL, &b->sub))) ||
        (nsub && (rc = strata_worker_register_sub(b->w, sub_stamp, NULL, &b->sub_stamp)))) {
        strata_worker_destroy(b->w);
        b->w = NULL;
        return bench_fail(PROG, "register", rc);
    }
    if ((rc = strata_worker_init(b->w))) {
        strata_worker_destroy(b->w);
        b->w = NULL;
        return bench_fail(PROG, "strata_worker_init", rc);
    }
    void *word;
    if ((rc = strata_worker_host_alloc(b->w, sizeof(uint64_t), &word))) {
        strata_worker_destroy(b->w);
        b->w = NULL;
        return bench_fail(PROG, "strata_worker_host_alloc", rc);
    }
    uint64_t one[1] = {1};
    b->stamp_t = strata_tensor_make(word, STRATA_U64, 1, one);
    b->stamp_tag = STRATA_OUTPUT;
    b->nchips = nchips;
    b->nsub = nsub;
    for (uint32_t i = 0; i < nchips + nsub; i++)
        if ((rc = strata_worker_child_pid(b->w, (int)i, &b->pids[i]))) {
            bench_fail(PROG, "strata_worker_child_pid", rc);
            b->pids[i] = 0;
        }
    return 0;
}

/* Close and destroy; 1 if close failed or a child outlived it. */
static int bench_close(bench *b)
{
    if (!b->w)
        return 0;
    int ret = 0, rc = strata_worker_close(b->w);
    if (rc)
        ret = bench_fail(PROG, "strata_worker_close", rc);
    strata_worker_destroy(b->w);
    b->w = NULL;
    for (uint32_t i = 0; i < b->nchips + b->nsub; i++)
        if (b->pids[i] > 0 && kill(b->pids[i], 0) == 0) {
            fprintf(stderr, "l3_dispatch: child %u (pid %d) is still alive after close\n", i, (int)b->pids[i]);
            ret = 1;
        }
    return ret;
}

static uint64_t completed(const bench *b)
{
    strata_run_stats st;
    if (strata_worker_stats(b->w, &st))
        return 0;
    return st.tasks_completed;
}

static int check_completed(const bench *b, const char *what, uint64_t before, uint64_t expect)
{
    strata_run_stats st;
    int rc = strata_worker_stats(b->w, &st);
    if (rc)
        return bench_fail(PROG, "strata_worker_stats", rc);
    if (st.tasks_completed - before != expect || st.tasks_failed || st.tasks_canceled || st.child_restarts) {
        fprintf(stderr, "l3_dispatch: %s: %" PRIu64 " tasks completed, expected %" PRIu64 " (failed %" PRIu64
                ", cancelled %" PRIu64 ", children replaced %" PRIu64 ")\n", what, st.tasks_completed - before,
                expect, st.tasks_failed, st.tasks_canceled, st.child_restarts);
        return 1;
    }
    return 0;
}

/* ---- CPU time and wake-ups of a process ---- */

typedef struct proc_cpu {
    uint64_t ticks;      /* utime + stime, /proc/<pid>/stat, clock ticks */
    uint64_t ns;         /* sum of /proc/<pid>/task/<tid>/schedstat field 1 (ns on a CPU); 0 if unavailable */
    uint64_t vcsw;       /* sum of the threads' voluntary_ctxt_switches */
    uint64_t ivcsw;      /* sum of the threads' nonvoluntary_ctxt_switches */
    uint32_t nthreads;
    bool     ok;
} proc_cpu;

static bool read_file(const char *path, char *buf, size_t cap)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return false;
    size_t n = fread(buf, 1, cap - 1, f);
    fclose(f);
    buf[n] = '\0';
    return n > 0;
}

static uint64_t status_field(const char *status, const char *key)
{
    const char *p = strstr(status, key);
    return p ? strtoull(p + strlen(key), NULL, 10) : 0;
}

static proc_cpu read_proc_cpu(pid_t pid)
{
    proc_cpu r;
    memset(&r, 0, sizeof r);
    char path[96], buf[4096];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    if (!read_file(path, buf, sizeof buf))
        return r;
    /* fields after the command name "(...)": field 3 (state) is the first; utime
       is field 14, stime field 15 */
    const char *p = strrchr(buf, ')');
    if (!p)
        return r;
    p++;
    uint64_t utime = 0, stime = 0;
    for (int field = 3; field <= 15 && *p; field++) {
        while (*p == ' ')
            p++;
        if (field == 14)
            utime = strtoull(p, NULL, 10);
        if (field == 15)
            stime = strtoull(p, NULL, 10);
        while (*p && *p != ' ')
            p++;
    }
    r.ticks = utime + stime;
    r.ok = true;
    snprintf(path, sizeof path, "/proc/%d/task", (int)pid);
    DIR *d = opendir(path);
    if (!d)
        return r;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] < '0' || e->d_name[0] > '9')
            continue;
        long tid = strtol(e->d_name, NULL, 10);
        char tpath[96];
        snprintf(tpath, sizeof tpath, "/proc/%d/task/%ld/schedstat", (int)pid, tid);
        if (read_file(tpath, buf, sizeof buf))
            r.ns += strtoull(buf, NULL, 10);
        snprintf(tpath, sizeof tpath, "/proc/%d/task/%ld/status", (int)pid, tid);
        if (read_file(tpath, buf, sizeof buf)) {
            r.vcsw += status_field(buf, "\nvoluntary_ctxt_switches:");
            r.ivcsw += status_field(buf, "\nnonvoluntary_ctxt_switches:");
        }
        r.nthreads++;
    }
    closedir(d);
    return r;
}

/* Voluntary context switches of every child of b, summed. */
static uint64_t children_vcsw(const bench *b)
{
    uint64_t s = 0;
    for (uint32_t i = 0; i < b->nchips + b->nsub; i++)
        if (b->pids[i] > 0)
            s += read_proc_cpu(b->pids[i]).vcsw;
    return s;
}

static uint64_t rusage_ns(const struct rusage *ru)
{
    return ((uint64_t)ru->ru_utime.tv_sec + (uint64_t)ru->ru_stime.tv_sec) * 1000000000ull +
           ((uint64_t)ru->ru_utime.tv_usec + (uint64_t)ru->ru_stime.tv_usec) * 1000ull;
}

/* ---- statistics ---- */



static double us(uint64_t ns)
{
    return (double)ns / 1000.0;
}

/* ---- 1. round trip ---- */

static int round_trip(bench *b, const char *name, strata_orch_fn orch, uint32_t ntasks, const options *opt)
{
    uint64_t *s = malloc((size_t)(opt->runs ? opt->runs : 1) * sizeof s[0]);
    if (!s) {
        fprintf(stderr, "l3_dispatch: out of host memory\n");
        return 1;
    }
    uint64_t before = completed(b);
    int rc;
    for (uint32_t r = 0; r < opt->warmup; r++)
        if ((rc = strata_worker_run(b->w, orch, b, NULL, NULL))) {
            free(s);
            return bench_fail(PROG, "strata_worker_run (warm-up)", rc);
        }
    struct rusage ru0, ru1;
    getrusage(RUSAGE_SELF, &ru0);
    uint64_t cv0 = children_vcsw(b);
    long long sc0 = bench_syscalls_read(syscalls_fd);
    for (uint32_t r = 0; r < opt->runs; r++) {
        uint64_t t0 = bench_now_ns();
        rc = strata_worker_run(b->w, orch, b, NULL, NULL);
        uint64_t t1 = bench_now_ns();
        if (rc) {
            free(s);
            return bench_fail(PROG, "strata_worker_run", rc);
        }
        s[r] = t1 - t0;
    }
    long long calls = bench_syscalls_between(sc0, bench_syscalls_read(syscalls_fd));
    uint64_t cv1 = children_vcsw(b);
    getrusage(RUSAGE_SELF, &ru1);
    if (check_completed(b, name, before, (uint64_t)ntasks * (opt->warmup + opt->runs))) {
        free(s);
        return 1;
    }
    if (opt->samples)
        for (uint32_t r = 0; r < opt->runs; r++)
            printf("#   %s run %u: %.2f us\n", name, r, us(s[r]));
    uint32_t n = opt->runs;
    qsort(s, n, sizeof s[0], bench_cmp_u64);
    uint64_t sum = 0;
    for (uint32_t r = 0; r < n; r++)
        sum += s[r];
    uint32_t fast = 0;
    while (fast < n && s[fast] <= 10000)
        fast++;
    double pv = n ? (double)(ru1.ru_nvcsw - ru0.ru_nvcsw) / n : 0, cv = n ? (double)(cv1 - cv0) / n : 0;
    char sys[32];
    printf("%-22s %7u %8.2f %8.2f %8.2f %8.2f %8.2f %9.1f %8.2f %7.1f   %6.3f %6.3f %8s\n", name, n,
           n ? us(s[0]) : 0.0, us(bench_percentile(s, n, 0.5)), us(bench_percentile(s, n, 0.9)),
           us(bench_percentile(s, n, 0.99)), us(bench_percentile(s, n, 0.999)), n ? us(s[n - 1]) : 0.0,
           n ? us(sum / n) : 0.0, n ? 100.0 * fast / n : 0.0, pv, cv, per(sys, sizeof sys, calls, n));
    fflush(stdout);
    free(s);
    return 0;
}

/* ---- 2. throughput ---- */

static int throughput(bench *b, const char *name, uint32_t ntasks, uint32_t spread, uint32_t warmup,
                      uint32_t runs, bool each)
{
    b->ntasks = ntasks;
    b->spread = spread;
    uint64_t *s = malloc((size_t)(runs ? runs : 1) * sizeof s[0]);
    if (!s) {
        fprintf(stderr, "l3_dispatch: out of host memory\n");
        return 1;
    }
    uint64_t before = completed(b);
    int rc;
    for (uint32_t r = 0; r < warmup; r++)
        if ((rc = strata_worker_run(b->w, orch_batch, b, NULL, NULL))) {
            free(s);
            return bench_fail(PROG, "strata_worker_run (warm-up)", rc);
        }
    long long sc0 = bench_syscalls_read(syscalls_fd);
    for (uint32_t r = 0; r < runs; r++) {
        uint64_t t0 = bench_now_ns();
        rc = strata_worker_run(b->w, orch_batch, b, NULL, NULL);
        uint64_t t1 = bench_now_ns();
        if (rc) {
            free(s);
            return bench_fail(PROG, "strata_worker_run", rc);
        }
        s[r] = t1 - t0;
        if (each)
            printf("  %-28s run %u: %10.1f us  %8.3f us/task  %10.0f tasks/s\n", name, r, us(s[r]),
                   us(s[r]) / ntasks, ntasks * 1e9 / (double)s[r]);
    }
    long long calls = bench_syscalls_between(sc0, bench_syscalls_read(syscalls_fd));
    if (check_completed(b, name, before, (uint64_t)ntasks * (warmup + runs))) {
        free(s);
        return 1;
    }
    qsort(s, runs, sizeof s[0], bench_cmp_u64);
    if (runs) {
        uint64_t med = bench_percentile(s, runs, 0.5);
        char sys[32];
        printf("%-30s %6u %6u %10.1f %10.1f %10.1f %9.3f %9.3f %11.0f %9s\n", name, ntasks, runs, us(s[0]), us(med),
               us(bench_percentile(s, runs, 0.9)), us(med) / ntasks, us(s[0]) / ntasks, ntasks * 1e9 / (double)med,
               per(sys, sizeof sys, calls, (uint64_t)runs * ntasks));
    }
    fflush(stdout);
    free(s);
    return 0;
}

/* ---- 3. the first run after 1 s idle ---- */

static int after_idle(bench *b, const char *name, strata_orch_fn stamped, strata_orch_fn plain, uint32_t ntasks,
                      const options *opt)
{
    uint64_t before = completed(b);
    volatile uint64_t *word = (volatile uint64_t *)(uintptr_t)b->stamp_t.addr;
    for (uint32_t i = 0; i < opt->idle_samples; i++) {
        sleep_ns(1000000000ull);
        *word = 0;
        uint64_t t0 = bench_now_ns();
        int rc = strata_worker_run(b->w, stamped, b, NULL, NULL);
        uint64_t t1 = bench_now_ns();
        uint64_t ts = ntasks ? *word : t1;
        int rc2 = rc ? rc : strata_worker_run(b->w, plain, b, NULL, NULL);
        uint64_t t2 = bench_now_ns();
        if (rc || rc2)
            return bench_fail(PROG, "strata_worker_run", rc ? rc : rc2);
        if (ts < t0 || ts > t1) {
            fprintf(stderr, "l3_dispatch: %s: the child's time stamp is outside the run\n", name);
            return 1;
        }
        /* the child may start before the submit returns: the legs are signed */
        double enter = us(b->submit_ns[0] - t0), post = us(b->submit_ns[1] - b->submit_ns[0]);
        double wake = ((double)ts - (double)b->submit_ns[1]) / 1000.0;
        if (ntasks)
            printf("%-22s %6u %9.1f %9.1f %9.1f %9.1f %9.1f %9.1f\n", name, i, us(t1 - t0), enter, post, wake,
                   us(t1 - ts), us(t2 - t1));
        else
            printf("%-22s %6u %9.1f %9.1f %9s %9s %9s %9.1f\n", name, i, us(t1 - t0), enter, "-", "-", "-",
                   us(t2 - t1));
    }
    fflush(stdout);
    return check_completed(b, name, before, 2ull * ntasks * opt->idle_samples);
}

/* ---- 4. idle CPU ---- */

static int idle_cpu(bench *b, const char *name, uint32_t secs)
{
    /* a few runs first: every child has just worked */
    b->ntasks = 4 * b->nchips;
    b->spread = b->nchips;
    int rc;
    for (int r = 0; r < 5; r++) {
        if ((rc = strata_worker_run(b->w, orch_batch, b, NULL, NULL)))
            return bench_fail(PROG, "strata_worker_run", rc);
        if (b->nsub && (rc = strata_worker_run(b->w, orch_one_sub, b, NULL, NULL)))
            return bench_fail(PROG, "strata_worker_run", rc);
    }
    uint32_t nc = b->nchips + b->nsub;
    proc_cpu c0[MAX_CHILDREN], c1[MAX_CHILDREN], p0, p1;
    struct rusage ru0, ru1;
    /* children outermost, so that reading their /proc files is not charged to
       the parent's window */
    for (uint32_t i = 0; i < nc; i++)
        c0[i] = read_proc_cpu(b->pids[i]);
    p0 = read_proc_cpu(getpid());
    getrusage(RUSAGE_SELF, &ru0);
    uint64_t t0 = bench_now_ns();
    sleep_ns((uint64_t)secs * 1000000000ull);
    uint64_t t1 = bench_now_ns();
    getrusage(RUSAGE_SELF, &ru1);
    p1 = read_proc_cpu(getpid());
    for (uint32_t i = 0; i < nc; i++)
        c1[i] = read_proc_cpu(b->pids[i]);
    double wall = (double)(t1 - t0);
    long tck = sysconf(_SC_CLK_TCK);
    if (tck <= 0)
        tck = 100;
    double tick_ns = 1e9 / (double)tck;
    uint64_t pr = rusage_ns(&ru1) - rusage_ns(&ru0);
    printf("%s, idle %u s (wall %.3f s):\n", name, secs, wall / 1e9);
    printf("  %-14s %8s %7s %14s %9s %12s %10s\n", "process", "pid", "threads", "stat ticks(%)", "ns(%)",
           "wakeups/s", "preempt/s");
    printf("  %-14s %8d %7u %6" PRIu64 " (%5.2f) %9.4f %12.1f %10.1f   getrusage %.4f %%\n", "parent",
           (int)getpid(), p1.nthreads, p1.ticks - p0.ticks, 100.0 * (double)(p1.ticks - p0.ticks) * tick_ns / wall,
           p0.ns && p1.ns ? 100.0 * (double)(p1.ns - p0.ns) / wall : -1.0,
           (double)(p1.vcsw - p0.vcsw) * 1e9 / wall, (double)(p1.ivcsw - p0.ivcsw) * 1e9 / wall,
           100.0 * (double)pr / wall);
    for (uint32_t i = 0; i < nc; i++) {
        char who[32];
        if (i < b->nchips)
            snprintf(who, sizeof who, "chip %u", i);
        else
            snprintf(who, sizeof who, "SUB %u", i - b->nchips);
        if (!c0[i].ok || !c1[i].ok) {
            printf("  %-14s %8d  (cannot read /proc/%d/stat)\n", who, (int)b->pids[i], (int)b->pids[i]);
            continue;
        }
        printf("  %-14s %8d %7u %6" PRIu64 " (%5.2f) %9.4f %12.1f %10.1f\n", who, (int)b->pids[i], c1[i].nthreads,
               c1[i].ticks - c0[i].ticks, 100.0 * (double)(c1[i].ticks - c0[i].ticks) * tick_ns / wall,
               c0[i].ns && c1[i].ns ? 100.0 * (double)(c1[i].ns - c0[i].ns) / wall : -1.0,
               (double)(c1[i].vcsw - c0[i].vcsw) * 1e9 / wall, (double)(c1[i].ivcsw - c0[i].ivcsw) * 1e9 / wall);
    }
    fflush(stdout);
    return 0;
}

/* ---- command line ---- */

static void usage(FILE *f)
{
    fprintf(f,
            "usage: l3_dispatch [options]\n"
            "  --runs N          timed runs per round-trip measurement (default 20000)\n"
            "  --warmup N        untimed runs before them (default 2000)\n"
            "  --batch N         tasks per run of the throughput measurement (default 256)\n"
            "  --batch-runs N    timed runs of --batch tasks (default 400)\n"
            "  --big N           tasks of the large throughput run (default 20000)\n"
            "  --big-runs N      how many large runs, each printed (default 3)\n"
            "  --idle-samples N  runs timed after 1 s idle (default 5)\n"
            "  --only LIST       sections to run, comma-separated: roundtrip, after-idle, idle-cpu,\n"
            "                    throughput (default: all)\n"
            "  --samples         print every round trip\n"
            "  --syscall-cost NS make every system call cost about NS ns (a seccomp filter), to\n"
            "                    measure as on a machine kind whose system calls are slow\n"
            "  --quick           small counts, 1 s idle only, for the smoke test\n");
}


static int parse_args(int argc, char **argv, options *o)
{
    *o = (options){.runs = 20000, .warmup = 2000, .batch = 256, .batch_runs = 400, .big = 20000, .big_runs = 3,
                   .idle_samples = 5, .idle_secs = {1, 2}, .nidle = 2};
    /* --quick first, so explicit options after it still win */
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], "--quick") == 0) {
            o->quick = true;
            o->runs = 200;
            o->warmup = 20;
            o->batch_runs = 10;
            o->big = 2000;
            o->big_runs = 1;
            o->idle_samples = 2;
            o->nidle = 1;
        }
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--quick") == 0)
            continue;
        if (strcmp(a, "--samples") == 0) {
            o->samples = true;
            continue;
        }
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            usage(stdout);
            exit(0);
        }
        if (strcmp(a, "--only") == 0) {
            if (!v) {
                fprintf(stderr, "l3_dispatch: --only needs a value\n");
                return 1;
            }
            char buf[256];
            snprintf(buf, sizeof buf, "%s", v);
            for (char *tok = strtok(buf, ","); tok; tok = strtok(NULL, ","))
                if (strcmp(tok, "roundtrip") && strcmp(tok, "after-idle") && strcmp(tok, "idle-cpu") &&
                    strcmp(tok, "throughput")) {
                    fprintf(stderr, "l3_dispatch: --only: unknown section '%s'\n", tok);
                    return 1;
                }
            o->only = v;
            i++;
            continue;
        }
        uint32_t *dst = strcmp(a, "--runs") == 0           ? &o->runs
                        : strcmp(a, "--warmup") == 0       ? &o->warmup
                        : strcmp(a, "--batch") == 0        ? &o->batch
                        : strcmp(a, "--batch-runs") == 0   ? &o->batch_runs
                        : strcmp(a, "--big") == 0          ? &o->big
                        : strcmp(a, "--big-runs") == 0     ? &o->big_runs
                        : strcmp(a, "--idle-samples") == 0 ? &o->idle_samples
                        : strcmp(a, "--syscall-cost") == 0 ? &o->syscall_cost_ns
                                                           : NULL;
        if (!dst) {
            fprintf(stderr, "l3_dispatch: unknown option %s\n", a);
            usage(stderr);
            return 1;
        }
        if (!v) {
            fprintf(stderr, "l3_dispatch: %s needs a value\n", a);
            return 1;
        }
        i++;
        if (!bench_parse_u32(v, dst) || ((dst == &o->batch || dst == &o->big) && *dst == 0)) {
            fprintf(stderr, "l3_dispatch: bad value '%s' for %s\n", v, a);
            return 1;
        }
    }
    return 0;
}

/* ---- machine ---- */

static void print_machine(void)
{
    char runtime[64], extra[64];
    snprintf(runtime, sizeof runtime, "strata %s", strata_version_string());
    snprintf(extra, sizeof extra, ", CLK_TCK %ld", sysconf(_SC_CLK_TCK));
    bench_print_machine(runtime, extra);
}

int main(int argc, char **argv)
{
    options opt;
    if (parse_args(argc, argv, &opt))
        return 2;
    print_machine();
    if (bench_apply_syscall_cost(PROG, opt.syscall_cost_ns))
        return 2;
    int failures = 0;
    syscalls_fd = bench_syscalls_open();
    if (syscalls_fd < 0)
        printf("# system calls: not counted: %s\n", bench_syscalls_why());

    /* Worker A: 1 chip child + 1 SUB child. */
    bench a;
    if (bench_open(&a, 1, 1))
        return 1;
    if (bench_selected(opt.only, "roundtrip", false)) {
        printf("\n# 1. round trip of one strata_worker_run (1 chip child + 1 SUB child); warm-up %u runs; "
               "times in us; <=10us = %% of runs that took at most 10 us; csw/run = voluntary context "
               "switches per run (parent, children); sys/run = system calls per run, all processes\n", opt.warmup);
        printf("%-22s %7s %8s %8s %8s %8s %8s %9s %8s %7s   %6s %6s %8s\n", "run", "runs", "min", "median", "p90",
               "p99", "p99.9", "max", "mean", "<=10us", "parent", "child", "sys/run");
        failures += round_trip(&a, "empty run (no task)", bench_orch_nothing, 0, &opt);
        failures += round_trip(&a, "one chip task", orch_one_chip, 1, &opt);
        failures += round_trip(&a, "chip task, 1 core task", orch_one_chip_core, 1, &opt);
        failures += round_trip(&a, "one SUB task", orch_one_sub, 1, &opt);
    }
    if (bench_selected(opt.only, "after-idle", false)) {
        printf("\n# 3. the first run after the worker was idle 1 s (a stamped task: the child writes the time it "
               "starts), then one more run at once; us\n");
        printf("#   enter = run() called -> orchestration function; submit = the submit call, which posts and "
               "wakes the child;\n#   wake = submit returned -> the child starts the task; back = the child "
               "starts -> run() returns\n");
        printf("%-22s %6s %9s %9s %9s %9s %9s %9s\n", "run", "sample", "total", "enter", "submit", "wake", "back",
               "next run");
        failures += after_idle(&a, "empty run (no task)", orch_stamp_none, bench_orch_nothing, 0, &opt);
        failures += after_idle(&a, "one chip task", orch_stamp_chip, orch_one_chip, 1, &opt);
        failures += after_idle(&a, "one SUB task", orch_stamp_sub, orch_one_sub, 1, &opt);
    }
    if (bench_selected(opt.only, "idle-cpu", false)) {
        printf("\n# 4. idle CPU: %% of one core while the worker is left alone\n");
        for (uint32_t k = 0; k < opt.nidle; k++)
            failures += idle_cpu(&a, "1 chip + 1 SUB", opt.idle_secs[k]);
    }
    failures += bench_close(&a);

    /* Worker B: 2 chip children. */
    if (!bench_selected(opt.only, "throughput", false) && !bench_selected(opt.only, "idle-cpu", false)) {
        bench_syscalls_close(syscalls_fd);
        return failures ? 1 : 0;
    }
    bench b;
    if (bench_open(&b, 2, 0)) {
        bench_syscalls_close(syscalls_fd);
        return 1;
    }
    if (bench_selected(opt.only, "throughput", false)) {
        uint32_t bw = opt.quick ? 5 : 100;
        printf("\n# 2. throughput: independent empty chip tasks, one run each (2 chip children); times in us\n");
        printf("%-30s %6s %6s %10s %10s %10s %9s %9s %11s %9s\n", "tasks on", "tasks", "runs", "min", "median", "p90",
               "us/task", "min", "tasks/s", "sys/task");
        failures += throughput(&b, "chips 0,1 alternating", opt.batch, 2, bw, opt.batch_runs, false);
        failures += throughput(&b, "chip 0 only", opt.batch, 1, bw, opt.batch_runs, false);
        if (opt.big_runs) {
            failures += throughput(&b, "chips 0,1 alternating", opt.big, 2, 1, opt.big_runs, true);
            failures += throughput(&b, "chip 0 only", opt.big, 1, 1, opt.big_runs, true);
        }
    }
    if (bench_selected(opt.only, "idle-cpu", false)) {
        printf("\n# 4. idle CPU (continued)\n");
        for (uint32_t k = 0; k < opt.nidle; k++)
            failures += idle_cpu(&b, "2 chips", opt.idle_secs[k]);
    }
    failures += bench_close(&b);
    bench_syscalls_close(syscalls_fd);
    return failures ? 1 : 0;
}
