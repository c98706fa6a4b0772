"""Traces and the flight recorder through the package: strata.trace over a
known DAG (checked by tests/trace/check_trace.py, the C tests' checker, and
read here with json), a run left out, and a SUB child killed mid-task whose
death names what it was running and a postmortem file."""

import json
import os
import signal
import subprocess
import time

import numpy as np
import pytest

import strata
from strata import CallConfig, TaskArgs, TensorArgType, Worker

CHECKER = os.path.join(os.path.dirname(__file__), "..", "trace", "check_trace.py")


def check(path, *expect):
    r = subprocess.run(["/usr/bin/python3", CHECKER, str(path), *expect], capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, r.stderr


def produce(args):
    # waits (bounded) until every task of the run is submitted: each then waits
    # for its producers, so every edge of the DAG is an arrow
    gate = args.tensor(1)
    for _ in range(10000):
        if gate[0]:
            break
        time.sleep(0.001)
    args.tensor(0)[:] = 1


def plus_one(args):
    args.tensor(1)[:] = args.tensor(0) + 1


def add(args):
    args.tensor(2)[:] = args.tensor(0) + args.tensor(1)


def test_a_dag_in_the_trace(tmp_path):
    path = tmp_path / "dag.json"
    with Worker(level=3, num_sub_workers=2) as w:
        hp, h1, ha = w.register(produce), w.register(plus_one), w.register(add)
        w.init()
        x, y, z, out = (w.host_empty((4,), "float32") for _ in range(4))
        gate = w.host_zeros((1,), "int64")

        def dag(orch, args, config):
            gate[0] = 0
            ta = TaskArgs()
            ta.add_tensor(x, TensorArgType.OUTPUT)
            ta.add_tensor(gate, TensorArgType.NO_DEP)
            orch.submit_sub(hp, ta)
            for dst in (y, z):
                ta = TaskArgs()
                ta.add_tensor(x, TensorArgType.INPUT)
                ta.add_tensor(dst, TensorArgType.OUTPUT)
                orch.submit_sub(h1, ta)
            ta = TaskArgs()
            ta.add_tensor(y, TensorArgType.INPUT)
            ta.add_tensor(z, TensorArgType.INPUT)
            ta.add_tensor(out, TensorArgType.OUTPUT)
            orch.submit_sub(ha, ta)
            gate[0] = 1

        with strata.trace(path):
            w.run(dag)
            w.run(dag, config=CallConfig(trace=strata.TRACE_SKIP))
            w.run(dag)
        assert (out == 4).all()
    check(path, "--runs", "1,3", "--absent-runs", "2", "--tasks-per-run", "4", "--edges", "1>2,1>3,2>4,3>4",
          "--all-edges", "--callables", "test_trace.produce,test_trace.plus_one,test_trace.add")
    events = json.loads(path.read_text())
    names = {e["args"]["name"] for e in events if e.get("name") == "thread_name"}
    assert "SUB function" in names and "level-3 worker: orchestrator" in names
    assert sum(1 for e in events if e.get("ph") == "X" and e.get("name") == "test_trace.add") == 4   # 2 runs x (engine + child)


def test_trace_refusals(tmp_path):
    strata.trace_begin(str(tmp_path / "a.json"))
    try:
        with pytest.raises(strata.StateError, match="a trace is open already"):
            strata.trace_begin(str(tmp_path / "b.json"))
    finally:
        strata.trace_end()
    with pytest.raises(strata.SystemCallError, match="cannot write the trace file"):
        with strata.trace(tmp_path / "missing-dir" / "t.json"):
            pass
    strata.trace_end()   # none open: nothing to do


def die(args):
    os.kill(os.getpid(), signal.SIGKILL)


def test_a_dead_childs_flight_recorder(tmp_path, monkeypatch):
    monkeypatch.setenv("STRATA_POSTMORTEM_DIR", str(tmp_path))
    with Worker(level=3, num_sub_workers=1) as w:
        hd = w.register(die)
        w.init()
        with strata.trace(tmp_path / "death.json"):
            with pytest.raises(strata.ChildDiedError) as e:
                w.run(lambda orch, args, config: orch.submit_sub(hd))
            w.run(lambda orch, args, config: None)   # replaced: the next run works
    msg = str(e.value)
    assert "was killed by signal 9" in msg
    assert "flight recorder: it was running task 1 of run 1 (SUB function 'test_trace.die') for " in msg
    path = msg.split("its last events are in ")[1].rstrip(")")
    assert path.startswith(str(tmp_path))
    pm = json.loads(open(path).read())
    assert pm["rings"][0]["events"][-1]["event"] == "task_begin"
    check(path, "--postmortem", "--callable", "test_trace.die")
    check(tmp_path / "death.json", "--instant", "child died", "--instant", "child restarted", "--unended", "1")
