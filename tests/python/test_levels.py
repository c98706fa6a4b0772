"""Level 4 from Python: Workers added one level down (add_worker), Python
orchestration functions run in their processes, and the lifecycle through the
tree: a level-3 child killed, an orchestration function that raises, close."""

import os
import shutil
import signal
import subprocess
import sys

import numpy as np
import pytest

import strata
from strata import CallConfig, TaskArgs, TensorArgType, Worker

from conftest import UNDER_ASAN, alive, descendants, wait_until

HERE = os.path.dirname(os.path.abspath(__file__))


def _add_one(x):
    """TaskArgs for the chip callable: add 1 to every element of x."""
    ta = TaskArgs()
    ta.add_tensor(x, TensorArgType.INOUT)
    ta.add_scalar(1)
    return ta


def _tree(chip_callable, n=2):
    """A level-4 Worker over n level-3 Workers (one chip, one SUB child each);
    chips[w]: the chip callable's handle on level-3 Worker w."""
    top = Worker(level=4, close_grace_s=0.5)
    chips = {}
    for i in range(n):
        l3 = Worker(level=3, device_ids=[i], num_sub_workers=1, close_grace_s=0.5)
        chips[l3] = l3.register(chip_callable)
        assert top.add_worker(l3) == i
    return top, chips


def test_orchestration_runs_on_each_child(chip_callable):
    top, chips = _tree(chip_callable)

    def l3_orch(orch, args, config):
        # on the level-3 worker: its chip adds scalar 0 to the tensor given
        assert isinstance(args, TaskArgs) and args.tensor_count() == 1
        orch.submit_next_level(chips[orch.worker], args, config, worker=0)

    h = top.register(l3_orch)
    assert "orchestration" in repr(h)
    top.init()
    x = top.host_zeros((8,), "int64")

    def l4_orch(orch, args, config):
        for k, add in ((0, 1), (1, 10)):
            ta = TaskArgs()
            ta.add_tensor(x, TensorArgType.INOUT)
            ta.add_scalar(add)
            orch.submit_next_level(h, ta, CallConfig(), worker=k)

    for _ in range(20):
        top.run(l4_orch)
    assert (x == 220).all()
    # the tree: the spawner, two level-3 children, each with a spawner, a chip and a SUB child
    assert len(descendants(os.getpid())) == 1 + 2 * 4
    top.close()
    assert wait_until(lambda: not descendants(os.getpid()))


def test_a_config_reaches_the_level3_orchestration_function_whole(chip_callable):
    # per-depth ring lists, a scalar and the trace choice cross the process
    # boundary and read back as given
    top, chips = _tree(chip_callable, n=1)

    def l3_orch(orch, args, config):
        got = (config.ring_heap, config.ring_task_window, config.trace, config.timeout_ms)
        if got != ([0, 4096, 0, 8192], 64, strata.TRACE_SKIP, 5000):
            raise AssertionError("the level-3 orchestration function got %r" % (got,))
        orch.submit_next_level(chips[orch.worker], args, config, worker=0)

    h = top.register(l3_orch)
    top.init()
    x = top.host_zeros((8,), "int64")

    def l4_orch(orch, args, config):
        ta = _add_one(x)
        cfg = CallConfig(ring_heap=[0, 4096, 0, 8192], ring_task_window=64, timeout_ms=5000,
                         trace=strata.TRACE_SKIP)
        orch.submit_next_level(h, ta, cfg, worker=0)

    top.run(l4_orch)
    assert (x == 1).all()
    with pytest.raises(strata.InvalidArgumentError, match="ring_heap is given already"):
        CallConfig(ring_heap=1 << 20, runtime_env={"PTO2_RING_HEAP": [0, 4096, 0, 0]})
    top.close()


def test_a_raising_orchestration_function_names_its_path(chip_callable):
    top, _ = _tree(chip_callable, n=1)

    def broken(orch, args, config):
        raise ValueError("no such layer")

    h = top.register(broken)
    top.init()
    with pytest.raises(strata.TaskError) as e:
        top.run(lambda orch, a, c: orch.submit_next_level(h, None, None, worker=0))
    text = str(e.value)
    assert "level-3 worker child 0 (pid" in text
    assert "ValueError: no such layer" in text and "broken" in text
    top.run(lambda orch, a, c: None)   # the worker goes on
    top.close()


def test_a_killed_level3_child_is_replaced(chip_callable):
    top, chips = _tree(chip_callable, n=1)

    def l3_orch(orch, args, config):
        orch.submit_next_level(chips[orch.worker], args, config, worker=0)

    h = top.register(l3_orch)
    top.init()
    x = top.host_zeros((4,), "int64")

    def l4_orch(orch, args, config):
        orch.submit_next_level(h, _add_one(x), CallConfig(), worker=0)

    top.run(l4_orch)
    l3 = top.child_pid(0)
    below = list(descendants(l3))
    os.kill(l3, signal.SIGKILL)
    assert wait_until(lambda: not alive(l3) and not any(alive(p) for p in below))
    with pytest.raises(strata.ChildDiedError) as e:
        top.run(l4_orch)
    assert f"level-3 worker child 0 (pid {l3})" in str(e.value)
    top.run(l4_orch)
    assert (x == 2).all() and top.child_pid(0) != l3
    top.close()


def test_refusals():
    l3 = Worker(level=3, num_sub_workers=1)
    other = Worker(level=3, num_sub_workers=1)
    with pytest.raises(strata.InvalidArgumentError, match="workers are added to level 4 and up"):
        l3.add_worker(other)
    with pytest.raises(TypeError):
        Worker(level=4).add_worker("not a worker")
    top = Worker(level=4)
    top.add_worker(l3)
    with pytest.raises(strata.InvalidArgumentError, match="added to a level-4 worker already"):
        Worker(level=4).add_worker(l3)
    with pytest.raises(strata.StateError, match="closes it with itself"):
        l3.close()
    top.register(lambda orch, args, config: None)   # before init: fine
    top.init()
    with pytest.raises(strata.StateError, match="before init"):
        top.register(lambda orch, args, config: None)
    with pytest.raises(strata.StateError, match="workers are added before init"):
        top.add_worker(other)
    top.close()
    other.close()


@pytest.mark.skipif(not strata.has_mpi or not shutil.which("mpiexec") or UNDER_ASAN,
                    reason="needs the package built with Open MPI, mpiexec, and no sanitizer (Open MPI is not clean "
                           "under them)")
def test_remote_workers_over_mpi(chip_callable):
    """tests/python/mpi_tree.py under mpiexec with three ranks, through the
    driver that checks no process and nothing in /dev/shm is left."""
    run = os.path.join(HERE, "..", "mpi", "run.sh")
    script = os.path.join(HERE, "mpi_tree.py")
    package = os.path.dirname(os.path.dirname(os.path.abspath(strata.__file__)))
    env = dict(os.environ, PYTHONPATH=package)
    r = subprocess.run([run, sys.executable, f"{script} {chip_callable.so_path}"], env=env, capture_output=True,
                       text=True, timeout=170)
    assert r.returncode == 0 and "PASS python_mpi" in r.stdout, r.stdout + r.stderr


def test_collected_together_with_an_added_worker():
    """A top Worker, its added Worker and a third object holding the latter,
    collected in one cycle: the added Worker's library worker is freed once,
    by the top."""
    import gc
    gc.disable()
    try:
        top = Worker(level=4)
        kid = Worker(level=3, num_sub_workers=1)
        top.add_worker(kid)
        holder = [kid]
        holder.append(holder)
        del top, kid, holder
        gc.collect()
    finally:
        gc.enable()
