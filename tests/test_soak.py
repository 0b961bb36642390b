"""A soak test: 500 seeded random user steps against the real main window (a tiny real
model, real decoding, a small photo) never stall it, never let its memory creep up, never
let the tile cache outgrow its budget, and leave on screen exactly what the decoder
renders for the final view.

The steps are what a user does, fast and in any order: wheel zooms at random points (in
to x64, out below fit), drags, keys (+ - 0 1 and arrows), compare modes (single, side by
side, swipe), the A/B toggle, Explain, window resizes. Between steps events are processed
but renders are not waited for; now and then a short pause lets the debounced request go
out, so renders start and are superseded mid-flight.
"""

from __future__ import annotations

import os
import random
import sys

import numpy as np
import pytest
from PIL import Image
from PySide6.QtCore import QPointF, Qt, QTimer

from zoomviewer.app.compare import SIDE, SINGLE, SWIPE
from zoomviewer.engine.geometry import MAX_ZOOM, fit_zoom
from zoomviewer.engine.render import Latent, render_region
from zoomviewer.engine.resample import bicubic_region
from zoomviewer.app.protocol import BICUBIC, MODEL
from zoomviewer.app.tile_cache import TileCache
from zoomviewer.engine.resample import area_region, to_rgb8

from conftest import assert_frame_is, mouse, wheel

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads RSS from /proc/self/statm")

STEPS = 500
WARM_UP = 100
LIVENESS_EVERY = 50
PHOTO = (160, 120)                  # W x H
CACHE_BUDGET = 1_500_000            # bytes: a few 256 px tiles, so the LRU has to evict
RSS_GROWTH_LIMIT_MB = 150
NONE_DRIFT_LIMIT = 2000             # references to None; the broken binding loses ~20,000
KEYS = [Qt.Key.Key_Plus, Qt.Key.Key_Minus, Qt.Key.Key_0, Qt.Key.Key_1,
        Qt.Key.Key_Left, Qt.Key.Key_Right, Qt.Key.Key_Up, Qt.Key.Key_Down]


def rss_mb() -> float:
    """This process's resident set size now (not its peak)."""
    with open("/proc/self/statm") as f:
        resident_pages = int(f.read().split()[1])
    return resident_pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def none_references() -> int:
    """None's reference count: while None is mortal (CPython < 3.12) a binding that returns
    it without taking a reference makes this fall with every call, and when it reaches
    zero the interpreter aborts ("deallocating None")."""
    return sys.getrefcount(None)


def assert_not_losing_none(lost: int, steps: int) -> None:
    """The viewer is not heading for an abort. PySide6 6.12.0 on CPython 3.11 drops a
    reference to None on every call of a void Qt method (about 55 a step here), which
    kills the viewer after about 1,200 steps; with sound bindings None's count stays
    where it was, give or take."""
    if sys.version_info < (3, 12):   # None is immortal from 3.12 on
        assert lost < NONE_DRIFT_LIMIT, (
            f"{lost} references to None lost in {steps} steps: the Qt bindings return None without "
            f"a reference, and the viewer will abort when the count reaches 0 (PySide6 6.12.0 on "
            f"Python 3.11 does this; 6.11.3 does not)")


def soak_photo(path) -> None:
    rng = np.random.default_rng(11)
    w, h = PHOTO
    yy, xx = np.mgrid[0:h, 0:w]
    base = np.stack([xx / w, yy / h, 0.5 + 0.5 * np.sin(xx / 7.0 + yy / 5.0)], -1)
    Image.fromarray(to_rgb8(np.clip(0.8 * base + 0.2 * rng.random((h, w, 3)), 0, 1))).save(path)


class RecordingCache(TileCache):
    """The render thread's tile cache, recording right after each insertion and its
    evictions how much it holds (insertions run on the render thread)."""

    def __init__(self, max_bytes: int) -> None:
        super().__init__(max_bytes, lambda image: image.sizeInBytes())
        self.puts = self.peak_bytes = self.peak_tiles = 0

    def put(self, key, rect, image) -> None:
        super().put(key, rect, image)
        self.puts += 1
        self.peak_bytes = max(self.peak_bytes, self.bytes)
        self.peak_tiles = max(self.peak_tiles, len(self))


def assert_event_loop_alive(qtbot) -> None:
    """A zero-delay timer posted now fires: the GUI thread is handling events (a generous
    bound; this is about never hanging, not about speed)."""
    fired = []
    QTimer.singleShot(0, lambda: fired.append(True))
    qtbot.waitUntil(lambda: bool(fired), timeout=5000)


def random_step(rng: random.Random, window, qtbot) -> None:
    vp = window.viewport
    panes = window.compare.panes()
    canvas = rng.choice(panes)
    w, h = max(canvas.width(), 1), max(canvas.height(), 1)

    def anywhere() -> QPointF:
        return QPointF(rng.uniform(0, w - 1), rng.uniform(0, h - 1))

    action = rng.choices(["wheel", "deep", "drag", "key", "mode", "ab", "explain", "resize", "hover"],
                         weights=[30, 4, 16, 20, 5, 4, 4, 5, 12])[0]
    if action == "wheel":                  # a few notches either way, or a trackpad's smooth scroll
        if rng.random() < 0.7:
            wheel(canvas, anywhere(), angle_y=120 * rng.choice([-3, -2, -1, 1, 2, 3]))
        else:
            wheel(canvas, anywhere(), pixel_y=rng.randint(-120, 120))
    elif action == "deep":                 # all the way in (x64) or all the way out (below fit)
        wheel(canvas, anywhere(), angle_y=120 * rng.choice([-40, 40]))
    elif action == "drag":
        start = anywhere()
        mouse(canvas, "press", start)
        for _ in range(rng.randint(1, 4)):
            mouse(canvas, "move", anywhere())
        mouse(canvas, "release", anywhere())
    elif action == "key":
        qtbot.keyClick(canvas, rng.choice(KEYS))
    elif action == "mode":
        window.mode_actions[rng.choice([SINGLE, SIDE, SWIPE])].trigger()
    elif action == "ab":
        window.compare.toggle_ab()
    elif action == "explain":
        window.explain_action.trigger()
    elif action == "resize":
        window.resize(rng.randint(260, 520), rng.randint(200, 380))
    else:                                  # the pointer moves (Explain follows it)
        mouse(canvas, "move", anywhere(), buttons=Qt.MouseButton.NoButton)
    assert vp.view is not None
    lo, hi = vp.limits()
    assert lo - 1e-9 <= vp.view.zoom <= hi + 1e-9


def test_500_random_steps_keep_the_window_responsive_bounded_and_exact(qtbot, tiny_model, tmp_path):
    from zoomviewer.app.render_thread import RenderThread
    from zoomviewer.app.window import MainWindow

    path = tmp_path / "soak.png"
    soak_photo(path)
    cache = RecordingCache(CACHE_BUDGET)
    window = MainWindow(RenderThread(tiny_model, "cpu", cache=cache))
    qtbot.addWidget(window)
    errors, failed_renders = [], []
    window.show_error = errors.append
    window.renderer.request_failed.connect(lambda _, message: failed_renders.append(message))
    window.resize(400, 300)
    window.show()
    qtbot.waitExposed(window)
    window.open_path(path)
    qtbot.waitUntil(lambda: window.photo is not None and window.viewport.view is not None, timeout=30_000)

    rng = random.Random(20240611)
    zooms = []
    rss_after_warm_up = none_after_warm_up = None
    for step in range(1, STEPS + 1):
        random_step(rng, window, qtbot)
        view = window.viewport.view
        zooms.append((view.zoom, fit_zoom(*PHOTO, view.screen_w, view.screen_h)))
        # Mostly no wait at all; sometimes long enough for the debounced request to go
        # out and a render to start, so that renders are superseded mid-flight.
        qtbot.wait(rng.choice([1] * 8 + [30, 60]))
        if step == WARM_UP:
            rss_after_warm_up, none_after_warm_up = rss_mb(), none_references()
        if step % LIVENESS_EVERY == 0:
            assert_event_loop_alive(qtbot)
            if none_after_warm_up is not None:   # checked as we go: failing beats aborting pytest
                assert_not_losing_none(none_after_warm_up - none_references(), step - WARM_UP)
    rss_growth = rss_mb() - rss_after_warm_up
    none_lost = none_after_warm_up - none_references()

    vp = window.viewport
    qtbot.waitUntil(vp.is_sharp, timeout=60_000)
    print(f"\nsoak: RSS growth after warm-up {rss_growth:+.1f} MB; references to None lost {none_lost}; tile cache peak "
          f"{cache.peak_bytes / 1e6:.2f} MB in {cache.peak_tiles} tiles ({cache.puts} tiles rendered)")

    assert not errors and not failed_renders, (errors, failed_renders[:3])   # "rendering failed: ..." on screen
    assert any(zoom == MAX_ZOOM for zoom, _ in zooms)          # all the way in, x64 ...
    assert any(zoom < fit for zoom, fit in zooms)             # ... and out below fit
    assert rss_growth < RSS_GROWTH_LIMIT_MB, f"RSS grew by {rss_growth:.0f} MB over {STEPS - WARM_UP} steps"
    # The cache filled up to its budget (so the LRU had to evict) and never held more
    # (a single tile larger than the budget alone would be allowed).
    assert cache.peak_bytes > 0.8 * CACHE_BUDGET and cache.puts > cache.peak_tiles
    assert cache.peak_bytes <= CACHE_BUDGET or cache.peak_tiles == 1
    assert cache.bytes == sum(image.sizeInBytes() for image in cache.images())

    # What is on screen now is the decoder's (or the resamplers') rendering of exactly
    # the final view, for every kind on show.
    pixels = window.photo.pixels
    latent = Latent(tiny_model, pixels, device="cpu")
    zoom = vp.view.zoom
    for kind in vp.kinds:
        if zoom <= 1:
            render = lambda region, size: area_region(pixels, region, size)           # noqa: E731
        elif kind == MODEL:
            render = lambda region, size: render_region(latent, region, size)          # noqa: E731
        else:
            assert kind == BICUBIC
            render = lambda region, size: bicubic_region(pixels, region, size)         # noqa: E731
        assert_frame_is(vp, kind, render)
    window.close()
