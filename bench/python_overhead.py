#!/usr/bin/python3
"""What the Python package costs over the C API, side by side in one run.

A level-3 worker of 1 chip child and 1 SUB child, driven from Python (this
process, through the `strata` package) and from C (python_overhead_c, started
once per round; the same workloads, the same chip callable object). Measures,
each in ns per unit (the same names as python_overhead_c's RESULT lines):

  clock        two clock reads back to back (perf_counter_ns; clock_gettime in C)
  run_empty    run() of an orchestration function that submits nothing, per run
  run_chip     run() with one submit_next_level of an empty chip callable (its
               orchestration submits nothing), no arguments, chip 0, per run
  submit3      inside one run, N back-to-back submit_next_level calls with a
               prebuilt TaskArgs of three tensors (1024 float32 numpy arrays in
               the shared heap, all INPUT: independent tasks); the submit loop's
               time / N, per submit. This isolates the submit call: the task
               window (4096) holds every task, so no submit waits for the
               child, and C times the same loop of the same C submits, so
               Python - C is what the Python call adds (argument parsing, the
               TaskArgs view, the handle and worker checks, the method call and
               the loop's iteration)
  submit3_run  the whole run of those N submits, per task
  run_sub      run() with one submit_sub of a SUB function that does nothing
               (a Python function; C: a C function returning 0), per run
  sub_batch    one run of M such SUB tasks (one SUB child: one after another),
               per task: the round trip per task with the parent busy submitting
  args3        a TaskArgs of three tensors: TaskArgs() and three add_tensor of
               numpy arrays in the shared heap (C: a strata_task_args of three
               strata_tensor_make), per construction, batches of 1000
  args3_view   the same from three prebuilt Tensor views (HostBuffer.tensor)

Both sides pin themselves to one CPU and every thread of their children to
another (--no-pin leaves placement to the scheduler): unpinned, the scheduler
sometimes puts the parent and a child on one CPU, where a round trip takes two
context switches (~5 us on a 2-CPU machine instead of ~1 us), and which
placement a process happens to get would decide the comparison.

Each round runs the C program and the Python measurements (alternating which
goes first) and takes each one's median over its samples; the table gives the
median over rounds of those medians, with their range, and Python - C.
docs/performance.md ("Python") records the figures and the command.

Usage (from the repository root, after building):
  PYTHONPATH=build/python /usr/bin/python3 bench/python_overhead.py [--rounds 7]
"""

import argparse
import gc
import os
import platform
import statistics
import subprocess
import sys
import time

import numpy as np

import strata
from strata import CallConfig, ChipCallable, DataType, TaskArgs, TensorArgType, Worker  # noqa: F401

HERE = os.path.dirname(os.path.abspath(__file__))
NTENSORS = 3
TENSOR_ELEMS = 1024
pc = time.perf_counter_ns

# What the targets of issue 11 bound: Python - C, ns per unit.
TARGETS = {"run_chip": 2000.0, "submit3": 500.0}

ROWS = [  # name, what, unit
    ("clock", "two clock reads back to back", "read pair"),
    ("run_empty", "run() with no task", "run"),
    ("run_chip", "run() with one submit_next_level (empty chip callable)", "run"),
    ("submit3", "submit_next_level, 3 tensors, prebuilt TaskArgs (submit loop)", "submit"),
    ("submit3_run", "  the whole run of those submits", "task"),
    ("run_sub", "run() with one SUB task (Python fn vs C fn)", "run"),
    ("sub_batch", "SUB tasks, many in one run", "task"),
    ("args3", "TaskArgs of 3 tensors: numpy arrays (C: strata_tensor_make)", "construction"),
    ("args3_view", "TaskArgs of 3 tensors: prebuilt Tensor views", "construction"),
]


def sub_noop(args):
    """The SUB function: does nothing."""


def pin_process(pid, cpu):
    """Every thread of process pid onto CPU cpu."""
    for tid in os.listdir(f"/proc/{pid}/task"):
        os.sched_setaffinity(int(tid), {cpu})


def median(v):
    return statistics.median(v) if v else float("nan")


def p90(v):
    s = sorted(v)
    return s[min(len(s) - 1, max(0, int(0.9 * len(s) + 0.999999) - 1))] if s else float("nan")


# ---- the Python side ----

class PyBench:
    def __init__(self, kernels, opt):
        self.opt = opt
        self.w = Worker(level=3, platform="sim", device_ids=[0], num_sub_workers=1,
                        device_memory_bytes=64 << 20, shared_heap_bytes=16 << 20)
        self.chip = self.w.register(ChipCallable.from_symbol(kernels, "bench_empty_chip"))
        self.sub = self.w.register(sub_noop)
        self.w.init()
        self.arrays = [self.w.host_empty((TENSOR_ELEMS,), "float32") for _ in range(NTENSORS)]
        self.hbufs = [self.w.host_alloc(TENSOR_ELEMS * 4) for _ in range(NTENSORS)]
        self.views = [hb.tensor((TENSOR_ELEMS,), DataType.FLOAT32) for hb in self.hbufs]
        self.ta0 = TaskArgs()
        self.ta3 = TaskArgs()
        for a in self.arrays:
            self.ta3.add_tensor(a, TensorArgType.INPUT)
        self.loop_ns = 0

    def pin(self, parent_cpu, child_cpu):
        pin_process(os.getpid(), parent_cpu)
        for i in range(2):
            pin_process(self.w.child_pid(i), child_cpu)

    def completed(self):
        return self.w.stats()["tasks_completed"]

    def close(self):
        self.w.close()

    # orchestration functions, written as an application would write them
    def orch_fns(self):
        chip, sub, ta0, ta3, n_sub = self.chip, self.sub, self.ta0, self.ta3, self.opt.sub_tasks
        n_submits = self.opt.submits
        bench = self

        def orch_nothing(orch, args, cfg):
            pass

        def orch_one_chip(orch, args, cfg):
            orch.submit_next_level(chip, ta0, worker=0)

        def orch_submit3(orch, args, cfg):
            t0 = pc()
            for _ in range(n_submits):
                orch.submit_next_level(chip, ta3, worker=0)
            bench.loop_ns = pc() - t0

        def orch_one_sub(orch, args, cfg):
            orch.submit_sub(sub)

        def orch_sub_batch(orch, args, cfg):
            for _ in range(n_sub):
                orch.submit_sub(sub)

        return orch_nothing, orch_one_chip, orch_submit3, orch_one_sub, orch_sub_batch

    def time_runs(self, name, fn, warmup, runs, tasks_per_run, unit, loop=False, whole=None):
        run = self.w.run
        before = self.completed()
        for _ in range(warmup):
            run(fn)
        s = [0] * runs
        for r in range(runs):
            t0 = pc()
            run(fn)
            t1 = pc()
            s[r] = self.loop_ns if loop else t1 - t0
            if whole is not None:
                whole.append((t1 - t0) / unit)
        got = self.completed() - before
        if got != tasks_per_run * (warmup + runs):
            raise SystemExit(f"python_overhead: {name}: {got} tasks completed, expected "
                             f"{tasks_per_run * (warmup + runs)}")
        return [x / unit for x in s]

    def measure(self):
        o = self.opt
        res = {}
        s = [0] * o.runs
        for i in range(o.runs):
            t0 = pc()
            t1 = pc()
            s[i] = t1 - t0
        res["clock"] = s
        nothing, one_chip, submit3, one_sub, sub_batch = self.orch_fns()
        bw = max(1, o.warmup // 50)
        res["run_empty"] = self.time_runs("run_empty", nothing, o.warmup, o.runs, 0, 1)
        res["run_chip"] = self.time_runs("run_chip", one_chip, o.warmup, o.runs, 1, 1)
        whole = []
        res["submit3"] = self.time_runs("submit3", submit3, bw, o.batch_runs, o.submits, o.submits, True, whole)
        res["submit3_run"] = whole
        res["run_sub"] = self.time_runs("run_sub", one_sub, o.warmup, o.runs, 1, 1)
        res["sub_batch"] = self.time_runs("sub_batch", sub_batch, bw, o.batch_runs, o.sub_tasks, o.sub_tasks)
        res["args3"] = self.args_construction(self.arrays)
        res["args3_view"] = self.args_construction(self.views)
        return {k: (median(v), min(v), p90(v), len(v)) for k, v in res.items()}

    def args_construction(self, tensors):
        per_batch = 1000
        x, y, z = tensors
        INPUT = TensorArgType.INPUT
        s = []
        for _ in range(self.opt.args_batches):
            t0 = pc()
            for _ in range(per_batch):
                ta = TaskArgs()
                ta.add_tensor(x, INPUT)
                ta.add_tensor(y, INPUT)
                ta.add_tensor(z, INPUT)
            s.append((pc() - t0) / per_batch)
        if ta.tensor_count() != 3:
            raise SystemExit("python_overhead: a TaskArgs of three tensors has "
                             f"{ta.tensor_count()}")
        return s


# ---- the C side ----

def run_c(opt):
    cmd = [opt.c_bench, "--kernels", opt.kernels, "--runs", str(opt.runs), "--warmup", str(opt.warmup),
           "--submits", str(opt.submits), "--batch-runs", str(opt.batch_runs), "--sub-tasks", str(opt.sub_tasks),
           "--args-batches", str(opt.args_batches)]
    if opt.pin:
        cmd += ["--pin", f"{opt.pin[0]},{opt.pin[1]}"]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemExit(f"python_overhead: {' '.join(cmd)} failed ({r.returncode}):\n{r.stdout}{r.stderr}")
    res, machine = {}, ""
    for line in r.stdout.splitlines():
        f = line.split()
        if f and f[0] == "RESULT":
            res[f[1]] = (float(f[3]), float(f[4]), float(f[5]), int(f[2]))
        elif line.startswith("# strata"):
            machine = line
    missing = [name for name, _, _ in ROWS if name not in res and name != "args3_view"]
    if missing:
        raise SystemExit(f"python_overhead: the C side gave no figure for {', '.join(missing)}:\n{r.stdout}")
    return res, machine


# ---- report ----

def fmt_ns(x):
    if x != x:   # nan
        return "-"
    return f"{x / 1000:.3f} us" if abs(x) >= 10000 else f"{x:.0f} ns" if abs(x) >= 100 else f"{x:.1f} ns"


def span(v):
    return f"[{fmt_ns(min(v)).replace(' ', '')}-{fmt_ns(max(v)).replace(' ', '')}]" if len(v) > 1 else ""


def report(rounds_c, rounds_py, opt):
    print()
    print(f"# medians over {len(rounds_py)} round(s) of each round's median; [range of the round medians]")
    print(f"# per-run measures: {opt.runs} timed runs after {opt.warmup} warm-up runs; submit3: {opt.submits} "
          f"submits per run, {opt.batch_runs} runs; sub_batch: {opt.sub_tasks} SUB tasks per run, "
          f"{opt.batch_runs} runs; args: {opt.args_batches} batches of 1000")
    head = f"{'measure':<62} {'per':<12} {'C':>17} {'Python':>17} {'Py - C':>10} {'target':>10}"
    print(head)
    print("-" * len(head))
    verdicts = []
    summary = {}
    for name, what, unit in ROWS:
        c = [r[name][0] for r in rounds_c if name in r]
        if name == "args3_view":
            c = [r["args3"][0] for r in rounds_c]
        p = [r[name][0] for r in rounds_py]
        mc, mp = median(c), median(p)
        d = mp - mc
        target = TARGETS.get(name)
        tcol = ""
        if target is not None:
            ok = d <= target
            tcol = f"<= {fmt_ns(target)}"
            verdicts.append((name, d, target, ok))
        summary[name] = (mc, mp, d)
        print(f"{what:<62} {unit:<12} {fmt_ns(mc):>17} {fmt_ns(mp):>17} {fmt_ns(d):>10} {tcol:>10}")
        if len(p) > 1:
            print(f"{'':<62} {'':<12} {span(c):>17} {span(p):>17}")
    print()
    # derived: where a run's extra cost goes
    e, c1 = summary["run_empty"][2], summary["run_chip"][2]
    print(f"# run() itself (no task) adds {fmt_ns(e)}; one submit_next_level inside it adds "
          f"{fmt_ns(c1 - e)} more (run_chip - run_empty, Python - C)")
    print(f"# clock floor: Python {fmt_ns(summary['clock'][1])}, C {fmt_ns(summary['clock'][0])} per pair "
          "(inside every per-run sample; amortised in the loop measures)")
    for name, d, target, ok in verdicts:
        print(f"# target {name}: Python - C = {fmt_ns(d)} against <= {fmt_ns(target)}: "
              f"{'met' if ok else 'MISSED'}" + (" (--quick: small counts, not a measurement)" if opt.quick else ""))
    return verdicts


def machine_line():
    model = ""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return (f"# Python {platform.python_version()} ({sys.executable}), numpy {np.__version__}, "
            f"strata {strata.__version__}, {os.cpu_count()} CPUs, {model}")


def find_build_file(build, rel):
    for cand in ([build] if build else []) + [os.path.join(HERE, "..", "build")]:
        p = os.path.join(cand, rel)
        if os.path.exists(p):
            return os.path.abspath(p)
    return None


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=7, help="rounds of C and Python (default 7)")
    ap.add_argument("--runs", type=int, default=20000, help="timed runs of each one-task measure (default 20000)")
    ap.add_argument("--warmup", type=int, default=2000, help="untimed runs before them (default 2000)")
    ap.add_argument("--submits", type=int, default=256, help="submit3: submits per run (default 256, <= 4096)")
    ap.add_argument("--batch-runs", type=int, default=1000, help="timed runs of submit3 and sub_batch (default 1000)")
    ap.add_argument("--sub-tasks", type=int, default=64, help="sub_batch: SUB tasks per run (default 64)")
    ap.add_argument("--args-batches", type=int, default=1000, help="TaskArgs: batches of 1000 (default 1000)")
    ap.add_argument("--build", help="the build directory (default: build/ next to bench/)")
    ap.add_argument("--c-bench", help="python_overhead_c (default: <build>/bench/python_overhead_c)")
    ap.add_argument("--kernels", help="the chip callable object (default: "
                                      "<build>/bench/libpython_overhead_kernels.so)")
    ap.add_argument("--no-pin", action="store_true", help="leave the processes where the scheduler puts them")
    ap.add_argument("--quick", action="store_true", help="one round of small counts, for the smoke test")
    opt = ap.parse_args()
    if opt.quick:
        opt.rounds, opt.runs, opt.warmup, opt.submits, opt.batch_runs = 1, 200, 20, 64, 10
        opt.sub_tasks, opt.args_batches = 16, 10
    if min(opt.rounds, opt.runs, opt.warmup, opt.submits, opt.batch_runs, opt.sub_tasks, opt.args_batches) < 1 \
            or opt.submits > 4096:
        ap.error("every count must be at least 1, and --submits at most 4096")
    opt.c_bench = opt.c_bench or find_build_file(opt.build, "bench/python_overhead_c")
    opt.kernels = opt.kernels or find_build_file(opt.build, "bench/libpython_overhead_kernels.so")
    if not opt.c_bench or not opt.kernels:
        ap.error("cannot find python_overhead_c or libpython_overhead_kernels.so: build first, or give "
                 "--build, --c-bench and --kernels")

    cpus = sorted(os.sched_getaffinity(0))
    opt.pin = None if opt.no_pin or len(cpus) < 2 else (cpus[0], cpus[1])
    print(machine_line())
    print("# pinned: the parents on CPU %d, every thread of the children on CPU %d" % opt.pin if opt.pin
          else "# not pinned")
    py = PyBench(opt.kernels, opt)
    if opt.pin:
        py.pin(*opt.pin)
    rounds_c, rounds_py = [], []
    c_machine = ""
    try:
        for r in range(opt.rounds):
            t0 = time.monotonic()
            order = ("c", "py") if r % 2 == 0 else ("py", "c")
            for side in order:
                if side == "c":
                    res, c_machine = run_c(opt)
                    rounds_c.append(res)
                else:
                    rounds_py.append(py.measure())
            rc, rp = rounds_c[-1], rounds_py[-1]
            print(f"round {r + 1}/{opt.rounds} ({time.monotonic() - t0:.1f} s): " + ", ".join(
                f"{k} {fmt_ns(rc[k][0])} / {fmt_ns(rp[k][0])}" for k in ("run_chip", "submit3", "run_sub")),
                "(C / Python)", flush=True)
    finally:
        py.close()
    if c_machine:
        print(c_machine.replace("# ", "# C side: ", 1))
    report(rounds_c, rounds_py, opt)
    # The targets are judged on full runs only: --quick is a smoke test of the
    # machinery (every run checked) on a noisy machine, not a measurement.
    return 0


if __name__ == "__main__":
    gc.collect()
    sys.exit(main())
