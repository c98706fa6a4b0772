/* chip.failure: a failing kernel fails its task, cancels its dependents and the
 * run, and the chip stays usable; bad submits and orchestration errors; a hung
 * kernel is bounded by the task timeout. */
#include "plan.h"

static fixture setup(uint32_t task_timeout_ms)
{
    return plan_setup(1, 3, task_timeout_ms);
}

static uint32_t task1(int func, strata_tensor t, strata_tag tag, uint64_t us)
{
    return plan_add(func, 1, &t, &tag, us, 0);
}

TEST_CASE(kernel_failure_cancels_dependents)
{
    fixture f = setup(0);
    strata_tensor x = test_tensor(f.x, STRATA_F32), y = test_tensor(f.y, STRATA_F32);
    uint32_t bad = task1(FAILING, x, STRATA_OUTPUT, 0);
    uint32_t dep1 = task1(PROBE_AIV, x, STRATA_INPUT, 0);
    uint32_t dep2 = task1(PROBE_AIV, x, STRATA_INOUT, 0);
    strata_tensor both[2] = {x, y};
    strata_tag tags[2] = {STRATA_INPUT, STRATA_OUTPUT};
    uint32_t dep3 = plan_add(PROBE_AIV, 2, both, tags, 0, 0);   /* y depends on x too */
    uint32_t dep4 = task1(PROBE_AIV, y, STRATA_INPUT, 0);        /* through dep3 */
    CHECK_STATUS(strata_worker_run_chip(f.w, f.h, NULL, NULL), STRATA_ETASK);
    CHECK_ERROR_HAS("kernel func_id 3 (AIV) of chip callable 'plan' returned 7");
    CHECK_ERROR_HAS("chip 0");
    CHECK(atomic_load(&records[bad].start) != 0);
    CHECK(atomic_load(&records[dep1].start) == 0);
    CHECK(atomic_load(&records[dep2].start) == 0);
    CHECK(atomic_load(&records[dep3].start) == 0);
    CHECK(atomic_load(&records[dep4].start) == 0);
    strata_run_stats st;
    CHECK_OK(strata_worker_stats(f.w, &st));
    CHECK_EQ_U64(st.tasks_failed, 1);
    /* Each dependent was either cancelled in the engine or, if the failure was
       already recorded when it came, refused at submit with ECANCELED. */
    uint64_t refused = 0;
    for (uint32_t i = dep1; i <= dep4; i++) {
        CHECK(plan_submit_status[i] == STRATA_OK || plan_submit_status[i] == STRATA_ECANCELED);
        refused += plan_submit_status[i] == STRATA_ECANCELED;
    }
    CHECK_EQ_U64(st.tasks_canceled + refused, 4);
    CHECK_EQ_U64(strata_worker_state(f.w), STRATA_STATE_READY);

    /* The next run on the same worker succeeds. */
    plan_reset();
    uint32_t ok = task1(PROBE_AIV, x, STRATA_OUTPUT, 0);
    uint32_t ok2 = task1(PROBE_AIV, x, STRATA_INPUT, 0);
    CHECK_OK(strata_worker_run_chip(f.w, f.h, NULL, NULL));
    CHECK(strata_last_error()[0] == '\0');
    CHECK_AFTER(ok2, ok);
    CHECK_OK(strata_worker_stats(f.w, &st));
    CHECK_EQ_U64(st.tasks_failed, 1);
    plan_teardown(&f);
}

/* After a failure, later submits of the same run return ECANCELED at once. */
TEST_CASE(submit_after_failure_is_canceled)
{
    fixture f = setup(0);
    strata_tensor x = test_tensor(f.x, STRATA_F32), y = test_tensor(f.y, STRATA_F32);
    task1(FAILING, x, STRATA_OUTPUT, 0);
    /* Long enough for the failure to be recorded before the last submits. */
    task1(PROBE_AIV, y, STRATA_OUTPUT, 200000);
    uint32_t rest = plan_n;
    for (int i = 0; i < 10; i++)
        task1(PROBE_AIV, x, STRATA_INPUT, 0);
    /* A window of 1: every submit waits for the task before it to retire. */
    strata_call_config cfg = {0};
    cfg.ring_task_window = 1;
    CHECK_STATUS(strata_worker_run_chip(f.w, f.h, NULL, &cfg), STRATA_ETASK);
    for (uint32_t i = rest; i < plan_n; i++)
        CHECK_STATUS(plan_submit_status[i], STRATA_ECANCELED);
    plan_teardown(&f);
}

static int bad_status;
static int returning_orch(strata_chip_orch *o, const strata_task_args *args, const strata_call_config *cfg)
{
    (void)o;
    (void)args;
    (void)cfg;
    return bad_status;
}

TEST_CASE(orchestration_error_returned)
{
    fixture f = setup(0);
    strata_chip_callable c = {"returns", returning_orch, plan_kernels, 3};
    strata_handle h;
    CHECK_OK(strata_worker_register_chip(f.w, &c, &h));
    bad_status = STRATA_ENOENT;
    CHECK_STATUS(strata_worker_run_chip(f.w, h, NULL, NULL), STRATA_ENOENT);
    CHECK_ERROR_HAS("orchestration function of chip callable 'returns' returned -3 (STRATA_ENOENT)");
    bad_status = 42;
    CHECK_STATUS(strata_worker_run_chip(f.w, h, NULL, NULL), STRATA_ETASK);
    CHECK_ERROR_HAS("returned 42; it must return 0 or a negative strata_status");
    CHECK_EQ_U64(strata_worker_state(f.w), STRATA_STATE_READY);
    bad_status = 0;
    CHECK_OK(strata_worker_run_chip(f.w, h, NULL, NULL));
    plan_teardown(&f);
}

TEST_CASE(unknown_func_id)
{
    fixture f = setup(0);
    task1(99, test_tensor(f.x, STRATA_F32), STRATA_OUTPUT, 0);
    CHECK_STATUS(strata_worker_run_chip(f.w, f.h, NULL, NULL), STRATA_ENOENT);
    CHECK_ERROR_HAS("chip callable 'plan' has no kernel with func_id 99");
    CHECK_STATUS(plan_submit_status[0], STRATA_ENOENT);
    plan_teardown(&f);
}

/* Tensors must name a live chip buffer's base, and lie inside it. */
TEST_CASE(bad_tensors_rejected)
{
    fixture f = setup(0);
    static float host[64];
    uint64_t shape[1] = {64};
    struct {
        strata_tensor t;
        const char *says;
        int status;
    } cases[8];
    int n = 0;
    cases[n].t = strata_tensor_make(host, STRATA_F32, 1, shape);
    cases[n].says = "is not the base of a live buffer of chip 0";
    cases[n++].status = STRATA_EINVAL;
    cases[n].t = test_tensor(f.x, STRATA_F32);
    cases[n].t.addr += 64;
    cases[n].t.nbytes -= 64;
    cases[n].t.shape[0] -= 16;
    cases[n].says = "is not the base of a live buffer";
    cases[n++].status = STRATA_EINVAL;
    cases[n].t = test_tensor(f.x, STRATA_F32);
    cases[n].t.offset = 1;
    cases[n].says = "beyond its nbytes 4096";
    cases[n++].status = STRATA_EINVAL;
    cases[n].t = test_tensor(f.x, STRATA_F32);
    cases[n].t.nbytes = 8192;
    cases[n].t.shape[0] = 2048;
    cases[n].says = "holds 4096";
    cases[n++].status = STRATA_EINVAL;
    cases[n].t = strata_tensor_make(host, STRATA_F32, 7, shape);
    cases[n].says = "is not a strata_dtype";
    cases[n++].status = STRATA_EINVAL;
    cases[n].t = test_tensor(f.x, STRATA_F32);
    cases[n].t.strides[0] = -1;
    cases[n].says = "strides must be >= 0";
    cases[n++].status = STRATA_EINVAL;
    cases[n].t = test_tensor(f.x, STRATA_F32);
    cases[n].t.addr = 0;
    cases[n].says = "addr is 0";
    cases[n++].status = STRATA_EINVAL;
    cases[n].t = test_tensor(f.x, STRATA_F32);
    cases[n].t.shape[0] = 0;
    cases[n].says = "shape[0] is 0";
    cases[n++].status = STRATA_EINVAL;
    for (int i = 0; i < n; i++) {
        plan_reset();
        task1(PROBE_AIV, cases[i].t, STRATA_INPUT, 0);
        CHECK_STATUS(strata_worker_run_chip(f.w, f.h, NULL, NULL), cases[i].status);
        CHECK_ERROR_HAS("strata_chip_submit(func_id 1): tensor 0");
        CHECK_ERROR_HAS(cases[i].says);
    }
    /* a freed buffer is no longer a buffer */
    strata_buffer gone = test_malloc(f.w, 64);
    CHECK_OK(strata_worker_free(f.w, gone));
    plan_reset();
    task1(PROBE_AIV, test_tensor(gone, STRATA_F32), STRATA_INPUT, 0);
    CHECK_STATUS(strata_worker_run_chip(f.w, f.h, NULL, NULL), STRATA_EINVAL);
    CHECK_ERROR_HAS("not the base of a live buffer");
    plan_teardown(&f);
}

static uint32_t ntensors_to_submit, nscalars_to_submit;
static int count_orch(strata_chip_orch *o, const strata_task_args *args, const strata_call_config *cfg)
{
    (void)cfg;
    strata_tensor t[40];
    strata_tag tags[40];
    uint64_t s[20] = {0};
    for (uint32_t i = 0; i < 40; i++) {
        t[i] = args->tensors[0];
        tags[i] = STRATA_INPUT;
    }
    return strata_chip_submit(o, PROBE_AIV, &(strata_task_args){t, tags, ntensors_to_submit, s, nscalars_to_submit});
}

TEST_CASE(too_many_args)
{
    fixture f = setup(0);
    strata_chip_callable c = {"count", count_orch, plan_kernels, 3};
    strata_handle h;
    CHECK_OK(strata_worker_register_chip(f.w, &c, &h));
    strata_tensor x = test_tensor(f.x, STRATA_F32);
    strata_tag tag = STRATA_INPUT;
    strata_task_args args = {&x, &tag, 1, NULL, 0};
    ntensors_to_submit = 33;
    nscalars_to_submit = 3;
    CHECK_STATUS(strata_worker_run_chip(f.w, h, &args, NULL), STRATA_EINVAL);
    CHECK_ERROR_HAS("33 tensors given; a task takes at most 32");
    ntensors_to_submit = 32;
    nscalars_to_submit = 17;
    CHECK_STATUS(strata_worker_run_chip(f.w, h, &args, NULL), STRATA_EINVAL);
    CHECK_ERROR_HAS("17 scalars given; a task takes at most 16");
    nscalars_to_submit = 16;
    CHECK_OK(strata_worker_run_chip(f.w, h, &args, NULL));
    plan_teardown(&f);
}

/* ---- a hung kernel ---- */

static _Atomic int release_hung;
static _Atomic int hung_started;
static int hanging_kernel(const strata_task_args *a)
{
    (void)a;
    atomic_store(&hung_started, 1);
    uint64_t deadline = test_now_ns() + 60000000000ull;
    while (!atomic_load(&release_hung) && test_now_ns() < deadline)
        sleep_us(1000);
    return 0;
}

static int hang_orch(strata_chip_orch *o, const strata_task_args *args, const strata_call_config *cfg)
{
    (void)cfg;
    strata_tag tag = STRATA_OUTPUT;
    int rc = strata_chip_submit(o, 5, &(strata_task_args){args->tensors, &tag, 1, NULL, 0});
    if (rc)
        return rc;
    /* A dependent task: never runs, and submitting it must not block forever. */
    tag = STRATA_INPUT;
    return strata_chip_submit(o, 5, &(strata_task_args){args->tensors, &tag, 1, NULL, 0});
}

/* Run the hanging kernel once on a worker whose task_timeout_ms is
   worker_timeout_ms, with a run timeout of run_timeout_ms; the run must return
   STRATA_ETIMEDOUT naming `expect_ms`. Returns the worker, now FAILED. */
static strata_worker *run_until_timeout(uint32_t worker_timeout_ms, uint32_t run_timeout_ms, uint32_t expect_ms)
{
    atomic_store(&release_hung, 0);
    fixture f = setup(worker_timeout_ms);
    static const strata_kernel_entry k[] = {{5, STRATA_AIV, hanging_kernel}};
    strata_chip_callable c = {"hangs", hang_orch, k, 1};
    strata_handle h;
    CHECK_OK(strata_worker_register_chip(f.w, &c, &h));
    strata_tensor x = test_tensor(f.x, STRATA_F32);
    strata_tag tag = STRATA_INOUT;
    strata_call_config cfg = {0};
    cfg.timeout_ms = run_timeout_ms;
    uint64_t t0 = test_now_ns();
    CHECK_STATUS(strata_worker_run_chip(f.w, h, &(strata_task_args){&x, &tag, 1, NULL, 0}, &cfg), STRATA_ETIMEDOUT);
    CHECK(test_now_ns() - t0 < 100ull * expect_ms * 1000000ull);   /* bound: 100x the timeout */
    char says[64];
    snprintf(says, sizeof says, "timeout of %u ms", expect_ms);
    CHECK_ERROR_HAS(says);
    CHECK_ERROR_HAS("func_id 5");
    CHECK_EQ_U64(strata_worker_state(f.w), STRATA_STATE_FAILED);
    return f.w;
}

/* Close, destroy, let the kernel return: the abandoned thread exits by itself. */
static void release_and_wait(strata_worker *w, int threads_before)
{
    uint64_t t0 = test_now_ns();
    CHECK_OK(strata_worker_close(w));   /* at once although a core thread is stuck */
    CHECK(test_now_ns() - t0 < 10 * 1000000000ull);
    CHECK_OK(strata_worker_close(w));   /* idempotent */
    strata_worker_destroy(w);
    test_allow_mappings(2);   /* the abandoned chip's memory and task bodies, on purpose */
    atomic_store(&release_hung, 1);
    CHECK(test_wait_for_threads(threads_before, 10000));
}

TEST_CASE(hung_kernel_times_out)
{
    int threads_before = test_thread_count();
    strata_worker *w = run_until_timeout(0, 100, 100);
    CHECK_ERROR_HAS("FAILED");
    CHECK_STATUS(strata_worker_run_chip(w, 1, NULL, NULL), STRATA_EFAILED);
    CHECK_ERROR_HAS("is FAILED");
    strata_buffer b;
    CHECK_STATUS(strata_worker_malloc(w, 0, 64, &b), STRATA_EFAILED);
    strata_run_stats st;
    CHECK_OK(strata_worker_stats(w, &st));
    release_and_wait(w, threads_before);
}

/* The worker's task_timeout_ms applies when the run's config says 0. */
TEST_CASE(worker_default_timeout)
{
    int threads_before = test_thread_count();
    release_and_wait(run_until_timeout(50, 0, 50), threads_before);
}

/* close and run called from inside a kernel are refused, not deadlocked. */
static strata_worker *self_worker;
static _Atomic int inner_close_status = 1, inner_run_status = 1;
static int closing_kernel(const strata_task_args *a)
{
    (void)a;
    atomic_store(&inner_close_status, strata_worker_close(self_worker));
    atomic_store(&inner_run_status, strata_worker_run_chip(self_worker, 1, NULL, NULL));
    return 0;
}

TEST_CASE(close_from_kernel_refused)
{
    fixture f = setup(0);
    self_worker = f.w;
    static const strata_kernel_entry k[] = {{5, STRATA_AIV, closing_kernel}};
    strata_chip_callable c = {"closes", hang_orch, k, 1};
    strata_handle h;
    CHECK_OK(strata_worker_register_chip(f.w, &c, &h));
    strata_tensor x = test_tensor(f.x, STRATA_F32);
    strata_tag tag = STRATA_INOUT;
    CHECK_OK(strata_worker_run_chip(f.w, h, &(strata_task_args){&x, &tag, 1, NULL, 0}, NULL));
    CHECK_STATUS(atomic_load(&inner_close_status), STRATA_ESTATE);
    CHECK_STATUS(atomic_load(&inner_run_status), STRATA_ESTATE);
    CHECK_EQ_U64(strata_worker_state(f.w), STRATA_STATE_READY);
    plan_teardown(&f);
}

TEST_MAIN(CASE(kernel_failure_cancels_dependents), CASE(submit_after_failure_is_canceled),
          CASE(orchestration_error_returned), CASE(unknown_func_id), CASE(bad_tensors_rejected), CASE(too_many_args),
          CASE(hung_kernel_times_out), CASE(worker_default_timeout), CASE(close_from_kernel_refused))
