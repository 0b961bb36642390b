"""The status bar's zoom box: shows the zoom as "×12.4" and takes a typed one ("1250 %",
"×12.5", "x12.5" or "12.5"), applied about the centre of the view. No torch."""

from __future__ import annotations

import math
import re

from PySide6.QtWidgets import QLineEdit

_ZOOM = re.compile(r"^\s*([x×*]?)\s*([0-9]*[.,]?[0-9]+)\s*(%?)\s*$", re.IGNORECASE)


def zoom_text(zoom: float) -> str:
    return f"×{zoom:.3g}" if zoom < 100 else f"×{zoom:.0f}"


def parse_zoom(text: str) -> float | None:
    """The zoom (screen pixels per photo pixel) typed as "1250 %", "×12.5", "x12.5" or
    "12.5"; None when it is not one (or not a positive finite number)."""
    m = _ZOOM.match(text)
    if not m or (m.group(1) and m.group(3)):
        return None
    value = float(m.group(2).replace(",", "."))
    if m.group(3):
        value /= 100.0
    return value if value > 0 and math.isfinite(value) else None


class ZoomBox(QLineEdit):
    """Shows the view's zoom; Enter applies a typed one (`apply(zoom)`); a bad entry gets
    the status bar's one sentence (`complain(text)`) and the box shows the zoom again."""

    def __init__(self, apply, complain, parent=None) -> None:
        super().__init__(parent)
        self._apply, self._complain = apply, complain
        self._zoom: float | None = None
        self.setFixedWidth(80)
        self.setToolTip("zoom: type 1250 % or ×12.5 and press Enter")
        self.returnPressed.connect(self._typed)

    def show_zoom(self, zoom: float) -> None:
        self._zoom = zoom
        if not self.hasFocus():
            self.setText(zoom_text(zoom))

    def _typed(self) -> None:
        zoom = parse_zoom(self.text())
        if zoom is None:
            self._complain(f"“{self.text().strip()}” is not a zoom: type 1250 % or ×12.5.")
        else:
            self._apply(zoom)
        self.clearFocus()
        if self._zoom is not None:
            self.setText(zoom_text(self._zoom))

    def focusOutEvent(self, event) -> None:
        super().focusOutEvent(event)
        if self._zoom is not None:
            self.setText(zoom_text(self._zoom))
