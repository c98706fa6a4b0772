/* mpi.*: remote level-3 workers on the ranks of an MPI job (include/strata/mpi.h).
 *
 * One SPMD program, run by tests/mpi/run.sh under mpiexec with three ranks and a
 * hard timeout, which then checks that no process of it is left. Rank 0 holds a
 * level-4 worker with one local level-3 child (worker 0) and ranks 1 and 2
 * (workers 1 and 2); every rank builds the same top worker and registers the
 * same names. Each case is named on the command line; rank 0 prints
 * "PASS <case>" when every check held. */
#define _GNU_SOURCE
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <dirent.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>

#include <strata/mpi.h>
#include <strata/strata.h>

static int rank;
static const char *case_name;

#define CHECK(cond)                                                                                       \
    do {                                                                                                  \
        if (!(cond)) {                                                                                    \
            fprintf(stderr, "FAIL %s (rank %d, %s:%d): CHECK(%s); last error: \"%s\"\n", case_name, rank,  \
                    __FILE__, __LINE__, #cond, strata_last_error());                                       \
            MPI_Abort(MPI_COMM_WORLD, 1);                                                                 \
        }                                                                                                 \
    } while (0)
#define CHECK_OK(expr) CHECK((expr) == STRATA_OK)
#define CHECK_ERROR_HAS(s) CHECK(strstr(strata_last_error(), (s)) != NULL)

static uint64_t *u64_of(const strata_tensor *t)
{
    return (uint64_t *)(uintptr_t)(t->addr + t->offset * strata_dtype_size(t->dtype));
}

/* in-core kernel: t[i] += scalars[0] */
static int add_kernel(const strata_task_args *a)
{
    uint64_t *p = u64_of(&a->tensors[0]);
    for (uint64_t i = 0; i < a->tensors[0].shape[0]; i++)
        p[i] += a->scalars[0];
    return 0;
}

static int add_chip_orch(strata_chip_orch *o, const strata_task_args *args, const strata_call_config *cfg)
{
    (void)cfg;
    strata_tag tag = STRATA_INOUT;
    return strata_chip_submit(o, 0, &(strata_task_args){args->tensors, &tag, 1, args->scalars, 1});
}

static const strata_kernel_entry add_kernels[] = {{0, STRATA_AIV, add_kernel}};

/* Level-3 orchestration, run on each level-3 worker: the add chip callable
   (handle 1 on every level-3 worker) over tensors[0] with scalars[0]. */
static int add_on_chip(strata_orch *o, const strata_task_args *args, const strata_call_config *cfg, void *ctx)
{
    (void)cfg;
    (void)ctx;
    strata_tag tag = STRATA_INOUT;
    return strata_submit_next_level(o, 1, &(strata_task_args){args->tensors, &tag, 1, args->scalars, 1}, NULL, 0);
}

static strata_worker *make_l3(void)
{
    static int ids[1] = {0};
    strata_worker_config cfg;
    strata_worker_config_init(&cfg, 3);
    cfg.device_ids = ids;
    cfg.ndevices = 1;
    cfg.num_sub_workers = 1;
    cfg.device_memory_bytes = 16 << 20;
    cfg.shared_heap_bytes = 4 << 20;
    cfg.close_grace_ms = 500;
    strata_worker *w;
    CHECK_OK(strata_worker_create(&cfg, &w));
    strata_chip_callable add = {"add", add_chip_orch, add_kernels, 1};
    strata_handle h;
    CHECK_OK(strata_worker_register_chip(w, &add, &h));
    CHECK(h == 1);
    return w;
}

/* The top worker, the same on every rank; `named`: whether this rank
   registers the orchestration function under its name. */
static strata_worker *make_top(bool named, strata_handle *orch)
{
    strata_worker_config cfg;
    strata_worker_config_init(&cfg, 4);
    cfg.shared_heap_bytes = 4 << 20;
    cfg.close_grace_ms = 500;
    strata_worker *w;
    CHECK_OK(strata_worker_create(&cfg, &w));
    if (named)
        CHECK_OK(strata_worker_register_orch_named(w, "add_on_chip", add_on_chip, NULL, orch));
    else
        CHECK_OK(strata_worker_register_orch(w, add_on_chip, NULL, orch));
    return w;
}

typedef struct job {
    strata_handle orch;
    strata_tensor t[3];     /* on workers 0, 1, 2 */
    uint64_t      add[3];
} job;

static int top_orch(strata_orch *o, const strata_task_args *args, const strata_call_config *cfg, void *ctx)
{
    (void)args;
    (void)cfg;
    job *j = ctx;
    strata_tag tag = STRATA_INOUT;
    for (int k = 0; k < 3; k++) {
        int rc = strata_submit_next_level(o, j->orch, &(strata_task_args){&j->t[k], &tag, 1, &j->add[k], 1}, NULL,
                                          k);
        if (rc)
            return rc;
    }
    return STRATA_OK;
}

/* Entries of a directory but . and .. */
static int count_entries(const char *path)
{
    DIR *d = opendir(path);
    int n = 0;
    for (struct dirent *e; d && (e = readdir(d));)
        n += e->d_name[0] != '.';
    if (d)
        closedir(d);
    return n;
}

static int count_lines(const char *path)
{
    FILE *f = fopen(path, "r");
    int n = 0;
    for (int ch; f && (ch = fgetc(f)) != EOF;)
        n += ch == '\n';
    if (f)
        fclose(f);
    return n;
}

/* The processes whose parent is pid. */
static int children_of(pid_t pid)
{
    DIR *d = opendir("/proc");
    int n = 0;
    for (struct dirent *e; d && (e = readdir(d));) {
        char path[300], buf[512];
        snprintf(path, sizeof path, "/proc/%s/stat", e->d_name);
        FILE *f = e->d_name[0] >= '1' && e->d_name[0] <= '9' ? fopen(path, "r") : NULL;
        size_t len = f ? fread(buf, 1, sizeof buf - 1, f) : 0;
        if (f)
            fclose(f);
        buf[len] = '\0';
        char *rp = strrchr(buf, ')');
        int ppid = 0;
        char state;
        if (rp && sscanf(rp + 2, "%c %d", &state, &ppid) == 2 && ppid == pid)
            n++;
    }
    if (d)
        closedir(d);
    return n;
}

/* A serving rank's whole part in a case where it only serves: the top worker
   as on rank 0 (the name registered), its level-3 worker served until rank
   0's top closes (or strata_mpi_finalize sends it away), then closed. */
static void serve_until_closed(void)
{
    strata_handle h;
    strata_worker *top = make_top(true, &h), *w = make_l3();
    CHECK_OK(strata_mpi_serve(top, w));
    CHECK(strata_worker_state(w) == STRATA_STATE_CLOSED);
    strata_worker_destroy(w);
    strata_worker_destroy(top);
}

/* Rank 0's tree: worker 0 local, workers 1 and 2 on ranks 1 and 2. */
static strata_worker *tree(bool named, strata_handle *orch)
{
    strata_worker *top = make_top(named, orch);
    int id;
    CHECK_OK(strata_worker_add_worker(top, make_l3(), &id));
    CHECK(id == 0);
    for (int r = 1; r <= 2; r++) {
        CHECK_OK(strata_mpi_add_rank(top, r, &id));
        CHECK(id == r);
    }
    return top;
}

static void case_round_trips(void)
{
    if (rank != 0) {
        serve_until_closed();
        return;
    }
    job j;
    strata_worker *top = tree(true, &j.orch);
    CHECK_OK(strata_worker_init(top));
    uint64_t shape[1] = {8}, init[8] = {1, 2, 3, 4, 5, 6, 7, 8}, out[8];
    strata_buffer b[3];
    void *local;
    CHECK_OK(strata_worker_host_alloc(top, sizeof init, &local));
    memcpy(local, init, sizeof init);
    j.t[0] = strata_tensor_make(local, STRATA_U64, 1, shape);
    for (int k = 1; k <= 2; k++) {
        CHECK_OK(strata_worker_malloc(top, k, sizeof init, &b[k]));
        CHECK_OK(strata_worker_copy_to(top, b[k], 0, init, sizeof init));
        j.t[k] = strata_tensor_make((void *)(uintptr_t)b[k].addr, STRATA_U64, 1, shape);
    }
    for (int k = 0; k < 3; k++)
        j.add[k] = (uint64_t)(k + 1) * 10;
    /* a thousand runs leave descriptors, mappings and processes as they were
       (the baseline taken after MPI_Init and the first run) */
    CHECK_OK(strata_worker_run(top, top_orch, &j, NULL, NULL));
    int fds = count_entries("/proc/self/fd"), maps = count_lines("/proc/self/maps"), kids = children_of(getpid());
    for (int run = 2; run <= 1000; run++)
        CHECK_OK(strata_worker_run(top, top_orch, &j, NULL, NULL));
    CHECK(count_entries("/proc/self/fd") == fds);
    CHECK(count_lines("/proc/self/maps") == maps);
    CHECK(children_of(getpid()) == kids);
    for (int i = 0; i < 8; i++)
        CHECK(((uint64_t *)local)[i] == init[i] + 10000);
    for (int k = 1; k <= 2; k++) {
        CHECK_OK(strata_worker_copy_from(top, out, b[k], 0, sizeof out));
        for (int i = 0; i < 8; i++)
            CHECK(out[i] == init[i] + 1000 * (uint64_t)(k + 1) * 10);
    }
    /* this host's memory is not a remote worker's */
    j.t[1] = j.t[0];
    CHECK(strata_worker_run(top, top_orch, &j, NULL, NULL) == STRATA_EINVAL);
    CHECK_ERROR_HAS("remote worker 1 (rank 1) cannot see");
    pid_t p;
    CHECK_OK(strata_worker_child_pid(top, 2, &p));
    CHECK(p > 0);
    CHECK_OK(strata_worker_free(top, b[1]));
    CHECK_OK(strata_worker_close(top));
    strata_worker_destroy(top);
}

/* The job's trace: rank 0 writes it, the serving ranks' events come back
   with their answers (their engines, chips and kernels, on rank 0's clock);
   tests/trace/check_trace.py checks it. */
static void case_traced_job(const char *dir)
{
    if (rank != 0) {
        serve_until_closed();
        return;
    }
    job j;
    strata_worker *top = tree(true, &j.orch);
    CHECK_OK(strata_worker_init(top));
    uint64_t shape[1] = {8}, init[8] = {0};
    strata_buffer b[3];
    void *local;
    CHECK_OK(strata_worker_host_alloc(top, sizeof init, &local));
    memset(local, 0, sizeof init);
    j.t[0] = strata_tensor_make(local, STRATA_U64, 1, shape);
    for (int k = 1; k <= 2; k++) {
        CHECK_OK(strata_worker_malloc(top, k, sizeof init, &b[k]));
        CHECK_OK(strata_worker_copy_to(top, b[k], 0, init, sizeof init));
        j.t[k] = strata_tensor_make((void *)(uintptr_t)b[k].addr, STRATA_U64, 1, shape);
        j.add[k] = 1;
    }
    j.add[0] = 1;
    char path[512], cmd[1400];
    snprintf(path, sizeof path, "%s/job.json", dir);
    CHECK_OK(strata_trace_begin(path));
    for (int run = 1; run <= 3; run++)
        CHECK_OK(strata_worker_run(top, top_orch, &j, NULL, NULL));
    CHECK_OK(strata_trace_end());
    CHECK_OK(strata_worker_close(top));
    strata_worker_destroy(top);
    /* three tasks a run (a local and two remote level-3 workers), each one
       chip task with one kernel below it */
    snprintf(cmd, sizeof cmd, "/usr/bin/python3 %s %s --runs 1,2,3 --tasks-per-run 3 --edges '' --deep-chip-tasks 9 "
             "--kernels 9 --kernels-per-chip-task 1 --slack-us 200 --callables add_on_chip,add", STRATA_TEST_CHECK_TRACE,
             path);
    CHECK(system(cmd) == 0);
}

/* A SUB function under the orchestration function's name (rank 2). */
static int sub_named_like_the_orch(const strata_task_args *args, void *ctx)
{
    (void)args;
    (void)ctx;
    return 0;
}

/* Rank 2 registered the name as another kind: rank 0's init fails naming
   both kinds; nothing is left. */
static void case_callable_of_another_kind(void)
{
    strata_handle h;
    if (rank != 0) {
        strata_worker *top;
        if (rank == 2) {
            strata_worker_config cfg;
            strata_worker_config_init(&cfg, 4);
            cfg.shared_heap_bytes = 4 << 20;
            CHECK_OK(strata_worker_create(&cfg, &top));
            CHECK_OK(strata_worker_register_sub_named(top, "add_on_chip", sub_named_like_the_orch, NULL, &h));
        } else {
            top = make_top(true, &h);
        }
        strata_worker *w = make_l3();
        int rc = strata_mpi_serve(top, w);
        if (rank == 2) {
            CHECK(rc == STRATA_EINVAL);
            CHECK_ERROR_HAS("is an orchestration function on rank 0 and a SUB function here");
        } else {
            CHECK_OK(rc);
        }
        strata_worker_destroy(w);
        strata_worker_destroy(top);
        return;
    }
    strata_worker *top = tree(true, &h);
    CHECK(strata_worker_init(top) == STRATA_EINVAL);
    CHECK_ERROR_HAS("rank 2: callable 'add_on_chip' is an orchestration function on rank 0 and a SUB function here");
    strata_worker_destroy(top);
}

/* Rank `lacking` lacks the name: rank 0's init fails naming it; every rank
   leaves strata_mpi_serve (the ones never reached when strata_mpi_finalize
   tells them), nothing is left. */
static void case_missing_callable(int lacking)
{
    if (rank != 0) {
        strata_handle h;
        strata_worker *top = make_top(rank != lacking, &h), *w = make_l3();
        int rc = strata_mpi_serve(top, w);
        if (rank == lacking) {
            CHECK(rc == STRATA_ENOENT);
            CHECK_ERROR_HAS("callable 'add_on_chip' (orchestration function) is not registered here");
        } else {
            CHECK_OK(rc);
        }
        strata_worker_destroy(w);
        strata_worker_destroy(top);
        return;
    }
    job j;
    strata_worker *top = tree(true, &j.orch);
    CHECK(strata_worker_init(top) == STRATA_ENOENT);
    char want[96];
    snprintf(want, sizeof want, "rank %d: callable 'add_on_chip' (orchestration function) is not registered here",
             lacking);
    CHECK_ERROR_HAS(want);
    CHECK(strata_worker_state(top) == STRATA_STATE_NEW);
    strata_worker_destroy(top);
}

/* Level-3 orchestration that, on rank 2, kills its own process (a rank that
   dies); elsewhere does nothing. `rank` is the process's MPI rank (a local
   worker child of rank 0 has 0). */
static int die(strata_orch *o, const strata_task_args *args, const strata_call_config *cfg, void *ctx)
{
    (void)o;
    (void)args;
    (void)cfg;
    (void)ctx;
    if (rank == 2)
        kill(getpid(), SIGKILL);
    return 0;
}

/* Level-3 orchestration that, on rank 2, never returns (a rank alive but
   stuck). */
static int stuck(strata_orch *o, const strata_task_args *args, const strata_call_config *cfg, void *ctx)
{
    (void)o;
    (void)args;
    (void)cfg;
    (void)ctx;
    while (rank == 2)
        sleep(1);
    return 0;
}

/* A fault on rank 2 during a task: `which` is "die" or "stuck". Without ULFM
   the job ends (the driver checks it ends, promptly, with a message naming
   the rank, and that nothing is left); rank 0 never hangs. */
static void case_fault(const char *which)
{
    strata_handle h, bad;
    strata_worker *top = make_top(true, &h);
    CHECK_OK(strata_worker_register_orch_named(top, which, strcmp(which, "die") == 0 ? die : stuck, NULL, &bad));
    if (rank != 0) {
        strata_worker *w = make_l3();
        (void)strata_mpi_serve(top, w);   /* rank 2 never returns */
        strata_worker_destroy(w);
        strata_worker_destroy(top);
        return;
    }
    int id;
    CHECK_OK(strata_worker_add_worker(top, make_l3(), &id));
    for (int r = 1; r <= 2; r++)
        CHECK_OK(strata_mpi_add_rank(top, r, &id));
    CHECK_OK(strata_worker_init(top));
    job j = {.orch = bad};
    strata_buffer b[3];
    uint64_t shape[1] = {1};
    void *local;
    CHECK_OK(strata_worker_host_alloc(top, 8, &local));
    j.t[0] = strata_tensor_make(local, STRATA_U64, 1, shape);
    for (int k = 1; k <= 2; k++) {
        CHECK_OK(strata_worker_malloc(top, k, 8, &b[k]));
        j.t[k] = strata_tensor_make((void *)(uintptr_t)b[k].addr, STRATA_U64, 1, shape);
    }
    strata_call_config cfg = {.timeout_ms = 300};
    int rc = strata_worker_run(top, top_orch, &j, NULL, &cfg);
    /* only with ULFM does the run return; then the rank is a dead child */
    CHECK(rc == STRATA_ECHILD || rc == STRATA_ETIMEDOUT);
    fprintf(stderr, "rank 0: the run returned %s: %s\n", strata_status_name(rc), strata_last_error());
    strata_worker_destroy(top);
}

/* Rank 0 killed after init: the job ends, its local children with it. */
static void case_top_killed(void)
{
    strata_handle h;
    strata_worker *top = make_top(true, &h);
    if (rank != 0) {
        strata_worker *w = make_l3();
        (void)strata_mpi_serve(top, w);
        strata_worker_destroy(w);
        strata_worker_destroy(top);
        return;
    }
    int id;
    CHECK_OK(strata_worker_add_worker(top, make_l3(), &id));
    for (int r = 1; r <= 2; r++)
        CHECK_OK(strata_mpi_add_rank(top, r, &id));
    CHECK_OK(strata_worker_init(top));
    fprintf(stderr, "rank 0: initialised; killing myself\n");
    kill(getpid(), SIGKILL);
}

/* Rank 0 builds the tree and destroys it without init: the serving ranks
   leave strata_mpi_serve when strata_mpi_finalize tells them, their workers
   never started. */
static void case_top_never_initialised(void)
{
    if (rank != 0) {
        serve_until_closed();
        return;
    }
    strata_handle h;
    strata_worker *top = tree(true, &h);
    strata_worker_destroy(top);
}

/* Copy tasks in the graph, ordered by their tags: this host -> rank 1, a task
   there, rank 1 -> rank 2 (rank to rank), a task there, rank 2 -> this host;
   and a copy within this host. */
typedef struct copies {
    strata_handle orch;
    strata_tensor x, y, z, b1, b2;
} copies;

static int copy_orch(strata_orch *o, const strata_task_args *args, const strata_call_config *cfg, void *ctx)
{
    (void)args;
    (void)cfg;
    copies *c = ctx;
    strata_tag tag = STRATA_INOUT;
    uint64_t ten = 10, twenty = 20;
    int rc = strata_submit_copy(o, &c->b1, &c->x);
    if (rc == STRATA_OK)
        rc = strata_submit_next_level(o, c->orch, &(strata_task_args){&c->b1, &tag, 1, &ten, 1}, NULL, 1);
    if (rc == STRATA_OK)
        rc = strata_submit_copy(o, &c->b2, &c->b1);
    if (rc == STRATA_OK)
        rc = strata_submit_next_level(o, c->orch, &(strata_task_args){&c->b2, &tag, 1, &twenty, 1}, NULL, 2);
    if (rc == STRATA_OK)
        rc = strata_submit_copy(o, &c->y, &c->b2);
    if (rc == STRATA_OK)
        rc = strata_submit_copy(o, &c->z, &c->x);
    return rc;
}

static int bad_copy_orch(strata_orch *o, const strata_task_args *args, const strata_call_config *cfg, void *ctx)
{
    (void)args;
    (void)cfg;
    copies *c = ctx;
    strata_tensor shorter = c->x;
    shorter.shape[0] = 4;
    return strata_submit_copy(o, &c->b1, &shorter);
}

static void case_copy_tasks(void)
{
    if (rank != 0) {
        serve_until_closed();
        return;
    }
    copies c;
    strata_worker *top = tree(true, &c.orch);
    CHECK_OK(strata_worker_init(top));
    uint64_t shape[1] = {8};
    void *p[3];
    for (int i = 0; i < 3; i++)
        CHECK_OK(strata_worker_host_alloc(top, 64, &p[i]));
    c.x = strata_tensor_make(p[0], STRATA_U64, 1, shape);
    c.y = strata_tensor_make(p[1], STRATA_U64, 1, shape);
    c.z = strata_tensor_make(p[2], STRATA_U64, 1, shape);
    strata_buffer b1, b2;
    CHECK_OK(strata_worker_malloc(top, 1, 64, &b1));
    CHECK_OK(strata_worker_malloc(top, 2, 64, &b2));
    c.b1 = strata_tensor_make((void *)(uintptr_t)b1.addr, STRATA_U64, 1, shape);
    c.b2 = strata_tensor_make((void *)(uintptr_t)b2.addr, STRATA_U64, 1, shape);
    uint64_t *x = p[0], *y = p[1], *z = p[2];
    for (int run = 1; run <= 50; run++) {
        for (int i = 0; i < 8; i++)
            x[i] = (uint64_t)(run * 100 + i);
        CHECK_OK(strata_worker_run(top, copy_orch, &c, NULL, NULL));
        for (int i = 0; i < 8; i++) {
            CHECK(y[i] == x[i] + 30);
            CHECK(z[i] == x[i]);
        }
    }
    CHECK(strata_worker_run(top, bad_copy_orch, &c, NULL, NULL) == STRATA_EINVAL);
    CHECK_ERROR_HAS("dst's view holds 64 bytes and src's 32");
    CHECK_OK(strata_worker_close(top));
    strata_worker_destroy(top);
}

int main(int argc, char **argv)
{
    int provided;
    MPI_Init_thread(&argc, &argv, MPI_THREAD_FUNNELED, &provided);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    case_name = argc > 1 ? argv[1] : "";
    CHECK_OK(strata_mpi_init(MPI_COMM_WORLD));
    if (strcmp(case_name, "round_trips") == 0)
        case_round_trips();
    else if (strcmp(case_name, "missing_callable") == 0)
        case_missing_callable(2);
    else if (strcmp(case_name, "missing_callable_first_rank") == 0)
        case_missing_callable(1);
    else if (strcmp(case_name, "top_never_initialised") == 0)
        case_top_never_initialised();
    else if (strcmp(case_name, "copy_tasks") == 0)
        case_copy_tasks();
    else if (strcmp(case_name, "callable_of_another_kind") == 0)
        case_callable_of_another_kind();
    else if (strcmp(case_name, "remote_rank_killed") == 0)
        case_fault("die");
    else if (strcmp(case_name, "remote_rank_stuck") == 0)
        case_fault("stuck");
    else if (strcmp(case_name, "top_killed") == 0)
        case_top_killed();
    else if (strcmp(case_name, "traced_job") == 0)
        case_traced_job(argc > 2 ? argv[2] : "/tmp");
    else {
        if (rank == 0)
            fprintf(stderr, "test_mpi: unknown case '%s'\n", case_name);
        MPI_Abort(MPI_COMM_WORLD, 2);
    }
    CHECK_OK(strata_mpi_finalize());
    MPI_Barrier(MPI_COMM_WORLD);
    if (rank == 0)
        printf("PASS %s\n", case_name);
    MPI_Finalize();
    return 0;
}
