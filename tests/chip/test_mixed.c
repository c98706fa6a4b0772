/* chip.mixed: mixed tasks (strata_chip_submit_mixed) on a chip of clusters.
 * Three kernels of one task rendezvous (each waits, bounded, for the other two
 * to have started): they can only all succeed when they run at the same time;
 * a mixed task is one node of the graph (a plain task reading what its parts
 * wrote runs after all of them; a chain of mixed tasks keeps its order); a
 * failing part fails the node and cancels what follows; a mixed task queued
 * while its cluster's AIV cores are busy starts once they are free (a cluster
 * freed wakes its AIC core); a part past its timeout is named as that part;
 * refusals say why. */
#include <stdatomic.h>
#include <string.h>
#include <time.h>

#include "harness.h"

static uint64_t *u64_at(const strata_tensor *t)
{
    return (uint64_t *)(uintptr_t)(t->addr + t->offset * strata_dtype_size(t->dtype));
}

/* tensors[0][scalars[0]] = 1, then wait (up to 5 s) until elements
   scalars[1] .. scalars[1] + 2 of tensors[0] are all 1 (the rendezvous of a
   mixed task's three parts, each setting its own element); scalars[2] != 0:
   fail */
static int meet(const strata_task_args *a)
{
    volatile uint64_t *x = u64_at(&a->tensors[0]);
    __atomic_store_n(&x[a->scalars[0]], 1, __ATOMIC_SEQ_CST);
    struct timespec t0, t;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (;;) {
        uint64_t b = a->scalars[1];
        if (__atomic_load_n(&x[b], __ATOMIC_SEQ_CST) && __atomic_load_n(&x[b + 1], __ATOMIC_SEQ_CST) &&
            __atomic_load_n(&x[b + 2], __ATOMIC_SEQ_CST))
            break;
        clock_gettime(CLOCK_MONOTONIC, &t);
        if (t.tv_sec - t0.tv_sec > 5)
            return 2;   /* the others never came: not co-scheduled */
    }
    return a->scalars[2] ? 1 : 0;
}

/* a plain AIV task after the mixed ones: fails unless elements 0 ..
   scalars[0] - 1 of tensors[0] are all 1 (every part before it has run);
   then tensors[1][0] += 1 */
static int bump(const strata_task_args *a)
{
    const uint64_t *x = u64_at(&a->tensors[0]);
    for (uint64_t i = 0; i < a->scalars[0]; i++)
        if (x[i] != 1)
            return 3;
    u64_at(&a->tensors[1])[0] += 1;
    return 0;
}

static void sleep_us(uint64_t us)
{
    struct timespec d = {(time_t)(us / 1000000), (long)(us % 1000000) * 1000};
    nanosleep(&d, NULL);
}

/* sleep scalars[0] ms */
static int nap(const strata_task_args *a)
{
    sleep_us(a->scalars[0] * 1000);
    return 0;
}

/* wait until release_hung (at most 20 s): a kernel past any timeout */
static _Atomic int release_hung;
static int hang(const strata_task_args *a)
{
    (void)a;
    for (int i = 0; i < 20000 && !atomic_load(&release_hung); i++)
        sleep_us(1000);
    return 0;
}

enum { F_MEET_AIC = 1, F_MEET_AIV = 2, F_BUMP = 3, F_NAP = 4, F_HANG = 5 };
static const strata_kernel_entry kernels[] = {{F_MEET_AIC, STRATA_AIC, meet}, {F_MEET_AIV, STRATA_AIV, meet},
                                              {F_BUMP, STRATA_AIV, bump},     {F_NAP, STRATA_AIV, nap},
                                              {F_HANG, STRATA_AIV, hang}};

typedef struct job {
    uint32_t ntasks;      /* mixed tasks, each with its own three elements */
    int      fail_task;   /* -1: none */
    int      mode;        /* 0: the rendezvous; 1: refusals; 2: queued behind busy AIV cores; 3: a hung part */
    int      status[8];
} job;

static job the_job;

/* Mixed task k meets at elements 3k .. 3k+2 of tensors[0] (its parts write
   them: INOUT each, so the tasks order by the buffer, one after another);
   then a plain task bumps tensors[1][0] after reading tensors[0]. */
static int mixed_orch(strata_chip_orch *o, const strata_task_args *args, const strata_call_config *cfg)
{
    (void)cfg;
    job *j = &the_job;
    strata_tag inout = STRATA_INOUT, in_out[2] = {STRATA_INPUT, STRATA_INOUT};
    if (j->mode == 1) {
        strata_mixed_task none = {-1, -1, -1, NULL, NULL, NULL};
        j->status[0] = strata_chip_submit_mixed(o, &none, NULL);
        return STRATA_OK;   /* the failed submit already failed the run */
    }
    if (j->mode == 2 || j->mode == 3) {
        /* Plain 30 ms tasks keep both AIV cores busy; then mixed tasks of
           AIV parts only: the AIC core hands the first one's parts over at
           once, and finds the cluster taken for the next ones until the AIV
           cores take those parts. Mode 3: the second one's AIV1 part hangs. */
        uint64_t ms30 = 30, ms1 = 1;
        strata_task_args busy = {NULL, NULL, 0, &ms30, 1}, quick = {NULL, NULL, 0, &ms1, 1};
        for (int k = 0; k < 2; k++)
            CHECK_OK(strata_chip_submit(o, F_NAP, &busy));
        for (uint32_t k = 0; k < j->ntasks; k++) {
            bool hung = j->mode == 3 && k == 1;
            strata_mixed_task m = {-1, F_NAP, hung ? F_HANG : F_NAP, NULL, &quick, &quick};
            uint32_t task = 0;
            int rc = strata_chip_submit_mixed(o, &m, &task);
            if (rc)
                return rc;
            CHECK_EQ_U64(task, 2 + k);
        }
        return STRATA_OK;
    }
    for (uint32_t k = 0; k < j->ntasks; k++) {
        uint64_t s[3][3] = {{3 * k, 3 * k, 0}, {3 * k + 1, 3 * k, 0}, {3 * k + 2, 3 * k, (int)k == j->fail_task}};
        strata_task_args a[3];
        for (int p = 0; p < 3; p++)
            a[p] = (strata_task_args){&args->tensors[0], &inout, 1, s[p], 3};
        strata_mixed_task m = {F_MEET_AIC, F_MEET_AIV, F_MEET_AIV, &a[0], &a[1], &a[2]};
        int rc = strata_chip_submit_mixed(o, &m, NULL);
        if (rc)
            return rc;
    }
    uint64_t parts = 3ull * j->ntasks;
    return strata_chip_submit(o, F_BUMP, &(strata_task_args){(strata_tensor *)args->tensors, in_out, 2, &parts, 1});
}

static strata_worker *cluster_worker(uint32_t clusters, strata_handle *h, strata_buffer *b)
{
    strata_worker_config cfg;
    strata_worker_config_init(&cfg, 2);
    cfg.aic_cores = clusters;
    cfg.aiv_cores = 2 * clusters;
    cfg.device_memory_bytes = 16 << 20;
    strata_worker *w;
    CHECK_OK(strata_worker_create(&cfg, &w));
    strata_chip_callable c = {"mixed", mixed_orch, kernels, 5};
    CHECK_OK(strata_worker_register_chip(w, &c, h));
    CHECK_OK(strata_worker_init(w));
    CHECK_OK(strata_worker_malloc(w, 0, 8 * 3 * 64 + 8, b));
    return w;
}

static int run_job(strata_worker *w, strata_handle h, strata_buffer b, uint32_t ntasks)
{
    uint64_t zero[3 * 64 + 1] = {0};
    CHECK_OK(strata_worker_copy_to(w, b, 0, zero, sizeof zero));
    strata_tensor ts[2] = {{.addr = b.addr, .nbytes = 8 * 3 * 64, .dtype = STRATA_U64, .ndims = 1, .shape = {3 * 64}},
                           {.addr = b.addr, .nbytes = 8 * 3 * 64 + 8, .dtype = STRATA_U64, .ndims = 1,
                            .shape = {1}, .offset = 3 * 64}};
    (void)ntasks;
    strata_tag tags[2] = {STRATA_INOUT, STRATA_INOUT};
    return strata_worker_run_chip(w, h, &(strata_task_args){ts, tags, 2, NULL, 0}, NULL);
}

TEST_CASE(parts_start_together)
{
    for (uint32_t clusters = 1; clusters <= 2; clusters++) {
        strata_handle h;
        strata_buffer b;
        strata_worker *w = cluster_worker(clusters, &h, &b);
        the_job = (job){.ntasks = 40, .fail_task = -1};
        for (int run = 0; run < 3; run++)
            CHECK_OK(run_job(w, h, b, the_job.ntasks));
        uint64_t out[3 * 64 + 1];
        CHECK_OK(strata_worker_copy_from(w, out, b, 0, sizeof out));
        for (uint32_t i = 0; i < 3 * the_job.ntasks; i++)
            CHECK_EQ_U64(out[i], 1);
        CHECK_EQ_U64(out[3 * 64], 1);   /* the plain task ran after every part (the buffer is reset per run) */
        strata_run_stats st;
        CHECK_OK(strata_worker_stats(w, &st));
        CHECK_EQ_U64(st.tasks_completed, 3 * (the_job.ntasks + 1));   /* a mixed task is one node */
        strata_worker_destroy(w);
    }
}

TEST_CASE(a_failing_part_fails_the_node)
{
    strata_handle h;
    strata_buffer b;
    strata_worker *w = cluster_worker(2, &h, &b);
    the_job = (job){.ntasks = 10, .fail_task = 4};
    CHECK_STATUS(run_job(w, h, b, the_job.ntasks), STRATA_ETASK);
    CHECK_ERROR_HAS("kernel func_id 2 (the AIV1 part of a mixed task) of chip callable 'mixed' returned 1");
    strata_run_stats st;
    CHECK_OK(strata_worker_stats(w, &st));
    CHECK_EQ_U64(st.tasks_failed, 1);
    CHECK_EQ_U64(st.tasks_completed, 4);
    CHECK_EQ_U64(st.tasks_canceled, 6);   /* mixed tasks 5..9 and the plain one */
    the_job.fail_task = -1;
    CHECK_OK(run_job(w, h, b, the_job.ntasks));   /* the worker goes on */
    strata_worker_destroy(w);
}

/* A cluster freed (its AIV cores take their parts) wakes its AIC core, which
   sleeps with mixed tasks queued while the cluster was taken; the run would
   hang otherwise. A timed run, on a fresh worker: the first mixed submit makes
   the parts' storage while lanes launch timed plain tasks (ThreadSanitizer
   watches that). */
TEST_CASE(a_freed_cluster_wakes_its_aic_core)
{
    for (int run = 0; run < 5; run++) {
        strata_handle h;
        strata_buffer b;
        strata_worker *w = cluster_worker(1, &h, &b);
        the_job = (job){.ntasks = 4, .fail_task = -1, .mode = 2};
        strata_call_config cfg = {.timeout_ms = 20000};
        CHECK_OK(strata_worker_run_chip(w, h, NULL, &cfg));
        strata_run_stats st;
        CHECK_OK(strata_worker_stats(w, &st));
        CHECK_EQ_U64(st.tasks_completed, 6);
        strata_worker_destroy(w);
    }
}

/* A part past the run's timeout: the error names the part. */
TEST_CASE(a_hung_part_is_named)
{
    int threads_before = test_thread_count();
    atomic_store(&release_hung, 0);
    strata_handle h;
    strata_buffer b;
    strata_worker *w = cluster_worker(1, &h, &b);
    the_job = (job){.ntasks = 2, .fail_task = -1, .mode = 3};
    strata_call_config cfg = {.timeout_ms = 200};
    CHECK_STATUS(strata_worker_run_chip(w, h, NULL, &cfg), STRATA_ETIMEDOUT);
    CHECK_ERROR_HAS("(func_id 5, the AIV1 part of a mixed task) has run on AIV core");
    CHECK_OK(strata_worker_close(w));
    strata_worker_destroy(w);
    test_allow_mappings(3);   /* the abandoned chip's memory, task bodies and mixed parts, on purpose */
    atomic_store(&release_hung, 1);
    CHECK(test_wait_for_threads(threads_before, 10000));
}

TEST_CASE(refusals)
{
    strata_handle h;
    strata_buffer b;
    strata_worker *w = cluster_worker(1, &h, &b);
    the_job = (job){.mode = 1};
    CHECK_STATUS(run_job(w, h, b, 0), STRATA_EINVAL);
    CHECK_ERROR_HAS("every func_id is -1; a mixed task has at least one part");
    strata_worker_destroy(w);
    /* a chip without clusters */
    strata_worker_config cfg;
    strata_worker_config_init(&cfg, 2);
    cfg.device_memory_bytes = 16 << 20;
    CHECK_OK(strata_worker_create(&cfg, &w));
    strata_chip_callable c = {"mixed", mixed_orch, kernels, 5};
    CHECK_OK(strata_worker_register_chip(w, &c, &h));
    CHECK_OK(strata_worker_init(w));
    CHECK_OK(strata_worker_malloc(w, 0, 8 * 3 * 64 + 8, &b));
    the_job = (job){.ntasks = 1, .fail_task = -1};
    CHECK_STATUS(run_job(w, h, b, 1), STRATA_EINVAL);
    CHECK_ERROR_HAS("has 1 AIC and 1 AIV cores; mixed tasks need clusters of 1 AIC + 2 AIV cores");
    strata_worker_destroy(w);
}

TEST_MAIN(CASE(parts_start_together), CASE(a_failing_part_fails_the_node), CASE(a_freed_cluster_wakes_its_aic_core),
          CASE(a_hung_part_is_named), CASE(refusals))
