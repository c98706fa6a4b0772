#!/usr/bin/python3
"""Check a Strata trace (Chrome trace-event JSON, array form) or a postmortem file.

Used by the C tests (tests/node/test_trace.c) and the Python tests: it parses the
file with a JSON parser and checks what docs/observability.md promises. Exit 0
when every check holds; otherwise each failed check is printed and the exit
status is 1.

  check_trace.py TRACE [--runs 1,2] [--absent-runs 3] [--tasks-per-run N] [--edges 1>2,1>3]
                       [--kernels-per-chip-task K] [--kernels N] [--kernel-cores N] [--callables a,b]
                       [--instant NAME]... [--unended N] [--pids-of-child N]
  check_trace.py --postmortem FILE [--callable NAME] [--in-kernel]
"""
import argparse
import json
import sys

failures = []


def fail(msg):
    failures.append(msg)


def load(path):
    text = open(path, encoding="utf-8").read().rstrip()
    if not text.endswith("]"):
        text += "]"   # a process killed before its trace was closed: the array form allows it
    events = json.loads(text)
    if not isinstance(events, list):
        raise SystemExit("%s: not a JSON array" % path)
    return events


def ns(ts):
    return round(float(ts) * 1000)


def check_trace(path, args):
    events = load(path)
    procs, threads = {}, {}
    for e in events:
        for key in ("ph", "pid", "name"):
            if key not in e:
                fail("an event without %r: %r" % (key, e))
        if e.get("ph") == "M" and e.get("name") == "process_name":
            procs[e["pid"]] = e["args"]["name"]
        if e.get("ph") == "M" and e.get("name") == "thread_name":
            threads[(e["pid"], e["tid"])] = e["args"]["name"]
    body = [e for e in events if e.get("ph") != "M"]
    for e in body:
        if "ts" not in e or "tid" not in e:
            fail("an event without ts or tid: %r" % e)
            continue
        if e["pid"] not in procs:
            fail("process %d has no name" % e["pid"])
        if e.get("ph") != "C" and (e["pid"], e["tid"]) not in threads:
            fail("track %d/%d has no name (event %r)" % (e["pid"], e["tid"], e["name"]))

    def track(e):
        return threads.get((e["pid"], e["tid"]), "")

    slices = [e for e in body if e["ph"] == "X"]
    # the top engine's dispatch slices and its children's task slices, by (run,
    # task); processes below a worker child (levels 4+) are " under " one
    def top(e):
        return procs.get(e["pid"], "").startswith("application")

    def deep(e):
        return " under " in procs.get(e["pid"], "")

    dispatch, child = {}, {}
    for e in slices:
        a = e.get("args", {})
        if "task" not in a or "run" not in a:
            continue
        key = (a["run"], a["task"])
        name = track(e)
        if "tasks of" in name and top(e):
            dispatch.setdefault(key, []).append(e)
        elif name in ("chip orchestrator", "SUB function", "engine") and not deep(e):
            child.setdefault(key, []).append(e)
    if args.deep_chip_tasks is not None:
        got = sum(1 for e in slices if deep(e) and track(e) == "chip orchestrator")
        if got != args.deep_chip_tasks:
            fail("%d chip tasks below worker children, not %d" % (got, args.deep_chip_tasks))
    if args.deep_sub_tasks is not None:
        got = sum(1 for e in slices if deep(e) and track(e) == "SUB function")
        if got != args.deep_sub_tasks:
            fail("%d SUB tasks below worker children, not %d" % (got, args.deep_sub_tasks))
    if args.deep_dispatch is not None:
        got = sum(1 for e in slices if not top(e) and not deep(e) and "tasks of" in track(e))
        if got != args.deep_dispatch:
            fail("%d slices on worker children's dispatch tracks, not %d" % (got, args.deep_dispatch))
    runs = [int(r) for r in args.runs.split(",")] if args.runs else []
    absent = [int(r) for r in args.absent_runs.split(",")] if args.absent_runs else []
    for key in list(dispatch) + list(child):
        if key[0] in absent:
            fail("a slice of run %d, which was not to be traced" % key[0])
    for run in runs:
        if not any(e["name"] == "run %d" % run for e in slices):
            fail("no slice 'run %d' on the orchestrator's track" % run)
        for task in range(1, (args.tasks_per_run or 0) + 1):
            d, c = dispatch.get((run, task), []), child.get((run, task), [])
            if len(d) != 1:
                fail("run %d task %d: %d dispatch slices, not 1" % (run, task, len(d)))
            if len(c) != 1:
                fail("run %d task %d: %d slices in a child, not 1" % (run, task, len(c)))
            if len(d) == 1 and len(c) == 1:
                db, de = ns(d[0]["ts"]), ns(d[0]["ts"]) + ns(d[0]["dur"])
                cb, ce = ns(c[0]["ts"]), ns(c[0]["ts"]) + ns(c[0]["dur"])
                slack = args.slack_us * 1000
                if not (db - slack <= cb and ce <= de + slack):
                    fail("run %d task %d: the child's slice [%d, %d] is not inside the dispatch slice [%d, %d]"
                         % (run, task, cb, ce, db, de))
                if d[0]["pid"] == c[0]["pid"]:
                    fail("run %d task %d: the child's slice is on the parent's process" % (run, task))
    kernels = [e for e in slices if "AIC core" in track(e) or "AIV core" in track(e)]
    if args.kernels is not None and len(kernels) != args.kernels:
        fail("%d kernel slices, not %d" % (len(kernels), args.kernels))
    if args.kernel_cores is not None and len({(e["pid"], e["tid"]) for e in kernels}) != args.kernel_cores:
        fail("kernels ran on %d core tracks, not %d" % (len({(e["pid"], e["tid"]) for e in kernels}),
                                                        args.kernel_cores))
    # kernels: on core tracks, inside their chip task's slice
    if args.kernels_per_chip_task is not None:
        per_task = {}
        for e in slices:
            if "AIC core" not in track(e) and "AIV core" not in track(e):
                continue
            a = e.get("args", {})
            for key in ("task", "func_id", "core", "run", "node_task", "callable"):
                if key not in a:
                    fail("kernel slice without %r: %r" % (key, e))
            per_task.setdefault((a.get("run"), a.get("node_task")), []).append(e)
        chip_tasks = {}
        for e in slices:
            if track(e) == "chip orchestrator" and "run" in e.get("args", {}):
                chip_tasks.setdefault((e["pid"], e["args"]["run"], e["args"]["task"]), []).append(e)
        per_task = {}
        for e in kernels:
            per_task.setdefault((e["pid"], e["args"].get("run"), e["args"].get("node_task")), []).append(e)
        for (pid, run, task), cs in chip_tasks.items():
            ks = per_task.get((pid, run, task), [])
            if len(ks) != args.kernels_per_chip_task:
                fail("run %d chip task %d: %d kernel slices, not %d" % (run, task, len(ks), args.kernels_per_chip_task))
            cb, ce = ns(cs[0]["ts"]), ns(cs[0]["ts"]) + ns(cs[0]["dur"])
            for k in ks:
                if k["pid"] != cs[0]["pid"] or not (cb <= ns(k["ts"]) and ns(k["ts"]) + ns(k["dur"]) <= ce):
                    fail("run %d chip task %d: a kernel outside its chip task's slice" % (run, task))
    # flows: every arrow has both ends, start before end
    flows = {}
    for e in body:
        if e["ph"] in ("s", "f"):
            flows.setdefault((e["name"], e["id"]), {})[e["ph"]] = e
    for (name, fid), ends in flows.items():
        if "s" not in ends or "f" not in ends:
            fail("flow %s %d has only its %s end" % (name, fid, "".join(ends)))
        elif ns(ends["s"]["ts"]) > ns(ends["f"]["ts"]):
            fail("flow %s %d ends before it starts" % (name, fid))

    def slice_at(e, candidates):
        t = ns(e["ts"])
        for s in candidates:
            if s["pid"] == e["pid"] and s["tid"] == e["tid"] and ns(s["ts"]) <= t <= ns(s["ts"]) + ns(s["dur"]):
                return s
        return None
    dispatch_slices = [s for v in dispatch.values() for s in v]
    child_slices = [s for v in child.values() for s in v]
    for run in runs:
        submits, submitted_at = set(), {}
        for (name, fid), ends in flows.items():
            if name == "submit" and "f" in ends:
                s = slice_at(ends["f"], child_slices)
                if s and s["args"]["run"] == run:
                    submits.add(s["args"]["task"])
                    if "s" in ends:
                        submitted_at[s["args"]["task"]] = ns(ends["s"]["ts"])
        want = set(range(1, (args.tasks_per_run or 0) + 1))
        if submits != want:
            fail("run %d: submit arrows reach tasks %s, not %s" % (run, sorted(submits), sorted(want)))
        if args.edges is not None:
            got = set()
            for (name, fid), ends in flows.items():
                if name != "dependency" or len(ends) != 2:
                    continue
                if not top(ends["s"]):   # a worker child's engine's or a chip's: it joins two of its slices
                    if slice_at(ends["s"], slices) is None or slice_at(ends["f"], slices) is None:
                        fail("dependency arrow %d below the top does not join two slices" % fid)
                    continue
                p, c = slice_at(ends["s"], dispatch_slices), slice_at(ends["f"], dispatch_slices)
                if p is None or c is None:
                    fail("dependency arrow %d does not join two dispatch slices" % fid)
                elif p["args"]["run"] == run:
                    got.add((p["args"]["task"], c["args"]["task"]))
            dag = {tuple(int(x) for x in pair.split(">")) for pair in args.edges.split(",") if pair}
            # An arrow is a release: a consumer submitted before its producer's
            # answer waited for it and must have one; one submitted after found
            # the producer done and waited for nothing (no arrow, no edge made).
            must = set()
            for (p, c) in dag:
                d = dispatch.get((run, p), [])
                if d and c in submitted_at and submitted_at[c] < ns(d[0]["ts"]) + ns(d[0]["dur"]):
                    must.add((p, c))
            if not got <= dag:
                fail("run %d: dependency arrows %s that are no edge of %s" % (run, sorted(got - dag), sorted(dag)))
            if not must <= got:
                fail("run %d: no dependency arrow for %s (consumers submitted while their producer ran)"
                     % (run, sorted(must - got)))
            if args.all_edges and got != dag:
                fail("run %d: dependency arrows %s, not %s" % (run, sorted(got), sorted(dag)))
    if args.kernel_arrows is not None:
        got = sum(1 for (name, fid), ends in flows.items() if name == "dependency" and len(ends) == 2
                  and ("AIC core" in track(ends["s"]) or "AIV core" in track(ends["s"])))
        if got != args.kernel_arrows:
            fail("%d dependency arrows between kernels, not %d" % (got, args.kernel_arrows))
    if args.kernel_submit_arrows is not None:
        got = sum(1 for (name, fid), ends in flows.items() if name == "submit" and len(ends) == 2
                  and ("AIC core" in track(ends["f"]) or "AIV core" in track(ends["f"])))
        if got != args.kernel_submit_arrows:
            fail("%d submit arrows reach kernels, not %d" % (got, args.kernel_submit_arrows))
    if args.min_counters is not None:
        got = sum(1 for e in body if e["ph"] == "C")
        if got < args.min_counters:
            fail("%d counter samples, not at least %d" % (got, args.min_counters))
    names = {e["name"] for e in slices}
    for c in (args.callables.split(",") if args.callables else []):
        if not any(n == c or n.startswith(c + ":") for n in names):
            fail("no slice names the callable %r" % c)
    for inst in args.instant or []:
        if not any(e["ph"] == "i" and e["name"] == inst for e in body):
            fail("no instant %r" % inst)
    if args.unended is not None:
        got = sum(1 for e in body if e["ph"] == "B")
        if got < args.unended:
            fail("%d slices that never ended, not at least %d" % (got, args.unended))
    if args.pids_of_child is not None:
        pids = {e["pid"] for e in body if e["ph"] in ("X", "B") and track(e) == "chip orchestrator"}
        if len(pids) != args.pids_of_child:
            fail("chip tasks ran in %d processes, not %d" % (len(pids), args.pids_of_child))


def check_postmortem(path, args):
    pm = json.load(open(path, encoding="utf-8"))
    for key in ("strata_postmortem", "child", "pid", "death", "summary", "rings"):
        if key not in pm:
            fail("postmortem without %r" % key)
    rings = pm.get("rings", [])
    if not rings or rings[0].get("name") not in ("chip orchestrator", "SUB function", "engine"):
        fail("the first ring is not the child's main thread's: %r" % (rings[:1],))
    begins = [e for e in rings[0].get("events", []) if e.get("event") == "task_begin"] if rings else []
    if not begins:
        fail("no task_begin in the main ring")
    elif args.callable and begins[-1].get("callable") != args.callable:
        fail("the last task began is of %r, not %r" % (begins[-1].get("callable"), args.callable))
    if begins and rings:
        last = begins[-1]
        if any(e.get("event") == "task_end" and e.get("id") == last["id"] for e in rings[0]["events"]):
            fail("the task the child died in has an end")
    if args.in_kernel and not any("in_kernel" in r for r in rings[1:]):
        fail("no core was in a kernel")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("path")
    ap.add_argument("--postmortem", action="store_true")
    ap.add_argument("--runs")
    ap.add_argument("--absent-runs")
    ap.add_argument("--slack-us", type=float, default=0,
                    help="how far a child's slice may stick out of its dispatch slice (another host's clock)")
    ap.add_argument("--tasks-per-run", type=int)
    ap.add_argument("--edges")
    ap.add_argument("--all-edges", action="store_true", help="every edge of --edges must be an arrow")
    ap.add_argument("--kernels-per-chip-task", type=int)
    ap.add_argument("--callables")
    ap.add_argument("--kernels", type=int)
    ap.add_argument("--kernel-arrows", type=int)
    ap.add_argument("--kernel-submit-arrows", type=int, help="submit arrows that end on a core")
    ap.add_argument("--min-counters", type=int, help="at least this many counter samples")
    ap.add_argument("--deep-chip-tasks", type=int)
    ap.add_argument("--deep-sub-tasks", type=int)
    ap.add_argument("--deep-dispatch", type=int)
    ap.add_argument("--kernel-cores", type=int)
    ap.add_argument("--instant", action="append")
    ap.add_argument("--unended", type=int)
    ap.add_argument("--pids-of-child", type=int)
    ap.add_argument("--callable")
    ap.add_argument("--in-kernel", action="store_true")
    args = ap.parse_args()
    try:
        (check_postmortem if args.postmortem else check_trace)(args.path, args)
    except (OSError, ValueError, KeyError, TypeError) as e:
        fail("%s: %s" % (args.path, e))
    for f in failures:
        print("check_trace: " + f, file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
