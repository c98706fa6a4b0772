#!/usr/bin/env python3
"""Report of a bench/compare run: one table and an SVG bar chart.

    python3 bench/compare_report.py [--title LINE] [--svg PATH] OUTDIR

OUTDIR is bench/compare's --out: raw/<backend>.r<round>.txt (stdout of
l2_overhead, omp_dag or starpu_dag; raw/<backend>.views.r<round>.txt for the
runs with --layout views, whose rows are named <workload>/views) and status.tsv
(backend, round, state, detail and, when there, layout). Every program prints a header line starting with "workload" whose
columns include "median" and "min" (ns/task), then one row per workload:
name, tasks, edges, path, reps, median, min, ... For each workload and backend the
table gives the median across rounds of the per-round median, the min across
rounds of the per-round min, the range of the per-round medians, and the peer's
median divided by Strata's ("3.2x": Strata is 3.2 times faster). The chart
(OUTDIR/compare.svg unless --svg) shows the medians on a log scale, with a tick
at each min. A workload's views row follows its buffers row. Standard library
only.
"""

import argparse
import math
import os
import re
import statistics
import sys

BACKENDS = ["strata", "libgomp", "libomp", "starpu-lws", "starpu-eager"]
LABELS = {
    "strata": "Strata",
    "libgomp": "libgomp",
    "libomp": "libomp",
    "starpu-lws": "StarPU lws",
    "starpu-eager": "StarPU eager",
}
COLORS = {
    "strata": "#d62728",
    "libgomp": "#1f77b4",
    "libomp": "#17becf",
    "starpu-lws": "#2ca02c",
    "starpu-eager": "#98df8a",
}
RAW_RE = re.compile(r"^(?P<backend>[a-z0-9-]+)(?:\.(?P<layout>views))?\.r(?P<round>\d+)\.txt$")
VIEWS_SUFFIX = "/views"


def layout_of(workload):
    """"views" for the rows of --layout views ("cholesky16/views"), else "buffers"."""
    return "views" if workload.endswith(VIEWS_SUFFIX) else "buffers"


def parse_output(path):
    """{workload: (tasks, median, min)} from one program's stdout."""
    rows = {}
    cols = None
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            if line.startswith("#") or not line.strip():
                continue
            tok = line.split()
            if tok[0] == "workload":
                cols = {name: i for i, name in enumerate(tok)}
                continue
            if cols is None or line[0].isspace():
                continue  # before the header, or the units line under it
            try:
                tasks = int(tok[cols.get("tasks", 1)])
                med = float(tok[cols["median"]])
                mn = float(tok[cols["min"]])
            except (ValueError, IndexError, KeyError):
                continue  # e.g. "(no timed runs)"
            rows[tok[0]] = (tasks, med, mn)
    return rows


def read_status(outdir, part=""):
    """[(backend, round, state, detail, layout)] from status<part>.tsv; layout is
    "buffers" where the file has no layout column."""
    path = os.path.join(outdir, "status%s.tsv" % part)
    out = []
    if not os.path.exists(path):
        return out
    with open(path, encoding="utf-8", errors="replace") as f:
        for i, line in enumerate(f):
            parts = line.rstrip("\n").split("\t")
            if i == 0 or len(parts) < 3:
                continue
            out.append((parts[0], parts[1], parts[2], parts[3] if len(parts) > 3 else "",
                        parts[4] if len(parts) > 4 and parts[4] else "buffers"))
    return out


def collect(outdir, status, part=""):
    failed_runs = {(b, r, lay) for b, r, st, _, lay in status if st != "ok"}
    data = {}  # backend -> workload -> list of (round, tasks, median, min)
    order = []  # workloads in first-seen order (Strata's first)
    rawdir = os.path.join(outdir, "raw" + part)
    files = []
    if os.path.isdir(rawdir):
        for name in os.listdir(rawdir):
            m = RAW_RE.match(name)
            if m:
                files.append((m.group("backend"), int(m.group("round")), m.group("layout") or "buffers",
                              os.path.join(rawdir, name)))
    files.sort(key=lambda x: (BACKENDS.index(x[0]) if x[0] in BACKENDS else 99, x[1], x[2]))
    for backend, rnd, lay, path in files:
        if (backend, str(rnd), lay) in failed_runs:
            continue  # a failed run's partial output is not mixed in
        for wl, (tasks, med, mn) in parse_output(path).items():
            data.setdefault(backend, {}).setdefault(wl, []).append((rnd, tasks, med, mn))
            if wl not in order:
                order.append(wl)
    # each workload's views row right after its buffers row
    bases = []
    for wl in order:
        base = wl[:-len(VIEWS_SUFFIX)] if layout_of(wl) == "views" else wl
        if base not in bases:
            bases.append(base)
    order.sort(key=lambda wl: (bases.index(wl[:-len(VIEWS_SUFFIX)] if layout_of(wl) == "views" else wl),
                               layout_of(wl) == "views"))
    return data, order


def fmt_ns(x):
    if x is None:
        return "-"
    return f"{x:.0f}" if x >= 100 else f"{x:.1f}"


def fmt_ratio(x):
    if x is None:
        return "-"
    return f"{x:.2f}x" if x < 10 else f"{x:.1f}x"


def summarize(data, order):
    """summary[wl][backend] = dict(median, min, lo, hi, n, tasks)."""
    summary = {}
    for wl in order:
        for b in BACKENDS:
            runs = data.get(b, {}).get(wl)
            if not runs:
                continue
            meds = [r[2] for r in runs]
            summary.setdefault(wl, {})[b] = {
                "median": statistics.median(meds),
                "min": min(r[3] for r in runs),
                "lo": min(meds),
                "hi": max(meds),
                "n": len(runs),
                "tasks": runs[0][1],
            }
    return summary


def backend_notes(status, data):
    """backend -> short note when some or all of its runs are missing."""
    notes = {}
    for b in BACKENDS:
        rows = [s for s in status if s[0] == b]
        bad = [s for s in rows if s[2] != "ok"]
        if any(s[2] == "build-failed" for s in rows):
            notes[b] = "NOT BUILT: " + next(s[3] for s in rows if s[2] == "build-failed")
        elif rows and len(bad) == len(rows):
            notes[b] = "ALL RUNS FAILED: " + bad[0][3]
        elif bad:
            notes[b] = f"{len(bad)} of {len(rows)} runs failed (first: round {bad[0][1]}, {bad[0][3]})"
        elif not rows and b not in data:
            notes[b] = "no runs"
    return notes


def print_table(summary, order, notes, rounds_by_backend, title):
    if title:
        print(title)
    head = ["workload", "tasks", "backend", "rounds", "median", "min", "round medians", "vs Strata"]
    unit = ["", "", "", "ok", "ns/task", "ns/task", "min..max", "peer/Strata"]
    rows = []
    for wl in order:
        per = summary.get(wl, {})
        strata = per.get("strata")
        tasks = next((v["tasks"] for v in per.values()), None)
        first = True
        for b in BACKENDS:
            v = per.get(b)
            name = wl if first else ""
            tk = str(tasks) if first and tasks is not None else ""
            first = False
            rounds = rounds_by_backend.get((b, layout_of(wl)), 0)
            if v is None:
                why = notes.get(b, "ran, but printed no parsable row for this workload: see raw/")
                rows.append([name, tk, LABELS[b], f"0/{rounds}", "-", "-", "-", "-", why])
                continue
            ratio = "-" if b == "strata" else fmt_ratio(
                v["median"] / strata["median"] if strata and strata["median"] > 0 else None)
            rows.append([name, tk, LABELS[b], f"{v['n']}/{rounds or v['n']}",
                         fmt_ns(v["median"]), fmt_ns(v["min"]), f"{fmt_ns(v['lo'])}..{fmt_ns(v['hi'])}",
                         ratio, ""])
    widths = [max(len(r[i]) for r in rows + [head + [""], unit + [""]]) for i in range(8)]
    right = {1, 3, 4, 5, 6, 7}

    def line(cells):
        out = []
        for i, c in enumerate(cells[:8]):
            out.append(c.rjust(widths[i]) if i in right else c.ljust(widths[i]))
        s = "  ".join(out)
        if len(cells) > 8 and cells[8]:
            s += "  (" + cells[8] + ")"
        return s.rstrip()

    print(line(head))
    print(line(unit))
    prev = None
    for r in rows:
        if r[0] and prev is not None:
            print()
        print(line(r))
        prev = r
    print()
    print("median: median over rounds of each round's median ns/task; min: lowest ns/task of any timed run;")
    print("vs Strata: peer median / Strata median (above 1x: Strata is faster).")
    # Geometric mean of the ratios over the workloads both have, per layout.
    layouts = [lay for lay in ("buffers", "views") if any(layout_of(wl) == lay for wl in order)]
    for lay in layouts:
        gm = []
        for b in BACKENDS[1:]:
            rs = [summary[wl][b]["median"] / summary[wl]["strata"]["median"]
                  for wl in order if layout_of(wl) == lay and b in summary.get(wl, {})
                  and "strata" in summary.get(wl, {}) and summary[wl]["strata"]["median"] > 0]
            if rs:
                g = math.exp(sum(math.log(x) for x in rs) / len(rs))
                gm.append(f"{LABELS[b]} {fmt_ratio(g)}")
        if gm:
            which = f" ({lay})" if len(layouts) > 1 or lay == "views" else ""
            print(f"geometric mean of peer/Strata over workloads{which}: " + ", ".join(gm))
    for b in BACKENDS:
        if b in notes:
            print(f"NOTE {LABELS[b]}: {notes[b]}")


def esc(s):
    return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def write_svg(path, summary, order, notes, title):
    wls = [wl for wl in order if summary.get(wl)]
    vals = [v[k] for wl in wls for v in summary[wl].values() for k in ("median", "min") if v[k] > 0]
    nb = len(BACKENDS)
    bar_w, gap = 16, 28
    group_w = nb * bar_w + gap
    left, right, top, bottom = 70, 20, 50, 80
    plot_h = 360
    plot_w = max(len(wls), 1) * group_w
    legend_w = 150
    W = max(left + plot_w + right + legend_w, 640)
    H = top + plot_h + bottom
    if vals:
        lo = 10 ** math.floor(math.log10(min(vals)))
        hi = 10 ** math.ceil(math.log10(max(vals)))
        if hi <= lo:
            hi = lo * 10
    else:
        lo, hi = 10, 10000

    def y(v):
        v = max(v, lo)
        return top + plot_h - (math.log10(v) - math.log10(lo)) / (math.log10(hi) - math.log10(lo)) * plot_h

    o = []
    o.append(f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" '
             f'viewBox="0 0 {W} {H}" font-family="sans-serif" font-size="11">')
    o.append(f'<rect x="0" y="0" width="{W}" height="{H}" fill="white"/>')
    o.append(f'<text x="{left}" y="20" font-size="14" font-weight="bold">'
             f'{esc("ns/task per workload (median over rounds; log scale; tick = min)")}</text>')
    if title:
        o.append(f'<text x="{left}" y="37" fill="#555">{esc(title.lstrip("# "))}</text>')
    # grid and y axis
    e = int(round(math.log10(lo)))
    while 10 ** e <= hi * 1.0001:
        for m in (1, 2, 5):
            v = m * 10 ** e
            if v < lo * 0.9999 or v > hi * 1.0001:
                continue
            yy = y(v)
            major = m == 1
            o.append(f'<line x1="{left}" y1="{yy:.1f}" x2="{left + plot_w}" y2="{yy:.1f}" '
                     f'stroke="{"#bbb" if major else "#e5e5e5"}" stroke-width="1"/>')
            o.append(f'<text x="{left - 6}" y="{yy + 4:.1f}" text-anchor="end" '
                     f'fill="{"#000" if major else "#777"}">{v:g}</text>')
        e += 1
    o.append(f'<line x1="{left}" y1="{top}" x2="{left}" y2="{top + plot_h}" stroke="#000"/>')
    o.append(f'<line x1="{left}" y1="{top + plot_h}" x2="{left + plot_w}" y2="{top + plot_h}" stroke="#000"/>')
    o.append(f'<text transform="translate(18,{top + plot_h / 2:.0f}) rotate(-90)" text-anchor="middle">'
             f'ns/task</text>')
    for gi, wl in enumerate(wls):
        x0 = left + gi * group_w + gap / 2
        for bi, b in enumerate(BACKENDS):
            v = summary[wl].get(b)
            x = x0 + bi * bar_w
            if v is None or v["median"] <= 0:
                o.append(f'<text x="{x + bar_w / 2:.1f}" y="{top + plot_h - 4}" text-anchor="middle" '
                         f'font-size="8" fill="#999" transform="rotate(-90 {x + bar_w / 2:.1f} '
                         f'{top + plot_h - 4})">n/a</text>')
                continue
            yt = y(v["median"])
            tip = "%s %s: median %.1f, min %.1f ns/task" % (wl, LABELS[b], v["median"], v["min"])
            o.append(f'<rect x="{x + 1:.1f}" y="{yt:.1f}" width="{bar_w - 2}" '
                     f'height="{top + plot_h - yt:.1f}" fill="{COLORS[b]}">'
                     f'<title>{esc(tip)}</title></rect>')
            if v["min"] > 0:
                ym = y(v["min"])
                o.append(f'<line x1="{x + 1:.1f}" y1="{ym:.1f}" x2="{x + bar_w - 1:.1f}" y2="{ym:.1f}" '
                         f'stroke="#000" stroke-width="2"/>')
        cx = x0 + nb * bar_w / 2
        # "cholesky16/views": the layout on a second line, so that labels fit a group
        base, _, lay = wl.partition("/")
        o.append(f'<text x="{cx:.1f}" y="{top + plot_h + 16}" text-anchor="middle">{esc(base)}</text>')
        if lay:
            o.append(f'<text x="{cx:.1f}" y="{top + plot_h + 29}" text-anchor="middle" '
                     f'fill="#555">{esc("/" + lay)}</text>')
    # legend
    lx = left + plot_w + 20
    for i, b in enumerate(BACKENDS):
        ly = top + 10 + i * 20
        o.append(f'<rect x="{lx}" y="{ly - 10}" width="12" height="12" fill="{COLORS[b]}"/>')
        label = LABELS[b] + (" (missing)" if b in notes and notes[b].startswith(("NOT", "ALL")) else "")
        o.append(f'<text x="{lx + 18}" y="{ly}">{esc(label)}</text>')
    save_svg(path, o)


def save_svg(path, parts):
    """Close the <svg> element begun in parts and write it to path."""
    parts.append("</svg>")
    with open(path, "w", encoding="utf-8") as f:
        f.write("\n".join(parts) + "\n")


def parse_args(doc):
    """The command line both report scripts take: OUTDIR [--title] [--svg]."""
    ap = argparse.ArgumentParser(description=doc.splitlines()[0])
    ap.add_argument("outdir")
    ap.add_argument("--title", default="")
    ap.add_argument("--svg", default=None)
    ap.add_argument("--part", default="", help="'-real': the runs in raw-real/ and status-real.tsv")
    return ap.parse_args()


def main():
    args = parse_args(__doc__)
    status = read_status(args.outdir, args.part)
    data, order = collect(args.outdir, status, args.part)
    summary = summarize(data, order)
    notes = backend_notes(status, data)
    rounds_by_backend = {}  # (backend, layout) -> runs
    for b, r, st, _, lay in status:
        if st != "build-failed":
            rounds_by_backend[(b, lay)] = rounds_by_backend.get((b, lay), 0) + 1
    if not order:
        print(args.title)
        print("compare_report: no results parsed from " + os.path.join(args.outdir, "raw" + args.part))
        for b in BACKENDS:
            if b in notes:
                print(f"NOTE {LABELS[b]}: {notes[b]}")
        return 1
    print_table(summary, order, notes, rounds_by_backend, args.title)
    svg = args.svg or os.path.join(args.outdir, "compare%s.svg" % args.part)
    write_svg(svg, summary, order, notes, args.title)
    print(f"chart: {svg}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
