/* python_overhead_c: the C side of bench/python_overhead.py. It times, on a
 * level-3 worker of 1 chip child and 1 SUB child, what the driver times again
 * through the Python package, the same way and with the same workloads:
 *
 *   clock       two clock reads back to back (the floor under every sample)
 *   run_empty   strata_worker_run with an orchestration function that submits
 *               nothing, per run
 *   run_chip    strata_worker_run with one strata_submit_next_level of the
 *               empty chip callable (libpython_overhead_kernels.so, symbol
 *               bench_empty_chip: its orchestration submits nothing), no
 *               arguments, on chip 0, per run
 *   submit3     inside one run, --submits back-to-back strata_submit_next_level
 *               calls of that callable with prebuilt arguments of three
 *               tensors (1024 float32 each in the shared heap, all INPUT, so
 *               the tasks are independent); the sample is the submit loop's
 *               time divided by --submits (ns per submit); the task window
 *               (4096) holds them all, so no submit waits for the child
 *   submit3_run the whole run of those submits, per task
 *   run_sub     strata_worker_run with one strata_submit_sub of a SUB function
 *               that returns 0, no arguments, per run
 *   sub_batch   one run of --sub-tasks such SUB tasks (one SUB child, so one
 *               after another), per task
 *   args3       filling a strata_task_args of three tensors made with
 *               strata_tensor_make (the C counterpart of building a TaskArgs),
 *               per construction, timed in batches of 1000
 *
 * --pin P,C puts this process on CPU P and every thread of both children on
 * CPU C (the driver passes the CPUs it pins its own side to): unpinned, the
 * scheduler sometimes places the parent and a child on one CPU, where every
 * round trip takes two context switches (~5 us here instead of ~1 us), and
 * which placement an invocation gets decides its figures.
 *
 * Each line "RESULT <name> <samples> <median> <min> <p90>" gives ns per unit
 * (per run, per submit, per task, per construction): the median over the
 * samples of one invocation. The driver runs this program once per round and
 * takes the median over rounds. Every run's status and the completed-task
 * counter are checked; the worker is closed and destroyed. */
#define _GNU_SOURCE
#include <dirent.h>
#include <inttypes.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <strata/strata.h>

#include "common.h"

#define PROG "python_overhead_c"
#define NTENSORS 3
#define TENSOR_ELEMS 1024u

typedef struct options {
    uint32_t    runs, warmup;   /* per-run measures */
    uint32_t    submits;        /* submit3: submits per run */
    uint32_t    batch_runs;     /* submit3, sub_batch: timed runs */
    uint32_t    sub_tasks;      /* sub_batch: SUB tasks per run */
    uint32_t    args_batches;   /* args3: batches of 1000 */
    const char *kernels;        /* the chip callable's shared object */
    int         pin_parent, pin_children;   /* CPUs; -1: not pinned */
} options;

typedef struct bench {
    strata_worker   *w;
    strata_handle    chip, sub;
    strata_tensor    t[NTENSORS];
    strata_tag       tags[NTENSORS];
    strata_task_args args3;
    uint32_t         n;          /* tasks per batched run */
    uint64_t         loop_ns;    /* submit3: the submit loop of the last run */
} bench;

static const strata_task_args no_args = {NULL, NULL, 0, NULL, 0};

static int orch_one_chip(strata_orch *o, const strata_task_args *args, const strata_call_config *cfg, void *ctx)
{
    (void)args;
    (void)cfg;
    const bench *b = ctx;
    return strata_submit_next_level(o, b->chip, &no_args, NULL, 0);
}

static int orch_submit3(strata_orch *o, const strata_task_args *args, const strata_call_config *cfg, void *ctx)
{
    (void)args;
    (void)cfg;
    bench *b = ctx;
    uint64_t t0 = bench_now_ns();
    for (uint32_t i = 0; i < b->n; i++) {
        int rc = strata_submit_next_level(o, b->chip, &b->args3, NULL, 0);
        if (rc)
            return rc;
    }
    b->loop_ns = bench_now_ns() - t0;
    return 0;
}

static int orch_one_sub(strata_orch *o, const strata_task_args *args, const strata_call_config *cfg, void *ctx)
{
    (void)args;
    (void)cfg;
    const bench *b = ctx;
    return strata_submit_sub(o, b->sub, &no_args);
}

static int orch_sub_batch(strata_orch *o, const strata_task_args *args, const strata_call_config *cfg, void *ctx)
{
    (void)args;
    (void)cfg;
    const bench *b = ctx;
    for (uint32_t i = 0; i < b->n; i++) {
        int rc = strata_submit_sub(o, b->sub, &no_args);
        if (rc)
            return rc;
    }
    return 0;
}

static uint64_t completed(const bench *b)
{
    strata_run_stats st;
    return strata_worker_stats(b->w, &st) == STRATA_OK ? st.tasks_completed : 0;
}

static int check_completed(const bench *b, const char *name, uint64_t before, uint64_t expect)
{
    uint64_t got = completed(b) - before;
    if (got != expect) {
        fprintf(stderr, "python_overhead_c: %s: %" PRIu64 " tasks completed, expected %" PRIu64 "\n", name, got,
                expect);
        return 1;
    }
    return 0;
}

/* samples[i] / unit ns per unit: median, min, p90; samples are sorted. */
static void report(const char *name, uint64_t *s, uint32_t n, double unit)
{
    qsort(s, n, sizeof s[0], bench_cmp_u64);
    double med = n % 2 ? (double)s[n / 2] : ((double)s[n / 2 - 1] + (double)s[n / 2]) / 2;
    printf("RESULT %-12s %7u %12.2f %12.2f %12.2f\n", name, n, med / unit, n ? (double)s[0] / unit : 0.0,
           (double)bench_percentile(s, n, 0.9) / unit);
    fflush(stdout);
}

/* runs of orch: each run's wall time (or, with loop, the submit loop's). */
static int time_runs(bench *b, const char *name, strata_orch_fn orch, uint32_t warmup, uint32_t runs,
                     uint64_t tasks_per_run, double unit, bool loop, uint64_t *whole)
{
    uint64_t *s = malloc((size_t)runs * sizeof s[0]);
    if (!s)
        return bench_fail(PROG, "malloc", STRATA_ENOMEM);
    uint64_t before = completed(b);
    int rc;
    for (uint32_t r = 0; r < warmup; r++)
        if ((rc = strata_worker_run(b->w, orch, b, NULL, NULL))) {
            free(s);
            return bench_fail(PROG, name, rc);
        }
    for (uint32_t r = 0; r < runs; r++) {
        uint64_t t0 = bench_now_ns();
        rc = strata_worker_run(b->w, orch, b, NULL, NULL);
        uint64_t t1 = bench_now_ns();
        if (rc) {
            free(s);
            return bench_fail(PROG, name, rc);
        }
        s[r] = loop ? b->loop_ns : t1 - t0;
        if (whole)
            whole[r] = t1 - t0;
    }
    if (check_completed(b, name, before, tasks_per_run * (warmup + runs))) {
        free(s);
        return 1;
    }
    report(name, s, runs, unit);
    free(s);
    return 0;
}

static int clock_floor(uint32_t n)
{
    uint64_t *s = malloc((size_t)n * sizeof s[0]);
    if (!s)
        return bench_fail(PROG, "malloc", STRATA_ENOMEM);
    for (uint32_t i = 0; i < n; i++) {
        uint64_t t0 = bench_now_ns();
        uint64_t t1 = bench_now_ns();
        s[i] = t1 - t0;
    }
    report("clock", s, n, 1.0);
    free(s);
    return 0;
}

/* args3: a strata_task_args of three tensors built, per construction. */
static volatile uint64_t sink;

static int args_construction(const bench *b, uint32_t batches)
{
    enum { PER_BATCH = 1000 };
    uint64_t *s = malloc((size_t)batches * sizeof s[0]);
    if (!s)
        return bench_fail(PROG, "malloc", STRATA_ENOMEM);
    static const uint64_t shape[1] = {TENSOR_ELEMS};
    for (uint32_t k = 0; k < batches; k++) {
        uint64_t t0 = bench_now_ns();
        for (uint32_t i = 0; i < PER_BATCH; i++) {
            strata_tensor t[NTENSORS];
            for (uint32_t j = 0; j < NTENSORS; j++)
                t[j] = strata_tensor_make((const void *)(uintptr_t)b->t[j].addr, STRATA_F32, 1, shape);
            strata_task_args a = {t, b->tags, NTENSORS, NULL, 0};
            __asm__ volatile("" : : "r"(&a), "r"(t) : "memory");   /* kept, as if submitted */
            sink += a.tensors[2].addr;
        }
        s[k] = bench_now_ns() - t0;
    }
    report("args3", s, batches, PER_BATCH);
    free(s);
    return 0;
}

/* Every thread of process pid onto CPU cpu. */
static int pin_process(pid_t pid, int cpu)
{
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/task", (int)pid);
    DIR *d = opendir(path);
    if (!d) {
        perror("python_overhead_c: opendir /proc/<pid>/task");
        return 1;
    }
    int ret = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        if (e->d_name[0] >= '0' && e->d_name[0] <= '9' &&
            sched_setaffinity((pid_t)strtol(e->d_name, NULL, 10), sizeof set, &set) != 0) {
            perror("python_overhead_c: sched_setaffinity");
            ret = 1;
        }
    closedir(d);
    return ret;
}

static int bench_open(bench *b, const char *kernels)
{
    memset(b, 0, sizeof *b);
    static const int ids[1] = {0};
    strata_worker_config cfg;
    strata_worker_config_init(&cfg, 3);
    cfg.device_ids = ids;
    cfg.ndevices = 1;
    cfg.num_sub_workers = 1;
    cfg.device_memory_bytes = 64u << 20;
    cfg.shared_heap_bytes = 16u << 20;
    int rc = strata_worker_create(&cfg, &b->w);
    if (rc)
        return bench_fail(PROG, "strata_worker_create", rc);
    if ((rc = strata_worker_register_chip_symbol(b->w, kernels, "bench_empty_chip", &b->chip)) ||
        (rc = strata_worker_register_sub(b->w, bench_sub_empty, NULL, &b->sub)) ||
        (rc = strata_worker_init(b->w))) {
        strata_worker_destroy(b->w);
        b->w = NULL;
        return bench_fail(PROG, "register or init", rc);
    }
    static const uint64_t shape[1] = {TENSOR_ELEMS};
    for (uint32_t j = 0; j < NTENSORS; j++) {
        void *p;
        if ((rc = strata_worker_host_alloc(b->w, TENSOR_ELEMS * sizeof(float), &p))) {
            strata_worker_destroy(b->w);
            b->w = NULL;
            return bench_fail(PROG, "strata_worker_host_alloc", rc);
        }
        b->t[j] = strata_tensor_make(p, STRATA_F32, 1, shape);
        b->tags[j] = STRATA_INPUT;
    }
    b->args3 = (strata_task_args){b->t, b->tags, NTENSORS, NULL, 0};
    return 0;
}

static void usage(FILE *f)
{
    fprintf(f, "usage: python_overhead_c --kernels PATH [options]\n"
               "  --kernels PATH    libpython_overhead_kernels.so (exports bench_empty_chip)\n"
               "  --runs N          timed runs of each one-task measure (default 5000)\n"
               "  --warmup N        untimed runs before them (default 500)\n"
               "  --submits N       submit3: submits per run (default 256)\n"
               "  --batch-runs N    timed runs of submit3 and sub_batch (default 200)\n"
               "  --sub-tasks N     sub_batch: SUB tasks per run (default 64)\n"
               "  --args-batches N  args3: batches of 1000 constructions (default 200)\n"
               "  --pin P,C         this process on CPU P, the children's threads on CPU C\n");
}

static int parse_args(int argc, char **argv, options *o)
{
    *o = (options){.runs = 5000, .warmup = 500, .submits = 256, .batch_runs = 200, .sub_tasks = 64,
                   .args_batches = 200, .pin_parent = -1, .pin_children = -1};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            usage(stdout);
            exit(0);
        }
        const char *v = bench_option_value("python_overhead_c", argc, argv, &i);
        if (!v)
            return 1;
        if (strcmp(a, "--kernels") == 0) {
            o->kernels = v;
            continue;
        }
        if (strcmp(a, "--pin") == 0) {
            uint32_t cpus[2], n;
            if (!bench_parse_u32_list(v, cpus, 2, &n) || n != 2 || cpus[0] >= CPU_SETSIZE ||
                cpus[1] >= CPU_SETSIZE) {
                fprintf(stderr, "python_overhead_c: --pin takes two CPUs, P,C\n");
                return 1;
            }
            o->pin_parent = (int)cpus[0];
            o->pin_children = (int)cpus[1];
            continue;
        }
        uint32_t *dst = strcmp(a, "--runs") == 0           ? &o->runs
                        : strcmp(a, "--warmup") == 0       ? &o->warmup
                        : strcmp(a, "--submits") == 0      ? &o->submits
                        : strcmp(a, "--batch-runs") == 0   ? &o->batch_runs
                        : strcmp(a, "--sub-tasks") == 0    ? &o->sub_tasks
                        : strcmp(a, "--args-batches") == 0 ? &o->args_batches
                                                           : NULL;
        if (!dst) {
            fprintf(stderr, "python_overhead_c: unknown option %s\n", a);
            usage(stderr);
            return 1;
        }
        if (!bench_parse_u32(v, dst) || *dst == 0) {
            fprintf(stderr, "python_overhead_c: bad value '%s' for %s\n", v, a);
            return 1;
        }
    }
    if (!o->kernels) {
        fprintf(stderr, "python_overhead_c: --kernels PATH is required\n");
        return 1;
    }
    if (o->submits > 4096) {
        fprintf(stderr, "python_overhead_c: --submits must be at most 4096 (the task window)\n");
        return 1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    options opt;
    if (parse_args(argc, argv, &opt))
        return 2;
    char runtime[64];
    snprintf(runtime, sizeof runtime, "strata %s", strata_version_string());
    bench_print_machine(runtime, "");
    bench b;
    if (bench_open(&b, opt.kernels))
        return 1;
    if (opt.pin_parent >= 0) {
        int bad = pin_process(getpid(), opt.pin_parent);
        for (int i = 0; i < 2 && !bad; i++) {
            pid_t pid;
            int rc = strata_worker_child_pid(b.w, i, &pid);
            bad = rc ? bench_fail(PROG, "strata_worker_child_pid", rc) : pin_process(pid, opt.pin_children);
        }
        if (bad) {
            (void)strata_worker_close(b.w);
            strata_worker_destroy(b.w);
            return 1;
        }
    }
    int failures = clock_floor(opt.runs);
    failures += time_runs(&b, "run_empty", bench_orch_nothing, opt.warmup, opt.runs, 0, 1.0, false, NULL);
    failures += time_runs(&b, "run_chip", orch_one_chip, opt.warmup, opt.runs, 1, 1.0, false, NULL);
    b.n = opt.submits;
    uint64_t *whole = malloc((size_t)opt.batch_runs * sizeof whole[0]);
    if (!whole)
        return bench_fail(PROG, "malloc", STRATA_ENOMEM);
    uint32_t bw = opt.warmup / 50 ? opt.warmup / 50 : 1;
    failures += time_runs(&b, "submit3", orch_submit3, bw, opt.batch_runs, opt.submits, opt.submits, true, whole);
    report("submit3_run", whole, opt.batch_runs, opt.submits);
    free(whole);
    failures += time_runs(&b, "run_sub", orch_one_sub, opt.warmup, opt.runs, 1, 1.0, false, NULL);
    b.n = opt.sub_tasks;
    failures += time_runs(&b, "sub_batch", orch_sub_batch, bw, opt.batch_runs, opt.sub_tasks, opt.sub_tasks, false,
                          NULL);
    failures += args_construction(&b, opt.args_batches);
    int rc = strata_worker_close(b.w);
    if (rc)
        failures += bench_fail(PROG, "strata_worker_close", rc);
    strata_worker_destroy(b.w);
    return failures ? 1 : 0;
}
