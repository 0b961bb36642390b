"""The render thread's parts, each tested on its own where it can be: the tile cache (an
LRU bounded in bytes), the passes of one view (without a thread: what is delivered, in
which order, from the cache, and nothing after a cancel), and, on the running thread,
one Latent per photo however many lanes ask for it at once."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from zoomviewer.app.protocol import BICUBIC, MODEL, RenderRequest
from zoomviewer.app.tile_cache import TileCache
from zoomviewer.app.view_passes import Source, ViewPasses
from zoomviewer.engine.geometry import View
from zoomviewer.engine.render import Cancelled, Latent, render_region
from zoomviewer.engine.resample import bicubic_region, to_rgb8

TIMEOUT_MS = 30_000


# ------------------------------------------------------------------------- tile cache

def test_tile_cache_keeps_the_most_recent_tiles_within_its_bytes():
    cache = TileCache(300, size_of=len)
    for k in range(4):
        cache.put(k, (0, 0, 10, 10), b"x" * 100)
    assert cache.get(0, (0, 0, 10, 10)) is None                  # the oldest went
    assert cache.get(1, (0, 0, 10, 10)) is not None             # used now: the newest
    cache.put(4, (0, 0, 10, 10), b"x" * 100)
    assert cache.get(2, (0, 0, 10, 10)) is None and cache.get(1, (0, 0, 10, 10)) is not None
    assert len(cache) == 3 and cache.bytes == 300 == sum(map(len, cache.images()))
    cache.put(9, (0, 0, 10, 10), b"x" * 1000)                    # larger than the budget: kept alone
    assert len(cache) == 1 and cache.get(9, (0, 0, 10, 10)) is not None


def test_a_tile_cached_for_part_of_its_area_does_not_serve_more_of_it():
    cache = TileCache(10_000, size_of=len)
    cache.put("tile", (0, 0, 40, 64), b"left part")             # at the view's edge: part of the tile
    assert cache.get("tile", (0, 0, 32, 64)) is not None
    assert cache.get("tile", (0, 0, 64, 64)) is None


# ---------------------------------------------------------------- the passes of a view

class Recorder:
    """Collects what the passes deliver, as numpy pixels (no Qt needed)."""

    def __init__(self) -> None:
        self.pieces, self.progress = [], []

    def passes(self, cache=None, tile=32) -> ViewPasses:
        cache = cache or TileCache(2**30, size_of=lambda a: a.nbytes)
        return ViewPasses(cache, lambda rgb8: rgb8, self.pieces.append,
                          lambda rid, f: self.progress.append(f), tile=tile)


def source_for(model, image) -> Source:
    latent = Latent(model, image, device="cpu")
    return Source(image, lambda name: latent, latent.device, models=("fast",))


def assemble(pieces, view: View) -> np.ndarray:
    """The sharp pieces pasted into the view's screen pixels."""
    out = np.zeros((view.screen_h, view.screen_w, 3), np.uint8)
    ox, oy = view.origin
    for p in pieces:
        x0, y0, x1, y1 = p.rect
        out[y0 - oy:y1 - oy, x0 - ox:x1 - ox] = p.image
    return out


def test_a_view_arrives_coarse_first_then_sharp_tiles_equal_to_one_render(tiny_model, small_image):
    rec = Recorder()
    view = View(32, 24, 3.0, 150, 120).snapped()
    request = RenderRequest(1, 1, view, (MODEL,))
    rec.passes().render(request, source_for(tiny_model, small_image), cancel=lambda: False)
    coarse = [p for p in rec.pieces if p.coarse]
    sharp = [p for p in rec.pieces if not p.coarse]
    assert len(coarse) == 1 and rec.pieces[0].coarse               # the whole area at 1/4 first
    assert coarse[0].image.shape[:2] == (-(-120 // 4), -(-150 // 4))
    assert sum((p.rect[2] - p.rect[0]) * (p.rect[3] - p.rect[1]) for p in sharp) == 150 * 120
    latent = Latent(tiny_model, small_image, device="cpu")
    want = to_rgb8(render_region(latent, view.visible_region(), (150, 120)))
    assert np.abs(assemble(sharp, view).astype(int) - want).max() <= 1
    assert rec.progress[-1] == 1.0 and rec.progress == sorted(rec.progress)


def test_a_view_seen_before_comes_from_the_cache_without_decoding(tiny_model, small_image):
    rec = Recorder()
    passes = rec.passes()
    view = View(32, 24, 3.0, 150, 120).snapped()
    calls = []
    latent = Latent(tiny_model, small_image, device="cpu")
    source = Source(small_image, lambda name: calls.append(1) or latent, latent.device, models=("fast",))
    passes.render(RenderRequest(1, 1, view, (MODEL, BICUBIC)), source, cancel=lambda: False)
    first, decoded = list(rec.pieces), len(calls)
    rec.pieces.clear()
    passes.render(RenderRequest(2, 1, view, (MODEL, BICUBIC)), source, cancel=lambda: False)
    assert decoded > 0 and len(calls) == decoded                   # the model was not asked again
    assert rec.pieces and all(p.from_cache for p in rec.pieces)
    for kind in (MODEL, BICUBIC):
        again = assemble([p for p in rec.pieces if p.kind == kind], view)
        assert np.array_equal(again, assemble([p for p in first if p.kind == kind and not p.coarse], view))
    bicubic = to_rgb8(bicubic_region(small_image, view.visible_region(), (150, 120)))
    assert np.abs(assemble([p for p in rec.pieces if p.kind == BICUBIC], view).astype(int) - bicubic).max() <= 1


def test_a_cancelled_view_delivers_nothing_more(tiny_model, small_image):
    rec = Recorder()
    checks = []

    def cancel() -> bool:          # wanted for the first few checks, then superseded
        checks.append(1)
        return len(checks) > 3

    with pytest.raises(Cancelled):
        rec.passes(tile=16).render(RenderRequest(1, 1, View(32, 24, 3.0, 150, 120).snapped(), (MODEL,)),
                                   source_for(tiny_model, small_image), cancel)
    delivered = len(rec.pieces)
    assert delivered < -(-150 // 16) * -(-120 // 16)                # not the whole view
    assert 1.0 not in rec.progress


# ------------------------------------------------------------ the running render thread

def test_one_latent_per_photo_however_many_lanes_ask_at_once(qtbot, tiny_model, small_image):
    """Sharp tiles render on parallel lanes; the first to need the photo's Latent makes it
    while the others wait, and all use that one (a slow construction widens the window in
    which a second lane would make a second one)."""
    from zoomviewer.app.render_thread import RenderThread

    made = []

    def slow_latent(model, image, **options):
        made.append(threading.current_thread().name)
        time.sleep(0.3)
        return Latent(model, image, **options)

    renderer = RenderThread(tiny_model, "cpu", tile=64, threads=1, latent_factory=slow_latent)
    finished, failed = [], []
    renderer.request_finished.connect(lambda rid, _: finished.append(rid))
    renderer.request_failed.connect(lambda rid, message: failed.append(message))
    renderer.start()
    try:
        qtbot.waitUntil(lambda: renderer.loaded, timeout=TIMEOUT_MS)
        renderer.set_image(small_image, 1)
        # two 64 px tiles and no coarse pass: the lanes are the first to ask for the Latent
        view = View(32, 24, 4.0, 128, 64).snapped()
        renderer.request(RenderRequest(1, 1, view, (MODEL,)))
        qtbot.waitUntil(lambda: bool(finished or failed), timeout=TIMEOUT_MS)
        assert not failed and len(made) == 1
        renderer.set_image(small_image.copy(), 2)                  # a new photo: a new Latent
        renderer.request(RenderRequest(2, 2, view.zoom_at(10, 10, 1.5).snapped(), (MODEL,)))
        qtbot.waitUntil(lambda: 2 in finished or bool(failed), timeout=TIMEOUT_MS)
        assert not failed and len(made) == 2
    finally:
        renderer.stop()
