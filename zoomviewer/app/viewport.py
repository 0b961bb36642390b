"""The state behind the zoomable canvases: `Viewport` (one shared View of one photo, the
frames (frame.py) for the kinds on show, the chosen model, and the render requests). No
widgets, no torch.

Every input event updates the View and repaints in the same event from what is at hand:
the last frame warped to the new view (QPainter transform), over the source smoothly
scaled. After a short debounce the Viewport asks the render thread for the new view; pieces of
the answer (cached tiles, a coarse pass, sharp tiles) are painted into a `Frame` as they
arrive, and pieces for any older request are dropped. Views are in device pixels and
always snapped to the global pixel grid, so a finished frame is shown pixel for pixel.
The keys' zoom glides (zoom_animation.py): its frames are painted the same way, and only
where it arrives is rendered; any other change of view stops it where it is.
"""

from __future__ import annotations

import math
import time

import numpy as np
from PySide6.QtCore import QObject, QTimer, Signal
from PySide6.QtGui import QImage

from ..engine.geometry import View, zoom_limits
from .frame import Frame, halved, source_pyramid
from .protocol import BICUBIC, MODEL, ModelInfo, RenderRequest, model_label
from .waiting import WaitingText
from .zoom_animation import ZoomAnimation

class Viewport(QObject):
    """One photo, one shared View, the frames for the kinds shown, and the requests."""

    changed = Signal()                # repaint
    view_changed = Signal(object)     # View
    cursor_changed = Signal(object)   # (x, y) in source pixels, or None
    state_changed = Signal(str)       # "refining 60 %", "sharp in 0.8 s"
    model_changed = Signal()
    sharp = Signal()                  # the newest view is fully rendered and nothing is pending

    def __init__(self, renderer, debounce_ms: int = 40, parent: QObject | None = None) -> None:
        """`renderer`: the render thread (render_thread.RenderThread), or anything with
        its signals and its set_image / request methods."""
        super().__init__(parent)
        self.renderer = renderer
        self.image_id = 0
        self.pixels: np.ndarray | None = None
        self._pyramid: list[QImage] = []
        self._view: View | None = None
        self._screen = (0, 0)
        self._kinds: tuple[str, ...] = (MODEL,)
        self.sparse = False                     # approximate deep zoom (set_sparse)
        self.fuse = False                       # a fused pass once sharp, where affordable (the viewer's is on)
        self.frames: dict[str, Frame] = {}
        self._request: RenderRequest | None = None
        self._request_started = 0.0
        self._request_done = True
        self._request_id = 0
        self._placement: tuple[float | None, tuple[float, float] | None] | None = None
        self.fitted = False                     # the view is "fit", and stays so as the window resizes
        self.cursor: tuple[float, float] | None = None   # the source point under the pointer
        self._pointer: tuple[float, float] | None = None
        self._waiting = WaitingText()            # the status while the request waits for its model
        self.model_name: str | None = None      # the chosen model; None until the render thread says; "" for none
        self.model_choices: tuple[str, ...] = ()
        self.device_name = ""
        self.local_ensemble = True
        self.state = ""
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(debounce_ms)
        self._timer.timeout.connect(self._send_request)
        self.glide = ZoomAnimation(lambda view: self._show(view, preview=True), self._glide_arrived, parent=self)
        self._unrequested = False               # a glide's frame is on show, and not asked for
        renderer.piece_ready.connect(self._on_piece)
        renderer.progress_changed.connect(self._on_progress)
        renderer.request_finished.connect(self._on_finished)
        renderer.request_failed.connect(self._on_failed)
        renderer.encoding_progress.connect(self._on_encoding)
        renderer.fusing_progress.connect(self._on_fusing)
        renderer.model_ready.connect(self._on_model_ready)
        if renderer.model_info is not None:  # it was started earlier and its signal has gone by
            self._on_model_ready(renderer.model_info)

    # -- the photo -------------------------------------------------------------------------
    @property
    def image_size(self) -> tuple[int, int] | None:
        return None if self.pixels is None else (self.pixels.shape[1], self.pixels.shape[0])

    def set_image(self, pixels: np.ndarray, display_rgb: np.ndarray | None = None, display=None,
                  pyramid: list[QImage] | None = None) -> None:
        """Show a new photo (float32 HxWx3) fitted to the screen. `display_rgb` is its sRGB
        version for the screen (float or uint8; default `pixels`), `display` the function
        that converts rendered pixels the same way (None when they are sRGB already).
        `pyramid`: source_pyramid(display_rgb) made beforehand (off the GUI thread: for a
        big photo it takes seconds); made here when None."""
        if pyramid is None:
            pyramid = source_pyramid(pixels if display_rgb is None else display_rgb)
        self.stop_glide()
        self.image_id += 1
        self.pixels = pixels
        self._pyramid = list(pyramid)
        self.frames = {}
        self._request = None
        self._request_done = True
        self.renderer.set_image(pixels, self.image_id, display)
        self._view = None
        self._update_cursor()     # the last photo's point is gone, even if the next view never comes
        self._apply_placement()

    def source_level(self, zoom: float) -> tuple[QImage, int]:
        """The source halved k times, for smooth downscaling without aliasing: the smallest
        level still at least as large as the screen's rendering of it. -> (image, 2**k)."""
        k = 0 if zoom >= 1 else int(math.floor(math.log2(1 / zoom)))
        while len(self._pyramid) <= k:
            last = self._pyramid[-1]
            if last.width() < 2 or last.height() < 2:
                break
            self._pyramid.append(halved(last))
        k = min(k, len(self._pyramid) - 1)
        return self._pyramid[k], 2 ** k

    # -- the view --------------------------------------------------------------------------
    @property
    def view(self) -> View | None:
        return self._view

    @property
    def screen_size(self) -> tuple[int, int]:
        return self._screen

    def limits(self) -> tuple[float, float]:
        w, h = self.image_size or (1, 1)
        return zoom_limits(w, h, *self._screen)

    def set_screen_size(self, w: int, h: int) -> None:
        if (w, h) == self._screen or w <= 0 or h <= 0:
            return
        self._screen = (w, h)
        if self._view is None or self.fitted or (self.glide.running and self.glide.fitted):
            self._apply_placement()
        else:
            self.set_view(self._view.resized(w, h))

    def place(self, zoom: float | None = None, center: tuple[float, float] | None = None) -> None:
        """Show the photo at this zoom (None: fit) around this source point (None: its
        centre); waits for a screen size if there is none yet."""
        self._placement = (zoom, center)
        self._apply_placement()

    def _apply_placement(self) -> None:
        if self.pixels is None or self._screen[0] <= 0:
            return
        w, h = self.image_size
        view = View.fit(w, h, *self._screen)
        fitted = True
        if self._placement is not None:
            zoom, center = self._placement
            self._placement = None
            lo, hi = self.limits()
            view = View(*(center or (w / 2, h / 2)), min(max(zoom or view.zoom, lo), hi), *self._screen)
            fitted = zoom is None and center is None
        self.set_view(view, fitted)

    def set_view(self, view: View, fitted: bool = False) -> None:
        """Make `view` current (kept over the photo, snapped), repaint now, render soon.
        `fitted`: it is the fitted view, to be kept fitted when the screen size changes.
        A glide on its way stops here: any input starts from what is on screen."""
        self.stop_glide()
        self._show(view, fitted)

    def _show(self, view: View, fitted: bool = False, preview: bool = False) -> None:
        """`preview`: a glide's frame, painted but not rendered (the glide asks at its end)."""
        if self.pixels is None:
            return
        self.fitted = fitted
        view = view.clamped(*self.image_size).snapped()
        if view == self._view:
            return
        self._view = view
        self.changed.emit()
        self.view_changed.emit(view)
        self._update_cursor()
        self._request_done = False
        if self.state.startswith("sharp in"):   # that was the last view's; this one is not sharp yet
            self._set_state("")
        if preview:
            self._timer.stop()
            self._unrequested = True
        else:
            self._timer.start()

    # -- glides: the keys' and double-click's animated zoom (zoom_animation.py) ------------
    @property
    def heading(self) -> View | None:
        """A running glide's end, else the view: a second + steps on from the first's end."""
        return self.glide.target if self.glide.running else self._view

    def glide_to(self, view: View, fitted: bool = False) -> None:
        """Move to `view` over GLIDE_MS; the render thread is asked once, on arrival."""
        if self._view is None:
            return
        end = view.clamped(*self.image_size).snapped()
        if end == self._view:         # there already (0 when fitted, + at the limit)
            self.stop_glide()
            self.fitted = fitted
        else:
            self.glide.start(self._view, end, fitted)

    def glide_by(self, factor: float) -> None:
        """Zoom by `factor` about the centre of the screen, animated (+ and -)."""
        if self._view is not None:
            v = self.heading
            self.glide_to(v.zoom_at(v.screen_w / 2, v.screen_h / 2, factor, *self.limits()))

    def glide_fit(self) -> None:
        if self._view is not None:
            self.glide_to(View.fit(*self.image_size, *self._screen), fitted=True)

    def glide_actual(self) -> None:
        if self._view is not None:
            self.glide_to(View(self.heading.cx, self.heading.cy, 1.0, *self._screen))

    def stop_glide(self) -> None:
        """Stop a glide where it is; the view it left on screen gets rendered."""
        if self.glide.stop() and self._unrequested:
            self._timer.start()

    def _glide_arrived(self, view: View, fitted: bool) -> None:
        self._show(view, fitted)
        if self._unrequested or self._timer.isActive():
            self._timer.stop()
            self._send_request()

    def zoom_to(self, zoom: float) -> None:
        """This zoom (clamped to the limits) about the centre of the view."""
        if self._view is not None:
            lo, hi = self.limits()
            v = self._view
            self.set_view(View(v.cx, v.cy, min(max(float(zoom), lo), hi), v.screen_w, v.screen_h))

    def zoom_at(self, sx: float, sy: float, factor: float) -> None:
        if self._view is not None:
            self.set_view(self._view.zoom_at(sx, sy, factor, *self.limits()))

    def zoom_by(self, factor: float) -> None:
        if self._view is not None:
            self.zoom_at(self._view.screen_w / 2, self._view.screen_h / 2, factor)

    def pan_by(self, dx: float, dy: float) -> None:
        if self._view is not None:
            self.set_view(self._view.pan_by(dx, dy))

    def fit(self) -> None:
        self.place(None, None)

    def actual_size(self) -> None:
        """100 %: one source pixel per device pixel, around the current centre."""
        if self._view is not None:
            self.set_view(View(self._view.cx, self._view.cy, 1.0, *self._screen))

    def set_kinds(self, kinds: tuple[str, ...]) -> None:
        """Which kinds of frame the visible canvases show (MODEL, BICUBIC)."""
        kinds = tuple(dict.fromkeys(kinds))
        if kinds != self._kinds:
            self._kinds = kinds
            if self._view is not None:
                self._request_done = False
                self._timer.start()
            self.changed.emit()

    @property
    def kinds(self) -> tuple[str, ...]:
        return self._kinds

    def set_sparse(self, on: bool) -> None:
        """Approximate deep zoom: from x12 the decoder runs on every 2nd to 4th display
        pixel each way and the rest is filled in linearly (render.render_sparse)."""
        if bool(on) != self.sparse:
            self.sparse = bool(on)
            if self._view is not None:
                self._request_done = False
                self._timer.start()
            self.changed.emit()

    def set_pointer(self, screen: tuple[float, float] | None) -> None:
        """Where the pointer is, in device pixels of the view (None: not over the picture).
        The source point under it (`cursor`) follows every later change of view, by wheel,
        keys or a new photo, until the pointer moves again."""
        self._pointer = screen
        self._update_cursor()

    def _update_cursor(self) -> None:
        point = None
        if self._pointer is not None and self._view is not None:
            x, y = self._view.screen_to_image(*self._pointer)
            point = (float(x), float(y))
        if point != self.cursor:
            self.cursor = point
            self.cursor_changed.emit(point)

    # -- requests and results --------------------------------------------------------------
    def request_now(self) -> None:
        """Send the pending request without waiting for the debounce."""
        if self._timer.isActive():
            self._timer.stop()
            self._send_request()

    def is_sharp(self) -> bool:
        return self._view is not None and self._request_done and not self._timer.isActive()

    def _send_request(self) -> None:
        if self._view is None:
            return
        self._request_id += 1
        self._request = RenderRequest(self._request_id, self.image_id, self._view, self._kinds, self.sparse,
                                      self.model_name or "", self.fuse)
        self._request_started = time.perf_counter()
        self._waiting.start(self._request_id, self._request_started)
        self._request_done = False
        self._unrequested = False
        self.renderer.request(self._request)

    def _current(self, request_id: int) -> bool:
        return self._request is not None and request_id == self._request.request_id

    def _on_piece(self, piece) -> None:
        if not self._current(piece.request_id):
            return  # a superseded view: drop it
        frame = self.frames.get(piece.kind)
        if frame is None or not frame.matches(piece.view):
            frame = frame.warped_to(piece.view) if frame is not None else Frame(piece.view)
            self.frames[piece.kind] = frame
        frame.add(piece.rect, piece.image, piece.coarse or piece.preview)
        if piece.preview and self._waiting.preview_s is None:
            self._set_state(self._waiting.preview(time.perf_counter() - self._request_started))
        self.changed.emit()

    def _on_progress(self, request_id: int, fraction: float) -> None:
        if self._current(request_id) and fraction < 1:
            self._set_state(f"refining {int(100 * fraction)} %")

    def _on_encoding(self, request_id: int, fraction: float) -> None:
        """'encoding 40 %, about 6 s left' while the latent tiles of the view are encoded."""
        if self._current(request_id) and fraction < 1:
            self._set_state(self._waiting.encoding(fraction, time.perf_counter()))

    def _on_fusing(self, request_id: int, fraction: float) -> None:
        if self._current(request_id):
            self._set_state(self._waiting.fusing(fraction, time.perf_counter()))

    def _on_finished(self, request_id: int, seconds: float) -> None:
        if not self._current(request_id):
            return
        self._request_done = True
        self._set_state(self._waiting.finished(time.perf_counter()))
        if self.is_sharp():
            self.sharp.emit()

    def _on_failed(self, request_id: int, message: str) -> None:
        if self._current(request_id):
            self._request_done = True
            self._set_state(message)

    def _on_model_ready(self, info: ModelInfo) -> None:
        self.model_choices, self.device_name = info.choices, info.device
        self.local_ensemble = info.local_ensemble
        wanted = self.model_name if self.model_name in info.choices else info.name
        self.model_name = None
        self.set_model(wanted)

    def set_model(self, name: str) -> None:
        """Render the MODEL kind with model `name` (one of model_choices) from now on: the
        view stays, the last model's frame stays on show until the new one's tiles come."""
        if name == self.model_name:
            return
        self.model_name = name
        frame = self.frames.get(MODEL)
        if frame is not None:
            self.frames[MODEL] = frame.warped_to(frame.view)   # same pixels, none of them sharp
        if self._view is not None:
            self._request_done = False
            self._timer.start()
        self.model_changed.emit()
        self.changed.emit()

    def _set_state(self, text: str) -> None:
        if text != self.state:
            self.state = text
            self.state_changed.emit(text)

    def kind_label(self, kind: str) -> str:
        if self._view is not None and self._view.zoom <= 1:
            return "source, area-averaged (zoom ≤ 100 %)"
        if kind == BICUBIC or self.model_name == "":
            return "bicubic" + (" (no model loaded)" if kind == MODEL else "")
        if kind != MODEL:
            return f"model: {model_label(kind)}"
        return f"model: {model_label(self.model_name)}" if self.model_name else "model (loading)"

