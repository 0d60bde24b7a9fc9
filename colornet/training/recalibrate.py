"""Precise batch-norm statistics: recompute every moving mean and variance of a model.

A batch norm trains on each batch's own statistics and keeps, for inference, an
exponential moving average of them. With Caffe's momentum 0.999 that average forgets
slowly: after 2,000 steps 0.999^2000 = 13.5 % of it is still the initial value, and
the rest averages statistics of weights that have since moved. Inference, export
and TFLite all use these averages, so a short run colours with statistics that no
longer describe its own network (FIELD_NOTES: a blue cast over every photo, or
washed-out colour).

`recalibrate_batch_norm` replaces them with the statistics of the final weights
("precise BN", Wu & Johnson 2021, "Rethinking batch in BatchNorm", Sec. 3): the model
runs forward in training mode (each batch norm normalises with the batch's own
statistics, exactly as in training) over a set of photographs, no gradient step; the
input of every batch norm is accumulated, and its moving mean and variance are set to
the mean and (biased) variance over all pixels of all those photographs. Only the
moving statistics change; every trained weight stays as it was.

`undo_rebalancing` is the other adjustment made after training, a choice of how
vivid a model's colours are. Trained with the rebalanced loss, the network's softmax
approximates the true colour distribution multiplied by the rebalancing weights w and
renormalised (the optimum of a cross-entropy whose terms are weighted by the true
class's w): rare colours are boosted so that the annealed mean leaves grey. Adding
`-a * log(w)` to the logits takes a fraction `a` of that boost back out ("post-hoc
logit adjustment", Menon et al. 2021, "Long-tail learning via logit adjustment"):
a = 0 is the model as trained, a = 1 about the distribution an unweighted loss
would have learnt. It is folded into the last convolution's bias, as the release
folded its 1 / T into a scale layer (`conv8_313_rh`), so every format the model is
exported to carries it; `ModelConfig.undo_rebalancing` records it.
"""

import keras
import numpy as np
import tensorflow as tf

from colornet import constants as c
from colornet import hints as hint_maps
from colornet import prior as prior_lib
from colornet.training.config import RECALIBRATE_IMAGES
from colornet.utils.errors import ColornetError, renamed

HEAD_LAYER = "conv8_313"

DEFAULT_BATCH_SIZE = 32


def batch_norms(model):
    """The model's batch-norm layers, in order."""
    return [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]


class _Moments:
    """Per-channel mean and variance over many batches, combined in float64 from each
    batch's own (Chan et al.'s pairwise update, which avoids the cancellation of
    E[x^2] - E[x]^2)."""

    def __init__(self, channels):
        self.count = 0
        self.mean = np.zeros(channels, np.float64)
        self.m2 = np.zeros(channels, np.float64)  # sum of squared deviations

    def add(self, mean, variance, count):
        mean = np.asarray(mean, np.float64)
        total = self.count + count
        delta = mean - self.mean
        self.m2 += np.asarray(variance, np.float64) * count + delta**2 * self.count * count / total
        self.mean += delta * count / total
        self.count = total

    def mean_variance(self):
        return self.mean, self.m2 / self.count


def _probe(model, norms):
    """A function from `l_raw` to per-channel (mean, variance, count) of every batch
    norm's input, the model running in training mode. A hint model runs with no hint:
    hints are sparse patches, which move block 1's statistics little."""
    inputs_model = keras.Model(model.inputs, [norm.input for norm in norms])

    @tf.function(reduce_retracing=True)
    def moments(l_raw):
        inputs = [l_raw, hint_maps.no_hints(l_raw)] if len(model.inputs) > 1 else l_raw
        tensors = inputs_model(inputs, training=True)
        out = []
        for x in tensors:
            mean, variance = tf.nn.moments(tf.cast(x, tf.float32), axes=[0, 1, 2])
            out.append((mean, variance, tf.size(x[..., 0])))
        return out

    return moments


def _accumulate(moments, batches, totals, max_images):
    """Adds the moments of every batch (up to `max_images` images) into `totals`;
    returns the number of images."""
    images = 0
    for batch in batches:
        l_raw = batch[0] if isinstance(batch, (tuple, list)) else batch
        if max_images is not None:
            l_raw = l_raw[: max_images - images]
        if len(l_raw) == 0:
            break
        for total, (mean, variance, count) in zip(totals, moments(tf.cast(l_raw, tf.float32))):
            total.add(mean.numpy(), variance.numpy(), int(count))
        images += len(l_raw)
        if max_images is not None and images >= max_images:
            break
    return images


def recalibrate_batch_norm(model, batches, *, max_images=None):
    """Sets every batch norm's moving statistics to those of `model`'s own weights.

    Args:
      model: a Keras model (a `Colorizer`); changed in place.
      batches: an iterable of `l_raw` batches `(B, H, W, 1)` (L in 0..100), or of
        `(l_raw, ab)` pairs as `colornet.data.eval_dataset` yields. Batches should be
        as large as training's: each batch norm normalises with its batch's
        statistics during the pass, as it did in training.
      max_images: stop after this many images (None: every batch).

    Returns:
      The number of images used.

    Raises:
      ColornetError: the model has no batch norm, or `batches` held no image.
    """
    norms = batch_norms(model)
    if not norms:
        raise ColornetError("the model has no batch norm: nothing to recalibrate")
    # The forward passes in training mode move the moving averages a little; the
    # statistics assigned at the end replace them, and on failure the originals return.
    saved = [[w.numpy() for w in norm.non_trainable_weights] for norm in norms]
    totals = [_Moments(norm.moving_mean.shape[0]) for norm in norms]
    try:
        images = _accumulate(_probe(model, norms), batches, totals, max_images)
        if not images:
            raise ColornetError("no images to recalibrate the batch-norm statistics on")
    except BaseException:
        for norm, weights in zip(norms, saved):
            for variable, value in zip(norm.non_trainable_weights, weights):
                variable.assign(value)
        raise
    for norm, total in zip(norms, totals):
        mean, variance = total.mean_variance()
        norm.moving_mean.assign(mean.astype(np.float32))
        norm.moving_variance.assign(variance.astype(np.float32))
    return images


def undo_rebalancing(model, fraction, prior=None):
    """Takes `fraction` of the class rebalancing's boost of rare colours out of the
    model's logits (module docstring), in place.

    The fraction replaces the one the model already has (`model.model_config.
    undo_rebalancing`), so calling this again with 0 restores the model as trained.
    The boost is that of the prior the model was trained with: the one its config
    records (`ModelConfig.rebalancing_weights`, written by `colornet train`), or
    `prior`, which then becomes the record.

    Args:
      model: a `Colorizer`; its `conv8_313` bias and `model_config` change.
      fraction: in [0, 1].
      prior: the prior the model was trained with, in any form
        `colornet.prior.rebalancing_weights_of` takes ("default", "uniform", a prior
        `.npz`, a `.npy` of 313 probabilities, a `Prior`, 313 weights); None: the
        model's record.

    Raises:
      ValueError: a fraction outside [0, 1], or a model without a `conv8_313` bias.
      ColornetError: the prior is needed (the fraction changes) but neither given nor
        recorded, or cannot be read.
    """
    fraction = float(fraction)
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"undo_rebalancing fraction must be in [0, 1], got {fraction!r}")
    try:
        head = model.get_layer(HEAD_LAYER)
    except ValueError:
        raise ValueError(f"the model has no {HEAD_LAYER} layer: not a colornet network") from None
    if head.bias is None:
        raise ValueError(f"the model's {HEAD_LAYER} has no bias to hold the adjustment")
    config = model.model_config
    recorded = None if config.rebalancing_weights is None else np.asarray(config.rebalancing_weights)
    weights = recorded if prior is None else prior_lib.rebalancing_weights_of(prior)
    if fraction == config.undo_rebalancing and (prior is None or config.undo_rebalancing == 0.0):
        if prior is not None:
            model.model_config = config.replace(rebalancing_weights=tuple(weights))
        return
    if weights is None:
        raise ColornetError(
            "the model does not record the prior it was trained with (a model from before colornet "
            "recorded it, or the authors' ImageNet models, trained with their own prior): give it as "
            "--prior / prior= ('default', 'uniform', a prior .npz, or a .npy of 313 bin probabilities "
            "such as the authors' prior_probs.npy)"
        )
    # The fraction already undone came out with the recorded weights (or, with none
    # recorded, with the ones given now); the new one goes in with `weights`.
    before = weights if recorded is None else recorded
    shift = config.undo_rebalancing * np.log(before) - fraction * np.log(np.asarray(weights, np.float64))
    head.bias.assign((head.bias.numpy().astype(np.float64) + shift).astype(np.float32))
    model.model_config = config.replace(undo_rebalancing=fraction, rebalancing_weights=tuple(weights))


_undo_rebalancing = undo_rebalancing  # `recalibrate_file`'s argument of that name hides it


def recalibrate_on_images(
    model,
    source,
    *,
    images=RECALIBRATE_IMAGES,
    batch_size=DEFAULT_BATCH_SIZE,
    size=c.TRAIN_RESIZE,
):
    """`recalibrate_batch_norm` on photographs: `images` readable images of `source`
    (folder, glob, `.txt` list, ...; fewer if it holds fewer), drawn in a fixed random
    order, shorter side resized to `size` and a `size` x `size` crop, the size the
    network sees photos at in inference.

    Returns the number of images used.
    """
    from colornet import data

    if not isinstance(images, int) or images < 1:
        raise ValueError(f"images must be a positive integer, got {images!r}")
    try:
        available = data.count_images(source)
    except ColornetError:  # a source whose size is not recorded: the stream repeats
        available = images
    # A fixed seed: the same photos every time, sampled across the whole source.
    dataset = data.train_dataset(
        source, batch_size=min(batch_size, images, available), crop=size, resize=size, seed=0
    )
    return recalibrate_batch_norm(model, dataset, max_images=min(images, available))


def recalibrate_file(
    model_path, source, out, *, images=RECALIBRATE_IMAGES, size=c.TRAIN_RESIZE, undo_rebalancing=None,
    undo_fraction=None, prior=None,
):
    """Loads a colorizer, recomputes its batch-norm statistics on `source` and writes
    it to `out`: a `.keras` file, or a compact `.npz` (`save_compact`), written
    atomically (a failed run leaves no file behind).

    Args:
      model_path: a `.keras` file, a compact `.npz` or a training workdir.
      source: photographs, as for `recalibrate_on_images`.
      out: the output path; its extension chooses the format.
      undo_rebalancing: None keeps the model's; a fraction A in [0, 1] sets it
        (the function `undo_rebalancing`). As `colornet recalibrate
        --undo-rebalancing A`.
      undo_fraction: the old name of `undo_rebalancing` (deprecated).
      prior: the prior the model was trained with, as `undo_rebalancing` takes it;
        None: the one the model or workdir records. Recorded in the output.

    Returns:
      The number of images used.
    """
    from colornet.models import loading
    from colornet.utils import files

    out = str(out)
    if not out.endswith((".keras", ".npz")):
        raise ColornetError(f"{out}: the output must end in .keras or .npz")
    fraction = renamed("recalibrate_file", "undo_fraction", "undo_rebalancing", undo_fraction, undo_rebalancing)
    if fraction is not None and not 0.0 <= fraction <= 1.0:
        raise ColornetError(f"undo_rebalancing fraction must be in [0, 1], got {fraction}")
    model = loading.load_colorizer(model_path)
    if prior is not None or fraction is not None:
        # Before the long pass: an unknown prior is an error a user can fix at once.
        _undo_rebalancing(model, model.model_config.undo_rebalancing if fraction is None else fraction, prior)
    used = recalibrate_on_images(model, source, images=images, size=size)
    if out.endswith(".npz"):
        loading.save_compact(model, out)
    else:
        with files.atomic_path(out, ".keras") as tmp:
            model.save(tmp)
    return used
