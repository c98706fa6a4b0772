/* fault.*: every failure path of a worker's life, SQLite's way. Linked with the
 * test build of the library (strata_faulty), where every allocation and every
 * call of the system-call table (core/sys.h) is a fault point (core/fault.h).
 *
 * Each case runs its scenario (create, register, init, several runs with chip
 * tasks, SUB tasks and groups, chip memory, close, destroy) with the fault at
 * point N = 1, 2, 3 ... until a round injects nothing, in the application or
 * only in the worker's spawner and children, failing once or every time from N
 * on. Each round checks: every call returns OK or an expected status whose
 * message says what failed; a worker whose init failed is NEW, one whose run
 * failed once runs again; close returns OK; and nothing is left (no child
 * process, no zombie, no descriptor). A failing round prints N and the point,
 * so that it can be replayed alone: fault_<case> with STRATA_FAULT_ROUND=N. */
#include "node_util.h"

#include <errno.h>

#include "core/fault.h"

/* ---- the scenario ---- */

typedef struct round_ctx {
    unsigned   n;            /* the round: fault at point n */
    bool       persistent;
    strata_handle chip, sub;
    strata_tensor t[4];
    uint64_t  *data[4];
} round_ctx;

/* Whether rc is allowed where a fault may have been injected, and its message
   says what failed. */
static void check_outcome(const round_ctx *r, const char *step, int rc)
{
    const char *m = strata_last_error();
    bool ok = rc == STRATA_OK || (rc == STRATA_ENOMEM && strstr(m, "memory")) ||
              (rc == STRATA_ESYS && strstr(m, "failed: ")) || (rc == STRATA_ECHILD && strstr(m, "pid")) ||
              (rc == STRATA_ETASK && m[0] != '\0') || (rc == STRATA_ECANCELED && m[0] != '\0');
    if (!ok)
        test_fail(__FILE__, __LINE__, "round %u%s: %s returned %s with message \"%s\"", r->n,
                  r->persistent ? " (persistent)" : "", step, strata_status_name(rc), m);
}

static int node_orch(strata_orch *o, const strata_task_args *args, const strata_call_config *cfg, void *ctx)
{
    (void)args;
    (void)cfg;
    round_ctx *r = ctx;
    strata_tag inout = STRATA_INOUT, in_out[3] = {STRATA_INPUT, STRATA_INPUT, STRATA_OUTPUT};
    int rc = strata_submit_next_level(o, r->chip, &(strata_task_args){&r->t[0], &inout, 1, NULL, 0}, NULL, 0);
    if (rc == 0)
        rc = strata_submit_next_level(o, r->chip, &(strata_task_args){&r->t[1], &inout, 1, NULL, 0}, NULL, 1);
    strata_task_args members[2] = {{&r->t[0], &inout, 1, NULL, 0}, {&r->t[1], &inout, 1, NULL, 0}};
    if (rc == 0)
        rc = strata_submit_next_level_group(o, r->chip, members, 2, NULL, (int[]){0, 1});
    strata_tensor sum_in[3] = {r->t[0], r->t[1], r->t[2]};
    if (rc == 0)
        rc = strata_submit_sub(o, r->sub, &(strata_task_args){sum_in, in_out, 3, NULL, 0});
    strata_task_args subs[2] = {{&r->t[3], &inout, 1, NULL, 0}, {&r->t[2], &inout, 1, NULL, 0}};
    if (rc == 0)
        rc = strata_submit_sub_group(o, r->sub, subs, 2);
    return rc;
}

/* One round of the level-3 scenario. Returns after close and destroy. */
static void l3_round(round_ctx *r)
{
    static int ids[2] = {5, 6};
    strata_worker_config cfg;
    strata_worker_config_init(&cfg, 3);
    cfg.device_ids = ids;
    cfg.ndevices = 2;
    cfg.num_sub_workers = 2;
    cfg.shared_heap_bytes = 1 << 20;
    cfg.device_memory_bytes = 8 << 20;
    cfg.close_grace_ms = 200;
    cfg.init_timeout_ms = 5000;
    cfg.node_task_window = 16;
    strata_worker *w = NULL;
    int rc = strata_worker_create(&cfg, &w);
    check_outcome(r, "strata_worker_create", rc);
    if (rc)
        return;
    strata_chip_callable c = {"add", add_chip_orch, add_kernels, 1};
    rc = strata_worker_register_chip(w, &c, &r->chip);
    check_outcome(r, "strata_worker_register_chip", rc);
    if (rc == STRATA_OK) {
        rc = strata_worker_register_sub(w, sum_sub, NULL, &r->sub);
        check_outcome(r, "strata_worker_register_sub", rc);
    }
    for (int i = 0; rc == STRATA_OK && i < 4; i++) {
        void *p;
        rc = strata_worker_host_alloc(w, 64, &p);
        check_outcome(r, "strata_worker_host_alloc", rc);
        if (rc == STRATA_OK) {
            memset(p, 0, 64);
            r->data[i] = p;
            r->t[i] = strata_tensor_make(p, STRATA_U64, 1, (uint64_t[]){8});
        }
    }
    if (rc == STRATA_OK) {
        rc = strata_worker_init(w);
        check_outcome(r, "strata_worker_init", rc);
        if (rc)
            CHECK_EQ_U64(strata_worker_state(w), STRATA_STATE_NEW);   /* all or nothing */
    }
    for (int run = 0; rc == STRATA_OK && run < 3; run++) {
        rc = strata_worker_run(w, node_orch, r, NULL, NULL);
        check_outcome(r, "strata_worker_run", rc);
        if (rc && !r->persistent) {
            /* the fault happened once: the worker runs again (a child that
               died of it is replaced first, or reported then replaced) */
            for (int again = 0; again < 3 && rc; again++)
                rc = strata_worker_run(w, node_orch, r, NULL, NULL);
            CHECK_OK(rc);
        }
    }
    if (rc == STRATA_OK) {
        strata_buffer b;
        rc = strata_worker_malloc(w, 1, 256, &b);
        check_outcome(r, "strata_worker_malloc", rc);
        uint64_t v[32] = {7};
        if (rc == STRATA_OK) {
            /* copies go through the chip's platform: a fault point */
            check_outcome(r, "strata_worker_copy_to", strata_worker_copy_to(w, b, 0, v, sizeof v));
            check_outcome(r, "strata_worker_copy_from", strata_worker_copy_from(w, v, b, 0, sizeof v));
            CHECK_OK(strata_worker_free(w, b));
        }
    }
    CHECK_OK(strata_worker_close(w));   /* always: whatever happened before */
    CHECK_EQ_U64(strata_worker_state(w), STRATA_STATE_CLOSED);
    strata_worker_destroy(w);
}

/* Level 2: a chip in this process. */
static int chain_orch(strata_chip_orch *o, const strata_task_args *args, const strata_call_config *cfg)
{
    (void)cfg;
    strata_tag tag = STRATA_INOUT;
    uint64_t k = 1;
    int rc = 0;
    for (int i = 0; rc == 0 && i < 20; i++)
        rc = strata_chip_submit(o, 0, &(strata_task_args){args->tensors, &tag, 1, &k, 1});
    strata_tensor tmp;
    if (rc == 0)
        rc = strata_chip_alloc(o, STRATA_U64, 1, (uint64_t[]){64}, &tmp);
    return rc;
}

static void l2_round(round_ctx *r)
{
    strata_worker_config cfg;
    strata_worker_config_init(&cfg, 2);
    cfg.device_memory_bytes = 4 << 20;
    cfg.aiv_cores = 2;
    strata_worker *w = NULL;
    int rc = strata_worker_create(&cfg, &w);
    check_outcome(r, "strata_worker_create", rc);
    if (rc)
        return;
    strata_chip_callable c = {"chain", chain_orch, add_kernels, 1};
    strata_handle h = 0;
    rc = strata_worker_register_chip(w, &c, &h);
    check_outcome(r, "strata_worker_register_chip", rc);
    if (rc == STRATA_OK) {
        rc = strata_worker_init(w);
        check_outcome(r, "strata_worker_init", rc);
        if (rc)
            CHECK_EQ_U64(strata_worker_state(w), STRATA_STATE_NEW);
    }
    strata_buffer b = {0};
    if (rc == STRATA_OK) {
        rc = strata_worker_malloc(w, 0, 64, &b);
        check_outcome(r, "strata_worker_malloc", rc);
    }
    uint64_t v[8] = {0};
    if (rc == STRATA_OK) {
        rc = strata_worker_copy_to(w, b, 0, v, sizeof v);   /* a device copy: a fault point */
        check_outcome(r, "strata_worker_copy_to", rc);
    }
    if (rc == STRATA_OK) {
        rc = strata_worker_copy_from(w, v, b, 0, sizeof v);
        check_outcome(r, "strata_worker_copy_from", rc);
    }
    for (int run = 0; rc == STRATA_OK && run < 3; run++) {
        strata_tensor t = strata_tensor_make((void *)(uintptr_t)b.addr, STRATA_U64, 1, (uint64_t[]){8});
        strata_tag tag = STRATA_INOUT;
        rc = strata_worker_run_chip(w, h, &(strata_task_args){&t, &tag, 1, NULL, 0}, NULL);
        check_outcome(r, "strata_worker_run_chip", rc);
        if (rc && !r->persistent)
            rc = strata_worker_run_chip(w, h, &(strata_task_args){&t, &tag, 1, NULL, 0}, NULL);
        if (rc && !r->persistent)
            CHECK_OK(rc);
    }
    CHECK_OK(strata_worker_close(w));
    strata_worker_destroy(w);
}

/* ---- the loop ---- */

static void loop(const char *name, void (*scenario)(round_ctx *), bool persistent, bool in_children)
{
    const char *only = getenv("STRATA_FAULT_ROUND");
    unsigned first = only ? (unsigned)atoi(only) : 1, rounds = 0;
    int fds = open_fds();
    for (unsigned n = first; n < 100000; n++) {
        round_ctx r = {.n = n, .persistent = persistent};
        strata__fault_arm(n, persistent, in_children);
        scenario(&r);
        char point[64];
        unsigned injected = strata__fault_disarm(point, sizeof point);
        rounds++;
        /* nothing left behind by this round */
        int st;
        errno = 0;
        if (!(waitpid(-1, &st, WNOHANG) == -1 && errno == ECHILD))
            test_fail(__FILE__, __LINE__, "round %u (%s): a child process was left", n, point);
        if (zombie_children() != 0 || open_fds() != fds)
            test_fail(__FILE__, __LINE__, "round %u (%s): %d descriptors open, %d before; %d zombies", n, point,
                      open_fds(), fds, zombie_children());
        if (injected == 0 || only)
            break;
    }
    printf("%s: %u rounds (%u fault points reached)%s\n", name, rounds, rounds - 1,
           persistent ? ", persistent" : "");
}

TEST_CASE(l3_application)
{
    loop("l3_application", l3_round, false, false);
}

TEST_CASE(l3_application_persistent)
{
    loop("l3_application_persistent", l3_round, true, false);
}

TEST_CASE(l3_children)
{
    loop("l3_children", l3_round, false, true);
}

TEST_CASE(l2)
{
    loop("l2", l2_round, false, false);
}

TEST_CASE(l2_persistent)
{
    loop("l2_persistent", l2_round, true, false);
}

TEST_MAIN(CASE(l3_application), CASE(l3_application_persistent), CASE(l3_children), CASE(l2), CASE(l2_persistent))
