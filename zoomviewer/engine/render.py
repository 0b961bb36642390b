"""Viewport rendering: the one place that turns a region of the photo into queries.

Latent (latent.py) the photo's feature map and the decoder's per-code tables, cached.
render_region decodes exactly the pixels of an image-space rectangle at any real scale.
              Pixel (i, j) of a W x H render of region (x, y, w, h) is the query at
              source point (x + (j + 1/2) w/W, y + (i + 1/2) h/H) with cell (h/H, w/W)
              source pixels. Rows and columns are separable, so code indices and
              rel_coords are computed per row and per column; each code's part of the
              decoder (the table, LIIF.md sections 1 and 5) is computed once for the
              codes the region touches, and the queries read it through strided views.
render_sparse the optional deep-zoom approximation: render_region on every step-th
              display pixel, linear in between (off unless asked for; never exports).
render_region_reference  the reference code's method (whole latent unfolded per chunk,
              first layer per query), kept as the baseline for tests and the bench.
"""

from __future__ import annotations

import math
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from collections.abc import Callable
from typing import NamedTuple, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from .latent import Latent, reduced_precision
from .model import ensemble_axis
from .model.liif import stacked_blend_weights
from .model.native import FastKernel, fast_kernel

Region = Sequence[float]  # (x, y, w, h) in source pixels


class Cancelled(Exception):
    """Raised inside a render when its cancel() callback says the result is no longer wanted."""


def _axis(start: float, length: float, n_out: int, n_src: int, device) -> torch.Tensor:
    """Normalised fp32 coordinates of the n_out pixel centres spanning [start, start+length),
    computed as the reference code's make_coord does (first centre + step * i, in fp32), so a
    full render queries bit-identical coordinates."""
    first = -1 + 2 * (start + 0.5 * length / n_out) / n_src
    step = 2 * length / (n_out * n_src)
    return torch.arange(n_out, dtype=torch.float32, device=device) * step + first


def _rel_cell(region: Region, out_size: tuple[int, int], cell_clip: bool,
              cell: tuple[float, float] | None = None) -> tuple[float, float]:
    """rel_cell = cell x (H, W) = 2 x source pixels per output pixel (or per `cell`);
    optionally clipped to its x4 value (LTE/LMF's cell clipping) for larger scales."""
    if cell is None:
        cell = (region[3] / out_size[1], region[2] / out_size[0])
    cy, cx = 2 * float(cell[0]), 2 * float(cell[1])
    if cell_clip:
        cy, cx = max(cy, 0.5), max(cx, 0.5)
    return cy, cx


def _bilinear_axis(coord: torch.Tensor, n: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Indices and weight along one axis of grid_sample(bilinear, border, align_corners=False)."""
    f = ((coord.double() + 1) * n - 1) / 2
    f = f.clamp(0, n - 1)
    i0 = f.floor()
    t = (f - i0).float()
    i0 = i0.long()
    return i0, (i0 + 1).clamp(max=n - 1), t


def _check(region: Region, out_size: tuple[int, int]) -> None:
    x, y, w, h = (float(v) for v in region)
    if not all(math.isfinite(v) for v in (x, y, w, h)) or w <= 0 or h <= 0:
        raise ValueError(f"region {tuple(region)} must have a positive, finite width and height")
    if int(out_size[0]) < 1 or int(out_size[1]) < 1:
        raise ValueError(f"output size {tuple(out_size)} must be at least 1x1")


def render_workers(device: torch.device, fused: bool = False) -> int:
    """Bands decoded at once: one per core the intra-op threads leave free (or one per
    core for the `fused` kernel, which runs outside them). Separate single-threaded
    workers scale on a busy machine where one op split over threads waits on its slowest
    core."""
    if device.type != "cpu":
        return 1
    cores = os.cpu_count() or 1
    return max(1, min(4, cores if fused else cores // max(1, torch.get_num_threads())))


class _Progress:
    """Thread-safe progress over bands of output rows, reported as a fraction of rows."""

    def __init__(self, total: int, report: Callable[[float], None] | None) -> None:
        self.total, self.report = total, report
        self.done: dict[int, float] = {}
        self.lock = threading.Lock()

    def update(self, i0: int, rows: float) -> None:
        if self.report is None:
            return
        with self.lock:
            self.done[i0] = rows
            fraction = sum(self.done.values()) / self.total
        self.report(fraction)


@torch.no_grad()
def render_region(latent: Latent, region: Region, out_size: tuple[int, int], *, chunk: int = 32768,
                  cancel: Callable[[], bool] | None = None, progress: Callable[[float], None] | None = None,
                  cell_clip: bool = False, cell: tuple[float, float] | None = None,
                  table_budget: int = 24_000_000, workers: int | None = None, keep_table: bool = True,
                  fused: bool = True) -> np.ndarray:
    """Decode the W x H display pixels of `region` -> float32 HxWx3 in [0, 1].

    The decoder's per-code table for the codes the region touches comes from the
    latent's table cache (computed once per zoom and shared by every render inside that
    block); a block too big for that cache is done in bands of output rows, each with its
    own table of at most `table_budget` values. Output rows are decoded in bands on
    `workers` threads (default: render_workers), `chunk` queries at a time so the working
    set stays in cache; every pixel's arithmetic is the same whatever the split. The fast
    decoder on the CPU runs as one fused kernel per pixel where it could be built
    (model/native.py), the torch ops otherwise or with `fused=False`.
    `cell` (height, width in source pixels) replaces the output pixel's own size as the
    decoder's cell: the viewer's coarse preview asks with its full pass's cell so that
    both passes share one table. `keep_table=False` (an export's tiles, each used once)
    leaves the table out of the cache.
    """
    _check(region, out_size)
    model, dev = latent.model, latent.device
    x, y, w, h = (float(v) for v in region)
    out_w, out_h = int(out_size[0]), int(out_size[1])
    H, W = latent.height, latent.width
    coord_y, coord_x = _axis(y, h, out_h, H, dev), _axis(x, w, out_w, W, dev)
    ys = ensemble_axis(coord_y, H, model.local_ensemble)
    xs = ensemble_axis(coord_x, W, model.local_ensemble)
    rel_cell = _rel_cell(region, (out_w, out_h), cell_clip, cell)

    fx0 = int(min(int(i.min()) for i, _ in xs))
    fx1 = int(max(int(i.max()) for i, _ in xs)) + 1
    rows_np = [i.cpu().numpy() for i, _ in ys]
    row_lo = np.minimum.reduce(rows_np)
    row_hi = np.maximum.reduce(rows_np)
    fy0, fy1 = int(row_lo[0]), int(row_hi[-1]) + 1
    kernel = fast_kernel(model, dev) if fused else None
    workers = render_workers(dev, kernel is not None) if workers is None else max(1, int(workers))
    table_workers = min(workers, render_workers(dev))
    whole = latent.planes_bytes((fy1 - fy0) * (fx1 - fx0)) <= latent.planes_budget_bytes
    band_rows = fy1 - fy0 if whole else max(1, table_budget // ((fx1 - fx0) * model.table_dim))
    if workers > 1:
        band_rows = min(band_rows, max(1, -(-(fy1 - fy0) // workers)))
    if model.residual:
        by, bx = _bilinear_axis(coord_y, H), _bilinear_axis(coord_x, W)
    bands = []
    i0 = 0
    while i0 < out_h:
        lo = int(row_lo[i0])
        i1 = max(int(np.searchsorted(row_hi, lo + band_rows - 1, side="right")), i0 + 1)
        bands.append((i0, i1, lo, int(row_hi[i1 - 1]) + 1))
        i0 = i1

    if table_workers > 1:
        latent.ensure(fy0, fy1, fx0, fx1, table_workers)
    block = latent.planes(fy0, fy1, fx0, fx1, rel_cell, table_workers, keep_table) if whole else None
    out = np.empty((out_h, out_w, 3), dtype=np.float32)
    tracker = _Progress(out_h, progress)

    threads = torch.get_num_threads()
    if kernel is not None:  # every band reads the same columns
        fused_cols = (np.stack([i.cpu().numpy() - fx0 for i, _ in xs]).astype(np.int32),
                      np.stack([r.cpu().numpy() for _, r in xs]))

    def render_band(band: tuple[int, int, int, int]) -> None:
        i0, i1, by0, by1 = band
        if torch.get_num_threads() != threads:  # a pool thread: same intra-op threads as the caller
            torch.set_num_threads(threads)

        def step(done: float) -> None:
            if cancel is not None and cancel():
                raise Cancelled()
            if done > 0:
                tracker.update(i0, done * (i1 - i0))

        with torch.no_grad(), reduced_precision(dev):  # both are per thread
            if block is not None:
                planes = block[:, by0 - fy0:by1 - fy0]
            else:
                planes = latent.planes(by0, by1, fx0, fx1, rel_cell, keep=False)
            if kernel is not None:
                base = _bilinear_window(latent, by, bx, i0, i1) if model.residual else None
                _decode_band_fused(kernel, planes, ys, fused_cols, i0, i1, by0, chunk, step, base,
                                   torch.from_numpy(out[i0:i1]))
                return
            pred = _decode_band(model, planes, ys, xs, i0, i1, by0, fx0, chunk, step)
            if model.residual:
                pred += _bilinear_rows(*_bilinear_window(latent, by, bx, i0, i1))
            out[i0:i1] = (pred * 0.5 + 0.5).clamp_(0, 1).cpu().numpy()

    if workers > 1 and len(bands) > 1:
        with ThreadPoolExecutor(min(workers, len(bands))) as pool:
            for _ in pool.map(render_band, bands):
                pass
    else:
        for band in bands:
            render_band(band)
    return out


def deep_zoom_step(scale: float) -> int:
    """Display pixels per decoded sample, each way, for render_sparse: at least six
    samples per source pixel (so from x12), at most every 4th pixel."""
    return max(1, min(4, int(scale // 6)))


@torch.no_grad()
def render_sparse(latent: Latent, region: Region, out_size: tuple[int, int], step: int,
                  origin: tuple[int, int] = (0, 0), **kw) -> np.ndarray:
    """An optional approximation of render_region for deep zoom: the decoder runs at
    every `step`-th display pixel each way (with the display pixel's cell) and the
    pixels between are filled in linearly. `origin`: the global index (x, y) of the
    region's first pixel; samples sit on the global grid of every step-th pixel, so
    renders of neighbouring tiles meet without a seam. One sample beyond each edge keeps
    the edges interpolated, not extrapolated. step 1 is render_region itself."""
    if step <= 1:
        return render_region(latent, region, out_size, **kw)
    _check(region, out_size)
    x, y, w, h = (float(v) for v in region)
    out_w, out_h = int(out_size[0]), int(out_size[1])
    pw, ph = w / out_w, h / out_h
    # sample k covers global pixels [step k, step k + step); the first one used is k0
    kx0, ky0 = origin[0] // step - 1, origin[1] // step - 1
    nx = -(-(origin[0] + out_w) // step) - kx0 + 1
    ny = -(-(origin[1] + out_h) // step) - ky0 + 1
    sx, sy = step * kx0 - origin[0], step * ky0 - origin[1]   # the first sample's first pixel, locally
    low_region = (x + sx * pw, y + sy * ph, nx * step * pw, ny * step * ph)
    kw.setdefault("cell", (ph, pw))
    low = torch.from_numpy(render_region(latent, low_region, (nx, ny), **kw))

    def axis(n: int, first: int, k0: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        u = (torch.arange(first, first + n, dtype=torch.float64) + 0.5) / step - 0.5 - k0
        i0 = u.floor()
        return i0.long(), i0.long() + 1, (u - i0).float()

    (y0, y1, ty), (x0, x1, tx) = axis(out_h, origin[1], ky0), axis(out_w, origin[0], kx0)
    rows = torch.lerp(low.index_select(0, y0), low.index_select(0, y1), ty[:, None, None])
    return torch.lerp(rows.index_select(1, x0), rows.index_select(1, x1), tx[None, :, None]).numpy()


class AxisBlock(NamedTuple):
    """Output positions along one axis of a band, grouped into pieces of equal length
    that each use one code per ensemble member."""
    index: np.ndarray          # (G, L) output positions (relative to the band)
    codes: np.ndarray          # (members, G) code index of each piece, per member
    rel: torch.Tensor          # (members, G, L) rel_coord of each position, per member


def _axis_blocks(codes: list[np.ndarray], rels: list[torch.Tensor], min_pieces: int = 4) -> list[AxisBlock]:
    """Split one axis into pieces where every member keeps its code. Each stretch of at
    least `min_pieces` segments whose codes all step by one becomes a block, its segments
    cut to the shortest inner segment length L (so its codes are a slice of the table:
    no gather); every other position becomes a piece of length 1 (codes gathered)."""
    n = len(codes[0])
    change = np.zeros(n, dtype=bool)
    change[0] = True
    for c in codes:
        change[1:] |= c[1:] != c[:-1]
    starts = np.flatnonzero(change)
    lengths = np.diff(np.r_[starts, n])
    steps = np.ones(len(starts) - 1, dtype=bool)
    for c in codes:
        steps &= np.diff(c[starts]) == 1
    breaks = np.r_[0, np.flatnonzero(~steps) + 1, len(starts)]
    taken = np.zeros(n, dtype=bool)
    indices = []
    for k0, k1 in zip(breaks[:-1], breaks[1:]):
        if k1 - k0 < min(min_pieces, len(starts)):
            continue
        inner = lengths[k0 + 1:k1 - 1] if k1 - k0 > 2 else lengths[k0:k1]
        length = int(inner.min())
        while k1 - k0 > 1 and lengths[k0] < length:  # a short first or last segment (the view's edge)
            k0 += 1
        while k1 - k0 > 1 and lengths[k1 - 1] < length:
            k1 -= 1
        length = min(length, int(lengths[k0:k1].min()))
        index = starts[k0:k1, None] + np.arange(length)[None, :]
        taken[index.ravel()] = True
        indices.append(index)
    rest = np.flatnonzero(~taken)
    if len(rest):
        indices.append(rest[:, None])
    rel = torch.stack(rels)
    return [AxisBlock(index, np.stack([c[index[:, 0]] for c in codes]),
                      rel.index_select(1, torch.from_numpy(index.ravel()).to(rel.device)).view(len(rels), *index.shape))
            for index in indices]


def _member_table(planes: torch.Tensor, rows: np.ndarray, cols: np.ndarray) -> torch.Tensor:
    """planes (P, h, w, K), the table stored part by part; rows (A, g) and cols (B, c), the
    code rows and columns of each member -> their codes as (A, B, g, 1, 1, c, P, K).
    Along an axis where each member's codes are consecutive and the members a fixed
    number of codes apart (the main block), that is a strided view: nothing is copied."""
    def strided(codes: np.ndarray) -> bool:
        offsets = codes - codes[:1]
        return bool((np.diff(codes[0]) == 1).all() and (offsets == offsets[:, :1]).all())

    def pick(t: torch.Tensor, dim: int, codes: np.ndarray) -> torch.Tensor:
        """t with dimension `dim` replaced by (members, pieces), as a view."""
        size, stride = list(t.shape), list(t.stride())
        size[dim:dim + 1] = codes.shape
        stride[dim:dim + 1] = [int(codes[-1, 0] - codes[0, 0]) * stride[dim], stride[dim]]
        return t.as_strided(size, stride, t.storage_offset() + int(codes[0, 0]) * t.stride(dim))

    if strided(rows) and strided(cols):
        picked = pick(pick(planes, 1, rows), 3, cols)              # (P, A, g, B, c, K)
    else:  # a gather of exactly the codes used (a view of the planes cannot be index_selected without a full copy)
        r = torch.from_numpy(rows.ravel()).to(planes.device)
        q = torch.from_numpy(cols.ravel()).to(planes.device)
        picked = torch.ops.aten.index.Tensor(planes, [None, r[:, None], q[None, :]])
        picked = picked.view(planes.shape[0], *rows.shape, *cols.shape, planes.shape[3])
    return picked.permute(1, 3, 2, 4, 0, 5)[:, :, :, None, None]


def _decode_band(model, planes: torch.Tensor, ys, xs, i0: int, i1: int, fy0: int, fx0: int,
                 chunk: int, step: Callable[[float], None]) -> torch.Tensor:
    """Blend of the ensemble members' predictions for output rows i0:i1 -> (R, W, 3).

    Rows and columns are grouped into pieces that share each member's code (AxisBlock).
    A chunk is laid out (member y, member x, row piece, row in piece, column in piece,
    column piece, K): the codes are a strided view of the table (contiguous in the last
    two dimensions, broadcast over the positions within a piece), so no query gathers
    its codes, and all members run in the same few large operations. The members' last
    hidden layers are blended and the output layer is applied once. `chunk` bounds the
    queries (pixels x members) of one chunk.
    """
    dev = planes.device
    n_rows, n_cols = i1 - i0, xs[0][0].shape[0]
    row_blocks = _axis_blocks([i[i0:i1].cpu().numpy() - fy0 for i, _ in ys], [r[i0:i1] for _, r in ys])
    col_blocks = _axis_blocks([i.cpu().numpy() - fx0 for i, _ in xs], [r for _, r in xs])
    pixels = max(1, chunk // (len(ys) * len(xs)))
    out = torch.empty(n_rows, n_cols, 3, device=dev)
    pieces = []
    for rb in row_blocks:
        for cb in col_blocks:
            g_n, l_n = rb.index.shape
            c_n, m_n = cb.index.shape
            per_c = max(1, min(c_n, pixels // max(1, l_n * m_n)))
            per_g = max(1, pixels // (l_n * per_c * m_n))
            pieces += [(rb, cb, g0, min(g0 + per_g, g_n), c0, min(c0 + per_c, c_n))
                       for g0 in range(0, g_n, per_g) for c0 in range(0, c_n, per_c)]
    total = sum((g1 - g0) * rb.index.shape[1] * (c1 - c0) * cb.index.shape[1] for rb, cb, g0, g1, c0, c1 in pieces)
    done = 0
    step(0.0)
    for rb, cb, g0, g1, c0, c1 in pieces:
        ry = rb.rel[:, None, g0:g1, :, None, None]                      # (A, 1, g, L, 1, 1)
        rx = cb.rel[None, :, c0:c1].transpose(2, 3)[:, :, None, None]   # (1, B, 1, 1, M, c)
        codes = _member_table(planes, rb.codes[:, g0:g1], cb.codes[:, c0:c1])
        h = model.decode_hidden(codes, ry[..., None], rx[..., None])    # (A, B, g, L, M, c, K)
        h.mul_(stacked_blend_weights(ry, rx)[..., None])
        pred = model.project(h.sum((0, 1))).float()                    # (g, L, M, c, 3)
        rows = torch.from_numpy(rb.index[g0:g1]).to(dev)
        cols = torch.from_numpy(cb.index[c0:c1].T.copy()).to(dev)
        # index_put_ rather than indexing syntax: the latter holds the GIL, and tiles render on parallel threads
        out.index_put_((rows[:, :, None, None], cols[None, None]), pred)
        done += rows.numel() * cols.numel()
        step(done / total)
    return out


def _decode_band_fused(kernel: FastKernel, planes: torch.Tensor, ys, cols: tuple[np.ndarray, np.ndarray],
                       i0: int, i1: int, fy0: int, chunk: int, step: Callable[[float], None], base,
                       out: torch.Tensor) -> None:
    """Output rows i0:i1 through the fused kernel (model/native.py), written into `out`
    (R, W, 3) in [0, 1]: the same blend of the ensemble members' predictions as
    _decode_band, plus the residual `base` (_bilinear_window) when given. `cols`: each
    x-member's code index into the planes and rel_coord, (B, W) each. `chunk` pixels
    (rounded to whole rows) between cancel checks."""
    n_rows, n_cols = i1 - i0, cols[0].shape[1]
    row_code = np.stack([i[i0:i1].cpu().numpy() - fy0 for i, _ in ys]).astype(np.int32)
    row_rel = np.stack([r[i0:i1].cpu().numpy() for _, r in ys])
    if base is not None:
        base = (base[0].contiguous(), *base[1:])  # the kernel reads the source row by row
    per = max(1, chunk // n_cols)
    step(0.0)
    for r0 in range(0, n_rows, per):
        r1 = min(n_rows, r0 + per)
        rows_base = None if base is None else (base[0], base[1][:, r0:r1], base[2][r0:r1], base[3], base[4])
        kernel.decode(planes, row_code[:, r0:r1], row_rel[:, r0:r1], *cols, out[r0:r1], rows_base)
        step(r1 / n_rows)


def _bilinear_window(latent: Latent, by, bx, r0: int, r1: int):
    """The residual option's base for rows r0:r1, what to blend -> (source window
    (3, h, w), source rows (2, R) and columns (2, W) in the window, row weights (R,),
    column weights (W,)): each output pixel lies between two source rows and columns."""
    y0, y1, ty = by[0][r0:r1], by[1][r0:r1], by[2][r0:r1]
    x0, x1, tx = bx
    lo, hi = int(y0.min()), int(y1.max()) + 1
    xl, xh = int(x0.min()), int(x1.max()) + 1
    return latent.source(lo, hi, xl, xh), torch.stack((y0, y1)) - lo, ty, torch.stack((x0, x1)) - xl, tx


def _bilinear_rows(src: torch.Tensor, y: torch.Tensor, ty: torch.Tensor, x: torch.Tensor,
                   tx: torch.Tensor) -> torch.Tensor:
    """The residual option's base, blended from _bilinear_window -> (R, W, 3). Separable:
    source rows first (few columns), then columns (full width)."""
    src = src.permute(1, 2, 0)
    rows = torch.lerp(src.index_select(0, y[0]), src.index_select(0, y[1]), ty[:, None, None])
    return torch.lerp(rows.index_select(1, x[0]), rows.index_select(1, x[1]), tx[None, :, None])


@torch.no_grad()
def render_region_reference(latent: Latent, region: Region, out_size: tuple[int, int], *,
                            chunk: int = 30000, cell_clip: bool = False) -> np.ndarray:
    """The reference code's way: the photo's whole latent unfolded for every chunk of
    30 000 queries, nearest codes by grid_sample, the full decoder per query."""
    _check(region, out_size)
    model, dev = latent.model, latent.device
    x, y, w, h = (float(v) for v in region)
    out_w, out_h = int(out_size[0]), int(out_size[1])
    H, W = latent.height, latent.width
    feat = latent.encode_all()[None]
    cy, cx = _rel_cell(region, (out_w, out_h), cell_clip)
    gy, gx = torch.meshgrid(_axis(y, h, out_h, H, dev), _axis(x, w, out_w, W, dev), indexing="ij")
    coord = torch.stack((gy, gx), -1).reshape(-1, 2)
    shifts = [-1.0, 1.0] if model.local_ensemble else [0.0]
    eps = 1e-6 if model.local_ensemble else 0.0
    rel_cell = torch.tensor([cy, cx], device=dev)
    preds = []
    for s in range(0, coord.shape[0], chunk):
        q = coord[s:s + chunk]
        unfolded = F.unfold(feat, 3, padding=1).view(1, -1, H, W) if model.feat_unfold else feat
        outs, areas = [], []
        for vy in shifts:
            for vx in shifts:
                qs = q.clone()
                qs[:, 0] += vy / H + eps
                qs[:, 1] += vx / W + eps
                qs.clamp_(-1 + 1e-6, 1 - 1e-6)
                grid = qs.flip(-1)[None, None]
                q_feat = F.grid_sample(unfolded, grid, mode="nearest", align_corners=False)[0, :, 0].t()
                iy = torch.round(((qs[:, 0] + 1) * H - 1) / 2)
                ix = torch.round(((qs[:, 1] + 1) * W - 1) / 2)
                rel = torch.stack(((q[:, 0] - ((-1 + 1 / H) + (2 / H) * iy)) * H,
                                   (q[:, 1] - ((-1 + 1 / W) + (2 / W) * ix)) * W), -1)
                outs.append(model.plain_decode(q_feat, rel, rel_cell.expand(q.shape[0], 2)))
                areas.append((rel[:, 0] * rel[:, 1]).abs() + 1e-9)
        if len(outs) == 4:
            total = sum(areas)
            pred = sum(o * (areas[3 - k] / total)[:, None] for k, o in enumerate(outs))
        else:
            pred = outs[0]
        if model.residual:
            inp = latent.source(0, H, 0, W)[None]
            grid = q.flip(-1)[None, None]
            pred = pred + F.grid_sample(inp, grid, mode="bilinear", padding_mode="border",
                                        align_corners=False)[0, :, 0].t()
        preds.append(pred)
    rgb = (torch.cat(preds) * 0.5 + 0.5).clamp(0, 1)
    return rgb.reshape(out_h, out_w, 3).cpu().numpy()
