/* core.rings: the heap ring allocator and the TensorMap's buffer registry. */
#include "harness.h"

#include "core/ring.h"
#include "core/tensormap.h"
#include "views.h"

TEST_CASE(heap_ring_fifo)
{
    strata__heap_ring r;
    strata__heap_ring_reset(&r, 1000);
    uint64_t off[4], ch[4];
    CHECK(strata__heap_ring_alloc(&r, 400, &off[0], &ch[0]));
    CHECK(strata__heap_ring_alloc(&r, 400, &off[1], &ch[1]));
    CHECK_EQ_U64(off[0], 0);
    CHECK_EQ_U64(off[1], 400);
    CHECK(!strata__heap_ring_alloc(&r, 300, &off[2], &ch[2]));   /* 200 left at the end */
    strata__heap_ring_release(&r, off[0], 400, ch[0]);
    CHECK(strata__heap_ring_alloc(&r, 300, &off[2], &ch[2]));     /* wraps, skipping 200 */
    CHECK_EQ_U64(off[2], 0);
    CHECK_EQ_U64(ch[2], 500);
    CHECK_EQ_U64(r.used, 900);
    CHECK(!strata__heap_ring_alloc(&r, 200, &off[3], &ch[3]));    /* only [300, 400) free */
    CHECK(strata__heap_ring_alloc(&r, 100, &off[3], &ch[3]));
    CHECK_EQ_U64(off[3], 300);
    CHECK_EQ_U64(r.used, 1000);
    CHECK(!strata__heap_ring_alloc(&r, 1, &off[0], &ch[0]));      /* full */
    strata__heap_ring_release(&r, off[1], 400, ch[1]);
    strata__heap_ring_release(&r, off[2], 300, ch[2]);
    strata__heap_ring_release(&r, off[3], 100, ch[3]);
    CHECK_EQ_U64(r.used, 0);
    CHECK_EQ_U64(r.high_water, 1000);
    CHECK(strata__heap_ring_alloc(&r, 1000, &off[0], &ch[0]));    /* empty starts over at 0 */
    CHECK_EQ_U64(off[0], 0);
    CHECK(!strata__heap_ring_alloc(&r, 1001, &off[1], &ch[1]));
}

/* A random FIFO workload never hands out overlapping bytes. */
TEST_CASE(heap_ring_random_fifo)
{
    strata__heap_ring r;
    strata__heap_ring_reset(&r, 4096);
    static uint8_t owner[4096];
    uint64_t q_off[64], q_n[64], q_ch[64];
    unsigned head = 0, tail = 0;
    uint64_t x = 12345;
    for (int step = 0; step < 200000; step++) {
        x = x * 6364136223846793005ull + 1442695040888963407ull;
        uint64_t n = 1 + (x >> 33) % 700;
        uint64_t off, ch;
        if (tail - head < 64 && strata__heap_ring_alloc(&r, n, &off, &ch)) {
            CHECK(off + n <= 4096);
            for (uint64_t i = off; i < off + n; i++) {
                CHECK(owner[i] == 0);
                owner[i] = 1;
            }
            q_off[tail % 64] = off;
            q_n[tail % 64] = n;
            q_ch[tail % 64] = ch;
            tail++;
        } else {
            CHECK(head != tail || n > 4096);
            unsigned k = head++ % 64;
            for (uint64_t i = q_off[k]; i < q_off[k] + q_n[k]; i++)
                owner[i] = 0;
            strata__heap_ring_release(&r, q_off[k], q_n[k], q_ch[k]);
        }
    }
}

TEST_CASE(buffer_registry)
{
    strata__tensormap m;
    CHECK_OK(strata__tmap_init(&m));
    uint32_t idx[5000];
    for (uint32_t i = 0; i < 5000; i++)
        CHECK_OK(strata__tmap_buffer_add(&m, 0x100000 + (uint64_t)i * 64, 64, 1, &idx[i]));
    for (uint32_t i = 0; i < 5000; i++)
        CHECK_EQ_U64(strata__tmap_buffer_find(&m, 0x100000 + (uint64_t)i * 64), idx[i]);
    CHECK_EQ_U64(strata__tmap_buffer_find(&m, 0x100000 + 32), STRATA__NONE);
    for (uint32_t i = 0; i < 5000; i += 2)
        strata__tmap_buffer_remove(&m, idx[i]);
    for (uint32_t i = 0; i < 5000; i++)
        CHECK_EQ_U64(strata__tmap_buffer_find(&m, 0x100000 + (uint64_t)i * 64), i % 2 ? idx[i] : STRATA__NONE);
    for (uint32_t i = 0; i < 5000; i += 2)
        CHECK_OK(strata__tmap_buffer_add(&m, 0x100000 + (uint64_t)i * 64, 64, 1, &idx[i]));
    for (uint32_t i = 0; i < 5000; i++)
        CHECK_EQ_U64(strata__tmap_buffer_find(&m, 0x100000 + (uint64_t)i * 64), idx[i]);
    /* the submit path's lookup: its guesses (the last record found, the next
       one) never answer for a buffer removed, or for the record's new owner */
    for (uint32_t i = 0; i < 5000; i++)
        CHECK_EQ_U64(strata__tmap_buffer_find_next(&m, 0x100000 + (uint64_t)i * 64), idx[i]);
    CHECK_EQ_U64(strata__tmap_buffer_find_next(&m, 0x100000 + 10 * 64), idx[10]);
    CHECK_EQ_U64(strata__tmap_buffer_find_next(&m, 0x100000 + 10 * 64), idx[10]);
    strata__tmap_buffer_remove(&m, idx[11]);
    strata__tmap_buffer_remove(&m, idx[10]);
    CHECK_EQ_U64(strata__tmap_buffer_find_next(&m, 0x100000 + 10 * 64), STRATA__NONE);
    CHECK_EQ_U64(strata__tmap_buffer_find_next(&m, 0x100000 + 11 * 64), STRATA__NONE);
    uint32_t again;
    CHECK_OK(strata__tmap_buffer_add(&m, 0x900000, 64, 1, &again));   /* takes a freed record */
    CHECK(again == idx[10] || again == idx[11]);
    CHECK_EQ_U64(strata__tmap_buffer_find_next(&m, 0x100000 + 10 * 64), STRATA__NONE);
    CHECK_EQ_U64(strata__tmap_buffer_find_next(&m, 0x100000 + 11 * 64), STRATA__NONE);
    CHECK_EQ_U64(strata__tmap_buffer_find_next(&m, 0x900000), again);
    CHECK_EQ_U64(strata__tmap_buffer_find_next(&m, 0x100000 + 12 * 64), idx[12]);
    strata__tmap_destroy(&m);
}

/* Whatever the addresses (the allocator's layout, address randomisation),
   every registered buffer is found within a few probes: small buffers packed
   page after page, page-aligned ones, and one large buffer registered after
   them at any page (the matrix every tile names, which an earlier hash let
   land behind a hundred others). Buffers a megabyte apart spread like random
   keys, whose longest run at this load is some 15 to 20 slots. */
TEST_CASE(registry_finds_every_base_in_few_probes)
{
    enum { N = 100000 };
    static const struct { uint64_t stride; uint32_t most; } cases[] = {{64, 4}, {4096, 4}, {1u << 20, 24}};
    for (uint32_t s = 0; s < 3; s++) {
        for (uint32_t layout = 0; layout < 4; layout++) {
            /* a base 2.6 MiB (an odd number of pages) further each time */
            uint64_t base = 0x7f0000000000ull + (uint64_t)layout * 0x2a5000u, stride = cases[s].stride;
            uint32_t worst_small = 0, worst_large = 0;
            strata__tensormap m;
            CHECK_OK(strata__tmap_init(&m));
            uint32_t idx;
            for (uint32_t i = 0; i < N; i++)
                CHECK_OK(strata__tmap_buffer_add(&m, base + i * stride, stride, 1, &idx));
            for (uint32_t i = 0; i < N; i++) {
                uint32_t p = strata__tmap_buffer_probes(&m, base + i * stride);
                worst_small = p > worst_small ? p : worst_small;
            }
            for (uint32_t page = 0; page < 64; page++) {
                uint64_t large = base + (uint64_t)N * stride + (uint64_t)page * 4096 * 37;
                CHECK_OK(strata__tmap_buffer_add(&m, large, 1u << 20, 1, &idx));
                CHECK_EQ_U64(strata__tmap_buffer_find(&m, large), idx);
                uint32_t p = strata__tmap_buffer_probes(&m, large);
                worst_large = p > worst_large ? p : worst_large;
                strata__tmap_buffer_remove(&m, idx);
            }
            strata__tmap_destroy(&m);
            if (layout == 0)
                fprintf(stderr, "buffers %llu bytes apart: most probes %u, %u for a large one after them\n",
                        (unsigned long long)stride, worst_small, worst_large);
            CHECK(worst_small <= cases[s].most);
            CHECK(worst_large <= cases[s].most);
        }
    }
}

typedef struct deps {
    uint64_t got[64];
    int n;
} deps;
/* The slot an access is recorded with: handed back with its task id. */
#define SLOT(task) ((uint32_t)((task) * 7u))

static int collect(void *ctx, uint64_t producer, uint32_t slot)
{
    deps *d = ctx;
    if (slot != SLOT(producer))
        test_fail(__FILE__, __LINE__, "task %llu came back with slot %u, not %u", (unsigned long long)producer, slot,
                  SLOT(producer));
    if (d->n == 64)
        test_fail(__FILE__, __LINE__, "more than 64 dependencies reported");
    d->got[d->n++] = producer;
    return 0;
}

/* A TensorMap with one 256-byte buffer at 0x1000 and a view of all of it. */
typedef struct one_buffer {
    strata__tensormap m;
    uint32_t          b;
    strata_tensor     whole;
    strata__extent    e;
} one_buffer;

static void one_buffer_init(one_buffer *o)
{
    CHECK_OK(strata__tmap_init(&o->m));
    CHECK_OK(strata__tmap_buffer_add(&o->m, 0x1000, 256, 1, &o->b));
    uint64_t shape[1] = {64};
    o->whole = strata_tensor_make((void *)0x1000, STRATA_F32, 1, shape);
    CHECK_OK(strata__tensor_check(&o->whole, 0, &o->e));
}

/* One ring: every task id's watermark the same. */
#define ALL(w) ((const uint64_t[4]){(w), (w), (w), (w)})

/* RAW, WAR and WAW follow from the access list; covered entries are dropped and
   stale ones (retired tasks) never reported. */
TEST_CASE(access_rules)
{
    one_buffer o;
    one_buffer_init(&o);
    deps d = {0};
    CHECK_OK(strata__tmap_access(&o.m, o.b, 1, SLOT(1), &o.whole, &o.e, false, true, ALL(1), collect, &d));   /* W1 */
    CHECK_EQ_U64(d.n, 0);
    CHECK_OK(strata__tmap_access(&o.m, o.b, 2, SLOT(2), &o.whole, &o.e, true, false, ALL(1), collect, &d));   /* R2: RAW on 1 */
    CHECK_EQ_U64(d.n, 1);
    CHECK_EQ_U64(d.got[0], 1);
    d.n = 0;
    CHECK_OK(strata__tmap_access(&o.m, o.b, 3, SLOT(3), &o.whole, &o.e, true, false, ALL(1), collect, &d));   /* R3: RAW on 1 only */
    CHECK_EQ_U64(d.n, 1);
    CHECK_EQ_U64(d.got[0], 1);
    d.n = 0;
    CHECK_OK(strata__tmap_access(&o.m, o.b, 4, SLOT(4), &o.whole, &o.e, false, true, ALL(1), collect, &d));   /* W4: WAR 3, 2, WAW 1 */
    CHECK_EQ_U64(d.n, 3);
    CHECK_EQ_U64(o.m.live_accesses, 1);   /* W4 covers all three: they were dropped */
    d.n = 0;
    CHECK_OK(strata__tmap_access(&o.m, o.b, 5, SLOT(5), &o.whole, &o.e, true, false, ALL(5), collect, &d));   /* 4 retired: stale */
    CHECK_EQ_U64(d.n, 0);
    CHECK_EQ_U64(o.m.live_accesses, 1);
    strata__tmap_destroy(&o.m);
}

/* A buffer that is only read (weights): no writer ever walks its readers, yet
   the stale ones must go, or the TensorMap grows with every task of every run.
   With 8 readers live at a time, the entries stay within a small bound over
   100,000 reads, and a later writer still follows every live reader. */
TEST_CASE(read_only_buffer_stays_small)
{
    one_buffer o;
    one_buffer_init(&o);
    deps d = {0};
    uint64_t task = 1;
    for (; task <= 100000; task++) {
        uint64_t retired_below = task > 8 ? task - 8 : 1;   /* 8 readers in flight */
        CHECK_OK(strata__tmap_access(&o.m, o.b, task, SLOT(task), &o.whole, &o.e, true, false, ALL(retired_below), collect, &d));
        CHECK_EQ_U64(d.n, 0);   /* nothing wrote it */
    }
    CHECK(o.m.high_accesses <= 64);
    CHECK(o.m.live_accesses <= 64);
    /* a writer follows the live readers (tasks task-8 .. task-1), no stale one */
    CHECK_OK(strata__tmap_access(&o.m, o.b, task, SLOT(task), &o.whole, &o.e, false, true, ALL(task - 8), collect, &d));
    CHECK_EQ_U64(d.n, 8);
    for (int i = 0; i < d.n; i++)
        CHECK(d.got[i] >= task - 8 && d.got[i] < task);
    strata__tmap_destroy(&o.m);
}

/* Ids of two rings (low two bits: the ring, as the chip engine's scope
   depths): ring 1's readers come and retire by the thousand while one reader
   of ring 0, older than all of them, stays live. Pruning drops the stale ones
   wherever they are in the list, keeps the live one, and a writer follows it. */
TEST_CASE(rings_retire_independently)
{
    one_buffer o;
    one_buffer_init(&o);
    deps d = {0};
    uint64_t live[4] = {1 << 2 | 0, 1 << 2 | 1, 1 << 2 | 2, 1 << 2 | 3};
    uint64_t outer = 1 << 2 | 0;   /* ring 0, local 1: live throughout */
    CHECK_OK(strata__tmap_access(&o.m, o.b, outer, SLOT(outer), &o.whole, &o.e, true, false, live, collect, &d));
    uint64_t local = 1;
    for (; local <= 10000; local++) {
        live[1] = (local > 4 ? local - 4 : 1) << 2 | 1;   /* ring 1: 4 readers in flight */
        CHECK_OK(strata__tmap_access(&o.m, o.b, local << 2 | 1, SLOT(local << 2 | 1), &o.whole, &o.e, true, false, live, collect, &d));
    }
    CHECK(o.m.high_accesses <= 64);
    /* a writer of ring 2 follows the outer reader and ring 1's live ones */
    d.n = 0;
    CHECK_OK(strata__tmap_access(&o.m, o.b, 1 << 2 | 2, SLOT(1 << 2 | 2), &o.whole, &o.e, false, true, live, collect, &d));
    CHECK_EQ_U64(d.n, 6);   /* ring 1's locals 9996 .. 10000, and the outer one */
    int saw_outer = 0;
    for (int i = 0; i < d.n; i++) {
        saw_outer += d.got[i] == outer;
        CHECK(d.got[i] == outer || (d.got[i] & 3) == 1);
    }
    CHECK_EQ_U64(saw_outer, 1);
    strata__tmap_destroy(&o.m);
}

/* A view of 4 U64 (32 bytes) of the one buffer, from element `at`. */
static strata_tensor slot32(uint64_t at, strata__extent *e)
{
    uint64_t shape[1] = {4};
    strata_tensor t = strata_tensor_make((void *)0x1000, STRATA_U64, 1, shape);
    t.nbytes = 256;
    t.offset = at;
    CHECK_OK(strata__tensor_check(&t, 0, e));
    return t;
}

static bool got_task(const deps *d, uint64_t task)
{
    for (int i = 0; i < d->n; i++)
        if (d->got[i] == task)
            return true;
    return false;
}

/* Cells: 32-byte slots of one buffer, written and read as tasks go by, keep
   each access to its own slot's entries: no order between slots, the right
   order within one, few entries live; a view that is not a whole number of
   slots (strided) sees exactly the live accesses it meets; a whole-buffer
   writer follows every slot's live readers; and once nothing is live the
   slots come back. */
TEST_CASE(cells_of_one_buffer)
{
    one_buffer o;
    one_buffer_init(&o);
    deps d = {0};
    strata_tensor v[8];
    strata__extent e[8];
    for (int k = 0; k < 8; k++)
        v[k] = slot32(4 * (uint64_t)k, &e[k]);
    /* 1000 writers, slot by slot, 7 in flight: no order between them */
    uint64_t task = 1;
    for (; task <= 1000; task++) {
        uint64_t live = task > 7 ? task - 7 : 1;
        CHECK_OK(strata__tmap_access(&o.m, o.b, task, SLOT(task), &v[task % 8], &e[task % 8], false, true, ALL(live),
                                     collect, &d));
        CHECK_EQ_U64(d.n, 0);
    }
    CHECK(o.m.high_accesses <= 64);
    /* within a slot: a reader follows its writer, a writer its readers */
    uint64_t w = task++;   /* writes slot 3 */
    CHECK_OK(strata__tmap_access(&o.m, o.b, w, SLOT(w), &v[3], &e[3], false, true, ALL(w - 8), collect, &d));
    d.n = 0;
    uint64_t r1 = task++, r2 = task++;
    CHECK_OK(strata__tmap_access(&o.m, o.b, r1, SLOT(r1), &v[3], &e[3], true, false, ALL(w - 8), collect, &d));
    CHECK_OK(strata__tmap_access(&o.m, o.b, r2, SLOT(r2), &v[3], &e[3], true, false, ALL(w - 8), collect, &d));
    CHECK_EQ_U64(d.n, 2);
    CHECK(d.got[0] == w && d.got[1] == w);
    d.n = 0;
    /* a writer of all 8 slots (one conforming view of 64 bytes... of 256):
       follows every live writer and reader it meets */
    uint64_t all = task++;
    CHECK_OK(strata__tmap_access(&o.m, o.b, all, SLOT(all), &o.whole, &o.e, false, true, ALL(w - 8), collect, &d));
    CHECK(got_task(&d, w) && got_task(&d, r1) && got_task(&d, r2));
    for (uint64_t t = w - 8; t < w; t++)   /* the slot writers still live (slot 3's: w now) */
        CHECK(t % 8 == 3 || got_task(&d, t));
    d.n = 0;
    /* a strided reader (not whole slots: the buffer goes back to its lists)
       meets slots 1 and 6 only: it follows the whole-buffer writer alone */
    uint64_t shape[2] = {2, 1};
    strata_tensor odd = strata_tensor_make((void *)0x1000, STRATA_U64, 2, shape);
    odd.nbytes = 256;
    odd.strides[0] = 20;
    odd.strides[1] = 1;
    odd.offset = 5;   /* elements 5 and 25: slots 1 and 6 */
    strata__extent oe;
    CHECK_OK(strata__tensor_check(&odd, 0, &oe));
    uint64_t s = task++;
    CHECK_OK(strata__tmap_access(&o.m, o.b, s, SLOT(s), &odd, &oe, true, false, ALL(w - 8), collect, &d));
    CHECK(d.n >= 1);   /* once per cell the writer had: the engine keeps one edge */
    for (int i = 0; i < d.n; i++)
        CHECK_EQ_U64(d.got[i], all);
    d.n = 0;
    /* a writer of slot 6 follows the strided reader and the whole writer */
    uint64_t w6 = task++;
    CHECK_OK(strata__tmap_access(&o.m, o.b, w6, SLOT(w6), &v[6], &e[6], false, true, ALL(w - 8), collect, &d));
    CHECK(got_task(&d, s) && got_task(&d, all));
    d.n = 0;
    /* everything retired: slots again, and nothing to follow */
    uint64_t fresh = task++;
    CHECK_OK(strata__tmap_access(&o.m, o.b, fresh, SLOT(fresh), &v[2], &e[2], false, true, ALL(fresh), collect, &d));
    CHECK_EQ_U64(d.n, 0);
    CHECK(o.m.buffers[o.b].grid != NULL);
    strata__tmap_destroy(&o.m);
}

/* A view of many cells (a whole buffer of 4-byte cells) is decided in the
   lists: one entry per access, not one per cell. */
TEST_CASE(a_view_of_many_cells_takes_one_entry)
{
    strata__tensormap m;
    CHECK_OK(strata__tmap_init(&m));
    uint32_t b;
    CHECK_OK(strata__tmap_buffer_add(&m, 0x100000, 1 << 20, 1, &b));
    deps d = {0};
    uint64_t one[1] = {1}, all[1] = {(1 << 20) / 4};
    strata_tensor first = strata_tensor_make((void *)0x100000, STRATA_U32, 1, one), whole;
    first.nbytes = 1 << 20;
    whole = strata_tensor_make((void *)0x100000, STRATA_U32, 1, all);
    strata__extent ef, ew;
    CHECK_OK(strata__tensor_check(&first, 0, &ef));
    CHECK_OK(strata__tensor_check(&whole, 0, &ew));
    CHECK_OK(strata__tmap_access(&m, b, 1, SLOT(1), &first, &ef, false, true, ALL(1), collect, &d));
    CHECK(m.buffers[b].grid != NULL);   /* 4-byte cells */
    for (uint64_t t = 2; t <= 5; t++)
        CHECK_OK(strata__tmap_access(&m, b, t, SLOT(t), &whole, &ew, true, false, ALL(1), collect, &d));
    CHECK(m.live_accesses <= 5);
    d.n = 0;
    CHECK_OK(strata__tmap_access(&m, b, 6, SLOT(6), &whole, &ew, false, true, ALL(1), collect, &d));
    CHECK(d.n <= 5);
    for (uint64_t t = 1; t <= 5; t++)
        CHECK(got_task(&d, t));
    strata__tmap_destroy(&m);
}

/* A 16 x 16 tile of a 64 x 64 F32 matrix at element (r, c). */
static strata_tensor tile16(uint64_t r, uint64_t c, strata__extent *e)
{
    uint64_t shape[2] = {16, 16};
    int64_t strides[2] = {64, 1};
    strata_tensor t = view(0x100000, 64 * 64 * 4, STRATA_F32, r * 64 + c, 2, shape, strides);
    CHECK_OK(strata__tensor_check(&t, 0, e));
    return t;
}

/* Tiles whose grid does not start at the matrix's corner: the first tile, at
   (3, 5), makes cells of whole 16 x 16 tiles from there (it is cut by no
   smaller power of two). Tiles of that grid are one cell each and order only
   with their own cell. A tile off the grid (above or left of where cells
   start, or between two cells) turns the buffer back into its lists, which
   order it after every tile it meets. */
TEST_CASE(tiles_off_the_matrix_corner)
{
    static const struct {
        uint64_t r, c, n, after[2];   /* the tile, and the n tasks it must follow */
    } off[] = {
        {1, 5, 1, {4}},        /* a row above the grid: meets task 4's tile (rows 3..18) */
        {3, 2, 1, {4}},        /* columns left of it */
        {3, 13, 2, {4, 2}},    /* half across two cells of one row */
        {11, 5, 2, {4, 3}},    /* half across two cells of one column */
    };
    for (size_t k = 0; k < sizeof off / sizeof off[0]; k++) {
        strata__tensormap m;
        CHECK_OK(strata__tmap_init(&m));
        uint32_t b;
        CHECK_OK(strata__tmap_buffer_add(&m, 0x100000, 64 * 64 * 4, 1, &b));
        deps d = {0};
        strata__extent e[5];
        strata_tensor t[5] = {tile16(3, 5, &e[0]), tile16(3, 21, &e[1]), tile16(19, 5, &e[2]), tile16(3, 5, &e[3]),
                              tile16(off[k].r, off[k].c, &e[4])};
        for (uint64_t w = 0; w < 3; w++) {   /* three cells: no order between them */
            CHECK_OK(strata__tmap_access(&m, b, w + 1, SLOT(w + 1), &t[w], &e[w], false, true, ALL(1), collect, &d));
            CHECK_EQ_U64(d.n, 0);
        }
        const strata__grid *g = m.buffers[b].grid;
        CHECK(g != NULL && g->lattice && g->pow2);
        CHECK_EQ_U64(g->at[0], 3);
        CHECK_EQ_U64(g->at[1], 5);
        CHECK_OK(strata__tmap_access(&m, b, 4, SLOT(4), &t[3], &e[3], true, true, ALL(1), collect, &d));
        CHECK_EQ_U64(d.n, 1);   /* the first tile's cell again: after task 1 only */
        CHECK_EQ_U64(d.got[0], 1);
        d.n = 0;
        CHECK_OK(strata__tmap_access(&m, b, 5, SLOT(5), &t[4], &e[4], true, false, ALL(1), collect, &d));
        CHECK(m.buffers[b].grid == NULL);   /* not a cell of the grid: back to the lists */
        CHECK_EQ_U64(d.n, off[k].n);
        for (uint64_t a = 0; a < off[k].n; a++)
            CHECK(got_task(&d, off[k].after[a]));
        strata__tmap_destroy(&m);
    }
}

/* Cells one phase named and later ones never name again give back the
   entries of their retired tasks (the direct table's sweep): 512 slots
   written once each, then four slots written 8,192 times, 8 tasks in flight. */
TEST_CASE(cells_no_longer_named_give_back_their_entries)
{
    strata__tensormap m;
    CHECK_OK(strata__tmap_init(&m));
    uint32_t b;
    CHECK_OK(strata__tmap_buffer_add(&m, 0x100000, 512 * 64, 1, &b));
    static strata_tensor slot[512];
    static strata__extent e[512];
    for (uint64_t k = 0; k < 512; k++) {
        uint64_t shape[1] = {16};
        slot[k] = view(0x100000, 512 * 64, STRATA_F32, 16 * k, 1, shape, NULL);
        CHECK_OK(strata__tensor_check(&slot[k], 0, &e[k]));
    }
    deps d = {0};
    uint64_t task = 1;
    for (; task <= 512; task++) {
        uint64_t live = task > 8 ? task - 8 : 1;
        CHECK_OK(strata__tmap_access(&m, b, task, SLOT(task), &slot[task - 1], &e[task - 1], false, true, ALL(live),
                                     collect, &d));
    }
    CHECK(m.buffers[b].grid != NULL && m.buffers[b].grid->ndirect != 0);
    CHECK(m.live_accesses >= 256);   /* the slots the sweep has not reached yet hold their writers */
    for (uint64_t end = task + 8192; task < end; task++) {
        d.n = 0;
        CHECK_OK(strata__tmap_access(&m, b, task, SLOT(task), &slot[task % 4], &e[task % 4], false, true,
                                     ALL(task - 8), collect, &d));
        CHECK_EQ_U64(d.n, task >= 517);   /* after its slot's writer 4 tasks back, still in flight */
        if (d.n)
            CHECK_EQ_U64(d.got[0], task - 4);
    }
    CHECK(m.live_accesses <= 16);
    strata__tmap_destroy(&m);
}

TEST_MAIN(CASE(heap_ring_fifo), CASE(cells_of_one_buffer), CASE(a_view_of_many_cells_takes_one_entry), CASE(tiles_off_the_matrix_corner),
          CASE(cells_no_longer_named_give_back_their_entries), CASE(read_only_buffer_stays_small), CASE(rings_retire_independently), CASE(heap_ring_random_fifo),
          CASE(buffer_registry), CASE(registry_finds_every_base_in_few_probes), CASE(access_rules))
