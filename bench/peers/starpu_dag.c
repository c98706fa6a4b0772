/* starpu_dag: the DAGs of l2_overhead (bench/dag.h) as StarPU tasks, to put
 * Strata's per-task overhead next to StarPU 1.3's on the same work.
 *
 * Mapping, per workload:
 *   - one StarPU data handle per datum: starpu_variable_data_register on its
 *     own 64-byte slot of one buffer in main memory (STARPU_MAIN_RAM). Groups
 *     are ignored: the fan-in reducer passes its 64 partial results as 64
 *     handles (plus the one it writes), 65 buffers in all. StarPU 1.3 takes
 *     more than STARPU_NMAXBUFS (8 in Debian's build) buffers per task through
 *     dyn_handles / dyn_modes, so the DAG needs no grouping, and the reducer
 *     has exactly the 64 RAW + 1 WAR/WAW dependencies of dag.h. (l2_overhead
 *     passes the group as one tensor because a Strata task takes at most 32;
 *     StarPU could only do the same by partitioning one handle with a filter,
 *     which adds partition/unpartition work of its own.)
 *     With --layout views (rows named "<dag>/views", as l2_overhead names
 *     them), the data are parts of ONE registered piece of data, partitioned
 *     with StarPU's data filters as its users partition a vector or a matrix
 *     into blocks: independent, chain and fan-out/fan-in register one vector
 *     of ndata 64-byte elements (starpu_vector_data_register) and split it
 *     with starpu_vector_filter_block into ndata one-element children;
 *     Cholesky registers one (8T) x (8T) byte matrix
 *     (starpu_matrix_data_register, row-major, ld 8T) and splits it with
 *     starpu_data_map_filters(starpu_matrix_filter_vertical_block: T row
 *     blocks, then starpu_matrix_filter_block: T column blocks), the
 *     partitioning of StarPU's own examples/cholesky; tile (i, j) is
 *     starpu_data_get_sub_data(matrix, 2, i, j). Tasks name the sub-handles
 *     (the reducer its 64 children one by one: a partitioned handle cannot be
 *     named while its children are in use); the whole is unpartitioned and
 *     unregistered after the workload. The partitioning is done once, before
 *     timing. --real keeps a handle per tile (--layout buffers only).
 *   - one codelet per distinct access signature (count and modes, in order:
 *     W; RW; R,W; R,RW; R,R,RW; R x64,W), with STARPU_R / STARPU_W / STARPU_RW
 *     from the access modes (dyn_modes past STARPU_NMAXBUFS), where = STARPU_CPU,
 *     an empty CPU function, no performance model.
 *   - dependencies: StarPU's implicit ones (sequential consistency, the
 *     default), which are exactly dag.h's RAW / WAW / WAR.
 *   - every task submitted in DAG order with starpu_task_insert(cl,
 *     STARPU_DATA_ARRAY, handles, n, 0) (--api insert, the default), or built
 *     with starpu_task_create and handed to starpu_task_submit (--api submit);
 *     then starpu_task_wait_for_all().
 * The handle arrays of every task are built before timing, so the timed part
 * (one "run") is submitting the whole DAG plus starpu_task_wait_for_all: task
 * creation, dependency tracking, scheduling, the (empty) CPU function calls,
 * completion and task destruction. "submit" is the time until the last task was
 * submitted.
 *
 * StarPU is configured through the environment before starpu_init (setenv,
 * overriding what is set): STARPU_NCPU = --threads (default 2), STARPU_NCUDA=0,
 * STARPU_NOPENCL=0, STARPU_CALIBRATE=0, STARPU_SCHED = --sched (default lws).
 * Other STARPU_* variables (STARPU_WORKERS_NOBIND, ...) pass through. The main
 * thread submits and waits; it is not a worker.
 *
 * Methodology as l2_overhead: untimed warm-up runs (at least one, and at least
 * 100000 tasks), then --reps timed runs, raised so that each workload times at
 * least --min-tasks tasks (200000); median and minimum ns/task. --verify adds a
 * run whose CPU functions log the order they start in and checks it against
 * dag.h's dependencies; --quick runs tiny sizes with --verify.
 *
 * Build: bench/peers/build_starpu.sh (pkg-config starpu-1.3). Needs no Strata
 * header or library. */
#include <errno.h>
#include <inttypes.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <starpu.h>

#include "common.h"
#include "dag.h"
#include "tiles.h"

#define DATUM_BYTES 64u
#define PROG "starpu_dag"

typedef enum api { API_INSERT, API_SUBMIT } api;
typedef enum layout { LAYOUT_BUFFERS, LAYOUT_VIEWS } layout;

/* --layout views: Cholesky's tiles are 8 x 8 bytes of one matrix, as in
   l2_overhead. */
#define VIEW_TILE 8u

typedef struct options {
    bench_dag_cli c;             /* what every DAG program takes (common.h) */
    uint32_t      threads;
    const char   *sched;
    api           api;
    layout        layout;
} options;

/* ---- small helpers (bench/common.c needs Strata's headers) ---- */

static void print_machine(void)
{
    int major, minor, release;
    starpu_get_version(&major, &minor, &release);
    char runtime[64];
    snprintf(runtime, sizeof runtime, "starpu %d.%d.%d", major, minor, release);
    bench_print_machine(runtime, "");
}

/* ---- CPU functions ---- */

static void cpu_empty(void *buffers[], void *cl_arg)
{
    (void)buffers;
    (void)cl_arg;
}

/* --verify: each task logs its DAG index (cl_arg points at it) when it starts. */
static uint32_t        *g_log;
static _Atomic uint32_t g_logpos;

static void cpu_log(void *buffers[], void *cl_arg)
{
    (void)buffers;
    uint32_t at = atomic_fetch_add_explicit(&g_logpos, 1, memory_order_relaxed);
    g_log[at] = *(const uint32_t *)cl_arg;
}

/* --real: the task's kind (cl_arg points at it) on its tiles, in access order. */
static void cpu_real(void *buffers[], void *cl_arg)
{
    float *tiles[3];
    for (int i = 0; i < 3; i++)
        tiles[i] = NULL;
    dag_kind kind = (dag_kind) * (const uint32_t *)cl_arg;
    int n = kind == DAG_GEMM ? 3 : kind == DAG_POTRF ? 1 : 2;
    for (int i = 0; i < n; i++)
        tiles[i] = (float *)STARPU_VARIABLE_GET_PTR(buffers[i]);
    tile_kernel(kind, tiles);
}

enum { RUN_EMPTY = 0, RUN_LOG = 1, RUN_REAL = 2 };

/* ---- the DAG on StarPU ---- */

/* One codelet pair (empty, logging) per distinct access signature. */
typedef struct codelet_pair {
    uint32_t                       naccess;
    enum starpu_data_access_mode  *modes;    /* naccess */
    struct starpu_codelet          cl[3];    /* RUN_EMPTY, RUN_LOG, RUN_REAL */
    char                           name[32];
} codelet_pair;

typedef struct plan {
    const dag            *d;
    uint8_t              *mem;       /* ndata x datum_bytes */
    size_t                datum_bytes;   /* DATUM_BYTES, or TILE_BYTES with --real */
    uint32_t             *kind;      /* ntasks: the cl_arg of --real */
    starpu_data_handle_t *handle;    /* ndata: registered ones, or the children of `whole` */
    uint32_t              nregistered;
    starpu_data_handle_t  whole;     /* --layout views: the one vector or matrix, partitioned */
    bool                  partitioned;
    starpu_data_handle_t *args;      /* naccesses: every task's handles, packed as dag.accesses */
    uint32_t             *sig;       /* ntasks: index into cls */
    uint32_t             *index;     /* ntasks: 0 .. ntasks-1, the cl_arg of --verify */
    codelet_pair        **cls;       /* ncls, each allocated alone: StarPU keeps their addresses */
    uint32_t              ncls;
    uint64_t              submit_end_ns;
} plan;

static enum starpu_data_access_mode mode_of(dag_mode m)
{
    return m == DAG_READ ? STARPU_R : m == DAG_WRITE ? STARPU_W : STARPU_RW;
}

static void plan_free(plan *p)
{
    for (uint32_t i = 0; i < p->nregistered; i++)
        starpu_data_unregister(p->handle[i]);
    if (p->partitioned) {
        starpu_data_unpartition(p->whole, STARPU_MAIN_RAM);
        starpu_data_unregister(p->whole);
    }
    for (uint32_t c = 0; c < p->ncls; c++) {
        free(p->cls[c]->modes);
        free(p->cls[c]->cl[0].dyn_modes);
        free(p->cls[c]->cl[1].dyn_modes);
        free(p->cls[c]->cl[2].dyn_modes);
        free(p->cls[c]);
    }
    free(p->cls);
    free(p->handle);
    free(p->mem);
    free(p->args);
    free(p->sig);
    free(p->index);
    free(p->kind);
    memset(p, 0, sizeof *p);
}

static void codelet_fill(struct starpu_codelet *cl, const codelet_pair *c, int mode)
{
    starpu_codelet_init(cl);
    cl->where = STARPU_CPU;
    cl->cpu_funcs[0] = mode == RUN_REAL ? cpu_real : mode == RUN_LOG ? cpu_log : cpu_empty;
    cl->nbuffers = (int)c->naccess;
    cl->name = c->name;
    if (c->naccess > STARPU_NMAXBUFS) {
        cl->dyn_modes = malloc(c->naccess * sizeof cl->dyn_modes[0]);
        if (cl->dyn_modes)
            memcpy(cl->dyn_modes, c->modes, c->naccess * sizeof cl->dyn_modes[0]);
    } else {
        for (uint32_t a = 0; a < c->naccess; a++)
            cl->modes[a] = c->modes[a];
    }
}

/* The codelet pair of task t: an existing one with the same signature, or a new
   one. UINT32_MAX when out of memory. */
static uint32_t signature_of(plan *p, const dag_task *task, uint32_t *cap)
{
    const dag_access *acc = &p->d->accesses[task->first];
    for (uint32_t c = 0; c < p->ncls; c++) {
        if (p->cls[c]->naccess != task->naccess)
            continue;
        uint32_t a = 0;
        while (a < task->naccess && p->cls[c]->modes[a] == mode_of(acc[a].mode))
            a++;
        if (a == task->naccess)
            return c;
    }
    if (p->ncls == *cap) {
        uint32_t ncap = *cap ? 2 * *cap : 8;
        codelet_pair **q = realloc(p->cls, ncap * sizeof q[0]);
        if (!q)
            return UINT32_MAX;
        p->cls = q;
        *cap = ncap;
    }
    codelet_pair *c = calloc(1, sizeof *c);
    if (!c)
        return UINT32_MAX;
    p->cls[p->ncls++] = c;   /* from here plan_free frees it */
    c->naccess = task->naccess;
    c->modes = malloc((task->naccess ? task->naccess : 1) * sizeof c->modes[0]);
    if (!c->modes)
        return UINT32_MAX;
    for (uint32_t a = 0; a < task->naccess; a++)
        c->modes[a] = mode_of(acc[a].mode);
    /* A name for traces: the modes, "R64_W" for runs. */
    size_t len = 0;
    for (uint32_t a = 0; a < task->naccess && len < sizeof c->name - 8;) {
        uint32_t run = 1;
        while (a + run < task->naccess && c->modes[a + run] == c->modes[a])
            run++;
        const char *m = c->modes[a] == STARPU_R ? "R" : c->modes[a] == STARPU_W ? "W" : "RW";
        int k = run > 1 ? snprintf(c->name + len, sizeof c->name - len, "%s%s%u", len ? "_" : "", m, run)
                        : snprintf(c->name + len, sizeof c->name - len, "%s%s", len ? "_" : "", m);
        if (k < 0)
            break;
        len += (size_t)k;
        a += run;
    }
    codelet_fill(&c->cl[RUN_EMPTY], c, RUN_EMPTY);
    codelet_fill(&c->cl[RUN_LOG], c, RUN_LOG);
    codelet_fill(&c->cl[RUN_REAL], c, RUN_REAL);
    if (c->naccess > STARPU_NMAXBUFS && (!c->cl[0].dyn_modes || !c->cl[1].dyn_modes))
        return UINT32_MAX;
    return p->ncls - 1;
}

/* --layout views: register the one vector or matrix and partition it; datum
   i's handle is its child (see the top). tiles: Cholesky's T (p->mem holds the
   (8T) x (8T) matrix), or 0 (p->mem holds ndata 64-byte slots). */
static void register_views(plan *p, uint32_t tiles)
{
    const dag *d = p->d;
    if (d->ndata == 0)
        return;
    if (tiles) {
        uint32_t side = tiles * VIEW_TILE;
        starpu_matrix_data_register(&p->whole, STARPU_MAIN_RAM, (uintptr_t)p->mem, side, side, side, 1);
        struct starpu_data_filter rows = {.filter_func = starpu_matrix_filter_vertical_block, .nchildren = tiles};
        struct starpu_data_filter cols = {.filter_func = starpu_matrix_filter_block, .nchildren = tiles};
        starpu_data_map_filters(p->whole, 2, &rows, &cols);
        for (uint32_t i = 0; i < tiles; i++)
            for (uint32_t j = 0; j <= i; j++)
                p->handle[dag_cholesky_tile(i, j)] = starpu_data_get_sub_data(p->whole, 2, i, j);
    } else {
        starpu_vector_data_register(&p->whole, STARPU_MAIN_RAM, (uintptr_t)p->mem, d->ndata, DATUM_BYTES);
        struct starpu_data_filter slots = {.filter_func = starpu_vector_filter_block, .nchildren = d->ndata};
        starpu_data_partition(p->whole, &slots);
        for (uint32_t i = 0; i < d->ndata; i++)
            p->handle[i] = starpu_data_get_sub_data(p->whole, 1, i);
    }
    p->partitioned = true;
}

/* Register the handles, make the codelets and every task's handle array. */
static int plan_build(plan *p, const dag *d, bool real, layout lay)
{
    memset(p, 0, sizeof *p);
    p->d = d;
    p->datum_bytes = real ? TILE_BYTES : DATUM_BYTES;
    size_t ndata = d->ndata ? d->ndata : 1;
    size_t mem_bytes = ndata * p->datum_bytes;
    uint32_t tiles = 0;   /* views: Cholesky's T, 0 for the slot workloads */
    if (lay == LAYOUT_VIEWS && strncmp(d->name, "cholesky", 8) == 0) {
        while ((uint64_t)tiles * (tiles + 1) / 2 < d->ndata)
            tiles++;
        mem_bytes = (size_t)tiles * VIEW_TILE * tiles * VIEW_TILE;
        mem_bytes = mem_bytes ? (mem_bytes + 63) / 64 * 64 : 64;
    }
    p->mem = aligned_alloc(64, mem_bytes);
    p->kind = malloc((size_t)(d->ntasks ? d->ntasks : 1) * sizeof p->kind[0]);
    p->handle = malloc(ndata * sizeof p->handle[0]);
    p->args = malloc((size_t)(d->naccesses ? d->naccesses : 1) * sizeof p->args[0]);
    p->sig = malloc((size_t)(d->ntasks ? d->ntasks : 1) * sizeof p->sig[0]);
    p->index = malloc((size_t)(d->ntasks ? d->ntasks : 1) * sizeof p->index[0]);
    if (!p->mem || !p->kind || !p->handle || !p->args || !p->sig || !p->index) {
        fprintf(stderr, PROG ": out of host memory for DAG %s\n", d->name);
        plan_free(p);
        return 1;
    }
    memset(p->mem, 0, mem_bytes);
    if (lay == LAYOUT_VIEWS) {
        register_views(p, tiles);
    } else {
        for (uint32_t i = 0; i < d->ndata; i++) {
            starpu_variable_data_register(&p->handle[i], STARPU_MAIN_RAM,
                                          (uintptr_t)(p->mem + (size_t)i * p->datum_bytes), p->datum_bytes);
            p->nregistered++;
        }
    }
    for (uint32_t a = 0; a < d->naccesses; a++)
        p->args[a] = p->handle[d->accesses[a].datum];
    uint32_t cap = 0;
    for (uint32_t t = 0; t < d->ntasks; t++) {
        p->index[t] = t;
        p->kind[t] = (uint32_t)d->tasks[t].kind;
        p->sig[t] = signature_of(p, &d->tasks[t], &cap);
        if (p->sig[t] == UINT32_MAX) {
            fprintf(stderr, PROG ": out of host memory for the codelets of %s\n", d->name);
            plan_free(p);
            return 1;
        }
    }
    return 0;
}

/* Submit every task of the DAG, in order (not waiting). */
static int submit_all(plan *p, api how, int mode)
{
    const dag *d = p->d;
    for (uint32_t t = 0; t < d->ntasks; t++) {
        const dag_task *task = &d->tasks[t];
        struct starpu_codelet *cl = &p->cls[p->sig[t]]->cl[mode];
        /* the cl_arg: the task's index (--verify) or kind (--real) */
        uint32_t *arg = mode == RUN_LOG ? &p->index[t] : mode == RUN_REAL ? &p->kind[t] : NULL;
        starpu_data_handle_t *h = p->args + task->first;
        int rc;
        if (how == API_INSERT) {
            if (!arg)
                rc = starpu_task_insert(cl, STARPU_DATA_ARRAY, h, (int)task->naccess, 0);
            else
                rc = starpu_task_insert(cl, STARPU_DATA_ARRAY, h, (int)task->naccess, STARPU_CL_ARGS_NFREE,
                                        arg, sizeof *arg, 0);
        } else {
            struct starpu_task *st = starpu_task_create();
            if (!st) {
                fprintf(stderr, PROG ": starpu_task_create failed\n");
                return 1;
            }
            st->cl = cl;
            if (task->naccess > STARPU_NMAXBUFS) {
                /* freed by StarPU with the task */
                st->dyn_handles = malloc(task->naccess * sizeof st->dyn_handles[0]);
                if (!st->dyn_handles) {
                    fprintf(stderr, PROG ": out of host memory\n");
                    starpu_task_destroy(st);
                    return 1;
                }
                memcpy(st->dyn_handles, h, task->naccess * sizeof h[0]);
            } else {
                for (uint32_t a = 0; a < task->naccess; a++)
                    st->handles[a] = h[a];
            }
            if (arg) {
                st->cl_arg = arg;
                st->cl_arg_size = sizeof *arg;
            }
            rc = starpu_task_submit(st);
        }
        if (rc) {
            fprintf(stderr, PROG ": %s of task %u of %s failed: %d (%s)\n",
                    how == API_INSERT ? "starpu_task_insert" : "starpu_task_submit", t, d->name, rc,
                    strerror(rc < 0 ? -rc : rc));
            starpu_task_wait_for_all();
            return 1;
        }
    }
    p->submit_end_ns = bench_now_ns();
    return 0;
}

static int run_once(plan *p, api how, int mode)
{
    int rc = submit_all(p, how, mode);
    int w = starpu_task_wait_for_all();
    if (w) {
        fprintf(stderr, PROG ": starpu_task_wait_for_all failed: %d\n", w);
        return 1;
    }
    return rc;
}

/* ---- one workload ---- */

typedef struct result {
    char     name[48];
    uint32_t ntasks, reps, ncodelets;
    int64_t  edges, path;
    double   median_ns, min_ns, submit_ns;   /* per task */
    bool     factored;                       /* --real: the factor was checked */
} result;

static int run_workload(const dag *d, const options *opt, result *res)
{
    memset(res, 0, sizeof *res);
    snprintf(res->name, sizeof res->name, "%.40s%s", d->name, opt->layout == LAYOUT_VIEWS ? "/views" : "");
    res->ntasks = d->ntasks;
    res->edges = dag_count_edges(d);
    res->path = dag_critical_path(d);

    plan p;
    if (plan_build(&p, d, opt->c.real, opt->layout))
        return 1;
    /* --real: the input tiles, copied into the registered memory before every
       run (untimed; every task has finished and all data lives in main RAM) */
    float *input = NULL;
    uint32_t tiles = 0;
    const int mode = opt->c.real ? RUN_REAL : RUN_EMPTY;
    res->ncodelets = p.ncls;
    int ret = 1;
    uint32_t reps, warmup;   /* warm-up: at least one run and warmup_tasks tasks (as l2_overhead) */
    bench_dag_cli_runs(&opt->c, d->ntasks, &reps, &warmup);
    res->reps = reps;
    uint64_t *samples = malloc((size_t)(reps ? reps : 1) * sizeof samples[0]);
    uint64_t *submits = malloc((size_t)(reps ? reps : 1) * sizeof submits[0]);
    if (opt->c.real) {
        while ((uint64_t)(tiles + 1) * (tiles + 2) / 2 <= d->ndata)
            tiles++;
        input = tiles_input(tiles);
    }
    if (!samples || !submits || (opt->c.real && !input)) {
        fprintf(stderr, PROG ": out of host memory\n");
        goto out;
    }

    for (uint32_t r = 0; r < warmup; r++) {
        if (input)
            memcpy(p.mem, input, (size_t)d->ndata * TILE_BYTES);
        if (run_once(&p, opt->api, mode))
            goto out;
    }
    for (uint32_t r = 0; r < reps; r++) {
        if (input)
            memcpy(p.mem, input, (size_t)d->ndata * TILE_BYTES);
        uint64_t t0 = bench_now_ns();
        if (run_once(&p, opt->api, mode))
            goto out;
        uint64_t t1 = bench_now_ns();
        samples[r] = t1 - t0;
        submits[r] = p.submit_end_ns - t0;
        if (opt->c.samples)
            bench_print_sample(d->name, r, samples[r], submits[r], d->ntasks);
    }
    bench_per_task(samples, submits, reps, d->ntasks, &res->median_ns, &res->min_ns, &res->submit_ns);

    if (input && reps) {
        char why[200];
        if (!tiles_check(tiles, (const float *)p.mem, why, sizeof why)) {
            fprintf(stderr, PROG ": %s: wrong factor: %s\n", d->name, why);
            goto out;
        }
        res->factored = true;
    }

    if (opt->c.verify) {
        g_log = malloc((size_t)(d->ntasks ? d->ntasks : 1) * sizeof g_log[0]);
        if (!g_log) {
            fprintf(stderr, PROG ": out of host memory\n");
            goto out;
        }
        atomic_store(&g_logpos, 0);
        int rc = run_once(&p, opt->api, RUN_LOG);
        char why[200] = "";
        uint32_t logged = atomic_load(&g_logpos);
        bool ok = rc == 0 && dag_check_order(d, g_log, logged, why, sizeof why);
        free(g_log);
        g_log = NULL;
        if (rc)
            goto out;
        if (!ok) {
            fprintf(stderr, PROG ": %s: the order tasks ran in breaks a dependency: %s\n", d->name, why);
            goto out;
        }
    }
    ret = 0;
out:
    free(input);
    free(samples);
    free(submits);
    plan_free(&p);
    return ret;
}

static void print_result(const result *r, bool verified)
{
    if (r->reps == 0) {
        printf("%-16s %8u tasks  (no timed runs)\n", r->name, r->ntasks);
        return;
    }
    printf("%-16s %8u %8" PRId64 " %6" PRId64 " %6u %10.1f %10.1f %10.1f   %9u%s%s\n", r->name, r->ntasks,
           r->edges, r->path, r->reps, r->median_ns, r->min_ns, r->submit_ns, r->ncodelets,
           verified ? "  order ok" : "", r->factored ? "  factor ok" : "");
    fflush(stdout);
}

/* ---- command line ---- */

static void usage(FILE *f)
{
    bench_dag_cli_usage(f, PROG,
                        "  --threads N      CPU workers: STARPU_NCPU (default 2)\n"
                        "  --sched NAME     scheduler: STARPU_SCHED (default lws; eager, ...)\n"
                        "  --api insert|submit   starpu_task_insert (default), or starpu_task_create +\n"
                        "                   starpu_task_submit\n"
                        "  --layout buffers|views   a registered handle per datum (default), or every\n"
                        "                   datum a child of one partitioned vector (Cholesky: an\n"
                        "                   8 x 8 block of one matrix); rows <dag>/views\n");
}

static int parse_args(int argc, char **argv, options *o)
{
    *o = (options){.threads = 2, .sched = "lws", .api = API_INSERT, .layout = LAYOUT_BUFFERS};
    bench_dag_cli_init(&o->c, argc, argv);
    for (int i = 1; i < argc; i++) {
        int taken = bench_dag_cli_option(&o->c, PROG, argc, argv, &i);
        if (taken < 0)
            return 1;
        if (taken)
            continue;
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            usage(stdout);
            exit(0);
        }
        if (strcmp(a, "--threads") != 0 && strcmp(a, "--sched") != 0 && strcmp(a, "--api") != 0 &&
            strcmp(a, "--layout") != 0) {
            fprintf(stderr, PROG ": unknown option %s\n", a);
            usage(stderr);
            return 1;
        }
        const char *v = bench_option_value(PROG, argc, argv, &i);
        if (!v)
            return 1;
        bool ok = true;
        if (strcmp(a, "--threads") == 0) {
            ok = bench_parse_u32(v, &o->threads) && o->threads >= 1 && o->threads <= 1024;
        } else if (strcmp(a, "--sched") == 0) {
            ok = v[0] != '\0' && strlen(v) < 64;
            if (ok)
                o->sched = v;
        } else if (strcmp(a, "--layout") == 0) {
            if (strcmp(v, "buffers") == 0)
                o->layout = LAYOUT_BUFFERS;
            else if (strcmp(v, "views") == 0)
                o->layout = LAYOUT_VIEWS;
            else
                ok = false;
        } else if (strcmp(v, "insert") == 0) {
            o->api = API_INSERT;
        } else if (strcmp(v, "submit") == 0) {
            o->api = API_SUBMIT;
        } else {
            ok = false;
        }
        if (!ok) {
            fprintf(stderr, PROG ": bad value '%s' for %s\n", v, a);
            return 1;
        }
    }
    if (o->c.real && o->layout == LAYOUT_VIEWS) {
        fprintf(stderr, PROG ": --real registers its float tiles apart (drop --layout views)\n");
        return 1;
    }
    return 0;
}

/* One workload of dag_suite_run: run it and print its row. */
static int run_and_print(void *ctx, const dag *d)
{
    const options *opt = ctx;
    result r;
    if (run_workload(d, opt, &r))
        return 1;
    print_result(&r, opt->c.verify);
    return 0;
}

int main(int argc, char **argv)
{
    options opt;
    if (parse_args(argc, argv, &opt))
        return 2;
    /* before starpu_init makes its workers */
    if (bench_apply_syscall_cost(PROG, opt.c.syscall_cost_ns))
        return 2;

    char ncpu[16];
    snprintf(ncpu, sizeof ncpu, "%u", opt.threads);
    if (setenv("STARPU_NCPU", ncpu, 1) || setenv("STARPU_NCUDA", "0", 1) || setenv("STARPU_NOPENCL", "0", 1) ||
        setenv("STARPU_CALIBRATE", "0", 1) || setenv("STARPU_SCHED", opt.sched, 1)) {
        fprintf(stderr, PROG ": setenv failed: %s\n", strerror(errno));
        return 1;
    }
    int rc = starpu_init(NULL);
    if (rc) {
        fprintf(stderr, PROG ": starpu_init failed: %d (%s)\n", rc, strerror(rc < 0 ? -rc : rc));
        return 1;
    }
    print_machine();
    struct starpu_sched_policy *pol = starpu_sched_ctx_get_sched_policy(0);
    unsigned ncpus = starpu_cpu_worker_get_count();
    char warm[64];
    if (opt.c.warmup || opt.c.warmup_tasks == 0)
        snprintf(warm, sizeof warm, "%u run(s)", opt.c.warmup ? opt.c.warmup : 1);
    else
        snprintf(warm, sizeof warm, ">= %" PRIu64 " tasks", opt.c.warmup_tasks);
    printf("# workers: %u CPU (STARPU_NCPU=%u), %u in all; sched %s; %s; data: %s; warm-up %s, reps %u (>= %" PRIu64
           " tasks timed)%s\n",
           ncpus, opt.threads, starpu_worker_get_count(), pol && pol->policy_name ? pol->policy_name : "?",
           opt.api == API_INSERT ? "starpu_task_insert" : "starpu_task_create + starpu_task_submit",
           opt.layout == LAYOUT_VIEWS ? "children of one partitioned vector/matrix" : "a handle per datum", warm,
           opt.c.reps,
           opt.c.min_tasks, opt.c.quick ? ", --quick" : "");
    if (ncpus != opt.threads)
        printf("# note: asked for %u CPU workers, StarPU started %u\n", opt.threads, ncpus);
    printf("%-16s %8s %8s %6s %6s %10s %10s %10s   %9s\n", "workload", "tasks", "edges", "path", "reps", "median",
           "min", "submit", "codelets");
    printf("%-16s %8s %8s %6s %6s %10s %10s %10s   %9s\n", "", "", "", "", "", "ns/task", "ns/task", "ns/task", "");
    fflush(stdout);

    int status = dag_suite_run(&opt.c, PROG, run_and_print, &opt);
    starpu_shutdown();
    return status;
}
