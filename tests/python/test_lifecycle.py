"""The lifecycle promise (SPEC.md, "Lifecycle guarantees"; docs/lifecycle.md)
seen from Python, with the application as hostile as real ones are: chip and
SUB children killed between runs and in the middle of a task, SUB functions
that hang, exit or raise, the FAIL policy, a Worker closed or collected inside
its own SUB child or in a fork of the application, handles and buffers of one
worker handed to another, and a thousand runs with nothing growing."""

import gc
import os
import signal
import threading
import time

import numpy as np
import pytest

import strata
from strata import CallConfig, TaskArgs, TensorArgType, Worker, WorkerState

from conftest import (UNDER_ASAN, alive, children_of, counts_memory, descendants, gone, mappings, open_fds,
                      proc_stat, tensor_args, wait_until, zombies_below)


def describe(procs):
    """pid -> (state, parent pid, name), for a failure's message."""
    return {p: proc_stat(p) or (state, None, None) for p, state in procs.items()}


# ---- helpers ----

def add_args(x, value=1, sleep_ms=0):
    """test_add's arguments: x (int64, INOUT) += value after sleeping sleep_ms."""
    return tensor_args(x, scalars=(value, sleep_ms))


def next_pid(w, i, old, timeout=10.0):
    """Poll child_pid(i) until it answers with a pid other than old (policy restart)."""
    got = []

    def answered():
        try:
            p = w.child_pid(i)
        except strata.StrataError:
            return False
        got.append(p)
        return p != old

    assert wait_until(answered, timeout=timeout), f"child {i} was not replaced (last answer {got[-1:]})"
    return got[-1]


def kill_later(pids, delay):
    """SIGKILL pids from another thread after delay seconds (the pids are read
    before the run: other threads may not call the worker while it runs)."""
    t = threading.Timer(delay, lambda: [os.kill(p, signal.SIGKILL) for p in pids])
    t.start()
    return t


# ---- a chip child killed ----

def test_chip_child_killed_between_runs_is_reported_and_replaced(chip_callable):
    with Worker(level=3, device_ids=[0], num_sub_workers=1, close_grace_s=0.5) as w:
        h = w.register(chip_callable)
        w.init()
        x = w.host_zeros(4, "int64")
        w.run(lambda o, a, c: o.submit_next_level(h, add_args(x), worker=0))
        assert (x == 1).all()
        victim, sub_pid = w.child_pid(0), w.child_pid(1)
        os.kill(victim, signal.SIGKILL)
        assert wait_until(lambda: gone(victim)), "the killed chip child was not reaped"

        with pytest.raises(strata.ChildDiedError) as e:
            w.run(lambda o, a, c: o.submit_next_level(h, add_args(x), worker=0))
        assert isinstance(e.value, ChildProcessError)
        msg = str(e.value)
        assert f"pid {victim}" in msg and "signal 9" in msg, msg
        assert e.value.status_name == "STRATA_ECHILD"
        assert (x == 1).all(), "the run that reported the death started nothing"

        fresh = next_pid(w, 0, victim)
        assert alive(fresh)
        w.run(lambda o, a, c: o.submit_next_level(h, add_args(x), worker=0))
        assert (x == 2).all()
        assert w.stats()["child_restarts"] == 1
        assert w.child_pid(1) == sub_pid, "the SUB child had nothing to do with it"
        assert w.state == WorkerState.READY
        assert wait_until(lambda: zombies_below(os.getpid()) == []), descendants(os.getpid())


def test_chip_child_killed_mid_task(chip_callable):
    with Worker(level=3, device_ids=[0], close_grace_s=0.5) as w:
        h = w.register(chip_callable)
        w.init()
        x = w.host_zeros(4, "int64")
        w.run(lambda o, a, c: o.submit_next_level(h, add_args(x), worker=0))
        victim = w.child_pid(0)
        timer = kill_later([victim], 0.3)
        t0 = time.monotonic()
        with pytest.raises(strata.ChildDiedError) as e:
            # The kernel sleeps 20 s before it adds: the kill lands inside it.
            w.run(lambda o, a, c: o.submit_next_level(h, add_args(x, sleep_ms=20000), worker=0))
        elapsed = time.monotonic() - t0
        timer.join()
        assert isinstance(e.value, ChildProcessError)
        msg = str(e.value)
        assert f"pid {victim}" in msg and "signal 9" in msg and "while running task" in msg, msg
        assert elapsed < 5.0, f"the death was noticed after {elapsed:.2f} s"
        assert (x == 1).all()

        fresh = next_pid(w, 0, victim)
        w.run(lambda o, a, c: o.submit_next_level(h, add_args(x, 5), worker=0))
        assert (x == 6).all()
        assert w.child_pid(0) == fresh
        assert w.stats()["child_restarts"] == 1
        assert gone(victim)
        assert zombies_below(os.getpid()) == []


def test_two_chip_children_killed_at_once(chip_callable):
    with Worker(level=3, device_ids=[0, 1], num_sub_workers=1, close_grace_s=0.5) as w:
        h = w.register(chip_callable)
        w.init()
        x = w.host_zeros(2, "int64")

        def both(value=1, sleep_ms=0):
            def orch(o, a, c):
                for i in range(2):
                    o.submit_next_level(h, add_args(x[i:i + 1], value, sleep_ms), worker=i)
            return orch

        w.run(both())
        sub_pid = w.child_pid(2)

        # Between runs: the next run names both deaths and starts nothing.
        victims = [w.child_pid(0), w.child_pid(1)]
        for p in victims:
            os.kill(p, signal.SIGKILL)
        assert wait_until(lambda: all(gone(p) for p in victims))
        with pytest.raises(strata.ChildDiedError) as e:
            w.run(both())
        msg = str(e.value)
        for p in victims:
            assert f"pid {p}" in msg, msg
        assert msg.count("signal 9") == 2, msg
        fresh = [next_pid(w, i, victims[i]) for i in range(2)]
        w.run(both())
        assert (x == 2).all()
        assert w.stats()["child_restarts"] == 2

        # Mid-task: both chips asleep in their kernels, killed together.
        timer = kill_later(fresh, 0.3)
        t0 = time.monotonic()
        with pytest.raises(strata.ChildDiedError) as e:
            w.run(both(sleep_ms=20000))
        timer.join()
        assert time.monotonic() - t0 < 5.0
        msg = str(e.value)
        for p in fresh:
            assert f"pid {p}" in msg, msg
        for i in range(2):
            next_pid(w, i, fresh[i])
        w.run(both(3))
        assert (x == 5).all()
        assert w.stats()["child_restarts"] == 4
        assert w.child_pid(2) == sub_pid
        assert wait_until(lambda: zombies_below(os.getpid()) == [])
        # exactly the worker's processes: the spawner and its three children
        assert len(descendants(os.getpid())) == 4, describe(descendants(os.getpid()))


def test_sub_child_killed_mid_task_cancels_its_dependents():
    def nap(args):
        time.sleep(args.scalar(0) / 1000)
        args.tensor(0)[0] += 1

    with Worker(level=3, num_sub_workers=1, close_grace_s=0.5) as w:
        h = w.register(nap)
        w.init()
        x = w.host_zeros(1, "int64")
        w.run(lambda o, a, c: o.submit_sub(h, tensor_args(x, scalars=[0])))
        victim = w.child_pid(0)

        def orch(o, a, c):
            o.submit_sub(h, tensor_args(x, scalars=[20000]))
            o.submit_sub(h, tensor_args(x, scalars=[0]))      # depends on the first: canceled

        timer = kill_later([victim], 0.3)
        with pytest.raises(strata.ChildDiedError, match=f"pid {victim}"):
            w.run(orch)
        timer.join()
        s = w.stats()
        assert s["tasks_canceled"] >= 1
        assert x[0] == 1
        next_pid(w, 0, victim)
        w.run(lambda o, a, c: o.submit_sub(h, tensor_args(x, scalars=[0])))
        assert x[0] == 2


# ---- the FAIL policy ----

def test_fail_policy_makes_the_worker_failed(chip_callable):
    w = Worker(level=3, device_ids=[0], num_sub_workers=1, on_child_death="fail", close_grace_s=0.5)
    try:
        h = w.register(chip_callable)
        w.init()
        x = w.host_zeros(4, "int64")
        w.run(lambda o, a, c: o.submit_next_level(h, add_args(x), worker=0))
        victim = w.child_pid(0)
        os.kill(victim, signal.SIGKILL)
        assert wait_until(lambda: gone(victim))
        with pytest.raises(strata.ChildDiedError, match=f"pid {victim}"):
            w.run(lambda o, a, c: o.submit_next_level(h, add_args(x), worker=0))
        assert w.state == WorkerState.FAILED

        for call in (lambda: w.run(lambda o, a, c: None),
                     lambda: w.run(lambda o, a, c: o.submit_next_level(h, add_args(x), worker=0)),
                     lambda: w.malloc(64),
                     lambda: w.register(lambda args: None)):
            t0 = time.monotonic()
            with pytest.raises(strata.WorkerFailedError) as e:
                call()
            assert isinstance(e.value, RuntimeError) and e.value.status_name == "STRATA_EFAILED"
            assert time.monotonic() - t0 < 1.0, "a FAILED worker answers at once"
        assert w.state == WorkerState.FAILED
        w.stats()                                   # the reads still answer
        w.child_pid(1)
        assert (x == 1).all()
    finally:
        t0 = time.monotonic()
        w.close()
        assert time.monotonic() - t0 < 5.0
    assert w.state == WorkerState.CLOSED
    w.close()
    assert wait_until(lambda: descendants(os.getpid()) == {})


# ---- hung, exiting and raising SUB functions ----

def _hang_sleep(args):
    args.tensor(0)[0] = os.getpid()
    time.sleep(1000)


def _hang_pause(args):
    args.tensor(0)[0] = os.getpid()
    while True:
        signal.pause()


@pytest.mark.parametrize("hang", [_hang_sleep, _hang_pause], ids=["sleep", "pause"])
def test_hung_sub_function_is_bounded_by_task_timeout(hang):
    def quick(args):
        args.tensor(0)[1] += 1

    timeout_s = 0.3
    with Worker(level=3, num_sub_workers=1, task_timeout_s=timeout_s, close_grace_s=0.5) as w:
        hh, hq = w.register(hang), w.register(quick)
        w.init()
        x = w.host_zeros(2, "int64")
        before = w.child_pid(0)
        t0 = time.monotonic()
        with pytest.raises(strata.TaskTimeoutError) as e:
            w.run(lambda o, a, c: o.submit_sub(hh, tensor_args(x)))
        elapsed = time.monotonic() - t0
        assert isinstance(e.value, TimeoutError)
        assert e.value.status_name == "STRATA_ETIMEDOUT"
        assert elapsed < 10 * timeout_s, f"returned after {elapsed:.2f} s"
        assert x[0] == before, "the task ran in the SUB child"
        assert f"pid {before}" in str(e.value) and "timeout" in str(e.value), str(e.value)
        assert wait_until(lambda: gone(before)), "the hung child was killed and reaped"

        # The worker goes on: a replacement runs the next task.
        for _ in range(3):
            w.run(lambda o, a, c: o.submit_sub(hq, tensor_args(x)))
        assert x[1] == 3
        assert w.child_pid(0) != before
        assert w.state == WorkerState.READY


def test_call_config_timeout_bounds_one_run():
    with Worker(level=3, num_sub_workers=1, close_grace_s=0.5) as w:   # no worker-wide timeout
        h = w.register(_hang_sleep)
        w.init()
        x = w.host_zeros(1, "int64")
        t0 = time.monotonic()
        with pytest.raises(strata.TaskTimeoutError):
            w.run(lambda o, a, c: o.submit_sub(h, tensor_args(x)), None, CallConfig(timeout_ms=200))
        assert time.monotonic() - t0 < 2.0
        w.run(lambda o, a, c: None)


def test_sub_function_exits():
    def leave(args):
        args.tensor(0)[0] = os.getpid()
        os._exit(3)

    def inc(args):
        args.tensor(0)[1] += 1

    with Worker(level=3, num_sub_workers=1, close_grace_s=0.5) as w:
        hl, hi = w.register(leave), w.register(inc)
        w.init()
        x = w.host_zeros(2, "int64")
        before = w.child_pid(0)
        with pytest.raises(strata.ChildDiedError) as e:
            w.run(lambda o, a, c: o.submit_sub(hl, tensor_args(x)))
        assert isinstance(e.value, ChildProcessError)
        msg = str(e.value)
        assert f"pid {before}" in msg and "status 3" in msg, msg
        assert x[0] == before
        next_pid(w, 0, before)
        w.run(lambda o, a, c: o.submit_sub(hi, tensor_args(x)))
        assert x[1] == 1
        assert w.stats()["child_restarts"] == 1
        assert zombies_below(os.getpid()) == []


def test_sub_function_raises_and_uses_numpy_views_without_dying():
    def work(args):
        a, b = args.tensor(0), args.tensor(1)
        if args.scalar(0):
            b[:] = -1                       # written before the failure: stays written
            raise ValueError(f"bad row {int(a[0, 0])}")
        b[:] = a * 2 + args[0].numpy()      # a numpy array and a TensorView over one buffer

    with Worker(level=3, num_sub_workers=1) as w:
        h = w.register(work)
        w.init()
        a = w.host_empty((3, 5), "float64")
        a[:] = np.arange(15).reshape(3, 5)
        b = w.host_zeros((3, 5), "float64")
        pid = w.child_pid(0)

        def orch(fail):
            def f(o, _a, _c):
                ta = TaskArgs()
                ta.add_tensor(a, TensorArgType.INPUT)
                ta.add_tensor(b, TensorArgType.OUTPUT)
                ta.add_scalar(fail)
                o.submit_sub(h, ta)
            return f

        with pytest.raises(strata.TaskError, match="ValueError: bad row 0"):
            w.run(orch(1))
        assert (b == -1).all()
        w.run(orch(0))
        assert (b == a * 3).all()
        assert w.child_pid(0) == pid, "an exception fails the task, never the child"
        assert w.stats()["child_restarts"] == 0


# ---- a Worker object inside its own children, and in a fork of the application ----

@pytest.mark.parametrize("how", ["close", "collect"])
def test_worker_closed_or_collected_in_its_sub_child_does_nothing(how, chip_callable):
    holder = []

    def meddle(args):
        out = args.tensor(0)
        out[2] = os.getpid()
        if not holder:                      # collected by an earlier call in this child
            return
        wc = holder[0]                      # this child's copy of the parent's Worker
        try:
            wc.run(lambda o, a, c: None)
        except strata.StateError as e:
            out[0] = 1 if "belongs to process" in str(e) else 2
        try:
            wc.malloc(64)
        except strata.StateError:
            out[1] = 1
        if how == "close":
            wc.close()
            wc.close()
        else:
            del wc
            holder.clear()
            gc.collect()

    w = Worker(level=3, device_ids=[0], num_sub_workers=1, close_grace_s=0.5)
    holder.append(w)
    try:
        chip = w.register(chip_callable)
        h = w.register(meddle)                 # before init: the children hold the closure and w
        w.init()
        out = w.host_zeros(3, "int64")
        x = w.host_zeros(2, "int64")
        pids = [w.child_pid(0), w.child_pid(1)]
        w.run(lambda o, a, c: o.submit_sub(h, tensor_args(out)))
        assert out[0] == 1 and out[1] == 1, out
        assert out[2] == pids[1]
        for _ in range(3):
            w.run(lambda o, a, c: (o.submit_next_level(chip, add_args(x), worker=0),
                                   o.submit_sub(h, tensor_args(out))))
        assert (x == 3).all()
        assert [w.child_pid(0), w.child_pid(1)] == pids
        assert w.stats()["child_restarts"] == 0
        assert all(alive(p) for p in pids)
    finally:
        holder.clear()
        w.close()


def test_worker_used_in_a_fork_of_the_application(chip_callable):
    with Worker(level=3, device_ids=[0], num_sub_workers=1, close_grace_s=0.5) as w:
        chip = w.register(chip_callable)
        w.init()
        x = w.host_zeros(2, "int64")
        pids = [w.child_pid(0), w.child_pid(1)]
        r, wr = os.pipe()
        pid = os.fork()
        if pid == 0:                            # the fork: every call refused, close touches nothing shared
            code = 0
            try:
                try:
                    w.run(lambda o, a, c: None)
                    code |= 1
                except strata.StateError as e:
                    if "belongs to process" not in str(e):
                        code |= 2
                try:
                    w.child_pid(0)
                    code |= 4
                except strata.StateError:
                    pass
                for p in pids:
                    os.kill(p, 0)
                w.close()
                del w
                gc.collect()
                os.write(wr, bytes([code]))
            finally:
                os._exit(0)
        os.close(wr)
        got = os.read(r, 1)
        os.close(r)
        _, status = os.waitpid(pid, 0)
        assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0
        assert got == b"\0", f"fork's report {got!r}"
        w.run(lambda o, a, c: o.submit_next_level(chip, add_args(x), worker=0))
        assert (x == 1).all()
        assert [w.child_pid(0), w.child_pid(1)] == pids
        assert w.stats()["child_restarts"] == 0


# ---- a thousand runs, nothing growing ----

def test_thousand_runs_with_a_sub_task_each():
    def inc(args):
        args.tensor(0)[0] += 1

    with Worker(level=3, num_sub_workers=1) as w:
        h = w.register(inc)
        w.init()
        x = w.host_zeros(1, "int64")
        args = tensor_args(x)

        def orch(o, a, c):
            o.submit_sub(h, args)

        w.run(orch)
        fds, maps = open_fds(), mappings()
        procs = sorted(descendants(os.getpid()))
        for _ in range(999):
            w.run(orch)
        assert x[0] == 1000
        assert zombies_below(os.getpid()) == []
        assert sorted(descendants(os.getpid())) == procs
        assert open_fds() == fds, f"descriptors: {open_fds()} after, {fds} before"
        assert mappings() == maps, f"mappings: {mappings()} after, {maps} before"
        s = w.stats()
        assert s["tasks_failed"] == 0 and s["child_restarts"] == 0


def mapped_bytes():
    total = 0
    with open("/proc/self/maps") as f:
        for line in f:
            lo, hi = line.split()[0].split("-")
            total += int(hi, 16) - int(lo, 16)
    return total


def test_worker_created_and_closed_many_times_leaves_nothing():
    def inc(args):
        args.tensor(0)[0] += 1

    def use(w, h):                            # its arrays are gone when it returns
        x = w.host_zeros(1, "int64")
        w.run(lambda o, a, c: o.submit_sub(h, tensor_args(x)))
        assert x[0] == 1

    def once():
        w = Worker(level=3, num_sub_workers=1, close_grace_s=0.5)
        h = w.register(inc)
        w.init()
        use(w, h)
        w.close()

    once()
    gc.collect()
    fds, maps = open_fds(), mappings()
    for _ in range(20):
        once()
    gc.collect()
    assert wait_until(lambda: children_of(os.getpid())[0] == [])
    # (under ASan its allocator maps memory as earlier tests shaped it: descriptors only)
    assert open_fds() == fds and (UNDER_ASAN or mappings() == maps)


@counts_memory
def test_arrays_alive_at_close_are_released_once_dropped():
    """The everyday pattern: arrays made inside `with Worker(...)` are still
    referenced when the block closes the worker, and dropped afterwards."""
    def once():
        with Worker(level=3, num_sub_workers=0, shared_heap_bytes=64 << 20) as w:
            w.init()
            x = w.host_zeros(16 << 20, "uint8")
            x[:] = 1
        assert (x == 1).all()                 # readable after close, as PYTHON.md promises
        del x

    once()   # twice first: numpy's 16 MiB temporary in the check moves malloc's mmap threshold once
    once()
    gc.collect()
    maps, nbytes = mappings(), mapped_bytes()
    for _ in range(4):
        once()
    gc.collect()
    grown = mapped_bytes() - nbytes
    assert grown < (8 << 20) and mappings() <= maps + 2, \
        f"{grown >> 20} MiB and {mappings() - maps} mappings more after 4 workers whose arrays are gone"


# ---- handles and buffers of one worker given to another ----

def test_handles_of_another_worker_are_refused(chip_callable):
    A = Worker(level=3, device_ids=[0], num_sub_workers=1)
    B = Worker(level=3, device_ids=[0], num_sub_workers=1)
    try:
        b_sub = B.register(lambda args: args.tensor(0).__setitem__(0, 1))
        A.register(lambda args: None)
        a_chip = A.register(chip_callable)
        A.init()
        B.init()
        xb = B.host_zeros(1, "int64")
        with pytest.raises(strata.NotFoundError):
            A.unregister(b_sub)
        # A chip handle's number that B does not have.
        with pytest.raises(strata.NotFoundError):
            B.run(lambda o, a, c: o.submit_next_level(a_chip, add_args(xb), worker=0))
        # An int, or a function, where a handle belongs.
        with pytest.raises(TypeError):
            B.run(lambda o, a, c: o.submit_sub(int(b_sub), tensor_args(xb)))
        with pytest.raises(TypeError):
            B.run(lambda o, a, c: o.submit_sub(print, tensor_args(xb)))
        B.run(lambda o, a, c: o.submit_sub(b_sub, tensor_args(xb)))
        assert xb[0] == 1
    finally:
        A.close()
        B.close()


def test_a_handle_with_the_same_number_on_another_worker_is_refused(chip_callable):
    ran = []

    def a_fn(args):
        args.tensor(0)[0] = 100

    def b_fn(args):
        args.tensor(0)[0] = 1

    A = Worker(level=3, device_ids=[0], num_sub_workers=1)
    B = Worker(level=3, device_ids=[0], num_sub_workers=1)
    try:
        a_sub, b_sub = A.register(a_fn), B.register(b_fn)
        a_chip, b_chip = A.register(chip_callable), B.register(chip_callable)
        assert int(a_sub) == int(b_sub) and int(a_chip) == int(b_chip)
        A.init()
        B.init()
        xb = B.host_zeros(1, "int64")
        for wrong in (lambda o, a, c: o.submit_sub(a_sub, tensor_args(xb)),
                      lambda o, a, c: o.submit_next_level(a_chip, add_args(xb), worker=0)):
            try:
                B.run(wrong)
            except (strata.NotFoundError, TypeError):
                ran.append("refused")
            else:
                ran.append(int(xb[0]))
        assert ran == ["refused", "refused"], f"B ran A's handles: {ran}"
    finally:
        A.close()
        B.close()


def test_buffers_of_another_worker_are_refused(chip_callable):
    A = Worker(level=3, device_ids=[0], num_sub_workers=1)
    B = Worker(level=3, device_ids=[0], num_sub_workers=1)
    try:
        A.init()
        B.init()
        a_chip_buf, b_chip_buf = A.malloc(64), B.malloc(64)
        B.copy_to(b_chip_buf, np.arange(8, dtype=np.int64))
        with pytest.raises(strata.NotFoundError):
            B.copy_to(a_chip_buf, np.zeros(8, dtype=np.int64))
        with pytest.raises(strata.NotFoundError):
            B.copy_from(np.zeros(8, dtype=np.int64), a_chip_buf)
        with pytest.raises(strata.NotFoundError):
            B.free(a_chip_buf)
        # Nothing of B's was touched on the way, and A's buffer is still A's.
        out = np.zeros(8, dtype=np.int64)
        B.copy_from(out, b_chip_buf)
        assert (out == np.arange(8)).all()
        A.free(a_chip_buf)
        B.free(b_chip_buf)
    finally:
        A.close()
        B.close()


def shared_ranges():
    """The shared writable mappings of this process, as (start, end) pairs."""
    out = set()
    with open("/proc/self/maps") as f:
        for line in f:
            fields = line.split()
            if fields[1][1] == "w" and fields[1][3] == "s":
                lo, hi = (int(v, 16) for v in fields[0].split("-"))
                out.add((lo, hi))
    return out


def test_memory_of_another_worker_is_refused_as_a_tensor():
    """An application that hands worker B an array of worker A's heap (or any
    memory of A's) gets InvalidArgumentError: B's children cannot see it."""
    import ctypes

    def touch(args):
        t = args.tensor(0)
        t[0] = t[1]

    libc = ctypes.CDLL(None, use_errno=True)
    libc.mmap.restype = ctypes.c_void_p
    libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long]
    libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
    page = os.sysconf("SC_PAGE_SIZE")
    guards = []

    def guard(at):
        """A private page at `at` (if free), so no later shared mapping lies right next to B's."""
        p = libc.mmap(at, page, 0, 0x02 | 0x20 | 0x100000, -1, 0)   # PROT_NONE, PRIVATE|ANONYMOUS|FIXED_NOREPLACE
        if p not in (None, ctypes.c_void_p(-1).value):
            if p == at:
                guards.append(p)
            else:
                libc.munmap(p, page)

    A = B = None
    try:
        before = shared_ranges()
        B = Worker(level=3, num_sub_workers=1)         # B's heap is mapped now
        for lo, hi in shared_ranges() - before:
            guard(lo - page)
            guard(hi)
        h = B.register(touch)
        before = shared_ranges()
        A = Worker(level=3, num_sub_workers=1)
        A.init()
        xa = A.host_zeros(8, "int64")
        a_ranges = sorted(shared_ranges() - before)
        assert a_ranges, "A maps its heap and mailboxes shared"
        B.init()
        sub_pid = B.child_pid(0)
        named = [xa] + [np.frombuffer((ctypes.c_char * 64).from_address(lo), dtype=np.int64)
                        for lo, _hi in a_ranges]
        outcomes = []
        for arr in named:
            try:
                ta = tensor_args(arr)
                B.run(lambda o, a, c: o.submit_sub(h, ta))
                outcomes.append("accepted")
            except strata.InvalidArgumentError:
                outcomes.append("refused")
            except strata.StrataError as e:
                outcomes.append(f"{type(e).__name__}: {e}")
        assert outcomes == ["refused"] * len(named), outcomes
        assert B.child_pid(0) == sub_pid and B.stats()["child_restarts"] == 0
    finally:
        for w in (A, B):
            if w is not None:
                w.close()
        for p in guards:
            libc.munmap(p, page)
