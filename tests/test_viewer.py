"""The viewer as a user meets it (pytest-qt, offscreen, a tiny real model, a 64x48 photo):
the wheel zooms about the pointer, a drag pans by exactly the drag, frames are the
decoder's rendering of exactly the visible pixels, the GUI keeps running while a slow
decoder works, only the newest view is shown, panning back needs no decoding, zoom <= 1
never runs the decoder, compare panes stay in sync, Explain draws the latent grid, and
the screen pyramid is the photo's 8-bit pixels. The main window is in test_window.py."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from PySide6.QtCore import QPointF, Qt, QTimer

from zoomviewer.app.canvas import ZoomCanvas
from zoomviewer.app.compare import SIDE, SWIPE, CompareArea
from zoomviewer.engine.explain import grid_lines
from zoomviewer.engine.geometry import tile_parts
from zoomviewer.engine.model.native import FastKernel
from zoomviewer.engine.render import Latent, deep_zoom_step, render_region, render_sparse
from zoomviewer.engine.resample import bicubic_region
from zoomviewer.app.protocol import BICUBIC, MODEL
from zoomviewer.app.qimages import rgb8_from_qimage
from zoomviewer.app.render_thread import RenderThread
from zoomviewer.app.frame import source_pyramid
from zoomviewer.app.viewport import Viewport
from zoomviewer.engine.resample import area_region, to_rgb8

from conftest import assert_frame_is, mouse, shown, wheel

TIMEOUT_MS = 30_000


def instrument(monkeypatch, model, before_decode=None) -> dict:
    """Count the model's decoder and encoder calls (optionally running a hook before each
    decode), on the torch path and through the fused kernel alike: the model stays the
    real tiny model."""
    calls = {"decode": 0, "encode": 0}
    decode, encode, fused = model.decode_hidden, model.encoder.forward, FastKernel.decode

    def counted(run):
        def counted_decode(*args, **kwargs):
            calls["decode"] += 1
            if before_decode is not None:
                before_decode()
            return run(*args, **kwargs)
        return counted_decode

    def counted_encode(*args, **kwargs):
        calls["encode"] += 1
        return encode(*args, **kwargs)

    model.decode_hidden = counted(decode)
    monkeypatch.setattr(FastKernel, "decode", counted(fused))
    model.encoder.forward = counted_encode
    return calls


@pytest.fixture
def make_viewer(qtbot):
    """make(model, image, size, compare=False, zoom=None, center=None) -> (viewport, widget)."""
    workers, keep = [], []

    def make(model, image, size=(200, 150), compare=False, zoom=None, center=None):
        worker = RenderThread(model, "cpu", tile=64)
        worker.start()
        workers.append(worker)
        viewport = Viewport(worker, debounce_ms=10)
        if zoom is not None or center is not None:
            viewport.place(zoom, center)
        viewport.set_image(image)
        widget = CompareArea(viewport) if compare else ZoomCanvas(viewport)
        keep.append(viewport)
        qtbot.addWidget(widget)
        widget.resize(*size)
        widget.show()
        qtbot.waitExposed(widget)
        qtbot.waitUntil(lambda: viewport.model_name is not None, timeout=TIMEOUT_MS)
        return viewport, widget

    yield make
    for worker in workers:
        worker.stop()


def wait_sharp(qtbot, viewport):
    qtbot.waitUntil(viewport.is_sharp, timeout=TIMEOUT_MS)


def under(viewport, x, y) -> np.ndarray:
    return np.array(viewport.view.screen_to_image(x, y))


# ------------------------------------------------------------------------- navigation

def test_wheel_zoom_keeps_the_point_under_the_cursor(make_viewer, tiny_model, small_image):
    viewport, canvas = make_viewer(tiny_model, small_image)
    zoom = viewport.view.zoom
    point = under(viewport, 140, 40)
    wheel(canvas, QPointF(140, 40), angle_y=3 * 120)           # three notches of a mouse wheel
    assert viewport.view.zoom == pytest.approx(zoom * 2 ** 0.75)
    assert np.abs(under(viewport, 140, 40) - point).max() * viewport.view.zoom <= 0.5 + 1e-9
    zoom = viewport.view.zoom
    wheel(canvas, QPointF(60, 110), pixel_y=-45)               # a trackpad: small smooth steps out
    assert zoom / 2 < viewport.view.zoom < zoom


def test_drag_pans_by_exactly_the_dragged_amount(make_viewer, tiny_model, small_image):
    viewport, canvas = make_viewer(tiny_model, small_image, zoom=6.0)
    point = under(viewport, 50, 50)
    mouse(canvas, "press", QPointF(50, 50))
    mouse(canvas, "move", QPointF(65, 45))
    mouse(canvas, "move", QPointF(87, 31))
    mouse(canvas, "release", QPointF(87, 31))
    np.testing.assert_allclose(under(viewport, 87, 31), point, atol=1e-9)


def arrives(qtbot, viewport, zoom) -> None:
    """The keys' and double-click's zoom glides (zoom_animation.py): wait until it is there."""
    qtbot.waitUntil(lambda: viewport.view.zoom == pytest.approx(zoom), timeout=TIMEOUT_MS)


def test_double_click_and_keys(make_viewer, tiny_model, small_image, qtbot):
    viewport, canvas = make_viewer(tiny_model, small_image)
    fit = viewport.view.zoom
    point = under(viewport, 30, 100)
    mouse(canvas, "double", QPointF(30, 100))
    arrives(qtbot, viewport, 2 * fit)
    assert np.abs(under(viewport, 30, 100) - point).max() * viewport.view.zoom <= 0.5 + 1e-9
    qtbot.keyClick(canvas, Qt.Key.Key_1)
    arrives(qtbot, viewport, 1.0)
    qtbot.keyClick(canvas, Qt.Key.Key_Plus)
    arrives(qtbot, viewport, 2 ** 0.5)
    centre = viewport.view.cx
    qtbot.keyClick(canvas, Qt.Key.Key_Right)                    # the picture moves left: we look right
    assert viewport.view.cx > centre
    qtbot.keyClick(canvas, Qt.Key.Key_0)
    arrives(qtbot, viewport, fit)
    qtbot.waitUntil(lambda: viewport.fitted, timeout=TIMEOUT_MS)   # set as the glide ends: it stays fitted on resize


def test_the_source_point_under_the_pointer_follows_keyboard_zoom_and_pan(make_viewer, tiny_model, small_image,
                                                                          qtbot):
    viewport, canvas = make_viewer(tiny_model, small_image, zoom=2.0)
    mouse(canvas, "move", QPointF(50, 40), buttons=Qt.MouseButton.NoButton)
    before = viewport.cursor
    assert before == pytest.approx(tuple(under(viewport, 50, 40)))
    for key in (Qt.Key.Key_Plus, Qt.Key.Key_Left):                  # the pointer stays where it is
        qtbot.keyClick(canvas, key)
        assert viewport.cursor == pytest.approx(tuple(under(viewport, 50, 40)))
    assert viewport.cursor != pytest.approx(before)
    viewport.set_image(small_image[::-1].copy())                    # another photo, fitted
    assert viewport.cursor == pytest.approx(tuple(under(viewport, 50, 40)))


def test_a_new_view_never_shows_the_last_ones_sharp_time(make_viewer, tiny_model, small_image, qtbot):
    viewport, _ = make_viewer(tiny_model, small_image, zoom=3.0)
    wait_sharp(qtbot, viewport)
    assert viewport.state.startswith("sharp in")
    states = []
    viewport.state_changed.connect(states.append)
    viewport.zoom_by(1.5)
    assert not viewport.state.startswith("sharp in")               # at once, before any render
    wait_sharp(qtbot, viewport)
    assert viewport.state.startswith("sharp in") and states[0] == ""


def test_a_fresh_photo_says_it_is_encoding_and_never_the_last_views_sharp_time(make_viewer, tiny_model,
                                                                              small_image, qtbot):
    viewport, _ = make_viewer(tiny_model, small_image, size=(400, 300), zoom=3.0)
    wait_sharp(qtbot, viewport)
    assert viewport.state.startswith("sharp in")
    states = []
    viewport.state_changed.connect(states.append)
    rng = np.random.default_rng(8)
    photo = rng.random((700, 900, 3), dtype=np.float32)     # 2 x 4 latent tiles of 256 under the view
    viewport.set_image(photo)                               # fitted: below x1, no decoder
    viewport.place(1.5, (450.0, 350.0))
    wait_sharp(qtbot, viewport)
    encoding = [s for s in states if s.startswith("encoding")]
    assert encoding and encoding[0].startswith("encoding ") and " %" in encoding[0], states
    assert any("s left" in s for s in encoding)              # an estimate once a tile is done
    sharp = [i for i, s in enumerate(states) if s.startswith("sharp in")]
    assert sharp == [len(states) - 1]                         # only this view's, at the end
    assert states.index(encoding[0]) < sharp[0]


# -------------------------------------------------------------------------- rendering

def test_frame_is_the_decoder_rendering_of_exactly_the_visible_pixels(make_viewer, tiny_model, small_image, qtbot):
    viewport, _ = make_viewer(tiny_model, small_image, zoom=3.7, center=(30.2, 20.6))
    wait_sharp(qtbot, viewport)
    latent = Latent(tiny_model, small_image, device="cpu")
    assert_frame_is(viewport, MODEL, lambda region, size: render_region(latent, region, size))


def test_faster_deep_zoom_is_the_sparse_render_of_each_tile_and_goes_back_to_exact(make_viewer, tiny_model,
                                                                                  small_image, qtbot):
    viewport, _ = make_viewer(tiny_model, small_image, zoom=14.3, center=(20.4, 12.7))
    wait_sharp(qtbot, viewport)
    exact = shown(viewport)
    viewport.set_sparse(True)
    wait_sharp(qtbot, viewport)
    latent = Latent(tiny_model, small_image, device="cpu")
    view, (w, h) = viewport.view, viewport.image_size
    ox, oy = view.origin
    step = deep_zoom_step(view.zoom)
    assert step == 2
    got = shown(viewport)
    for part in tile_parts(view, w, h, 64):
        x0, y0, x1, y1 = part.rect
        want = to_rgb8(render_sparse(latent, part.region, part.out_size, step, (x0, y0),
                                     cell=(1 / view.zoom, 1 / view.zoom)))
        assert np.abs(got[y0 - oy:y1 - oy, x0 - ox:x1 - ox].astype(int) - want).max() <= 1
    assert np.abs(got.astype(int) - exact).max() > 1                    # it is an approximation
    viewport.set_sparse(False)
    wait_sharp(qtbot, viewport)
    assert np.abs(shown(viewport).astype(int) - exact).max() <= 1        # exact again


def test_minification_never_runs_the_decoder(monkeypatch, make_viewer, tiny_model, small_image, qtbot):
    calls = instrument(monkeypatch, tiny_model)
    viewport, canvas = make_viewer(tiny_model, small_image, zoom=0.75)
    wait_sharp(qtbot, viewport)
    wheel(canvas, QPointF(100, 75), angle_y=-120)
    wait_sharp(qtbot, viewport)
    assert viewport.view.zoom < 0.75
    assert calls == {"decode": 0, "encode": 0}
    assert_frame_is(viewport, MODEL, lambda region, size: area_region(small_image, region, size))


def test_area_downsampling_averages_the_covered_pixels(small_image):
    halved = area_region(small_image, (0, 0, 64, 48), (32, 24))
    blocks = small_image.reshape(24, 2, 32, 2, 3).mean(axis=(1, 3))
    np.testing.assert_allclose(halved, blocks, atol=1e-6)
    # a pixel straddling two source pixels takes each in proportion to its share
    third = area_region(small_image[:1, :3], (0.5, 0, 1.5, 1), (1, 1))[0, 0]
    np.testing.assert_allclose(third, (small_image[0, 0] + 2 * small_image[0, 1]) / 3, atol=1e-6)
    # at 100 % a region that stops short of the photo's edges is those very pixels
    # (the soak test once found this failing for any view that cut off the photo's bottom)
    np.testing.assert_allclose(area_region(small_image, (5, 3, 40, 30), (40, 30)), small_image[3:33, 5:45], atol=1e-6)


def test_panning_back_is_served_from_the_tile_cache(monkeypatch, make_viewer, tiny_model, small_image, qtbot):
    calls = instrument(monkeypatch, tiny_model)
    viewport, canvas = make_viewer(tiny_model, small_image, zoom=5.0, center=(30, 20))
    wait_sharp(qtbot, viewport)
    first = shown(viewport).copy()
    viewport.pan_by(37, 0)
    wait_sharp(qtbot, viewport)
    decodes = calls["decode"]
    pieces = []
    viewport.renderer.piece_ready.connect(pieces.append)
    viewport.pan_by(-37, 0)
    wait_sharp(qtbot, viewport)
    assert calls["decode"] == decodes                       # nothing decoded again
    assert pieces and all(p.from_cache for p in pieces)
    # tiles cut off at the first view's edge were rendered again, larger, during the pan;
    # float rounding of a different crop can move a value across an 8-bit step
    diff = np.abs(shown(viewport).astype(int) - first.astype(int))
    assert diff.max() <= 1 and (diff > 0).mean() < 1e-3


def test_a_slow_decoder_does_not_stall_the_window(monkeypatch, make_viewer, tiny_model, small_image, qtbot):
    """While the decoder is busy the GUI thread keeps handling events: each decode call
    waits for a tick of a GUI timer, which could never come if decoding ran on the GUI
    thread; and input during the render changes the view at once."""
    gui_ticked = threading.Event()
    answers = []

    def wait_for_gui():
        if len(answers) < 4:
            gui_ticked.clear()
            answers.append(gui_ticked.wait(timeout=10))

    calls = instrument(monkeypatch, tiny_model, wait_for_gui)
    timer = QTimer()
    timer.timeout.connect(gui_ticked.set)
    timer.start(5)
    viewport, canvas = make_viewer(tiny_model, small_image, zoom=4.0)
    qtbot.waitUntil(lambda: len(answers) >= 2, timeout=TIMEOUT_MS)
    zoom = viewport.view.zoom
    wheel(canvas, QPointF(100, 75), angle_y=120)             # input while the decoder works
    assert viewport.view.zoom > zoom
    wait_sharp(qtbot, viewport)
    timer.stop()
    assert calls["decode"] > 0 and answers and all(answers)


def test_only_the_newest_view_is_rendered_and_shown(monkeypatch, make_viewer, tiny_model, small_image, qtbot):
    entered, release = threading.Event(), threading.Event()

    def hold_first_decode():
        entered.set()
        release.wait(timeout=10)

    instrument(monkeypatch, tiny_model, hold_first_decode)
    viewport, canvas = make_viewer(tiny_model, small_image, zoom=3.0)
    qtbot.waitUntil(entered.is_set, timeout=TIMEOUT_MS)     # the first view is being decoded
    finished = []
    viewport.renderer.request_finished.connect(lambda request_id, _: finished.append(request_id))
    for factor in (1.3, 1.3, 1.3):                          # three more views, quickly
        viewport.zoom_by(factor)
        viewport.request_now()
    newest = viewport._request.request_id
    release.set()
    wait_sharp(qtbot, viewport)
    assert finished == [newest]                             # superseded views were never finished
    latent = Latent(tiny_model, small_image, device="cpu")
    assert_frame_is(viewport, MODEL, lambda region, size: render_region(latent, region, size))


# ---------------------------------------------------------------------------- compare

def test_side_by_side_panes_share_one_view_and_one_pixel_grid(make_viewer, tiny_model, small_image, qtbot):
    viewport, area = make_viewer(tiny_model, small_image, size=(402, 150), compare=True)
    area.set_mode(SIDE)
    assert area.left.size() == area.right.size() and area.right.isVisible()
    point = under(viewport, 60, 70)
    wheel(area.right, QPointF(60, 70), angle_y=2 * 120)     # zoom on the right pane ...
    assert np.abs(under(viewport, 60, 70) - point).max() * viewport.view.zoom <= 0.5 + 1e-9
    point = under(viewport, 60, 70)
    mouse(area.right, "press", QPointF(60, 70))
    mouse(area.right, "move", QPointF(40, 80))
    mouse(area.right, "release", QPointF(40, 80))
    # ... and both panes show the same region: they draw one shared view
    assert area.left.viewport.view is area.right.viewport.view
    np.testing.assert_allclose(under(viewport, 40, 80), point, atol=1e-9)
    wait_sharp(qtbot, viewport)
    latent = Latent(tiny_model, small_image, device="cpu")
    assert_frame_is(viewport, MODEL, lambda region, size: render_region(latent, region, size))
    assert_frame_is(viewport, BICUBIC, lambda region, size: bicubic_region(small_image, region, size))


def test_swipe_shows_model_left_bicubic_right_and_the_divider_drags(make_viewer, tiny_model, small_image, qtbot):
    viewport, area = make_viewer(tiny_model, small_image, compare=True, zoom=4.0)
    area.set_mode(SWIPE)
    wait_sharp(qtbot, viewport)
    canvas = area.left
    picture = rgb8_from_qimage(canvas.grab().toImage())
    model, bicubic = shown(viewport, MODEL), shown(viewport, BICUBIC)
    rows = slice(40, 140)                                   # below the labels
    assert np.array_equal(picture[rows, 20:90], model[rows, 20:90])
    assert np.array_equal(picture[rows, 110:180], bicubic[rows, 110:180])
    view = viewport.view
    mouse(canvas, "press", QPointF(100, 100))               # on the divider: moves it, not the picture
    mouse(canvas, "move", QPointF(50, 100))
    mouse(canvas, "release", QPointF(50, 100))
    assert canvas.divider == pytest.approx(0.25) and viewport.view == view


def test_ab_toggle_swaps_what_is_shown_in_place(make_viewer, tiny_model, small_image, qtbot):
    viewport, area = make_viewer(tiny_model, small_image, compare=True, zoom=4.0)
    wait_sharp(qtbot, viewport)
    view = viewport.view
    area.toggle_ab()
    wait_sharp(qtbot, viewport)
    assert area.left.kind == BICUBIC and viewport.view == view
    picture = rgb8_from_qimage(area.left.grab().toImage())
    assert np.array_equal(picture[40:140, 10:190], shown(viewport, BICUBIC)[40:140, 10:190])
    area.toggle_ab()
    assert area.left.kind == MODEL


def test_explain_draws_the_latent_grid_when_cells_are_visible(make_viewer, tiny_model, small_image, qtbot):
    viewport, canvas = make_viewer(tiny_model, small_image, zoom=16.0, center=(20.0, 20.0))
    wait_sharp(qtbot, viewport)
    plain = rgb8_from_qimage(canvas.grab().toImage()).astype(int)
    canvas.explain = True
    overlay = rgb8_from_qimage(canvas.grab().toImage()).astype(int)
    xs, ys = grid_lines(viewport.view, 64, 48)
    column = int(round(xs[1]))                              # a cell boundary left of the marked codes
    rows = slice(int(ys[2]) + 3, int(ys[3]) - 2)            # mid-cell rows below the label
    assert (np.abs(overlay[rows, column] - plain[rows, column]).sum(-1) > 0).all()
    between = column + 8                                    # mid-cell: the picture is untouched
    assert (overlay[rows, between] == plain[rows, between]).all()


def test_the_screen_copy_of_a_photo_is_its_8_bit_pixels_and_their_halvings():
    rng = np.random.default_rng(5)
    photo = rng.random((300, 40, 3), dtype=np.float32)     # taller than one conversion strip
    levels = source_pyramid(photo, stop=100)
    assert np.array_equal(rgb8_from_qimage(levels[0]), to_rgb8(photo))
    assert [(level.width(), level.height()) for level in levels] == [(40, 300), (20, 150), (10, 75)]
    for big, small in zip(levels, levels[1:]):              # each level averages 2x2 of the one above
        blocks = rgb8_from_qimage(big).astype(float).reshape(small.height(), 2, small.width(), 2, 3).mean((1, 3))
        assert np.abs(rgb8_from_qimage(small) - blocks).max() <= 0.5
