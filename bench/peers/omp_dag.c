/* omp_dag: nanoseconds per task of OpenMP tasks with depend clauses, on the
 * DAGs of bench/dag.h, for comparison with bench/l2_overhead (Strata).
 *
 * Built by bench/peers/build.sh, not by the project's CMake (a CI machine may
 * lack libomp): once with gcc (libgomp), once with clang (LLVM libomp).
 *
 * Mapping: datum d is g_data[d], a 64-byte, 64-byte-aligned element (Strata's
 * benchmark gives every datum a 64-byte buffer); READ -> depend(in: g_data[d]),
 * WRITE -> depend(out: ...), READWRITE -> depend(inout: ...). Every DAG task is
 * one `#pragma omp task` with an empty body, created in program order by the
 * one thread of `#pragma omp single` inside one `#pragma omp parallel` of
 * --threads threads (default 2: the creating thread, which also runs tasks
 * while it waits, plus one more). All tasks are siblings, so OpenMP derives the
 * DAG's dependences from the depend clauses.
 *
 * A task has a variable number of accesses. --deps fixed (the default) picks,
 * per task, a pragma with a fixed depend list by the task's counts of in, out
 * and inout accesses (0..3 in, 0..1 out, 0..1 inout: every task of independent,
 * chain, Cholesky and the fan-out/fan-in producer and consumers; plus 64 in +
 * 1 out: the reducer of the default fan-in width), which is what a programmer
 * writes for these codes; --deps iterator gives every task the OpenMP 5.0 form
 * depend(iterator(i=0:nin), in: g_data[ids[i]]) depend(iterator(...), out: ...)
 * depend(iterator(...), inout: ...). A task whose counts have no fixed pragma
 * (a reducer with --width other than 64) uses the iterator form in both modes;
 * the header says how many. Groups (dag.h) are ignored: the reducer names its
 * 64 data one by one. (Depending on the whole group as one address is not an
 * option here: OpenMP matches dependences by the list item's address, so the
 * consumers, which each write one datum of the group, would not order against
 * a reducer that names the group, and array sections that overlap without
 * being identical are unspecified.)
 *
 * --layout views (rows named "<dag>/views", as l2_overhead names them): every
 * datum is a section of ONE array instead, as a program whose data live in
 * one allocation names them. Independent, chain and fan-out/fan-in: datum d is
 * the 64-byte section g_bytes[d*64 : 64] (depend(inout: g_bytes[d*64:64])),
 * the reducer naming its 64 sections one by one. Cholesky: tile (i, j) is the
 * 8 x 8 block of one (8T) x (8T) byte matrix, named with a 2-D array section,
 * depend(inout: A[i*8 : 8][j*8 : 8]) on `unsigned char (*A)[8T]`: the form of
 * the OpenMP Examples' blocked matrix multiply (task_dep.5, depend(in:
 * A[i:BS][k:BS])), which is how users name the tiles of one matrix. The other
 * form users write, the tile's first element (depend(inout: A[i*8][j*8])),
 * gives both runtimes the same dependence: libgomp and LLVM libomp key a
 * dependence by the list item's start address alone (libgomp's hash of
 * depend addresses, libomp's kmp_depend_info.base_addr; the length is not
 * compared), which is what the OpenMP standard asks for identical list items
 * and leaves unspecified for sections that overlap with different starts.
 * bench/peers/omp_sections.c shows it: out a[64:64] then in a[0:4096] are NOT
 * ordered (different starts), out a[0:64] then in a[0:4096] are (same start);
 * 2-D blocks likewise. So the fan-in reducer cannot name the group as one
 * section (it would be ordered after the one consumer whose slot starts where
 * the group does), and no tile or slot here overlaps another: every datum has
 * one start address, the same in every task that names it. With views the
 * runtimes therefore see one address per datum, as with buffers; what changes
 * is only the addresses (slots of one array; tiles of one matrix, rows of 8T
 * bytes apart) and the code that computes them. --real keeps separate tiles
 * (--layout buffers only).
 *
 * Timing, as l2_overhead: per workload, untimed warm-up runs (at least one and
 * at least 100000 tasks), then `reps` timed runs (more for small DAGs, so that
 * at least --min-tasks tasks are timed). A run is: create every task of the
 * DAG, then `#pragma omp taskwait`; its wall time (CLOCK_MONOTONIC) from before
 * the first task is created until the taskwait returns, divided by the tasks,
 * is its ns/task; `submit` is the time until the creation loop ended (the
 * creating thread may run tasks itself inside the loop: both runtimes throttle
 * creation when many tasks are queued). The dependence lists are built before
 * timing. Prints the median and minimum ns/task and the median submit time.
 * --verify adds one run whose tasks log the order they start in and checks it
 * against the DAG's dependencies (dag_check_order); --quick runs tiny sizes
 * with --verify. */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <link.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <omp.h>

#include "../common.h"
#include "../dag.h"
#include "../tiles.h"

#if defined(__clang__)
#define OMP_DAG_STR2(x) #x
#define OMP_DAG_STR(x) OMP_DAG_STR2(x)
#define OMP_DAG_COMPILER \
    "clang " OMP_DAG_STR(__clang_major__) "." OMP_DAG_STR(__clang_minor__) "." OMP_DAG_STR(__clang_patchlevel__)
#define OMP_DAG_RUNTIME "libomp"
#elif defined(__GNUC__)
#define OMP_DAG_COMPILER "gcc " __VERSION__
#define OMP_DAG_RUNTIME "libgomp"
#else
#define OMP_DAG_COMPILER "unknown compiler"
#define OMP_DAG_RUNTIME "unknown OpenMP runtime"
#endif

/* ---- options ---- */

typedef enum dep_mode { DEPS_FIXED, DEPS_ITERATOR } dep_mode;
typedef enum layout { LAYOUT_BUFFERS, LAYOUT_VIEWS } layout;

typedef struct options {
    bench_dag_cli c;             /* what every DAG program takes (common.h) */
    uint32_t      threads;
    dep_mode      deps;
    layout        layout;
} options;

/* ---- the DAG as depend lists ---- */

/* Shapes with a fixed pragma in omp_dag_submit.inc: nin 0..3, nout 0..1,
   ninout 0..1; then 64 in + 1 out; everything else uses iterators. */
#define SHAPE(i, o, io) ((i) * 4 + (o) * 2 + (io))
#define SHAPE_IN64_OUT1 16
#define SHAPE_ITER 17

typedef struct deps {
    uint32_t first;               /* ids[first ..]: in, then out, then inout */
    uint32_t nin, nout, ninout;
    uint32_t shape;
} deps;

typedef struct plan {
    uint32_t  ntasks;
    deps     *tasks;
    uint32_t *ids;                /* naccesses datum indices */
    uint32_t  iter_tasks;         /* tasks that use the iterator form */
} plan;

typedef struct datum {
    _Alignas(64) unsigned char bytes[64];
} datum;

static datum *g_data;             /* the addresses the depend clauses name */

/* --layout views: the one array every datum is a section of: 64-byte slots,
   or, for Cholesky, the g_side x g_side byte matrix whose VIEW_TILE x
   VIEW_TILE tile (i, j), datum dag_cholesky_tile(i, j), starts at row
   g_tile_row0[datum] = 8i and column g_tile_col0[datum] = 8j. */
#define DATUM_BYTES 64u
#define VIEW_TILE 8u
static unsigned char *g_bytes;
static uint32_t       g_side;
static uint32_t      *g_tile_row0, *g_tile_col0;

/* --real: the tiles the kernels work on (datum d is tile d; the depend clauses
   still name g_data[d], one address per datum as before) and the DAG, for
   each task's kind. */
static float     *g_tiles;
static const dag *g_dag;

static void plan_free(plan *p)
{
    free(p->tasks);
    free(p->ids);
    memset(p, 0, sizeof *p);
}

static int plan_build(plan *p, const dag *d, dep_mode mode)
{
    memset(p, 0, sizeof *p);
    p->ntasks = d->ntasks;
    p->tasks = malloc((size_t)(d->ntasks ? d->ntasks : 1) * sizeof p->tasks[0]);
    p->ids = malloc((size_t)(d->naccesses ? d->naccesses : 1) * sizeof p->ids[0]);
    if (!p->tasks || !p->ids) {
        fprintf(stderr, "omp_dag: out of memory for DAG %s\n", d->name);
        plan_free(p);
        return 1;
    }
    uint32_t n = 0;
    for (uint32_t t = 0; t < d->ntasks; t++) {
        const dag_task *task = &d->tasks[t];
        const dag_access *acc = &d->accesses[task->first];
        deps *tk = &p->tasks[t];
        tk->first = n;
        tk->nin = tk->nout = tk->ninout = 0;
        static const dag_mode order[3] = {DAG_READ, DAG_WRITE, DAG_READWRITE};
        for (int m = 0; m < 3; m++)
            for (uint32_t a = 0; a < task->naccess; a++)
                if (acc[a].mode == order[m]) {
                    p->ids[n++] = acc[a].datum;
                    if (m == 0)
                        tk->nin++;
                    else if (m == 1)
                        tk->nout++;
                    else
                        tk->ninout++;
                }
        if (n - tk->first != task->naccess) {
            fprintf(stderr, "omp_dag: task %u of %s has an access of unknown mode\n", t, d->name);
            plan_free(p);
            return 1;
        }
        if (mode == DEPS_ITERATOR)
            tk->shape = SHAPE_ITER;
        else if (tk->nin <= 3 && tk->nout <= 1 && tk->ninout <= 1)
            tk->shape = SHAPE(tk->nin, tk->nout, tk->ninout);
        else if (tk->nin == 64 && tk->nout == 1 && tk->ninout == 0)
            tk->shape = SHAPE_IN64_OUT1;
        else
            tk->shape = SHAPE_ITER;
        p->iter_tasks += tk->shape == SHAPE_ITER;
    }
    return 0;
}

/* ---- task creation (omp_dag_submit.inc) ---- */

/* --verify: each task logs its DAG index when it starts. */
static uint32_t        *g_log;
static _Atomic uint32_t g_logpos;

/* --layout buffers: the elements of g_data[] */
#define DEPEND_ITEM(k) g_data[ids[k]]

#define SUBMIT_NAME submit_empty
#define TASK_BODY {}
#include "omp_dag_submit.inc"
#undef SUBMIT_NAME
#undef TASK_BODY

/* --real: run task t's kernel on its tiles (Cholesky has reads, then one
   read-write: the order of ids[] is the order of the DAG's accesses). */
static void real_task(const plan *p, uint32_t t)
{
    const deps *tk = &p->tasks[t];
    float *tiles[3];
    for (uint32_t a = 0; a < tk->nin + tk->nout + tk->ninout && a < 3; a++)
        tiles[a] = g_tiles + (size_t)p->ids[tk->first + a] * TILE_FLOATS;
    tile_kernel(g_dag->tasks[t].kind, tiles);
}

#define SUBMIT_NAME submit_real
#define TASK_BODY { real_task(p, t); }
#include "omp_dag_submit.inc"
#undef SUBMIT_NAME
#undef TASK_BODY

#define LOG_BODY { g_log[atomic_fetch_add_explicit(&g_logpos, 1, memory_order_relaxed)] = t; }

#define SUBMIT_NAME submit_logging
#define TASK_BODY LOG_BODY
#include "omp_dag_submit.inc"
#undef SUBMIT_NAME
#undef TASK_BODY
#undef DEPEND_ITEM

/* --layout views: 64-byte sections of g_bytes */
#define DEPEND_ITEM(k) g_bytes[(size_t)ids[k] * DATUM_BYTES : DATUM_BYTES]

#define SUBMIT_NAME submit_empty_slots
#define TASK_BODY {}
#include "omp_dag_submit.inc"
#undef SUBMIT_NAME
#undef TASK_BODY

#define SUBMIT_NAME submit_logging_slots
#define TASK_BODY LOG_BODY
#include "omp_dag_submit.inc"
#undef SUBMIT_NAME
#undef TASK_BODY
#undef DEPEND_ITEM

/* --layout views, Cholesky: 2-D sections of the matrix g_bytes. gcc 12 does
   not count a use in a depend clause as a use of `matrix` (-Wunused-variable),
   hence the (void). */
#define SUBMIT_PROLOGUE                                                         \
    unsigned char (*matrix)[g_side] = (unsigned char (*)[g_side])g_bytes;       \
    (void)matrix;
#define DEPEND_ITEM(k) matrix[g_tile_row0[ids[k]] : VIEW_TILE][g_tile_col0[ids[k]] : VIEW_TILE]

#define SUBMIT_NAME submit_empty_tiles
#define TASK_BODY {}
#include "omp_dag_submit.inc"
#undef SUBMIT_NAME
#undef TASK_BODY

#define SUBMIT_NAME submit_logging_tiles
#define TASK_BODY LOG_BODY
#include "omp_dag_submit.inc"
#undef SUBMIT_NAME
#undef TASK_BODY
#undef DEPEND_ITEM
#undef SUBMIT_PROLOGUE
#undef LOG_BODY

typedef void (*submit_fn)(const plan *p);

/* --layout views: the one array, and for Cholesky the tiles' corners. */
static int views_alloc(const dag *d)
{
    size_t bytes = (size_t)(d->ndata ? d->ndata : 1) * DATUM_BYTES;
    if (strncmp(d->name, "cholesky", 8) == 0) {
        uint32_t tiles = 0;
        while ((uint64_t)tiles * (tiles + 1) / 2 < d->ndata)
            tiles++;
        g_side = tiles * VIEW_TILE;
        bytes = (size_t)g_side * g_side;
        g_tile_row0 = malloc((size_t)(d->ndata ? d->ndata : 1) * sizeof g_tile_row0[0]);
        g_tile_col0 = malloc((size_t)(d->ndata ? d->ndata : 1) * sizeof g_tile_col0[0]);
        if (!g_tile_row0 || !g_tile_col0)
            return 1;
        for (uint32_t i = 0; i < tiles; i++)
            for (uint32_t j = 0; j <= i; j++) {
                g_tile_row0[dag_cholesky_tile(i, j)] = i * VIEW_TILE;
                g_tile_col0[dag_cholesky_tile(i, j)] = j * VIEW_TILE;
            }
    }
    bytes = (bytes + 63) / 64 * 64;   /* aligned_alloc wants a multiple of the alignment */
    g_bytes = aligned_alloc(64, bytes ? bytes : 64);
    if (!g_bytes)
        return 1;
    memset(g_bytes, 0, bytes);
    return 0;
}

static void views_free(void)
{
    free(g_bytes);
    free(g_tile_row0);
    free(g_tile_col0);
    g_bytes = NULL;
    g_tile_row0 = g_tile_col0 = NULL;
    g_side = 0;
}

/* ---- one workload ---- */

typedef struct result {
    char     name[48];
    uint32_t ntasks, reps, iter_tasks;
    int64_t  edges, path;
    double   median_ns, min_ns, submit_ns;   /* per task */
    bool     verified, factored;
} result;

static int run_workload(const dag *d, const options *opt, result *res)
{
    memset(res, 0, sizeof *res);
    snprintf(res->name, sizeof res->name, "%.40s%s", d->name, opt->layout == LAYOUT_VIEWS ? "/views" : "");
    res->ntasks = d->ntasks;
    res->edges = dag_count_edges(d);
    res->path = dag_critical_path(d);

    plan p;
    if (plan_build(&p, d, opt->deps))
        return 1;
    res->iter_tasks = p.iter_tasks;
    int ret = 1;
    uint64_t *samples = NULL, *submits = NULL;
    float *input = NULL;   /* --real: the input tiles */
    uint32_t tiles = 0;
    submit_fn submit_timed = submit_empty, submit_verify = submit_logging;
    if (opt->layout == LAYOUT_VIEWS) {
        if (views_alloc(d)) {
            fprintf(stderr, "omp_dag: out of memory\n");
            goto out;
        }
        bool tiles_of_matrix = g_side != 0;
        submit_timed = tiles_of_matrix ? submit_empty_tiles : submit_empty_slots;
        submit_verify = tiles_of_matrix ? submit_logging_tiles : submit_logging_slots;
    } else {
        g_data = aligned_alloc(64, (size_t)(d->ndata ? d->ndata : 1) * sizeof g_data[0]);
        if (!g_data) {
            fprintf(stderr, "omp_dag: out of memory\n");
            goto out;
        }
        memset(g_data, 0, (size_t)(d->ndata ? d->ndata : 1) * sizeof g_data[0]);
    }
    if (opt->c.real) {
        while ((uint64_t)(tiles + 1) * (tiles + 2) / 2 <= d->ndata)
            tiles++;
        input = tiles_input(tiles);
        g_tiles = malloc((size_t)d->ndata * TILE_BYTES);
        g_dag = d;
        if (!input || !g_tiles) {
            fprintf(stderr, "omp_dag: out of memory for the tiles\n");
            goto out;
        }
        submit_timed = submit_real;
    }

    uint32_t reps, warmup;
    bench_dag_cli_runs(&opt->c, d->ntasks, &reps, &warmup);
    res->reps = reps;
    samples = malloc((size_t)(reps ? reps : 1) * sizeof samples[0]);
    submits = malloc((size_t)(reps ? reps : 1) * sizeof submits[0]);
    if (opt->c.verify)
        g_log = malloc((size_t)(d->ntasks ? d->ntasks : 1) * sizeof g_log[0]);
    if (!samples || !submits || (opt->c.verify && !g_log)) {
        fprintf(stderr, "omp_dag: out of memory\n");
        goto out;
    }
    atomic_store(&g_logpos, 0);

    int team = 0;
#pragma omp parallel
#pragma omp single
    {
        team = omp_get_num_threads();
        for (uint32_t r = 0; r < warmup; r++) {
            if (input)
                memcpy(g_tiles, input, (size_t)d->ndata * TILE_BYTES);
            submit_timed(&p);
#pragma omp taskwait
        }
        for (uint32_t r = 0; r < reps; r++) {
            if (input)
                memcpy(g_tiles, input, (size_t)d->ndata * TILE_BYTES);   /* untimed */
            uint64_t t0 = bench_now_ns();
            submit_timed(&p);
            uint64_t t1 = bench_now_ns();
#pragma omp taskwait
            uint64_t t2 = bench_now_ns();
            samples[r] = t2 - t0;
            submits[r] = t1 - t0;
        }
        if (opt->c.verify) {
            submit_verify(&p);
#pragma omp taskwait
        }
    }
    if ((uint32_t)team != opt->threads) {
        fprintf(stderr, "omp_dag: %s: the parallel region had %d threads, %u requested\n", d->name, team,
                opt->threads);
        goto out;
    }
    if (opt->c.samples)
        for (uint32_t r = 0; r < reps; r++)
            bench_print_sample(d->name, r, samples[r], submits[r], d->ntasks);
    bench_per_task(samples, submits, reps, d->ntasks, &res->median_ns, &res->min_ns, &res->submit_ns);
    if (input && reps) {
        char why[200];
        if (!tiles_check(tiles, g_tiles, why, sizeof why)) {
            fprintf(stderr, "omp_dag: %s: wrong factor: %s\n", d->name, why);
            goto out;
        }
        res->factored = true;
    }
    if (opt->c.verify) {
        char why[200];
        uint32_t logged = atomic_load(&g_logpos);
        if (!dag_check_order(d, g_log, logged, why, sizeof why)) {
            fprintf(stderr, "omp_dag: %s: the order tasks ran in breaks a dependency: %s\n", d->name, why);
            goto out;
        }
        res->verified = true;
    }
    ret = 0;
out:
    free(samples);
    free(submits);
    free(g_log);
    g_log = NULL;
    free(g_data);
    g_data = NULL;
    views_free();
    free(input);
    free(g_tiles);
    g_tiles = NULL;
    g_dag = NULL;
    plan_free(&p);
    return ret;
}

static void print_result(const result *r)
{
    if (r->reps == 0) {
        printf("%-16s %8u tasks  (no timed runs)\n", r->name, r->ntasks);
        return;
    }
    char note[64] = "";
    if (r->iter_tasks && r->iter_tasks != r->ntasks)
        snprintf(note, sizeof note, "  (%u tasks with iterator deps)", r->iter_tasks);
    printf("%-16s %8u %8" PRId64 " %6" PRId64 " %6u %10.1f %10.1f %10.1f%s%s\n", r->name, r->ntasks, r->edges,
           r->path, r->reps, r->median_ns, r->min_ns, r->submit_ns, r->verified ? "  order ok" : "",
           r->factored ? "  factor ok" : note);
    fflush(stdout);
}

/* ---- command line ---- */

static void usage(FILE *f)
{
    bench_dag_cli_usage(f, "omp_dag",
                        "  --threads N      OpenMP threads (omp_set_num_threads; default 2)\n"
                        "  --deps MODE      fixed (default): a pragma with a fixed depend list per task shape;\n"
                        "                   iterator: OpenMP 5.0 iterator dependences for every task\n"
                        "  --layout buffers|views   a 64-byte element of an array per datum (default), or\n"
                        "                   every datum an array section of one array (Cholesky: 2-D\n"
                        "                   sections, 8 x 8 tiles of one matrix); rows <dag>/views\n");
}

static int parse_args(int argc, char **argv, options *o)
{
    *o = (options){.threads = 2, .deps = DEPS_FIXED, .layout = LAYOUT_BUFFERS};
    bench_dag_cli_init(&o->c, argc, argv);
    for (int i = 1; i < argc; i++) {
        int taken = bench_dag_cli_option(&o->c, "omp_dag", argc, argv, &i);
        if (taken < 0)
            return 1;
        if (taken)
            continue;
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            usage(stdout);
            exit(0);
        }
        static const char *const own[] = {"--threads", "--deps", "--layout"};
        bool known = false;
        for (size_t k = 0; k < sizeof own / sizeof own[0]; k++)
            known |= strcmp(a, own[k]) == 0;
        if (!known) {
            fprintf(stderr, "%s: unknown option %s\n", "omp_dag", a);
            usage(stderr);
            return 1;
        }
        const char *v = bench_option_value("omp_dag", argc, argv, &i);
        if (!v)
            return 1;
        bool ok = true;
        if (strcmp(a, "--threads") == 0) {
            ok = bench_parse_u32(v, &o->threads) && o->threads >= 1 && o->threads <= 256;
        } else if (strcmp(a, "--layout") == 0) {
            if (strcmp(v, "buffers") == 0)
                o->layout = LAYOUT_BUFFERS;
            else if (strcmp(v, "views") == 0)
                o->layout = LAYOUT_VIEWS;
            else
                ok = false;
        } else if (strcmp(v, "fixed") == 0) {
            o->deps = DEPS_FIXED;
        } else if (strcmp(v, "iterator") == 0) {
            o->deps = DEPS_ITERATOR;
        } else {
            ok = false;
        }
        if (!ok) {
            fprintf(stderr, "%s: bad value '%s' for %s\n", "omp_dag", v, a);
            return 1;
        }
    }
    if (o->c.real && o->layout == LAYOUT_VIEWS) {
        fprintf(stderr, "omp_dag: --real runs its float tiles apart (drop --layout views)\n");
        return 1;
    }
    return 0;
}

/* ---- machine ---- */

static int find_omp_lib(struct dl_phdr_info *info, size_t size, void *arg)
{
    (void)size;
    const char *name = info->dlpi_name;
    const char *base = name ? strrchr(name, '/') : NULL;
    base = base ? base + 1 : name;
    if (base && (strncmp(base, "libgomp", 7) == 0 || strncmp(base, "libomp", 6) == 0 ||
                 strncmp(base, "libiomp", 7) == 0)) {
        snprintf(arg, 512, "%s", name);
        return 1;
    }
    return 0;
}

static void print_machine(const options *o)
{
    char lib[512] = "?", runtime[768];
    dl_iterate_phdr(find_omp_lib, lib);
    snprintf(runtime, sizeof runtime, "omp_dag: %s (%s, _OPENMP %d, %s)", OMP_DAG_RUNTIME, OMP_DAG_COMPILER,
             _OPENMP, lib);
    bench_print_machine(runtime, "");
    static const char *const env[] = {"OMP_WAIT_POLICY", "OMP_PROC_BIND", "OMP_PLACES", "GOMP_SPINCOUNT",
                                      "KMP_BLOCKTIME", "KMP_LIBRARY", "KMP_ENABLE_TASK_THROTTLING",
                                      "OMP_NUM_THREADS", "OMP_DYNAMIC"};
    bool any = false;
    for (size_t i = 0; i < sizeof env / sizeof env[0]; i++) {
        const char *v = getenv(env[i]);
        if (v) {
            printf("%s %s=%s", any ? "" : "# environment:", env[i], v);
            any = true;
        }
    }
    if (any)
        printf("\n");
    char warm[64];
    if (o->c.warmup || o->c.warmup_tasks == 0)
        snprintf(warm, sizeof warm, "%u run(s)", o->c.warmup ? o->c.warmup : 1);
    else
        snprintf(warm, sizeof warm, ">= %" PRIu64 " tasks", o->c.warmup_tasks);
    printf("# threads: %u (omp parallel + single; the creating thread runs tasks too); depend: %s; "
           "data: %s; warm-up %s, reps %u (>= %" PRIu64 " tasks timed)%s\n",
           o->threads, o->deps == DEPS_FIXED ? "fixed lists (iterator for other shapes)" : "iterator",
           o->layout == LAYOUT_VIEWS ? "sections of one array" : "an element of an array per datum", warm, o->c.reps, o->c.min_tasks, o->c.quick ? ", --quick" : "");
}

/* One workload of dag_suite_run: run it and print its row. */
static int run_and_print(void *ctx, const dag *d)
{
    const options *opt = ctx;
    result r;
    if (run_workload(d, opt, &r))
        return 1;
    print_result(&r);
    return 0;
}

int main(int argc, char **argv)
{
    options opt;
    if (parse_args(argc, argv, &opt))
        return 2;
    /* before the first parallel region makes the team's threads */
    if (bench_apply_syscall_cost("omp_dag", opt.c.syscall_cost_ns))
        return 2;
    omp_set_dynamic(0);
    omp_set_num_threads((int)opt.threads);
    print_machine(&opt);
    printf("%-16s %8s %8s %6s %6s %10s %10s %10s\n", "workload", "tasks", "edges", "path", "reps", "median", "min",
           "submit");
    printf("%-16s %8s %8s %6s %6s %10s %10s %10s\n", "", "", "", "", "", "ns/task", "ns/task", "ns/task");
    fflush(stdout);

    int status = dag_suite_run(&opt.c, "omp_dag", run_and_print, &opt);
    return status;
}
