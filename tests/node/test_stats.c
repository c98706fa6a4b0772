/* node.stats: what a worker says of its last run (strata_worker_run_info) and
 * of each child since create (strata_worker_child_stats): counts that must be
 * exact, and times that must be at least what the tasks took. */
#include "node_util.h"

/* SUB: sleep scalars[0] ms */
static int sleepy_sub(const strata_task_args *a, void *ctx)
{
    (void)ctx;
    sleep_ms((long)a->scalars[0]);
    return 0;
}

typedef struct job {
    strata_handle chip, sub;
    strata_tensor t[2];
    uint64_t      sleep_ms;
} job;

/* 3 chip tasks on chip 0, 1 on chip 1, then 2 SUB tasks of sleep_ms each */
static int mixed_orch(strata_orch *o, const strata_task_args *args, const strata_call_config *cfg, void *ctx)
{
    (void)args;
    (void)cfg;
    job *j = ctx;
    strata_tag tag = STRATA_INOUT;
    int rc = STRATA_OK;
    for (int k = 0; rc == STRATA_OK && k < 4; k++)
        rc = strata_submit_next_level(o, j->chip, &(strata_task_args){&j->t[k < 3 ? 0 : 1], &tag, 1, NULL, 0}, NULL,
                                      k < 3 ? 0 : 1);
    for (int k = 0; rc == STRATA_OK && k < 2; k++)
        rc = strata_submit_sub(o, j->sub, &(strata_task_args){NULL, NULL, 0, &j->sleep_ms, 1});
    return rc;
}

TEST_CASE(run_info_and_child_stats)
{
    job j = {.sleep_ms = 30};
    strata_worker *w = node_worker(2, 1, STRATA_ON_DEATH_RESTART, &j.chip);
    CHECK_OK(strata_worker_register_sub(w, sleepy_sub, NULL, &j.sub));
    uint32_t count = 99;
    CHECK_STATUS(strata_worker_child_stats(w, NULL, 0, 0, &count), STRATA_ESTATE);   /* no children before init */
    CHECK_OK(strata_worker_init(w));
    uint64_t *d0, *d1;
    j.t[0] = host_u64(w, 4, &d0);
    j.t[1] = host_u64(w, 4, &d1);
    CHECK_OK(strata_worker_run(w, mixed_orch, &j, NULL, NULL));

    strata_run_info info = {.size = sizeof info};
    CHECK_OK(strata_worker_run_info(w, &info));
    CHECK_EQ_U64(info.size, sizeof info);
    /* a newer program's larger struct: told how much this library filled */
    struct {
        strata_run_info info;
        uint64_t        newer_field;
    } big = {.info.size = sizeof big};
    CHECK_OK(strata_worker_run_info(w, &big.info));
    CHECK_EQ_U64(big.info.size, sizeof(strata_run_info));
    CHECK_EQ_U64(big.newer_field, 0);
    CHECK_EQ_U64(info.tasks, 6);
    CHECK(info.wall_ns >= info.orch_ns);
    CHECK(info.longest_task_ns >= 30000000ull);          /* a SUB task of 30 ms */
    CHECK(info.longest_task == 5 || info.longest_task == 6);
    CHECK(info.wall_ns >= info.longest_task_ns);

    CHECK_OK(strata_worker_child_stats(w, NULL, 0, 0, &count));
    CHECK_EQ_U64(count, 3);
    strata_child_stats cs[3];
    CHECK_OK(strata_worker_child_stats(w, cs, sizeof cs[0], 3, &count));
    CHECK_EQ_U64(cs[0].tasks, 3);
    CHECK_EQ_U64(cs[1].tasks, 1);
    CHECK_EQ_U64(cs[2].tasks, 2);
    CHECK(cs[2].busy_ns >= 60000000ull);
    CHECK(cs[0].busy_ns > 0 && cs[0].busy_ns < cs[2].busy_ns);
    pid_t p1;
    CHECK_OK(strata_worker_child_pid(w, 1, &p1));
    CHECK_EQ_U64(cs[1].pid, p1);
    for (int i = 0; i < 3; i++)
        CHECK_EQ_U64(cs[i].restarts, 0);

    /* a replaced child counts its restart; counts go on across runs */
    CHECK(kill(p1, SIGKILL) == 0);
    CHECK(known_dead(w, 1));
    CHECK_STATUS(strata_worker_run(w, mixed_orch, &j, NULL, NULL), STRATA_ECHILD);
    CHECK_OK(strata_worker_run(w, mixed_orch, &j, NULL, NULL));
    CHECK_OK(strata_worker_child_stats(w, cs, sizeof cs[0], 3, &count));
    CHECK_EQ_U64(cs[1].restarts, 1);
    CHECK_EQ_U64(cs[1].tasks, 2);
    CHECK_EQ_U64(cs[0].tasks, 6);
    CHECK(cs[1].pid != p1 && cs[1].pid > 0);

    /* a caller built against a smaller struct gets only what it has room for */
    struct {
        strata_run_info head;
        uint64_t        guard;
    } small;
    memset(&small, 0xab, sizeof small);
    small.head.size = (uint32_t)offsetof(strata_run_info, longest_task_ns);
    CHECK_OK(strata_worker_run_info(w, &small.head));
    CHECK_EQ_U64(small.head.size, offsetof(strata_run_info, longest_task_ns));
    CHECK_EQ_U64(small.head.tasks, 6);
    CHECK_EQ_U64(small.head.longest_task_ns, 0xababababababababull);   /* past its size: untouched */
    small.head.size = 4;
    CHECK_STATUS(strata_worker_run_info(w, &small.head), STRATA_EINVAL);
    CHECK_ERROR_HAS("set it to sizeof(strata_run_info)");
    CHECK_OK(strata_worker_close(w));
    strata_worker_destroy(w);
}

TEST_CASE(level2_run_info)
{
    strata_worker_config cfg;
    strata_worker_config_init(&cfg, 2);
    cfg.device_memory_bytes = 16 << 20;
    strata_worker *w;
    CHECK_OK(strata_worker_create(&cfg, &w));
    strata_chip_callable c = {"add", add_chip_orch, add_kernels, 1};
    strata_handle h;
    CHECK_OK(strata_worker_register_chip(w, &c, &h));
    CHECK_OK(strata_worker_init(w));
    strata_buffer b;
    CHECK_OK(strata_worker_malloc(w, 0, 64, &b));
    uint64_t shape[1] = {8};
    strata_tensor t = strata_tensor_make((void *)(uintptr_t)b.addr, STRATA_U64, 1, shape);
    strata_tag tag = STRATA_INOUT;
    CHECK_OK(strata_worker_run_chip(w, h, &(strata_task_args){&t, &tag, 1, NULL, 0}, NULL));
    strata_run_info info = {.size = sizeof info};
    CHECK_OK(strata_worker_run_info(w, &info));
    CHECK(info.wall_ns > 0);
    uint32_t count;
    CHECK_STATUS(strata_worker_child_stats(w, NULL, 0, 0, &count), STRATA_EINVAL);
    CHECK_ERROR_HAS("level-2 worker has no child processes");
    CHECK_OK(strata_worker_close(w));
    strata_worker_destroy(w);
}

TEST_MAIN(CASE(run_info_and_child_stats), CASE(level2_run_info))
