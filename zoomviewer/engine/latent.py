"""The photo's latent, on the compute device, computed on demand and cached
(docs/LIIF.md section 6).

Latent keeps two caches, each an LRU under its own memory budget:
  tiles   the encoder's feature map in tiles (with a halo of the encoder's receptive
          radius, so tiles equal the whole-image encoding) and, per tile, the decoder's
          zoom-independent first-layer term (`code_features`);
  tables  the code table: the decoder's per-code values for a block of codes at one
          rel_cell (one zoom), stored part by part (the model's `table_parts` layout), so
          the coarse and the full pass of a view, and every screen tile of it, share one
          computation.
One Latent may be shared by threads (render workers, the viewer and an export): both
caches are read and changed under one lock, and a tile being encoded by one thread is
waited for, not encoded again, by the others.
"""

from __future__ import annotations

import ctypes
import sys
import threading
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch

from .model import pick_device, reduced_precision
from .band_encoder import BandEncoder

# The viewer's latent tiles are small, so a view encodes little beyond what it shows; they
# are encoded in bands of many tiles with one halo each (Latent.ensure), so small tiles
# cost no more halo than large ones. 32 px: a 12 MP photo's first sharp frame at x10 read
# 26 k source pixels, not 37 k with 64 px tiles (0.50 s, not 0.65-0.98 s, AVX2-imitated).
LATENT_TILE = 32


def _release_free_memory() -> None:
    """glibc keeps freed blocks of a few MB in its heaps; a table of tens of MB freed
    between views would otherwise stay in the process's resident memory."""
    if _libc is not None:
        _libc.malloc_trim(0)


try:
    _libc = ctypes.CDLL("libc.so.6") if sys.platform.startswith("linux") else None
    _libc.malloc_trim  # noqa: B018 (musl and others lack it)
except (OSError, AttributeError):
    _libc = None


class Latent:
    """The feature map of one photo, encoded on demand, tile by tile.

    `image` is float32 HxWx3 in [0, 1]; it is referenced, not copied (the caller keeps it
    unchanged). Each tile keeps the latent codes and the decoder's zoom-independent
    first-layer term (`code_features`), so a new zoom or pan over cached tiles costs only
    the decoder. Tiles live on `device`; least recently used ones are dropped beyond
    `budget_mb`. Code tables (`table`) are kept under `table_mb`. The model is moved to
    `device` (in place) and put in eval mode.
    """

    TABLE_MARGIN = 2  # codes kept around a cached table, beyond the block asked for
    # encoder input per run: the activations of 512 k pixels (64 channels, fp32) are 128 MB each
    BLOCK_PIXELS = 512 * 1024

    def __init__(self, model: torch.nn.Module, image: np.ndarray, device: torch.device | str | None = None,
                 tile: int = 256, budget_mb: float = 1536, table_mb: float = 384, keep_codes: bool = True) -> None:
        if image.ndim != 3 or image.shape[2] != 3:
            raise ValueError("the image must be an HxWx3 array")
        self.device = pick_device(None) if device is None else torch.device(device)
        # the faster of channels-last and contiguous on this CPU, measured (model/layout.py)
        self.model = model.to(self.device).eval()
        self._bands = BandEncoder(self.model, self.device)
        self.layout = self._bands.layout
        self.image = image
        self.height, self.width = image.shape[:2]
        self.tile = int(tile)
        # one more than the receptive radius: the first layer's 3x3 reads one code further
        self.halo = int(model.encoder.receptive_radius) + 1
        self.channels = int(model.encoder.out_dim)
        # Rendering reads only the first-layer term; the codes themselves (a quarter of a
        # fast tile) are for features() and the reference render. Without keep_codes they
        # are dropped once the term is computed, and features() encodes again.
        self.keep_codes = bool(keep_codes)
        # fp32 codes and first-layer term per tile (edge tiles are counted as full ones)
        kept = (self.channels if self.keep_codes else 0) + int(model.code_features_dim)
        self.tile_bytes = kept * 4 * self.tile ** 2
        self.budget_bytes = int(budget_mb * 2**20)
        self._tiles: OrderedDict[tuple[int, int], tuple[torch.Tensor, torch.Tensor]] = OrderedDict()
        # render workers share the cache: one encoding per tile, the others wait for it
        self._lock = threading.Lock()
        self._pending: dict[tuple[int, int], threading.Event] = {}
        self.tiles_encoded = 0  # how many tile encodings ran (re-encodes after eviction count again)
        self.pixels_encoded = 0  # source pixels the encoder has read, halos included
        self.table_budget_bytes = int(table_mb * 2**20)
        self._tables: OrderedDict[tuple, torch.Tensor] = OrderedDict()
        self.tables_computed = 0  # how many code tables were computed (cache misses)

    @property
    def tiles_cached(self) -> int:
        with self._lock:
            return len(self._tiles)

    def bytes_held(self) -> tuple[int, int]:
        """Bytes held now by the cached tiles (codes and first-layer term) and the code tables."""
        with self._lock:
            tiles = sum((0 if a is None else a.nbytes) + b.nbytes for a, b in self._tiles.values())
            tables = sum(t.nbytes for t in self._tables.values())
        return tiles, tables

    def source(self, y0: int, y1: int, x0: int, x1: int) -> torch.Tensor:
        """Normalised source pixels (3, y1-y0, x1-x0) on the device."""
        crop = np.ascontiguousarray(self.image[y0:y1, x0:x1])
        t = torch.from_numpy(crop).to(self.device, torch.float32).permute(2, 0, 1)
        return (t - 0.5) / 0.5

    @torch.no_grad()
    def _encode_block(self, ty0: int, ty1: int, tx0: int, tx1: int,
                      step: Callable[[float], None] | None = None,
                      codes: bool | None = None) -> dict[tuple[int, int], tuple]:
        """Tiles [ty0, ty1) x [tx0, tx1), encoded in one encoder run with one halo around
        them all (BandEncoder) -> {key: (codes (C, h, w), first-layer term (h, w, D), a
        view of the band's)}; each equals the tile encoded alone (the halo is the
        receptive radius). `step(fraction)` is told
        the encoder's progress through its blocks, where the encoder can (`encode`). In
        the renderer's precision whoever asks (a render, an export, features()): tiles are
        shared, so what one holds must not depend on which caller encoded it first.
        `codes` (default: keep_codes): whether to copy out the codes too; else they are
        None (their copy, channels first, cost more than the tile's term on an AVX2 CPU)."""
        t, r = self.tile, self.halo
        y0, x0 = ty0 * t, tx0 * t
        y1, x1 = min(ty1 * t, self.height), min(tx1 * t, self.width)
        cy0, cx0 = max(y0 - r, 0), max(x0 - r, 0)
        cy1, cx1 = min(y1 + r, self.height), min(x1 + r, self.width)
        with reduced_precision(self.device, self.model):
            feat, pre = self._bands.encode(self.source(cy0, cy1, cx0, cx1)[None], (y0, y1, x0, x1),
                                           (cy0, cy1, cx0, cx1), step)
        self.pixels_encoded += (cy1 - cy0) * (cx1 - cx0)
        codes = self.keep_codes if codes is None else codes
        out = {}
        for ty in range(ty0, ty1):
            for tx in range(tx0, tx1):
                ay0, ax0 = ty * t - y0, tx * t - x0
                ay1, ax1 = min((ty + 1) * t, self.height) - y0, min((tx + 1) * t, self.width) - x0
                code = feat[0][:, ay0 + y0 - cy0:ay1 + y0 - cy0, ax0 + x0 - cx0:ax1 + x0 - cx0]
                # The term is kept as a view of the band's: a copy per tile cost 0.7 s/MP
                # (a gigabyte of new memory, 2-core Xeon); the band's memory goes when its
                # last tile does.
                out[(ty, tx)] = (code.contiguous() if codes else None, pre[ay0:ay1, ax0:ax1])
        return out

    def _encode_tile(self, ty: int, tx: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self._encode_block(ty, ty + 1, tx, tx + 1)[(ty, tx)]

    def _kept(self, entry: tuple[torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor | None, torch.Tensor]:
        return entry if self.keep_codes else (None, entry[1])

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
            self._store(key, entry)
        finally:
            self._release([key])
        return entry

    def _store(self, key: tuple[int, int], entry: tuple) -> None:
        with self._lock:
            self.tiles_encoded += 1
            self._tiles[key] = self._kept(entry)
            while len(self._tiles) > 1 and len(self._tiles) * self.tile_bytes > self.budget_bytes:
                self._tiles.popitem(last=False)

    def _claim(self, keys: list[tuple[int, int]]) -> list[tuple[int, int]]:
        """The keys, of these, that are neither cached nor being encoded: marked as being
        encoded by this thread (which must _release them)."""
        with self._lock:
            mine = [k for k in keys if k not in self._tiles and k not in self._pending]
            for k in mine:
                self._pending[k] = threading.Event()
        return mine

    def _release(self, keys: list[tuple[int, int]]) -> None:
        with self._lock:
            events = [self._pending.pop(k) for k in keys if k in self._pending]
        for event in events:
            event.set()

    def _encode_bands(self, keys: list[tuple[int, int]], progress: Callable[[float], None] | None) -> None:
        """Encode the claimed `keys` in bands of whole tile rows across their bounding box,
        one encoder run and one halo per band (not per tile), bands of at most
        BLOCK_PIXELS; `progress` is told through each run, block by block of the encoder
        (and may raise to cancel between them). Tiles inside a band's box that are not
        claimed are encoded too but not stored (cheaper than more halos)."""
        try:
            ty0, ty1 = min(k[0] for k in keys), max(k[0] for k in keys) + 1
            row_pixels = (max(k[1] for k in keys) + 1 - min(k[1] for k in keys)) * self.tile ** 2
            per_band = max(1, min(self.BLOCK_PIXELS // row_pixels, ty1 - ty0))
            if progress is not None:
                progress(0.0)        # told at once: the estimate is paced from here
            self._encode_band_rows(keys, ty0, ty1, per_band, progress)
        finally:
            self._release(keys)

    def _encode_band_rows(self, keys, ty0: int, ty1: int, per_band: int, progress) -> None:
        """_encode_bands' loop: the bands of `per_band` tile rows from ty0 to ty1."""
        wanted, done = set(keys), 0
        for b0 in range(ty0, ty1, per_band):
            band = [k for k in keys if b0 <= k[0] < b0 + per_band]
            if not band:
                continue
            tx0, tx1 = min(k[1] for k in band), max(k[1] for k in band) + 1
            step = None if progress is None else (lambda f, d=done, n=len(band): progress((d + f * n) / len(keys)))
            for key, entry in self._encode_block(b0, min(b0 + per_band, ty1), tx0, tx1, step).items():
                if key in wanted:
                    self._store(key, entry)
            self._release(band)
            done += len(band)
            if progress is not None:
                progress(done / len(keys))

    def _tile_keys(self, y0: int, y1: int, x0: int, x1: int) -> list[tuple[int, int]]:
        t = self.tile
        return [(ty, tx) for ty in range(y0 // t, (y1 - 1) // t + 1) for tx in range(x0 // t, (x1 - 1) // t + 1)]

    def _pieces(self, y0: int, y1: int, x0: int, x1: int, which: int):
        """(ay0, ay1, ax0, ax1, view) for each tile's part of an in-bounds block: the cached
        features (which=0, as (h, w, C)) or first-layer term (which=1), not copied."""
        if not (0 <= y0 < y1 <= self.height and 0 <= x0 < x1 <= self.width):
            raise ValueError(f"block {(y0, y1, x0, x1)} outside the {self.height}x{self.width} latent")
        t = self.tile
        for ty, tx in self._tile_keys(y0, y1, x0, x1):
            part = self._tile(ty, tx)[which]
            if which == 0 and part is None:     # codes not kept: encode them again
                part = self._encode_block(ty, ty + 1, tx, tx + 1, codes=True)[(ty, tx)][0]
            if which == 0:
                part = part.permute(1, 2, 0)  # features are stored (C, h, w)
            ay0, ay1 = max(y0, ty * t), min(y1, ty * t + part.shape[0])
            ax0, ax1 = max(x0, tx * t), min(x1, tx * t + part.shape[1])
            yield ay0, ay1, ax0, ax1, part[ay0 - ty * t:ay1 - ty * t, ax0 - tx * t:ax1 - tx * t]

    def _assemble(self, y0: int, y1: int, x0: int, x1: int, which: int) -> torch.Tensor:
        if which == 1 or self.keep_codes:
            self.ensure(y0, y1, x0, x1)
        out = None
        for ay0, ay1, ax0, ax1, part in self._pieces(y0, y1, x0, x1, which):
            if out is None:
                out = torch.empty(y1 - y0, x1 - x0, part.shape[2], device=self.device)
            out[ay0 - y0:ay1 - y0, ax0 - x0:ax1 - x0] = part
        return out

    def missing(self, y0: int, y1: int, x0: int, x1: int) -> int:
        """How many of the tiles covering a block are not encoded yet (being encoded counts
        as not yet)."""
        with self._lock:
            return sum(key not in self._tiles for key in self._tile_keys(y0, y1, x0, x1))

    def ensure(self, y0: int, y1: int, x0: int, x1: int, progress: Callable[[float], None] | None = None,
               share: float = 0.5) -> int:
        """Encode the missing tiles of a block now, when they fit in `share` of the budget
        (half: what is read next stays cached), in bands (_encode_bands: one encoder run and
        one halo per band, which uses every core better than parallel small runs); tiles
        another thread is encoding are waited for. -> how many were missing. `progress`
        (the fraction of them done) is told 0 first, then as the encoder goes through its blocks."""
        with self._lock:
            keys = [key for key in self._tile_keys(y0, y1, x0, x1) if key not in self._tiles]
        if not keys or len(keys) > int(self.budget_bytes * share) // self.tile_bytes:
            return len(keys)
        mine = self._claim(keys)
        if mine:
            self._encode_bands(mine, progress)
        for key in keys:
            if key not in mine:
                self._tile(*key)     # encoded by another thread: wait for it
        return len(keys)

    def features(self, y0: int, y1: int, x0: int, x1: int) -> torch.Tensor:
        """Latent codes (C, y1-y0, x1-x0) for an in-bounds block, encoding missing tiles."""
        return self._assemble(y0, y1, x0, x1, 0).permute(2, 0, 1)

    def code_features(self, y0: int, y1: int, x0: int, x1: int) -> torch.Tensor:
        """The decoder's first-layer feature term (y1-y0, x1-x0, D) for an in-bounds block;
        equal to model.code_features of the whole latent, cropped."""
        return self._assemble(y0, y1, x0, x1, 1)

    def encode_all(self) -> torch.Tensor:
        """The whole latent (C, H, W). Encoded in bands where all its tiles fit in the budget
        (a 1 MP photo's 256 px tiles read 1.26x its pixels so, not 1.54x tile by tile), else
        tile by tile as they are assembled."""
        self.ensure(0, self.height, 0, self.width, share=1.0)
        return self.features(0, self.height, 0, self.width)

    def forget_tables(self) -> None:
        """Drop the cached code tables (the viewer does when a view is finished: a table is
        shared by the passes of one view; later views at another zoom need new ones) and
        hand the freed memory back to the system."""
        with self._lock:
            had = bool(self._tables)
            self._tables.clear()
        if had:
            _release_free_memory()

    def table_bytes(self, n_codes: int) -> int:
        """Bytes of the code table of n_codes codes (fp32)."""
        return n_codes * int(np.prod(self.model.table_parts)) * 4

    def kept_block(self, y0: int, y1: int, x0: int, x1: int) -> tuple[int, int, int, int]:
        """The codes a kept table for block [y0:y1, x0:x1] covers: a margin of TABLE_MARGIN
        codes more (within the latent), so that renders of the same view at other
        resolutions are served from it."""
        m = self.TABLE_MARGIN
        return max(y0 - m, 0), min(y1 + m, self.height), max(x0 - m, 0), min(x1 + m, self.width)

    @torch.no_grad()
    def table(self, y0: int, y1: int, x0: int, x1: int, rel_cell: tuple[float, float], workers: int = 1,
              keep: bool = True) -> torch.Tensor:
        """The code table for codes [y0:y1, x0:x1] at this rel_cell, part by part:
        (P, y1-y0, x1-x0, K) with (P, K) = model.table_parts. Served as a slice of a cached
        table when one covers the block; else computed (rows split over `workers` threads)
        and, with `keep`, cached with a margin of TABLE_MARGIN codes."""
        key = (float(rel_cell[0]), float(rel_cell[1]))
        with self._lock:
            for (k, by0, by1, bx0, bx1), cached in reversed(self._tables.items()):
                if k == key and by0 <= y0 and y1 <= by1 and bx0 <= x0 and x1 <= bx1:
                    self._tables.move_to_end((k, by0, by1, bx0, bx1))
                    return cached[:, y0 - by0:y1 - by0, x0 - bx0:x1 - bx0]
        if keep:
            inner = (y0, y1, x0, x1)
            y0, y1, x0, x1 = self.kept_block(y0, y1, x0, x1)
        self.ensure(y0, y1, x0, x1)   # the block's missing tiles in bands, not tile by tile as read
        table = self._compute_table(y0, y1, x0, x1, key, workers)
        size = self.table_bytes((y1 - y0) * (x1 - x0))
        with self._lock:
            self.tables_computed += 1
            if keep and size <= self.table_budget_bytes:
                # only the newest zoom's tables: an old zoom's finished pixels are the viewer's to cache
                for old in [k for k in self._tables if k[0] != key]:
                    del self._tables[old]
                self._tables[(key, y0, y1, x0, x1)] = table
                while sum(self.table_bytes(t.shape[1] * t.shape[2]) for t in self._tables.values()) > self.table_budget_bytes:
                    self._tables.popitem(last=False)
        if keep:
            iy0, iy1, ix0, ix1 = inner
            return table[:, iy0 - y0:iy1 - y0, ix0 - x0:ix1 - x0]
        return table

    def _compute_table(self, y0: int, y1: int, x0: int, x1: int, rel_cell: tuple[float, float],
                       workers: int) -> torch.Tensor:
        model = self.model
        parts, width = model.table_parts
        out = None
        cell = torch.tensor([rel_cell], device=self.device)
        # ~4096 codes per matmul (a tile's width at a time): smaller ones ran the 208-wide
        # matmul at a fraction of its rate (a 1 MP view's table at x1.5 took 0.48-0.53 s
        # this way, 0.68-1.08 s with 4096 // the block's width; AVX2 kernels, 2 cores)
        rows_per_chunk = max(1, 4096 // min(x1 - x0, self.tile))
        threads = torch.get_num_threads()

        def fill(r0: int, r1: int) -> None:
            if torch.get_num_threads() != threads:  # a pool thread: same intra-op threads as the caller
                torch.set_num_threads(threads)
            with torch.no_grad(), reduced_precision(self.device, self.model):
                for c0 in range(r0, r1, rows_per_chunk):
                    # straight from each tile's cached first-layer term: no assembled copy
                    for ay0, ay1, ax0, ax1, pre in self._pieces(c0, min(c0 + rows_per_chunk, r1), x0, x1, 1):
                        values = model.table_from_features(pre[None], cell, affine)[0]
                        out[:, ay0 - y0:ay1 - y0, ax0 - x0:ax1 - x0] = values.unflatten(-1, (parts, width)).permute(2, 0, 1, 3)

        affine = model.table_affine(cell)  # the zoom's part of the table, once
        # fp32, as the tiles' first-layer term it is made from (and as table_bytes counts it)
        out = torch.empty(parts, y1 - y0, x1 - x0, width, device=self.device, dtype=torch.float32)
        spans = np.linspace(y0, y1, min(max(1, workers), y1 - y0) + 1).astype(int)
        if len(spans) > 2:
            with ThreadPoolExecutor(len(spans) - 1) as pool:
                for _ in pool.map(fill, spans[:-1], spans[1:]):
                    pass
        else:
            fill(y0, y1)
        return out

