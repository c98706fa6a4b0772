/* l2_vector_add: the smallest complete Strata program.
 *
 * One sim chip; a chip callable whose orchestration function splits c = a + b
 * into tiles, one AIV task per tile, then d = c * 2 into a heap-ring intermediate
 * and back, so the run shows RAW dependencies, scopes and intermediate buffers.
 * Runs it many times on the same worker and checks every result. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <strata/strata.h>

enum { N = 1 << 16, TILE = 4096, RUNS = 200 };
enum { KERNEL_ADD = 0, KERNEL_SCALE = 1, KERNEL_COPY = 2 };

static float *elem0(const strata_tensor *t)
{
    return (float *)(uintptr_t)(t->addr + t->offset * strata_dtype_size(t->dtype));
}

/* out = in0 + in1 over one tile */
static int kernel_add(const strata_task_args *a)
{
    const float *x = elem0(&a->tensors[0]), *y = elem0(&a->tensors[1]);
    float *z = elem0(&a->tensors[2]);
    for (uint64_t i = 0; i < a->tensors[2].shape[0]; i++)
        z[i] = x[i] + y[i];
    return 0;
}

/* out = in * scalars[0] */
static int kernel_scale(const strata_task_args *a)
{
    const float *x = elem0(&a->tensors[0]);
    float *z = elem0(&a->tensors[1]);
    float k = (float)a->scalars[0];
    for (uint64_t i = 0; i < a->tensors[1].shape[0]; i++)
        z[i] = x[i] * k;
    return 0;
}

static int kernel_copy(const strata_task_args *a)
{
    memcpy(elem0(&a->tensors[1]), elem0(&a->tensors[0]), a->tensors[1].shape[0] * sizeof(float));
    return 0;
}

/* A tile view of a whole-buffer tensor. */
static strata_tensor tile(const strata_tensor *whole, uint64_t first)
{
    strata_tensor t = *whole;
    t.offset = first;
    t.shape[0] = TILE;
    return t;
}

/* args: tensors a, b (INPUT), c, d (OUTPUT). */
static int orchestrate(strata_chip_orch *o, const strata_task_args *args, const strata_call_config *cfg)
{
    (void)cfg;
    const strata_tensor *a = &args->tensors[0], *b = &args->tensors[1], *c = &args->tensors[2],
                        *d = &args->tensors[3];
    for (uint64_t first = 0; first < N; first += TILE) {
        strata_tensor t[3] = {tile(a, first), tile(b, first), tile(c, first)};
        strata_tag tags[3] = {STRATA_INPUT, STRATA_INPUT, STRATA_OUTPUT};
        int rc = strata_chip_submit(o, KERNEL_ADD, &(strata_task_args){t, tags, 3, NULL, 0});
        if (rc)
            return rc;
    }
    for (uint64_t first = 0; first < N; first += TILE) {
        int rc = strata_chip_scope_begin(o);
        strata_tensor tmp;
        uint64_t shape[1] = {TILE};
        if (rc == 0)
            rc = strata_chip_alloc(o, STRATA_F32, 1, shape, &tmp);
        if (rc)
            return rc;
        uint64_t two = 2;
        strata_tensor s[2] = {tile(c, first), tmp};
        strata_tag stags[2] = {STRATA_INPUT, STRATA_OUTPUT};
        rc = strata_chip_submit(o, KERNEL_SCALE, &(strata_task_args){s, stags, 2, &two, 1});
        strata_tensor k[2] = {tmp, tile(d, first)};
        strata_tag ktags[2] = {STRATA_INPUT, STRATA_OUTPUT};
        if (rc == 0)
            rc = strata_chip_submit(o, KERNEL_COPY, &(strata_task_args){k, ktags, 2, NULL, 0});
        if (rc == 0)
            rc = strata_chip_scope_end(o);
        if (rc)
            return rc;
    }
    return 0;
}

static int fail(const char *what, int rc)
{
    fprintf(stderr, "l2_vector_add: %s failed: %s: %s\n", what, strata_status_name(rc), strata_last_error());
    return 1;
}

int main(void)
{
    strata_worker_config cfg;
    strata_worker_config_init(&cfg, 2);
    strata_worker *w;
    int rc = strata_worker_create(&cfg, &w);
    if (rc)
        return fail("strata_worker_create", rc);
    if ((rc = strata_worker_init(w)))
        return fail("strata_worker_init", rc);

    static const strata_kernel_entry kernels[] = {
        {KERNEL_ADD, STRATA_AIV, kernel_add},
        {KERNEL_SCALE, STRATA_AIV, kernel_scale},
        {KERNEL_COPY, STRATA_AIC, kernel_copy},
    };
    strata_chip_callable callable = {"vector_add", orchestrate, kernels, 3};
    strata_handle h;
    if ((rc = strata_worker_register_chip(w, &callable, &h)))
        return fail("strata_worker_register_chip", rc);

    strata_buffer buf[4];
    for (int i = 0; i < 4; i++)
        if ((rc = strata_worker_malloc(w, 0, N * sizeof(float), &buf[i])))
            return fail("strata_worker_malloc", rc);
    float *host = malloc(N * sizeof(float)), *out = malloc(N * sizeof(float));
    if (!host || !out)
        return 1;
    for (int i = 0; i < N; i++)
        host[i] = (float)i;
    strata_worker_copy_to(w, buf[0], 0, host, N * sizeof(float));
    for (int i = 0; i < N; i++)
        host[i] = (float)(2 * i);
    strata_worker_copy_to(w, buf[1], 0, host, N * sizeof(float));

    strata_tensor t[4];
    strata_tag tags[4] = {STRATA_INPUT, STRATA_INPUT, STRATA_OUTPUT, STRATA_OUTPUT};
    uint64_t shape[1] = {N};
    for (int i = 0; i < 4; i++)
        t[i] = strata_tensor_make((void *)(uintptr_t)buf[i].addr, STRATA_F32, 1, shape);
    strata_task_args args = {t, tags, 4, NULL, 0};

    for (int run = 0; run < RUNS; run++) {
        if ((rc = strata_worker_run_chip(w, h, &args, NULL)))
            return fail("strata_worker_run_chip", rc);
    }
    strata_worker_copy_from(w, out, buf[3], 0, N * sizeof(float));
    for (int i = 0; i < N; i++) {
        if (out[i] != (float)(6 * i)) {
            fprintf(stderr, "l2_vector_add: d[%d] is %g, expected %g\n", i, out[i], (double)(6 * i));
            return 1;
        }
    }
    strata_run_stats st;
    strata_worker_stats(w, &st);
    printf("l2_vector_add: %d runs of %d tasks each, all %d results correct\n", RUNS, 2 * (N / TILE) + N / TILE,
           N);
    printf("  tasks completed %llu, failed %llu, cancelled %llu\n", (unsigned long long)st.tasks_completed,
           (unsigned long long)st.tasks_failed, (unsigned long long)st.tasks_canceled);
    printf("  last run: task_window %llu/%llu slots, heap %llu/%llu bytes, dep_pool %llu/%llu edges "
           "(high water / size)\n",
           (unsigned long long)st.task_window.high_water, (unsigned long long)st.task_window.size,
           (unsigned long long)st.heap.high_water, (unsigned long long)st.heap.size,
           (unsigned long long)st.dep_pool.high_water, (unsigned long long)st.dep_pool.size);
    for (int i = 0; i < 4; i++)
        strata_worker_free(w, buf[i]);
    if ((rc = strata_worker_close(w)))
        return fail("strata_worker_close", rc);
    strata_worker_destroy(w);
    free(host);
    free(out);
    return 0;
}
