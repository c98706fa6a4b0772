"""Fixtures of the Python tests: the package from the build tree (or an
installed one), a chip callable compiled from C, and checks that a test
leaves no child process, zombie or descriptor behind."""

import gc
import os
import signal
import time

import pytest
from multiprocessing import resource_tracker

HERE = os.path.dirname(os.path.abspath(__file__))

# Under ASan (scripts/test.sh preloads its runtime) the process's mappings and
# memory are the sanitizer's to shape: tests that count them skip.
UNDER_ASAN = "libasan" in os.environ.get("LD_PRELOAD", "")
counts_memory = pytest.mark.skipif(UNDER_ASAN, reason="ASan's allocator owns the process's mappings")

import strata  # noqa: E402  (PYTHONPATH names the build tree's package)


@pytest.fixture(scope="session")
def chip_callable(tmp_path_factory):
    """test_add from kernels/test_chip.c, compiled with the system compiler."""
    out = tmp_path_factory.mktemp("chip") / "test_chip.so"
    return strata.ChipCallable.compile(os.path.join(HERE, "kernels", "test_chip.c"), "test_add", output=str(out))


def _resource_tracker(pid):
    """multiprocessing's resource tracker: Python's own helper process, started
    by shared_memory and kept for the life of the interpreter."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return b"resource_tracker" in f.read()
    except OSError:
        return False


def proc_stat(pid):
    """(state letter, parent pid, name) of process pid, or None once it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
    except OSError:
        return None
    rest = stat[stat.rfind(")") + 2:].split()
    return rest[0], int(rest[1]), stat[stat.find("(") + 1:stat.rfind(")")]


def _process_table():
    """{pid: (state, parent pid)} of every process but Python's resource tracker."""
    table = {}
    for e in os.listdir("/proc"):
        if e.isdigit() and not _resource_tracker(e):
            st = proc_stat(e)
            if st:
                table[int(e)] = st[:2]
    return table


def children_of(pid):
    """The pids whose parent is pid, and how many of them are zombies."""
    kids = [(p, st) for p, (st, pp) in _process_table().items() if pp == pid]
    return [p for p, _ in kids], sum(st == "Z" for _, st in kids)


def descendants(pid):
    """Every process below pid (children, their children, ...) as {pid: state letter}."""
    table = _process_table()
    out, todo = {}, [pid]
    while todo:
        p = todo.pop()
        for c, (st, pp) in table.items():
            if pp == p and c not in out:
                out[c] = st
                todo.append(c)
    return out


def zombies_below(pid):
    return [p for p, s in descendants(pid).items() if s == "Z"]


def gone(pid):
    """The process has ended and been reaped (no /proc entry, not even a zombie)."""
    return not os.path.exists(f"/proc/{pid}")


def alive(pid):
    st = proc_stat(pid)
    return st is not None and st[0] != "Z"


def mappings():
    with open("/proc/self/maps") as f:
        return sum(1 for _ in f)


def tensor_args(*tensors, tag=None, scalars=()):
    """TaskArgs of the given tensors (INOUT unless tag says otherwise) and scalars."""
    ta = strata.TaskArgs()
    for t in tensors:
        ta.add_tensor(t, strata.TensorArgType.INOUT if tag is None else tag)
    for v in scalars:
        ta.add_scalar(v)
    return ta


def open_fds():
    return len(os.listdir("/proc/self/fd"))


def wait_until(cond, timeout=10.0, step=0.005):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(step)
    return cond()


@pytest.fixture(autouse=True)
def leaves_nothing_behind():
    """Every test: no child process (or zombie) and no extra descriptor after it."""
    gc.collect()
    resource_tracker.ensure_running()   # Python's helper keeps a descriptor once started: start it first
    fds = open_fds()
    yield
    gc.collect()
    assert wait_until(lambda: children_of(os.getpid())[0] == []), \
        f"children left behind: {children_of(os.getpid())}"
    assert wait_until(lambda: open_fds() <= fds, timeout=5), f"descriptors: {open_fds()} after, {fds} before"


@pytest.fixture(autouse=True)
def hard_timeout():
    """A test that hangs fails (SIGALRM) instead of hanging the suite."""
    def on_alarm(signum, frame):
        raise TimeoutError("test ran past its 120 s hard timeout")
    old = signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(120)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, old)
