/* Backend-neutral task DAGs: see dag.h. */
#include "dag.h"

#include "common.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- building ---- */

typedef struct builder {
    dag     *d;
    uint32_t cap_tasks, cap_accesses;
    bool     failed;
} builder;

static void builder_init(builder *b, dag *d, const char *name, uint64_t ntasks_hint,
                         uint64_t naccesses_hint, uint32_t ndata)
{
    memset(d, 0, sizeof *d);
    snprintf(d->name, sizeof d->name, "%s", name);
    d->ndata = ndata;
    b->d = d;
    b->failed = ntasks_hint > UINT32_MAX || naccesses_hint > UINT32_MAX;
    b->cap_tasks = b->cap_accesses = 0;
    if (b->failed)
        return;
    b->cap_tasks = ntasks_hint ? (uint32_t)ntasks_hint : 1;
    b->cap_accesses = naccesses_hint ? (uint32_t)naccesses_hint : 1;
    d->tasks = malloc(b->cap_tasks * sizeof d->tasks[0]);
    d->accesses = malloc(b->cap_accesses * sizeof d->accesses[0]);
    b->failed = d->tasks == NULL || d->accesses == NULL;
}

static bool grow(void **p, uint32_t *cap, uint32_t need, size_t elem)
{
    if (need <= *cap)
        return true;
    uint64_t n = *cap ? (uint64_t)*cap * 2 : 16;
    while (n < need)
        n *= 2;
    if (n > UINT32_MAX)
        n = UINT32_MAX;
    void *q = realloc(*p, n * elem);
    if (!q)
        return false;
    *p = q;
    *cap = (uint32_t)n;
    return true;
}

/* Start a task; its accesses follow with add_access(). */
static void add_task(builder *b, dag_kind kind)
{
    dag *d = b->d;
    if (b->failed)
        return;
    if (d->ntasks == UINT32_MAX ||
        !grow((void **)&d->tasks, &b->cap_tasks, d->ntasks + 1, sizeof d->tasks[0])) {
        b->failed = true;
        return;
    }
    d->tasks[d->ntasks++] = (dag_task){.kind = kind, .first = d->naccesses, .naccess = 0};
}

static void add_access(builder *b, uint32_t datum, dag_mode mode)
{
    dag *d = b->d;
    if (b->failed)
        return;
    if (d->naccesses == UINT32_MAX ||
        !grow((void **)&d->accesses, &b->cap_accesses, d->naccesses + 1, sizeof d->accesses[0])) {
        b->failed = true;
        return;
    }
    d->accesses[d->naccesses++] = (dag_access){.datum = datum, .mode = mode};
    dag_task *t = &d->tasks[d->ntasks - 1];
    if (++t->naccess > d->max_access)
        d->max_access = t->naccess;
}

static int builder_finish(builder *b)
{
    if (b->failed) {
        dag_free(b->d);
        return -1;
    }
    return 0;
}

/* ---- generators ---- */

int dag_independent(dag *d, uint32_t n)
{
    builder b;
    builder_init(&b, d, "independent", n, n, n);
    for (uint32_t i = 0; i < n && !b.failed; i++) {
        add_task(&b, DAG_PLAIN);
        add_access(&b, i, DAG_WRITE);
    }
    return builder_finish(&b);
}

int dag_chain(dag *d, uint32_t n)
{
    builder b;
    builder_init(&b, d, "chain", n, n, 1);
    for (uint32_t i = 0; i < n && !b.failed; i++) {
        add_task(&b, DAG_PLAIN);
        add_access(&b, 0, DAG_READWRITE);
    }
    return builder_finish(&b);
}

int dag_fanout_fanin(dag *d, uint32_t width, uint32_t rounds)
{
    if (width == 0 || width == UINT32_MAX) {
        memset(d, 0, sizeof *d);
        return -1;
    }
    uint64_t ntasks = (uint64_t)rounds * (width + 2);
    uint64_t naccesses = (uint64_t)rounds * (1 + 2ull * width + width + 1);
    builder b;
    builder_init(&b, d, "fanout_fanin", ntasks, naccesses, width + 1);
    if (!b.failed) {
        d->groups = malloc(sizeof d->groups[0]);
        if (!d->groups)
            b.failed = true;
        else {
            d->groups[0] = (dag_group){.first = 1, .count = width};
            d->ngroups = 1;
        }
    }
    for (uint32_t r = 0; r < rounds && !b.failed; r++) {
        add_task(&b, DAG_PLAIN);                  /* producer */
        add_access(&b, 0, DAG_WRITE);
        for (uint32_t c = 1; c <= width; c++) {   /* consumers */
            add_task(&b, DAG_PLAIN);
            add_access(&b, 0, DAG_READ);
            add_access(&b, c, DAG_WRITE);
        }
        add_task(&b, DAG_PLAIN);                  /* reducer */
        for (uint32_t c = 1; c <= width; c++)
            add_access(&b, c, DAG_READ);
        add_access(&b, 0, DAG_WRITE);
    }
    if (!b.failed)
        snprintf(d->name, sizeof d->name, "fanout_fanin%u", width);
    return builder_finish(&b);
}

uint64_t dag_cholesky_ntasks(uint32_t tiles)
{
    uint64_t t = tiles;
    return t + t * (t ? t - 1 : 0) + (t >= 3 ? t * (t - 1) * (t - 2) / 6 : 0);
}

int dag_cholesky(dag *d, uint32_t tiles)
{
    if (tiles > 2000) {   /* T(T+1)/2 tiles and ~T^3/6 tasks must stay in 32 bits */
        memset(d, 0, sizeof *d);
        return -1;
    }
    uint64_t ntasks = dag_cholesky_ntasks(tiles);
    uint32_t ndata = tiles * (tiles + 1) / 2;
    builder b;
    builder_init(&b, d, "cholesky", ntasks, 3 * ntasks, ndata);
    for (uint32_t k = 0; k < tiles && !b.failed; k++) {
        add_task(&b, DAG_POTRF);
        add_access(&b, dag_cholesky_tile(k, k), DAG_READWRITE);
        for (uint32_t i = k + 1; i < tiles; i++) {
            add_task(&b, DAG_TRSM);
            add_access(&b, dag_cholesky_tile(k, k), DAG_READ);
            add_access(&b, dag_cholesky_tile(i, k), DAG_READWRITE);
        }
        for (uint32_t i = k + 1; i < tiles; i++) {
            add_task(&b, DAG_SYRK);
            add_access(&b, dag_cholesky_tile(i, k), DAG_READ);
            add_access(&b, dag_cholesky_tile(i, i), DAG_READWRITE);
            for (uint32_t j = k + 1; j < i; j++) {
                add_task(&b, DAG_GEMM);
                add_access(&b, dag_cholesky_tile(i, k), DAG_READ);
                add_access(&b, dag_cholesky_tile(j, k), DAG_READ);
                add_access(&b, dag_cholesky_tile(i, j), DAG_READWRITE);
            }
        }
    }
    if (!b.failed)
        snprintf(d->name, sizeof d->name, "cholesky%u", tiles);
    return builder_finish(&b);
}

void dag_free(dag *d)
{
    if (!d)
        return;
    free(d->tasks);
    free(d->accesses);
    free(d->groups);
    memset(d, 0, sizeof *d);
}

const char *dag_kind_name(dag_kind kind)
{
    switch (kind) {
    case DAG_PLAIN: return "plain";
    case DAG_POTRF: return "POTRF";
    case DAG_TRSM: return "TRSM";
    case DAG_SYRK: return "SYRK";
    case DAG_GEMM: return "GEMM";
    case DAG_NKINDS: break;
    }
    return "invalid";
}

void dag_count_kinds(const dag *d, uint64_t counts[DAG_NKINDS])
{
    for (int k = 0; k < DAG_NKINDS; k++)
        counts[k] = 0;
    for (uint32_t t = 0; t < d->ntasks; t++)
        if ((unsigned)d->tasks[t].kind < DAG_NKINDS)
            counts[d->tasks[t].kind]++;
}

/* ---- dependencies ---- */

#define NONE UINT32_MAX

int dag_for_each_dep(const dag *d, dag_dep_fn fn, void *ctx)
{
    if (d->ntasks == 0)
        return 0;
    /* Per datum: the last writer, and the readers since it (a list through
       `reader`, one node per read access, newest first). */
    uint32_t *last_writer = malloc((size_t)(d->ndata ? d->ndata : 1) * sizeof last_writer[0]);
    uint32_t *readers = malloc((size_t)(d->ndata ? d->ndata : 1) * sizeof readers[0]);
    struct node { uint32_t task, next; } *node = malloc((size_t)(d->naccesses ? d->naccesses : 1) * sizeof *node);
    int rc = 0;
    if (!last_writer || !readers || !node) {
        rc = -1;
        goto out;
    }
    for (uint32_t i = 0; i < d->ndata; i++)
        last_writer[i] = readers[i] = NONE;
    uint32_t nnodes = 0;
    for (uint32_t t = 0; t < d->ntasks && rc == 0; t++) {
        const dag_task *task = &d->tasks[t];
        /* Report every edge first: all accesses of a task happen together. */
        for (uint32_t a = 0; a < task->naccess && rc == 0; a++) {
            const dag_access *acc = &d->accesses[task->first + a];
            uint32_t w = last_writer[acc->datum];
            if (w != NONE && w != t)
                rc = fn(ctx, w, t);                             /* RAW, WAW */
            if (acc->mode & DAG_WRITE)
                for (uint32_t r = readers[acc->datum]; r != NONE && rc == 0; r = node[r].next)
                    if (node[r].task != t)
                        rc = fn(ctx, node[r].task, t);          /* WAR */
        }
        for (uint32_t a = 0; a < task->naccess; a++) {
            const dag_access *acc = &d->accesses[task->first + a];
            if (acc->mode & DAG_WRITE) {
                last_writer[acc->datum] = t;
                readers[acc->datum] = NONE;
            }
        }
        for (uint32_t a = 0; a < task->naccess; a++) {
            const dag_access *acc = &d->accesses[task->first + a];
            if (acc->mode == DAG_READ && last_writer[acc->datum] != t) {
                node[nnodes] = (struct node){.task = t, .next = readers[acc->datum]};
                readers[acc->datum] = nnodes++;
            }
        }
    }
out:
    free(last_writer);
    free(readers);
    free(node);
    return rc;
}

typedef struct edge_ctx {
    uint32_t *mark;    /* mark[pred] = succ + 1 once (pred, succ) is counted */
    int64_t   edges;
    uint32_t *depth;   /* longest path ending at a task, in tasks */
} edge_ctx;

static int count_edge(void *arg, uint32_t pred, uint32_t succ)
{
    edge_ctx *c = arg;
    if (c->mark[pred] == succ + 1)
        return 0;
    c->mark[pred] = succ + 1;
    c->edges++;
    if (c->depth[pred] + 1 > c->depth[succ])
        c->depth[succ] = c->depth[pred] + 1;
    return 0;
}

static int edge_walk(const dag *d, int64_t *edges, int64_t *path)
{
    edge_ctx c = {.edges = 0};
    c.mark = calloc(d->ntasks ? d->ntasks : 1, sizeof c.mark[0]);
    c.depth = malloc((size_t)(d->ntasks ? d->ntasks : 1) * sizeof c.depth[0]);
    int rc = -1;
    if (c.mark && c.depth) {
        for (uint32_t t = 0; t < d->ntasks; t++)
            c.depth[t] = 1;
        rc = dag_for_each_dep(d, count_edge, &c);
    }
    if (rc == 0) {
        *edges = c.edges;
        uint32_t longest = 0;
        for (uint32_t t = 0; t < d->ntasks; t++)
            longest = c.depth[t] > longest ? c.depth[t] : longest;
        *path = longest;
    }
    free(c.mark);
    free(c.depth);
    return rc;
}

int64_t dag_count_edges(const dag *d)
{
    int64_t edges, path;
    return edge_walk(d, &edges, &path) ? -1 : edges;
}

int64_t dag_critical_path(const dag *d)
{
    int64_t edges, path;
    return edge_walk(d, &edges, &path) ? -1 : path;
}

typedef struct order_ctx {
    const uint32_t *pos;
    char           *why;
    size_t          why_size;
} order_ctx;

static int check_edge(void *arg, uint32_t pred, uint32_t succ)
{
    order_ctx *c = arg;
    if (c->pos[pred] < c->pos[succ])
        return 0;
    if (c->why)
        snprintf(c->why, c->why_size, "task %u ran at position %u, before task %u (position %u) it depends on",
                 succ, c->pos[succ], pred, c->pos[pred]);
    return 1;
}

bool dag_check_order(const dag *d, const uint32_t *order, uint32_t n, char *why, size_t why_size)
{
    if (why && why_size)
        why[0] = '\0';
    if (n != d->ntasks) {
        if (why)
            snprintf(why, why_size, "%u tasks in the order, the DAG has %u", n, d->ntasks);
        return false;
    }
    uint32_t *pos = malloc((size_t)(n ? n : 1) * sizeof pos[0]);
    if (!pos) {
        if (why)
            snprintf(why, why_size, "out of memory");
        return false;
    }
    for (uint32_t i = 0; i < n; i++)
        pos[i] = NONE;
    bool ok = true;
    for (uint32_t i = 0; i < n && ok; i++) {
        uint32_t t = order[i];
        if (t >= n || pos[t] != NONE) {
            if (why)
                snprintf(why, why_size, "position %u: task %u is %s", i, t,
                         t >= n ? "out of range" : "there twice");
            ok = false;
        } else {
            pos[t] = i;
        }
    }
    if (ok) {
        order_ctx c = {.pos = pos, .why = why, .why_size = why_size};
        int rc = dag_for_each_dep(d, check_edge, &c);
        if (rc < 0 && why)
            snprintf(why, why_size, "out of memory");
        ok = rc == 0;
    }
    free(pos);
    return ok;
}

/* ---- the standard suite ---- */

uint32_t dag_suite_count(const dag_suite *s)
{
    return 3 + s->ntiles;
}

void dag_suite_name(const dag_suite *s, uint32_t i, char *buf, size_t cap)
{
    if (i == 0)
        snprintf(buf, cap, "independent");
    else if (i == 1)
        snprintf(buf, cap, "chain");
    else if (i == 2)
        snprintf(buf, cap, "fanout_fanin%u", s->width);   /* as the DAG names itself */
    else
        snprintf(buf, cap, "cholesky%u", s->tiles[i - 3]);
}

int dag_suite_make(const dag_suite *s, uint32_t i, dag *d)
{
    if (i == 0)
        return dag_independent(d, s->n);
    if (i == 1)
        return dag_chain(d, s->n);
    if (i == 2)
        return dag_fanout_fanin(d, s->width, s->rounds);
    return dag_cholesky(d, s->tiles[i - 3]);
}

int dag_suite_run(const struct bench_dag_cli *cli, const char *prog, int (*run)(void *ctx, const dag *d),
                  void *ctx)
{
    dag_suite suite = {cli->n, cli->width, cli->rounds, cli->tiles, cli->ntiles};
    int failures = 0, ran = 0;
    for (uint32_t wl = 0; wl < dag_suite_count(&suite); wl++) {
        char full[48];
        dag_suite_name(&suite, wl, full, sizeof full);
        if (!bench_dag_cli_selects(cli, full))
            continue;
        dag d;
        if (dag_suite_make(&suite, wl, &d)) {
            fprintf(stderr, "%s: cannot generate %s (out of memory or size out of range)\n", prog, full);
            failures++;
            continue;
        }
        ran++;
        failures += run(ctx, &d) != 0;
        dag_free(&d);
    }
    if (ran == 0) {
        fprintf(stderr, "%s: --only '%s' selects no workload\n", prog, cli->only ? cli->only : "");
        return 2;
    }
    return failures ? 1 : 0;
}
