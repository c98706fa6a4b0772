#!/usr/bin/env python3
"""Report of a bench/metg run: METG per pattern and backend, and an SVG of
efficiency against task granularity.

    /usr/bin/python3 bench/metg_report.py [--title LINE] [--svg PATH] OUTDIR

OUTDIR is bench/metg's --out: raw/<backend>.r<round>.txt (stdout of
bench/taskbench, bench/peers/taskbench_omp.c or taskbench_starpu.c) and
status.tsv (backend, round, state, load, detail). Every program prints

    peak <backend> <iterations per second> <cores>
    run  <backend> <pattern> <iterations> <steps> <tasks> <wall_ms> <granularity_us> <efficiency> <task_us>
    metg <backend> <pattern> <value|-> <kind>

Efficiency is recomputed against one peak for the whole comparison, the median
of every program's own measurement (each measures the machine with plain
threads before its runtime starts, so a noisy start does not favour one
backend). For each backend, pattern and iteration count: the median across
rounds of granularity and efficiency; the METG is computed from those medians
as tb_metg does (the smallest granularity at >= 50 % efficiency, interpolated
on log granularity towards the next point below 50 %), and the range of the
per-round METGs is shown beside it. Ratios: each peer's METG over Strata L2's
("3.2x": Strata's smallest useful task is 3.2 times smaller). Standard library
only.
"""

import argparse
import math
import os
import re
import statistics
import sys

BACKENDS = ["strata-l2", "strata-l2-alt", "strata-l3-chip", "strata-l3-chip-orch", "strata-l3-sub",
            "libgomp", "libomp", "starpu-lws"]
LABELS = {
    "strata-l2": "Strata L2",
    "strata-l2-alt": "Strata L2 (1+1 lanes)",
    "strata-l3-chip": "Strata L3 chip",
    "strata-l3-chip-orch": "Strata L3 chip (orch)",
    "strata-l3-sub": "Strata L3 SUB",
    "libgomp": "libgomp",
    "libomp": "libomp",
    "starpu-lws": "StarPU lws",
}
COLORS = {
    "strata-l2": "#d62728",
    "strata-l2-alt": "#ff9896",
    "strata-l3-chip": "#9467bd",
    "strata-l3-chip-orch": "#c5b0d5",
    "strata-l3-sub": "#8c564b",
    "libgomp": "#1f77b4",
    "libomp": "#17becf",
    "starpu-lws": "#2ca02c",
}
PATTERNS = ["trivial", "no_comm", "stencil_1d", "tree", "fft", "nearest", "all_to_all"]
PEERS = ["libgomp", "libomp", "starpu-lws"]
RAW_RE = re.compile(r"^(?P<backend>[a-z0-9-]+)\.r(?P<round>\d+)\.txt$")


def parse_output(path):
    """peak (float or None) and runs {pattern: [(iterations, tasks, wall_ms, granularity_us)]}."""
    peak = None
    runs = {}
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            w = line.split()
            if len(w) >= 3 and w[0] == "peak":
                peak = float(w[2])
            elif len(w) >= 10 and w[0] == "run":
                runs.setdefault(w[2], []).append((int(w[3]), int(w[5]), float(w[6]), float(w[7])))
    return peak, runs


def metg(points):
    """tb_metg of taskbench_graph.c: points are (granularity, efficiency) in sweep
    order (descending iterations). Returns (value or None, kind)."""
    last = -1
    for i, (_, e) in enumerate(points):
        if e >= 0.5:
            last = i
    if last < 0:
        return None, "none"
    if last == len(points) - 1:
        return points[last][0], "bound"
    (g0, e0), (g1, e1) = points[last], points[last + 1]
    if not (g1 < g0) or not (e0 > e1):
        return g0, "interp"
    f = (e0 - 0.5) / (e0 - e1)
    return math.exp(math.log(g0) + f * (math.log(g1) - math.log(g0))), "interp"


def read_status(outdir):
    rows = []
    path = os.path.join(outdir, "status.tsv")
    if os.path.exists(path):
        with open(path, encoding="utf-8") as f:
            next(f, None)
            for line in f:
                parts = line.rstrip("\n").split("\t")
                if len(parts) >= 4:
                    rows.append(parts)
    return rows


def collect(outdir):
    """{backend: {round: (peak, runs)}} of the rounds that finished."""
    ok = {(r[0], r[1]) for r in read_status(outdir) if r[2] == "ok"}
    data = {}
    raw = os.path.join(outdir, "raw")
    for name in sorted(os.listdir(raw)) if os.path.isdir(raw) else []:
        m = RAW_RE.match(name)
        if not m or (ok and (m["backend"], m["round"]) not in ok):
            continue
        peak, runs = parse_output(os.path.join(raw, name))
        if peak and runs:
            data.setdefault(m["backend"], {})[int(m["round"])] = (peak, runs)
    return data


def summarize(data, peak):
    """{backend: {pattern: {"curve": [(iterations, gran, eff)], "metg": (v, kind), "range": (lo, hi)}}}"""
    out = {}
    for b, rounds in data.items():
        per_pattern = {}
        for pat in PATTERNS:
            by_iter = {}
            round_metgs = []
            for _, runs in rounds.values():
                pts = []
                for iterations, tasks, wall_ms, gran in runs.get(pat, []):
                    eff = tasks * iterations / (wall_ms * 1e-3) / peak
                    by_iter.setdefault(iterations, []).append((gran, eff))
                    pts.append((gran, eff))
                if pts:
                    round_metgs.append(metg(pts)[0])
            if not by_iter:
                continue
            curve = []
            for iterations in sorted(by_iter, reverse=True):
                v = by_iter[iterations]
                curve.append((iterations, statistics.median(g for g, _ in v), statistics.median(e for _, e in v)))
            value = metg([(g, e) for _, g, e in curve])
            found = [m for m in round_metgs if m is not None]
            rng = (min(found), max(found)) if found else None
            per_pattern[pat] = {"curve": curve, "metg": value, "range": rng,
                                "rounds": len(round_metgs), "missing": len(round_metgs) - len(found)}
        out[b] = per_pattern
    return out


def fmt_us(v):
    if v is None:
        return "-"
    if v >= 100:
        return f"{v:.0f}"
    if v >= 10:
        return f"{v:.1f}"
    return f"{v:.2f}"


def cell(entry):
    if not entry:
        return "n/a"
    v, kind = entry["metg"]
    if v is None:
        return "> max"
    s = ("<=" if kind == "bound" else "") + fmt_us(v)
    if entry["range"] and entry["rounds"] > 1:
        lo, hi = entry["range"]
        s += f" ({fmt_us(lo)}-{fmt_us(hi)})"
    return s


def print_table(summary, order, title, peak, peaks):
    print(title)
    print(f"# peak: {peak:.4g} iterations/s (median of {len(peaks)} programs' measurements, "
          f"{min(peaks):.4g}..{max(peaks):.4g}); METG in µs, median curve across rounds "
          "(range of the per-round METGs)")
    strata = [b for b in order if b.startswith("strata")]
    peers = [b for b in order if b in PEERS]
    head = ["pattern"] + [LABELS.get(b, b) for b in order]
    if "strata-l2" in summary:
        head += [f"{LABELS[p]}/L2" for p in peers]
    rows = [head]
    for pat in PATTERNS:
        if not any(pat in summary[b] for b in order):
            continue
        row = [pat] + [cell(summary[b].get(pat)) for b in order]
        if "strata-l2" in summary:
            l2 = summary["strata-l2"].get(pat, {}).get("metg", (None, ""))[0]
            for p in peers:
                pv = summary[p].get(pat, {}).get("metg", (None, ""))[0]
                row.append(f"{pv / l2:.2f}x" if pv and l2 else "-")
        rows.append(row)
    widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
    for k, r in enumerate(rows):
        print("| " + " | ".join(c.ljust(widths[i]) if i == 0 else c.rjust(widths[i]) for i, c in enumerate(r)) + " |")
        if k == 0:
            print("| " + " | ".join("-" * widths[i] if i == 0 else "-" * (widths[i] - 1) + ":"
                                    for i in range(len(head))) + " |")
    # where Strata stands
    if "strata-l2" in summary and peers:
        print()
        lowest, below5 = [], []
        for pat in PATTERNS:
            l2 = summary["strata-l2"].get(pat, {}).get("metg", (None, ""))[0]
            if l2 is None:
                continue
            others = [summary[p].get(pat, {}).get("metg", (None, ""))[0] for p in peers]
            best = min((o for o in others if o is not None), default=None)
            lowest.append((pat, best is None or l2 < best))
            below5.append((pat, l2 < 5.0))
        miss = [p for p, ok in lowest if not ok]
        print("target 'Strata L2 lowest of all on every pattern': " +
              ("met" if not miss else "missed on " + ", ".join(miss)))
        miss5 = [p for p, ok in below5 if not ok]
        print("target 'Strata L2 below 5 µs': " + ("met" if not miss5 else "missed on " + ", ".join(miss5)))
        for b in strata:
            if b == "strata-l2":
                continue
            beaten = []
            for pat in PATTERNS:
                v = summary[b].get(pat, {}).get("metg", (None, ""))[0]
                others = [summary[p].get(pat, {}).get("metg", (None, ""))[0] for p in peers]
                best = min((o for o in others if o is not None), default=None)
                if v is not None and best is not None and v < best:
                    beaten.append(pat)
            print(f"{LABELS.get(b, b)} below every peer on: " + (", ".join(beaten) if beaten else "no pattern"))


def esc(s):
    return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def write_svg(path, summary, order, title):
    pats = [p for p in PATTERNS if any(p in summary[b] for b in order)]
    cols = 2
    pw, ph = 460, 300            # one panel
    ml, mr, mt, mb = 60, 20, 40, 45
    legend_h = 30 + 18 * ((len(order) + 3) // 4)
    rows = (len(pats) + cols - 1) // cols
    W, H = cols * pw, 40 + legend_h + rows * ph
    gs = [g for b in order for p in pats for _, g, _ in summary[b].get(p, {}).get("curve", []) if g > 0]
    if not gs:
        return
    lo = 10 ** math.floor(math.log10(min(gs)))
    hi = 10 ** math.ceil(math.log10(max(gs)))
    o = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" font-family="sans-serif" '
         f'font-size="12">', f'<rect width="{W}" height="{H}" fill="white"/>',
         f'<text x="{W / 2}" y="22" text-anchor="middle" font-size="14">{esc(title)}</text>']
    for k, b in enumerate(order):   # legend
        x = 20 + (k % 4) * (W - 40) / 4
        y = 45 + 18 * (k // 4)
        o.append(f'<line x1="{x}" y1="{y - 4}" x2="{x + 24}" y2="{y - 4}" stroke="{COLORS.get(b, "#000")}" '
                 f'stroke-width="2.5"/>')
        o.append(f'<text x="{x + 30}" y="{y}">{esc(LABELS.get(b, b))}</text>')
    top = 40 + legend_h
    for i, pat in enumerate(pats):
        ox, oy = (i % cols) * pw, top + (i // cols) * ph
        x0, x1, y0, y1 = ox + ml, ox + pw - mr, oy + mt, oy + ph - mb

        def X(g):
            return x0 + (math.log10(g) - math.log10(lo)) / (math.log10(hi) - math.log10(lo)) * (x1 - x0)

        def Y(e):
            return y1 - min(max(e, 0), 1.2) / 1.2 * (y1 - y0)

        o.append(f'<text x="{(x0 + x1) / 2}" y="{oy + 22}" text-anchor="middle" font-weight="bold">'
                 f'{esc(pat)}</text>')
        o.append(f'<rect x="{x0}" y="{y0}" width="{x1 - x0}" height="{y1 - y0}" fill="none" stroke="#999"/>')
        d = lo
        while d <= hi * 1.001:
            o.append(f'<line x1="{X(d):.1f}" y1="{y0}" x2="{X(d):.1f}" y2="{y1}" stroke="#eee"/>')
            o.append(f'<text x="{X(d):.1f}" y="{y1 + 15}" text-anchor="middle">{d:g}</text>')
            d *= 10
        for e in (0, 0.25, 0.5, 0.75, 1.0):
            dash = ' stroke-dasharray="4,3"' if e == 0.5 else ""
            o.append(f'<line x1="{x0}" y1="{Y(e):.1f}" x2="{x1}" y2="{Y(e):.1f}" stroke="#ccc"{dash}/>')
            o.append(f'<text x="{x0 - 6}" y="{Y(e) + 4:.1f}" text-anchor="end">{int(e * 100)}%</text>')
        o.append(f'<text x="{(x0 + x1) / 2}" y="{y1 + 32}" text-anchor="middle">task granularity (µs, log)</text>')
        o.append(f'<text x="{ox + 14}" y="{(y0 + y1) / 2}" text-anchor="middle" '
                 f'transform="rotate(-90 {ox + 14} {(y0 + y1) / 2})">efficiency</text>')
        for b in order:
            curve = summary[b].get(pat, {}).get("curve", [])
            pts = " ".join(f"{X(g):.1f},{Y(e):.1f}" for _, g, e in curve if g > 0)
            if pts:
                o.append(f'<polyline points="{pts}" fill="none" stroke="{COLORS.get(b, "#000")}" '
                         f'stroke-width="1.8"/>')
    o.append("</svg>")
    with open(path, "w", encoding="utf-8") as f:
        f.write("\n".join(o) + "\n")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("outdir")
    ap.add_argument("--title", default="# bench/metg")
    ap.add_argument("--svg", default=None)
    args = ap.parse_args()
    data = collect(args.outdir)
    if not data:
        print(f"metg_report: no finished runs in {args.outdir}/raw", file=sys.stderr)
        return 1
    peaks = [p for rounds in data.values() for p, _ in rounds.values()]
    peak = statistics.median(peaks)
    order = [b for b in BACKENDS if b in data] + sorted(b for b in data if b not in BACKENDS)
    summary = summarize(data, peak)
    print_table(summary, order, args.title, peak, peaks)
    failed = [r for r in read_status(args.outdir) if r[2] != "ok"]
    for r in failed:
        print(f"note: {r[0]} round {r[1]}: {r[2]} ({r[-1]})")
    svg = args.svg or os.path.join(args.outdir, "metg.svg")
    write_svg(svg, summary, order, args.title.lstrip("# "))
    print(f"chart: {svg}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
