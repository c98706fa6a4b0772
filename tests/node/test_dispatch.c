/* node.dispatch: tasks across chip and SUB children: dependencies by tags across
 * processes, chip-resident memory, many tasks per run, orchestration errors, and
 * the parent's death. */
#include "node_util.h"


static int mul_sub(const strata_task_args *a, void *ctx)
{
    (void)ctx;
    u64_of(&a->tensors[0])[0] *= a->scalars[0];
    return 0;
}

typedef struct fixture {
    strata_worker *w;
    strata_handle  add, sum, mul;
} fixture;

static fixture setup(uint32_t nchips, uint32_t nsubs)
{
    fixture f;
    f.w = node_worker(nchips, nsubs, STRATA_ON_DEATH_RESTART, &f.add);
    CHECK_OK(strata_worker_register_sub(f.w, sum_sub, NULL, &f.sum));
    CHECK_OK(strata_worker_register_sub(f.w, mul_sub, NULL, &f.mul));
    CHECK_OK(strata_worker_init(f.w));
    return f;
}

typedef struct two_chips {
    fixture      *f;
    strata_tensor a, b, out;
    uint64_t      ka, kb;
} two_chips;

/* a += ka on chip 0, b += kb on chip 1, then out = a + b on a SUB child. */
static int two_chips_and_sum(strata_orch *o, const strata_task_args *args, const strata_call_config *cfg, void *ctx)
{
    (void)args;
    (void)cfg;
    two_chips *s = ctx;
    strata_tag inout = STRATA_INOUT;
    int rc = strata_submit_next_level(o, s->f->add, &(strata_task_args){&s->a, &inout, 1, &s->ka, 1}, NULL, 0);
    if (rc == 0)
        rc = strata_submit_next_level(o, s->f->add, &(strata_task_args){&s->b, &inout, 1, &s->kb, 1}, NULL, 1);
    strata_tensor t[3] = {s->a, s->b, s->out};
    strata_tag tags[3] = {STRATA_INPUT, STRATA_INPUT, STRATA_OUTPUT};
    if (rc == 0)
        rc = strata_submit_sub(o, s->f->sum, &(strata_task_args){t, tags, 3, NULL, 0});
    return rc;
}

TEST_CASE(two_chips_then_sub)
{
    fixture f = setup(2, 1);
    uint64_t *a, *b, *out;
    two_chips s = {&f, host_u64(f.w, 8, &a), host_u64(f.w, 8, &b), host_u64(f.w, 1, &out), 3, 5};
    for (int run = 1; run <= 200; run++) {
        CHECK_OK(strata_worker_run(f.w, two_chips_and_sum, &s, NULL, NULL));
        CHECK_EQ_U64(out[0], (uint64_t)run * 8);   /* the SUB saw both chips' results */
    }
    CHECK_EQ_U64(a[7], 600);
    CHECK_EQ_U64(b[7], 1000);
    strata_worker_destroy(f.w);
}

/* x = ((0 + 1) * 10 + 2) * 10: each step on a different child, ordered only by
   the INOUT tags on one host tensor. */
static int chain_across(strata_orch *o, const strata_task_args *args, const strata_call_config *cfg, void *ctx)
{
    (void)cfg;
    fixture *f = ctx;
    strata_tag inout = STRATA_INOUT;
    uint64_t one = 1, two = 2, ten = 10;
    strata_task_args x1 = {args->tensors, &inout, 1, &one, 1}, x2 = {args->tensors, &inout, 1, &two, 1},
                     x10 = {args->tensors, &inout, 1, &ten, 1};
    int rc = strata_submit_next_level(o, f->add, &x1, NULL, 0);
    if (rc == 0)
        rc = strata_submit_sub(o, f->mul, &x10);
    if (rc == 0)
        rc = strata_submit_next_level(o, f->add, &x2, NULL, 1);
    if (rc == 0)
        rc = strata_submit_sub(o, f->mul, &x10);
    return rc;
}

TEST_CASE(dependencies_across_processes)
{
    fixture f = setup(2, 2);
    uint64_t *x;
    strata_tensor t = host_u64(f.w, 1, &x);
    strata_tag tag = STRATA_INOUT;
    for (int run = 0; run < 100; run++) {
        x[0] = 0;
        CHECK_OK(strata_worker_run(f.w, chain_across, &f, &(strata_task_args){&t, &tag, 1, NULL, 0}, NULL));
        CHECK_EQ_U64(x[0], 120);
    }
    strata_worker_destroy(f.w);
}

/* 256 independent tasks over two chips in one run. */
static int many_tasks(strata_orch *o, const strata_task_args *args, const strata_call_config *cfg, void *ctx)
{
    (void)cfg;
    fixture *f = ctx;
    strata_tag inout = STRATA_INOUT;
    for (uint32_t i = 0; i < 256; i++) {
        strata_tensor t = args->tensors[0];
        t.offset = i;
        t.shape[0] = 1;
        uint64_t k = i + 1;
        int rc = strata_submit_next_level(o, f->add, &(strata_task_args){&t, &inout, 1, &k, 1}, NULL, (int)(i % 2));
        if (rc)
            return rc;
    }
    return 0;
}

TEST_CASE(many_tasks_two_chips)
{
    fixture f = setup(2, 0);
    uint64_t *x;
    strata_tensor t = host_u64(f.w, 256, &x);
    strata_tag tag = STRATA_INOUT;
    for (int run = 1; run <= 10; run++)
        CHECK_OK(strata_worker_run(f.w, many_tasks, &f, &(strata_task_args){&t, &tag, 1, NULL, 0}, NULL));
    for (uint32_t i = 0; i < 256; i++)
        CHECK_EQ_U64(x[i], 10 * (i + 1));
    strata_run_stats st;
    CHECK_OK(strata_worker_stats(f.w, &st));
    CHECK_EQ_U64(st.tasks_completed, 2560);
    strata_worker_destroy(f.w);
}

/* fold: t[0] = t[0] * 31 + scalars[0], an order-revealing update */
static int fold_kernel(const strata_task_args *a)
{
    uint64_t *p = u64_of(&a->tensors[0]);
    p[0] = p[0] * 31 + a->scalars[0];
    return 0;
}

static int fold_chip_orch(strata_chip_orch *o, const strata_task_args *args, const strata_call_config *cfg)
{
    (void)cfg;
    strata_tag tag = STRATA_INOUT;
    return strata_chip_submit(o, 0, &(strata_task_args){args->tensors, &tag, 1, args->scalars, 1});
}

typedef struct backlog {
    fixture      *f;
    strata_handle fold;
    strata_tensor x;     /* x[0]: chip 0's fold, x[1]: chip 1's, x[2], x[3]: a group's */
    uint32_t      n;
} backlog;

/* n NO_DEP tasks on chip 0 (ready at once: a backlog), one on chip 1 every 100,
   and a group on both chips in the middle. */
static int long_backlog(strata_orch *o, const strata_task_args *args, const strata_call_config *cfg, void *ctx)
{
    (void)args;
    (void)cfg;
    backlog *b = ctx;
    strata_tag nodep = STRATA_NO_DEP;
    for (uint32_t i = 0; i < b->n; i++) {
        strata_tensor t = b->x;
        t.offset = 0;
        t.shape[0] = 1;
        uint64_t k = i + 1;
        int rc = strata_submit_next_level(o, b->fold, &(strata_task_args){&t, &nodep, 1, &k, 1}, NULL, 0);
        if (rc == 0 && i % 100 == 0) {
            t.offset = 1;
            rc = strata_submit_next_level(o, b->fold, &(strata_task_args){&t, &nodep, 1, &k, 1}, NULL, 1);
        }
        if (rc == 0 && i == b->n / 2) {
            strata_tensor g0 = b->x, g1 = b->x;
            g0.offset = 2;
            g1.offset = 3;
            g0.shape[0] = g1.shape[0] = 1;
            uint64_t seven = 7;
            strata_task_args members[2] = {{&g0, &nodep, 1, &seven, 1}, {&g1, &nodep, 1, &seven, 1}};
            rc = strata_submit_next_level_group(o, b->fold, members, 2, NULL, (int[]){0, 1});
        }
        if (rc)
            return rc;
    }
    return 0;
}

/* A chip's ready tasks start in the order they became ready, whatever waits for
   the other chips; a long backlog on one chip holds up neither the other chip
   nor a group. */
TEST_CASE(ready_tasks_per_chip_in_order)
{
    fixture f = setup(2, 1);
    backlog b = {.f = &f, .n = 5000};
    strata_chip_callable fold = {"fold", fold_chip_orch, (strata_kernel_entry[]){{0, STRATA_AIV, fold_kernel}}, 1};
    CHECK_OK(strata_worker_register_chip(f.w, &fold, &b.fold));
    uint64_t *x;
    b.x = host_u64(f.w, 4, &x);
    for (int run = 0; run < 2; run++) {
        memset(x, 0, 4 * sizeof x[0]);
        CHECK_OK(strata_worker_run(f.w, long_backlog, &b, NULL, NULL));
        uint64_t want0 = 0, want1 = 0;
        for (uint32_t i = 0; i < b.n; i++) {
            want0 = want0 * 31 + i + 1;
            if (i % 100 == 0)
                want1 = want1 * 31 + i + 1;
        }
        CHECK_EQ_U64(x[0], want0);
        CHECK_EQ_U64(x[1], want1);
        CHECK_EQ_U64(x[2], 7);
        CHECK_EQ_U64(x[3], 7);
    }
    strata_run_stats st;
    CHECK_OK(strata_worker_stats(f.w, &st));
    CHECK_EQ_U64(st.tasks_completed, 2 * (b.n + b.n / 100 + 1));   /* a group is one task */
    strata_worker_destroy(f.w);
}

/* Weights uploaded once into chip 1's memory, used in place by many runs. */
typedef struct resident {
    fixture      *f;
    strata_tensor w;
    int           chip;
} resident;

static int use_resident(strata_orch *o, const strata_task_args *args, const strata_call_config *cfg, void *ctx)
{
    (void)args;
    (void)cfg;
    resident *r = ctx;
    strata_tag inout = STRATA_INOUT;
    return strata_submit_next_level(o, r->f->add, &(strata_task_args){&r->w, &inout, 1, NULL, 0}, NULL, r->chip);
}

TEST_CASE(chip_resident_memory)
{
    fixture f = setup(2, 1);
    strata_buffer b;
    CHECK_OK(strata_worker_malloc(f.w, 1, 64 * 8, &b));
    CHECK(b.worker == 1);
    uint64_t weights[64];
    for (int i = 0; i < 64; i++)
        weights[i] = (uint64_t)i * 100;
    CHECK_OK(strata_worker_copy_to(f.w, b, 0, weights, sizeof weights));
    uint64_t shape[1] = {64};
    resident r = {&f, strata_tensor_make((void *)(uintptr_t)b.addr, STRATA_U64, 1, shape), 1};
    for (int run = 0; run < 50; run++)
        CHECK_OK(strata_worker_run(f.w, use_resident, &r, NULL, NULL));
    CHECK_OK(strata_worker_copy_from(f.w, weights, b, 0, sizeof weights));
    for (int i = 0; i < 64; i++)
        CHECK_EQ_U64(weights[i], (uint64_t)i * 100 + 50);
    /* another chip cannot see it */
    r.chip = 0;
    CHECK_STATUS(strata_worker_run(f.w, use_resident, &r, NULL, NULL), STRATA_EINVAL);
    CHECK_ERROR_HAS("lies in the memory of chip worker 1, which the target chip cannot see");
    CHECK_STATUS(strata_worker_malloc(f.w, 2, 64, &b), STRATA_ENOENT);   /* worker 2 is the SUB child */
    CHECK_ERROR_HAS("worker 2 is not a chip");
    /* when chip 1 dies, its buffers are gone */
    r.chip = 1;
    pid_t victim;
    CHECK_OK(strata_worker_child_pid(f.w, 1, &victim));
    CHECK(kill(victim, SIGKILL) == 0);
    CHECK(wait_gone(victim));
    CHECK(known_dead(f.w, 1));
    CHECK_STATUS(strata_worker_run(f.w, use_resident, &r, NULL, NULL), STRATA_ECHILD);
    /* a task that names it is refused as copies are: lost with child 1 (its pid) */
    char text[96];
    snprintf(text, sizeof text, "chip worker 1, whose child (pid %d) died and took its buffers with it", (int)victim);
    CHECK_STATUS(strata_worker_run(f.w, use_resident, &r, NULL, NULL), STRATA_ENOENT);
    CHECK_ERROR_HAS("strata_submit_next_level: tensor 0: no live chip buffer starts at");
    CHECK_ERROR_HAS(text);
    strata_buffer gone = {r.w.addr, 64 * 8, 1};
    CHECK_STATUS(strata_worker_copy_from(f.w, weights, gone, 0, 8), STRATA_ENOENT);
    CHECK_ERROR_HAS(text);
    CHECK_STATUS(strata_worker_free(f.w, gone), STRATA_ENOENT);
    CHECK_ERROR_HAS(text);
    strata_worker_destroy(f.w);
}

/* An orchestration function that fails after submitting: the run returns its
   status, and the worker stays usable. */
static int submit_then_fail(strata_orch *o, const strata_task_args *args, const strata_call_config *cfg, void *ctx)
{
    (void)cfg;
    fixture *f = ctx;
    strata_tag inout = STRATA_INOUT;
    int rc = strata_submit_next_level(o, f->add, &(strata_task_args){args->tensors, &inout, 1, NULL, 0}, NULL, 0);
    return rc ? rc : STRATA_ENOENT;
}

TEST_CASE(orchestration_error)
{
    fixture f = setup(1, 0);
    uint64_t *x;
    strata_tensor t = host_u64(f.w, 1, &x);
    strata_tag tag = STRATA_INOUT;
    strata_task_args args = {&t, &tag, 1, NULL, 0};
    CHECK_STATUS(strata_worker_run(f.w, submit_then_fail, &f, &args, NULL), STRATA_ENOENT);
    CHECK_ERROR_HAS("the orchestration function returned -3 (STRATA_ENOENT)");
    CHECK_EQ_U64(strata_worker_state(f.w), STRATA_STATE_READY);
    CHECK(x[0] <= 1);   /* started or cancelled, never run twice */
    x[0] = 0;
    resident r = {&f, t, 0};
    CHECK_OK(strata_worker_run(f.w, use_resident, &r, NULL, NULL));
    CHECK_EQ_U64(x[0], 1);
    strata_worker_destroy(f.w);
}

/* The parent is SIGKILLed: its children go too, promptly. */
TEST_CASE(parent_killed_children_exit)
{
    int fds[2];
    CHECK(pipe(fds) == 0);
    pid_t parent = fork();
    CHECK(parent >= 0);
    if (parent == 0) {
        close(fds[0]);
        strata_handle h;
        strata_worker *w = node_worker(2, 2, STRATA_ON_DEATH_RESTART, &h);
        if (strata_worker_init(w) != STRATA_OK)
            _exit(1);
        pid_t pids[4];
        for (int i = 0; i < 4; i++)
            if (strata_worker_child_pid(w, i, &pids[i]) != STRATA_OK)
                _exit(2);
        if (write(fds[1], pids, sizeof pids) != (ssize_t)sizeof pids)
            _exit(3);
        for (;;)
            pause();
    }
    close(fds[1]);
    pid_t pids[4];
    ssize_t got = read(fds[0], pids, sizeof pids);
    close(fds[0]);
    CHECK(got == (ssize_t)sizeof pids);
    CHECK(kill(parent, SIGKILL) == 0);
    int status;
    CHECK(waitpid(parent, &status, 0) == parent);
    uint64_t t0 = test_now_ns();
    for (int i = 0; i < 4; i++) {
        /* goal: within a second; bound 10 s */
        uint64_t deadline = t0 + 10000000000ull;
        while (process_alive(pids[i]) && test_now_ns() < deadline)
            sleep_ms(2);
        CHECK(!process_alive(pids[i]));
    }
}

TEST_MAIN(CASE(two_chips_then_sub), CASE(dependencies_across_processes), CASE(many_tasks_two_chips),
          CASE(ready_tasks_per_chip_in_order),
          CASE(chip_resident_memory), CASE(orchestration_error), CASE(parent_killed_children_exit))
