/* node.register: registrations after init reach every live child, survive
 * restarts, and refuse functions the children cannot resolve. */
#include "node_util.h"

#include <dlfcn.h>
#include <sys/resource.h>

static int sub_add7(const strata_task_args *a, void *ctx)
{
    (void)ctx;
    u64_of(&a->tensors[0])[0] += 7;
    return 0;
}

typedef struct plan {
    strata_handle h;
    int           chip;   /* -1: SUB */
} plan;

static int run_one(strata_orch *o, const strata_task_args *args, const strata_call_config *cfg, void *ctx)
{
    (void)cfg;
    plan *p = ctx;
    return p->chip >= 0 ? strata_submit_next_level(o, p->h, args, NULL, p->chip) : strata_submit_sub(o, p->h, args);
}

TEST_CASE(after_init_reaches_live_children)
{
    strata_worker *w = node_worker(2, 2, STRATA_ON_DEATH_RESTART, NULL);
    CHECK_OK(strata_worker_init(w));
    strata_chip_callable c = {"add", add_chip_orch, add_kernels, 1};
    strata_handle chip_h, sub_h;
    CHECK_OK(strata_worker_register_chip(w, &c, &chip_h));
    CHECK_OK(strata_worker_register_sub(w, sub_add7, NULL, &sub_h));
    uint64_t *x;
    strata_tensor t = host_u64(w, 1, &x);
    strata_tag tag = STRATA_INOUT;
    strata_task_args args = {&t, &tag, 1, NULL, 0};
    for (int chip = 0; chip < 2; chip++) {
        plan p = {chip_h, chip};
        CHECK_OK(strata_worker_run(w, run_one, &p, &args, NULL));
    }
    plan ps = {sub_h, -1};
    CHECK_OK(strata_worker_run(w, run_one, &ps, &args, NULL));
    CHECK_EQ_U64(x[0], 2 + 7);
    /* a replacement child inherits every registration */
    pid_t victim;
    CHECK_OK(strata_worker_child_pid(w, 1, &victim));
    CHECK(kill(victim, SIGKILL) == 0);
    CHECK(wait_gone(victim));
    CHECK(known_dead(w, 1));
    plan p1 = {chip_h, 1};
    CHECK_STATUS(strata_worker_run(w, run_one, &p1, &args, NULL), STRATA_ECHILD);
    CHECK_OK(strata_worker_run(w, run_one, &p1, &args, NULL));
    CHECK_EQ_U64(x[0], 10);
    strata_worker_destroy(w);
}

TEST_CASE(late_object_refused_then_symbol)
{
    strata_worker *w = node_worker(1, 1, STRATA_ON_DEATH_RESTART, NULL);
    CHECK_OK(strata_worker_init(w));
    void *so = dlopen(STRATA_TEST_LATE_SO, RTLD_NOW | RTLD_LOCAL);
    CHECK(so != NULL);
    const strata_chip_callable *late = dlsym(so, "strata_test_late_callable");
    CHECK(late != NULL);
    strata_handle h = STRATA_HANDLE_INVALID;
    CHECK_STATUS(strata_worker_register_chip(w, late, &h), STRATA_EINVAL);
    CHECK_ERROR_HAS("lies in an object loaded after the children started");
    CHECK_ERROR_HAS("strata_worker_register_chip_symbol");
    CHECK_STATUS(strata_worker_register_chip_symbol(w, "/nonexistent.so", "x", &h), STRATA_ENOENT);
    CHECK_ERROR_HAS("dlopen of '/nonexistent.so' failed");
    CHECK_STATUS(strata_worker_register_chip_symbol(w, STRATA_TEST_LATE_SO, "no_such_symbol", &h), STRATA_ENOENT);
    CHECK_ERROR_HAS("has no symbol 'no_such_symbol'");
    CHECK_OK(strata_worker_register_chip_symbol(w, STRATA_TEST_LATE_SO, "strata_test_late_callable", &h));
    uint64_t *x;
    strata_tensor t = host_u64(w, 1, &x);
    strata_tag tag = STRATA_INOUT;
    strata_task_args args = {&t, &tag, 1, NULL, 0};
    plan p = {h, 0};
    CHECK_OK(strata_worker_run(w, run_one, &p, &args, NULL));
    CHECK_EQ_U64(x[0], 1000);
    /* and after a restart */
    pid_t victim;
    CHECK_OK(strata_worker_child_pid(w, 0, &victim));
    CHECK(kill(victim, SIGKILL) == 0);
    CHECK(wait_gone(victim));
    CHECK(known_dead(w, 0));
    CHECK_STATUS(strata_worker_run(w, run_one, &p, &args, NULL), STRATA_ECHILD);
    CHECK_OK(strata_worker_run(w, run_one, &p, &args, NULL));
    CHECK_EQ_U64(x[0], 2000);
    strata_worker_destroy(w);
}

/* A registration one child cannot take (it cannot open the shared object):
   the call says which child; the handle stays the same in every process, its
   tasks fail in that child only, and later registrations still line up. */
TEST_CASE(registration_refused_by_one_child)
{
    strata_worker *w = node_worker(2, 0, STRATA_ON_DEATH_RESTART, NULL);
    CHECK_OK(strata_worker_init(w));
    pid_t chip0;
    CHECK_OK(strata_worker_child_pid(w, 0, &chip0));
    struct rlimit none = {3, 3};   /* chip child 0 can open no new file */
    CHECK(prlimit(chip0, RLIMIT_NOFILE, &none, NULL) == 0);
    strata_handle late = STRATA_HANDLE_INVALID;
    CHECK_STATUS(strata_worker_register_chip_symbol(w, STRATA_TEST_LATE_SO, "strata_test_late_callable", &late),
                 STRATA_ENOENT);
    char who[64];
    snprintf(who, sizeof who, "chip child 0 (device 10, pid %d)", (int)chip0);
    CHECK_ERROR_HAS(who);
    CHECK(late != STRATA_HANDLE_INVALID);
    strata_chip_callable c = {"add", add_chip_orch, add_kernels, 1};
    strata_handle add;
    CHECK_OK(strata_worker_register_chip(w, &c, &add));
    uint64_t *x;
    strata_tensor t = host_u64(w, 1, &x);
    strata_tag tag = STRATA_INOUT;
    strata_task_args args = {&t, &tag, 1, NULL, 0};
    plan p = {late, 0};
    CHECK_STATUS(strata_worker_run(w, run_one, &p, &args, NULL), STRATA_ENOENT);
    CHECK_ERROR_HAS("could not be registered in this child");
    p.chip = 1;
    CHECK_OK(strata_worker_run(w, run_one, &p, &args, NULL));   /* +1000 on chip 1 */
    p = (plan){add, 0};
    CHECK_OK(strata_worker_run(w, run_one, &p, &args, NULL));   /* +1 on chip 0: handles line up */
    CHECK_EQ_U64(x[0], 1001);
    strata_worker_destroy(w);
}

TEST_MAIN(CASE(after_init_reaches_live_children), CASE(late_object_refused_then_symbol),
          CASE(registration_refused_by_one_child))
