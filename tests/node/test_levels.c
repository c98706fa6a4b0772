/* node.levels: workers of workers (L4 to L6). A level-4 worker's children are
 * level-3 workers, each initialised in a child process of its own with its own
 * chips and SUB workers below it; tasks are runs of orchestration functions on
 * them. Checked: results through two and three levels, memory allocated on a
 * child worker, refusals, and every lifecycle guarantee through the tree: a
 * grandchild killed mid-task surfaces at the top with its path and is
 * replaced below, a killed level-3 child takes its children with it and is
 * replaced, close tears the tree down, the top's death leaves no descendant,
 * and a thousand runs leave descriptors and mappings flat. */
#include "node_util.h"

#include <pthread.h>

/* Chip kernel: tensors[0][0] = the chip child's pid; scalars[0] == 1: then
   hang until killed. */
static int pid_kernel(const strata_task_args *a)
{
    u64_of(&a->tensors[0])[0] = (uint64_t)getpid();
    if (a->scalars[0] == 1)
        for (;;)
            sleep_ms(1000);
    return 0;
}

static int pid_chip_orch(strata_chip_orch *o, const strata_task_args *args, const strata_call_config *cfg)
{
    (void)cfg;
    strata_tag tag = STRATA_INOUT;
    return strata_chip_submit(o, 0, &(strata_task_args){args->tensors, &tag, 1, args->scalars, 1});
}

static const strata_kernel_entry pid_kernels[] = {{0, STRATA_AIV, pid_kernel}};

/* Level-3 orchestration, run in a level-3 worker child: chip callable
   scalars[1] on chip 0 over tensors[0] with scalars[0]; then, when
   scalars[2] is set, SUB function scalars[2] adds tensors[0][0] into
   tensors[1][0] (both the level-4 heap). */
static int l3_orch(strata_orch *o, const strata_task_args *args, const strata_call_config *cfg, void *ctx)
{
    (void)cfg;
    (void)ctx;
    strata_tag inout = STRATA_INOUT;
    int rc = strata_submit_next_level(o, (strata_handle)args->scalars[1],
                                      &(strata_task_args){args->tensors, &inout, 1, args->scalars, 1}, NULL, 0);
    if (rc == STRATA_OK && args->nscalars > 2 && args->scalars[2]) {
        strata_tag tags[2] = {STRATA_INPUT, STRATA_INOUT};
        strata_tensor ts[2] = {args->tensors[0], args->tensors[1]};
        rc = strata_submit_sub(o, (strata_handle)args->scalars[2], &(strata_task_args){ts, tags, 2, NULL, 0});
    }
    return rc;
}

/* SUB: tensors[1][0] += tensors[0][0] */
static int accumulate_sub(const strata_task_args *a, void *ctx)
{
    (void)ctx;
    u64_of(&a->tensors[1])[0] += u64_of(&a->tensors[0])[0];
    return 0;
}

/* Handles every level-3 worker of these tests registers, in this order. */
enum { H3_ADD = 1, H3_PID = 2, H3_ACC = 3 };

static strata_worker *l3_worker(void)
{
    strata_handle h;
    strata_worker *w = node_worker(1, 1, STRATA_ON_DEATH_RESTART, &h);
    CHECK_EQ_U64(h, H3_ADD);
    strata_chip_callable pid = {"pid", pid_chip_orch, pid_kernels, 1};
    CHECK_OK(strata_worker_register_chip(w, &pid, &h));
    CHECK_EQ_U64(h, H3_PID);
    CHECK_OK(strata_worker_register_sub(w, accumulate_sub, NULL, &h));
    CHECK_EQ_U64(h, H3_ACC);
    return w;
}

static strata_worker *upper_worker(int level)
{
    strata_worker_config cfg;
    strata_worker_config_init(&cfg, level);
    cfg.shared_heap_bytes = 16 << 20;
    cfg.close_grace_ms = 500;
    strata_worker *w;
    CHECK_OK(strata_worker_create(&cfg, &w));
    return w;
}

/* A level-4 worker over n level-3 workers (ids 0..n-1), not initialised; its
   orchestration function for the level-3 workers as *orch. */
static strata_worker *l4_tree(int n, strata_handle *orch)
{
    strata_worker *w4 = upper_worker(4);
    for (int i = 0; i < n; i++) {
        int id = -1;
        CHECK_OK(strata_worker_add_worker(w4, l3_worker(), &id));
        CHECK_EQ_U64(id, i);
    }
    CHECK_OK(strata_worker_register_orch(w4, l3_orch, NULL, orch));
    return w4;
}

/* Level-4 orchestration: for each step, a task on worker step.worker. */
typedef struct step {
    int      worker;
    uint64_t scalars[3];   /* add, chip handle, SUB handle (0: none) */
} step;

typedef struct job {
    strata_handle orch;
    strata_tensor x, acc;
    step          steps[8];
    int           nsteps;
} job;

static int l4_orch(strata_orch *o, const strata_task_args *args, const strata_call_config *cfg, void *ctx)
{
    (void)args;
    (void)cfg;
    job *j = ctx;
    for (int s = 0; s < j->nsteps; s++) {
        strata_tensor ts[2] = {j->x, j->acc};
        strata_tag tags[2] = {STRATA_INOUT, STRATA_INOUT};
        int rc = strata_submit_next_level(o, j->orch, &(strata_task_args){ts, tags, 2, j->steps[s].scalars, 3},
                                          NULL, j->steps[s].worker);
        if (rc != STRATA_OK)
            return rc;
    }
    return STRATA_OK;
}

/* Every descendant of process root, into pids (at most max); their count. */
static int descendants(pid_t root, pid_t *pids, int max)
{
    int n = 0;
    pids[n++] = root;
    for (int i = 0; i < n; i++) {
        DIR *d = opendir("/proc");
        for (struct dirent *e; d && (e = readdir(d));) {
            char state;
            pid_t ppid, pid = (pid_t)atoi(e->d_name);
            if (pid > 0 && proc_stat(pid, &state, &ppid) && ppid == pids[i] && state != 'Z' && n < max)
                pids[n++] = pid;
        }
        if (d)
            closedir(d);
    }
    for (int i = 1; i < n; i++)
        pids[i - 1] = pids[i];
    return n - 1;
}

TEST_CASE(orchestration_runs_on_level3_children)
{
    strata_handle orch;
    strata_worker *w4 = l4_tree(2, &orch);
    uint64_t *x, *acc;
    job j = {.orch = orch, .x = host_u64(w4, 8, &x), .acc = host_u64(w4, 1, &acc), .nsteps = 3};
    j.steps[0] = (step){0, {1, H3_ADD, H3_ACC}};
    j.steps[1] = (step){1, {10, H3_ADD, H3_ACC}};
    j.steps[2] = (step){0, {100, H3_ADD, 0}};
    CHECK_OK(strata_worker_init(w4));
    CHECK_EQ_U64(strata_worker_state(w4), STRATA_STATE_READY);
    for (int run = 1; run <= 3; run++) {
        CHECK_OK(strata_worker_run(w4, l4_orch, &j, NULL, NULL));
        for (int i = 0; i < 8; i++)
            CHECK_EQ_U64(x[i], 111u * run);
    }
    /* each run: acc += x[0] after the first step, then after the second */
    CHECK_EQ_U64(acc[0], (1 + 11) + (112 + 122) + (223 + 233));
    /* the tree: top -> spawner -> level-3 child -> its spawner -> chip, SUB */
    pid_t l3;
    CHECK_OK(strata_worker_child_pid(w4, 0, &l3));
    pid_t below[16];
    CHECK_EQ_U64(descendants(l3, below, 16), 3);
    strata_run_stats st;
    CHECK_OK(strata_worker_stats(w4, &st));
    CHECK_EQ_U64(st.tasks_completed, 9);
    CHECK_OK(strata_worker_close(w4));
    strata_worker_destroy(w4);
}

TEST_CASE(memory_of_a_child_worker)
{
    strata_handle orch;
    strata_worker *w4 = l4_tree(2, &orch);
    CHECK_OK(strata_worker_init(w4));
    strata_buffer b;
    CHECK_OK(strata_worker_malloc(w4, 1, 64, &b));
    CHECK_EQ_U64(b.worker, 1);
    uint64_t in[8] = {1, 2, 3, 4, 5, 6, 7, 8}, out[8];
    CHECK_OK(strata_worker_copy_to(w4, b, 0, in, sizeof in));
    uint64_t *acc;
    uint64_t shape[1] = {8};
    job j = {.orch = orch, .acc = host_u64(w4, 1, &acc), .nsteps = 1};
    j.x = strata_tensor_make((void *)(uintptr_t)b.addr, STRATA_U64, 1, shape);
    j.steps[0] = (step){1, {5, H3_ADD, H3_ACC}};
    CHECK_OK(strata_worker_run(w4, l4_orch, &j, NULL, NULL));
    CHECK_OK(strata_worker_copy_from(w4, out, b, 0, sizeof out));
    for (int i = 0; i < 8; i++)
        CHECK_EQ_U64(out[i], in[i] + 5);
    CHECK_EQ_U64(acc[0], 6);
    /* another worker cannot see it */
    j.steps[0].worker = 0;
    CHECK_STATUS(strata_worker_run(w4, l4_orch, &j, NULL, NULL), STRATA_EINVAL);
    CHECK_ERROR_HAS("lies in the memory of worker 1, which the target worker cannot see");
    CHECK_OK(strata_worker_free(w4, b));
    CHECK_STATUS(strata_worker_free(w4, b), STRATA_ENOENT);
    CHECK_STATUS(strata_worker_malloc(w4, 2, 64, &b), STRATA_ENOENT);
    CHECK_ERROR_HAS("not a worker of this level-4 worker");
    CHECK_OK(strata_worker_close(w4));
    strata_worker_destroy(w4);
}

/* Level-5 orchestration: task scalars[0] (the level-4 orchestration's handle
   on the level-4 worker) on level-4 worker 0. */
static int l5_orch(strata_orch *o, const strata_task_args *args, const strata_call_config *cfg, void *ctx)
{
    (void)args;
    (void)cfg;
    job *j = ctx;
    strata_tag tag = STRATA_INOUT;
    return strata_submit_next_level(o, j->orch, &(strata_task_args){&j->x, &tag, 1, NULL, 0}, NULL, 0);
}

/* Level-4 orchestration in the level-4 child: steps on its level-3 workers,
   over the tensor it was given (which lies in the level-5 heap). */
static int l4_in_child_orch(strata_orch *o, const strata_task_args *args, const strata_call_config *cfg, void *ctx)
{
    (void)cfg;
    strata_handle l3 = (strata_handle)(uintptr_t)ctx;
    strata_tag tag = STRATA_INOUT;
    for (int w = 0; w < 2; w++) {
        uint64_t s[3] = {(uint64_t)(w + 1), H3_ADD, 0};
        int rc = strata_submit_next_level(o, l3, &(strata_task_args){args->tensors, &tag, 1, s, 3}, NULL, w);
        if (rc != STRATA_OK)
            return rc;
    }
    return STRATA_OK;
}

TEST_CASE(three_levels)
{
    strata_worker *w5 = upper_worker(5);
    strata_worker *w4 = upper_worker(4);
    int id;
    CHECK_OK(strata_worker_add_worker(w5, w4, &id));
    CHECK_EQ_U64(id, 0);
    /* configured after it was added: the tree starts at w5's init */
    strata_handle l3;
    for (int i = 0; i < 2; i++)
        CHECK_OK(strata_worker_add_worker(w4, l3_worker(), &id));
    CHECK_OK(strata_worker_register_orch(w4, l3_orch, NULL, &l3));
    strata_handle l4;
    CHECK_OK(strata_worker_register_orch(w5, l4_in_child_orch, (void *)(uintptr_t)l3, &l4));
    uint64_t *x;
    job j = {.orch = l4, .x = host_u64(w5, 4, &x)};
    CHECK_OK(strata_worker_init(w5));
    for (int run = 1; run <= 3; run++) {
        CHECK_OK(strata_worker_run(w5, l5_orch, &j, NULL, NULL));
        for (int i = 0; i < 4; i++)
            CHECK_EQ_U64(x[i], 3u * run);
    }
    /* top -> spawner -> L4 child -> spawner -> 2 x (L3 child -> spawner -> chip, SUB) */
    pid_t l4pid, below[32];
    CHECK_OK(strata_worker_child_pid(w5, 0, &l4pid));
    CHECK_EQ_U64(descendants(l4pid, below, 32), 1 + 2 * 4);
    CHECK_OK(strata_worker_close(w5));
    for (int i = 0; i < 9; i++)
        CHECK(wait_gone(below[i]));
    strata_worker_destroy(w5);
}

TEST_CASE(refusals_say_why)
{
    strata_worker *w4 = upper_worker(4), *w3 = l3_worker(), *other = l3_worker();
    strata_worker *w2;
    strata_worker_config c2;
    strata_worker_config_init(&c2, 2);
    CHECK_OK(strata_worker_create(&c2, &w2));
    int id;
    strata_handle h;
    CHECK_STATUS(strata_worker_add_worker(w4, w2, &id), STRATA_EINVAL);
    CHECK_ERROR_HAS("level-4 worker's children are level 3");
    CHECK_STATUS(strata_worker_add_worker(w3, other, &id), STRATA_EINVAL);
    CHECK_ERROR_HAS("workers are added to level 4 and up");
    CHECK_STATUS(strata_worker_register_orch(w3, l3_orch, NULL, &h), STRATA_EINVAL);
    CHECK_ERROR_HAS("level 4 and up");
    CHECK_STATUS(strata_worker_add_worker(w4, NULL, &id), STRATA_EINVAL);
    CHECK_OK(strata_worker_add_worker(w4, w3, &id));
    CHECK_STATUS(strata_worker_add_worker(w4, w3, &id), STRATA_EINVAL);
    CHECK_ERROR_HAS("added to a level-4 worker already");
    CHECK_STATUS(strata_worker_init(w3), STRATA_ESTATE);
    CHECK_ERROR_HAS("that worker's init starts it");
    CHECK_STATUS(strata_worker_close(w3), STRATA_ESTATE);
    CHECK_ERROR_HAS("it closes with that worker");
    strata_worker_destroy(w3);   /* does nothing: w4 owns it */
    CHECK_OK(strata_worker_register_orch(w4, l3_orch, NULL, &h));

    strata_worker_config c4;
    strata_worker_config_init(&c4, 4);
    int ids[1] = {0};
    c4.device_ids = ids;
    c4.ndevices = 1;
    strata_worker *bad;
    CHECK_STATUS(strata_worker_create(&c4, &bad), STRATA_EINVAL);
    CHECK_ERROR_HAS("chips belong to level 3");

    CHECK_OK(strata_worker_init(w4));
    CHECK_STATUS(strata_worker_add_worker(w4, other, &id), STRATA_ESTATE);
    CHECK_ERROR_HAS("workers are added before init");
    CHECK_STATUS(strata_worker_register_sub(w3, accumulate_sub, NULL, &h), STRATA_ESTATE);
    CHECK_ERROR_HAS("do this before that worker's init");
    /* a chip callable's handle, a worker that does not exist */
    uint64_t *x, *acc;
    job j = {.orch = 99, .x = host_u64(w4, 8, &x), .acc = host_u64(w4, 1, &acc), .nsteps = 1};
    j.steps[0] = (step){0, {1, H3_ADD, 0}};
    CHECK_STATUS(strata_worker_run(w4, l4_orch, &j, NULL, NULL), STRATA_ENOENT);
    CHECK_ERROR_HAS("handle 99 is not an orchestration function");
    j.orch = h;
    j.steps[0].worker = 1;
    CHECK_STATUS(strata_worker_run(w4, l4_orch, &j, NULL, NULL), STRATA_ENOENT);
    CHECK_ERROR_HAS("worker 1 is not a worker of this level-4 worker");
    /* a failure two levels down comes back with its path */
    j.steps[0] = (step){0, {1, 77, 0}};
    CHECK_STATUS(strata_worker_run(w4, l4_orch, &j, NULL, NULL), STRATA_ENOENT);
    CHECK_ERROR_HAS("level-3 worker child 0 (pid");
    CHECK_ERROR_HAS("handle 77 is not a chip callable");
    j.steps[0] = (step){0, {1, H3_ADD, 0}};
    CHECK_OK(strata_worker_run(w4, l4_orch, &j, NULL, NULL));
    CHECK_EQ_U64(x[0], 1);
    CHECK_OK(strata_worker_close(w4));
    strata_worker_destroy(w4);
    strata_worker_destroy(other);
    strata_worker_destroy(w2);
}

/* Kill, from another thread, the process whose pid appears in *slot. */
typedef struct killer {
    volatile uint64_t *slot;
    pthread_t          thread;
} killer;

static void *kill_when_seen(void *arg)
{
    killer *k = arg;
    uint64_t deadline = test_now_ns() + 20000000000ull;
    while (*k->slot == 0 && test_now_ns() < deadline)
        sleep_ms(1);
    if (*k->slot)
        kill((pid_t)*k->slot, SIGKILL);
    return NULL;
}

TEST_CASE(grandchild_killed_mid_task)
{
    strata_handle orch;
    strata_worker *w4 = l4_tree(1, &orch);
    uint64_t *x, *acc;
    job j = {.orch = orch, .x = host_u64(w4, 1, &x), .acc = host_u64(w4, 1, &acc), .nsteps = 2};
    j.steps[0] = (step){0, {1, H3_PID, 0}};   /* records the chip child's pid, then hangs */
    j.steps[1] = (step){0, {1, H3_ADD, 0}};
    CHECK_OK(strata_worker_init(w4));
    pid_t l3;
    CHECK_OK(strata_worker_child_pid(w4, 0, &l3));
    killer k = {.slot = x};
    CHECK(pthread_create(&k.thread, NULL, kill_when_seen, &k) == 0);
    int rc = strata_worker_run(w4, l4_orch, &j, NULL, NULL);
    pthread_join(k.thread, NULL);
    CHECK_STATUS(rc, STRATA_ECHILD);
    char want[96];
    snprintf(want, sizeof want, "level-3 worker child 0 (pid %d)", (int)l3);
    CHECK_ERROR_HAS(want);
    snprintf(want, sizeof want, "chip child 0 (device 10, pid %d) was killed by signal 9", (int)x[0]);
    CHECK_ERROR_HAS(want);
    CHECK(wait_gone((pid_t)x[0]));
    /* the level-3 worker replaced its chip under its own policy: the level-3
       child itself lives on, and the next runs work */
    pid_t again;
    CHECK_OK(strata_worker_child_pid(w4, 0, &again));
    CHECK_EQ_U64(again, l3);
    j.nsteps = 1;
    j.steps[0] = (step){0, {2, H3_ADD, 0}};
    uint64_t before = x[0];
    int tries = 0;
    while ((rc = strata_worker_run(w4, l4_orch, &j, NULL, NULL)) == STRATA_ECHILD && ++tries < 2)
        ;   /* the level-3 worker reports its chip's death once, in the run after it if not in it */
    CHECK_OK(rc);
    CHECK_EQ_U64(x[0], before + 2);
    CHECK_OK(strata_worker_close(w4));
    strata_worker_destroy(w4);
}

TEST_CASE(level3_child_killed_takes_its_children)
{
    strata_handle orch;
    strata_worker *w4 = l4_tree(2, &orch);
    uint64_t *x, *acc;
    job j = {.orch = orch, .x = host_u64(w4, 1, &x), .acc = host_u64(w4, 1, &acc), .nsteps = 1};
    j.steps[0] = (step){0, {0, H3_PID, 0}};
    CHECK_OK(strata_worker_init(w4));
    CHECK_OK(strata_worker_run(w4, l4_orch, &j, NULL, NULL));
    pid_t chip = (pid_t)x[0], l3, below[16];
    CHECK_OK(strata_worker_child_pid(w4, 0, &l3));
    int nbelow = descendants(l3, below, 16);
    CHECK_EQ_U64(nbelow, 3);
    CHECK(kill(l3, SIGKILL) == 0);
    CHECK(wait_gone(l3));
    for (int i = 0; i < nbelow; i++)
        CHECK(wait_gone(below[i]));
    CHECK(!process_alive(chip));
    CHECK(known_dead(w4, 0));
    /* reported once, naming it; then replaced, and the tree works again */
    CHECK_STATUS(strata_worker_run(w4, l4_orch, &j, NULL, NULL), STRATA_ECHILD);
    char want[96];
    snprintf(want, sizeof want, "level-3 worker child 0 (pid %d) was killed by signal 9", (int)l3);
    CHECK_ERROR_HAS(want);
    j.steps[0] = (step){0, {3, H3_ADD, 0}};
    x[0] = 0;
    CHECK_OK(strata_worker_run(w4, l4_orch, &j, NULL, NULL));
    CHECK_EQ_U64(x[0], 3);
    pid_t l3b;
    CHECK_OK(strata_worker_child_pid(w4, 0, &l3b));
    CHECK(l3b != l3);
    strata_run_stats st;
    CHECK_OK(strata_worker_stats(w4, &st));
    CHECK_EQ_U64(st.child_restarts, 1);
    CHECK_OK(strata_worker_close(w4));
    strata_worker_destroy(w4);
}

TEST_CASE(close_tears_the_tree_down)
{
    strata_handle orch;
    strata_worker *w4 = l4_tree(2, &orch);
    CHECK_OK(strata_worker_init(w4));
    pid_t all[32];
    int n = descendants(getpid(), all, 32);
    CHECK_EQ_U64(n, 1 + 2 * 4);   /* spawner, 2 x (L3 child, its spawner, chip, SUB) */
    uint64_t t0 = test_now_ns();
    CHECK_OK(strata_worker_close(w4));
    uint64_t took = test_now_ns() - t0;
    for (int i = 0; i < n; i++)
        CHECK(!process_alive(all[i]));
    /* polite close of a healthy tree: far below the grace period (500 ms) */
    CHECK(took < 5000000000ull);
    CHECK_OK(strata_worker_close(w4));
    strata_worker_destroy(w4);
}

TEST_CASE(top_killed_leaves_nothing)
{
    int fds[2];
    CHECK(pipe(fds) == 0);
    pid_t top = fork();
    CHECK(top >= 0);
    if (top == 0) {
        close(fds[0]);
        strata_handle orch;
        strata_worker *w4 = l4_tree(2, &orch);
        if (strata_worker_init(w4) != STRATA_OK)
            _exit(1);
        char ok = 1;
        if (write(fds[1], &ok, 1) != 1)
            _exit(2);
        for (;;)
            pause();
    }
    close(fds[1]);
    char ok = 0;
    CHECK(read(fds[0], &ok, 1) == 1 && ok == 1);
    close(fds[0]);
    pid_t all[32];
    int n = descendants(top, all, 32);
    CHECK_EQ_U64(n, 1 + 2 * 4);
    CHECK(kill(top, SIGKILL) == 0);
    int status;
    CHECK(waitpid(top, &status, 0) == top);
    for (int i = 0; i < n; i++)
        CHECK(wait_gone(all[i]));
}

TEST_CASE(thousand_runs_stay_flat)
{
    strata_handle orch;
    strata_worker *w4 = l4_tree(1, &orch);
    uint64_t *x, *acc;
    job j = {.orch = orch, .x = host_u64(w4, 1, &x), .acc = host_u64(w4, 1, &acc), .nsteps = 1};
    j.steps[0] = (step){0, {1, H3_ADD, 0}};
    CHECK_OK(strata_worker_init(w4));
    CHECK_OK(strata_worker_run(w4, l4_orch, &j, NULL, NULL));
    int fds = open_fds();
    pid_t l3, below[16];
    CHECK_OK(strata_worker_child_pid(w4, 0, &l3));
    int nbelow = descendants(getpid(), below, 16);
    int l3_fds = count_fds_named(l3, "");
    for (int run = 0; run < 1000; run++)
        CHECK_OK(strata_worker_run(w4, l4_orch, &j, NULL, NULL));
    CHECK_EQ_U64(x[0], 1001);
    CHECK_EQ_U64(open_fds(), fds);
    CHECK_EQ_U64(count_fds_named(l3, ""), l3_fds);
    CHECK_EQ_U64(descendants(getpid(), below, 16), nbelow);
    CHECK_OK(strata_worker_close(w4));
    strata_worker_destroy(w4);
}

TEST_CASE(init_fails_with_a_grandchild)
{
    strata_handle orch;
    strata_worker *w4 = l4_tree(1, &orch);
    test_setenv("STRATA_FAULT_CHILD_START", "exit:1");   /* worker 1 of each level: the level-3 worker's SUB child */
    CHECK_STATUS(strata_worker_init(w4), STRATA_ECHILD);
    test_setenv("STRATA_FAULT_CHILD_START", NULL);
    CHECK_ERROR_HAS("level-3 worker child 0 (pid");
    CHECK_ERROR_HAS("SUB child 1 (pid");
    CHECK_ERROR_HAS("exited with status 7 while starting");
    CHECK_EQ_U64(strata_worker_state(w4), STRATA_STATE_NEW);
    pid_t left[8];
    CHECK_EQ_U64(descendants(getpid(), left, 8), 0);
    /* the transaction left nothing: init again works */
    CHECK_OK(strata_worker_init(w4));
    uint64_t *x, *acc;
    job j = {.orch = orch, .x = host_u64(w4, 1, &x), .acc = host_u64(w4, 1, &acc), .nsteps = 1};
    j.steps[0] = (step){0, {4, H3_ADD, H3_ACC}};
    CHECK_OK(strata_worker_run(w4, l4_orch, &j, NULL, NULL));
    CHECK_EQ_U64(acc[0], 4);
    CHECK_OK(strata_worker_close(w4));
    strata_worker_destroy(w4);
}

TEST_CASE(stuck_level3_child_bounded_by_the_timeout)
{
    strata_handle orch;
    strata_worker *w4 = l4_tree(1, &orch);
    uint64_t *x, *acc;
    job j = {.orch = orch, .x = host_u64(w4, 1, &x), .acc = host_u64(w4, 1, &acc), .nsteps = 1};
    j.steps[0] = (step){0, {1, H3_PID, 0}};   /* hangs in the kernel */
    CHECK_OK(strata_worker_init(w4));
    pid_t l3, below[16];
    CHECK_OK(strata_worker_child_pid(w4, 0, &l3));
    int nbelow = descendants(l3, below, 16);
    strata_call_config cfg = {.timeout_ms = 300};
    uint64_t t0 = test_now_ns();
    int rc = strata_worker_run(w4, l4_orch, &j, NULL, &cfg);
    uint64_t took = test_now_ns() - t0;
    /* the level-3 worker ends its stuck chip at the task's timeout, before the
       top would kill the whole level-3 child (close_grace_ms later): the
       answer names the chip */
    CHECK_STATUS(rc, STRATA_ETIMEDOUT);
    CHECK_ERROR_HAS("level-3 worker child 0");
    char want[96];
    snprintf(want, sizeof want, "chip child 0 (device 10, pid %d) was killed by Strata", (int)x[0]);
    CHECK_ERROR_HAS(want);
    pid_t same;
    CHECK_OK(strata_worker_child_pid(w4, 0, &same));
    CHECK_EQ_U64(same, l3);
    CHECK(took < 3000000000ull);   /* ten times the timeout */
    CHECK(wait_gone((pid_t)x[0]));
    (void)nbelow;
    uint64_t before = x[0];
    j.steps[0] = (step){0, {2, H3_ADD, 0}};
    int tries = 0;
    while ((rc = strata_worker_run(w4, l4_orch, &j, NULL, NULL)) != STRATA_OK && ++tries < 3)
        ;
    CHECK_OK(rc);
    CHECK_EQ_U64(x[0], before + 2);
    CHECK_OK(strata_worker_close(w4));
    strata_worker_destroy(w4);
}

/* Level-3 orchestration that never returns. */
static int stuck_orch(strata_orch *o, const strata_task_args *args, const strata_call_config *cfg, void *ctx)
{
    (void)o;
    (void)args;
    (void)cfg;
    (void)ctx;
    for (;;)
        sleep_ms(1000);
    return 0;
}

TEST_CASE(stuck_orchestration_in_a_level3_child)
{
    strata_handle orch, stuck;
    strata_worker *w4 = l4_tree(1, &orch);
    CHECK_OK(strata_worker_register_orch(w4, stuck_orch, NULL, &stuck));
    uint64_t *x, *acc;
    job j = {.orch = stuck, .x = host_u64(w4, 1, &x), .acc = host_u64(w4, 1, &acc), .nsteps = 1};
    j.steps[0] = (step){0, {1, H3_ADD, 0}};
    CHECK_OK(strata_worker_init(w4));
    pid_t l3, below[16];
    CHECK_OK(strata_worker_child_pid(w4, 0, &l3));
    int nbelow = descendants(l3, below, 16);
    strata_call_config cfg = {.timeout_ms = 200};
    CHECK_STATUS(strata_worker_run(w4, l4_orch, &j, NULL, &cfg), STRATA_ETIMEDOUT);
    char want[96];
    snprintf(want, sizeof want, "level-3 worker child 0 (pid %d) was killed by Strata", (int)l3);
    CHECK_ERROR_HAS(want);
    for (int i = 0; i < nbelow; i++)
        CHECK(wait_gone(below[i]));
    j.orch = orch;
    CHECK_OK(strata_worker_run(w4, l4_orch, &j, NULL, NULL));
    CHECK_EQ_U64(x[0], 1);
    CHECK_OK(strata_worker_close(w4));
    strata_worker_destroy(w4);
}

/* Copy tasks between this process's memory and local worker children's,
   ordered by their tags with the tasks around them. */
typedef struct local_copies {
    strata_handle orch;
    strata_tensor x, y, b0, b1;
} local_copies;

static int local_copy_orch(strata_orch *o, const strata_task_args *args, const strata_call_config *cfg, void *ctx)
{
    (void)args;
    (void)cfg;
    local_copies *c = ctx;
    strata_tag tag = STRATA_INOUT;
    uint64_t s0[3] = {5, H3_ADD, 0}, s1[3] = {7, H3_ADD, 0};
    int rc = strata_submit_copy(o, &c->b0, &c->x);
    if (rc == STRATA_OK)
        rc = strata_submit_next_level(o, c->orch, &(strata_task_args){&c->b0, &tag, 1, s0, 3}, NULL, 0);
    if (rc == STRATA_OK)
        rc = strata_submit_copy(o, &c->b1, &c->b0);
    if (rc == STRATA_OK)
        rc = strata_submit_next_level(o, c->orch, &(strata_task_args){&c->b1, &tag, 1, s1, 3}, NULL, 1);
    if (rc == STRATA_OK)
        rc = strata_submit_copy(o, &c->y, &c->b1);
    return rc;
}

TEST_CASE(copy_tasks_between_workers)
{
    local_copies c;
    strata_worker *w4 = l4_tree(2, &c.orch);
    CHECK_OK(strata_worker_init(w4));
    uint64_t *x, *y;
    c.x = host_u64(w4, 8, &x);
    c.y = host_u64(w4, 8, &y);
    strata_buffer b0, b1;
    CHECK_OK(strata_worker_malloc(w4, 0, 64, &b0));
    CHECK_OK(strata_worker_malloc(w4, 1, 64, &b1));
    uint64_t shape[1] = {8};
    c.b0 = strata_tensor_make((void *)(uintptr_t)b0.addr, STRATA_U64, 1, shape);
    c.b1 = strata_tensor_make((void *)(uintptr_t)b1.addr, STRATA_U64, 1, shape);
    /* explicit row-major strides are contiguous too */
    c.b0.strides[0] = 1;
    for (int run = 1; run <= 20; run++) {
        for (int i = 0; i < 8; i++)
            x[i] = (uint64_t)(run * 1000 + i);
        CHECK_OK(strata_worker_run(w4, local_copy_orch, &c, NULL, NULL));
        for (int i = 0; i < 8; i++)
            CHECK_EQ_U64(y[i], x[i] + 12);
    }
    /* every other element is not contiguous: refused, saying so */
    c.b0.shape[0] = 4;
    c.b0.strides[0] = 2;
    c.x.shape[0] = 4;
    CHECK_STATUS(strata_worker_run(w4, local_copy_orch, &c, NULL, NULL), STRATA_EINVAL);
    CHECK_ERROR_HAS("dst is not a contiguous row-major view");
    CHECK_OK(strata_worker_close(w4));
    strata_worker_destroy(w4);
}

TEST_MAIN(CASE(orchestration_runs_on_level3_children), CASE(memory_of_a_child_worker), CASE(three_levels),
          CASE(refusals_say_why), CASE(grandchild_killed_mid_task), CASE(level3_child_killed_takes_its_children),
          CASE(close_tears_the_tree_down), CASE(top_killed_leaves_nothing), CASE(thousand_runs_stay_flat),
          CASE(init_fails_with_a_grandchild), CASE(stuck_level3_child_bounded_by_the_timeout),
          CASE(stuck_orchestration_in_a_level3_child), CASE(copy_tasks_between_workers))
