/* l3_multi_chip: a node worker with two chip children and one SUB child.
 *
 * Each run is a tiny "prefill then decode" step: chip 0 scales its half of an
 * activation vector by weights that were uploaded once into its own chip memory,
 * chip 1 does the same for the other half, and a SUB worker (a host function in
 * its own process) reduces both halves to a checksum. The dependencies (both
 * chips before the SUB task) come from the tensor tags alone. One worker serves
 * every run; every result is checked against a host computation. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <strata/strata.h>

enum { N = 4096, HALF = N / 2, RUNS = 500 };

static float *f32(const strata_tensor *t)
{
    return (float *)(uintptr_t)(t->addr + t->offset * strata_dtype_size(t->dtype));
}

/* in-core kernel: x[i] = x[i] * w[i] + 1 */
static int scale_kernel(const strata_task_args *a)
{
    float *x = f32(&a->tensors[0]);
    const float *w = f32(&a->tensors[1]);
    for (uint64_t i = 0; i < a->tensors[0].shape[0]; i++)
        x[i] = x[i] * w[i] + 1.0f;
    return 0;
}

/* chip orchestration: one AIV task over the whole half */
static int scale_orch(strata_chip_orch *o, const strata_task_args *args, const strata_call_config *cfg)
{
    (void)cfg;
    strata_tag tags[2] = {STRATA_INOUT, STRATA_INPUT};
    return strata_chip_submit(o, 0, &(strata_task_args){args->tensors, tags, 2, NULL, 0});
}

/* SUB: out[0] = sum of both halves (double precision) */
static int checksum_sub(const strata_task_args *a, void *ctx)
{
    (void)ctx;
    double s = 0;
    for (uint32_t k = 0; k < 2; k++) {
        const float *x = f32(&a->tensors[k]);
        for (uint64_t i = 0; i < a->tensors[k].shape[0]; i++)
            s += x[i];
    }
    *(double *)(uintptr_t)a->tensors[2].addr = s;
    return 0;
}

typedef struct model {
    strata_handle scale, checksum;
    strata_tensor x[2], w[2], out;
} model;

static int step(strata_orch *o, const strata_task_args *args, const strata_call_config *cfg, void *ctx)
{
    (void)args;
    (void)cfg;
    model *m = ctx;
    strata_tag tags[2] = {STRATA_INOUT, STRATA_INPUT};
    for (int chip = 0; chip < 2; chip++) {
        strata_tensor t[2] = {m->x[chip], m->w[chip]};
        int rc = strata_submit_next_level(o, m->scale, &(strata_task_args){t, tags, 2, NULL, 0}, NULL, chip);
        if (rc)
            return rc;
    }
    strata_tensor t[3] = {m->x[0], m->x[1], m->out};
    strata_tag stags[3] = {STRATA_INPUT, STRATA_INPUT, STRATA_OUTPUT};
    return strata_submit_sub(o, m->checksum, &(strata_task_args){t, stags, 3, NULL, 0});
}

static int fail(const char *what, int rc)
{
    fprintf(stderr, "l3_multi_chip: %s failed: %s: %s\n", what, strata_status_name(rc), strata_last_error());
    return 1;
}

int main(void)
{
    int ids[2] = {0, 1};
    strata_worker_config cfg;
    strata_worker_config_init(&cfg, 3);
    cfg.device_ids = ids;
    cfg.ndevices = 2;
    cfg.num_sub_workers = 1;
    cfg.device_memory_bytes = 64 << 20;
    cfg.shared_heap_bytes = 16 << 20;
    strata_worker *w;
    int rc = strata_worker_create(&cfg, &w);
    if (rc)
        return fail("strata_worker_create", rc);

    static const strata_kernel_entry kernels[] = {{0, STRATA_AIV, scale_kernel}};
    strata_chip_callable scale = {"scale", scale_orch, kernels, 1};
    model m;
    if ((rc = strata_worker_register_chip(w, &scale, &m.scale)) ||
        (rc = strata_worker_register_sub(w, checksum_sub, NULL, &m.checksum)))
        return fail("register", rc);
    if ((rc = strata_worker_init(w)))
        return fail("strata_worker_init", rc);

    /* Weights: uploaded once into each chip's own memory. */
    static float host_w[N], ref_x[N];
    for (int i = 0; i < N; i++)
        host_w[i] = (i % 7 == 0) ? 0.5f : 1.0f;
    uint64_t shape[1] = {HALF};
    for (int chip = 0; chip < 2; chip++) {
        strata_buffer b;
        if ((rc = strata_worker_malloc(w, chip, HALF * sizeof(float), &b)) ||
            (rc = strata_worker_copy_to(w, b, 0, host_w + chip * HALF, HALF * sizeof(float))))
            return fail("uploading weights", rc);
        m.w[chip] = strata_tensor_make((void *)(uintptr_t)b.addr, STRATA_F32, 1, shape);
        void *x;
        if ((rc = strata_worker_host_alloc(w, HALF * sizeof(float), &x)))
            return fail("strata_worker_host_alloc", rc);
        memset(x, 0, HALF * sizeof(float));
        m.x[chip] = strata_tensor_make(x, STRATA_F32, 1, shape);
    }
    void *out;
    if ((rc = strata_worker_host_alloc(w, sizeof(double), &out)))
        return fail("strata_worker_host_alloc", rc);
    uint64_t one[1] = {1};
    m.out = strata_tensor_make(out, STRATA_F64, 1, one);

    for (int run = 1; run <= RUNS; run++) {
        if ((rc = strata_worker_run(w, step, &m, NULL, NULL)))
            return fail("strata_worker_run", rc);
        double expect = 0;
        for (int i = 0; i < N; i++) {
            ref_x[i] = ref_x[i] * host_w[i] + 1.0f;
            expect += ref_x[i];
        }
        if (*(double *)out != expect) {
            fprintf(stderr, "l3_multi_chip: run %d: checksum %.17g, expected %.17g\n", run, *(double *)out, expect);
            return 1;
        }
    }
    strata_run_stats st;
    strata_worker_stats(w, &st);
    pid_t pids[3];
    for (int i = 0; i < 3; i++)
        strata_worker_child_pid(w, i, &pids[i]);
    printf("l3_multi_chip: %d runs on one worker (chip children pid %d and %d, SUB child pid %d), "
           "every checksum correct (last %.6g)\n", RUNS, (int)pids[0], (int)pids[1], (int)pids[2], *(double *)out);
    printf("  tasks completed %llu, failed %llu, cancelled %llu; children replaced %llu\n",
           (unsigned long long)st.tasks_completed, (unsigned long long)st.tasks_failed,
           (unsigned long long)st.tasks_canceled, (unsigned long long)st.child_restarts);
    if ((rc = strata_worker_close(w)))
        return fail("strata_worker_close", rc);
    strata_worker_destroy(w);
    return 0;
}
