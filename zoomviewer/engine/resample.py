"""Classical resampling in numpy: MATLAB-compatible bicubic `imresize` (the benchmark's
downsampler and bicubic baseline), im2uint8-style quantisation, and bicubic point sampling
of arbitrary regions (the viewer's "bicubic" comparison pane); the box filter the viewer
minifies with (zoom <= 1, `area_region`) and the screen's 8-bit quantisation (`to_rgb8`).

Everything is separable: one dense weight matrix (output samples x input samples) per
axis, applied with a matrix product, so no Python loop runs per pixel.
"""

from __future__ import annotations

import math

import numpy as np

# Keys' cubic convolution with a = -0.5, the kernel of MATLAB's 'bicubic'.
CUBIC_A = -0.5
CUBIC_SUPPORT = 4.0  # kernel width in input samples (it is non-zero on (-2, 2))


def cubic(x: np.ndarray) -> np.ndarray:
    """Keys' cubic kernel (a = -0.5) evaluated at the offsets `x`."""
    ax = np.abs(x)
    ax2 = ax * ax
    ax3 = ax2 * ax
    a = CUBIC_A
    near = ((a + 2.0) * ax3 - (a + 3.0) * ax2 + 1.0) * (ax <= 1.0)
    far = (a * ax3 - 5.0 * a * ax2 + 8.0 * a * ax - 4.0 * a) * ((ax > 1.0) & (ax <= 2.0))
    return near + far


def _dense(out_len: int, in_len: int, indices: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Scatter (out_len x taps) index/weight pairs into a dense out_len x in_len matrix;
    repeated indices (several taps folded onto one border pixel) add up."""
    matrix = np.zeros((out_len, in_len), dtype=np.float64)
    rows = np.broadcast_to(np.arange(out_len)[:, None], indices.shape)
    np.add.at(matrix, (rows, indices), weights)
    return matrix


def imresize_weights(in_len: int, out_len: int, scale: float) -> np.ndarray:
    """MATLAB's `contributions` for one axis as a dense (out_len x in_len) matrix.

    Downscaling stretches the kernel by 1/scale (antialiasing); indices that fall off
    the image are mirrored the way MATLAB does it (edge pixel repeated: ... 1 0 | 0 1 ...).
    """
    kernel_width = CUBIC_SUPPORT
    if scale < 1.0:
        def kernel(x):
            return scale * cubic(scale * x)
        kernel_width = kernel_width / scale
    else:
        kernel = cubic
    # MATLAB works 1-based: output pixel x (1..out) sits at input position u.
    x = np.arange(1, out_len + 1, dtype=np.float64)
    u = x / scale + 0.5 * (1.0 - 1.0 / scale)
    left = np.floor(u - kernel_width / 2.0)
    taps = int(math.ceil(kernel_width)) + 2
    indices = left[:, None] + np.arange(taps, dtype=np.float64)[None, :]
    weights = kernel(u[:, None] - indices)
    weights = weights / weights.sum(axis=1, keepdims=True)
    # Symmetric padding: the sequence [1..n, n..1] repeated.
    mirror = np.concatenate([np.arange(in_len), np.arange(in_len - 1, -1, -1)])
    zero_based = np.mod(indices.astype(np.int64) - 1, mirror.size)
    return _dense(out_len, in_len, mirror[zero_based], weights)


def _apply_along(img: np.ndarray, matrix: np.ndarray, axis: int) -> np.ndarray:
    """Contract `img` along `axis` (0 = rows, 1 = columns) with `matrix` (out x in)."""
    moved = np.moveaxis(img, axis, 0)
    out = np.tensordot(matrix, moved, axes=([1], [0]))
    return np.moveaxis(out, 0, axis)


def imresize(img: np.ndarray, scale: float | None = None,
             out_shape: tuple[int, int] | None = None) -> np.ndarray:
    """MATLAB `imresize(img, scale, 'bicubic')` (or to `out_shape` = (rows, cols)).

    `img` is HxW or HxWxC. A float image (any range) gives float64, not clipped. A uint8
    image gives uint8 the way MATLAB computes it for uint8 input: each pass is rounded and
    saturated to uint8 before the next, which is what makes the published MATLAB LR
    images come out bit for bit (a float pass on im2double input differs by up to 2
    grey levels on ~12% of the values).
    Given only `scale`, the output size is ceil(scale * size), as in MATLAB. The axis
    that shrinks most is resized first (MATLAB's order; rows first on a tie).
    """
    img = np.asarray(img)
    quantise_passes = img.dtype == np.uint8
    img = img.astype(np.float64)
    if img.ndim not in (2, 3):
        raise ValueError(f"imresize wants an HxW or HxWxC image, not shape {img.shape}")
    in_shape = img.shape[:2]
    if out_shape is not None:
        out_shape = (int(out_shape[0]), int(out_shape[1]))
        scales = (out_shape[0] / in_shape[0], out_shape[1] / in_shape[1])
    elif scale is not None:
        scales = (float(scale), float(scale))
        # The small epsilon keeps e.g. 255 * (1/3) = 85.000...01 from becoming 86.
        out_shape = tuple(int(math.ceil(n * scale - 1e-9)) for n in in_shape)
    else:
        raise ValueError("imresize needs a scale or an output shape")
    if min(out_shape) < 1 or min(scales) <= 0:
        raise ValueError(f"imresize cannot make a {out_shape[0]}x{out_shape[1]} image")
    order = sorted((0, 1), key=lambda axis: scales[axis])  # stable: rows first on a tie
    out = img
    for axis in order:
        if out_shape[axis] == in_shape[axis] and scales[axis] == 1.0:
            continue
        matrix = imresize_weights(in_shape[axis], out_shape[axis], scales[axis])
        out = _apply_along(out, matrix, axis)
        if quantise_passes:
            out = np.floor(np.clip(out, 0.0, 255.0) + 0.5)
    return out.astype(np.uint8) if quantise_passes else out


def to_uint8(img: np.ndarray) -> np.ndarray:
    """Quantise a [0, 1] float image like MATLAB's im2uint8: clip, x255, round half up."""
    return np.floor(np.clip(np.asarray(img, dtype=np.float64), 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def sample_weights(coords: np.ndarray, in_len: int) -> tuple[np.ndarray, int]:
    """Cubic point-sampling weights (no antialiasing) at continuous coordinates whose
    pixel centres are i + 0.5, with replicated borders.

    Returns (matrix, first): matrix is (len(coords) x span) over the input samples
    first .. first + span - 1, the only ones any coordinate touches, so sampling a small
    region of a large photo never builds a photo-sized matrix.
    """
    t = np.asarray(coords, dtype=np.float64) - 0.5
    base = np.floor(t)
    indices = base[:, None] + np.arange(-1, 3, dtype=np.float64)[None, :]
    weights = cubic(t[:, None] - indices)
    indices = np.clip(indices.astype(np.int64), 0, in_len - 1)
    first = int(indices.min()) if indices.size else 0
    last = int(indices.max()) if indices.size else 0
    return _dense(t.size, last - first + 1, indices - first, weights), first


def bicubic_sample(img: np.ndarray, ys: np.ndarray, xs: np.ndarray) -> np.ndarray:
    """Sample `img` (HxW or HxWxC float) at the grid ys x xs of continuous source
    coordinates (pixel centres at i + 0.5) with the a = -0.5 cubic and replicated
    borders. Returns len(ys) x len(xs) (x C) float64, not clipped."""
    img = np.asarray(img)
    if img.ndim not in (2, 3):
        raise ValueError(f"bicubic_sample wants an HxW or HxWxC image, not shape {img.shape}")
    row_matrix, row0 = sample_weights(ys, img.shape[0])
    col_matrix, col0 = sample_weights(xs, img.shape[1])
    window = img[row0:row0 + row_matrix.shape[1], col0:col0 + col_matrix.shape[1]]
    out = _apply_along(window.astype(np.float64), row_matrix, 0)
    return _apply_along(out, col_matrix, 1)


def bicubic_region(img: np.ndarray, region: tuple[float, float, float, float],
                   out_size: tuple[int, int]) -> np.ndarray:
    """Render source region (x, y, w, h) of `img` as an out_size = (W, H) image:
    pixel (i, j) is the bicubic sample at (x + (j + 0.5) w / W, y + (i + 0.5) h / H).
    Returns HxWxC float32 clipped to [0, 1]."""
    x, y, w, h = (float(v) for v in region)
    out_w, out_h = int(out_size[0]), int(out_size[1])
    if out_w < 1 or out_h < 1:
        raise ValueError(f"cannot render a {out_w}x{out_h} image")
    xs = x + (np.arange(out_w) + 0.5) * (w / out_w)
    ys = y + (np.arange(out_h) + 0.5) * (h / out_h)
    return np.clip(bicubic_sample(img, ys, xs), 0.0, 1.0).astype(np.float32)


def area_weights(start: float, length: float, n_out: int, n_src: int) -> tuple[np.ndarray, int]:
    """Box-filter weights for n_out samples whose pixels tile source [start, start+length):
    each output pixel is the area average of the source pixels it covers (partial
    coverage counts partially). Returns (n_out x span matrix, first source index)."""
    edges = start + np.arange(n_out + 1, dtype=np.float64) * (length / n_out)
    lo, hi = np.clip(edges[:-1], 0, n_src), np.clip(edges[1:], 0, n_src)
    first = min(int(np.floor(lo.min())), n_src - 1)
    last = max(int(np.ceil(hi.max())), first + 1)
    k = np.arange(first, last, dtype=np.float64)
    overlap = np.clip(np.minimum(hi[:, None], k + 1) - np.maximum(lo[:, None], k), 0, None)
    sums = overlap.sum(1)
    outside = sums <= 0
    if outside.any():  # a pixel wholly off the photo repeats the nearest edge pixel
        nearest = np.clip(np.floor((lo + hi) / 2), first, last - 1).astype(np.int64) - first
        overlap[outside] = 0
        overlap[np.nonzero(outside)[0], nearest[outside]] = 1
        sums = overlap.sum(1)
    return overlap / sums[:, None], first


def area_region(img: np.ndarray, region, out_size: tuple[int, int]) -> np.ndarray:
    """Area-averaged rendering of source region (x, y, w, h) at out_size (W, H), pixel
    (i, j) covering source [x + j w/W, x + (j+1) w/W) x [y + i h/H, ...): the viewer's
    minification (zoom <= 1), no decoder involved. float32 HxWx3."""
    x, y, w, h = (float(v) for v in region)
    out_w, out_h = int(out_size[0]), int(out_size[1])
    cols, c0 = area_weights(x, w, out_w, img.shape[1])
    rows, r0 = area_weights(y, h, out_h, img.shape[0])
    cols, rows = cols.astype(np.float32), rows.astype(np.float32)
    out = np.zeros((out_h, out_w, img.shape[2]), dtype=np.float32)
    band = 256  # source rows per step: keeps the intermediate small for huge photos
    span = rows.shape[1]
    for s in range(0, span, band):
        # the strip ends where the region's rows end, not where the photo does
        strip = img[r0 + s:r0 + min(s + band, span), c0:c0 + cols.shape[1]]
        narrowed = np.matmul(cols, strip)  # (rows in strip, out_w, 3)
        out += np.tensordot(rows[:, s:s + strip.shape[0]], narrowed, axes=(1, 0))
    return out


def to_rgb8(rgb: np.ndarray) -> np.ndarray:
    """[0, 1] floats -> uint8 for the screen, rounding half up like to_uint8 but in the
    frame's own float32 (a float64 copy of every 1280x800 frame would cost time and
    memory for no visible difference)."""
    return (np.clip(rgb, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
