#!/usr/bin/python3
"""Draw a Strata trace (Chrome trace-event JSON) as an SVG timeline.

Perfetto (ui.perfetto.dev) opens a trace as it is; this is for where a browser
cannot reach it, and for pictures in the docs: one row per thread track,
grouped under its process, slices as boxes named when they are wide enough,
arrows as thin lines, instants (a death, a restart) as red marks with their
name, and each counter as a step line under the process it belongs to.

  scripts/trace-svg.py TRACE.json OUT.svg [--from MS] [--to MS] [--width PX]

--from and --to cut a window, in milliseconds from the trace's first event.
"""
import argparse
import hashlib
import html
import json
import sys

ROW = 16          # px per track
LABEL = 330       # px for the track names
AXIS = 28         # px for the time axis


def load(path):
    text = open(path, encoding="utf-8").read().rstrip()
    if not text.endswith("]"):
        text += "]"   # a trace whose process was killed: the array form allows it
    return json.loads(text)


def colour(name):
    h = int(hashlib.md5(name.split(":")[0].encode()).hexdigest()[:6], 16)
    return "hsl(%d,55%%,%d%%)" % (h % 360, 62 + (h >> 9) % 16)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("trace")
    ap.add_argument("out")
    ap.add_argument("--from", dest="t_from", type=float, default=None)
    ap.add_argument("--to", dest="t_to", type=float, default=None)
    ap.add_argument("--width", type=int, default=1400)
    a = ap.parse_args()
    events = load(a.trace)

    procs, proc_sort, threads, thread_sort = {}, {}, {}, {}
    for e in events:
        if e.get("ph") != "M":
            continue
        if e["name"] == "process_name":
            procs[e["pid"]] = e["args"]["name"]
        elif e["name"] == "process_sort_index":
            proc_sort[e["pid"]] = e["args"]["sort_index"]
        elif e["name"] == "thread_name":
            threads[(e["pid"], e["tid"])] = e["args"]["name"]
        elif e["name"] == "thread_sort_index":
            thread_sort[(e["pid"], e["tid"])] = e["args"]["sort_index"]
    timed = [e for e in events if e.get("ph") in ("X", "B", "i", "s", "f", "C")]
    if not timed:
        sys.exit("trace-svg: %s has no timed events" % a.trace)
    t0 = min(float(e["ts"]) for e in timed)
    t_end = max(float(e["ts"]) + float(e.get("dur", 0)) for e in timed)
    lo = t0 + (a.t_from * 1000 if a.t_from is not None else 0)
    hi = t0 + a.t_to * 1000 if a.t_to is not None else t_end
    if hi <= lo:
        sys.exit("trace-svg: an empty window")
    span = hi - lo
    plot = a.width - LABEL - 10

    def x(ts):
        return LABEL + (float(ts) - lo) / span * plot

    # rows: processes in their sort order, each with its threads, then its counters
    counters = {}
    for e in timed:
        if e["ph"] == "C":
            counters.setdefault((e["pid"], e["name"]), []).append(e)
    rows, y = [], AXIS
    header_y = {}
    for pid in sorted(procs, key=lambda p: (proc_sort.get(p, 0), p)):
        header_y[pid] = y
        y += ROW
        for key in sorted((k for k in threads if k[0] == pid), key=lambda k: (thread_sort.get(k, 0), k[1])):
            rows.append(key)
            threads[key] = (threads[key], y)
            y += ROW
        for (cpid, cname) in sorted(k for k in counters if k[0] == pid):
            counters[(cpid, cname)] = (counters[(cpid, cname)], y)
            y += ROW
    height = y + 10

    out = ['<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" font-family="DejaVu Sans, sans-serif" '
           'font-size="10">' % (a.width, height),
           '<rect width="100%" height="100%" fill="white"/>']
    # the axis: ticks at a round step
    step = 10 ** len(str(int(span / 8))) / 10 if span > 8 else 1
    while span / step > 12:
        step *= 2
    t = (int((lo - t0) / step) + 1) * step
    while t0 + t < hi:
        px = x(t0 + t)
        out.append('<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="#ddd"/>' % (px, AXIS - 6, px, height))
        out.append('<text x="%.1f" y="%d" text-anchor="middle" fill="#555">%g ms</text>' % (px, AXIS - 10, t / 1000))
        t += step
    for pid, hy in header_y.items():
        out.append('<rect x="0" y="%d" width="%d" height="%d" fill="#eef"/>' % (hy, a.width, ROW))
        out.append('<text x="4" y="%d" font-weight="bold">%s</text>' % (hy + 12, html.escape(procs[pid])))
    for key in rows:
        name, ry = threads[key]
        out.append('<text x="14" y="%d" fill="#333">%s</text>' % (ry + 12, html.escape(name)))
    # slices
    for e in timed:
        if e["ph"] not in ("X", "B") or (e["pid"], e["tid"]) not in threads:
            continue
        ry = threads[(e["pid"], e["tid"])][1]
        start = float(e["ts"])
        end = start + float(e["dur"]) if e["ph"] == "X" else t_end
        if end < lo or start > hi:
            continue
        x0, x1 = max(x(start), LABEL), min(x(end), a.width - 10)
        w = max(x1 - x0, 0.6)
        title = "%s (%.1f us)" % (e["name"], end - start) if e["ph"] == "X" else e["name"] + " (never ended)"
        out.append('<rect x="%.2f" y="%d" width="%.2f" height="%d" fill="%s" stroke="%s" stroke-width="0.3">'
                   '<title>%s</title></rect>' % (x0, ry + 2, w, ROW - 4, colour(e["name"]),
                                                 "#c00" if e["ph"] == "B" else "#666", html.escape(title)))
        if w > 7 * len(e["name"]) * 0.6:
            out.append('<text x="%.1f" y="%d" fill="#111">%s</text>' % (x0 + 2, ry + 11, html.escape(e["name"])))
    # arrows
    ends = {}
    for e in timed:
        if e["ph"] in ("s", "f"):
            ends.setdefault((e["name"], e["id"]), {})[e["ph"]] = e
    for (name, _), pair in ends.items():
        if len(pair) != 2:
            continue
        s, f = pair["s"], pair["f"]
        if (s["pid"], s["tid"]) not in threads or (f["pid"], f["tid"]) not in threads:
            continue
        if float(f["ts"]) < lo or float(s["ts"]) > hi:
            continue
        y0 = threads[(s["pid"], s["tid"])][1] + ROW / 2
        y1 = threads[(f["pid"], f["tid"])][1] + ROW / 2
        out.append('<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="%s" stroke-width="0.5" opacity="0.6"/>'
                   % (x(s["ts"]), y0, x(f["ts"]), y1, "#36c" if name == "submit" else "#c60"))
    # counters: step lines, each scaled to its own largest value
    for (pid, cname), (evs, cy) in ((k, v) for k, v in counters.items() if isinstance(v, tuple)):
        top = max(float(e["args"]["value"]) for e in evs) or 1
        pts, last = [], None
        for e in sorted(evs, key=lambda e: float(e["ts"])):
            if not lo <= float(e["ts"]) <= hi:
                continue
            vy = cy + ROW - 2 - (ROW - 4) * float(e["args"]["value"]) / top
            if last is not None:
                pts.append("%.1f,%.1f" % (x(e["ts"]), last))
            pts.append("%.1f,%.1f" % (x(e["ts"]), vy))
            last = vy
        out.append('<text x="14" y="%d" fill="#666">%s (max %g)</text>' % (cy + 12, html.escape(cname), top))
        if pts:
            out.append('<polyline points="%s" fill="none" stroke="#393" stroke-width="0.8"/>' % " ".join(pts))
    # instants
    for e in timed:
        if e["ph"] != "i" or (e["pid"], e["tid"]) not in threads or not lo <= float(e["ts"]) <= hi:
            continue
        ix, iy = x(e["ts"]), threads[(e["pid"], e["tid"])][1]
        out.append('<path d="M%.1f,%d l-5,-8 h10 z" fill="#d00"><title>%s</title></path>'
                   % (ix, iy + ROW, html.escape(e.get("args", {}).get("detail", e["name"]))))
        out.append('<text x="%.1f" y="%d" fill="#d00" font-weight="bold">%s</text>' % (ix + 6, iy + 11,
                                                                                        html.escape(e["name"])))
    out.append("</svg>")
    with open(a.out, "w", encoding="utf-8") as f:
        f.write("\n".join(out) + "\n")
    print("trace-svg: %s: %d tracks, %.3f ms drawn" % (a.out, len(rows), span / 1000))


if __name__ == "__main__":
    main()
