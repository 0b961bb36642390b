"""View > Detail Map (H): the detail map (engine/detail.py) painted over the photo as a
heat map, transparent where there is no detail, through red to yellow where there is
most. One pixel per cell, drawn smoothly scaled onto the cells' source rectangle in the
current view, so it stays on the photo at every zoom and pan. No torch.
"""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QRectF
from PySide6.QtGui import QImage, QPainter

MOST_ALPHA = 0.7      # the hottest cell still lets the photo show through
TOP_PERCENTILE = 98   # the colour scale's top: one very hot cell does not leave the rest faint


def heat_colours(values: np.ndarray) -> np.ndarray:
    """RGBA uint8 (rows x cols x 4, premultiplied alpha) for a detail map's values: alpha
    and green grow in proportion to the value on the map's own scale (0 .. its 98th
    percentile), so the colour goes from transparent through red to yellow."""
    values = np.asarray(values, dtype=np.float32)
    top = float(np.percentile(values, TOP_PERCENTILE)) if values.size else 0.0
    v = np.clip(values / top, 0, 1) if top > 0 else np.zeros_like(values)
    alpha = MOST_ALPHA * v
    rgba = np.stack([np.ones_like(v), v, np.zeros_like(v), np.ones_like(v)], -1) * alpha[..., None]
    return (rgba * 255 + 0.5).astype(np.uint8)


def heat_image(values: np.ndarray) -> QImage:
    """The heat map as a QImage, one pixel per cell."""
    rgba = np.ascontiguousarray(heat_colours(values))
    h, w = rgba.shape[:2]
    return QImage(rgba.data, w, h, 4 * w, QImage.Format.Format_RGBA8888_Premultiplied).copy()


class HeatOverlay:
    """Paints one detail map (`show(map)`; None: nothing) over a canvas while `on`."""

    def __init__(self) -> None:
        self.on = False
        self.image: QImage | None = None
        self.map = None

    def show(self, dmap) -> None:
        self.map = dmap
        self.image = None if dmap is None else heat_image(dmap.values)

    def __call__(self, p: QPainter, canvas) -> None:
        """Paint onto `canvas` (a ZoomCanvas; `p` is in its device pixels)."""
        view = canvas.viewport.view
        if not self.on or self.image is None or view is None:
            return
        rows, cols = self.map.values.shape
        cell, (img_w, img_h) = self.map.cell, self.map.size
        # only the cells on screen (and one more each way, for the smooth scaling's sake):
        # at x64 the whole map's rectangle would be hundreds of thousands of pixels across
        x, y, w, h = view.visible_region()
        c0, c1 = max(int(x // cell) - 1, 0), min(int((x + w) // cell) + 2, cols)
        r0, r1 = max(int(y // cell) - 1, 0), min(int((y + h) // cell) + 2, rows)
        if c1 <= c0 or r1 <= r0:
            return
        (x0, x1), (y0, y1) = view.image_to_screen([c0 * cell, c1 * cell], [r0 * cell, r1 * cell])
        (px0, px1), (py0, py1) = view.image_to_screen([0, img_w], [0, img_h])
        p.save()
        p.setClipRect(QRectF(px0, py0, px1 - px0, py1 - py0))   # the last cells reach past the photo
        p.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform)
        p.drawImage(QRectF(x0, y0, x1 - x0, y1 - y0), self.image, QRectF(c0, r0, c1 - c0, r1 - r0))
        p.restore()
