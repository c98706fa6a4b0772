"""The package's surface: the seed program of the followed runtime, run many
times on one worker; statuses, tags and dtypes against the C headers; TaskArgs;
SUB functions over numpy views; groups and scopes; errors for bad input."""

import os
import re

import numpy as np
import pytest

import strata
from strata import (CallConfig, ChipCallable, DataType, TaskArgs, TensorArgType, Worker)

from conftest import children_of, mappings, open_fds


def header(name):
    with open(os.path.join(strata.get_include(), "strata", name)) as f:
        return f.read()


# ---- the C contract, seen from Python ----

def test_statuses_match_the_c_header():
    c = {m.group(1): int(m.group(2)) for m in re.finditer(r"(STRATA_[A-Z]+)\s*=\s*(-?\d+)", header("status.h"))}
    assert c == strata._strata.STATUSES
    classes = {s: type(e) for s, e in []}
    for name, value in c.items():
        assert strata.status_name(value) == name
    expected = {"STRATA_EINVAL": (strata.InvalidArgumentError, ValueError),
                "STRATA_ESTATE": (strata.StateError, RuntimeError),
                "STRATA_ENOENT": (strata.NotFoundError, LookupError),
                "STRATA_ENOMEM": (strata.OutOfMemoryError, MemoryError),
                "STRATA_ERING": (strata.RingError, RuntimeError),
                "STRATA_ETASK": (strata.TaskError, RuntimeError),
                "STRATA_ECANCELED": (strata.CanceledError, RuntimeError),
                "STRATA_ECHILD": (strata.ChildDiedError, ChildProcessError),
                "STRATA_ETIMEDOUT": (strata.TaskTimeoutError, TimeoutError),
                "STRATA_EFAILED": (strata.WorkerFailedError, RuntimeError),
                "STRATA_ESYS": (strata.SystemCallError, OSError),
                "STRATA_EINTR": (strata.RunInterruptedError, InterruptedError)}
    assert set(expected) == set(c) - {"STRATA_OK"}
    for cls, builtin in expected.values():
        assert issubclass(cls, strata.StrataError) and issubclass(cls, builtin)
    assert classes == {}


def test_tags_and_dtypes_match_the_c_header():
    tensor_h = header("tensor.h")
    tags = re.search(r"typedef enum strata_tag \{(.*?)\}", tensor_h, re.S).group(1)
    names = re.findall(r"STRATA_([A-Z_]+)", tags)
    assert names == [t.name for t in TensorArgType]
    assert [int(t) for t in TensorArgType] == list(range(len(names)))
    dtypes = re.search(r"typedef enum strata_dtype \{(.*?)\}", tensor_h, re.S).group(1)
    assert re.findall(r"STRATA_([A-Z0-9]+)", dtypes) == list(strata._strata.C_DTYPES)
    assert [strata._strata.C_DTYPES[n] for n in strata._strata.C_DTYPES] == list(range(12))
    # The followed runtime's DataType values.
    assert (DataType.FLOAT32, DataType.FLOAT16, DataType.INT32, DataType.BFLOAT16, DataType.BOOL) == (0, 1, 2, 6, 11)
    assert strata.numpy_dtype("float32") == np.float32 and strata.numpy_dtype(np.int64) == np.int64


# ---- the seed program ----

def test_seed_program_thousand_runs(chip_callable):
    """The serving code of SPEC.md after an import change and platform="sim"."""
    device_id = 0
    call_config = CallConfig()
    worker = Worker(level=3, platform="a2a3sim", runtime="tensormap_and_ringbuffer",
                    device_ids=[device_id], num_sub_workers=0)
    cid = worker.register(chip_callable)
    worker.init()
    x = worker.host_zeros((16,), "int64")

    def orch_fn(orch, _args, _cfg):
        task_args = TaskArgs()
        task_args.add_tensor(x, TensorArgType.INOUT)
        task_args.add_scalar(1)
        orch.submit_next_level(cid, task_args, call_config, worker=0)

    worker.run(orch_fn)
    fds, maps = open_fds(), mappings()
    for _ in range(999):
        worker.run(orch_fn)
    assert (x == 1000).all()
    assert children_of(os.getpid())[1] == 0, "zombies"
    assert open_fds() == fds and mappings() == maps
    s = worker.stats()
    assert s["tasks_completed"] >= 1000 and s["tasks_failed"] == 0
    worker.close()
    assert worker.state == strata.WorkerState.CLOSED


def test_level2_run(chip_callable):
    with Worker(level=2, device_id=0) as w:
        w.init()
        h = w.register(chip_callable)
        buf = w.malloc(8 * 8)
        w.copy_to(buf, np.arange(8, dtype=np.int64))
        ta = TaskArgs()
        ta.add_tensor(buf.tensor((8,), DataType.INT64), TensorArgType.INOUT)
        ta.add_scalar(5)
        for _ in range(3):
            w.run(h, ta)
        out = np.empty(8, dtype=np.int64)
        w.copy_from(out, buf)
        assert (out == np.arange(8) + 15).all()
        assert w.committed_device_memory() == 64
        w.free(buf)
        assert w.committed_device_memory() == 0


# ---- SUB functions ----

def test_sub_reads_and_writes_numpy_views():
    seen = []

    def scale(args):
        a = args.tensor(0)            # numpy over the shared heap
        b = args.tensor(1)
        b[:] = a * args.scalar(0)
        v = args[1]
        assert v.shapes == (4, 3) and v.dtype == DataType.FLOAT32 and isinstance(v.buffer, memoryview)
        seen.append(1)                # the child's list: the parent's stays empty

    with Worker(level=3, num_sub_workers=1) as w:
        h = w.register(scale)
        w.init()
        a = w.host_empty((4, 3), "float32")
        b = w.host_zeros((4, 3), np.float32)
        a[:] = np.arange(12, dtype=np.float32).reshape(4, 3)

        def orch(o, args, cfg):
            ta = TaskArgs()
            ta.add_tensor(a, TensorArgType.INPUT)
            ta.add_tensor(b, TensorArgType.OUTPUT)
            ta.add_scalar(2)
            o.submit_sub(h, ta)

        w.run(orch)
        assert (b == a * 2).all()
        assert seen == []


def test_sub_views_of_one_buffer_ordered_by_tags():
    def inc(args):
        args.tensor(0)[...] += 1

    with Worker(level=3, num_sub_workers=2) as w:
        h = w.register(inc)
        w.init()
        m = w.host_zeros((8, 8), "int32")

        def orch(o, args, cfg):
            for r in range(8):
                row = TaskArgs()
                row.add_tensor(m[r], TensorArgType.INOUT)          # a row: a view of m's buffer
                o.submit_sub(h, row)
            col = TaskArgs()
            col.add_tensor(m[:, 3], TensorArgType.INOUT)           # a strided column, after every row
            o.submit_sub(h, col)

        for _ in range(5):
            w.run(orch)
        expect = np.full((8, 8), 5)
        expect[:, 3] = 10
        assert (m == expect).all()


def test_sub_function_registered_after_init_with_closure():
    with Worker(level=3, num_sub_workers=2) as w:
        w.init()
        x = w.host_zeros(4, "int64")
        offset = 40

        def add_offset(args, k=2):
            args.tensor(0)[:] += offset + k

        h = w.register(add_offset)

        def orch(o, args, cfg):
            ta = TaskArgs()
            ta.add_tensor(x, TensorArgType.INOUT)
            o.submit_sub(h, ta)
            o.submit_sub(h, ta)

        w.run(orch)
        assert (x == 84).all()


def test_sub_exception_fails_the_task_with_its_traceback():
    def bad(args):
        raise KeyError("row 17 missing")

    def good(args):
        args.tensor(0)[0] += 1

    with Worker(level=3, num_sub_workers=1) as w:
        hb, hg = w.register(bad), w.register(good)
        w.init()
        x = w.host_zeros(1, "int64")

        def orch(o, args, cfg):
            ta = TaskArgs()
            ta.add_tensor(x, TensorArgType.INOUT)
            o.submit_sub(hb, ta)
            o.submit_sub(hg, ta)          # depends on the failed one: canceled

        with pytest.raises(strata.TaskError) as e:
            w.run(orch)
        msg = str(e.value)
        assert "KeyError: 'row 17 missing'" in msg and "Traceback" in msg and "in bad" in msg
        assert e.value.status == -6 and e.value.status_name == "STRATA_ETASK" and e.value.message == msg
        assert x[0] == 0
        w.run(lambda o, a, c: o.submit_sub(hg, _args(x)))
        assert x[0] == 1


def _args(*tensors, tag=TensorArgType.INOUT):
    ta = TaskArgs()
    for t in tensors:
        ta.add_tensor(t, tag)
    return ta


# ---- groups and scopes ----

def test_groups_and_scopes(chip_callable):
    def inc(args):
        for i in range(args.tensor_count()):
            args.tensor(i)[:] += 1

    with Worker(level=3, device_ids=[0, 1], num_sub_workers=2) as w:
        chip = w.register(chip_callable)
        sub = w.register(inc)
        w.init()
        a, b = w.host_zeros(4, "int64"), w.host_zeros(4, "int64")

        def orch(o, args, cfg):
            with o.scope():
                o.submit_next_level_group(chip, [_args(a), _args(b)], None, workers=[0, 1])
                o.submit_sub_group(sub, [_args(a), _args(b)])
            o.scope_begin()
            o.submit_sub(sub, _args(a, b))
            o.scope_end()

        w.run(orch)
        assert (a == 3).all() and (b == 3).all()
        with pytest.raises(strata.InvalidArgumentError):
            w.run(lambda o, a_, c: o.scope_end())


# ---- orch_fn ----

def test_exception_in_orch_fn_propagates_after_tasks_settle():
    def slow(args):
        import time
        time.sleep(0.2)
        args.tensor(0)[0] = 7

    class Boom(Exception):
        pass

    with Worker(level=3, num_sub_workers=1) as w:
        h = w.register(slow)
        w.init()
        x = w.host_zeros(1, "int64")

        def orch(o, args, cfg):
            o.submit_sub(h, _args(x))
            raise Boom("orchestration gave up")

        with pytest.raises(Boom, match="orchestration gave up"):
            w.run(orch)
        assert x[0] == 7                  # the started task settled before run() raised
        w.run(lambda o, a, c: o.submit_sub(h, _args(x)))


def test_orchestrator_is_dead_after_its_run():
    kept = []
    with Worker(level=3, num_sub_workers=0) as w:
        w.init()
        w.run(lambda o, a, c: kept.append(o))
        with pytest.raises(strata.StateError, match="run that has returned"):
            kept[0].scope_begin()


def test_run_passes_args_and_config_through():
    got = []
    with Worker(level=3) as w:
        w.init()
        ta, cfg = TaskArgs(), CallConfig(timeout_ms=5000, runtime_env={"ring_task_window": [64, 32, 16, 16]})
        assert cfg.ring_task_window == [64, 32, 16, 16]
        w.run(lambda o, a, c: got.append((a, c)), ta, cfg)
        assert got == [(ta, cfg)]
        w.run(lambda o, a, c: got.append((a, c)))
        assert got[1] == (None, None)


# ---- bad input, for every call ----

def test_bad_input(chip_callable, tmp_path):
    with pytest.raises(strata.NotFoundError, match="only the embedded simulator"):
        Worker(level=3, platform="a2a3")
    with pytest.raises(strata.InvalidArgumentError, match="on_child_death"):
        Worker(level=3, on_child_death="ignore")
    with pytest.raises(strata.InvalidArgumentError):
        Worker(level=7)
    with pytest.raises(TypeError):
        Worker(level=3, platform=3)
    w = Worker(level=3, device_ids=[0], num_sub_workers=1)
    with pytest.raises(TypeError, match="ChipCallable or a Python function"):
        w.register(42)
    with pytest.raises(strata.NotFoundError):
        ChipCallable.from_symbol(str(tmp_path / "missing.so"), "x")
    chip = w.register(chip_callable)
    sub = w.register(lambda args: None)
    with pytest.raises(strata.StateError):
        w.run(lambda o, a, c: None)              # before init
    w.init()
    x = w.host_zeros(4, "int64")
    plain = np.zeros(4, dtype=np.int64)
    ta = TaskArgs()
    with pytest.raises(strata.InvalidArgumentError, match="not in a live worker's shared heap"):
        ta.add_tensor(plain, TensorArgType.INPUT)
    with pytest.raises(TypeError, match="a tensor argument must be"):
        ta.add_tensor("hello")
    with pytest.raises(strata.InvalidArgumentError, match="tag 9"):
        ta.add_tensor(x, 9)
    with pytest.raises(TypeError):
        ta.add_scalar("3")
    with pytest.raises(IndexError):
        ta.tensor(0)
    with pytest.raises(IndexError):
        ta.scalar(-1)
    with pytest.raises(TypeError):
        TaskArgs(1)
    ta.add_tensor(x, TensorArgType.INOUT)
    assert len(ta) == 1 and ta.tensor_count() == 1 and ta.tag(0) == TensorArgType.INOUT
    ta.set_tag(0, TensorArgType.INPUT)
    assert ta.tag(0) == TensorArgType.INPUT
    ta.clear()
    assert len(ta) == 0

    def expect(exc, match, fn):
        with pytest.raises(exc, match=match):
            w.run(fn)

    expect(TypeError, "CallableHandle", lambda o, a, c: o.submit_sub(sub.__int__(), None))
    expect(TypeError, "CallableHandle", lambda o, a, c: o.submit_sub(print, None))
    expect(strata.NotFoundError, "", lambda o, a, c: o.submit_next_level(chip, _args(x), worker=5))
    expect(strata.NotFoundError, "", lambda o, a, c: o.submit_next_level(chip, _args(x), worker=-1))
    expect(TypeError, "worker=", lambda o, a, c: o.submit_next_level(chip, _args(x)))
    expect(TypeError, "args must be a TaskArgs", lambda o, a, c: o.submit_sub(sub, [x]))
    expect(strata.InvalidArgumentError, "", lambda o, a, c: o.submit_next_level_group(chip, [], workers=[]))
    with pytest.raises(TypeError, match="orchestration function"):
        w.run(5)
    with pytest.raises(TypeError):
        w.malloc("big")
    with pytest.raises(strata.NotFoundError):
        w.malloc(64, worker=3)
    with pytest.raises(TypeError, match="ChipBuffer"):
        w.free(x)
    buf = w.malloc(64)
    with pytest.raises(strata.InvalidArgumentError, match="ends at byte"):
        buf.tensor((100,), "float32")
    with pytest.raises(strata.InvalidArgumentError, match="unknown dtype name"):
        buf.tensor((4,), "float33")
    with pytest.raises(strata.InvalidArgumentError, match="8- or 4-bit"):
        buf.tensor((4,), DataType.FP8E4M3FN)
    with pytest.raises(strata.InvalidArgumentError):
        w.copy_to(buf, np.zeros(100))            # larger than the buffer
    w.free(buf)
    with pytest.raises(strata.NotFoundError):
        w.free(buf)
    with pytest.raises(strata.NotFoundError):
        w.child_pid(9)
    w.unregister(sub)
    expect(strata.NotFoundError, "unregistered", lambda o, a, c: o.submit_sub(sub))
    w.close()
    w.close()
    with pytest.raises(strata.StateError, match="closed"):
        w.register(lambda a: None)
    with pytest.raises(strata.StateError, match="closed"):
        w.init()
    assert (x == 0).all()                        # an array over a closed worker's heap stays readable


def test_close_before_init_and_context_manager():
    w = Worker(level=3, num_sub_workers=1)
    w.close()
    w.close()
    with Worker(level=3, num_sub_workers=1) as w2:
        assert w2.state == strata.WorkerState.NEW   # with does not init
    assert w2.state == strata.WorkerState.CLOSED


# ---- interop ----

class DLPackOnly:
    """An object offering only DLPack (as a torch CPU tensor does)."""

    def __init__(self, arr):
        self._arr = arr

    def __dlpack__(self, stream=None):
        return self._arr.__dlpack__()

    def __dlpack_device__(self):
        return self._arr.__dlpack_device__()


def test_dlpack_and_array_interface(chip_callable):
    def inc(args):
        args.tensor(0)[:] += 1

    with Worker(level=3, device_ids=[0], num_sub_workers=1) as w:
        h = w.register(inc)
        w.init()
        buf = w.host_alloc(64)
        assert buf.__array_interface__["shape"] == (64,) and buf.__dlpack_device__() == (1, 0)
        a = np.asarray(buf).view(np.int64)             # the array interface: no copy
        a[:] = 5
        assert np.from_dlpack(buf).view(np.int64)[0] == 5   # DLPack export: the same memory
        assert bytes(memoryview(buf))[:8] == (5).to_bytes(8, "little")
        ta = TaskArgs()
        ta.add_tensor(DLPackOnly(a), TensorArgType.INOUT)   # import in add_tensor
        w.run(lambda o, x, c: o.submit_sub(h, ta))
        assert (a == 6).all()
        chip = w.malloc(64)
        w.copy_to(chip, DLPackOnly(a))                # import in copy_to / copy_from
        back = np.zeros(8, dtype=np.int64)
        w.copy_from(DLPackOnly(back), chip)
        assert (back == 6).all()
        try:
            import torch
        except ImportError:
            return
        t = torch.from_numpy(a)
        ta2 = TaskArgs()
        ta2.add_tensor(t, TensorArgType.INOUT)
        w.run(lambda o, x, c: o.submit_sub(h, ta2))
        assert int(t[0]) == 7


def test_memory_mapped_shared_before_init():
    """A SharedMemory segment and a MAP_SHARED mmap made before init(): tasks take
    arrays over them; memory mapped after init, or private, is refused."""
    import mmap
    from multiprocessing import shared_memory

    def inc(args):
        args.tensor(0)[:] += args.scalar(0)

    seg = shared_memory.SharedMemory(create=True, size=4096)
    anon = mmap.mmap(-1, 8192, flags=mmap.MAP_SHARED)
    try:
        with Worker(level=3, num_sub_workers=1) as w:
            h = w.register(inc)
            w.init()
            a = np.ndarray((16,), dtype=np.int64, buffer=seg.buf)
            b = np.frombuffer(anon, dtype=np.int32)[100:110]
            a[:], b[:] = 1, 2
            ta1, ta2 = TaskArgs(), TaskArgs()
            ta1.add_tensor(a, TensorArgType.INOUT)
            ta1.add_scalar(10)
            ta2.add_tensor(b, TensorArgType.INOUT)
            ta2.add_scalar(5)
            w.run(lambda o, x, c: (o.submit_sub(h, ta1), o.submit_sub(h, ta2)))
            assert (a == 11).all() and (b == 7).all()
            late = mmap.mmap(-1, 4096, flags=mmap.MAP_SHARED)
            with pytest.raises(strata.InvalidArgumentError, match="not in a live worker's shared heap"):
                TaskArgs().add_tensor(np.frombuffer(late, dtype=np.uint8))
            late.close()
            ta1.clear()
            ta2.clear()
            del a, b
    finally:
        seg.close()
        seg.unlink()
        anon.close()


def test_review_cases(chip_callable):
    """Groups from a generator, submits from another thread, copies of the wrong
    type, close during another thread's call, errors raised by the package's
    Python code, worker cycles collected."""
    import gc
    import threading
    import weakref

    def inc(args):
        args.tensor(0)[:] += 1

    w = Worker(level=3, num_sub_workers=2)
    h = w.register(inc)
    w.init()
    x, y = w.host_zeros(4, "int64"), w.host_zeros(4, "int64")
    # a group from a generator: its TaskArgs live through the run
    w.run(lambda o, a, c: o.submit_sub_group(h, (_args(t) for t in (x, y))))
    assert (x == 1).all() and (y == 1).all()
    # an orchestration object used from another thread is refused
    errors = []

    def orch(o, a, c):
        def other():
            try:
                o.submit_sub(h, _args(x))
            except strata.StateError as e:
                errors.append(str(e))
        t = threading.Thread(target=other)
        t.start()
        t.join()

    w.run(orch)
    assert errors and "one thread drives a worker" in errors[0]
    # copies of something that is no host memory
    buf = w.malloc(64) if w.level == 2 else None
    with pytest.raises(strata.InvalidArgumentError) as e:
        strata.CallConfig(runtime_env={"nope": 1})
    assert e.value.status == -1 and e.value.status_name == "STRATA_EINVAL" and "nope" in e.value.message
    assert buf is None
    w.close()
    with pytest.raises(strata.StateError, match="closed"):
        w.register(lambda a: None)

    with Worker(level=3, device_ids=[0], num_sub_workers=0) as w2:
        w2.init()
        cb = w2.malloc(64)
        for bad in (12345, [1, 2, 3]):
            with pytest.raises(TypeError, match="buffer protocol or DLPack"):
                w2.copy_to(cb, bad)
        big = np.zeros(64 << 20, dtype=np.uint8)
        big_chip = w2.malloc(big.nbytes)
        started, refused, late = threading.Event(), [], []

        def copier():
            started.set()
            try:
                for _ in range(50):
                    w2.copy_to(big_chip, big)
            except strata.StateError as e:   # close won between two copies
                late.append(str(e))

        t = threading.Thread(target=copier)
        t.start()
        started.wait()
        import time
        deadline = time.monotonic() + 10
        while t.is_alive() and not refused and time.monotonic() < deadline:
            try:
                w2.close()
            except strata.StateError as e:
                refused.append(str(e))
        t.join()
        # close never ran under a copy: it was refused, naming the thread in the call
        assert refused and "is in a call of this worker" in refused[0], (refused, late)

    # a worker in cycles (its SUB function refers to it; an array in its heap is
    # its attribute) is collected, and closed
    def make_cycle():
        w3 = Worker(level=3, num_sub_workers=1)
        w3.fn = (lambda w: (lambda args: w))(w3)
        w3.register(w3.fn)
        w3.init()
        w3.x = w3.host_zeros(4, "int64")
        return weakref.ref(w3), w3.child_pid(0)

    ref, pid = make_cycle()
    gc.collect()
    assert ref() is None
    from conftest import wait_until, gone
    assert wait_until(lambda: gone(pid))


def test_stats_say_what_the_last_run_and_each_child_did():
    with Worker(level=3, num_sub_workers=2) as w:
        h = w.register(lambda args: None)
        w.init()

        def two_subs(orch, args, config):
            orch.submit_sub(h)
            orch.submit_sub(h)

        w.run(two_subs)
        s = w.stats()
        last = s["last_run"]
        assert last["tasks"] == 2 and last["longest_task"] in (1, 2)
        assert last["wall_ns"] >= last["orch_ns"] > 0
        assert [c["worker"] for c in s["children"]] == [0, 1]
        assert sum(c["tasks"] for c in s["children"]) == 2
        assert all(c["pid"] == w.child_pid(c["worker"]) and c["restarts"] == 0 for c in s["children"])


def test_ring_sizes_per_scope_depth(chip_callable):
    # a list sizes each scope depth's rings (0, 1, 2, 3 and deeper); the chip
    # checks each entry and names it, and reports every depth's rings
    with Worker(level=2, device_id=0) as w:
        w.init()
        h = w.register(chip_callable)
        buf = w.malloc(8 * 8)
        ta = TaskArgs()
        ta.add_tensor(buf.tensor((8,), DataType.INT64), TensorArgType.INOUT)
        ta.add_scalar(1)
        with pytest.raises(strata.InvalidArgumentError, match=r"ring_task_window_by_depth\[1\] is 3"):
            w.run(h, ta, CallConfig(ring_task_window=[64, 3, 16, 16]))
        w.run(h, ta, CallConfig(runtime_env={"PTO2_RING_TASK_WINDOW": [64, 32, 16, 8], "ring_heap": 1 << 20}))
        depths = w.stats()["last_run"]["rings_by_depth"]
        assert [d["task_window"]["size"] for d in depths] == [64, 32, 16, 8]
        assert [d["heap"]["size"] for d in depths] == [1 << 20] * 4
        assert depths[0]["task_window"]["high_water"] >= 1
        with pytest.raises(strata.InvalidArgumentError, match="so it has 4 entries, not 2"):
            CallConfig(runtime_env={"ring_heap": [1, 2]})
        with pytest.raises(strata.InvalidArgumentError, match="so it has 4 entries, not 3"):
            w.run(h, ta, CallConfig(ring_dep_pool=[8, 8, 8]))
        w.free(buf)


def test_the_runtimes_built_in():
    # host_build_graph: the followed runtime's other name, accepted at every level
    with Worker(level=3, runtime="host_build_graph", num_sub_workers=1) as w:
        h = w.register(lambda args: None)
        w.init()
        w.run(lambda orch, args, config: orch.submit_sub(h))
    with pytest.raises(strata.NotFoundError, match="available: tensormap_and_ringbuffer, host_build_graph"):
        Worker(level=3, runtime="aicpu_build_graph", num_sub_workers=1)
