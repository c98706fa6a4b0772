/* node.death: children that die at any moment: killed while idle or mid-task,
 * exiting by themselves, hanging past a timeout, dying during init, reaped by
 * someone else; the policies RESTART and FAIL; and the parent's death. */
#include "node_util.h"

#include <errno.h>

static _Atomic int dummy;

/* SUB functions that misbehave on request: scalars[0] says how. */
enum { SUB_OK = 0, SUB_EXIT = 1, SUB_HANG = 2, SUB_SIGKILL_SELF = 3, SUB_SLOW = 4, SUB_FAIL = 5 };
static int misbehave(const strata_task_args *a, void *ctx)
{
    (void)ctx;
    uint64_t how = a->nscalars ? a->scalars[0] : SUB_OK;
    if (how == SUB_EXIT)
        _exit(42);
    if (how == SUB_HANG)
        for (;;)
            pause();
    if (how == SUB_SIGKILL_SELF)
        kill(getpid(), SIGKILL);
    if (how == SUB_SLOW)
        sleep_ms(300);
    if (how == SUB_FAIL)
        return 9;
    if (a->ntensors)
        u64_of(&a->tensors[0])[0] += 1;
    atomic_fetch_add(&dummy, 1);
    return 0;
}

typedef struct scenario {
    strata_handle chip, sub;
    uint64_t      how;          /* for the SUB task */
    bool          with_chip;    /* also a chip task that depends on nothing */
    bool          dependent;    /* a second SUB task that reads what the first wrote */
    strata_tensor t;
} scenario;

static int scenario_orch(strata_orch *o, const strata_task_args *args, const strata_call_config *cfg, void *ctx)
{
    (void)args;
    (void)cfg;
    scenario *s = ctx;
    strata_tag tag = STRATA_INOUT;
    int rc = strata_submit_sub(o, s->sub, &(strata_task_args){&s->t, &tag, 1, &s->how, 1});
    if (rc == 0 && s->dependent) {
        uint64_t ok = SUB_OK;
        rc = strata_submit_sub(o, s->sub, &(strata_task_args){&s->t, &tag, 1, &ok, 1});
    }
    return rc;
}

static strata_worker *sub_worker(uint32_t nsubs, strata_death_policy policy, scenario *s)
{
    strata_worker *w = node_worker(1, nsubs, policy, &s->chip);
    CHECK_OK(strata_worker_register_sub(w, misbehave, NULL, &s->sub));
    CHECK_OK(strata_worker_init(w));
    uint64_t *data;
    s->t = host_u64(w, 4, &data);
    return w;
}

/* A SUB child that _exits inside its function: the run says which child, its
   pid and status; the dependent task is cancelled; RESTART replaces the child
   and the next run works. */
TEST_CASE(sub_exits_mid_task_restart)
{
    scenario s = {0};
    strata_worker *w = sub_worker(1, STRATA_ON_DEATH_RESTART, &s);
    pid_t before;
    CHECK_OK(strata_worker_child_pid(w, 1, &before));
    s.how = SUB_EXIT;
    s.dependent = true;
    CHECK_STATUS(strata_worker_run(w, scenario_orch, &s, NULL, NULL), STRATA_ECHILD);
    char pidtext[64];
    snprintf(pidtext, sizeof pidtext, "SUB child 1 (pid %d) exited with status 42 while running task 1", (int)before);
    CHECK_ERROR_HAS(pidtext);
    CHECK_EQ_U64(zombie_children(), 0);
    CHECK(!process_alive(before));
    strata_run_stats st;
    CHECK_OK(strata_worker_stats(w, &st));
    CHECK_EQ_U64(st.tasks_failed, 1);
    CHECK_EQ_U64(st.tasks_canceled, 1);
    CHECK_EQ_U64(st.child_restarts, 1);
    CHECK_EQ_U64(strata_worker_state(w), STRATA_STATE_READY);
    pid_t after;
    CHECK_OK(strata_worker_child_pid(w, 1, &after));
    CHECK(after != before && process_alive(after));
    s.how = SUB_OK;
    CHECK_OK(strata_worker_run(w, scenario_orch, &s, NULL, NULL));
    CHECK_EQ_U64(u64_of(&s.t)[0], 2);
    strata_worker_destroy(w);
}

/* Policy FAIL: the run reports the death, then every call fails fast. */
TEST_CASE(sub_killed_mid_task_fail_policy)
{
    scenario s = {0};
    strata_worker *w = sub_worker(1, STRATA_ON_DEATH_FAIL, &s);
    s.how = SUB_SIGKILL_SELF;
    CHECK_STATUS(strata_worker_run(w, scenario_orch, &s, NULL, NULL), STRATA_ECHILD);
    CHECK_ERROR_HAS("was killed by signal 9 (Killed) while running task 1");
    CHECK_EQ_U64(strata_worker_state(w), STRATA_STATE_FAILED);
    uint64_t t0 = test_now_ns();
    CHECK_STATUS(strata_worker_run(w, scenario_orch, &s, NULL, NULL), STRATA_EFAILED);
    CHECK(test_now_ns() - t0 < 1000000000ull);
    CHECK_ERROR_HAS("is FAILED");
    strata_run_stats st;
    CHECK_OK(strata_worker_stats(w, &st));   /* reads still answer */
    CHECK_EQ_U64(st.child_restarts, 0);
    CHECK_EQ_U64(zombie_children(), 0);
    CHECK_OK(strata_worker_close(w));
    strata_worker_destroy(w);
}

/* SIGKILL of a chip child while it runs a task (from outside). */
static int slow_kernel(const strata_task_args *a)
{
    (void)a;
    sleep_ms(60000);
    return 0;
}
static int slow_chip_orch(strata_chip_orch *o, const strata_task_args *args, const strata_call_config *cfg)
{
    (void)cfg;
    strata_tag tag = STRATA_INOUT;
    /* the shared word tells the parent the kernel is about to run */
    u64_of(&args->tensors[1])[0] = 1;
    return strata_chip_submit(o, 0, &(strata_task_args){args->tensors, &tag, 1, NULL, 0});
}

typedef struct killer {
    strata_handle h;
    uint64_t     *flag;
    pid_t         victim;
} killer;

static int chip_then_kill(strata_orch *o, const strata_task_args *args, const strata_call_config *cfg, void *ctx)
{
    (void)cfg;
    killer *k = ctx;
    int rc = strata_submit_next_level(o, k->h, args, NULL, 0);
    if (rc)
        return rc;
    /* Wait (bounded) until the chip child is inside the kernel, then kill it. */
    uint64_t deadline = test_now_ns() + 10000000000ull;
    while (!__atomic_load_n(k->flag, __ATOMIC_ACQUIRE) && test_now_ns() < deadline)
        sleep_ms(1);
    kill(k->victim, SIGKILL);
    return 0;
}

static int add_on_chip0(strata_orch *o, const strata_task_args *args, const strata_call_config *cfg, void *ctx)
{
    (void)cfg;
    return strata_submit_next_level(o, *(strata_handle *)ctx, args, NULL, 0);
}

TEST_CASE(chip_killed_mid_task_restart)
{
    strata_worker_config cfg;
    strata_worker_config_init(&cfg, 3);
    int ids[1] = {7};
    cfg.device_ids = ids;
    cfg.ndevices = 1;
    cfg.device_memory_bytes = 64 << 20;
    cfg.shared_heap_bytes = 1 << 20;
    strata_worker *w;
    CHECK_OK(strata_worker_create(&cfg, &w));
    static const strata_kernel_entry k[] = {{0, STRATA_AIV, slow_kernel}};
    strata_chip_callable c = {"slow", slow_chip_orch, k, 1};
    killer kl = {0};
    CHECK_OK(strata_worker_register_chip(w, &c, &kl.h));
    strata_chip_callable add = {"add", add_chip_orch, add_kernels, 1};
    strata_handle add_h;
    CHECK_OK(strata_worker_register_chip(w, &add, &add_h));
    CHECK_OK(strata_worker_init(w));
    CHECK_OK(strata_worker_child_pid(w, 0, &kl.victim));
    uint64_t *data, *flag;
    strata_tensor t[2] = {host_u64(w, 4, &data), host_u64(w, 1, &flag)};
    kl.flag = flag;
    strata_tag tags[2] = {STRATA_INOUT, STRATA_INOUT};
    uint64_t t0 = test_now_ns();
    CHECK_STATUS(strata_worker_run(w, chip_then_kill, &kl, &(strata_task_args){t, tags, 2, NULL, 0}, NULL),
                 STRATA_ECHILD);
    CHECK(test_now_ns() - t0 < 10000000000ull);   /* noticed at once, not after the 60 s kernel */
    char text[128];
    snprintf(text, sizeof text, "chip child 0 (device 7, pid %d) was killed by signal 9 (Killed) while running "
             "task 1 (slow)", (int)kl.victim);
    CHECK_ERROR_HAS(text);
    CHECK_EQ_U64(zombie_children(), 0);
    /* replaced: the next run works on the new child */
    pid_t now;
    CHECK_OK(strata_worker_child_pid(w, 0, &now));
    CHECK(now != kl.victim);
    CHECK_OK(strata_worker_run(w, add_on_chip0, &add_h, &(strata_task_args){t, tags, 1, NULL, 0}, NULL));
    CHECK_EQ_U64(data[0], 1);
    strata_worker_destroy(w);
}

/* SIGKILL of an idle child between runs: the next run reports it without
   starting anything, the one after works. */
TEST_CASE(child_killed_while_idle)
{
    scenario s = {0};
    strata_worker *w = sub_worker(1, STRATA_ON_DEATH_RESTART, &s);
    pid_t victim;
    CHECK_OK(strata_worker_child_pid(w, 1, &victim));
    CHECK(kill(victim, SIGKILL) == 0);
    CHECK(wait_gone(victim));
    CHECK(known_dead(w, 1));
    s.how = SUB_OK;
    uint64_t before = u64_of(&s.t)[0];
    CHECK_STATUS(strata_worker_run(w, scenario_orch, &s, NULL, NULL), STRATA_ECHILD);
    char text[96];
    snprintf(text, sizeof text, "SUB child 1 (pid %d) was killed by signal 9", (int)victim);
    CHECK_ERROR_HAS(text);
    CHECK_ERROR_HAS("between runs");
    CHECK_EQ_U64(u64_of(&s.t)[0], before);   /* nothing started */
    CHECK_OK(strata_worker_run(w, scenario_orch, &s, NULL, NULL));
    CHECK_EQ_U64(u64_of(&s.t)[0], before + 1);
    strata_run_stats st;
    CHECK_OK(strata_worker_stats(w, &st));
    CHECK_EQ_U64(st.child_restarts, 1);
    CHECK_EQ_U64(zombie_children(), 0);
    strata_worker_destroy(w);
}

/* A chip child and a SUB child killed while idle: the next run reports both,
   once, in one message; both are replaced. */
TEST_CASE(two_children_killed_while_idle)
{
    scenario s = {0};
    strata_worker *w = sub_worker(1, STRATA_ON_DEATH_RESTART, &s);
    pid_t chip, sub;
    CHECK_OK(strata_worker_child_pid(w, 0, &chip));
    CHECK_OK(strata_worker_child_pid(w, 1, &sub));
    CHECK(kill(chip, SIGKILL) == 0 && kill(sub, SIGKILL) == 0);
    CHECK(wait_gone(chip) && wait_gone(sub));
    CHECK(known_dead(w, 0) && known_dead(w, 1));
    CHECK_STATUS(strata_worker_run(w, scenario_orch, &s, NULL, NULL), STRATA_ECHILD);
    char text[96];
    snprintf(text, sizeof text, "chip child 0 (device 10, pid %d) was killed by signal 9", (int)chip);
    CHECK_ERROR_HAS(text);
    snprintf(text, sizeof text, "SUB child 1 (pid %d) was killed by signal 9", (int)sub);
    CHECK_ERROR_HAS(text);
    strata_run_stats st;
    CHECK_OK(strata_worker_stats(w, &st));
    CHECK_EQ_U64(st.child_restarts, 2);
    CHECK_OK(strata_worker_run(w, scenario_orch, &s, NULL, NULL));   /* reported once: this one works */
    CHECK_EQ_U64(zombie_children(), 0);
    strata_worker_destroy(w);
}

/* A hung SUB function is bounded by the task timeout: the child is killed, the
   run says so, and the next run works on a new child. */
TEST_CASE(hung_child_times_out)
{
    scenario s = {0};
    strata_worker *w = sub_worker(1, STRATA_ON_DEATH_RESTART, &s);
    pid_t victim;
    CHECK_OK(strata_worker_child_pid(w, 1, &victim));
    s.how = SUB_HANG;
    strata_call_config cfg = {0};
    cfg.timeout_ms = 100;
    uint64_t t0 = test_now_ns();
    CHECK_STATUS(strata_worker_run(w, scenario_orch, &s, NULL, &cfg), STRATA_ETIMEDOUT);
    CHECK(test_now_ns() - t0 < 100 * 100 * 1000000ull);
    char text[128];
    snprintf(text, sizeof text, "SUB child 1 (pid %d) was killed by Strata: its task ran past its timeout of 100 ms",
             (int)victim);
    CHECK_ERROR_HAS(text);
    CHECK(!process_alive(victim));
    s.how = SUB_OK;
    CHECK_OK(strata_worker_run(w, scenario_orch, &s, NULL, &cfg));
    strata_worker_destroy(w);
}

/* A chip kernel that hangs is bounded too: the chip child is killed. */
static int slow_chip_only(strata_orch *o, const strata_task_args *args, const strata_call_config *cfg, void *ctx)
{
    (void)cfg;
    return strata_submit_next_level(o, *(strata_handle *)ctx, args, NULL, 0);
}

TEST_CASE(hung_chip_kernel_times_out)
{
    strata_worker *w = node_worker(1, 0, STRATA_ON_DEATH_RESTART, NULL);
    static const strata_kernel_entry k[] = {{0, STRATA_AIV, slow_kernel}};
    strata_chip_callable c = {"hangs", slow_chip_orch, k, 1};
    strata_handle h;
    CHECK_OK(strata_worker_register_chip(w, &c, &h));
    CHECK_OK(strata_worker_init(w));
    pid_t victim;
    CHECK_OK(strata_worker_child_pid(w, 0, &victim));
    uint64_t *data, *flag;
    strata_tensor t[2] = {host_u64(w, 4, &data), host_u64(w, 1, &flag)};
    strata_tag tags[2] = {STRATA_INOUT, STRATA_INOUT};
    strata_call_config cfg = {0};
    cfg.timeout_ms = 100;
    uint64_t t0 = test_now_ns();
    CHECK_STATUS(strata_worker_run(w, slow_chip_only, &h, &(strata_task_args){t, tags, 2, NULL, 0}, &cfg),
                 STRATA_ETIMEDOUT);
    CHECK(test_now_ns() - t0 < 100 * 100 * 1000000ull);
    char text[128];
    snprintf(text, sizeof text, "chip child 0 (device 10, pid %d) was killed by Strata", (int)victim);
    CHECK_ERROR_HAS(text);
    CHECK(!process_alive(victim));
    CHECK_EQ_U64(strata_worker_state(w), STRATA_STATE_READY);   /* replaced */
    strata_worker_destroy(w);
}

/* The application reaps every child of its own (a stray waitpid(-1), or
   waitpid on a pid Strata reported): Strata's children are not among them, so
   the death is still reported with its signal, and the pid was never freed
   for reuse under Strata. */
TEST_CASE(child_reaped_by_someone_else)
{
    scenario s = {0};
    strata_worker *w = sub_worker(1, STRATA_ON_DEATH_RESTART, &s);
    pid_t victim;
    CHECK_OK(strata_worker_child_pid(w, 1, &victim));
    CHECK(kill(victim, SIGKILL) == 0);
    int status;
    errno = 0;
    CHECK(waitpid(victim, &status, 0) == -1 && errno == ECHILD);   /* not the application's child */
    CHECK(waitpid(-1, &status, WNOHANG) == 0);   /* its only child, the spawner, lives */
    CHECK(known_dead(w, 1));
    CHECK_STATUS(strata_worker_run(w, scenario_orch, &s, NULL, NULL), STRATA_ECHILD);
    char text[96];
    snprintf(text, sizeof text, "SUB child 1 (pid %d) was killed by signal 9", (int)victim);
    CHECK_ERROR_HAS(text);
    CHECK_OK(strata_worker_run(w, scenario_orch, &s, NULL, NULL));
    strata_worker_destroy(w);
}

/* A failing SUB function (nonzero return) fails the task, not the child. */
TEST_CASE(sub_function_failure)
{
    scenario s = {0};
    strata_worker *w = sub_worker(1, STRATA_ON_DEATH_RESTART, &s);
    pid_t pid;
    CHECK_OK(strata_worker_child_pid(w, 1, &pid));
    s.how = SUB_FAIL;
    s.dependent = true;
    CHECK_STATUS(strata_worker_run(w, scenario_orch, &s, NULL, NULL), STRATA_ETASK);
    CHECK_ERROR_HAS("returned 9 in task 1");
    pid_t same;
    CHECK_OK(strata_worker_child_pid(w, 1, &same));
    CHECK(same == pid);
    strata_run_stats st;
    CHECK_OK(strata_worker_stats(w, &st));
    CHECK_EQ_U64(st.tasks_canceled, 1);
    CHECK_EQ_U64(st.child_restarts, 0);
    s.how = SUB_OK;
    CHECK_OK(strata_worker_run(w, scenario_orch, &s, NULL, NULL));
    strata_worker_destroy(w);
}

/* A child that dies while starting (or never reports ready): init fails naming
   it, every other child is gone, and the worker stays NEW. */
static void check_init_fails(const char *fault, uint32_t init_timeout_ms, int status, const char *says)
{
    strata_worker_config cfg;
    strata_worker_config_init(&cfg, 3);
    int ids[2] = {0, 1};
    cfg.device_ids = ids;
    cfg.ndevices = 2;
    cfg.num_sub_workers = 1;
    cfg.device_memory_bytes = 1 << 20;
    cfg.shared_heap_bytes = 1 << 20;
    cfg.init_timeout_ms = init_timeout_ms;
    strata_worker *w;
    CHECK_OK(strata_worker_create(&cfg, &w));
    test_setenv("STRATA_FAULT_CHILD_START", fault);
    uint64_t t0 = test_now_ns();
    int rc = strata_worker_init(w);
    test_setenv("STRATA_FAULT_CHILD_START", NULL);
    CHECK(test_now_ns() - t0 < 10ull * init_timeout_ms * 1000000ull);
    CHECK_STATUS(rc, status);
    CHECK_ERROR_HAS(says);
    CHECK_EQ_U64(strata_worker_state(w), STRATA_STATE_NEW);
    CHECK_EQ_U64(zombie_children(), 0);
    strata_worker_destroy(w);
}

TEST_CASE(child_dies_during_init)
{
    /* a generous init_timeout_ms where the child dies: sanitizer builds start slowly */
    check_init_fails("exit:1", 10000, STRATA_ECHILD, "chip child 1 (device 1, pid");
    check_init_fails("exit:1", 10000, STRATA_ECHILD, "exited with status 7 while starting");
    check_init_fails("kill:2", 10000, STRATA_ECHILD, "SUB child 2 (pid");
    check_init_fails("kill:2", 10000, STRATA_ECHILD, "was killed by signal 9 (Killed) while starting");
    check_init_fails("hang:0", 300, STRATA_ETIMEDOUT, "did not report ready within init_timeout_ms (300 ms)");
}

TEST_MAIN(CASE(sub_exits_mid_task_restart), CASE(sub_killed_mid_task_fail_policy), CASE(chip_killed_mid_task_restart),
          CASE(child_killed_while_idle), CASE(two_children_killed_while_idle), CASE(hung_child_times_out), CASE(hung_chip_kernel_times_out), CASE(child_reaped_by_someone_else),
          CASE(sub_function_failure), CASE(child_dies_during_init))
