"""Reading PyTorch checkpoints (`torch.save` files) without PyTorch.

`torch.save` writes a pickle in which every tensor is a call to
`torch._utils._rebuild_tensor_v2(storage, offset, size, stride, ...)` and every
storage a "persistent id" naming raw bytes stored beside the pickle:

- the zip format (PyTorch >= 1.6, and what `torch.hub` releases use): a zip archive
  `NAME/data.pkl`, `NAME/data/<key>` (one record per storage, raw little-endian
  values unless `NAME/byteorder` says "big"), `NAME/version` and a few markers;
- the legacy format (`_use_new_zipfile_serialization=False`): five pickles in a row
  (a magic number, the protocol version 1001, system information, the object, the
  list of storage keys), then each storage as its element count (int64) and bytes.

Unpickling runs whatever callables a pickle names, so a checkpoint from elsewhere
must never meet `pickle.load`. `load` uses an unpickler whose `find_class` knows
only what a state dict of tensors needs (`collections.OrderedDict`, the tensor and
parameter rebuild functions, storage types, dtypes) and maps each to a stand-in
written here that builds NumPy arrays; any other name is refused before anything
is called, as `torch.load(weights_only=True)` does. Tensor views are checked to lie
inside their storage before they are read.
"""

import collections
import io
import math
import os
import pickle
import struct
import zipfile

import ml_dtypes
import numpy as np

from colornet.utils.errors import ColornetError

# The legacy format's first two pickles (`torch/serialization.py`).
LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
LEGACY_PROTOCOL = 1001

# torch's legacy storage classes: the element type of each storage.
_STORAGE_DTYPES = {
    "DoubleStorage": np.float64,
    "FloatStorage": np.float32,
    "HalfStorage": np.float16,
    "BFloat16Storage": ml_dtypes.bfloat16,
    "LongStorage": np.int64,
    "IntStorage": np.int32,
    "ShortStorage": np.int16,
    "CharStorage": np.int8,
    "ByteStorage": np.uint8,
    "BoolStorage": np.bool_,
    "ComplexDoubleStorage": np.complex128,
    "ComplexFloatStorage": np.complex64,
}
# torch dtypes as pickled (`torch.<name>`), for tensors rebuilt by `_rebuild_tensor_v3`
# (dtypes newer than the storage classes) and as values in a checkpoint.
_TORCH_DTYPES = {
    "float64": np.float64,
    "float32": np.float32,
    "float16": np.float16,
    "bfloat16": ml_dtypes.bfloat16,
    "int64": np.int64,
    "int32": np.int32,
    "int16": np.int16,
    "int8": np.int8,
    "uint8": np.uint8,
    "uint16": np.uint16,
    "uint32": np.uint32,
    "uint64": np.uint64,
    "bool": np.bool_,
    "complex128": np.complex128,
    "complex64": np.complex64,
    "float8_e4m3fn": ml_dtypes.float8_e4m3fn,
    "float8_e5m2": ml_dtypes.float8_e5m2,
    "float8_e4m3fnuz": ml_dtypes.float8_e4m3fnuz,
    "float8_e5m2fnuz": ml_dtypes.float8_e5m2fnuz,
    "float8_e8m0fnu": ml_dtypes.float8_e8m0fnu,
}


# The largest copy of an expanded (stride-0) view that is made: 64 MB of float32.
_MAX_EXPANDED = 1 << 24


class _Sealed:
    """Base of the stand-ins. Pickle's BUILD opcode calls `__setstate__` on (or sets
    attributes of) whatever object is on its stack; refusing it keeps a crafted
    pickle from altering a stand-in, some of which are shared by every load."""

    __slots__ = ()

    def __setstate__(self, state):
        raise pickle.UnpicklingError("a checkpoint that sets the state of a tensor, type or function")


class _Function(_Sealed):
    __slots__ = ("function",)

    def __init__(self, function):
        self.function = function

    def __call__(self, *args):
        return self.function(*args)


class _DType(_Sealed):
    """Stands in for a `torch.dtype` (`torch.float32`, ...)."""

    __slots__ = ("dtype",)

    def __init__(self, dtype):
        self.dtype = np.dtype(dtype)


class _StorageType(_Sealed):
    """Stands in for `torch.FloatStorage` and the like: only its element type counts."""

    __slots__ = ("dtype",)

    def __init__(self, dtype):
        self.dtype = np.dtype(dtype)


class _Storage(_Sealed):
    """One storage: its element type, its element count and (once read) its values."""

    __slots__ = ("array", "dtype", "numel")

    def __init__(self, dtype, numel):
        self.dtype, self.numel = dtype, numel
        self.array = None


class _Tensor(_Sealed):
    """A tensor to build once its storage's bytes are read (the legacy format stores
    them after the pickle)."""

    __slots__ = ("conj", "dtype", "neg", "offset", "size", "storage", "stride")

    def __init__(self, storage, offset, size, stride, dtype, metadata):
        if not isinstance(storage, _Storage):
            raise pickle.UnpicklingError("a tensor whose storage is not a storage record")
        for name, values in (("size", size), ("stride", stride)):
            if not isinstance(values, tuple) or not all(_is_index(v) for v in values):
                raise pickle.UnpicklingError(f"a tensor {name} that is not a tuple of counts")
        if len(size) != len(stride) or not _is_index(offset):
            raise pickle.UnpicklingError("a tensor with inconsistent size, stride or offset")
        metadata = dict(metadata or {})
        unknown = set(metadata) - {"conj", "neg"}
        if unknown:
            raise pickle.UnpicklingError(f"a tensor with unsupported metadata {sorted(unknown)}")
        self.storage, self.offset, self.size, self.stride = storage, offset, size, stride
        self.dtype = np.dtype(dtype) if dtype is not None else storage.dtype
        self.conj, self.neg = bool(metadata.get("conj")), bool(metadata.get("neg"))

    def build(self):
        data = self.storage.array
        if self.dtype != data.dtype:  # `_rebuild_tensor_v3`: bytes seen as another type
            if data.nbytes % self.dtype.itemsize:
                raise pickle.UnpicklingError("a storage that is not a whole number of elements")
            data = data.view(self.dtype)
        # The highest element the view touches must lie inside the storage (a crafted
        # size or stride must not pass for data it does not have).
        if any(n == 0 for n in self.size):
            return np.zeros(self.size, self.dtype)
        last = self.offset + sum((n - 1) * s for n, s in zip(self.size, self.stride, strict=True))
        if last >= data.size:
            raise pickle.UnpicklingError(
                f"a tensor of size {self.size} that reaches past its storage ({data.size} elements)"
            )
        count = math.prod(self.size)  # Python ints: a crafted size cannot wrap around
        if count > max(data.size, _MAX_EXPANDED):
            # Only stride-0 (expanded) views hold more elements than their storage; a
            # tiny file must not make us allocate gigabytes.
            raise pickle.UnpicklingError(
                f"an expanded tensor of {count:,} elements viewing {data.size:,} stored ones"
            )
        if self.stride == _contiguous_strides(self.size):
            array = data[self.offset : self.offset + count].reshape(self.size).copy()
        else:  # a strided view: gather its elements by index (a copy, bounds-checked)
            index = np.full((), self.offset, np.int64)
            for axis, (n, s) in enumerate(zip(self.size, self.stride, strict=True)):
                shape = [1] * len(self.size)
                shape[axis] = n
                index = index + np.arange(n, dtype=np.int64).reshape(shape) * s
            array = data[index]
        if self.conj:
            array = np.conj(array)
        if self.neg:
            array = np.negative(array)
        return array


def _contiguous_strides(size):
    strides, step = [], 1
    for n in reversed(size):
        strides.append(step)
        step *= n
    return tuple(reversed(strides))


def _is_index(value):
    return type(value) is int and value >= 0


def _rebuild_tensor_v2(storage, offset, size, stride, requires_grad, hooks, metadata=None):
    del requires_grad, hooks  # autograd state: nothing to keep in an array
    return _Tensor(storage, offset, size, stride, None, metadata)


def _rebuild_tensor_v3(storage, offset, size, stride, requires_grad, hooks, dtype, metadata=None):
    del requires_grad, hooks
    if not isinstance(dtype, _DType):
        raise pickle.UnpicklingError("a tensor whose dtype is not a torch dtype")
    return _Tensor(storage, offset, size, stride, dtype.dtype, metadata)


def _rebuild_parameter(data, requires_grad, hooks, state=None):
    del requires_grad, hooks, state  # an nn.Parameter is its tensor here
    if not isinstance(data, _Tensor):
        raise pickle.UnpicklingError("a parameter that does not hold a tensor")
    return data


# Everything a state dict of tensors needs; nothing that could run other code.
_ALLOWED = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("torch._utils", "_rebuild_tensor_v2"): _Function(_rebuild_tensor_v2),
    ("torch._utils", "_rebuild_tensor_v3"): _Function(_rebuild_tensor_v3),
    ("torch._utils", "_rebuild_parameter"): _Function(_rebuild_parameter),
    ("torch._utils", "_rebuild_parameter_with_state"): _Function(_rebuild_parameter),
    **{("torch", name): _StorageType(dtype) for name, dtype in _STORAGE_DTYPES.items()},
    # Bytes, for `_rebuild_tensor_v3`, which names the tensor's dtype separately.
    ("torch.storage", "UntypedStorage"): _StorageType(np.uint8),
    **{("torch", name): _DType(dtype) for name, dtype in _TORCH_DTYPES.items()},
}


class _RestrictedUnpickler(pickle.Unpickler):
    def __init__(self, file, storage):
        super().__init__(file)
        self._storage = storage

    def find_class(self, module, name):
        if (module, name) in _ALLOWED:
            return _ALLOWED[(module, name)]
        if module == "torch" and name.endswith("Storage"):
            raise pickle.UnpicklingError(f"{module}.{name} (quantized or unsupported tensors) is not supported")
        raise pickle.UnpicklingError(
            f"refusing to load {module}.{name}: only tensors, their storages and "
            "OrderedDict may appear in a checkpoint read without PyTorch"
        )

    def persistent_load(self, pid):
        if not (isinstance(pid, tuple) and pid and pid[0] in ("storage", b"storage")):
            raise pickle.UnpicklingError(f"unknown persistent id {str(pid)[:60]}")
        return self._storage(pid[1:])


class _NoGlobals(pickle.Unpickler):
    """For the legacy format's header pickles: plain values only."""

    def find_class(self, module, name):
        raise pickle.UnpicklingError(f"refusing to load {module}.{name} in a checkpoint header")


def load(path):
    """Reads a `torch.save` file into NumPy arrays, without PyTorch.

    Returns:
      the saved object with every tensor replaced by a NumPy array of the same shape,
      dtype and values (bfloat16 and float8 as `ml_dtypes` types): for a state dict,
      an `OrderedDict` of parameter names to arrays.

    Raises:
      ColornetError: one line naming `path`, for a file that is not a PyTorch
        checkpoint, is truncated, or names anything beyond tensors and containers
        (e.g. a pickled module, or code).
    """
    path = os.fspath(path)
    try:
        with open(path, "rb") as f:
            if zipfile.is_zipfile(f):
                f.seek(0)
                return _load_zip(f)
            f.seek(0)
            return _load_legacy(f)
    except (pickle.UnpicklingError, zipfile.BadZipFile, EOFError, ValueError, KeyError,
            TypeError, AttributeError, IndexError, struct.error, UnicodeDecodeError, RecursionError) as error:
        raise ColornetError(
            f"{path}: not a PyTorch checkpoint that loads safely ({type(error).__name__}: "
            f"{_first_line(error)})"
        ) from None


def _first_line(error):
    text = str(error).strip()
    return (text.splitlines() or [""])[0][:200]


def _load_zip(f):
    archive = zipfile.ZipFile(f)
    names = archive.namelist()
    if any(name.endswith("/constants.pkl") for name in names):
        raise pickle.UnpicklingError("a TorchScript archive (torch.jit.save), not a state dict")
    pickles = [name for name in names if name.endswith("/data.pkl") and name.count("/") == 1]
    if not pickles:
        raise pickle.UnpicklingError("a zip archive without data.pkl")
    prefix = pickles[0][: -len("data.pkl")]
    big_endian = False
    if prefix + "byteorder" in names:
        order = archive.read(prefix + "byteorder").decode("ascii").strip()
        if order not in ("little", "big"):
            raise pickle.UnpicklingError(f"unknown byte order {order!r}")
        big_endian = order == "big"
    storages = {}

    def storage(fields):
        storage_type, key, _location, numel = fields
        _check_storage_fields(storage_type, key, numel)
        if key not in storages:
            name = f"{prefix}data/{key}"
            if name not in names:
                raise pickle.UnpicklingError(f"storage record {name} is missing")
            item = _Storage(storage_type.dtype, numel)
            size = archive.getinfo(name).file_size
            if size != numel * item.dtype.itemsize:
                raise pickle.UnpicklingError(
                    f"storage {key} holds {size} bytes, its header says {numel} x {item.dtype.itemsize}"
                )
            item.array = _from_bytes(archive.read(name), item.dtype, big_endian)
            storages[key] = item
        return storages[key]

    unpickler = _RestrictedUnpickler(io.BytesIO(archive.read(pickles[0])), storage)
    return _build(unpickler.load())


def _check_storage_fields(storage_type, key, numel):
    if not isinstance(storage_type, _StorageType):
        raise pickle.UnpicklingError("a storage record without a storage type")
    if not isinstance(key, str) or not _is_index(numel):
        raise pickle.UnpicklingError("a malformed storage record")


def _from_bytes(data, dtype, big_endian):
    if not big_endian or dtype.itemsize == 1:
        return np.frombuffer(data, dtype=dtype)
    # Swap each element (each component of a complex number) through unsigned ints,
    # which also covers ml_dtypes' types, whose byte order numpy cannot change.
    width = dtype.itemsize // 2 if dtype.kind == "c" else dtype.itemsize
    return np.frombuffer(data, dtype=f">u{width}").astype(f"<u{width}").view(dtype)


def _load_legacy(f):
    head = f.read(4)
    f.seek(0)
    if head == b"PK\x03\x04":  # a zip archive's first record, but no readable directory
        raise pickle.UnpicklingError("a truncated or damaged zip archive")
    if head[:1] != b"\x80":
        # PyTorch < 0.4 wrote a tar archive; other files are not checkpoints at all.
        raise pickle.UnpicklingError(
            "neither a zip checkpoint nor a pickle (checkpoints from PyTorch < 0.4, tar "
            "archives, are not supported: load and re-save them with torch)"
        )
    if _NoGlobals(f).load() != LEGACY_MAGIC:
        raise pickle.UnpicklingError("not a torch.save file (wrong magic number)")
    version = _NoGlobals(f).load()
    if version != LEGACY_PROTOCOL:
        raise pickle.UnpicklingError(f"unsupported legacy protocol version {version!r}")
    _NoGlobals(f).load()  # system information; torch writes legacy data little-endian
    storages = {}

    def storage(fields):
        storage_type, key, _location, numel, view = fields
        _check_storage_fields(storage_type, key, numel)
        if key not in storages:
            storages[key] = _Storage(storage_type.dtype, numel)
        if view is not None:
            raise pickle.UnpicklingError("storage views of the legacy format are not supported")
        return storages[key]

    result = _RestrictedUnpickler(f, storage).load()
    keys = _NoGlobals(f).load()
    if not isinstance(keys, list) or sorted(keys) != sorted(storages):
        raise pickle.UnpicklingError("the list of storages does not match the tensors")
    for key in keys:
        item = storages[key]
        (numel,) = struct.unpack("<q", f.read(8))
        if numel != item.numel:
            raise pickle.UnpicklingError(f"storage {key} holds {numel} elements, its header says {item.numel}")
        data = f.read(numel * item.dtype.itemsize)
        if len(data) != numel * item.dtype.itemsize:
            raise EOFError(f"the file ends inside storage {key}")
        item.array = _from_bytes(data, item.dtype, big_endian=False)
    return _build(result)


def _build(value):
    """`value` with every `_Tensor` replaced by its array (in dicts, lists, tuples)."""
    if isinstance(value, _Tensor):
        return value.build()
    if isinstance(value, dict):
        built = type(value)() if isinstance(value, collections.OrderedDict) else {}
        for key, item in value.items():
            built[key] = _build(item)
        return built
    if isinstance(value, (list, tuple)):
        return type(value)(_build(item) for item in value)
    if isinstance(value, (_Storage, _StorageType)):
        raise pickle.UnpicklingError("a bare storage, not a tensor")
    return value
