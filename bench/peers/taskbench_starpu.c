/* taskbench_starpu: the smallest useful task (METG, Task Bench's method) on
 * StarPU, the peer of bench/taskbench (Strata). Built by
 * bench/peers/build_starpu.sh; no Strata header or library.
 *
 * The graphs, kernel, checks and sweep are bench/taskbench_graph.h's. Each
 * point's two slots (step parities) are 64-byte elements of one array, each
 * registered as its own StarPU variable handle (one handle per point datum).
 * A run submits every task of the graph, step by step, with
 * starpu_task_insert: one codelet (STARPU_VARIABLE_NBUFFERS, a CPU function
 * that runs tb_execute), the input slots' handles
 * STARPU_R and its own slot's handle STARPU_W (STARPU_DATA_MODE_ARRAY), and a
 * pointer to the task's (step, point) as its cl_arg (not copied, not freed);
 * then starpu_task_wait_for_all. StarPU's implicit (sequentially consistent)
 * dependencies give every RAW edge and the double buffer's WAR ordering.
 *
 * StarPU is configured through the environment before starpu_init, as
 * starpu_dag does: STARPU_NCPU = --threads (default: --cores), STARPU_NCUDA=0,
 * STARPU_NOPENCL=0, STARPU_CALIBRATE=0, STARPU_SCHED = --sched (default lws).
 * The main thread submits and waits; it is not a worker. The peak is measured
 * with plain threads before starpu_init.
 *
 *   bash bench/peers/build_starpu.sh /tmp/strata-peers
 *   /tmp/strata-peers/taskbench_starpu --quick
 *   /tmp/strata-peers/taskbench_starpu --help
 * bench/metg runs it beside Strata; docs/performance.md has the figures. */
#include <errno.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <starpu.h>

#include "common.h"
#include "taskbench_graph.h"

#define PROG "taskbench_starpu"

typedef struct options {
    tb_options  tb;
    uint32_t    threads;
    const char *sched;
    const char *name;
} options;

/* What a task's CPU function needs besides its buffers. */
typedef struct point_task {
    uint32_t t, p;
} point_task;

typedef struct backend {
    uint32_t              width;
    tb_slot              *slots;      /* 2 * width: parity * width + point */
    starpu_data_handle_t *handles;    /* one per slot */
    point_task           *tasks;      /* one per task of the graph being run */
    uint64_t              ntasks_cap;
    struct starpu_codelet cl;
    _Atomic uint64_t      errors;
} backend;

/* This run's graph and iterations, read by the CPU functions (set before any
   task is submitted). */
static const tb_graph *g_graph;
static uint64_t        g_iterations;
static backend        *g_backend;

static void cpu_point(void *buffers[], void *cl_arg)
{
    const point_task *pt = cl_arg;
    struct starpu_task *task = starpu_task_get_current();
    uint32_t n = (uint32_t)task->nbuffers - 1;
    const tb_slot *inputs[TB_MAX_WIDTH];
    for (uint32_t i = 0; i < n; i++)
        inputs[i] = (const tb_slot *)STARPU_VARIABLE_GET_PTR(buffers[i]);
    tb_execute(g_graph, pt->t, pt->p, inputs, n, (tb_slot *)STARPU_VARIABLE_GET_PTR(buffers[n]), g_iterations,
               &g_backend->errors);
}

static int backend_prepare(void *ctx, const tb_graph *g)
{
    backend *b = ctx;
    uint64_t n = tb_tasks(g);
    if (n > b->ntasks_cap) {
        point_task *tasks = realloc(b->tasks, n * sizeof tasks[0]);
        if (!tasks) {
            fprintf(stderr, PROG ": out of memory for %llu tasks\n", (unsigned long long)n);
            return 1;
        }
        b->tasks = tasks;
        b->ntasks_cap = n;
    }
    return 0;
}

static int backend_run(void *ctx, const tb_graph *g, uint64_t iterations)
{
    backend *b = ctx;
    g_graph = g;
    g_iterations = iterations;
    uint32_t deps[TB_MAX_WIDTH];
    struct starpu_data_descr descr[TB_MAX_WIDTH + 1];
    uint64_t k = 0;
    int rc = 0;
    for (uint32_t t = 0; t < g->steps && rc == 0; t++) {
        uint32_t width = tb_width_at(g, t);
        for (uint32_t p = 0; p < width; p++, k++) {
            uint32_t n = tb_deps(g, t, p, deps);
            for (uint32_t i = 0; i < n; i++)
                descr[i] = (struct starpu_data_descr){b->handles[((t - 1) & 1) * b->width + deps[i]], STARPU_R};
            descr[n] = (struct starpu_data_descr){b->handles[(t & 1) * b->width + p], STARPU_W};
            b->tasks[k] = (point_task){t, p};
            rc = starpu_task_insert(&b->cl, STARPU_DATA_MODE_ARRAY, descr, (int)n + 1, STARPU_CL_ARGS_NFREE,
                                    &b->tasks[k], sizeof b->tasks[k], 0);
            if (rc) {
                fprintf(stderr, PROG ": starpu_task_insert of task (%u, %u) failed: %d (%s)\n", t, p, rc,
                        strerror(rc < 0 ? -rc : rc));
                break;
            }
        }
    }
    int w = starpu_task_wait_for_all();
    if (w) {
        fprintf(stderr, PROG ": starpu_task_wait_for_all failed: %d\n", w);
        return 1;
    }
    return rc ? 1 : 0;
}

static int backend_read_slot(void *ctx, uint32_t parity, uint32_t p, tb_slot *out)
{
    backend *b = ctx;
    starpu_data_handle_t h = b->handles[parity * b->width + p];
    if (starpu_data_acquire(h, STARPU_R)) {
        fprintf(stderr, PROG ": starpu_data_acquire failed\n");
        return 1;
    }
    *out = *(const tb_slot *)starpu_variable_get_local_ptr(h);
    starpu_data_release(h);
    return 0;
}

static void usage(FILE *f)
{
    fprintf(f, "usage: " PROG " [options]\n");
    tb_options_usage(f);
    fprintf(f, "  --threads N      StarPU CPU workers (default: --cores); the main thread submits\n"
               "  --sched NAME     STARPU_SCHED (default lws)\n"
               "  --name NAME      the backend's name in the output (default starpu-<sched>)\n");
}

static int parse_args(int argc, char **argv, options *o)
{
    memset(o, 0, sizeof *o);
    o->sched = "lws";
    tb_options_init(&o->tb, argc, argv);
    for (int i = 1; i < argc; i++) {
        int taken = tb_options_take(&o->tb, PROG, argc, argv, &i);
        if (taken < 0)
            return 1;
        if (taken)
            continue;
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            usage(stdout);
            exit(0);
        }
        if (strcmp(a, "--threads") != 0 && strcmp(a, "--sched") != 0 && strcmp(a, "--name") != 0) {
            fprintf(stderr, PROG ": unknown option %s\n", a);
            usage(stderr);
            return 1;
        }
        const char *v = bench_option_value(PROG, argc, argv, &i);
        if (!v)
            return 1;
        if (strcmp(a, "--name") == 0) {
            o->name = v;
        } else if (strcmp(a, "--sched") == 0) {
            o->sched = v;
        } else if (!bench_parse_u32(v, &o->threads) || o->threads < 1 || o->threads > 256) {
            fprintf(stderr, PROG ": bad value '%s' for %s\n", v, a);
            return 1;
        }
    }
    if (tb_options_finish(&o->tb, PROG))
        return 1;
    if (!o->threads)
        o->threads = o->tb.cores;
    return 0;
}

int main(int argc, char **argv)
{
    options opt;
    if (parse_args(argc, argv, &opt))
        return 2;
    char name[64];
    if (!opt.name) {
        snprintf(name, sizeof name, "starpu-%s", opt.sched);
        opt.name = name;
    }
    int major, minor, release;
    starpu_get_version(&major, &minor, &release);
    char runtime[64];
    snprintf(runtime, sizeof runtime, "starpu %d.%d.%d", major, minor, release);
    bench_print_machine(runtime, "");

    double peak = tb_measure_peak(opt.tb.cores, opt.tb.peak_ms);
    if (peak <= 0) {
        fprintf(stderr, PROG ": could not measure the peak\n");
        return 1;
    }
    char ncpu[16];
    snprintf(ncpu, sizeof ncpu, "%u", opt.threads);
    setenv("STARPU_NCPU", ncpu, 1);
    setenv("STARPU_NCUDA", "0", 1);
    setenv("STARPU_NOPENCL", "0", 1);
    setenv("STARPU_CALIBRATE", "0", 1);
    setenv("STARPU_SCHED", opt.sched, 1);
    int rc = starpu_init(NULL);
    if (rc) {
        fprintf(stderr, PROG ": starpu_init failed: %d (%s)\n", rc, strerror(rc < 0 ? -rc : rc));
        return 1;
    }
    printf("# StarPU: %u CPU workers, scheduler %s, the main thread submits (starpu_task_insert) and waits\n",
           starpu_cpu_worker_get_count(), opt.sched);

    backend *b = calloc(1, sizeof *b);
    int status = 1;
    if (!b)
        goto shutdown;
    g_backend = b;
    b->width = opt.tb.width;
    b->slots = aligned_alloc(64, 2 * (size_t)b->width * sizeof(tb_slot));
    b->handles = calloc(2 * (size_t)b->width, sizeof b->handles[0]);
    if (!b->slots || !b->handles) {
        fprintf(stderr, PROG ": out of memory\n");
        goto free_backend;
    }
    memset(b->slots, 0, 2 * (size_t)b->width * sizeof(tb_slot));
    for (uint32_t i = 0; i < 2 * b->width; i++)
        starpu_variable_data_register(&b->handles[i], STARPU_MAIN_RAM, (uintptr_t)&b->slots[i], sizeof(tb_slot));
    atomic_init(&b->errors, 0);
    starpu_codelet_init(&b->cl);
    b->cl.where = STARPU_CPU;
    b->cl.cpu_funcs[0] = cpu_point;
    b->cl.nbuffers = STARPU_VARIABLE_NBUFFERS;
    b->cl.name = "taskbench_point";

    tb_backend tb = {opt.name, b, backend_prepare, backend_run, backend_read_slot, &b->errors};
    status = tb_sweep(&opt.tb, &tb, peak);
    for (uint32_t i = 0; i < 2 * b->width; i++)
        if (b->handles[i])
            starpu_data_unregister(b->handles[i]);
free_backend:
    if (b) {
        free(b->slots);
        free(b->handles);
        free(b->tasks);
        free(b);
    }
shutdown:
    starpu_shutdown();
    return status;
}
