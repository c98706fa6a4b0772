/* node.window: the task window of a level-3 run. A run of any length holds at
 * most node_task_window tasks: a submit waits while the window is full, the
 * order the tags ask for holds across it, and memory stays flat however many
 * tasks a run submits. */
#include "node_util.h"

/* fold: t[0] = t[0] * 31 + scalars[0], an order-revealing update */
static void fold(const strata_task_args *a)
{
    uint64_t *p = u64_of(&a->tensors[0]);
    p[0] = p[0] * 31 + a->scalars[0];
}

static int fold_kernel(const strata_task_args *a)
{
    fold(a);
    return 0;
}

static int fold_sub(const strata_task_args *a, void *ctx)
{
    (void)ctx;
    fold(a);
    return 0;
}

static int fold_chip_orch(strata_chip_orch *o, const strata_task_args *args, const strata_call_config *cfg)
{
    (void)cfg;
    strata_tag tag = STRATA_INOUT;
    return strata_chip_submit(o, 0, &(strata_task_args){args->tensors, &tag, 1, args->scalars, 1});
}

static const strata_kernel_entry fold_kernels[] = {{0, STRATA_AIV, fold_kernel}};

enum { NBUF = 5 };

typedef struct folds {
    strata_handle chip, sub;
    strata_tensor x[NBUF];
    uint64_t     *data[NBUF];
    uint32_t      n;
    uint32_t      nchips;
} folds;

/* n folds: task i folds i+1 into buffer i % NBUF, on chip i % nchips, or on a
   SUB child every third task; every 97th is a group of two chips folding two
   buffers. */
static int fold_orch(strata_orch *o, const strata_task_args *args, const strata_call_config *cfg, void *ctx)
{
    (void)args;
    (void)cfg;
    folds *f = ctx;
    strata_tag inout = STRATA_INOUT;
    for (uint32_t i = 0; i < f->n; i++) {
        uint64_t k = i + 1;
        strata_task_args a = {&f->x[i % NBUF], &inout, 1, &k, 1};
        int rc;
        if (f->nchips >= 2 && i % 97 == 0) {
            uint64_t k2 = k + 1000000;
            strata_task_args members[2] = {a, {&f->x[(i + 1) % NBUF], &inout, 1, &k2, 1}};
            rc = strata_submit_next_level_group(o, f->chip, members, 2, NULL, (int[]){0, 1});
        } else if (f->nchips == 0 || i % 3 == 0) {
            rc = strata_submit_sub(o, f->sub, &a);
        } else {
            rc = strata_submit_next_level(o, f->chip, &a, NULL, (int)(i % f->nchips));
        }
        if (rc)
            return rc;
    }
    return 0;
}

/* What fold_orch computes, one fold after another. */
static void reference(const folds *f, uint64_t *want)
{
    for (uint32_t i = 0; i < f->n; i++) {
        want[i % NBUF] = want[i % NBUF] * 31 + i + 1;
        if (f->nchips >= 2 && i % 97 == 0)
            want[(i + 1) % NBUF] = want[(i + 1) % NBUF] * 31 + i + 1 + 1000000;
    }
}

static strata_worker *fold_worker(uint32_t nchips, uint32_t nsubs, uint32_t window, folds *f)
{
    static int ids[2] = {3, 4};
    strata_worker_config cfg;
    strata_worker_config_init(&cfg, 3);
    cfg.device_ids = ids;
    cfg.ndevices = nchips;
    cfg.num_sub_workers = nsubs;
    cfg.device_memory_bytes = 16 << 20;
    cfg.shared_heap_bytes = 1 << 20;
    cfg.node_task_window = window;
    strata_worker *w;
    CHECK_OK(strata_worker_create(&cfg, &w));
    strata_chip_callable c = {"fold", fold_chip_orch, fold_kernels, 1};
    if (nchips)
        CHECK_OK(strata_worker_register_chip(w, &c, &f->chip));
    CHECK_OK(strata_worker_register_sub(w, fold_sub, NULL, &f->sub));
    CHECK_OK(strata_worker_init(w));
    for (int b = 0; b < NBUF; b++)
        f->x[b] = host_u64(w, 1, &f->data[b]);
    f->nchips = nchips;
    return w;
}

/* A window of 16 under runs far longer than it: every fold in its order. */
TEST_CASE(small_window_keeps_order)
{
    folds f = {0};
    strata_worker *w = fold_worker(2, 2, 16, &f);
    uint64_t want[NBUF] = {0};
    for (uint32_t run = 0; run < 3; run++) {
        f.n = 3000;
        CHECK_OK(strata_worker_run(w, fold_orch, &f, NULL, NULL));
        reference(&f, want);
        for (int b = 0; b < NBUF; b++)
            CHECK_EQ_U64(f.data[b][0], want[b]);
    }
    strata_run_stats st;
    CHECK_OK(strata_worker_stats(w, &st));
    CHECK_EQ_U64(st.task_window.size, 16);
    CHECK_EQ_U64(st.task_window.high_water, 16);   /* it filled, and waited */
    CHECK_EQ_U64(st.tasks_failed + st.tasks_canceled, 0);
    strata_worker_destroy(w);
}

/* A failure inside a full window: the run fails with it, everything after is
   cancelled, and the next run works. */
static int fail_sub(const strata_task_args *a, void *ctx)
{
    (void)a;
    (void)ctx;
    return 5;
}

typedef struct failing {
    folds        *f;
    strata_handle bad;
} failing;

static int fail_midway(strata_orch *o, const strata_task_args *args, const strata_call_config *cfg, void *ctx)
{
    failing *g = ctx;
    g->f->n = 100;
    int rc = fold_orch(o, args, cfg, g->f);
    strata_tag inout = STRATA_INOUT;
    if (rc == 0)
        rc = strata_submit_sub(o, g->bad, &(strata_task_args){&g->f->x[0], &inout, 1, NULL, 0});
    for (int i = 0; rc == 0 && i < 200; i++)
        rc = fold_orch(o, args, cfg, g->f);
    return rc == STRATA_ECANCELED ? 0 : rc;
}

TEST_CASE(failure_in_a_full_window)
{
    folds f = {0};
    strata_worker *w = fold_worker(1, 1, 16, &f);
    failing g = {&f, 0};
    CHECK_STATUS(strata_worker_register_sub(w, fail_sub, NULL, &g.bad), STRATA_OK);
    CHECK_STATUS(strata_worker_run(w, fail_midway, &g, NULL, NULL), STRATA_ETASK);
    CHECK_ERROR_HAS("returned 5");
    for (int b = 0; b < NBUF; b++)
        f.data[b][0] = 0;
    f.n = 500;
    CHECK_OK(strata_worker_run(w, fold_orch, &f, NULL, NULL));
    uint64_t want[NBUF] = {0};
    reference(&f, want);
    for (int b = 0; b < NBUF; b++)
        CHECK_EQ_U64(f.data[b][0], want[b]);
    strata_worker_destroy(w);
}

/* A run of 200,000 tasks holds no more memory than one of 20,000: the parent
   keeps the window, never the run. */
TEST_CASE(long_run_memory_is_flat)
{
    folds f = {0};
    strata_worker *w = fold_worker(0, 1, 64, &f);
    uint64_t want[NBUF] = {0};
    f.n = 20000;
    CHECK_OK(strata_worker_run(w, fold_orch, &f, NULL, NULL));
    reference(&f, want);
    uint64_t rss_before = test_rss_bytes();
    f.n = 200000;
    CHECK_OK(strata_worker_run(w, fold_orch, &f, NULL, NULL));
    uint64_t rss_after = test_rss_bytes();
    reference(&f, want);
    for (int b = 0; b < NBUF; b++)
        CHECK_EQ_U64(f.data[b][0], want[b]);
#if !defined(__SANITIZE_ADDRESS__) && !defined(__SANITIZE_THREAD__)
    /* without a window the second run grew the parent by ~31 MiB (172 bytes
       a task); the sanitizers' own allocators hold freed memory back */
    if (rss_after > rss_before)
        CHECK(rss_after - rss_before < (4ull << 20));
#else
    (void)rss_before;
    (void)rss_after;
#endif
    strata_worker_destroy(w);
}

TEST_CASE(bad_window)
{
    strata_worker_config cfg;
    strata_worker_config_init(&cfg, 3);
    cfg.num_sub_workers = 1;
    cfg.node_task_window = 100;
    strata_worker *w;
    CHECK_STATUS(strata_worker_create(&cfg, &w), STRATA_EINVAL);
    CHECK_ERROR_HAS("node_task_window is 100; it must be a power of two from 16 to 1048576");
    cfg.node_task_window = 8;
    CHECK_STATUS(strata_worker_create(&cfg, &w), STRATA_EINVAL);
    cfg.node_task_window = 0;   /* the default */
    cfg.shared_heap_bytes = 1 << 20;
    CHECK_OK(strata_worker_create(&cfg, &w));
    strata_run_stats st;
    CHECK_OK(strata_worker_stats(w, &st));
    CHECK_EQ_U64(st.task_window.size, 4096);
    strata_worker_destroy(w);
}

TEST_MAIN(CASE(small_window_keeps_order), CASE(failure_in_a_full_window), CASE(long_run_memory_is_flat),
          CASE(bad_window))
