"""What the C extension calls back into: dtypes and tags by name, numpy arrays
over shared memory for SUB functions, the serialisation of SUB functions
registered after init, and the call of a SUB function in its child."""

import enum
import io
import marshal
import pickle
import sys
import traceback
import types

import numpy as np

from . import _strata


class DataType(enum.IntEnum):
    """Element types, with the names and values of the runtime Strata follows.
    FLOAT64 is Strata's own; the 8- and 4-bit floats have no C dtype yet and
    raise InvalidArgumentError when used."""

    FLOAT32 = 0
    FLOAT16 = 1
    INT32 = 2
    INT16 = 3
    INT8 = 4
    UINT8 = 5
    BFLOAT16 = 6
    INT64 = 7
    UINT64 = 8
    UINT16 = 9
    UINT32 = 10
    BOOL = 11
    FP8E4M3FN = 12
    FP8E8M0 = 13
    FP4E2M1 = 14
    FLOAT64 = 15


class TensorArgType(enum.IntEnum):
    """How a task uses a tensor; Strata orders tasks by these tags."""

    INPUT = _strata.C_TAGS["INPUT"]
    OUTPUT = _strata.C_TAGS["OUTPUT"]
    INOUT = _strata.C_TAGS["INOUT"]
    OUTPUT_EXISTING = _strata.C_TAGS["OUTPUT_EXISTING"]
    NO_DEP = _strata.C_TAGS["NO_DEP"]


class WorkerState(enum.IntEnum):
    NEW = _strata.C_STATES["NEW"]
    INITIALIZING = _strata.C_STATES["INITIALIZING"]
    READY = _strata.C_STATES["READY"]
    RUNNING = _strata.C_STATES["RUNNING"]
    FAILED = _strata.C_STATES["FAILED"]
    CLOSED = _strata.C_STATES["CLOSED"]

    def __str__(self):
        return self.name


_BY_NAME = {
    "float32": DataType.FLOAT32, "f32": DataType.FLOAT32, "float": DataType.FLOAT32,
    "float16": DataType.FLOAT16, "f16": DataType.FLOAT16, "half": DataType.FLOAT16,
    "bfloat16": DataType.BFLOAT16, "bf16": DataType.BFLOAT16,
    "float64": DataType.FLOAT64, "f64": DataType.FLOAT64, "double": DataType.FLOAT64,
    "int8": DataType.INT8, "i8": DataType.INT8, "uint8": DataType.UINT8, "u8": DataType.UINT8,
    "int16": DataType.INT16, "i16": DataType.INT16, "uint16": DataType.UINT16, "u16": DataType.UINT16,
    "int32": DataType.INT32, "i32": DataType.INT32, "uint32": DataType.UINT32, "u32": DataType.UINT32,
    "int64": DataType.INT64, "i64": DataType.INT64, "uint64": DataType.UINT64, "u64": DataType.UINT64,
    "bool": DataType.BOOL,
}

# C dtype value -> numpy dtype of the same bytes (bfloat16 has none: uint16).
_C = _strata.C_DTYPES
_NUMPY_OF_C = {
    _C["U8"]: np.uint8, _C["I8"]: np.int8, _C["U16"]: np.uint16, _C["I16"]: np.int16,
    _C["U32"]: np.uint32, _C["I32"]: np.int32, _C["U64"]: np.uint64, _C["I64"]: np.int64,
    _C["F16"]: np.float16, _C["BF16"]: np.uint16, _C["F32"]: np.float32, _C["F64"]: np.float64,
}
# C dtype value -> DataType (the C library's types only: no BOOL, no FP8).
_DATATYPE_OF_C = {
    _C["U8"]: DataType.UINT8, _C["I8"]: DataType.INT8, _C["U16"]: DataType.UINT16, _C["I16"]: DataType.INT16,
    _C["U32"]: DataType.UINT32, _C["I32"]: DataType.INT32, _C["U64"]: DataType.UINT64, _C["I64"]: DataType.INT64,
    _C["F16"]: DataType.FLOAT16, _C["BF16"]: DataType.BFLOAT16, _C["F32"]: DataType.FLOAT32,
    _C["F64"]: DataType.FLOAT64,
}
_DATATYPE_NUMPY = {
    DataType.FLOAT32: np.float32, DataType.FLOAT16: np.float16, DataType.INT32: np.int32,
    DataType.INT16: np.int16, DataType.INT8: np.int8, DataType.UINT8: np.uint8,
    DataType.BFLOAT16: np.uint16, DataType.INT64: np.int64, DataType.UINT64: np.uint64,
    DataType.UINT16: np.uint16, DataType.UINT32: np.uint32, DataType.BOOL: np.bool_,
    DataType.FLOAT64: np.float64,
}


def datatype_of(x):
    """A DataType for a DataType, an int, a name ("float32", "bf16") or a numpy dtype."""
    if isinstance(x, DataType):
        return x
    if isinstance(x, int):
        return DataType(x)
    if isinstance(x, str):
        key = x.lower().removeprefix("torch.").removeprefix("datatype.")
        if key in _BY_NAME:
            return _BY_NAME[key]
        raise _strata.InvalidArgumentError(f"unknown dtype name {x!r}; use a DataType or one of: "
                                           + ", ".join(sorted(_BY_NAME)))
    try:
        dt = np.dtype(x)
    except TypeError:
        raise TypeError(f"a dtype must be a DataType, a name or a numpy dtype, not {type(x).__name__}") from None
    if dt == np.bool_:
        return DataType.BOOL
    name = dt.name
    if name in _BY_NAME:
        return _BY_NAME[name]
    raise _strata.InvalidArgumentError(f"numpy dtype {name} has no Strata DataType")


def numpy_dtype(dtype):
    """The numpy dtype for a DataType (or anything datatype_of takes)."""
    dt = datatype_of(dtype)
    if dt not in _DATATYPE_NUMPY:
        raise _strata.InvalidArgumentError(f"{dt.name} has no numpy dtype")
    return np.dtype(_DATATYPE_NUMPY[dt])


def make_array(mv, c_dtype, shape, strides, offset):
    """A numpy array over a tensor's memory (a writable memoryview), no copy."""
    dt = np.dtype(_NUMPY_OF_C[c_dtype])
    byte_strides = None if strides is None else tuple(s * dt.itemsize for s in strides)
    return np.ndarray(shape, dtype=dt, buffer=mv, offset=offset * dt.itemsize, strides=byte_strides)


class TensorView:
    """args[i] in a SUB function, as the followed runtime gives it: .buffer (a
    writable memoryview of the whole buffer), .byte_offset, .shapes, .strides
    (elements), .dtype; .numpy() is the array (tensor(i) gives it directly)."""

    __slots__ = ("buffer", "byte_offset", "shapes", "strides", "dtype", "_c_dtype", "_offset")

    def __init__(self, mv, c_dtype, shape, strides, offset):
        itemsize = np.dtype(_NUMPY_OF_C[c_dtype]).itemsize
        self.buffer = mv
        self.byte_offset = offset * itemsize
        self.shapes = shape
        self.strides = strides
        self._c_dtype = c_dtype
        self._offset = offset
        self.dtype = _DATATYPE_OF_C[c_dtype]

    def numpy(self):
        return make_array(self.buffer, self._c_dtype, self.shapes, self.strides, self._offset)

    def __repr__(self):
        return f"<TensorView shapes={self.shapes} dtype={self.dtype.name} byte_offset={self.byte_offset}>"


def make_view(mv, c_dtype, shape, strides, offset):
    return TensorView(mv, c_dtype, shape, strides, offset)


def as_host_array(obj):
    """A numpy array over a DLPack object's CPU memory (no copy)."""
    dev = obj.__dlpack_device__() if hasattr(obj, "__dlpack_device__") else (1, 0)
    if dev[0] != 1:
        raise _strata.InvalidArgumentError(
            f"a DLPack tensor on device type {dev[0]}: Strata takes CPU memory (device type 1) from Python")
    arr = np.from_dlpack(obj)
    if not arr.flags.writeable:
        # numpy marks every DLPack import read-only (DLPack 0.x has no flag for
        # it); a copy_from destination or an OUTPUT tensor must be written.
        arr = np.asarray(_Writable(arr))
    return arr


class _Writable:
    """The same memory as a read-only array, offered writable (and kept alive)."""

    def __init__(self, arr):
        iface = dict(arr.__array_interface__)
        iface["data"] = (iface["data"][0], False)
        self.__array_interface__ = iface
        self._keep = arr


def hostbuf_dlpack(buf):
    return np.frombuffer(buf, dtype=np.uint8).__dlpack__()


def _flush():
    for s in (sys.stdout, sys.stderr):
        try:
            if s is not None:
                s.flush()
        except Exception:
            pass


def orch_call(fn, orch, args, config):
    """Run an orchestration function in the process of a Worker added one
    level down: None when it returns, else the text of its traceback (the
    task's error message)."""
    try:
        fn(orch, args, config)
        return None
    except BaseException:
        return "Python orchestration function {} raised:\n{}".format(
            getattr(fn, "__qualname__", repr(fn)), traceback.format_exc().rstrip())
    finally:
        _flush()


def sub_call(fn, args):
    """Run a SUB function in its child: None when it returns, else the text of
    its traceback (which becomes the task's error message)."""
    try:
        fn(args)
        return None
    except BaseException:
        return "Python SUB function {} raised:\n{}".format(
            getattr(fn, "__qualname__", repr(fn)), traceback.format_exc().rstrip())
    finally:
        _flush()


# ---- SUB functions registered after init ----
# A function is sent to children that already run as: its code (marshal), its
# module's name (its globals there, as the child has them), its name, defaults,
# keyword defaults and closure cells; each value by pickle, and a function value
# the same way, recursively. Module-level functions of importable modules other
# than __main__ go by reference.

class _Pickler(pickle.Pickler):
    def reducer_override(self, obj):
        if isinstance(obj, types.FunctionType) and not _importable(obj):
            return _load_function_state, (_function_state(obj),)
        return NotImplemented


def _importable(fn):
    # __main__ of a child is the parent's as it was at the fork: a function
    # defined there later is missing, so those always travel by value.
    if fn.__module__ == "__main__":
        return False
    mod = sys.modules.get(fn.__module__)
    obj = mod
    for part in fn.__qualname__.split("."):
        obj = getattr(obj, part, None)
    return obj is fn


def _function_state(fn):
    cells = None
    if fn.__closure__ is not None:
        cells = tuple(c.cell_contents if _cell_full(c) else _EMPTY for c in fn.__closure__)
    return (marshal.dumps(fn.__code__), fn.__module__, fn.__name__, fn.__qualname__,
            fn.__defaults__, fn.__kwdefaults__, cells)


class _Empty:
    def __reduce__(self):
        return (_empty, ())


def _empty():
    return _EMPTY


_EMPTY = _Empty()


def _cell_full(cell):
    try:
        cell.cell_contents
        return True
    except ValueError:
        return False


def _load_function_state(state):
    code, module, name, qualname, defaults, kwdefaults, cells = state
    mod = sys.modules.get(module)
    if mod is None:
        import importlib
        mod = importlib.import_module(module)
    closure = None
    if cells is not None:
        closure = tuple(types.CellType() if v is _EMPTY else types.CellType(v) for v in cells)
    fn = types.FunctionType(marshal.loads(code), mod.__dict__, name, defaults, closure)
    fn.__qualname__ = qualname
    fn.__kwdefaults__ = kwdefaults
    return fn


def dump_function(fn):
    """Serialise a SUB function for children that already run."""
    buf = io.BytesIO()
    try:
        _Pickler(buf, protocol=pickle.HIGHEST_PROTOCOL).dump(fn)
    except Exception as e:
        raise _strata.InvalidArgumentError(
            f"cannot send SUB function {getattr(fn, '__qualname__', fn)!r} to children that already run: {e}; "
            "register it before init(), or make what it captures picklable") from e
    return buf.getvalue()


def load_function(data):
    return pickle.loads(data)
