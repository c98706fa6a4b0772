/* node.lifecycle: a level-3 worker's life: the motivating scenario (a thousand
 * runs on one chip child, never a zombie, nothing leaked), close, bad input. */
#include "node_util.h"

#include <pthread.h>

/* One submit_next_level per run. */
static int one_chip_task(strata_orch *o, const strata_task_args *args, const strata_call_config *cfg, void *ctx)
{
    (void)cfg;
    strata_handle h = *(strata_handle *)ctx;
    return strata_submit_next_level(o, h, args, NULL, 0);
}

/* The bug Strata was started for: after a run with one chip task, the chip child
   was left <defunct> and the next run and close hung. */
TEST_CASE(thousand_runs_one_chip)
{
    int fds_before = open_fds();
    strata_handle h;
    strata_worker *w = node_worker(1, 0, STRATA_ON_DEATH_RESTART, &h);
    CHECK_OK(strata_worker_init(w));
    pid_t child;
    CHECK_OK(strata_worker_child_pid(w, 0, &child));
    CHECK(process_alive(child));
    uint64_t *data;
    strata_tensor t = host_u64(w, 16, &data);
    strata_tag tag = STRATA_INOUT;
    strata_task_args args = {&t, &tag, 1, NULL, 0};
    for (int run = 1; run <= 1000; run++) {
        CHECK_OK(strata_worker_run(w, one_chip_task, &h, &args, NULL));
        if (run % 100 == 0) {
            CHECK_EQ_U64(zombie_children(), 0);
            CHECK_EQ_U64(data[0], (uint64_t)run);
            pid_t now;
            CHECK_OK(strata_worker_child_pid(w, 0, &now));
            CHECK(now == child);   /* the same child served every run */
        }
    }
    for (int i = 0; i < 16; i++)
        CHECK_EQ_U64(data[i], 1000);
    strata_run_stats st;
    CHECK_OK(strata_worker_stats(w, &st));
    CHECK_EQ_U64(st.tasks_completed, 1000);
    CHECK_EQ_U64(st.child_restarts, 0);
    CHECK_OK(strata_worker_close(w));
    CHECK(!process_alive(child));
    CHECK_EQ_U64(zombie_children(), 0);
    CHECK_OK(strata_worker_close(w));
    strata_worker_destroy(w);
    CHECK(open_fds() == fds_before);
}

TEST_CASE(close_is_bounded_and_idempotent)
{
    strata_handle h;
    strata_worker *w = node_worker(2, 2, STRATA_ON_DEATH_RESTART, &h);
    CHECK_OK(strata_worker_init(w));
    pid_t pids[4];
    for (int i = 0; i < 4; i++)
        CHECK_OK(strata_worker_child_pid(w, i, &pids[i]));
    uint64_t t0 = test_now_ns();
    CHECK_OK(strata_worker_close(w));
    CHECK(test_now_ns() - t0 < 10 * 1000000000ull);   /* goal: well under a second */
    for (int i = 0; i < 4; i++)
        CHECK(!process_alive(pids[i]));
    CHECK_OK(strata_worker_close(w));
    CHECK_EQ_U64(strata_worker_state(w), STRATA_STATE_CLOSED);
    CHECK_STATUS(strata_worker_run(w, one_chip_task, &h, NULL, NULL), STRATA_ESTATE);
    CHECK_ERROR_HAS("is CLOSED");
    strata_worker_destroy(w);
}

/* A child that does not answer the exit request (stopped: SIGTERM stays pending
   too) is still gone after close: grace, SIGTERM, grace, then SIGKILL. */
TEST_CASE(close_kills_a_stopped_child)
{
    strata_handle h;
    strata_worker *w = node_worker(1, 1, STRATA_ON_DEATH_RESTART, &h);
    CHECK_OK(strata_worker_init(w));
    pid_t chip, sub;
    CHECK_OK(strata_worker_child_pid(w, 0, &chip));
    CHECK_OK(strata_worker_child_pid(w, 1, &sub));
    CHECK(kill(sub, SIGSTOP) == 0);
    uint64_t t0 = test_now_ns();
    CHECK_OK(strata_worker_close(w));
    uint64_t took = test_now_ns() - t0;
    CHECK(took >= 2 * 500 * 1000000ull * 9 / 10);   /* it did wait out both grace periods */
    CHECK(took < 10 * 2 * 500 * 1000000ull);          /* bound: 10x the two grace periods */
    CHECK(!process_alive(chip));
    CHECK(!process_alive(sub));
    CHECK_EQ_U64(zombie_children(), 0);
    strata_worker_destroy(w);
}

/* A child killed while the parent is inside close (here: stopped, so close is
   waiting out its grace period): close reaps it and returns, bounded. */
static void *kill_later(void *arg)
{
    sleep_ms(100);
    kill(*(pid_t *)arg, SIGKILL);
    return NULL;
}

TEST_CASE(child_killed_during_close)
{
    strata_handle h;
    strata_worker *w = node_worker(1, 1, STRATA_ON_DEATH_RESTART, &h);
    CHECK_OK(strata_worker_init(w));
    pid_t chip, sub;
    CHECK_OK(strata_worker_child_pid(w, 0, &chip));
    CHECK_OK(strata_worker_child_pid(w, 1, &sub));
    CHECK(kill(chip, SIGSTOP) == 0);
    pthread_t t;
    CHECK(pthread_create(&t, NULL, kill_later, &chip) == 0);
    uint64_t t0 = test_now_ns();
    CHECK_OK(strata_worker_close(w));
    uint64_t took = test_now_ns() - t0;
    pthread_join(t, NULL);
    CHECK(took < 10 * 2 * 500 * 1000000ull);
    CHECK(!process_alive(chip));
    CHECK(!process_alive(sub));
    CHECK_EQ_U64(zombie_children(), 0);
    strata_worker_destroy(w);
}

TEST_CASE(bad_input)
{
    strata_handle h;
    strata_worker *w = node_worker(1, 1, STRATA_ON_DEATH_RESTART, &h);
    CHECK_STATUS(strata_worker_run(w, one_chip_task, &h, NULL, NULL), STRATA_ESTATE);
    CHECK_ERROR_HAS("is NEW; call strata_worker_init first");
    CHECK_OK(strata_worker_init(w));
    CHECK_STATUS(strata_worker_run_chip(w, h, NULL, NULL), STRATA_EINVAL);
    CHECK_ERROR_HAS("use strata_worker_run");
    pid_t pid;
    CHECK_STATUS(strata_worker_child_pid(w, 7, &pid), STRATA_ENOENT);
    CHECK_ERROR_HAS("worker 7 does not exist");
    strata_worker_destroy(w);
}

static int bad_submits(strata_orch *o, const strata_task_args *args, const strata_call_config *cfg, void *ctx)
{
    (void)cfg;
    int which = *(int *)ctx;
    static uint64_t on_stack_data[4];
    uint64_t shape[1] = {4};
    strata_tensor stack_tensor = strata_tensor_make(on_stack_data, STRATA_U64, 1, shape);
    strata_tag tag = STRATA_INOUT;
    switch (which) {
    case 0: return strata_submit_next_level(o, 1, args, NULL, 5);                          /* no such chip */
    case 1: return strata_submit_next_level(o, 99, args, NULL, 0);                         /* unknown handle */
    case 2: return strata_submit_next_level(o, 1, &(strata_task_args){&stack_tensor, &tag, 1, NULL, 0}, NULL, 0);
    case 3: return strata_submit_sub(o, 1, args);                                          /* a chip handle */
    default: {
        static strata_tensor many[300];
        static strata_tag tags[300];
        for (int i = 0; i < 300; i++) {
            many[i] = args->tensors[0];
            tags[i] = STRATA_INPUT;
        }
        return strata_submit_next_level(o, 1, &(strata_task_args){many, tags, 300, NULL, 0}, NULL, 0);
    }
    }
}

TEST_CASE(bad_submits)
{
    strata_handle h;
    strata_worker *w = node_worker(1, 1, STRATA_ON_DEATH_RESTART, &h);
    CHECK(h == 1);
    CHECK_OK(strata_worker_init(w));
    uint64_t *data;
    strata_tensor t = host_u64(w, 4, &data);
    strata_tag tag = STRATA_INOUT;
    strata_task_args args = {&t, &tag, 1, NULL, 0};
    static const struct { int status; const char *says; } expect[] = {
        {STRATA_ENOENT, "worker 5 is not a chip of this level-3 worker (1 chips: 0..0)"},
        {STRATA_ENOENT, "handle 99 is not a chip callable registered"},
        {STRATA_EINVAL, "is not the base of a buffer the children can see"},
        {STRATA_ENOENT, "handle 1 is not a SUB function"},
        {STRATA_EINVAL, "300 tensors given; a task takes at most 256"},
    };
    for (int i = 0; i < 5; i++) {
        CHECK_STATUS(strata_worker_run(w, bad_submits, &i, &args, NULL), expect[i].status);
        CHECK_ERROR_HAS(expect[i].says);
        CHECK_EQ_U64(strata_worker_state(w), STRATA_STATE_READY);
    }
    CHECK_OK(strata_worker_run(w, one_chip_task, &h, &args, NULL));   /* still usable */
    CHECK_EQ_U64(data[0], 1);
    strata_worker_destroy(w);
}

TEST_MAIN(CASE(thousand_runs_one_chip), CASE(close_is_bounded_and_idempotent), CASE(close_kills_a_stopped_child), CASE(child_killed_during_close),
          CASE(bad_input), CASE(bad_submits))
