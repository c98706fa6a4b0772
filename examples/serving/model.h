/* serving: the model of the serving demo, a small decoder-only transformer over
 * byte tokens, and the exact memory layout of its weights and KV cache.
 *
 * examples/serving/model.py mirrors every number here; check_kernels checks the
 * mirror (the data file carries the constants and block sizes it was made with).
 *
 * Conventions: float32, row-major. A weight matrix W of shape [out, in] maps a row
 * vector x of `in` features to y = x W^T (y[o] = sum_i W[o][i] x[i]), so a block of
 * output features is a block of W's rows. Offsets are in floats (elements), from the
 * start of the block they belong to; every offset is a multiple of 16 floats, so
 * every matrix starts 64-byte aligned when its block does. */
#ifndef SERVING_MODEL_H
#define SERVING_MODEL_H

/* ---- the model ---- */
#define SV_VOCAB      256   /* byte tokens */
#define SV_D_MODEL    64
#define SV_N_HEADS    4
#define SV_HEAD_DIM   16    /* SV_D_MODEL / SV_N_HEADS */
#define SV_N_LAYERS   4
#define SV_FFN        128   /* hidden size of the SiLU-gated MLP */
#define SV_MAX_SEQ    256   /* positions 0 .. SV_MAX_SEQ-1 */
#define SV_NORM_EPS   1e-5f /* RMSNorm: y = x / sqrt(mean(x^2) + eps) * weight */
#define SV_ROPE_THETA 10000.0 /* pair (2i, 2i+1) of a head at position p turns by
                                 p * theta^(-2i / SV_HEAD_DIM) radians */

/* ---- (a) one layer's weight block ---- */
#define SV_L_ATTN_NORM 0                                         /* [D]      */
#define SV_L_WQ        (SV_L_ATTN_NORM + SV_D_MODEL)             /* [D, D]   */
#define SV_L_WK        (SV_L_WQ + SV_D_MODEL * SV_D_MODEL)       /* [D, D]   */
#define SV_L_WV        (SV_L_WK + SV_D_MODEL * SV_D_MODEL)       /* [D, D]   */
#define SV_L_WO        (SV_L_WV + SV_D_MODEL * SV_D_MODEL)       /* [D, D]   */
#define SV_L_MLP_NORM  (SV_L_WO + SV_D_MODEL * SV_D_MODEL)       /* [D]      */
#define SV_L_W1        (SV_L_MLP_NORM + SV_D_MODEL)              /* [FFN, D] */
#define SV_L_W3        (SV_L_W1 + SV_FFN * SV_D_MODEL)           /* [FFN, D] */
#define SV_L_W2        (SV_L_W3 + SV_FFN * SV_D_MODEL)           /* [D, FFN] */
#define SV_LAYER_FLOATS (SV_L_W2 + SV_D_MODEL * SV_FFN)          /* 41088 */

/* Rows of wq/wk/wv that belong to head h: h*SV_HEAD_DIM .. (h+1)*SV_HEAD_DIM-1;
   the input of wo is the heads' outputs side by side (head h in columns
   h*SV_HEAD_DIM ..). */

/* ---- (b) the final block ---- */
#define SV_F_NORM      0                                         /* [D]        */
#define SV_F_LM_HEAD   (SV_F_NORM + SV_D_MODEL)                  /* [VOCAB, D] */
#define SV_F_EMBED     (SV_F_LM_HEAD + SV_VOCAB * SV_D_MODEL)    /* [VOCAB, D] */
#define SV_FINAL_FLOATS (SV_F_EMBED + SV_VOCAB * SV_D_MODEL)     /* 32832 */

/* A chip's weight blob: the blocks of the n layers it holds, in order (layer i of
   the chip at i * SV_LAYER_FLOATS), then, on the chip holding the last layer, the
   final block at n * SV_LAYER_FLOATS. The token embedding is looked up on the host
   (the embedding table travels in the final block; the host keeps its own copy). */
#define SV_CHIP_WEIGHT_FLOATS(nlayers, last) \
    ((nlayers) * SV_LAYER_FLOATS + ((last) ? SV_FINAL_FLOATS : 0))

/* ---- (c) the KV cache of one layer ---- */
#define SV_KV_K 0                                                /* [MAX_SEQ, H, HEAD_DIM] */
#define SV_KV_V (SV_KV_K + SV_MAX_SEQ * SV_N_HEADS * SV_HEAD_DIM) /* [MAX_SEQ, H, HEAD_DIM] */
#define SV_KV_LAYER_FLOATS (SV_KV_V + SV_MAX_SEQ * SV_N_HEADS * SV_HEAD_DIM) /* 32768 */
/* A chip's KV blob: its layers' caches in order (layer i at i * SV_KV_LAYER_FLOATS).
   Only positions 0 .. pos+T-1 are ever read, all written earlier, so the blob
   needs no clearing. */

/* ---- the chip callable `serving_layers` (kernels.c) ----
   tensors: [0] x       [T, D] float32, host shared memory, INOUT: this step's
                        hidden states in, the states after the chip's layers out
            [1] weights the chip's weight blob (>= SV_CHIP_WEIGHT_FLOATS elements), INPUT
            [2] kv      the chip's KV blob (>= nlayers * SV_KV_LAYER_FLOATS), INOUT
            [3] logits  [T, VOCAB] float32, OUTPUT, written only when flag is 1
                        (then every one of the T rows: row t holds the logits of the
                        token at position pos+t); any 1-element tensor otherwise
   scalars: [0] pos     position of the first token of this step
            [1] T       tokens in this step (1 <= T, pos + T <= SV_MAX_SEQ)
            [2] nlayers layers this chip holds (1..SV_N_LAYERS)
            [3] flag    1: then apply the final RMSNorm and the lm_head; 0: not */
enum { SV_ARG_POS, SV_ARG_T, SV_ARG_NLAYERS, SV_ARG_FLAG, SV_NARGS };

#endif
