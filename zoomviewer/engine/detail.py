"""Where a photo rewards zooming in: the detail map (`detail_map`), the detail regions
ranked from it (`detail_regions`), and the viewer's suggestions, faces first
(`suggestions`). No Qt; torch only through the model's render.

The detail map measures, on a coarse grid of the photo (cells of `grid` source pixels
or more), the mean absolute difference per pixel and channel, in [0, 1] units, between
the model's rendering and bicubic's at x2 of a small working copy of the photo
(area-averaged to at most WORK_PIXELS pixels: the 768x512 sample becomes 156x104, a 12 MP
photo 147x110). That is where the model draws something bicubic would blur: edges, hair,
text, foliage; flat sky scores about 0. The working copy is what keeps it cheap: the
encoder costs about 20 us a pixel on one CPU core, the decoder and bicubic little, so the
map costs about the same for any photo (0.3 s for the sample on one core, 0.5 s for a
12 MP photo, a third of which is reading it down to the working copy). The measure is
therefore of structure a working pixel across and larger (5 source pixels in the sample,
27 in a 12 MP photo; a cell spans at least MIN_CELL_WORK working pixels); noise at the
scale of one source pixel is averaged away, as it should be: it is not what people zoom
in for. Without a model the same grid
holds the detail the working copy has beyond its own bicubic x2 round trip (what a
bicubic zoom could not make), a pure numpy measure.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from .latent import Latent
from .render import render_region
from .resample import area_region, area_weights, bicubic_region, imresize

WORK_PIXELS = 128 * 128      # the working copy's largest size: its encoding is the cost
ZOOM = 2                     # the working copy is rendered at x2, by the model and by bicubic
MIN_CELL_WORK = 4            # working-copy pixels across a cell, at least (else a cell is noise)
BORDER = 1                   # working-copy pixels at the edge left out: the encoder's zero
                             # padding and bicubic's replicated edge disagree there on flat ground


@dataclass(frozen=True)
class DetailMap:
    """`values[row, col]`: the detail of the cell of `cell` x `cell` source pixels at
    (col * cell, row * cell); the last row and column may reach past the photo's
    `size` (w, h). Values are mean absolute differences in [0, 1] colour units."""
    values: np.ndarray
    cell: float
    size: tuple[int, int]

    def cell_rect(self, row: int, col: int, rows: int = 1, cols: int = 1) -> tuple[float, float, float, float]:
        """The source rectangle (x, y, w, h) of `rows` x `cols` cells from (row, col), on the photo."""
        x0, y0 = col * self.cell, row * self.cell
        x1, y1 = min((col + cols) * self.cell, self.size[0]), min((row + rows) * self.cell, self.size[1])
        return float(x0), float(y0), float(x1 - x0), float(y1 - y0)


@dataclass(frozen=True)
class DetailRegion:
    """A source rectangle (x, y, w, h) worth flying to, its score (the mean detail map
    value over it; for a face, the detector's confidence) and its kind: "detail" or "face"."""
    rect: tuple[float, float, float, float]
    score: float
    kind: str = "detail"


def shrunk(image: np.ndarray, out_w: int, out_h: int) -> tuple[np.ndarray, tuple[float, float]]:
    """`image` area-averaged to out_w x out_h (float32) and the source pixels (x, y) per
    output pixel. A whole-factor block mean first, so a 12 MP photo is read once and
    never multiplied by photo-wide weight matrices; the photo's last rows and columns
    short of a whole block (fewer than the factor) are left out."""
    h, w = image.shape[:2]
    if (out_w, out_h) == (w, h):
        return np.ascontiguousarray(image, dtype=np.float32), (1.0, 1.0)
    k = max(1, int(min(w / out_w, h / out_h)))
    src, hh, ww = image, h, w
    if k > 1:
        hh, ww = (h // k) * k, (w // k) * k
        src = image[:hh, :ww].reshape(hh // k, k, ww // k, k, -1).mean(axis=(1, 3), dtype=np.float32)
    small = area_region(src, (0, 0, src.shape[1], src.shape[0]), (out_w, out_h))
    return small.astype(np.float32), (ww / out_w, hh / out_h)


def working_copy(image: np.ndarray, work_pixels: int = WORK_PIXELS) -> tuple[np.ndarray, tuple[float, float]]:
    """The photo area-averaged to at most `work_pixels` pixels and the source pixels
    (x, y) per working pixel (1 for a photo that small already)."""
    h, w = image.shape[:2]
    scale = max(1.0, math.sqrt(h * w / work_pixels))
    return shrunk(image, max(1, int(w / scale)), max(1, int(h / scale)))


def _difference(model_or_latent, image: np.ndarray, work_pixels: int,
                cancel: Callable[[], bool] | None) -> tuple[np.ndarray, tuple[float, float], int]:
    """|model - bicubic| averaged over channels at ZOOM x of the working copy, the source
    pixels (x, y) per working pixel, and ZOOM (difference pixels per working pixel)."""
    if isinstance(model_or_latent, Latent) and model_or_latent.image is image \
            and image.shape[0] * image.shape[1] <= work_pixels:
        latent, small, scale = model_or_latent, image, (1.0, 1.0)    # the viewer's own: its tiles are shared
    else:
        small, scale = working_copy(image, work_pixels)
        model = model_or_latent.model if isinstance(model_or_latent, Latent) else model_or_latent
        device = model_or_latent.device if isinstance(model_or_latent, Latent) else next(model.parameters()).device
        latent = Latent(model, small, device=device, keep_codes=False)
    h, w = small.shape[:2]
    out = (ZOOM * w, ZOOM * h)
    # one worker: this is background work, beside the views' renders
    rendered = render_region(latent, (0, 0, w, h), out, cancel=cancel, keep_table=False, workers=1)
    return np.abs(rendered - bicubic_region(small, (0, 0, w, h), out)).mean(axis=2), scale, ZOOM


def _own_difference(image: np.ndarray, work_pixels: int) -> tuple[np.ndarray, tuple[float, float], int]:
    """|working copy - its bicubic x2 round trip| averaged over channels (no model), as
    _difference says, at the working copy's own scale."""
    small, scale = working_copy(image, work_pixels)
    h, w = small.shape[:2]
    half = imresize(small, out_shape=(max(1, h // 2), max(1, w // 2)))
    back = bicubic_region(half, (0, 0, half.shape[1], half.shape[0]), (w, h))
    return np.abs(small - back).mean(axis=2), scale, 1


@torch.no_grad()
def detail_map(model_or_latent, image: np.ndarray, grid: float = 32, *, work_pixels: int = WORK_PIXELS,
               cancel: Callable[[], bool] | None = None) -> DetailMap:
    """The detail map of `image` (float32 HxWx3 in [0, 1]) for a model (or a Latent: its
    model, and its encoded tiles when it is of this very image, small enough), or None
    for the model-free measure. Cells are `grid` source pixels, or larger where the
    working copy would give a cell fewer than MIN_CELL_WORK pixels. `cancel()` is asked
    while decoding (render.Cancelled is raised)."""
    h, w = image.shape[:2]
    if model_or_latent is None:
        diff, (sx, sy), zoom = _own_difference(image, work_pixels)
    else:
        diff, (sx, sy), zoom = _difference(model_or_latent, image, work_pixels, cancel)
    cell = float(max(grid, MIN_CELL_WORK * max(sx, sy)))
    rows, cols = max(1, math.ceil(h / cell - 1e-9)), max(1, math.ceil(w / cell - 1e-9))
    b = BORDER * zoom if min(diff.shape) > 4 * BORDER * zoom else 0
    weight = np.zeros(diff.shape, np.float32)
    weight[b:diff.shape[0] - b, b:diff.shape[1] - b] = 1
    # box weights from the cells (in difference pixels) onto the difference image
    row_w, r0 = area_weights(0, rows * cell * zoom / sy, rows, diff.shape[0])
    col_w, c0 = area_weights(0, cols * cell * zoom / sx, cols, diff.shape[1])

    def pooled(a: np.ndarray) -> np.ndarray:
        return row_w @ a[r0:r0 + row_w.shape[1], c0:c0 + col_w.shape[1]] @ col_w.T

    values = pooled(diff * weight) / np.maximum(pooled(weight), 1e-9)
    return DetailMap(values.astype(np.float32), cell, (w, h))


def _windows(values: np.ndarray, n_rows: int, n_cols: int) -> tuple[np.ndarray, np.ndarray]:
    """For every n_rows x n_cols window inside `values`: its mean, and a centre-weighted
    mean (weights 1, 2, .., 2, 1 each way) that ranks windows: of the windows around a
    hot cell, the one with the cell in its middle comes first."""
    windows = np.lib.stride_tricks.sliding_window_view(values.astype(np.float64), (n_rows, n_cols))
    wy = np.minimum(np.arange(1, n_rows + 1), np.arange(n_rows, 0, -1)).astype(np.float64)
    wx = np.minimum(np.arange(1, n_cols + 1), np.arange(n_cols, 0, -1)).astype(np.float64)
    weights = np.outer(wy, wx) / (wy.sum() * wx.sum())
    return windows.mean(axis=(2, 3)), np.tensordot(windows, weights, axes=([2, 3], [0, 1]))


def iou(a: Sequence[float], b: Sequence[float]) -> float:
    """Intersection over union of two rectangles (x, y, w, h)."""
    ix = max(0.0, min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = a[2] * a[3] + b[2] * b[3] - inter
    return inter / union if union > 0 else 0.0


def detail_regions(dmap: DetailMap, k: int = 8, cells: int = 3, overlap: float = 0.0,
                   min_share: float = 0.2) -> list[DetailRegion]:
    """The k best windows of `cells` x `cells` cells, best first (ranked by their
    centre-weighted mean detail, scored by the plain mean); greedy non-maximum
    suppression: a window overlapping (IoU > `overlap`; by default sharing any cell) one
    already chosen is skipped, and so is one scoring under `min_share` of the best (a
    photo of sky and one tree suggests the tree, not k patches of sky)."""
    values = dmap.values
    n_rows, n_cols = min(cells, values.shape[0]), min(cells, values.shape[1])
    means, ranks = _windows(values, n_rows, n_cols)
    best = float(means.max()) if means.size else 0.0
    chosen: list[DetailRegion] = []
    for index in np.argsort(-ranks, axis=None, kind="stable"):
        score = float(means.flat[index])
        if len(chosen) >= k or ranks.flat[index] <= 0:
            break
        row, col = divmod(int(index), means.shape[1])
        rect = dmap.cell_rect(row, col, n_rows, n_cols)
        if score >= min_share * best and all(iou(rect, c.rect) <= overlap for c in chosen):
            chosen.append(DetailRegion(rect, score))
    return chosen


def covered(rect: Sequence[float], by: Sequence[float], share: float = 0.5) -> bool:
    """Whether more than `share` of the smaller of the two rectangles is in both."""
    ix = max(0.0, min(rect[0] + rect[2], by[0] + by[2]) - max(rect[0], by[0]))
    iy = max(0.0, min(rect[1] + rect[3], by[1] + by[3]) - max(rect[1], by[1]))
    return ix * iy > share * min(rect[2] * rect[3], by[2] * by[3])


def suggestions(faces: Sequence[DetailRegion], regions: Sequence[DetailRegion]) -> list[DetailRegion]:
    """What the viewer's Details list offers: the faces, then the detail regions that
    are not mostly a face already listed."""
    return list(faces) + [r for r in regions if not any(covered(r.rect, f.rect) for f in faces)]
