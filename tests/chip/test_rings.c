/* chip.rings: the task window, heap and dep_pool rings: back-pressure, scopes
 * recycling intermediates, requests that can never fit, high-water marks. */
#include "harness.h"

#include <stdatomic.h>
#include <time.h>

enum { PRODUCE = 0, ACCUMULATE = 1, NOP = 2, SLOW = 3 };

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

static const strata_kernel_entry kernels[] = {{PRODUCE, STRATA_AIV, produce},
                                              {ACCUMULATE, STRATA_AIC, accumulate},
                                              {NOP, STRATA_AIV, nop},
                                              {SLOW, STRATA_AIV, slow}};

/* The scenario each orchestration function plays, set by the test. */
static uint64_t n_iterations;
static uint64_t tmp_elems = 1;
static int orch_status;

/* For each i: in a scope, an intermediate gets i from a producer task and is
   added into the accumulator (args tensor 0) by a second task. */
static int loop_orch(strata_chip_orch *o, const strata_task_args *args, const strata_call_config *cfg)
{
    (void)cfg;
    strata_tensor acc = args->tensors[0];
    for (uint64_t i = 1; i <= n_iterations; i++) {
        strata_tensor tmp;
        int rc = strata_chip_scope_begin(o);
        if (rc == 0)
            rc = strata_chip_alloc(o, STRATA_U64, 1, &tmp_elems, &tmp);
        strata_tag ptag = STRATA_OUTPUT;
        if (rc == 0)
            rc = strata_chip_submit(o, PRODUCE, &(strata_task_args){&tmp, &ptag, 1, &i, 1});
        strata_tensor t2[2] = {tmp, acc};
        strata_tag tags2[2] = {STRATA_INPUT, STRATA_INOUT};
        if (rc == 0)
            rc = strata_chip_submit(o, ACCUMULATE, &(strata_task_args){t2, tags2, 2, NULL, 0});
        if (rc == 0)
            rc = strata_chip_scope_end(o);
        if (rc)
            return orch_status = rc;
    }
    return 0;
}

static strata_handle register_orch(strata_worker *w, const char *name, strata_chip_orch_fn orch)
{
    strata_chip_callable c = {name, orch, kernels, 4};
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

static int alloc_orch(strata_chip_orch *o, const strata_task_args *args, const strata_call_config *cfg)
{
    (void)args;
    (void)cfg;
    for (int i = 0; i < alloc_count; i++) {
        strata_tensor t;
        uint64_t shape = alloc_bytes;
        int rc = end_scopes ? strata_chip_scope_begin(o) : 0;
        if (rc == 0)
            rc = strata_chip_alloc(o, STRATA_U8, 1, &shape, &t);
        strata_tag tag = STRATA_OUTPUT;
        if (rc == 0)
            rc = strata_chip_submit(o, NOP, &(strata_task_args){&t, &tag, 1, NULL, 0});
        if (rc == 0 && end_scopes)
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
    CHECK_ERROR_HAS("heap ring is 4096 bytes (call_config.ring_heap)");
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
    CHECK_ERROR_HAS("heap ring is 4096 bytes (call_config.ring_heap)");
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
    test_setenv("PTO2_RING_HEAP", "4096");
    strata_worker *w = test_worker(1, 1);
    test_setenv("PTO2_RING_HEAP", NULL);
    strata_handle h = register_alloc(w);
    alloc_bytes = 8192;
    alloc_count = 1;
    end_scopes = true;
    CHECK_STATUS(strata_worker_run_chip(w, h, NULL, NULL), STRATA_ERING);
    CHECK_ERROR_HAS("heap ring is 4096 bytes (PTO2_RING_HEAP)");
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

TEST_MAIN(CASE(backpressure_tiny_rings_100k_tasks), CASE(scopes_recycle_heap), CASE(buffer_larger_than_heap_fails_fast),
          CASE(heap_held_by_open_scope_fails_fast), CASE(task_with_more_producers_than_dep_pool),
          CASE(messages_name_the_variable), CASE(bad_call_config_sizes))
