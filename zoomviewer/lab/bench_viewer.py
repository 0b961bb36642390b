"""Bench figures taken through the real render thread (app.render_thread), as the viewer
meets them: a view refined from a new request, and the first sharp view of a photo just
opened (nothing encoded yet). Times run from the request to its request_finished."""

from __future__ import annotations

import importlib.util
import statistics
import time

import numpy as np
import torch

VIEW = (1280, 800)


def viewer_available() -> bool:
    """Whether the viewer's render thread can run here: a GPU server often has PyTorch
    and no Qt, and the bench's other figures need none."""
    return importlib.util.find_spec("PySide6") is not None


class _Session:
    """A started render thread for `model`, and a way to wait on it."""

    def __init__(self, model, device: torch.device, preview=None) -> None:
        from PySide6.QtCore import QCoreApplication

        from ..app.render_thread import RenderThread

        self.app = QCoreApplication.instance() or QCoreApplication([])
        self.renderer = RenderThread(model, str(device), preview_loader=(lambda: preview) if preview is not None else None)
        self.done: dict[int, float] = {}
        self.previewed: dict[int, float] = {}    # request -> when its first preview piece came
        self.renderer.piece_ready.connect(
            lambda piece: piece.preview and self.previewed.setdefault(piece.request_id, time.perf_counter()))
        self.renderer.request_finished.connect(lambda rid, secs: self.done.__setitem__(rid, secs))
        self.renderer.request_failed.connect(lambda rid, message: self.done.__setitem__(rid, float("nan")))
        self.renderer.start()
        self.wait_for(lambda: self.renderer.loaded)

    def wait_for(self, cond, timeout_s: float = 600) -> None:
        from PySide6.QtCore import QEventLoop, QTimer

        loop, timer = QEventLoop(), QTimer()
        timer.timeout.connect(lambda: loop.quit() if cond() else None)
        timer.start(5)
        deadline = time.perf_counter() + timeout_s
        while not cond() and time.perf_counter() < deadline:
            loop.exec()
        timer.stop()

    def view(self, request_id: int, image_id: int, view, sparse: bool = False) -> float:
        """Seconds from the request to its last sharp tile (`preview_s` then holds the
        seconds to its preview, None without one)."""
        from ..app.protocol import MODEL, RenderRequest

        t = time.perf_counter()
        self.renderer.request(RenderRequest(request_id, image_id, view, (MODEL,), sparse))
        self.wait_for(lambda: request_id in self.done)
        self.preview_s = self.previewed[request_id] - t if request_id in self.previewed else None
        return time.perf_counter() - t

    def close(self) -> None:
        self.renderer.stop()


def bench_viewer_refine(model, pixels: np.ndarray, device: torch.device, scale: float, runs: int,
                        sparse: bool = False) -> float:
    """Seconds from a view request to its last sharp tile in the real viewer pipeline (the
    render thread: coarse pass, then full-resolution tiles), with the latent's tiles for
    that area already encoded (as after the first look). Each run uses a slightly
    different zoom so the finished-tile cache cannot serve it. `sparse`: with the optional
    Faster Deep Zoom approximation."""
    from ..engine.geometry import View

    session = _Session(model, device)
    session.renderer.set_image(pixels, 1)
    h, w = pixels.shape[:2]
    times = []
    for k in range(runs + 1):  # the first run encodes the latent tiles: not counted
        view = View(w / 2, h / 2, scale * (1 + 0.0007 * k), VIEW[0], VIEW[1]).snapped()
        t = session.view(k, 1, view, sparse)
        if k:
            times.append(t)
    session.close()
    return statistics.median(times)


def bench_first_view(model, photos: dict[str, np.ndarray], device: torch.device, zooms=(1.5, 4, 10),
                     preview=None) -> tuple[dict, dict]:
    """Seconds from opening a photo (set_image, nothing encoded) to its first view fully
    sharp, for each photo and zoom: 1280x800 at the photo's centre (x1.5) or its top-left
    corner (higher zooms, as a user zooming into a corner). Every run opens the photo anew.
    With a `preview` model, also the seconds to the preview: -> (sharp, preview) dicts."""
    from ..engine.geometry import View

    session = _Session(model, device, preview)
    out: dict = {}
    previews: dict = {}
    image_id = 0
    for name, pixels in photos.items():
        h, w = pixels.shape[:2]
        for zoom in zooms:
            image_id += 1
            session.renderer.set_image(pixels, image_id)
            centre = (w / 2, h / 2) if zoom < 2 else (VIEW[0] / zoom / 2 + 3, VIEW[1] / zoom / 2 + 3)
            view = View(*centre, zoom, VIEW[0], VIEW[1]).snapped()
            out[f"{name} x{zoom:g}"] = session.view(image_id, image_id, view)
            if session.preview_s is not None:
                previews[f"{name} x{zoom:g}"] = session.preview_s
    session.close()
    return out, previews
