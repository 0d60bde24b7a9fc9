"""SavedModel export: layout, atomic versions, signatures against eager Keras, and the
TF Serving view of it (session loader, saved_model_cli, a fresh TF-only process).

One export of a small model is shared by the module (and by test_serving.py);
the subprocess checks run concurrently to keep the suite short.
"""

import json
import os
import re
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
import tensorflow as tf

from colornet import bins, cli
from colornet.deploy import export
from colornet.utils.errors import ColornetError
from tests.helpers import deploy_helpers as h
from tests.helpers.images import smooth_rgb
from tests.helpers.serving_standin import RequestError, SessionModel

# ab from the SavedModel and from eager Keras differ only by float32 rounding in a
# different op order (oneDNN, XLA fusion): 1e-3 ab units is far below anything
# visible. RGB may differ by one level where rounding falls on .5.
AB_ATOL = 1e-3
RGB_ATOL = 1


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    return h.shared_export(tmp_path_factory)


@pytest.fixture(scope="module")
def loaded_tf2(exported):
    return tf.saved_model.load(exported[1].path)


@pytest.fixture(scope="module")
def session(exported):
    _, result = exported
    model = SessionModel(os.path.dirname(result.path), "colornet")
    yield model
    model.session.close()


def _mixed_batch():
    """Encoded images of different sizes, formats and colour modes, and their RGB."""
    specs = [
        ((37, 53), "png", False),
        ((64, 64), "jpeg", False),
        ((20, 90), "png", True),
        ((45, 30), "bmp", False),
        ((33, 41), "gif", False),
        ((28, 36), "webp", False),
    ]
    encoded = []
    for i, ((height, width), fmt, grey) in enumerate(specs):
        rgb = smooth_rgb(height, width, seed=i)
        if grey:
            rgb = tf.image.rgb_to_grayscale(rgb).numpy()
        encoded.append(h.encode(rgb, fmt))
    from colornet import data

    decoded = [data.decode_image(e).numpy() for e in encoded]
    return encoded, decoded


def test_layout_and_config(exported):
    _, result = exported
    base = os.path.dirname(result.path)
    assert result.version == 1 and os.path.basename(result.path) == "1"
    assert sorted(os.listdir(base)) == ["1"]  # no temporary directory left behind
    assert {"saved_model.pb", "variables", "assets.extra"} <= set(os.listdir(result.path))
    extra = os.path.join(result.path, "assets.extra")
    assert os.path.getsize(os.path.join(extra, export.WARMUP_NAME)) > 0
    with open(os.path.join(extra, export.EXPORT_CONFIG_NAME)) as f:
        described = json.load(f)
    assert described["export_config"]["image_size"] == h.IMAGE_SIZE
    assert described["export_config"]["max_pixels"] == h.MAX_PIXELS
    assert described["export_config"]["jit_compile"] is True
    assert described["model_config"]["filters"] == [4, 8, 8, 8, 8, 8, 8, 8]
    assert set(described["signatures"]) == set(export.SIGNATURES)
    assert described["signatures"]["serving_default"]["outputs"] == {
        "colorized_png_bytes": ["string", [None]]
    }


def test_warmup_requests_cover_every_signature(exported):
    from tensorflow_serving.apis import prediction_log_pb2

    _, result = exported
    path = os.path.join(result.path, "assets.extra", export.WARMUP_NAME)
    logs = [
        prediction_log_pb2.PredictionLog.FromString(r)
        for r in tf.data.TFRecordDataset(path).as_numpy_iterator()
    ]
    requests = [log.predict_log.request for log in logs]
    assert {r.model_spec.signature_name for r in requests} == set(export.SIGNATURES)
    batch_sizes = [
        r.inputs["image_bytes"].tensor_shape.dim[0].size
        for r in requests
        if r.model_spec.signature_name == "serving_default"
    ]
    assert batch_sizes == [1, 3]


def _small_archive(model, config):
    """A one-endpoint archive: the versioning does not depend on the graph."""
    del config
    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint(
        "serving_default",
        lambda l_raw: {"logits": model(l_raw, training=False)},
        input_signature=[tf.TensorSpec([None, 8, 8, 1], tf.float32)],
    )
    return archive


def test_versions_are_atomic_and_never_overwritten(tmp_path, monkeypatch):
    monkeypatch.setattr(export, "build_archive", _small_archive)
    model = h.vivid_tiny_model()
    base = tmp_path / "colornet"
    options = {"warmup": False}
    first = export.export_saved_model(model, base, **options)
    assert first.version == 1
    with pytest.raises(ColornetError, match="already exists"):
        export.export_saved_model(model, base, version=1, **options)

    os.makedirs(base / "7")
    os.makedirs(base / "not-a-version")
    assert export.existing_versions(base) == [1, 7]
    assert export.next_version(base) == 8

    # A failure while writing leaves nothing a server could load, and the
    # temporary directory was never named like a version.
    seen = []

    def failing_extras(tmp, *args):
        seen.append(os.path.basename(tmp))
        raise OSError("disk full")

    write_extras = export._write_extras
    monkeypatch.setattr(export, "_write_extras", failing_extras)
    with pytest.raises(OSError, match="disk full"):
        export.export_saved_model(model, base, **options)
    assert sorted(os.listdir(base)) == ["1", "7", "not-a-version"]
    assert seen == [seen[0]] and seen[0].startswith(".tmp-8-") and not seen[0].isdigit()
    monkeypatch.setattr(export, "_write_extras", write_extras)

    # overwrite replaces the version in one rename.
    marker = base / "1" / "assets.extra" / export.EXPORT_CONFIG_NAME
    before = json.loads(marker.read_text())["created"]
    marker.write_text("{}")
    export.export_saved_model(model, base, version=1, overwrite=True, **options)
    assert json.loads(marker.read_text())["created"] >= before
    assert sorted(os.listdir(base)) == ["1", "7", "not-a-version"]


def test_serving_default_matches_keras_for_mixed_batch(exported, session):
    model, _ = exported
    encoded, decoded = _mixed_batch()
    outputs = session.predict("serving_default", {"image_bytes": np.array(encoded, dtype=object)})
    pngs = outputs["colorized_png_bytes"]
    assert pngs.shape == (len(encoded),)
    for png, rgb in zip(pngs, decoded):
        got = tf.io.decode_png(png).numpy()
        assert got.shape == rgb.shape  # the input's own size
        _, want, _ = h.reference_colorize(model, h.l_of(rgb[None]))
        np.testing.assert_allclose(got.astype(int), want[0].astype(int), atol=RGB_ATOL)


def test_temperature_default_scalar_and_per_image(exported, session):
    model, _ = exported
    l_raw = h.l_of(np.stack([smooth_rgb(24, 40, seed=s) for s in range(2)]))
    default = session.predict("colorize_l", {"l_raw": l_raw})
    explicit = session.predict("colorize_l", {"l_raw": l_raw, "temperature": np.float32(0.38)})
    np.testing.assert_array_equal(default["ab"], explicit["ab"])
    per_image = session.predict(
        "colorize_l", {"l_raw": l_raw, "temperature": np.array([0.38, 1.0], np.float32)}
    )
    np.testing.assert_array_equal(per_image["ab"][0], default["ab"][0])
    want_ab, _, _ = h.reference_colorize(model, l_raw[1:], temperature=1.0)
    np.testing.assert_allclose(per_image["ab"][1], want_ab[0], atol=AB_ATOL)
    # T = 1 is the mean: less saturated than T = 0.38.
    assert np.abs(per_image["ab"][1]).mean() < np.abs(default["ab"][1]).mean()


def test_tensor_signatures_match_keras(exported, session):
    model, _ = exported
    rgb = np.stack([smooth_rgb(50, 70, seed=s) for s in range(2)])
    l_raw = h.l_of(rgb)
    want_ab, want_rgb, want_logits = h.reference_colorize(model, l_raw)
    for name, feeds in (("colorize_l", {"l_raw": l_raw}), ("colorize_rgb", {"rgb": rgb})):
        got = session.predict(name, feeds)
        assert got["ab"].dtype == np.float32 and got["ab"].shape == (2, 50, 70, 2)
        assert got["rgb"].dtype == np.uint8 and got["rgb"].shape == (2, 50, 70, 3)
        np.testing.assert_allclose(got["ab"], want_ab, atol=AB_ATOL)
        np.testing.assert_allclose(got["rgb"].astype(int), want_rgb.astype(int), atol=RGB_ATOL)
    got = session.predict("probabilities", {"l_raw": l_raw})
    side = h.IMAGE_SIZE // 4
    assert got["probabilities"].shape == (2, side, side, 313)
    np.testing.assert_allclose(got["probabilities"].sum(-1), 1.0, atol=1e-5)
    np.testing.assert_allclose(got["logits"], want_logits, atol=1e-4)
    np.testing.assert_array_equal(got["ab_bins"], bins.ab_bins())
    # Custom decoding from the outputs reproduces the annealed mean of colorize_l.
    small = tf.nn.softmax(got["logits"] / 0.38) @ got["ab_bins"]
    upsampled = tf.image.resize(small, (50, 70), method="bilinear").numpy()
    np.testing.assert_allclose(upsampled, want_ab, atol=AB_ATOL)


def test_empty_batch(session):
    out = session.predict("serving_default", {"image_bytes": np.array([], dtype=object)})
    assert out["colorized_png_bytes"].shape == (0,)


@pytest.mark.parametrize("name", sorted(h.bad_images()))
def test_bad_images_are_invalid_argument(loaded_tf2, session, name):
    data, message = h.bad_images()[name]
    good = h.encode(smooth_rgb(16, 16), "png")
    # Through the in-process TF2 function as well as the session loader.
    with pytest.raises(tf.errors.InvalidArgumentError, match=message):
        loaded_tf2.signatures["serving_default"](
            image_bytes=tf.constant([good, data]), temperature=tf.constant(0.38)
        )
    with pytest.raises(RequestError) as info:
        session.predict("serving_default", {"image_bytes": np.array([good, data], dtype=object)})
    assert info.value.code.name == "INVALID_ARGUMENT" and message in info.value.message


def test_bad_tensors_and_temperatures_are_invalid_argument(session):
    l_raw = np.zeros((2, 8, 8, 1), np.float32)
    nan_l, inf_l = l_raw.copy(), l_raw.copy()
    nan_l[1, 2, 3] = np.nan
    inf_l[0, 0, 0] = -np.inf
    cases = [
        ("colorize_l", {"l_raw": nan_l}, "L contains NaN or Inf"),
        ("colorize_l", {"l_raw": inf_l}, "L contains NaN or Inf"),
        ("probabilities", {"l_raw": nan_l}, "L contains NaN or Inf"),
        ("probabilities", {"l_raw": inf_l}, "L contains NaN or Inf"),
        ("colorize_l", {"l_raw": np.zeros((1, 1001, 1000, 1), np.float32)}, "max_pixels=1000000"),
        ("colorize_l", {"l_raw": np.zeros((1, 0, 5, 1), np.float32)}, "each side must be > 0"),
        ("colorize_l", {"l_raw": l_raw, "temperature": np.float32(0.0)}, "finite and > 0"),
        ("colorize_l", {"l_raw": l_raw, "temperature": np.float32(np.nan)}, "finite and > 0"),
        (
            "colorize_l",
            {"l_raw": l_raw, "temperature": np.ones(3, np.float32)},
            "one value per image (2 images), got 3",
        ),
    ]
    for signature, feeds, message in cases:
        with pytest.raises(RequestError) as info:
            session.predict(signature, feeds)
        assert info.value.code.name == "INVALID_ARGUMENT", info.value.message
        assert message in info.value.message


def test_graph_has_only_core_ops_and_xla_attribute(exported):
    _, result = exported
    assert export.non_core_ops(result.path) == set()
    ops = export.saved_model_op_types(result.path)
    assert not ops & {"PyFunc", "PyFuncStateless", "EagerPyFunc"}
    from tensorflow.core.protobuf import saved_model_pb2

    proto = saved_model_pb2.SavedModel()
    with open(os.path.join(result.path, "saved_model.pb"), "rb") as f:
        proto.ParseFromString(f.read())
    compiled = [
        f.signature.name
        for f in proto.meta_graphs[0].graph_def.library.function
        if f.attr["_XlaMustCompile"].b
    ]
    assert compiled and all("logits_fn" in name for name in compiled)


# A fresh process that imports TensorFlow only (colornet is blocked, and no Keras
# module beyond those `import tensorflow` loads itself may be imported) and runs every
# signature through the code of `saved_model_cli run`: TF's session loader, as in
# TF Serving.
_FRESH_PROCESS = textwrap.dedent(
    """
    import sys
    sys.modules["colornet"] = None  # importing colornet would fail
    import tensorflow as tf
    from tensorflow.python.tools import saved_model_cli
    keras_before = {m for m in sys.modules if m.split(".")[0] == "keras"}
    path, workdir = sys.argv[1:]
    for signature, key in (
        ("serving_default", "image_bytes"),
        ("colorize_l", "l_raw"),
        ("colorize_rgb", "rgb"),
        ("probabilities", "l_raw"),
    ):
        feeds = saved_model_cli.load_inputs_from_input_arg_string(
            f"{key}={workdir}/{key}.npy", "", ""
        )
        saved_model_cli.run_saved_model_with_feed_dict(
            path, "serve", signature, feeds, f"{workdir}/fresh/{signature}", False
        )
    keras_after = {m for m in sys.modules if m.split(".")[0] == "keras"}
    assert keras_after == keras_before, sorted(keras_after - keras_before)
    """
)


@pytest.mark.slow
def test_tf_serving_view_in_subprocesses(exported, tmp_path):
    """`saved_model_cli run` and a fresh TF-only process running every signature."""
    model, result = exported
    encoded, decoded = _mixed_batch()
    rgb = np.stack([smooth_rgb(36, 44, seed=s) for s in range(2)])
    l_raw = h.l_of(rgb)
    np.save(tmp_path / "image_bytes.npy", np.array(encoded[:3], dtype=object), allow_pickle=True)
    np.save(tmp_path / "l_raw.npy", l_raw)
    np.save(tmp_path / "rgb.npy", rgb)
    script = tmp_path / "fresh.py"
    script.write_text(_FRESH_PROCESS)
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    command = [
        "saved_model_cli", "run", "--dir", result.path, "--tag_set", "serve",
        "--signature_def", "serving_default",
        "--inputs", f"image_bytes={tmp_path / 'image_bytes.npy'}",
        "--outdir", str(tmp_path / "cli"),
    ]  # fmt: skip
    processes = {
        "saved_model_cli": subprocess.Popen(
            command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        ),
        "fresh": subprocess.Popen(
            [sys.executable, str(script), result.path, str(tmp_path)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        ),
    }
    for name, process in processes.items():
        _, stderr = process.communicate(timeout=300)
        assert process.returncode == 0, f"{name}: {stderr[-2000:]}"

    fresh = tmp_path / "fresh"
    want_ab, want_rgb, want_logits = h.reference_colorize(model, l_raw)
    for signature in ("colorize_l", "colorize_rgb"):
        np.testing.assert_allclose(np.load(fresh / signature / "ab.npy"), want_ab, atol=AB_ATOL)
        got_rgb = np.load(fresh / signature / "rgb.npy")
        np.testing.assert_allclose(got_rgb.astype(int), want_rgb.astype(int), atol=RGB_ATOL)
    np.testing.assert_allclose(np.load(fresh / "probabilities" / "logits.npy"), want_logits, atol=1e-4)
    np.testing.assert_array_equal(np.load(fresh / "probabilities" / "ab_bins.npy"), bins.ab_bins())
    # Neither run fed a temperature: the SignatureDef's default (0.38) applied.
    for directory in (tmp_path / "cli", fresh / "serving_default"):
        pngs = np.load(directory / "colorized_png_bytes.npy", allow_pickle=True)
        assert len(pngs) == 3
        for png, rgb_in in zip(pngs, decoded):
            _, want, _ = h.reference_colorize(model, h.l_of(rgb_in[None]))
            got = tf.io.decode_png(png).numpy()
            np.testing.assert_allclose(got.astype(int), want[0].astype(int), atol=RGB_ATOL)


def test_bfloat16_export_decodes_in_float32(exported, tmp_path):
    model, _ = exported
    result = export.export_saved_model(
        model, tmp_path / "bf16", size=h.IMAGE_SIZE, precision="bfloat16", warmup=False
    )
    from tensorflow.core.protobuf import saved_model_pb2

    proto = saved_model_pb2.SavedModel()
    with open(os.path.join(result.path, "saved_model.pb"), "rb") as f:
        proto.ParseFromString(f.read())
    library = proto.meta_graphs[0].graph_def.library.function
    nodes = [n for f in library for n in f.node_def]
    assert any(n.op == "Cast" and n.attr["DstT"].type == tf.bfloat16.as_datatype_enum for n in nodes)
    assert not any(f.attr["_XlaMustCompile"].b for f in library)  # no XLA by default
    served = SessionModel(os.path.dirname(result.path), "colornet")
    l_raw = h.l_of(np.stack([smooth_rgb(40, 40, seed=s) for s in range(2)]))
    got = served.predict("probabilities", {"l_raw": l_raw})
    served.session.close()
    _, _, want_logits = h.reference_colorize(model, l_raw)
    assert got["logits"].dtype == np.float32
    # bfloat16 keeps 8 bits of mantissa: logits of about +-10 err by a few hundredths.
    assert np.abs(got["logits"] - want_logits).mean() < 0.1
    assert export.with_precision(model, "float32") is model


def test_cli_export(tmp_path, capsys):
    model = h.vivid_tiny_model()
    path = tmp_path / "model.keras"
    model.save(path)
    base = tmp_path / "served"
    argv = ["colornet", "export", "--model", str(path), "--out", str(base), "--version", "3",
            "--image-size", "32", "--no-warmup"]  # fmt: skip
    assert cli.main(cli._parse_flags(argv)) == 0
    assert "version 3" in capsys.readouterr().out
    assert export.existing_versions(base) == [3]
    assert not os.path.exists(base / "3" / "assets.extra" / export.WARMUP_NAME)
    assert cli.main(cli._parse_flags(argv)) == 1
    assert "already exists" in capsys.readouterr().err
    missing = ["colornet", "export", "--model", str(tmp_path / "nope.keras"), "--out", str(base)]
    assert cli.main(cli._parse_flags(missing)) == 1


def test_unwritable_base_dir_is_refused_before_the_model_is_loaded(tmp_path, capsys, monkeypatch, deny_access):
    # The model path does not exist: an error about it would mean the output was
    # checked too late.
    model = str(tmp_path / "nope.keras")
    (tmp_path / "somefile.txt").write_text("a regular file\n")
    base = str(tmp_path / "somefile.txt" / "models" / "colornet")
    argv = ["colornet", "export", "--model", model, "--out", base, "--no-warmup"]
    assert cli.main(cli._parse_flags(argv)) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        f"colornet export: error: cannot write {base}/1: {tmp_path / 'somefile.txt'} is not a directory"
    ]
    # A directory this process may not write to (root ignores chmod, so os.access
    # is made to say no for it).
    locked = tmp_path / "locked"
    locked.mkdir()
    deny_access(locked)
    message = f"cannot write {locked / 'served'}/1: directory {locked} is not writable"
    with pytest.raises(ColornetError, match=re.escape(message)):
        export.export_saved_model(model, locked / "served")
    assert sorted(os.listdir(tmp_path)) == ["locked", "somefile.txt"] and not os.listdir(locked)
