"""Viewport rendering: the one place that turns a region of the photo into queries.

Latent        the photo's feature map, encoded lazily in tiles (with a halo of the
              encoder's receptive radius, so tiles equal the whole-image encoding) and
              kept in an LRU under a memory budget, on the compute device.
render_region decodes exactly the pixels of an image-space rectangle at any real scale.
              Pixel (i, j) of a W x H render of region (x, y, w, h) is the query at
              source point (x + (j + 1/2) w/W, y + (i + 1/2) h/H) with cell (h/H, w/W)
              source pixels. Rows and columns are separable, so code indices and
              rel_coords are computed per row and per column; the latent is cropped to
              the rows a band of output needs, and each code's first layer is
              precomputed once (LIIF.md section 1).
render_region_reference  the reference code's method (whole latent unfolded per chunk,
              first layer per query), kept as the baseline for tests and the bench.
"""

from __future__ import annotations

import math
import os
import threading
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from collections.abc import Callable
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from .model import blend_weights, ensemble_axis, pick_device

Region = Sequence[float]  # (x, y, w, h) in source pixels


class Cancelled(Exception):
    """Raised inside a render when its cancel() callback says the result is no longer wanted."""


class Latent:
    """The feature map of one photo, encoded on demand, tile by tile.

    `image` is float32 HxWx3 in [0, 1]; it is referenced, not copied (the caller keeps it
    unchanged). Each tile keeps the latent codes and the decoder's zoom-independent
    first-layer term (`code_features`), so a new zoom or pan over cached tiles costs only
    the decoder. Tiles live on `device`; least recently used ones are dropped beyond
    `budget_mb`.
    """

    def __init__(self, model: torch.nn.Module, image: np.ndarray, device: torch.device | str | None = None,
                 tile: int = 256, budget_mb: float = 1536) -> None:
        if image.ndim != 3 or image.shape[2] != 3:
            raise ValueError("the image must be an HxWx3 array")
        self.device = pick_device(None) if device is None else torch.device(device)
        # channels-last convolutions run the encoder ~1.5x faster on CPU (oneDNN) and suit cuDNN
        self.model = model.to(self.device).eval().to(memory_format=torch.channels_last)
        self.image = image
        self.height, self.width = image.shape[:2]
        self.tile = int(tile)
        # one more than the receptive radius: the first layer's 3x3 reads one code further
        self.halo = int(model.encoder.receptive_radius) + 1
        self.channels = int(model.encoder.out_dim)
        # fp32 codes and first-layer term per tile (edge tiles are counted as full ones)
        self.tile_bytes = (self.channels + int(model.code_features_dim)) * 4 * self.tile ** 2
        self.budget_bytes = int(budget_mb * 2**20)
        self._tiles: OrderedDict[tuple[int, int], tuple[torch.Tensor, torch.Tensor]] = OrderedDict()
        # render workers share the cache: one encoding per tile, the others wait for it
        self._lock = threading.Lock()
        self._pending: dict[tuple[int, int], threading.Event] = {}
        self.tiles_encoded = 0  # how many tile encodings ran (re-encodes after eviction count again)

    @property
    def tiles_cached(self) -> int:
        return len(self._tiles)

    def source(self, y0: int, y1: int, x0: int, x1: int) -> torch.Tensor:
        """Normalised source pixels (3, y1-y0, x1-x0) on the device."""
        crop = np.ascontiguousarray(self.image[y0:y1, x0:x1])
        t = torch.from_numpy(crop).to(self.device, torch.float32).permute(2, 0, 1)
        return (t - 0.5) / 0.5

    @torch.no_grad()
    def _encode_tile(self, ty: int, tx: int) -> tuple[torch.Tensor, torch.Tensor]:
        t, r = self.tile, self.halo
        y0, x0 = ty * t, tx * t
        y1, x1 = min(y0 + t, self.height), min(x0 + t, self.width)
        cy0, cx0 = max(y0 - r, 0), max(x0 - r, 0)
        cy1, cx1 = min(y1 + r, self.height), min(x1 + r, self.width)
        feat = self.model.encoder(self.source(cy0, cy1, cx0, cx1)[None].contiguous(memory_format=torch.channels_last))
        pre = self.model.code_features(feat)[0]
        inner = (slice(None), slice(y0 - cy0, y1 - cy0), slice(x0 - cx0, x1 - cx0))
        return feat[0][inner].contiguous(), pre[inner].permute(1, 2, 0).contiguous()

    def _tile(self, ty: int, tx: int) -> tuple[torch.Tensor, torch.Tensor]:
        key = (ty, tx)
        while True:
            with self._lock:
                if key in self._tiles:
                    self._tiles.move_to_end(key)
                    return self._tiles[key]
                ready = self._pending.get(key)
                if ready is None:
                    ready = self._pending[key] = threading.Event()
                    break
            ready.wait()  # another worker is encoding it; then look again
        try:
            entry = self._encode_tile(ty, tx)
            with self._lock:
                self.tiles_encoded += 1
                self._tiles[key] = entry
                while len(self._tiles) > 1 and len(self._tiles) * self.tile_bytes > self.budget_bytes:
                    self._tiles.popitem(last=False)
        finally:
            with self._lock:
                del self._pending[key]
            ready.set()
        return entry

    def _tile_keys(self, y0: int, y1: int, x0: int, x1: int) -> list[tuple[int, int]]:
        t = self.tile
        return [(ty, tx) for ty in range(y0 // t, (y1 - 1) // t + 1) for tx in range(x0 // t, (x1 - 1) // t + 1)]

    def _assemble(self, y0: int, y1: int, x0: int, x1: int, which: int) -> torch.Tensor:
        if not (0 <= y0 < y1 <= self.height and 0 <= x0 < x1 <= self.width):
            raise ValueError(f"block {(y0, y1, x0, x1)} outside the {self.height}x{self.width} latent")
        t = self.tile
        out = None
        for ty, tx in self._tile_keys(y0, y1, x0, x1):
            part = self._tile(ty, tx)[which]
            if which == 0:
                part = part.permute(1, 2, 0)  # features are stored (C, h, w)
            if out is None:
                out = torch.empty(y1 - y0, x1 - x0, part.shape[2], device=self.device)
            ay0, ay1 = max(y0, ty * t), min(y1, ty * t + part.shape[0])
            ax0, ax1 = max(x0, tx * t), min(x1, tx * t + part.shape[1])
            out[ay0 - y0:ay1 - y0, ax0 - x0:ax1 - x0] = part[ay0 - ty * t:ay1 - ty * t,
                                                           ax0 - tx * t:ax1 - tx * t]
        return out

    def ensure(self, y0: int, y1: int, x0: int, x1: int, workers: int) -> None:
        """Encode the missing tiles of a block, `workers` at a time (each on its own thread)."""
        keys = [key for key in self._tile_keys(y0, y1, x0, x1) if key not in self._tiles]
        if workers > 1 and 1 < len(keys) <= self.budget_bytes // (2 * self.tile_bytes):
            with ThreadPoolExecutor(min(workers, len(keys))) as pool:
                for _ in pool.map(lambda key: self._tile(*key), keys):
                    pass

    def features(self, y0: int, y1: int, x0: int, x1: int) -> torch.Tensor:
        """Latent codes (C, y1-y0, x1-x0) for an in-bounds block, encoding missing tiles."""
        return self._assemble(y0, y1, x0, x1, 0).permute(2, 0, 1)

    def code_features(self, y0: int, y1: int, x0: int, x1: int) -> torch.Tensor:
        """The decoder's first-layer feature term (y1-y0, x1-x0, D) for an in-bounds block;
        equal to model.code_features of the whole latent, cropped."""
        return self._assemble(y0, y1, x0, x1, 1)

    def encode_all(self) -> torch.Tensor:
        return self.features(0, self.height, 0, self.width)


def _axis(start: float, length: float, n_out: int, n_src: int, device) -> torch.Tensor:
    """Normalised fp32 coordinates of the n_out pixel centres spanning [start, start+length),
    computed as the reference code's make_coord does (first centre + step * i, in fp32), so a
    full render queries bit-identical coordinates."""
    first = -1 + 2 * (start + 0.5 * length / n_out) / n_src
    step = 2 * length / (n_out * n_src)
    return torch.arange(n_out, dtype=torch.float32, device=device) * step + first


def _rel_cell(region: Region, out_size: tuple[int, int], cell_clip: bool) -> tuple[float, float]:
    """rel_cell = cell x (H, W) = 2 x source pixels per output pixel; optionally clipped
    to its x4 value (LTE/LMF's cell clipping) for larger scales."""
    cy, cx = 2 * region[3] / out_size[1], 2 * region[2] / out_size[0]
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


def render_workers(device: torch.device) -> int:
    """Bands decoded at once: one per core the intra-op threads leave free. Separate
    single-threaded workers scale on a busy machine where one op split over threads
    waits on its slowest core."""
    if device.type != "cpu":
        return 1
    return max(1, min(4, (os.cpu_count() or 1) // max(1, torch.get_num_threads())))


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
def render_region(latent: Latent, region: Region, out_size: tuple[int, int], *, chunk: int = 16384,
                  cancel: Callable[[], bool] | None = None, progress: Callable[[float], None] | None = None,
                  cell_clip: bool = False, table_budget: int = 24_000_000, workers: int | None = None) -> np.ndarray:
    """Decode the W x H display pixels of `region` -> float32 HxWx3 in [0, 1].

    Output rows are processed in bands; each band crops the latent's cached first-layer
    term to the code rows its queries touch and builds the per-code table once. Within
    a band, each ensemble member's output rows fall into runs that share one code row;
    a run is decoded with that code row broadcast over it (no per-query gather), `chunk`
    queries at a time so the working set stays in cache. Bands run on `workers` threads
    (default: render_workers); every pixel's arithmetic is the same whatever the split.
    """
    _check(region, out_size)
    model, dev = latent.model, latent.device
    x, y, w, h = (float(v) for v in region)
    out_w, out_h = int(out_size[0]), int(out_size[1])
    H, W = latent.height, latent.width
    coord_y, coord_x = _axis(y, h, out_h, H, dev), _axis(x, w, out_w, W, dev)
    ys = ensemble_axis(coord_y, H, model.local_ensemble)
    xs = ensemble_axis(coord_x, W, model.local_ensemble)
    cy, cx = _rel_cell(region, (out_w, out_h), cell_clip)
    rel_cell = torch.tensor([[cy, cx]], device=dev)

    fx0 = int(min(int(i.min()) for i, _ in xs))
    fx1 = int(max(int(i.max()) for i, _ in xs)) + 1
    rows_np = [i.cpu().numpy() for i, _ in ys]
    row_lo = np.minimum.reduce(rows_np)
    row_hi = np.maximum.reduce(rows_np)
    workers = render_workers(dev) if workers is None else max(1, int(workers))
    band_rows = max(1, table_budget // ((fx1 - fx0) * model.table_dim))
    if workers > 1:
        band_rows = min(band_rows, max(1, -(-int(row_hi[-1] - row_lo[0] + 1) // workers)))
    if model.residual:
        by, bx = _bilinear_axis(coord_y, H), _bilinear_axis(coord_x, W)
    bands = []
    i0 = 0
    while i0 < out_h:
        lo = int(row_lo[i0])
        i1 = max(int(np.searchsorted(row_hi, lo + band_rows - 1, side="right")), i0 + 1)
        bands.append((i0, i1, lo, int(row_hi[i1 - 1]) + 1))
        i0 = i1

    if workers > 1:
        latent.ensure(int(row_lo[0]), int(row_hi[-1]) + 1, fx0, fx1, workers)
    out = np.empty((out_h, out_w, 3), dtype=np.float32)
    tracker = _Progress(out_h, progress)

    threads = torch.get_num_threads()

    def render_band(band: tuple[int, int, int, int]) -> None:
        i0, i1, fy0, fy1 = band
        if torch.get_num_threads() != threads:  # a pool thread: same intra-op threads as the caller
            torch.set_num_threads(threads)

        def step(done: float) -> None:
            if cancel is not None and cancel():
                raise Cancelled()
            if done > 0:
                tracker.update(i0, done * (i1 - i0))

        with torch.no_grad(), _reduced_precision(dev):  # both are per thread
            table = model.table_from_features(latent.code_features(fy0, fy1, fx0, fx1)[None], rel_cell)[0]
            pred = _decode_band(model, table, ys, xs, rows_np, i0, i1, fy0, fx0, chunk, step)
            if model.residual:
                pred += _bilinear_rows(latent, by, bx, i0, i1)
            out[i0:i1] = (pred * 0.5 + 0.5).clamp_(0, 1).cpu().numpy()

    if workers > 1 and len(bands) > 1:
        with ThreadPoolExecutor(min(workers, len(bands))) as pool:
            for _ in pool.map(render_band, bands):
                pass
    else:
        for band in bands:
            render_band(band)
    return out


def _reduced_precision(device: torch.device):
    """fp16 matmuls on CUDA (coordinates and blending stay fp32: they are computed outside
    and `pred.float()` accumulates); full precision elsewhere."""
    return torch.autocast("cuda", dtype=torch.float16, enabled=device.type == "cuda")


def _runs(codes: np.ndarray, cap: int) -> tuple[np.ndarray, np.ndarray]:
    """Starts and lengths of the runs of equal values in a non-decreasing index array, runs
    longer than `cap` cut into pieces (at high zoom one run alone would exceed a chunk, and
    matmuls that big fall out of cache)."""
    starts = np.flatnonzero(np.r_[True, codes[1:] != codes[:-1]])
    lengths = np.diff(np.r_[starts, len(codes)])
    pieces = -(-lengths // cap)
    offsets = np.arange(pieces.sum()) - np.repeat(np.cumsum(pieces) - pieces, pieces)
    starts = np.repeat(starts, pieces) + offsets * cap
    lengths = np.minimum(np.repeat(lengths, pieces) - offsets * cap, cap)
    return starts, lengths


def _decode_band(model, table: torch.Tensor, ys, xs, rows_np, i0: int, i1: int, fy0: int, fx0: int,
                 chunk: int, step: Callable[[float], None]) -> torch.Tensor:
    """Blend of the ensemble members' predictions for output rows i0:i1 -> (R, W, 3)."""
    dev = table.device
    n_rows, n_cols = i1 - i0, xs[0][0].shape[0]
    rel_y = [ry[i0:i1] for _, ry in ys]
    rel_x = [rx for _, rx in xs]
    # one extra (scratch) row absorbs the padding of runs shorter than the longest
    acc = torch.zeros(n_rows + 1, n_cols, 3, device=dev)
    ix_local = [ix - fx0 for ix, _ in xs]
    step(0.0)
    for a, codes_np in enumerate(rows_np):
        starts, lengths = _runs(codes_np[i0:i1], max(1, chunk // n_cols))
        longest = int(lengths.max())
        pad = np.arange(longest)
        rows = np.where(pad[None, :] < lengths[:, None], starts[:, None] + pad[None, :], n_rows)
        rows_t = torch.from_numpy(rows).to(dev)
        code_rows = torch.from_numpy(codes_np[i0:i1][starts] - fy0).to(dev)
        ry_all = [torch.cat((r, r.new_zeros(1)))[rows_t] for r in rel_y]  # (G, L) per y-member
        per_chunk = max(1, chunk // (longest * n_cols))
        for g0 in range(0, len(starts), per_chunk):
            g1 = min(g0 + per_chunk, len(starts))
            band = table.index_select(0, code_rows[g0:g1])
            ry_g = [r[g0:g1, :, None] for r in ry_all]  # (G, L, 1)
            weights = blend_weights(ry_g, [r[None, None, :] for r in rel_x])
            for b in range(len(xs)):
                codes = band.index_select(1, ix_local[b])[:, None]  # (G, 1, W, D)
                pred = model.decode(codes, ry_g[a][..., None], rel_x[b][None, None, :, None])
                pred = pred.float() * weights[a * len(xs) + b][..., None]
                acc.index_add_(0, rows_t[g0:g1].reshape(-1), pred.reshape(-1, n_cols, 3))
            step((a + g1 / len(starts)) / len(rows_np))
    return acc[:n_rows]


def _bilinear_rows(latent: Latent, by, bx, r0: int, r1: int) -> torch.Tensor:
    """The residual option's base: bilinear source colour at each query, rows r0:r1.
    Separable: blend source rows first (few columns), then columns (full width)."""
    y0, y1, ty = by[0][r0:r1], by[1][r0:r1], by[2][r0:r1, None, None]
    x0, x1, tx = bx
    lo, hi = int(y0.min()), int(y1.max()) + 1
    xl, xh = int(x0.min()), int(x1.max()) + 1
    src = latent.source(lo, hi, xl, xh).permute(1, 2, 0)
    rows = torch.lerp(src.index_select(0, y0 - lo), src.index_select(0, y1 - lo), ty)
    return torch.lerp(rows.index_select(1, x0 - xl), rows.index_select(1, x1 - xl), tx[None, :, None])


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
