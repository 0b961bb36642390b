"""One view request rendered pass by pass, on the render thread; no Qt (the images come
from a `to_image` function, QImages in the viewer), so it is testable without a thread.

The view is cut into the screen tiles of geometry.tile_parts. In order:
  1. tiles already in the TileCache are delivered at once;
  2. the cheap kinds (bicubic; the area-averaged source at zoom <= 1) are rendered;
  then for each model asked for (the chosen one, and another in a model-vs-model compare):
  3. when the model's Latent lacks tiles the view needs and there is a preview model: the
     preview pass, the preview model's picture of the whole missing area (its encoder is
     14x cheaper, so a new photo is sharp in about a second, not after the full encoding);
  4. the latent tiles the view needs and the model's Latent lacks are encoded,
     reported as encoding progress (on a slow CPU this is most of a new photo's wait);
  5. without a preview, a coarse pass (1/4 resolution) of the whole missing area, when that
     area is more than COARSE_MIN_TILES tiles;
  6. the model's sharp tiles: for a new view when the last sharp tiles came quickly, as
     one render cut into tiles; otherwise a few tiles at once on parallel lanes, centre
     first, each on one thread.
  7. with request.fuse, once a view at FUSE_MIN_ZOOM or more is sharp: the fused pass (render_fused_crop, the
     mean of the photo's 8 turned and flipped views) of the whole view, when this CPU's
     measured encoder and decoder rates say it costs under FUSE_BUDGET_S (on a GPU, always);
Every model render of a view, the coarse pass included, uses the display pixel's cell,
so they all share the latent's one code table for that zoom. A request may ask for
Faster Deep Zoom (render.render_sparse) for its sharp tiles; the cache keeps the two apart.
`cancel()` is checked between chunks; a cancelled render raises render.Cancelled and
delivers nothing more.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, replace

import numpy as np
import torch

from ..engine.geometry import View, bounding_rect, global_region, tile_parts
from ..engine.render import (Cancelled, Latent, codes_read, deep_zoom_step, render_fused_crop, render_sparse,
                             render_workers)
from ..engine.render.fusion import fusion_crop
from ..engine.resample import area_region, bicubic_region, to_rgb8
from .encode_ahead import encoder_threads
from .protocol import AREA, BICUBIC, MODEL, RenderPiece, RenderRequest
from .tile_cache import TileCache

COARSE_FACTOR = 4            # the coarse pass renders one pixel per 4x4 device pixels
COARSE_MIN_TILES = 2         # below this much missing area the coarse pass is not worth it
ONE_PASS_S = 1.0             # sharp tiles expected within this are decoded as one render
COST = {BICUBIC: 0.05, AREA: 0.05}   # progress weight per pixel; a model's is 1
PREVIEW_COST = 0.5           # progress weight per pixel of the preview pass
FUSE_BUDGET_S = 2.0          # a fused pass is run when it is expected within this
FUSE_MIN_ZOOM = 8.0          # deep zoom: where the model draws what the photo never held
FUSED_VIEWS = 8


@dataclass(frozen=True)
class Source:
    """What views are rendered from: the photo (float32 HxWx3), its Latents (`latent(name)`
    makes model `name`'s once per photo and hands the same one to every caller; None
    without a model), the names of the models there are (`models`, the first is what an
    unnamed MODEL means), the compute device, and `display`, the conversion of rendered
    pixels to sRGB for the screen (None: they are sRGB already). `preview()` hands out the
    photo's Latent of the preview model (the same one each time; None without one)."""
    image: np.ndarray
    latent: Callable[[str], Latent] | None
    device: torch.device
    display: Callable[[np.ndarray], np.ndarray] | None = None
    cell_clip: bool = False
    models: tuple[str, ...] = ()
    preview: Callable[[], Latent | None] | None = None


class _Progress:
    """A request's progress as whole percents, reported only when the percent changes."""

    def __init__(self, request_id: int, total: float, report: Callable[[int, float], None]) -> None:
        self.request_id, self.total, self.report = request_id, total, report
        self.done = 0.0
        self.last = -1

    def show(self, extra: float = 0.0) -> None:
        percent = int(100 * (self.done + extra) / self.total) if self.total else 100
        if percent != self.last:
            self.last = percent
            self.report(self.request_id, percent / 100)

    def part(self, weight: float) -> Callable[[float], None]:
        """A progress callback for a render worth `weight` of the total."""
        return lambda fraction: self.show(fraction * weight)


def effect_of(kind: str, zoom: float, chosen: str, models: tuple[str, ...]) -> str:
    """How a requested kind is rendered at this zoom: the area-averaged source at zoom <= 1,
    else the model it names (MODEL: `chosen`, or the first of `models`) where there is
    one, else bicubic."""
    if zoom <= 1.0:
        return AREA
    name = (chosen or (models[0] if models else "")) if kind == MODEL else kind
    return name if name in models else BICUBIC


def pixels(rect) -> int:
    return (rect[2] - rect[0]) * (rect[3] - rect[1])


class ViewPasses:
    """Renders requests into RenderPieces (`deliver`) and progress (`report`), keeping
    finished tiles in `cache`. `to_image` turns uint8 HxWx3 pixels into what a piece
    carries. Remembers how fast the last sharp model tiles came (`model_rate`)."""

    def __init__(self, cache: TileCache, to_image: Callable[[np.ndarray], object],
                 deliver: Callable[[RenderPiece], None], report: Callable[[int, float], None],
                 tile: int = 256, report_encoding: Callable[[int, float], None] | None = None,
                 report_fusing: Callable[[int, float], None] | None = None) -> None:
        """`report(request_id, fraction)` tells the request's progress;
        `report_encoding(request_id, fraction)` the encoding of latent tiles it waits for;
        `report_fusing(request_id, fraction)` the fused pass's."""
        self.cache, self.to_image, self.deliver, self.report = cache, to_image, deliver, report
        self.report_encoding, self.report_fusing = report_encoding, report_fusing
        self.encode_rate: float | None = None  # source pixels per second of the last tiles encoded
        self.fuse_budget_s = FUSE_BUDGET_S      # the longest a fused pass may be expected to take
        self.encode_threads: int | None = None  # torch threads for encodings (None: the render thread's)
        self.tile = int(tile)
        self.model_rate: float | None = None   # pixels per second of the last sharp model tiles

    def render(self, request: RenderRequest, source: Source, cancel: Callable[[], bool]) -> None:
        view, img = request.view, source.image
        step = deep_zoom_step(view.zoom) if request.sparse else 1   # of the sharp tiles
        parts = tile_parts(view, img.shape[1], img.shape[0], self.tile)
        # requested kinds that render the same way (both panes at zoom <= 1) share the work
        by_effect: dict[str, list[str]] = {}
        for kind in request.kinds:
            by_effect.setdefault(effect_of(kind, view.zoom, request.model, source.models), []).append(kind)
        missing = self._serve_cached(request, by_effect, parts, step)
        by_model = {e: missing.pop(e) for e in list(missing) if e not in COST}
        previewed = {e: self._preview_latent(request, source, e, ps) for e, ps in by_model.items()}
        coarse = {e: previewed[e] is None and sum(pixels(p.rect) for p in ps) > COARSE_MIN_TILES * self.tile ** 2
                  for e, ps in by_model.items()}
        total = sum(COST[e] * pixels(p.rect) for e, ps in missing.items() for p in ps)
        total += sum(pixels(p.rect) * (1 + (1 / COARSE_FACTOR ** 2 if coarse[e] else 0)
                                       + (PREVIEW_COST if previewed[e] is not None else 0))
                     for e, ps in by_model.items() for p in ps)
        progress = _Progress(request.request_id, total, self.report)
        job = _Job(request, source, cancel, by_effect, step, progress)
        for effect, effect_parts in missing.items():   # the cheap kinds first
            for part in effect_parts:
                weight = COST[effect] * pixels(part.rect)
                image = self._image(job, effect, part.region, part.out_size, progress.part(weight))
                progress.done += weight
                self._finished(job, effect, part, image)
        for model, model_parts in by_model.items():
            model_job = replace(job, model=model)
            if previewed[model] is not None:
                self._preview_pass(model_job, model_parts, previewed[model])
            self._encode(model_job, model_parts)
            if coarse[model]:
                self._coarse_pass(model_job, model_parts, sum(pixels(p.rect) for p in model_parts))
            for part, image in self._model_tiles(model_job, model_parts):
                progress.done += pixels(part.rect)
                progress.show()
                self._finished(model_job, model, part, image)
        if cancel():
            raise Cancelled()
        self.report(request.request_id, 1.0)
        if request.fuse and MODEL in request.kinds:
            self._fused_pass(job, parts)

    def _key(self, effect: str, view: View, part, step: int) -> tuple:
        return effect, view.zoom, step if effect not in COST else 1, part.key

    def _serve_cached(self, request: RenderRequest, by_effect: dict, parts: list, step: int) -> dict[str, list]:
        """Deliver the tiles the cache has; -> the missing parts of each effect."""
        missing: dict[str, list] = {}
        for effect, kinds in by_effect.items():
            for part in parts:
                hit = self.cache.get(self._key(effect, request.view, part, step), part.rect)
                if hit is None:
                    missing.setdefault(effect, []).append(part)
                    continue
                for kind in kinds:
                    self.deliver(RenderPiece(request.request_id, kind, request.view, hit[0], hit[1], from_cache=True))
        return missing

    def _finished(self, job: _Job, effect: str, part, image) -> None:
        self.cache.put(self._key(effect, job.request.view, part, job.step), part.rect, image)
        for kind in job.by_effect[effect]:
            self.deliver(RenderPiece(job.request.request_id, kind, job.request.view, part.rect, image))

    def _encode(self, job: _Job, parts: list) -> None:
        """Encode the latent tiles the sharp pass of the view's missing area will read and
        the Latent lacks, telling the progress."""
        latent = job.source.latent(job.model)
        rect = bounding_rect(p.rect for p in parts)
        codes = codes_read(latent, global_region(rect, job.request.view.zoom), (rect[2] - rect[0], rect[3] - rect[1]))
        request_id = job.request.request_id

        def progress(fraction: float) -> None:
            if job.cancel():
                raise Cancelled()
            if self.report_encoding is not None:
                self.report_encoding(request_id, fraction)

        started, before = time.perf_counter(), latent.pixels_encoded
        with encoder_threads(self.encode_threads):
            latent.ensure(*codes, progress)
        if latent.pixels_encoded > before:
            self.encode_rate = (latent.pixels_encoded - before) / max(time.perf_counter() - started, 1e-6)

    def _fusion_cost_s(self, latent: Latent, region, size) -> float | None:
        """What a fused pass of `region` should take here, from the measured rates (None:
        not measured yet); 0 on a GPU, where it always runs."""
        if latent.device.type == "cuda":
            return 0.0
        if not (self.encode_rate and self.model_rate):
            return None
        y0, y1, x0, x1 = fusion_crop(latent, region, size)
        return ((FUSED_VIEWS - 1) * (y1 - y0) * (x1 - x0) / self.encode_rate
                + FUSED_VIEWS * size[0] * size[1] / self.model_rate)

    def _fused_pass(self, job: _Job, parts: list) -> None:
        """The chosen model's view fused from the photo's 8 views, as one piece, when it is
        affordable; cancelled like every pass."""
        model = effect_of(MODEL, job.request.view.zoom, job.request.model, job.source.models)
        if model in COST or job.step != 1 or job.request.view.zoom < FUSE_MIN_ZOOM:
            return
        latent = job.source.latent(model)
        rect = bounding_rect(p.rect for p in parts)
        view, size = job.request.view, (rect[2] - rect[0], rect[3] - rect[1])
        region = global_region(rect, view.zoom)
        cost = self._fusion_cost_s(latent, region, size)
        if cost is None or cost > self.fuse_budget_s:
            return
        request_id = job.request.request_id

        def progress(fraction: float) -> None:
            if self.report_fusing is not None:
                self.report_fusing(request_id, fraction)

        progress(0.0)
        with encoder_threads(self.encode_threads):   # seven encodings of the crop: at the rate measured
            rgb = render_fused_crop(latent, region, size, FUSED_VIEWS, cancel=job.cancel, progress=progress,
                                    cell_clip=job.source.cell_clip, cell=(1 / view.zoom,) * 2)
        if job.cancel():
            raise Cancelled()
        image = self._to_image(job, rgb)
        for kind in job.by_effect[model]:
            if kind == MODEL:
                self.deliver(RenderPiece(request_id, kind, view, rect, image, fused=True))
        progress(1.0)

    def _preview_latent(self, request: RenderRequest, source: Source, model: str, parts: list) -> Latent | None:
        """The preview model's Latent when `model`'s Latent lacks tiles these parts read
        (so the view would wait for the full encoder); else None."""
        if source.preview is None or source.latent is None:
            return None
        latent = source.latent(model)
        rect = bounding_rect(p.rect for p in parts)
        codes = codes_read(latent, global_region(rect, request.view.zoom), (rect[2] - rect[0], rect[3] - rect[1]))
        return source.preview() if latent.missing(*codes) else None

    def _preview_pass(self, job: _Job, parts: list, latent: Latent) -> None:
        """The preview model's picture of the parts' bounding rectangle, as one piece per
        kind: painted at once, replaced tile by tile as the model's sharp tiles come."""
        rect = bounding_rect(p.rect for p in parts)
        view, size = job.request.view, (rect[2] - rect[0], rect[3] - rect[1])
        weight = PREVIEW_COST * sum(pixels(p.rect) for p in parts)

        def progress(fraction: float) -> None:
            if job.cancel():
                raise Cancelled()

        region = global_region(rect, view.zoom)
        with encoder_threads(self.encode_threads):
            latent.ensure(*codes_read(latent, region, size), progress)
        rgb = render_sparse(latent, region, size, job.step, rect[:2], cancel=job.cancel,
                            progress=job.progress.part(weight), cell_clip=job.source.cell_clip,
                            cell=(1 / view.zoom,) * 2)
        if job.cancel():
            raise Cancelled()
        image = self._to_image(job, rgb)
        job.progress.done += weight
        for kind in job.by_effect[job.model]:
            self.deliver(RenderPiece(job.request.request_id, kind, view, rect, image, preview=True))

    def _coarse_pass(self, job: _Job, parts: list, model_pixels: int) -> None:
        rect = bounding_rect(p.rect for p in parts)
        size = (max(1, -(-(rect[2] - rect[0]) // COARSE_FACTOR)), max(1, -(-(rect[3] - rect[1]) // COARSE_FACTOR)))
        weight = model_pixels / COARSE_FACTOR ** 2
        view = job.request.view
        image = self._image(job, job.model, global_region(rect, view.zoom), size, job.progress.part(weight))
        job.progress.done += weight
        for kind in job.by_effect[job.model]:
            self.deliver(RenderPiece(job.request.request_id, kind, view, rect, image, coarse=True))

    def _model_tiles(self, job: _Job, parts: list) -> Iterator[tuple]:
        """(part, image) for the model's sharp tiles, as they finish; then the rate."""
        started = time.perf_counter()
        total = sum(pixels(p.rect) for p in parts)
        rect = bounding_rect(p.rect for p in parts)
        if len(parts) > 1 and total == pixels(rect) and self.model_rate and total / self.model_rate <= ONE_PASS_S:
            yield from self._one_render(job, parts, rect)
        else:
            yield from self._lanes(job, parts)
        self.model_rate = total / max(time.perf_counter() - started, 1e-6)

    def _one_render(self, job: _Job, parts: list, rect) -> Iterator[tuple]:
        """The tiles fill `rect` (a new view): one large render splits over the cores far
        better than many small ones; then it is cut into the tiles."""
        size = (rect[2] - rect[0], rect[3] - rect[1])
        rgb = self._model_rgb(job, global_region(rect, job.request.view.zoom), size,
                              job.progress.part(pixels(rect)), origin=rect[:2])
        if job.cancel():
            raise Cancelled()
        for part in parts:
            x0, y0, x1, y1 = part.rect
            yield part, self._to_image(job, rgb[y0 - rect[1]:y1 - rect[1], x0 - rect[0]:x1 - rect[0]])

    def _lanes(self, job: _Job, parts: list) -> Iterator[tuple]:
        """Several tiles at once, each on one thread (they arrive centre first, a few at a
        time, which matters for a slow decoder); one after another on a single lane."""
        lanes = min(render_workers(job.source.device), len(parts))
        if lanes <= 1:
            for part in parts:
                yield part, self._image(job, job.model, part.region, part.out_size, job.progress.part(pixels(part.rect)),
                                        origin=part.rect[:2])
            return
        threads = torch.get_num_threads()

        def lane(part):
            if torch.get_num_threads() != threads:  # a pool thread: the render thread's intra-op threads
                torch.set_num_threads(threads)
            return self._image(job, job.model, part.region, part.out_size, None, workers=1, origin=part.rect[:2])

        pool = ThreadPoolExecutor(lanes)
        try:
            futures = {pool.submit(lane, part): part for part in parts}  # centre first, as listed
            for future in as_completed(futures):
                yield futures[future], future.result()
        finally:
            pool.shutdown(wait=True, cancel_futures=True)

    def _model_rgb(self, job: _Job, region, out_size, progress, workers=None, origin=(0, 0)) -> np.ndarray:
        """The model's pixels; with Faster Deep Zoom sampled on the view's global grid."""
        cell = (1 / job.request.view.zoom,) * 2
        return render_sparse(job.source.latent(job.model), region, out_size, job.step, origin, cancel=job.cancel,
                             progress=progress, cell_clip=job.source.cell_clip, cell=cell, workers=workers)

    def _image(self, job: _Job, effect: str, region, out_size, progress, workers=None, origin=(0, 0)):
        if effect not in COST:
            rgb = self._model_rgb(job, region, out_size, progress, workers, origin)
        elif effect == BICUBIC:
            rgb = bicubic_region(job.source.image, region, out_size)
        else:
            rgb = area_region(job.source.image, region, out_size)
        if job.cancel():  # never deliver (or cache) a piece of a view nobody wants any more
            raise Cancelled()
        return self._to_image(job, rgb)

    def _to_image(self, job: _Job, rgb: np.ndarray):
        if job.source.display is not None:
            rgb = job.source.display(rgb)
        return self.to_image(to_rgb8(rgb))


@dataclass
class _Job:
    """One request in progress, as the passes need it."""
    request: RenderRequest
    source: Source
    cancel: Callable[[], bool]
    by_effect: dict[str, list[str]]
    step: int                        # display pixels per decoded sample of the sharp tiles
    progress: _Progress
    model: str = ""                  # the model whose tiles are being rendered
