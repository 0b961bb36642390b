"""Animated zoom for the keys (+, -, 0 fit, 1 = 100 %) and double-click: `zoom_path`, the
views between two views, and `ZoomAnimation`, which plays one over GLIDE_MS and can be
interrupted at any frame. No widgets, no torch.

The zoom is interpolated geometrically (equal ratios in equal times, so a step looks
the same at x2 as at x40), and the centre moves so that the one screen point on which
both views agree keeps its source point: the pointer for a double-click, the screen
centre for + and -. The wheel stays immediate: it is continuous already.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from PySide6.QtCore import QAbstractAnimation, QEasingCurve, QObject, QVariantAnimation

from ..engine.geometry import View

GLIDE_MS = 180


def zoom_path(start: View, end: View) -> Callable[[float], View]:
    """The view at progress u in [0, 1] from `start` to `end` (same screen size): the zoom
    z0 * (z1 / z0) ** u and the centre on the straight line between the two, placed so
    that the screen point both views map to the same source point stays on it. Without
    a change of zoom the centre moves evenly. path(0) is `start`, path(1) is `end`."""
    z0, z1 = start.zoom, end.zoom
    span = 1 / z1 - 1 / z0

    def at(u: float) -> View:
        if u >= 1:
            return end
        if u <= 0:
            return start
        zoom = z0 * (z1 / z0) ** u
        # The fixed point p at screen offset d from the centre: centre(t) = p - d / zoom(t),
        # so the centre has moved by the same share of its way as 1 / zoom has.
        share = (1 / zoom - 1 / z0) / span if abs(span) > 1e-12 / z0 else u
        return replace(start, zoom=zoom, cx=start.cx + (end.cx - start.cx) * share,
                       cy=start.cy + (end.cy - start.cy) * share)
    return at


class ZoomAnimation(QObject):
    """Plays a zoom_path: `show(view)` for every frame on the way (previews), then
    `finish(end, fitted)` once, when it has arrived. `stop()` leaves the view where it is,
    and neither is called again for that path."""

    def __init__(self, show: Callable[[View], None], finish: Callable[[View, bool], None],
                 duration_ms: int = GLIDE_MS, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._show, self._finish = show, finish
        self._path: Callable[[float], View] | None = None
        self.target: View | None = None
        self.fitted = False
        self._animation = QVariantAnimation(self)
        self._animation.setStartValue(0.0)
        self._animation.setEndValue(1.0)
        self._animation.setDuration(duration_ms)
        # fast at first, settling gently: the response to the key is seen at once
        self._animation.setEasingCurve(QEasingCurve.Type.OutCubic)
        self._animation.valueChanged.connect(self._step)
        self._animation.finished.connect(self._arrived)

    @property
    def running(self) -> bool:
        return self._animation.state() == QAbstractAnimation.State.Running

    def start(self, start: View, end: View, fitted: bool = False) -> None:
        """Go from `start` (the view on screen now) to `end`; one running stops first."""
        self._animation.stop()
        self._path, self.target, self.fitted = zoom_path(start, end), end, fitted
        self._animation.start()

    def stop(self) -> bool:
        """Stop where it is; True when one was running."""
        running = self.running
        self._animation.stop()
        self._path = self.target = None
        return running

    def _step(self, value) -> None:
        if self._path is not None and float(value) < 1:   # the last frame is finish()'s
            self._show(self._path(float(value)))

    def _arrived(self) -> None:
        target, fitted = self.target, self.fitted
        self._path = self.target = None
        if target is not None:
            self._finish(target, fitted)
