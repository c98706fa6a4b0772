"""Write the data file check_kernels reads: the model's weights split over two
chips (layers 0-1 on chip 0, 2-3 and the final block on chip 1), a prompt of 8
tokens, and the numpy reference's logits and greedy tokens of the prefill and of
4 greedy decode steps.

    /usr/bin/python3 make_check_data.py [OUT [SEED [PROMPT_LEN [DECODE_STEPS]]]]

OUT defaults to serving_check.bin, SEED to 0, PROMPT_LEN to 8 (the prompt
repeats b"Strata! "), DECODE_STEPS to 4; PROMPT_LEN + DECODE_STEPS <= 256.

Format, little-endian (check_kernels.c reads it field by field):
    char[8] "SVCHK001"
    int32 VOCAB, D_MODEL, N_HEADS, HEAD_DIM, N_LAYERS, FFN, MAX_SEQ,
          LAYER_FLOATS, FINAL_FLOATS, KV_LAYER_FLOATS
    int32 nchips; int32 layers[nchips]
    per chip: int64 nfloats; float32[nfloats] weight blob
    int32 nsteps
    per step: int32 pos, T; int32 tokens[T]; float32 logits[T * VOCAB];
              int32 next (the greedy token after the step)
A step's tokens are the reference's own: the prompt, then each greedy token.
"""
import os
import struct
import sys

import numpy as np

import model as m

LAYERS = (2, 2)


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else "serving_check.bin"
    seed = int(sys.argv[2]) if len(sys.argv) > 2 else 0
    prompt_len = int(sys.argv[3]) if len(sys.argv) > 3 else 8
    decode_steps = int(sys.argv[4]) if len(sys.argv) > 4 else 4
    if prompt_len < 1 or decode_steps < 0 or prompt_len + decode_steps > m.MAX_SEQ:
        sys.exit("make_check_data.py: need PROMPT_LEN >= 1, DECODE_STEPS >= 0, sum <= %d" % m.MAX_SEQ)
    prompt = list((b"Strata! " * (prompt_len // 8 + 1))[:prompt_len])
    blobs = m.make_weights(seed, LAYERS)
    ref = m.Reference(blobs)
    steps, tokens, pos = [], prompt, 0
    for _ in range(1 + decode_steps):
        logits = ref.step(m.embed(blobs, tokens))
        nxt = m.greedy(logits)
        steps.append((pos, tokens, logits, nxt))
        pos += len(tokens)
        tokens = [nxt]

    # the incremental reference agrees with a full recomputation
    seq = prompt + [s[3] for s in steps[:-1]]
    full = m.forward(blobs, seq)
    inc = np.concatenate([s[2] for s in steps])
    assert np.abs(full - inc).max() < 1e-4, np.abs(full - inc).max()

    # written beside OUT, then renamed: a reader never sees half a file
    tmp = "%s.%d.tmp" % (out, os.getpid())
    with open(tmp, "wb") as f:
        f.write(b"SVCHK001")
        f.write(struct.pack("<10i", m.VOCAB, m.D_MODEL, m.N_HEADS, m.HEAD_DIM, m.N_LAYERS, m.FFN, m.MAX_SEQ,
                            m.LAYER_FLOATS, m.FINAL_FLOATS, m.KV_LAYER_FLOATS))
        f.write(struct.pack("<i", len(LAYERS)) + struct.pack("<%di" % len(LAYERS), *LAYERS))
        for b in blobs:
            f.write(struct.pack("<q", b.size))
            f.write(b.astype("<f4").tobytes())
        f.write(struct.pack("<i", len(steps)))
        for pos, toks, logits, nxt in steps:
            f.write(struct.pack("<2i", pos, len(toks)) + struct.pack("<%di" % len(toks), *toks))
            f.write(np.ascontiguousarray(logits, dtype="<f4").tobytes())
            f.write(struct.pack("<i", nxt))
    os.replace(tmp, out)
    print("%s: seed %d, prompt of %d tokens, greedy tokens %s" % (out, seed, len(prompt), [s[3] for s in steps]))


if __name__ == "__main__":
    main()
