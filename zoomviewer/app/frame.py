"""What the canvases paint from: `source_pyramid` (the photo as 8-bit QImages, halved
for fitted views of big photos) and `Frame` (the best picture so far for one view, with
the regions already sharp). No widgets, no torch.
"""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QRect, QRectF, Qt
from PySide6.QtGui import QImage, QPainter, QRegion, QTransform

from ..engine.geometry import View
from ..engine.resample import to_rgb8
from .qimages import rgb8_image

GOOD_WARP = 3.0                  # a frame warped by up to x3 beats a 1/4-resolution coarse pass
PYRAMID_STOP = 2048              # source_pyramid halves until the longer side is at most this
STRIP_ROWS = 256                 # float -> 8-bit conversion in row strips: small temporaries


def source_pyramid(rgb: np.ndarray, stop: int = PYRAMID_STOP) -> list[QImage]:
    """What the canvases draw before any frame arrives: `rgb` (sRGB HxWx3, float in [0, 1]
    or uint8) as an 8-bit QImage, then 2x2-averaged halvings while the longer side exceeds
    `stop` (a fitted view of a big photo needs them at once). Safe on any thread, and done
    in numpy, strip by strip, because numpy lets go of the GIL while it works: for a 100 MP
    photo this takes seconds, and the window's loader thread must not hold up its GUI
    thread meanwhile (QImage.scaled would, for half a second a halving)."""
    h, w = rgb.shape[:2]
    image, pixels = rgb8_image(w, h)
    for y in range(0, h, STRIP_ROWS):
        strip = rgb[y:y + STRIP_ROWS]
        pixels[y:y + STRIP_ROWS] = strip if strip.dtype == np.uint8 else to_rgb8(strip)
    levels = [image]
    while max(pixels.shape[:2]) > stop and min(pixels.shape[:2]) >= 2:
        half, half_pixels = rgb8_image(pixels.shape[1] // 2, pixels.shape[0] // 2)
        for y in range(0, half_pixels.shape[0], STRIP_ROWS):
            y1 = min(y + STRIP_ROWS, half_pixels.shape[0])
            block = pixels[2 * y:2 * y1, :2 * half_pixels.shape[1]]
            total = block[0::2, 0::2].astype(np.uint16)
            total += block[1::2, 0::2]
            total += block[0::2, 1::2]
            total += block[1::2, 1::2]
            total += 2                      # rounds the average of four to nearest
            half_pixels[y:y1] = total >> 2
        levels.append(half)
        pixels = half_pixels
    return levels


def halved(image: QImage) -> QImage:
    return image.scaled(image.width() // 2, image.height() // 2, Qt.AspectRatioMode.IgnoreAspectRatio,
                        Qt.TransformationMode.SmoothTransformation)


class Frame:
    """The best picture for one view: an ARGB image in device pixels (transparent where
    nothing has arrived), the region already sharp, and the region holding warped
    content good enough that a coarse pass should not paint over it."""

    def __init__(self, view: View) -> None:
        self.view = view
        self.zoom, self.origin = view.zoom, view.origin
        self.image = QImage(max(1, view.screen_w), max(1, view.screen_h), QImage.Format.Format_ARGB32_Premultiplied)
        self.image.fill(Qt.GlobalColor.transparent)
        self.sharp = QRegion()
        self.good = QRegion()

    def matches(self, view: View) -> bool:
        return (self.zoom, self.origin, self.image.width(), self.image.height()) == \
            (view.zoom, view.origin, max(1, view.screen_w), max(1, view.screen_h))

    def transform_to(self, view: View) -> QTransform:
        """Frame pixels -> screen pixels of `view` (global pixels rescaled by the zoom ratio)."""
        s = view.zoom / self.zoom
        ox, oy = view.origin
        return QTransform(s, 0, 0, s, self.origin[0] * s - ox, self.origin[1] * s - oy)

    def warped_to(self, view: View) -> Frame:
        """A new frame for `view` that starts from this one's content, moved and scaled."""
        new = Frame(view)
        t = self.transform_to(view)
        p = QPainter(new.image)
        p.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, t.m11() != 1)
        p.setTransform(t)
        p.drawImage(0, 0, self.image)
        p.end()
        if t.m11() <= GOOD_WARP:
            new.good = t.map(self.sharp.united(self.good)).intersected(QRect(0, 0, view.screen_w, view.screen_h))
        return new

    def add(self, rect_global, image: QImage, coarse: bool) -> None:
        x0, y0 = rect_global[0] - self.origin[0], rect_global[1] - self.origin[1]
        rect = QRect(x0, y0, rect_global[2] - rect_global[0], rect_global[3] - rect_global[1])
        p = QPainter(self.image)
        p.setCompositionMode(QPainter.CompositionMode.CompositionMode_Source)
        if coarse:
            p.setClipRegion(QRegion(rect).subtracted(self.sharp).subtracted(self.good))
            p.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform)
            p.drawImage(QRectF(rect), image)
        else:
            p.drawImage(x0, y0, image)
            self.sharp = self.sharp.united(rect)
        p.end()
