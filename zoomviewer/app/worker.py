"""The render thread: one long-lived QThread that turns views into pixels.

The GUI hands it `RenderRequest`s (request id, photo id, snapped View, the kinds of frame
wanted: "model" and/or "bicubic"). Only the newest request matters: a new one bumps a
generation counter that the running render checks between chunks (render_region's
cancel callback), so superseded work stops within one chunk and is never delivered.

Work is cut into the screen-aligned tiles of geometry.tile_parts. Finished tiles are kept
in an LRU keyed by (what rendered it, zoom, tile), so panning back, toggling A/B or
returning to a zoom is served from memory without decoding. For the model a coarse pass
(1/4 resolution) of the missing area comes first, then the sharp tiles: centre first, a
few at once; or, for a new view when the last sharp tiles came quickly, as one render.
A request may ask for the optional Faster Deep Zoom (render.render_sparse) for its sharp
tiles; the tile cache keeps the two apart.
At zoom <= 1 no decoder runs: the source is area-averaged on the same pixel grid.

The worker owns the model and the photo's Latent (encoded lazily by render.py) and is the
only thread that touches them; exports run here too, so they never race the viewer for
the Latent. Results come back as Qt signals carrying QImages (created here, off the GUI
thread).
"""

from __future__ import annotations

import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass

import numpy as np
import torch
from PySide6.QtCore import QThread, Signal
from PySide6.QtGui import QImage

from ..engine.export import export_view
from ..engine.geometry import View, bounding_rect, global_region, tile_parts
from ..engine.model import load_weights, pick_device
from ..engine.model.native import fast_kernel
from ..engine.render import Cancelled, Latent, deep_zoom_step, render_sparse, render_workers
from ..engine.resample import bicubic_region

MODEL, BICUBIC, AREA = "model", "bicubic", "area"
COARSE_FACTOR = 4            # the coarse pass renders one pixel per 4x4 device pixels
COARSE_MIN_TILES = 2         # below this much missing area the coarse pass is not worth it
ONE_PASS_S = 1.0             # sharp tiles expected within this are decoded as one render
MODEL_NAMES = {"fast": "fast decoder", "liif": "LIIF"}


@dataclass(frozen=True)
class RenderRequest:
    request_id: int
    image_id: int
    view: View                       # snapped (geometry.View.snapped)
    kinds: tuple[str, ...] = (MODEL,)
    sparse: bool = False             # approximate deep zoom (render.render_sparse) for the sharp tiles


@dataclass(frozen=True)
class RenderPiece:
    """A finished piece of a frame: `rect` in the view's global device pixels
    (end-exclusive); `image` is rect-sized when sharp, smaller for the coarse pass."""
    request_id: int
    kind: str                        # the requested kind it belongs to (MODEL or BICUBIC)
    view: View
    rect: tuple[int, int, int, int]
    image: QImage
    coarse: bool = False
    from_cache: bool = False


@dataclass(frozen=True)
class ExportJob:
    photo: object                    # images.Photo (metadata and path go to the file)
    region: tuple[float, float, float, float]
    out_size: tuple[int, int]
    path: str
    format: str | None = None
    bits: int = 8
    quality: int = 95


# ------------------------------------------------------------------ pure pixel helpers

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
    """[0, 1] floats -> uint8, rounding half up (as the exporters quantise)."""
    return (np.clip(rgb, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def qimage_from_rgb8(rgb8: np.ndarray) -> QImage:
    rgb8 = np.ascontiguousarray(rgb8)
    h, w = rgb8.shape[:2]
    return QImage(rgb8.data, w, h, 3 * w, QImage.Format.Format_RGB888).copy()


def rgb8_from_qimage(image: QImage) -> np.ndarray:
    """The pixels of a QImage as uint8 HxWx3 (for tests and screenshots)."""
    image = image.convertToFormat(QImage.Format.Format_RGB888)
    h, w, stride = image.height(), image.width(), image.bytesPerLine()
    buf = np.frombuffer(image.constBits(), dtype=np.uint8, count=stride * h).reshape(h, stride)
    return buf[:, :3 * w].reshape(h, w, 3).copy()


def render_threads() -> int:
    """Intra-op threads for rendering: all cores but one, at most 4. The spare core keeps
    the GUI thread responsive; and viewport tiles are small operations, for which waiting
    on busy cores costs far more than extra threads gain (on a loaded 2-core machine a
    128x128 tile took 1.6 s with 2 threads and 9 ms with 1)."""
    return max(1, min(4, (os.cpu_count() or 2) - 1))


def describe_device(device) -> str:
    if getattr(device, "type", None) == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    return str(device)


# -------------------------------------------------------------------------- the thread

class RenderWorker(QThread):
    piece_ready = Signal(object)             # RenderPiece
    progress_changed = Signal(int, float)    # request_id, fraction done
    request_finished = Signal(int, float)    # request_id, seconds since it was taken up
    request_failed = Signal(int, str)        # request_id, one sentence
    model_ready = Signal(str, str)           # model name ("" when there is none), device
    model_failed = Signal(str)               # one sentence
    export_progress = Signal(float)
    export_finished = Signal(str)            # path written
    export_failed = Signal(str)              # one sentence
    export_cancelled = Signal()

    def __init__(self, model_or_weights=None, device: str | None = None, *, tile: int = 256,
                 cache_mb: float = 256, latent_budget_mb: float = 1536, cell_clip: bool = False,
                 threads: int | None = None, parent=None) -> None:
        """`model_or_weights`: a model (nn.Module), a weights file path (loaded on this
        thread), or None for no model (the "model" kind then renders bicubic). `threads`:
        torch intra-op threads for this thread's work (default: render_threads())."""
        super().__init__(parent)
        self.threads = threads or render_threads()
        self._model_spec = model_or_weights
        self._device_name = device
        self.tile = int(tile)
        self.cache_bytes = int(cache_mb * 2**20)
        self.latent_budget_mb = latent_budget_mb
        self.cell_clip = cell_clip
        self.model = None
        self.model_name = ""
        self.device = None
        self.device_description = ""
        self.loaded = False               # set (on this thread) once model_ready was emitted
        self._cond = threading.Condition()
        self._generation = 0
        self._pending: RenderRequest | None = None
        self._export_job: ExportJob | None = None
        self._export_cancel = False
        self._stopping = False
        self._next_image = None           # (pixels, image_id, display) set by the GUI
        self._image: np.ndarray | None = None
        self._image_id = -1
        self._display: Callable[[np.ndarray], np.ndarray] | None = None
        self._latent: Latent | None = None
        self._cache: OrderedDict[tuple, tuple[tuple[int, int, int, int], QImage]] = OrderedDict()
        self._cached_bytes = 0
        self._model_rate: float | None = None   # pixels per second of the last sharp model tiles
        self._step = 1                            # the request in progress: display pixels per decoded sample

    # -- called from the GUI thread ------------------------------------------------------
    def set_image(self, pixels: np.ndarray, image_id: int,
                  display: Callable[[np.ndarray], np.ndarray] | None = None) -> None:
        """The photo to render from now on (float32 HxWx3, not copied: keep it unchanged).
        `display` converts rendered pixels to sRGB for the screen (None: already sRGB)."""
        with self._cond:
            self._next_image = (pixels, image_id, display)
            self._generation += 1
            self._pending = None
            self._cond.notify()

    def request(self, request: RenderRequest) -> None:
        """Render this view; whatever was asked before is superseded."""
        with self._cond:
            self._pending = request
            self._generation += 1
            self._cond.notify()

    def cancel(self) -> None:
        with self._cond:
            self._pending = None
            self._generation += 1

    def start_export(self, job: ExportJob) -> None:
        """Export on this thread (it takes priority over viewing; the view resumes after)."""
        with self._cond:
            self._export_job = job
            self._export_cancel = False
            self._cond.notify()

    def cancel_export(self) -> None:
        self._export_cancel = True

    def stop(self) -> None:
        """End the thread (waits for the chunk or encoder tile in progress)."""
        with self._cond:
            self._stopping = True
            self._generation += 1
            self._cond.notify()
        self.wait()

    # -- the thread ----------------------------------------------------------------------
    def run(self) -> None:
        self._load_model()
        while True:
            with self._cond:
                while not (self._stopping or self._export_job or self._pending or self._next_image):
                    self._cond.wait()
                if self._stopping:
                    break
                self._take_image()
                job, self._export_job = self._export_job, None
                request = None
                if job is None:
                    request, self._pending = self._pending, None
                generation = self._generation
            if job is not None:
                self._run_export(job)
            elif request is not None:
                self._run_request(request, generation)
        self._latent = None
        self._cache.clear()

    def _load_model(self) -> None:
        torch.set_num_threads(self.threads)   # per thread (OpenMP): the rest of the process keeps its own
        spec = self._model_spec
        try:
            self.device = pick_device(self._device_name)
            if isinstance(spec, (str, os.PathLike)):
                spec = load_weights(spec)[0]
        except Exception as e:  # WeightsError / ValueError carry a sentence; anything else still must not kill the thread
            self.model_failed.emit(str(e) or f"the model could not be loaded ({type(e).__name__})")
            spec = None
        if self.device is None:
            self.device = pick_device("cpu")
        self.model = spec
        if spec is not None:
            fast_kernel(spec, self.device)  # builds the fused decoder now (once per machine), not in the first frame
        self.model_name = MODEL_NAMES.get(getattr(spec, "kind", ""), "model") if spec is not None else ""
        self.device_description = describe_device(self.device)
        self.loaded = True
        self.model_ready.emit(self.model_name, self.device_description)

    def _take_image(self) -> None:
        """Switch to the photo the GUI set last (under the lock)."""
        if self._next_image is None:
            return
        self._image, self._image_id, self._display = self._next_image
        self._next_image = None
        self._latent = None
        self._cache.clear()
        self._cached_bytes = 0

    def _get_latent(self) -> Latent:
        if self._latent is None:
            self._latent = Latent(self.model, self._image, device=self.device, budget_mb=self.latent_budget_mb)
        return self._latent

    def _run_request(self, request: RenderRequest, generation: int) -> None:
        if request.image_id != self._image_id or self._image is None:
            return

        def cancel() -> bool:
            return self._generation != generation or self._stopping or self._export_job is not None

        try:
            self._render(request, cancel)
        except Cancelled:
            with self._cond:  # paused for an export, not superseded: take it up again afterwards
                if self._generation == generation and self._pending is None and not self._stopping:
                    self._pending = request
        except Exception as e:  # a failed render must not end the thread; the GUI says it
            self.request_failed.emit(request.request_id, f"rendering failed: {e}")
        finally:
            if self._latent is not None:
                self._latent.forget_planes()

    def _effective(self, kind: str, zoom: float) -> str:
        if zoom <= 1.0:
            return AREA
        if kind == MODEL and self.model is not None:
            return MODEL
        return BICUBIC

    def _key(self, effect: str, view: View, part) -> tuple:
        return effect, view.zoom, self._step if effect == MODEL else 1, part.key

    def _render(self, request: RenderRequest, cancel: Callable[[], bool]) -> None:
        started = time.perf_counter()
        view, img = request.view, self._image
        self._step = deep_zoom_step(view.zoom) if request.sparse else 1  # of the sharp tiles
        parts = tile_parts(view, img.shape[1], img.shape[0], self.tile)
        # Requested kinds that render the same way (both panes at zoom <= 1) share the work.
        by_effect: dict[str, list[str]] = {}
        for kind in request.kinds:
            by_effect.setdefault(self._effective(kind, view.zoom), []).append(kind)

        missing: dict[str, list] = {}
        for effect, kinds in by_effect.items():
            for part in parts:
                hit = self._cache_get(self._key(effect, view, part), part.rect)
                if hit is None:
                    missing.setdefault(effect, []).append(part)
                    continue
                for kind in kinds:
                    self.piece_ready.emit(RenderPiece(request.request_id, kind, view, hit[0], hit[1], from_cache=True))

        cost = {MODEL: 1.0, BICUBIC: 0.05, AREA: 0.05}
        units = [(e, p) for e in sorted(missing, key=lambda e: e == MODEL) for p in missing[e]]
        model_pixels = sum(_pixels(p.rect) for p in missing.get(MODEL, []))
        coarse = model_pixels > COARSE_MIN_TILES * self.tile ** 2
        total = sum(cost[e] * _pixels(p.rect) for e, p in units) + (model_pixels / COARSE_FACTOR ** 2 if coarse else 0)
        done = 0.0
        last_percent = -1
        # every model render of this view, the coarse preview included, uses the display
        # pixel's cell, so they all share the latent's one code table for this zoom
        cell = (1 / view.zoom, 1 / view.zoom)

        def report(extra: float) -> None:
            nonlocal last_percent
            percent = int(100 * (done + extra) / total) if total else 100
            if percent != last_percent:
                last_percent = percent
                self.progress_changed.emit(request.request_id, percent / 100)

        for effect, part in units:
            if effect == MODEL and coarse:
                coarse = False
                rect = bounding_rect(p.rect for p in missing[MODEL])
                size = (max(1, -(-(rect[2] - rect[0]) // COARSE_FACTOR)), max(1, -(-(rect[3] - rect[1]) // COARSE_FACTOR)))
                weight = model_pixels / COARSE_FACTOR ** 2
                image = self._render_pixels(MODEL, global_region(rect, view.zoom), size, cancel,
                                            lambda f: report(f * weight), cell)
                done += weight
                for kind in by_effect[MODEL]:
                    self.piece_ready.emit(RenderPiece(request.request_id, kind, view, rect, image, coarse=True))
            if effect == MODEL:
                break
            weight = cost[effect] * _pixels(part.rect)
            image = self._render_pixels(effect, part.region, part.out_size, cancel, lambda f: report(f * weight), cell)
            done += weight
            self._finished(request, view, effect, by_effect[effect], part, image)
        for part, image in self._model_tiles(missing.get(MODEL, []), view.zoom, cancel, cell, report):
            done += _pixels(part.rect)
            report(0)
            self._finished(request, view, MODEL, by_effect[MODEL], part, image)
        if cancel():
            raise Cancelled()
        self.progress_changed.emit(request.request_id, 1.0)
        self.request_finished.emit(request.request_id, time.perf_counter() - started)

    def _finished(self, request: RenderRequest, view: View, effect: str, kinds: list[str], part, image: QImage) -> None:
        self._cache_put(self._key(effect, view, part), part.rect, image)
        for kind in kinds:
            self.piece_ready.emit(RenderPiece(request.request_id, kind, view, part.rect, image))

    def _model_tiles(self, parts: list, zoom: float, cancel, cell, report) -> Iterator[tuple]:
        """(part, image) for the model's sharp tiles, as they finish.

        When the tiles fill a rectangle (a new view) and the last renders say it takes
        under ONE_PASS_S, the rectangle is decoded in one render and cut into tiles: one
        large render splits over the cores far better than many small ones. Otherwise, on
        a multi-core CPU, several tiles are decoded at once, each on one thread (tiles
        then arrive centre first, a few at a time, which matters for a slow decoder)."""
        if not parts:
            return
        started = time.perf_counter()
        pixels = sum(_pixels(p.rect) for p in parts)
        for part, image in self._sharp_tiles(parts, pixels, zoom, cancel, cell, report):
            yield part, image
        self._model_rate = pixels / max(time.perf_counter() - started, 1e-6)

    def _sharp_tiles(self, parts: list, pixels: int, zoom: float, cancel, cell, report) -> Iterator[tuple]:
        rect = bounding_rect(p.rect for p in parts)
        if (len(parts) > 1 and pixels == _pixels(rect) and self._model_rate
                and pixels / self._model_rate <= ONE_PASS_S):
            size = (rect[2] - rect[0], rect[3] - rect[1])
            rgb = self._render_rgb(global_region(rect, zoom), size, cancel, lambda f: report(f * pixels), cell,
                                   step=self._step, origin=rect[:2])
            if cancel():
                raise Cancelled()
            for part in parts:
                x0, y0, x1, y1 = part.rect
                yield part, self._to_qimage(rgb[y0 - rect[1]:y1 - rect[1], x0 - rect[0]:x1 - rect[0]])
            return
        lanes = min(render_workers(self.device), len(parts))
        if lanes <= 1:
            for part in parts:
                weight = _pixels(part.rect)
                yield part, self._render_pixels(MODEL, part.region, part.out_size, cancel,
                                                lambda f: report(f * weight), cell, step=self._step,
                                                origin=part.rect[:2])
            return
        threads = torch.get_num_threads()

        def job(part) -> QImage:
            if torch.get_num_threads() != threads:  # a pool thread: the render thread's intra-op threads
                torch.set_num_threads(threads)
            return self._render_pixels(MODEL, part.region, part.out_size, cancel, None, cell, workers=1,
                                       step=self._step, origin=part.rect[:2])

        pool = ThreadPoolExecutor(lanes)
        try:
            futures = {pool.submit(job, part): part for part in parts}  # centre first, as listed
            for future in as_completed(futures):
                yield futures[future], future.result()
        finally:
            pool.shutdown(wait=True, cancel_futures=True)

    def _render_rgb(self, region, out_size, cancel, progress, cell=None, workers=None, step: int = 1,
                    origin=(0, 0)) -> np.ndarray:
        """The model's pixels; with step > 1 sampled on the view's global grid (render_sparse)."""
        return render_sparse(self._get_latent(), region, out_size, step, origin, cancel=cancel, progress=progress,
                             cell_clip=self.cell_clip, cell=cell, workers=workers)

    def _render_pixels(self, effect: str, region, out_size, cancel, progress, cell=None, workers=None,
                       step: int = 1, origin=(0, 0)) -> QImage:
        if effect == MODEL:
            rgb = self._render_rgb(region, out_size, cancel, progress, cell, workers, step, origin)
        elif effect == BICUBIC:
            rgb = bicubic_region(self._image, region, out_size)
        else:
            rgb = area_region(self._image, region, out_size)
        if cancel():  # never deliver (or cache) a piece of a view nobody wants any more
            raise Cancelled()
        return self._to_qimage(rgb)

    def _to_qimage(self, rgb: np.ndarray) -> QImage:
        if self._display is not None:
            rgb = self._display(rgb)
        return qimage_from_rgb8(to_rgb8(rgb))

    # -- tile cache ----------------------------------------------------------------------
    def _cache_get(self, key: tuple, rect) -> tuple | None:
        entry = self._cache.get(key)
        if entry is None:
            return None
        have = entry[0]
        if not (have[0] <= rect[0] and have[1] <= rect[1] and have[2] >= rect[2] and have[3] >= rect[3]):
            return None  # cached for a smaller visible part of that tile
        self._cache.move_to_end(key)
        return entry

    def _cache_put(self, key: tuple, rect, image: QImage) -> None:
        old = self._cache.pop(key, None)
        if old is not None:
            self._cached_bytes -= old[1].sizeInBytes()
        self._cache[key] = (rect, image)
        self._cached_bytes += image.sizeInBytes()
        while self._cached_bytes > self.cache_bytes and len(self._cache) > 1:
            _, (_, dropped) = self._cache.popitem(last=False)
            self._cached_bytes -= dropped.sizeInBytes()

    @property
    def tiles_cached(self) -> int:
        return len(self._cache)

    # -- export ----------------------------------------------------------------------------
    def _run_export(self, job: ExportJob) -> None:
        if self._image is None:
            self.export_failed.emit("there is no photo open to export")
            return
        if self.model is None:
            self.export_failed.emit("no trained model is loaded, so there is nothing to export the photo with")
            return
        try:
            for fraction in export_view(self._get_latent(), job.photo, job.region, job.out_size, job.path,
                                        format=job.format, bits=job.bits, quality=job.quality,
                                        cancel=lambda: self._export_cancel or self._stopping,
                                        cell_clip=self.cell_clip):
                self.export_progress.emit(float(fraction))
        except Cancelled:
            self.export_cancelled.emit()
        except ValueError as e:   # ExportError and friends: a sentence for a person
            self.export_failed.emit(str(e))
        except Exception as e:
            self.export_failed.emit(f"the export failed: {e}")
        else:
            self.export_finished.emit(str(job.path))


def _pixels(rect) -> int:
    return (rect[2] - rect[0]) * (rect[3] - rect[1])
