"""Choosing the model in the window and comparing two models (pytest-qt, offscreen, two
tiny real models called fast and restore): the Model menu switches what is painted while
the view stays, the choice is remembered, the Latent of a model no pane uses is let go,
and the compare modes set any two of bicubic and the models side by side."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from zoomviewer.app.compare import SIDE, SWIPE
from zoomviewer.app.photo_loader import PhotoLoader
from zoomviewer.app.protocol import BICUBIC, MODEL
from zoomviewer.app.render_thread import RenderThread
from zoomviewer.app.settings import app_settings
from zoomviewer.app.window import MainWindow
from zoomviewer.engine import images
from zoomviewer.engine.render import Latent, render_region
from zoomviewer.engine.resample import bicubic_region

from conftest import TINY_CONFIG, assert_frame_is, shown

TIMEOUT_MS = 30_000


@pytest.fixture
def restore_model():
    """Another tiny real model (other weights), named restore in its meta."""
    import torch

    from zoomviewer.engine.model import new_model

    torch.manual_seed(7)
    model = new_model(TINY_CONFIG).eval()
    with torch.no_grad():
        model.render_out.weight.mul_(20)
    model.meta = {"name": "restore"}
    return model


@pytest.fixture
def make_window(qtbot, tiny_model, restore_model):
    """make(prefer_remembered=False) -> a MainWindow on the small photo at x2.5, whose render
    thread has fast (tiny_model) first and loads restore when asked for it."""
    windows = []

    def make(small_image, prefer_remembered=False):
        loaded = {"restore": restore_model}
        renderer = RenderThread(tiny_model, "cpu", tile=64, model_loader=loaded.__getitem__,
                                choices=("fast", "restore"))
        window = MainWindow(renderer, photo_loader=PhotoLoader(load=images.load),
                            prefer_remembered_model=prefer_remembered)
        qtbot.addWidget(window)
        window.resize(360, 280)
        window.show()
        window.show_photo(images.Photo(small_image, images.PhotoMetadata(), Path("photo.png")))
        window.viewport.place(2.5, (30, 22))
        qtbot.waitUntil(lambda: window.viewport.model_name is not None, timeout=TIMEOUT_MS)
        windows.append(window)
        return window

    yield make
    for window in windows:
        window.close()


def render_with(model, image):
    latent = Latent(model, image, device="cpu")
    return lambda region, size: render_region(latent, region, size)


def wait_sharp(qtbot, window):
    qtbot.waitUntil(window.viewport.is_sharp, timeout=TIMEOUT_MS)


def test_choosing_a_model_repaints_with_it_and_keeps_the_view(qtbot, make_window, small_image,
                                                               tiny_model, restore_model):
    window = make_window(small_image)
    vp = window.viewport
    wait_sharp(qtbot, window)
    assert sorted(window.model_actions) == ["fast", "restore"]
    before, view = shown(vp, MODEL).copy(), vp.view
    assert_frame_is(vp, MODEL, render_with(tiny_model, small_image))
    window.model_actions["restore"].trigger()
    wait_sharp(qtbot, window)
    assert vp.view == view                                      # the view stays
    assert_frame_is(vp, MODEL, render_with(restore_model, small_image))
    assert np.abs(shown(vp, MODEL).astype(int) - before).max() > 20   # and the picture did change
    assert "restore" in window.device_label.text()
    assert window.renderer.latents_held() == ("restore",)       # fast's Latent was let go
    assert app_settings().value("model") == "restore"


def test_the_chosen_model_is_remembered_for_the_next_window(qtbot, make_window, small_image):
    make_window(small_image).choose_model("restore")
    again = make_window(small_image, prefer_remembered=True)
    qtbot.waitUntil(lambda: again.viewport.model_name == "restore", timeout=TIMEOUT_MS)
    assert again.model_actions["restore"].isChecked()
    app_settings().setValue("model", "fast")


@pytest.mark.parametrize("mode", [SIDE, SWIPE])
def test_two_models_compare_side_by_side_and_in_swipe(qtbot, make_window, small_image, tiny_model,
                                                      restore_model, mode):
    window = make_window(small_image)
    window.set_compare(mode)
    window.compare_with("restore")
    wait_sharp(qtbot, window)
    vp = window.viewport
    assert_frame_is(vp, MODEL, render_with(tiny_model, small_image))
    assert_frame_is(vp, "restore", render_with(restore_model, small_image))
    labels = {vp.kind_label(window.compare.left.kind), vp.kind_label(window.compare.left.other_kind)}
    assert labels == {"model: fast decoder", "model: restore"}
    assert set(window.renderer.latents_held()) == {"fast", "restore"}
    window.compare_with(BICUBIC)
    wait_sharp(qtbot, window)
    assert_frame_is(vp, BICUBIC, lambda region, size: bicubic_region(small_image, region, size))
    assert window.renderer.latents_held() == ("fast",)


def test_the_status_bar_names_bicubic_when_the_ab_toggle_shows_it(qtbot, make_window, small_image):
    window = make_window(small_image)
    wait_sharp(qtbot, window)
    assert window.device_label.text().startswith("fast decoder on")
    window.ab_action.trigger()
    assert window.device_label.text().startswith("bicubic on")
