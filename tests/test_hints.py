"""User hints (the authors' 2017 follow-up): the hint map, simulated training hints,
the hint inputs of the network, colourising with hints and colour suggestions.

Oracles: NumPy means over the patches the mask shows, hand-placed points, a model
whose hint convolution is zero (it must equal the model without hints), and a
stand-in predictor whose distribution is set by hand for the suggestions.
"""

import json

import keras
import numpy as np
import pytest
import tensorflow as tf

import colornet
from colornet import hints
from colornet.data import pipelines
from colornet.deploy import predictors
from colornet.models import Colorizer, get_preset, loading
from colornet.training import train
from colornet.training.config import TrainConfig
from colornet.utils.errors import ColornetError
from tests.helpers.contract import check_layer_contract


def _ab(shape, seed=1):
    return np.random.default_rng(seed).uniform(-80, 80, shape).astype(np.float32)


def _components(mask):
    """Labels of 4-connected hinted regions (a tiny flood fill, independent of TF)."""
    labels = np.zeros(mask.shape, int)
    current = 0
    for start in zip(*np.nonzero(mask)):
        if labels[start]:
            continue
        current += 1
        stack = [start]
        while stack:
            y, x = stack.pop()
            if 0 <= y < mask.shape[0] and 0 <= x < mask.shape[1] and mask[y, x] and not labels[y, x]:
                labels[y, x] = current
                stack += [(y + 1, x), (y - 1, x), (y, x + 1), (y, x - 1)]
    return labels, current


def test_simulated_single_patch_holds_its_mean_true_ab():
    """With exactly one patch per image, the hinted pixels form a square of side 1..9
    and each holds the mean true ab over that square (NumPy float64)."""
    ab = _ab([16, 40, 40, 2])
    seed = tf.constant([3, 4], tf.int64)
    got = hints.simulate_hints(ab, seed, no_hint_rate=0.0, points_p=1.0, max_points=1).numpy()
    sides = set()
    for image, truth in zip(got, ab):
        mask = image[..., 2] > 0
        rows, cols = np.nonzero(mask)
        height, width = rows.max() - rows.min() + 1, cols.max() - cols.min() + 1
        assert mask.sum() == height * width  # one rectangle, filled
        assert height <= hints.MAX_PATCH and width <= hints.MAX_PATCH
        sides.add(max(height, width))
        expected = truth[mask].astype(np.float64).mean(0)
        np.testing.assert_allclose(image[mask][:, :2], np.broadcast_to(expected, (mask.sum(), 2)), atol=1e-3)
        np.testing.assert_array_equal(image[~mask], 0.0)
    assert len(sides) > 3  # sizes vary


def test_simulated_hints_are_seeded_and_spread():
    ab = _ab([64, 32, 32, 2])
    one = hints.simulate_hints(ab, tf.constant([1, 2], tf.int64)).numpy()
    np.testing.assert_array_equal(one, hints.simulate_hints(ab, tf.constant([1, 2], tf.int64)).numpy())
    other = hints.simulate_hints(ab, tf.constant([1, 3], tf.int64)).numpy()
    assert not np.array_equal(one, other)
    hinted = (one[..., 2] > 0).any(axis=(1, 2))
    # NO_HINT_RATE = 0.25 of 64 images: 16 expected; binomial sd 3.5.
    assert 4 <= (~hinted).sum() <= 28
    # Hints land all over the image, not only in its centre.
    cover = (one[..., 2] > 0).mean(0)
    assert cover[:8].sum() > 0 and cover[-8:].sum() > 0 and cover[:, :8].sum() > 0 and cover[:, -8:].sum() > 0


def test_simulated_count_is_geometric():
    """Counted as hinted regions where patches are single pixels far apart on average:
    mean count of hinted images about 1 / p = 8 (merged neighbours make it lower)."""
    ab = _ab([200, 96, 96, 2])
    got = hints.simulate_hints(
        ab, tf.constant([5, 6], tf.int64), no_hint_rate=0.0, max_patch=1
    ).numpy()
    counts = [_components(image[..., 2] > 0)[1] for image in got]
    assert min(counts) >= 1
    assert 6.5 <= np.mean(counts) <= 9.0


def test_simulation_runs_in_tf_data():
    ab = _ab([4, 16, 16, 2])
    seeds = tf.data.Dataset.random(seed=7).batch(2).take(2)
    maps = [m.numpy() for m in seeds.map(lambda s: hints.simulate_hints(ab, s))]
    assert maps[0].shape == (4, 16, 16, 3)


def test_hint_map_places_points_in_network_pixels():
    # A 100 x 200 image (H x W) onto a 16 x 16 grid: x scales by 16/200, y by 16/100.
    grid = hints.hint_map([[150.0, 75.0, 20.0, -30.0, 1.0]], (100, 200), 16).numpy()
    mask = grid[..., 2]
    assert mask.sum() == 1 and mask[12, 12] == 1  # (75 * 0.16, 150 * 0.08) = (12, 12)
    np.testing.assert_allclose(grid[12, 12], [20.0, -30.0, 1.0])
    # No size: DEFAULT_PATCH network pixels a side, centred on the point.
    grid = hints.hint_map([[150.0, 75.0, 20.0, -30.0, 0.0]], (100, 200), 16).numpy()
    assert grid[..., 2].sum() == hints.DEFAULT_PATCH**2
    assert grid[11:14, 11:14, 2].all()
    # A size of 50 input pixels: 8 rows (50 * 0.16) by 4 columns (50 * 0.08).
    grid = hints.hint_map([[100.0, 50.0, 5.0, 5.0, 50.0]], (100, 200), 16).numpy()
    rows, cols = np.nonzero(grid[..., 2])
    assert (rows.max() - rows.min() + 1, cols.max() - cols.min() + 1) == (8, 4)


def test_hint_map_overlaps_average_and_edges_clip():
    grid = hints.hint_map([[0.0, 0.0, 10.0, 0.0, 0.0], [1.0, 0.0, 30.0, 0.0, 0.0]], (16, 16), 16).numpy()
    assert grid[0, 0, 0] == pytest.approx(20.0)  # both cover (0, 0)
    assert grid[..., 2].sum() == 6  # two 3 x 3 squares cut to 2 x 2 and 2 x 3 at the corner, overlapping
    empty = hints.hint_map(np.zeros([0, 5]), (16, 16), 8).numpy()
    assert empty.shape == (8, 8, 3) and not empty.any()


def test_parse_hints_formats():
    got = hints.parse_hints(
        [
            {"x": 1, "y": 2, "ab": [10, -20]},
            {"x": 3.5, "y": 4, "color": "#ff0000", "size": 9},
            {"x": 0, "y": 0, "color": [0, 0, 255]},
            (5, 6, 7, 8),
        ],
        image_size=(10, 10),
    )
    assert got.shape == (4, 5) and got.dtype == np.float32
    np.testing.assert_allclose(got[0], [1, 2, 10, -20, 0])
    # sRGB red and blue: ab from scikit-image's rgb2lab, the package's colour oracle.
    from skimage.color import rgb2lab

    np.testing.assert_allclose(got[1, 2:4], rgb2lab(np.array([[[1.0, 0, 0]]]))[0, 0, 1:], atol=0.01)
    np.testing.assert_allclose(got[2, 2:4], rgb2lab(np.array([[[0, 0, 1.0]]]))[0, 0, 1:], atol=0.01)
    assert got[1, 4] == 9
    assert hints.parse_hints([]).shape == (0, 5)


@pytest.mark.parametrize(
    "bad, message",
    [
        ({"x": 1, "y": 2, "color": "green"}, "is not a colour"),
        ({"x": 1, "y": 2, "color": [0, 300, 0]}, "0..255"),
        ({"x": 1, "y": 2}, "exactly one of color and ab"),
        ({"x": 1, "y": 2, "color": "#000000", "ab": [0, 0]}, "exactly one of color and ab"),
        ({"x": 1, "color": "#000000"}, "needs x and y"),
        ({"x": 20, "y": 2, "ab": [0, 0]}, "outside the 10 x 10 image"),
        ({"x": -1, "y": 2, "ab": [0, 0]}, "outside"),
        ({"x": float("nan"), "y": 2, "ab": [0, 0]}, "finite number"),
        ({"x": 1, "y": 2, "ab": [0, 500]}, "within"),
        ({"x": 1, "y": 2, "ab": [0, 0], "size": -3}, "size must be >= 0"),
        ({"x": 1, "y": 2, "ab": [0, 0], "colour": "#fff000"}, "unknown keys"),
        ("#ff0000", "is not a hint"),
    ],
)
def test_parse_hints_refuses_bad_hints(bad, message):
    with pytest.raises(ColornetError, match=message) as raised:
        hints.parse_hints([{"x": 0, "y": 0, "ab": [1, 1]}, bad], image_size=(10, 10))
    assert str(raised.value).startswith("hint 1")


def test_parse_hints_refuses_thousands():
    with pytest.raises(ColornetError, match="at most"):
        hints.parse_hints([{"x": 0, "y": 0, "ab": [0, 0]}] * (hints.MAX_HINTS + 1))


def test_read_hints_file(tmp_path):
    good = tmp_path / "good.json"
    good.write_text(json.dumps([{"x": 1, "y": 2, "color": "#3a7d2c"}]))
    assert hints.read_hints_file(good) == [{"x": 1, "y": 2, "color": "#3a7d2c"}]
    broken = tmp_path / "broken.json"
    broken.write_text("[{x: 1}")
    with pytest.raises(ColornetError, match="broken.json: not JSON"):
        hints.read_hints_file(broken)
    with pytest.raises(ColornetError, match="cannot read hints"):
        hints.read_hints_file(tmp_path / "missing.json")


# ----------------------------------------------------------------------------
# The network's hint inputs.


def _tiny_pair():
    """A tiny model without hints and the same network with the 2017 hint inputs (no
    spread: `HintSpread` is tested on its own), started from it."""
    plain = Colorizer(get_preset("tiny"))
    hinted = Colorizer(get_preset("tiny", hints=True, hint_spread=0.0))
    values = {w.path: w for w in plain.weights}
    for w in hinted.weights:
        if w.path in values:
            w.assign(values[w.path])
    return plain, hinted


@pytest.mark.parametrize("preset", ["tiny", "half_shortcut"])
def test_hint_convolution_starts_at_zero(preset):
    """A hint model started from a model without hints is that model, hints or not."""
    hinted = Colorizer(get_preset(preset, hints=True))
    extra = [w for w in hinted.weights if "hint" in w.path]
    assert [w.path for w in extra] == ["conv1_1hint/kernel", "conv8_1hint/kernel"]
    assert not any(np.any(w.numpy()) for w in extra)
    plain = Colorizer(get_preset(preset))
    filters = get_preset(preset).filters
    assert hinted.count_params() - plain.count_params() == 9 * 3 * (filters[0] + filters[7])


def test_hint_model_without_hints_is_the_plain_model():
    plain, hinted = _tiny_pair()
    l_raw = np.random.default_rng(0).uniform(0, 100, [2, 36, 36, 1]).astype(np.float32)
    some = hints.simulate_hints(_ab([2, 36, 36, 2]), tf.constant([1, 1], tf.int64))
    expected = plain(l_raw).numpy()
    np.testing.assert_array_equal(hinted(l_raw).numpy(), expected)
    np.testing.assert_array_equal(hinted([l_raw, some]).numpy(), expected)  # zero kernel
    hinted.get_layer("conv1_1hint").kernel.assign(tf.ones_like(hinted.get_layer("conv1_1hint").kernel))
    assert not np.allclose(hinted([l_raw, some]).numpy(), expected)
    hinted.get_layer("conv1_1hint").kernel.assign(tf.zeros_like(hinted.get_layer("conv1_1hint").kernel))
    hinted.get_layer("conv8_1hint").kernel.assign(tf.ones_like(hinted.get_layer("conv8_1hint").kernel))
    assert not np.allclose(hinted([l_raw, some]).numpy(), expected)
    np.testing.assert_array_equal(hinted(l_raw).numpy(), expected)  # no hints: the map is zeros


def test_hint_model_saves_and_loads(tmp_path):
    _, hinted = _tiny_pair()
    hinted.get_layer("conv1_1hint").kernel.assign(tf.fill(hinted.get_layer("conv1_1hint").kernel.shape, 0.01))
    l_raw = np.random.default_rng(0).uniform(0, 100, [1, 32, 32, 1]).astype(np.float32)
    some = hints.simulate_hints(_ab([1, 32, 32, 2]), tf.constant([2, 2], tf.int64))
    expected = hinted([l_raw, some]).numpy()
    hinted.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras", safe_mode=True)
    np.testing.assert_allclose(loaded([l_raw, some]).numpy(), expected, atol=1e-5)
    loading.save_compact(hinted, tmp_path / "m.npz", dtype="float32")
    compact = loading.load_colorizer(tmp_path / "m.npz")
    assert compact.model_config.hints
    np.testing.assert_allclose(compact([l_raw, some]).numpy(), expected, atol=1e-5)


# ----------------------------------------------------------------------------
# Spreading a hint over the pixels whose features match (`HintSpread`).


def _spread_oracle(logits, features, hint_map, strength, temperature, threshold, radius, sigma=5.0):
    """`HintSpread` written out pixel by pixel in NumPy float64, from its docstring."""
    from colornet import bins

    centres = np.asarray(bins.ab_bins(), np.float64)
    out = np.array(logits, np.float64)
    _, h, w, _ = logits.shape
    for b in range(logits.shape[0]):
        cells = []
        for y in range(h):
            for x in range(w):
                block = hint_map[b, 4 * y : 4 * y + 4, 4 * x : 4 * x + 4].reshape(-1, 3).astype(np.float64)
                cover = block[:, 2].sum() / 16.0
                if cover > 0:
                    cells.append((y, x, block[:, :2].sum(0) / 16.0 / cover))
        if not cells:
            continue
        centred = features[b] - features[b].mean((0, 1))
        unit = centred / np.linalg.norm(centred, axis=-1, keepdims=True)
        for y in range(h):
            for x in range(w):
                scores = []
                for cy, cx, _ in cells:
                    score = unit[y, x] @ unit[cy, cx] / temperature
                    if radius:
                        score -= ((y - cy) ** 2 + (x - cx) ** 2) / (2 * radius**2)
                    scores.append(score)
                scores = np.array(scores + [threshold / temperature])
                weights = np.exp(scores - scores.max())
                weights = weights[:-1] / weights.sum()
                mass = weights.sum()
                ab = sum(wt * cell[2] for wt, cell in zip(weights, cells)) / mass
                encoded = np.exp(-((ab - centres) ** 2).sum(-1) / (2 * sigma**2))
                p = np.exp(out[b, y, x] - out[b, y, x].max())
                p /= p.sum()
                share = strength * mass
                mixed = (1 - share) * p + share * encoded / encoded.sum()
                # Logits are defined up to a constant: compare log-probabilities.
                out[b, y, x] = np.log(mixed)
    return out


@pytest.mark.parametrize("radius", [0.0, 3.0])
def test_hint_spread_is_its_formula(radius):
    from colornet.layers import HintSpread

    rng = np.random.default_rng(7)
    logits = rng.normal(0, 1, [2, 5, 6, 313]).astype(np.float32)
    features = rng.uniform(0, 1, [2, 5, 6, 8]).astype(np.float32)
    hint_map = np.zeros([2, 20, 24, 3], np.float32)
    hint_map[0, 1:4, 2:5] = [40, -20, 1]  # a 3 x 3 patch across two cells
    hint_map[0, 14, 17] = [-30, 50, 1]
    hint_map[0, 18, 9] = [10, 10, 1]
    layer = HintSpread(strength=0.9, temperature=0.1, threshold=0.4, radius=radius)
    got = layer([logits, features, hint_map]).numpy()
    log_p = got[0] - np.log(np.exp(got[0]).sum(-1, keepdims=True))
    expected = _spread_oracle(logits, features, hint_map, 0.9, 0.1, 0.4, radius)
    np.testing.assert_allclose(log_p, expected[0], atol=1e-4)
    np.testing.assert_array_equal(got[1], logits[1])  # the image without hints: unchanged, exactly
    again = HintSpread.from_config(layer.get_config())([logits, features, hint_map]).numpy()
    np.testing.assert_array_equal(again, got)


def test_hint_spread_stays_in_its_region():
    """Two regions with orthogonal features: a hint colours its own region (its
    colour's bin wins there) and all but nothing of the other."""
    from colornet import bins
    from colornet.layers import HintSpread

    features = np.zeros([1, 8, 8, 4], np.float32)
    features[0, :, :4] = [1, 0, 0.2, 0]
    features[0, :, 4:] = [0, 1, 0, 0.2]
    hint_map = np.zeros([1, 32, 32, 3], np.float32)
    hint_map[0, 5, 3] = [40, -20, 1]  # one pixel, in the left region's cell (1, 0)
    # A network sure of another colour (bin 0) everywhere.
    logits = np.zeros([1, 8, 8, 313], np.float32)
    logits[..., 0] = 12.0
    got = HintSpread(strength=1.0, temperature=0.1, threshold=0.4)([logits, features, hint_map]).numpy()[0]
    p = np.exp(got - got.max(-1, keepdims=True))
    p /= p.sum(-1, keepdims=True)
    red = int(np.argmin(((np.asarray(bins.ab_bins()) - [40, -20]) ** 2).sum(-1)))
    assert np.all(p[:, :4].argmax(-1) == red)  # the whole region takes the hint ...
    assert np.all(p[:, :4, 0] < 0.01)  # ... however sure the network was
    # Past the edge (centred features: cosine -1) the hint's share is 1 / (1 + e^14).
    before = np.exp(logits[0] - logits[0].max(-1, keepdims=True))
    before /= before.sum(-1, keepdims=True)
    np.testing.assert_allclose(p[:, 4:], before[:, 4:], atol=1e-5)


def test_hint_spread_takes_many_hints():
    """More hinted cells than `MAX_CELLS`: the strongest are used, all finite."""
    from colornet.layers import HintSpread, hint_spread

    rng = np.random.default_rng(3)
    hint_map = np.concatenate([rng.uniform(-50, 50, [1, 96, 96, 2]), np.ones([1, 96, 96, 1])], -1)
    assert (96 // 4) ** 2 > hint_spread.MAX_CELLS
    got = HintSpread(1.0, 0.1, 0.4)([np.zeros([1, 24, 24, 313]), rng.uniform(0, 1, [1, 24, 24, 8]), hint_map])
    assert np.all(np.isfinite(got.numpy())) and np.any(got.numpy())


def test_as_hint_model_spreads_and_keeps_the_plain_model():
    from colornet.models import as_hint_model

    plain = Colorizer(get_preset("tiny"))
    hinted = as_hint_model(plain, hint_spread=1.0)
    assert hinted.model_config.hints and hinted.model_config.hint_spread == 1.0
    l_raw = np.random.default_rng(0).uniform(0, 100, [1, 32, 32, 1]).astype(np.float32)
    np.testing.assert_array_equal(hinted(l_raw).numpy(), plain(l_raw).numpy())
    some = hints.hint_map(np.array([[8, 8, 40, -20, 0]], np.float32), (32, 32), 32)[None]
    spread = hinted([l_raw, some]).numpy() - plain(l_raw).numpy()
    assert np.count_nonzero(np.abs(spread).max(-1) > 1e-3) > 1  # more than the hinted cell


def test_normalize_hints_contract(tmp_path):
    from colornet.models.normalization import NormalizeHints

    layer = NormalizeHints(50.0, 1.0)
    x = np.concatenate([_ab([2, 4, 4, 2]), np.ones([2, 4, 4, 1], np.float32)], -1)
    np.testing.assert_allclose(layer(x).numpy()[..., 2], 50.0)
    check_layer_contract(layer, x, tmp_path)


@pytest.mark.slow
def test_train_dataset_with_hints(tmp_path):
    from PIL import Image

    for i in range(3):
        rgb = np.random.default_rng(i).integers(0, 256, [40, 48, 3], dtype=np.uint8)
        Image.fromarray(rgb).save(tmp_path / f"{i}.png")
    dataset = pipelines.train_dataset(str(tmp_path), batch_size=2, crop=32, resize=36, seed=1, hints=True)
    (l_raw, hint_map), ab = next(iter(dataset))
    assert l_raw.shape == (2, 32, 32, 1) and hint_map.shape == (2, 32, 32, 3) and ab.shape == (2, 8, 8, 2)
    # Every hinted pixel's ab is the mean of a patch of the true ab: within its range.
    mask = hint_map[..., 2].numpy() > 0
    assert mask.any()
    model = Colorizer(get_preset("tiny", hints=True))
    model.compile()
    history = model.fit(dataset.take(2), epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    assert np.any(model.get_layer("conv1_1hint").kernel.numpy())  # the hint path trains


@pytest.mark.slow
def test_training_a_hint_model_from_a_plain_file(tmp_path):
    """`init_from` a model file without hints: the run starts where that model was."""
    from PIL import Image

    for i in range(4):
        rgb = np.random.default_rng(i).integers(0, 256, [40, 40, 3], dtype=np.uint8)
        Image.fromarray(rgb).save(tmp_path / f"{i}.png")
    plain = Colorizer(get_preset("tiny"))
    loading.save_compact(plain, tmp_path / "plain.npz", dtype="float32")
    config = TrainConfig(
        data=str(tmp_path), workdir=str(tmp_path / "run"), preset="tiny", hints=True, steps=1,
        batch_size=2, crop=32, resize=40, init_from=str(tmp_path / "plain.npz"),
        recalibrate_images=0, verbose=0,
    )
    model = train.build_model(train._Start.of(config.init_from).resolve(config))
    train._init_weights(model, loading.load_colorizer(config.init_from), config.init_from)
    l_raw = np.random.default_rng(0).uniform(0, 100, [1, 32, 32, 1]).astype(np.float32)
    np.testing.assert_allclose(model(l_raw).numpy(), plain(l_raw).numpy(), atol=1e-5)
    train.train(config)
    trained = loading.load_colorizer(str(tmp_path / "run"))
    assert trained.model_config.hints
    with pytest.raises(ColornetError, match="differs in"):
        source = loading.load_colorizer(str(tmp_path / "run" / "model.keras"))
        train._init_weights(Colorizer(get_preset("tiny")), source, "run")


# ----------------------------------------------------------------------------
# Colourising with hints, and suggestions.


def test_colorize_with_hints_is_the_hinted_network():
    _, hinted = _tiny_pair()
    hinted.get_layer("conv1_1hint").kernel.assign(tf.fill(hinted.get_layer("conv1_1hint").kernel.shape, 0.05))
    image = np.random.default_rng(3).integers(0, 256, [60, 80], dtype=np.uint8)
    given = [{"x": 40, "y": 30, "color": "#20a020", "size": 20}]
    predictor = predictors.KerasPredictor(hinted)
    with_hints = colornet.colorize(image, model=predictor, hints=given, size=32)
    without = colornet.colorize(image, model=predictor, size=32)
    assert with_hints.shape == (60, 80, 3)
    assert not np.array_equal(with_hints, without)
    np.testing.assert_array_equal(colornet.colorize(image, model=predictor, hints=[], size=32), without)


def test_hints_for_a_model_without_them_are_refused():
    image = np.zeros([20, 20], np.uint8)
    plain = predictors.KerasPredictor(Colorizer(get_preset("tiny")))
    with pytest.raises(ColornetError, match="takes no hints"):
        colornet.colorize(image, model=plain, hints=[{"x": 1, "y": 1, "ab": [5, 5]}], size=16)


class _TwoRegions(predictors.Predictor):
    """Left half of the logits' grid: 70 % on bin near ab (0, 60) [yellow], 20 % spread
    over its neighbour (10, 60), 10 % at (-50, 50) [green]; right half: all at (60, 0)."""

    def __init__(self):
        centres = np.asarray(colornet.ab_bins())
        self.index = {tuple(ab): i for i, ab in enumerate(centres.round().astype(int).tolist())}

    def logits(self, l_small, hints=None):
        size = l_small.shape[1] // 4
        p = np.full([1, size, size, 313], 1e-9)
        half = size // 2
        p[:, :, :half, self.index[(0, 60)]] = 0.7
        p[:, :, :half, self.index[(10, 60)]] = 0.2
        p[:, :, :half, self.index[(-50, 50)]] = 0.1
        p[:, :, half:, self.index[(60, 0)]] = 1.0
        return tf.math.log(tf.constant(p / p.sum(-1, keepdims=True), tf.float32))


def test_suggest_colors_from_a_known_distribution():
    image = np.full([64, 64], 128, np.uint8)
    got = colornet.suggest_colors(image, 10, 30, k=3, model=_TwoRegions(), size=64)
    # Near bins merge: (0, 60) and (10, 60) are one suggestion of 0.9 at their mean.
    assert len(got) == 2
    np.testing.assert_allclose(got[0]["ab"], [(0.7 * 0 + 0.2 * 10) / 0.9, 60], atol=0.01)
    assert got[0]["probability"] == pytest.approx(0.9, abs=1e-3)
    np.testing.assert_allclose(got[1]["ab"], [-50, 50], atol=0.01)
    assert got[1]["probability"] == pytest.approx(0.1, abs=1e-3)
    red, green, blue = (int(got[0]["color"][i : i + 2], 16) for i in (1, 3, 5))
    assert red > blue and green > blue  # yellowish at the grey's lightness
    right = colornet.suggest_colors(image, 60, 30, k=3, model=_TwoRegions(), size=64)
    assert len(right) == 1 and right[0]["ab"] == [60.0, 0.0]
    with pytest.raises(ColornetError, match="outside"):
        colornet.suggest_colors(image, 64, 3, model=_TwoRegions(), size=64)


class _Oracle(predictors.Predictor):
    """Takes hints and paints each output pixel with the hint map's ab where there is
    one (its nearest bin, sharply), grey elsewhere: an upper bound a trained hint model
    approaches, to check the hint evaluation's bookkeeping."""

    takes_hints = True
    source = "oracle"

    def logits(self, l_small, hints=None):
        size = l_small.shape[1]
        if hints is None:
            hints = np.zeros([1, size, size, 3], np.float32)
        # Each output pixel: the mean hinted ab of its 4 x 4 input block.
        blocks = np.asarray(hints).reshape(1, size // 4, 4, size // 4, 4, 3)
        mask = blocks[..., 2:].sum((2, 4))
        ab = blocks[..., :2].sum((2, 4)) / np.maximum(mask, 1)
        centres = np.asarray(colornet.ab_bins())
        distance = np.linalg.norm(ab[..., None, :] - centres, axis=-1)
        return tf.constant(-distance * 10.0, tf.float32)


def test_evaluate_hints_bookkeeping(tmp_path):
    from PIL import Image

    from colornet.apps import evaluate

    for i in range(2):
        # Flat colour regions: a hint anywhere in one tells the truth of the whole square.
        rgb = np.zeros([64, 64, 3], np.uint8)
        rgb[:, :32] = (200, 40, 40)
        rgb[:, 32:] = (40, 160, 60)
        Image.fromarray(rgb).save(tmp_path / f"{i}.png")
    result = evaluate.evaluate_hints(_Oracle(), str(tmp_path), points=(0, 5, 50), size=64, verbose=0)
    psnr = [result["points"][n]["psnr_db"] for n in ("0", "5", "50")]
    assert psnr[0] == pytest.approx(result["grey"]["psnr_db"], abs=0.05)  # no hint: grey
    assert psnr[0] < psnr[1] < psnr[2]
    assert result["points"]["0"]["hint_error_ab"] is None
    # The oracle copies the hint up to its bin (up to 7 ab from a centre), but at 1/4
    # resolution: the bilinear upsampling blends a 3-pixel hint square with its unhinted
    # neighbours (10.5 measured; an oracle that misses the hints scores about 49).
    assert result["points"]["50"]["hint_error_ab"] < 15.0
    with pytest.raises(ColornetError, match="takes no hints"):
        evaluate.evaluate_hints(Colorizer(get_preset("tiny")), str(tmp_path), points=(0, 1), size=64, verbose=0)


class _Painter(_Oracle):
    """Paints each hint's colour over its whole half of the image ("half"), over the
    whole image ("all"), or only where it is (the oracle's dot)."""

    def __init__(self, reach):
        self.reach = reach

    def logits(self, l_small, hints=None):
        logits = super().logits(l_small, hints).numpy()
        if hints is None or self.reach == "dot":
            return tf.constant(logits)
        side = logits.shape[1]
        mask = np.asarray(hints)[0, ..., 2].reshape(side, 4, side, 4).sum((1, 3))
        y, x = np.argwhere(mask > 0)[0]
        half = slice(0, side // 2) if x < side // 2 else slice(side // 2, None)
        span = slice(None) if self.reach == "all" else half
        logits[0, :, span] = logits[0, y, x]
        return tf.constant(logits)


def test_evaluate_hint_spread_tells_region_dot_and_leak(tmp_path):
    """Two flat halves: a hint that fills its half covers its region and leaks
    nowhere; one that fills the image leaks everywhere; a dot covers little."""
    from PIL import Image

    from colornet.apps import evaluate

    rgb = np.zeros([64, 64, 3], np.uint8)
    rgb[:, :32] = (200, 40, 40)
    rgb[:, 32:] = (40, 160, 60)
    Image.fromarray(rgb).save(tmp_path / "halves.png")
    scores = {
        reach: evaluate.evaluate_hint_spread(_Painter(reach), str(tmp_path), hints_per_image=4, size=64, verbose=0)
        for reach in ("half", "all", "dot")
    }
    assert scores["half"]["region_share"] == pytest.approx(0.5)
    assert scores["half"]["coverage"] > 0.9 and scores["half"]["leak"] < 0.05
    assert scores["all"]["coverage"] > 0.9 and scores["all"]["leak"] > 0.9
    assert scores["dot"]["coverage"] < 0.1 and scores["dot"]["leak"] < 0.05
    with pytest.raises(ColornetError, match="takes no hints"):
        evaluate.evaluate_hint_spread(Colorizer(get_preset("tiny")), str(tmp_path), size=64, verbose=0)


# ----------------------------------------------------------------------------
# The same hints through a SavedModel.


@pytest.fixture(scope="module")
def hinted_tiny():
    """A tiny hint model whose hint convolution is not zero, so hints change colours."""
    model = Colorizer(get_preset("tiny", hints=True, hint_spread=1.0, hint_spread_radius=4.0))
    rng = np.random.default_rng(0)
    for w in model.weights:
        if "hint" in w.path:
            w.assign(rng.normal(0, 0.05, w.shape).astype(np.float32))
    return model


@pytest.mark.slow
def test_saved_model_colours_as_python_does_with_hints(hinted_tiny, tmp_path):
    from colornet.deploy import export

    image = np.random.default_rng(4).integers(0, 256, [50, 70, 3], dtype=np.uint8)
    given = [{"x": 20, "y": 10, "color": "#c02020", "size": 12}, {"x": 60, "y": 40, "ab": [-30, 40]}]
    result = export.export_saved_model(hinted_tiny, tmp_path / "m", config=export.ExportConfig(image_size=64))
    assert set(result.signatures) == set(export.SIGNATURES + export.HINT_SIGNATURES)
    loaded = tf.saved_model.load(result.path)
    rows = hints.parse_hints(given, image.shape[:2])
    padded = np.concatenate([rows, [[0, 0, 0, 0, -1.0]]])[None]  # a padding row is ignored
    encoded = tf.io.encode_png(image).numpy()
    png = loaded.signatures["colorize_hints"](
        image_bytes=tf.constant([encoded]), hints=tf.constant(padded, tf.float32),
        temperature=tf.constant(0.38),
    )["colorized_png_bytes"][0]
    served = tf.io.decode_png(png).numpy()
    expected = colornet.colorize(image, model=hinted_tiny, hints=given, size=64)
    without = colornet.colorize(image, model=hinted_tiny, size=64)
    assert not np.array_equal(expected, without)
    # Float tolerance: one uint8 level (graph vs eager rounding).
    assert np.abs(served.astype(int) - expected).max() <= 1
    suggested = loaded.signatures["suggest_colors"](
        image_bytes=tf.constant([encoded]), point=tf.constant([[33.0, 21.0]]), hints=tf.constant(padded, tf.float32)
    )
    python = colornet.suggest_colors(image, 33, 21, k=export.SUGGESTIONS, model=hinted_tiny, hints=given, size=64)
    probability = suggested["probability"].numpy()[0]
    kept = probability > 1e-6
    np.testing.assert_allclose(probability[kept], [s["probability"] for s in python], atol=1e-3)
    np.testing.assert_allclose(suggested["ab"].numpy()[0][kept], [s["ab"] for s in python], atol=0.05)


@pytest.mark.slow
def test_saved_model_of_a_plain_model_has_no_hint_signatures(tmp_path):
    from colornet.deploy import export

    result = export.export_saved_model(
        Colorizer(get_preset("tiny")), tmp_path / "m", config=export.ExportConfig(image_size=32, warmup=False)
    )
    assert result.signatures == export.SIGNATURES
    assert "colorize_hints" not in tf.saved_model.load(result.path).signatures


@pytest.mark.parametrize("quantize", ["none", "dynamic"])
@pytest.mark.slow
def test_tflite_colours_as_python_does_with_hints(hinted_tiny, tmp_path, quantize):
    from colornet.deploy import tflite

    result = tflite.convert(hinted_tiny, tmp_path / "m.tflite", quantize=quantize, size=64)
    assert all(op.isupper() for op in result.ops)  # builtin ops only (convert checks it too)
    image = np.random.default_rng(5).integers(0, 256, [50, 70, 3], dtype=np.uint8)
    given = [{"x": 20, "y": 10, "color": "#c02020", "size": 12}, {"x": 60, "y": 40, "ab": [-30, 40]}]
    lite = predictors.load_predictor(str(tmp_path / "m.tflite"))
    assert lite.takes_hints
    got = colornet.colorize(image, model=lite, hints=given)
    expected = colornet.colorize(image, model=hinted_tiny, hints=given, size=64)
    # Float: the same up to rounding; dynamic int8 weights: within a few levels on average.
    bound = 1.0 if quantize == "none" else 4.0
    assert np.abs(got.astype(int) - expected).mean() < bound
    automatic = colornet.colorize(image, model=lite)
    assert not np.array_equal(got, automatic)
    if quantize == "none":
        # serving/tflite_colorize.py (NumPy, Pillow, LiteRT) feeds a hint model no hints.
        import importlib.util
        import os

        path = os.path.join(os.path.dirname(__file__), "..", "serving", "tflite_colorize.py")
        spec = importlib.util.spec_from_file_location("tflite_colorize", path)
        script = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(script)
        scripted = script.Colorizer(str(tmp_path / "m.tflite")).colorize(image)
        # Pillow's resampling against TF's: within a level or two (tests/test_tflite.py).
        assert np.abs(scripted.astype(int) - automatic).mean() < 0.5


# ----------------------------------------------------------------------------
# `colornet colorize --hints`.


def _cli(argv, capsys):
    from colornet import cli

    code = cli.main(cli._parse_flags(["colornet", *argv]))
    out, err = capsys.readouterr()
    return code, err


@pytest.fixture
def hint_files(hinted_tiny, tmp_path):
    from PIL import Image

    model_path = tmp_path / "hinted.keras"
    hinted_tiny.save(model_path)
    photos = tmp_path / "photos"
    photos.mkdir()
    for name, (height, width) in {"a": (40, 48), "b": (50, 64), "c": (30, 30)}.items():
        rgb = np.random.default_rng(height).integers(0, 256, [height, width, 3], dtype=np.uint8)
        Image.fromarray(rgb).save(photos / f"{name}.png")
    return model_path, photos


@pytest.mark.slow
def test_cli_hints_file_colours_as_python_does(hint_files, tmp_path, capsys):
    from PIL import Image

    model_path, photos = hint_files
    given = [{"x": 10, "y": 12, "color": "#2050d0", "size": 8}]
    (tmp_path / "a.json").write_text(json.dumps(given))
    code, err = _cli(["colorize", str(photos / "a.png"), "-o", str(tmp_path / "out"), "--model", str(model_path),
                      "--size", "64", "--hints", str(tmp_path / "a.json")], capsys)
    assert code == 0, err
    written = np.asarray(Image.open(tmp_path / "out" / "a.png"))
    image = np.asarray(Image.open(photos / "a.png"))
    model = loading.load_colorizer(str(model_path))
    np.testing.assert_array_equal(written, colornet.colorize(image, model=model, hints=given, size=64))
    assert not np.array_equal(written, colornet.colorize(image, model=model, size=64))


@pytest.mark.slow
def test_cli_hints_folder_matches_by_stem(hint_files, tmp_path, capsys):
    model_path, photos = hint_files
    folder = tmp_path / "hints"
    folder.mkdir()
    (folder / "a.json").write_text(json.dumps([{"x": 5, "y": 5, "ab": [30, 30]}]))
    (folder / "b.json").write_text(json.dumps([{"x": 500, "y": 5, "ab": [30, 30]}]))  # outside b
    (folder / "zzz.json").write_text("[]")  # no such image
    out = tmp_path / "out"
    code, err = _cli(["colorize", str(photos), "-o", str(out), "--model", str(model_path), "--size", "64",
                      "--hints", str(folder)], capsys)
    assert code == 1
    assert sorted(p.name for p in out.iterdir()) == ["a.png", "c.png"]  # c: no hints, coloured anyway
    assert "b.png: hints: hint 0: point (500, 5) is outside the 64 x 50 image" in err
    assert "zzz.json: no image input is named like this hint file" in err


@pytest.mark.parametrize(
    "content, message",
    [("[{\"x\": 1,", "not JSON"), ("[{\"x\": 1, \"y\": 1, \"color\": \"teal\"}]", "is not a colour"),
     ("{\"x\": 1}", "must be a list of hints")],
)
def test_cli_bad_hint_file_stops_before_any_work(hint_files, tmp_path, capsys, content, message):
    model_path, photos = hint_files
    (tmp_path / "h.json").write_text(content)
    out = tmp_path / "out"
    code, err = _cli(["colorize", str(photos / "a.png"), "-o", str(out), "--model", str(model_path),
                      "--hints", str(tmp_path / "h.json")], capsys)
    assert code != 0 and message in err and len(err.strip().splitlines()) == 1
    assert not out.exists() or not any(out.iterdir())


def test_cli_hints_need_a_hint_model_and_one_image_per_file(hint_files, tmp_path, capsys):
    model_path, photos = hint_files
    (tmp_path / "h.json").write_text("[]")
    plain_path = tmp_path / "plain.keras"
    Colorizer(get_preset("tiny")).save(plain_path)
    code, err = _cli(["colorize", str(photos / "a.png"), "-o", str(tmp_path / "o1"), "--model", str(plain_path),
                      "--hints", str(tmp_path / "h.json")], capsys)
    assert code != 0 and "takes no hints" in err
    code, err = _cli(["colorize", str(photos), "-o", str(tmp_path / "o2"), "--model", str(model_path),
                      "--hints", str(tmp_path / "h.json")], capsys)
    assert code != 0 and "one hint file is for one image, got 3" in err
    code, err = _cli(["colorize", str(photos), "-o", str(tmp_path / "o3"), "--model", str(model_path),
                      "--hints", str(tmp_path / "missing")], capsys)
    assert code != 0 and "no such file or folder" in err


def test_without_hints_is_the_hint_model_with_an_empty_map():
    """Any hint model (trained hint convolutions, spread on) given no hints is its
    network without hint inputs; in bfloat16 too (the video path)."""
    from colornet.apps.video import frames
    from colornet.models import without_hints

    model = Colorizer(get_preset("tiny", hints=True, hint_spread=1.0))
    rng = np.random.default_rng(1)
    for w in model.weights:
        if "hint" in w.path:
            w.assign(rng.normal(0, 0.1, w.shape).astype(np.float32))
    plain = without_hints(model)
    assert not plain.model_config.hints and without_hints(plain) is plain
    l_raw = rng.uniform(0, 100, [2, 40, 40, 1]).astype(np.float32)
    np.testing.assert_array_equal(plain(l_raw).numpy(), model(l_raw).numpy())
    video = frames.load_video_predictor(model, precision="bfloat16")
    assert not video.takes_hints and video.model.dtype_policy.name == "mixed_bfloat16"


@pytest.mark.slow
def test_bundled_model_recolours_a_region_from_one_hint(tmp_path, capsys):
    """Out of the box: one green click on the left of two grey regions turns the left
    region green and leaves the right one as it was; the CLI gives the same."""
    from PIL import Image

    from colornet import color

    image = np.zeros([120, 160, 3], np.uint8)
    image[:, :80], image[:, 80:] = 60, 190
    given = [{"x": 40, "y": 60, "color": "#2f8f2f"}]
    hinted = colornet.colorize(image, hints=given)
    automatic = colornet.colorize(image)
    ab = color.rgb_to_lab(hinted).numpy()[..., 1:]
    want = color.rgb_to_lab(np.array([[[0x2F, 0x8F, 0x2F]]], np.uint8)).numpy()[0, 0, 1:]
    cosine = (ab[:, :80] @ want) / (np.linalg.norm(ab[:, :80], axis=-1) * np.linalg.norm(want) + 1e-6)
    assert np.mean(cosine > 0.9) > 0.9 and np.median(np.linalg.norm(ab[:, :80], axis=-1)) > 20
    assert np.abs(hinted[:, 80:].astype(int) - automatic[:, 80:]).mean() < 1.0
    Image.fromarray(image).save(tmp_path / "two.png")
    (tmp_path / "two.json").write_text(json.dumps(given))
    code, _ = _cli(["colorize", str(tmp_path / "two.png"), "-o", str(tmp_path / "out"),
                    "--hints", str(tmp_path / "two.json")], capsys)
    assert code == 0
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "out" / "two.png")), hinted)
