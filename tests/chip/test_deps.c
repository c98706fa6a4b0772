/* chip.deps: dependency inference from tags. Ordering is read off a logical
 * clock the probe kernel ticks at start and end; a producer sleeps so that a
 * missing edge would let its consumer start early. Independence is proven with a
 * rendezvous: the first task waits for the second to start (plan.h). */
#include "plan.h"

enum { SLOW_US = 20000 };

static fixture setup(void)
{
    return plan_setup(2, 4, 0);
}

static void run_ok(fixture *f)
{
    CHECK_OK(strata_worker_run_chip(f->w, f->h, NULL, NULL));
    for (uint32_t i = 0; i < plan_n; i++)
        CHECK_OK(plan_submit_status[i]);
}

static uint32_t task1(strata_tensor t, strata_tag tag, uint64_t us, uint32_t rendezvous)
{
    return plan_add(PROBE_AIV, 1, &t, &tag, us, rendezvous);
}

TEST_CASE(raw_chain)
{
    fixture f = setup();
    strata_tensor x = test_tensor(f.x, STRATA_F32);
    uint32_t p = task1(x, STRATA_OUTPUT, SLOW_US, 0);
    uint32_t c1 = task1(x, STRATA_INPUT, 0, 0);
    uint32_t io = task1(x, STRATA_INOUT, SLOW_US, 0);
    uint32_t c2 = task1(x, STRATA_INPUT, 0, 0);
    run_ok(&f);
    CHECK_AFTER(c1, p);
    CHECK_AFTER(io, p);
    CHECK_AFTER(io, c1);   /* INOUT also writes: after the earlier reader */
    CHECK_AFTER(c2, io);
    plan_teardown(&f);
}

TEST_CASE(war_chain)
{
    fixture f = setup();
    strata_tensor x = test_tensor(f.x, STRATA_F32);
    uint32_t r1 = task1(x, STRATA_INPUT, SLOW_US, 0);
    uint32_t r2 = task1(x, STRATA_INPUT, SLOW_US, 0);
    uint32_t w1 = task1(x, STRATA_OUTPUT, 0, 0);
    uint32_t r3 = task1(x, STRATA_INPUT, SLOW_US, 0);
    uint32_t w2 = task1(x, STRATA_OUTPUT_EXISTING, 0, 0);
    run_ok(&f);
    CHECK_AFTER(w1, r1);
    CHECK_AFTER(w1, r2);
    CHECK_AFTER(r3, w1);
    CHECK_AFTER(w2, r3);
    plan_teardown(&f);
}

TEST_CASE(waw_chain)
{
    fixture f = setup();
    strata_tensor x = test_tensor(f.x, STRATA_F32);
    uint32_t a = task1(x, STRATA_OUTPUT, SLOW_US, 0);
    uint32_t b = task1(x, STRATA_OUTPUT_EXISTING, SLOW_US, 0);
    uint32_t c = task1(x, STRATA_OUTPUT, 0, 0);
    run_ok(&f);
    CHECK_AFTER(b, a);
    CHECK_AFTER(c, b);
    plan_teardown(&f);
}

/* Readers of the same bytes do not order each other. */
TEST_CASE(readers_run_together)
{
    fixture f = setup();
    strata_tensor x = test_tensor(f.x, STRATA_F32);
    uint32_t r1 = task1(x, STRATA_INPUT, 0, 2);   /* waits for task 1 to start */
    task1(x, STRATA_INPUT, 0, 0);
    run_ok(&f);
    CHECK_CONCURRENT(r1);
    plan_teardown(&f);
}

TEST_CASE(partial_overlap)
{
    fixture f = setup();
    uint32_t w = task1(view1d(f.x, STRATA_F32, 0, 64), STRATA_OUTPUT, SLOW_US, 3); /* waits for the disjoint reader */
    uint32_t overlapping = task1(view1d(f.x, STRATA_F32, 63, 64), STRATA_INPUT, 0, 0);
    uint32_t disjoint = task1(view1d(f.x, STRATA_F32, 64, 64), STRATA_INPUT, 0, 0);
    run_ok(&f);
    CHECK_AFTER(overlapping, w);
    CHECK_CONCURRENT(w);
    (void)disjoint;
    plan_teardown(&f);
}

/* Views of one buffer through different byte offsets of the same base: a u8 view
   and an f64 view meet on the byte level. */
TEST_CASE(overlap_across_dtypes)
{
    fixture f = setup();
    strata_tensor bytes = view1d(f.x, STRATA_U8, 15, 1);    /* byte 15 */
    strata_tensor dbl = view1d(f.x, STRATA_F64, 1, 1);      /* bytes 8..15 */
    uint32_t w = task1(bytes, STRATA_OUTPUT, SLOW_US, 0);
    uint32_t r = task1(dbl, STRATA_INPUT, 0, 0);
    run_ok(&f);
    CHECK_AFTER(r, w);
    plan_teardown(&f);
}

/* An 8 x 8 matrix: the even columns and the odd columns are interleaved strided
   views with the same byte interval but no common byte; a row meets both. */
TEST_CASE(strided_views)
{
    fixture f = setup();
    strata_tensor even = test_tensor(f.x, STRATA_F32);
    even.ndims = 2;
    even.shape[0] = 8;
    even.shape[1] = 4;
    even.strides[0] = 8;
    even.strides[1] = 2;
    strata_tensor odd = even;
    odd.offset = 1;
    strata_tensor row3 = view1d(f.x, STRATA_F32, 24, 8);
    strata_tensor col5 = even;
    col5.offset = 5;
    col5.shape[1] = 1;
    uint32_t we = task1(even, STRATA_OUTPUT, SLOW_US, 2);   /* waits for the odd writer */
    uint32_t wo = task1(odd, STRATA_OUTPUT, SLOW_US, 0);
    uint32_t r = task1(row3, STRATA_INPUT, 0, 0);
    uint32_t c = task1(col5, STRATA_INOUT, 0, 0);
    run_ok(&f);
    CHECK_CONCURRENT(we);
    CHECK_AFTER(r, we);
    CHECK_AFTER(r, wo);
    CHECK_AFTER(c, wo);    /* column 5 is odd */
    plan_teardown(&f);
}

/* A view with too many runs to enumerate is ordered by its byte interval: an
   extra ordering is allowed, a missing one never. */
TEST_CASE(large_strided_views_stay_ordered)
{
    fixture f = setup();
    strata_buffer big = test_malloc(f.w, 64 * 1024 * 8);
    strata_tensor even = test_tensor(big, STRATA_U8);
    even.shape[0] = 64 * 1024 * 4;
    even.strides[0] = 2;
    strata_tensor odd = even;
    odd.offset = 1;
    strata_tensor one = view1d(big, STRATA_U8, 1001, 1);
    task1(even, STRATA_OUTPUT, SLOW_US, 0);
    uint32_t r = task1(one, STRATA_INPUT, SLOW_US, 0);     /* byte 1001 is odd */
    uint32_t wo = task1(odd, STRATA_OUTPUT, 0, 0);
    run_ok(&f);
    CHECK_AFTER(wo, r);   /* the exact write-after-read edge is kept */
    CHECK_OK(strata_worker_free(f.w, big));
    plan_teardown(&f);
}

TEST_CASE(no_dep_takes_no_part)
{
    fixture f = setup();
    strata_tensor x = test_tensor(f.x, STRATA_F32);
    uint32_t w = task1(x, STRATA_OUTPUT, SLOW_US, 2);   /* waits for the NO_DEP task */
    task1(x, STRATA_NO_DEP, 0, 0);
    uint32_t r = task1(x, STRATA_INPUT, 0, 0);
    run_ok(&f);
    CHECK_CONCURRENT(w);
    CHECK_AFTER(r, w);
    plan_teardown(&f);
}

TEST_CASE(different_buffers_independent)
{
    fixture f = setup();
    uint32_t a = task1(test_tensor(f.x, STRATA_F32), STRATA_OUTPUT, 0, 2);
    task1(test_tensor(f.y, STRATA_F32), STRATA_OUTPUT, 0, 0);
    run_ok(&f);
    CHECK_CONCURRENT(a);
    plan_teardown(&f);
}

TEST_CASE(across_core_types)
{
    fixture f = setup();
    strata_tensor x = test_tensor(f.x, STRATA_F32);
    strata_tag out = STRATA_OUTPUT, in = STRATA_INPUT;
    uint32_t p = plan_add(PROBE_AIC, 1, &x, &out, SLOW_US, 0);
    uint32_t c = plan_add(PROBE_AIV, 1, &x, &in, 0, 0);
    uint32_t w = plan_add(PROBE_AIC, 1, &x, &out, 0, 0);
    run_ok(&f);
    CHECK_AFTER(c, p);
    CHECK_AFTER(w, c);
    plan_teardown(&f);
}

/* No cap drops an edge: a writer after 300 readers follows every one of them. */
TEST_CASE(hundreds_of_readers)
{
    fixture f = setup();
    strata_tensor x = test_tensor(f.x, STRATA_F32);
    uint32_t first = plan_n;
    /* The last reader is still running when the writer links (it sleeps
       100 ms), so at least that edge is needed whatever the timing. */
    for (int i = 0; i < 300; i++)
        task1(x, STRATA_INPUT, i == 299 ? 100000 : i % 50 == 0 ? 2000 : 0, 0);
    uint32_t w = task1(x, STRATA_OUTPUT, 0, 0);
    run_ok(&f);
    for (uint32_t i = first; i < w; i++)
        CHECK_AFTER(w, i);
    strata_run_stats st;
    CHECK_OK(strata_worker_stats(f.w, &st));
    CHECK(st.dep_pool.high_water >= 1);
    plan_teardown(&f);
}

/* ... and a reader of a whole buffer follows each of 300 writers of its slices. */
TEST_CASE(hundreds_of_producers)
{
    fixture f = setup();
    strata_buffer big = test_malloc(f.w, 300 * 64);
    uint32_t first = plan_n;
    for (int i = 0; i < 300; i++)
        task1(view1d(big, STRATA_U8, (uint64_t)i * 64, 64), STRATA_OUTPUT, i % 50 == 49 ? 2000 : 0, 0);
    uint32_t r = task1(test_tensor(big, STRATA_U8), STRATA_INPUT, 0, 0);
    run_ok(&f);
    for (uint32_t i = first; i < r; i++)
        CHECK_AFTER(r, i);
    CHECK_OK(strata_worker_free(f.w, big));
    plan_teardown(&f);
}

/* One task naming the same producer's output three times needs one edge. */
TEST_CASE(one_edge_per_producer)
{
    fixture f = setup();
    strata_tensor x = test_tensor(f.x, STRATA_F32);
    /* 100 ms: still running when the consumer links, whatever the timing */
    uint32_t p = task1(x, STRATA_OUTPUT, 100000, 0);
    strata_tensor t[3] = {view1d(f.x, STRATA_F32, 0, 4), view1d(f.x, STRATA_F32, 4, 4), view1d(f.x, STRATA_F32, 8, 4)};
    strata_tag tags[3] = {STRATA_INPUT, STRATA_INPUT, STRATA_INPUT};
    uint32_t c = plan_add(PROBE_AIV, 3, t, tags, 0, 0);
    run_ok(&f);
    CHECK_AFTER(c, p);
    strata_run_stats st;
    CHECK_OK(strata_worker_stats(f.w, &st));
    CHECK_EQ_U64(st.dep_pool.high_water, 1);
    plan_teardown(&f);
}

/* No dependency crosses runs: each run starts with an empty TensorMap. */
TEST_CASE(runs_do_not_depend_on_each_other)
{
    fixture f = setup();
    strata_tensor x = test_tensor(f.x, STRATA_F32);
    task1(x, STRATA_OUTPUT, 0, 0);
    run_ok(&f);
    plan_reset();
    uint32_t r = task1(x, STRATA_INPUT, 0, 0);
    run_ok(&f);
    strata_run_stats st;
    CHECK_OK(strata_worker_stats(f.w, &st));
    CHECK_EQ_U64(st.dep_pool.high_water, 0);
    CHECK(atomic_load(&records[r].end) != 0);
    plan_teardown(&f);
}

TEST_MAIN(CASE(raw_chain), CASE(war_chain), CASE(waw_chain), CASE(readers_run_together), CASE(partial_overlap),
          CASE(overlap_across_dtypes), CASE(strided_views), CASE(large_strided_views_stay_ordered),
          CASE(no_dep_takes_no_part), CASE(different_buffers_independent), CASE(across_core_types),
          CASE(hundreds_of_readers), CASE(hundreds_of_producers), CASE(one_edge_per_producer),
          CASE(runs_do_not_depend_on_each_other))
