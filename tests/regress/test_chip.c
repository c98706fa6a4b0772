/* regress.chip: every fixed bug of the chip engine leaves a case here, named for
 * its symptom. */
#include "harness.h"

#include <stdatomic.h>
#include <time.h>

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0)
        ;
}

static int slow_kernel(const strata_task_args *a)
{
    sleep_ms((long)a->scalars[0]);
    return 0;
}

static int nop_kernel(const strata_task_args *a)
{
    (void)a;
    return 0;
}

static const strata_kernel_entry kernels[] = {{0, STRATA_AIV, slow_kernel}, {1, STRATA_AIV, nop_kernel}};

static strata_handle register_orch(strata_worker *w, strata_chip_orch_fn orch)
{
    strata_chip_callable c = {"regress", orch, kernels, 2};
    strata_handle h;
    CHECK_OK(strata_worker_register_chip(w, &c, &h));
    return h;
}

/* A task following more running producers than the dep_pool held failed with
   STRATA_ERING ("alone needs more") or not, depending on kernel speed. */
static int two_slow_then_reader(strata_chip_orch *o, const strata_task_args *args, const strata_call_config *cfg)
{
    (void)cfg;
    uint64_t ms = 50;
    strata_tag inout = STRATA_INOUT;
    int rc = strata_chip_submit(o, 0, &(strata_task_args){&args->tensors[0], &inout, 1, &ms, 1});
    if (rc == 0)
        rc = strata_chip_submit(o, 0, &(strata_task_args){&args->tensors[1], &inout, 1, &ms, 1});
    strata_tag in[2] = {STRATA_INPUT, STRATA_INPUT};
    if (rc == 0)
        rc = strata_chip_submit(o, 1, &(strata_task_args){args->tensors, in, 2, NULL, 0});
    return rc;
}

TEST_CASE(dep_pool_error_depended_on_timing)
{
    strata_worker *w = test_worker(1, 2);
    strata_handle h = register_orch(w, two_slow_then_reader);
    strata_buffer a = test_malloc(w, 64), b = test_malloc(w, 64);
    strata_tensor t[2] = {test_tensor(a, STRATA_U8), test_tensor(b, STRATA_U8)};
    strata_tag tags[2] = {STRATA_INOUT, STRATA_INOUT};
    strata_call_config cfg = {0};
    cfg.ring_task_window = 8;
    cfg.ring_dep_pool = 1;
    CHECK_OK(strata_worker_run_chip(w, h, &(strata_task_args){t, tags, 2, NULL, 0}, &cfg));
    strata_worker_destroy(w);
}

/* A submit looked its buffers up, then waited for a task_window slot; retiring
   during the wait could recycle one of those heap buffers, and the submit then
   wrote into a freed TensorMap record. Using an intermediate after its scope has
   ended is now refused up front, whatever the ring sizes. */
static int use_after_scope(strata_chip_orch *o, const strata_task_args *args, const strata_call_config *cfg)
{
    (void)args;
    (void)cfg;
    strata_tensor t;
    uint64_t shape = 256, ms = 20;
    strata_tag out = STRATA_OUTPUT, in = STRATA_INPUT;
    int rc = strata_chip_scope_begin(o);
    if (rc == 0)
        rc = strata_chip_alloc(o, STRATA_U8, 1, &shape, &t);
    if (rc == 0)
        rc = strata_chip_submit(o, 0, &(strata_task_args){&t, &out, 1, &ms, 1});
    if (rc == 0)
        rc = strata_chip_scope_end(o);
    if (rc == 0)
        rc = strata_chip_submit(o, 1, &(strata_task_args){&t, &in, 1, NULL, 0});
    return rc;
}

TEST_CASE(heap_buffer_recycled_under_a_submit)
{
    strata_worker *w = test_worker(1, 1);
    strata_handle h = register_orch(w, use_after_scope);
    for (uint64_t window = 1; window <= 1024; window *= 32) {
        strata_call_config cfg = {0};
        cfg.ring_task_window = window;
        CHECK_STATUS(strata_worker_run_chip(w, h, NULL, &cfg), STRATA_EINVAL);
        CHECK_ERROR_HAS("tensor 0: the intermediate buffer at 0x");
        CHECK_ERROR_HAS("belongs to a scope that has already ended");
    }
    strata_worker_destroy(w);
}

/* A Strata call that failed inside the orchestration function left its message
   behind after a run that succeeded. */
static strata_worker *self;
static int recovering_orch(strata_chip_orch *o, const strata_task_args *args, const strata_call_config *cfg)
{
    (void)o;
    (void)args;
    (void)cfg;
    strata_buffer b;
    return strata_worker_malloc(self, 0, 64, &b) == STRATA_ESTATE ? 0 : -1;   /* refused inside a run */
}

TEST_CASE(message_left_after_successful_run)
{
    self = test_worker(1, 1);
    strata_handle h = register_orch(self, recovering_orch);
    CHECK_OK(strata_worker_run_chip(self, h, NULL, NULL));
    CHECK(strata_last_error()[0] == '\0');
    strata_worker_destroy(self);
}

/* A worker whose kernel passed its timeout kept its chip memory mapped forever
   even when the kernel had returned before close. */
static _Atomic int slow_returned;
static int timed_out_then_returns(const strata_task_args *a)
{
    (void)a;
    sleep_ms(300);
    atomic_store(&slow_returned, 1);
    return 0;
}

static int one_task(strata_chip_orch *o, const strata_task_args *args, const strata_call_config *cfg)
{
    (void)args;
    (void)cfg;
    return strata_chip_submit(o, 0, NULL);
}

TEST_CASE(hung_chip_never_released)
{
    strata_worker *w = test_worker(1, 1);
    static const strata_kernel_entry k[] = {{0, STRATA_AIV, timed_out_then_returns}};
    strata_chip_callable c = {"slow", one_task, k, 1};
    strata_handle h;
    CHECK_OK(strata_worker_register_chip(w, &c, &h));
    strata_buffer probe = test_malloc(w, 64);
    strata_call_config cfg = {0};
    cfg.timeout_ms = 20;
    CHECK_STATUS(strata_worker_run_chip(w, h, NULL, &cfg), STRATA_ETIMEDOUT);
    uint64_t deadline = test_now_ns() + 10000000000ull;
    while (!atomic_load(&slow_returned) && test_now_ns() < deadline)
        sleep_ms(5);
    CHECK(atomic_load(&slow_returned));
    CHECK(test_is_mapped(probe.addr));
    CHECK_OK(strata_worker_close(w));   /* every lane joins: the chip is released */
    CHECK(!test_is_mapped(probe.addr));
    strata_worker_destroy(w);
}

TEST_MAIN(CASE(dep_pool_error_depended_on_timing), CASE(heap_buffer_recycled_under_a_submit),
          CASE(message_left_after_successful_run), CASE(hung_chip_never_released))
