"""The render thread: one long-lived QThread that owns the model, the photo's Latent and
the tile cache, and turns requests into pixels; its loop and cancellation live here, the
passes of a view in view_passes.py, the tile cache in tile_cache.py, exports in exports.py.

The GUI hands it RenderRequests (protocol.py). Only the newest request matters: a new one
bumps a generation counter that the running render checks between chunks, so superseded
work stops within one chunk and is never delivered. An export takes priority over viewing;
the interrupted view is taken up again after it. Results go back as Qt signals carrying
QImages made here, off the GUI thread.

The thread holds the models by name (fast, liif, restore): the first it is given, the
others loaded from their weights the first time a request names one (the Model menu, a
model-vs-model compare). A photo's Latent for a model is made once, under a lock, by
whichever thread asks first (the render thread or one of its parallel lanes); every other
caller gets the same one. A request releases the Latents of the models it does not use.
The preview model (bundled.PREVIEW_FILE), when installed, has a Latent of its own for the
request in progress: what a view shows while the chosen model's tiles encode. It is let
go when the request ends (the model's own tiles are there then).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable

import numpy as np
import torch
from PySide6.QtCore import QThread, Signal

from ..engine.bundled import MODEL_FILES, shipped_weights
from ..engine.model import load_weights, pick_device
from ..engine.model.layout import encoder_layout
from ..engine.model.native import fast_kernel
from ..engine.latent import LATENT_TILE
from ..engine.render import Cancelled, Latent
from .details_thread import DetailsThread
from .encode_ahead import EncodeAhead
from .exports import CANCELLED, FINISHED, run_export
from .protocol import BICUBIC, MODEL, ExportJob, ModelInfo, RenderRequest, model_label
from .qimages import qimage_from_rgb8
from .tile_cache import TileCache
from .view_passes import Source, ViewPasses


def render_threads() -> int:
    """Intra-op threads for rendering: all cores but one, at most 4. The spare core keeps
    the GUI thread responsive; and viewport tiles are small operations, for which waiting
    on busy cores costs far more than extra threads gain (on a loaded 2-core machine a
    128x128 tile took 1.6 s with 2 threads and 9 ms with 1)."""
    return max(1, min(4, (os.cpu_count() or 2) - 1))


def model_name(model) -> str:
    """A model's name: what its weights' meta calls it, else its kind (fast, liif)."""
    return str((getattr(model, "meta", None) or {}).get("name") or getattr(model, "kind", "") or "model")


def load_shipped(name: str):
    """The shipped model `name`, from its weights file (ValueError when not installed)."""
    path = shipped_weights(name)
    if path is None:
        raise ValueError(f"the {name} model is not installed")
    return load_weights(path)[0]


def about_model(model, name: str) -> tuple[str, ...]:
    """Help > About's lines on the first model (from its weights' meta) and PyTorch."""
    lines = []
    if model is not None:
        meta = getattr(model, "meta", None) or {}
        text = f"Model: {model_label(name)}"
        if meta.get("iterations") is not None:
            text += f", {meta['iterations']:,} training iterations"
        if meta.get("training_data"):
            text += " on " + "; ".join(str(d) for d in meta["training_data"])
        lines.append(text + ".")
        if meta.get("degradation"):
            lines.append(f"Trained on degraded inputs: {meta['degradation']}.")
    lines.append(f"PyTorch {torch.__version__}, {torch.get_num_threads()} threads for rendering.")
    return tuple(lines)


def installed_models() -> tuple[str, ...]:
    return tuple(name for name in MODEL_FILES if shipped_weights(name) is not None)


def describe_device(device) -> str:
    if getattr(device, "type", None) == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    return str(device)


class RenderThread(QThread):
    piece_ready = Signal(object)             # RenderPiece
    progress_changed = Signal(int, float)    # request_id, fraction done
    request_finished = Signal(int, float)    # request_id, seconds since it was taken up
    request_failed = Signal(int, str)        # request_id, one sentence
    encoding_progress = Signal(int, float)   # request_id, fraction of the latent tiles it waits for
    fusing_progress = Signal(int, float)     # request_id, fraction of its fused pass done
    model_ready = Signal(object)             # ModelInfo
    model_failed = Signal(str)               # one sentence
    export_progress = Signal(float)
    export_finished = Signal(str)            # path written
    export_failed = Signal(str)              # one sentence
    export_cancelled = Signal()

    def __init__(self, model_or_weights=None, device: str | None = None, *, tile: int = 256,
                 cache_mb: float = 256, latent_budget_mb: float = 1536, cell_clip: bool = False,
                 threads: int | None = None, latent_factory: Callable[..., Latent] = Latent,
                 cache: TileCache | None = None, model_loader: Callable[[str], object] = load_shipped,
                 choices: tuple[str, ...] | None = None, preview_loader: Callable[[], object] | None = None,
                 parent=None) -> None:
        """`model_or_weights`: a model (nn.Module), a weights file path (loaded on this
        thread), or None for no model (the "model" kind then renders bicubic). `threads`:
        torch intra-op threads for this thread's work (default: render_threads()).
        `latent_factory(model, image, device=, budget_mb=)` makes a photo's Latent;
        `cache` replaces the TileCache of `cache_mb` finished tiles. `model_loader(name)`
        loads another model when a request names it, one of `choices` (default: the
        installed shipped models; none without a first model). `preview_loader()` gives
        the preview model (the viewer's is load_preview); without one, or when it gives
        None, views wait for their model's encoder, with a coarse pass."""
        super().__init__(parent)
        self.threads = threads or render_threads()
        self._model_spec = model_or_weights
        self._device_name = device
        self.latent_budget_mb = latent_budget_mb
        self.cell_clip = cell_clip
        self._latent_factory = latent_factory
        self._model_loader = model_loader
        self._choices = choices
        self._preview_loader = preview_loader
        self.preview_model = None
        self._preview_latent: Latent | None = None
        self.models: dict[str, object] = {}     # name -> model, the first one first
        self.model = None
        self.device = None
        self.model_info: ModelInfo | None = None   # set (on this thread) just before model_ready
        self.cache = cache if cache is not None else TileCache(int(cache_mb * 2**20), lambda image: image.sizeInBytes())
        self.passes = ViewPasses(self.cache, qimage_from_rgb8, self.piece_ready.emit, self.progress_changed.emit,
                                 tile, self.encoding_progress.emit, self.fusing_progress.emit)
        self._cond = threading.Condition()
        self._generation = 0
        self._pending: RenderRequest | None = None
        self._export_job: ExportJob | None = None
        self._export_cancel = False
        self._stopping = False
        self._next_image = None           # (pixels, image_id, display) set by the GUI
        self._source: Source | None = None
        self._image_id = -1
        self._latent_lock = threading.Lock()
        self._latents: dict[str, Latent] = {}
        # encodings use every core torch would (its default, read here on the GUI thread)
        self.ahead = EncodeAhead(torch.get_num_threads())   # the tiles around the last sharp view, when idle
        self.passes.encode_threads = self.ahead.threads

    @property
    def loaded(self) -> bool:
        """Whether the model has been loaded (or failed to load) and model_ready sent."""
        return self.model_info is not None

    def latents_held(self) -> tuple[str, ...]:
        """The names of the models whose Latent of the photo is kept (memory in use)."""
        with self._latent_lock:
            return tuple(self._latents)

    def memory_held(self) -> dict[str, int]:
        """Bytes this renderer holds, by what holds them: the models' parameters, the
        photo's latent tiles and code tables (all models), the finished screen tiles."""
        with self._latent_lock:
            latents = list(self._latents.values()) + ([self._preview_latent] if self._preview_latent else [])
        held = [latent.bytes_held() for latent in latents]
        models = list(self.models.values()) + ([self.preview_model] if self.preview_model is not None else [])
        return {"model parameters": sum(p.nbytes for m in models for p in m.parameters()),
                "latent tiles": sum(t for t, _ in held), "code tables": sum(t for _, t in held),
                "screen tiles": self.cache.bytes}

    def detail_finder(self, parent=None) -> DetailsThread:
        """A thread that finds photos' details (details_thread.py) with this thread's first
        model, shared read only (None before it is loaded, or without one)."""
        return DetailsThread(lambda: self.model, parent)

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
        with self._cond:
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
                while not (self._work_waiting() or self.ahead.pending):
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
            else:
                self.ahead.run(self._busy)
        self._latents = {}
        self.cache.clear()

    def _work_waiting(self) -> bool:
        """Whether there is work other than encoding ahead (called under the lock)."""
        return bool(self._stopping or self._export_job or self._pending or self._next_image)

    def _busy(self) -> bool:
        with self._cond:
            return self._work_waiting()

    def _load_model(self) -> None:
        torch.set_num_threads(self.threads)   # per thread (OpenMP): the rest of the process keeps its own
        model = self._model_spec
        try:
            self.device = pick_device(self._device_name)
            if isinstance(model, (str, os.PathLike)):
                model = load_weights(model)[0]
            if model is not None and self._preview_loader is not None:
                self.preview_model = self._preview_loader()
        except Exception as e:  # WeightsError / ValueError carry a sentence; anything else still must not kill the thread
            self.model_failed.emit(str(e) or f"the model could not be loaded ({type(e).__name__})")
            model = None
        if self.device is None:
            self.device = pick_device("cpu")
        self.model = model
        name = ""
        if model is not None:
            # the fused decoder is built (once per machine) and the encoders' layout measured
            # now, while the photo is shown fitted, not in the first sharp frame
            for loaded in [model] + ([self.preview_model] if self.preview_model is not None else []):
                fast_kernel(loaded, self.device)
                encoder_layout(loaded.encoder.to(self.device), self.device)
            name = model_name(model)
            self.models[name] = model
        choices = self._choices if self._choices is not None else (installed_models() if model is not None else ())
        choices = tuple(dict.fromkeys(((name,) if name else ()) + tuple(choices)))
        self.model_info = ModelInfo(name, describe_device(self.device), bool(getattr(model, "local_ensemble", True)),
                                    choices, about_model(model, name))
        self.model_ready.emit(self.model_info)

    def _take_image(self) -> None:
        """Switch to the photo the GUI set last (under the lock)."""
        if self._next_image is None:
            return
        pixels, self._image_id, display = self._next_image
        self._next_image = None
        with self._latent_lock:
            self._latents = {}
            self._preview_latent = None
        latent = self._latent_for_photo if self.model is not None else None
        models = self.model_info.choices if self.model_info is not None else ()
        preview = self._preview_for_photo if self.preview_model is not None and latent is not None else None
        self._source = Source(pixels, latent, self.device, display, self.cell_clip, models, preview)
        self.cache.clear()
        self.ahead.clear()

    def _latent_for_photo(self, name: str = "") -> Latent:
        """The photo's Latent for model `name` ("": the first), made on first use by
        whichever thread asks first; the model is loaded then if it is not yet."""
        name = name or next(iter(self.models))
        with self._latent_lock:
            if name not in self._latents:
                if name not in self.models:
                    model = self._model_loader(name)
                    fast_kernel(model, self.device)
                    self.models[name] = model
                # the viewer renders from the first-layer term only: the codes need no memory
                self._latents[name] = self._latent_factory(self.models[name], self._source.image, device=self.device,
                                                           budget_mb=self.latent_budget_mb, keep_codes=False,
                                                           tile=LATENT_TILE)
            return self._latents[name]

    def _preview_for_photo(self) -> Latent:
        """The photo's Latent of the preview model for this request, made on first use."""
        with self._latent_lock:
            if self._preview_latent is None:
                self._preview_latent = self._latent_factory(self.preview_model, self._source.image, device=self.device,
                                                            budget_mb=self.latent_budget_mb, keep_codes=False,
                                                            tile=LATENT_TILE)
            return self._preview_latent

    def _release_unused(self, names: set[str]) -> None:
        """Let go of the Latents (and the loaded models, but the first) no view uses."""
        with self._latent_lock:
            for name in [n for n in self._latents if n not in names]:
                del self._latents[name]
            for name in [n for n in list(self.models)[1:] if n not in names]:
                del self.models[name]

    def _run_request(self, request: RenderRequest, generation: int) -> None:
        if request.image_id != self._image_id or self._source is None:
            return

        def cancel() -> bool:
            return self._generation != generation or self._stopping or self._export_job is not None

        first = next(iter(self.models), "")
        self._release_unused({(request.model or first) if k == MODEL else k for k in request.kinds if k != BICUBIC})
        started = time.perf_counter()
        try:
            self.passes.render(request, self._source, cancel)
            self.request_finished.emit(request.request_id, time.perf_counter() - started)
            self._plan_ahead(request)
        except Cancelled:
            with self._cond:  # paused for an export, not superseded: take it up again afterwards
                if self._generation == generation and self._pending is None and not self._stopping:
                    self._pending = request
        except Exception as e:  # a failed render must not end the thread; the GUI says it
            self.request_failed.emit(request.request_id, f"rendering failed: {e}")
        finally:
            for latent in list(self._latents.values()):
                latent.forget_tables()
            with self._latent_lock:
                self._preview_latent = None

    def _plan_ahead(self, request: RenderRequest) -> None:
        """After a sharp view of a model: encode around it when idle."""
        if request.view.zoom <= 1 or MODEL not in request.kinds or self.model is None:
            return
        region = request.view.visible_region()
        self.ahead.plan(self._latent_for_photo(request.model), region)

    def _run_export(self, job: ExportJob) -> None:
        if self._source is None:
            self.export_failed.emit("there is no photo open to export")
            return

        def cancel() -> bool:
            with self._cond:
                return self._export_cancel or self._stopping

        latent = self._source.latent
        outcome = run_export(job, latent and (lambda: latent(job.model)), cancel, self.export_progress.emit,
                             self.cell_clip)
        if outcome.how == FINISHED:
            self.export_finished.emit(outcome.detail)
        elif outcome.how == CANCELLED:
            self.export_cancelled.emit()
        else:
            self.export_failed.emit(outcome.detail)
