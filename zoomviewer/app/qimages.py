"""numpy pixels <-> QImage, for the render thread (which makes a piece's QImage) and the
widgets (the screen pyramid, screenshots and tests). No torch."""

from __future__ import annotations

import numpy as np
from PySide6.QtGui import QImage


def qimage_from_rgb8(rgb8: np.ndarray) -> QImage:
    """A QImage owning a copy of uint8 HxWx3 pixels."""
    rgb8 = np.ascontiguousarray(rgb8)
    h, w = rgb8.shape[:2]
    return QImage(rgb8.data, w, h, 3 * w, QImage.Format.Format_RGB888).copy()


def rgb8_from_qimage(image: QImage) -> np.ndarray:
    """The pixels of a QImage as uint8 HxWx3 (for tests and screenshots)."""
    image = image.convertToFormat(QImage.Format.Format_RGB888)
    h, w, stride = image.height(), image.width(), image.bytesPerLine()
    buf = np.frombuffer(image.constBits(), dtype=np.uint8, count=stride * h).reshape(h, stride)
    return buf[:, :3 * w].reshape(h, w, 3).copy()


def rgb8_image(w: int, h: int) -> tuple[QImage, np.ndarray]:
    """A new 8-bit RGB QImage and a writable HxWx3 numpy view of its pixels (valid while
    the image lives and is not copied)."""
    image = QImage(w, h, QImage.Format.Format_RGB888)
    if image.isNull():
        raise MemoryError(f"no memory for a {w}x{h} screen image")
    stride = image.bytesPerLine()
    rows = np.frombuffer(image.bits(), np.uint8, count=stride * h).reshape(h, stride)
    return image, rows[:, :3 * w].reshape(h, w, 3)
