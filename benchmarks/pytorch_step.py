"""Seconds per training step: colornet's Keras step against the same step in PyTorch.

Both sides train the same network, on the same random batch, with the same loss and
optimizer:

- network: a preset's `ModelConfig` (Table 4 for `eccv16`) built again in PyTorch:
  3x3 convolutions with ReLU, the last of blocks 1-3 with stride 2 and padding 1 on
  every side (Caffe's, colornet's "symmetric"), dilation 2 in blocks 5-6, batch norm
  after the ReLU closing blocks 1-7 (no scale or shift, as released), the 4x4
  stride-2 transposed convolution, two 3x3 convolutions and the 1x1 head to 313
  logits. The script checks that the trainable parameter counts are equal (for
  `eccv16` 32,230,393 on both sides; the PyTorch port's affine batch norms would add
  4,992, which the `eccv16_pytorch` preset has on both sides).
- loss: soft-encoding with k = 5, sigma = 5 written as a PyTorch user would (cdist
  to the 313 centres, topk, softmax of -d^2 / 2 sigma^2, a dense target by scatter),
  then cross-entropy against log_softmax weighted per pixel by the nearest bin's
  class weight, summed per image, zero for grey images, averaged over the batch.
  Uniform class weights on both sides (they do not change the cost). Checked
  against colornet's `RebalancedLoss` on the same logits before timing.
- optimizer: Adam, beta 0.9 / 0.99, epsilon 1e-8, with Caffe's coupled L2 decay
  1e-3 on convolution kernels and biases (`weight_decay` of torch.optim.Adam; Keras
  has it as L2 regularisers). PyTorch's learning rate is constant, Keras' follows
  the step schedule; neither changes the cost.

Keras runs as `benchmarks/train_step.py` does (`Colorizer.from_preset`, `compile`
with `RebalancedLoss(class_weights="uniform")`, `train_on_batch`); mixed_bfloat16 is
Keras' policy, PyTorch's bf16 is `torch.autocast("cpu", dtype=torch.bfloat16)`
around the forward pass and loss (the loss itself in float32 from the logits).

The four configurations run in one process, alternately: each round times --steps
steps of each, the order rotating from round to round, so drift in the machine's
load affects them alike. Reported: median and min seconds per step over all timed
steps, images/s from the median, process CPU seconds per step (all threads), and
the load average before and after. The first step's loss is printed as a check
that both sides train the same thing; Keras' includes the L2 term, PyTorch's not.

    python benchmarks/pytorch_step.py --preset eccv16 --batch 8 --size 176 --rounds 5 --steps 3
"""

import argparse
import os
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras
import numpy as np
import tensorflow as tf
import torch

from colornet import bins, losses
from colornet import constants as c
from colornet.models import PRESETS, Colorizer, get_preset
from colornet.models.config import DOWNSAMPLING_BLOCKS
from colornet.models.solver import SolverConfig

CONFIGURATIONS = ("pytorch float32", "pytorch bf16", "keras float32", "keras bf16")


def _parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="eccv16", choices=sorted(PRESETS))
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--size", type=int, default=176, help="square input side, pixels")
    parser.add_argument("--rounds", type=int, default=5, help="rounds over the four configurations")
    parser.add_argument("--steps", type=int, default=3, help="timed steps per configuration and round")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps of each configuration first")
    parser.add_argument(
        "--only",
        nargs="+",
        choices=CONFIGURATIONS,
        default=CONFIGURATIONS,
        metavar="CONFIG",
        help=f"time only these of {', '.join(CONFIGURATIONS)} (quote each)",
    )
    return parser.parse_args()


class TorchColorizer(torch.nn.Module):
    """A `ModelConfig` in PyTorch: `(B, 1, H, W)` L in 0..100 to `(B, 313, H/4, W/4)` logits."""

    def __init__(self, config):
        super().__init__()
        if config.padding != "symmetric" or config.norm_position != "after_relu":
            raise ValueError("only padding='symmetric' with norm_position='after_relu' is built here")
        nn = torch.nn
        self.l_center, self.l_scale = config.l_center, config.l_scale
        layers, channels_in = [], 1
        for block in range(1, 8):
            filters, dilation = config.filters[block - 1], config.dilations[block - 1]
            count = config.convs[block - 1]
            for i in range(1, count + 1):
                stride = 2 if i == count and block <= DOWNSAMPLING_BLOCKS else 1
                layers.append(nn.Conv2d(channels_in, filters, 3, stride, padding=dilation, dilation=dilation))
                layers.append(nn.ReLU(inplace=True))
                channels_in = filters
            layers.append(
                nn.BatchNorm2d(
                    filters,
                    eps=config.norm_epsilon,
                    # Keras keeps `momentum` of the old statistics, PyTorch 1 - that.
                    momentum=1.0 - config.norm_momentum,
                    affine=config.norm_affine,
                )
            )
        filters = config.filters[7]
        layers += [nn.ConvTranspose2d(channels_in, filters, 4, 2, padding=1), nn.ReLU(inplace=True)]
        for _ in range(2, config.convs[7] + 1):
            layers += [nn.Conv2d(filters, filters, 3, padding=1), nn.ReLU(inplace=True)]
        layers.append(nn.Conv2d(filters, c.NUM_BINS, 1))
        self.layers = nn.Sequential(*layers)

    def forward(self, l_raw):
        height, width = (-(-n // c.OUTPUT_STRIDE) for n in l_raw.shape[2:])
        logits = self.layers((l_raw - self.l_center) / self.l_scale)
        return logits[:, :, :height, :width]


class TorchRebalancedLoss:
    """The rebalanced loss as a PyTorch user would write it (see the module docstring).

    Call with logits `(B, 313, h, w)` and ab `(B, 2, h, w)`; returns the batch mean of
    the per-image sums, a scalar.
    """

    def __init__(self, class_weights, k=c.SOFT_ENCODE_K, sigma=c.SOFT_ENCODE_SIGMA):
        self.centres = torch.from_numpy(bins.ab_bins())
        self.class_weights = torch.as_tensor(class_weights, dtype=torch.float32)
        self.k, self.sigma = k, sigma

    def __call__(self, logits, ab):
        batch = logits.shape[0]
        with torch.no_grad():
            ab_pixels = ab.float().permute(0, 2, 3, 1).reshape(-1, 2)
            distances = torch.cdist(ab_pixels, self.centres)
            nearest_distances, nearest = distances.topk(self.k, dim=1, largest=False)
            weights = torch.softmax(-(nearest_distances**2) / (2 * self.sigma**2), dim=1)
            target = torch.zeros(len(ab_pixels), c.NUM_BINS).scatter_(1, nearest, weights)
            pixel_weights = self.class_weights[nearest[:, 0]]
            has_colour = (ab.abs() > c.GREY_THRESHOLD).flatten(1).any(dim=1)
        log_probs = torch.log_softmax(logits.float().permute(0, 2, 3, 1).reshape(-1, c.NUM_BINS), dim=1)
        per_pixel = -(target * log_probs).sum(dim=1) * pixel_weights
        per_image = per_pixel.view(batch, -1).sum(dim=1) * has_colour
        return per_image.mean()


def _torch_optimizer(net, config):
    # Coupled L2 on convolutions only: batch-norm scale and shift, if any, are not
    # decayed (Caffe's decay_mult 0, colornet's regularisers).
    norms = [p for m in net.modules() if isinstance(m, torch.nn.BatchNorm2d) for p in m.parameters()]
    norm_ids = {id(p) for p in norms}
    convs = [p for p in net.parameters() if id(p) not in norm_ids]
    solver = SolverConfig()
    groups = [{"params": convs, "weight_decay": config.weight_decay}]
    if norms:
        groups.append({"params": norms, "weight_decay": 0.0})
    return torch.optim.Adam(groups, lr=solver.learning_rate, betas=(solver.beta_1, solver.beta_2), eps=solver.epsilon)


def _to_nchw(array):
    return torch.from_numpy(np.ascontiguousarray(array.transpose(0, 3, 1, 2)))


def _torch_step_fn(config, l_raw, ab, bf16):
    torch.manual_seed(0)
    net = TorchColorizer(config).train()
    optimizer = _torch_optimizer(net, config)
    loss_fn = TorchRebalancedLoss(np.ones(c.NUM_BINS))
    l_torch, ab_torch = _to_nchw(l_raw), _to_nchw(ab)

    def step():
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss = loss_fn(net(l_torch), ab_torch)
        loss.backward()
        optimizer.step()
        return loss.item()

    return net, step


def _keras_step_fn(preset, l_raw, ab, precision):
    keras.mixed_precision.set_global_policy(precision)
    keras.utils.set_random_seed(0)
    model = Colorizer.from_preset(preset)
    # The class weights do not change the cost; uniform ones need no prior file.
    model.compile(loss=losses.RebalancedLoss(class_weights="uniform"))
    keras.mixed_precision.set_global_policy("float32")
    l_tf, ab_tf = tf.constant(l_raw), tf.constant(ab)

    def step():
        return float(np.asarray(model.train_on_batch(l_tf, ab_tf)).ravel()[0])

    return model, step


def _check_loss(ab):
    """colornet's loss and the PyTorch one agree on the same logits (relative 1e-5)."""
    rng = np.random.default_rng(1)
    logits = rng.normal(0, 3, (*ab.shape[:3], c.NUM_BINS)).astype(np.float32)
    ours = losses.RebalancedLoss(class_weights="uniform", reduction="sum_over_batch_size")
    expected = float(ours(tf.constant(ab), tf.constant(logits)))
    theirs = TorchRebalancedLoss(np.ones(c.NUM_BINS))
    got = float(theirs(_to_nchw(logits), _to_nchw(ab)))
    if abs(got - expected) > 1e-5 * abs(expected):
        raise AssertionError(f"PyTorch loss {got} differs from colornet's {expected}")
    return expected, got


def _cpu_seconds():
    t = os.times()
    return t.user + t.system


def main():
    args = _parse_args()
    torch.set_num_threads(os.cpu_count())
    config = get_preset(args.preset)
    load_before = os.getloadavg()

    rng = np.random.default_rng(0)
    out_h, out_w = Colorizer.output_size(args.size, args.size)
    l_raw = rng.uniform(0, 100, (args.batch, args.size, args.size, 1)).astype(np.float32)
    ab = rng.uniform(-80, 80, (args.batch, out_h, out_w, 2)).astype(np.float32)
    expected, got = _check_loss(ab)
    print(f"loss check on random logits: colornet {expected:.3f}, PyTorch {got:.3f}")

    steps, params = {}, {}
    for name in CONFIGURATIONS:
        if name not in args.only:
            continue
        framework, precision = name.split()
        if framework == "pytorch":
            net, steps[name] = _torch_step_fn(config, l_raw, ab, bf16=precision == "bf16")
            params[name] = sum(p.numel() for p in net.parameters() if p.requires_grad)
        else:
            policy = "mixed_bfloat16" if precision == "bf16" else "float32"
            model, steps[name] = _keras_step_fn(args.preset, l_raw, ab, policy)
            params[name] = sum(int(np.prod(v.shape)) for v in model.trainable_weights)
    if len(set(params.values())) != 1:
        raise AssertionError(f"trainable parameter counts differ: {params}")
    print(f"preset={args.preset}: {next(iter(params.values())):,} trainable parameters in every configuration")

    first_loss = {}
    for name, step in steps.items():
        for _ in range(args.warmup):
            first_loss.setdefault(name, step())
    times = {name: [] for name in steps}
    cpu = {name: 0.0 for name in steps}
    names = list(steps)
    for round_index in range(args.rounds):
        shift = round_index % len(names)
        for name in names[shift:] + names[:shift]:
            cpu_start = _cpu_seconds()
            for _ in range(args.steps):
                start = time.perf_counter()
                steps[name]()
                times[name].append(time.perf_counter() - start)
            cpu[name] += _cpu_seconds() - cpu_start

    print(
        f"batch={args.batch} size={args.size} threads={os.cpu_count()} (torch {torch.get_num_threads()}), "
        f"{args.rounds} rounds x {args.steps} steps after {args.warmup} warm-up, "
        f"load {load_before[0]:.1f} before, {os.getloadavg()[0]:.1f} after"
    )
    print(f"{'configuration':<17}{'median s':>10}{'min s':>9}{'images/s':>10}{'CPU s':>8}{'first loss':>12}")
    median = {}
    for name in names:
        median[name] = statistics.median(times[name])
        print(
            f"{name:<17}{median[name]:>10.3f}{min(times[name]):>9.3f}{args.batch / median[name]:>10.2f}"
            f"{cpu[name] / len(times[name]):>8.2f}{first_loss[name]:>12.1f}"
        )
    ratios = [
        ("keras bf16 / pytorch bf16 (s/step, < 1: Keras faster)", "keras bf16", "pytorch bf16"),
        ("keras float32 / pytorch float32", "keras float32", "pytorch float32"),
        ("pytorch bf16 speed-up over float32", "pytorch float32", "pytorch bf16"),
        ("keras bf16 speed-up over float32", "keras float32", "keras bf16"),
    ]
    for label, numerator, denominator in ratios:
        if numerator in median and denominator in median:
            print(f"{label}: {median[numerator] / median[denominator]:.2f}")


if __name__ == "__main__":
    main()
