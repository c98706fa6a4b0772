#!/usr/bin/python3
"""The serving demo's decode step, split into Strata's share and the kernels' share.

Runs examples/serving/serve.py (same prompt, seed and tokens every time) in three
configurations, each a fresh process, rotating which goes first in each round:

  real        the demo as it is: chip 0's layers, chip 1's layers and the logits,
              then the SUB task (a Python function in the SUB child) that picks
              the token
  empty       the same with SERVING_EMPTY_KERNELS=1: every kernel returns at once
              (kernels.c reads the variable when it is loaded; the chip children
              inherit it). The chips' orchestration still submits every in-core
              task with the same tags, the SUB task still runs argmax on the
              logits; only the kernels' arithmetic is gone. The logits are
              garbage, so the check is off, but every token stays a byte (an
              argmax over 256 logits) and the positions are those of the real
              run (one more per step), so the stream runs the same steps
  empty_host  empty kernels and no SUB task: the token is picked by numpy argmax
              in the parent after the run (serve.py --host-sample)

A step is the wall time of serve.py's w.run() plus the host's embedding lookup
(serve.py's own figure). Per configuration and round, serve.py gives the p50 and
p99 of the decode steps; the report gives the median over rounds, with the range.
Then:

  real - empty          the kernels' share of the step (their time on the
                        critical path: chip 0's layers, then chip 1's)
  empty                 Strata's share: Python orch_fn and its submits, the two
                        chip round trips (each chip's orchestration and its ~50
                        in-core tasks on the sim cores), the SUB round trip and
                        the SUB's sampling in Python
  empty - empty_host    what the SUB task adds (its round trip and argmax in the
                        SUB child, less the argmax now done in the parent)

Every run is checked: exit status 0, every decode step done, no task failed, and
the task counts (3 per step with a SUB task, 2 without) equal to the expected.
The real runs' tokens must agree between rounds, and with --check (on in --quick)
they are compared with the numpy reference.

Not pinned: serve.py's 2 chip children (each with its AIC and AIV lanes) and SUB
child run wherever the scheduler puts them, as an application's would.

Usage (from the repository root, after building):
  PYTHONPATH=build/python /usr/bin/python3 bench/serving_split.py [--rounds 9] [--tokens 249]
docs/performance.md ("The serving demo's decode step") records the figures.
"""

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SERVE = os.path.join(HERE, "..", "examples", "serving", "serve.py")

CONFIGS = [  # name, environment, serve.py options, tasks per step
    ("real", {"SERVING_EMPTY_KERNELS": "0"}, [], 3),
    ("empty", {"SERVING_EMPTY_KERNELS": "1"}, [], 3),
    ("empty_host", {"SERVING_EMPTY_KERNELS": "1"}, ["--host-sample"], 2),
]


def run_serve(opt, name, env_extra, extra, tasks_per_step, check):
    cmd = [sys.executable, SERVE, "--tokens", str(opt.tokens), "--seed", str(opt.seed), "--prompt", opt.prompt,
           "--cores", str(opt.cores), "--json"] + extra + (["--check"] if check else [])
    if opt.kernels:
        cmd += ["--kernels", opt.kernels]
    env = dict(os.environ, **env_extra)
    r = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if r.returncode != 0:
        raise SystemExit(f"serving_split: {name}: {' '.join(cmd)} exited {r.returncode}:\n{r.stdout}{r.stderr}")
    res = json.loads(r.stdout.strip().splitlines()[-1])
    st = res["stats"]
    want = tasks_per_step * opt.tokens
    if (res["decode_steps"] != opt.tokens - 1 or len(res["tokens"]) != opt.tokens or st["tasks_failed"]
            or st["tasks_canceled"] or st["child_restarts"] or st["tasks_completed"] != want):
        raise SystemExit(f"serving_split: {name}: {res['decode_steps']} decode steps, {len(res['tokens'])} tokens, "
                         f"stats {st}; expected {opt.tokens - 1} steps and {want} tasks completed")
    if any(not 0 <= t < 256 for t in res["tokens"]):
        raise SystemExit(f"serving_split: {name}: a token out of range: {res['tokens']}")
    if check and not (res["check"]["logits_ok"] and res["check"]["tokens_ok"]):
        raise SystemExit(f"serving_split: {name}: the check failed: {res['check']}")
    return res


def fmt(ms):
    return f"{ms * 1000:.0f} us"


def span(v):
    return f"[{min(v) * 1000:.0f}-{max(v) * 1000:.0f}]" if len(v) > 1 else ""


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=9, help="rounds; each runs every configuration once (default 9)")
    ap.add_argument("--tokens", type=int, default=249, help="serve.py --tokens (default 249, the most the model's "
                                                            "256 positions take after the default prompt)")
    ap.add_argument("--seed", type=int, default=0, help="serve.py --seed (default 0)")
    ap.add_argument("--prompt", default="Strata! ", help="serve.py --prompt (default 'Strata! ')")
    ap.add_argument("--cores", type=int, default=2, help="serve.py --cores (default 2)")
    ap.add_argument("--kernels", help="serve.py --kernels (default: the one serve.py finds)")
    ap.add_argument("--check", action="store_true", help="check the real runs against the numpy reference")
    ap.add_argument("--quick", action="store_true", help="one round of 24 tokens, checked: the smoke test")
    opt = ap.parse_args()
    if opt.quick:
        opt.rounds, opt.tokens, opt.check = 1, 24, True
    if opt.rounds < 1 or opt.tokens < 2:
        ap.error("--rounds must be at least 1 and --tokens at least 2")
    limit = 256 - len(opt.prompt.encode("utf-8")) + 1
    if opt.tokens > limit:
        ap.error(f"--tokens {opt.tokens} passes the model's 256 positions with this prompt (at most {limit})")

    model = ""
    try:
        with open("/proc/cpuinfo") as f:
            model = next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), "")
    except OSError:
        pass
    print(f"# Python {platform.python_version()} ({sys.executable}), {os.cpu_count()} CPUs, {model}; not pinned")
    print(f"# serve.py --tokens {opt.tokens} --seed {opt.seed} --prompt {opt.prompt!r} --cores {opt.cores}: "
          f"{opt.tokens - 1} decode steps per run, {opt.rounds} round(s)")
    got = {name: [] for name, _, _, _ in CONFIGS}
    real_tokens = None
    for r in range(opt.rounds):
        t0 = time.monotonic()
        k = r % len(CONFIGS)
        for name, env, extra, tps in CONFIGS[k:] + CONFIGS[:k]:
            res = run_serve(opt, name, env, extra, tps, opt.check and name == "real")
            if name == "real":
                if real_tokens is not None and res["tokens"] != real_tokens:
                    raise SystemExit("serving_split: the real runs gave different tokens")
                real_tokens = res["tokens"]
            got[name].append(res)
        print(f"round {r + 1}/{opt.rounds} ({time.monotonic() - t0:.1f} s): " + ", ".join(
            f"{name} p50 {fmt(got[name][-1]['p50_ms'])}" for name, _, _, _ in CONFIGS), flush=True)

    for v in got.values():
        for x in v:
            x["mean_ms"] = 1e3 / x["tokens_per_s"]      # serve.py: decode steps / their summed latencies
    med = {name: {q: statistics.median(x[q] for x in v) for q in ("p50_ms", "p99_ms", "mean_ms")}
           for name, v in got.items()}
    print()
    print(f"# decode step latency: median over {opt.rounds} round(s) of each run's p50, p99 and mean; "
          "[range over rounds]")
    head = f"{'configuration':<54} {'p50':>8} {'':>12} {'p99':>8} {'':>12} {'mean':>8} {'':>12}"
    print(head)
    print("-" * len(head))
    what = {"real": "real kernels, SUB sampling", "empty": "empty kernels, SUB sampling (Strata's share)",
            "empty_host": "empty kernels, sampling on the host (no SUB task)"}
    for name, _, _, _ in CONFIGS:
        v = got[name]
        print(f"{what[name]:<54} {fmt(med[name]['p50_ms']):>8} {span([x['p50_ms'] for x in v]):>12} "
              f"{fmt(med[name]['p99_ms']):>8} {span([x['p99_ms'] for x in v]):>12} "
              f"{fmt(med[name]['mean_ms']):>8} {span([x['mean_ms'] for x in v]):>12}")
    print()
    for q in ("p50_ms", "p99_ms", "mean_ms"):
        real, empty, host = med["real"][q], med["empty"][q], med["empty_host"][q]
        print(f"# {q[:-3]}: step {fmt(real)} = kernels {fmt(real - empty)} ({100 * (real - empty) / real:.0f} %) "
              f"+ Strata {fmt(empty)} ({100 * empty / real:.0f} %); of Strata's, the SUB task "
              f"{fmt(empty - host)}, the rest (run(), orch_fn, the two chip tasks) {fmt(host)}")
    if opt.quick:
        print("# --quick: one short round, every run checked; not a measurement")
    return 0


if __name__ == "__main__":
    sys.exit(main())
