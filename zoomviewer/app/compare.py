"""The compare layouts around one shared Viewport: single, side by side (the chosen model
left, what it is compared with right: bicubic or another model; one View for both:
panning or zooming either moves both) and swipe (one canvas split by a draggable
divider), plus the A/B toggle that swaps what is shown in place. Both panes render the
same region on the same pixel grid, so differences are the methods', not the sampling's.
"""

from __future__ import annotations

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QWidget

from .canvas import ZoomCanvas
from .viewport import Viewport
from .protocol import BICUBIC, MODEL

SINGLE, SIDE, SWIPE = "single", "side", "swipe"
MODES = (SINGLE, SIDE, SWIPE)
GAP = 2  # logical pixels between the side-by-side panes


class CompareArea(QWidget):
    mode_changed = Signal(str)

    def __init__(self, viewport: Viewport, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.viewport = viewport
        self.left = ZoomCanvas(viewport, MODEL, self)
        self.right = ZoomCanvas(viewport, BICUBIC, self)
        self.right.primary = False     # both panes are the same size; the left one reports it
        self._mode = SINGLE
        self._swapped = False          # the A/B toggle: the other method where the model was, and back
        self._other = BICUBIC          # what the model is compared with: bicubic or a model's name
        self._apply()

    @property
    def mode(self) -> str:
        return self._mode

    @property
    def swapped(self) -> bool:
        return self._swapped

    @property
    def other(self) -> str:
        return self._other

    def set_other(self, kind: str) -> None:
        """Compare the chosen model with `kind`: BICUBIC or another model's name."""
        if kind != self._other:
            self._other = kind
            self._apply()

    def panes(self) -> list[ZoomCanvas]:
        return [self.left, self.right] if self._mode == SIDE else [self.left]

    def set_mode(self, mode: str) -> None:
        if mode not in MODES:
            raise ValueError(f"unknown compare mode {mode!r} (use {', '.join(MODES)})")
        if mode != self._mode:
            self._mode = mode
            self._apply()
            self.mode_changed.emit(mode)

    def cycle_mode(self) -> None:
        self.set_mode(MODES[(MODES.index(self._mode) + 1) % len(MODES)])

    def toggle_ab(self) -> None:
        self._swapped = not self._swapped
        self._apply()

    def set_explain(self, on: bool) -> None:
        for canvas in (self.left, self.right):
            canvas.explain = on
            canvas.update()

    def _apply(self) -> None:
        a, b = (self._other, MODEL) if self._swapped else (MODEL, self._other)
        self.left.kind, self.right.kind = a, b
        self.left.swipe = self._mode == SWIPE
        self.left.other_kind = b
        self.right.setVisible(self._mode == SIDE)
        self.viewport.set_kinds((a,) if self._mode == SINGLE else (a, b))
        self._layout()
        self.left.update()
        self.right.update()

    def resizeEvent(self, event) -> None:
        self._layout()
        super().resizeEvent(event)

    def _layout(self) -> None:
        # Laid out by hand so that both panes always have exactly the same size: the
        # shared View has one screen size.
        w, h = self.width(), self.height()
        if self._mode == SIDE:
            pane = max((w - GAP) // 2, 1)
            self.left.setGeometry(0, 0, pane, h)
            self.right.setGeometry(pane + GAP, 0, pane, h)
        else:
            self.left.setGeometry(0, 0, w, h)
