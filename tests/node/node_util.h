/* Test support for node (L3) tests: a worker with chips and SUB children, a chip
 * callable that adds one to every element of a U64 tensor, SUB functions, and
 * checks of the process table. */
#ifndef STRATA_TEST_NODE_UTIL_H
#define STRATA_TEST_NODE_UTIL_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE   /* syscall(SYS_pidfd_open) */
#endif

#include <dirent.h>
#include <poll.h>
#include <sys/syscall.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"

static inline uint64_t *u64_of(const strata_tensor *t)
{
    return (uint64_t *)(uintptr_t)(t->addr + t->offset * strata_dtype_size(t->dtype));
}

/* in-core kernel: t[i] += scalars[0] */
static inline int add_kernel(const strata_task_args *a)
{
    uint64_t *p = u64_of(&a->tensors[0]);
    for (uint64_t i = 0; i < a->tensors[0].shape[0]; i++)
        p[i] += a->scalars[0];
    return 0;
}

/* chip orchestration: one in-core task adding scalars[0] (default 1) */
static inline int add_chip_orch(strata_chip_orch *o, const strata_task_args *args, const strata_call_config *cfg)
{
    (void)cfg;
    strata_tag tag = STRATA_INOUT;
    uint64_t k = args->nscalars ? args->scalars[0] : 1;
    return strata_chip_submit(o, 0, &(strata_task_args){args->tensors, &tag, 1, &k, 1});
}

static const strata_kernel_entry add_kernels[] = {{0, STRATA_AIV, add_kernel}};

/* SUB: tensors[last][0] = sum of tensors[0..last)[0] */
static inline int sum_sub(const strata_task_args *a, void *ctx)
{
    (void)ctx;
    uint64_t s = 0;
    for (uint32_t i = 0; i + 1 < a->ntensors; i++)
        s += u64_of(&a->tensors[i])[0];
    u64_of(&a->tensors[a->ntensors - 1])[0] = s;
    return 0;
}

/* A chain of ntasks SUB tasks (default 1) on one INOUT tensor, each given one
   scalar: the orchestration function of sub_chain_orch. */
typedef struct sub_chain {
    strata_handle sub;
    strata_tensor t;
    uint64_t      scalar;
    int           ntasks;   /* 0 counts as 1 */
} sub_chain;

static inline int sub_chain_orch(strata_orch *o, const strata_task_args *args, const strata_call_config *cfg,
                                 void *ctx)
{
    (void)args;
    (void)cfg;
    sub_chain *j = ctx;
    strata_tag tag = STRATA_INOUT;
    for (int i = 0; i < (j->ntasks ? j->ntasks : 1); i++) {
        int rc = strata_submit_sub(o, j->sub, &(strata_task_args){&j->t, &tag, 1, &j->scalar, 1});
        if (rc != STRATA_OK)
            return rc;
    }
    return STRATA_OK;
}

/* A level-3 worker with nchips chips (device ids 10, 11, ...) and nsubs SUB
   children, the add callable registered as *chip_h. Not yet initialised. */
static inline strata_worker *node_worker(uint32_t nchips, uint32_t nsubs, strata_death_policy policy,
                                         strata_handle *chip_h)
{
    static int ids[8] = {10, 11, 12, 13, 14, 15, 16, 17};
    strata_worker_config cfg;
    strata_worker_config_init(&cfg, 3);
    cfg.device_ids = ids;
    cfg.ndevices = nchips;
    cfg.num_sub_workers = nsubs;
    cfg.on_child_death = policy;
    cfg.device_memory_bytes = 64 << 20;
    cfg.shared_heap_bytes = 16 << 20;
    cfg.close_grace_ms = 500;
    strata_worker *w;
    CHECK_OK(strata_worker_create(&cfg, &w));
    strata_chip_callable c = {"add", add_chip_orch, add_kernels, 1};
    if (chip_h)
        CHECK_OK(strata_worker_register_chip(w, &c, chip_h));
    return w;
}

/* A 1-D U64 tensor over n elements of shared host memory. */
static inline strata_tensor host_u64(strata_worker *w, uint64_t n, uint64_t **data)
{
    void *p;
    CHECK_OK(strata_worker_host_alloc(w, n * 8, &p));
    memset(p, 0, n * 8);
    *data = p;
    uint64_t shape[1] = {n};
    return strata_tensor_make(p, STRATA_U64, 1, shape);
}

/* The state letter and parent pid of process pid (/proc/<pid>/stat); false
   when it does not exist. */
static inline bool proc_stat(pid_t pid, char *state, pid_t *ppid)
{
    char path[64], buf[512];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return false;
    size_t len = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[len] = '\0';
    char *rp = strrchr(buf, ')');   /* the command name may hold spaces and parentheses */
    int pp = 0;
    if (!rp || sscanf(rp + 2, "%c %d", state, &pp) != 2)
        return false;
    *ppid = pp;
    return true;
}

/* The number of this process's children in state Z (zombies). */
static inline int zombie_children(void)
{
    DIR *d = opendir("/proc");
    int n = 0;
    pid_t me = getpid();
    for (struct dirent *e; d && (e = readdir(d));) {
        char state;
        pid_t ppid;
        if (e->d_name[0] >= '1' && e->d_name[0] <= '9' && proc_stat((pid_t)atoi(e->d_name), &state, &ppid) &&
            ppid == me && state == 'Z')
            n++;
    }
    if (d)
        closedir(d);
    return n;
}

/* Whether process pid exists (and is not a zombie). */
static inline bool process_alive(pid_t pid)
{
    char state;
    pid_t ppid;
    return proc_stat(pid, &state, &ppid) && state != 'Z' && state != 'X';
}

static inline void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0)
        ;
}

/* Wait (up to 10 s) until process pid has exited entirely (all its threads:
   /proc shows a zombie leader earlier, while other threads still exit), which
   is when its pidfd turns readable. */
static inline bool wait_gone(pid_t pid)
{
    int fd = (int)syscall(SYS_pidfd_open, pid, 0);
    if (fd < 0) {
        uint64_t deadline = test_now_ns() + 10000000000ull;
        while (process_alive(pid) && test_now_ns() < deadline)
            sleep_ms(2);
        return !process_alive(pid);
    }
    struct pollfd p = {.fd = fd, .events = POLLIN};
    int r = poll(&p, 1, 10000);
    close(fd);
    return r == 1;
}

/* Wait (up to 10 s) until worker w knows child `worker` is dead: its spawner
   reaps a killed child and publishes the death a moment after the process is
   gone, and strata_worker_child_pid answers STRATA_ECHILD from then on. */
static inline bool known_dead(strata_worker *w, int worker)
{
    uint64_t deadline = test_now_ns() + 10000000000ull;
    pid_t p;
    while (strata_worker_child_pid(w, worker, &p) == STRATA_OK) {
        if (test_now_ns() > deadline)
            return false;
        sleep_ms(1);
    }
    return true;
}

/* The descriptors of process pid whose link names contain `what`
   ("socket:", "eventfd", "pidfd"). */
static inline int count_fds_named(pid_t pid, const char *what)
{
    char dir[64], path[320], target[128];
    snprintf(dir, sizeof dir, "/proc/%d/fd", (int)pid);
    DIR *d = opendir(dir);
    int n = 0;
    for (struct dirent *e; d && (e = readdir(d));) {
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        ssize_t len = readlink(path, target, sizeof target - 1);
        if (len > 0) {
            target[len] = '\0';
            n += strstr(target, what) != NULL;
        }
    }
    if (d)
        closedir(d);
    return n;
}

/* The descriptors this process has open. */
static inline int open_fds(void)
{
    return count_fds_named(getpid(), "");
}

#endif
