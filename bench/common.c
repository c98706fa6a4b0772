/* What the benchmarks share: see common.h. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE   /* clock_gettime, strtok_r, syscall: however it is built */
#endif
#include "common.h"

#include <linux/filter.h>
#include <linux/perf_event.h>
#include <linux/seccomp.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#include <dirent.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

uint64_t bench_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

int bench_cmp_u64(const void *x, const void *y)
{
    uint64_t a = *(const uint64_t *)x, b = *(const uint64_t *)y;
    return (a > b) - (a < b);
}

uint64_t bench_median_u64(uint64_t *v, uint32_t n)
{
    qsort(v, n, sizeof v[0], bench_cmp_u64);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

uint64_t bench_percentile(const uint64_t *sorted, uint32_t n, double q)
{
    if (n == 0)
        return 0;
    double r = q * n;
    uint32_t k = (uint32_t)r;
    if ((double)k < r)
        k++;
    if (k == 0)
        k = 1;
    return sorted[k - 1];
}

bool bench_parse_u32(const char *s, uint32_t *out)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || end == s || *end || v > UINT32_MAX || s[0] == '-')
        return false;
    *out = (uint32_t)v;
    return true;
}

bool bench_parse_u32_list(const char *s, uint32_t *out, uint32_t cap, uint32_t *n)
{
    char buf[256];
    snprintf(buf, sizeof buf, "%s", s);
    *n = 0;
    for (char *save = NULL, *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        if (*n == cap || !bench_parse_u32(tok, &out[*n]))
            return false;
        (*n)++;
    }
    return *n > 0;
}

void bench_dag_cli_init(bench_dag_cli *c, int argc, char **argv)
{
    *c = (bench_dag_cli){.reps = 5, .warmup = 0, .warmup_tasks = 100000, .min_tasks = 200000, .n = 100000,
                         .width = 64, .rounds = 1500, .tiles = {8, 16, 24}, .ntiles = 3};
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], "--real") == 0) {
            c->real = true;
            c->reps = 3;
            c->min_tasks = 0;
            c->warmup = 1;
        }
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], "--quick") == 0) {
            c->quick = c->verify = true;
            c->reps = 2;
            c->min_tasks = 0;
            c->warmup_tasks = 0;
            c->n = 2000;
            c->rounds = 20;
            c->tiles[0] = 4;
            c->tiles[1] = 6;
            c->ntiles = 2;
        }
}

const char *bench_option_value(const char *prog, int argc, char **argv, int *i)
{
    if (*i + 1 >= argc) {
        fprintf(stderr, "%s: %s needs a value\n", prog, argv[*i]);
        return NULL;
    }
    return argv[++*i];
}

int bench_dag_cli_option(bench_dag_cli *c, const char *prog, int argc, char **argv, int *i)
{
    const char *a = argv[*i];
    if (strcmp(a, "--quick") == 0 || strcmp(a, "--real") == 0)
        return 1;   /* applied by bench_dag_cli_init */
    if (strcmp(a, "--verify") == 0) {
        c->verify = true;
        return 1;
    }
    if (strcmp(a, "--samples") == 0) {
        c->samples = true;
        return 1;
    }
    static const char *const with_value[] = {"--only", "--reps", "--warmup", "--min-tasks",
                                             "--n", "--width", "--rounds", "--tiles", "--syscall-cost"};
    size_t k = 0;
    while (k < sizeof with_value / sizeof with_value[0] && strcmp(a, with_value[k]) != 0)
        k++;
    if (k == sizeof with_value / sizeof with_value[0])
        return 0;
    const char *v = bench_option_value(prog, argc, argv, i);
    if (!v)
        return -1;
    uint32_t x = 0;
    bool ok = true;
    switch (k) {
    case 0: c->only = v; break;
    case 1: ok = bench_parse_u32(v, &c->reps); break;
    case 2: ok = bench_parse_u32(v, &c->warmup) && c->warmup >= 1; break;
    case 3: ok = bench_parse_u32(v, &x); c->min_tasks = x; break;
    case 4: ok = bench_parse_u32(v, &c->n); break;
    case 5: ok = bench_parse_u32(v, &c->width) && c->width >= 1; break;
    case 6: ok = bench_parse_u32(v, &c->rounds); break;
    case 8: ok = bench_parse_u32(v, &c->syscall_cost_ns); break;
    default: ok = bench_parse_u32_list(v, c->tiles, sizeof c->tiles / sizeof c->tiles[0], &c->ntiles); break;
    }
    if (!ok) {
        fprintf(stderr, "%s: bad value '%s' for %s\n", prog, v, a);
        return -1;
    }
    return 1;
}

void bench_dag_cli_usage(FILE *f, const char *prog, const char *extra)
{
    fprintf(f,
            "usage: %s [options]\n"
            "  --only LIST      workloads to run, comma-separated names or prefixes:\n"
            "                   independent, chain, fanout_fanin, cholesky (all T), cholesky16, ...\n"
            "  --reps N         timed runs per workload (default 5; raised so each workload times\n"
            "                   at least --min-tasks tasks)\n"
            "  --min-tasks N    default 200000; 0 = exactly --reps runs\n"
            "  --warmup N       untimed runs first (default: enough runs for 100000 tasks, at least 1)\n"
            "  --n N            tasks of independent and chain (default 100000)\n"
            "  --width N        fan-out width (default 64)\n"
            "  --rounds N       fan-out/fan-in rounds (default 1500)\n"
            "  --tiles LIST     Cholesky tile counts T, comma-separated (default 8,16,24)\n"
            "  --syscall-cost NS  make every system call cost about NS ns (a seccomp filter), to\n"
            "                   measure as on a machine kind whose system calls are slow\n"
            "%s"
            "  --verify         one more run per workload that checks the order tasks ran in\n"
            "  --samples        print every timed run's ns/task\n"
            "  --quick          tiny sizes, --verify, for a smoke test\n"
            "  --real           Cholesky only, with real float kernels on 64 x 64 tiles (bench/tiles.h),\n"
            "                   the input reloaded before every run and the factor checked against a\n"
            "                   double-precision reference; defaults then: --reps 3 --min-tasks 0 --warmup 1\n",
            prog, extra);
}

bool bench_dag_cli_selects(const bench_dag_cli *c, const char *name)
{
    return bench_selected(c->only, name, true) && (!c->real || strncmp(name, "cholesky", 8) == 0);
}

void bench_dag_cli_runs(const bench_dag_cli *c, uint32_t ntasks, uint32_t *reps, uint32_t *warmup)
{
    *reps = c->reps;
    if (ntasks && c->min_tasks && *reps > 0 && (uint64_t)*reps * ntasks < c->min_tasks)
        *reps = (uint32_t)((c->min_tasks + ntasks - 1) / ntasks);
    *warmup = c->warmup;
    if (*warmup == 0) {
        *warmup = 1;
        if (ntasks && (uint64_t)ntasks < c->warmup_tasks)
            *warmup = (uint32_t)((c->warmup_tasks + ntasks - 1) / ntasks);
    }
}

void bench_per_task(uint64_t *samples, uint64_t *submits, uint32_t reps, uint32_t ntasks, double *median_ns,
                    double *min_ns, double *submit_ns)
{
    *median_ns = *min_ns = *submit_ns = 0.0;
    if (reps == 0 || ntasks == 0)
        return;
    uint64_t lo = samples[0];
    for (uint32_t r = 1; r < reps; r++)
        lo = samples[r] < lo ? samples[r] : lo;
    *min_ns = (double)lo / ntasks;
    *median_ns = (double)bench_median_u64(samples, reps) / ntasks;
    *submit_ns = (double)bench_median_u64(submits, reps) / ntasks;
}

void bench_print_sample(const char *name, uint32_t r, uint64_t sample_ns, uint64_t submit_ns, uint32_t ntasks)
{
    printf("#   %s run %u: %.1f ns/task, submit %.1f ns/task\n", name, r,
           ntasks ? (double)sample_ns / ntasks : 0.0, ntasks ? (double)submit_ns / ntasks : 0.0);
}

bool bench_selected(const char *only, const char *name, bool prefix)
{
    if (!only)
        return true;
    char buf[256];
    snprintf(buf, sizeof buf, "%s", only);
    for (char *save = NULL, *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save))
        if (prefix ? strncmp(name, tok, strlen(tok)) == 0 : strcmp(name, tok) == 0)
            return true;
    return false;
}

void bench_print_machine(const char *runtime, const char *extra)
{
    char model[256] = "unknown";
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (f) {
        char line[512];
        while (fgets(line, sizeof line, f)) {
            if (strncmp(line, "model name", 10) == 0) {
                const char *c = strchr(line, ':');
                if (c) {
                    c++;
                    while (*c == ' ' || *c == '\t')
                        c++;
                    snprintf(model, sizeof model, "%s", c);
                    model[strcspn(model, "\n")] = '\0';
                }
                break;
            }
        }
        fclose(f);
    }
    printf("# %s, %ld online CPUs, %s%s\n", runtime, sysconf(_SC_NPROCESSORS_ONLN), model, extra);
}

int bench_count_dir(const char *path)
{
    DIR *d = opendir(path);
    int n = 0;
    for (struct dirent *e; d && (e = readdir(d));)
        n += e->d_name[0] != '.';
    if (d)
        closedir(d);
    return n;
}

long bench_rss_kib(void)
{
    FILE *f = fopen("/proc/self/statm", "re");
    long pages = 0, resident = 0;
    if (f) {
        if (fscanf(f, "%ld %ld", &pages, &resident) != 2)
            resident = 0;
        fclose(f);
    }
    return resident * (sysconf(_SC_PAGESIZE) / 1024);
}

bool bench_proc_stat(int pid, char *state, int *ppid)
{
    char path[64], buf[512];
    snprintf(path, sizeof path, "/proc/%d/stat", pid);
    FILE *f = fopen(path, "re");
    if (!f)
        return false;
    size_t len = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[len] = '\0';
    char *rp = strrchr(buf, ')');   /* the command name may hold spaces and parentheses */
    char st = '?';
    int pp = 0;
    if (!rp || sscanf(rp + 2, "%c %d", &st, &pp) != 2)
        return false;
    *state = st;
    *ppid = pp;
    return true;
}

/* ---- system calls, counted by the kernel ---- */

static char syscalls_why[256] = "not opened";

/* The id of the raw_syscalls:sys_enter tracepoint, from tracefs or debugfs;
   -1 with the reason in syscalls_why. */
static long long sys_enter_id(void)
{
    static const char *const paths[] = {"/sys/kernel/tracing/events/raw_syscalls/sys_enter/id",
                                        "/sys/kernel/debug/tracing/events/raw_syscalls/sys_enter/id"};
    for (size_t i = 0; i < sizeof paths / sizeof paths[0]; i++) {
        FILE *f = fopen(paths[i], "re");
        if (!f)
            continue;
        long long id = -1;
        if (fscanf(f, "%lld", &id) != 1)
            id = -1;
        fclose(f);
        if (id >= 0)
            return id;
    }
    snprintf(syscalls_why, sizeof syscalls_why,
             "no raw_syscalls:sys_enter tracepoint (as root: mount -t tracefs nodev /sys/kernel/tracing)");
    return -1;
}

int bench_syscalls_open(void)
{
    long long id = sys_enter_id();
    if (id < 0)
        return -1;
    struct perf_event_attr a;
    memset(&a, 0, sizeof a);
    a.size = sizeof a;
    a.type = PERF_TYPE_TRACEPOINT;
    a.config = (unsigned long long)id;
    a.inherit = 1;   /* threads and processes created from now on count too */
    a.disabled = 0;
    /* this process (0), any CPU (-1) */
    long fd = syscall(SYS_perf_event_open, &a, 0, -1, -1, PERF_FLAG_FD_CLOEXEC);
    if (fd < 0) {
        snprintf(syscalls_why, sizeof syscalls_why, "perf_event_open on raw_syscalls:sys_enter: %s%s", strerror(errno),
                 errno == EACCES || errno == EPERM ? " (needs root or kernel.perf_event_paranoid <= 1)" : "");
        return -1;
    }
    syscalls_why[0] = '\0';
    return (int)fd;
}

long long bench_syscalls_read(int fd)
{
    if (fd < 0)
        return -1;
    /* Read of an inherited counter: the kernel adds the counts of the
       threads and processes that inherited it, live or ended. */
    unsigned long long v = 0;
    if (read(fd, &v, sizeof v) != (ssize_t)sizeof v)
        return -1;
    return (long long)v;
}

long long bench_syscalls_between(long long before, long long after)
{
    if (before < 0 || after < 0)
        return -1;
    return after - before - 1;   /* the read that returned `after` */
}

const char *bench_syscalls_why(void)
{
    return syscalls_why;
}

void bench_syscalls_close(int fd)
{
    if (fd >= 0)
        close(fd);
}

/* ---- a machine whose system calls cost more ---- */

int bench_apply_syscall_cost(const char *prog, uint32_t target_ns)
{
    char why[160];
    if (target_ns && bench_syscall_tax(target_ns, why, sizeof why) != 0) {
        fprintf(stderr, "%s: --syscall-cost: %s\n", prog, why);
        return 1;
    }
    printf("# a system call (getppid) costs %.0f ns%s\n", bench_syscall_cost_ns(),
           target_ns ? " (raised by --syscall-cost)" : "");
    /* what this process's threads pay to pass a cache line back and forth:
       where the machine placed them (a VM's vCPUs on one core's siblings, on
       cores far apart, or on one CPU) shows here */
    double line_ns = bench_cache_line_ns();
    if (line_ns >= 0)
        printf("# a cache line between two threads: %.0f ns a round trip\n", line_ns);
    return 0;
}

/* The core-to-core ping-pong of bench_cache_line_ns: one line, two threads,
   each waiting for the other's number before it writes its own. */
enum { PINGS = 20000 };
static _Alignas(64) _Atomic uint64_t ping_line;

static void await_ping(uint64_t want)
{
    for (unsigned spins = 1; atomic_load_explicit(&ping_line, memory_order_acquire) != want; spins++)
        if (spins % 1024 == 0)
            sched_yield();   /* the two threads share one CPU: let the other run */
}

static void *pong_main(void *arg)
{
    (void)arg;
    for (uint64_t i = 1; i < 2 * PINGS; i += 2) {
        await_ping(i);
        atomic_store_explicit(&ping_line, i + 1, memory_order_release);
    }
    return NULL;
}

double bench_cache_line_ns(void)
{
    enum { LOOPS = 3 };
    /* the two threads on the process's first two CPUs (the calling thread's
       own mask is restored after), so that the figure is the machine's and
       not where the scheduler happened to start a thread */
    cpu_set_t mine, a, b;
    if (getenv("BENCH_NO_CACHE_LINE"))
        return -1;   /* under callgrind (bench/callgrind.sh): its spins would count */
    if (sched_getaffinity(0, sizeof mine, &mine) != 0 || CPU_COUNT(&mine) < 2)
        return -1;
    CPU_ZERO(&a);
    CPU_ZERO(&b);
    for (int cpu = 0, found = 0; cpu < CPU_SETSIZE && found < 2; cpu++)
        if (CPU_ISSET(cpu, &mine))
            CPU_SET(cpu, found++ ? &b : &a);
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setaffinity_np(&attr, sizeof b, &b);
    sched_setaffinity(0, sizeof a, &a);
    uint64_t t[LOOPS];
    for (int k = 0; k < LOOPS; k++) {
        atomic_store(&ping_line, 0);
        pthread_t pong;
        if (pthread_create(&pong, &attr, pong_main, NULL) != 0) {
            sched_setaffinity(0, sizeof mine, &mine);
            pthread_attr_destroy(&attr);
            return -1;
        }
        uint64_t t0 = bench_now_ns();
        for (uint64_t i = 0; i < 2 * PINGS; i += 2) {
            await_ping(i);
            atomic_store_explicit(&ping_line, i + 1, memory_order_release);
        }
        await_ping(2 * PINGS);
        t[k] = bench_now_ns() - t0;
        pthread_join(pong, NULL);
    }
    sched_setaffinity(0, sizeof mine, &mine);
    pthread_attr_destroy(&attr);
    return (double)bench_median_u64(t, LOOPS) / PINGS;
}

double bench_syscall_cost_ns(void)
{
    enum { LOOPS = 5, CALLS = 20000 };
    uint64_t t[LOOPS];
    for (int k = 0; k < LOOPS; k++) {
        uint64_t t0 = bench_now_ns();
        for (int i = 0; i < CALLS; i++)
            (void)syscall(SYS_getppid);
        t[k] = bench_now_ns() - t0;
    }
    return (double)bench_median_u64(t, LOOPS) / CALLS;
}

/* A filter of `ops` no-op instructions (A += 1, which the kernel's
   constant-action cache cannot see through, so it runs on every call), then
   allow. */
static int install_tax(uint32_t ops)
{
    struct sock_filter *f = calloc((size_t)ops + 1, sizeof *f);
    if (!f)
        return -1;
    for (uint32_t i = 0; i < ops; i++)
        f[i] = (struct sock_filter)BPF_STMT(BPF_ALU | BPF_ADD | BPF_K, 1);
    f[ops] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW);
    struct sock_fprog prog = {.len = (unsigned short)(ops + 1), .filter = f};
    int rc = prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == 0 && prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) == 0
                 ? 0 : -1;
    int err = errno;
    free(f);
    errno = err;
    return rc;
}

int bench_syscall_tax(double target_ns, char *why, size_t cap)
{
    enum { PROBE_OPS = 2000, MAX_OPS = 4000 };   /* a filter holds at most 4096 instructions */
    double base = bench_syscall_cost_ns();
    if (target_ns <= base)
        return 0;
    /* Calibrate in a child, since a filter cannot be removed: the cost of
       PROBE_OPS instructions per call, back through a pipe. */
    int fds[2];
    if (pipe(fds) != 0) {
        snprintf(why, cap, "pipe: %s", strerror(errno));
        return -1;
    }
    pid_t pid = fork();
    if (pid < 0) {
        snprintf(why, cap, "fork: %s", strerror(errno));
        close(fds[0]);
        close(fds[1]);
        return -1;
    }
    if (pid == 0) {
        double per_op = -1;
        if (install_tax(PROBE_OPS) == 0)
            per_op = (bench_syscall_cost_ns() - base) / PROBE_OPS;
        ssize_t w = write(fds[1], &per_op, sizeof per_op);
        _exit(w == (ssize_t)sizeof per_op ? 0 : 1);
    }
    close(fds[1]);
    double per_op = -1;
    ssize_t r = read(fds[0], &per_op, sizeof per_op);
    close(fds[0]);
    int status;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    if (r != (ssize_t)sizeof per_op || per_op <= 0) {
        snprintf(why, cap, "a seccomp filter could not be installed or measured (PR_SET_SECCOMP)");
        return -1;
    }
    /* as many full filters as needed, then the rest */
    double ops = (target_ns - base) / per_op;
    while (ops >= 1) {
        uint32_t n = ops > MAX_OPS ? MAX_OPS : (uint32_t)ops;
        if (install_tax(n) != 0) {
            snprintf(why, cap, "PR_SET_SECCOMP: %s", strerror(errno));
            return -1;
        }
        ops -= n;
    }
    return 0;
}
