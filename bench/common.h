/* What the benchmarks share (Strata's and the peers' alike, so common.c does not
 * depend on Strata): the clock, sorting, medians and percentiles of samples,
 * option parsing, and the line that names the machine; and, for the programs
 * that include <strata/strata.h> first, empty tasks and a failure report. */
#ifndef STRATA_BENCH_COMMON_H
#define STRATA_BENCH_COMMON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* CLOCK_MONOTONIC in nanoseconds. */
uint64_t bench_now_ns(void);
/* qsort comparator of uint64_t. */
int bench_cmp_u64(const void *x, const void *y);
/* Sort v and return its median (the mean of the middle two for even n). */
uint64_t bench_median_u64(uint64_t *v, uint32_t n);
/* Nearest-rank percentile q (0..1] of a sorted array; 0 for an empty one. */
uint64_t bench_percentile(const uint64_t *sorted, uint32_t n, double q);
/* A decimal uint32_t option value; false for anything else. */
bool bench_parse_u32(const char *s, uint32_t *out);
/* A comma-separated list of at most cap uint32_t values, at least one. */
bool bench_parse_u32_list(const char *s, uint32_t *out, uint32_t cap, uint32_t *n);
/* Whether `name` is chosen by the --only list `only` (NULL chooses all): an
   entry names it whole, or, with `prefix`, begins it. */
bool bench_selected(const char *only, const char *name, bool prefix);

/* The command line the DAG programs share (l2_overhead, omp_dag, starpu_dag):
   which workloads, their sizes, how many runs, and the modes. */
typedef struct bench_dag_cli {
    uint32_t    reps, warmup;     /* warmup 0 = auto: enough runs for warmup_tasks */
    uint64_t    min_tasks, warmup_tasks;
    uint32_t    n, width, rounds;
    uint32_t    tiles[16], ntiles;
    bool        verify, quick, samples;
    bool        real;             /* Cholesky only, with real float kernels (tiles.h) */
    const char *only;             /* comma-separated names or prefixes; NULL = all */
    uint32_t    syscall_cost_ns;  /* --syscall-cost: emulate slower system calls (bench_syscall_tax); 0 = no */
} bench_dag_cli;

/* Defaults, then the --real and --quick presets wherever they stand in argv, so
   that explicit options still win over them. */
void bench_dag_cli_init(bench_dag_cli *c, int argc, char **argv);
/* Take the shared option at argv[*i] (and its value, moving *i past it): 1 when
   taken, 0 when it is not one of them, -1 after printing why it is wrong. */
int  bench_dag_cli_option(bench_dag_cli *c, const char *prog, int argc, char **argv, int *i);
/* The value of the option at argv[*i], moving *i to it; NULL after printing that
   it is missing. For a program's own options. */
const char *bench_option_value(const char *prog, int argc, char **argv, int *i);
/* The --help lines of the shared options; `extra`, a program's own lines, goes
   before the modes. */
void bench_dag_cli_usage(FILE *f, const char *prog, const char *extra);
/* Whether workload `name` runs: chosen by --only, and Cholesky with --real. */
bool bench_dag_cli_selects(const bench_dag_cli *c, const char *name);
/* The timed runs (raised so that at least min_tasks tasks are timed) and the
   warm-up runs (at least one, and warmup_tasks tasks when warmup is 0) of a DAG
   of ntasks tasks. */
void bench_dag_cli_runs(const bench_dag_cli *c, uint32_t ntasks, uint32_t *reps, uint32_t *warmup);
/* The per-task figures of `reps` timed runs of a DAG of ntasks tasks: median
   and minimum run time, median time to submit (ns per task; 0 without runs).
   Sorts samples and submits. */
void bench_per_task(uint64_t *samples, uint64_t *submits, uint32_t reps, uint32_t ntasks, double *median_ns,
                    double *min_ns, double *submit_ns);
/* One --samples line: run r of workload `name`. */
void bench_print_sample(const char *name, uint32_t r, uint64_t sample_ns, uint64_t submit_ns, uint32_t ntasks);
/* ---- the process table, for the lifecycle benchmarks ---- */
/* Entries of a directory but . and .. ("/proc/self/fd", "/proc/self/task"). */
int  bench_count_dir(const char *path);
/* Resident set size of this process, KiB. */
long bench_rss_kib(void);
/* The state letter and parent pid of process pid (/proc/<pid>/stat); false
   when it does not exist. */
bool bench_proc_stat(int pid, char *state, int *ppid);

/* ---- system calls, counted by the kernel ----
   A counter of every system call entered by this process and by every thread
   and process it creates afterwards (children, their threads, a spawner and
   the spawner's children), through the raw_syscalls:sys_enter tracepoint and
   perf_event_open with inherit. Open it before creating the workers it is to
   see. It needs tracefs (or debugfs) mounted and the right to open a
   tracepoint (root or perf_event_paranoid <= 1); without them open returns
   -1 and bench_syscalls_why says why (the benchmark prints "n/a"). */
int  bench_syscalls_open(void);
/* The count so far; -1 when the counter is not open. Reading it is one
   system call of its own (a read), which bench_syscalls_between subtracts. */
long long bench_syscalls_read(int fd);
/* System calls between two reads, less the read that took the second one. */
long long bench_syscalls_between(long long before, long long after);
const char *bench_syscalls_why(void);
void bench_syscalls_close(int fd);

/* ---- a machine whose system calls cost more ----
   What one system call (getppid) costs this process now, ns: the median of a
   few loops. */
double bench_syscall_cost_ns(void);
/* Nanoseconds for two threads of this process, on its first two CPUs, to
   pass one cache line there and back (a ping-pong, median of three loops);
   -1 with fewer than two CPUs, when no thread starts, or when the environment
   has BENCH_NO_CACHE_LINE (bench/callgrind.sh sets it: under valgrind the
   ping-pong's spins are millions of instructions that vary from run to run). */
double bench_cache_line_ns(void);
/* Make every later system call of this process, and of every thread and
   process it creates afterwards, cost about target_ns: a seccomp filter that
   allows everything after a run of no-op instructions, sized by a forked
   calibration child. It emulates a machine kind whose system calls are slow
   (mitigations, a hypervisor) on one where they are cheap. It cannot be
   undone; call it before creating any thread. 0, or -1 with why (at most
   cap bytes) when the kernel refuses. */
int bench_syscall_tax(double target_ns, char *why, size_t cap);
/* --syscall-cost of every program: make system calls cost target_ns from now
   on (0: leave them) and print what one costs on a "#" line; 0, or 1 after
   printing why it cannot. Call it before the program creates a thread. */
int bench_apply_syscall_cost(const char *prog, uint32_t target_ns);

/* "# <runtime>, <n> online CPUs, <CPU model><extra>" on stdout. */
void bench_print_machine(const char *runtime, const char *extra);

/* ---- empty tasks and failure reports, for the programs that drive Strata ----
   Only where <strata/strata.h> was included first; static inline, so that the
   library above keeps no reference to Strata (the peers' programs link it). The
   chip callables' objects (python_overhead_kernels.c) take these too. */
#ifdef STRATA_H
/* "<prog>: <what> failed: <status> (<last error>)" on stderr; returns 1. */
static inline int bench_fail(const char *prog, const char *what, int rc)
{
    fprintf(stderr, "%s: %s failed: %s (%s)\n", prog, what, strata_status_name(rc), strata_last_error());
    return 1;
}

/* A node orchestration function that submits nothing. */
static inline int bench_orch_nothing(strata_orch *o, const strata_task_args *args, const strata_call_config *cfg,
                                     void *ctx)
{
    (void)o;
    (void)args;
    (void)cfg;
    (void)ctx;
    return 0;
}

/* A SUB function that returns 0. */
static inline int bench_sub_empty(const strata_task_args *args, void *ctx)
{
    (void)args;
    (void)ctx;
    return 0;
}

/* A chip orchestration function that submits nothing. */
static inline int bench_chip_orch_empty(strata_chip_orch *o, const strata_task_args *args,
                                        const strata_call_config *cfg)
{
    (void)o;
    (void)args;
    (void)cfg;
    return 0;
}

/* An in-core kernel that returns 0. */
static inline int bench_kernel_empty(const strata_task_args *args)
{
    (void)args;
    return 0;
}
#endif

#endif
