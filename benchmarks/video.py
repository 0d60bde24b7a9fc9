"""Video colourisation: flicker, accuracy and colour trails of the temporal smoothing,
and frames/s and memory of `colornet colorize` on video.

Quality (`--quality`): clips made from real colour photographs, each turned grey,
colourised and compared with the colour original, and any colour video files given
with `--real` (real footage; the first `--real-frames` frames, scaled to at most 384
pixels wide). In the clips from photographs every moving part moves by whole pixels
per frame, cut from a photograph resized once (no resampling from frame to frame),
except in the zoom and the handheld shake:

  object    still camera: a still photograph with an elliptical piece of another
            sliding across it
  pan       a window sliding diagonally over a photograph
  cut       a pan over one photograph, then a pan over another
  zoom      a window shrinking about the photograph's centre (to 70 %), resampled
            every frame
  handheld  a window drifting right by half a pixel a frame and shaken by small
            random shifts (std 2 pixels) and turns (std 0.6 degrees), resampled
            every frame

For each smoothing setting (strength S, motion "camera" | "flow" | "agreement" |
"none"; S = 0 is frame by frame):

  flicker   mean |delta ab| (Euclidean, ab units) between consecutive output frames
            over the pixels whose true colour and lightness stay put (in the colour
            original |delta ab| < 1 and |delta L| < 2), with the truth's own figure
            beside it. It means most on the still-camera clips, where those pixels
            are the still background and the truth hardly moves (0.01 ab), and on
            real footage (mostly still cameras); a moving camera keeps no content in
            place, so there the test passes the pixels whose content a step away
            happens to be alike
  flicker after the true motion (clips from photographs): the same, with the
            previous output and original first moved by the known motion of the
            camera (pixels that were outside the previous frame left out), so that
            it counts colour that changes on the same surface
  AuC       rebalanced AuC (colornet.metrics) of each frame against its original,
            averaged over frames, over all clips and over each group of clips
  trail     on the "object" clips: mean ab error against the original over the pixels
            the moving piece left in the last 6 frames, minus frame by frame's error
            there (0 = no trail; positive = colour left behind)

and the scene-cut test's L-histogram distances within shots and at the cuts, and how
many cuts it found.

The network runs once per frame (its logits are cached) and every setting smooths
the same logits. `--picture` writes the trail picture docs/video.md shows
(`--oracle`: the stand-in's; `--picture-shake`: the clip seen by a handheld camera);
`--sets 0` without `--real` writes only that.

Smoothing cost (`--smoothing-cost`): the smoother alone, ms per frame by motion mode,
on a handheld clip at 480p and 1080p (the smoother sees the network's 256 x 256 L and
its 64 x 64 distributions whatever the frame size).

Speed (`--speed`): `colornet.colorize_video` on a synthetic H.264 clip (a pan over an
upscaled photograph, with an AAC sine track) at 480p and 1080p, each in its own
process: frames/s of the whole job (decode, network, smoothing, encode) and peak RSS.
With `--against REV`, each run is made also with colornet as it was at git revision
REV (a worktree of it, timed by this script), interleaved: an A/B of a change; with
`--precisions P [P ...]`, in each of those network forms, interleaved.

`--json FILE` also writes what a mode prints (with the CPU, the model and the clips).

    python benchmarks/video.py --quality --photos ../shared/data/photos --picture docs/results/video_trail.jpg
    python benchmarks/video.py --quality --sets 0 --real vtest.avi tree.avi box.mp4 cup.mp4   # docs/video.md
    python benchmarks/video.py --smoothing-cost --json docs/results/video_smoothing_cost.json
    python benchmarks/video.py --speed --frames 300 --repeats 3 --json docs/results/video_speed_epyc.json
    python benchmarks/video.py --speed --repeats 2 --against 870f063 --json docs/results/video_ab_arrays.json
    python benchmarks/video.py --speed --repeats 3 --precisions bfloat16 int8 --json docs/results/video_speed.json
    python benchmarks/video.py --stages --json docs/results/video_stages.json   # CPU time of each stage
    python benchmarks/video.py --network --json docs/results/video_network.json # the network alone, wall time

Network (`--network`): the network alone on random L at 256 x 256, float32 and
bfloat16, at batch 1, 4, 8 and 16: wall-clock ms per frame (the best and the median
of 5 timed runs after 3 warm-up runs), to set beside the whole job's frames/s.
"""

import argparse
import glob
import itertools
import json
import os
import resource
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np

FRAME_W, FRAME_H = 384, 256  # quality clips (the network sees 256 x 256 anyway)
CLIP_FRAMES = 48
TRAIL_FRAMES = 6
STRENGTHS = (0.8, 0.9, 0.95, 0.97, 0.98)
# The headline flicker comes from the clips whose truth stays put on still pixels.
CLIP_GROUPS = {"still camera": ("object",), "pans": ("pan", "cut"), "zoom": ("zoom",), "handheld": ("handheld",),
               "real footage": ("real",)}


def cpu_name():
    name, amx = "unknown CPU", False
    with open("/proc/cpuinfo") as cpuinfo:
        for line in cpuinfo:
            if line.startswith("model name") and name == "unknown CPU":
                name = line.split(":", 1)[1].strip()
            if line.startswith("flags"):
                amx = "amx_bf16" in line.split()
    return f"{name}, {os.cpu_count()} cores, {'with' if amx else 'no'} AMX"


def model_name(model):
    """The model as it really was: a file's name and the start of its SHA-256 (the
    bundled model changes from commit to commit), else what `--model` said."""
    import hashlib

    from colornet.deploy import predictors

    path = predictors.BUNDLED_MODEL_PATH if model is None else model
    if not os.path.isfile(path):
        return model  # a directory or a pretrained name
    with open(path, "rb") as f:
        digest = hashlib.sha256(f.read()).hexdigest()[:12]
    return f"{'bundled: ' if model is None else ''}{os.path.basename(path)}, sha256 {digest}"


def write_json(path, report):
    if path:
        with open(path, "w") as f:
            json.dump(report, f, indent=1)
        print(f"wrote {path}")


# ----------------------------------------------------------------------------
# Clips from photographs.


def _load(path):
    from PIL import Image

    return np.asarray(Image.open(path).convert("RGB"))


def _window(photo, cx, cy, w, h, out_w=FRAME_W, out_h=FRAME_H):
    """The `w` x `h` window of `photo` centred at (cx, cy), resampled to the frame size."""
    import cv2

    scale_x, scale_y = out_w / w, out_h / h
    matrix = np.array([[scale_x, 0, out_w / 2 - cx * scale_x], [0, scale_y, out_h / 2 - cy * scale_y]], np.float32)
    return cv2.warpAffine(photo, matrix, (out_w, out_h), flags=cv2.INTER_AREA if scale_x < 1 else cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_REFLECT)


def _resized(photo, scale):
    import cv2

    size = (round(photo.shape[1] * scale), round(photo.shape[0] * scale))
    return cv2.resize(photo, size, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)


def _affine(matrix):
    return np.vstack([matrix, [0, 0, 1]]).astype(np.float64)


def _motions(placements):
    """The true motion from each frame to the next, `(2, 3)` affine maps of frame pixel
    coordinates (None for the first frame), from the maps placing a photograph in each
    frame (`(2, 3)` photo -> frame)."""
    return [None] + [(_affine(b) @ np.linalg.inv(_affine(a)))[:2]
                     for a, b in zip(placements[:-1], placements[1:])]


def _pan(photo, frames, reverse=False):
    """`(frames, motions)`: frame-size crops of `photo` (resized once so a crop spans
    80 % of its width or 90 % of its height) moving diagonally across it by the same
    whole number of pixels each frame: every pixel's content comes unchanged from the
    previous frame."""
    h, w = photo.shape[:2]
    photo = _resized(photo, FRAME_H / min(w * 0.8 * FRAME_H / FRAME_W, h * 0.9))
    h, w = photo.shape[:2]
    step_x, step_y = (w - FRAME_W) // (frames - 1), (h - FRAME_H) // (frames - 1)
    order = range(frames)[::-1] if reverse else range(frames)
    crops = [np.ascontiguousarray(photo[t * step_y : t * step_y + FRAME_H, t * step_x : t * step_x + FRAME_W])
             for t in order]
    return crops, _motions([np.array([[1, 0, -t * step_x], [0, 1, -t * step_y]], np.float64) for t in order])


def _window_matrix(cx, cy, w, h, out_w=FRAME_W, out_h=FRAME_H):
    scale_x, scale_y = out_w / w, out_h / h
    return np.array([[scale_x, 0, out_w / 2 - cx * scale_x], [0, scale_y, out_h / 2 - cy * scale_y]], np.float64)


def _zoom(photo, frames):
    """`(frames, motions)`: a window shrinking to 70 % about the photograph's centre."""
    h, w = photo.shape[:2]
    win_h = min(h, w * FRAME_H / FRAME_W)
    win_w = win_h * FRAME_W / FRAME_H
    scales = np.linspace(1.0, 0.7, frames)
    return ([_window(photo, w / 2, h / 2, win_w * s, win_h * s) for s in scales],
            _motions([_window_matrix(w / 2, h / 2, win_w * s, win_h * s) for s in scales]))


def _handheld(photo, frames, seed, size=(FRAME_W, FRAME_H)):
    """`(frames, motions)`: a handheld camera: a window over 80 % of the photograph
    drifting right by half a pixel a frame, shaken by small random shifts (std 2
    pixels) and turns (std 0.6 degrees) that each keep half of the previous frame's,
    resampled every frame."""
    import cv2

    rng = np.random.default_rng(seed)
    out_w, out_h = size
    h, w = photo.shape[:2]
    win_h = 0.8 * min(h, w * out_h / out_w)
    win_w = win_h * out_w / out_h
    shake = np.zeros(3)  # dx, dy (frame pixels), turn (degrees)
    placements, clip = [], []
    for t in range(frames):
        shake = 0.5 * shake + np.sqrt(1 - 0.25) * rng.normal(0, [2.0, 2.0, 0.6])
        centre_x = w / 2 - 0.5 * (frames / 2 - t) * win_w / out_w
        window = _affine(_window_matrix(centre_x, h / 2, win_w, win_h, out_w, out_h))
        turn = _affine(cv2.getRotationMatrix2D((out_w / 2, out_h / 2), shake[2], 1.0))
        turn[:2, 2] += shake[:2]
        placement = (turn @ window)[:2]
        clip.append(cv2.warpAffine(photo, placement, (out_w, out_h), flags=cv2.INTER_LINEAR,
                                   borderMode=cv2.BORDER_REFLECT))
        placements.append(placement)
    return clip, _motions(placements)


def _object(background, piece_photo, frames):
    """`(frames, masks)`: a piece of `piece_photo` sliding over a still `background`
    by the same whole number of pixels each frame."""
    import cv2

    still = _window(background, background.shape[1] / 2, background.shape[0] / 2,
                    min(background.shape[1], background.shape[0] * FRAME_W / FRAME_H),
                    min(background.shape[0], background.shape[1] * FRAME_H / FRAME_W))
    size = FRAME_H // 2
    piece = _window(piece_photo, piece_photo.shape[1] / 2, piece_photo.shape[0] / 2,
                    min(piece_photo.shape[:2]), min(piece_photo.shape[:2]), size, size)
    ellipse = np.zeros((size, size), np.uint8)
    cv2.ellipse(ellipse, (size // 2, size // 2), (size // 2 - 2, size // 2 - 2), 0, 0, 360, 1, -1)
    step = (FRAME_W - size // 2) // (frames - 1)
    clip, masks = [], []
    for t in range(frames):
        # Nearest-neighbour at a whole-pixel offset: a plain copy of the piece.
        matrix = np.array([[1, 0, t * step - size // 4], [0, 1, (FRAME_H - size) // 2]], np.float32)
        placed = cv2.warpAffine(piece, matrix, (FRAME_W, FRAME_H), flags=cv2.INTER_NEAREST)
        inside = cv2.warpAffine(ellipse, matrix, (FRAME_W, FRAME_H), flags=cv2.INTER_NEAREST).astype(bool)
        clip.append(np.where(inside[..., None], placed, still))
        masks.append(inside)
    return clip, masks


def real_clip(path, frames, max_width=FRAME_W):
    """The first `frames` frames of a colour video file, scaled down to at most
    `max_width` pixels wide (the network sees 256 x 256 anyway)."""
    import av
    import cv2

    clip = []
    with av.open(path) as container:
        for frame in container.decode(video=0):
            rgb = frame.to_ndarray(format="rgb24")
            if rgb.shape[1] > max_width:
                size = (max_width, round(rgb.shape[0] * max_width / rgb.shape[1] / 2) * 2)
                rgb = cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)
            clip.append(rgb)
            if len(clip) == frames:
                break
    return clip


def _with_masks(clip):
    frames, motions = clip
    return frames, None, motions


def make_clips(photos, sets, real=(), real_frames=96):
    """`[(kind, frames, masks or None, true motions or None)]` from landscape
    photographs of `photos`, and the video files `real`."""
    from PIL import Image

    paths = sorted(glob.glob(os.path.join(photos, "bsds500", "val", "*.jpg")))
    paths = [p for p in paths if Image.open(p).size == (481, 321)]
    rng = np.random.default_rng(0)
    chosen = [paths[i] for i in rng.choice(len(paths), size=sets * 3, replace=False)]
    clips = []
    for s in range(sets):
        a, b, c_ = (_load(p) for p in chosen[3 * s : 3 * s + 3])
        clips.append(("pan", *_with_masks(_pan(a, CLIP_FRAMES))))
        clips.append(("zoom", *_with_masks(_zoom(b, CLIP_FRAMES))))
        first, first_motions = _pan(a, CLIP_FRAMES // 2)
        second, second_motions = _pan(c_, CLIP_FRAMES // 2, reverse=True)
        clips.append(("cut", first + second, None, first_motions + second_motions))  # None at the cut
        frames, masks = _object(c_, b, CLIP_FRAMES)
        # The background stays put (the piece's pixels are not still in the truth).
        clips.append(("object", frames, masks, [None] + [np.eye(3)[:2]] * (CLIP_FRAMES - 1)))
        clips.append(("handheld", *_with_masks(_handheld(c_, CLIP_FRAMES, seed=s))))
    for path in real:
        clips.append(("real", real_clip(path, real_frames), None, None))
    return clips, chosen


# ----------------------------------------------------------------------------
# Scoring.


def _key(l_one):
    import hashlib

    return hashlib.sha1(np.asarray(l_one).tobytes()).hexdigest()


def cached_logits(predictor):
    """A Predictor that runs `predictor` once per distinct frame and remembers it;
    `oracle` maps frames to logits made in advance instead."""
    import tensorflow as tf

    from colornet.deploy import predictors

    class CachedLogits(predictors.Predictor):
        def __init__(self):
            self.cache = {}
            self.size = predictor.size
            self.source = predictor.source

        def logits(self, l_small):
            l_small = np.asarray(l_small)
            keys = [_key(l) for l in l_small]
            missing = [i for i, k in enumerate(keys) if k not in self.cache]
            if missing:
                fresh = predictor.logits(l_small[missing]).numpy()
                self.cache.update({keys[i]: f for i, f in zip(missing, fresh)})
            return tf.constant(np.stack([self.cache[k] for k in keys]))

    return CachedLogits()


def oracle_logits(frames, size, seed):
    """`{frame key: logits}` of a stand-in for a good model: logits peaked at each
    output pixel's true ab (Gaussian, sigma 10 ab units), with fresh noise (std 1.5)
    every frame, so its colours are right on average and wobble from frame to frame."""
    import tensorflow as tf

    from colornet import bins, color

    centres = bins.ab_bins()
    rng = np.random.default_rng(seed)
    table = {}
    for frame in frames:
        key = _key(network_l([frame], size)[0])
        ab = color.rgb_to_lab(tf.image.resize(frame[None].astype(np.float32) / 255.0, (size, size),
                                              antialias=True))[0, ..., 1:].numpy()
        small = ab.reshape(size // 4, 4, size // 4, 4, 2).mean(axis=(1, 3))
        distance = np.square(small[..., None, :] - centres).sum(-1)
        table[key] = (-distance / (2 * 10.0**2) + rng.normal(0, 1.5, distance.shape)).astype(np.float32)
    return table


def network_l(frames, size):
    """`(N, size, size, 1)` float32: the L (0..100) of `frames` as the network sees it."""
    import tensorflow as tf

    from colornet import inference
    from colornet.apps.video.frames import _frame_l_tf

    return inference.network_input(_frame_l_tf(tf.convert_to_tensor(np.stack(frames)))[..., None], size).numpy()


def lab(frames):
    from skimage.color import rgb2lab

    return [rgb2lab(f).astype(np.float32) for f in frames]


def _warped(image, motion):
    """`image` `(H, W, C)` moved by the affine `motion` (previous frame -> this one),
    and where it was inside the previous frame (bilinear; a pixel's margin left out)."""
    import cv2

    h, w = image.shape[:2]
    moved = cv2.warpAffine(image, motion.astype(np.float32), (w, h), flags=cv2.INTER_LINEAR,
                           borderMode=cv2.BORDER_CONSTANT, borderValue=(0, 0, 0, 0))
    inside = cv2.warpAffine(np.ones((h, w), np.float32), motion.astype(np.float32), (w, h), flags=cv2.INTER_LINEAR,
                            borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    return moved, cv2.erode(inside, np.ones((3, 3), np.uint8)) > 0.999


def _flicker(out, out_prev, truth, truth_prev, inside=True):
    """Mean |delta ab| of the output over the pixels whose truth stays put (|delta ab|
    < 1, |delta L| < 2), and the truth's own; None where no pixel does."""
    d_ab_true = np.linalg.norm(truth[..., 1:] - truth_prev[..., 1:], axis=-1)
    still = inside & (d_ab_true < 1) & (np.abs(truth[..., 0] - truth_prev[..., 0]) < 2)
    if not still.any():
        return None, None
    return (float(np.linalg.norm(out[..., 1:] - out_prev[..., 1:], axis=-1)[still].mean()),
            float(d_ab_true[still].mean()))


def score(outputs, truth_lab, masks, motions):
    """flicker, truth flicker, mean rebalanced AuC, trail error (object clips) or None,
    flicker and truth flicker after moving the previous frame by the true motion (None
    where it is not known)."""
    from colornet import metrics

    out_lab = lab(outputs)
    flicker, truth_flicker, auc, warped, warped_truth = [], [], [], [], []
    for t, (o, g) in enumerate(zip(out_lab, truth_lab)):
        auc.append(metrics.rebalanced_auc(o[..., 1:], g[..., 1:]))
        if t:
            f, f_true = _flicker(o, out_lab[t - 1], g, truth_lab[t - 1])
            if f is not None:
                flicker.append(f)
                truth_flicker.append(f_true)
        if t and motions is not None and motions[t] is not None:
            o_prev, inside = _warped(out_lab[t - 1], motions[t])
            g_prev, _ = _warped(truth_lab[t - 1], motions[t])
            f, f_true = _flicker(o, o_prev, g, g_prev, inside)
            if f is not None:
                warped.append(f)
                warped_truth.append(f_true)
    trail = None
    if masks is not None:
        errors = []
        for t in range(TRAIL_FRAMES, len(masks)):
            left = np.any(masks[t - TRAIL_FRAMES : t], axis=0) & ~masks[t]
            if left.any():
                errors.append(float(np.linalg.norm(out_lab[t][..., 1:] - truth_lab[t][..., 1:], axis=-1)[left].mean()))
        trail = float(np.mean(errors))
    return {"flicker": float(np.mean(flicker)), "truth": float(np.mean(truth_flicker)), "auc": float(np.mean(auc)),
            "trail": trail, "warped_flicker": float(np.mean(warped)) if warped else None,
            "warped_truth": float(np.mean(warped_truth)) if warped_truth else None}


def run_quality(args):
    from colornet.apps import video
    from colornet.apps.video.smoothing import _l8
    from colornet.deploy import predictors

    settings = [(0.0, "none")] + [(s, m) for s in args.strengths for m in args.motions]

    network = video.load_video_predictor(args.model, args.precision)
    predictor = cached_logits(network)
    size = predictors.resolve_size(network)
    if args.sets == 0 and not args.real:  # the picture alone
        write_picture(picture_clip(args, predictor, size), args.picture, args.picture_strength)
        return
    clips, chosen = make_clips(args.photos, args.sets, args.real, args.real_frames)
    synthetic = clips[: len(clips) - len(args.real)]
    names = [f"{kind} {number}" for number, (kind, *_) in enumerate(synthetic)]
    names += [os.path.basename(path) for path in args.real]
    figures = ("flicker", "truth", "auc", "trail", "warped_flicker", "warped_truth")
    results = {setting: {figure: [] for figure in (*figures, "kind")} for setting in settings}
    cut_distances, shot_distances = [], []
    cuts_found = {True: 0, False: 0}  # in the cut clips (one each), in the others
    for number, (kind, frames, masks, motions) in enumerate(clips):
        truth_lab = lab(frames)
        if args.oracle:
            predictor.cache = oracle_logits(frames, size, number)
        for setting in settings:
            strength, motion = setting
            smoother = video.TemporalSmoother(strength, args.scene_threshold, motion, sigma=args.sigma)
            outputs = list(video.colorize_frames(frames, predictor, smoother=smoother, batch_size=8))
            scores = score(outputs, truth_lab, masks, motions)
            entry = results[setting]
            for figure in figures:
                entry[figure].append(scores[figure])
            entry["kind"].append(kind)
            if setting == settings[1]:  # every smoothing setting finds the same cuts
                cuts_found[kind == "cut"] += smoother.cuts
        print(f"{names[number]}: {len(frames)} frames of {frames[0].shape[1]} x {frames[0].shape[0]}, frame by "
              f"frame {results[settings[0]]['flicker'][-1]:.3f} ab, then "
              + ", ".join(f"{m} {s}: {results[(s, m)]['flicker'][-1]:.3f}" for s, m in settings[1:]), flush=True)
        predictor.cache = {}
        # Scene-cut statistic: the histogram distance of consecutive frames, on the L
        # the network and the smoother see.
        histograms = [video.l_histogram(_l8(l)) for l in network_l(frames, size)]
        distances = [0.5 * np.abs(histograms[t] - histograms[t - 1]).sum() for t in range(1, len(histograms))]
        if kind == "cut":
            cut_distances.append(distances[CLIP_FRAMES // 2 - 1])
            shot_distances += distances[: CLIP_FRAMES // 2 - 1] + distances[CLIP_FRAMES // 2 :]
        else:
            shot_distances += distances
    base = results[(0.0, "none")]
    groups_present = {group: kinds for group, kinds in CLIP_GROUPS.items() if set(kinds) & set(base["kind"])}

    def mean_over(entry, figure, kinds):
        values = [v for v, k in zip(entry[figure], entry["kind"]) if k in kinds and v is not None]
        return float(np.mean(values)) if values else None

    rows = []
    for setting in settings:
        entry = results[setting]
        groups = {}
        for group, kinds in groups_present.items():
            flicker, warped = mean_over(entry, "flicker", kinds), mean_over(entry, "warped_flicker", kinds)
            groups[group] = {
                "flicker": flicker,
                "flicker_reduction": mean_over(base, "flicker", kinds) / flicker,
                "warped_flicker": warped,
                "warped_flicker_reduction": mean_over(base, "warped_flicker", kinds) / warped if warped else None,
                "auc_change": mean_over(entry, "auc", kinds) - mean_over(base, "auc", kinds),
            }
        rows.append({
            "strength": setting[0],
            "motion": setting[1],
            "flicker": groups.get("still camera", {}).get("flicker"),
            "flicker_reduction": groups.get("still camera", {}).get("flicker_reduction"),
            "auc_rebalanced": float(np.mean(entry["auc"])),
            "auc_change": float(np.mean(entry["auc"]) - np.mean(base["auc"])),
            "trail": (mean_over(entry, "trail", ("object",)) - mean_over(base, "trail", ("object",))
                      if "still camera" in groups else None),
            "by_clips": groups,
            "by_clip": {name: {figure: entry[figure][i] for figure in ("flicker", "warped_flicker", "auc")}
                        for i, name in enumerate(names)},
        })
    report = {
        "cpu": cpu_name(),
        "model": "oracle" if args.oracle else model_name(args.model),
        "clips": len(clips),
        "scene_threshold": args.scene_threshold,
        "sigma": args.sigma,
        "frames_per_clip": CLIP_FRAMES,
        "photos": [os.path.relpath(p, args.photos) for p in chosen],
        "real": [{"name": os.path.basename(path), "frames": len(clip[1]),
                  "size": [int(clip[1][0].shape[1]), int(clip[1][0].shape[0])]}
                 for path, clip in zip(args.real, clips[len(clips) - len(args.real) :])],
        "clip_groups": {group: list(kinds) for group, kinds in groups_present.items()},
        "truth_flicker": {group: mean_over(base, "truth", kinds) for group, kinds in groups_present.items()},
        "truth_warped_flicker": {group: mean_over(base, "warped_truth", kinds)
                                 for group, kinds in groups_present.items()},
        "scene_cut_distance": {"cuts_min": float(min(cut_distances)) if cut_distances else None,
                               "cuts_max": float(max(cut_distances)) if cut_distances else None,
                               "within_shots_max": float(max(shot_distances)),
                               "within_shots_p99": float(np.percentile(shot_distances, 99)),
                               "cuts": len(cut_distances), "found": cuts_found[True],
                               "found_in_clips_without_cuts": cuts_found[False]},
        "rows": rows,
    }
    print(f"{len(clips)} clips; {report['cpu']}")
    print("truth flicker on still pixels (ab): "
          + ", ".join(f"{group} {value:.3f}" for group, value in report["truth_flicker"].items()))
    print("truth flicker after the true motion (ab): "
          + ", ".join(f"{group} {value:.3f}" for group, value in report["truth_warped_flicker"].items()
                      if value is not None))
    print("scene-cut histogram distance: " + json.dumps(report["scene_cut_distance"]))
    print("AuC over all clips, trail on the sliding pieces; then on each group of clips: flicker, x fewer, "
          "x fewer after the true motion, dAuC")
    print(f"{'S':>4} {'motion':>9} {'AuC reb':>8} {'dAuC':>6} {'trail':>6}  "
          + "  ".join(f"{group:>27}" for group in groups_present))
    for r in rows:
        cells = []
        for g in groups_present:
            cell = r["by_clips"][g]
            warped = cell["warped_flicker_reduction"]
            cells.append(f"{cell['flicker']:6.3f} {cell['flicker_reduction']:5.2f}x "
                         f"{f'{warped:5.2f}x' if warped else '    - '} {cell['auc_change']:+5.2f}")
        trail = f"{r['trail']:+6.2f}" if r["trail"] is not None else "     -"
        print(f"{r['strength']:4.2f} {r['motion']:>9} {r['auc_rebalanced']:8.2f} {r['auc_change']:+6.2f} {trail}  "
              + "  ".join(cells))
    write_json(args.json, report)
    if args.picture:
        write_picture(picture_clip(args, predictor, size), args.picture, args.picture_strength)


PICTURE_SETTINGS = (("frame by frame", 0.0, "none"), ("plain EMA", None, "none"), ("agreement", None, "agreement"),
                    ("flow", None, "flow"), ("camera", None, "camera"))


def _shaken(frames, masks, seed):
    """The clip as a handheld camera would see it: each frame shifted and turned as
    `_handheld` does (std 2 pixels, 0.6 degrees), the masks with it."""
    import cv2

    rng = np.random.default_rng(seed)
    shake = np.zeros(3)
    shaken, shaken_masks = [], []
    for frame, mask in zip(frames, masks):
        shake = 0.5 * shake + np.sqrt(1 - 0.25) * rng.normal(0, [2.0, 2.0, 0.6])
        matrix = cv2.getRotationMatrix2D((FRAME_W / 2, FRAME_H / 2), shake[2], 1.0)
        matrix[:, 2] += shake[:2]
        shaken.append(cv2.warpAffine(frame, matrix, (FRAME_W, FRAME_H), flags=cv2.INTER_LINEAR,
                                     borderMode=cv2.BORDER_REFLECT))
        shaken_masks.append(cv2.warpAffine(mask.astype(np.uint8), matrix, (FRAME_W, FRAME_H),
                                           flags=cv2.INTER_NEAREST).astype(bool))
    return shaken, shaken_masks


def picture_clip(args, predictor, size):
    """`{label: (frames, outputs, masks)}` for the picture: a sliding-piece clip made
    from scikit-image's sample photos (public domain and CC0, so the picture may be
    committed): the astronaut slides over the coffee cup; `--picture-shake`: seen
    by a handheld camera."""
    from skimage import data as skdata

    from colornet.apps import video

    frames, masks = _object(skdata.coffee(), skdata.astronaut(), CLIP_FRAMES)
    if args.picture_shake:
        frames, masks = _shaken(frames, masks, seed=7)
    if args.oracle:
        predictor.cache = oracle_logits(frames, size, seed=100)
    strength = args.picture_strength
    result = {}
    for label, setting_strength, motion in PICTURE_SETTINGS:
        smoother = video.TemporalSmoother(strength if setting_strength is None else setting_strength,
                                          args.scene_threshold, motion, sigma=args.sigma)
        result[label] = (frames, list(video.colorize_frames(frames, predictor, smoother=smoother)), masks)
    return result


def write_picture(pictures, path, strength):
    """One frame of the picture clip, cropped about the moving piece and the
    path it took over the last frames, enlarged 2x: original | frame by frame | plain
    EMA | EMA held back where L changed | EMA along the flow | EMA along the camera's
    motion, at `strength`."""
    from PIL import Image, ImageDraw

    frames, _, masks = pictures["frame by frame"]
    t = int(len(frames) * 0.6)
    ys, xs = np.nonzero(np.any(masks[t - 2 * TRAIL_FRAMES : t + 1], axis=0))
    top, bottom = max(ys.min() - 12, 0), min(ys.max() + 12, FRAME_H)
    left, right = max(xs.min() - 12, 0), min(xs.max() + 12, FRAME_W)
    panels = [("original", frames[t])]
    for label, setting_strength, _ in PICTURE_SETTINGS:
        panels.append((label if setting_strength == 0 else f"{label}, S={strength}", pictures[label][1][t]))
    scale, gap, label_h = 2, 6, 18
    width, height = (right - left) * scale, (bottom - top) * scale
    canvas = Image.new("RGB", (len(panels) * (width + gap) - gap, height + label_h), "white")
    draw = ImageDraw.Draw(canvas)
    for i, (label, image) in enumerate(panels):
        crop = Image.fromarray(np.ascontiguousarray(image[top:bottom, left:right]))
        canvas.paste(crop.resize((width, height), Image.NEAREST), (i * (width + gap), label_h))
        draw.text((i * (width + gap) + 2, 3), label, fill="black")
    canvas.save(path, quality=92)
    print(f"wrote {path} (frame {t}; the piece moves left to right)")


# ----------------------------------------------------------------------------
# Speed and memory.


def make_video(path, photo_path, height, frames, rate=25, grey=True):
    """An H.264 pan over an upscaled photograph, with an AAC sine track; black and
    white (`grey`: the photograph's grey levels, chroma neutral, as a black-and-white
    film is stored) or in colour."""
    import av
    import cv2

    width = int(round(height * 16 / 9 / 2)) * 2
    photo = _load(photo_path)
    if grey:
        photo = np.repeat(cv2.cvtColor(photo, cv2.COLOR_RGB2GRAY)[..., None], 3, axis=-1)
    scale = 1.3 * max(width / photo.shape[1], height / photo.shape[0])
    photo = cv2.resize(photo, None, fx=scale, fy=scale, interpolation=cv2.INTER_CUBIC)
    out = av.open(path, "w")
    stream = out.add_stream("libx264", rate=rate)
    stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
    stream.options = {"crf": "20", "preset": "veryfast"}
    audio = out.add_stream("aac", rate=44100)
    audio.layout = "stereo"
    h, w = photo.shape[:2]
    for i in range(frames):
        t = i / max(frames - 1, 1)
        cx = width / 2 + (w - width) * t
        cy = height / 2 + (h - height) * t
        frame = av.VideoFrame.from_ndarray(_window(photo, cx, cy, width, height, width, height), format="rgb24")
        frame.pts = i
        for packet in stream.encode(frame):
            out.mux(packet)
    for packet in stream.encode():
        out.mux(packet)
    samples = int(44100 * frames / rate)
    tone = (0.2 * np.sin(2 * np.pi * 440 * np.arange(samples) / 44100)).astype(np.float32)
    for start in range(0, samples, 1024):
        chunk = np.ascontiguousarray(np.stack([tone[start : start + 1024]] * 2))
        frame = av.AudioFrame.from_ndarray(chunk, format="fltp", layout="stereo")
        frame.sample_rate, frame.pts = 44100, start
        for packet in audio.encode(frame):
            out.mux(packet)
    for packet in audio.encode():
        out.mux(packet)
    out.close()


def _cpu_times():
    """Per core: (busy, total) jiffies from /proc/stat (every process, not only this one)."""
    times = []
    with open("/proc/stat") as stat:
        for line in stat:
            name, *values = line.split()
            if name.startswith("cpu") and name != "cpu":
                values = [int(v) for v in values]
                idle = values[3] + values[4]  # idle, iowait
                times.append((sum(values) - idle, sum(values)))
    return times


def network_alone(predictor, batch, rounds=5):
    """Wall ms per frame of the network alone on random L at 256 x 256 (the best of
    `rounds` after warm-up), at the pipeline's batch size."""
    import tensorflow as tf

    l_small = tf.constant(np.random.default_rng(0).uniform(0, 100, (batch, 256, 256, 1)).astype(np.float32))
    for _ in range(2):
        predictor.logits(l_small).numpy()
    seconds = []
    for _ in range(rounds):
        start = time.perf_counter()
        predictor.logits(l_small).numpy()
        seconds.append(time.perf_counter() - start)
    return 1000 * min(seconds) / batch


def run_one_speed(args):
    """In this process: colourise one clip and print a JSON line."""
    import threading

    from colornet.apps import video

    predictor = video.load_video_predictor(args.model, args.precision)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    samples, done = [], threading.Event()

    def sample():  # resident memory over the run: flat after the start = bounded
        while not done.wait(0.25):
            with open("/proc/self/status") as status:
                samples.append(next(int(line.split()[1]) / 1024 for line in status if line.startswith("VmRSS")))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    cpu0, cores0 = time.process_time(), _cpu_times()
    summary = video.colorize_video(args.src, args.dst, predictor, verbose=0, motion=args.motion,
                                   temporal_smoothing=args.strength, encoder_preset=args.encoder_preset,
                                   batch_size=args.batch_size)
    cpu, cores1 = time.process_time() - cpu0, _cpu_times()
    done.set()
    sampler.join()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    quarter = len(samples) // 4
    network_ms = network_alone(predictor, args.batch_size)
    fps = summary.frames / summary.seconds
    print(json.dumps({
        "height": summary.height, "width": summary.width, "frames": summary.frames,
        "seconds": summary.seconds, "fps": fps, "cpu_seconds": cpu,
        "cpu_ms_per_frame": cpu / summary.frames * 1000,
        "network_alone_ms_per_frame": network_ms, "network_alone_fps": 1000 / network_ms,
        "share_of_network_alone_fps": fps * network_ms / 1000,
        "core_busy_share": [(b1 - b0) / max(t1 - t0, 1) for (b0, t0), (b1, t1) in zip(cores0, cores1)],
        "rss_before_mb": before, "peak_rss_mb": peak,
        # A run shorter than four samples (a second) has no quarters.
        "rss_quartiles_mb": [samples[i * quarter] for i in (1, 2, 3)] + [samples[-1]] if quarter else [],
        "motion": args.motion, "strength": args.strength, "encoder_preset": args.encoder_preset,
        "batch_size": args.batch_size, "precision": video.resolve_precision(args.precision),
    }))


def _one_speed_run(args, src, dst, strength, motion, precision, code, path):
    """One --speed run in its own process (colornet from `path` when given)."""
    command = [sys.executable, __file__, "--one-speed", "--src", src, "--dst", dst, "--precision", precision,
               "--encoder-preset", args.encoder_preset, "--batch-size", str(args.batch_size)]
    if strength is not None:
        command += ["--strength", str(strength), "--motion", motion]
    if args.model:
        command += ["--model", args.model]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [path, os.environ.get("PYTHONPATH")])))
    load = os.getloadavg()[0]
    result = json.loads(subprocess.run(command, check=True, capture_output=True, text=True, env=env).stdout
                        .strip().splitlines()[-1])
    result["load_average_before"], result["code"] = load, code
    print(f"{result['width']}x{result['height']}, {result['frames']} frames, smoothing "
          f"S={result['strength']} {result['motion']}, {result['precision']}, {code}: {result['fps']:.1f} "
          f"frames/s ({result['cpu_ms_per_frame']:.0f} ms CPU per frame; the network alone "
          f"{result['network_alone_fps']:.1f} frames/s at batch {result['batch_size']}, so "
          f"{100 * result['share_of_network_alone_fps']:.0f} % of it; cores busy "
          f"{', '.join(f'{100 * b:.0f} %' for b in result['core_busy_share'])}), peak "
          f"RSS {result['peak_rss_mb']:.0f} MB (after loading the model {result['rss_before_mb']:.0f} MB; "
          f"at 1/4, 1/2, 3/4 of the run and its end "
          f"{', '.join(f'{v:.0f}' for v in result['rss_quartiles_mb'])} MB); "
          f"load average before {load:.1f}", flush=True)
    return result


def _checkout(revision, tmp):
    """The repository at git `revision`, checked out under `tmp` (for --against)."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    path = os.path.join(tmp, "against")
    subprocess.run(["git", "-C", root, "worktree", "add", "--detach", "--force", path, revision],
                   check=True, capture_output=True)
    return root, path


def run_speed(args):
    photo = args.photo or sorted(glob.glob(os.path.join(args.photos, "bsds500", "val", "*.jpg")))[0]
    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        # With --against, each run also with colornet as it was at that revision (this
        # script's harness, that revision's package), interleaved with this tree's.
        precisions = args.precisions or [args.precision]
        codes = [("working tree", None)]
        if args.against:
            root, against = _checkout(args.against, tmp)
            codes.append((args.against, against))
        try:
            for height in args.heights:
                src = os.path.join(tmp, f"clip{height}.mp4")
                make_video(src, photo, height, args.frames, grey=args.clip == "grey")
                settings = [(0.0, "none"), (None, None)] * args.repeats  # interleaved: load drifts hit both
                for (strength, motion), precision, (code, path) in itertools.product(settings, precisions, codes):
                    runs.append(_one_speed_run(args, src, os.path.join(tmp, f"out{height}.mp4"), strength, motion,
                                               precision, code, path))
        finally:
            if args.against:
                subprocess.run(["git", "-C", root, "worktree", "remove", "--force", against], capture_output=True)
    medians = {}
    for run in runs:
        setting = "frame by frame" if run["strength"] == 0 else "default"
        code = "" if run["code"] == "working tree" else f" ({run['code']})"
        precision = f" {run['precision']}" if args.precisions else ""
        medians.setdefault(f"{run['height']}p {setting}{precision}{code}", []).append(run)
    medians = {key: {name: float(np.median([r[name] for r in group])) for name in
                     ("fps", "cpu_ms_per_frame", "network_alone_fps", "share_of_network_alone_fps", "peak_rss_mb")}
               for key, group in medians.items()}
    if args.repeats > 1:
        for key, median in medians.items():
            print(f"{key}, median of {args.repeats}: {median['fps']:.1f} frames/s, {median['cpu_ms_per_frame']:.0f} "
                  f"CPU ms a frame, {100 * median['share_of_network_alone_fps']:.0f} % of the network alone")
    print(cpu_name())
    write_json(args.json, {
        "cpu": cpu_name(), "model": model_name(args.model), "repeats": args.repeats, "medians": medians, "clip": {
            "photo": os.path.relpath(photo, args.photos) if args.photo is None else photo,
            "frames": args.frames, "heights": args.heights, "rate": 25,
            "content": f"H.264 (crf 20) pan over an upscaled photograph, {args.clip}, AAC stereo sine track",
        },
        "encoder_preset": args.encoder_preset, "batch_size": args.batch_size,
        "against": args.against, "precisions": precisions,
        "command": " ".join(["python", "benchmarks/video.py", *sys.argv[1:]]),
        "runs": runs,
    })


def run_stages(args):
    """CPU ms per frame of each stage, apart, at each of `--heights`, on a clip made
    as for --speed: what the pipeline's threads share out over the cores."""
    import av
    import cv2
    import tensorflow as tf

    from colornet import inference
    from colornet.apps import video
    from colornet.apps.video import files, lab
    from colornet.apps.video import frames as stages

    batch = args.batch_size
    photo = args.photo or sorted(glob.glob(os.path.join(args.photos, "bsds500", "val", "*.jpg")))[0]

    def cpu_ms(fn, rounds=4, count=batch):
        fn()  # compile, warm up
        start = time.process_time()
        for _ in range(rounds):
            fn()
        return (time.process_time() - start) / rounds / count * 1000

    report = {"cpu": cpu_name(), "model": model_name(args.model), "batch": batch, "network_size": 256,
              "command": " ".join(["python", "benchmarks/video.py", *sys.argv[1:]]), "cpu_ms_per_frame": {}}
    precisions = ("float32", "bfloat16") if args.model else ("float32", "bfloat16", "int8")
    predictors_by_precision = {p: video.load_video_predictor(args.model, p) for p in precisions}
    def one_height(height, tmp):
        src = os.path.join(tmp, f"clip{height}.mp4")
        make_video(src, photo, height, 4 * batch, grey=args.clip == "grey")
        ms = {}

        def decode(src=src, grey=False):
            reader = files._GreyFrames(av)
            with av.open(src) as container:
                container.streams.video[0].thread_type = "AUTO"
                return [reader.levels(f) if grey else f.to_ndarray(format="rgb24") for f in container.decode(video=0)]

        rgb = decode()
        ms["decode_to_rgb"] = cpu_ms(decode, rounds=2, count=len(rgb))
        if args.clip == "grey":  # the reader's path for a black-and-white film: its grey levels
            grey = decode(grey=True)
            ms["decode_to_grey"] = cpu_ms(lambda: decode(grey=True), rounds=2, count=len(grey))
        rgb = rgb[:batch]
        scratch = lab.Scratch()
        l_raw = np.stack([lab.frame_l(f) for f in rgb])
        ms["l"] = cpu_ms(lambda: [lab.frame_l(f, l_raw[i], scratch) for i, f in enumerate(rgb)])
        if args.clip == "grey":
            ms["l_grey"] = cpu_ms(lambda: [lab.grey_l(f, l_raw[i]) for i, f in enumerate(grey[:batch])])
        ms["l_tf_xla"] = cpu_ms(lambda: stages._frame_l_tf(tf.constant(np.stack(rgb))).numpy())
        resize, l_small = stages._Resize(l_raw.shape[1:], 256), np.empty((batch, 256, 256, 1), np.float32)
        ms["network_input"] = cpu_ms(lambda: [resize(l, l_small[i, ..., 0]) for i, l in enumerate(l_raw)])
        ms["network_input_tf"] = cpu_ms(lambda: inference.network_input(l_raw[..., None], 256).numpy())
        for precision, predictor in predictors_by_precision.items():
            ms[f"network_{precision}"] = cpu_ms(lambda p=predictor: p.logits(l_small).numpy())
        logits = predictors_by_precision["bfloat16"].logits(l_small)
        kept = np.empty(logits.shape[1:], np.float32)  # as the render stage: one array kept
        ms["softmax"] = cpu_ms(lambda: [stages._softmax(frame, out=kept) for frame in logits.numpy()])
        probabilities = stages._softmax(logits)
        smoother = video.TemporalSmoother()
        ms["smoothing_default"] = cpu_ms(lambda: [smoother(p, l) for p, l in zip(probabilities, l_small)])
        smoothed = np.stack([smoother(p, l) for p, l in zip(probabilities, l_small)])
        ms["decode_distributions"] = cpu_ms(
            lambda: stages._decode_distributions(smoothed, "annealed-mean", 0.38, scratch))
        ab_small = stages._decode_distributions(smoothed, "annealed-mean", 0.38, scratch)
        ms["upsample_lab_to_rgb"] = cpu_ms(lambda: [lab.lab_to_rgb8(l, ab)
                                                    for l, ab in zip(l_raw, ab_small)])
        ms["upsample_lab_to_rgb_tf_xla"] = cpu_ms(lambda: [
            stages._lab_to_rgb8_tf(l, inference.upsample_ab(ab[None], l.shape)[0]).numpy()
            for l, ab in zip(l_raw, ab_small)])
        out = [lab.lab_to_rgb8(l, ab) for l, ab in zip(l_raw, ab_small)]
        ms["rgb_to_yuv420_swscale"] = cpu_ms(lambda: [av.VideoFrame.from_ndarray(f, format="rgb24")
                                                      .reformat(format="yuv420p") for f in out])
        ms["rgb_to_yuv420_opencv"] = cpu_ms(lambda: [cv2.cvtColor(f, cv2.COLOR_RGB2YUV_I420) for f in out])
        yuv = [cv2.cvtColor(f, cv2.COLOR_RGB2YUV_I420) for f in out]
        for preset in ("fast", "veryfast"):

            def encode(preset=preset):
                with av.open(os.path.join(tmp, "out.mp4"), "w") as container:
                    stream = container.add_stream("libx264", rate=25)
                    stream.width, stream.height, stream.pix_fmt = out[0].shape[1], height, "yuv420p"
                    stream.options = {"crf": str(video.defaults.DEFAULT_CRF), "preset": preset}
                    stream.codec_context.thread_count = files.encoder_threads()  # as colornet's writer
                    for number in range(4 * batch):  # 4:2:0 frames, as the writer gives them
                        frame = av.VideoFrame.from_ndarray(yuv[number % batch], format="yuv420p")
                        frame.pts = number
                        container.mux(stream.encode(frame))
                    container.mux(stream.encode())

            ms[f"encode_{preset}"] = cpu_ms(encode, rounds=2, count=4 * batch)
        report["cpu_ms_per_frame"][f"{height}p"] = ms
        print(f"{out[0].shape[1]} x {height}, CPU ms per frame: "
              + ", ".join(f"{name} {value:.1f}" for name, value in ms.items()), flush=True)

    with tempfile.TemporaryDirectory() as tmp:
        for height in args.heights:
            one_height(height, tmp)
    print(cpu_name())
    write_json(args.json, report)


def _photo_l(photos, count=40):
    """`(N, 256, 256, 1)` network L of the first `count` BSDS500 val photographs."""
    import tensorflow as tf

    from colornet import color, inference

    paths = sorted(glob.glob(os.path.join(photos, "bsds500", "val", "*.jpg")))[:count]
    return np.concatenate([
        inference.network_input(color.rgb_to_lab(tf.constant(_load(p)))[None, ..., :1], 256).numpy() for p in paths
    ]) if paths else None


def run_smoothing_cost(args, frames=48, rounds=3):
    """Wall and CPU ms per frame of the smoother alone (`TemporalSmoother.__call__`),
    by motion mode, on a handheld clip at each of `args.heights`: the network's
    distributions (softmax of its logits) and L as `colorize_frames` gives them."""
    import tensorflow as tf

    from colornet.apps import video
    from colornet.deploy import predictors

    photo = _load(args.photo or sorted(glob.glob(os.path.join(args.photos, "bsds500", "val", "*.jpg")))[0])
    predictor = video.load_video_predictor(args.model, args.precision)
    size = predictors.resolve_size(predictor)
    rows = []
    for height in args.heights:
        width = int(round(height * 16 / 9 / 2)) * 2
        clip, _ = _handheld(_resized(photo, 1.5 * max(width / photo.shape[1], height / photo.shape[0])), frames,
                            seed=0, size=(width, height))
        l_small = network_l(clip, size)
        probabilities = np.concatenate([tf.nn.softmax(predictor.logits(l_small[i : i + 8])).numpy()
                                        for i in range(0, frames, 8)])
        for motion in args.motions:
            wall, cpu = [], []
            for _ in range(rounds):
                smoother = video.TemporalSmoother(video.defaults.DEFAULT_TEMPORAL_SMOOTHING, motion=motion)
                smoother(probabilities[0], l_small[0])
                start, start_cpu = time.perf_counter(), time.process_time()
                for p, l_one in zip(probabilities[1:], l_small[1:]):
                    smoother(p, l_one)
                wall.append((time.perf_counter() - start) / (frames - 1) * 1000)
                cpu.append((time.process_time() - start_cpu) / (frames - 1) * 1000)
            rows.append({"width": width, "height": height, "motion": motion, "ms_per_frame_best": min(wall),
                         "ms_per_frame_median": float(np.median(wall)), "cpu_ms_per_frame": float(np.median(cpu))})
            print(f"{width}x{height}, smoothing {motion}: {min(wall):.1f} ms a frame (median {np.median(wall):.1f}, "
                  f"CPU {np.median(cpu):.1f})", flush=True)
    print(f"the smoother alone, {frames - 1} frames of a handheld clip, best of {rounds}; {cpu_name()}")
    write_json(args.json, {"cpu": cpu_name(), "model": model_name(args.model), "network_size": size,
                           "strength": video.defaults.DEFAULT_TEMPORAL_SMOOTHING,
                           "load_average_before": os.getloadavg()[0], "runs": rows})


def run_network(args, batches=(1, 4, 8, 16), rounds=5):
    """Wall-clock ms per frame of the network alone, by form and batch, and the mean
    ab error of each form against float32 on real photographs (`--photos`): TF
    float32 and bfloat16, and the `--tflite` files under LiteRT (XNNPACK, 2
    threads, one frame a call, as their signature takes)."""
    import tensorflow as tf

    from colornet import inference
    from colornet.apps import video
    from colornet.deploy import predictors

    # int8: the bundled model's LiteRT form (for another model, give its .tflite with --tflite).
    precisions = ("float32", "bfloat16") if args.model else ("float32", "bfloat16", "int8")
    forms = {precision: video.load_video_predictor(args.model, precision) for precision in precisions}
    for path in args.tflite or []:
        forms[f"litert {os.path.basename(path)}"] = predictors.TFLitePredictor(path, num_threads=2)

    def logits(predictor, l_small):
        if isinstance(predictor, predictors.TFLitePredictor):
            return np.concatenate([predictor.logits(l_small[i : i + 1]).numpy() for i in range(len(l_small))])
        return predictor.logits(l_small).numpy()

    photos_l = _photo_l(args.photos)
    reference = None
    rows = []
    for form, predictor in forms.items():
        for batch in batches:
            l_small = tf.constant(np.random.default_rng(0).uniform(0, 100, (batch, 256, 256, 1)).astype(np.float32))
            for _ in range(3):
                logits(predictor, l_small)
            seconds = []
            for _ in range(rounds):
                start = time.perf_counter()
                logits(predictor, l_small)
                seconds.append(time.perf_counter() - start)
            best, median = (1000 * s / batch for s in (min(seconds), float(np.median(seconds))))
            rows.append({"precision": form, "batch": batch, "ms_per_frame_best": best,
                         "ms_per_frame_median": median})
            print(f"network, {form}, batch {batch}: {best:.1f} ms a frame (median {median:.1f})", flush=True)
        if photos_l is not None:
            ab = np.concatenate([inference.decode_logits(tf.constant(logits(predictor, photos_l[i : i + 8]))).numpy()
                                 for i in range(0, len(photos_l), 8)])
            reference = ab if reference is None else reference
            error = np.linalg.norm(ab - reference, axis=-1)
            rows[-1]["ab_error_vs_float32"] = {"mean": float(error.mean()), "p99": float(np.percentile(error, 99)),
                                               "photos": len(photos_l)}
            print(f"network, {form}: ab error against float32 on {len(photos_l)} photographs, mean "
                  f"{error.mean():.3f}, 99th percentile {np.percentile(error, 99):.2f}", flush=True)
    print(f"wall-clock ms per 256 x 256 frame; {cpu_name()}")
    write_json(args.json, {"cpu": cpu_name(), "model": model_name(args.model), "network_size": 256,
                           "command": " ".join(["python", "benchmarks/video.py", *sys.argv[1:]]),
                           "load_average_before": os.getloadavg()[0], "runs": rows})


def main():
    from colornet.apps import video

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quality", action="store_true")
    parser.add_argument("--speed", action="store_true")
    parser.add_argument("--stages", action="store_true", help="CPU time of each stage at --heights")
    parser.add_argument("--network", action="store_true", help="wall time of the network alone, by batch")
    parser.add_argument("--smoothing-cost", action="store_true", help="time of the smoother alone, by motion mode")
    parser.add_argument("--photos", default="../shared/data/photos")
    parser.add_argument("--sets", type=int, default=4, help="photograph sets (4 clips each); 0: only the --picture")
    parser.add_argument("--model", help="default: the bundled model")
    parser.add_argument("--precision", default="auto", choices=video.defaults.PRECISIONS)
    parser.add_argument("--scene-threshold", type=float, default=video.defaults.DEFAULT_SCENE_THRESHOLD)
    parser.add_argument("--strengths", type=float, nargs="+", default=STRENGTHS, help="S values compared")
    parser.add_argument("--motions", nargs="+", default=video.defaults.MOTION_MODES,
                        choices=video.defaults.MOTION_MODES, help="motion modes compared")
    parser.add_argument("--real", nargs="+", default=[], metavar="VIDEO",
                        help="colour video files to measure too (real footage; see docs/video.md)")
    parser.add_argument("--real-frames", type=int, default=96, help="frames taken from the start of each --real")
    parser.add_argument("--sigma", type=float, default=video.smoothing.L_AGREEMENT_SIGMA, help="L agreement sigma")
    parser.add_argument("--json", metavar="FILE", help="also write what --quality, --speed or --stages "
                        "prints to this JSON file (one mode at a time)")
    parser.add_argument("--oracle", action="store_true", help="instead of a model: logits peaked at the true "
                        "colours with fresh noise every frame (a stand-in for a good model)")
    parser.add_argument("--picture", help="write the trail picture here (.jpg)")
    parser.add_argument("--picture-shake", action="store_true", help="the picture's clip as a handheld "
                        "camera sees it")
    parser.add_argument("--picture-strength", type=float, default=video.defaults.DEFAULT_TEMPORAL_SMOOTHING,
                        help="the S shown in the picture")
    parser.add_argument("--heights", type=int, nargs="+", default=[480, 1080])
    parser.add_argument("--frames", type=int, default=300)
    parser.add_argument("--repeats", type=int, default=1, help="--speed: runs of each setting (medians reported)")
    parser.add_argument("--photo", help="photograph of the speed clip")
    parser.add_argument("--clip", choices=("grey", "colour"), default="grey", help="--speed, --stages: the clip "
                        "black and white (as films to colourise are) or in colour")
    parser.add_argument("--precisions", nargs="+", choices=video.defaults.PRECISIONS, help="--speed: each run "
                        "in each of these precisions, interleaved (instead of --precision)")
    parser.add_argument("--against", metavar="REV", help="--speed: also run colornet as it was at this git "
                        "revision, interleaved with this tree's (an A/B of a change)")
    parser.add_argument("--tflite", nargs="+", help="--network: .tflite files (colornet tflite) to time too")
    parser.add_argument("--one-speed", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--src", help=argparse.SUPPRESS)
    parser.add_argument("--dst", help=argparse.SUPPRESS)
    parser.add_argument("--strength", type=float, default=video.defaults.DEFAULT_TEMPORAL_SMOOTHING,
                        help=argparse.SUPPRESS)
    parser.add_argument("--motion", default=video.defaults.DEFAULT_MOTION, help=argparse.SUPPRESS)
    parser.add_argument("--encoder-preset", default=video.defaults.DEFAULT_ENCODER_PRESET,
                        choices=video.defaults.X264_PRESETS, help="x264 preset of --speed")
    parser.add_argument("--batch-size", type=int, default=video.defaults.DEFAULT_BATCH_SIZE,
                        help="frames per network call in --speed")
    args = parser.parse_args()
    if args.one_speed:
        return run_one_speed(args)
    modes = args.quality + args.speed + args.stages + args.network + args.smoothing_cost
    if not modes:
        parser.error("give --quality, --speed, --stages, --network or --smoothing-cost")
    if args.json and modes > 1:
        parser.error("--json takes one of --quality, --speed, --stages, --network and --smoothing-cost at a time")
    if args.network:
        run_network(args)
    if args.smoothing_cost:
        run_smoothing_cost(args)
    if args.stages:
        run_stages(args)
    if args.quality:
        run_quality(args)
    if args.speed:
        run_speed(args)


if __name__ == "__main__":
    main()
