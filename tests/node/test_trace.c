/* node.trace: the trace of a node worker (include/strata/trace.h) and the
 * flight recorder of its children (docs/observability.md). Each case writes a
 * trace into the test's scratch directory and has tests/trace/check_trace.py
 * (a JSON parser, not a pattern match) check it: every task's slice on its
 * tracks, the flows of a known DAG, a death as an instant, names of every
 * track; the flight recorder's summary is checked in the death's message and
 * its postmortem file parsed the same way. */
#include "node_util.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/stat.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

#ifndef STRATA_TEST_CHECK_TRACE
#error "the build names tests/trace/check_trace.py"
#endif

/* Run the checker on path with its arguments; whether it passed. */
static bool check_trace(const char *path, const char *const *args)
{
    const char *argv[32] = {STRATA_TEST_PYTHON, STRATA_TEST_CHECK_TRACE, path};
    uint32_t n = 3;
    for (; args && *args && n < 31; args++)
        argv[n++] = *args;
    argv[n] = NULL;
    pid_t pid;
    int rc = posix_spawn(&pid, argv[0], NULL, NULL, (char *const *)argv, environ);
    if (rc != 0) {
        fprintf(stderr, "cannot run %s: %s\n", argv[0], strerror(rc));
        return false;
    }
    int status;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

/* A directory of the case's own (removed with what is in it at the end). */
static char scratch[64];

static void scratch_path(char *buf, size_t cap, const char *name)
{
    if (!scratch[0]) {
        snprintf(scratch, sizeof scratch, "/tmp/strata-trace-XXXXXX");
        CHECK(mkdtemp(scratch) != NULL);
    }
    snprintf(buf, cap, "%s/%s", scratch, name);
}

/* STRATA_TEST_KEEP_TRACES=1 keeps them, to look at (the path is printed). */
static void scratch_remove(void)
{
    if (getenv("STRATA_TEST_KEEP_TRACES")) {
        fprintf(stderr, "traces kept in %s\n", scratch);
        scratch[0] = '\0';
        return;
    }
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", scratch);
    CHECK(scratch[0] && system(cmd) == 0);
    scratch[0] = '\0';
}

/* kernels of the DAG's chip tasks: add 1 to each element */
static int inc_kernel(const strata_task_args *a)
{
    uint64_t *p = u64_of(&a->tensors[0]);
    p[0] += 1;
    return 0;
}

/* three kernels in a chain on the task's tensor */
static int chain3_orch(strata_chip_orch *o, const strata_task_args *args, const strata_call_config *cfg)
{
    (void)cfg;
    strata_tag tag = STRATA_INOUT;
    for (int k = 0; k < 3; k++) {
        int rc = strata_chip_submit(o, 7, &(strata_task_args){args->tensors, &tag, 1, NULL, 0});
        if (rc)
            return rc;
    }
    return STRATA_OK;
}

static const strata_kernel_entry inc_kernels[] = {{7, STRATA_AIV, inc_kernel}};

/* SUB: tensors[1][0] = tensors[0][0] + 1 */
static int plus_sub(const strata_task_args *a, void *ctx)
{
    (void)ctx;
    u64_of(&a->tensors[1])[0] = u64_of(&a->tensors[0])[0] + 1;
    return 0;
}

typedef struct dag {
    strata_handle chip, sub, sum;
    strata_tensor x, y, z, out;
} dag;

/* task 1: chip x += 3; tasks 2, 3: SUB y = x + 1, z = x + 1; task 4: SUB out = y + z */
static int dag_orch(strata_orch *o, const strata_task_args *args, const strata_call_config *cfg, void *ctx)
{
    (void)args;
    (void)cfg;
    dag *d = ctx;
    strata_tag inout = STRATA_INOUT, in_out[2] = {STRATA_INPUT, STRATA_OUTPUT};
    strata_tag in_in_out[3] = {STRATA_INPUT, STRATA_INPUT, STRATA_OUTPUT};
    int rc = strata_submit_next_level(o, d->chip, &(strata_task_args){&d->x, &inout, 1, NULL, 0}, NULL, 0);
    strata_tensor xy[2] = {d->x, d->y}, xz[2] = {d->x, d->z}, yzo[3] = {d->y, d->z, d->out};
    if (rc == STRATA_OK)
        rc = strata_submit_sub(o, d->sub, &(strata_task_args){xy, in_out, 2, NULL, 0});
    if (rc == STRATA_OK)
        rc = strata_submit_sub(o, d->sub, &(strata_task_args){xz, in_out, 2, NULL, 0});
    if (rc == STRATA_OK)
        rc = strata_submit_sub(o, d->sum, &(strata_task_args){yzo, in_in_out, 3, NULL, 0});
    return rc;
}

static strata_worker *dag_worker(dag *d, strata_death_policy policy)
{
    strata_worker *w = node_worker(1, 2, policy, NULL);
    strata_chip_callable c = {"chain3", chain3_orch, inc_kernels, 1};
    CHECK_OK(strata_worker_register_chip(w, &c, &d->chip));
    CHECK_OK(strata_worker_register_sub_named(w, "plus", plus_sub, NULL, &d->sub));
    CHECK_OK(strata_worker_register_sub_named(w, "sum", sum_sub, NULL, &d->sum));
    CHECK_OK(strata_worker_init(w));
    uint64_t *p;
    d->x = host_u64(w, 1, &p);
    d->y = host_u64(w, 1, &p);
    d->z = host_u64(w, 1, &p);
    d->out = host_u64(w, 1, &p);
    return w;
}

TEST_CASE(dag_slices_and_flows)
{
    char path[512];
    scratch_path(path, sizeof path, "dag.json");
    dag d;
    strata_worker *w = dag_worker(&d, STRATA_ON_DEATH_RESTART);
    CHECK_OK(strata_trace_begin(path));
    CHECK_OK(strata_worker_run(w, dag_orch, &d, NULL, NULL));
    CHECK_OK(strata_worker_run(w, dag_orch, &d, NULL, NULL));
    strata_call_config skip = {.trace = STRATA_TRACE_SKIP};
    CHECK_OK(strata_worker_run(w, dag_orch, &d, NULL, &skip));   /* run 3: left out */
    CHECK_OK(strata_trace_end());
    CHECK_EQ_U64(u64_of(&d.out)[0], 2 * 9 + 2);   /* the DAG ran three times, traced or not: x = 9 */
    strata_worker_destroy(w);
    const char *expect[] = {"--runs", "1,2", "--absent-runs", "3", "--tasks-per-run", "4", "--edges", "1>2,1>3,2>4,3>4",
                            "--kernels-per-chip-task", "3", "--callables", "chain3,plus,sum", NULL};
    CHECK(check_trace(path, expect));
    scratch_remove();
}

/* ---- a child killed in a kernel ---- */

/* spins until killed, after saying so in tensors[0][0] */
static int spin_kernel(const strata_task_args *a)
{
    volatile uint64_t *flag = u64_of(&a->tensors[0]);
    *flag = 1;
    for (;;)
        ;
    return 0;
}

static int spin_orch(strata_chip_orch *o, const strata_task_args *args, const strata_call_config *cfg)
{
    (void)cfg;
    strata_tag tag = STRATA_INOUT;
    return strata_chip_submit(o, 3, &(strata_task_args){args->tensors, &tag, 1, NULL, 0});
}

static const strata_kernel_entry spin_kernels[] = {{3, STRATA_AIV, spin_kernel}};

typedef struct killer {
    volatile uint64_t *flag;
    pid_t              pid;
} killer;

/* Kill the chip child once its kernel runs (bounded: 30 s). */
static void *kill_when_spinning(void *arg)
{
    killer *k = arg;
    for (int i = 0; i < 30000 && *k->flag == 0; i++)
        sleep_ms(1);
    kill(k->pid, SIGKILL);
    return NULL;
}

typedef struct spin_job {
    strata_handle spin;
    strata_tensor flag;
} spin_job;

static int spin_job_orch(strata_orch *o, const strata_task_args *args, const strata_call_config *cfg, void *ctx)
{
    (void)args;
    (void)cfg;
    spin_job *j = ctx;
    strata_tag tag = STRATA_INOUT;
    return strata_submit_next_level(o, j->spin, &(strata_task_args){&j->flag, &tag, 1, NULL, 0}, NULL, 0);
}

/* The path the death message names (after "its last events are in "). */
static void postmortem_path(const char *msg, char *out, size_t cap)
{
    const char *at = strstr(msg, "its last events are in ");
    CHECK(at != NULL);
    at += strlen("its last events are in ");
    size_t len = strcspn(at, ")");
    CHECK(len > 0 && len < cap);
    memcpy(out, at, len);
    out[len] = '\0';
}

TEST_CASE(death_in_kernel_recorded_and_traced)
{
    char path[512], dir[512];
    scratch_path(path, sizeof path, "death.json");
    scratch_path(dir, sizeof dir, "postmortem");
    CHECK(mkdir(dir, 0700) == 0);
    setenv("STRATA_POSTMORTEM_DIR", dir, 1);
    dag d;
    strata_worker *w = dag_worker(&d, STRATA_ON_DEATH_RESTART);
    spin_job j;
    strata_chip_callable c = {"spin", spin_orch, spin_kernels, 1};
    CHECK_OK(strata_worker_register_chip(w, &c, &j.spin));
    uint64_t *flag;
    j.flag = host_u64(w, 1, &flag);
    killer k = {flag, 0};
    CHECK_OK(strata_worker_child_pid(w, 0, &k.pid));
    CHECK_OK(strata_trace_begin(path));
    pthread_t t;
    CHECK(pthread_create(&t, NULL, kill_when_spinning, &k) == 0);
    CHECK_STATUS(strata_worker_run(w, spin_job_orch, &j, NULL, NULL), STRATA_ECHILD);
    CHECK(pthread_join(t, NULL) == 0);
    /* the death's message: how it died, and the flight recorder's summary */
    CHECK_ERROR_HAS("was killed by signal 9");
    CHECK_ERROR_HAS("was killed by signal 9 (Killed) while running task 1 (spin); flight recorder: it was running "
                    "task 1 of run 1 (chip callable 'spin') for ");
    CHECK_ERROR_HAS("AIV core 0 was in kernel func_id 3");
    char pm[512];
    postmortem_path(strata_last_error(), pm, sizeof pm);
    CHECK(strncmp(pm, dir, strlen(dir)) == 0);
    const char *pm_expect[] = {"--postmortem", "--callable", "spin", "--in-kernel", NULL};
    CHECK(check_trace(pm, pm_expect));
    /* replaced: the next run works, in a new process, in the same trace */
    CHECK_OK(strata_worker_run(w, dag_orch, &d, NULL, NULL));
    CHECK_OK(strata_trace_end());
    strata_worker_destroy(w);
    unsetenv("STRATA_POSTMORTEM_DIR");
    const char *expect[] = {"--runs", "2", "--tasks-per-run", "4", "--edges", "1>2,1>3,2>4,3>4",
                            "--instant", "child died", "--instant", "child restarted",
                            "--unended", "2", "--pids-of-child", "2", NULL};
    CHECK(check_trace(path, expect));
    scratch_remove();
}

/* SUB: sleeps scalars[0] ms */
static int nap_sub(const strata_task_args *a, void *ctx)
{
    (void)ctx;
    sleep_ms((long)a->scalars[0]);
    return 0;
}

typedef struct nap_job {
    strata_handle nap;
    uint64_t      ms;
} nap_job;

static int nap_orch(strata_orch *o, const strata_task_args *args, const strata_call_config *cfg, void *ctx)
{
    (void)args;
    (void)cfg;
    nap_job *j = ctx;
    return strata_submit_sub(o, j->nap, &(strata_task_args){NULL, NULL, 0, &j->ms, 1});
}

/* No trace open: the flight recorder still names what a dead child was doing,
   killed mid-task (a timeout) and killed while idle. */
TEST_CASE(flight_recorder_without_trace)
{
    char dir[512];
    scratch_path(dir, sizeof dir, "postmortem");
    CHECK(mkdir(dir, 0700) == 0);
    setenv("STRATA_POSTMORTEM_DIR", dir, 1);
    strata_worker *w = node_worker(0, 1, STRATA_ON_DEATH_RESTART, NULL);
    nap_job j = {.ms = 5};
    CHECK_OK(strata_worker_register_sub_named(w, "nap", nap_sub, NULL, &j.nap));
    CHECK_OK(strata_worker_init(w));
    CHECK_OK(strata_worker_run(w, nap_orch, &j, NULL, NULL));
    /* a task past its timeout: killed by Strata */
    j.ms = 20000;
    strata_call_config cfg = {.timeout_ms = 200};
    CHECK_STATUS(strata_worker_run(w, nap_orch, &j, NULL, &cfg), STRATA_ETIMEDOUT);
    CHECK_ERROR_HAS("ran past its timeout of 200 ms");
    CHECK_ERROR_HAS("flight recorder: it was running task 1 of run 2 (SUB function 'nap') for ");
    char pm[512];
    postmortem_path(strata_last_error(), pm, sizeof pm);
    const char *pm_expect[] = {"--postmortem", "--callable", "nap", NULL};
    CHECK(check_trace(pm, pm_expect));
    /* killed between runs, idle: the next run reports it with its last task */
    j.ms = 1;
    CHECK_OK(strata_worker_run(w, nap_orch, &j, NULL, NULL));
    pid_t pid;
    CHECK_OK(strata_worker_child_pid(w, 0, &pid));
    CHECK(kill(pid, SIGKILL) == 0);
    CHECK(wait_gone(pid));
    CHECK_STATUS(strata_worker_run(w, nap_orch, &j, NULL, NULL), STRATA_ECHILD);
    CHECK_ERROR_HAS("flight recorder: it was idle; its last task, 1 of run 3, ended ");
    CHECK_OK(strata_worker_run(w, nap_orch, &j, NULL, NULL));
    /* a directory that cannot take the file: the message says which and why */
    setenv("STRATA_POSTMORTEM_DIR", "/nonexistent-strata-dir", 1);
    CHECK_OK(strata_worker_child_pid(w, 0, &pid));
    CHECK(kill(pid, SIGKILL) == 0);
    CHECK(wait_gone(pid));
    CHECK_STATUS(strata_worker_run(w, nap_orch, &j, NULL, NULL), STRATA_ECHILD);
    CHECK_ERROR_HAS("its last events: no file: '/nonexistent-strata-dir/strata-");
    CHECK_ERROR_HAS("could not be written (No such file or directory; set STRATA_POSTMORTEM_DIR");
    strata_worker_destroy(w);
    unsetenv("STRATA_POSTMORTEM_DIR");
    scratch_remove();
}

/* STRATA_TRACE opens a trace at the first create; ending it and beginning
   another gives a second file that stands alone (its tracks named again). */
TEST_CASE(strata_trace_variable_and_a_second_window)
{
    char path[512], second[512];
    scratch_path(path, sizeof path, "env.json");
    scratch_path(second, sizeof second, "second.json");
    setenv("STRATA_TRACE", path, 1);
    dag d;
    strata_worker *w = dag_worker(&d, STRATA_ON_DEATH_RESTART);
    CHECK_OK(strata_worker_run(w, dag_orch, &d, NULL, NULL));
    CHECK_STATUS(strata_trace_begin(second), STRATA_ESTATE);
    CHECK_ERROR_HAS("a trace is open already");
    CHECK_ERROR_HAS("from STRATA_TRACE");
    CHECK_OK(strata_trace_end());
    CHECK_OK(strata_worker_run(w, dag_orch, &d, NULL, NULL));   /* run 2: no trace open */
    CHECK_OK(strata_trace_begin(second));
    CHECK_OK(strata_worker_run(w, dag_orch, &d, NULL, NULL));   /* run 3 */
    CHECK_OK(strata_trace_end());
    CHECK_OK(strata_trace_end());   /* none open: nothing to do */
    strata_worker_destroy(w);
    unsetenv("STRATA_TRACE");
    const char *first_expect[] = {"--runs", "1", "--absent-runs", "2,3", "--tasks-per-run", "4", "--edges",
                                  "1>2,1>3,2>4,3>4", NULL};
    CHECK(check_trace(path, first_expect));
    const char *second_expect[] = {"--runs", "3", "--absent-runs", "1,2", "--tasks-per-run", "4", "--edges",
                                   "1>2,1>3,2>4,3>4", "--kernels-per-chip-task", "3", NULL};
    CHECK(check_trace(second, second_expect));
    scratch_remove();
}

/* A thread runs traced runs while the main thread forks: every child finds
   the trace's lock free and no trace of its own (a child never writes its
   parent's file), within a bounded time. */
static _Atomic int forking_done;

static void *traced_runs(void *arg)
{
    strata_worker *w = arg;
    nap_job j = {.ms = 0};
    j.nap = 1;
    while (!atomic_load(&forking_done))
        if (strata_worker_run(w, nap_orch, &j, NULL, NULL) != STRATA_OK)
            return (void *)1;
    return NULL;
}

TEST_CASE(fork_while_tracing)
{
    strata_worker *w = node_worker(0, 1, STRATA_ON_DEATH_RESTART, NULL);
    strata_handle h;
    CHECK_OK(strata_worker_register_sub_named(w, "nap", nap_sub, NULL, &h));
    CHECK_EQ_U64(h, 1);
    CHECK_OK(strata_worker_init(w));
    CHECK_OK(strata_trace_begin("/dev/null"));
    pthread_t t;
    CHECK(pthread_create(&t, NULL, traced_runs, w) == 0);
    for (int i = 0; i < 100; i++) {
        pid_t pid = fork();
        CHECK(pid >= 0);
        if (pid == 0) {
            alarm(10);   /* a child stuck on an inherited lock dies of it, and fails the check below */
            int ok = strata_trace_end() == STRATA_OK && strata_trace_begin("/dev/null") == STRATA_OK &&
                     strata_trace_end() == STRATA_OK;
            _exit(ok ? 0 : 1);
        }
        int status;
        CHECK(waitpid(pid, &status, 0) == pid);
        CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    }
    atomic_store(&forking_done, 1);
    void *rc;
    CHECK(pthread_join(t, &rc) == 0);
    CHECK(rc == NULL);
    CHECK_OK(strata_trace_end());
    strata_worker_destroy(w);
}

TEST_CASE(trace_refusals)
{
    /* a bad STRATA_TRACE fails the create that reads it, naming the variable */
    setenv("STRATA_TRACE", "/nonexistent-strata-dir/env.json", 1);
    strata_worker_config cfg;
    strata_worker_config_init(&cfg, 3);
    strata_worker *w = NULL;
    CHECK_STATUS(strata_worker_create(&cfg, &w), STRATA_ESYS);
    CHECK_ERROR_HAS("STRATA_TRACE: cannot write the trace file '/nonexistent-strata-dir/env.json'");
    CHECK(w == NULL);
    unsetenv("STRATA_TRACE");
    CHECK_STATUS(strata_trace_begin(NULL), STRATA_EINVAL);
    CHECK_ERROR_HAS("strata_trace_begin: path is NULL");
    CHECK_STATUS(strata_trace_begin(""), STRATA_EINVAL);
    CHECK_STATUS(strata_trace_begin("/nonexistent-strata-dir/t.json"), STRATA_ESYS);
    CHECK_ERROR_HAS("cannot write the trace file '/nonexistent-strata-dir/t.json'");
    CHECK_OK(strata_trace_end());
    /* a bad ring size likewise */
    setenv("STRATA_TRACE_EVENTS", "1000", 1);
    CHECK_STATUS(strata_worker_create(&cfg, &w), STRATA_EINVAL);
    CHECK_ERROR_HAS("STRATA_TRACE_EVENTS");
    unsetenv("STRATA_TRACE_EVENTS");
}

/* ---- level 2: a chip in the application's process ---- */

/* A level-2 worker of two AIV cores running callable c, initialised, with a
   chip buffer of n u64 elements as *t (its buffer in *b). */
static strata_worker *l2_worker(const strata_chip_callable *c, uint64_t n, strata_handle *h, strata_buffer *b,
                                strata_tensor *t)
{
    strata_worker_config cfg;
    strata_worker_config_init(&cfg, 2);
    cfg.aiv_cores = 2;
    cfg.device_memory_bytes = 16 << 20;
    strata_worker *w;
    CHECK_OK(strata_worker_create(&cfg, &w));
    CHECK_OK(strata_worker_register_chip(w, c, h));
    CHECK_OK(strata_worker_init(w));
    CHECK_OK(strata_worker_malloc(w, 0, n * 8, b));
    *t = (strata_tensor){.addr = b->addr, .nbytes = n * 8, .dtype = STRATA_U64, .ndims = 1, .shape = {n}};
    return w;
}


/* 64 independent kernels, one per element */
static int wide_orch(strata_chip_orch *o, const strata_task_args *args, const strata_call_config *cfg)
{
    (void)cfg;
    strata_tag tag = STRATA_INOUT;
    for (uint64_t i = 0; i < 64; i++) {
        strata_tensor t = args->tensors[0];
        t.shape[0] = 1;
        t.offset = i;
        int rc = strata_chip_submit(o, 7, &(strata_task_args){&t, &tag, 1, NULL, 0});
        if (rc)
            return rc;
    }
    return STRATA_OK;
}

/* A chain of 16 kernels whose first waits until the orchestration function
   has submitted them all: every edge is linked while its producer runs. */
static _Atomic int chain_gate;

static int gated_kernel(const strata_task_args *a)
{
    for (int i = 0; i < 10000 && !atomic_load(&chain_gate); i++)
        sleep_ms(1);
    return inc_kernel(a);
}

static int chain16_orch(strata_chip_orch *o, const strata_task_args *args, const strata_call_config *cfg)
{
    (void)cfg;
    strata_tag tag = STRATA_INOUT;
    atomic_store(&chain_gate, 0);
    for (int k = 0; k < 16; k++) {
        int rc = strata_chip_submit(o, k == 0 ? 8 : 7, &(strata_task_args){args->tensors, &tag, 1, NULL, 0});
        if (rc)
            return rc;
    }
    atomic_store(&chain_gate, 1);
    return STRATA_OK;
}

static const strata_kernel_entry chain16_kernels[] = {{7, STRATA_AIV, inc_kernel}, {8, STRATA_AIV, gated_kernel}};

/* One traced run of a chain callable (chain16_kernels) on a level-2 worker
   with cfg (may be NULL); the trace must pass check_trace with expect. */
static void traced_chain_run(const char *name, strata_chip_orch_fn orch, const strata_call_config *cfg,
                             const char *const *expect)
{
    char path[512];
    scratch_path(path, sizeof path, "chain.json");
    strata_chip_callable c = {name, orch, chain16_kernels, 2};
    strata_handle h;
    strata_buffer b;
    strata_tensor t;
    strata_worker *w = l2_worker(&c, 1, &h, &b, &t);
    strata_tag tag = STRATA_INOUT;
    CHECK_OK(strata_trace_begin(path));
    CHECK_OK(strata_worker_run_chip(w, h, &(strata_task_args){&t, &tag, 1, NULL, 0}, cfg));
    CHECK_OK(strata_trace_end());
    strata_worker_destroy(w);
    CHECK(check_trace(path, expect));
    scratch_remove();
}

TEST_CASE(level2_kernel_arrows_follow_the_chain)
{
    const char *expect[] = {"--kernels", "16", "--kernel-arrows", "15", NULL};
    traced_chain_run("chain16", chain16_orch, NULL, expect);
}

/* 3000 kernels in a chain inside a scope (the ring of depth 1, whose task
   ids are local id * 4 + 1), queued behind a first one that waits until all
   are submitted: each gets its submit arrow and its dependency arrow, and
   the counters are sampled as often as at depth 0. */
static int scoped_chain_orch(strata_chip_orch *o, const strata_task_args *args, const strata_call_config *cfg)
{
    (void)cfg;
    strata_tag tag = STRATA_INOUT;
    atomic_store(&chain_gate, 0);
    int rc = strata_chip_scope_begin(o);
    for (int k = 0; rc == 0 && k < 3000; k++)
        rc = strata_chip_submit(o, k == 0 ? 8 : 7, &(strata_task_args){args->tensors, &tag, 1, NULL, 0});
    atomic_store(&chain_gate, 1);
    if (rc == 0)
        rc = strata_chip_scope_end(o);
    return rc;
}

TEST_CASE(level2_scoped_tasks_keep_their_arrows)
{
    strata_call_config cfg = {0};
    cfg.ring_task_window_by_depth[1] = 4096;
    const char *expect[] = {"--kernels", "3000", "--kernel-arrows", "2999", "--kernel-submit-arrows", "3000",
                            "--min-counters", "40", NULL};
    traced_chain_run("scoped_chain", scoped_chain_orch, &cfg, expect);
}

/* Resident memory of this process, bytes. */
static uint64_t resident_bytes(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    unsigned long size = 0, pages = 0;
    CHECK(f != NULL);
    CHECK(fscanf(f, "%lu %lu", &size, &pages) == 2);
    fclose(f);
    return (uint64_t)pages * (uint64_t)sysconf(_SC_PAGESIZE);
}

/* 64 independent kernels per submit loop, `rounds` times: many tasks */
static uint64_t wide_rounds;

static int many_wide_orch(strata_chip_orch *o, const strata_task_args *args, const strata_call_config *cfg)
{
    for (uint64_t r = 0; r < wide_rounds; r++) {
        int rc = wide_orch(o, args, cfg);
        if (rc)
            return rc;
    }
    return STRATA_OK;
}

/* Events go to the file as they come: three traced runs of 128k tasks each
   leave the process no larger after the third than after the first, and the
   first grows it by no more than the rings, the readers and the buffer. */
TEST_CASE(memory_stays_flat_while_tracing)
{
#if defined(__SANITIZE_THREAD__)
    /* ThreadSanitizer keeps ~200 MiB of its own for such a run, and grows it
       run by run: resident memory says nothing of Strata's here (the plain
       and ASan builds check it) */
    test_skip("resident memory under ThreadSanitizer is its own");
#endif
    strata_chip_callable c = {"many_wide", many_wide_orch, inc_kernels, 1};
    strata_handle h;
    strata_buffer b;
    strata_tensor t;
    strata_worker *w = l2_worker(&c, 64, &h, &b, &t);
    strata_tag tag = STRATA_INOUT;
    wide_rounds = 2048;   /* 131072 tasks a run */
    /* Warm until untraced runs no longer grow resident memory. The ready
       queues' cells are touched as their positions advance (2 MiB each: every
       scope depth's slots) until each queue has been round once, and how the
       pushes split between the queues varies with the machine's load: a queue
       that gets a few pushes a run touches a few new pages a run, for tens of
       runs. So: two runs in a row that grow it by less than 16 KiB, at most
       64 runs. */
    int warm = 0;
    for (int still = 0; still < 2 && warm < 64; warm++) {
        uint64_t last = resident_bytes();
        CHECK_OK(strata_worker_run_chip(w, h, &(strata_task_args){&t, &tag, 1, NULL, 0}, NULL));
        still = resident_bytes() < last + (16u << 10) ? still + 1 : 0;
    }
    uint64_t before = resident_bytes();
    CHECK_OK(strata_trace_begin("/dev/null"));
    CHECK_OK(strata_worker_run_chip(w, h, &(strata_task_args){&t, &tag, 1, NULL, 0}, NULL));
    uint64_t first = resident_bytes();
    for (int r = 0; r < 2; r++)
        CHECK_OK(strata_worker_run_chip(w, h, &(strata_task_args){&t, &tag, 1, NULL, 0}, NULL));
    uint64_t third = resident_bytes();
    CHECK_OK(strata_trace_end());
    /* 3 rings of STRATA_TRACE_EVENTS (16384) events of 32 bytes, the reader's
       tables (well under 1 MiB), a 64 KiB buffer: bounded by 8 MiB with room
       for the allocator's own */
#if defined(__SANITIZE_ADDRESS__)
    /* the shadow of what the trace touches is resident too */
    const uint64_t bound = 64u << 20, slack = 4u << 20;
#else
    const uint64_t bound = 8u << 20, slack = 1u << 20;
#endif
    if (first - before >= bound || third > first + slack)
        fprintf(stderr, "resident: %.1f MiB before, %.1f after the first traced run, %.1f after the third\n",
                (double)before / 1048576, (double)first / 1048576, (double)third / 1048576);
    CHECK(first - before < bound);
    CHECK(third <= first + slack);
    uint64_t out[64];
    CHECK_OK(strata_worker_copy_from(w, out, b, 0, sizeof out));
    CHECK_EQ_U64(out[0], (uint64_t)(warm + 3) * 2048);   /* every run: 2048 increments of each element */
    strata_worker_destroy(w);
}

TEST_CASE(level2_kernels_on_their_cores)
{
    char path[512];
    scratch_path(path, sizeof path, "l2.json");
    strata_chip_callable c = {"wide", wide_orch, inc_kernels, 1};
    strata_handle h;
    strata_buffer b;
    strata_tensor t;
    strata_worker *w = l2_worker(&c, 64, &h, &b, &t);
    strata_tag tag = STRATA_INOUT;
    CHECK_OK(strata_trace_begin(path));
    CHECK_OK(strata_worker_run_chip(w, h, &(strata_task_args){&t, &tag, 1, NULL, 0}, NULL));
    CHECK_OK(strata_worker_run_chip(w, h, &(strata_task_args){&t, &tag, 1, NULL, 0}, NULL));
    CHECK_OK(strata_trace_end());
    uint64_t out[64];
    CHECK_OK(strata_worker_copy_from(w, out, b, 0, sizeof out));
    CHECK_EQ_U64(out[63], 2);
    strata_worker_destroy(w);
    const char *expect[] = {"--kernels", "128", "--callables", "wide", NULL};   /* which core ran which: the machine's */
    CHECK(check_trace(path, expect));
    scratch_remove();
}

/* ---- level 4: the engines and children below a worker child ---- */

/* Level-3 orchestration (in a worker child): chain3 on chip 0 over x, then
   SUB y = x + 1. Handles of the level-3 workers: chain3 1, plus 2. */
static int l3_trace_orch(strata_orch *o, const strata_task_args *args, const strata_call_config *cfg, void *ctx)
{
    (void)cfg;
    (void)ctx;
    strata_tag inout = STRATA_INOUT, in_out[2] = {STRATA_INPUT, STRATA_OUTPUT};
    int rc = strata_submit_next_level(o, 1, &(strata_task_args){&args->tensors[0], &inout, 1, NULL, 0}, NULL, 0);
    if (rc == STRATA_OK)
        rc = strata_submit_sub(o, 2, &(strata_task_args){args->tensors, in_out, 2, NULL, 0});
    return rc;
}

typedef struct l4_job {
    strata_handle orch;
    strata_tensor xy[2][2];
} l4_job;

/* one task on each of the two level-3 workers */
static int l4_trace_orch(strata_orch *o, const strata_task_args *args, const strata_call_config *cfg, void *ctx)
{
    (void)args;
    (void)cfg;
    l4_job *j = ctx;
    strata_tag tags[2] = {STRATA_INOUT, STRATA_OUTPUT};
    int rc = STRATA_OK;
    for (int k = 0; rc == STRATA_OK && k < 2; k++)
        rc = strata_submit_next_level(o, j->orch, &(strata_task_args){j->xy[k], tags, 2, NULL, 0}, NULL, k);
    return rc;
}

TEST_CASE(level4_tree_in_one_trace)
{
    char path[512];
    scratch_path(path, sizeof path, "l4.json");
    strata_worker_config cfg;
    strata_worker_config_init(&cfg, 4);
    cfg.shared_heap_bytes = 16 << 20;
    cfg.close_grace_ms = 500;
    strata_worker *w4;
    CHECK_OK(strata_worker_create(&cfg, &w4));
    for (int k = 0; k < 2; k++) {
        strata_worker *w3 = node_worker(1, 1, STRATA_ON_DEATH_RESTART, NULL);
        strata_chip_callable c = {"chain3", chain3_orch, inc_kernels, 1};
        strata_handle h;
        CHECK_OK(strata_worker_register_chip(w3, &c, &h));
        CHECK_EQ_U64(h, 1);
        CHECK_OK(strata_worker_register_sub_named(w3, "plus", plus_sub, NULL, &h));
        CHECK_EQ_U64(h, 2);
        int id;
        CHECK_OK(strata_worker_add_worker(w4, w3, &id));
    }
    l4_job j;
    CHECK_OK(strata_worker_register_orch_named(w4, "l3_trace_orch", l3_trace_orch, NULL, &j.orch));
    CHECK_OK(strata_worker_init(w4));
    uint64_t *p;
    for (int k = 0; k < 2; k++) {
        j.xy[k][0] = host_u64(w4, 1, &p);
        j.xy[k][1] = host_u64(w4, 1, &p);
    }
    CHECK_OK(strata_trace_begin(path));
    CHECK_OK(strata_worker_run(w4, l4_trace_orch, &j, NULL, NULL));
    CHECK_OK(strata_worker_run(w4, l4_trace_orch, &j, NULL, NULL));
    CHECK_OK(strata_trace_end());
    CHECK_EQ_U64(u64_of(&j.xy[1][1])[0], 7);   /* x = 6 after two runs of chain3: y = 7 */
    strata_worker_destroy(w4);
    /* the top's two tasks per run; below each worker child, per run, its chip
       task and SUB task (2 runs x 2 workers), their dispatch slices, kernels */
    const char *expect[] = {"--runs", "1,2", "--tasks-per-run", "2", "--edges", "", "--callables",
                            "l3_trace_orch,chain3,plus", "--deep-chip-tasks", "4", "--deep-sub-tasks", "4",
                            "--deep-dispatch", "8", "--kernels", "12", "--kernels-per-chip-task", "3", NULL};
    CHECK(check_trace(path, expect));
    scratch_remove();
}

TEST_MAIN(CASE(fork_while_tracing), CASE(memory_stays_flat_while_tracing), CASE(level2_kernel_arrows_follow_the_chain), CASE(level4_tree_in_one_trace), CASE(level2_kernels_on_their_cores), CASE(dag_slices_and_flows), CASE(death_in_kernel_recorded_and_traced), CASE(flight_recorder_without_trace),
          CASE(strata_trace_variable_and_a_second_window), CASE(trace_refusals), CASE(level2_scoped_tasks_keep_their_arrows))
