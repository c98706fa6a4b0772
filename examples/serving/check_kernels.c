/* check_kernels: the serving demo's chip kernels against the numpy reference,
 * without any Python binding.
 *
 *   check_kernels DATA SO        (DATA from make_check_data.py, SO: libserving_kernels.so)
 *
 * A level-3 worker with two sim chips runs the model split as in the data file
 * (layers 0-1 on chip 0; layers 2-3, the final norm and the lm_head on chip 1):
 * one strata_worker_run per step, chip 0 then chip 1, ordered by the INOUT tag on
 * the hidden states x in shared host memory. The prefill takes the prompt; each
 * decode step takes the token this program chose greedily at the step before. Every
 * step's logits (all T rows) must be within TOL of the reference's, and every
 * greedy token equal to the reference's. The embedding lookup is done here, on the
 * host, from the table in the final block (model.h). Exit status 0 when all match. */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <strata/strata.h>

#include "model.h"

#define TOL 1e-4f   /* max abs error allowed on any logit */
#ifndef CHECK_CORES
#define CHECK_CORES 2   /* AIC and AIV cores per sim chip (-DCHECK_CORES=n to change) */
#endif

enum { NCHIPS = 2, MAX_STEPS = SV_MAX_SEQ };

typedef struct step_data {
    int32_t pos, T, next;
    int32_t *tokens;   /* T */
    float   *logits;   /* T * SV_VOCAB */
} step_data;

typedef struct check_data {
    int32_t   layers[NCHIPS];
    int64_t   nfloats[NCHIPS];
    float    *blob[NCHIPS];
    int32_t   nsteps;
    step_data steps[MAX_STEPS];
} check_data;

static int rd(FILE *f, void *p, size_t size, size_t n, const char *what)
{
    if (fread(p, size, n, f) == n)
        return 0;
    fprintf(stderr, "check_kernels: the data file ends inside %s\n", what);
    return -1;
}

/* Read DATA (format: make_check_data.py) and check it was made for this model.h. */
static int load(const char *path, check_data *d)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        perror(path);
        return -1;
    }
    int rc = -1;
    char magic[8];
    int32_t hdr[10], nchips;
    const int32_t want[10] = {SV_VOCAB, SV_D_MODEL, SV_N_HEADS, SV_HEAD_DIM, SV_N_LAYERS, SV_FFN,
                              SV_MAX_SEQ, SV_LAYER_FLOATS, SV_FINAL_FLOATS, SV_KV_LAYER_FLOATS};
    if (rd(f, magic, 1, 8, "the magic") || memcmp(magic, "SVCHK001", 8) != 0) {
        fprintf(stderr, "check_kernels: %s is no data file of make_check_data.py\n", path);
        goto out;
    }
    if (rd(f, hdr, 4, 10, "the header"))
        goto out;
    for (int i = 0; i < 10; i++)
        if (hdr[i] != want[i]) {
            fprintf(stderr, "check_kernels: header field %d is %d in the data file, %d in model.h: "
                            "model.py and model.h disagree\n", i, (int)hdr[i], (int)want[i]);
            goto out;
        }
    if (rd(f, &nchips, 4, 1, "the chip count") || nchips != NCHIPS ||
        rd(f, d->layers, 4, NCHIPS, "the layer split")) {
        fprintf(stderr, "check_kernels: the data file must split the model over %d chips\n", NCHIPS);
        goto out;
    }
    for (int c = 0; c < NCHIPS; c++) {
        int last = c == NCHIPS - 1;
        if (rd(f, &d->nfloats[c], 8, 1, "a blob size"))
            goto out;
        if (d->layers[c] < 1 || d->nfloats[c] != SV_CHIP_WEIGHT_FLOATS((int64_t)d->layers[c], last)) {
            fprintf(stderr, "check_kernels: chip %d: %d layers in %" PRId64 " floats do not fit model.h\n", c,
                    (int)d->layers[c], d->nfloats[c]);
            goto out;
        }
        if (!(d->blob[c] = malloc((size_t)d->nfloats[c] * sizeof(float))) ||
            rd(f, d->blob[c], sizeof(float), (size_t)d->nfloats[c], "a weight blob"))
            goto out;
    }
    if (d->layers[0] + d->layers[1] != SV_N_LAYERS) {
        fprintf(stderr, "check_kernels: the chips hold %d layers, the model %d\n",
                (int)(d->layers[0] + d->layers[1]), SV_N_LAYERS);
        goto out;
    }
    if (rd(f, &d->nsteps, 4, 1, "the step count") || d->nsteps < 1 || d->nsteps > MAX_STEPS) {
        fprintf(stderr, "check_kernels: bad step count\n");
        goto out;
    }
    for (int s = 0; s < d->nsteps; s++) {
        step_data *st = &d->steps[s];
        if (rd(f, &st->pos, 4, 1, "a step") || rd(f, &st->T, 4, 1, "a step"))
            goto out;
        if (st->T < 1 || st->pos < 0 || st->pos + st->T > SV_MAX_SEQ) {
            fprintf(stderr, "check_kernels: step %d: pos %d, T %d out of range\n", s, (int)st->pos, (int)st->T);
            goto out;
        }
        st->tokens = malloc((size_t)st->T * sizeof(int32_t));
        st->logits = malloc((size_t)st->T * SV_VOCAB * sizeof(float));
        if (!st->tokens || !st->logits || rd(f, st->tokens, 4, (size_t)st->T, "a step's tokens") ||
            rd(f, st->logits, 4, (size_t)st->T * SV_VOCAB, "a step's logits") || rd(f, &st->next, 4, 1, "a step"))
            goto out;
    }
    rc = 0;
out:
    fclose(f);
    return rc;
}

/* What one run needs: the chip callable and each chip's arguments. */
typedef struct run_ctx {
    strata_handle layers;
    strata_tensor x, logits, dummy, w[NCHIPS], kv[NCHIPS];
    uint64_t      scalars[NCHIPS][SV_NARGS];
} run_ctx;

/* One step: chip 0's layers, then chip 1's layers and the logits. Chip 1 follows
   chip 0 because both name x INOUT; nothing else orders them. */
static int step_orch(strata_orch *o, const strata_task_args *args, const strata_call_config *cfg, void *ctx)
{
    (void)args;
    (void)cfg;
    run_ctx *r = ctx;
    static const strata_tag tags[4] = {STRATA_INOUT, STRATA_INPUT, STRATA_INOUT, STRATA_OUTPUT};
    for (int c = 0; c < NCHIPS; c++) {
        strata_tensor t[4] = {r->x, r->w[c], r->kv[c], c == NCHIPS - 1 ? r->logits : r->dummy};
        int rc = strata_submit_next_level(o, r->layers, &(strata_task_args){t, tags, 4, r->scalars[c], SV_NARGS},
                                          NULL, c);
        if (rc)
            return rc;
    }
    return 0;
}

static int fail(const char *what, int rc)
{
    fprintf(stderr, "check_kernels: %s failed: %s: %s\n", what, strata_status_name(rc), strata_last_error());
    return 1;
}

static int argmax(const float *v, int n)
{
    int best = 0;
    for (int i = 1; i < n; i++)
        if (v[i] > v[best])
            best = i;
    return best;
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: check_kernels DATA SO   (DATA: make_check_data.py's file, SO: "
                        "libserving_kernels.so)\n");
        return 2;
    }
    static check_data d;
    if (load(argv[1], &d))
        return 1;

    int ids[NCHIPS] = {0, 1};
    strata_worker_config cfg;
    strata_worker_config_init(&cfg, 3);
    cfg.device_ids = ids;
    cfg.ndevices = NCHIPS;
    cfg.device_memory_bytes = 64 << 20;
    cfg.shared_heap_bytes = 16 << 20;
    cfg.aic_cores = CHECK_CORES;
    cfg.aiv_cores = CHECK_CORES;
    strata_worker *w;
    int rc = strata_worker_create(&cfg, &w);
    if (rc)
        return fail("strata_worker_create", rc);
    run_ctx r;
    memset(&r, 0, sizeof r);
    if ((rc = strata_worker_register_chip_symbol(w, argv[2], "serving_layers", &r.layers)))
        return fail("strata_worker_register_chip_symbol", rc);
    if ((rc = strata_worker_init(w)))
        return fail("strata_worker_init", rc);

    /* Weights: uploaded once into each chip's memory; a KV cache per chip. */
    for (int c = 0; c < NCHIPS; c++) {
        strata_buffer wb, kb;
        uint64_t wn = (uint64_t)d.nfloats[c], kn = (uint64_t)d.layers[c] * SV_KV_LAYER_FLOATS;
        if ((rc = strata_worker_malloc(w, c, wn * sizeof(float), &wb)) ||
            (rc = strata_worker_copy_to(w, wb, 0, d.blob[c], wn * sizeof(float))) ||
            (rc = strata_worker_malloc(w, c, kn * sizeof(float), &kb)))
            return fail("uploading the weights", rc);
        r.w[c] = strata_tensor_make((void *)(uintptr_t)wb.addr, STRATA_F32, 1, &wn);
        r.kv[c] = strata_tensor_make((void *)(uintptr_t)kb.addr, STRATA_F32, 1, &kn);
    }
    void *x, *logits, *dummy;
    if ((rc = strata_worker_host_alloc(w, (uint64_t)SV_MAX_SEQ * SV_D_MODEL * sizeof(float), &x)) ||
        (rc = strata_worker_host_alloc(w, (uint64_t)SV_MAX_SEQ * SV_VOCAB * sizeof(float), &logits)) ||
        (rc = strata_worker_host_alloc(w, sizeof(float), &dummy)))
        return fail("strata_worker_host_alloc", rc);
    const uint64_t one = 1;
    r.dummy = strata_tensor_make(dummy, STRATA_F32, 1, &one);
    const float *embed = d.blob[NCHIPS - 1] + (size_t)d.layers[NCHIPS - 1] * SV_LAYER_FLOATS + SV_F_EMBED;

    float worst = 0.0f;
    int tokens_ok = 1, next = -1;
    for (int s = 0; s < d.nsteps; s++) {
        const step_data *st = &d.steps[s];
        /* this step's tokens: the prompt, then our own greedy choice */
        int32_t own[SV_MAX_SEQ];
        memcpy(own, st->tokens, (size_t)st->T * sizeof(int32_t));
        if (s > 0)
            own[0] = next;
        for (int t = 0; t < st->T; t++) {
            if (own[t] < 0 || own[t] >= SV_VOCAB) {
                fprintf(stderr, "check_kernels: step %d: token %d out of range\n", s, (int)own[t]);
                return 1;
            }
            memcpy((float *)x + (size_t)t * SV_D_MODEL, embed + (size_t)own[t] * SV_D_MODEL,
                   SV_D_MODEL * sizeof(float));
        }
        memset(logits, 0xff, (size_t)st->T * SV_VOCAB * sizeof(float));   /* NaN: unwritten rows show */
        uint64_t xs[2] = {(uint64_t)st->T, SV_D_MODEL}, ls[2] = {(uint64_t)st->T, SV_VOCAB};
        r.x = strata_tensor_make(x, STRATA_F32, 2, xs);
        r.logits = strata_tensor_make(logits, STRATA_F32, 2, ls);
        for (int c = 0; c < NCHIPS; c++) {
            r.scalars[c][SV_ARG_POS] = (uint64_t)st->pos;
            r.scalars[c][SV_ARG_T] = (uint64_t)st->T;
            r.scalars[c][SV_ARG_NLAYERS] = (uint64_t)d.layers[c];
            r.scalars[c][SV_ARG_FLAG] = c == NCHIPS - 1;
        }
        if ((rc = strata_worker_run(w, step_orch, &r, NULL, NULL)))
            return fail("strata_worker_run", rc);

        float err = 0.0f;
        const float *got = logits;
        for (size_t i = 0; i < (size_t)st->T * SV_VOCAB; i++) {
            float e = fabsf(got[i] - st->logits[i]);
            if (!(e <= err))   /* NaN counts as the worst */
                err = isnan(e) ? INFINITY : e;
        }
        if (!(err <= worst))
            worst = err;
        next = argmax(got + (size_t)(st->T - 1) * SV_VOCAB, SV_VOCAB);
        int ok = next == st->next;
        tokens_ok &= ok;
        printf("step %d (%s, pos %d, T %d): max abs logit error %.3g, greedy token %d, reference %d%s\n", s,
               s == 0 ? "prefill" : "decode", (int)st->pos, (int)st->T, (double)err, next, (int)st->next,
               ok ? "" : "  MISMATCH");
    }
    strata_run_stats stats;
    if (strata_worker_stats(w, &stats) == 0)
        printf("tasks completed %llu, failed %llu, cancelled %llu\n", (unsigned long long)stats.tasks_completed,
               (unsigned long long)stats.tasks_failed, (unsigned long long)stats.tasks_canceled);
    if ((rc = strata_worker_close(w)))
        return fail("strata_worker_close", rc);
    strata_worker_destroy(w);
    for (int c = 0; c < NCHIPS; c++)
        free(d.blob[c]);
    for (int s = 0; s < d.nsteps; s++) {
        free(d.steps[s].tokens);
        free(d.steps[s].logits);
    }

    int pass = worst <= TOL && tokens_ok;
    printf("check_kernels: %s: max abs logit error %.3g over %d steps (tolerance %.0e), greedy tokens %s\n",
           pass ? "PASS" : "FAIL", (double)worst, (int)d.nsteps, (double)TOL, tokens_ok ? "all match" : "differ");
    return pass ? 0 : 1;
}
