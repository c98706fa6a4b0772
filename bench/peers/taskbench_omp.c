/* taskbench_omp: the smallest useful task (METG, Task Bench's method) on
 * OpenMP tasks, the peer of bench/taskbench (Strata) under GNU libgomp and LLVM
 * libomp. Built by bench/peers/build.sh (omp_dag's script): taskbench_gomp with
 * gcc, taskbench_llvm with clang; no Strata header or library.
 *
 * The graphs, kernel, checks and sweep are bench/taskbench_graph.h's. Each
 * point's two slots (step parities) are 64-byte elements of one array. A run is
 * one `#pragma omp parallel` of --threads threads (default: --cores) whose
 * `single` thread creates every task of the graph, step by step, as one
 * `#pragma omp task` with depend(iterator(i = 0:n), in: <the input slots>)
 * and depend(out: <its own slot>), then waits at the region's end (the
 * creating thread runs tasks too, as OpenMP does). OpenMP derives every
 * dependency, the double buffer's WAR ordering included, from those clauses;
 * each task runs tb_execute. The peak is measured with plain threads before
 * the first parallel region.
 *
 *   bash bench/peers/build.sh /tmp/strata-peers
 *   /tmp/strata-peers/taskbench_gomp --quick
 *   /tmp/strata-peers/taskbench_llvm --pattern stencil_1d,fft
 *   /tmp/strata-peers/taskbench_gomp --help
 * bench/metg runs it beside Strata; docs/performance.md has the figures. */
#define _GNU_SOURCE
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <omp.h>

#include "../common.h"
#include "../taskbench_graph.h"

#if defined(__clang__)
#define PROG "taskbench_llvm"
#define RUNTIME "libomp"
#else
#define PROG "taskbench_gomp"
#define RUNTIME "libgomp"
#endif

typedef struct options {
    tb_options  tb;
    uint32_t    threads;
    const char *name;
} options;

typedef struct backend {
    uint32_t          threads;
    uint32_t          width;
    tb_slot          *slots;     /* 2 * width: parity * width + point */
    _Atomic uint64_t  errors;
} backend;

static void run_graph(backend *b, const tb_graph *g, uint64_t iterations)
{
    tb_slot *slots = b->slots;
    const uint32_t w = b->width;
    _Atomic uint64_t *errors = &b->errors;
#pragma omp parallel num_threads(b->threads)
#pragma omp single
    {
        uint32_t deps[TB_MAX_WIDTH];
        for (uint32_t t = 0; t < g->steps; t++) {
            uint32_t width = tb_width_at(g, t);
            uint32_t in_base = ((t - 1) & 1) * w, out = (t & 1) * w;
            for (uint32_t p = 0; p < width; p++) {
                uint32_t n = tb_deps(g, t, p, deps);
#pragma omp task firstprivate(t, p) depend(iterator(i = 0 : (int)n), in : slots[in_base + deps[i]]) \
    depend(out : slots[out + p])
                {
                    uint32_t d[TB_MAX_WIDTH];
                    const tb_slot *inputs[TB_MAX_WIDTH];
                    uint32_t k = tb_deps(g, t, p, d);
                    for (uint32_t i = 0; i < k; i++)
                        inputs[i] = &slots[((t - 1) & 1) * w + d[i]];
                    tb_execute(g, t, p, inputs, k, &slots[(t & 1) * w + p], iterations, errors);
                }
            }
        }
    }
}

static int backend_run(void *ctx, const tb_graph *g, uint64_t iterations)
{
    run_graph(ctx, g, iterations);
    return 0;
}

static int backend_read_slot(void *ctx, uint32_t parity, uint32_t p, tb_slot *out)
{
    backend *b = ctx;
    *out = b->slots[parity * b->width + p];
    return 0;
}

static void usage(FILE *f)
{
    fprintf(f, "usage: " PROG " [options]\n");
    tb_options_usage(f);
    fprintf(f, "  --threads N      OpenMP threads (default: --cores)\n"
               "  --name NAME      the backend's name in the output (default " RUNTIME ")\n");
}

static int parse_args(int argc, char **argv, options *o)
{
    memset(o, 0, sizeof *o);
    tb_options_init(&o->tb, argc, argv);
    for (int i = 1; i < argc; i++) {
        int taken = tb_options_take(&o->tb, PROG, argc, argv, &i);
        if (taken < 0)
            return 1;
        if (taken)
            continue;
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            usage(stdout);
            exit(0);
        }
        if (strcmp(a, "--threads") != 0 && strcmp(a, "--name") != 0) {
            fprintf(stderr, PROG ": unknown option %s\n", a);
            usage(stderr);
            return 1;
        }
        const char *v = bench_option_value(PROG, argc, argv, &i);
        if (!v)
            return 1;
        if (strcmp(a, "--name") == 0) {
            o->name = v;
        } else if (!bench_parse_u32(v, &o->threads) || o->threads < 1 || o->threads > 256) {
            fprintf(stderr, PROG ": bad value '%s' for %s\n", v, a);
            return 1;
        }
    }
    if (tb_options_finish(&o->tb, PROG))
        return 1;
    if (!o->threads)
        o->threads = o->tb.cores;
    if (!o->name)
        o->name = RUNTIME;
    return 0;
}

int main(int argc, char **argv)
{
    options opt;
    if (parse_args(argc, argv, &opt))
        return 2;
    bench_print_machine(RUNTIME, "");
    printf("# OpenMP: %u threads, one parallel region per run, tasks with depend(iterator(...), in) and "
           "depend(out)\n", opt.threads);
    double peak = tb_measure_peak(opt.tb.cores, opt.tb.peak_ms);
    if (peak <= 0) {
        fprintf(stderr, PROG ": could not measure the peak\n");
        return 1;
    }
    backend b = {.threads = opt.threads, .width = opt.tb.width};
    b.slots = aligned_alloc(64, 2 * (size_t)opt.tb.width * sizeof(tb_slot));
    if (!b.slots) {
        fprintf(stderr, PROG ": out of memory\n");
        return 1;
    }
    memset(b.slots, 0, 2 * (size_t)opt.tb.width * sizeof(tb_slot));
    atomic_init(&b.errors, 0);
    tb_backend tb = {opt.name, &b, NULL, backend_run, backend_read_slot, &b.errors};
    int status = tb_sweep(&opt.tb, &tb, peak);
    free(b.slots);
    return status;
}
