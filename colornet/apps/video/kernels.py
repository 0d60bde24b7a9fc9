"""The loops over every pixel of a frame, or of its 313-way distributions, compiled
with Numba: each reads its input once and writes its output once, where NumPy or
OpenCV would make a pass over the whole array for every step (at 1920 x 1080, each
pass reads and writes megabytes).

Pure loops; what they compute, and their tables, is set out where they are called:
`lab` (Lab -> RGB), `frames` (the resizing for the network) and `smoothing` (the
running average, the resampling of the carried one). Needs Numba (the `video`
extra). Compiled on first use and cached beside this file (or in Numba's cache
folder where that is read-only).
"""

import numba
import numpy as np

from colornet import constants as c

_JIT = {"cache": True, "nogil": True, "fastmath": True}  # nogil: the pipeline's threads overlap


@numba.njit(**_JIT)
def upsample_lab_to_rgb8(l_raw, ab_small, rows, columns, matrix, levels, thresholds, out):
    """`(H, W)` float32 L and `(h, w, 2)` float32 ab -> `(H, W, 3)` uint8 sRGB in `out`.

    ab is upsampled bilinearly by `rows` and `columns`, each `(first, second, weight
    of the second)` source pixels per output pixel along its axis. Lab -> XYZ as
    `colornet.color.lab_to_rgb` (f(Z) clamped at 0), `matrix` (3, 3) takes XYZ to
    linear RGB, clipped to [0, 1]. A linear value v is the level
    `levels[i] + (v * n >= thresholds[i])`, i = int(v * n), n = len(levels) - 1:
    each of the n bins holds at most one step from a level to the next."""
    height, width = l_raw.shape
    n = levels.shape[0] - 1
    scale = np.float32(n)
    f_threshold, inverse_slope = np.float32(c.LAB_F_THRESHOLD), np.float32(1.0 / c.LAB_KAPPA_SLOPE)
    offset = np.float32(16.0 / 116.0)
    first_y, second_y, weight_y = rows
    first_x, second_x, weight_x = columns
    a_row, b_row = np.empty(ab_small.shape[1], np.float32), np.empty(ab_small.shape[1], np.float32)
    a_full, b_full = np.empty(width, np.float32), np.empty(width, np.float32)
    linear = np.empty((3, width), np.float32)
    for y in range(height):
        top, bottom, v = ab_small[first_y[y]], ab_small[second_y[y]], weight_y[y]
        for x in range(ab_small.shape[1]):
            a_row[x] = top[x, 0] + v * (bottom[x, 0] - top[x, 0])
            b_row[x] = top[x, 1] + v * (bottom[x, 1] - top[x, 1])
        for x in range(width):
            left, right, u = first_x[x], second_x[x], weight_x[x]
            a_full[x] = a_row[left] + u * (a_row[right] - a_row[left])
            b_full[x] = b_row[left] + u * (b_row[right] - b_row[left])
        l_row = l_raw[y]
        for x in range(width):
            fy = (l_row[x] + np.float32(16.0)) * np.float32(1.0 / 116.0)
            fx = fy + a_full[x] * np.float32(1.0 / 500.0)
            fz = max(fy - b_full[x] * np.float32(1.0 / 200.0), np.float32(0.0))
            cx = fx * fx * fx if fx > f_threshold else (fx - offset) * inverse_slope
            cy = fy * fy * fy if fy > f_threshold else (fy - offset) * inverse_slope
            cz = fz * fz * fz if fz > f_threshold else (fz - offset) * inverse_slope
            for channel in range(3):
                value = matrix[channel, 0] * cx + matrix[channel, 1] * cy + matrix[channel, 2] * cz
                linear[channel, x] = min(max(value, np.float32(0.0)), np.float32(1.0)) * scale
        out_row = out[y]
        for x in range(width):
            for channel in range(3):
                value = linear[channel, x]
                # Clamped as an integer too: NaN (a broken model's ab) must not index outside.
                i = min(max(np.int32(value), 0), n)
                out_row[x, channel] = levels[i] + (value >= thresholds[i])
    return out


@numba.njit(**_JIT)
def resize(image, row_taps, column_taps, between, out):
    """`(H, W)` float32 -> `(S, T)` in `out`, each axis by its taps: `(indices,
    weights)`, each `(S or T, k)`, output pixel i = sum over j of weights[i, j] *
    input[indices[i, j]] (unused taps have weight 0). `between` `(S, W)` holds the
    rows' result."""
    row_indices, row_weights = row_taps
    column_indices, column_weights = column_taps
    for i in range(between.shape[0]):
        row = between[i]
        row[:] = 0.0
        for j in range(row_indices.shape[1]):
            weight, source = row_weights[i, j], image[row_indices[i, j]]
            for x in range(row.shape[0]):
                row[x] += weight * source[x]
    for i in range(out.shape[0]):
        row = between[i]
        for x in range(out.shape[1]):
            total = np.float32(0.0)
            for j in range(column_indices.shape[1]):
                total += column_weights[x, j] * row[column_indices[x, j]]
            out[i, x] = total
    return out


@numba.njit(**_JIT)
def blend(moved, kept, stays, probabilities, weight, out):
    """`(h, w, Q)` out = p + w * (previous - p) for each pixel, previous = `kept` where
    `stays` `(h, w)`, else `moved`; element by element (`out` may be either)."""
    for i in range(out.shape[0]):
        for j in range(out.shape[1]):
            previous = kept[i, j] if stays[i, j] else moved[i, j]
            p, w, o = probabilities[i, j], weight[i, j], out[i, j]
            for q in range(o.shape[0]):
                o[q] = p[q] + w * (previous[q] - p[q])
    return out


@numba.njit(**_JIT)
def warp_channels(image, matrix, unblur_x, unblur_y, between, out):
    """`(h, w, C)` float32 `image` resampled bilinearly at `matrix` (2, 3) (each
    output pixel's place in `image`; beyond its edges, its edge pixels), into
    `between`; then filtered by the 3-tap kernels `unblur_x`, `unblur_y` (edges
    repeated) and floored at 0, into `out` (`unblur_x` of length 0: no filter, `out`
    is `between` unfloored)."""
    h, w, channels = image.shape
    for y in range(h):
        for x in range(w):
            sx = min(max(matrix[0, 0] * x + matrix[0, 1] * y + matrix[0, 2], np.float32(0.0)), np.float32(w - 1))
            sy = min(max(matrix[1, 0] * x + matrix[1, 1] * y + matrix[1, 2], np.float32(0.0)), np.float32(h - 1))
            left, top = min(int(sx), max(w - 2, 0)), min(int(sy), max(h - 2, 0))  # the last pair at the edge
            right, bottom = min(left + 1, w - 1), min(top + 1, h - 1)
            fx, fy = sx - left, sy - top
            w00, w01, w10, w11 = (1 - fy) * (1 - fx), (1 - fy) * fx, fy * (1 - fx), fy * fx
            a, b = image[top, left], image[top, right]
            c, d = image[bottom, left], image[bottom, right]
            o = between[y, x]
            for k in range(channels):
                o[k] = w00 * a[k] + w01 * b[k] + w10 * c[k] + w11 * d[k]
    if unblur_x.shape[0] == 0:
        return between
    row = np.empty((w, channels), np.float32)
    for y in range(h):
        up, down = between[max(y - 1, 0)], between[min(y + 1, h - 1)]
        middle = between[y]
        for x in range(w):
            for k in range(channels):
                row[x, k] = unblur_y[0] * up[x, k] + unblur_y[1] * middle[x, k] + unblur_y[2] * down[x, k]
        o = out[y]
        for x in range(w):
            left, right = row[max(x - 1, 0)], row[min(x + 1, w - 1)]
            for k in range(channels):
                value = unblur_x[0] * left[k] + unblur_x[1] * row[x, k] + unblur_x[2] * right[k]
                o[x, k] = max(value, np.float32(0.0))
    return out
