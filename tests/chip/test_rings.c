/* chip.rings: the task window, heap and dep_pool rings: back-pressure, scopes
 * recycling intermediates, requests that can never fit, high-water marks; the
 * rings of each scope depth: an inner scope looping in small rings beside a
 * task of the outer scope that runs the whole time, a buffer used at two
 * depths, messages that name the depth and where its size came from. */
#include "harness.h"

#include <stdatomic.h>
#include <time.h>

enum { PRODUCE = 0, ACCUMULATE = 1, NOP = 2, SLOW = 3, WAIT_COUNT = 4, COUNT = 5, STEADY = 6, HANG = 7 };

static uint64_t *u64_at(const strata_tensor *t)
{
    return (uint64_t *)(uintptr_t)(t->addr + t->offset * strata_dtype_size(t->dtype));
}

/* tensors[0][0] = scalars[0] */
static int produce(const strata_task_args *a)
{
    *u64_at(&a->tensors[0]) = a->scalars[0];
    return 0;
}

/* tensors[1][0] += tensors[0][0] */
static int accumulate(const strata_task_args *a)
{
    *u64_at(&a->tensors[1]) += *u64_at(&a->tensors[0]);
    return 0;
}

static int nop(const strata_task_args *a)
{
    (void)a;
    return 0;
}

static int slow(const strata_task_args *a)
{
    (void)a;
    struct timespec ts = {0, 20 * 1000 * 1000};
    nanosleep(&ts, NULL);
    return 0;
}

/* The inner loop's progress, and the outer task that waits for all of it. */
static _Atomic uint64_t counted;
static uint64_t count_goal;

/* tensors[1][0] += tensors[0][0]; one more iteration counted */
static int count(const strata_task_args *a)
{
    *u64_at(&a->tensors[1]) += *u64_at(&a->tensors[0]);
    atomic_fetch_add(&counted, 1);
    return 0;
}

/* runs until the inner loop has counted count_goal iterations (at most 60 s:
   then it fails, and the run with it) */
static int wait_count(const strata_task_args *a)
{
    (void)a;
    for (int i = 0; i < 60000 && atomic_load(&counted) < count_goal; i++) {
        struct timespec ts = {0, 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    return atomic_load(&counted) < count_goal;
}

/* reads tensors[0][0] (it must be scalars[0]), waits 50 ms, reads it again:
   fails if the bytes changed under it */
static int steady(const strata_task_args *a)
{
    uint64_t before = *(volatile uint64_t *)u64_at(&a->tensors[0]);
    struct timespec ts = {0, 50 * 1000 * 1000};
    nanosleep(&ts, NULL);
    uint64_t after = *(volatile uint64_t *)u64_at(&a->tensors[0]);
    return before != a->scalars[0] || after != a->scalars[0];
}

/* runs until release_hung (at most 20 s): a kernel past any timeout */
static _Atomic int release_hung;
static int hang(const strata_task_args *a)
{
    (void)a;
    for (int i = 0; i < 20000 && !atomic_load(&release_hung); i++) {
        struct timespec ts = {0, 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    return 0;
}

static const strata_kernel_entry kernels[] = {{PRODUCE, STRATA_AIV, produce},
                                              {ACCUMULATE, STRATA_AIC, accumulate},
                                              {NOP, STRATA_AIV, nop},
                                              {SLOW, STRATA_AIV, slow},
                                              {WAIT_COUNT, STRATA_AIV, wait_count},
                                              {COUNT, STRATA_AIC, count},
                                              {STEADY, STRATA_AIV, steady},
                                              {HANG, STRATA_AIV, hang}};

/* The scenario each orchestration function plays, set by the test. */
static uint64_t n_iterations;
static uint64_t tmp_elems = 1;
static int orch_status;

/* In a scope of its own: an intermediate of `elems` U64 gets i from a
   producer task, and kernel `consumer` adds it into acc. */
static int produce_and_add(strata_chip_orch *o, strata_tensor acc, uint64_t i, uint64_t elems, int consumer)
{
    strata_tensor tmp;
    int rc = strata_chip_scope_begin(o);
    if (rc == 0)
        rc = strata_chip_alloc(o, STRATA_U64, 1, &elems, &tmp);
    strata_tag out = STRATA_OUTPUT;
    if (rc == 0)
        rc = strata_chip_submit(o, PRODUCE, &(strata_task_args){&tmp, &out, 1, &i, 1});
    strata_tensor t2[2] = {tmp, acc};
    strata_tag tags2[2] = {STRATA_INPUT, STRATA_INOUT};
    if (rc == 0)
        rc = strata_chip_submit(o, consumer, &(strata_task_args){t2, tags2, 2, NULL, 0});
    if (rc == 0)
        rc = strata_chip_scope_end(o);
    return rc;
}

/* For each i: in a scope, an intermediate gets i from a producer task and is
   added into the accumulator (args tensor 0) by a second task. */
static int loop_orch(strata_chip_orch *o, const strata_task_args *args, const strata_call_config *cfg)
{
    (void)cfg;
    for (uint64_t i = 1; i <= n_iterations; i++) {
        int rc = produce_and_add(o, args->tensors[0], i, tmp_elems, ACCUMULATE);
        if (rc)
            return orch_status = rc;
    }
    return 0;
}

static strata_handle register_orch(strata_worker *w, const char *name, strata_chip_orch_fn orch)
{
    strata_chip_callable c = {name, orch, kernels, 8};
    strata_handle h;
    CHECK_OK(strata_worker_register_chip(w, &c, &h));
    return h;
}

static strata_handle register_loop(strata_worker *w)
{
    return register_orch(w, "loop", loop_orch);
}

static uint64_t run_loop(strata_worker *w, strata_handle h, strata_buffer acc, const strata_call_config *cfg)
{
    uint64_t zero = 0, sum = 0;
    CHECK_OK(strata_worker_copy_to(w, acc, 0, &zero, 8));
    strata_tensor t = test_tensor(acc, STRATA_U64);
    strata_tag tag = STRATA_INOUT;
    CHECK_OK(strata_worker_run_chip(w, h, &(strata_task_args){&t, &tag, 1, NULL, 0}, cfg));
    CHECK_OK(strata_worker_copy_from(w, &sum, acc, 0, 8));
    return sum;
}

/* Back-pressure: 100k tasks through a window of 4 slots and a 4 KiB heap. */
TEST_CASE(backpressure_tiny_rings_100k_tasks)
{
    strata_worker *w = test_worker(1, 1);
    strata_handle h = register_loop(w);
    strata_buffer acc = test_malloc(w, 64);
    n_iterations = 50000;
    tmp_elems = 64;   /* 512 bytes: 8 live intermediates fill the heap */
    strata_call_config cfg = {0};
    cfg.ring_task_window = 4;
    cfg.ring_heap = 4096;
    cfg.ring_dep_pool = 8;
    uint64_t sum = run_loop(w, h, acc, &cfg);
    CHECK_EQ_U64(sum, n_iterations * (n_iterations + 1) / 2);
    strata_run_stats st;
    CHECK_OK(strata_worker_stats(w, &st));
    CHECK_EQ_U64(st.task_window.size, 4);
    CHECK(st.task_window.high_water == 4);
    CHECK_EQ_U64(st.heap.size, 4096);
    CHECK(st.heap.high_water <= 4096 && st.heap.high_water >= 512);
    CHECK_EQ_U64(st.dep_pool.size, 8);
    CHECK(st.dep_pool.high_water <= 8 && st.dep_pool.high_water >= 1);
    CHECK_EQ_U64(st.tasks_completed, 2 * n_iterations);
    CHECK_OK(strata_worker_free(w, acc));
    CHECK_OK(strata_worker_close(w));
    strata_worker_destroy(w);
}

/* Scopes recycle: a long loop whose intermediates together need 1000x the heap. */
TEST_CASE(scopes_recycle_heap)
{
    strata_worker *w = test_worker(1, 2);
    strata_handle h = register_loop(w);
    strata_buffer acc = test_malloc(w, 64);
    n_iterations = 20000;
    tmp_elems = 16;   /* 128 bytes each, 2.5 MB in all, through a 2 KiB heap */
    strata_call_config cfg = {0};
    cfg.ring_heap = 2048;
    CHECK_EQ_U64(run_loop(w, h, acc, &cfg), n_iterations * (n_iterations + 1) / 2);
    strata_run_stats st;
    CHECK_OK(strata_worker_stats(w, &st));
    CHECK(st.heap.high_water <= 2048);
    /* The next run with the default rings works too, and reports them. */
    n_iterations = 100;
    CHECK_EQ_U64(run_loop(w, h, acc, NULL), 5050);
    CHECK_OK(strata_worker_stats(w, &st));
    CHECK(st.heap.size > 2048);
    CHECK_OK(strata_worker_free(w, acc));
    CHECK_OK(strata_worker_close(w));
    strata_worker_destroy(w);
}

/* ---- requests that can never fit fail at once, with words ---- */

static uint64_t alloc_bytes;
static int alloc_count;
static bool end_scopes;
static int alloc_depth = 1;   /* scopes each allocation is nested in, with end_scopes */

static int alloc_orch(strata_chip_orch *o, const strata_task_args *args, const strata_call_config *cfg)
{
    (void)args;
    (void)cfg;
    for (int i = 0; i < alloc_count; i++) {
        strata_tensor t;
        uint64_t shape = alloc_bytes;
        int rc = 0;
        for (int d = 0; end_scopes && rc == 0 && d < alloc_depth; d++)
            rc = strata_chip_scope_begin(o);
        if (rc == 0)
            rc = strata_chip_alloc(o, STRATA_U8, 1, &shape, &t);
        strata_tag tag = STRATA_OUTPUT;
        if (rc == 0)
            rc = strata_chip_submit(o, NOP, &(strata_task_args){&t, &tag, 1, NULL, 0});
        for (int d = 0; end_scopes && rc == 0 && d < alloc_depth; d++)
            rc = strata_chip_scope_end(o);
        if (rc)
            return orch_status = rc;
    }
    return 0;
}

static strata_handle register_alloc(strata_worker *w)
{
    return register_orch(w, "alloc", alloc_orch);
}

/* A worker of 1 AIC + 1 AIV core created with environment variable `var` set
   to `value` (then unset), running alloc_orch: `count` allocations of `bytes`,
   each in its own scopes `depth` deep. */
static strata_worker *alloc_worker(const char *var, const char *value, uint64_t bytes, int count, int depth,
                                   strata_handle *h)
{
    test_setenv(var, value);
    strata_worker *w = test_worker(1, 1);
    test_setenv(var, NULL);
    *h = register_alloc(w);
    alloc_bytes = bytes;
    alloc_count = count;
    end_scopes = true;
    alloc_depth = depth;
    return w;
}

TEST_CASE(buffer_larger_than_heap_fails_fast)
{
    strata_worker *w = test_worker(1, 1);
    strata_handle h = register_alloc(w);
    strata_call_config cfg = {0};
    cfg.ring_heap = 4096;
    alloc_bytes = 8192;
    alloc_count = 1;
    end_scopes = true;
    uint64_t t0 = test_now_ns();
    CHECK_STATUS(strata_worker_run_chip(w, h, NULL, &cfg), STRATA_ERING);
    CHECK(test_now_ns() - t0 < 5000000000ull);
    CHECK_ERROR_HAS("heap ring of scope depth 1 is 4096 bytes (call_config.ring_heap)");
    CHECK_ERROR_HAS("8192-byte buffer can never fit");
    CHECK_ERROR_HAS("set call_config.ring_heap to at least 8192");
    CHECK_EQ_U64(strata_worker_state(w), STRATA_STATE_READY);
    /* The worker is still usable. */
    alloc_bytes = 1024;
    alloc_count = 100;
    CHECK_OK(strata_worker_run_chip(w, h, NULL, &cfg));
    CHECK_OK(strata_worker_close(w));
    strata_worker_destroy(w);
}

/* Buffers of a scope that never ends hold the heap: no waiting can help. */
TEST_CASE(heap_held_by_open_scope_fails_fast)
{
    strata_worker *w = test_worker(1, 1);
    strata_handle h = register_alloc(w);
    strata_call_config cfg = {0};
    cfg.ring_heap = 4096;
    alloc_bytes = 1024;
    alloc_count = 5;
    end_scopes = false;
    uint64_t t0 = test_now_ns();
    CHECK_STATUS(strata_worker_run_chip(w, h, NULL, &cfg), STRATA_ERING);
    CHECK(test_now_ns() - t0 < 5000000000ull);
    CHECK_STATUS(orch_status, STRATA_ERING);
    CHECK_ERROR_HAS("heap ring of scope depth 0 is 4096 bytes (call_config.ring_heap)");
    CHECK_ERROR_HAS("4 buffers whose scope has not ended");
    CHECK_ERROR_HAS("strata_chip_scope_end");
    end_scopes = true;
    CHECK_OK(strata_worker_run_chip(w, h, NULL, &cfg));
    CHECK_OK(strata_worker_close(w));
    strata_worker_destroy(w);
}

static int fanin;
static int fanin_orch(strata_chip_orch *o, const strata_task_args *args, const strata_call_config *cfg)
{
    (void)cfg;
    strata_tag out = STRATA_OUTPUT;
    for (int i = 0; i < fanin; i++) {
        int rc = strata_chip_submit(o, SLOW, &(strata_task_args){&args->tensors[i], &out, 1, NULL, 0});
        if (rc)
            return rc;
    }
    strata_tag in[8] = {STRATA_INPUT, STRATA_INPUT, STRATA_INPUT, STRATA_INPUT,
                        STRATA_INPUT, STRATA_INPUT, STRATA_INPUT, STRATA_INPUT};
    return strata_chip_submit(o, NOP, &(strata_task_args){args->tensors, in, (uint32_t)fanin, NULL, 0});
}

/* One task that follows more running producers than the dep_pool has edges:
   it links what fits and waits for the others to finish, so the run succeeds and
   the reader still runs after every producer. */
static _Atomic uint64_t producers_done, reader_saw;
static int count_done(const strata_task_args *a)
{
    (void)a;
    struct timespec ts = {0, 20 * 1000 * 1000};
    nanosleep(&ts, NULL);
    atomic_fetch_add(&producers_done, 1);
    return 0;
}
static int read_count(const strata_task_args *a)
{
    (void)a;
    atomic_store(&reader_saw, atomic_load(&producers_done));
    return 0;
}

TEST_CASE(task_with_more_producers_than_dep_pool)
{
    strata_worker *w = test_worker(1, 2);
    static const strata_kernel_entry k[] = {{NOP, STRATA_AIV, read_count}, {SLOW, STRATA_AIV, count_done}};
    strata_chip_callable c = {"fanin", fanin_orch, k, 2};
    strata_handle h;
    CHECK_OK(strata_worker_register_chip(w, &c, &h));
    strata_buffer b[8];
    strata_tensor t[8];
    strata_tag tags[8];
    for (int i = 0; i < 8; i++) {
        b[i] = test_malloc(w, 64);
        t[i] = test_tensor(b[i], STRATA_U8);
        tags[i] = STRATA_INOUT;
    }
    fanin = 8;
    for (uint64_t pool = 1; pool <= 4; pool++) {
        atomic_store(&producers_done, 0);
        atomic_store(&reader_saw, 0);
        strata_call_config cfg = {0};
        cfg.ring_dep_pool = pool;
        CHECK_OK(strata_worker_run_chip(w, h, &(strata_task_args){t, tags, 8, NULL, 0}, &cfg));
        CHECK_EQ_U64(atomic_load(&reader_saw), 8);
        strata_run_stats st;
        CHECK_OK(strata_worker_stats(w, &st));
        CHECK(st.dep_pool.high_water <= pool);
    }
    for (int i = 0; i < 8; i++)
        CHECK_OK(strata_worker_free(w, b[i]));
    CHECK_OK(strata_worker_close(w));
    strata_worker_destroy(w);
}

/* A heap sized by the environment is named by its variable. */
TEST_CASE(messages_name_the_variable)
{
    strata_handle h;
    strata_worker *w = alloc_worker("PTO2_RING_HEAP", "4096", 8192, 1, 1, &h);
    CHECK_STATUS(strata_worker_run_chip(w, h, NULL, NULL), STRATA_ERING);
    CHECK_ERROR_HAS("heap ring of scope depth 1 is 4096 bytes (PTO2_RING_HEAP)");
    CHECK_ERROR_HAS("set PTO2_RING_HEAP to at least 8192");
    CHECK_OK(strata_worker_close(w));
    strata_worker_destroy(w);
}

TEST_CASE(bad_call_config_sizes)
{
    strata_worker *w = test_worker(1, 1);
    strata_handle h = register_alloc(w);
    alloc_count = 0;
    strata_call_config cfg = {0};
    cfg.ring_task_window = 1000;
    CHECK_STATUS(strata_worker_run_chip(w, h, NULL, &cfg), STRATA_EINVAL);
    CHECK_ERROR_HAS("call_config.ring_task_window is 1000");
    CHECK_ERROR_HAS("power of two");
    cfg.ring_task_window = 0;
    cfg.ring_heap = 8;
    CHECK_STATUS(strata_worker_run_chip(w, h, NULL, &cfg), STRATA_EINVAL);
    CHECK_ERROR_HAS("call_config.ring_heap is 8");
    cfg.ring_heap = 1ull << 40;
    CHECK_STATUS(strata_worker_run_chip(w, h, NULL, &cfg), STRATA_EINVAL);
    CHECK_ERROR_HAS("call_config.ring_heap is 1099511627776; it must be between 64 bytes and half the chip memory");
    CHECK_EQ_U64(strata_worker_state(w), STRATA_STATE_READY);
    CHECK_OK(strata_worker_run_chip(w, h, NULL, NULL));
    CHECK_OK(strata_worker_close(w));
    strata_worker_destroy(w);
}

/* ---- rings per scope depth ---- */

/* A task of the outer scope runs the whole time (it waits for the inner loop
   to finish); an inner scope loops 10,000 times in rings of 16 slots, 16 edges
   and 1 KiB of heap per depth, allocating 64 bytes each time: 640 KB through
   a 1 KiB ring. Each depth's ring retires on its own, so the loop never waits
   for the outer task, and never fails. */
static int outer_inner_orch(strata_chip_orch *o, const strata_task_args *args, const strata_call_config *cfg)
{
    (void)cfg;
    int rc = strata_chip_scope_begin(o);   /* the outer scope: depth 1 */
    if (rc == 0)
        rc = strata_chip_submit(o, WAIT_COUNT, NULL);
    for (uint64_t i = 1; rc == 0 && i <= n_iterations; i++)
        rc = produce_and_add(o, args->tensors[0], i, 8, COUNT);   /* the inner scope: depth 2 */
    if (rc == 0)
        rc = strata_chip_scope_end(o);
    return orch_status = rc;
}

TEST_CASE(inner_scope_loops_beside_a_long_outer_task)
{
    strata_worker *w = test_worker(1, 2);   /* the outer task holds one AIV core */
    strata_handle h = register_orch(w, "outer_inner", outer_inner_orch);
    strata_buffer acc = test_malloc(w, 64);
    n_iterations = 10000;
    for (int run = 0; run < 2; run++) {
        atomic_store(&counted, 0);
        count_goal = n_iterations;
        strata_call_config cfg = {0};
        cfg.ring_task_window = 16;
        cfg.ring_dep_pool = 16;
        cfg.ring_heap = 1024;
        CHECK_EQ_U64(run_loop(w, h, acc, &cfg), n_iterations * (n_iterations + 1) / 2);
        strata_run_info info = {.size = sizeof info};
        CHECK_OK(strata_worker_run_info(w, &info));
        CHECK_EQ_U64(info.task_window_by_depth[1].high_water, 1);      /* the outer task */
        CHECK_EQ_U64(info.task_window_by_depth[2].size, 16);
        CHECK(info.task_window_by_depth[2].high_water <= 16);
        CHECK(info.heap_by_depth[2].high_water <= 1024);                /* 640 KB went through it */
        CHECK(info.dep_pool_by_depth[2].high_water <= 16);
        CHECK_EQ_U64(info.task_window_by_depth[0].high_water, 0);      /* nothing at depth 0 */
    }
    strata_run_stats st;
    CHECK_OK(strata_worker_stats(w, &st));
    CHECK_EQ_U64(st.tasks_completed, 2 * (2 * n_iterations + 1));
    CHECK_OK(strata_worker_free(w, acc));
    CHECK_OK(strata_worker_close(w));
    strata_worker_destroy(w);
}

/* An intermediate of depth 1 read by a slow task of depth 2 and then by a quick
   one of depth 1: the quick one retires first (its ring is another), but the
   bytes are reused only after the slow one too has finished. The next scope
   of depth 1 allocates in a heap that holds one buffer, so it gets the same
   bytes and writes them at once. */
static int two_depths_orch(strata_chip_orch *o, const strata_task_args *args, const strata_call_config *cfg)
{
    (void)args;
    (void)cfg;
    uint64_t seven = 7, nine = 9, elems = 128;   /* 1 KiB: the whole heap of depth 1 */
    strata_tensor tmp, again;
    strata_tag out = STRATA_OUTPUT, in = STRATA_INPUT;
    int rc = strata_chip_scope_begin(o);
    if (rc == 0)
        rc = strata_chip_alloc(o, STRATA_U64, 1, &elems, &tmp);
    if (rc == 0)
        rc = strata_chip_submit(o, PRODUCE, &(strata_task_args){&tmp, &out, 1, &seven, 1});
    if (rc == 0)
        rc = strata_chip_scope_begin(o);
    if (rc == 0)
        rc = strata_chip_submit(o, STEADY, &(strata_task_args){&tmp, &in, 1, &seven, 1});
    if (rc == 0)
        rc = strata_chip_scope_end(o);
    if (rc == 0)
        rc = strata_chip_submit(o, NOP, &(strata_task_args){&tmp, &in, 1, NULL, 0});
    if (rc == 0)
        rc = strata_chip_scope_end(o);
    if (rc == 0)
        rc = strata_chip_scope_begin(o);
    if (rc == 0)
        rc = strata_chip_alloc(o, STRATA_U64, 1, &elems, &again);
    if (rc == 0 && again.addr != tmp.addr)
        rc = STRATA_EINVAL;   /* the heap holds one buffer: the same bytes */
    if (rc == 0)
        rc = strata_chip_submit(o, PRODUCE, &(strata_task_args){&again, &out, 1, &nine, 1});
    if (rc == 0)
        rc = strata_chip_scope_end(o);
    return orch_status = rc;
}

TEST_CASE(a_buffer_used_at_two_depths_waits_for_both)
{
    strata_worker *w = test_worker(1, 2);
    strata_handle h = register_orch(w, "two_depths", two_depths_orch);
    strata_call_config cfg = {0};
    cfg.ring_heap_by_depth[1] = 1024;
    for (int run = 0; run < 5; run++)
        CHECK_OK(strata_worker_run_chip(w, h, NULL, &cfg));
    CHECK_OK(strata_worker_close(w));
    strata_worker_destroy(w);
}

/* Messages name the depth and where its size came from: a list in the
   environment, a per-depth call_config entry, the ring shared by depth 3 and
   deeper; bad lists and entries are refused saying why. */
TEST_CASE(messages_name_the_depth)
{
    strata_handle h;
    strata_worker *w = alloc_worker("PTO2_RING_HEAP", "4096,4096,2048,4096", 3000, 1, 2, &h);
    CHECK_STATUS(strata_worker_run_chip(w, h, NULL, NULL), STRATA_ERING);
    CHECK_ERROR_HAS("heap ring of scope depth 2 is 2048 bytes (PTO2_RING_HEAP's value for scope depth 2); a "
                    "3000-byte buffer can never fit; set PTO2_RING_HEAP's value for scope depth 2 to at least 3008");
    alloc_depth = 1;
    CHECK_OK(strata_worker_run_chip(w, h, NULL, NULL));   /* depth 1 has 4096 bytes */
    strata_call_config cfg = {0};
    cfg.ring_heap_by_depth[1] = 1024;
    CHECK_STATUS(strata_worker_run_chip(w, h, NULL, &cfg), STRATA_ERING);
    CHECK_ERROR_HAS("heap ring of scope depth 1 is 1024 bytes (call_config.ring_heap_by_depth[1])");
    alloc_depth = 5;
    cfg.ring_heap_by_depth[1] = 0;
    cfg.ring_heap_by_depth[3] = 2048;
    CHECK_STATUS(strata_worker_run_chip(w, h, NULL, &cfg), STRATA_ERING);
    CHECK_ERROR_HAS("heap ring of scope depth 5 (the ring of depth 3 and deeper) is 2048 bytes "
                    "(call_config.ring_heap_by_depth[3])");
    alloc_depth = 1;
    cfg.ring_heap_by_depth[3] = 0;
    cfg.ring_task_window_by_depth[2] = 3;
    CHECK_STATUS(strata_worker_run_chip(w, h, NULL, &cfg), STRATA_EINVAL);
    CHECK_ERROR_HAS("call_config.ring_task_window_by_depth[2] is 3; it must be a power of two");
    CHECK_EQ_U64(strata_worker_state(w), STRATA_STATE_READY);
    CHECK_OK(strata_worker_run_chip(w, h, NULL, NULL));
    CHECK_OK(strata_worker_close(w));
    strata_worker_destroy(w);
    /* a list of the wrong length */
    test_setenv("PTO2_RING_DEP_POOL", "64,64");
    strata_worker_config wc;
    strata_worker_config_init(&wc, 2);
    CHECK_STATUS(strata_worker_create(&wc, &w), STRATA_EINVAL);
    CHECK_ERROR_HAS("PTO2_RING_DEP_POOL is \"64,64\"; it must be one value or 4 comma-separated values (one for "
                    "each of scope depth 0 ... scope depth 3 and deeper)");
    test_setenv("PTO2_RING_DEP_POOL", "64,64,0,64");
    CHECK_STATUS(strata_worker_create(&wc, &w), STRATA_EINVAL);
    CHECK_ERROR_HAS("PTO2_RING_DEP_POOL's value for scope depth 2 is \"0\"");
    test_setenv("PTO2_RING_DEP_POOL", NULL);
}

/* A task of depth 1 waits for the task of depth 2 below; that task reads two
   buffers written by two slow tasks of depth 1, and depth 2's dep pool holds
   one edge. Its second edge waits for room, which only its own retirement
   would make: the wait must end when that producer finishes, since the oldest
   task of depth 1 waits for this very submit's task. */
static int awaited_producer_orch(strata_chip_orch *o, const strata_task_args *args, const strata_call_config *cfg)
{
    (void)cfg;
    strata_tag out = STRATA_OUTPUT, in_inout[2] = {STRATA_INPUT, STRATA_INOUT};
    int rc = strata_chip_scope_begin(o);
    if (rc == 0)
        rc = strata_chip_submit(o, WAIT_COUNT, NULL);
    for (int k = 0; rc == 0 && k < 2; k++)
        rc = strata_chip_submit(o, SLOW, &(strata_task_args){&args->tensors[k], &out, 1, NULL, 0});
    if (rc == 0)
        rc = strata_chip_scope_begin(o);
    if (rc == 0)
        rc = strata_chip_submit(o, COUNT, &(strata_task_args){(strata_tensor *)args->tensors, in_inout, 2, NULL, 0});
    if (rc == 0)
        rc = strata_chip_scope_end(o);
    if (rc == 0)
        rc = strata_chip_scope_end(o);
    return rc;
}

TEST_CASE(a_dep_pool_wait_ends_when_its_producer_does)
{
    strata_worker *w = test_worker(1, 3);   /* the waiting task and both slow ones at once */
    strata_handle h = register_orch(w, "awaited", awaited_producer_orch);
    strata_buffer b[2] = {test_malloc(w, 64), test_malloc(w, 64)};
    strata_tensor t[2] = {test_tensor(b[0], STRATA_U64), test_tensor(b[1], STRATA_U64)};
    strata_tag tags[2] = {STRATA_INOUT, STRATA_INOUT};
    strata_call_config cfg = {0};
    cfg.ring_dep_pool_by_depth[2] = 1;
    for (int run = 0; run < 3; run++) {
        atomic_store(&counted, 0);
        count_goal = 1;
        uint64_t t0 = test_now_ns();
        CHECK_OK(strata_worker_run_chip(w, h, &(strata_task_args){t, tags, 2, NULL, 0}, &cfg));
        CHECK(test_now_ns() - t0 < 10ull * 1000000000);   /* the slow tasks take 20 ms */
        CHECK_EQ_U64(atomic_load(&counted), 1);
    }
    for (int k = 0; k < 2; k++)
        CHECK_OK(strata_worker_free(w, b[k]));
    CHECK_OK(strata_worker_close(w));
    strata_worker_destroy(w);
}

/* An intermediate in each of four nested scopes (depths 1 to 4). */
static int nested_alloc_orch(strata_chip_orch *o, const strata_task_args *args, const strata_call_config *cfg)
{
    (void)args;
    (void)cfg;
    int rc = 0;
    for (int d = 1; rc == 0 && d <= 4; d++) {
        strata_tensor t;
        uint64_t kib = 1024;
        strata_tag out = STRATA_OUTPUT;
        rc = strata_chip_scope_begin(o);
        if (rc == 0)
            rc = strata_chip_alloc(o, STRATA_U8, 1, &kib, &t);
        if (rc == 0)
            rc = strata_chip_submit(o, NOP, &(strata_task_args){&t, &out, 1, NULL, 0});
    }
    for (int d = 1; rc == 0 && d <= 4; d++)
        rc = strata_chip_scope_end(o);
    return rc;
}

/* Heaps of deeper scopes by default: each at most an eighth of the chip
   memory, placed at its depth's first intermediate and kept between runs,
   but given back when the program's own buffer needs the memory, or when
   another depth's heap does (a heap that holds nothing). A 128 MiB chip:
   depth 0's heap 64 MiB, the others 16 MiB each. */
TEST_CASE(deeper_heaps_leave_room_for_the_programs_buffers)
{
    strata_worker_config wc;
    strata_worker_config_init(&wc, 2);
    wc.device_memory_bytes = 128ull << 20;
    strata_worker *w;
    CHECK_OK(strata_worker_create(&wc, &w));
    CHECK_OK(strata_worker_init(w));
    strata_handle h = register_orch(w, "nested_alloc", nested_alloc_orch);
    CHECK_OK(strata_worker_run_chip(w, h, NULL, NULL));   /* heaps of depths 1, 2 and 3+ placed */
    strata_run_info info = {.size = sizeof info};
    CHECK_OK(strata_worker_run_info(w, &info));
    CHECK_EQ_U64(info.heap_by_depth[0].size, 64ull << 20);
    for (int d = 1; d < 4; d++) {
        CHECK_EQ_U64(info.heap_by_depth[d].size, 16ull << 20);
        CHECK(info.heap_by_depth[d].high_water >= 1024);
    }
    /* 16 MiB are free; a 40 MiB buffer takes the deeper heaps' memory back,
       and the last run's figures stay as they were */
    strata_buffer big;
    CHECK_OK(strata_worker_malloc(w, 0, 40ull << 20, &big));
    strata_run_info again = {.size = sizeof again};
    CHECK_OK(strata_worker_run_info(w, &again));
    CHECK(memcmp(&info, &again, sizeof info) == 0);
    /* with it held, 24 MiB are free: depth 1's heap fits; depth 2's takes
       the memory of depth 0's, which holds nothing in this run */
    CHECK_OK(strata_worker_run_chip(w, h, NULL, NULL));
    CHECK_OK(strata_worker_free(w, big));
    /* 110 MiB held: depth 0's heap cannot be placed for the run */
    CHECK_OK(strata_worker_malloc(w, 0, 110ull << 20, &big));
    CHECK_STATUS(strata_worker_run_chip(w, h, NULL, NULL), STRATA_ENOMEM);
    CHECK_ERROR_HAS("placing the 67108864-byte heap ring of scope depth 0 (PTO2_RING_HEAP) in chip memory, for the "
                    "run; lower that size, or free chip memory");
    /* heaps of 8 MiB: depths 0 and 1 fit, depth 2 takes depth 0's, depth 3
       finds nothing left to take */
    strata_call_config cfg = {0};
    cfg.ring_heap = 8ull << 20;
    CHECK_STATUS(strata_worker_run_chip(w, h, NULL, &cfg), STRATA_ENOMEM);
    CHECK_ERROR_HAS("placing the 8388608-byte heap ring of scope depth 3 and deeper (call_config.ring_heap) in chip "
                    "memory, at its first intermediate buffer");
    cfg.ring_heap_by_depth[3] = 4096;   /* depths 3 and 4: 1 KiB each */
    CHECK_OK(strata_worker_run_chip(w, h, NULL, &cfg));
    CHECK_OK(strata_worker_free(w, big));
    CHECK_OK(strata_worker_close(w));
    strata_worker_destroy(w);
}

/* Fewer rings (STRATA_SCOPE_RINGS): the deeper depths share the last, only
   the rings in use take memory, and one depth's largest window works. */
TEST_CASE(fewer_rings_share_the_last)
{
    strata_handle h;
    strata_worker *w = alloc_worker("STRATA_SCOPE_RINGS", "2", 8192, 1, 3, &h);
    strata_call_config cfg = {0};
    cfg.ring_heap = 4096;
    CHECK_STATUS(strata_worker_run_chip(w, h, NULL, &cfg), STRATA_ERING);
    CHECK_ERROR_HAS("heap ring of scope depth 3 (the ring of depth 1 and deeper: STRATA_SCOPE_RINGS is 2) is 4096 "
                    "bytes (call_config.ring_heap)");
    alloc_bytes = 1024;
    cfg.ring_heap = 0;
    cfg.ring_task_window = 65536;   /* the largest, at every depth in use */
    CHECK_OK(strata_worker_run_chip(w, h, NULL, &cfg));
    strata_run_info info = {.size = sizeof info};
    CHECK_OK(strata_worker_run_info(w, &info));
    CHECK_EQ_U64(info.task_window_by_depth[1].size, 65536);
    CHECK_EQ_U64(info.task_window_by_depth[1].high_water, 1);
    CHECK_EQ_U64(info.task_window_by_depth[2].size, 0);   /* not in use */
    CHECK_EQ_U64(info.task_window_by_depth[3].size, 0);
    CHECK_OK(strata_worker_close(w));
    strata_worker_destroy(w);
    alloc_depth = 1;
}

/* A submit that waits for room behind a task past its timeout returns
   ETIMEDOUT saying which ring of which depth it waited for (the run returns
   the timeout itself, naming the task). */
static char waited_why[512];
static int hang_orch(strata_chip_orch *o, const strata_task_args *args, const strata_call_config *cfg)
{
    (void)args;
    (void)cfg;
    int rc = strata_chip_scope_begin(o);
    for (int i = 0; rc == 0 && i < 3; i++)
        rc = strata_chip_submit(o, HANG, NULL);   /* the third waits: 2 slots at depth 1 */
    snprintf(waited_why, sizeof waited_why, "%s", strata_last_error());
    return rc;
}

TEST_CASE(a_wait_for_room_past_the_timeout_names_the_ring)
{
    int threads_before = test_thread_count();
    atomic_store(&release_hung, 0);
    strata_worker *w = test_worker(1, 2);
    strata_handle h = register_orch(w, "hangs", hang_orch);
    strata_call_config cfg = {0};
    cfg.timeout_ms = 100;
    cfg.ring_task_window_by_depth[1] = 2;
    CHECK_STATUS(strata_worker_run_chip(w, h, NULL, &cfg), STRATA_ETIMEDOUT);
    CHECK_ERROR_HAS("has run on AIV core");
    if (!strstr(waited_why, "strata_chip_submit: waiting for room in the task_window ring of scope depth 1"))
        test_fail(__FILE__, __LINE__, "the waiting submit said: %s", waited_why);
    CHECK_OK(strata_worker_close(w));
    strata_worker_destroy(w);
    /* the abandoned chip's memory, on purpose (its task bodies, 3074 slots
       here, stay under the harness's 16 MiB mark) */
    test_allow_mappings(1);
    atomic_store(&release_hung, 1);
    CHECK(test_wait_for_threads(threads_before, 10000));
}

TEST_MAIN(CASE(backpressure_tiny_rings_100k_tasks), CASE(scopes_recycle_heap), CASE(buffer_larger_than_heap_fails_fast),
          CASE(heap_held_by_open_scope_fails_fast), CASE(task_with_more_producers_than_dep_pool),
          CASE(messages_name_the_variable), CASE(bad_call_config_sizes), CASE(inner_scope_loops_beside_a_long_outer_task),
          CASE(a_buffer_used_at_two_depths_waits_for_both), CASE(messages_name_the_depth),
          CASE(a_wait_for_room_past_the_timeout_names_the_ring), CASE(deeper_heaps_leave_room_for_the_programs_buffers),
          CASE(fewer_rings_share_the_last), CASE(a_dep_pool_wait_ends_when_its_producer_does))
