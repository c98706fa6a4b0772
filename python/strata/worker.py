"""Worker: the followed runtime's names and keywords over Strata's C worker."""

import atexit
import inspect
import os
import shutil
import subprocess
import tempfile

from . import _strata
from ._runtime import WorkerState, dump_function, numpy_dtype, datatype_of

import numpy as np

_SIM_NAMES = ("sim", "a2a3sim", "a5sim")
_HARDWARE_NAMES = ("a2a3", "a5", "ascend", "npu")


class ChipCallable:
    """A chip callable: a `const strata_chip_callable` in a shared object. Its
    orchestration function and kernels are C and run in the chip child, as in C."""

    __slots__ = ("so_path", "symbol")

    def __init__(self, so_path, symbol):
        self.so_path = os.path.abspath(os.fspath(so_path))
        self.symbol = symbol

    @classmethod
    def from_symbol(cls, so_path, symbol):
        if not os.path.exists(so_path):
            raise _strata.NotFoundError(f"chip callable object {so_path} does not exist")
        return cls(so_path, symbol)

    @classmethod
    def compile(cls, source, symbol, cflags=None, output=None):
        """Build the C source `source` into a shared object with the system
        compiler ($CC, else cc) and take `symbol` from it."""
        source = os.path.abspath(os.fspath(source))
        if output is None:
            out_dir = tempfile.mkdtemp(prefix="strata-chip-")
            _remove_at_exit(out_dir)
            output = os.path.join(out_dir, os.path.splitext(os.path.basename(source))[0] + ".so")
        cc = os.environ.get("CC", "cc")
        cmd = [cc, "-shared", "-fPIC", "-O2", "-std=c11", "-I", get_include(), source, "-o", output]
        if cflags:
            cmd[1:1] = cflags.split() if isinstance(cflags, str) else list(cflags)
        r = subprocess.run(cmd, capture_output=True, text=True)
        if r.returncode != 0:
            raise _strata.TaskError(f"compiling {source} failed ({' '.join(cmd)}):\n{r.stderr.strip()}")
        return cls(output, symbol)

    def __repr__(self):
        return f"ChipCallable({self.so_path!r}, {self.symbol!r})"


def _remove_at_exit(path):
    """Remove a compiled callable's directory when this process exits (not
    when a child of it does: children may load the object until then)."""
    pid = os.getpid()

    def remove():
        if os.getpid() == pid:
            shutil.rmtree(path, ignore_errors=True)
    atexit.register(remove)


def get_include():
    """The directory holding strata/*.h, for chip callables built from C."""
    here = os.path.dirname(os.path.abspath(__file__))
    for cand in (os.path.join(here, "include"), os.path.join(here, "..", "..", "include"),
                 os.path.join(here, "..", "..", "..", "include")):
        if os.path.exists(os.path.join(cand, "strata", "strata.h")):
            return os.path.abspath(cand)
    raise _strata.NotFoundError("cannot find Strata's headers next to the package")


def _shared_mappings():
    """The shared, writable mappings of this process."""
    out = []
    with open("/proc/self/maps") as f:
        for line in f:
            fields = line.split()
            perms = fields[1]
            if perms[0] != "r" or perms[1] != "w" or perms[3] != "s":
                continue
            lo, hi = (int(x, 16) for x in fields[0].split("-"))
            out.append((lo, hi))   # each on its own: a neighbour may be a worker's, which is refused
    return out


def _ms(seconds, name):
    if seconds is None:
        return None
    if seconds < 0:
        raise _strata.InvalidArgumentError(f"{name} = {seconds}: must be >= 0 seconds")
    return int(round(seconds * 1000))


def _positional_parameters(fn):
    """How many arguments fn takes by position without defaults (None: any)."""
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return None
    n = 0
    for p in sig.parameters.values():
        if p.kind == p.VAR_POSITIONAL:
            return None
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) and p.default is p.empty:
            n += 1
    return n


class Worker(_strata.Worker):
    """A Strata worker. Level 3: chip children (device_ids) and SUB children
    (num_sub_workers), driven by run(orch_fn). Level 2: one chip in this
    process, driven by run(handle, args, config)."""

    def __init__(self, level=3, platform="sim", runtime="tensormap_and_ringbuffer", device_id=None,
                 device_ids=None, num_sub_workers=0, *, on_child_death="restart", task_timeout_s=None,
                 init_timeout_s=None, close_grace_s=None, device_memory_bytes=None, shared_heap_bytes=None,
                 aic_cores=None, aiv_cores=None, node_task_window=None):
        if platform is None:
            platform = "sim"
        if not isinstance(platform, str):
            raise TypeError(f"platform must be a str, not {type(platform).__name__}")
        if platform in _SIM_NAMES:
            platform = "sim"
        elif platform.lower() in _HARDWARE_NAMES or not platform.endswith("sim"):
            raise _strata.NotFoundError(
                f"platform {platform!r}: this build of Strata has only the embedded simulator; "
                f"use platform=\"sim\" (or one of {', '.join(_SIM_NAMES)})")
        policies = {"restart": 0, "fail": 1}
        if on_child_death not in policies:
            raise _strata.InvalidArgumentError(
                f"on_child_death={on_child_death!r}: use \"restart\" or \"fail\"")
        if device_ids is None:
            device_ids = [] if (level >= 3 and device_id is None) else ([] if level < 3 else [device_id])
        if level == 2 and device_id is None:
            device_id = device_ids[0] if device_ids else 0
        self._committed = {}
        self._create(level, platform, runtime, device_id if level == 2 else None, tuple(device_ids),
                     num_sub_workers, policies[on_child_death], _ms(task_timeout_s, "task_timeout_s"),
                     _ms(init_timeout_s, "init_timeout_s"), _ms(close_grace_s, "close_grace_s"),
                     shared_heap_bytes, device_memory_bytes, aic_cores, aiv_cores, node_task_window)

    # -- registration --
    def register(self, target):
        """A ChipCallable or a Python function -> CallableHandle. At level 4 and
        up, a function of three parameters (orch, args, config) is an
        orchestration function the Workers added one level down run
        (orch.submit_next_level(handle, args, config, worker=i)); any other
        function is a SUB callable."""
        if self._state == WorkerState.CLOSED:
            raise _strata.StateError("Worker.register: the worker is closed")
        if isinstance(target, ChipCallable):
            return self._register_chip(target.so_path, target.symbol, target)
        if isinstance(target, (_strata.CallableHandle, _strata.Tensor)) or not callable(target):
            raise TypeError(f"register() takes a ChipCallable or a Python function, not {type(target).__name__}")
        if self.level >= 4 and _positional_parameters(target) == 3:
            if self._state != WorkerState.NEW:
                raise _strata.StateError(
                    "Worker.register: orchestration functions for the added Workers are registered before "
                    "init (their processes start from the program as it is at init)")
            # named by module and qualified name: how a remote Worker (an MPI rank
            # running the same program) finds its own copy; a second function of
            # the same name stays unnamed, for local Workers only
            name = f"{getattr(target, '__module__', None)}.{getattr(target, '__qualname__', None)}"
            try:
                return self._register_orch(target, name)
            except _strata.InvalidArgumentError:
                return self._register_orch(target, None)
        blob = None if self._state == WorkerState.NEW else dump_function(target)
        return self._register_sub(target, blob)

    def add_rank(self, rank):
        """Add the Worker MPI rank `rank` serves (strata.mpi_serve) one level
        down (level 4 and up, before init, on rank 0 after strata.mpi_init) ->
        its worker id. Its tasks name memory allocated on it (malloc(nbytes,
        worker=id)); data moves with copy_to / copy_from."""
        return self._add_rank(rank)

    def add_worker(self, worker):
        """Add a Worker one level down (level 4 and up, before init) -> its
        worker id. init() starts a process that initialises it (its own
        children below it); this Worker owns it from now on and closes it with
        itself. Until init, it still takes register()."""
        return self._add_worker(worker)

    def init(self):
        """Start the worker. At level 3, memory this process mapped shared and
        writable before now (a multiprocessing.shared_memory.SharedMemory, a
        MAP_SHARED mmap, a torch tensor after share_memory_()) becomes memory
        tasks may name: every child inherits it at the same address."""
        if self.level >= 3 and self._state == WorkerState.NEW:
            for lo, hi in _shared_mappings():
                self._adopt(lo, hi - lo)
        super().init()

    @property
    def state(self):
        return WorkerState(self._state)

    # -- memory --
    def malloc(self, nbytes, worker=0):
        buf = super().malloc(nbytes, worker)
        self._committed[(buf.worker, buf.base)] = buf.nbytes
        return buf

    def free(self, buf):
        super().free(buf)
        self._committed.pop((buf.worker, buf.base), None)

    def committed_device_memory(self):
        """Bytes of chip memory allocated with malloc and not freed."""
        return sum(self._committed.values())

    def alloc_child_tensor(self, worker, shape, dtype):
        """A chip-resident tensor on chip worker `worker` (the followed runtime's name)."""
        dt = numpy_dtype(dtype)
        n = int(np.prod(shape)) * dt.itemsize
        return self.malloc(max(n, 1), worker).tensor(tuple(shape), datatype_of(dtype))

    def host_empty(self, shape, dtype="float32"):
        """An uninitialised numpy array in the shared heap: every child sees it,
        tasks take it as a tensor without a copy."""
        dt = numpy_dtype(dtype)
        shape = (shape,) if isinstance(shape, int) else tuple(shape)
        n = int(np.prod(shape)) * dt.itemsize
        buf = self.host_alloc(max(n, 1))
        return np.frombuffer(buf, dtype=dt, count=int(np.prod(shape))).reshape(shape)

    def host_zeros(self, shape, dtype="float32"):
        a = self.host_empty(shape, dtype)
        a[...] = 0
        return a

    # -- context manager: with Worker(...) as w: (init() is not called) --
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def __repr__(self):
        return f"<strata.Worker level={self.level} state={self.state}>"
