"""The details thread: finds a photo's faces (engine/faces.py, when OpenCV is installed),
its detail map and detail regions (engine/detail.py) off the GUI thread, and hands back
a `FoundDetails`. The render thread makes it (RenderThread.detail_finder) and shares its
first model with it, read only: no second copy of the weights, and the Latent made here
is of a working copy of about 16 000 pixels, dropped as soon as the map is made.

One photo at a time: a newer request supersedes the one in progress, which is
cancelled between decoder chunks. It computes on one thread, beside the views' renders.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from PySide6.QtCore import QThread, Signal

from ..engine import faces
from ..engine.detail import DetailMap, DetailRegion, detail_map, detail_regions, suggestions
from ..engine.render import Cancelled


@dataclass(frozen=True)
class FoundDetails:
    """What the Details list shows for photo `image_id`: the suggestions, faces first
    (`regions`), the detail map (the heat map), and why faces were not looked for
    ("" when they were)."""
    image_id: int
    regions: tuple[DetailRegion, ...]
    map: DetailMap
    faces_missing: str = ""


def find_details(model, image: np.ndarray, cancel: Callable[[], bool] | None = None, k: int = 8) -> tuple:
    """(suggestions, detail map) of `image` for `model` (None: the model-free measure)."""
    found_faces = faces.find_faces(image)
    dmap = detail_map(model, image, cancel=cancel)
    return tuple(suggestions(found_faces, detail_regions(dmap, k))), dmap


class DetailsThread(QThread):
    found = Signal(object)             # FoundDetails
    failed = Signal(int, str)          # image_id, one sentence

    def __init__(self, model: Callable[[], object], parent=None) -> None:
        """`model()` -> the model (on its device) or None, asked when a photo is taken up."""
        super().__init__(parent)
        self._model = model
        self._cond = threading.Condition()
        self._job: tuple[int, np.ndarray] | None = None
        self._generation = 0
        self._stopping = False

    def find(self, image_id: int, pixels: np.ndarray) -> None:
        """Find the details of this photo (float32 HxWx3, not copied: keep it unchanged)."""
        with self._cond:
            self._job = (image_id, pixels)
            self._generation += 1
            self._cond.notify()

    def stop(self) -> None:
        with self._cond:
            self._stopping = True
            self._generation += 1
            self._cond.notify()
        self.wait()

    def run(self) -> None:
        torch.set_num_threads(1)      # per thread: background work, one core
        while True:
            with self._cond:
                while not (self._stopping or self._job):
                    self._cond.wait()
                if self._stopping:
                    return
                (image_id, pixels), self._job = self._job, None
                generation = self._generation
            try:
                regions, dmap = find_details(self._model(), pixels, lambda: self._generation != generation)
            except Cancelled:
                continue
            except Exception as e:  # a failure here must not end the thread; the list says it
                self.failed.emit(image_id, f"details could not be found: {e}")
                continue
            self.found.emit(FoundDetails(image_id, regions, dmap, faces.missing()))
