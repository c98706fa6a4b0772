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

A shared machine has slow phases of its own (a VM's host busy elsewhere) that
slow every backend in the same rounds. So the script also gives each round a
machine factor, the median over the other backends' processes of that round of
figure / that backend's median, and counts a process as slow after its round's
factor only when figure / factor is still beyond the bound: a slow mode of the
runtime itself, not of the machine. Every program of bench/ also prints what
a cache line costs between two of its threads (bench_cache_line_ns), the
direct measure of such a phase: the table is given again over the processes
that found it normal (at most twice the fastest round trip seen).

    bench/processes.py [--runs N] [--out DIR] [--bound X] \\
        NAME=COMMAND [NAME=COMMAND ...]
    bench/processes.py --from DIR [--bound X] NAME [NAME ...]   # again, from the outputs kept in DIR

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


def machine_factors(figures, names, runs):
    """factor[b][r]: the median, over every other backend's processes of round
    r, of figure / that backend's median for the workload; 1.0 without any."""
    medians = {b: {wl: statistics.median(v.values()) for wl, v in figures[b].items() if v} for b in names}
    factor = {}
    for b in names:
        factor[b] = {}
        for r in range(runs):
            ratios = [figures[o][wl][r] / medians[o][wl] for o in names if o != b
                      for wl in figures[o] if r in figures[o][wl]]
            factor[b][r] = statistics.median(ratios) if ratios else 1.0
    return factor


def run_all(backends, runs, out_dir, timeout):
    """Run every backend runs times, alternately; keep each output in out_dir.
    Returns the number of failed processes."""
    failures = 0
    for r in range(runs):
        for name, cmd in backends:
            try:
                p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                   timeout=timeout)
                out, rc = p.stdout, p.returncode
            except subprocess.TimeoutExpired as e:
                partial = e.stdout or ""
                out = partial.decode(errors="replace") if isinstance(partial, bytes) else partial
                rc = "timed out"
            except OSError as e:
                out, rc = str(e), "not run"
            with open(os.path.join(out_dir, "%s.p%02d.txt" % (name, r)), "w", encoding="utf-8") as f:
                f.write(out)
            if rc != 0:
                failures += 1
                os.rename(os.path.join(out_dir, "%s.p%02d.txt" % (name, r)),
                          os.path.join(out_dir, "%s.p%02d.failed" % (name, r)))
                print("processes: %s process %d failed (%s); output in %s" % (name, r, rc, out_dir),
                      file=sys.stderr)
        print("# process round %d of %d done" % (r + 1, runs), file=sys.stderr, flush=True)
    return failures


def cache_line_ns(text):
    """The "# a cache line between two threads: N ns" figure of bench/common.c,
    or None."""
    for line in text.splitlines():
        if line.startswith("# a cache line between two threads:"):
            try:
                return float(line.split(":")[1].split()[0])
            except (ValueError, IndexError):
                return None
    return None


def read_all(names, runs, out_dir):
    """figures[backend][workload][round] = median ns/task, and
    lines[backend][round] = the process's cache-line round trip, from out_dir."""
    figures = {name: {} for name in names}
    lines = {name: {} for name in names}
    for name in names:
        for r in range(runs):
            path = os.path.join(out_dir, "%s.p%02d.txt" % (name, r))
            if not os.path.exists(path):
                continue
            with open(path, encoding="utf-8") as f:
                text = f.read()
            for wl, med in parse_table(text).items():
                figures[name].setdefault(wl, {})[r] = med
            ns = cache_line_ns(text)
            if ns is not None:
                lines[name][r] = ns
    return figures, lines


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=20, help="processes per backend (default 20)")
    ap.add_argument("--out", default="/tmp/strata-processes", help="raw outputs (default /tmp/strata-processes)")
    ap.add_argument("--from", dest="from_dir", metavar="DIR",
                    help="run nothing: read the outputs a run kept in DIR (give the backends' NAMEs)")
    ap.add_argument("--bound", type=float, default=1.5, help="a process beyond this x the median is slow (1.5)")
    ap.add_argument("--timeout", type=float, default=600, help="seconds per process (default 600)")
    ap.add_argument("backends", nargs="+", metavar="NAME=COMMAND")
    args = ap.parse_args()
    failures = 0
    if args.from_dir:
        names = [spec.partition("=")[0] for spec in args.backends]
        out_dir = args.from_dir
        runs = 0
        for fn in os.listdir(out_dir):
            stem, _, rest = fn.rpartition(".p")
            if stem in names and rest[:2].isdigit():
                runs = max(runs, int(rest[:2]) + 1)
        if runs == 0:
            ap.error("no outputs of %s in %s" % (", ".join(names), out_dir))
    else:
        if args.runs < 1:
            ap.error("--runs must be at least 1")
        backends = []
        for spec in args.backends:
            name, sep, cmd = spec.partition("=")
            if not sep or not name or not cmd.strip():
                ap.error("expected NAME=COMMAND, got %r" % spec)
            backends.append((name, shlex.split(cmd)))
        names = [name for name, _ in backends]
        out_dir, runs = args.out, args.runs
        os.makedirs(out_dir, exist_ok=True)
        failures = run_all(backends, runs, out_dir, args.timeout)

    figures, lines = read_all(names, runs, out_dir)
    factor = machine_factors(figures, names, runs)
    # A normal machine: a process whose threads passed a cache line in at most
    # twice the fastest round trip any process measured.
    probes = [ns for by_round in lines.values() for ns in by_round.values() if ns > 0]
    normal_ns = 2 * min(probes) if probes else None
    print("# %d processes per backend, run alternately; one figure per process: its median ns/task; "
          "slow = beyond %.1fx the median of all processes; after machine = the same after dividing by "
          "the round's machine factor (from the other backends)" % (runs, args.bound))
    hdr = "%-12s %-22s %4s %9s %9s %9s %9s %9s %8s %5s %14s" % (
        "backend", "workload", "n", "min", "p25", "median", "p75", "max", "max/med", "slow", "after machine")
    print(hdr)
    for name in names:
        for wl, by_round in figures[name].items():
            v = sorted(by_round.values())
            med = statistics.median(v)
            slow = sum(1 for x in v if x > args.bound * med)
            slow_own = sum(1 for r, x in by_round.items() if x / factor[name][r] > args.bound * med)
            print("%-12s %-22s %4d %9.1f %9.1f %9.1f %9.1f %9.1f %8.2f %5d %14d" % (
                name, wl, len(v), v[0], quantile(v, 0.25), med, quantile(v, 0.75), v[-1], v[-1] / med, slow,
                slow_own))
    if normal_ns is not None:
        print("\n# the same over the processes that found the machine normal: a cache line round trip of at "
              "most %.0f ns (twice the fastest seen)" % normal_ns)
        print(hdr.rsplit(" ", 2)[0])
        for name in names:
            for wl, by_round in figures[name].items():
                v = sorted(x for r, x in by_round.items() if 0 < lines[name].get(r, -1) <= normal_ns)
                if not v:
                    print("%-12s %-22s %4d" % (name, wl, 0))
                    continue
                med = statistics.median(v)
                slow = sum(1 for x in v if x > args.bound * med)
                print("%-12s %-22s %4d %9.1f %9.1f %9.1f %9.1f %9.1f %8.2f %5d" % (
                    name, wl, len(v), v[0], quantile(v, 0.25), med, quantile(v, 0.75), v[-1], v[-1] / med, slow))
    print("\n# every process, in the order run (ns/task; - where it failed)")
    for name in names:
        for wl, by_round in figures[name].items():
            print("%-12s %-22s %s" % (name, wl, " ".join("%.0f" % by_round[r] if r in by_round else "-"
                                                           for r in range(runs))))
    if any(lines.values()):
        print("\n# each process's cache line between two of its threads (ns a round trip; where the machine "
              "placed them)")
        for name in names:
            print("%-12s %-22s %s" % (name, "", " ".join("%.0f" % lines[name][r] if r in lines[name] else "-"
                                                          for r in range(runs))))
    print("\n# each round's machine factor, as seen by each backend (from the others)")
    for name in names:
        print("%-12s %-22s %s" % (name, "", " ".join("%.2f" % factor[name][r] for r in range(runs))))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
