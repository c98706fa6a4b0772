/* chip.compute: real computations checked against host references: vector add
 * and a tiled matmul whose tiles are strided views of whole matrices. */
#include "harness.h"

static float *f32_at(const strata_tensor *t, uint64_t row, uint64_t col)
{
    uint64_t stride0 = t->strides[0] ? (uint64_t)t->strides[0] : t->shape[1];
    uint64_t stride1 = t->strides[1] ? (uint64_t)t->strides[1] : 1;
    return (float *)(uintptr_t)(t->addr) + t->offset + row * stride0 + col * stride1;
}

enum { ADD = 0, ZERO = 1, GEMM = 2 };

static int add_kernel(const strata_task_args *a)
{
    const float *x = (const float *)(uintptr_t)a->tensors[0].addr + a->tensors[0].offset;
    const float *y = (const float *)(uintptr_t)a->tensors[1].addr + a->tensors[1].offset;
    float *z = (float *)(uintptr_t)a->tensors[2].addr + a->tensors[2].offset;
    for (uint64_t i = 0; i < a->tensors[2].shape[0]; i++)
        z[i] = x[i] + y[i];
    return 0;
}

static int zero_kernel(const strata_task_args *a)
{
    const strata_tensor *c = &a->tensors[0];
    for (uint64_t i = 0; i < c->shape[0]; i++)
        for (uint64_t j = 0; j < c->shape[1]; j++)
            *f32_at(c, i, j) = 0.0f;
    return 0;
}

/* C += A B on one tile */
static int gemm_kernel(const strata_task_args *a)
{
    const strata_tensor *A = &a->tensors[0], *B = &a->tensors[1], *C = &a->tensors[2];
    for (uint64_t i = 0; i < C->shape[0]; i++)
        for (uint64_t j = 0; j < C->shape[1]; j++) {
            float acc = *f32_at(C, i, j);
            for (uint64_t k = 0; k < A->shape[1]; k++)
                acc += *f32_at(A, i, k) * *f32_at(B, k, j);
            *f32_at(C, i, j) = acc;
        }
    return 0;
}

static const strata_kernel_entry kernels[] = {
    {ADD, STRATA_AIV, add_kernel}, {ZERO, STRATA_AIV, zero_kernel}, {GEMM, STRATA_AIC, gemm_kernel}};

enum { VN = 100000, VT = 1000 };

static int vadd_orch(strata_chip_orch *o, const strata_task_args *args, const strata_call_config *cfg)
{
    (void)cfg;
    for (uint64_t first = 0; first < VN; first += VT) {
        strata_tensor t[3];
        for (int i = 0; i < 3; i++) {
            t[i] = args->tensors[i];
            t[i].offset = first;
            t[i].shape[0] = VT;
        }
        strata_tag tags[3] = {STRATA_INPUT, STRATA_INPUT, STRATA_OUTPUT};
        int rc = strata_chip_submit(o, ADD, &(strata_task_args){t, tags, 3, NULL, 0});
        if (rc)
            return rc;
    }
    return 0;
}

TEST_CASE(vector_add)
{
    strata_worker *w = test_worker(1, 2);
    strata_chip_callable c = {"vadd", vadd_orch, kernels, 3};
    strata_handle h;
    CHECK_OK(strata_worker_register_chip(w, &c, &h));
    float *x = malloc(VN * 4), *y = malloc(VN * 4), *z = malloc(VN * 4);
    CHECK(x && y && z);
    for (int i = 0; i < VN; i++) {
        x[i] = (float)i * 0.5f;
        y[i] = (float)(VN - i);
    }
    strata_buffer b[3];
    strata_tensor t[3];
    for (int i = 0; i < 3; i++) {
        b[i] = test_malloc(w, VN * 4);
        t[i] = test_tensor(b[i], STRATA_F32);
    }
    CHECK_OK(strata_worker_copy_to(w, b[0], 0, x, VN * 4));
    CHECK_OK(strata_worker_copy_to(w, b[1], 0, y, VN * 4));
    strata_tag tags[3] = {STRATA_INPUT, STRATA_INPUT, STRATA_OUTPUT};
    for (int run = 0; run < 20; run++)
        CHECK_OK(strata_worker_run_chip(w, h, &(strata_task_args){t, tags, 3, NULL, 0}, NULL));
    CHECK_OK(strata_worker_copy_from(w, z, b[2], 0, VN * 4));
    for (int i = 0; i < VN; i++)
        if (z[i] != x[i] + y[i])
            test_fail(__FILE__, __LINE__, "z[%d] = %g, expected %g", i, z[i], x[i] + y[i]);
    free(x);
    free(y);
    free(z);
    strata_worker_destroy(w);
}

enum { N = 96, T = 24, NT = N / T };

/* A T x T tile (i, j) of an N x N row-major matrix, as a strided view. */
static strata_tensor tile(strata_tensor m, int i, int j)
{
    m.ndims = 2;
    m.shape[0] = T;
    m.shape[1] = T;
    m.strides[0] = N;
    m.strides[1] = 1;
    m.offset = (uint64_t)i * T * N + (uint64_t)j * T;
    return m;
}

static int matmul_orch(strata_chip_orch *o, const strata_task_args *args, const strata_call_config *cfg)
{
    (void)cfg;
    const strata_tensor *A = &args->tensors[0], *B = &args->tensors[1], *C = &args->tensors[2];
    for (int i = 0; i < NT; i++)
        for (int j = 0; j < NT; j++) {
            strata_tensor c = tile(*C, i, j);
            strata_tag out = STRATA_OUTPUT;
            int rc = strata_chip_submit(o, ZERO, &(strata_task_args){&c, &out, 1, NULL, 0});
            for (int k = 0; rc == 0 && k < NT; k++) {
                strata_tensor t[3] = {tile(*A, i, k), tile(*B, k, j), c};
                strata_tag tags[3] = {STRATA_INPUT, STRATA_INPUT, STRATA_INOUT};
                rc = strata_chip_submit(o, GEMM, &(strata_task_args){t, tags, 3, NULL, 0});
            }
            if (rc)
                return rc;
        }
    return 0;
}

TEST_CASE(tiled_matmul)
{
    strata_worker *w = test_worker(3, 1);
    strata_chip_callable c = {"matmul", matmul_orch, kernels, 3};
    strata_handle h;
    CHECK_OK(strata_worker_register_chip(w, &c, &h));
    static float a[N * N], b[N * N], out[N * N], ref[N * N];
    for (int i = 0; i < N * N; i++) {
        a[i] = (float)((i * 7) % 13) - 6.0f;
        b[i] = (float)((i * 5) % 11) * 0.25f;
    }
    /* Reference in the engine's order: tile k ascending, then k within the tile. */
    memset(ref, 0, sizeof ref);
    for (int i = 0; i < N; i++)
        for (int j = 0; j < N; j++) {
            float acc = 0.0f;
            for (int kt = 0; kt < NT; kt++)
                for (int k = kt * T; k < (kt + 1) * T; k++)
                    acc += a[i * N + k] * b[k * N + j];
            ref[i * N + j] = acc;
        }
    strata_buffer ba = test_malloc(w, sizeof a), bb = test_malloc(w, sizeof b), bc = test_malloc(w, sizeof out);
    CHECK_OK(strata_worker_copy_to(w, ba, 0, a, sizeof a));
    CHECK_OK(strata_worker_copy_to(w, bb, 0, b, sizeof b));
    strata_tensor t[3] = {test_tensor(ba, STRATA_F32), test_tensor(bb, STRATA_F32), test_tensor(bc, STRATA_F32)};
    strata_tag tags[3] = {STRATA_INPUT, STRATA_INPUT, STRATA_OUTPUT};
    for (int run = 0; run < 5; run++) {
        CHECK_OK(strata_worker_run_chip(w, h, &(strata_task_args){t, tags, 3, NULL, 0}, NULL));
        CHECK_OK(strata_worker_copy_from(w, out, bc, 0, sizeof out));
        for (int i = 0; i < N * N; i++)
            if (out[i] != ref[i])
                test_fail(__FILE__, __LINE__, "run %d: C[%d][%d] = %g, expected %g", run, i / N, i % N, out[i],
                          ref[i]);
    }
    strata_run_stats st;
    CHECK_OK(strata_worker_stats(w, &st));
    CHECK_EQ_U64(st.tasks_completed, 5 * (NT * NT * (NT + 1)));
    strata_worker_destroy(w);
}

TEST_MAIN(CASE(vector_add), CASE(tiled_matmul))
