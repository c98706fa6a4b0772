/* trace_cost: what a trace costs per task, and that it costs no memory that
 * grows with the number of tasks.
 *
 *   trace_cost [--tasks N] [--reps R] [--out PATH] [--level 2|3]
 *
 * Level 2 (default): one sim chip with two AIV cores runs N independent empty
 * kernels per run (each writes its own 64-byte slot of one buffer, 1024 slots
 * reused). Level 3: a worker with one SUB child runs N empty SUB tasks per run.
 * For each, R runs untraced, then R runs traced into PATH (default /dev/null:
 * the cost of recording and formatting, not of the disk), printing the median
 * ns per task of each, their difference, the trace's bytes per task when PATH
 * is a file, and the process's resident memory before the first traced run and
 * after the last (the rings, the readers' tables and the write buffer are
 * allocated once; nothing grows with N). docs/performance.md records figures. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <strata/strata.h>

#include "common.h"

typedef struct job {
    uint64_t      tasks;
    strata_tensor slots;   /* level 2: the buffer of 1024 slots */
    strata_handle sub;
} job;

static job the_job;

static int kernel_empty(const strata_task_args *a)
{
    (void)a;
    return 0;
}

static int many_kernels(strata_chip_orch *o, const strata_task_args *args, const strata_call_config *cfg)
{
    (void)args;
    (void)cfg;
    strata_tag tag = STRATA_OUTPUT;
    for (uint64_t i = 0; i < the_job.tasks; i++) {
        strata_tensor t = the_job.slots;
        t.shape[0] = 8;
        t.offset = (i % 1024) * 8;
        int rc = strata_chip_submit(o, 0, &(strata_task_args){&t, &tag, 1, NULL, 0});
        if (rc)
            return rc;
    }
    return STRATA_OK;
}

static const strata_kernel_entry kernels[] = {{0, STRATA_AIV, kernel_empty}};

static int sub_empty(const strata_task_args *a, void *ctx)
{
    (void)a;
    (void)ctx;
    return 0;
}

static int many_subs(strata_orch *o, const strata_task_args *args, const strata_call_config *cfg, void *ctx)
{
    (void)args;
    (void)cfg;
    (void)ctx;
    for (uint64_t i = 0; i < the_job.tasks; i++) {
        int rc = strata_submit_sub(o, the_job.sub, NULL);
        if (rc)
            return rc;
    }
    return STRATA_OK;
}

static uint64_t rss_bytes(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    unsigned long size = 0, resident = 0;
    if (f) {
        if (fscanf(f, "%lu %lu", &size, &resident) != 2)
            resident = 0;
        fclose(f);
    }
    return (uint64_t)resident * (uint64_t)sysconf(_SC_PAGESIZE);
}

static int die(const char *what)
{
    fprintf(stderr, "trace_cost: %s: %s\n", what, strata_last_error());
    return 1;
}

/* One run; its ns per task. */
static int one_run(strata_worker *w, int level, strata_handle h, uint64_t *ns)
{
    uint64_t t0 = bench_now_ns();
    int rc = level == 2 ? strata_worker_run_chip(w, h, NULL, NULL) : strata_worker_run(w, many_subs, NULL, NULL, NULL);
    *ns = (bench_now_ns() - t0) / the_job.tasks;
    return rc;
}

int main(int argc, char **argv)
{
    uint32_t reps = 5, level = 2;
    uint64_t tasks = 200000;
    const char *out = "/dev/null";
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--tasks") == 0 && i + 1 < argc)
            tasks = strtoull(argv[++i], NULL, 10);
        else if (strcmp(argv[i], "--reps") == 0 && i + 1 < argc)
            reps = (uint32_t)strtoul(argv[++i], NULL, 10);
        else if (strcmp(argv[i], "--out") == 0 && i + 1 < argc)
            out = argv[++i];
        else if (strcmp(argv[i], "--level") == 0 && i + 1 < argc)
            level = (uint32_t)strtoul(argv[++i], NULL, 10);
        else {
            fprintf(stderr, "usage: trace_cost [--tasks N] [--reps R] [--out PATH] [--level 2|3]\n");
            return 2;
        }
    }
    if (tasks == 0 || reps == 0 || reps > 100 || (level != 2 && level != 3)) {
        fprintf(stderr, "trace_cost: tasks and reps (1..100) must be positive, level 2 or 3\n");
        return 2;
    }
    the_job.tasks = tasks;
    strata_worker_config cfg;
    strata_worker_config_init(&cfg, (int)level);
    strata_worker *w;
    strata_handle h = 0;
    if (level == 2) {
        cfg.aiv_cores = 2;
        cfg.device_memory_bytes = 64 << 20;
    } else {
        cfg.num_sub_workers = 1;
    }
    if (strata_worker_create(&cfg, &w))
        return die("create");
    if (level == 2) {
        strata_chip_callable c = {"many_kernels", many_kernels, kernels, 1};
        if (strata_worker_register_chip(w, &c, &h))
            return die("register");
    } else if (strata_worker_register_sub(w, sub_empty, NULL, &the_job.sub)) {
        return die("register");
    }
    if (strata_worker_init(w))
        return die("init");
    if (level == 2) {
        strata_buffer b;
        if (strata_worker_malloc(w, 0, 1024 * 64, &b))
            return die("malloc");
        the_job.slots = (strata_tensor){.addr = b.addr, .nbytes = b.nbytes, .dtype = STRATA_U64, .ndims = 1,
                                        .shape = {b.nbytes / 8}};
    }
    uint64_t ns, plain[100], traced[100];
    if (one_run(w, (int)level, h, &ns))   /* warm-up */
        return die("run");
    for (uint32_t r = 0; r < reps; r++)
        if (one_run(w, (int)level, h, &plain[r]))
            return die("run");
    uint64_t rss_before = rss_bytes();
    if (strata_trace_begin(out))
        return die("strata_trace_begin");
    for (uint32_t r = 0; r < reps; r++)
        if (one_run(w, (int)level, h, &traced[r]))
            return die("traced run");
    if (strata_trace_end())
        return die("strata_trace_end");
    uint64_t rss_after = rss_bytes();
    struct stat st;
    bool file = strcmp(out, "/dev/null") != 0 && stat(out, &st) == 0;
    uint64_t mp = bench_median_u64(plain, reps), mt = bench_median_u64(traced, reps);
    printf("level %u, %" PRIu64 " tasks per run, %u runs each (median ns per task)\n", level, tasks, reps);
    printf("  untraced        %8" PRIu64 " ns\n", mp);
    printf("  traced          %8" PRIu64 " ns   (+%" PRId64 " ns per task, into %s)\n", mt, (int64_t)(mt - mp), out);
    if (file)
        printf("  trace file      %8.1f bytes per task\n", (double)st.st_size / ((double)tasks * reps));
    printf("  resident memory %8.1f MiB before the first traced run, %.1f MiB after the last (%+.1f MiB)\n",
           (double)rss_before / 1048576.0, (double)rss_after / 1048576.0,
           ((double)rss_after - (double)rss_before) / 1048576.0);
    strata_worker_destroy(w);
    return 0;
}
