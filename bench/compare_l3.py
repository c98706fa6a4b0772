#!/usr/bin/env python3
"""L3 part of a bench/compare run: Strata's node level beside the IPC floor.

    python3 bench/compare_l3.py [--title LINE] [--svg PATH] OUTDIR

OUTDIR is bench/compare's --out: raw-l3/strata.r<N>.txt (stdout of
bench/l3_dispatch), raw-l3/floor.r<N>.txt (stdout of bench/peers/ipc_floor)
and status-l3.tsv (program, round, state, detail). For each figure the table
gives the median over rounds of the per-round figure, the minimum over rounds
of the per-round minimum where the program prints one, and the range of the
per-round figures. Below it, Strata's one-task run() against each way of
crossing processes that ipc_floor measures: the floor is one bare round trip,
Strata's figure is a whole run() with a task in it. The chart (OUTDIR/
compare-l3.svg unless --svg) shows the round trips on a log scale. Standard
library only.
"""

import math
import os
import re
import statistics
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from compare_report import esc, parse_args, save_svg  # noqa: E402  (after the path)

RAW_RE = re.compile(r"^(?P<prog>strata|floor)\.r(?P<round>\d+)\.txt$")

# (key, label, unit): the figures read from l3_dispatch, in table order
STRATA_ROWS = [
    ("rt_chip", "run() with one chip task (back to back)", "us"),
    ("rt_core", "run() with one chip task running one in-core task", "us"),
    ("rt_sub", "run() with one SUB task (back to back)", "us"),
    ("rt_empty", "run() with no task", "us"),
    ("busy_chip0", "busy round trip: 256 tasks on one chip, per task", "us"),
    ("tp_256", "256 tasks over 2 chips, per task", "us"),
    ("tp_20000", "20,000 tasks over 2 chips, per task", "us"),
    ("idle_chip", "run() with one chip task after 1 s idle", "us"),
    ("idle_sub", "run() with one SUB task after 1 s idle", "us"),
    ("idle_cpu", "idle worker (parent + 2 children), CPU", "% core"),
]
FLOOR_METHODS = ["pipe", "eventfd", "shm-futex", "shm-spin"]


def num(s):
    try:
        return float(s)
    except ValueError:
        return None


def parse_strata(path):
    """{key: (value, minimum or None)} from one l3_dispatch output."""
    out = {}
    section = None
    idle_samples = {"one chip task": [], "one SUB task": []}
    idle_cpu = {}  # label -> summed ns(%) of its processes
    idle_label = None
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            if line.startswith("# 1."):
                section = "rt"
            elif line.startswith("# 2."):
                section = "tp"
            elif line.startswith("# 3."):
                section = "idle"
            elif line.startswith("# 4."):
                section = "cpu"
            if line.startswith("#") or not line.strip():
                continue
            tok = line.split()
            if section == "rt":
                # name... runs min median p90 ...
                for name, key in (("empty run (no task)", "rt_empty"), ("one chip task", "rt_chip"),
                                  ("chip task, 1 core task", "rt_core"), ("one SUB task", "rt_sub")):
                    if line.startswith(name):
                        rest = line[len(name):].split()
                        if len(rest) >= 3 and num(rest[2]) is not None:
                            out[key] = (num(rest[2]), num(rest[1]))
            elif section == "tp":
                # name tasks runs min median p90 us/task min tasks/s
                for name, key in (("chip 0 only", "busy_chip0"), ("chips 0,1 alternating", "tp")):
                    if line.startswith(name):
                        rest = line[len(name):].split()
                        if len(rest) >= 7 and num(rest[0]) is not None:
                            k = key if key != "tp" else "tp_%d" % int(num(rest[0]))
                            if key == "busy_chip0" and int(num(rest[0])) != 256:
                                continue
                            out[k] = (num(rest[5]), num(rest[6]))
            elif section == "idle":
                for name in idle_samples:
                    if line.startswith(name):
                        rest = line[len(name):].split()
                        if len(rest) >= 2 and num(rest[1]) is not None:
                            idle_samples[name].append(num(rest[1]))
            elif section == "cpu":
                if line.endswith(":\n") or line.rstrip().endswith(":"):
                    idle_label = line.strip().rstrip(":")
                    continue
                if tok[0] in ("process",) or idle_label is None:
                    continue
                # process pid threads stat-ticks (pct) ns-pct wakeups preempt ...
                m = re.match(r"\s*(\S.*?)\s+(\d+)\s+(\d+)\s+(\d+)\s+\(\s*[\d.]+\)\s+([\d.]+)", line)
                if m:
                    idle_cpu[idle_label] = idle_cpu.get(idle_label, 0.0) + float(m.group(5))
    for name, key in (("one chip task", "idle_chip"), ("one SUB task", "idle_sub")):
        if idle_samples[name]:
            out[key] = (statistics.median(idle_samples[name]), min(idle_samples[name]))
    two_s = [v for k, v in idle_cpu.items() if k.startswith("2 chips, idle 2 s")]
    if two_s:
        out["idle_cpu"] = (two_s[0], None)
    return out


def parse_floor(path):
    """{method: (median, min)} from one ipc_floor output (unpinned rows)."""
    out = {}
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            tok = line.split()
            if len(tok) >= 5 and tok[0] in FLOOR_METHODS and tok[1] == "unpinned":
                med, mn = num(tok[4]), num(tok[3])
                if med is not None:
                    out[tok[0]] = (med, mn)
    return out


def read_status(outdir):
    path = os.path.join(outdir, "status-l3.tsv")
    bad = set()
    if os.path.exists(path):
        with open(path, encoding="utf-8", errors="replace") as f:
            for i, line in enumerate(f):
                parts = line.rstrip("\n").split("\t")
                if i and len(parts) >= 3 and parts[2] != "ok":
                    bad.add((parts[0], parts[1]))
    return bad


def collect(outdir):
    bad = read_status(outdir)
    strata, floor = {}, {}
    rawdir = os.path.join(outdir, "raw-l3")
    if not os.path.isdir(rawdir):
        return strata, floor
    for name in sorted(os.listdir(rawdir)):
        m = RAW_RE.match(name)
        if not m or (m.group("prog"), m.group("round")) in bad:
            continue
        path = os.path.join(rawdir, name)
        parsed = parse_strata(path) if m.group("prog") == "strata" else parse_floor(path)
        into = strata if m.group("prog") == "strata" else floor
        for key, v in parsed.items():
            into.setdefault(key, []).append(v)
    return strata, floor


def summary(values):
    meds = [v[0] for v in values]
    mins = [v[1] for v in values if v[1] is not None]
    return {"median": statistics.median(meds), "min": min(mins) if mins else None,
            "lo": min(meds), "hi": max(meds), "n": len(meds)}


def fmt(x, unit="us"):
    if x is None:
        return "-"
    if unit == "% core":
        return f"{x:.3f}"
    return f"{x:.2f}" if x < 10 else f"{x:.1f}" if x < 1000 else f"{x:.0f}"


def table(rows):
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        print("  ".join(c.ljust(widths[i]) if i == 0 else c.rjust(widths[i]) for i, c in enumerate(r)))


def write_svg(path, bars, title):
    """bars: [(label, median, min, color)] drawn as horizontal bars, log scale."""
    vals = [v for _, med, mn, _ in bars for v in (med, mn) if v and v > 0]
    lo = 10 ** math.floor(math.log10(min(vals))) if vals else 0.1
    hi = 10 ** math.ceil(math.log10(max(vals))) if vals else 100
    if hi <= lo:
        hi = lo * 10
    left, top, bar_h, gap, plot_w = 330, 50, 18, 8, 420
    H = top + len(bars) * (bar_h + gap) + 50
    W = left + plot_w + 40

    def x(v):
        v = max(v, lo)
        return left + (math.log10(v) - math.log10(lo)) / (math.log10(hi) - math.log10(lo)) * plot_w

    o = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" viewBox="0 0 {W} {H}" '
         f'font-family="sans-serif" font-size="11">',
         f'<rect x="0" y="0" width="{W}" height="{H}" fill="white"/>',
         f'<text x="10" y="20" font-size="14" font-weight="bold">'
         f'{esc("parent <-> child round trips, microseconds (median; log scale; tick = min)")}</text>']
    if title:
        o.append(f'<text x="10" y="37" fill="#555">{esc(title.lstrip("# "))}</text>')
    bottom = top + len(bars) * (bar_h + gap)
    e = int(round(math.log10(lo)))
    while 10 ** e <= hi * 1.0001:
        for mlt in (1, 2, 5):
            v = mlt * 10 ** e
            if lo * 0.9999 <= v <= hi * 1.0001:
                xx = x(v)
                o.append(f'<line x1="{xx:.1f}" y1="{top - 4}" x2="{xx:.1f}" y2="{bottom}" '
                         f'stroke="{"#bbb" if mlt == 1 else "#e5e5e5"}"/>')
                o.append(f'<text x="{xx:.1f}" y="{bottom + 14}" text-anchor="middle">{v:g}</text>')
        e += 1
    for i, (label, med, mn, color) in enumerate(bars):
        y = top + i * (bar_h + gap)
        o.append(f'<text x="{left - 8}" y="{y + bar_h - 5}" text-anchor="end">{esc(label)}</text>')
        if med is None:
            continue
        o.append(f'<rect x="{left}" y="{y}" width="{x(med) - left:.1f}" height="{bar_h}" fill="{color}">'
                 f'<title>{esc("%s: median %.2f us" % (label, med))}</title></rect>')
        o.append(f'<text x="{x(med) + 4:.1f}" y="{y + bar_h - 5}">{fmt(med)}</text>')
        if mn:
            o.append(f'<line x1="{x(mn):.1f}" y1="{y}" x2="{x(mn):.1f}" y2="{y + bar_h}" stroke="#000" '
                     f'stroke-width="2"/>')
    save_svg(path, o)


def main():
    args = parse_args(__doc__)
    strata, floor = collect(args.outdir)
    if args.title:
        print(args.title)
    if not strata and not floor:
        print("compare_l3: no results parsed from " + os.path.join(args.outdir, "raw-l3"))
        return 1
    rows = [["Strata, node level (bench/l3_dispatch)", "rounds", "median", "min", "round medians", "unit"]]
    for key, label, unit in STRATA_ROWS:
        if key not in strata:
            rows.append([label, "0", "-", "-", "-", unit])
            continue
        s = summary(strata[key])
        rows.append([label, str(s["n"]), fmt(s["median"], unit), fmt(s["min"], unit),
                     f"{fmt(s['lo'], unit)}..{fmt(s['hi'], unit)}", unit])
    table(rows)
    print()
    rows = [["IPC floor (bench/peers/ipc_floor), one round trip", "rounds", "median", "min", "round medians",
             "Strata run()/floor"]]
    chip = summary(strata["rt_chip"])["median"] if "rt_chip" in strata else None
    for meth in FLOOR_METHODS:
        if meth not in floor:
            rows.append([meth, "0", "-", "-", "-", "-"])
            continue
        s = summary(floor[meth])
        ratio = f"{chip / s['median']:.2f}x" if chip and s["median"] else "-"
        rows.append([meth, str(s["n"]), fmt(s["median"]), fmt(s["min"]), f"{fmt(s['lo'])}..{fmt(s['hi'])}", ratio])
    table(rows)
    bars = []
    for key, label, color in (("rt_chip", "Strata: run() with one chip task", "#d62728"),
                              ("rt_sub", "Strata: run() with one SUB task", "#ff9896"),
                              ("busy_chip0", "Strata: busy round trip (256 on one chip)", "#e377c2")):
        if key in strata:
            s = summary(strata[key])
            bars.append((label, s["median"], s["min"], color))
    for meth in FLOOR_METHODS:
        if meth in floor:
            s = summary(floor[meth])
            bars.append(("floor: " + meth, s["median"], s["min"], "#7f7f7f"))
    svg = args.svg or os.path.join(args.outdir, "compare-l3.svg")
    write_svg(svg, bars, args.title)
    print(f"chart: {svg}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
