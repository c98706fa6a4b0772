/* The Task Bench method (Slaughter et al., SC20), backend-neutral: the task
 * graphs, the busy-loop kernel, the check of every task's inputs, the peak of
 * the machine, and the sweep that finds the minimum effective task granularity
 * (METG). Shared by bench/taskbench.c (Strata) and bench/peers/taskbench_omp.c,
 * bench/peers/taskbench_starpu.c; it includes no Strata header.
 *
 * A graph is `steps` steps of `width` points. Task (t, p) reads the datum of
 * every point of step t - 1 that the pattern names (tb_deps) and writes the
 * datum of point p. Data are double-buffered: point p has two slots, the one
 * of parity t % 2 written at step t, so a task's reads of step t - 1 are
 * RAW dependencies and the overwrite at step t + 1 waits for them (WAR), which
 * every runtime infers from the accesses it is told.
 *
 * Every task runs tb_execute: it checks that each input slot holds the tag of
 * (t - 1, q) (a task that ran before its producer, or after the slot was
 * overwritten, sees another tag and counts an error), runs the busy loop of
 * `iterations` iterations, then writes its own tag and the loop's result. After
 * each run the driver checks the error count and the last step's slots.
 *
 * Granularity and efficiency as Task Bench defines them: a run of n tasks of
 * i iterations each on c cores in wall time w has task granularity w * c / n
 * and efficiency (n * i / w) / peak, where peak is iterations per second with
 * every core running the kernel alone (c threads, no runtime). The METG of a
 * pattern is the granularity at which efficiency falls to 50 %, found by
 * sweeping i downwards by factors of 2 (tb_metg says how). */
#ifndef STRATA_BENCH_TASKBENCH_GRAPH_H
#define STRATA_BENCH_TASKBENCH_GRAPH_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

typedef enum tb_pattern {
    TB_TRIVIAL,     /* no dependencies */
    TB_NO_COMM,     /* p <- p */
    TB_STENCIL_1D,  /* p <- p - 1, p, p + 1 (inside 0..width-1) */
    TB_TREE,        /* step t has min(width, 2^t) points; p <- p / 2 */
    TB_FFT,         /* p <- p - 2^k, p, p + 2^k, k cycling over log2(width) stages */
    TB_NEAREST,     /* p <- the `radix` points around p: p - radix/2 .. p + (radix-1)/2 */
    TB_ALL_TO_ALL,  /* p <- every point */
    TB_NPATTERNS
} tb_pattern;

#define TB_MAX_WIDTH 256u

typedef struct tb_graph {
    tb_pattern pattern;
    uint32_t   width;     /* points per step, 1..TB_MAX_WIDTH */
    uint32_t   steps;
    uint32_t   radix;     /* TB_NEAREST only: the window of points a task reads (clipped to the width) */
    uint32_t   epoch;     /* which run (mod 2^16): part of every tag, so that a slot
                             still holding an earlier run's value is caught */
} tb_graph;

/* "trivial", "no_comm", ...; NULL out of range. */
const char *tb_pattern_name(tb_pattern p);
/* The pattern of that name; false when there is none. */
bool tb_pattern_parse(const char *name, tb_pattern *out);

/* Points of step t (all but the first steps of a tree: the width). */
uint32_t tb_width_at(const tb_graph *g, uint32_t t);
/* The points of step t - 1 that task (t, p) reads, ascending, into deps
   (room for g->width); their number (0 at t = 0). */
uint32_t tb_deps(const tb_graph *g, uint32_t t, uint32_t p, uint32_t *deps);
/* The most dependencies a task of g has. */
uint32_t tb_max_deps(const tb_graph *g);
/* Tasks in all of g. */
uint64_t tb_tasks(const tb_graph *g);

/* A graph's pattern, width, radix and epoch in one word (for task scalars: a task
   in another process rebuilds the graph from it; steps are not needed). */
uint64_t tb_graph_pack(const tb_graph *g);
tb_graph tb_graph_unpack(uint64_t word);

/* One point's datum: a cache line of its own. */
typedef struct tb_slot {
    _Alignas(64) uint64_t tag;   /* tb_tag(epoch, t, p) of the task that wrote it last */
    uint64_t result;             /* that task's busy-loop result */
    uint64_t unused[6];
} tb_slot;

/* The tag task (t, p) of run `epoch` writes: distinct for every (t, p) of a
   run and, but by chance, between runs; never 0. */
uint64_t tb_tag(uint32_t epoch, uint32_t t, uint32_t p);

/* The kernel: `iterations` dependent multiply-adds the compiler cannot remove
   or shorten (each result goes through an empty asm), the same code in every
   program. Returns the last value. */
uint64_t tb_busy_loop(uint64_t iterations);

/* Task (t, p) of g: check its inputs (the slots of the points tb_deps names,
   in that order: ninputs of them), run the kernel, write out. Adds 1 to
   *errors for each input that holds a wrong tag, and for a wrong count. */
void tb_execute(const tb_graph *g, uint32_t t, uint32_t p, const tb_slot *const *inputs, uint32_t ninputs,
                tb_slot *out, uint64_t iterations, _Atomic uint64_t *errors);

/* Iterations per second of `cores` threads each running the kernel alone for
   about ms milliseconds; the best of three tries. 0 if a thread cannot start. */
double tb_measure_peak(uint32_t cores, uint32_t ms);

/* ---- the sweep, shared by every program ---- */

#define TB_MAX_ITERATION_COUNTS 64

typedef struct tb_options {
    tb_pattern patterns[TB_NPATTERNS];
    uint32_t   npatterns;
    uint32_t   cores;              /* the machine's cores the peak uses; default: online CPUs */
    uint32_t   width;              /* default: cores */
    uint32_t   radix;              /* TB_NEAREST; default 3 */
    uint32_t   steps;              /* 0: per iteration count, from target_ms, min_steps and max_tasks */
    uint32_t   min_steps, max_tasks, target_ms;
    uint32_t   reps;               /* timed runs per point (median), after one warm-up run */
    uint32_t   peak_ms;
    uint64_t   iterations[TB_MAX_ITERATION_COUNTS];   /* descending */
    uint32_t   niterations;
    double     stop_below;         /* stop a pattern after two points below this efficiency */
    bool       quick;
} tb_options;

/* Defaults (with --quick's wherever it stands in argv). */
void tb_options_init(tb_options *o, int argc, char **argv);
/* Take the shared option at argv[*i] (and its value): 1 when taken, 0 when it
   is not one, -1 after printing why it is wrong. */
int tb_options_take(tb_options *o, const char *prog, int argc, char **argv, int *i);
/* After parsing: width from cores where unset. 0, or 1 after printing why not. */
int tb_options_finish(tb_options *o, const char *prog);
/* The shared options' --help lines. */
void tb_options_usage(FILE *f);

/* A backend: what the sweep calls. */
typedef struct tb_backend {
    const char *name;              /* "strata-l2", "libgomp", ... (no spaces) */
    void       *ctx;
    /* Before the runs of g (its pattern, width, radix, steps): 0 or 1. May be NULL. */
    int (*prepare)(void *ctx, const tb_graph *g);
    /* One run of every task of g, each running `iterations` iterations; returns
       when all have finished. 0, or 1 after printing why not. */
    int (*run)(void *ctx, const tb_graph *g, uint64_t iterations);
    /* The slot of point p, parity 0 or 1, after a run, into *out. 0 or 1. */
    int (*read_slot)(void *ctx, uint32_t parity, uint32_t p, tb_slot *out);
    _Atomic uint64_t *errors;      /* the counter the tasks add to */
} tb_backend;

/* Measure the peak (print "peak" and the header), then for every pattern and
   iteration count: one warm-up run, reps timed runs, each checked; print a
   "run" line per point and a "metg" line per pattern. Returns 0, or 1 when a
   run failed or a check found an error. */
int tb_sweep(const tb_options *o, const tb_backend *b, double peak);

/* The METG of one pattern from its points (descending iteration counts): the
   smallest granularity whose efficiency is at least 50 %, interpolated on
   log(granularity) towards the next smaller point below 50 %. *kind: 'i'
   interpolated, 'b' every point is above 50 % (the value is an upper bound),
   'n' none is (returns 0). */
double tb_metg(const double *granularity_us, const double *efficiency, uint32_t n, char *kind);

#endif
