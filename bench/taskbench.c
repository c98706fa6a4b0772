/* taskbench: the smallest useful task (METG, Task Bench's method) on Strata.
 *
 * The task graphs, kernel, checks and sweep are taskbench_graph.h's, shared
 * with the peers (bench/peers/taskbench_omp.c, taskbench_starpu.c). Here they
 * run on Strata:
 *
 *   --level 2 (default): one sim chip in this process. Each point's two slots
 *     (step parities) are 64-byte chip buffers (--layout buffers, default) or
 *     64-byte views of one chip buffer (--layout views). One chip callable whose
 *     orchestration function submits every task of the graph, step by step,
 *     with its input slots tagged INPUT and its own slot OUTPUT: Strata infers
 *     every dependency (and the WAR ordering of the double buffer) from the
 *     tags. The kernel, on an AIV lane (--place aiv) or on AIC and AIV lanes
 *     by turns (--place alt), runs tb_execute. --aic/--aiv: lane threads.
 *   --level 3: a node worker. The slots are 64-byte buffers of the shared host
 *     heap; the orchestration function submits every task with the same tags.
 *     --target chip (default): tasks to --children chip children (point p to
 *     chip p mod children); the chip callable's orchestration function submits
 *     one in-core task that runs tb_execute (--chip-kernel core, default), or
 *     runs tb_execute itself (--chip-kernel orch: no in-core task, the least a
 *     chip task can cost). --target sub: tasks to --children SUB children.
 *
 * A run (timed) is one strata_worker_run_chip / strata_worker_run over the whole
 * graph. The peak is measured with plain threads before the worker exists.
 * Prints the "peak", "run" and "metg" lines of tb_sweep (bench/metg_report.py
 * reads them). --quick (the CTest smoke test) runs every pattern on tiny
 * graphs, each run checked.
 *
 *   build-rel/bench/taskbench                        # L2, every pattern
 *   build-rel/bench/taskbench --level 3 --target sub
 *   build-rel/bench/taskbench --help
 * docs/performance.md, "The smallest useful task (METG, issue 15)", has the
 * figures and the commands. */
#include <inttypes.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <strata/strata.h>

#include "common.h"
#include "taskbench_graph.h"

#define PROG "taskbench"

enum { K_POINT_AIV = 0, K_POINT_AIC = 1, K_POINT_BY_ADDRESS = 2 };
/* The scalars of a point task. */
enum { S_STEP, S_POINT, S_ITERATIONS, S_GRAPH, S_ERRORS, NSCALARS };
/* The in-core task of an L3 chip task: the same, then the input count, the
   output slot's address and the input slots' addresses. */
enum { S_NINPUTS = NSCALARS, S_OUTPUT, S_INPUTS };
#define CORE_MAX_INPUTS (STRATA_MAX_CORE_SCALARS - S_INPUTS)

typedef enum placement { PLACE_AIV, PLACE_ALT } placement;
typedef enum layout { LAYOUT_BUFFERS, LAYOUT_VIEWS } layout;
typedef enum target { TARGET_CHIP, TARGET_SUB } target;
typedef enum chip_kernel { CHIP_KERNEL_CORE, CHIP_KERNEL_ORCH } chip_kernel;

typedef struct options {
    tb_options  tb;
    int         level;
    uint32_t    aic, aiv;          /* lane threads of a sim chip (L2, and each chip child at L3) */
    placement   place;
    layout      layout;
    target      target;
    chip_kernel chip_kernel;
    uint32_t    children;          /* L3: chip or SUB children; default: cores */
    const char *name;              /* the backend's name in the output */
} options;

/* ---- the task, wherever it runs ---- */

static tb_slot *slot_of(const strata_tensor *t)
{
    return (tb_slot *)(uintptr_t)(t->addr + t->offset);   /* U8 views: offset in bytes */
}

/* Tensors 0..n-1: the input slots; tensor n: the output slot. */
static void execute_point(const strata_task_args *a)
{
    tb_graph g = tb_graph_unpack(a->scalars[S_GRAPH]);
    const tb_slot *inputs[TB_MAX_WIDTH];
    uint32_t n = a->ntensors - 1;
    for (uint32_t i = 0; i < n; i++)
        inputs[i] = slot_of(&a->tensors[i]);
    tb_execute(&g, (uint32_t)a->scalars[S_STEP], (uint32_t)a->scalars[S_POINT], inputs, n,
               slot_of(&a->tensors[n]), a->scalars[S_ITERATIONS],
               (_Atomic uint64_t *)(uintptr_t)a->scalars[S_ERRORS]);
}

static int kernel_point(const strata_task_args *a)
{
    execute_point(a);
    return 0;
}

/* The in-core task of an L3 chip task (--chip-kernel core): slots by address. */
static int kernel_point_by_address(const strata_task_args *a)
{
    tb_graph g = tb_graph_unpack(a->scalars[S_GRAPH]);
    const tb_slot *inputs[CORE_MAX_INPUTS];
    uint32_t n = (uint32_t)a->scalars[S_NINPUTS];
    for (uint32_t i = 0; i < n; i++)
        inputs[i] = (const tb_slot *)(uintptr_t)a->scalars[S_INPUTS + i];
    tb_execute(&g, (uint32_t)a->scalars[S_STEP], (uint32_t)a->scalars[S_POINT], inputs, n,
               (tb_slot *)(uintptr_t)a->scalars[S_OUTPUT], a->scalars[S_ITERATIONS],
               (_Atomic uint64_t *)(uintptr_t)a->scalars[S_ERRORS]);
    return 0;
}

/* L3 chip callable, --chip-kernel core: one in-core task does the work. */
static int chip_orch_core(strata_chip_orch *o, const strata_task_args *args, const strata_call_config *cfg)
{
    (void)cfg;
    uint64_t s[STRATA_MAX_CORE_SCALARS];
    memcpy(s, args->scalars, NSCALARS * sizeof s[0]);
    uint32_t n = args->ntensors - 1;
    s[S_NINPUTS] = n;
    s[S_OUTPUT] = (uint64_t)(uintptr_t)slot_of(&args->tensors[n]);
    for (uint32_t i = 0; i < n; i++)
        s[S_INPUTS + i] = (uint64_t)(uintptr_t)slot_of(&args->tensors[i]);
    strata_task_args core = {NULL, NULL, 0, s, S_INPUTS + n};
    return strata_chip_submit(o, K_POINT_BY_ADDRESS, &core);
}

/* L3 chip callable, --chip-kernel orch: the chip's orchestration function does
   the work itself. */
static int chip_orch_execute(strata_chip_orch *o, const strata_task_args *args, const strata_call_config *cfg)
{
    (void)o;
    (void)cfg;
    execute_point(args);
    return 0;
}

static int sub_point(const strata_task_args *args, void *ctx)
{
    (void)ctx;
    execute_point(args);
    return 0;
}

/* ---- the backend ---- */

typedef struct backend {
    const options *opt;
    strata_worker *w;
    strata_handle  chip, chip_orch, sub;   /* chip: L2's callable, or L3's --chip-kernel core */
    strata_buffer  buffers[2 * TB_MAX_WIDTH];   /* L2 */
    uint32_t       nbuffers;
    void          *host[2 * TB_MAX_WIDTH + 1];  /* L3: host heap allocations, the error counter last */
    uint32_t       nhost;
    strata_tensor  slot[2][TB_MAX_WIDTH];  /* every slot as a tensor */
    strata_buffer  slot_buffer[2][TB_MAX_WIDTH];   /* L2: the buffer of each slot, and its offset */
    uint64_t       slot_offset[2][TB_MAX_WIDTH];
    _Atomic uint64_t *errors;
    /* this run */
    const tb_graph *g;
    uint64_t        iterations;
} backend;

static _Atomic uint64_t g_errors_l2;

/* Submit every task of the graph: submit(o, args, point) for each. */
typedef int (*submit_fn)(void *o, const backend *b, const strata_task_args *a, uint32_t point, uint64_t index);

static int submit_graph(void *o, const backend *b, submit_fn submit)
{
    const tb_graph *g = b->g;
    uint32_t deps[TB_MAX_WIDTH];
    strata_tensor tensors[TB_MAX_WIDTH + 1];
    strata_tag tags[TB_MAX_WIDTH + 1];
    for (uint32_t i = 0; i <= TB_MAX_WIDTH; i++)
        tags[i] = STRATA_INPUT;
    uint64_t index = 0;
    for (uint32_t t = 0; t < g->steps; t++) {
        uint32_t width = tb_width_at(g, t);
        for (uint32_t p = 0; p < width; p++, index++) {
            uint32_t n = tb_deps(g, t, p, deps);
            for (uint32_t i = 0; i < n; i++)
                tensors[i] = b->slot[(t - 1) & 1][deps[i]];
            tensors[n] = b->slot[t & 1][p];
            tags[n] = STRATA_OUTPUT;
            uint64_t scalars[NSCALARS] = {t, p, b->iterations, tb_graph_pack(g), (uint64_t)(uintptr_t)b->errors};
            strata_task_args a = {tensors, tags, n + 1, scalars, NSCALARS};
            int rc = submit(o, b, &a, p, index);
            tags[n] = STRATA_INPUT;
            if (rc)
                return rc;
        }
    }
    return 0;
}

static int submit_l2(void *o, const backend *b, const strata_task_args *a, uint32_t point, uint64_t index)
{
    (void)point;
    int func = b->opt->place == PLACE_ALT && (index & 1) ? K_POINT_AIC : K_POINT_AIV;
    return strata_chip_submit(o, func, a);
}

static int orchestrate_l2(strata_chip_orch *o, const strata_task_args *args, const strata_call_config *cfg)
{
    (void)args;
    return submit_graph(o, (const backend *)(uintptr_t)cfg->user[0], submit_l2);
}

static int submit_l3(void *o, const backend *b, const strata_task_args *a, uint32_t point, uint64_t index)
{
    (void)index;
    if (b->opt->target == TARGET_SUB)
        return strata_submit_sub(o, b->sub, a);
    strata_handle h = b->opt->chip_kernel == CHIP_KERNEL_ORCH ? b->chip_orch : b->chip;
    return strata_submit_next_level(o, h, a, NULL, (int)(point % b->opt->children));
}

static int orchestrate_l3(strata_orch *o, const strata_task_args *args, const strata_call_config *cfg, void *ctx)
{
    (void)args;
    (void)cfg;
    return submit_graph(o, ctx, submit_l3);
}

static int backend_prepare(void *ctx, const tb_graph *g)
{
    const backend *b = ctx;
    uint32_t most = tb_max_deps(g);
    uint32_t cap = b->opt->level == 2 ? STRATA_MAX_CORE_TENSORS - 1 : STRATA_MAX_TASK_TENSORS - 1;
    if (b->opt->level == 3 && b->opt->target == TARGET_CHIP && b->opt->chip_kernel == CHIP_KERNEL_CORE)
        cap = CORE_MAX_INPUTS;
    if (most > cap) {
        fprintf(stderr, PROG ": %s of width %u gives a task %u inputs; this mode takes at most %u (a smaller "
                "--width or --radix)\n", tb_pattern_name(g->pattern), g->width, most, cap);
        return 1;
    }
    return 0;
}

static int backend_run(void *ctx, const tb_graph *g, uint64_t iterations)
{
    backend *b = ctx;
    b->g = g;
    b->iterations = iterations;
    int rc;
    if (b->opt->level == 2) {
        strata_call_config cc;
        memset(&cc, 0, sizeof cc);
        cc.user[0] = (uint64_t)(uintptr_t)b;
        rc = strata_worker_run_chip(b->w, b->chip, NULL, &cc);
    } else {
        rc = strata_worker_run(b->w, orchestrate_l3, b, NULL, NULL);
    }
    if (rc)
        return bench_fail(PROG, b->opt->level == 2 ? "strata_worker_run_chip" : "strata_worker_run", rc);
    return 0;
}

static int backend_read_slot(void *ctx, uint32_t parity, uint32_t p, tb_slot *out)
{
    backend *b = ctx;
    if (b->opt->level == 3) {
        memcpy(out, slot_of(&b->slot[parity][p]), sizeof *out);
        return 0;
    }
    int rc = strata_worker_copy_from(b->w, out, b->slot_buffer[parity][p], b->slot_offset[parity][p], sizeof *out);
    return rc ? bench_fail(PROG, "strata_worker_copy_from", rc) : 0;
}

static strata_tensor slot_tensor(uint64_t addr, uint64_t nbytes, uint64_t offset)
{
    uint64_t shape[1] = {sizeof(tb_slot)};
    strata_tensor t = strata_tensor_make((const void *)(uintptr_t)addr, STRATA_U8, 1, shape);
    t.nbytes = nbytes;
    t.offset = offset;
    return t;
}

static int open_l2(backend *b)
{
    const options *opt = b->opt;
    strata_worker_config cfg;
    strata_worker_config_init(&cfg, 2);
    cfg.aic_cores = opt->aic;
    cfg.aiv_cores = opt->aiv;
    cfg.device_memory_bytes = 64u << 20;
    int rc = strata_worker_create(&cfg, &b->w);
    if (rc)
        return bench_fail(PROG, "strata_worker_create", rc);
    static const strata_kernel_entry kernels[] = {
        {K_POINT_AIV, STRATA_AIV, kernel_point},
        {K_POINT_AIC, STRATA_AIC, kernel_point},
    };
    strata_chip_callable callable = {"taskbench", orchestrate_l2, kernels, 2};
    if ((rc = strata_worker_init(b->w)))
        return bench_fail(PROG, "strata_worker_init", rc);
    if ((rc = strata_worker_register_chip(b->w, &callable, &b->chip)))
        return bench_fail(PROG, "strata_worker_register_chip", rc);
    const uint32_t w = opt->tb.width;
    if (opt->layout == LAYOUT_VIEWS) {
        if ((rc = strata_worker_malloc(b->w, 0, 2ull * w * sizeof(tb_slot), &b->buffers[0])))
            return bench_fail(PROG, "strata_worker_malloc", rc);
        b->nbuffers = 1;
    }
    for (uint32_t parity = 0; parity < 2; parity++)
        for (uint32_t p = 0; p < w; p++) {
            strata_buffer buf;
            uint64_t offset;
            if (opt->layout == LAYOUT_VIEWS) {
                buf = b->buffers[0];
                offset = ((uint64_t)parity * w + p) * sizeof(tb_slot);
            } else {
                if ((rc = strata_worker_malloc(b->w, 0, sizeof(tb_slot), &b->buffers[b->nbuffers])))
                    return bench_fail(PROG, "strata_worker_malloc", rc);
                buf = b->buffers[b->nbuffers++];
                offset = 0;
            }
            b->slot_buffer[parity][p] = buf;
            b->slot_offset[parity][p] = offset;
            b->slot[parity][p] = slot_tensor(buf.addr, buf.nbytes, offset);
        }
    b->errors = &g_errors_l2;
    return 0;
}

static int open_l3(backend *b)
{
    const options *opt = b->opt;
    static int ids[TB_MAX_WIDTH];
    for (int i = 0; i < (int)TB_MAX_WIDTH; i++)
        ids[i] = i;
    strata_worker_config cfg;
    strata_worker_config_init(&cfg, 3);
    if (opt->target == TARGET_CHIP) {
        cfg.device_ids = ids;
        cfg.ndevices = opt->children;
        cfg.aic_cores = opt->aic;
        cfg.aiv_cores = opt->aiv;
    } else {
        cfg.num_sub_workers = opt->children;
    }
    cfg.device_memory_bytes = 16u << 20;
    cfg.shared_heap_bytes = 16u << 20;
    int rc = strata_worker_create(&cfg, &b->w);
    if (rc)
        return bench_fail(PROG, "strata_worker_create", rc);
    static const strata_kernel_entry kernels[] = {{K_POINT_BY_ADDRESS, STRATA_AIV, kernel_point_by_address}};
    strata_chip_callable core = {"taskbench_point_core", chip_orch_core, kernels, 1};
    strata_chip_callable orch = {"taskbench_point_orch", chip_orch_execute, kernels, 1};
    if ((rc = strata_worker_register_chip(b->w, &core, &b->chip)) ||
        (rc = strata_worker_register_chip(b->w, &orch, &b->chip_orch)) ||
        (rc = strata_worker_register_sub(b->w, sub_point, NULL, &b->sub)))
        return bench_fail(PROG, "register", rc);
    if ((rc = strata_worker_init(b->w)))
        return bench_fail(PROG, "strata_worker_init", rc);
    for (uint32_t parity = 0; parity < 2; parity++)
        for (uint32_t p = 0; p < opt->tb.width; p++) {
            void *mem;
            if ((rc = strata_worker_host_alloc(b->w, sizeof(tb_slot), &mem)))
                return bench_fail(PROG, "strata_worker_host_alloc", rc);
            memset(mem, 0, sizeof(tb_slot));
            b->host[b->nhost++] = mem;
            b->slot[parity][p] = slot_tensor((uint64_t)(uintptr_t)mem, sizeof(tb_slot), 0);
        }
    void *counter;
    if ((rc = strata_worker_host_alloc(b->w, sizeof(tb_slot), &counter)))
        return bench_fail(PROG, "strata_worker_host_alloc", rc);
    b->host[b->nhost++] = counter;
    b->errors = counter;
    atomic_init(b->errors, 0);
    return 0;
}

/* Close and destroy; 1 if close failed. */
static int backend_close(backend *b)
{
    if (!b->w)
        return 0;
    for (uint32_t i = 0; i < b->nbuffers; i++)
        strata_worker_free(b->w, b->buffers[i]);
    for (uint32_t i = 0; i < b->nhost; i++)
        strata_worker_host_free(b->w, b->host[i]);
    int ret = 0, rc = strata_worker_close(b->w);
    if (rc)
        ret = bench_fail(PROG, "strata_worker_close", rc);
    strata_worker_destroy(b->w);
    b->w = NULL;
    return ret;
}

/* ---- command line ---- */

static void usage(FILE *f)
{
    fprintf(f, "usage: " PROG " [options]\n");
    tb_options_usage(f);
    fprintf(f,
            "  --level 2|3      a chip in this process (default), or a node worker's children\n"
            "  --aic N, --aiv N lane threads of the sim chip (L2: default 1 and 2; L3 chip children: 1 and 1)\n"
            "  --place aiv|alt  L2: every task on AIV lanes (default), or AIC and AIV by turns\n"
            "  --layout buffers|views   L2: a chip buffer per slot (default), or views of one buffer\n"
            "  --target chip|sub        L3: tasks to chip children (default) or SUB children\n"
            "  --chip-kernel core|orch  L3 chip: the work in one in-core task (default), or in the\n"
            "                   chip's orchestration function\n"
            "  --children N     L3: chip or SUB children (default: --cores)\n"
            "  --name NAME      the backend's name in the output (default strata-l2, strata-l3-chip,\n"
            "                   strata-l3-chip-orch, strata-l3-sub)\n");
}

static bool parse_choice(const char *v, const char *a, const char *b, int *out)
{
    if (strcmp(v, a) == 0)
        *out = 0;
    else if (strcmp(v, b) == 0)
        *out = 1;
    else
        return false;
    return true;
}

static int parse_args(int argc, char **argv, options *o)
{
    memset(o, 0, sizeof *o);
    o->level = 2;
    tb_options_init(&o->tb, argc, argv);
    bool aiv_set = false;
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
        static const char *const own[] = {"--level", "--aic", "--aiv", "--place", "--layout", "--target",
                                          "--chip-kernel", "--children", "--name"};
        bool known = false;
        for (size_t k = 0; k < sizeof own / sizeof own[0]; k++)
            known |= strcmp(a, own[k]) == 0;
        if (!known) {
            fprintf(stderr, PROG ": unknown option %s\n", a);
            usage(stderr);
            return 1;
        }
        const char *v = bench_option_value(PROG, argc, argv, &i);
        if (!v)
            return 1;
        uint32_t x = 0;
        int choice = 0;
        bool ok = true;
        if (strcmp(a, "--level") == 0) {
            ok = bench_parse_u32(v, &x) && (x == 2 || x == 3);
            o->level = (int)x;
        } else if (strcmp(a, "--aic") == 0) {
            ok = bench_parse_u32(v, &o->aic) && o->aic >= 1 && o->aic <= 64;
        } else if (strcmp(a, "--aiv") == 0) {
            ok = bench_parse_u32(v, &o->aiv) && o->aiv >= 1 && o->aiv <= 64;
            aiv_set = true;
        } else if (strcmp(a, "--children") == 0) {
            ok = bench_parse_u32(v, &o->children) && o->children >= 1 && o->children <= 64;
        } else if (strcmp(a, "--name") == 0) {
            o->name = v;
        } else {
            if (strcmp(a, "--place") == 0) {
                ok = parse_choice(v, "aiv", "alt", &choice);
                o->place = (placement)choice;
            } else if (strcmp(a, "--layout") == 0) {
                ok = parse_choice(v, "buffers", "views", &choice);
                o->layout = (layout)choice;
            } else if (strcmp(a, "--target") == 0) {
                ok = parse_choice(v, "chip", "sub", &choice);
                o->target = (target)choice;
            } else {
                ok = parse_choice(v, "core", "orch", &choice);
                o->chip_kernel = (chip_kernel)choice;
            }
        }
        if (!ok) {
            fprintf(stderr, PROG ": bad value '%s' for %s\n", v, a);
            return 1;
        }
    }
    if (tb_options_finish(&o->tb, PROG))
        return 1;
    if (!o->aic)
        o->aic = 1;
    if (!aiv_set)
        o->aiv = o->level == 2 ? 2 : 1;
    if (!o->children)
        o->children = o->tb.cores;
    if (!o->name)
        o->name = o->level == 2 ? "strata-l2"
                  : o->target == TARGET_SUB ? "strata-l3-sub"
                  : o->chip_kernel == CHIP_KERNEL_ORCH ? "strata-l3-chip-orch" : "strata-l3-chip";
    if (strlen(o->name) == 0 || strcspn(o->name, " \t") != strlen(o->name)) {
        fprintf(stderr, PROG ": --name must be one word\n");
        return 1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    options opt;
    if (parse_args(argc, argv, &opt))
        return 2;
    char runtime[64];
    snprintf(runtime, sizeof runtime, "strata %s", strata_version_string());
    bench_print_machine(runtime, "");
    if (opt.level == 2)
        printf("# level 2: %u AIC + %u AIV lanes, tasks on %s, %s, plus the orchestrator thread\n", opt.aic,
               opt.aiv, opt.place == PLACE_AIV ? "AIV" : "AIC and AIV by turns",
               opt.layout == LAYOUT_VIEWS ? "slots are views of one chip buffer" : "a chip buffer per slot");
    else if (opt.target == TARGET_CHIP)
        printf("# level 3: %u chip children (%u AIC + %u AIV lanes each), point p to chip p mod %u, the work %s\n",
               opt.children, opt.aic, opt.aiv, opt.children,
               opt.chip_kernel == CHIP_KERNEL_CORE ? "in one in-core task" : "in the chip's orchestration function");
    else
        printf("# level 3: %u SUB children, a SUB task per point\n", opt.children);
    /* the peak first: no runtime thread or child exists yet */
    double peak = tb_measure_peak(opt.tb.cores, opt.tb.peak_ms);
    if (peak <= 0) {
        fprintf(stderr, PROG ": could not measure the peak\n");
        return 1;
    }
    backend *b = calloc(1, sizeof *b);
    if (!b) {
        fprintf(stderr, PROG ": out of memory\n");
        return 1;
    }
    b->opt = &opt;
    int status = opt.level == 2 ? open_l2(b) : open_l3(b);
    if (status == 0) {
        tb_backend tb = {opt.name, b, backend_prepare, backend_run, backend_read_slot, b->errors};
        status = tb_sweep(&opt.tb, &tb, peak);
    }
    if (backend_close(b))
        status = 1;
    free(b);
    return status;
}
