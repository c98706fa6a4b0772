/* l2_overhead: nanoseconds per task of the L2 chip engine for empty kernels.
 *
 * Each workload is a DAG from dag.h mapped onto one sim chip:
 *   - one chip buffer of 64 bytes per datum (data of a dag_group share one
 *     buffer, a 64-byte slot each, so a task that reads a whole group, the
 *     fan-in reducer, passes it as one tensor: a task takes at most 32);
 *     or, with --layout views, every datum a view of one chip buffer, as
 *     kernels name tiles of one matrix: a 64-byte slot of it each, and for
 *     Cholesky an 8 x 8 tile of one (8T) x (8T) byte matrix (a 2-D view with
 *     a row stride); the rows are named "<dag>/views"; with --layout both,
 *     the two on one worker, their runs alternating (buffers, views, views,
 *     buffers, ...), and a line with the median ratio views / buffers of
 *     the back-to-back pairs: what one layout costs against the other, with
 *     the machine's slow phases (minutes in which every run is slower) on
 *     both alike, which separate processes cannot promise;
 *   - one chip callable whose orchestration function walks the DAG and submits
 *     every task with tags INPUT / OUTPUT / INOUT from the access modes and a
 *     kernel that returns 0.
 * The tensors and tags of every task are built before timing, so the timed part
 * is strata_worker_run_chip over the whole DAG: submission, dependency
 * tracking, scheduling, the kernel calls, completion and retirement.
 *
 * Untimed warm-up runs (at least one, and at least 100000 tasks: a fresh worker
 * runs its first ~10 ms several times slower), then `reps` timed runs (more for
 * small DAGs, so that every workload times at least --min-tasks tasks); prints
 * the median and minimum ns/task, the median time until the orchestration
 * function returned ("submit"), and the ring high-water marks of the last run.
 * --verify adds one run whose kernels log the order they start in and checks it
 * against the DAG's dependencies. --quick (the CTest smoke test) runs tiny sizes
 * with --verify. docs/performance.md records the figures and commands. */
#include <errno.h>
#include <inttypes.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <strata/strata.h>

#include "common.h"
#include "dag.h"
#include "tiles.h"

#define DATUM_BYTES 64u

enum { K_EMPTY_AIV = 0, K_EMPTY_AIC = 1, K_LOG_AIV = 2, K_LOG_AIC = 3, K_LOG_OFFSET = 2, K_TILE = 4 };

typedef enum placement { PLACE_AIV, PLACE_ALT } placement;
typedef enum layout { LAYOUT_BUFFERS, LAYOUT_VIEWS, LAYOUT_BOTH } layout;

typedef struct options {
    bench_dag_cli c;             /* what every DAG program takes (common.h) */
    uint32_t      aic, aiv;
    placement     place;
    layout        layout;
    uint64_t      window, dep_pool;
} options;

/* Cholesky's tiles as views of one matrix: 8 x 8 bytes each. */
#define VIEW_TILE 8u

/* ---- time ---- */


/* ---- kernels ---- */

static int kernel_empty(const strata_task_args *a)
{
    (void)a;
    return 0;
}

/* --verify: each task logs its DAG index (scalar 0) when it starts. */
static uint32_t        *g_log;
static _Atomic uint32_t g_logpos;

static int kernel_log(const strata_task_args *a)
{
    uint32_t at = atomic_fetch_add_explicit(&g_logpos, 1, memory_order_relaxed);
    g_log[at] = (uint32_t)a->scalars[0];
    return 0;
}

/* --real: the task's kind is func_id - K_TILE; each tensor is one tile. */
static int kernel_tile(const strata_task_args *a, dag_kind kind)
{
    float *t[3];
    for (uint32_t i = 0; i < a->ntensors && i < 3; i++)
        t[i] = (float *)(uintptr_t)(a->tensors[i].addr + a->tensors[i].offset);
    tile_kernel(kind, t);
    return 0;
}
static int kernel_potrf(const strata_task_args *a) { return kernel_tile(a, DAG_POTRF); }
static int kernel_trsm(const strata_task_args *a) { return kernel_tile(a, DAG_TRSM); }
static int kernel_syrk(const strata_task_args *a) { return kernel_tile(a, DAG_SYRK); }
static int kernel_gemm(const strata_task_args *a) { return kernel_tile(a, DAG_GEMM); }

/* ---- the DAG on Strata ---- */

typedef struct plan {
    const dag     *d;
    strata_buffer *buffers;    /* one per datum outside groups, one per group */
    uint32_t       nbuffers;
    strata_tensor *tensors;    /* all tasks' tensors, packed */
    strata_tag    *tags;
    uint32_t      *first;      /* ntasks + 1: task t's tensors are first[t] .. first[t+1]-1 */
    uint8_t       *func;       /* K_EMPTY_AIV or K_EMPTY_AIC; K_TILE + kind with --real */
    uint64_t       datum_bytes;   /* DATUM_BYTES, or TILE_BYTES with --real */
    bool           verify;     /* submit the logging kernels, with the task index */
    uint64_t       orch_end_ns;
} plan;

static strata_tag tag_of(dag_mode m)
{
    return m == DAG_READ ? STRATA_INPUT : m == DAG_WRITE ? STRATA_OUTPUT : STRATA_INOUT;
}

static int orchestrate(strata_chip_orch *o, const strata_task_args *args, const strata_call_config *cfg)
{
    (void)args;
    plan *p = (plan *)(uintptr_t)cfg->user[0];
    const uint32_t ntasks = p->d->ntasks;
    if (!p->verify) {
        for (uint32_t t = 0; t < ntasks; t++) {
            uint32_t f = p->first[t];
            strata_task_args a = {p->tensors + f, p->tags + f, p->first[t + 1] - f, NULL, 0};
            int rc = strata_chip_submit(o, p->func[t], &a);
            if (rc)
                return rc;
        }
    } else {
        for (uint32_t t = 0; t < ntasks; t++) {
            uint32_t f = p->first[t];
            uint64_t index = t;
            strata_task_args a = {p->tensors + f, p->tags + f, p->first[t + 1] - f, &index, 1};
            int rc = strata_chip_submit(o, p->func[t] + K_LOG_OFFSET, &a);
            if (rc)
                return rc;
        }
    }
    p->orch_end_ns = bench_now_ns();
    return 0;
}

static int fail(const char *what, int rc)
{
    fprintf(stderr, "l2_overhead: %s failed: %s: %s\n", what, strata_status_name(rc), strata_last_error());
    return 1;
}

static void plan_free(plan *p, strata_worker *w)
{
    if (p->buffers)
        for (uint32_t b = 0; b < p->nbuffers; b++)
            strata_worker_free(w, p->buffers[b]);
    free(p->buffers);
    free(p->tensors);
    free(p->tags);
    free(p->first);
    free(p->func);
    memset(p, 0, sizeof *p);
}

/* Tile (i, j) of Cholesky's T x T tile matrix from its datum number (the
   inverse of dag_cholesky_tile). */
static void cholesky_tile_of(uint32_t datum, uint32_t *i, uint32_t *j)
{
    uint32_t r = 0;
    while ((r + 1) * (r + 2) / 2 <= datum)
        r++;
    *i = r;
    *j = datum - r * (r + 1) / 2;
}

/* --layout views: every datum a view of one chip buffer (see the top). */
static int plan_build_views(plan *p, const dag *d, strata_worker *w)
{
    bool tiles = strncmp(d->name, "cholesky", 8) == 0;
    uint32_t t = 0;
    while (tiles && t * (t + 1) / 2 < d->ndata)
        t++;
    uint64_t side = (uint64_t)t * VIEW_TILE;   /* the matrix is side x side bytes */
    uint64_t bytes = tiles ? side * side : (uint64_t)(d->ndata ? d->ndata : 1) * DATUM_BYTES;
    int s = strata_worker_malloc(w, 0, bytes, &p->buffers[0]);
    if (s)
        return fail("strata_worker_malloc", s);
    p->nbuffers = 1;
    const strata_buffer *b = &p->buffers[0];
    uint32_t n = 0;
    for (uint32_t k = 0; k < d->ntasks; k++) {
        const dag_task *task = &d->tasks[k];
        p->first[k] = n;
        uint32_t prev_datum = UINT32_MAX;
        for (uint32_t a = 0; a < task->naccess; a++) {
            const dag_access *acc = &d->accesses[task->first + a];
            strata_tag tag = tag_of(acc->mode);
            strata_tensor ten;
            if (tiles) {
                uint32_t i, j;
                cholesky_tile_of(acc->datum, &i, &j);
                uint64_t shape[2] = {VIEW_TILE, VIEW_TILE};
                ten = strata_tensor_make((const void *)(uintptr_t)b->addr, STRATA_U8, 2, shape);
                ten.strides[0] = (int64_t)side;   /* rows of the matrix, */
                ten.strides[1] = 1;                 /* contiguous within (strides all 0 would mean "dense") */
                ten.offset = (uint64_t)i * VIEW_TILE * side + (uint64_t)j * VIEW_TILE;
            } else {
                /* the next slot, same mode: one tensor (the fan-in's group) */
                if (n > p->first[k] && prev_datum != UINT32_MAX && acc->datum == prev_datum + 1 &&
                    p->tags[n - 1] == tag) {
                    p->tensors[n - 1].shape[0] += DATUM_BYTES;
                    prev_datum = acc->datum;
                    continue;
                }
                uint64_t shape[1] = {DATUM_BYTES};
                ten = strata_tensor_make((const void *)(uintptr_t)b->addr, STRATA_U8, 1, shape);
                ten.offset = (uint64_t)acc->datum * DATUM_BYTES;
            }
            ten.nbytes = b->nbytes;
            p->tensors[n] = ten;
            p->tags[n] = tag;
            n++;
            prev_datum = acc->datum;
        }
    }
    p->first[d->ntasks] = n;
    return 0;
}

/* Allocate the buffers and build every task's tensors. */
static int plan_build(plan *p, const dag *d, strata_worker *w, placement place, layout lay, bool real)
{
    memset(p, 0, sizeof *p);
    p->d = d;
    const uint64_t datum_bytes = real ? TILE_BYTES : DATUM_BYTES;
    p->datum_bytes = datum_bytes;
    /* datum -> buffer and byte offset in it */
    uint32_t *buf_of = malloc((size_t)(d->ndata ? d->ndata : 1) * sizeof buf_of[0]);
    uint32_t *slot_of = malloc((size_t)(d->ndata ? d->ndata : 1) * sizeof slot_of[0]);
    p->buffers = malloc((size_t)(d->ndata ? d->ndata : 1) * sizeof p->buffers[0]);
    p->tensors = malloc((size_t)(d->naccesses ? d->naccesses : 1) * sizeof p->tensors[0]);
    p->tags = malloc((size_t)(d->naccesses ? d->naccesses : 1) * sizeof p->tags[0]);
    p->first = malloc(((size_t)d->ntasks + 1) * sizeof p->first[0]);
    p->func = malloc((size_t)(d->ntasks ? d->ntasks : 1) * sizeof p->func[0]);
    int rc = 0;
    if (!buf_of || !slot_of || !p->buffers || !p->tensors || !p->tags || !p->first || !p->func) {
        fprintf(stderr, "l2_overhead: out of host memory for DAG %s\n", d->name);
        rc = 1;
        goto out;
    }
    if (lay == LAYOUT_VIEWS) {
        for (uint32_t t = 0; t < d->ntasks; t++)
            p->func[t] = place == PLACE_ALT && (t & 1) ? K_EMPTY_AIC : K_EMPTY_AIV;
        rc = plan_build_views(p, d, w);
        goto out;
    }
    for (uint32_t i = 0; i < d->ndata; i++)
        buf_of[i] = UINT32_MAX;
    for (uint32_t g = 0; g < d->ngroups && rc == 0; g++) {
        const dag_group *gr = &d->groups[g];
        int s = strata_worker_malloc(w, 0, (uint64_t)gr->count * datum_bytes, &p->buffers[p->nbuffers]);
        if (s) {
            rc = fail("strata_worker_malloc", s);
            break;
        }
        for (uint32_t k = 0; k < gr->count; k++) {
            buf_of[gr->first + k] = p->nbuffers;
            slot_of[gr->first + k] = k;
        }
        p->nbuffers++;
    }
    for (uint32_t i = 0; i < d->ndata && rc == 0; i++) {
        if (buf_of[i] != UINT32_MAX)
            continue;
        int s = strata_worker_malloc(w, 0, datum_bytes, &p->buffers[p->nbuffers]);
        if (s) {
            rc = fail("strata_worker_malloc", s);
            break;
        }
        buf_of[i] = p->nbuffers++;
        slot_of[i] = 0;
    }
    uint32_t n = 0;
    for (uint32_t t = 0; t < d->ntasks && rc == 0; t++) {
        const dag_task *task = &d->tasks[t];
        p->first[t] = n;
        p->func[t] = real ? (uint8_t)(K_TILE + task->kind) : place == PLACE_ALT && (t & 1) ? K_EMPTY_AIC : K_EMPTY_AIV;
        uint32_t prev_datum = UINT32_MAX;
        for (uint32_t a = 0; a < task->naccess; a++) {
            const dag_access *acc = &d->accesses[task->first + a];
            uint32_t b = buf_of[acc->datum];
            strata_tag tag = tag_of(acc->mode);
            /* Coalesce the next slot of the same buffer, same mode, into the
               previous tensor (only groups have more than one slot). */
            if (n > p->first[t] && prev_datum != UINT32_MAX && acc->datum == prev_datum + 1 &&
                buf_of[prev_datum] == b && p->tags[n - 1] == tag) {
                p->tensors[n - 1].shape[0] += datum_bytes;
                prev_datum = acc->datum;
                continue;
            }
            uint64_t shape[1] = {datum_bytes};
            strata_tensor ten = strata_tensor_make((const void *)(uintptr_t)p->buffers[b].addr, STRATA_U8, 1, shape);
            ten.nbytes = p->buffers[b].nbytes;
            ten.offset = (uint64_t)slot_of[acc->datum] * datum_bytes;
            p->tensors[n] = ten;
            p->tags[n] = tag;
            n++;
            prev_datum = acc->datum;
        }
        if (n - p->first[t] > STRATA_MAX_CORE_TENSORS) {
            fprintf(stderr, "l2_overhead: task %u of %s needs %u tensors; a Strata task takes at most %d "
                    "(group its data in the DAG generator)\n", t, d->name, n - p->first[t],
                    STRATA_MAX_CORE_TENSORS);
            rc = 1;
        }
    }
    if (rc == 0)
        p->first[d->ntasks] = n;
out:
    free(buf_of);
    free(slot_of);
    if (rc)
        plan_free(p, w);
    return rc;
}

/* ---- statistics ---- */


typedef struct result {
    char     name[48];
    uint32_t ntasks, reps;
    int64_t  edges, path;
    double   median_ns, min_ns, submit_ns;   /* per task */
    double   syscalls;                       /* per task, every thread of the timed runs; < 0: not counted */
    strata_run_stats st;
} result;

/* The system call counter (bench_syscalls_open), opened before any worker so
   that it sees their threads; -1 where it cannot be opened. */
static int syscalls_fd = -1;

/* ---- one workload ---- */

/* --real: the input tiles into the chip buffers (datum i is buffer i). */
static int load_tiles(strata_worker *w, const plan *p, const float *input)
{
    for (uint32_t i = 0; i < p->d->ndata; i++) {
        int rc = strata_worker_copy_to(w, p->buffers[i], 0, input + (size_t)i * TILE_FLOATS, TILE_BYTES);
        if (rc)
            return fail("strata_worker_copy_to", rc);
    }
    return 0;
}

/* The layouts a run of the program times: one, or both (--layout both). */
static uint32_t layouts_of(const options *opt, layout *lays)
{
    if (opt->layout != LAYOUT_BOTH) {
        lays[0] = opt->layout;
        return 1;
    }
    lays[0] = LAYOUT_BUFFERS;
    lays[1] = LAYOUT_VIEWS;
    return 2;
}

/* --verify: one more run of plan p whose kernels log the order they start in,
   checked against the DAG. */
static int verify_order(strata_worker *w, strata_handle h, plan *p, strata_call_config *cc, const char *name)
{
    const dag *d = p->d;
    g_log = malloc((size_t)(d->ntasks ? d->ntasks : 1) * sizeof g_log[0]);
    if (!g_log) {
        fprintf(stderr, "l2_overhead: out of host memory\n");
        return 1;
    }
    atomic_store(&g_logpos, 0);
    p->verify = true;
    cc->user[0] = (uint64_t)(uintptr_t)p;
    int rc = strata_worker_run_chip(w, h, NULL, cc);
    p->verify = false;
    char why[200];
    uint32_t logged = atomic_load(&g_logpos);
    bool ok = rc == 0 && dag_check_order(d, g_log, logged, why, sizeof why);
    free(g_log);
    g_log = NULL;
    if (rc)
        return fail("strata_worker_run_chip (verify)", rc);
    if (!ok) {
        fprintf(stderr, "l2_overhead: %s: the order tasks ran in breaks a dependency: %s\n", name, why);
        return 1;
    }
    return 0;
}

/* Run workload d on one worker in each layout of opt (res[k] for the k-th of
   layouts_of), returns 0 or 1 after a message. With two layouts both plans
   live on the worker at once and their runs alternate, the order swapped
   every repetition, so that the machine's phases (minutes in which a cache
   line costs several times more) fall on both alike; *ratio is then the
   median over repetitions of views / buffers, each pair taken back to back. */
static int run_workload(const dag *d, const options *opt, result *res, double *ratio)
{
    layout lays[2];
    const uint32_t nlay = layouts_of(opt, lays);
    memset(res, 0, nlay * sizeof res[0]);
    const int64_t edges = dag_count_edges(d), path = dag_critical_path(d);
    for (uint32_t k = 0; k < nlay; k++) {
        snprintf(res[k].name, sizeof res[k].name, "%.40s%s", d->name, lays[k] == LAYOUT_VIEWS ? "/views" : "");
        res[k].ntasks = d->ntasks;
        res[k].edges = edges;
        res[k].path = path;
    }

    strata_worker_config wc;
    strata_worker_config_init(&wc, 2);
    wc.aic_cores = opt->aic;
    wc.aiv_cores = opt->aiv;
    strata_worker *w;
    int rc = strata_worker_create(&wc, &w);
    if (rc)
        return fail("strata_worker_create", rc);
    if ((rc = strata_worker_init(w))) {
        strata_worker_destroy(w);
        return fail("strata_worker_init", rc);
    }
    static const strata_kernel_entry kernels[] = {
        {K_EMPTY_AIV, STRATA_AIV, kernel_empty},
        {K_EMPTY_AIC, STRATA_AIC, kernel_empty},
        {K_LOG_AIV, STRATA_AIV, kernel_log},
        {K_LOG_AIC, STRATA_AIC, kernel_log},
        {K_TILE + DAG_POTRF, STRATA_AIV, kernel_potrf},
        {K_TILE + DAG_TRSM, STRATA_AIV, kernel_trsm},
        {K_TILE + DAG_SYRK, STRATA_AIV, kernel_syrk},
        {K_TILE + DAG_GEMM, STRATA_AIV, kernel_gemm},
    };
    strata_chip_callable callable = {"l2_overhead", orchestrate, kernels, sizeof kernels / sizeof kernels[0]};
    strata_handle h;
    plan p[2];
    memset(p, 0, sizeof p);
    int ret = 1;
    uint64_t *samples[2] = {NULL, NULL}, *submits[2] = {NULL, NULL};
    float *input = NULL;
    if ((rc = strata_worker_register_chip(w, &callable, &h))) {
        fail("strata_worker_register_chip", rc);
        goto close;
    }
    for (uint32_t k = 0; k < nlay; k++)
        if (plan_build(&p[k], d, w, opt->place, lays[k], opt->c.real))
            goto free_plans;
    /* --real: the input tiles, loaded into the chip before every run (untimed) */
    uint32_t tiles = 0;
    while ((uint64_t)(tiles + 1) * (tiles + 2) / 2 <= d->ndata)
        tiles++;
    if (opt->c.real && (input = tiles_input(tiles)) == NULL) {
        fprintf(stderr, "l2_overhead: out of host memory for the input tiles\n");
        goto free_plans;
    }

    strata_call_config cc;
    memset(&cc, 0, sizeof cc);
    cc.ring_task_window = opt->window;
    cc.ring_dep_pool = opt->dep_pool;

    /* Warm-up: at least one run and warmup_tasks tasks. The first ~10 ms of a
       process run several times slower (thread placement, clocks), so one run
       of a small DAG is not enough. */
    uint32_t reps, warmup;
    bench_dag_cli_runs(&opt->c, d->ntasks, &reps, &warmup);
    for (uint32_t k = 0; k < nlay; k++) {
        res[k].reps = reps;
        samples[k] = malloc((size_t)(reps ? reps : 1) * sizeof samples[k][0]);
        submits[k] = malloc((size_t)(reps ? reps : 1) * sizeof submits[k][0]);
        if (!samples[k] || !submits[k]) {
            fprintf(stderr, "l2_overhead: out of host memory\n");
            goto free_plans;
        }
    }

    strata_run_stats before, after;
    strata_worker_stats(w, &before);
    for (uint32_t r = 0; r < warmup; r++)
        for (uint32_t k = 0; k < nlay; k++) {
            cc.user[0] = (uint64_t)(uintptr_t)&p[k];
            if ((input && load_tiles(w, &p[k], input)) || (rc = strata_worker_run_chip(w, h, NULL, &cc))) {
                fail("strata_worker_run_chip (warm-up)", rc);
                goto free_plans;
            }
        }
    long long calls[2] = {0, 0};
    for (uint32_t r = 0; r < reps; r++) {
        for (uint32_t i = 0; i < nlay; i++) {
            uint32_t k = (r & 1) ? nlay - 1 - i : i;   /* ABBA: neither layout always goes first */
            if (input && load_tiles(w, &p[k], input))
                goto free_plans;
            cc.user[0] = (uint64_t)(uintptr_t)&p[k];
            long long sc0 = bench_syscalls_read(syscalls_fd);
            uint64_t t0 = bench_now_ns();
            rc = strata_worker_run_chip(w, h, NULL, &cc);
            uint64_t t1 = bench_now_ns();
            long long run_calls = bench_syscalls_between(sc0, bench_syscalls_read(syscalls_fd));
            calls[k] = calls[k] < 0 || run_calls < 0 ? -1 : calls[k] + run_calls;
            if (rc) {
                fail("strata_worker_run_chip", rc);
                goto free_plans;
            }
            samples[k][r] = t1 - t0;
            submits[k][r] = p[k].orch_end_ns - t0;
            if (opt->c.samples)
                bench_print_sample(res[k].name, r, samples[k][r], submits[k][r], d->ntasks);
        }
    }
    strata_worker_stats(w, &after);
    uint64_t expect = (uint64_t)d->ntasks * (warmup + reps) * nlay;
    if (after.tasks_completed - before.tasks_completed != expect || after.tasks_failed != before.tasks_failed ||
        after.tasks_canceled != before.tasks_canceled) {
        fprintf(stderr, "l2_overhead: %s: %" PRIu64 " tasks completed (%" PRIu64 " failed, %" PRIu64
                " cancelled), expected %" PRIu64 "\n", d->name, after.tasks_completed - before.tasks_completed,
                after.tasks_failed - before.tasks_failed, after.tasks_canceled - before.tasks_canceled, expect);
        goto free_plans;
    }
    /* the pairs' ratios first: bench_per_task sorts the samples */
    *ratio = 0;
    if (nlay == 2 && reps) {
        uint64_t *q = malloc(reps * sizeof q[0]);   /* views / buffers, parts per million */
        if (!q) {
            fprintf(stderr, "l2_overhead: out of host memory\n");
            goto free_plans;
        }
        for (uint32_t r = 0; r < reps; r++)
            q[r] = samples[0][r] ? samples[1][r] * 1000000 / samples[0][r] : 0;
        *ratio = (double)bench_median_u64(q, reps) / 1e6;
        free(q);
    }
    for (uint32_t k = 0; k < nlay; k++) {
        res[k].st = after;
        bench_per_task(samples[k], submits[k], reps, d->ntasks, &res[k].median_ns, &res[k].min_ns,
                       &res[k].submit_ns);
        res[k].syscalls = calls[k] < 0 || reps == 0 || d->ntasks == 0 ? -1.0
                                                                      : (double)calls[k] / ((double)reps * d->ntasks);
    }
    if (input && reps) {
        /* the last run's factor against a double-precision reference */
        for (uint32_t i = 0; i < d->ndata; i++)
            if ((rc = strata_worker_copy_from(w, input + (size_t)i * TILE_FLOATS, p[0].buffers[i], 0, TILE_BYTES))) {
                fail("strata_worker_copy_from", rc);
                goto free_plans;
            }
        char why[200];
        if (!tiles_check(tiles, input, why, sizeof why)) {
            fprintf(stderr, "l2_overhead: %s: wrong factor: %s\n", d->name, why);
            goto free_plans;
        }
    }

    if (opt->c.verify)
        for (uint32_t k = 0; k < nlay; k++)
            if (verify_order(w, h, &p[k], &cc, res[k].name))
                goto free_plans;
    ret = 0;
free_plans:
    free(input);
    for (uint32_t k = 0; k < nlay; k++) {
        free(samples[k]);
        free(submits[k]);
        plan_free(&p[k], w);
    }
close:
    if ((rc = strata_worker_close(w)) && ret == 0)
        ret = fail("strata_worker_close", rc);
    strata_worker_destroy(w);
    return ret;
}

static void print_result(const result *r, bool verified, bool factored)
{
    if (r->reps == 0) {
        printf("%-16s %8u tasks  (no timed runs)\n", r->name, r->ntasks);
        return;
    }
    char sys[32] = "n/a";
    if (r->syscalls >= 0)
        snprintf(sys, sizeof sys, "%.4f", r->syscalls);
    printf("%-16s %8u %8" PRId64 " %6" PRId64 " %6u %10.1f %10.1f %10.1f %9s   %5" PRIu64 "/%-5" PRIu64
           " %6" PRIu64 "/%-6" PRIu64 "%s%s\n",
           r->name, r->ntasks, r->edges, r->path, r->reps, r->median_ns, r->min_ns, r->submit_ns, sys,
           r->st.task_window.high_water, r->st.task_window.size, r->st.dep_pool.high_water, r->st.dep_pool.size,
           verified ? "  order ok" : "", factored ? "  factor ok" : "");
    fflush(stdout);
}

/* ---- command line ---- */

static void usage(FILE *f)
{
    bench_dag_cli_usage(f, "l2_overhead",
                        "  --aiv N, --threads N   AIV core threads (default 1)\n"
                        "  --aic N          AIC core threads (default 1)\n"
                        "  --place aiv|alt  all tasks on AIV (default), or alternate AIC/AIV by task index\n"
                        "  --layout buffers|views|both   a chip buffer per datum (default), or every datum\n"
                        "                   a view of one buffer (Cholesky: 8 x 8 tiles of one matrix), or\n"
                        "                   both on one worker, their runs alternating, with the median\n"
                        "                   ratio of back-to-back pairs\n"
                        "  --window N       call_config.ring_task_window, power of two (default 4096)\n"
                        "  --dep-pool N     call_config.ring_dep_pool (default 4 x window)\n");
}

static int parse_args(int argc, char **argv, options *o)
{
    *o = (options){.aic = 1, .aiv = 1, .place = PLACE_AIV, .layout = LAYOUT_BUFFERS, .window = 4096, .dep_pool = 0};
    bench_dag_cli_init(&o->c, argc, argv);
    if (o->c.quick)
        o->window = 256;
    for (int i = 1; i < argc; i++) {
        int taken = bench_dag_cli_option(&o->c, "l2_overhead", argc, argv, &i);
        if (taken < 0)
            return 1;
        if (taken)
            continue;
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            usage(stdout);
            exit(0);
        }
        static const char *const own[] = {"--aiv", "--threads", "--aic", "--place", "--layout", "--window",
                                          "--dep-pool"};
        bool known = false;
        for (size_t k = 0; k < sizeof own / sizeof own[0]; k++)
            known |= strcmp(a, own[k]) == 0;
        if (!known) {
            fprintf(stderr, "l2_overhead: unknown option %s\n", a);
            usage(stderr);
            return 1;
        }
        const char *v = bench_option_value("l2_overhead", argc, argv, &i);
        if (!v)
            return 1;
        uint32_t x = 0;
        bool ok = true;
        if (strcmp(a, "--aiv") == 0 || strcmp(a, "--threads") == 0)
            ok = bench_parse_u32(v, &o->aiv) && o->aiv >= 1 && o->aiv <= 64;
        else if (strcmp(a, "--aic") == 0)
            ok = bench_parse_u32(v, &o->aic) && o->aic >= 1 && o->aic <= 64;
        else if (strcmp(a, "--place") == 0) {
            if (strcmp(v, "aiv") == 0)
                o->place = PLACE_AIV;
            else if (strcmp(v, "alt") == 0)
                o->place = PLACE_ALT;
            else
                ok = false;
        } else if (strcmp(a, "--layout") == 0) {
            if (strcmp(v, "buffers") == 0)
                o->layout = LAYOUT_BUFFERS;
            else if (strcmp(v, "views") == 0)
                o->layout = LAYOUT_VIEWS;
            else if (strcmp(v, "both") == 0)
                o->layout = LAYOUT_BOTH;
            else
                ok = false;
        } else if (strcmp(a, "--window") == 0) {
            ok = bench_parse_u32(v, &x) && x >= 1 && (x & (x - 1)) == 0 && x <= 65536;
            o->window = x;
        } else {
            ok = bench_parse_u32(v, &x) && x >= 1;
            o->dep_pool = x;
        }
        if (!ok) {
            fprintf(stderr, "l2_overhead: bad value '%s' for %s\n", v, a);
            return 1;
        }
    }
    if (o->c.real && o->layout != LAYOUT_BUFFERS) {
        fprintf(stderr, "l2_overhead: --real runs its float tiles in buffers of their own (use --layout buffers)\n");
        return 1;
    }
    if (o->c.real && o->c.verify) {
        fprintf(stderr, "l2_overhead: --verify logs the order of empty tasks; with --real the factor check "
                "is the verification (drop --verify)\n");
        return 1;
    }
    if (o->dep_pool == 0)
        o->dep_pool = 4 * o->window;
    return 0;
}

/* ---- machine ---- */

static void print_machine(void)
{
    char runtime[64];
    snprintf(runtime, sizeof runtime, "strata %s", strata_version_string());
    bench_print_machine(runtime, "");
}

/* One workload of dag_suite_run: run it and print its row. */
static int run_and_print(void *ctx, const dag *d)
{
    const options *opt = ctx;
    result r[2];
    double ratio;
    if (run_workload(d, opt, r, &ratio))
        return 1;
    print_result(&r[0], opt->c.verify, opt->c.real);
    if (opt->layout == LAYOUT_BOTH) {
        print_result(&r[1], opt->c.verify, opt->c.real);
        if (r[0].reps)
            printf("# %s: views / buffers %.3f (median of %u back-to-back pairs of runs)\n", d->name, ratio,
                   r[0].reps);
    }
    return 0;
}

int main(int argc, char **argv)
{
    options opt;
    if (parse_args(argc, argv, &opt))
        return 2;
    print_machine();
    if (bench_apply_syscall_cost("l2_overhead", opt.c.syscall_cost_ns))
        return 2;
    char warm[64];
    if (opt.c.warmup || opt.c.warmup_tasks == 0)
        snprintf(warm, sizeof warm, "%u run(s)", opt.c.warmup ? opt.c.warmup : 1);
    else
        snprintf(warm, sizeof warm, ">= %" PRIu64 " tasks", opt.c.warmup_tasks);
    printf("# lanes: %u AIC + %u AIV, tasks on %s; data: %s; rings: task_window %" PRIu64 ", dep_pool %" PRIu64
           "; warm-up %s, reps %u (>= %" PRIu64 " tasks timed)%s\n",
           opt.aic, opt.aiv, opt.place == PLACE_AIV ? "AIV" : "AIC/AIV alternately",
           opt.layout == LAYOUT_VIEWS   ? "views of one buffer"
           : opt.layout == LAYOUT_BOTH ? "a buffer per datum and views of one buffer, runs alternating"
                                       : "a buffer per datum",
           opt.window, opt.dep_pool,
           warm, opt.c.reps, opt.c.min_tasks, opt.c.quick ? ", --quick" : "");
    syscalls_fd = bench_syscalls_open();
    if (syscalls_fd < 0)
        printf("# system calls: not counted: %s\n", bench_syscalls_why());
    printf("%-16s %8s %8s %6s %6s %10s %10s %10s %9s   %11s %13s\n", "workload", "tasks", "edges", "path", "reps",
           "median", "min", "submit", "sys/task", "window", "dep_pool");
    printf("%-16s %8s %8s %6s %6s %10s %10s %10s %9s   %11s %13s\n", "", "", "", "", "", "ns/task", "ns/task",
           "ns/task", "calls", "high/size", "high/size");

    int status = dag_suite_run(&opt.c, "l2_overhead", run_and_print, &opt);
    bench_syscalls_close(syscalls_fd);
    return status;
}
