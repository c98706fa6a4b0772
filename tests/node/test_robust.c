/* node.robust: the corners a review found: the worker's default timeout, close
 * run inside a child, restarts from a short-lived thread, two workers in one
 * process, and registrations a child cannot take. */
#include "node_util.h"

#include <pthread.h>
#include <stdlib.h>

static int hang_sub(const strata_task_args *a, void *ctx)
{
    (void)a;
    (void)ctx;
    for (;;)
        pause();
    return 0;
}

static int one_sub(strata_orch *o, const strata_task_args *args, const strata_call_config *cfg, void *ctx)
{
    (void)cfg;
    return strata_submit_sub(o, *(strata_handle *)ctx, args);
}

/* The worker's task_timeout_ms bounds a task when neither its config nor the
   run's says otherwise. */
TEST_CASE(worker_task_timeout)
{
    strata_worker_config cfg;
    strata_worker_config_init(&cfg, 3);
    cfg.num_sub_workers = 1;
    cfg.shared_heap_bytes = 1 << 20;
    cfg.task_timeout_ms = 150;
    strata_worker *w;
    CHECK_OK(strata_worker_create(&cfg, &w));
    strata_handle h;
    CHECK_OK(strata_worker_register_sub(w, hang_sub, NULL, &h));
    CHECK_OK(strata_worker_init(w));
    uint64_t t0 = test_now_ns();
    CHECK_STATUS(strata_worker_run(w, one_sub, &h, NULL, NULL), STRATA_ETIMEDOUT);
    CHECK(test_now_ns() - t0 < 100 * 150 * 1000000ull);
    CHECK_ERROR_HAS("timeout of 150 ms");
    strata_worker_destroy(w);
}

/* A SUB function calls exit(): the application's exit handler destroys the
   worker inside the child. That must not touch the real children. */
static strata_worker *global_worker;
static void destroy_at_exit(void)
{
    strata_worker_destroy(global_worker);
}

static int exiting_sub(const strata_task_args *a, void *ctx)
{
    (void)a;
    (void)ctx;
    exit(0);
}

static int add_on_chip(strata_orch *o, const strata_task_args *args, const strata_call_config *cfg, void *ctx)
{
    (void)cfg;
    return strata_submit_next_level(o, *(strata_handle *)ctx, args, NULL, 0);
}

TEST_CASE(close_inside_a_child_touches_no_sibling)
{
    strata_handle add_h;
    global_worker = node_worker(1, 1, STRATA_ON_DEATH_RESTART, &add_h);
    strata_handle exit_h;
    CHECK_OK(strata_worker_register_sub(global_worker, exiting_sub, NULL, &exit_h));
    CHECK(atexit(destroy_at_exit) == 0);
    CHECK_OK(strata_worker_init(global_worker));
    pid_t chip;
    CHECK_OK(strata_worker_child_pid(global_worker, 0, &chip));
    CHECK_STATUS(strata_worker_run(global_worker, one_sub, &exit_h, NULL, NULL), STRATA_ECHILD);
    CHECK_ERROR_HAS("SUB child 1 (pid");
    CHECK_ERROR_HAS("exited with status");   /* 0, or LeakSanitizer's status at exit under ASan */
    CHECK(process_alive(chip));   /* the chip child was left alone */
    pid_t still;
    CHECK_OK(strata_worker_child_pid(global_worker, 0, &still));
    CHECK(still == chip);
    /* the worker still works: the SUB child was replaced, the chip child kept */
    uint64_t *x;
    strata_tensor t = host_u64(global_worker, 1, &x);
    strata_tag tag = STRATA_INOUT;
    CHECK_OK(strata_worker_run(global_worker, add_on_chip, &add_h, &(strata_task_args){&t, &tag, 1, NULL, 0}, NULL));
    CHECK_EQ_U64(x[0], 1);
    strata_worker_destroy(global_worker);
    global_worker = NULL;   /* the exit handler then has nothing to do */
}

/* A restart done on a thread that exits right after: the replacement must not
   die with that thread. */
typedef struct on_thread {
    strata_worker *w;
    strata_handle  h;
    int            rc;
} on_thread;

static int ok_sub(const strata_task_args *a, void *ctx)
{
    (void)a;
    (void)ctx;
    return 0;
}

static void *run_on_thread(void *arg)
{
    on_thread *t = arg;
    t->rc = strata_worker_run(t->w, one_sub, &t->h, NULL, NULL);
    return NULL;
}

TEST_CASE(restart_from_a_short_lived_thread)
{
    strata_worker_config cfg;
    strata_worker_config_init(&cfg, 3);
    cfg.num_sub_workers = 1;
    cfg.shared_heap_bytes = 1 << 20;
    on_thread t = {0};
    CHECK_OK(strata_worker_create(&cfg, &t.w));
    CHECK_OK(strata_worker_register_sub(t.w, ok_sub, NULL, &t.h));
    CHECK_OK(strata_worker_init(t.w));
    pid_t victim;
    CHECK_OK(strata_worker_child_pid(t.w, 0, &victim));
    CHECK(kill(victim, SIGKILL) == 0);
    CHECK(wait_gone(victim));
    CHECK(known_dead(t.w, 0));
    pthread_t th;
    CHECK(pthread_create(&th, NULL, run_on_thread, &t) == 0);   /* reports the death, restarts */
    pthread_join(th, NULL);
    CHECK_STATUS(t.rc, STRATA_ECHILD);
    pid_t replacement;
    CHECK_OK(strata_worker_child_pid(t.w, 0, &replacement));
    sleep_ms(100);   /* give a wrongly bound PDEATHSIG time to strike */
    CHECK(process_alive(replacement));
    CHECK_OK(strata_worker_run(t.w, one_sub, &t.h, NULL, NULL));
    strata_worker_destroy(t.w);
}

/* Two workers in one process: a child of the second holds nothing of the first
   (a descriptor of the first's spawner would keep it from seeing its parent
   leave), and no child holds a descriptor of Strata's at all. */
TEST_CASE(two_workers_keep_apart)
{
    strata_handle h;
    strata_worker *a = node_worker(0 + 1, 0, STRATA_ON_DEATH_RESTART, &h);
    CHECK_OK(strata_worker_init(a));
    strata_worker *b = node_worker(1, 1, STRATA_ON_DEATH_RESTART, &h);
    CHECK_OK(strata_worker_init(b));
    for (int i = 0; i < 2; i++) {
        pid_t p;
        CHECK_OK(strata_worker_child_pid(b, i, &p));
        CHECK_EQ_U64(count_fds_named(p, "socket:"), 0);
        CHECK_EQ_U64(count_fds_named(p, "eventfd"), 0);
        CHECK_EQ_U64(count_fds_named(p, "pidfd"), 0);
    }
    strata_worker_destroy(a);
    strata_worker_destroy(b);
}

TEST_MAIN(CASE(worker_task_timeout), CASE(close_inside_a_child_touches_no_sibling),
          CASE(restart_from_a_short_lived_thread), CASE(two_workers_keep_apart))
