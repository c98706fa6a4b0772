#!/usr/bin/env python3
"""serve: a small transformer served token by token on two Strata sim chips.

One level-3 Worker holds two chip children and one SUB child for the whole stream:

  - the weights are made from a seed (model.py) and uploaded once into chip memory:
    layers 0-1 on chip 0; layers 2-3, the final norm and the lm_head on chip 1;
  - each chip keeps the KV cache of its layers in its own memory across runs;
  - the prompt is prefilled once, then every decode step is one w.run() on the same
    worker: chip 0's layers, chip 1's layers and the logits, then a SUB task (a
    Python function in its own process) that picks the next token greedily. Every
    dependency comes from the tensor tags;
  - a chip child that dies (--kill-chip-at STEP kills one on purpose) fails that
    step's run with ChildDiedError; Strata replaces the child, the server uploads
    the weights the dead chip held again, re-prefills the tokens so far into a
    fresh KV cache, and carries on: the token stream is the one an uninterrupted
    run gives.

    PYTHONPATH=build/python /usr/bin/python3 examples/serving/serve.py --tokens 64
    ... --check               compare every logit and token with the numpy reference
    ... --kill-chip-at 20     SIGKILL chip child 1 just before step 20's run
    ... --json                end with one JSON line: tokens, figures, stats

Step 0 is the prefill (the whole prompt in one run; it gives the first token);
steps 1 .. N-1 decode one token each. The chip kernels are kernels.c, built by
CMake into build/examples/serving/libserving_kernels.so (or pass --kernels).

A program can call main(argv) and get the exit status: 0, or 1 when the check
finds a mismatch or Strata fails, 2 for bad arguments.
"""
import argparse
import json
import os
import select
import signal
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)
import model  # noqa: E402  (the numpy reference and the layout of model.h, beside this file)

try:
    import strata
except ImportError as e:
    raise ImportError("serve.py needs the strata package: build it (cmake --build build) and run with "
                      "PYTHONPATH=build/python, or install it (pip install .)") from e
from strata import ChipCallable, TaskArgs, TensorArgType, Worker  # noqa: E402

LAYERS_PER_CHIP = (2, 2)          # layers 0-1 on chip 0, layers 2-3 (+ final block) on chip 1
NCHIPS = len(LAYERS_PER_CHIP)
LAST_CHIP = NCHIPS - 1
CHECK_TOLERANCE = 1e-4            # --check: max abs error allowed on any logit
MAX_RECOVERIES_PER_STEP = 3       # a step whose children keep dying fails the demo


def main(argv=None):
    """Run the demo with the command-line arguments argv (sys.argv[1:] when None);
    returns the exit status."""
    try:
        opts = parse_args(argv)
    except SystemExit as e:       # argparse exits on --help and on bad arguments
        return e.code if isinstance(e.code, int) else 2
    try:
        return serve(opts)
    except strata.StrataError as e:
        print(f"serve: {type(e).__name__}: {e}", file=sys.stderr)
        return 1


def parse_args(argv):
    p = argparse.ArgumentParser(prog="serve.py", description="Serve a small transformer on two Strata sim chips.")
    p.add_argument("--tokens", type=int, default=32, help="tokens to generate (default 32)")
    p.add_argument("--prompt", default="Strata! ", help="the prompt, as text (tokens are its UTF-8 bytes)")
    p.add_argument("--seed", type=int, default=0, help="seed of the weights (default 0)")
    p.add_argument("--check", action="store_true",
                   help="compare every step's logits (max abs error %g) and every token with the numpy "
                        "reference; exit 1 on a mismatch" % CHECK_TOLERANCE)
    p.add_argument("--kill-chip-at", type=int, metavar="STEP",
                   help="SIGKILL a chip child just before step STEP's run (0 is the prefill), then recover")
    p.add_argument("--kill-chip", type=int, default=LAST_CHIP, choices=range(NCHIPS),
                   help="which chip --kill-chip-at kills (default %d)" % LAST_CHIP)
    p.add_argument("--json", action="store_true", help="end with one line of JSON: tokens, figures, stats")
    p.add_argument("--kernels", help="the chip kernels' shared object (default: the CMake build's)")
    p.add_argument("--cores", type=int, default=2, help="AIC and AIV cores per sim chip (default 2)")
    p.add_argument("--host-sample", action="store_true",
                   help="pick each token on the host after the run (numpy argmax) instead of in a SUB task")
    opts = p.parse_args(argv)
    opts.prompt_tokens = list(opts.prompt.encode("utf-8"))
    if not opts.prompt_tokens:
        p.error("the prompt is empty")
    if opts.tokens < 1:
        p.error("--tokens must be at least 1")
    # the last token generated is never fed back, so it needs no position
    if len(opts.prompt_tokens) + opts.tokens - 1 > model.MAX_SEQ:
        p.error("the prompt (%d tokens) and %d new tokens pass the model's %d positions"
                % (len(opts.prompt_tokens), opts.tokens, model.MAX_SEQ))
    if opts.kill_chip_at is not None and not 0 <= opts.kill_chip_at < opts.tokens:
        p.error("--kill-chip-at must name a step, 0 .. %d" % (opts.tokens - 1))
    if opts.check and os.environ.get("SERVING_EMPTY_KERNELS", "0") not in ("", "0"):
        p.error("--check cannot pass with SERVING_EMPTY_KERNELS set: the kernels compute nothing")
    return opts


def find_kernels(path):
    """The chip callable `serving_layers`: from the shared object given, or the one
    CMake built, or compiled from kernels.c with the system compiler."""
    if path:
        return ChipCallable.from_symbol(path, "serving_layers")
    repo = os.path.dirname(os.path.dirname(HERE))
    for build in ("build", "build-release", "build-debug"):
        so = os.path.join(repo, build, "examples", "serving", "libserving_kernels.so")
        if os.path.exists(so):
            return ChipCallable.from_symbol(so, "serving_layers")
    return ChipCallable.compile(os.path.join(HERE, "kernels.c"), "serving_layers")


def sample(args):
    """SUB function (runs in a SUB child): the greedy token of the last row of the
    logits, written into the shared token array at the index scalar 0 names."""
    logits, out = args.tensor(0), args.tensor(1)
    out[args.scalar(0)] = int(np.argmax(logits[-1]))


class Server:
    """The model on a level-3 worker: chip-resident weights and KV caches, host
    buffers in shared memory, and one run per step."""

    def __init__(self, w, blobs, layers_h, sample_h, host_sample=False):
        self.w, self.blobs = w, blobs
        self.layers_h, self.sample_h = layers_h, sample_h
        self.host_sample = host_sample     # the token picked here after the run, not by a SUB task
        self.embed_table = model.unpack(blobs)[1]["embed"]     # the host's copy of the embedding
        # host buffers every child sees (shared memory), sized for the longest step
        self.x = w.host_empty((model.MAX_SEQ, model.D_MODEL), "float32")     # hidden states
        self.logits = w.host_empty((model.MAX_SEQ, model.VOCAB), "float32")
        self.no_logits = w.host_empty((1,), "float32")   # chip 0 computes none ("any 1-element tensor")
        self.tokens = w.host_empty((model.MAX_SEQ,), "int32")   # the tokens the SUB task picks
        self.weights = [None] * NCHIPS
        self.kv = [None] * NCHIPS
        for chip in range(NCHIPS):
            self.upload(chip)

    def upload(self, chip):
        """Give `chip` its weights (uploaded once) and an empty KV cache, both in its
        own memory. Called at start, and again for a chip whose child was replaced
        (the memory of a dead chip child is gone)."""
        blob = self.blobs[chip]
        weights = self.w.malloc(blob.nbytes, worker=chip)
        self.w.copy_to(weights, blob)
        # The KV cache needs no clearing (model.h: every position read was written
        # first). Fresh chip memory may still hold old data, even a dead child's
        # cache on the sim chip, so fill it with NaN: a position that a prefill or
        # a rebuild failed to write then shows in the logits instead of passing
        # unnoticed.
        kv_floats = LAYERS_PER_CHIP[chip] * model.KV_LAYER_FLOATS
        kv = self.w.malloc(kv_floats * 4, worker=chip)
        self.w.copy_to(kv, np.full(kv_floats, np.nan, np.float32))
        self.weights[chip] = weights.tensor((blob.size,), "float32")
        self.kv[chip] = kv.tensor((kv_floats,), "float32")

    def run(self, tokens, pos, chips=range(NCHIPS), out_index=None):
        """One run: the tokens at positions pos.. through the layers of `chips` (in
        order, each after the one before by the INOUT tag on x), writing each chip's
        KV cache. With out_index, the last chip also computes the logits and a SUB
        task (or, with host_sample, this process after the run) picks the next
        token into self.tokens[out_index]."""
        T = len(tokens)
        self.x[:T] = self.embed_table[tokens]           # the embedding lookup is on the host
        x, logits = self.x[:T], self.logits[:T]
        want_logits = out_index is not None

        def orch_fn(orch, args, cfg):
            try:
                submit_step(orch)
            except strata.CanceledError:
                # A child died while this run was being submitted: the run has failed
                # already and takes no more tasks. Stop; w.run() raises the failure.
                pass

        def submit_step(orch):
            for chip in chips:
                flag = int(want_logits and chip == LAST_CHIP)
                ta = TaskArgs()
                ta.add_tensor(x, TensorArgType.INOUT)
                ta.add_tensor(self.weights[chip], TensorArgType.INPUT)
                ta.add_tensor(self.kv[chip], TensorArgType.INOUT)
                ta.add_tensor(logits if flag else self.no_logits, TensorArgType.OUTPUT)
                for s in (pos, T, LAYERS_PER_CHIP[chip], flag):    # model.h: pos, T, nlayers, flag
                    ta.add_scalar(s)
                orch.submit_next_level(self.layers_h, ta, None, worker=chip)
            if want_logits and not self.host_sample:
                ta = TaskArgs()
                ta.add_tensor(logits, TensorArgType.INPUT)       # after chip 1 wrote them
                ta.add_tensor(self.tokens, TensorArgType.INOUT)
                ta.add_scalar(out_index)
                orch.submit_sub(self.sample_h, ta)

        self.w.run(orch_fn)
        if want_logits and self.host_sample:
            self.tokens[out_index] = int(np.argmax(logits[-1]))
        return int(self.tokens[out_index]) if want_logits else None

    def chip_pids(self):
        return [self.w.child_pid(chip) for chip in range(NCHIPS)]

    def recover(self, old_pids, seq, pos, timeout_s=10.0):
        """After a run failed because a child died: wait until every chip child
        answers, then rebuild each chip whose child was replaced: upload its weights
        again and re-prefill the tokens at positions 0..pos-1 into a fresh KV cache.
        The chips before it run too, to hand it the hidden states (they rewrite
        their own caches with the same values: each kernel treats rows alone, so a
        prefill writes exactly what the decode steps wrote). Returns the chips
        rebuilt."""
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                pids = self.chip_pids()
                break
            except strata.StrataError:        # a child not replaced yet answers ChildDiedError
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.01)
        replaced = [chip for chip in range(NCHIPS) if pids[chip] != old_pids[chip]]
        for chip in replaced:
            self.upload(chip)
        if replaced and pos > 0:
            self.run(seq[:pos], 0, chips=range(max(replaced) + 1))
        return replaced, pids


def kill_child(pid):
    """SIGKILL process pid and wait until it is dead (a pidfd: no risk of a reused pid)."""
    fd = os.pidfd_open(pid)
    try:
        signal.pidfd_send_signal(fd, signal.SIGKILL)
        select.select([fd], [], [], 5.0)              # readable once the process has ended
    finally:
        os.close(fd)


class Progress:
    """A one-line progress bar, shown only when stdout is a terminal, redrawn at
    most every 50 ms (drawing is slower than a decode step)."""

    def __init__(self, total, enabled):
        self.total, self.enabled = total, enabled
        self.start = self.drawn = time.perf_counter()
        self.on_line = False          # the cursor sits at the end of the bar

    def update(self, done):
        now = time.perf_counter()
        if not self.enabled or (now - self.drawn < 0.05 and done < self.total):
            return
        width = 30
        fill = width * done // self.total
        sys.stdout.write("\r[%s%s] %d/%d tokens, %.0f tokens/s" % ("#" * fill, "." * (width - fill), done,
                                                                     self.total, done / (now - self.start)))
        sys.stdout.flush()
        self.drawn, self.on_line = now, True

    def interrupt(self):
        """End the bar's line, before printing anything else."""
        if self.on_line:
            sys.stdout.write("\n")
            self.on_line = False


def serve(opts):
    prompt, n_new = opts.prompt_tokens, opts.tokens
    blobs = model.make_weights(opts.seed, LAYERS_PER_CHIP)
    print("serve: %d-layer transformer on %d sim chips (layers 0-1 on chip 0; 2-3 and the lm_head on chip 1), "
          "%d AIC + %d AIV cores each; greedy sampling %s"
          % (model.N_LAYERS, NCHIPS, opts.cores, opts.cores,
             "on the host" if opts.host_sample else "in a SUB worker"))
    print("prompt: %r (%d tokens), seed %d, %d new tokens" % (opts.prompt, len(prompt), opts.seed, n_new))

    with Worker(level=3, platform="sim", device_ids=list(range(NCHIPS)), num_sub_workers=1,
                on_child_death="restart", device_memory_bytes=64 << 20, shared_heap_bytes=16 << 20,
                aic_cores=opts.cores, aiv_cores=opts.cores) as w:
        layers_h = w.register(find_kernels(opts.kernels))
        sample_h = w.register(sample)
        w.init()
        srv = Server(w, blobs, layers_h, sample_h, host_sample=opts.host_sample)
        t_start = time.perf_counter()
        generated, latencies, step_logits, recoveries = stream(srv, opts)
        total_s = time.perf_counter() - t_start
        stats = w.stats()

    # figures: step 0 is the prefill; the decode steps give tokens/s and the latencies
    prefill_ms = latencies[0] * 1e3
    decode = np.array(latencies[1:]) * 1e3
    p50, p99 = (float(np.percentile(decode, 50)), float(np.percentile(decode, 99))) if decode.size else (0.0, 0.0)
    tok_s = decode.size / (decode.sum() / 1e3) if decode.size else 0.0
    print("prefill: %d tokens in %.2f ms" % (len(prompt), prefill_ms))
    print("decode: %d steps, %.0f tokens/s, step latency p50 %.2f ms, p99 %.2f ms (%.2f s in all%s)"
          % (decode.size, tok_s, p50, p99, total_s, ", recoveries: %d" % len(recoveries) if recoveries else ""))
    print("tokens: %s" % generated)
    print("text: %r" % bytes(generated))
    print("worker stats: %s" % ", ".join("%s=%s" % kv for kv in sorted(stats.items())))

    status, check = 0, None
    if opts.check:
        check = check_against_reference(blobs, prompt, generated, step_logits)
        print("check: the logits of all %d steps within %g of the reference's: %s (max abs error %.3g); "
              "all %d tokens equal to the reference's: %s"
              % (check["logit_steps"], CHECK_TOLERANCE, "yes" if check["logits_ok"] else "NO",
                 check["max_abs_error"], len(generated), "yes" if check["tokens_ok"] else "NO"))
        if not check["tokens_ok"]:
            print("check: the first difference is at step %d" % check["first_token_mismatch"])
        status = 0 if check["logits_ok"] and check["tokens_ok"] else 1

    if opts.json:
        print(json.dumps({"tokens": generated, "prompt_tokens": prompt, "seed": opts.seed,
                          "prefill_ms": prefill_ms, "decode_steps": int(decode.size), "tokens_per_s": tok_s,
                          "p50_ms": p50, "p99_ms": p99, "total_s": total_s, "recoveries": recoveries,
                          "check": check, "stats": stats}, default=str))
    return status


def stream(srv, opts):
    """Prefill the prompt, then decode until opts.tokens tokens are out, one run per
    step. Returns (tokens, each step's latency in s, each step's logits when
    checking, the recoveries)."""
    seq = list(opts.prompt_tokens)      # every token so far: the prompt, then the generated ones
    generated, latencies, step_logits, recoveries = [], [], [], []
    pids = srv.chip_pids()
    progress = Progress(opts.tokens, sys.stdout.isatty())
    step, killed = 0, False
    while step < opts.tokens:
        # step 0 feeds the prompt at position 0; step i feeds token i-1 at position P+i-1
        pos = 0 if step == 0 else len(seq) - 1
        feed = seq[pos:]
        if step == opts.kill_chip_at and not killed:
            killed = True
            progress.interrupt()
            print("step %d: killing chip child %d (pid %d) with SIGKILL" % (step, opts.kill_chip,
                                                                          pids[opts.kill_chip]))
            kill_child(pids[opts.kill_chip])
        t0 = time.perf_counter()
        try:
            tok = srv.run(feed, pos, out_index=step)
        except strata.ChildDiedError as e:
            # Strata has replaced the dead child already (policy "restart"); what the
            # dead chip held is for the server to rebuild. Then the same step again.
            progress.interrupt()
            print("step %d: the run failed: %s: %s" % (step, type(e).__name__, e))
            if sum(r["step"] == step for r in recoveries) >= MAX_RECOVERIES_PER_STEP:
                raise
            t1 = time.perf_counter()
            replaced, new_pids = srv.recover(pids, seq, pos)
            ms = (time.perf_counter() - t1) * 1e3
            for chip in replaced:
                print("step %d: chip %d is back (pid %d -> %d): weights uploaded again, %s"
                      % (step, chip, pids[chip], new_pids[chip],
                         "%d tokens re-prefilled into a fresh KV cache" % pos if pos else "a fresh KV cache"))
            if not replaced:
                print("step %d: every chip child is the one before: the chips lost nothing" % step)
            print("step %d: recovered in %.1f ms; running the step again" % (step, ms))
            recoveries.append({"step": step, "error": str(e), "chips": replaced, "recover_ms": ms})
            pids = new_pids
            continue
        latencies.append(time.perf_counter() - t0)
        if opts.check:
            step_logits.append(srv.logits[:len(feed)].copy())
        generated.append(tok)
        seq.append(tok)
        step += 1
        progress.update(step)
    progress.interrupt()
    return generated, latencies, step_logits, recoveries


def check_against_reference(blobs, prompt, generated, step_logits):
    """The tokens and every step's logits against model.generate (numpy)."""
    ref_tokens, ref_logits = model.generate(blobs, prompt, len(generated))
    err = 0.0
    for got, want in zip(step_logits, ref_logits):
        e = float(np.abs(got - want).max())
        err = max(err, e if np.isfinite(e) else float("inf"))     # a NaN logit counts as the worst
    mismatch = next((i for i, (a, b) in enumerate(zip(generated, ref_tokens)) if a != b), None)
    return {"logit_steps": len(step_logits), "max_abs_error": err, "tolerance": CHECK_TOLERANCE,
            "logits_ok": bool(err <= CHECK_TOLERANCE), "tokens_ok": mismatch is None,
            "first_token_mismatch": mismatch, "reference_tokens": ref_tokens}


if __name__ == "__main__":
    sys.exit(main())
