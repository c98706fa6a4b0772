/* node.hooks: the embedding hooks (strata/hooks.h): fork hooks around every
 * fork Strata makes (the spawner, each child, each restart), wait hooks paired
 * around each sleep of a run, the interrupt check that stops a run with
 * STRATA_EINTR in bounded time and leaves the worker usable, and
 * strata_task_error's message in a run's error. */
#include "node_util.h"

#include <errno.h>
#include <pthread.h>
#include <sys/mman.h>

/* Counters every process of the worker's tree adds to: shared anonymous
   memory mapped before init, so the spawner and the children inherit it. */
typedef struct hook_counts {
    _Atomic int prepare, parent, child;   /* fork hooks, in any process */
    _Atomic int wait_begin, wait_end;     /* on the driving thread */
    _Atomic int waiting;                  /* 1 between wait_begin and wait_end */
    _Atomic int nested;                   /* a wait_begin while already waiting, or an end without a begin */
    _Atomic int polls;                    /* interrupt checks */
    _Atomic int polled_while_waiting;     /* an interrupt check between begin and end */
    _Atomic int stop;                     /* the interrupt check's answer */
    _Atomic pid_t prepare_pid[16];        /* who ran each prepare */
} hook_counts;

static hook_counts *counts;

static void on_prepare(void *ctx)
{
    CHECK(ctx == counts);
    int i = atomic_fetch_add(&counts->prepare, 1);
    if (i < 16)
        counts->prepare_pid[i] = getpid();
}
static void on_parent(void *ctx) { (void)ctx; atomic_fetch_add(&counts->parent, 1); }
static void on_child(void *ctx) { (void)ctx; atomic_fetch_add(&counts->child, 1); }
static void on_wait_begin(void *ctx)
{
    (void)ctx;
    atomic_fetch_add(&counts->wait_begin, 1);
    if (atomic_exchange(&counts->waiting, 1) != 0)
        atomic_fetch_add(&counts->nested, 1);
}
static void on_wait_end(void *ctx)
{
    (void)ctx;
    atomic_fetch_add(&counts->wait_end, 1);
    if (atomic_exchange(&counts->waiting, 0) != 1)
        atomic_fetch_add(&counts->nested, 1);
}
static int on_interrupted(void *ctx)
{
    (void)ctx;
    atomic_fetch_add(&counts->polls, 1);
    if (atomic_load(&counts->waiting))
        atomic_fetch_add(&counts->polled_while_waiting, 1);
    return atomic_load(&counts->stop);
}

static void install_hooks(void)
{
    counts = mmap(NULL, sizeof *counts, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    CHECK(counts != MAP_FAILED);
    memset(counts, 0, sizeof *counts);
    strata_hooks h = {on_prepare, on_parent, on_child, on_wait_begin, on_wait_end, on_interrupted, counts};
    CHECK_OK(strata_set_hooks(&h));
}

static void remove_hooks(void)
{
    CHECK_OK(strata_set_hooks(NULL));
    munmap(counts, sizeof *counts);
    counts = NULL;
}

/* SUB: scalars[0] = 0 adds one to tensors[0][0]; 1 sleeps 30 ms first; 2
   hangs; 3 fails with a message of its own. */
static int sub_fn(const strata_task_args *a, void *ctx)
{
    (void)ctx;
    uint64_t how = a->nscalars ? a->scalars[0] : 0;
    if (how == 2)
        for (;;)
            pause();
    if (how == 3)
        return strata_task_error("row %d of table '%s' is out of range", 7, "kv");
    if (how == 1)
        sleep_ms(30);
    u64_of(&a->tensors[0])[0] += 1;
    return 0;
}

/* Run j until it succeeds (a replaced child may take a moment), at most 10 s. */
static int run_until_ok(strata_worker *w, sub_chain *j)
{
    uint64_t deadline = test_now_ns() + 10000000000ull;
    int rc;
    while ((rc = strata_worker_run(w, sub_chain_orch, j, NULL, NULL)) != STRATA_OK && test_now_ns() < deadline)
        sleep_ms(5);
    return rc;
}

static strata_worker *hooked_worker(uint32_t nchips, uint32_t nsubs, sub_chain *j, uint64_t **data)
{
    strata_worker *w = node_worker(nchips, nsubs, STRATA_ON_DEATH_RESTART, NULL);
    CHECK_OK(strata_worker_register_sub(w, sub_fn, NULL, &j->sub));
    CHECK_OK(strata_worker_init(w));
    j->t = host_u64(w, 1, data);
    return w;
}

TEST_CASE(fork_hooks_around_every_fork)
{
    install_hooks();
    sub_chain j = {0};
    uint64_t *data;
    strata_worker *w = hooked_worker(1, 1, &j, &data);
    /* One fork by this process (the spawner) and one per child by the spawner;
       a child runs fork_child once, in its new process. */
    CHECK_EQ_U64(atomic_load(&counts->prepare), 3);
    CHECK_EQ_U64(atomic_load(&counts->parent), 3);
    CHECK_EQ_U64(atomic_load(&counts->child), 3);
    CHECK(counts->prepare_pid[0] == getpid());
    CHECK(counts->prepare_pid[1] != getpid() && counts->prepare_pid[2] == counts->prepare_pid[1]);

    /* A restart forks again, in the spawner. */
    pid_t sub;
    CHECK_OK(strata_worker_child_pid(w, 1, &sub));
    CHECK(kill(sub, SIGKILL) == 0);
    CHECK(known_dead(w, 1));
    j.ntasks = 1;
    CHECK_OK(run_until_ok(w, &j));
    CHECK_EQ_U64(atomic_load(&counts->prepare), 4);
    CHECK_EQ_U64(atomic_load(&counts->parent), 4);
    CHECK_EQ_U64(atomic_load(&counts->child), 4);
    CHECK(counts->prepare_pid[3] == counts->prepare_pid[1]);
    CHECK_OK(strata_worker_close(w));
    strata_worker_destroy(w);
    remove_hooks();
}

TEST_CASE(wait_hooks_pair_around_each_sleep)
{
    install_hooks();
    sub_chain j = {.scalar = 1, .ntasks = 3};
    uint64_t *data;
    strata_worker *w = hooked_worker(1, 1, &j, &data);
    for (int run = 0; run < 5; run++)
        CHECK_OK(strata_worker_run(w, sub_chain_orch, &j, NULL, NULL));
    CHECK_EQ_U64(data[0], 15);
    /* Each run waited (a SUB task sleeps 30 ms), each wait ended before the
       run returned, none nested, and no interrupt check ran inside one. */
    CHECK(atomic_load(&counts->wait_begin) >= 5);
    CHECK_EQ_U64(atomic_load(&counts->wait_begin), atomic_load(&counts->wait_end));
    CHECK_EQ_U64(atomic_load(&counts->waiting), 0);
    CHECK_EQ_U64(atomic_load(&counts->nested), 0);
    CHECK(atomic_load(&counts->polls) >= 5);
    CHECK_EQ_U64(atomic_load(&counts->polled_while_waiting), 0);
    CHECK_OK(strata_worker_close(w));
    strata_worker_destroy(w);
    remove_hooks();
}

static void *interrupt_later(void *arg)
{
    sleep_ms((long)(intptr_t)arg);
    atomic_store(&counts->stop, 1);
    return NULL;
}

TEST_CASE(interrupt_stops_a_hung_run_and_the_worker_goes_on)
{
    install_hooks();
    sub_chain j = {.scalar = 2, .ntasks = 1};
    uint64_t *data;
    strata_worker *w = hooked_worker(1, 1, &j, &data);
    pid_t sub;
    CHECK_OK(strata_worker_child_pid(w, 1, &sub));

    pthread_t th;
    CHECK(pthread_create(&th, NULL, interrupt_later, (void *)(intptr_t)100) == 0);
    uint64_t t0 = test_now_ns();
    CHECK_STATUS(strata_worker_run(w, sub_chain_orch, &j, NULL, NULL), STRATA_EINTR);
    uint64_t took_ms = (test_now_ns() - t0) / 1000000;
    CHECK(pthread_join(th, NULL) == 0);
    CHECK_ERROR_HAS("interrupted");
    /* 100 ms until the check answers, then close_grace_ms (500) for the hung
       task; ten times that is the bound. */
    CHECK(took_ms < 6000);
    CHECK_EQ_U64(atomic_load(&counts->wait_begin), atomic_load(&counts->wait_end));

    /* The hung child was killed and is replaced; the worker goes on. */
    CHECK(wait_gone(sub));
    atomic_store(&counts->stop, 0);
    j.scalar = 0;
    CHECK_OK(run_until_ok(w, &j));
    CHECK_EQ_U64(data[0], 1);
    CHECK_EQ_U64(zombie_children(), 0);
    CHECK_OK(strata_worker_close(w));
    strata_worker_destroy(w);
    remove_hooks();
}

TEST_CASE(interrupt_cancels_unstarted_tasks)
{
    install_hooks();
    atomic_store(&counts->stop, 1);           /* interrupted from the first check */
    sub_chain j = {.scalar = 1, .ntasks = 50};         /* 50 x 30 ms in one chain */
    uint64_t *data;
    strata_worker *w = hooked_worker(1, 1, &j, &data);
    uint64_t t0 = test_now_ns();
    int rc = strata_worker_run(w, sub_chain_orch, &j, NULL, NULL);
    CHECK(rc == STRATA_EINTR);
    CHECK((test_now_ns() - t0) / 1000000 < 1000);   /* far from the 1.5 s of the whole chain */
    CHECK(data[0] < 50);
    atomic_store(&counts->stop, 0);
    j.ntasks = 1;
    j.scalar = 0;
    uint64_t before = data[0];
    CHECK_OK(strata_worker_run(w, sub_chain_orch, &j, NULL, NULL));
    CHECK_EQ_U64(data[0], before + 1);
    CHECK_OK(strata_worker_close(w));
    strata_worker_destroy(w);
    remove_hooks();
}

TEST_CASE(task_error_reaches_the_run_error)
{
    sub_chain j = {.scalar = 3, .ntasks = 1};
    uint64_t *data;
    strata_worker *w = hooked_worker(1, 1, &j, &data);
    CHECK_STATUS(strata_worker_run(w, sub_chain_orch, &j, NULL, NULL), STRATA_ETASK);
    CHECK_ERROR_HAS("row 7 of table 'kv' is out of range");
    /* The message is the task's, not left behind for the next one. */
    j.scalar = 0;
    CHECK_OK(strata_worker_run(w, sub_chain_orch, &j, NULL, NULL));
    CHECK_EQ_U64(data[0], 1);
    CHECK_OK(strata_worker_close(w));
    strata_worker_destroy(w);
}

static int failing_kernel(const strata_task_args *a)
{
    (void)a;
    return strata_task_error("tile %u has a NaN", 3u);
}
static const strata_kernel_entry failing_kernels[] = {{0, STRATA_AIV, failing_kernel}};

TEST_CASE(task_error_from_a_kernel)
{
    strata_worker_config cfg;
    strata_worker_config_init(&cfg, 2);
    strata_worker *w;
    CHECK_OK(strata_worker_create(&cfg, &w));
    CHECK_OK(strata_worker_init(w));
    strata_chip_callable c = {"nan_check", add_chip_orch, failing_kernels, 1};
    strata_handle h;
    CHECK_OK(strata_worker_register_chip(w, &c, &h));
    strata_buffer b;
    CHECK_OK(strata_worker_malloc(w, 0, 64, &b));
    uint64_t shape[1] = {8};
    strata_tensor t = strata_tensor_make((void *)(uintptr_t)b.addr, STRATA_U64, 1, shape);
    t.nbytes = b.nbytes;
    strata_tag tag = STRATA_INOUT;
    CHECK_STATUS(strata_worker_run_chip(w, h, &(strata_task_args){&t, &tag, 1, NULL, 0}, NULL), STRATA_ETASK);
    CHECK_ERROR_HAS("tile 3 has a NaN");
    CHECK_OK(strata_worker_free(w, b));
    CHECK_OK(strata_worker_close(w));
    strata_worker_destroy(w);
}

TEST_CASE(set_hooks_checks_its_input)
{
    strata_hooks h = {0};
    h.wait_begin = on_wait_begin;
    CHECK_STATUS(strata_set_hooks(&h), STRATA_EINVAL);
    CHECK_ERROR_HAS("wait_end");
    h.wait_end = on_wait_end;
    CHECK_OK(strata_set_hooks(&h));
    CHECK_OK(strata_set_hooks(NULL));
}

TEST_MAIN(CASE(fork_hooks_around_every_fork), CASE(wait_hooks_pair_around_each_sleep),
          CASE(interrupt_stops_a_hung_run_and_the_worker_goes_on), CASE(interrupt_cancels_unstarted_tasks),
          CASE(task_error_reaches_the_run_error), CASE(task_error_from_a_kernel), CASE(set_hooks_checks_its_input))
