"""Fixtures of the Python tests: the package from the build tree (or an
installed one), a chip callable compiled from C, and checks that a test
leaves no child process, zombie or descriptor behind."""

import gc
import os
import signal
import sys
import time

import pytest
from multiprocessing import resource_tracker

HERE = os.path.dirname(os.path.abspath(__file__))

import strata  # noqa: E402  (PYTHONPATH names the build tree's package)


@pytest.fixture(scope="session")
def chip_callable(tmp_path_factory):
    """test_add from kernels/test_chip.c, compiled with the system compiler."""
    out = tmp_path_factory.mktemp("chip") / "test_chip.so"
    return strata.ChipCallable.compile(os.path.join(HERE, "kernels", "test_chip.c"), "test_add", output=str(out))


def children_of(pid):
    """The pids whose parent is pid, and how many of them are zombies."""
    kids, zombies = [], 0
    for e in os.listdir("/proc"):
        if not e.isdigit():
            continue
        try:
            with open(f"/proc/{e}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        rest = stat[stat.rfind(")") + 2:].split()
        if int(rest[1]) == pid and not _resource_tracker(e):
            kids.append(int(e))
            zombies += rest[0] == "Z"
    return kids, zombies


def _resource_tracker(pid):
    """multiprocessing's resource tracker: Python's own helper process, started
    by shared_memory and kept for the life of the interpreter."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return b"resource_tracker" in f.read()
    except OSError:
        return False


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
