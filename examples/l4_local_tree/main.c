/* l4_local_tree: a level-4 worker over two level-3 workers on this host.
 *
 * The tree (every box a process):
 *
 *   this program: the level-4 engine
 *    └─ spawner
 *        ├─ level-3 worker child 0: its engine ── spawner ── chip child (device 0)
 *        ├─ level-3 worker child 1: its engine ── spawner ── chip child (device 1)
 *        └─ SUB child 2
 *
 * Each run computes y = W x for a 256 x 256 matrix split by rows: the rows of
 * half k live in level-3 worker k's memory (uploaded once with
 * strata_worker_malloc on the level-4 worker), x and y in the level-4 shared
 * heap, which every process of the tree sees at the same address. A level-4 task
 * per half runs an orchestration function on that level-3 worker, which submits
 * the matrix-vector kernel to its chip; a level-4 SUB task then sums y. The SUB
 * task depends on both halves through the tags of y alone. Every run's y and sum
 * are checked against a host computation. */
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <strata/strata.h>

enum { N = 256, HALF = N / 2, RUNS = 200 };

static float *f32(const strata_tensor *t)
{
    return (float *)(uintptr_t)(t->addr + t->offset * strata_dtype_size(t->dtype));
}

/* in-core kernel: y[i] = sum_j W[i][j] * x[j] for the rows of W given */
static int matvec_kernel(const strata_task_args *a)
{
    const float *w = f32(&a->tensors[0]), *x = f32(&a->tensors[1]);
    float *y = f32(&a->tensors[2]);
    uint64_t rows = a->tensors[0].shape[0], cols = a->tensors[0].shape[1];
    for (uint64_t i = 0; i < rows; i++) {
        float s = 0;
        for (uint64_t j = 0; j < cols; j++)
            s += w[i * cols + j] * x[j];
        y[i] = s;
    }
    return 0;
}

static int matvec_chip_orch(strata_chip_orch *o, const strata_task_args *args, const strata_call_config *cfg)
{
    (void)cfg;
    strata_tag tags[3] = {STRATA_INPUT, STRATA_INPUT, STRATA_OUTPUT};
    return strata_chip_submit(o, 0, &(strata_task_args){args->tensors, tags, 3, NULL, 0});
}

/* Level-3 orchestration, run by a level-3 worker child: the chip task (its
   handle on that level-3 worker in scalars[0]). */
static int half_orch(strata_orch *o, const strata_task_args *args, const strata_call_config *cfg, void *ctx)
{
    (void)cfg;
    (void)ctx;
    strata_tag tags[3] = {STRATA_INPUT, STRATA_INPUT, STRATA_OUTPUT};
    return strata_submit_next_level(o, (strata_handle)args->scalars[0],
                                    &(strata_task_args){args->tensors, tags, 3, NULL, 0}, NULL, 0);
}

/* Level-4 SUB: out[0] = sum of y */
static int sum_sub(const strata_task_args *a, void *ctx)
{
    (void)ctx;
    const float *y = f32(&a->tensors[0]);
    double s = 0;
    for (uint64_t i = 0; i < a->tensors[0].shape[0]; i++)
        s += y[i];
    *(double *)(uintptr_t)a->tensors[1].addr = s;
    return 0;
}

typedef struct model {
    strata_handle half, sum;
    uint64_t      chip_handle;          /* the matvec callable on each level-3 worker */
    strata_tensor w[2], x, y[2], y_all, out;
} model;

/* Level-4 orchestration: one task per half, then the sum. */
static int step(strata_orch *o, const strata_task_args *args, const strata_call_config *cfg, void *ctx)
{
    (void)args;
    (void)cfg;
    model *m = ctx;
    strata_tag tags[3] = {STRATA_INPUT, STRATA_INPUT, STRATA_OUTPUT};
    for (int k = 0; k < 2; k++) {
        strata_tensor t[3] = {m->w[k], m->x, m->y[k]};
        int rc = strata_submit_next_level(o, m->half, &(strata_task_args){t, tags, 3, &m->chip_handle, 1}, NULL, k);
        if (rc)
            return rc;
    }
    strata_tensor t[2] = {m->y_all, m->out};
    strata_tag stags[2] = {STRATA_INPUT, STRATA_OUTPUT};
    return strata_submit_sub(o, m->sum, &(strata_task_args){t, stags, 2, NULL, 0});
}

static int fail(const char *what, int rc)
{
    fprintf(stderr, "l4_local_tree: %s failed: %s: %s\n", what, strata_status_name(rc), strata_last_error());
    return 1;
}

/* A level-3 worker with one chip (device id `device`), the matvec callable
   registered as handle 1. */
static int make_l3(int device, strata_worker **out)
{
    static const strata_kernel_entry kernels[] = {{0, STRATA_AIV, matvec_kernel}};
    static const strata_chip_callable matvec = {"matvec", matvec_chip_orch, kernels, 1};
    static int ids[2] = {0, 1};
    strata_worker_config cfg;
    strata_worker_config_init(&cfg, 3);
    cfg.device_ids = &ids[device];
    cfg.ndevices = 1;
    cfg.device_memory_bytes = 16 << 20;
    cfg.shared_heap_bytes = 4 << 20;   /* holds this worker's half of W */
    strata_handle h;
    int rc = strata_worker_create(&cfg, out);
    if (rc == STRATA_OK)
        rc = strata_worker_register_chip(*out, &matvec, &h);
    return rc;
}

int main(void)
{
    strata_worker_config cfg;
    strata_worker_config_init(&cfg, 4);
    cfg.num_sub_workers = 1;
    cfg.shared_heap_bytes = 4 << 20;
    strata_worker *w4;
    int rc = strata_worker_create(&cfg, &w4);
    if (rc)
        return fail("strata_worker_create", rc);
    model m = {.chip_handle = 1};
    for (int k = 0; k < 2; k++) {
        strata_worker *l3;
        int id;
        if ((rc = make_l3(k, &l3)) || (rc = strata_worker_add_worker(w4, l3, &id)))
            return fail("adding a level-3 worker", rc);
    }
    if ((rc = strata_worker_register_orch(w4, half_orch, NULL, &m.half)) ||
        (rc = strata_worker_register_sub(w4, sum_sub, NULL, &m.sum)))
        return fail("register", rc);
    if ((rc = strata_worker_init(w4)))
        return fail("strata_worker_init", rc);

    /* W: each half uploaded once into its level-3 worker's memory. */
    static float host_w[N * N], host_x[N], ref_y[N];
    for (int i = 0; i < N * N; i++)
        host_w[i] = (float)((i * 7919) % 13) / 13.0f - 0.5f;
    uint64_t wshape[2] = {HALF, N}, vshape[1] = {N}, one[1] = {1};
    for (int k = 0; k < 2; k++) {
        strata_buffer b;
        if ((rc = strata_worker_malloc(w4, k, sizeof(float) * HALF * N, &b)) ||
            (rc = strata_worker_copy_to(w4, b, 0, host_w + k * HALF * N, sizeof(float) * HALF * N)))
            return fail("uploading W", rc);
        m.w[k] = strata_tensor_make((void *)(uintptr_t)b.addr, STRATA_F32, 2, wshape);
    }
    void *x, *y, *out;
    if ((rc = strata_worker_host_alloc(w4, sizeof(float) * N, &x)) ||
        (rc = strata_worker_host_alloc(w4, sizeof(float) * N, &y)) ||
        (rc = strata_worker_host_alloc(w4, sizeof(double), &out)))
        return fail("strata_worker_host_alloc", rc);
    m.x = strata_tensor_make(x, STRATA_F32, 1, vshape);
    m.y_all = strata_tensor_make(y, STRATA_F32, 1, vshape);
    for (int k = 0; k < 2; k++) {
        m.y[k] = m.y_all;   /* a view of y's rows [k * HALF, (k + 1) * HALF) */
        m.y[k].ndims = 1;
        m.y[k].shape[0] = HALF;
        m.y[k].offset = (uint64_t)k * HALF;
    }
    m.out = strata_tensor_make(out, STRATA_F64, 1, one);

    for (int run = 1; run <= RUNS; run++) {
        for (int j = 0; j < N; j++)
            host_x[j] = (float)((run * 31 + j) % 17) / 17.0f;
        memcpy(x, host_x, sizeof host_x);
        if ((rc = strata_worker_run(w4, step, &m, NULL, NULL)))
            return fail("strata_worker_run", rc);
        double expect = 0;
        for (int i = 0; i < N; i++) {
            float s = 0;
            for (int j = 0; j < N; j++)
                s += host_w[i * N + j] * host_x[j];
            ref_y[i] = s;
            expect += s;
        }
        bool ok = fabs(*(double *)out - expect) <= 1e-6 * (1 + fabs(expect));
        for (int i = 0; i < N; i++)
            ok &= fabsf(((float *)y)[i] - ref_y[i]) <= 1e-5f * (1 + fabsf(ref_y[i]));
        if (!ok) {
            fprintf(stderr, "l4_local_tree: run %d: y or its sum (%.9g, expected %.9g) is wrong\n", run,
                    *(double *)out, expect);
            return 1;
        }
    }
    pid_t pids[3];
    for (int i = 0; i < 3; i++)
        if ((rc = strata_worker_child_pid(w4, i, &pids[i])))
            return fail("strata_worker_child_pid", rc);
    strata_run_stats st;
    strata_worker_stats(w4, &st);
    printf("l4_local_tree: %d runs of y = W x split across two level-3 workers (pids %d and %d, each with its own "
           "chip child) and summed by a SUB child (pid %d); every y and sum correct (last sum %.6g)\n", RUNS,
           (int)pids[0], (int)pids[1], (int)pids[2], *(double *)out);
    printf("  level-4 tasks completed %llu, failed %llu; children replaced %llu\n",
           (unsigned long long)st.tasks_completed, (unsigned long long)st.tasks_failed,
           (unsigned long long)st.child_restarts);
    if ((rc = strata_worker_close(w4)))
        return fail("strata_worker_close", rc);
    strata_worker_destroy(w4);   /* destroys the level-3 workers added to it too */
    return 0;
}
