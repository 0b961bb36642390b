"""The viewer's fused pass at deep zoom: once a view at x16 is sharp, the mean of the
photo's 8 turned and flipped views replaces it (the whole photo's fusion, encoded from a
crop); the status bar says so; a pan while it runs cancels it, and nothing of it is shown."""

from __future__ import annotations

import threading

import numpy as np
from PySide6.QtCore import Qt

from conftest import assert_frame_is, viewer_of
from zoomviewer.app.protocol import MODEL, RenderRequest
from zoomviewer.app.tile_cache import TileCache
from zoomviewer.app.view_passes import Source, ViewPasses
from zoomviewer.engine.geometry import View
from zoomviewer.engine.render import Latent, render_fused, view_latents
from zoomviewer.engine.resample import to_rgb8

TIMEOUT_MS = 30_000


def test_a_sharp_view_at_x16_is_followed_by_its_fused_picture(tiny_model, small_image):
    pieces: list = []
    passes = ViewPasses(TileCache(2**30, size_of=lambda a: a.nbytes), lambda rgb8: rgb8, pieces.append,
                        lambda rid, f: None, tile=32)
    latent = Latent(tiny_model, small_image, device="cpu")
    source = Source(small_image, lambda name: latent, latent.device, models=("fast",))
    view = View(30.3, 20.6, 16.0, 160, 120).snapped()
    passes.fuse_budget_s = 0.0                  # on a CPU, a fused pass costs time: with no budget, none
    passes.render(RenderRequest(1, 1, view, (MODEL,), fuse=True), source, cancel=lambda: False)
    assert pieces and not any(p.fused for p in pieces)
    pieces.clear()
    passes.fuse_budget_s = float("inf")         # (the budget is set by how fast the tiny model is here)
    passes.render(RenderRequest(2, 1, view, (MODEL,), fuse=True), source, cancel=lambda: False)
    fused = [p for p in pieces if p.fused]
    assert len(fused) == 1 and pieces[-1] is fused[0]                  # last, once the view is sharp
    x0, y0, x1, y1 = fused[0].rect
    region = view.visible_region()
    want = to_rgb8(render_fused(view_latents(tiny_model, small_image, "cpu", 8), region, (x1 - x0, y1 - y0),
                                cell=(1 / 16, 1 / 16)))
    assert (x1 - x0, y1 - y0) == (160, 120) and np.abs(fused[0].image.astype(int) - want).max() <= 1

    pieces.clear()                                                     # not asked for: none
    passes.render(RenderRequest(3, 1, view.zoom_at(80, 60, 1.1).snapped(), (MODEL,)), source, cancel=lambda: False)
    assert pieces and not any(p.fused for p in pieces)


def test_the_fused_pass_shows_in_the_window_and_a_pan_cancels_it(qtbot, tiny_model, small_image):
    from zoomviewer.app.render_thread import RenderThread

    renderer = RenderThread(tiny_model, "cpu", tile=64)
    renderer.passes.fuse_budget_s = float("inf")   # whatever else this machine is running
    fused, held, started, panned = [], [], threading.Event(), threading.Event()
    renderer.piece_ready.connect(lambda piece: piece.fused and fused.append(piece.request_id))
    renderer.start()
    try:
        viewport, states = viewer_of(qtbot, renderer, small_image, 16.0, (30.3, 20.6), (240, 160), fuse=True)
        qtbot.waitUntil(lambda: viewport.is_sharp() and bool(fused), timeout=TIMEOUT_MS)
        assert any(s.startswith("sharp in") and "; fusing 8 views" in s for s in states), states
        assert states[-1].startswith("sharp in") and "; fused 8 views in " in states[-1]
        latents = view_latents(tiny_model, small_image, "cpu", 8)
        assert_frame_is(viewport, MODEL, lambda region, size: render_fused(latents, region, size, cell=(1 / 16, 1 / 16)))

        def hold(request_id: int, fraction: float) -> None:   # on the render thread, as its fused pass begins
            if not started.is_set():
                held.append(request_id)
                started.set()
                panned.wait(10)
        renderer.fusing_progress.connect(hold, Qt.ConnectionType.DirectConnection)
        viewport.place(16.0, (28.0, 22.0))                           # a new view: sharp, then fused...
        qtbot.waitUntil(started.is_set, timeout=TIMEOUT_MS)
        viewport.pan_by(40, 0)                                       # ...and a pan while it fuses
        viewport.request_now()
        panned.set()
        qtbot.waitUntil(lambda: viewport.is_sharp() and len(fused) == 2, timeout=TIMEOUT_MS)
        assert held[0] not in fused                                  # the cancelled pass showed nothing
        assert "fused 8 views in" in viewport.state
    finally:
        renderer.stop()
