/* node.states: every public call of a level-3 worker in every state it can be
 * observed in (NEW, READY, RUNNING from inside the orchestration function,
 * FAILED under STRATA_ON_DEATH_FAIL, CLOSED), against a table written here
 * independently of the library's: a change to either fails this test. */
#include "node_util.h"

enum { K_INIT, K_REGISTER, K_RUN, K_CHIP_MEMORY, K_HOST_MEMORY, K_CHILDREN, K_STATS, NK };
static const char *const kind_names[NK] = {"init", "register", "run", "chip memory", "host memory", "children",
                                           "stats"};

/* What each call returns in each state (INITIALIZING lasts only inside init,
   on the driving thread, and is never seen by a call). */
static const int expected[STRATA_STATE_CLOSED + 1][NK] = {
    [STRATA_STATE_NEW] = {STRATA_OK, STRATA_OK, STRATA_ESTATE, STRATA_ESTATE, STRATA_OK, STRATA_ESTATE, STRATA_OK},
    [STRATA_STATE_READY] = {STRATA_ESTATE, STRATA_OK, STRATA_OK, STRATA_OK, STRATA_OK, STRATA_OK, STRATA_OK},
    [STRATA_STATE_RUNNING] = {STRATA_ESTATE, STRATA_ESTATE, STRATA_ESTATE, STRATA_ESTATE, STRATA_OK, STRATA_OK,
                              STRATA_OK},
    [STRATA_STATE_FAILED] = {STRATA_EFAILED, STRATA_EFAILED, STRATA_EFAILED, STRATA_EFAILED, STRATA_EFAILED,
                             STRATA_OK, STRATA_OK},
    [STRATA_STATE_CLOSED] = {STRATA_ESTATE, STRATA_ESTATE, STRATA_ESTATE, STRATA_ESTATE, STRATA_ESTATE,
                             STRATA_ESTATE, STRATA_OK},
};
/* close in each state */
static const int expected_close[STRATA_STATE_CLOSED + 1] = {
    [STRATA_STATE_NEW] = STRATA_OK, [STRATA_STATE_READY] = STRATA_OK, [STRATA_STATE_RUNNING] = STRATA_ESTATE,
    [STRATA_STATE_FAILED] = STRATA_OK, [STRATA_STATE_CLOSED] = STRATA_OK};

static int nothing(strata_orch *o, const strata_task_args *args, const strata_call_config *cfg, void *ctx)
{
    (void)o;
    (void)args;
    (void)cfg;
    (void)ctx;
    return 0;
}

static int ok_sub(const strata_task_args *a, void *ctx)
{
    (void)a;
    (void)ctx;
    return 0;
}

/* Call kind k on w (the live child `alive` for child_pid); release what it
   made. Init is not called here (it changes the state): see the cases. */
static int call(strata_worker *w, int k, int alive)
{
    strata_handle h;
    strata_buffer b;
    strata_run_stats st;
    pid_t pid;
    void *p;
    int rc = STRATA_OK;
    switch (k) {
    case K_INIT: return strata_worker_init(w);
    case K_REGISTER: return strata_worker_register_sub(w, ok_sub, NULL, &h);
    case K_RUN: return strata_worker_run(w, nothing, NULL, NULL, NULL);
    case K_CHIP_MEMORY:
        rc = strata_worker_malloc(w, 0, 64, &b);
        if (rc == STRATA_OK)
            CHECK_OK(strata_worker_free(w, b));
        return rc;
    case K_HOST_MEMORY:
        rc = strata_worker_host_alloc(w, 64, &p);
        if (rc == STRATA_OK)
            CHECK_OK(strata_worker_host_free(w, p));
        return rc;
    case K_CHILDREN: return strata_worker_child_pid(w, alive, &pid);
    case K_STATS: return strata_worker_stats(w, &st);
    }
    return STRATA_EINVAL;
}

/* Every call but init in state `state`: the table's status, and a message
   that names the call's state or failure when it refuses. */
static void walk(strata_worker *w, strata_state state, int alive)
{
    CHECK_EQ_U64(strata_worker_state(w), state);
    for (int k = K_REGISTER; k < NK; k++) {
        int rc = call(w, k, alive);
        if (rc != expected[state][k])
            test_fail(__FILE__, __LINE__, "%s in state %d returned %s, expected %s: \"%s\"", kind_names[k],
                      (int)state, strata_status_name(rc), strata_status_name(expected[state][k]),
                      strata_last_error());
        if (rc == STRATA_ESTATE && state != STRATA_STATE_RUNNING)
            CHECK(strstr(strata_last_error(), state == STRATA_STATE_NEW ? "is NEW" : "is CLOSED"));
        if (rc == STRATA_ESTATE && state == STRATA_STATE_RUNNING)
            CHECK_ERROR_HAS("a run is in progress");
        if (rc == STRATA_EFAILED)
            CHECK_ERROR_HAS("is FAILED after an earlier failure (a child died under policy STRATA_ON_DEATH_FAIL)");
    }
    if (state != STRATA_STATE_NEW && state != STRATA_STATE_RUNNING) {
        int rc = call(w, K_INIT, alive);
        CHECK_EQ_U64((uint64_t)(int64_t)rc, (uint64_t)(int64_t)expected[state][K_INIT]);
    }
}

static int walk_inside(strata_orch *o, const strata_task_args *args, const strata_call_config *cfg, void *ctx)
{
    (void)o;
    (void)args;
    (void)cfg;
    strata_worker *w = ctx;
    walk(w, STRATA_STATE_RUNNING, 1);
    CHECK_EQ_U64((uint64_t)(int64_t)strata_worker_close(w), (uint64_t)(int64_t)expected_close[STRATA_STATE_RUNNING]);
    CHECK_STATUS(call(w, K_INIT, 1), expected[STRATA_STATE_RUNNING][K_INIT]);
    return 0;
}

static strata_worker *make(strata_death_policy policy)
{
    return node_worker(1, 2, policy, NULL);
}

TEST_CASE(every_call_in_every_state)
{
    strata_worker *w = make(STRATA_ON_DEATH_FAIL);
    walk(w, STRATA_STATE_NEW, 1);
    CHECK_OK(strata_worker_init(w));
    walk(w, STRATA_STATE_READY, 1);
    CHECK_OK(strata_worker_run(w, walk_inside, w, NULL, NULL));
    walk(w, STRATA_STATE_READY, 1);
    /* FAILED: a child dies under policy FAIL, and the next run reports it */
    pid_t victim;
    CHECK_OK(strata_worker_child_pid(w, 2, &victim));
    CHECK(kill(victim, SIGKILL) == 0);
    CHECK(known_dead(w, 2));
    CHECK_STATUS(strata_worker_run(w, nothing, NULL, NULL, NULL), STRATA_ECHILD);
    walk(w, STRATA_STATE_FAILED, 1);
    CHECK_STATUS(strata_worker_child_pid(w, 2, &victim), STRATA_ECHILD);   /* reads answer: that one is dead */
    CHECK_EQ_U64((uint64_t)(int64_t)strata_worker_close(w), (uint64_t)(int64_t)expected_close[STRATA_STATE_FAILED]);
    walk(w, STRATA_STATE_CLOSED, 1);
    CHECK_OK(strata_worker_close(w));   /* idempotent */
    strata_worker_destroy(w);
}

TEST_CASE(close_from_new_and_ready)
{
    strata_worker *w = make(STRATA_ON_DEATH_RESTART);
    CHECK_EQ_U64((uint64_t)(int64_t)strata_worker_close(w), (uint64_t)(int64_t)expected_close[STRATA_STATE_NEW]);
    walk(w, STRATA_STATE_CLOSED, 1);
    strata_worker_destroy(w);
    w = make(STRATA_ON_DEATH_RESTART);
    CHECK_OK(strata_worker_init(w));
    CHECK_EQ_U64((uint64_t)(int64_t)strata_worker_close(w), (uint64_t)(int64_t)expected_close[STRATA_STATE_READY]);
    walk(w, STRATA_STATE_CLOSED, 1);
    strata_worker_destroy(w);
}

static int submit_to_sub(strata_orch *o, const strata_task_args *args, const strata_call_config *cfg, void *ctx)
{
    (void)args;
    (void)cfg;
    return ctx ? strata_submit_sub(o, *(strata_handle *)ctx, NULL) : STRATA_OK;
}

static int noop_sub(const strata_task_args *a, void *ctx)
{
    (void)a;
    (void)ctx;
    return 0;
}

/* A level-3 worker with no children (an application that registers later, or
   only orchestrates): init, runs and close work; a SUB task has nowhere to
   run and says so. */
TEST_CASE(worker_without_children)
{
    strata_worker_config cfg;
    strata_worker_config_init(&cfg, 3);
    strata_worker *w;
    CHECK_OK(strata_worker_create(&cfg, &w));
    strata_handle sub;
    CHECK_OK(strata_worker_register_sub(w, noop_sub, NULL, &sub));
    CHECK_OK(strata_worker_init(w));
    for (int i = 0; i < 3; i++)
        CHECK_OK(strata_worker_run(w, submit_to_sub, NULL, NULL, NULL));
    CHECK(strata_worker_run(w, submit_to_sub, &sub, NULL, NULL) != STRATA_OK);
    CHECK_ERROR_HAS("SUB");
    pid_t pid;
    CHECK_STATUS(strata_worker_child_pid(w, 0, &pid), STRATA_ENOENT);
    CHECK_OK(strata_worker_run(w, submit_to_sub, NULL, NULL, NULL));
    CHECK_OK(strata_worker_close(w));
    strata_worker_destroy(w);
}

TEST_MAIN(CASE(every_call_in_every_state), CASE(close_from_new_and_ready), CASE(worker_without_children))
