"""serving: the numpy reference of the serving demo's model.

A small decoder-only transformer over byte tokens: the constants and the weight
layout mirror model.h exactly (check_kernels checks the mirror). Needs numpy only.

    blobs = make_weights(seed=0)              # one float32 blob per chip, model.h layout
    ref = Reference(blobs)
    logits = ref.step(embed(blobs, prompt))   # prefill: [T, VOCAB], row t = position t
    tok = greedy(logits)                      # argmax of the last row
    logits = ref.step(embed(blobs, [tok]))    # decode: [1, VOCAB]
    forward(blobs, tokens)                    # the whole sequence again, no cache

Matrices are [out, in]; a row vector x maps to x @ W.T. Everything is float32
except the rotary angles, computed in float64 then rounded (as kernels.c does).
"""
import numpy as np

VOCAB = 256
D_MODEL = 64
N_HEADS = 4
HEAD_DIM = 16
N_LAYERS = 4
FFN = 128
MAX_SEQ = 256
NORM_EPS = 1e-5
ROPE_THETA = 10000.0

# (name, shape) in blob order; offsets are in floats from the block's start.
LAYER_FIELDS = [
    ("attn_norm", (D_MODEL,)),
    ("wq", (D_MODEL, D_MODEL)),
    ("wk", (D_MODEL, D_MODEL)),
    ("wv", (D_MODEL, D_MODEL)),
    ("wo", (D_MODEL, D_MODEL)),
    ("mlp_norm", (D_MODEL,)),
    ("w1", (FFN, D_MODEL)),
    ("w3", (FFN, D_MODEL)),
    ("w2", (D_MODEL, FFN)),
]
FINAL_FIELDS = [
    ("final_norm", (D_MODEL,)),
    ("lm_head", (VOCAB, D_MODEL)),
    ("embed", (VOCAB, D_MODEL)),
]


def _offsets(fields):
    offs, at = {}, 0
    for name, shape in fields:
        offs[name] = at
        at += int(np.prod(shape))
    return offs, at


LAYER_OFFSETS, LAYER_FLOATS = _offsets(LAYER_FIELDS)
FINAL_OFFSETS, FINAL_FLOATS = _offsets(FINAL_FIELDS)
KV_LAYER_FLOATS = 2 * MAX_SEQ * N_HEADS * HEAD_DIM  # k then v, each [MAX_SEQ, H, HEAD_DIM]
assert (LAYER_FLOATS, FINAL_FLOATS, KV_LAYER_FLOATS) == (41088, 32832, 32768)

# Standard deviation of each field's normal draw; norm weights are 1 + that * N(0,1).
_SCALE = {"attn_norm": 0.1, "mlp_norm": 0.1, "final_norm": 0.1, "wq": 0.1, "wk": 0.1, "wv": 0.1,
          "wo": 0.1, "w1": 0.1, "w3": 0.1, "w2": 0.08, "lm_head": 0.1, "embed": 0.5}


def _draw(rng, name, shape):
    x = rng.standard_normal(shape) * _SCALE[name]
    if name.endswith("norm"):
        x = 1.0 + x
    return x.astype(np.float32)


def make_weights(seed=0, layers_per_chip=(2, 2)):
    """One float32 blob per chip, in the layout of model.h: the blocks of the
    chip's layers in order, then (last chip only) the final block.
    Deterministic in seed; layers_per_chip only cuts the same weights apart."""
    if sum(layers_per_chip) != N_LAYERS or min(layers_per_chip) < 1:
        raise ValueError("layers_per_chip must be positive and sum to %d" % N_LAYERS)
    rng = np.random.default_rng(seed)
    layers = [np.concatenate([_draw(rng, n, s).ravel() for n, s in LAYER_FIELDS]) for _ in range(N_LAYERS)]
    final = np.concatenate([_draw(rng, n, s).ravel() for n, s in FINAL_FIELDS])
    blobs, first = [], 0
    for c, n in enumerate(layers_per_chip):
        parts = layers[first:first + n]
        if c == len(layers_per_chip) - 1:
            parts.append(final)
        blobs.append(np.ascontiguousarray(np.concatenate(parts), dtype=np.float32))
        first += n
    return blobs


def _fields(block, fields, offsets):
    return {n: block[offsets[n]:offsets[n] + int(np.prod(s))].reshape(s) for n, s in fields}


def unpack(blobs):
    """(list of per-layer dicts of arrays, dict of the final block), views into blobs."""
    layers = []
    for b in blobs:
        n = (b.size - (FINAL_FLOATS if b is blobs[-1] else 0)) // LAYER_FLOATS
        for i in range(n):
            layers.append(_fields(b[i * LAYER_FLOATS:(i + 1) * LAYER_FLOATS], LAYER_FIELDS, LAYER_OFFSETS))
    if len(layers) != N_LAYERS:
        raise ValueError("the blobs hold %d layers, expected %d" % (len(layers), N_LAYERS))
    fb = blobs[-1]
    final = _fields(fb[fb.size - FINAL_FLOATS:], FINAL_FIELDS, FINAL_OFFSETS)
    return layers, final


def embed(blobs, tokens):
    """[T, D_MODEL] float32: the embedding rows of tokens (host-side lookup)."""
    tokens = np.asarray(tokens, dtype=np.int64)
    if tokens.ndim != 1 or tokens.size == 0 or tokens.min() < 0 or tokens.max() >= VOCAB:
        raise ValueError("tokens must be a non-empty 1-D sequence of 0..%d" % (VOCAB - 1))
    _, final = unpack(blobs)
    return np.ascontiguousarray(final["embed"][tokens], dtype=np.float32)


def rmsnorm(x, w):
    ms = np.mean(x * x, axis=-1, keepdims=True, dtype=np.float32)
    return (x * (np.float32(1.0) / np.sqrt(ms + np.float32(NORM_EPS))) * w).astype(np.float32)


def rope(x, pos):
    """Rotate pairs (2i, 2i+1) of each head of x [T, H, HEAD_DIM], rows at pos, pos+1, ..."""
    i = np.arange(HEAD_DIM // 2, dtype=np.float64)
    freq = ROPE_THETA ** (-(2.0 * i) / HEAD_DIM)
    ang = (pos + np.arange(x.shape[0], dtype=np.float64))[:, None] * freq[None, :]
    c = np.cos(ang).astype(np.float32)[:, None, :]
    s = np.sin(ang).astype(np.float32)[:, None, :]
    x0, x1 = x[..., 0::2], x[..., 1::2]
    out = np.empty_like(x)
    out[..., 0::2] = x0 * c - x1 * s
    out[..., 1::2] = x0 * s + x1 * c
    return out


def silu(x):
    return (x / (np.float32(1.0) + np.exp(-x))).astype(np.float32)


class Reference:
    """The model with its own KV cache: step() takes the embedded tokens of one step
    ([T, D_MODEL]; positions continue from the previous step) and returns float32
    logits [T, VOCAB], row t for position pos+t."""

    def __init__(self, blobs):
        self.layers, self.final = unpack(blobs)
        self.reset()

    def reset(self):
        self.pos = 0
        self.k = np.zeros((N_LAYERS, MAX_SEQ, N_HEADS, HEAD_DIM), np.float32)
        self.v = np.zeros_like(self.k)

    def step(self, x):
        x = np.array(x, dtype=np.float32).reshape(-1, D_MODEL)
        T, pos = x.shape[0], self.pos
        if pos + T > MAX_SEQ:
            raise ValueError("positions %d..%d pass max_seq %d" % (pos, pos + T - 1, MAX_SEQ))
        scale = np.float32(1.0 / np.sqrt(HEAD_DIM))
        # causal mask: query t (position pos+t) sees keys 0..pos+t
        mask = np.arange(pos + T)[None, :] > (pos + np.arange(T))[:, None]
        for li, L in enumerate(self.layers):
            h = rmsnorm(x, L["attn_norm"])
            q = rope((h @ L["wq"].T).reshape(T, N_HEADS, HEAD_DIM), pos)
            k = rope((h @ L["wk"].T).reshape(T, N_HEADS, HEAD_DIM), pos)
            v = (h @ L["wv"].T).reshape(T, N_HEADS, HEAD_DIM)
            self.k[li, pos:pos + T] = k
            self.v[li, pos:pos + T] = v
            K, V = self.k[li, :pos + T], self.v[li, :pos + T]      # [S, H, HD]
            s = np.einsum("thd,shd->hts", q, K).astype(np.float32) * scale
            s = np.where(mask[None], np.float32(-np.inf), s)
            p = np.exp(s - s.max(axis=-1, keepdims=True))
            p = p / p.sum(axis=-1, keepdims=True)
            attn = np.einsum("hts,shd->thd", p, V).reshape(T, D_MODEL).astype(np.float32)
            x = x + attn @ L["wo"].T
            h2 = rmsnorm(x, L["mlp_norm"])
            x = x + (silu(h2 @ L["w1"].T) * (h2 @ L["w3"].T)) @ L["w2"].T
        self.pos += T
        return (rmsnorm(x, self.final["final_norm"]) @ self.final["lm_head"].T).astype(np.float32)


def forward(blobs, tokens):
    """Logits [len(tokens), VOCAB] of the whole sequence, from an empty cache."""
    return Reference(blobs).step(embed(blobs, tokens))


def greedy(logits):
    """The next token: argmax of the last row of logits (first index on a tie)."""
    return int(np.argmax(np.asarray(logits).reshape(-1, VOCAB)[-1]))


def generate(blobs, prompt, n_new):
    """Greedy decoding: (tokens generated, list of each step's logits); the prefill
    gives the first token, each of the n_new - 1 decode steps one more."""
    ref = Reference(blobs)
    logits = [ref.step(embed(blobs, prompt))]
    out = [greedy(logits[-1])]
    while len(out) < n_new:
        logits.append(ref.step(embed(blobs, [out[-1]])))
        out.append(greedy(logits[-1]))
    return out, logits


if __name__ == "__main__":
    blobs = make_weights(0)
    prompt = list(b"Strata! ")
    toks, _ = generate(blobs, prompt, 8)
    print("prompt", prompt, "-> greedy", toks)
