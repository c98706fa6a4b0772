/* The Task Bench method, backend-neutral: see taskbench_graph.h. */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L   /* clock_gettime */
#endif
#include "taskbench_graph.h"

#include <errno.h>
#include <math.h>
#include <stddef.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common.h"

/* ---- patterns ---- */

static const char *const pattern_names[TB_NPATTERNS] = {
    "trivial", "no_comm", "stencil_1d", "tree", "fft", "nearest", "all_to_all",
};

const char *tb_pattern_name(tb_pattern p)
{
    return (unsigned)p < TB_NPATTERNS ? pattern_names[p] : NULL;
}

bool tb_pattern_parse(const char *name, tb_pattern *out)
{
    for (int p = 0; p < TB_NPATTERNS; p++)
        if (strcmp(name, pattern_names[p]) == 0) {
            *out = (tb_pattern)p;
            return true;
        }
    return false;
}

uint32_t tb_width_at(const tb_graph *g, uint32_t t)
{
    if (g->pattern == TB_TREE && t < 31 && (1u << t) < g->width)
        return 1u << t;
    return g->width;
}

/* FFT stages: ceil(log2(width)), at least 1. */
static uint32_t fft_stages(uint32_t width)
{
    uint32_t s = 0;
    while ((1u << s) < width)
        s++;
    return s ? s : 1;
}

uint32_t tb_deps(const tb_graph *g, uint32_t t, uint32_t p, uint32_t *deps)
{
    if (t == 0)
        return 0;
    const uint32_t w = g->width;
    uint32_t first = 0, last = 0, n = 0;   /* a contiguous range first..last, or a list in deps */
    bool range = true;
    switch (g->pattern) {
    case TB_TRIVIAL:
        return 0;
    case TB_NO_COMM:
        first = last = p;
        break;
    case TB_STENCIL_1D:
        first = p ? p - 1 : 0;
        last = p + 1 < w ? p + 1 : w - 1;
        break;
    case TB_TREE:
        first = last = p / 2;
        break;
    case TB_FFT: {
        uint32_t stages = fft_stages(w);
        uint32_t stride = 1u << ((t + stages - 1) % stages);
        range = false;
        if (p >= stride)
            deps[n++] = p - stride;
        deps[n++] = p;
        if (p + stride < w)
            deps[n++] = p + stride;
        break;
    }
    case TB_NEAREST:
        if (g->radix == 0)
            return 0;
        first = p >= g->radix / 2 ? p - g->radix / 2 : 0;
        last = p + (g->radix - 1) / 2 < w ? p + (g->radix - 1) / 2 : w - 1;
        break;
    case TB_ALL_TO_ALL:
        first = 0;
        last = w - 1;
        break;
    default:
        return 0;
    }
    if (range)
        for (uint32_t q = first; q <= last; q++)
            deps[n++] = q;
    /* only points that exist at step t - 1 (a tree's first steps are narrower) */
    uint32_t prev = tb_width_at(g, t - 1), kept = 0;
    for (uint32_t i = 0; i < n; i++)
        if (deps[i] < prev)
            deps[kept++] = deps[i];
    return kept;
}

uint32_t tb_max_deps(const tb_graph *g)
{
    switch (g->pattern) {
    case TB_TRIVIAL:
        return 0;
    case TB_NO_COMM:
    case TB_TREE:
        return 1;
    case TB_STENCIL_1D:
    case TB_FFT:
        return g->width < 3 ? g->width : 3;
    case TB_NEAREST:
        return g->radix < g->width ? g->radix : g->width;
    default:
        return g->width;
    }
}

uint64_t tb_tasks(const tb_graph *g)
{
    uint64_t n = 0;
    for (uint32_t t = 0; t < g->steps; t++)
        n += tb_width_at(g, t);
    return n;
}

uint64_t tb_graph_pack(const tb_graph *g)
{
    return (uint64_t)g->pattern | (uint64_t)g->width << 8 | (uint64_t)g->radix << 24 |
           (uint64_t)(g->epoch & 0xffff) << 40;
}

tb_graph tb_graph_unpack(uint64_t word)
{
    tb_graph g = {(tb_pattern)(word & 0xff), (uint32_t)(word >> 8) & 0xffff, 0, (uint32_t)(word >> 24) & 0xffff,
                  (uint32_t)(word >> 40) & 0xffff};
    return g;
}

/* ---- the kernel and the check ---- */

/* splitmix64's finaliser: a bijection of 64-bit words */
static uint64_t mix64(uint64_t z)
{
    z += 0x9e3779b97f4a7c15ull;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

uint64_t tb_tag(uint32_t epoch, uint32_t t, uint32_t p)
{
    uint64_t z = mix64(mix64(epoch) ^ ((uint64_t)t << 32 | p));
    return z ? z : 1;
}

uint64_t tb_busy_loop(uint64_t iterations)
{
    uint64_t x = 0x2545f4914f6cdd1dull;
    for (uint64_t i = 0; i < iterations; i++) {
        x = x * 6364136223846793005ull + 1442695040888963407ull;
        __asm__ volatile("" : "+r"(x));   /* the loop runs every iteration, whatever the optimiser knows */
    }
    return x;
}

void tb_execute(const tb_graph *g, uint32_t t, uint32_t p, const tb_slot *const *inputs, uint32_t ninputs,
                tb_slot *out, uint64_t iterations, _Atomic uint64_t *errors)
{
    uint32_t deps[TB_MAX_WIDTH];
    uint32_t n = tb_deps(g, t, p, deps);
    uint64_t bad = n != ninputs;
    for (uint32_t i = 0; i < n && i < ninputs; i++)
        bad += inputs[i]->tag != tb_tag(g->epoch, t - 1, deps[i]);
    out->result = tb_busy_loop(iterations);
    out->tag = tb_tag(g->epoch, t, p);
    if (bad)
        atomic_fetch_add_explicit(errors, bad, memory_order_relaxed);
}

/* ---- the peak ---- */

typedef struct peak_thread {
    pthread_t         id;
    uint64_t          iterations;
    pthread_barrier_t *start;
    uint64_t          sink;
} peak_thread;

static void *peak_main(void *arg)
{
    peak_thread *pt = arg;
    pthread_barrier_wait(pt->start);
    pt->sink = tb_busy_loop(pt->iterations);
    return NULL;
}

double tb_measure_peak(uint32_t cores, uint32_t ms)
{
    /* iterations per second of one thread, to size the runs */
    uint64_t probe = 1u << 20;
    uint64_t t0 = bench_now_ns();
    volatile uint64_t sink = tb_busy_loop(probe);
    (void)sink;
    uint64_t dt = bench_now_ns() - t0;
    double one = dt ? (double)probe * 1e9 / (double)dt : 1e9;
    uint64_t each = (uint64_t)(one * ms / 1e3) + 1;

    peak_thread *th = calloc(cores, sizeof *th);
    if (!th)
        return 0;
    double best = 0;
    for (int attempt = 0; attempt < 3; attempt++) {
        pthread_barrier_t start;
        if (pthread_barrier_init(&start, NULL, cores + 1)) {
            free(th);
            return 0;
        }
        uint32_t started = 0;
        for (; started < cores; started++) {
            th[started] = (peak_thread){.iterations = each, .start = &start};
            if (pthread_create(&th[started].id, NULL, peak_main, &th[started]))
                break;
        }
        if (started < cores) {   /* cannot happen short of resource exhaustion: give up */
            fprintf(stderr, "taskbench: cannot start %u threads to measure the peak\n", cores);
            abort();
        }
        pthread_barrier_wait(&start);
        uint64_t s = bench_now_ns();
        for (uint32_t i = 0; i < cores; i++)
            pthread_join(th[i].id, NULL);
        uint64_t wall = bench_now_ns() - s;
        pthread_barrier_destroy(&start);
        double rate = wall ? (double)each * cores * 1e9 / (double)wall : 0;
        if (rate > best)
            best = rate;
    }
    free(th);
    return best;
}

/* ---- options ---- */

static void set_sweep(tb_options *o, uint64_t max, uint64_t min)
{
    o->niterations = 0;
    for (uint64_t i = max; i >= min && i >= 1 && o->niterations < TB_MAX_ITERATION_COUNTS; i /= 2)
        o->iterations[o->niterations++] = i;
}

void tb_options_init(tb_options *o, int argc, char **argv)
{
    memset(o, 0, sizeof *o);
    for (int p = 0; p < TB_NPATTERNS; p++)
        o->patterns[o->npatterns++] = (tb_pattern)p;
    long online = sysconf(_SC_NPROCESSORS_ONLN);
    o->cores = online > 0 && online <= (long)TB_MAX_WIDTH ? (uint32_t)online : 1;
    o->radix = 3;
    o->min_steps = 32;
    o->max_tasks = 20000;
    o->target_ms = 20;
    o->reps = 3;
    o->peak_ms = 200;
    o->stop_below = 0.2;
    set_sweep(o, 1u << 18, 4);
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], "--quick") == 0) {
            o->quick = true;
            o->min_steps = 4;
            o->max_tasks = 64;
            o->target_ms = 1;
            o->reps = 1;
            o->peak_ms = 20;
            o->stop_below = 0;
            o->niterations = 2;
            o->iterations[0] = 4096;
            o->iterations[1] = 64;
        }
}

static int cmp_desc_u64(const void *x, const void *y)
{
    uint64_t a = *(const uint64_t *)x, b = *(const uint64_t *)y;
    return (a < b) - (a > b);
}

int tb_options_take(tb_options *o, const char *prog, int argc, char **argv, int *i)
{
    const char *a = argv[*i];
    if (strcmp(a, "--quick") == 0)
        return 1;   /* applied by tb_options_init */
    static const char *const valued[] = {"--pattern", "--width", "--radix", "--cores", "--steps", "--min-steps",
                                         "--max-tasks", "--target-ms", "--reps", "--peak-ms", "--iterations",
                                         "--max-iterations", "--min-iterations", "--stop-below"};
    bool known = false;
    for (size_t k = 0; k < sizeof valued / sizeof valued[0]; k++)
        known |= strcmp(a, valued[k]) == 0;
    if (!known)
        return 0;
    const char *v = bench_option_value(prog, argc, argv, i);
    if (!v)
        return -1;
    bool ok = true;
    uint32_t x = 0;
    if (strcmp(a, "--pattern") == 0) {
        if (strcmp(v, "all") == 0) {
            o->npatterns = 0;
            for (int p = 0; p < TB_NPATTERNS; p++)
                o->patterns[o->npatterns++] = (tb_pattern)p;
        } else {
            char buf[256];
            snprintf(buf, sizeof buf, "%s", v);
            o->npatterns = 0;
            char *save = NULL;
            for (char *tok = strtok_r(buf, ",", &save); tok && ok; tok = strtok_r(NULL, ",", &save)) {
                tb_pattern p;
                ok = tb_pattern_parse(tok, &p) && o->npatterns < TB_NPATTERNS;
                if (ok)
                    o->patterns[o->npatterns++] = p;
            }
            ok = ok && o->npatterns > 0;
        }
    } else if (strcmp(a, "--iterations") == 0) {
        uint32_t list[TB_MAX_ITERATION_COUNTS], n = 0;
        ok = bench_parse_u32_list(v, list, TB_MAX_ITERATION_COUNTS, &n);
        for (uint32_t k = 0; ok && k < n; k++)
            o->iterations[k] = list[k];
        if (ok) {
            o->niterations = n;
            qsort(o->iterations, n, sizeof o->iterations[0], cmp_desc_u64);
        }
    } else if (strcmp(a, "--max-iterations") == 0 || strcmp(a, "--min-iterations") == 0) {
        ok = bench_parse_u32(v, &x) && x >= 1;
        if (ok) {
            uint64_t max = o->niterations ? o->iterations[0] : 1u << 18;
            uint64_t min = o->niterations ? o->iterations[o->niterations - 1] : 4;
            if (strcmp(a, "--max-iterations") == 0)
                max = x;
            else
                min = x;
            set_sweep(o, max, min);
            ok = o->niterations > 0;
        }
    } else if (strcmp(a, "--stop-below") == 0) {
        char *end;
        errno = 0;
        double f = strtod(v, &end);
        ok = !errno && end != v && !*end && f >= 0 && f < 1;
        o->stop_below = f;
    } else {
        /* the unsigned options: where each goes and its least and greatest value */
        static const struct { const char *name; size_t field; uint32_t min, max; } u32_opts[] = {
            {"--width", offsetof(tb_options, width), 1, TB_MAX_WIDTH},
            {"--radix", offsetof(tb_options, radix), 0, TB_MAX_WIDTH},
            {"--cores", offsetof(tb_options, cores), 1, TB_MAX_WIDTH},
            {"--steps", offsetof(tb_options, steps), 1, UINT32_MAX},
            {"--min-steps", offsetof(tb_options, min_steps), 1, UINT32_MAX},
            {"--max-tasks", offsetof(tb_options, max_tasks), 1, UINT32_MAX},
            {"--target-ms", offsetof(tb_options, target_ms), 1, UINT32_MAX},
            {"--reps", offsetof(tb_options, reps), 1, 1000},
            {"--peak-ms", offsetof(tb_options, peak_ms), 1, UINT32_MAX},
        };
        ok = bench_parse_u32(v, &x);
        for (size_t k = 0; k < sizeof u32_opts / sizeof u32_opts[0]; k++)
            if (strcmp(a, u32_opts[k].name) == 0) {
                ok = ok && x >= u32_opts[k].min && x <= u32_opts[k].max;
                if (ok)
                    memcpy((char *)o + u32_opts[k].field, &x, sizeof x);
            }
    }
    if (!ok) {
        fprintf(stderr, "%s: bad value '%s' for %s\n", prog, v, a);
        return -1;
    }
    return 1;
}

int tb_options_finish(tb_options *o, const char *prog)
{
    if (o->width == 0)
        o->width = o->quick && o->cores < 4 ? 4 : o->cores;
    (void)prog;   /* nothing left to refuse: a radix above the width reads every point, as Task Bench */
    return 0;
}

void tb_options_usage(FILE *f)
{
    fprintf(f,
            "  --pattern LIST   comma-separated: trivial,no_comm,stencil_1d,tree,fft,nearest,all_to_all\n"
            "                   (default all)\n"
            "  --width W        points per step (default: --cores; 4 with --quick on fewer cores)\n"
            "  --radix R        dependencies of a nearest task (default 3)\n"
            "  --cores N        cores the peak and the granularity count (default: online CPUs)\n"
            "  --iterations L   kernel iterations per task, a list (default: 2^18 down to 4, by halves)\n"
            "  --max-iterations N, --min-iterations N   the same sweep between other bounds\n"
            "  --steps T        steps per run (default: enough for --target-ms of ideal compute,\n"
            "                   at least --min-steps (32), at most --max-tasks (20000) tasks)\n"
            "  --reps N         timed runs per point, after one warm-up run; the median counts (default 3)\n"
            "  --peak-ms N      length of each of the three peak measurements (default 200)\n"
            "  --stop-below E   leave a pattern after two points below efficiency E (default 0.2)\n"
            "  --quick          a smoke test: width 4, 2 iteration counts, tiny runs, every run checked\n");
}

/* ---- the sweep ---- */

static int cmp_u64(const void *x, const void *y)
{
    return bench_cmp_u64(x, y);
}

/* The last step's slots (and the step before's) hold their tasks' tags and
   the loop's result. */
static int check_slots(const tb_backend *b, const tb_graph *g, uint64_t expect_result)
{
    for (uint32_t back = 1; back <= 2 && back <= g->steps; back++) {
        uint32_t t = g->steps - back;
        for (uint32_t p = 0; p < tb_width_at(g, t); p++) {
            tb_slot s;
            if (b->read_slot(b->ctx, t & 1, p, &s))
                return 1;
            if (s.tag != tb_tag(g->epoch, t, p) || s.result != expect_result) {
                fprintf(stderr, "taskbench: %s, %s: point %u of step %u holds tag %#llx result %#llx, expected "
                        "%#llx and %#llx\n", b->name, tb_pattern_name(g->pattern), p, t,
                        (unsigned long long)s.tag, (unsigned long long)s.result,
                        (unsigned long long)tb_tag(g->epoch, t, p), (unsigned long long)expect_result);
                return 1;
            }
        }
    }
    return 0;
}

/* One run of g under the next epoch, timed, then checked. */
static int run_checked(const tb_backend *b, tb_graph *g, uint64_t iterations, uint64_t expect_result,
                       uint64_t *wall_ns)
{
    g->epoch = (g->epoch + 1) & 0xffff;
    atomic_store(b->errors, 0);
    uint64_t t0 = bench_now_ns();
    if (b->run(b->ctx, g, iterations))
        return 1;
    *wall_ns = bench_now_ns() - t0;
    uint64_t errors = atomic_load(b->errors);
    if (errors) {
        fprintf(stderr, "taskbench: %s, %s, %llu iterations: %llu inputs held the wrong step's value "
                "(a dependency was not respected)\n", b->name, tb_pattern_name(g->pattern),
                (unsigned long long)iterations, (unsigned long long)errors);
        return 1;
    }
    return check_slots(b, g, expect_result);
}

int tb_sweep(const tb_options *o, const tb_backend *b, double peak)
{
    printf("# %s: cores %u, width %u, radix %u, reps %u (median, after 1 warm-up), target %u ms, "
           "tasks per run %u..%u%s\n", b->name, o->cores, o->width, o->radix, o->reps, o->target_ms,
           o->min_steps * o->width, o->max_tasks, o->quick ? ", --quick" : "");
    printf("peak %s %.6g %u\n", b->name, peak, o->cores);
    printf("# %-4s %-12s %-11s %10s %7s %7s %10s %12s %10s %10s\n", "", "backend", "pattern", "iterations",
           "steps", "tasks", "wall_ms", "granularity", "efficiency", "task_us");
    fflush(stdout);
    uint64_t *walls = malloc(o->reps * sizeof walls[0]);
    if (!walls)
        return 1;
    int status = 0;
    uint32_t epoch = 0;
    for (uint32_t k = 0; k < o->npatterns && status == 0; k++) {
        tb_pattern pat = o->patterns[k];
        double gran[TB_MAX_ITERATION_COUNTS], eff[TB_MAX_ITERATION_COUNTS];
        uint32_t npoints = 0, below = 0;
        for (uint32_t j = 0; j < o->niterations && status == 0; j++) {
            uint64_t iterations = o->iterations[j];
            tb_graph g = {pat, o->width, o->steps, o->radix, epoch};
            if (!g.steps) {
                double ideal = (double)o->target_ms * 1e-3 * peak / (double)iterations;
                double steps = ceil(ideal / o->width);
                double most = o->max_tasks / o->width;
                if (steps > most)
                    steps = most;
                g.steps = steps < o->min_steps ? o->min_steps : (uint32_t)steps;
            }
            if (b->prepare && b->prepare(b->ctx, &g)) {
                status = 1;
                break;
            }
            uint64_t expect = tb_busy_loop(iterations), wall = 0;
            if (run_checked(b, &g, iterations, expect, &wall)) {   /* warm-up */
                status = 1;
                break;
            }
            for (uint32_t r = 0; r < o->reps && status == 0; r++)
                status = run_checked(b, &g, iterations, expect, &walls[r]);
            epoch = g.epoch;
            if (status)
                break;
            qsort(walls, o->reps, sizeof walls[0], cmp_u64);
            wall = o->reps % 2 ? walls[o->reps / 2] : (walls[o->reps / 2 - 1] + walls[o->reps / 2]) / 2;
            uint64_t tasks = tb_tasks(&g);
            double granularity_us = (double)wall * 1e-3 * o->cores / (double)tasks;
            double efficiency = (double)tasks * (double)iterations / ((double)wall * 1e-9) / peak;
            double task_us = (double)iterations / (peak / o->cores) * 1e6;
            printf("run  %-12s %-11s %10llu %7u %7llu %10.3f %12.4f %10.4f %10.4f\n", b->name,
                   tb_pattern_name(pat), (unsigned long long)iterations, g.steps, (unsigned long long)tasks,
                   (double)wall * 1e-6, granularity_us, efficiency, task_us);
            fflush(stdout);
            gran[npoints] = granularity_us;
            eff[npoints] = efficiency;
            npoints++;
            below = efficiency < o->stop_below ? below + 1 : 0;
            if (below >= 2)
                break;
        }
        if (status == 0) {
            char kind;
            double m = tb_metg(gran, eff, npoints, &kind);
            if (kind == 'n')
                printf("metg %-12s %-11s %10s %s\n", b->name, tb_pattern_name(pat), "-", "none-above-50%");
            else
                printf("metg %-12s %-11s %10.3f %s\n", b->name, tb_pattern_name(pat), m,
                       kind == 'i' ? "interpolated" : "upper-bound");
            fflush(stdout);
        }
    }
    free(walls);
    return status;
}

double tb_metg(const double *granularity_us, const double *efficiency, uint32_t n, char *kind)
{
    int last = -1;
    for (uint32_t i = 0; i < n; i++)
        if (efficiency[i] >= 0.5)
            last = (int)i;
    if (last < 0) {
        *kind = 'n';
        return 0;
    }
    if ((uint32_t)last == n - 1) {
        *kind = 'b';
        return granularity_us[last];
    }
    *kind = 'i';
    double g0 = granularity_us[last], g1 = granularity_us[last + 1];
    double e0 = efficiency[last], e1 = efficiency[last + 1];
    if (!(g1 < g0) || !(e0 > e1))
        return g0;
    double f = (e0 - 0.5) / (e0 - e1);
    return exp(log(g0) + f * (log(g1) - log(g0)));
}
