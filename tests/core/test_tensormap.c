/* core.tensormap: the TensorMap against a brute-force model.
 *
 * Thousands of tasks access views of two buffers (slots, tiles of a matrix,
 * strided and broadcast views, the whole buffer), in phases that make the
 * TensorMap start cells, keep them, flatten them and start them again; tasks
 * retire out of order across four rings as a real engine's would (never
 * before a task they follow), the node engine forgets every access between
 * runs, and a buffer is removed and registered again. After each task, every
 * earlier task still live whose bytes it meets (one of the two writing) must
 * be among its ancestors through the dependencies the TensorMap reported, and
 * every reported dependency must be a real one. The bytes are the reference:
 * each view's are enumerated. */
#include "harness.h"

#include <stdio.h>
#include <stdlib.h>

#include "core/tensormap.h"
#include "views.h"

enum {
    NB = 4096,            /* bytes every view stays within */
    WORDS = NB / 64,
    MAXT = 4000,          /* tasks per round */
    MAXA = 3,             /* accesses per task */
    WINDOW = 40,          /* live tasks at most */
};

typedef struct model_access {
    uint32_t buf;
    bool     writes;
    uint64_t bytes[WORDS];
} model_access;

typedef struct model_task {
    uint64_t      id;     /* (index + 1) << 2 | ring */
    bool          retired;
    uint32_t      nacc;
    model_access *acc;    /* live tasks only */
    uint64_t      deps[(MAXT + 63) / 64];   /* reported producers, by index */
} model_task;

static model_task tasks[MAXT];

/* What the check of one reported dependency needs. */
typedef struct report_ctx {
    uint32_t            self;
    const model_access *access;
    uint32_t            bad;   /* reports of no real dependency */
} report_ctx;

static bool meets(const model_access *a, const model_access *b)
{
    if (a->buf != b->buf || !(a->writes || b->writes))
        return false;
    for (int w = 0; w < WORDS; w++)
        if (a->bytes[w] & b->bytes[w])
            return true;
    return false;
}

static int on_dep(void *arg, uint64_t producer, uint32_t producer_slot)
{
    report_ctx *r = arg;
    uint64_t k = (producer >> 2) - 1;
    if (k >= r->self || producer_slot != (uint32_t)(producer & 3)) {
        r->bad++;   /* a later task, itself, or the wrong slot */
        return 0;
    }
    tasks[r->self].deps[k / 64] |= 1ull << (k % 64);
    if (!tasks[k].retired) {
        bool real = false;
        for (uint32_t i = 0; i < tasks[k].nacc; i++)
            real |= meets(&tasks[k].acc[i], r->access);
        r->bad += !real;
    }
    return 0;
}

/* Whether task j is an ancestor of task k through reported dependencies
   between live tasks (a retired task's producers have all retired, so no
   live ancestor hides behind one). */
static bool follows(uint32_t k, uint32_t j, uint8_t *seen)
{
    memset(seen, 0, MAXT);
    uint32_t stack[MAXT], top = 0;
    stack[top++] = k;
    seen[k] = 1;
    while (top) {
        uint32_t t = stack[--top];
        for (uint32_t w = 0; w <= t / 64; w++)
            for (uint64_t bits = tasks[t].deps[w]; bits; bits &= bits - 1) {
                uint32_t p = w * 64 + (uint32_t)__builtin_ctzll(bits);
                if (p == j)
                    return true;
                if (!seen[p] && !tasks[p].retired && p > j) {
                    seen[p] = 1;
                    stack[top++] = p;
                }
            }
    }
    return false;
}

static void retire(uint32_t k)
{
    tasks[k].retired = true;
    free(tasks[k].acc);
    tasks[k].acc = NULL;
}

/* live_from[r]: the id of ring r's oldest live task, or above every id so far. */
static void update_live_from(uint64_t live_from[4], uint32_t ntasks)
{
    for (uint32_t r = 0; r < 4; r++) {
        live_from[r] = ((uint64_t)ntasks + 1) << 2 | r;
        for (uint32_t k = 0; k < ntasks; k++)
            if (!tasks[k].retired && (tasks[k].id & 3) == r) {
                live_from[r] = tasks[k].id;
                break;
            }
    }
}

/* Retire ring r's oldest live task if every task it follows has retired. */
static bool try_retire(uint32_t r, uint32_t ntasks)
{
    for (uint32_t k = 0; k < ntasks; k++) {
        if (tasks[k].retired || (tasks[k].id & 3) != r)
            continue;
        for (uint32_t w = 0; w <= k / 64; w++)
            for (uint64_t bits = tasks[k].deps[w]; bits; bits &= bits - 1)
                if (!tasks[w * 64 + (uint32_t)__builtin_ctzll(bits)].retired)
                    return false;
        retire(k);
        return true;
    }
    return false;
}

/* Tasks first .. last still live, their views and the dependencies
   reported for them: what a failure needs to be understood. */
static void print_tasks(uint32_t first, uint32_t last, const strata_tensor *views)
{
    for (uint32_t q = first; q <= last; q++) {
        if (tasks[q].retired)
            continue;
        fprintf(stderr, "task %u (ring %u):", q, (unsigned)(tasks[q].id & 3));
        for (uint32_t a = 0; a < tasks[q].nacc; a++) {
            const strata_tensor *v = &views[q * MAXA + a];
            fprintf(stderr, " [buffer %u %s dtype %d offset %llu shape/strides", tasks[q].acc[a].buf,
                    tasks[q].acc[a].writes ? "writes" : "reads", (int)v->dtype, (unsigned long long)v->offset);
            for (uint32_t d = 0; d < v->ndims; d++)
                fprintf(stderr, " %llu/%lld", (unsigned long long)v->shape[d], (long long)v->strides[d]);
            fprintf(stderr, "]");
        }
        fprintf(stderr, " follows");
        for (uint32_t p = 0; p < q; p++)
            if (tasks[q].deps[p / 64] >> (p % 64) & 1)
                fprintf(stderr, " %u%s", p, tasks[p].retired ? "(retired)" : "");
        fprintf(stderr, "\n");
    }
}

/* How a phase names a buffer's bytes. */
typedef enum { SLOTS, TILES, MIXED, WHOLE, NKINDS } view_kind;

typedef struct phase {
    view_kind kind;
    uint64_t  size;   /* SLOTS: elements of U8 per slot; TILES: tile edge in a 32 x 32 F32 matrix */
} phase;

static strata_tensor phase_view(const phase *p, uint64_t base, uint64_t nbytes)
{
    if (p->kind == WHOLE || (p->kind == MIXED && next_rand() % 8 == 0)) {
        uint64_t shape[1] = {NB};
        return view(base, nbytes, STRATA_U8, 0, 1, shape, NULL);
    }
    if (p->kind == SLOTS || (p->kind == MIXED && next_rand() % 3 == 0)) {
        uint64_t s = p->kind == SLOTS ? p->size : 1 + next_rand() % 64;
        /* at most NB / s - 3 slots in: room for 2s more and a misalignment below s */
        uint64_t n = next_rand() % 16 == 0 ? 2 * s : s, at = s * (next_rand() % (NB / s - 2));
        if (next_rand() % 16 == 0)
            at += next_rand() % s;   /* misaligned */
        uint64_t shape[1] = {n};
        return view(base, nbytes, STRATA_U8, at, 1, shape, NULL);
    }
    if (p->kind == TILES || next_rand() % 2 == 0) {
        uint64_t t = p->kind == TILES ? p->size : 1 + next_rand() % 8;
        uint64_t rows = next_rand() % 16 == 0 ? 2 * t : t, i = next_rand() % (32 / t - 1), j = next_rand() % (32 / t);
        uint64_t shape[2] = {rows, t}, at = (i * t) * 32 + j * t;
        int64_t strides[2] = {32, 1};
        /* now and then a tile the grid's one-cell path must refuse: another
           dtype of the same size, or one column off the tiles' corners */
        strata_dtype dt = next_rand() % 16 == 0 ? STRATA_I32 : STRATA_F32;
        if (next_rand() % 16 == 0 && j * t + t < 32)
            at += 1;
        return view(base, nbytes, dt, at, 2, shape, strides);
    }
    if (next_rand() % 2 == 0) {
        uint64_t span[3] = {0, 2 + next_rand() % 7, 2 + next_rand() % 7};
        return random_box(base, nbytes, STRATA_F32, 2 + (uint32_t)(next_rand() % 2), span);
    }
    strata_tensor t = random_view(base, nbytes);
    return t;
}

static phase random_phase(void)
{
    static const uint64_t slot_sizes[] = {1, 8, 64}, tile_sizes[] = {1, 4, 8};
    phase p = {.kind = (view_kind)(next_rand() % NKINDS)};
    p.size = p.kind == SLOTS ? slot_sizes[next_rand() % 3] : tile_sizes[next_rand() % 3];
    if (p.kind == WHOLE && next_rand() % 2)
        p.kind = SLOTS;   /* rarer: whole accesses serialize everything */
    return p;
}

/* Paths the accesses took, so that the test shows it reached each. */
typedef struct paths {
    uint64_t lists, direct, hashed;
} paths;

static void one_round(uint64_t seed, paths *seen)
{
    rng = seed;
    memset(tasks, 0, sizeof tasks);
    strata__tensormap m;
    CHECK_OK(strata__tmap_init(&m));
    /* A: 4 KiB, whose 1-byte cells are numbered directly in a mapped table;
       B: 64 MiB (only its first 4 KiB named), whose cells are hashed. */
    const uint64_t base[2] = {0x100000, 0x40000000}, nbytes[2] = {NB, 64u << 20};
    uint32_t index[2];   /* kind 1: any but 0, which marks a free entry */
    for (int b = 0; b < 2; b++)
        CHECK_OK(strata__tmap_buffer_add(&m, base[b], nbytes[b], 1, &index[b]));
    phase phases[2] = {random_phase(), random_phase()};
    uint64_t live_from[4] = {0};
    uint8_t *scratch = malloc(MAXT);
    CHECK(scratch != NULL);
    strata_tensor *views = calloc(MAXT * MAXA, sizeof *views);   /* the TensorMap keeps pointers to them */
    CHECK(views != NULL);
    uint32_t nlive = 0;
    for (uint32_t k = 0; k < MAXT; k++) {
        if (k % 150 == 0)
            phases[next_rand() % 2] = random_phase();
        if (k % 500 == 499 && next_rand() % 2) {
            /* the node engine between runs: every task done, accesses forgotten */
            for (uint32_t j = 0; j < k; j++)
                if (!tasks[j].retired)
                    retire(j);
            nlive = 0;
            strata__tmap_forget_accesses(&m);
            if (next_rand() % 2) {   /* and a buffer freed and allocated again */
                uint32_t b = (uint32_t)(next_rand() % 2);
                strata__tmap_buffer_remove(&m, index[b]);
                CHECK_OK(strata__tmap_buffer_add(&m, base[b], nbytes[b], 1, &index[b]));
            }
        }
        model_task *t = &tasks[k];
        t->id = ((uint64_t)k + 1) << 2 | (next_rand() % 4);
        t->nacc = 1 + (uint32_t)(next_rand() % MAXA);
        t->acc = calloc(t->nacc, sizeof *t->acc);
        CHECK(t->acc != NULL);
        update_live_from(live_from, k);
        report_ctx r = {.self = k};
        for (uint32_t a = 0; a < t->nacc; a++) {
            model_access *ma = &t->acc[a];
            ma->buf = (uint32_t)(next_rand() % 2);
            ma->writes = next_rand() % 3 != 0;
            strata_tensor *v = &views[k * MAXA + a];
            *v = phase_view(&phases[ma->buf], base[ma->buf], nbytes[ma->buf]);
            strata__extent ext;
            CHECK_OK(strata__tensor_check(v, a, &ext));
            uint8_t bytes[NB] = {0};
            touch_bytes(v, bytes, base[ma->buf]);
            for (int i = 0; i < NB; i++)
                ma->bytes[i / 64] |= (uint64_t)bytes[i] << (i % 64);
            const strata__grid *g = strata__tmap_buffer(&m, index[ma->buf])->grid;
            seen->lists += !g;
            seen->direct += g && g->ndirect;
            seen->hashed += g && !g->ndirect;
            r.access = ma;
            bool reads = !ma->writes || next_rand() % 2;
            CHECK_OK(strata__tmap_access(&m, index[ma->buf], t->id, (uint32_t)(t->id & 3), v, &ext, reads,
                                         ma->writes, live_from, on_dep, &r));
        }
        if (r.bad)
            test_fail(__FILE__, __LINE__, "round %llu task %u: %u reported dependencies are not real ones",
                      (unsigned long long)seed, k, r.bad);
        for (uint32_t j = 0; j < k; j++) {
            if (tasks[j].retired)
                continue;
            bool conflict = false;
            for (uint32_t a = 0; a < t->nacc && !conflict; a++)
                for (uint32_t b = 0; b < tasks[j].nacc && !conflict; b++)
                    conflict = meets(&t->acc[a], &tasks[j].acc[b]);
            if (conflict && !follows(k, j, scratch)) {
                print_tasks(j, k, views);
                test_fail(__FILE__, __LINE__, "round %llu: task %u meets live task %u but does not follow it",
                          (unsigned long long)seed, k, j);
            }
        }
        nlive++;
        /* retire: at random, and always when the window is full (the oldest
           live task follows only retired ones) */
        while (nlive > WINDOW || next_rand() % 3 == 0) {
            if (nlive > WINDOW) {
                for (uint32_t j = 0;; j++)
                    if (!tasks[j].retired) {
                        retire(j);
                        break;
                    }
            } else if (!try_retire((uint32_t)(next_rand() % 4), k + 1)) {
                break;
            }
            nlive--;
        }
    }
    for (uint32_t k = 0; k < MAXT; k++)
        free(tasks[k].acc);
    strata__tmap_destroy(&m);
    free(views);
    free(scratch);
}

/* Every dependency the TensorMap must report is among those it reports, and
   it reports no other, through every path it has for a buffer. */
TEST_CASE(dependencies_match_brute_force)
{
    paths seen = {0};
    for (uint64_t round = 1; round <= 8; round++)
        one_round(round * 0x9E3779B97F4A7C15ull, &seen);
    fprintf(stderr, "accesses by lists %llu, direct cells %llu, hashed cells %llu\n", (unsigned long long)seen.lists,
           (unsigned long long)seen.direct, (unsigned long long)seen.hashed);
    CHECK(seen.lists > 1000);    /* each path was exercised */
    CHECK(seen.direct > 1000);
    CHECK(seen.hashed > 1000);
}

TEST_MAIN(CASE(dependencies_match_brute_force))
