#!/usr/bin/python3
"""Process-to-process spread of a DAG benchmark: the same binary run many
times in a row, one figure per process and workload.

A runtime can have a slow mode that one process in several falls into (a
thread placed badly, a spin that starves the thread it waits for, a wake-up
race), which a median over the runs of one process never shows. This script
runs each backend's program N times, alternating the backends (process r of
backend b starts after process r of backend b-1, so that a slow minute of the
machine hits every backend alike), takes each process's median ns/task per
workload, and prints the distribution: min, quartiles, median, max, max over
median, and how many processes landed beyond 1.5x the median (issue 15's bound).

    bench/processes.py [--runs N] [--out DIR] [--bound X] \\
        NAME=COMMAND [NAME=COMMAND ...]

    e.g. bench/processes.py --runs 20 \\
        "strata=build/bench/l2_overhead --only independent,chain,fanout,cholesky16" \\
        "libgomp=/tmp/strata-peers/omp_dag_gomp --only independent,chain,fanout,cholesky16"

Every program must print the table of bench/l2_overhead (a "workload" header
line naming a "median" column, then one row per workload). Raw outputs are kept
in --out (default /tmp/strata-processes). Figures: docs/performance.md, "No
slow processes".
"""
import argparse
import os
import shlex
import statistics
import subprocess
import sys


def parse_table(text):
    """{workload: median ns/task} from one program's stdout."""
    rows, cols = {}, None
    for line in text.splitlines():
        if line.startswith("#") or not line.strip():
            continue
        tok = line.split()
        if tok[0] == "workload":
            cols = {name: i for i, name in enumerate(tok)}
            continue
        if cols is None or line[0].isspace() or "median" not in cols:
            continue
        try:
            rows[tok[0]] = float(tok[cols["median"]])
        except (ValueError, IndexError):
            continue
    return rows


def quantile(sorted_values, q):
    """Linear interpolation between the closest ranks."""
    if not sorted_values:
        return float("nan")
    pos = q * (len(sorted_values) - 1)
    lo = int(pos)
    hi = min(lo + 1, len(sorted_values) - 1)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (pos - lo)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=20, help="processes per backend (default 20)")
    ap.add_argument("--out", default="/tmp/strata-processes", help="raw outputs (default /tmp/strata-processes)")
    ap.add_argument("--bound", type=float, default=1.5, help="a process beyond this x the median is slow (1.5)")
    ap.add_argument("--timeout", type=float, default=600, help="seconds per process (default 600)")
    ap.add_argument("backends", nargs="+", metavar="NAME=COMMAND")
    args = ap.parse_args()
    if args.runs < 1:
        ap.error("--runs must be at least 1")
    backends = []
    for spec in args.backends:
        name, sep, cmd = spec.partition("=")
        if not sep or not name or not cmd.strip():
            ap.error("expected NAME=COMMAND, got %r" % spec)
        backends.append((name, shlex.split(cmd)))
    os.makedirs(args.out, exist_ok=True)

    # figures[backend][workload] = [median ns/task of each process]
    figures = {name: {} for name, _ in backends}
    failures = 0
    for r in range(args.runs):
        for name, cmd in backends:
            try:
                p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                   timeout=args.timeout)
                out, rc = p.stdout, p.returncode
            except subprocess.TimeoutExpired as e:
                partial = e.stdout or ""
                out = partial.decode(errors="replace") if isinstance(partial, bytes) else partial
                rc = "timed out"
            except OSError as e:
                out, rc = str(e), "not run"
            with open(os.path.join(args.out, "%s.p%02d.txt" % (name, r)), "w", encoding="utf-8") as f:
                f.write(out)
            if rc != 0:
                failures += 1
                print("processes: %s process %d failed (%s); output in %s" % (name, r, rc, args.out),
                      file=sys.stderr)
                continue
            for wl, med in parse_table(out).items():
                figures[name].setdefault(wl, []).append(med)
        print("# process round %d of %d done" % (r + 1, args.runs), file=sys.stderr, flush=True)

    print("# %d processes per backend, run alternately; one figure per process: its median ns/task; "
          "slow = beyond %.1fx the median of all processes" % (args.runs, args.bound))
    hdr = "%-12s %-22s %4s %9s %9s %9s %9s %9s %8s %5s" % (
        "backend", "workload", "n", "min", "p25", "median", "p75", "max", "max/med", "slow")
    print(hdr)
    for name, _ in backends:
        for wl, values in figures[name].items():
            v = sorted(values)
            med = statistics.median(v)
            slow = sum(1 for x in v if x > args.bound * med)
            print("%-12s %-22s %4d %9.1f %9.1f %9.1f %9.1f %9.1f %8.2f %5d" % (
                name, wl, len(v), v[0], quantile(v, 0.25), med, quantile(v, 0.75), v[-1], v[-1] / med, slow))
    print("\n# every process, in the order run (ns/task)")
    for name, _ in backends:
        for wl, values in figures[name].items():
            print("%-12s %-22s %s" % (name, wl, " ".join("%.0f" % x for x in values)))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
