/* l4_cluster: a level-4 worker over three level-3 workers, one on this host and
 * two on other ranks of an MPI job.
 *
 *   mpirun -n 3 build/examples/l4_cluster      (as root: --allow-run-as-root;
 *                                               on 2 CPUs: --oversubscribe)
 *
 * Rank 0 holds the top worker; its worker 0 is a level-3 worker in a child
 * process of its own, workers 1 and 2 are the level-3 workers ranks 1 and 2
 * serve. Every level-3 worker has one sim chip and one SUB worker.
 *
 * Each run computes y = W x and |y|^2 for a 384 x 384 matrix split by rows
 * into three blocks, one per worker. The blocks of W were uploaded once into
 * each worker's own memory (strata_worker_copy_to). Inside each run, ordered
 * by their tags alone: a copy task moves x from the top's heap into each
 * worker's memory (to the remote ones as MPI messages), one level-4 task per
 * worker runs an orchestration function (found by its name on every rank) that
 * submits the matrix-vector kernel to its chip and then a SUB task summing the
 * squares of its part of y, and copy tasks bring each part of y and its sum
 * back into the top's heap. Every y and sum is checked against a host
 * computation. */
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <strata/mpi.h>
#include <strata/strata.h>

enum { N = 384, BLOCK = N / 3, RUNS = 50 };

static int rank;

static float *f32(const strata_tensor *t)
{
    return (float *)(uintptr_t)(t->addr + t->offset * strata_dtype_size(t->dtype));
}

/* in-core kernel: y = W x over the rows of W given */
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

/* SUB: s[0] = sum of y[i]^2 (double) */
static int sumsq_sub(const strata_task_args *a, void *ctx)
{
    (void)ctx;
    const float *y = f32(&a->tensors[0]);
    double s = 0;
    for (uint64_t i = 0; i < a->tensors[0].shape[0]; i++)
        s += (double)y[i] * y[i];
    *(double *)(uintptr_t)a->tensors[1].addr = s;
    return 0;
}

enum { H3_MATVEC = 1, H3_SUMSQ = 2 };   /* handles on every level-3 worker */

/* Level-3 orchestration ("block"), run by each level-3 worker: tensors W, x,
   y, s; the chip computes y, then a SUB task s (ordered by y's tags). */
static int block_orch(strata_orch *o, const strata_task_args *args, const strata_call_config *cfg, void *ctx)
{
    (void)cfg;
    (void)ctx;
    strata_tag mv[3] = {STRATA_INPUT, STRATA_INPUT, STRATA_OUTPUT};
    int rc = strata_submit_next_level(o, H3_MATVEC, &(strata_task_args){args->tensors, mv, 3, NULL, 0}, NULL, 0);
    strata_tag sq[2] = {STRATA_INPUT, STRATA_OUTPUT};
    strata_tensor t[2] = {args->tensors[2], args->tensors[3]};
    return rc ? rc : strata_submit_sub(o, H3_SUMSQ, &(strata_task_args){t, sq, 2, NULL, 0});
}

static int fail(const char *what, int rc)
{
    fprintf(stderr, "l4_cluster (rank %d): %s failed: %s: %s\n", rank, what, strata_status_name(rc),
            strata_last_error());
    MPI_Abort(MPI_COMM_WORLD, 1);
    return 1;
}

static strata_worker *make_l3(void)
{
    static int ids[1] = {0};
    static const strata_kernel_entry kernels[] = {{0, STRATA_AIV, matvec_kernel}};
    static const strata_chip_callable matvec = {"matvec", matvec_chip_orch, kernels, 1};
    strata_worker_config cfg;
    strata_worker_config_init(&cfg, 3);
    cfg.device_ids = ids;
    cfg.ndevices = 1;
    cfg.num_sub_workers = 1;
    cfg.device_memory_bytes = 16 << 20;
    cfg.shared_heap_bytes = 4 << 20;
    strata_worker *w;
    strata_handle h1, h2;
    int rc = strata_worker_create(&cfg, &w);
    if (rc == STRATA_OK)
        rc = strata_worker_register_chip(w, &matvec, &h1);
    if (rc == STRATA_OK)
        rc = strata_worker_register_sub(w, sumsq_sub, NULL, &h2);
    if (rc || h1 != H3_MATVEC || h2 != H3_SUMSQ)
        fail("making a level-3 worker", rc ? rc : STRATA_EINVAL);
    return w;
}

/* The top worker, the same on every rank: its named registrations are how the
   serving ranks find block_orch. */
static strata_worker *make_top(strata_handle *block)
{
    strata_worker_config cfg;
    strata_worker_config_init(&cfg, 4);
    cfg.shared_heap_bytes = 4 << 20;
    strata_worker *w;
    int rc = strata_worker_create(&cfg, &w);
    if (rc == STRATA_OK)
        rc = strata_worker_register_orch_named(w, "block", block_orch, NULL, block);
    if (rc)
        fail("making the top worker", rc);
    return w;
}

typedef struct model {
    strata_handle block;
    strata_tensor w[3], x[3], y[3], s[3];   /* per worker, in its memory */
    strata_tensor x_all, y_part[3], s_part[3];   /* in the top's heap: x, and views of y and the sums */
} model;

static int step(strata_orch *o, const strata_task_args *args, const strata_call_config *cfg, void *ctx)
{
    (void)args;
    (void)cfg;
    model *m = ctx;
    strata_tag tags[4] = {STRATA_INPUT, STRATA_INPUT, STRATA_OUTPUT, STRATA_OUTPUT};
    for (int k = 0; k < 3; k++) {
        strata_tensor t[4] = {m->w[k], m->x[k], m->y[k], m->s[k]};
        int rc = strata_submit_copy(o, &m->x[k], &m->x_all);
        if (rc == STRATA_OK)
            rc = strata_submit_next_level(o, m->block, &(strata_task_args){t, tags, 4, NULL, 0}, NULL, k);
        if (rc == STRATA_OK)
            rc = strata_submit_copy(o, &m->y_part[k], &m->y[k]);
        if (rc == STRATA_OK)
            rc = strata_submit_copy(o, &m->s_part[k], &m->s[k]);
        if (rc)
            return rc;
    }
    return STRATA_OK;
}

/* A tensor over a buffer allocated on worker k (k = 0: the top's heap). */
static strata_tensor on_worker(strata_worker *top, int k, strata_dtype dt, uint32_t ndims, const uint64_t *shape,
                               strata_buffer *buf)
{
    uint64_t bytes = strata_dtype_size(dt);
    for (uint32_t d = 0; d < ndims; d++)
        bytes *= shape[d];
    void *p;
    int rc = k == 0 ? strata_worker_host_alloc(top, bytes, &p) : strata_worker_malloc(top, k, bytes, buf);
    if (rc)
        fail("allocating", rc);
    if (k == 0)
        *buf = (strata_buffer){(uint64_t)(uintptr_t)p, bytes, 0};
    return strata_tensor_make((void *)(uintptr_t)buf->addr, dt, ndims, shape);
}

/* Copy to a buffer of worker k (the top's heap: memcpy). */
static void put(strata_worker *top, int k, strata_buffer b, const void *src, uint64_t n)
{
    int rc = k == 0 ? (memcpy((void *)(uintptr_t)b.addr, src, n), STRATA_OK) : strata_worker_copy_to(top, b, 0, src, n);
    if (rc)
        fail("strata_worker_copy_to", rc);
}

static int serve(void)
{
    strata_handle block;
    strata_worker *top = make_top(&block), *w = make_l3();
    int rc = strata_mpi_serve(top, w);
    if (rc)
        return fail("strata_mpi_serve", rc);
    strata_worker_destroy(w);
    strata_worker_destroy(top);
    return 0;
}

int main(int argc, char **argv)
{
    int provided, size;
    MPI_Init_thread(&argc, &argv, MPI_THREAD_FUNNELED, &provided);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    if (size != 3) {
        if (rank == 0)
            fprintf(stderr, "l4_cluster: run it with 3 ranks (mpirun -n 3), not %d\n", size);
        MPI_Finalize();
        return 2;
    }
    int rc = strata_mpi_init(MPI_COMM_WORLD);
    if (rc)
        return fail("strata_mpi_init", rc);
    if (rank != 0) {
        serve();
        strata_mpi_finalize();
        MPI_Finalize();
        return 0;
    }

    model m;
    strata_worker *top = make_top(&m.block);
    int id;
    if ((rc = strata_worker_add_worker(top, make_l3(), &id)) || (rc = strata_mpi_add_rank(top, 1, &id)) ||
        (rc = strata_mpi_add_rank(top, 2, &id)))
        return fail("building the tree", rc);
    if ((rc = strata_worker_init(top)))
        return fail("strata_worker_init", rc);

    static float host_w[N * N], host_x[N];
    for (int i = 0; i < N * N; i++)
        host_w[i] = (float)((i * 7919) % 23) / 23.0f - 0.5f;
    uint64_t wshape[2] = {BLOCK, N}, xshape[1] = {N}, yshape[1] = {BLOCK}, one[1] = {1};
    strata_buffer wb[3], xb[3], yb[3], sb[3];
    for (int k = 0; k < 3; k++) {
        m.w[k] = on_worker(top, k, STRATA_F32, 2, wshape, &wb[k]);
        m.x[k] = on_worker(top, k, STRATA_F32, 1, xshape, &xb[k]);
        m.y[k] = on_worker(top, k, STRATA_F32, 1, yshape, &yb[k]);
        m.s[k] = on_worker(top, k, STRATA_F64, 1, one, &sb[k]);
        put(top, k, wb[k], host_w + (size_t)k * BLOCK * N, sizeof(float) * BLOCK * N);   /* once */
    }
    float *x, *y;
    double *sums;
    if ((rc = strata_worker_host_alloc(top, sizeof(float) * N, (void **)&x)) ||
        (rc = strata_worker_host_alloc(top, sizeof(float) * N, (void **)&y)) ||
        (rc = strata_worker_host_alloc(top, sizeof(double) * 3, (void **)&sums)))
        return fail("strata_worker_host_alloc", rc);
    uint64_t three[1] = {3};
    m.x_all = strata_tensor_make(x, STRATA_F32, 1, xshape);
    strata_tensor y_all = strata_tensor_make(y, STRATA_F32, 1, xshape), s_all = strata_tensor_make(sums, STRATA_F64, 1,
                                                                                                   three);
    for (int k = 0; k < 3; k++) {
        m.y_part[k] = y_all;   /* a view of y's rows [k * BLOCK, (k + 1) * BLOCK) */
        m.y_part[k].shape[0] = BLOCK;
        m.y_part[k].offset = (uint64_t)k * BLOCK;
        m.s_part[k] = s_all;   /* a view of sums[k] */
        m.s_part[k].shape[0] = 1;
        m.s_part[k].offset = (uint64_t)k;
    }
    double last = 0;
    for (int run = 1; run <= RUNS; run++) {
        for (int j = 0; j < N; j++)
            host_x[j] = (float)((run * 13 + j) % 29) / 29.0f;
        memcpy(x, host_x, sizeof host_x);
        if ((rc = strata_worker_run(top, step, &m, NULL, NULL)))
            return fail("strata_worker_run", rc);
        double total = sums[0] + sums[1] + sums[2], expect = 0;
        bool ok = true;
        for (int i = 0; i < N; i++) {
            float r = 0;
            for (int j = 0; j < N; j++)
                r += host_w[i * N + j] * host_x[j];
            expect += (double)r * r;
            ok &= fabsf(y[i] - r) <= 1e-5f * (1 + fabsf(r));
        }
        if (!ok || fabs(total - expect) > 1e-6 * (1 + expect)) {
            fprintf(stderr, "l4_cluster: run %d: y or |y|^2 (%.9g, expected %.9g) is wrong\n", run, total, expect);
            MPI_Abort(MPI_COMM_WORLD, 1);
        }
        last = total;
    }
    pid_t pids[3];
    for (int k = 0; k < 3; k++)
        if ((rc = strata_worker_child_pid(top, k, &pids[k])))
            return fail("strata_worker_child_pid", rc);
    printf("l4_cluster: %d runs of y = W x over three level-3 workers (a local child, pid %d; rank 1, pid %d; "
           "rank 2, pid %d), each with its own chip and SUB worker; every y and |y|^2 correct (last %.6g)\n", RUNS,
           (int)pids[0], (int)pids[1], (int)pids[2], last);
    if ((rc = strata_worker_close(top)))
        return fail("strata_worker_close", rc);
    strata_worker_destroy(top);
    strata_mpi_finalize();
    MPI_Finalize();
    return 0;
}
