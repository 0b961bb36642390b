"""Optional face detection for the Details list: OpenCV's Haar cascades on a downscaled
grey copy of the photo: frontal faces that two cascades agree on (default and alt2: each
alone finds flowers and motorbikes in the Kodak set, together none), and profiles facing
either way. OpenCV is the `faces` extra (opencv-python-headless 4.x, which ships the
cascades inside the package: nothing is downloaded at run time; OpenCV 5 dropped them).
Without it `find_faces` returns [] and `available()` is False, `missing()` saying why
in one sentence.
"""

from __future__ import annotations

import os
from functools import cache

import numpy as np

from .detail import DetailRegion, iou, shrunk

DETECT_SIDE = 480        # the grey copy's longest side: faces from 4 % of it (MIN_FACE) are found
MIN_FACE = 20            # grey-copy pixels: the cascades' own window
SAME_FACE_IOU = 0.3      # two boxes overlapping this much are one face


@cache
def _cv2():
    """OpenCV, imported on first use (on the details thread: it costs a quarter of a
    second at start-up otherwise), or None when the extra is not installed."""
    try:
        import cv2
    except ImportError:
        return None
    return cv2


@cache
def missing() -> str:
    """Why faces are not looked for, in one sentence; "" when they are."""
    cv2 = _cv2()
    if cv2 is None:
        return "faces are not looked for without OpenCV: pip install 'zoomviewer[faces]'"
    folder = getattr(getattr(cv2, "data", None), "haarcascades", "") or ""
    if not hasattr(cv2, "CascadeClassifier") or not os.path.isdir(folder):
        return f"faces are not looked for: OpenCV {cv2.__version__} has no Haar cascades (4.x has)"
    return ""


def available() -> bool:
    return not missing()


@cache
def _cascade(name: str):
    """A cascade from OpenCV's own data folder, loaded once per process."""
    cv2 = _cv2()
    return cv2.CascadeClassifier(os.path.join(cv2.data.haarcascades, name))


def grey_copy(image: np.ndarray, side: int = DETECT_SIDE) -> tuple[np.ndarray, float]:
    """An 8-bit grey copy (histogram-equalised) of at most `side` pixels on its longest
    side, area-averaged, and the source pixels per copy pixel."""
    h, w = image.shape[:2]
    scale = max(1.0, max(h, w) / side)
    small, (per_x, _) = shrunk(image, max(1, round(w / scale)), max(1, round(h / scale)))
    grey = np.clip(small[..., :3] @ np.array([0.299, 0.587, 0.114], np.float32), 0, 1)
    return _cv2().equalizeHist((grey * 255 + 0.5).astype(np.uint8)), per_x


def _detect(name: str, grey: np.ndarray, neighbours: int) -> list[tuple[tuple[int, int, int, int], float]]:
    """(box, confidence) from one cascade: the level weight OpenCV reports per box."""
    boxes, _, weights = _cascade(f"haarcascade_{name}.xml").detectMultiScale3(
        grey, scaleFactor=1.1, minNeighbors=neighbours, minSize=(MIN_FACE, MIN_FACE), outputRejectLevels=True)
    return [(tuple(int(v) for v in box), float(weight)) for box, weight in zip(boxes, np.ravel(weights))]


def find_faces(image: np.ndarray) -> list[DetailRegion]:
    """The faces in `image` (float32 HxWx3 in [0, 1]) as source rectangles, kind "face",
    frontal ones first, each group by confidence; [] without OpenCV (see missing())."""
    if not available():
        return []
    grey, scale = grey_copy(image)
    width = grey.shape[1]
    second = [box for box, _ in _detect("frontalface_alt2", grey, 3)]
    frontal = [(box, c) for box, c in _detect("frontalface_default", grey, 5)
               if any(iou(box, other) > SAME_FACE_IOU for other in second)]
    mirrored = _detect("profileface", np.ascontiguousarray(grey[:, ::-1]), 6)   # faces turned the other way
    sides = _detect("profileface", grey, 6) + [((width - x - w, y, w, h), c) for (x, y, w, h), c in mirrored]
    found: list[DetailRegion] = []
    for group in (frontal, sides):
        for box, confidence in sorted(group, key=lambda bc: -bc[1]):
            rect = tuple(float(v * scale) for v in box)
            if all(iou(rect, f.rect) <= SAME_FACE_IOU for f in found):
                found.append(DetailRegion(rect, confidence, "face"))
    return found
