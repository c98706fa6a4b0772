/* chip.stress: random DAGs checked against a sequential reference execution.
 *
 * Each seed builds a random program: tasks over random views of a few chip
 * buffers (1-D ranges, strided and overlapping 2-D and 3-D views, U64 / U32 /
 * U16 / U8 views of the same bytes) with random tags, and in some cases scopes
 * holding strata_chip_alloc intermediates. Every kernel hashes everything it
 * reads (INPUT, INOUT) with the task's seed, writes values derived from that hash
 * into everything it writes (OUTPUT, OUTPUT_EXISTING, INOUT), and stores the hash
 * in its own slot of a log buffer, a tensor tagged NO_DEP (no other task ever
 * touches that slot, so that use is safe).
 *
 * Variants: scopes nested up to six deep with per-depth ring sizes, mixed
 * tasks on a chip of clusters, and runtime host_build_graph with the order
 * given as explicit edges.
 *
 * The same program then runs sequentially, in submission order, on host arrays
 * with the same kernel. A dependency the engine missed or ordered wrongly shows
 * as a wrong log entry (a task read bytes it should not have seen: RAW or WAR)
 * or as a wrong byte in a buffer (writes landed in the wrong order: WAW). The
 * checks report the seed, the first wrong task or byte and the tasks involved. */
#include "harness.h"

#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <unistd.h>

enum {
    NBUF = 8,                    /* user buffers the DAG works on */
    BUF_BYTES = 512,             /* 64 uint64 each */
    MAX_VIEWS = 4,               /* data tensors per task; the log tensor comes on top */
    MAX_TASKS = 320,
    MAX_OPS = 4 * MAX_TASKS,
    MAX_INTER = MAX_TASKS,       /* generate() makes at most one alloc per task */
    MAX_BUFS = NBUF + MAX_INTER, /* buffer ids: users 0..NBUF-1, intermediate k is NBUF + k */
    INTER_BYTES_MAX = 512,
    LOG_BYTES = MAX_TASKS * 8,
    MASK_WORDS = INTER_BYTES_MAX / 64,
    FUNC_AIC = 0,
    FUNC_AIV = 1,
    FUNC_NOP_AIC = 2,            /* the idle parts of a mixed task */
    FUNC_NOP_AIV = 3,
    MAX_DEPTH = 6,               /* scopes nest this deep at most (the engine's rings: 4) */
};

#define LOG_SENTINEL 0xA5A5F00DDEADBEEFull

/* ---------------------------------------------------------------- hashing */

static uint64_t mix(uint64_t h, uint64_t v)
{
    uint64_t z = h ^ (v + 0x9E3779B97F4A7C15ull + (h << 6) + (h >> 2));
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

typedef struct rng {
    uint64_t s;
} rng;

static uint64_t rng_next(rng *r)
{
    r->s += 0x9E3779B97F4A7C15ull;
    uint64_t z = r->s;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* Uniform in [0, n); 0 when n is 0. */
static uint64_t below(rng *r, uint64_t n)
{
    return n ? rng_next(r) % n : 0;
}

/* ---------------------------------------------------------------- views */

/* Strides in elements, "all zero" meaning row-major contiguous (strata/tensor.h). */
static void eff_strides(const strata_tensor *t, uint64_t st[STRATA_MAX_DIMS])
{
    bool all_zero = true;
    for (uint32_t d = 0; d < t->ndims; d++)
        all_zero &= t->strides[d] == 0;
    uint64_t s = 1;
    for (uint32_t d = t->ndims; d-- > 0;) {
        st[d] = all_zero ? s : (uint64_t)t->strides[d];
        s *= t->shape[d];
    }
}

static uint64_t elem_count(const strata_tensor *t)
{
    uint64_t n = 1;
    for (uint32_t d = 0; d < t->ndims; d++)
        n *= t->shape[d];
    return n;
}

/* Element k of the view in row-major index order, as an element index from addr. */
static uint64_t elem_at(const strata_tensor *t, const uint64_t st[STRATA_MAX_DIMS], uint64_t k)
{
    uint64_t e = t->offset;
    for (uint32_t d = t->ndims; d-- > 0;) {
        e += (k % t->shape[d]) * st[d];
        k /= t->shape[d];
    }
    return e;
}

/* Element e of t's buffer, zero-extended (memcpy: the bytes are shared by views
   of several dtypes). */
static uint64_t load_elem(const strata_tensor *t, uint64_t e)
{
    size_t es = strata_dtype_size(t->dtype);
    const void *p = (const void *)(uintptr_t)(t->addr + e * es);
    uint8_t v1;
    uint16_t v2;
    uint32_t v4;
    uint64_t v8;
    switch (es) {
    case 1: memcpy(&v1, p, 1); return v1;
    case 2: memcpy(&v2, p, 2); return v2;
    case 4: memcpy(&v4, p, 4); return v4;
    default: memcpy(&v8, p, 8); return v8;
    }
}

/* Store the low bytes of v as element e of t's buffer. */
static void store_elem(const strata_tensor *t, uint64_t e, uint64_t v)
{
    size_t es = strata_dtype_size(t->dtype);
    void *p = (void *)(uintptr_t)(t->addr + e * es);
    uint8_t v1 = (uint8_t)v;
    uint16_t v2 = (uint16_t)v;
    uint32_t v4 = (uint32_t)v;
    switch (es) {
    case 1: memcpy(p, &v1, 1); break;
    case 2: memcpy(p, &v2, 2); break;
    case 4: memcpy(p, &v4, 4); break;
    default: memcpy(p, &v, 8); break;
    }
}

static bool tag_reads(strata_tag tag)
{
    return tag == STRATA_INPUT || tag == STRATA_INOUT;
}

static bool tag_writes(strata_tag tag)
{
    return tag == STRATA_OUTPUT || tag == STRATA_INOUT || tag == STRATA_OUTPUT_EXISTING;
}

/* The bytes of its buffer a view touches, as a bit mask. */
typedef struct bytemask {
    uint64_t w[MASK_WORDS];
} bytemask;

static bytemask view_mask(const strata_tensor *t)
{
    bytemask m;
    memset(&m, 0, sizeof m);
    uint64_t st[STRATA_MAX_DIMS];
    eff_strides(t, st);
    size_t es = strata_dtype_size(t->dtype);
    for (uint64_t k = 0, n = elem_count(t); k < n; k++) {
        uint64_t first = elem_at(t, st, k) * es;
        for (uint64_t b = first; b < first + es; b++)
            m.w[b / 64] |= 1ull << (b % 64);
    }
    return m;
}

static bool masks_meet(const bytemask *a, const bytemask *b)
{
    for (int i = 0; i < MASK_WORDS; i++)
        if (a->w[i] & b->w[i])
            return true;
    return false;
}

/* ---------------------------------------------------------------- the kernel */

/* Kernels running at once; the most seen, and how many kernels started while
   another was running: evidence that a missed dependency could have raced. */
static _Atomic int kernels_running, kernels_running_max;
static _Atomic uint64_t kernels_overlapped;

/* scalars: [0] the task's seed, [1] nanoseconds to spin, [2] nonzero: fail. */
static int kernel_checksum(const strata_task_args *a)
{
    if (a->nscalars != 3 || a->ntensors > MAX_VIEWS + 1)
        return 100;
    if (a->scalars[2])
        return 7;   /* an injected failure: nothing written */
    int now = atomic_fetch_add(&kernels_running, 1) + 1;
    if (now > 1)
        atomic_fetch_add(&kernels_overlapped, 1);
    for (int seen = atomic_load(&kernels_running_max);
         now > seen && !atomic_compare_exchange_weak(&kernels_running_max, &seen, now);)
        ;
    uint64_t st[STRATA_MAX_DIMS];
    uint64_t h = mix(0x5EEDull, a->scalars[0]);
    for (uint32_t i = 0; i < a->ntensors; i++) {
        const strata_tensor *t = &a->tensors[i];
        if (!tag_reads(a->tags[i]))
            continue;
        eff_strides(t, st);
        for (uint64_t k = 0, n = elem_count(t); k < n; k++)
            h = mix(h, load_elem(t, elem_at(t, st, k)));
    }
    if (a->scalars[1]) {
        /* hold the core a while: shuffles timing and widens races; yielding lets
           other lanes start tasks meanwhile even when CPUs are scarce */
        uint64_t until = test_now_ns() + a->scalars[1];
        while (test_now_ns() < until)
            sched_yield();
    }
    for (uint32_t i = 0; i < a->ntensors; i++) {
        const strata_tensor *t = &a->tensors[i];
        eff_strides(t, st);
        if (a->tags[i] == STRATA_NO_DEP) {
            for (uint64_t k = 0, n = elem_count(t); k < n; k++)
                store_elem(t, elem_at(t, st, k), h);
        } else if (tag_writes(a->tags[i])) {
            for (uint64_t k = 0, n = elem_count(t); k < n; k++)
                store_elem(t, elem_at(t, st, k), mix(h, ((uint64_t)i << 32) | k));
        }
    }
    atomic_fetch_sub(&kernels_running, 1);
    return 0;
}

/* One function per core type, doing the same thing. */
static int kernel_aic(const strata_task_args *a)
{
    return kernel_checksum(a);
}

static int kernel_nop(const strata_task_args *a)
{
    (void)a;
    return 0;
}

static int kernel_aiv(const strata_task_args *a)
{
    return kernel_checksum(a);
}

/* ---------------------------------------------------------------- programs */

typedef struct view {
    uint32_t      buf;    /* 0..NBUF-1: user buffer; NBUF + k: intermediate k */
    strata_tag    tag;
    strata_tensor t;      /* addr 0 until placed; nbytes: the buffer's size */
    bytemask      mask;
} view;

typedef enum op_kind { OP_TASK, OP_SCOPE_BEGIN, OP_SCOPE_END, OP_ALLOC } op_kind;

typedef struct op {
    op_kind  kind;
    /* OP_TASK */
    int      func;
    uint32_t task;        /* index: its log slot */
    uint32_t nviews;
    uint32_t log_at;      /* where the log tensor goes among the task's tensors */
    uint64_t seed, spin, fail;
    view     v[MAX_VIEWS];
    /* a mixed task (a chip of clusters): the kernel runs as part `part` (0 AIC,
       1 AIV0, 2 AIV1) with the views; the other parts present in `nops` (bit
       per part) run a kernel that does nothing */
    bool     mixed;
    uint32_t part, nops;
    /* OP_ALLOC */
    uint32_t inter;
} op;

typedef struct gen_params {
    uint32_t ntasks;
    uint32_t aiv_percent;     /* share of tasks on AIV */
    bool     heap;            /* scopes with intermediates */
    uint32_t inter_elems_max; /* U64 elements, a multiple of 8, <= 64 */
    uint32_t allocs_per_scope;
    uint32_t max_depth;       /* scopes nest up to this (0: 2, as with heap) and open without heap too */
    uint32_t mixed_percent;   /* share of tasks submitted as mixed tasks */
    uint32_t slot_percent;    /* share of views that are whole aligned slots (the TensorMap's cells) */
} gen_params;

typedef struct program {
    uint64_t seed;
    uint32_t nops, ntasks, ninter;
    uint64_t inter_elems[MAX_INTER];
    uint64_t inter_bytes_total;
    op       ops[MAX_OPS];
    /* filled by the orchestration function */
    strata_buffer bufs[NBUF], log;
    strata_tensor inter_t[MAX_INTER];
    uint32_t      submitted;
    int32_t       failed_op;      /* op whose call failed, or -1 */
} program;

static uint64_t buf_bytes(const program *p, uint32_t buf)
{
    return buf < NBUF ? BUF_BYTES : p->inter_elems[buf - NBUF] * 8;
}

/* A random view of a buffer of nbytes: 1-D ranges, the whole buffer, strided
   2-D views (rows may interleave or overlap) and 3-D views, of several dtypes. */
/* A tile of the buffer seen as a matrix of U64 rows of 8 (64 bytes): 2 x 4
   or 4 x 4 elements (sometimes 2 x 2: a grid of another size) at a multiple
   of its shape, as tiled kernels name tiles of one matrix. */
static strata_tensor tile_view(rng *r, uint64_t nbytes)
{
    uint64_t rows = nbytes / 64, th = below(r, 100) < 50 ? 2 : 4, tw = below(r, 100) < 95 ? 4 : 2;
    if (rows < th)
        th = rows;
    uint64_t shape[2] = {th, tw};
    strata_tensor t = strata_tensor_make((const void *)(uintptr_t)8, STRATA_U64, 2, shape);
    t.addr = 0;
    t.nbytes = nbytes;
    t.strides[0] = 8;
    t.strides[1] = 1;
    t.offset = below(r, rows / th) * th * 8 + below(r, 8 / tw) * tw;
    return t;
}

/* 1 to 3 whole 64-byte slots at a slot boundary, as U64 (a buffer of slots,
   one per datum; sometimes 32-byte halves: a grid of another size); or, for
   even buffers, a tile (tile_view). */
static strata_tensor slot_view(rng *r, uint32_t buf, uint64_t nbytes)
{
    if (buf % 2 == 0)
        return tile_view(r, nbytes);
    uint64_t slot = below(r, 100) < 97 ? 64 : 32, nslots = nbytes / slot;
    uint64_t count = 1 + below(r, nslots < 3 ? nslots : 3);
    uint64_t first = below(r, nslots - count + 1);
    uint64_t shape[1] = {count * slot / 8};
    strata_tensor t = strata_tensor_make((const void *)(uintptr_t)8, STRATA_U64, 1, shape);
    t.addr = 0;
    t.nbytes = nbytes;
    t.offset = first * slot / 8;
    return t;
}

static strata_tensor random_view(rng *r, uint64_t nbytes)
{
    static const strata_dtype dtypes[] = {STRATA_U64, STRATA_U64, STRATA_U64, STRATA_U64, STRATA_U64,
                                          STRATA_I64, STRATA_U32, STRATA_F32, STRATA_U16, STRATA_U8};
    for (;;) {
        strata_tensor t;
        memset(&t, 0, sizeof t);
        t.nbytes = nbytes;
        t.dtype = dtypes[below(r, sizeof dtypes / sizeof dtypes[0])];
        uint64_t n = nbytes / strata_dtype_size(t.dtype);
        uint64_t form = below(r, 100);
        if (form < 45) {
            uint64_t len = below(r, 100) < 80 ? n / 8 : n;   /* mostly short ranges */
            t.ndims = 1;
            t.shape[0] = 1 + below(r, len < 64 ? len : 64);
            t.offset = below(r, n - t.shape[0] + 1);
            return t;
        }
        if (form < 48) {
            t.ndims = 1;
            t.shape[0] = n;
            return t;
        }
        if (form < 85) {
            t.ndims = 2;
            t.shape[0] = 1 + below(r, 6);
            t.shape[1] = 1 + below(r, 6);
            t.strides[1] = below(r, 100) < 70 ? 1 : (int64_t)below(r, 4);
            uint64_t row = t.shape[1] * (t.strides[1] ? (uint64_t)t.strides[1] : 1);
            t.strides[0] = (int64_t)below(r, row + 4);   /* < row: rows overlap */
        } else {
            t.ndims = 3;
            for (int d = 0; d < 3; d++) {
                t.shape[d] = 1 + below(r, 4);
                t.strides[d] = (int64_t)below(r, 12);
            }
        }
        uint64_t st[STRATA_MAX_DIMS], span = 0;
        eff_strides(&t, st);
        for (uint32_t d = 0; d < t.ndims; d++)
            span += (t.shape[d] - 1) * st[d];
        if (span >= n)
            continue;
        t.offset = below(r, n - span);
        return t;
    }
}

static strata_tag random_tag(rng *r)
{
    uint64_t x = below(r, 100);
    return x < 45 ? STRATA_INPUT : x < 65 ? STRATA_OUTPUT : x < 85 ? STRATA_INOUT : STRATA_OUTPUT_EXISTING;
}

/* Two views of one task conflict when they share a byte and one writes. */
static bool views_conflict(const view *a, const view *b)
{
    return a->buf == b->buf && (tag_writes(a->tag) || tag_writes(b->tag)) && masks_meet(&a->mask, &b->mask);
}

/* Task a (earlier) and task b must run in submission order. */
static bool tasks_conflict(const op *a, const op *b)
{
    for (uint32_t i = 0; i < a->nviews; i++)
        for (uint32_t j = 0; j < b->nviews; j++)
            if (views_conflict(&a->v[i], &b->v[j]))
                return true;
    return false;
}

static op *new_op(program *p, op_kind kind)
{
    CHECK(p->nops < MAX_OPS);
    op *o = &p->ops[p->nops++];
    memset(o, 0, sizeof *o);
    o->kind = kind;
    return o;
}

static op *new_task(program *p, rng *r, const gen_params *g)
{
    CHECK(p->ntasks < MAX_TASKS);
    op *o = new_op(p, OP_TASK);
    o->task = p->ntasks++;
    o->func = below(r, 100) < g->aiv_percent ? FUNC_AIV : FUNC_AIC;
    o->mixed = g->mixed_percent && below(r, 100) < g->mixed_percent;
    if (o->mixed) {
        o->part = o->func == FUNC_AIC ? 0 : 1 + (uint32_t)below(r, 2);
        o->nops = (uint32_t)below(r, 8) & ~(1u << o->part);
    }
    o->seed = rng_next(r);
    uint64_t x = below(r, 100);
    /* nanoseconds; the rare long ones outlast a scheduler tick, so kernels overlap
       even on a busy machine */
    o->spin = x < 40 ? 0 : x < 80 ? below(r, 5000) : x < 97 ? below(r, 50000) : below(r, 1000000);
    return o;
}

/* Add view v to task o unless it conflicts with one of o's views. */
static bool add_view(op *o, view v)
{
    v.mask = view_mask(&v.t);
    for (uint32_t i = 0; i < o->nviews; i++)
        if (views_conflict(&o->v[i], &v))
            return false;
    o->v[o->nviews++] = v;
    return true;
}

/* A task over 0..4 random views; `active` lists the intermediates in scope. */
static void random_task(program *p, rng *r, const gen_params *g, const uint32_t *active, uint32_t nactive)
{
    op *o = new_task(p, r, g);
    uint64_t x = below(r, 100);
    uint32_t want = x < 3 ? 0 : x < 40 ? 1 : x < 75 ? 2 : x < 90 ? 3 : MAX_VIEWS;
    for (uint32_t tries = 0; o->nviews < want && tries < 20; tries++) {
        view v = {0};
        v.buf = nactive && below(r, 100) < 40 ? NBUF + active[below(r, nactive)] : (uint32_t)below(r, NBUF);
        v.tag = random_tag(r);
        v.t = g->slot_percent && below(r, 100) < g->slot_percent ? slot_view(r, v.buf, buf_bytes(p, v.buf))
                                                                 : random_view(r, buf_bytes(p, v.buf));
        add_view(o, v);
    }
    o->log_at = (uint32_t)below(r, o->nviews + 1);
}

typedef struct scope_state {
    uint32_t depth;
    uint32_t left[MAX_DEPTH + 1]; /* tasks left in the scope at each depth */
    uint32_t allocs_left;       /* in the outermost scope, nested ones included */
    uint32_t active[16], active_depth[16], nactive;
} scope_state;

static void end_scope(program *p, scope_state *s)
{
    new_op(p, OP_SCOPE_END);
    uint32_t keep = 0;
    for (uint32_t i = 0; i < s->nactive; i++) {
        if (s->active_depth[i] < s->depth) {
            s->active[keep] = s->active[i];
            s->active_depth[keep++] = s->active_depth[i];
        }
    }
    s->nactive = keep;
    s->depth--;
}

/* An intermediate in the current scope; usually made live by a task that writes
   all of it at once (heap memory starts with garbage), sometimes left unused. */
static void alloc_inter(program *p, rng *r, const gen_params *g, scope_state *s)
{
    CHECK(p->ninter < MAX_INTER);
    uint32_t k = p->ninter++;
    /* half of them the largest size: the heap fills up and waits for recycling */
    p->inter_elems[k] = below(r, 2) ? g->inter_elems_max : 8 * (1 + below(r, g->inter_elems_max / 8));
    p->inter_bytes_total += p->inter_elems[k] * 8;
    op *a = new_op(p, OP_ALLOC);
    a->inter = k;
    s->allocs_left--;
    if (below(r, 100) < 10 || p->ntasks == g->ntasks)
        return;
    op *o = new_task(p, r, g);
    view v = {0};
    v.buf = NBUF + k;
    v.tag = below(r, 2) ? STRATA_OUTPUT : STRATA_OUTPUT_EXISTING;
    uint64_t shape[1] = {p->inter_elems[k]};
    v.t = strata_tensor_make((const void *)(uintptr_t)1, STRATA_U64, 1, shape);
    v.t.addr = 0;
    add_view(o, v);
    for (uint64_t n = below(r, 3); n > 0; n--) {
        view in = {0};
        in.buf = s->nactive && below(r, 2) ? NBUF + s->active[below(r, s->nactive)] : (uint32_t)below(r, NBUF);
        in.tag = STRATA_INPUT;
        in.t = random_view(r, buf_bytes(p, in.buf));
        add_view(o, in);
    }
    o->log_at = (uint32_t)below(r, o->nviews + 1);
    CHECK(s->nactive < 16);
    s->active[s->nactive] = k;
    s->active_depth[s->nactive++] = s->depth;
}

/* Heap use stays within what a ring of (allocs_per_scope + 3) * largest buffer
   bytes always serves: the live region of one outermost scope plus a wrapped
   skip, and a free part of which one side holds a largest buffer. */
static void generate(program *p, uint64_t seed, const gen_params *g)
{
    CHECK(g->ntasks <= MAX_TASKS);
    p->seed = seed;
    p->nops = p->ntasks = p->ninter = 0;
    p->inter_bytes_total = 0;
    rng r = {seed * 0x2545F4914F6CDD1Dull + 17};
    scope_state s = {0};
    /* heap alone: scopes of depth 1 and 2, as before max_depth (same seeds) */
    uint32_t max_depth = g->max_depth ? g->max_depth : 2, deeper = g->max_depth ? 25 : 10;
    CHECK(max_depth <= MAX_DEPTH);
    while (p->ntasks < g->ntasks) {
        if (g->heap || g->max_depth) {
            if (s.depth == 0 && below(&r, 100) < 30) {
                new_op(p, OP_SCOPE_BEGIN);
                s.depth = 1;
                s.left[1] = 1 + (uint32_t)below(&r, 8);
                s.allocs_left = g->heap ? 1 + (uint32_t)below(&r, g->allocs_per_scope) : 0;
            } else if (s.depth >= 1 && s.depth < max_depth && below(&r, 100) < deeper) {
                new_op(p, OP_SCOPE_BEGIN);
                s.depth++;
                s.left[s.depth] = 1 + (uint32_t)below(&r, 6);
            }
            if (g->heap && s.depth > 0 && s.allocs_left > 0 && below(&r, 100) < 50)
                alloc_inter(p, &r, g, &s);
        }
        if (p->ntasks < g->ntasks)
            random_task(p, &r, g, s.active, s.nactive);
        if (s.depth > 0 && --s.left[s.depth] == 0) {
            end_scope(p, &s);
            while (s.depth > 0 && s.left[s.depth] == 0)
                end_scope(p, &s);
        }
    }
    while (s.depth > 0)
        end_scope(p, &s);
}

/* ---------------------------------------------------------------- execution */

/* The tensors of task o with buffer `id` at base[id] (size[id] bytes) and the log
   at log_addr. Returns the tensor count. */
static uint32_t build_task(const op *o, const uint64_t *base, const uint64_t *size, uint64_t log_addr,
                           strata_tensor *ts, strata_tag *tags)
{
    uint32_t n = 0;
    for (uint32_t i = 0; i <= o->nviews; i++) {
        if (i == o->log_at) {
            uint64_t one[1] = {1};
            ts[n] = strata_tensor_make((const void *)(uintptr_t)log_addr, STRATA_U64, 1, one);
            ts[n].nbytes = LOG_BYTES;
            ts[n].offset = o->task;
            tags[n++] = STRATA_NO_DEP;
        }
        if (i < o->nviews) {
            ts[n] = o->v[i].t;
            ts[n].addr = base[o->v[i].buf];
            ts[n].nbytes = size[o->v[i].buf];
            tags[n++] = o->v[i].tag;
        }
    }
    return n;
}

/* The orchestration function: replays the program. cfg->user[0]: the program. */
static int orchestrate(strata_chip_orch *orch, const strata_task_args *args, const strata_call_config *cfg)
{
    (void)args;
    program *p = (program *)(uintptr_t)cfg->user[0];
    static uint64_t base[MAX_BUFS], size[MAX_BUFS];   /* orchestrator thread only */
    for (uint32_t b = 0; b < NBUF; b++) {
        base[b] = p->bufs[b].addr;
        size[b] = p->bufs[b].nbytes;
    }
    p->submitted = 0;
    p->failed_op = -1;
    for (uint32_t i = 0; i < p->nops; i++) {
        const op *o = &p->ops[i];
        int rc = STRATA_OK;
        switch (o->kind) {
        case OP_SCOPE_BEGIN:
            rc = strata_chip_scope_begin(orch);
            break;
        case OP_SCOPE_END:
            rc = strata_chip_scope_end(orch);
            break;
        case OP_ALLOC: {
            uint64_t shape[1] = {p->inter_elems[o->inter]};
            strata_tensor *t = &p->inter_t[o->inter];
            rc = strata_chip_alloc(orch, STRATA_U64, 1, shape, t);
            /* a contiguous U64 tensor of that shape over a 64-byte aligned buffer */
            if (rc == STRATA_OK && (t->addr == 0 || t->addr % 64 || t->nbytes < shape[0] * 8 || t->offset ||
                                    t->dtype != STRATA_U64 || t->ndims != 1 || t->shape[0] != shape[0]))
                rc = STRATA_EINVAL;
            base[NBUF + o->inter] = t->addr;
            size[NBUF + o->inter] = t->nbytes;
            break;
        }
        case OP_TASK: {
            strata_tensor ts[MAX_VIEWS + 1];
            strata_tag tags[MAX_VIEWS + 1];
            uint32_t n = build_task(o, base, size, p->log.addr, ts, tags);
            uint64_t sc[3] = {o->seed, o->spin, o->fail};
            strata_task_args a = {ts, tags, n, sc, 3};
            if (o->mixed) {
                static const strata_task_args none;
                int id[3] = {-1, -1, -1};
                const strata_task_args *pa[3] = {NULL, NULL, NULL};
                for (uint32_t part = 0; part < 3; part++)
                    if (o->nops & (1u << part)) {
                        id[part] = part == 0 ? FUNC_NOP_AIC : FUNC_NOP_AIV;
                        pa[part] = &none;
                    }
                id[o->part] = o->func;
                pa[o->part] = &a;
                strata_mixed_task m = {id[0], id[1], id[2], pa[0], pa[1], pa[2]};
                uint32_t number = UINT32_MAX;
                rc = strata_chip_submit_mixed(orch, &m, &number);
                if (rc == STRATA_OK && number != p->submitted)
                    rc = STRATA_EINVAL;   /* task numbers count every submit of the run */
            } else {
                rc = strata_chip_submit(orch, o->func, &a);
            }
            if (rc == STRATA_OK)
                p->submitted++;
            break;
        }
        }
        if (rc) {
            p->failed_op = (int32_t)i;
            return rc;
        }
    }
    if (cfg->user[1]) {
        /* runtime host_build_graph: the tags order nothing there, so the
           program's order is given as explicit edges, one for every pair of
           tasks that conflict (the tag rules), listed consumer by consumer,
           newest producer first */
        for (uint32_t i = 0; i < p->nops; i++) {
            const op *c = &p->ops[i];
            for (uint32_t j = i; c->kind == OP_TASK && j-- > 0;) {
                const op *o = &p->ops[j];
                if (o->kind != OP_TASK || !tasks_conflict(o, c))
                    continue;
                int rc = strata_chip_add_dep(orch, o->task, c->task);
                if (rc) {
                    p->failed_op = (int32_t)i;
                    return rc;
                }
            }
        }
    }
    return 0;
}

/* Host state of one execution: user buffers, intermediates, the log. */
typedef struct host_state {
    uint8_t  bufs[NBUF][BUF_BYTES];
    uint8_t  inter[MAX_INTER][INTER_BYTES_MAX];
    uint64_t log[MAX_TASKS];
} host_state;

/* Run task o on host memory: the reference semantics of one task. */
static void host_task(host_state *h, const program *p, const op *o)
{
    uint64_t base[MAX_BUFS], size[MAX_BUFS];
    for (uint32_t b = 0; b < NBUF; b++) {
        base[b] = (uint64_t)(uintptr_t)h->bufs[b];
        size[b] = BUF_BYTES;
    }
    for (uint32_t k = 0; k < p->ninter; k++) {
        base[NBUF + k] = (uint64_t)(uintptr_t)h->inter[k];
        size[NBUF + k] = p->inter_elems[k] * 8;
    }
    strata_tensor ts[MAX_VIEWS + 1];
    strata_tag tags[MAX_VIEWS + 1];
    uint32_t n = build_task(o, base, size, (uint64_t)(uintptr_t)h->log, ts, tags);
    uint64_t sc[3] = {o->seed, 0, 0};
    CHECK(kernel_checksum(&(strata_task_args){ts, tags, n, sc, 3}) == 0);
}

/* Initial contents: random bytes from the seed, the log all sentinel. */
static void initial_state(host_state *h, uint64_t seed)
{
    rng r = {seed ^ 0xC0FFEEull};
    for (int b = 0; b < NBUF; b++)
        for (int i = 0; i < BUF_BYTES; i += 8) {
            uint64_t v = rng_next(&r);
            memcpy(&h->bufs[b][i], &v, 8);
        }
    memset(h->inter, 0, sizeof h->inter);
    for (int t = 0; t < MAX_TASKS; t++)
        h->log[t] = LOG_SENTINEL;
}

/* The sequential reference: every task in submission order. skip (may be NULL)
   marks tasks that do not run. */
static void run_reference(host_state *h, const program *p, const bool *skip)
{
    for (uint32_t i = 0; i < p->nops; i++) {
        const op *o = &p->ops[i];
        if (o->kind == OP_TASK && !(skip && skip[o->task]))
            host_task(h, p, o);
    }
}

static const char *tag_name(strata_tag tag)
{
    switch (tag) {
    case STRATA_INPUT: return "INPUT";
    case STRATA_OUTPUT: return "OUTPUT";
    case STRATA_INOUT: return "INOUT";
    case STRATA_OUTPUT_EXISTING: return "OUTPUT_EXISTING";
    case STRATA_NO_DEP: return "NO_DEP";
    }
    return "?";
}

static const char *dtype_name(strata_dtype dtype)
{
    switch (dtype) {
    case STRATA_U64: return "U64";
    case STRATA_I64: return "I64";
    case STRATA_U32: return "U32";
    case STRATA_F32: return "F32";
    case STRATA_U16: return "U16";
    case STRATA_U8: return "U8";
    default: return "?";
    }
}

static void dump_task(const op *o)
{
    fprintf(stderr, "  task %u (func_id %d, seed 0x%llx, spin %llu ns", o->task, o->func,
            (unsigned long long)o->seed, (unsigned long long)o->spin);
    if (o->mixed)
        fprintf(stderr, ", mixed: the kernel as part %u, idle parts 0x%x", o->part, o->nops);
    fprintf(stderr, "):\n");
    for (uint32_t i = 0; i < o->nviews; i++) {
        const strata_tensor *t = &o->v[i].t;
        fprintf(stderr, "    %s %s %u, %s offset %llu shape", tag_name(o->v[i].tag),
                o->v[i].buf < NBUF ? "buffer" : "intermediate", o->v[i].buf < NBUF ? o->v[i].buf : o->v[i].buf - NBUF,
                dtype_name(t->dtype), (unsigned long long)t->offset);
        for (uint32_t d = 0; d < t->ndims; d++)
            fprintf(stderr, " %llu", (unsigned long long)t->shape[d]);
        fprintf(stderr, " strides");
        for (uint32_t d = 0; d < t->ndims; d++)
            fprintf(stderr, " %lld", (long long)t->strides[d]);
        fprintf(stderr, "\n");
    }
}

static const op *task_op(const program *p, uint32_t task)
{
    for (uint32_t i = 0; i < p->nops; i++)
        if (p->ops[i].kind == OP_TASK && p->ops[i].task == task)
            return &p->ops[i];
    return NULL;
}

/* Print the earlier tasks task `t` must follow, for a failure report. */
static void dump_predecessors(const program *p, const op *t)
{
    fprintf(stderr, "  it must follow (conflicting earlier tasks, newest first):\n");
    int shown = 0;
    for (uint32_t i = (uint32_t)(t - p->ops); i-- > 0 && shown < 6;) {
        const op *o = &p->ops[i];
        if (o->kind == OP_TASK && tasks_conflict(o, t)) {
            dump_task(o);
            shown++;
        }
    }
}

/* ---------------------------------------------------------------- the rig */

/* A run that never returns is a failure of its own: say which seed hung rather
   than leave it to the case's hard timeout. Re-armed before every run. */
enum { WATCHDOG_S = 120 };
static char watchdog_msg[256];
static size_t watchdog_len;

static void on_watchdog(int sig)
{
    (void)sig;
    ssize_t r = write(2, watchdog_msg, watchdog_len);
    (void)r;
    _exit(3);
}

static void watchdog_arm(const char *what, uint64_t seed)
{
    int n = snprintf(watchdog_msg, sizeof watchdog_msg,
                     "FAIL: %s, seed %llu: the run has not returned after %d s (hang)\n", what,
                     (unsigned long long)seed, WATCHDOG_S);
    watchdog_len = n < 0 ? 0 : (size_t)n < sizeof watchdog_msg ? (size_t)n : sizeof watchdog_msg - 1;
    signal(SIGALRM, on_watchdog);
    alarm(WATCHDOG_S);
}

typedef struct rig {
    strata_worker *w;
    strata_handle  h;
    strata_buffer  bufs[NBUF], log;
    program       *p;
    host_state    *ref, *got;
    uint64_t       runs, tasks, t0;   /* for the summary line */
    char           msg[4096];         /* strata_last_error() right after the last run */
} rig;

/* A worker of runtime `runtime` (NULL: the default), as test_worker makes it. */
static void rig_open_runtime(rig *g, uint32_t aic, uint32_t aiv, const char *runtime)
{
    memset(g, 0, sizeof *g);
    strata_worker_config cfg;
    strata_worker_config_init(&cfg, 2);
    cfg.aic_cores = aic;
    cfg.aiv_cores = aiv;
    cfg.device_memory_bytes = 256ull << 20;
    if (runtime)
        cfg.runtime = runtime;
    CHECK_OK(strata_worker_create(&cfg, &g->w));
    CHECK_OK(strata_worker_init(g->w));
    static const strata_kernel_entry kernels[] = {
        {FUNC_AIC, STRATA_AIC, kernel_aic},
        {FUNC_AIV, STRATA_AIV, kernel_aiv},
        {FUNC_NOP_AIC, STRATA_AIC, kernel_nop},
        {FUNC_NOP_AIV, STRATA_AIV, kernel_nop},
    };
    strata_chip_callable c = {"stress", orchestrate, kernels, 4};
    CHECK_OK(strata_worker_register_chip(g->w, &c, &g->h));
    for (int b = 0; b < NBUF; b++)
        g->bufs[b] = test_malloc(g->w, BUF_BYTES);
    g->log = test_malloc(g->w, LOG_BYTES);
    g->p = malloc(sizeof *g->p);
    g->ref = malloc(sizeof *g->ref);
    g->got = malloc(sizeof *g->got);
    CHECK(g->p && g->ref && g->got);
    atomic_store(&kernels_running, 0);
    atomic_store(&kernels_running_max, 0);
    atomic_store(&kernels_overlapped, 0);
    g->t0 = test_now_ns();
}

static void rig_open(rig *g, uint32_t aic, uint32_t aiv)
{
    rig_open_runtime(g, aic, aiv, NULL);
}

/* Generate the program of `seed` and load its initial state into the chip. */
static void prepare(rig *g, uint64_t seed, const gen_params *gp)
{
    program *p = g->p;
    generate(p, seed, gp);
    for (int b = 0; b < NBUF; b++)
        p->bufs[b] = g->bufs[b];
    p->log = g->log;
    initial_state(g->ref, seed);
    for (int b = 0; b < NBUF; b++)
        CHECK_OK(strata_worker_copy_to(g->w, g->bufs[b], 0, g->ref->bufs[b], BUF_BYTES));
    CHECK_OK(strata_worker_copy_to(g->w, g->log, 0, g->ref->log, LOG_BYTES));
}

/* Run the prepared program with ring config cc; returns the run's status. */
static int run_program(rig *g, const strata_call_config *cc, const char *what)
{
    strata_call_config cfg = *cc;
    cfg.user[0] = (uint64_t)(uintptr_t)g->p;
    watchdog_arm(what, g->p->seed);
    int rc = strata_worker_run_chip(g->w, g->h, NULL, &cfg);
    snprintf(g->msg, sizeof g->msg, "%s", strata_last_error());
    g->runs++;
    g->tasks += g->p->submitted;
    CHECK(strata_worker_state(g->w) == STRATA_STATE_READY);
    return rc;
}

static void rig_close(rig *g)
{
    printf("%llu runs, %llu tasks in %.2f s; %llu kernels started while another ran, at most %d at once\n",
           (unsigned long long)g->runs, (unsigned long long)g->tasks, (double)(test_now_ns() - g->t0) / 1e9,
           (unsigned long long)atomic_load(&kernels_overlapped), atomic_load(&kernels_running_max));
    for (int b = 0; b < NBUF; b++)
        CHECK_OK(strata_worker_free(g->w, g->bufs[b]));
    CHECK_OK(strata_worker_free(g->w, g->log));
    CHECK_OK(strata_worker_close(g->w));
    CHECK(strata_worker_state(g->w) == STRATA_STATE_CLOSED);
    strata_worker_destroy(g->w);
    free(g->p);
    free(g->ref);
    free(g->got);
    CHECK(atomic_load(&kernels_running) == 0);
}

static void download(rig *g, host_state *out)
{
    for (int b = 0; b < NBUF; b++)
        CHECK_OK(strata_worker_copy_from(g->w, out->bufs[b], g->bufs[b], 0, BUF_BYTES));
    CHECK_OK(strata_worker_copy_from(g->w, out->log, g->log, 0, LOG_BYTES));
}

/* The last task before op index `before` that writes byte `byte` of buffer `buf`. */
static const op *last_writer(const program *p, uint32_t before, uint32_t buf, uint64_t byte)
{
    for (uint32_t i = before; i-- > 0;) {
        const op *o = &p->ops[i];
        if (o->kind != OP_TASK)
            continue;
        for (uint32_t v = 0; v < o->nviews; v++)
            if (o->v[v].buf == buf && tag_writes(o->v[v].tag) && (o->v[v].mask.w[byte / 64] >> (byte % 64) & 1))
                return o;
    }
    return NULL;
}

/* Compare the chip's final state with the reference; on a difference, report
   the first wrong log entry (the earliest task that read wrong bytes) or the
   first wrong buffer byte, with the tasks involved, and fail. */
static void compare(const rig *g, const char *what)
{
    const program *p = g->p;
    for (uint32_t t = 0; t < p->ntasks; t++) {
        if (g->got->log[t] == g->ref->log[t])
            continue;
        const op *o = task_op(p, t);
        fprintf(stderr, "%s, seed %llu: task %u of %u hashed different inputs than the sequential reference "
                "(log 0x%016llx, expected 0x%016llx%s)\n", what, (unsigned long long)p->seed, t, p->ntasks,
                (unsigned long long)g->got->log[t], (unsigned long long)g->ref->log[t],
                g->got->log[t] == LOG_SENTINEL ? ": it never ran" : "");
        dump_task(o);
        dump_predecessors(p, o);
        test_fail(__FILE__, __LINE__, "%s, seed %llu: task %u read wrong data (a missed RAW/WAR dependency, "
                  "or its bytes were reused while in use)",
                  what, (unsigned long long)p->seed, t);
    }
    for (uint32_t b = 0; b < NBUF; b++) {
        for (uint64_t i = 0; i < BUF_BYTES; i++) {
            if (g->got->bufs[b][i] == g->ref->bufs[b][i])
                continue;
            uint64_t got, want;
            memcpy(&got, &g->got->bufs[b][i & ~7ull], 8);
            memcpy(&want, &g->ref->bufs[b][i & ~7ull], 8);
            fprintf(stderr, "%s, seed %llu: buffer %u byte %llu (uint64 element %llu) is 0x%016llx, the reference "
                    "has 0x%016llx\n", what, (unsigned long long)p->seed, b, (unsigned long long)i,
                    (unsigned long long)(i / 8), (unsigned long long)got, (unsigned long long)want);
            const op *w = last_writer(p, p->nops, b, i);
            if (w) {
                fprintf(stderr, "  the last writer of that byte is\n");
                dump_task(w);
                dump_predecessors(p, w);
            } else {
                fprintf(stderr, "  no task writes that byte\n");
            }
            test_fail(__FILE__, __LINE__, "%s, seed %llu: buffer %u element %llu differs from the reference "
                      "(writes landed in the wrong order)", what, (unsigned long long)p->seed, b,
                      (unsigned long long)(i / 8));
        }
    }
}

/* Generate the program of `seed`, run it on the chip with ring config cc, and
   check everything against the reference. */
static void run_seed(rig *g, uint64_t seed, const gen_params *gp, const strata_call_config *cc, const char *what)
{
    program *p = g->p;
    prepare(g, seed, gp);
    run_reference(g->ref, p, NULL);

    strata_run_stats before, after;
    CHECK_OK(strata_worker_stats(g->w, &before));
    int rc = run_program(g, cc, what);
    if (rc != STRATA_OK)
        test_fail(__FILE__, __LINE__, "%s, seed %llu: the run returned %s at op %d: %s", what,
                  (unsigned long long)seed, strata_status_name(rc), p->failed_op, g->msg);
    CHECK_OK(strata_worker_stats(g->w, &after));
    CHECK_EQ_U64(p->submitted, p->ntasks);
    CHECK_EQ_U64(after.tasks_completed - before.tasks_completed, p->ntasks);
    CHECK_EQ_U64(after.tasks_failed, before.tasks_failed);
    CHECK_EQ_U64(after.tasks_canceled, before.tasks_canceled);
    if (cc->ring_task_window)
        CHECK_EQ_U64(after.task_window.size, cc->ring_task_window);
    if (cc->ring_dep_pool)
        CHECK_EQ_U64(after.dep_pool.size, cc->ring_dep_pool);
    if (cc->ring_heap)
        CHECK_EQ_U64(after.heap.size, cc->ring_heap);
    CHECK(after.task_window.high_water >= 1 && after.task_window.high_water <= after.task_window.size);
    CHECK(after.dep_pool.high_water <= after.dep_pool.size);
    CHECK(after.heap.high_water <= after.heap.size);

    download(g, g->got);
    compare(g, what);
}

/* After a run that failed part-way: every task either never ran (its log slot
   still holds the sentinel) or ran on exactly the data the reference gave it;
   tasks marked in must_not_run (may be NULL) never ran. The reference in g->ref
   must skip only tasks that cannot have run. Returns how many tasks ran. */
static uint64_t check_partial(const rig *g, const bool *must_not_run, const char *what)
{
    const program *p = g->p;
    uint64_t ran = 0;
    for (uint32_t t = 0; t < p->ntasks; t++) {
        uint64_t got = g->got->log[t];
        bool forbidden = must_not_run && must_not_run[t];
        ran += got != LOG_SENTINEL;
        if (got == LOG_SENTINEL || (!forbidden && got == g->ref->log[t]))
            continue;
        dump_task(task_op(p, t));
        dump_predecessors(p, task_op(p, t));
        test_fail(__FILE__, __LINE__, "%s, seed %llu: task %u %s (log 0x%016llx, reference 0x%016llx)", what,
                  (unsigned long long)p->seed, t,
                  forbidden ? "depends on the failed task but ran" : "ran on wrong data",
                  (unsigned long long)got, (unsigned long long)g->ref->log[t]);
    }
    return ran;
}

/* ---------------------------------------------------------------- cases */

/* 40 random DAGs of 300 tasks on 2 AIC + 3 AIV cores, default rings. */
TEST_CASE(random_dags_default_rings)
{
    rig g;
    rig_open(&g, 2, 3);
    gen_params gp = {.ntasks = 300, .aiv_percent = 50};
    strata_call_config cc = {0};
    for (uint64_t seed = 1; seed <= 40; seed++)
        run_seed(&g, seed, &gp, &cc, "default rings");
    /* the engine really ran kernels side by side, so a missed edge could race */
    CHECK(atomic_load(&kernels_running_max) >= 2);
    rig_close(&g);
}

/* Task windows of 2..16 slots and dep_pools down to one edge: submit blocks on
   the window and on edges all the time. A task can only need edges to tasks in
   flight, at most window - 1 of them, so these pools never make a run fail. */
TEST_CASE(random_dags_tiny_rings)
{
    static const struct { uint64_t window, dep_pool; } rings[] = {
        {2, 1}, {4, 3}, {8, 7}, {4, 16}, {8, 16}, {16, 15}, {2, 64}, {16, 64},
    };
    rig g;
    rig_open(&g, 2, 3);
    gen_params gp = {.ntasks = 250, .aiv_percent = 50};
    uint64_t n = sizeof rings / sizeof rings[0];
    for (uint64_t seed = 1; seed <= 40; seed++) {
        strata_call_config cc = {0};
        cc.ring_task_window = rings[seed % n].window;
        cc.ring_dep_pool = rings[seed % n].dep_pool;
        char what[64];
        snprintf(what, sizeof what, "task_window %llu, dep_pool %llu", (unsigned long long)cc.ring_task_window,
                 (unsigned long long)cc.ring_dep_pool);
        run_seed(&g, 1000 + seed, &gp, &cc, what);
    }
    rig_close(&g);
}

/* Scopes (some nested) with strata_chip_alloc intermediates in heaps of 1..4 KiB,
   so heap buffers are recycled and their bytes reused by later intermediates
   many times per run, with default and tiny task windows. */
TEST_CASE(random_dags_heap_scopes)
{
    static const struct { uint64_t heap, window, dep_pool; uint32_t elems; } rings[] = {
        {4096, 0, 0, 64}, {4096, 4, 3, 64}, {2048, 0, 0, 32}, {2048, 8, 8, 32}, {1024, 0, 0, 16}, {1024, 2, 1, 16},
    };
    rig g;
    rig_open(&g, 2, 3);
    uint64_t n = sizeof rings / sizeof rings[0], recycled = 0, seeds = 36;
    for (uint64_t seed = 1; seed <= seeds; seed++) {
        gen_params gp = {.ntasks = 300, .aiv_percent = 50, .heap = true, .allocs_per_scope = 4};
        gp.inter_elems_max = rings[seed % n].elems;
        /* the bound of generate(): (allocs + 3) buffers of the largest size fit */
        CHECK((gp.allocs_per_scope + 3) * gp.inter_elems_max * 8 <= rings[seed % n].heap);
        strata_call_config cc = {0};
        cc.ring_heap = rings[seed % n].heap;
        cc.ring_task_window = rings[seed % n].window;
        cc.ring_dep_pool = rings[seed % n].dep_pool;
        char what[96];
        snprintf(what, sizeof what, "heap %llu, task_window %llu, dep_pool %llu", (unsigned long long)cc.ring_heap,
                 (unsigned long long)cc.ring_task_window, (unsigned long long)cc.ring_dep_pool);
        run_seed(&g, 2000 + seed, &gp, &cc, what);
        CHECK(g.p->ninter > 0);
        if (g.p->inter_bytes_total > 2 * cc.ring_heap)
            recycled++;
    }
    /* most runs allocated far more than their heap holds: recycling worked */
    CHECK(recycled >= seeds / 2);
    rig_close(&g);
}

/* Scopes nested up to six deep (the engine's rings: depths 0, 1, 2 and 3 and
   deeper), with intermediates at every depth: each depth's tasks, edges and
   buffers retire in their own ring, while dependencies cross rings freely.
   Per-depth sizes (call_config.*_by_depth) tiny for some depths and default
   for others, and the scalars for every depth. */
TEST_CASE(random_dags_deep_scopes)
{
    static const struct { uint64_t window[4], dep[4], heap[4]; uint64_t scalar_window; } rings[] = {
        {{0}, {0}, {4096, 4096, 4096, 4096}, 0},
        {{4, 2, 8, 1}, {3, 1, 8, 2}, {4096, 4096, 4096, 4096}, 0},
        {{0, 0, 2, 2}, {0, 0, 1, 1}, {0, 4096, 4096, 8192}, 0},
        {{0}, {0}, {4096, 4096, 4096, 4096}, 4},
        {{16, 1, 1, 1}, {0}, {8192, 4096, 4096, 4096}, 0},
    };
    rig g;
    rig_open(&g, 2, 3);
    uint64_t n = sizeof rings / sizeof rings[0];
    uint32_t deepest = 0;
    for (uint64_t seed = 1; seed <= 40; seed++) {
        gen_params gp = {.ntasks = 300, .aiv_percent = 50, .heap = true, .allocs_per_scope = 4,
                         .inter_elems_max = 64, .max_depth = MAX_DEPTH};
        strata_call_config cc = {0};
        cc.ring_task_window = rings[seed % n].scalar_window;
        for (int d = 0; d < 4; d++) {
            cc.ring_task_window_by_depth[d] = rings[seed % n].window[d];
            cc.ring_dep_pool_by_depth[d] = rings[seed % n].dep[d];
            cc.ring_heap_by_depth[d] = rings[seed % n].heap[d];
        }
        char what[64];
        snprintf(what, sizeof what, "deep scopes, ring set %llu", (unsigned long long)(seed % n));
        run_seed(&g, 5000 + seed, &gp, &cc, what);
        uint32_t depth = 0;
        for (uint32_t i = 0; i < g.p->nops; i++) {
            depth += g.p->ops[i].kind == OP_SCOPE_BEGIN;
            depth -= g.p->ops[i].kind == OP_SCOPE_END;
            if (depth > deepest)
                deepest = depth;
        }
    }
    CHECK(deepest >= 4);   /* the clamped ring saw scopes of more than one depth */
    rig_close(&g);
}

/* Mixed tasks on a chip of two clusters (2 AIC + 4 AIV cores): a third of the
   tasks are mixed, their kernel in one part and idle kernels in some others,
   among plain tasks, in scopes of random depth and tiny windows: one node of
   the graph each, ordered like any task. */
TEST_CASE(random_dags_mixed_tasks)
{
    rig g;
    rig_open(&g, 2, 4);
    for (uint64_t seed = 1; seed <= 40; seed++) {
        gen_params gp = {.ntasks = 250, .aiv_percent = 50, .mixed_percent = 35, .heap = seed % 2 == 0,
                         .allocs_per_scope = 4, .inter_elems_max = 64, .max_depth = seed % 4 ? 5 : 0};
        strata_call_config cc = {0};
        cc.ring_task_window = seed % 3 == 0 ? 4 : 0;
        cc.ring_dep_pool = seed % 3 == 0 ? 3 : 0;
        cc.ring_heap = 4096;
        run_seed(&g, 6000 + seed, &gp, &cc, seed % 3 == 0 ? "mixed tasks, task_window 4" : "mixed tasks");
    }
    rig_close(&g);
}

/* Runtime host_build_graph: the same random programs (scopes of random
   depth, no intermediates: that runtime holds every one until the graph
   runs), ordered by explicit edges between every pair of conflicting tasks,
   built whole before anything runs; on plain lanes and on a chip of clusters
   with mixed tasks among them. */
TEST_CASE(random_dags_explicit_edges)
{
    for (int clusters = 0; clusters <= 1; clusters++) {
        rig g;
        rig_open_runtime(&g, 2, clusters ? 4 : 3, "host_build_graph");
        for (uint64_t seed = 1; seed <= 30; seed++) {
            gen_params gp = {.ntasks = 200, .aiv_percent = 50, .mixed_percent = clusters ? 30 : 0,
                             .max_depth = seed % 2 ? 4 : 0};
            strata_call_config cc = {0};
            cc.ring_dep_pool = 1u << 16;   /* every conflicting pair: up to ntasks^2 / 2 edges */
            cc.user[1] = 1;
            run_seed(&g, 7000 + seed, &gp, &cc, clusters ? "explicit edges, mixed tasks" : "explicit edges");
        }
        rig_close(&g);
    }
}

/* Views that are mostly whole 64-byte slots (odd buffers) or tiles (even
   buffers) of a buffer (the
   TensorMap then keeps the buffer's accesses per cell), some of other sizes
   and some arbitrary (the buffer goes back to its lists, and later to cells
   again). */
TEST_CASE(random_dags_slot_views)
{
    rig g;
    rig_open(&g, 2, 3);
    for (uint64_t seed = 1; seed <= 40; seed++) {
        gen_params gp = {.ntasks = 300, .aiv_percent = 50, .slot_percent = seed % 4 ? 99 : 80,
                         .heap = seed % 2 == 0, .allocs_per_scope = 4, .inter_elems_max = 64};
        strata_call_config cc = {0};
        cc.ring_task_window = seed % 3 == 0 ? 8 : 0;
        cc.ring_dep_pool = seed % 3 == 0 ? 7 : 0;
        cc.ring_heap = 4096;
        run_seed(&g, 8000 + seed, &gp, &cc, "slot views");
    }
    rig_close(&g);
}

/* One AIC and one AIV core: the two lanes still race each other. */
TEST_CASE(random_dags_one_core_each)
{
    rig g;
    rig_open(&g, 1, 1);
    gen_params gp = {.ntasks = 200, .aiv_percent = 50};
    strata_call_config cc = {0};
    for (uint64_t seed = 1; seed <= 40; seed++) {
        cc.ring_task_window = seed % 3 == 0 ? 4 : 0;
        cc.ring_dep_pool = seed % 3 == 0 ? 3 : 0;
        run_seed(&g, 3000 + seed, &gp, &cc, seed % 3 == 0 ? "1+1 cores, task_window 4" : "1+1 cores");
    }
    rig_close(&g);
}

/* Four AIV cores and nearly every task on AIV: the most same-type parallelism. */
TEST_CASE(random_dags_four_aiv)
{
    rig g;
    rig_open(&g, 1, 4);
    gen_params gp = {.ntasks = 250, .aiv_percent = 90};
    strata_call_config cc = {0};
    for (uint64_t seed = 1; seed <= 30; seed++) {
        cc.ring_task_window = seed % 2 ? 0 : 8;
        cc.ring_dep_pool = seed % 2 ? 0 : 7;
        run_seed(&g, 4000 + seed, &gp, &cc, seed % 2 ? "4 AIV" : "4 AIV, task_window 8");
    }
    CHECK(atomic_load(&kernels_running_max) >= 2);
    rig_close(&g);
}

/* A kernel that fails in the middle of a random DAG: the run returns ETASK, no
   task that depends on it (transitively, by the tag rules) runs, every task that
   did run saw exactly the data of the reference, and the counters add up. Then
   the same worker runs a clean DAG correctly. */
TEST_CASE(random_dags_failure_cancels_dependents)
{
    rig g;
    rig_open(&g, 2, 3);
    gen_params gp = {.ntasks = 200, .aiv_percent = 50};
    static bool dependent[MAX_TASKS];
    uint64_t dependents_seen = 0;
    for (uint64_t seed = 1; seed <= 16; seed++) {
        program *p = g.p;
        prepare(&g, 5000 + seed, &gp);
        rng r = {seed};
        uint32_t bad = gp.ntasks / 4 + (uint32_t)below(&r, gp.ntasks / 4);
        op *bad_op = &p->ops[task_op(p, bad) - p->ops];
        bad_op->fail = 1;
        /* dependents: the failing task and every later task that conflicts with one */
        memset(dependent, 0, sizeof dependent);
        dependent[bad] = true;
        for (uint32_t j = (uint32_t)(bad_op - p->ops) + 1; j < p->nops; j++) {
            const op *o = &p->ops[j];
            if (o->kind != OP_TASK)
                continue;
            for (uint32_t i = (uint32_t)(bad_op - p->ops); i < j && !dependent[o->task]; i++)
                if (p->ops[i].kind == OP_TASK && dependent[p->ops[i].task] && tasks_conflict(&p->ops[i], o))
                    dependent[o->task] = true;
            dependents_seen += dependent[o->task];
        }
        run_reference(g.ref, p, dependent);

        strata_run_stats before, after;
        CHECK_OK(strata_worker_stats(g.w, &before));
        strata_call_config cc = {0};
        cc.ring_task_window = seed % 2 ? 0 : 8;
        CHECK_STATUS(run_program(&g, &cc, "failing kernel"), STRATA_ETASK);
        CHECK(strstr(g.msg, "kernel func_id") && strstr(g.msg, "returned 7"));
        CHECK_OK(strata_worker_stats(g.w, &after));
        CHECK(p->submitted > bad && p->submitted <= p->ntasks);
        CHECK_EQ_U64(after.tasks_failed - before.tasks_failed, 1);
        CHECK_EQ_U64((after.tasks_completed - before.tasks_completed) +
                         (after.tasks_canceled - before.tasks_canceled) + 1, p->submitted);
        download(&g, g.got);
        uint64_t ran = check_partial(&g, dependent, "failing kernel");
        CHECK_EQ_U64(ran, after.tasks_completed - before.tasks_completed);

        run_seed(&g, 5500 + seed, &gp, &(strata_call_config){0}, "clean run after a failed one");
    }
    CHECK(dependents_seen > 0);
    rig_close(&g);
}

/* A dep_pool far smaller than the task window: a task that follows more running
   tasks than the pool holds waits for the excess producers to finish instead of
   linking them. Every run succeeds and matches the reference, and the pool's
   high-water mark never exceeds its size. */
TEST_CASE(random_dags_tiny_dep_pool)
{
    rig g;
    rig_open(&g, 2, 3);
    gen_params gp = {.ntasks = 200, .aiv_percent = 50};
    for (uint64_t seed = 1; seed <= 16; seed++) {
        strata_call_config cc = {0};
        cc.ring_task_window = 64;
        cc.ring_dep_pool = 1 + seed % 3;
        run_seed(&g, 7000 + seed, &gp, &cc, "task_window 64, dep_pool 1..3");
        strata_run_stats st;
        CHECK_OK(strata_worker_stats(g.w, &st));
        CHECK(st.dep_pool.high_water <= cc.ring_dep_pool);
        CHECK_EQ_U64(st.dep_pool.size, cc.ring_dep_pool);
    }
    rig_close(&g);
}

/* The oracle itself: swapping two adjacent tasks that conflict through a read
   (RAW or WAR) changes a log entry; swapping two independent ones changes
   nothing. Host only; shows a missed dependency cannot go unnoticed. */
TEST_CASE(oracle_detects_misordering)
{
    program *p = malloc(sizeof *p);
    host_state *a = malloc(sizeof *a), *b = malloc(sizeof *b);
    CHECK(p && a && b);
    gen_params gp = {.ntasks = 300, .aiv_percent = 50};
    uint64_t swapped_dep = 0, swapped_free = 0;
    for (uint64_t seed = 1; seed <= 40; seed++) {
        generate(p, 6000 + seed, &gp);
        initial_state(a, seed);
        run_reference(a, p, NULL);
        for (uint32_t i = 0; i + 1 < p->nops; i++) {
            op *x = &p->ops[i], *y = &p->ops[i + 1];
            if (x->kind != OP_TASK || y->kind != OP_TASK)
                continue;
            bool through_read = false;
            for (uint32_t u = 0; u < x->nviews; u++)
                for (uint32_t v = 0; v < y->nviews; v++)
                    through_read |= views_conflict(&x->v[u], &y->v[v]) &&
                                    (tag_reads(x->v[u].tag) || tag_reads(y->v[v].tag));
            bool conflict = tasks_conflict(x, y);
            if (conflict && !through_read)
                continue;   /* WAW only: a later writer may hide the order */
            if (conflict ? swapped_dep >= seed * 3 : swapped_free >= seed * 3)
                continue;   /* a few of each per seed */
            op tmp = *x;
            *x = *y;
            *y = tmp;
            initial_state(b, seed);
            run_reference(b, p, NULL);
            *y = *x;
            *x = tmp;
            bool same = memcmp(a->log, b->log, sizeof a->log) == 0 && memcmp(a->bufs, b->bufs, sizeof a->bufs) == 0;
            if (conflict && same)
                test_fail(__FILE__, __LINE__, "seed %llu: swapping dependent tasks %u and %u went unnoticed",
                          (unsigned long long)(6000 + seed), x->task, y->task);
            if (!conflict && !same)
                test_fail(__FILE__, __LINE__, "seed %llu: swapping independent tasks %u and %u changed the result",
                          (unsigned long long)(6000 + seed), x->task, y->task);
            if (conflict)
                swapped_dep++;
            else
                swapped_free++;
        }
    }
    CHECK(swapped_dep >= 60 && swapped_free >= 60);
    free(p);
    free(a);
    free(b);
}

TEST_MAIN(CASE(random_dags_default_rings), CASE(random_dags_tiny_rings), CASE(random_dags_heap_scopes),
          CASE(random_dags_deep_scopes), CASE(random_dags_mixed_tasks), CASE(random_dags_explicit_edges),
          CASE(random_dags_slot_views),
          CASE(random_dags_one_core_each), CASE(random_dags_four_aiv), CASE(random_dags_failure_cancels_dependents),
          CASE(random_dags_tiny_dep_pool), CASE(oracle_detects_misordering))
