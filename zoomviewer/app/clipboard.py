"""The clipboard, both ways: a pasted image (a browser's "Copy image") becomes an unsaved
photo; a pasted file (a file manager's "Copy") is opened like any other; Copy View puts
the pixels on show there. No torch."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PySide6.QtCore import QMimeData
from PySide6.QtGui import QImage

from ..engine import images
from ..engine.formats import is_photo_name
from .qimages import rgb8_from_qimage

PASTED_NAME = "Pasted image.png"     # what an unsaved photo is called (title, export's default name)


def photo_from_image(image: QImage, folder: Path | None = None) -> images.Photo:
    """An unsaved Photo of a QImage's colours (alpha dropped), named PASTED_NAME in
    `folder` (default: the home folder) so that Export suggests a place for it."""
    rgb8 = rgb8_from_qimage(image)
    pixels = np.ascontiguousarray(rgb8, dtype=np.float32) / np.float32(255)
    meta = images.PhotoMetadata(source_format="clipboard")
    return images.Photo(pixels, meta, Path(folder or Path.home()) / PASTED_NAME)


def pasted(mime: QMimeData | None) -> images.Photo | Path | str:
    """What a paste gives: a Photo (image data), the Path of a copied photo file, or one
    sentence saying why there is nothing to open."""
    if mime is None:
        return "The clipboard is empty."
    files = [Path(url.toLocalFile()) for url in mime.urls() if url.isLocalFile()]
    photos = [f for f in files if is_photo_name(f)]
    if photos:
        return photos[0]
    if mime.hasImage():
        image = mime.imageData()
        if isinstance(image, QImage) and not image.isNull():
            return photo_from_image(image)
    if files:
        return f"{files[0].name} is not a photo this viewer can open."
    return "The clipboard holds no image to paste."
