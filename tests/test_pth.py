"""Reading `torch.save` files without PyTorch (`colornet.weights.pth`).

The oracle is `torch.load` itself: every array read must equal, bit for bit, the
tensor torch loads from the same file, for every dtype a state dict can hold, in
both of torch's formats, for views (offsets, strides, shared storages) as well as
whole tensors. Malicious files are built with real pickles that would run code or
alter the reader if they were unpickled naively.
"""

import collections
import io
import os
import pickle
import zipfile

import ml_dtypes
import numpy as np
import pytest
import torch

from colornet.utils.errors import ColornetError
from colornet.weights import pth

DTYPES = [
    torch.float32, torch.float64, torch.float16, torch.bfloat16, torch.int64, torch.int32,
    torch.int16, torch.int8, torch.uint8, torch.bool, torch.complex64, torch.complex128,
    torch.uint16, torch.uint32, torch.uint64, torch.float8_e4m3fn, torch.float8_e5m2,
]
_TORCH_BITS = {1: torch.uint8, 2: torch.int16, 4: torch.int32, 8: torch.int64}


def _tensor(dtype, shape, seed):
    generator = torch.Generator().manual_seed(seed)
    values = torch.randn(shape, generator=generator, dtype=torch.float64) * 50
    if dtype.is_complex:
        return torch.complex(values, -values * 0.5).to(dtype)
    if dtype == torch.bool:
        return values > 0
    if not dtype.is_floating_point:
        return values.abs().to(torch.int64).to(dtype)  # non-negative: fits every int type
    return values.to(dtype)


def _state_dict():
    state = collections.OrderedDict()
    for i, dtype in enumerate(DTYPES):
        state[f"layer{i}.{str(dtype)[6:]}"] = _tensor(dtype, (3, 4, 2), seed=i)
    base = _tensor(torch.float32, (6, 5), seed=99)
    state["transposed"] = base.t()  # a strided view of a storage ...
    state["row"] = base[2]  # ... shared with an offset view
    state["strided"] = base[::2, 1::2]
    state["scalar"] = torch.tensor(7)  # like num_batches_tracked
    state["empty"] = torch.zeros(0, 3)
    state["parameter"] = torch.nn.Parameter(torch.arange(4.0))
    state["conjugated"] = _tensor(torch.complex64, (3,), seed=5).conj()
    return state


def _same(mine, theirs):
    """Bit-for-bit equality of a NumPy array and a tensor (NaNs and -0 included),
    compared as integers of the element width: torch converts neither bfloat16,
    float8 nor its unsigned types to NumPy."""
    theirs = theirs.detach().resolve_conj().resolve_neg().contiguous()
    assert mine.shape == tuple(theirs.shape)
    assert mine.dtype.name == str(theirs.dtype).removeprefix("torch.")
    if theirs.dtype.is_complex:
        theirs = torch.view_as_real(theirs)
        mine = np.stack([mine.real, mine.imag], axis=-1)
    expected = theirs.reshape(-1).view(_TORCH_BITS[theirs.element_size()]).numpy()
    np.testing.assert_array_equal(np.ascontiguousarray(mine).reshape(-1).view(expected.dtype), expected)


@pytest.mark.parametrize("zip_format", [True, False], ids=["zip", "legacy"])
def test_every_dtype_and_view_reads_as_torch_load_does(tmp_path, zip_format):
    state = _state_dict()
    if not zip_format:  # the legacy format predates these dtypes
        state = collections.OrderedDict(
            (k, v) for k, v in state.items()
            if v.dtype not in (torch.uint16, torch.uint32, torch.uint64, torch.float8_e4m3fn,
                               torch.float8_e5m2)
        )
    path = tmp_path / "state.pth"
    torch.save(state, path, _use_new_zipfile_serialization=zip_format)
    oracle = torch.load(path, weights_only=True)
    mine = pth.load(path)
    assert isinstance(mine, collections.OrderedDict)
    assert list(mine) == list(oracle)
    for name, tensor in oracle.items():
        _same(mine[name], tensor)
    assert mine["layer3.bfloat16"].dtype == ml_dtypes.bfloat16


def test_nested_containers_and_plain_values(tmp_path):
    obj = {"state_dict": {"w": torch.ones(2, 2)}, "epoch": 3, "names": ["a", "b"], "lr": (0.1, None)}
    path = tmp_path / "checkpoint.pth"
    torch.save(obj, path)
    mine = pth.load(path)
    assert mine["epoch"] == 3 and mine["names"] == ["a", "b"] and mine["lr"] == (0.1, None)
    np.testing.assert_array_equal(mine["state_dict"]["w"], np.ones((2, 2), np.float32))


def _rewrite_zip(path, change):
    """Rewrites a zip checkpoint, passing each (name, bytes) through `change`."""
    with zipfile.ZipFile(path) as archive:
        records = [(info.filename, archive.read(info)) for info in archive.infolist()]
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in records:
            archive.writestr(name, change(name, data))


def test_big_endian_checkpoints_are_swapped(tmp_path):
    state = {"f": _tensor(torch.float32, (5,), 1), "h": _tensor(torch.bfloat16, (5,), 2),
             "c": _tensor(torch.complex64, (5,), 3), "i": _tensor(torch.int64, (5,), 4)}
    path = tmp_path / "big.pth"
    torch.save(state, path)
    widths = {"0": 4, "1": 2, "2": 4, "3": 8}  # storage keys in order; complex: per part

    def to_big_endian(name, data):
        if name.endswith("/byteorder"):
            return b"big"
        key = name.rsplit("/", 1)[-1]
        if "/data/" in name:
            width = widths[key]
            return np.frombuffer(data, f"<u{width}").astype(f">u{width}").tobytes()
        return data

    _rewrite_zip(path, to_big_endian)
    mine = pth.load(path)
    for name, tensor in state.items():
        _same(mine[name], tensor)


def _refused(path, match):
    with pytest.raises(ColornetError, match=match) as error:
        pth.load(path)
    message = str(error.value)
    assert message.startswith(f"{path}: not a PyTorch checkpoint that loads safely")
    assert "\n" not in message
    return message


class _RunsCode:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.parametrize("zip_format", [True, False], ids=["zip", "legacy"])
def test_a_checkpoint_that_would_run_code_is_refused_without_running_it(tmp_path, zip_format):
    marker = tmp_path / "ran"
    path = tmp_path / "evil.pth"
    torch.save({"weight": torch.zeros(2), "payload": _RunsCode(marker)}, path,
               _use_new_zipfile_serialization=zip_format)
    pickle.loads(pickle.dumps(_RunsCode(tmp_path / "control")))  # a naive load runs it
    assert (tmp_path / "control").exists()
    _refused(path, r"refusing to load posix\.system")
    assert not marker.exists()


def test_pickled_modules_and_builtins_are_refused(tmp_path):
    path = tmp_path / "module.pth"
    torch.save(torch.nn.Linear(2, 2), path)
    _refused(path, r"refusing to load torch\.nn\.modules\.linear\.Linear")
    path = tmp_path / "eval.pth"
    torch.save({"w": torch.zeros(1)}, path)
    evil = b"\x80\x02cbuiltins\neval\nX\x0c\x00\x00\x00print('hi')\x85R."
    _rewrite_zip(path, lambda name, data: evil if name.endswith("data.pkl") else data)
    _refused(path, r"refusing to load builtins\.eval")


def test_a_pickle_that_alters_a_stand_in_is_refused(tmp_path):
    """BUILD on the shared FloatStorage stand-in would change how later files read."""
    path = tmp_path / "build.pth"
    torch.save({"w": torch.zeros(1)}, path)
    # torch.FloatStorage, then BUILD with (None, {"dtype": torch.float64}).
    evil = b"\x80\x02ctorch\nFloatStorage\nN}X\x05\x00\x00\x00dtypectorch\nfloat64\ns\x86b."
    _rewrite_zip(path, lambda name, data: evil if name.endswith("data.pkl") else data)
    _refused(path, "sets the state")
    good = tmp_path / "good.pth"
    torch.save({"w": torch.arange(3.0)}, good)
    np.testing.assert_array_equal(pth.load(good)["w"], [0.0, 1.0, 2.0])


def test_a_view_reaching_past_its_storage_is_refused(tmp_path):
    path = tmp_path / "oob.pth"
    torch.save({"w": torch.arange(4.0)}, path)
    # The size (4,) becomes (400,): as_strided would read beyond the 16 bytes stored.
    _rewrite_zip(path, lambda name, data: data.replace(b"K\x04\x85", b"M\x90\x01\x85")
                 if name.endswith("data.pkl") else data)
    _refused(path, r"reaches past its storage \(4 elements\)")
    expanded = tmp_path / "expanded.pth"
    torch.save({"w": torch.zeros(1).expand(4)}, expanded)  # stride 0: legal, and read
    np.testing.assert_array_equal(pth.load(expanded)["w"], np.zeros(4, np.float32))
    # (4,) becomes (2 ** 30,): a gigabyte-sized copy of one stored element is refused.
    _rewrite_zip(expanded, lambda name, data: data.replace(b"K\x04\x85", b"J\x00\x00\x00\x40\x85")
                 if name.endswith("data.pkl") else data)
    _refused(expanded, r"an expanded tensor of 1,073,741,824 elements viewing 1 stored ones")


def test_broken_and_foreign_files_are_refused(tmp_path):
    path = tmp_path / "state.pth"
    torch.save({"w": torch.arange(1000.0)}, path)
    data = path.read_bytes()
    (tmp_path / "truncated.pth").write_bytes(data[: len(data) // 2])
    _refused(tmp_path / "truncated.pth", "truncated or damaged zip archive")
    legacy = tmp_path / "legacy.pth"
    torch.save({"w": torch.arange(1000.0)}, legacy, _use_new_zipfile_serialization=False)
    (tmp_path / "short.pth").write_bytes(legacy.read_bytes()[:-100])
    _refused(tmp_path / "short.pth", "ends inside storage")
    (tmp_path / "text.pth").write_text("not a checkpoint\n")
    _refused(tmp_path / "text.pth", "neither a zip checkpoint nor a pickle")
    script = tmp_path / "script.pt"
    torch.jit.save(torch.jit.script(torch.nn.Linear(2, 2)), script)
    _refused(script, "TorchScript archive")
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("notes.txt", "hello")
    (tmp_path / "other.zip").write_bytes(buffer.getvalue())
    _refused(tmp_path / "other.zip", "without data.pkl")


def test_quantized_tensors_are_refused_clearly(tmp_path):
    path = tmp_path / "quantized.pth"
    torch.save({"q": torch.quantize_per_tensor(torch.ones(3), 0.1, 0, torch.qint8)}, path)
    _refused(path, "refusing to load torch._utils._rebuild_qtensor")
