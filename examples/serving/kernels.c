/* serving: the chip side of the serving demo. One chip callable, `serving_layers`,
 * runs the transformer layers a chip holds (and, on the last chip, the final
 * RMSNorm and the lm_head) for one step of T tokens, as in-core tasks on the
 * chip's simulated AIC cores (matrix products) and AIV cores (vector work).
 *
 * Build as a shared object and register it at level 3 with
 *   strata_worker_register_chip_symbol(w, "libserving_kernels.so", "serving_layers", &h);
 * The object does not link libstrata: it takes the strata_* functions from the
 * process that loads it (see README-kernels.md). Layout and arguments: model.h.
 *
 * Each layer is one chip scope; its intermediates come from strata_chip_alloc and
 * every dependency follows from the tags:
 *   h = rmsnorm(x)                                 AIV, 1 task
 *   q, k, v = h Wq^T, h Wk^T, h Wv^T              AIC, one task per (matrix, head)
 *   rope(q_h, k_h) at positions pos..              AIV, one task per head
 *   cache[pos..pos+T) = k_h, v_h                   AIV, one task per head
 *   attn[:, head h] = softmax(q_h K_h^T / 4) V_h   AIC, one task per head (causal)
 *   o = attn Wo^T;  x += o                         AIC per 16 output features; AIV
 *   h2 = rmsnorm(x)                                AIV
 *   g = h2 W1^T, u = h2 W3^T                       AIC per 32 hidden features
 *   a = silu(g) * u                                AIV per 32 hidden features
 *   m = a W2^T;  x += m                            AIC per 16 output features; AIV
 * and, with the flag: logits = rmsnorm(x) lm_head^T, AIC per 64 vocabulary rows.
 *
 * SERVING_EMPTY_KERNELS=1 in the environment (read once, when the object is
 * loaded; chip children inherit it) makes every kernel return at once without
 * computing or checking anything: the orchestration, the in-core tasks and their
 * dependencies stay as they are, so a step then costs what Strata costs for it
 * (bench/serving_split.py). The outputs are garbage. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <strata/strata.h>

#include "model.h"

enum {
    K_RMSNORM,     /* AIV: x [T,n], w [1,n] -> y [T,n] */
    K_LINEAR,      /* AIC: x [T,k], W [n,k] -> y [T,n] = x W^T */
    K_ROPE,        /* AIV: q [T,hd], k [T,hd] rotated in place; scalar pos */
    K_KV_APPEND,   /* AIV: k, v [T,hd] -> k cache, v cache views [T,hd] */
    K_ATTENTION,   /* AIC: q [T,hd], K [pos+T,hd], V [pos+T,hd] -> out [T,hd]; scalar pos */
    K_ADD,         /* AIV: x [T,n] += y [T,n] */
    K_SILU_MUL,    /* AIV: g, u [T,n] -> a [T,n] = silu(g) * u */
};

/* Splits: the number of tasks a projection is cut into (by output features). */
enum {
    WO_SPLIT = 4,     /* 16 output features each */
    FFN_SPLIT = 4,    /* 32 hidden features each (w1, w3, silu*mul) */
    W2_SPLIT = 4,     /* 16 output features each */
    LM_SPLIT = 4,     /* 64 vocabulary rows each */
};

/* ---- kernel side: 2-D float32 views ---- */

/* SERVING_EMPTY_KERNELS set (and not "0"): every kernel returns 0 at once. */
static int empty_kernels;

__attribute__((constructor)) static void read_empty_kernels(void)
{
    const char *e = getenv("SERVING_EMPTY_KERNELS");
    empty_kernels = e && *e && strcmp(e, "0") != 0;
}

#define RETURN_IF_EMPTY() do { if (empty_kernels) return 0; } while (0)

/* A 2-D float32 view as a kernel sees it: rows of `cols` floats, `ld` apart. */
typedef struct mat {
    float   *p;
    uint64_t rows, cols, ld;
} mat;

/* Read tensor i of a task as a 2-D float32 view with unit column stride; fails
   (with a message for the run's error) on anything else. */
static int get_mat(const strata_task_args *a, uint32_t i, const char *kernel, mat *m)
{
    if (i >= a->ntensors)
        return strata_task_error("%s: tensor %u missing (the task has %u)", kernel, i, a->ntensors);
    const strata_tensor *t = &a->tensors[i];
    if (t->dtype != STRATA_F32 || t->ndims != 2)
        return strata_task_error("%s: tensor %u must be 2-D float32 (dtype %d, %u dims)", kernel, i,
                                 (int)t->dtype, t->ndims);
    int contiguous = t->strides[0] == 0 && t->strides[1] == 0;
    if (!contiguous && t->strides[1] != 1)
        return strata_task_error("%s: tensor %u must have unit column stride (it has %lld)", kernel, i,
                                 (long long)t->strides[1]);
    m->p = (float *)(uintptr_t)(t->addr + t->offset * sizeof(float));
    m->rows = t->shape[0];
    m->cols = t->shape[1];
    m->ld = contiguous ? t->shape[1] : (uint64_t)t->strides[0];
    if (m->ld < m->cols && m->rows > 1)
        return strata_task_error("%s: tensor %u has rows of %llu floats only %llu apart", kernel, i,
                                 (unsigned long long)m->cols, (unsigned long long)m->ld);
    return 0;
}

static int want(const mat *m, uint64_t rows, uint64_t cols, const char *kernel, const char *what)
{
    if (m->rows == rows && m->cols == cols)
        return 0;
    return strata_task_error("%s: %s is [%llu, %llu], expected [%llu, %llu]", kernel, what,
                             (unsigned long long)m->rows, (unsigned long long)m->cols,
                             (unsigned long long)rows, (unsigned long long)cols);
}

static int want_scalars(const strata_task_args *a, uint32_t n, const char *kernel)
{
    if (a->nscalars == n)
        return 0;
    return strata_task_error("%s: %u scalars, expected %u", kernel, a->nscalars, n);
}

#define ROW(m, r) ((m).p + (r) * (m).ld)

/* y = x / sqrt(mean(x^2) + eps) * w, row by row */
static int k_rmsnorm(const strata_task_args *a)
{
    RETURN_IF_EMPTY();
    static const char K[] = "rmsnorm";
    mat x, w, y;
    int rc;
    if ((rc = get_mat(a, 0, K, &x)) || (rc = get_mat(a, 1, K, &w)) || (rc = get_mat(a, 2, K, &y)) ||
        (rc = want(&w, 1, x.cols, K, "weight")) || (rc = want(&y, x.rows, x.cols, K, "output")))
        return rc;
    for (uint64_t r = 0; r < x.rows; r++) {
        const float *xr = ROW(x, r);
        float *yr = ROW(y, r);
        float ss = 0.0f;
        for (uint64_t c = 0; c < x.cols; c++)
            ss += xr[c] * xr[c];
        float inv = 1.0f / sqrtf(ss / (float)x.cols + SV_NORM_EPS);
        for (uint64_t c = 0; c < x.cols; c++)
            yr[c] = xr[c] * inv * w.p[c];
    }
    return 0;
}

/* y = x W^T: y[t][o] = sum_i x[t][i] W[o][i] */
static int k_linear(const strata_task_args *a)
{
    RETURN_IF_EMPTY();
    static const char K[] = "linear";
    mat x, w, y;
    int rc;
    if ((rc = get_mat(a, 0, K, &x)) || (rc = get_mat(a, 1, K, &w)) || (rc = get_mat(a, 2, K, &y)) ||
        (rc = want(&w, w.rows, x.cols, K, "weight")) || (rc = want(&y, x.rows, w.rows, K, "output")))
        return rc;
    for (uint64_t t = 0; t < x.rows; t++) {
        const float *xr = ROW(x, t);
        float *yr = ROW(y, t);
        for (uint64_t o = 0; o < w.rows; o++) {
            const float *wr = ROW(w, o);
            float s = 0.0f;
            for (uint64_t i = 0; i < x.cols; i++)
                s += xr[i] * wr[i];
            yr[o] = s;
        }
    }
    return 0;
}

/* Rotary embedding of one head's q and k, rows at positions pos, pos+1, ... */
static int k_rope(const strata_task_args *a)
{
    RETURN_IF_EMPTY();
    static const char K[] = "rope";
    mat q, k;
    int rc;
    if ((rc = get_mat(a, 0, K, &q)) || (rc = get_mat(a, 1, K, &k)) || (rc = want_scalars(a, 1, K)) ||
        (rc = want(&q, q.rows, SV_HEAD_DIM, K, "q")) || (rc = want(&k, q.rows, SV_HEAD_DIM, K, "k")))
        return rc;
    uint64_t pos = a->scalars[0];
    if (pos + q.rows > SV_MAX_SEQ)
        return strata_task_error("%s: positions %llu..%llu pass max_seq %d", K, (unsigned long long)pos,
                                 (unsigned long long)(pos + q.rows - 1), SV_MAX_SEQ);
    for (uint64_t t = 0; t < q.rows; t++) {
        float *qr = ROW(q, t), *kr = ROW(k, t);
        for (int i = 0; i < SV_HEAD_DIM / 2; i++) {
            /* angles in double, as model.py computes them */
            double ang = (double)(pos + t) * pow(SV_ROPE_THETA, -(double)(2 * i) / SV_HEAD_DIM);
            float c = (float)cos(ang), s = (float)sin(ang);
            float q0 = qr[2 * i], q1 = qr[2 * i + 1], k0 = kr[2 * i], k1 = kr[2 * i + 1];
            qr[2 * i] = q0 * c - q1 * s;
            qr[2 * i + 1] = q0 * s + q1 * c;
            kr[2 * i] = k0 * c - k1 * s;
            kr[2 * i + 1] = k0 * s + k1 * c;
        }
    }
    return 0;
}

/* Copy one head's k and v rows into the cache rows of positions pos.. */
static int k_kv_append(const strata_task_args *a)
{
    RETURN_IF_EMPTY();
    static const char K[] = "kv_append";
    mat k = {0}, v = {0}, kc = {0}, vc = {0};   /* gcc -O3 cannot see get_mat fill them */
    int rc;
    if ((rc = get_mat(a, 0, K, &k)) || (rc = get_mat(a, 1, K, &v)) || (rc = get_mat(a, 2, K, &kc)) ||
        (rc = get_mat(a, 3, K, &vc)) || (rc = want(&k, k.rows, SV_HEAD_DIM, K, "k")) ||
        (rc = want(&v, k.rows, SV_HEAD_DIM, K, "v")) || (rc = want(&kc, k.rows, SV_HEAD_DIM, K, "k cache")) ||
        (rc = want(&vc, k.rows, SV_HEAD_DIM, K, "v cache")))
        return rc;
    for (uint64_t t = 0; t < k.rows; t++) {
        memcpy(ROW(kc, t), ROW(k, t), SV_HEAD_DIM * sizeof(float));
        memcpy(ROW(vc, t), ROW(v, t), SV_HEAD_DIM * sizeof(float));
    }
    return 0;
}

/* Causal attention of one head: query row t sits at position pos+t and sees the
   cache rows 0..pos+t. */
static int k_attention(const strata_task_args *a)
{
    RETURN_IF_EMPTY();
    static const char K[] = "attention";
    mat q, kc, vc, out;
    int rc;
    if ((rc = get_mat(a, 0, K, &q)) || (rc = get_mat(a, 1, K, &kc)) || (rc = get_mat(a, 2, K, &vc)) ||
        (rc = get_mat(a, 3, K, &out)) || (rc = want_scalars(a, 1, K)) ||
        (rc = want(&q, q.rows, SV_HEAD_DIM, K, "q")))
        return rc;
    uint64_t pos = a->scalars[0], n = pos + q.rows;
    if (n > SV_MAX_SEQ)
        return strata_task_error("%s: %llu positions pass max_seq %d", K, (unsigned long long)n, SV_MAX_SEQ);
    if ((rc = want(&kc, n, SV_HEAD_DIM, K, "k cache")) || (rc = want(&vc, n, SV_HEAD_DIM, K, "v cache")) ||
        (rc = want(&out, q.rows, SV_HEAD_DIM, K, "output")))
        return rc;
    const float scale = 1.0f / sqrtf((float)SV_HEAD_DIM);
    float p[SV_MAX_SEQ];
    for (uint64_t t = 0; t < q.rows; t++) {
        const float *qr = ROW(q, t);
        uint64_t len = pos + t + 1;
        float mx = -INFINITY;
        for (uint64_t j = 0; j < len; j++) {
            const float *kr = ROW(kc, j);
            float s = 0.0f;
            for (int d = 0; d < SV_HEAD_DIM; d++)
                s += qr[d] * kr[d];
            p[j] = s * scale;
            if (p[j] > mx)
                mx = p[j];
        }
        float sum = 0.0f;
        for (uint64_t j = 0; j < len; j++) {
            p[j] = expf(p[j] - mx);
            sum += p[j];
        }
        float acc[SV_HEAD_DIM] = {0};
        for (uint64_t j = 0; j < len; j++) {
            const float *vr = ROW(vc, j);
            for (int d = 0; d < SV_HEAD_DIM; d++)
                acc[d] += p[j] * vr[d];
        }
        float *o = ROW(out, t);
        for (int d = 0; d < SV_HEAD_DIM; d++)
            o[d] = acc[d] / sum;
    }
    return 0;
}

/* x += y */
static int k_add(const strata_task_args *a)
{
    RETURN_IF_EMPTY();
    static const char K[] = "add";
    mat x, y;
    int rc;
    if ((rc = get_mat(a, 0, K, &x)) || (rc = get_mat(a, 1, K, &y)) || (rc = want(&y, x.rows, x.cols, K, "y")))
        return rc;
    for (uint64_t r = 0; r < x.rows; r++) {
        float *xr = ROW(x, r);
        const float *yr = ROW(y, r);
        for (uint64_t c = 0; c < x.cols; c++)
            xr[c] += yr[c];
    }
    return 0;
}

/* a = silu(g) * u, silu(g) = g / (1 + exp(-g)) */
static int k_silu_mul(const strata_task_args *a)
{
    RETURN_IF_EMPTY();
    static const char K[] = "silu_mul";
    mat g, u, o;
    int rc;
    if ((rc = get_mat(a, 0, K, &g)) || (rc = get_mat(a, 1, K, &u)) || (rc = get_mat(a, 2, K, &o)) ||
        (rc = want(&u, g.rows, g.cols, K, "u")) || (rc = want(&o, g.rows, g.cols, K, "output")))
        return rc;
    for (uint64_t r = 0; r < g.rows; r++) {
        const float *gr = ROW(g, r), *ur = ROW(u, r);
        float *orow = ROW(o, r);
        for (uint64_t c = 0; c < g.cols; c++)
            orow[c] = gr[c] / (1.0f + expf(-gr[c])) * ur[c];
    }
    return 0;
}

/* ---- orchestration side ---- */

/* A 2-D view of `rows` x `cols` floats of the buffer under `base`, starting `off`
   floats after base's first element, rows `ld` floats apart. */
static strata_tensor view(const strata_tensor *base, uint64_t off, uint64_t rows, uint64_t cols, uint64_t ld)
{
    strata_tensor t;
    memset(&t, 0, sizeof t);
    t.addr = base->addr;
    t.nbytes = base->nbytes;
    t.offset = base->offset + off;
    t.dtype = STRATA_F32;
    t.ndims = 2;
    t.shape[0] = rows;
    t.shape[1] = cols;
    t.strides[0] = (int64_t)ld;
    t.strides[1] = 1;
    return t;
}

static uint64_t elements(const strata_tensor *t)
{
    uint64_t n = 1;
    for (uint32_t d = 0; d < t->ndims && d < STRATA_MAX_DIMS; d++)
        n *= t->shape[d];
    return n;
}

/* A bad argument of the chip callable: the run fails with STRATA_EINVAL. The
   engine reports only the status of an orchestration function, so the reason
   also goes to stderr (the chip child's, which is the application's). */
static int orch_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int orch_fail(const char *fmt, ...)
{
    char msg[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    fprintf(stderr, "serving_layers: %s\n", msg);
    strata_task_error("serving_layers: %s", msg);
    return STRATA_EINVAL;
}

/* A float32 argument that is contiguous and holds at least `need` elements. */
static int check_arg(const strata_tensor *t, uint64_t need, const char *what)
{
    if (t->dtype != STRATA_F32)
        return orch_fail("%s must be float32", what);
    for (uint32_t d = 0; d < t->ndims && d < STRATA_MAX_DIMS; d++) {
        int64_t inner = 1;
        for (uint32_t e = d + 1; e < t->ndims; e++)
            inner *= (int64_t)t->shape[e];
        if (t->strides[d] != 0 && t->strides[d] != inner)
            return orch_fail("%s must be contiguous", what);
    }
    if (elements(t) < need)
        return orch_fail("%s holds %llu floats, needs %llu", what,
                                 (unsigned long long)elements(t), (unsigned long long)need);
    return 0;
}

typedef struct sv_ctx {
    strata_chip_orch *o;
    int rc;   /* first failure; later submits are skipped */
} sv_ctx;

static void submit(sv_ctx *c, int func, const strata_tensor *t, const strata_tag *tags, uint32_t n,
                   const uint64_t *scalars, uint32_t nscalars)
{
    if (c->rc == 0)
        c->rc = strata_chip_submit(c->o, func, &(strata_task_args){t, tags, n, scalars, nscalars});
}

static strata_tensor alloc2(sv_ctx *c, uint64_t rows, uint64_t cols)
{
    strata_tensor t;
    memset(&t, 0, sizeof t);
    uint64_t shape[2] = {rows, cols};
    if (c->rc == 0)
        c->rc = strata_chip_alloc(c->o, STRATA_F32, 2, shape, &t);
    return t;
}

static const strata_tag T_IN_IN_OUT[4] = {STRATA_INPUT, STRATA_INPUT, STRATA_OUTPUT, STRATA_OUTPUT};
static const strata_tag T_INOUT_IN[2] = {STRATA_INOUT, STRATA_INPUT};
static const strata_tag T_INOUT_INOUT[2] = {STRATA_INOUT, STRATA_INOUT};
static const strata_tag T_ATTN[4] = {STRATA_INPUT, STRATA_INPUT, STRATA_INPUT, STRATA_OUTPUT};

/* y = x W^T in `split` tasks, task s computing the output features (columns of y)
   s*N/split .. from the same rows of W. x: [T, K] (contiguous); W: the [N, K]
   matrix at `woff` floats into the weight blob; y: [T, N] (contiguous). */
static void linear(sv_ctx *c, const strata_tensor *x, uint64_t T, uint64_t K, const strata_tensor *wblob,
                   uint64_t woff, uint64_t N, const strata_tensor *y, int split)
{
    uint64_t n = N / (uint64_t)split;
    for (int s = 0; s < split; s++) {
        uint64_t first = (uint64_t)s * n;
        strata_tensor t[3] = {view(x, 0, T, K, K), view(wblob, woff + first * K, n, K, K),
                              view(y, first, T, n, N)};
        submit(c, K_LINEAR, t, T_IN_IN_OUT, 3, NULL, 0);
    }
}

/* One layer's tasks for T tokens at positions pos..; wl, kl: the layer's offsets
   (floats) in the weight blob and the KV blob. q, k, v are head-major [H, T, HD]
   so each head's rows are contiguous; attn is [T, D] with head h in columns h*HD.. */
static void layer(sv_ctx *c, const strata_tensor *x, const strata_tensor *wblob, uint64_t wl,
                  const strata_tensor *kv, uint64_t kl, uint64_t pos, uint64_t T)
{
    enum { D = SV_D_MODEL, H = SV_N_HEADS, HD = SV_HEAD_DIM, F = SV_FFN };

    /* attention block */
    strata_tensor h = alloc2(c, T, D);
    strata_tensor qkv[3] = {alloc2(c, H * T, HD), alloc2(c, H * T, HD), alloc2(c, H * T, HD)};
    strata_tensor attn = alloc2(c, T, D), o = alloc2(c, T, D);
    if (c->rc)
        return;
    {
        strata_tensor t[3] = {view(x, 0, T, D, D), view(wblob, wl + SV_L_ATTN_NORM, 1, D, D), h};
        submit(c, K_RMSNORM, t, T_IN_IN_OUT, 3, NULL, 0);
    }
    static const uint64_t woffs[3] = {SV_L_WQ, SV_L_WK, SV_L_WV};
    for (int m = 0; m < 3; m++)
        for (uint64_t hh = 0; hh < H; hh++) {
            /* head hh's projection: rows hh*HD.. of the matrix, into qkv[m][hh] */
            strata_tensor t[3] = {view(&h, 0, T, D, D), view(wblob, wl + woffs[m] + hh * HD * D, HD, D, D),
                                  view(&qkv[m], hh * T * HD, T, HD, HD)};
            submit(c, K_LINEAR, t, T_IN_IN_OUT, 3, NULL, 0);
        }
    for (uint64_t hh = 0; hh < H; hh++) {
        strata_tensor qh = view(&qkv[0], hh * T * HD, T, HD, HD), kh = view(&qkv[1], hh * T * HD, T, HD, HD),
                      vh = view(&qkv[2], hh * T * HD, T, HD, HD);
        strata_tensor r[2] = {qh, kh};
        submit(c, K_ROPE, r, T_INOUT_INOUT, 2, &pos, 1);
        /* cache rows pos..pos+T of head hh: H*HD floats apart */
        strata_tensor ap[4] = {kh, vh, view(kv, kl + SV_KV_K + (pos * H + hh) * HD, T, HD, H * HD),
                               view(kv, kl + SV_KV_V + (pos * H + hh) * HD, T, HD, H * HD)};
        submit(c, K_KV_APPEND, ap, T_IN_IN_OUT, 4, NULL, 0);
        strata_tensor at[4] = {qh, view(kv, kl + SV_KV_K + hh * HD, pos + T, HD, H * HD),
                               view(kv, kl + SV_KV_V + hh * HD, pos + T, HD, H * HD), view(&attn, hh * HD, T, HD, D)};
        submit(c, K_ATTENTION, at, T_ATTN, 4, &pos, 1);
    }
    linear(c, &attn, T, D, wblob, wl + SV_L_WO, D, &o, WO_SPLIT);
    {
        strata_tensor t[2] = {view(x, 0, T, D, D), o};
        submit(c, K_ADD, t, T_INOUT_IN, 2, NULL, 0);
    }

    /* MLP block. x orders the two blocks: this rmsnorm reads x after the add above
       wrote it (RAW), and the add below writes x after it was read (WAR). */
    strata_tensor h2 = alloc2(c, T, D), g = alloc2(c, T, F), u = alloc2(c, T, F), act = alloc2(c, T, F),
                  mo = alloc2(c, T, D);
    if (c->rc)
        return;
    {
        strata_tensor t[3] = {view(x, 0, T, D, D), view(wblob, wl + SV_L_MLP_NORM, 1, D, D), h2};
        submit(c, K_RMSNORM, t, T_IN_IN_OUT, 3, NULL, 0);
    }
    linear(c, &h2, T, D, wblob, wl + SV_L_W1, F, &g, FFN_SPLIT);
    linear(c, &h2, T, D, wblob, wl + SV_L_W3, F, &u, FFN_SPLIT);
    for (int s = 0; s < FFN_SPLIT; s++) {
        uint64_t n = F / FFN_SPLIT, first = (uint64_t)s * n;
        strata_tensor t[3] = {view(&g, first, T, n, F), view(&u, first, T, n, F), view(&act, first, T, n, F)};
        submit(c, K_SILU_MUL, t, T_IN_IN_OUT, 3, NULL, 0);
    }
    linear(c, &act, T, F, wblob, wl + SV_L_W2, D, &mo, W2_SPLIT);
    {
        strata_tensor t[2] = {view(x, 0, T, D, D), mo};
        submit(c, K_ADD, t, T_INOUT_IN, 2, NULL, 0);
    }
}

static int serving_orch(strata_chip_orch *o, const strata_task_args *args, const strata_call_config *cfg)
{
    (void)cfg;
    if (args->ntensors != 4 || args->nscalars != SV_NARGS)
        return orch_fail("%u tensors and %u scalars, expected 4 and %d", args->ntensors,
                                 args->nscalars, SV_NARGS);
    const uint64_t pos = args->scalars[SV_ARG_POS], T = args->scalars[SV_ARG_T],
                   nl = args->scalars[SV_ARG_NLAYERS], flag = args->scalars[SV_ARG_FLAG];
    if (T < 1 || T > SV_MAX_SEQ || pos > SV_MAX_SEQ - T)
        return orch_fail("pos %llu and T %llu: need 1 <= T and pos + T <= %d",
                                 (unsigned long long)pos, (unsigned long long)T, SV_MAX_SEQ);
    if (nl < 1 || nl > SV_N_LAYERS || flag > 1)
        return orch_fail("%llu layers (1..%d) and flag %llu (0 or 1)", (unsigned long long)nl,
                                 SV_N_LAYERS, (unsigned long long)flag);
    const strata_tensor *x = &args->tensors[0], *wblob = &args->tensors[1], *kv = &args->tensors[2],
                        *logits = &args->tensors[3];
    int rc;
    if ((rc = check_arg(x, T * SV_D_MODEL, "x")) ||
        (rc = check_arg(wblob, SV_CHIP_WEIGHT_FLOATS(nl, flag), "the weight blob")) ||
        (rc = check_arg(kv, nl * SV_KV_LAYER_FLOATS, "the KV blob")) ||
        (flag && (rc = check_arg(logits, T * SV_VOCAB, "logits"))))
        return rc;
    if (elements(x) != T * SV_D_MODEL)
        return orch_fail("x holds %llu floats, expected T*D = %llu",
                                 (unsigned long long)elements(x), (unsigned long long)(T * SV_D_MODEL));

    sv_ctx c = {o, 0};
    for (uint64_t l = 0; l < nl && c.rc == 0; l++) {
        /* one scope per layer: its intermediates are recycled as the next layer runs */
        c.rc = strata_chip_scope_begin(o);
        layer(&c, x, wblob, l * SV_LAYER_FLOATS, kv, l * SV_KV_LAYER_FLOATS, pos, T);
        if (c.rc == 0)
            c.rc = strata_chip_scope_end(o);
    }
    if (flag && c.rc == 0) {
        const uint64_t fo = nl * SV_LAYER_FLOATS;
        c.rc = strata_chip_scope_begin(o);
        strata_tensor hf = alloc2(&c, T, SV_D_MODEL);
        if (c.rc == 0) {
            strata_tensor t[3] = {view(x, 0, T, SV_D_MODEL, SV_D_MODEL),
                                  view(wblob, fo + SV_F_NORM, 1, SV_D_MODEL, SV_D_MODEL), hf};
            submit(&c, K_RMSNORM, t, T_IN_IN_OUT, 3, NULL, 0);
            linear(&c, &hf, T, SV_D_MODEL, wblob, fo + SV_F_LM_HEAD, SV_VOCAB, logits, LM_SPLIT);
        }
        if (c.rc == 0)
            c.rc = strata_chip_scope_end(o);
    }
    return c.rc;
}

static const strata_kernel_entry serving_kernels[] = {
    {K_RMSNORM, STRATA_AIV, k_rmsnorm},     {K_LINEAR, STRATA_AIC, k_linear},
    {K_ROPE, STRATA_AIV, k_rope},           {K_KV_APPEND, STRATA_AIV, k_kv_append},
    {K_ATTENTION, STRATA_AIC, k_attention}, {K_ADD, STRATA_AIV, k_add},
    {K_SILU_MUL, STRATA_AIV, k_silu_mul},
};

extern const strata_chip_callable serving_layers;
const strata_chip_callable serving_layers = {"serving_layers", serving_orch, serving_kernels,
                                             sizeof serving_kernels / sizeof serving_kernels[0]};
