"""Strata inside a Python application that has threads, fork handlers,
buffered output and a terminal: the GIL is given up while a run waits, a
second thread is refused while a run is in flight, workers outlive the
thread that made them, os.register_at_fork handlers run around the forks
Strata makes, buffered output is printed once, and Ctrl-C (a real SIGINT
to the application's process group) stops a run without reaching the
children (docs/lifecycle.md, "Embedding: fork hooks, wait hooks, interrupts")."""

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time

import pytest

import strata
from strata import Worker, WorkerState

from conftest import HERE, alive, children_of, gone, tensor_args, wait_until

# The directory holding the strata package under test, for the scripts run in subprocesses.
PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(strata.__file__)))





def nap(args):
    """A SUB function: note its pid in tensor 0[0], sleep scalar 0 ms, count in tensor 0[1]."""
    t = args.tensor(0)
    t[0] = os.getpid()
    time.sleep(args.scalar(0) / 1000)
    t[1] += 1


# ---- threads ----

def test_other_threads_run_while_a_run_waits():
    counter = [0]
    stop = threading.Event()

    def spin():
        while not stop.is_set():
            counter[0] += 1

    with Worker(level=3, num_sub_workers=1) as w:
        h = w.register(nap)
        w.init()
        x = w.host_zeros(2, "int64")
        t = threading.Thread(target=spin)
        t.start()
        try:
            # Its pace while this thread sleeps in time.sleep (GIL released) ...
            time.sleep(0.05)
            before, t0 = counter[0], time.monotonic()
            time.sleep(0.3)
            free_rate = (counter[0] - before) / (time.monotonic() - t0)
            # ... and while this thread waits in run() for a SUB task of 0.6 s.
            before, t0 = counter[0], time.monotonic()
            w.run(lambda o, a, c: o.submit_sub(h, tensor_args(x, scalars=[600])))
            elapsed = time.monotonic() - t0
            run_rate = (counter[0] - before) / elapsed
        finally:
            stop.set()
            t.join()
        assert x[1] == 1 and elapsed >= 0.5
        # A GIL held through the wait leaves the thread a few switch intervals: ~1% of its pace.
        assert run_rate > 0.25 * free_rate, \
            f"the other thread counted {run_rate:.0f}/s during run(), {free_rate:.0f}/s outside it"


def test_a_second_thread_is_refused_while_a_run_is_in_flight(chip_callable):
    results = {}

    with Worker(level=3, device_ids=[0], num_sub_workers=1, close_grace_s=0.5) as w:
        h = w.register(nap)
        w.register(chip_callable)
        w.init()
        x = w.host_zeros(2, "int64")

        def drive():
            try:
                w.run(lambda o, a, c: o.submit_sub(h, tensor_args(x, scalars=[800])))
                results["run"] = "ok"
            except BaseException as e:       # noqa: BLE001 (reported to the main thread)
                results["run"] = repr(e)

        t = threading.Thread(target=drive)
        t.start()
        try:
            assert wait_until(lambda: x[0] != 0, timeout=10), "the SUB task never started"
            intruders = {
                "run": lambda: w.run(lambda o, a, c: None),
                "malloc": lambda: w.malloc(64),
                "register": lambda: w.register(lambda args: None),
                "close": lambda: w.close(),
            }
            for name, call in intruders.items():
                t0 = time.monotonic()
                with pytest.raises(strata.StateError, match="in a run") as e:
                    call()
                assert isinstance(e.value, RuntimeError)
                assert time.monotonic() - t0 < 0.5, f"{name} waited for the run"
            assert t.is_alive(), "the refusals came while the run was still in flight"
        finally:
            t.join(timeout=30)
        assert results == {"run": "ok"}
        assert x[1] == 1
        # Once the run has returned, this thread may drive the worker.
        buf = w.malloc(64)
        w.free(buf)
        w.run(lambda o, a, c: o.submit_sub(h, tensor_args(x, scalars=[0])))
        assert x[1] == 2 and w.state == WorkerState.READY


def add_args(x, value=1):
    """test_add's arguments (kernels/test_chip.c): x (int64, INOUT) += value."""
    return tensor_args(x, scalars=(value,))


def test_init_on_a_thread_that_ends_then_runs_on_others(chip_callable):
    w = Worker(level=3, device_ids=[0], num_sub_workers=1, close_grace_s=0.5)
    try:
        chip = w.register(chip_callable)
        h = w.register(nap)
        errors = []

        def init():
            try:
                w.init()
            except BaseException as e:   # noqa: BLE001
                errors.append(e)

        t = threading.Thread(target=init)
        t.start()
        t.join()
        assert errors == []
        pids = [w.child_pid(0), w.child_pid(1)]
        time.sleep(0.3)                      # a child tied to the thread's life would be gone by now
        assert all(alive(p) for p in pids)
        x = w.host_zeros(2, "int64")
        y = w.host_zeros(1, "int64")

        def orch(o, a, c):
            o.submit_next_level(chip, add_args(y), worker=0)
            o.submit_sub(h, tensor_args(x, scalars=[0]))

        w.run(orch)                          # on the main thread
        t = threading.Thread(target=lambda: w.run(orch))
        t.start()
        t.join()
        assert x[1] == 2 and y[0] == 2
        assert [w.child_pid(0), w.child_pid(1)] == pids

        # A restart carried out by a run on a short-lived thread.
        os.kill(pids[1], signal.SIGKILL)
        assert wait_until(lambda: gone(pids[1]))
        got = []

        def failing_then_working():
            for _ in range(2):
                try:
                    w.run(orch)
                    got.append("ok")
                except strata.ChildDiedError:
                    got.append("died")

        t = threading.Thread(target=failing_then_working)
        t.start()
        t.join()
        assert got == ["died", "ok"]
        fresh = w.child_pid(1)
        assert fresh != pids[1]
        time.sleep(0.3)
        assert alive(fresh) and alive(pids[0])
        w.run(orch)
        assert x[1] == 4 and y[0] == 4
        assert w.child_pid(1) == fresh and w.stats()["child_restarts"] == 1
    finally:
        w.close()


def test_restart_while_another_thread_is_busy():
    stop = threading.Event()
    counter = [0]

    def busy():
        while not stop.is_set():
            counter[0] += 1
            sum(range(50))

    t = threading.Thread(target=busy)
    t.start()
    try:
        with Worker(level=3, num_sub_workers=2, task_timeout_s=10, close_grace_s=0.5) as w:
            h = w.register(nap)
            w.init()                          # the spawner forked while the thread runs
            xs = [w.host_zeros(2, "int64") for _ in range(2)]

            def orch(o, a, c):
                for x in xs:
                    o.submit_sub(h, tensor_args(x, scalars=[1]))

            w.run(orch)
            for round_ in range(3):
                victim = w.child_pid(round_ % 2)
                os.kill(victim, signal.SIGKILL)
                assert wait_until(lambda: gone(victim))
                t0 = time.monotonic()
                with pytest.raises(strata.ChildDiedError, match=f"pid {victim}"):
                    w.run(orch)
                w.run(orch)                   # replacement children run Python code
                assert time.monotonic() - t0 < 5.0
                assert t.is_alive()
            assert [int(x[1]) for x in xs] == [4, 4]
            assert w.stats()["child_restarts"] == 3
    finally:
        stop.set()
        t.join()
    assert counter[0] > 0


# ---- fork handlers and buffered output ----

_fork_log = None     # set by the test below; the handlers do nothing otherwise


def _log(kind):
    if _fork_log is not None:
        with open(_fork_log, "a") as f:
            f.write(f"{kind} {os.getpid()}\n")


os.register_at_fork(before=lambda: _log("before"), after_in_parent=lambda: _log("parent"),
                    after_in_child=lambda: _log("child"))


def test_register_at_fork_handlers_run_in_strata_forks(tmp_path):
    global _fork_log
    log = tmp_path / "forks.log"
    log.write_text("")

    def where(args):
        args.tensor(0)[0] = os.getpid()

    _fork_log = str(log)
    try:
        with Worker(level=3, num_sub_workers=1, close_grace_s=0.5) as w:
            h = w.register(where)
            w.init()
            x = w.host_zeros(1, "int64")
            w.run(lambda o, a, c: o.submit_sub(h, tensor_args(x)))
            sub_pid = w.child_pid(0)
            assert x[0] == sub_pid
            spawner = children_of(os.getpid())[0]
            assert len(spawner) == 1
            spawner = spawner[0]
            entries = [line.split() for line in log.read_text().splitlines()]
            by_kind = {k: [int(p) for kk, p in entries if kk == k] for k in ("before", "parent", "child")}
            me = os.getpid()
            # This process: one fork (the spawner's), its handlers run here.
            assert by_kind["before"].count(me) == 1 and by_kind["parent"].count(me) == 1, entries
            # In the new processes: the spawner and the SUB child it forked.
            assert spawner in by_kind["child"] and sub_pid in by_kind["child"], entries
            # The spawner forks the children: before/after_in_parent run there.
            assert spawner in by_kind["before"] and spawner in by_kind["parent"], entries

            # A replacement child runs them too.
            os.kill(sub_pid, signal.SIGKILL)
            assert wait_until(lambda: gone(sub_pid))
            with pytest.raises(strata.ChildDiedError):
                w.run(lambda o, a, c: o.submit_sub(h, tensor_args(x)))
            w.run(lambda o, a, c: o.submit_sub(h, tensor_args(x)))
            fresh = w.child_pid(0)
            assert x[0] == fresh != sub_pid
            entries = [line.split() for line in log.read_text().splitlines()]
            assert ["child", str(fresh)] in entries, entries
            assert [k for k, p in entries if int(p) == me] == ["before", "parent"], "no fork of this process"
    finally:
        _fork_log = None


def run_script(body, timeout=60, **kw):
    """Run a Python script in a new interpreter with the package of this
    build; stdout is a pipe (so the script's print is block-buffered)."""
    env = dict(os.environ, PYTHONPATH=PACKAGE_DIR)
    env.pop("PYTHONUNBUFFERED", None)
    return subprocess.run([sys.executable, "-c", textwrap.dedent(body)], stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True, timeout=timeout, env=env, cwd=HERE, **kw)


def test_buffered_output_is_printed_once():
    r = run_script("""
        import ctypes, os, signal, sys, time
        import strata
        from strata import Worker

        libc = ctypes.CDLL(None)
        print("python line before init")             # in the buffer: stdout is a pipe
        sys.stderr.write("stderr line before init\\n")
        libc.printf(b"C stdio line before init\\n")   # C's stdout buffer, also a pipe

        def talk(args):
            print("SUB says", os.getpid())

        w = Worker(level=3, num_sub_workers=1, close_grace_s=0.5)
        h = w.register(talk)
        w.init()
        print("python line after init")
        w.run(lambda o, a, c: o.submit_sub(h))
        pid = w.child_pid(0)
        os.kill(pid, signal.SIGKILL)
        while os.path.exists(f"/proc/{pid}"):
            time.sleep(0.001)
        print("python line before the restart")
        try:
            w.run(lambda o, a, c: o.submit_sub(h))
        except strata.ChildDiedError:
            print("died")
        w.run(lambda o, a, c: o.submit_sub(h))
        w.close()
        print("end")
        libc.fflush(None)
    """)
    assert r.returncode == 0, r.stderr
    out = r.stdout.splitlines()
    for line in ("python line before init", "C stdio line before init", "python line after init",
                 "python line before the restart", "died", "end"):
        assert out.count(line) == 1, r.stdout
    says = [line for line in out if line.startswith("SUB says")]
    assert len(says) == 2 and says[0] != says[1], r.stdout
    assert r.stderr.count("stderr line before init") == 1, r.stderr


# ---- Ctrl-C ----

def start_script(body):
    """A script in a process group of its own (a SIGINT to it never reaches pytest)."""
    env = dict(os.environ, PYTHONPATH=PACKAGE_DIR)
    return subprocess.Popen([sys.executable, "-u", "-c", textwrap.dedent(body)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env, cwd=HERE, start_new_session=True)


def read_line(proc, prefix, timeout=30.0):
    """The next line of the script's output that starts with prefix."""
    result = []

    def reader():
        for line in proc.stdout:
            if line.startswith(prefix):
                result.append(line.split())
                return

    t = threading.Thread(target=reader, daemon=True)
    t.start()
    t.join(timeout)
    if not result:
        proc.kill()
        out, err = proc.communicate(timeout=10)
        pytest.fail(f"no {prefix!r} line within {timeout} s; stdout {out!r}, stderr {err!r}")
    return result[0]


def finish(proc, timeout=30):
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate(timeout=10)
        pytest.fail(f"the script did not finish within {timeout} s; stdout {out!r}, stderr {err!r}")
    return out, err


CTRL_C_SCRIPT = """
    import os, sys, threading, time
    import strata
    from strata import Worker, TaskArgs, TensorArgType

    def nap(args):
        t = args.tensor(0)
        t[0] = os.getpid()
        time.sleep(args.scalar(0) / 1000)
        t[1] += 1

    def args_of(x, ms):
        ta = TaskArgs()
        ta.add_tensor(x, TensorArgType.INOUT)
        ta.add_scalar(ms)
        return ta

    w = Worker(level=3, num_sub_workers=2, close_grace_s=0.5)
    h = w.register(nap)
    w.init()
    x = w.host_zeros(2, "int64")
    y = w.host_zeros(2, "int64")
    print("PIDS", w.child_pid(0), w.child_pid(1))
    MODE = sys.argv[1]

    def announce():          # says RUNNING once the long SUB task has started
        while x[0] == 0:
            time.sleep(0.001)
        print("RUNNING", int(x[0]))

    def orch(o, a, c):
        o.submit_sub(h, args_of(x, 60000))
        if MODE == "orch":                      # the interrupt lands in orch_fn itself
            print("ORCH", os.getpid())
            time.sleep(60)

    if MODE == "task":
        threading.Thread(target=announce, daemon=True).start()
    try:
        w.run(orch)
        print("NOT INTERRUPTED")
    except KeyboardInterrupt:
        print("INTERRUPTED", w.state.name, int(x[0]), w.child_pid(0), w.child_pid(1))
    except BaseException as e:
        print("WRONG", type(e).__name__, e)
    w.run(lambda o, a, c: o.submit_sub(h, args_of(y, 0)))
    w.run(lambda o, a, c: o.submit_sub(h, args_of(y, 0)))
    print("AFTER", int(y[1]), w.child_pid(0), w.child_pid(1), w.stats()["child_restarts"])
    w.close()
    print("OK")
"""


@pytest.mark.parametrize("mode", ["task", "orch"])
def test_ctrl_c_stops_a_run_and_the_worker_goes_on(mode):
    proc = start_script(CTRL_C_SCRIPT.replace("sys.argv[1]", repr(mode)))
    try:
        pids = [int(p) for p in read_line(proc, "PIDS")[1:]]
        if mode == "task":
            busy = int(read_line(proc, "RUNNING")[1])
            assert busy in pids
        else:
            read_line(proc, "ORCH")
            time.sleep(0.1)                  # orch_fn is asleep in time.sleep(60)
        t0 = time.monotonic()
        os.killpg(proc.pid, signal.SIGINT)   # the terminal's Ctrl-C: the script's whole group
        # The children run in process groups of their own: the SIGINT never reached them.
        time.sleep(0.05)
        assert all(alive(p) for p in pids), "a child died of the SIGINT itself"
        words = read_line(proc, "INTERRUPTED", timeout=10 * 0.5 + 5)
        elapsed = time.monotonic() - t0
        out, err = finish(proc)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate(timeout=10)
    assert elapsed < 10 * 0.5, f"KeyboardInterrupt came {elapsed:.2f} s after the SIGINT"
    assert words[1] == "READY", words
    busy = int(words[2])                     # the child running the long task, 0 if it never started
    lines = out.splitlines()
    assert "OK" in lines and proc.returncode == 0, (out, err)
    assert not any(l.startswith(("NOT INTERRUPTED", "WRONG")) for l in lines), out
    after = next(l.split() for l in lines if l.startswith("AFTER"))
    assert after[1] == "2", after
    final, restarts = [int(p) for p in after[2:4]], int(after[4])
    if mode == "task":
        assert busy in pids
    if busy:
        # The busy child passed close_grace_s and was replaced; the idle one is the same process.
        idle = [p for p in pids if p != busy]
        assert idle[0] in final and busy not in final, (pids, final)
        assert restarts == 1
    else:
        assert final == pids and restarts == 0
    assert "KeyboardInterrupt" not in err, err


def test_sigint_to_the_application_group_does_not_reach_idle_children():
    proc = start_script("""
        import os, signal, time
        from strata import Worker
        signal.signal(signal.SIGINT, lambda *a: print("GOT SIGINT"))
        w = Worker(level=3, num_sub_workers=2, close_grace_s=0.5)
        w.register(lambda args: None)
        w.init()
        print("PIDS", w.child_pid(0), w.child_pid(1))
        print("GROUPS", os.getpgid(w.child_pid(0)), os.getpgid(w.child_pid(1)), os.getpgrp())
        time.sleep(1.0)
        w.run(lambda o, a, c: None)
        print("AFTER", w.child_pid(0), w.child_pid(1))
        w.close()
        print("OK")
    """)
    try:
        pids = [int(p) for p in read_line(proc, "PIDS")[1:]]
        groups = [int(g) for g in read_line(proc, "GROUPS")[1:]]
        os.killpg(proc.pid, signal.SIGINT)
        out, err = finish(proc)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate(timeout=10)
    assert groups[2] == proc.pid and groups[0] != groups[2] and groups[1] != groups[2]
    assert "GOT SIGINT" in out and "OK" in out, (out, err)
    after = next(l.split() for l in out.splitlines() if l.startswith("AFTER"))
    assert [int(p) for p in after[1:]] == pids


def test_interrupt_from_another_thread():
    """Worker.interrupt() stops a run driven by another thread (Python delivers
    Ctrl-C to the main thread only): RunInterruptedError, an InterruptedError,
    within a bound; the worker goes on; a request with no run is dropped."""
    import time

    def hang(args):
        time.sleep(1000)

    def inc(args):
        args.tensor(0)[:] += 1

    w = Worker(level=3, num_sub_workers=1, close_grace_s=0.3)
    try:
        hh, hi = w.register(hang), w.register(inc)
        w.init()
        x = w.host_zeros(1, "int64")
        w.interrupt()                                # no run: nothing to stop, nothing remembered
        w.run(lambda o, a, c: o.submit_sub(hi, tensor_args(x)))
        caught = []

        def drive():
            t0 = time.monotonic()
            try:
                w.run(lambda o, a, c: o.submit_sub(hh))
            except InterruptedError as e:
                caught.append((e, time.monotonic() - t0))

        t = threading.Thread(target=drive)
        t.start()
        time.sleep(0.3)
        w.interrupt()
        t.join(30)
        assert caught, "the run was not interrupted"
        e, took = caught[0]
        assert isinstance(e, strata.RunInterruptedError) and "interrupted" in str(e)
        assert took < 0.3 + 10 * (0.1 + 0.3)          # ten times the bound: a sleep's 100 ms and the grace
        assert wait_until(lambda: _answers(w, 0))
        w.run(lambda o, a, c: o.submit_sub(hi, tensor_args(x)))
        assert x[0] == 2
    finally:
        w.close()


def _answers(w, i):
    try:
        w.child_pid(i)
        return True
    except strata.ChildDiedError:
        return False


def test_taskargs_in_flight_cannot_change(chip_callable):
    """A level-2 run releases the GIL for its whole length and reads its
    TaskArgs meanwhile: another thread's change is refused, not a crash."""
    import numpy as np
    with Worker(level=2, device_id=0) as w:
        w.init()
        h = w.register(chip_callable)
        buf = w.malloc(64)
        ta = tensor_args(buf.tensor((8,), "int64"), scalars=(1, 300))   # the kernel sleeps 300 ms
        refused = []

        def meddle():
            time.sleep(0.1)
            for change in (lambda: ta.add_scalar(5), ta.clear, lambda: ta.set_tag(0, 0)):
                try:
                    change()
                except strata.StateError as e:
                    refused.append(str(e))

        t = threading.Thread(target=meddle)
        t.start()
        w.run(h, ta)
        t.join()
        assert len(refused) == 3 and "being read by a submit or run in flight" in refused[0]
        ta.add_scalar(5)                                  # after the run: free to change
        out = np.zeros(8, dtype=np.int64)
        w.copy_from(out, buf)
        assert (out == 1).all()


def test_application_ignoring_or_reaping_sigchld():
    """An application that ignores SIGCHLD, or reaps every child itself
    (os.waitpid(-1) from a handler): Strata's children are the spawner's, so a
    kill is still reported with its signal and the replacement serves."""
    import signal

    def inc(args):
        args.tensor(0)[:] += 1

    reaped = []

    def reap_all(signum, frame):
        try:
            while True:
                pid, _ = os.waitpid(-1, os.WNOHANG)
                if pid == 0:
                    break
                reaped.append(pid)
        except ChildProcessError:
            pass

    for handler in (signal.SIG_IGN, reap_all):
        old = signal.signal(signal.SIGCHLD, handler)
        try:
            with Worker(level=3, num_sub_workers=1) as w:
                h = w.register(inc)
                w.init()
                x = w.host_zeros(1, "int64")
                w.run(lambda o, a, c: o.submit_sub(h, tensor_args(x)))
                pid = w.child_pid(0)
                os.kill(pid, signal.SIGKILL)
                with pytest.raises(strata.ChildDiedError, match=f"pid {pid}.*signal 9"):
                    assert wait_until(lambda: not alive(pid))
                    time.sleep(0.2)                       # the spawner publishes the death
                    w.run(lambda o, a, c: o.submit_sub(h, tensor_args(x)))
                w.run(lambda o, a, c: o.submit_sub(h, tensor_args(x)))
                assert x[0] == 2 and w.child_pid(0) != pid
                assert pid not in reaped                  # never the application's child
        finally:
            signal.signal(signal.SIGCHLD, old)
