"""render_region: the public call that decodes exactly the display pixels of a region,
its planning (query coordinates, ensemble members, the block of codes, bands of output
rows) and its execution (bands on worker threads, each through the fused kernel or the
torch ops)."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import NamedTuple

import numpy as np
import torch

from ..latent import Latent
from ..model import ensemble_axis, reduced_precision
from ..model.native import FastKernel, fast_kernel
from .coords import Region, check_region, pixel_coords, rel_cell
from .fused import decode_band_fused, fused_columns
from .residual import bilinear_axis, bilinear_rows, bilinear_window
from .torch_decode import decode_band

Band = tuple[int, int, int, int]  # output rows [i0, i1) and the code rows [lo, hi) they read


class Cancelled(Exception):
    """Raised inside a render when its cancel() callback says the result is no longer wanted."""


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

    def band_step(self, band: Band, cancel: Callable[[], bool] | None) -> Callable[[float], None]:
        """What a band's decoder calls between chunks with its fraction done: raises
        Cancelled when `cancel()` says so, else reports the band's progress."""
        i0, i1 = band[0], band[1]

        def step(done: float) -> None:
            if cancel is not None and cancel():
                raise Cancelled()
            if done > 0:
                self.update(i0, done * (i1 - i0))
        return step


class _Plan(NamedTuple):
    """What a render decodes, worked out before any decoding."""
    ys: list                    # each y-member's (code index, rel_coord) per output row
    xs: list                    # each x-member's (code index, rel_coord) per output column
    rel_cell: tuple[float, float]
    codes: tuple[int, int, int, int]    # (y0, y1, x0, x1): the block of codes the region reads
    whole: bool                 # the block's code table fits the latent's cache: one table for every band
    bands: list[Band]
    kernel: FastKernel | None   # the fused kernel, or None for the torch ops
    workers: int                # bands decoded at once
    table_workers: int          # threads computing the code table
    residual: tuple | None      # the bilinear base's (rows, columns), with the residual option
    fused_cols: tuple | None    # the kernel's column arrays (fused.fused_columns)


class _Members(NamedTuple):
    """The queries of a render along each axis and the codes their members read."""
    coord_y: torch.Tensor       # normalised coordinates of the output rows
    coord_x: torch.Tensor       # ... and columns
    ys: list                    # each y-member's (code index, rel_coord) per output row
    xs: list                    # each x-member's (code index, rel_coord) per output column
    row_lo: np.ndarray          # per output row, the first and last code row its members read
    row_hi: np.ndarray
    codes: tuple[int, int, int, int]    # (y0, y1, x0, x1): the block of codes the region reads


def _members(latent: Latent, region: Region, out_size: tuple[int, int]) -> _Members:
    x, y, w, h = (float(v) for v in region)
    out_w, out_h = int(out_size[0]), int(out_size[1])
    H, W = latent.height, latent.width
    coord_y, coord_x = pixel_coords(y, h, out_h, H, latent.device), pixel_coords(x, w, out_w, W, latent.device)
    ys = ensemble_axis(coord_y, H, latent.model.local_ensemble)
    xs = ensemble_axis(coord_x, W, latent.model.local_ensemble)
    fx0 = int(min(int(i.min()) for i, _ in xs))
    fx1 = int(max(int(i.max()) for i, _ in xs)) + 1
    rows_np = [i.cpu().numpy() for i, _ in ys]
    row_lo, row_hi = np.minimum.reduce(rows_np), np.maximum.reduce(rows_np)
    return _Members(coord_y, coord_x, ys, xs, row_lo, row_hi, (int(row_lo[0]), int(row_hi[-1]) + 1, fx0, fx1))


def codes_read(latent: Latent, region: Region, out_size: tuple[int, int],
               keep_table: bool = True) -> tuple[int, int, int, int]:
    """The block of codes (y0, y1, x0, x1) whose latent tiles render_region(latent,
    region, out_size, keep_table=...) reads: every ensemble member of every output pixel,
    and the margin a kept code table adds (the viewer encodes it ahead)."""
    check_region(region, out_size)
    codes = _members(latent, region, out_size).codes
    return latent.kept_block(*codes) if keep_table else codes


def _plan(latent: Latent, region: Region, out_size: tuple[int, int], cell_clip: bool,
          cell: tuple[float, float] | None, table_budget: int, workers: int | None, fused: bool) -> _Plan:
    model, dev = latent.model, latent.device
    H, W = latent.height, latent.width
    coord_y, coord_x, ys, xs, row_lo, row_hi, (fy0, fy1, fx0, fx1) = _members(latent, region, out_size)
    kernel = fast_kernel(model, dev) if fused else None
    workers = render_workers(dev, kernel is not None) if workers is None else max(1, int(workers))
    whole = latent.table_bytes((fy1 - fy0) * (fx1 - fx0)) <= latent.table_budget_bytes
    band_rows = fy1 - fy0 if whole else max(1, table_budget // ((fx1 - fx0) * model.table_dim))
    if workers > 1:
        band_rows = min(band_rows, max(1, -(-(fy1 - fy0) // workers)))
    cell_used = rel_cell(region, (int(out_size[0]), int(out_size[1])), cell_clip, cell)
    return _Plan(ys, xs, cell_used, (fy0, fy1, fx0, fx1), whole,
                 _bands(row_lo, row_hi, band_rows), kernel, workers, min(workers, render_workers(dev)),
                 (bilinear_axis(coord_y, H), bilinear_axis(coord_x, W)) if model.residual else None,
                 fused_columns(xs, fx0) if kernel is not None else None)


def _bands(row_lo: np.ndarray, row_hi: np.ndarray, band_rows: int) -> list[Band]:
    """Consecutive bands of output rows, each reading at most `band_rows` code rows (or
    one output row, where a single row reads more)."""
    bands = []
    i0 = 0
    while i0 < len(row_lo):
        lo = int(row_lo[i0])
        i1 = max(int(np.searchsorted(row_hi, lo + band_rows - 1, side="right")), i0 + 1)
        bands.append((i0, i1, lo, int(row_hi[i1 - 1]) + 1))
        i0 = i1
    return bands


@torch.no_grad()
def render_region(latent: Latent, region: Region, out_size: tuple[int, int], *, chunk: int = 32768,
                  cancel: Callable[[], bool] | None = None, progress: Callable[[float], None] | None = None,
                  cell_clip: bool = False, cell: tuple[float, float] | None = None,
                  table_budget: int = 24_000_000, workers: int | None = None, keep_table: bool = True,
                  fused: bool = True) -> np.ndarray:
    """Decode the W x H display pixels of `region` -> float32 HxWx3 in [0, 1].

    The code table for the codes the region touches comes from the latent's table cache
    (computed once per zoom and shared by every render inside that block); a block too
    big for that cache is done in bands of output rows, each with its own table of at
    most `table_budget` values. Output rows are decoded in bands on `workers` threads
    (default: render_workers), `chunk` queries at a time so the working set stays in
    cache; every pixel's arithmetic is the same whatever the split. The fast decoder on
    the CPU runs as one fused kernel per pixel where it could be built (model/native.py),
    the torch ops otherwise or with `fused=False`. `cancel()` is asked between chunks
    (True: Cancelled is raised); `progress(fraction of rows done)` is told.
    `cell` (height, width in source pixels) replaces the output pixel's own size as the
    decoder's cell: the viewer's coarse preview asks with its full pass's cell so that
    both passes share one table. `keep_table=False` (an export's tiles, each used once)
    leaves the table out of the cache.
    """
    check_region(region, out_size)
    plan = _plan(latent, region, out_size, cell_clip, cell, table_budget, workers, fused)
    fy0, fy1, fx0, fx1 = plan.codes
    latent.ensure(fy0, fy1, fx0, fx1)   # all its missing tiles in bands, before any band's table
    table = latent.table(fy0, fy1, fx0, fx1, plan.rel_cell, plan.table_workers, keep_table) if plan.whole else None
    out = np.empty((int(out_size[1]), int(out_size[0]), 3), dtype=np.float32)
    tracker = _Progress(out.shape[0], progress)
    threads = torch.get_num_threads()

    def run(band: Band) -> None:
        if torch.get_num_threads() != threads:  # a pool thread: same intra-op threads as the caller
            torch.set_num_threads(threads)
        _render_band(latent, plan, table, band, chunk, tracker.band_step(band, cancel), out)

    if plan.workers > 1 and len(plan.bands) > 1:
        with ThreadPoolExecutor(min(plan.workers, len(plan.bands))) as pool:
            for _ in pool.map(run, plan.bands):
                pass
    else:
        for band in plan.bands:
            run(band)
    return out


def _render_band(latent: Latent, plan: _Plan, table: torch.Tensor | None, band: Band, chunk: int,
                 step: Callable[[float], None], out: np.ndarray) -> None:
    """Decode one band's output rows into `out`, reading `table` (the whole block's code
    table) or, without it, computing the band's own."""
    i0, i1, by0, by1 = band
    fy0, _, fx0, fx1 = plan.codes
    with torch.no_grad(), reduced_precision(latent.device, latent.model):  # both are per thread
        if table is not None:
            band_table = table[:, by0 - fy0:by1 - fy0]
        else:
            band_table = latent.table(by0, by1, fx0, fx1, plan.rel_cell, keep=False)
        if plan.kernel is not None:
            base = bilinear_window(latent, *plan.residual, i0, i1) if plan.residual is not None else None
            decode_band_fused(plan.kernel, band_table, plan.ys, plan.fused_cols, i0, i1, by0, chunk, step, base,
                              torch.from_numpy(out[i0:i1]))
            return
        pred = decode_band(latent.model, band_table, plan.ys, plan.xs, i0, i1, by0, fx0, chunk, step)
        if plan.residual is not None:
            pred += bilinear_rows(*bilinear_window(latent, *plan.residual, i0, i1))
        out[i0:i1] = (pred * 0.5 + 0.5).clamp_(0, 1).cpu().numpy()
