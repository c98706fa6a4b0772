"""Strata: a hierarchical task runtime for accelerator stacks, from Python.

The names follow the runtime its users come from (Worker, TaskArgs,
CallConfig, orch.submit_next_level): see docs/python.md."""

import os

from . import _strata
from ._strata import (TaskArgs, Tensor, HostBuffer, ChipBuffer, CallableHandle, Orchestrator, SubArgs,
                      StrataError, InvalidArgumentError, StateError, NotFoundError, OutOfMemoryError,
                      RingError, TaskError, CanceledError, ChildDiedError, TaskTimeoutError,
                      WorkerFailedError, SystemCallError, RunInterruptedError, status_name, last_error,
                      mpi_init, mpi_finalize, mpi_serve, trace_begin, trace_end)
from ._runtime import DataType, TensorArgType, WorkerState, TensorView, numpy_dtype
from .worker import Worker, ChipCallable, get_include

__version__ = _strata.version()
has_mpi = bool(_strata.has_mpi)   # remote Workers over MPI (mpi_init, Worker.add_rank, mpi_serve) built in

# The library's words: the exception's first argument, whoever raised it.
StrataError.message = property(lambda self: str(self.args[0]) if self.args else "",
                               doc="The library's message (the exception's text).")
StrataError.status = None
StrataError.status_name = None

INPUT = TensorArgType.INPUT
OUTPUT = TensorArgType.OUTPUT
INOUT = TensorArgType.INOUT
OUTPUT_EXISTING = TensorArgType.OUTPUT_EXISTING
NO_DEP = TensorArgType.NO_DEP

_RING_NAMES = {
    "ring_task_window": "ring_task_window", "PTO2_RING_TASK_WINDOW": "ring_task_window",
    "ring_heap": "ring_heap", "PTO2_RING_HEAP": "ring_heap",
    "ring_dep_pool": "ring_dep_pool", "PTO2_RING_DEP_POOL": "ring_dep_pool",
}


class CallConfig:
    """Per-run or per-task settings: timeout_ms (0: the worker's default) and
    ring sizes (0: environment or default). Each ring size is an int for every
    scope depth, or a list of four, one per depth (0, 1, 2, 3 and deeper; a 0
    entry keeps the environment's), as the followed runtime's runtime_env has
    them; runtime_env takes its names (ring_* and PTO2_RING_*)."""

    __slots__ = ("timeout_ms", "block_dim", "ring_task_window", "ring_heap", "ring_dep_pool", "trace")

    def __init__(self, timeout_ms=0, ring_task_window=0, ring_heap=0, ring_dep_pool=0, block_dim=0,
                 runtime_env=None, trace=0):
        self.timeout_ms = timeout_ms
        self.trace = trace
        self.block_dim = block_dim
        self.ring_task_window = ring_task_window
        self.ring_heap = ring_heap
        self.ring_dep_pool = ring_dep_pool
        for key, value in (runtime_env or {}).items():
            if key not in _RING_NAMES:
                raise InvalidArgumentError(f"runtime_env key {key!r}: known keys are "
                                           + ", ".join(sorted(_RING_NAMES)))
            if getattr(self, _RING_NAMES[key]):
                raise InvalidArgumentError(f"runtime_env[{key!r}]: {_RING_NAMES[key]} is given already; give it "
                                           "once, as an int for every scope depth or a list of four")
            if isinstance(value, (list, tuple)):
                if len(value) != 4:
                    raise InvalidArgumentError(f"runtime_env[{key!r}]: a list gives one size per scope depth "
                                               f"(0, 1, 2, 3 and deeper), so it has 4 entries, not {len(value)}")
                value = [int(v) for v in value]
            else:
                value = int(value)
            setattr(self, _RING_NAMES[key], value)

    def __repr__(self):
        return ("CallConfig(" + ", ".join(f"{k}={getattr(self, k)}" for k in self.__slots__
                                          if getattr(self, k)) + ")")


TRACE_RUN = 1    # CallConfig(trace=...): the run is recorded while a trace is open (as 0 is)
TRACE_SKIP = 2   # never recorded (a warm-up run, a health check)


class trace:
    """A window of the program's life recorded in a trace that Perfetto and
    chrome://tracing open: ``with strata.trace("run.json"): w.run(...)``.
    Every run of every Worker of this process is recorded while it is open
    (CallConfig(trace=strata.TRACE_SKIP) leaves one out); the file is complete
    when the block ends. docs/observability.md shows how to read it."""

    def __init__(self, path):
        self.path = os.fspath(path)

    def __enter__(self):
        trace_begin(self.path)
        return self

    def __exit__(self, *exc):
        trace_end()
        return False


__all__ = ["Worker", "TaskArgs", "CallConfig", "ChipCallable", "TensorArgType", "DataType", "WorkerState",
           "Tensor", "TensorView", "HostBuffer", "ChipBuffer", "CallableHandle", "Orchestrator", "SubArgs",
           "StrataError", "InvalidArgumentError", "StateError", "NotFoundError", "OutOfMemoryError",
           "RingError", "TaskError", "CanceledError", "ChildDiedError", "TaskTimeoutError",
           "WorkerFailedError", "SystemCallError", "RunInterruptedError", "status_name", "last_error",
           "mpi_init", "mpi_finalize", "mpi_serve", "trace", "trace_begin", "trace_end", "TRACE_RUN", "TRACE_SKIP",
           "get_include", "numpy_dtype", "INPUT", "OUTPUT", "INOUT", "OUTPUT_EXISTING", "NO_DEP"]
