/* chip.worker: the L2 worker's life: states, bad input, the ring variables, chip
 * memory, and thousands of runs on one worker with flat memory. */
#include "harness.h"

#include <fcntl.h>
#include <pthread.h>
#include <unistd.h>
#include <stdatomic.h>

static int empty_orch(strata_chip_orch *o, const strata_task_args *args, const strata_call_config *cfg)
{
    (void)o;
    (void)args;
    (void)cfg;
    return 0;
}

static int touch(const strata_task_args *a)
{
    uint64_t *p = (uint64_t *)(uintptr_t)(a->tensors[0].addr);
    *p += a->scalars[0];
    return 0;
}

static int one_task_orch(strata_chip_orch *o, const strata_task_args *args, const strata_call_config *cfg)
{
    (void)cfg;
    strata_tag tag = STRATA_INOUT;
    uint64_t one = 1;
    return strata_chip_submit(o, 0, &(strata_task_args){args->tensors, &tag, 1, &one, 1});
}

static const strata_kernel_entry touch_kernel[] = {{0, STRATA_AIV, touch}};

/* A worker with the one-task callable and a counter buffer t it increments. */
typedef struct counter {
    strata_worker *w;
    strata_handle  h;
    strata_buffer  b;
    strata_tensor  t;
    strata_tag     tag;
} counter;

static counter counter_setup(void)
{
    counter k;
    k.w = test_worker(1, 1);
    strata_chip_callable c = {"one", one_task_orch, touch_kernel, 1};
    CHECK_OK(strata_worker_register_chip(k.w, &c, &k.h));
    k.b = test_malloc(k.w, 64);
    k.t = test_tensor(k.b, STRATA_U64);
    k.tag = STRATA_INOUT;
    return k;
}

static uint64_t counter_value(counter *k)
{
    uint64_t v = 0;
    CHECK_OK(strata_worker_copy_from(k->w, &v, k->b, 0, 8));
    return v;
}

TEST_CASE(state_machine)
{
    strata_worker_config cfg;
    strata_worker_config_init(&cfg, 2);
    strata_worker *w;
    CHECK_OK(strata_worker_create(&cfg, &w));
    CHECK_EQ_U64(strata_worker_state(w), STRATA_STATE_NEW);
    strata_chip_callable c = {"empty", empty_orch, NULL, 0};
    strata_handle h;
    CHECK_OK(strata_worker_register_chip(w, &c, &h));   /* before init is fine */
    CHECK(h != STRATA_HANDLE_INVALID);
    CHECK_STATUS(strata_worker_run_chip(w, h, NULL, NULL), STRATA_ESTATE);
    CHECK_ERROR_HAS("is NEW; call strata_worker_init first");
    strata_buffer b;
    CHECK_STATUS(strata_worker_malloc(w, 0, 64, &b), STRATA_ESTATE);
    CHECK_OK(strata_worker_init(w));
    CHECK_EQ_U64(strata_worker_state(w), STRATA_STATE_READY);
    CHECK_STATUS(strata_worker_init(w), STRATA_ESTATE);
    CHECK_ERROR_HAS("is READY");
    CHECK_OK(strata_worker_run_chip(w, h, NULL, NULL));
    strata_handle h2;
    CHECK_OK(strata_worker_register_chip(w, &c, &h2));  /* after init too */
    CHECK(h2 != h);
    CHECK_OK(strata_worker_run_chip(w, h2, NULL, NULL));
    CHECK_STATUS(strata_worker_run_chip(w, 77, NULL, NULL), STRATA_ENOENT);
    CHECK_ERROR_HAS("handle 77 is not a chip callable registered on this worker (2 registered)");
    CHECK_STATUS(strata_worker_run_chip(w, STRATA_HANDLE_INVALID, NULL, NULL), STRATA_ENOENT);
    CHECK_OK(strata_worker_close(w));
    CHECK_EQ_U64(strata_worker_state(w), STRATA_STATE_CLOSED);
    CHECK_OK(strata_worker_close(w));
    CHECK_STATUS(strata_worker_run_chip(w, h, NULL, NULL), STRATA_ESTATE);
    CHECK_ERROR_HAS("is CLOSED; the worker is closed");
    CHECK_STATUS(strata_worker_init(w), STRATA_ESTATE);
    CHECK_STATUS(strata_worker_register_chip(w, &c, &h), STRATA_ESTATE);
    strata_run_stats st;
    CHECK_OK(strata_worker_stats(w, &st));   /* reads answer in every state */
    strata_worker_destroy(w);
    strata_worker_destroy(NULL);
}

/* A worker that was never initialised, or never closed, is released by destroy. */
TEST_CASE(destroy_closes)
{
    strata_worker_config cfg;
    strata_worker_config_init(&cfg, 2);
    strata_worker *w;
    CHECK_OK(strata_worker_create(&cfg, &w));
    strata_worker_destroy(w);
    CHECK_OK(strata_worker_create(&cfg, &w));
    CHECK_OK(strata_worker_init(w));
    strata_buffer b;
    CHECK_OK(strata_worker_malloc(w, 0, 1 << 20, &b));
    strata_worker_destroy(w);
}

TEST_CASE(bad_config)
{
    strata_worker_config cfg;
    strata_worker *w = NULL;
    int one_id[1] = {0};
    strata_worker_config_init(&cfg, 4);
    cfg.device_ids = one_id;
    cfg.ndevices = 1;
    CHECK_STATUS(strata_worker_create(&cfg, &w), STRATA_EINVAL);
    CHECK_ERROR_HAS("chips belong to level 3");
    strata_worker_config_init(&cfg, 3);
    cfg.num_sub_workers = 256;
    CHECK_STATUS(strata_worker_create(&cfg, &w), STRATA_EINVAL);
    CHECK_ERROR_HAS("at most 255 children");
    CHECK(w == NULL);
    strata_worker_config_init(&cfg, 9);
    CHECK_STATUS(strata_worker_create(&cfg, &w), STRATA_EINVAL);
    CHECK_ERROR_HAS("level is 9");
    strata_worker_config_init(&cfg, 2);
    cfg.platform = "ascend910";
    CHECK_STATUS(strata_worker_create(&cfg, &w), STRATA_ENOENT);
    CHECK_ERROR_HAS("platform 'ascend910' is not built in; available: sim");
    strata_worker_config_init(&cfg, 2);
    cfg.runtime = "aicpu_build_graph";
    CHECK_STATUS(strata_worker_create(&cfg, &w), STRATA_ENOENT);
    CHECK_ERROR_HAS("runtime 'aicpu_build_graph' is not built in; available: tensormap_and_ringbuffer, host_build_graph");
    strata_worker_config_init(&cfg, 2);
    cfg.aiv_cores = 0;
    CHECK_STATUS(strata_worker_create(&cfg, &w), STRATA_EINVAL);
    CHECK_ERROR_HAS("aiv_cores is 0");
    strata_worker_config_init(&cfg, 2);
    cfg.device_id = -1;
    CHECK_STATUS(strata_worker_create(&cfg, &w), STRATA_EINVAL);
    CHECK_ERROR_HAS("device_id is -1");
    CHECK_STATUS(strata_worker_create(NULL, &w), STRATA_EINVAL);
    CHECK_STATUS(strata_worker_init(NULL), STRATA_EINVAL);
    CHECK_STATUS(strata_worker_close(NULL), STRATA_EINVAL);
    CHECK_EQ_U64(strata_worker_state(NULL), STRATA_STATE_CLOSED);
}

TEST_CASE(bad_callables)
{
    strata_worker *w = test_worker(1, 1);
    strata_handle h;
    strata_kernel_entry dup[] = {{1, STRATA_AIV, touch}, {1, STRATA_AIC, touch}};
    strata_chip_callable c = {"dup", empty_orch, dup, 2};
    CHECK_STATUS(strata_worker_register_chip(w, &c, &h), STRATA_EINVAL);
    CHECK_ERROR_HAS("chip callable 'dup': func_id 1 appears twice");
    strata_kernel_entry null_fn[] = {{2, STRATA_AIV, NULL}};
    c = (strata_chip_callable){"nullfn", empty_orch, null_fn, 1};
    CHECK_STATUS(strata_worker_register_chip(w, &c, &h), STRATA_EINVAL);
    CHECK_ERROR_HAS("kernels[0] (func_id 2) has a NULL fn");
    strata_kernel_entry neg[] = {{-4, STRATA_AIV, touch}};
    c = (strata_chip_callable){"neg", empty_orch, neg, 1};
    CHECK_STATUS(strata_worker_register_chip(w, &c, &h), STRATA_EINVAL);
    CHECK_ERROR_HAS("func_id -4");
    strata_kernel_entry badcore[] = {{0, (strata_core_type)7, touch}};
    c = (strata_chip_callable){"core", empty_orch, badcore, 1};
    CHECK_STATUS(strata_worker_register_chip(w, &c, &h), STRATA_EINVAL);
    CHECK_ERROR_HAS("core type 7");
    c = (strata_chip_callable){"noorch", NULL, NULL, 0};
    CHECK_STATUS(strata_worker_register_chip(w, &c, &h), STRATA_EINVAL);
    CHECK_ERROR_HAS("orch is NULL");
    CHECK_STATUS(strata_worker_register_chip(w, NULL, &h), STRATA_EINVAL);
    /* The callable and its table are copied: the caller's may change after. */
    strata_kernel_entry table[] = {{0, STRATA_AIV, touch}};
    char name[] = "copied";
    c = (strata_chip_callable){name, one_task_orch, table, 1};
    CHECK_OK(strata_worker_register_chip(w, &c, &h));
    table[0].func_id = 5;
    name[0] = 'X';
    strata_buffer b = test_malloc(w, 64);
    strata_tensor t = test_tensor(b, STRATA_U64);
    strata_tag tag = STRATA_INOUT;
    CHECK_OK(strata_worker_run_chip(w, h, &(strata_task_args){&t, &tag, 1, NULL, 0}, NULL));
    uint64_t v = 0;
    CHECK_OK(strata_worker_copy_from(w, &v, b, 0, 8));
    CHECK_EQ_U64(v, 1);   /* the copied table still maps func_id 0 */
    CHECK_OK(strata_worker_free(w, b));
    CHECK_OK(strata_worker_close(w));
    strata_worker_destroy(w);
}

static void check_env_rejected(const char *name, const char *value, const char *says)
{
    strata_worker_config cfg;
    strata_worker_config_init(&cfg, 2);
    strata_worker *w = NULL;
    test_setenv(name, value);
    CHECK_STATUS(strata_worker_create(&cfg, &w), STRATA_EINVAL);
    CHECK_ERROR_HAS(name);
    CHECK_ERROR_HAS(says);
    CHECK(w == NULL);
    test_setenv(name, NULL);
}

TEST_CASE(bad_env_values)
{
    check_env_rejected("PTO2_RING_TASK_WINDOW", "1000", "must be a power of two between 1 and 65536");
    check_env_rejected("PTO2_RING_TASK_WINDOW", "131072", "power of two");
    check_env_rejected("PTO2_RING_TASK_WINDOW", "abc", "\"abc\"");
    check_env_rejected("PTO2_RING_TASK_WINDOW", "-4", "\"-4\"");
    check_env_rejected("PTO2_RING_TASK_WINDOW", "64K", "\"64K\"");
    check_env_rejected("PTO2_RING_HEAP", "12", "between 64 and");
    check_env_rejected("PTO2_RING_HEAP", "10Q", "\"10Q\"");
    check_env_rejected("PTO2_RING_HEAP", "99999999999999999999", "\"99999999999999999999\"");
    check_env_rejected("PTO2_RING_HEAP", "4G", "between 64 and");   /* more than half the chip memory */
    check_env_rejected("PTO2_RING_DEP_POOL", "0", "between 1 and");
    check_env_rejected("PTO2_RING_DEP_POOL", "1.5", "\"1.5\"");
}

TEST_CASE(env_sizes_the_rings)
{
    test_setenv("PTO2_RING_TASK_WINDOW", "64");
    test_setenv("PTO2_RING_HEAP", "1M");
    test_setenv("PTO2_RING_DEP_POOL", "300");
    strata_worker_config cfg;
    strata_worker_config_init(&cfg, 2);
    strata_worker *w;
    CHECK_OK(strata_worker_create(&cfg, &w));
    /* read at create: later changes do not affect this worker */
    test_setenv("PTO2_RING_TASK_WINDOW", "2");
    CHECK_OK(strata_worker_init(w));
    strata_chip_callable c = {"one", one_task_orch, touch_kernel, 1};
    strata_handle h;
    CHECK_OK(strata_worker_register_chip(w, &c, &h));
    strata_buffer b = test_malloc(w, 64);
    strata_tensor t = test_tensor(b, STRATA_U64);
    strata_tag tag = STRATA_INOUT;
    CHECK_OK(strata_worker_run_chip(w, h, &(strata_task_args){&t, &tag, 1, NULL, 0}, NULL));
    strata_run_stats st;
    CHECK_OK(strata_worker_stats(w, &st));
    CHECK_EQ_U64(st.task_window.size, 64);
    CHECK_EQ_U64(st.heap.size, 1 << 20);
    CHECK_EQ_U64(st.dep_pool.size, 300);
    CHECK_EQ_U64(st.task_window.high_water, 1);
    /* a run's call_config overrides the environment */
    strata_call_config cc = {0};
    cc.ring_task_window = 8;
    CHECK_OK(strata_worker_run_chip(w, h, &(strata_task_args){&t, &tag, 1, NULL, 0}, &cc));
    CHECK_OK(strata_worker_stats(w, &st));
    CHECK_EQ_U64(st.task_window.size, 8);
    CHECK_EQ_U64(st.dep_pool.size, 300);
    test_setenv("PTO2_RING_TASK_WINDOW", NULL);
    test_setenv("PTO2_RING_HEAP", NULL);
    test_setenv("PTO2_RING_DEP_POOL", NULL);
    CHECK_OK(strata_worker_free(w, b));
    strata_worker_destroy(w);
}

TEST_CASE(chip_memory)
{
    strata_worker_config cfg;
    strata_worker_config_init(&cfg, 2);
    cfg.device_memory_bytes = 8 << 20;
    strata_worker *w;
    CHECK_OK(strata_worker_create(&cfg, &w));
    CHECK_OK(strata_worker_init(w));
    strata_buffer a, b;
    CHECK_STATUS(strata_worker_malloc(w, 0, 0, &a), STRATA_EINVAL);
    CHECK_ERROR_HAS("nbytes is 0");
    CHECK_OK(strata_worker_malloc(w, 0, 1000, &a));
    CHECK(a.addr % 64 == 0);
    CHECK_EQ_U64(a.nbytes, 1000);
    CHECK_STATUS(strata_worker_malloc(w, 0, 64 << 20, &b), STRATA_ENOMEM);
    CHECK_ERROR_HAS("no block of 67108864 bytes");
    CHECK_ERROR_HAS("device_memory_bytes");
    char msg[] = "hello, chip memory";
    char back[sizeof msg] = {0};
    CHECK_OK(strata_worker_copy_to(w, a, 100, msg, sizeof msg));
    CHECK_OK(strata_worker_copy_from(w, back, a, 100, sizeof msg));
    CHECK(strcmp(back, msg) == 0);
    CHECK_STATUS(strata_worker_copy_to(w, a, 990, msg, sizeof msg), STRATA_EINVAL);
    CHECK_ERROR_HAS("bytes [990, 1009) lie outside the 1000-byte buffer");
    CHECK_STATUS(strata_worker_copy_from(w, back, a, UINT64_MAX, 2), STRATA_EINVAL);
    strata_buffer fake = a;
    fake.addr += 64;
    CHECK_STATUS(strata_worker_free(w, fake), STRATA_ENOENT);
    CHECK_ERROR_HAS("no live buffer from strata_worker_malloc starts at");
    CHECK_OK(strata_worker_free(w, a));
    CHECK_STATUS(strata_worker_free(w, a), STRATA_ENOENT);
    CHECK_STATUS(strata_worker_copy_to(w, a, 0, msg, 4), STRATA_ENOENT);
    /* Freed memory is reusable: allocate nearly all of it, many times. */
    for (int i = 0; i < 100; i++) {
        CHECK_OK(strata_worker_malloc(w, 0, 2 << 20, &b));
        CHECK_OK(strata_worker_free(w, b));
    }
    CHECK_OK(strata_worker_malloc(w, 0, 64, &b));
    CHECK(test_is_mapped(b.addr));
    CHECK_OK(strata_worker_close(w));
    CHECK(!test_is_mapped(b.addr));   /* close unmapped the chip memory */
    strata_worker_destroy(w);
}

/* 10,000 runs on one worker: correct every time, memory flat. */
TEST_CASE(ten_thousand_runs_flat_memory)
{
    counter k = counter_setup();
    strata_task_args args = {&k.t, &k.tag, 1, NULL, 0};
    uint64_t rss_warm = 0;
    for (int i = 1; i <= 10000; i++) {
        CHECK_OK(strata_worker_run_chip(k.w, k.h, &args, NULL));
        if (i == 1000)
            rss_warm = test_rss_bytes();
    }
    uint64_t rss_end = test_rss_bytes();
    CHECK_EQ_U64(counter_value(&k), 10000);
    strata_run_stats st;
    CHECK_OK(strata_worker_stats(k.w, &st));
    CHECK_EQ_U64(st.tasks_completed, 10000);
    /* 9,000 runs after warm-up may not grow the process by more than 1 MiB.
       (ThreadSanitizer's own history grows with every synchronisation, so its
       build checks results only.) */
#ifndef __SANITIZE_THREAD__
    if (rss_end > rss_warm + (1 << 20))
        test_fail(__FILE__, __LINE__, "RSS grew from %llu to %llu bytes over 9000 runs",
                  (unsigned long long)rss_warm, (unsigned long long)rss_end);
#else
    (void)rss_end;
    (void)rss_warm;
#endif
    CHECK_OK(strata_worker_free(k.w, k.b));
    CHECK_OK(strata_worker_close(k.w));
    strata_worker_destroy(k.w);
}

/* Two workers driven from two threads at once do not interfere. */
static void *drive(void *arg)
{
    counter k = counter_setup();
    for (int i = 0; i < 500; i++)
        CHECK_OK(strata_worker_run_chip(k.w, k.h, &(strata_task_args){&k.t, &k.tag, 1, NULL, 0}, NULL));
    *(uint64_t *)arg = counter_value(&k);
    strata_worker_destroy(k.w);
    return NULL;
}

TEST_CASE(two_workers_two_threads)
{
    pthread_t t1, t2;
    uint64_t r1 = 0, r2 = 0;
    CHECK(pthread_create(&t1, NULL, drive, &r1) == 0);
    CHECK(pthread_create(&t2, NULL, drive, &r2) == 0);
    pthread_join(t1, NULL);
    pthread_join(t2, NULL);
    CHECK_EQ_U64(r1, 500);
    CHECK_EQ_U64(r2, 500);
}

/* STRATA_LOG: a bad value is refused at create; debug prints lines to stderr;
   unset prints nothing. */
TEST_CASE(logging)
{
    strata_worker_config cfg;
    strata_worker_config_init(&cfg, 2);
    strata_worker *w = NULL;
    test_setenv("STRATA_LOG", "verbose");
    CHECK_STATUS(strata_worker_create(&cfg, &w), STRATA_EINVAL);
    CHECK_ERROR_HAS("STRATA_LOG is \"verbose\"; it must be one of off, error, warn, info, debug");
    char path[] = "/tmp/strata-log-XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0);
    int saved = dup(2);
    CHECK(saved >= 0 && dup2(fd, 2) == 2);
    for (int pass = 0; pass < 2; pass++) {
        test_setenv("STRATA_LOG", pass == 0 ? "debug" : NULL);
        CHECK_OK(strata_worker_create(&cfg, &w));
        CHECK_OK(strata_worker_init(w));
        strata_chip_callable c = {"logged", empty_orch, NULL, 0};
        strata_handle h;
        CHECK_OK(strata_worker_register_chip(w, &c, &h));
        CHECK_OK(strata_worker_run_chip(w, h, NULL, NULL));
        strata_worker_destroy(w);
        if (pass == 0)
            lseek(fd, 0, SEEK_END);
    }
    dup2(saved, 2);
    close(saved);
    char text[4096] = {0};
    CHECK(pread(fd, text, sizeof text - 1, 0) > 0);
    close(fd);
    unlink(path);
    CHECK(strstr(text, "debug: run of 'logged' on chip 0: high water") != NULL);
    CHECK(strstr(text, "info: chip 0 ready: 1 AIC + 1 AIV cores") != NULL);
    CHECK(strstr(text, "info: level-2 worker (chip 0) closed") != NULL);
    /* the second pass (unset) printed nothing: exactly one "ready" line */
    CHECK(strstr(strstr(text, "ready"), "ready: 1 AIC") == strstr(text, "ready"));
    CHECK(strstr(strstr(text, "ready") + 1, "ready") == NULL);
}

TEST_MAIN(CASE(logging), CASE(state_machine), CASE(destroy_closes), CASE(bad_config), CASE(bad_callables), CASE(bad_env_values),
          CASE(env_sizes_the_rings), CASE(chip_memory), CASE(ten_thousand_runs_flat_memory),
          CASE(two_workers_two_threads))
