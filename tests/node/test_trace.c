/* node.trace: the trace of a node worker (include/strata/trace.h) and the
 * flight recorder of its children (docs/observability.md). Each case writes a
 * trace into the test's scratch directory and has tests/trace/check_trace.py
 * (a JSON parser, not a pattern match) check it: every task's slice on its
 * tracks, the flows of a known DAG, a death as an instant, names of every
 * track; the flight recorder's summary is checked in the death's message and
 * its postmortem file parsed the same way. */
#include "node_util.h"

#include <errno.h>
#include <spawn.h>
#include <sys/wait.h>

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
    const char *expect[] = {"--runs", "1,2", "--tasks-per-run", "4", "--edges", "1>2,1>3,2>4,3>4",
                            "--kernels-per-chip-task", "3", "--callables", "chain3,plus,sum", NULL};
    CHECK(check_trace(path, expect));
    scratch_remove();
}

TEST_MAIN(CASE(dag_slices_and_flows))
