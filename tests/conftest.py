"""Shared fixtures: a tiny real model, small test images, and settings and kernel builds
kept out of the user's home; and the viewer tests' shared checks and input helpers (what the screen shows
against the decoder's own rendering; wheel and mouse events), imported by those tests as
`from conftest import ...`. Qt runs offscreen (no display on CI); Qt is imported only when
a viewer helper is used, so the engine tests run without it."""

from __future__ import annotations

import os
import sys

import numpy as np
import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

TINY_CONFIG = {"kind": "fast", "encoder": "edsr-baseline", "encoder_args": {"n_resblocks": 1, "n_feats": 8}}


@pytest.fixture(scope="session", autouse=True)
def _settings_in_temp_dir(tmp_path_factory):
    """QSettings (recent files) write to a temporary folder, never the user's settings."""
    try:
        from PySide6.QtCore import QSettings
    except ImportError:
        yield
        return
    folder = tmp_path_factory.mktemp("settings")
    for fmt in (QSettings.Format.IniFormat, QSettings.Format.NativeFormat):
        QSettings.setPath(fmt, QSettings.Scope.UserScope, str(folder))
    yield folder


@pytest.fixture(scope="session", autouse=True)
def _native_builds_in_temp_dir(tmp_path_factory):
    """The fast kernel (engine/model/native.py) builds into a temporary cache folder,
    never the user's ~/.cache/zoomviewer; programs the tests start inherit it."""
    folder = tmp_path_factory.mktemp("cache")
    patch = pytest.MonkeyPatch()
    patch.setenv("ZOOMVIEWER_CACHE_DIR", str(folder))
    native = sys.modules.get("zoomviewer.engine.model.native")
    if native is not None:  # a build loaded before the session started: look again, here
        native.reset()
    yield folder
    patch.undo()


@pytest.fixture
def tiny_model():
    """A real fast-decoder model with random weights (seeded), small enough for tests.
    The output layer is scaled up so that colours vary visibly across the picture
    (default initialisation predicts nearly flat grey)."""
    import torch

    from zoomviewer.engine.model import new_model

    torch.manual_seed(0)
    model = new_model(TINY_CONFIG).eval()
    with torch.no_grad():
        model.render_out.weight.mul_(20)
    return model


@pytest.fixture
def small_image() -> np.ndarray:
    """64 x 48 float32 RGB: smooth gradients plus noise, so every pixel differs."""
    rng = np.random.default_rng(3)
    yy, xx = np.mgrid[0:48, 0:64]
    base = np.stack([xx / 64, yy / 48, 0.5 + 0.5 * np.sin(xx / 5.0 + yy / 7.0)], -1)
    return np.clip(0.75 * base + 0.25 * rng.random((48, 64, 3)), 0, 1).astype(np.float32)


# ------------------------------------------------------------------ viewer test helpers

def shown(viewport, kind="model") -> np.ndarray:
    """The frame a Viewport has for `kind`, as uint8 pixels; it must be for the current view."""
    from zoomviewer.app.qimages import rgb8_from_qimage

    frame = viewport.frames[kind]
    assert frame.matches(viewport.view), "the frame on screen is not for the current view"
    return rgb8_from_qimage(frame.image)


def expected(render, viewport):
    """What exactly the visible region should look like, rendered in one piece here:
    `render(region, out_size)` -> float RGB. Returns (screen rect, uint8 pixels)."""
    from zoomviewer.engine.geometry import render_target
    from zoomviewer.engine.resample import to_rgb8

    w, h = viewport.image_size
    target = render_target(viewport.view, w, h)
    return target.screen_rect, to_rgb8(render(target.region, target.out_size))


def assert_frame_is(viewport, kind, render):
    """The frame shown for `kind` is `render` of exactly the visible pixels."""
    (x0, y0, x1, y1), want = expected(render, viewport)
    got = shown(viewport, kind)[y0:y1, x0:x1]
    assert np.abs(got.astype(int) - want).max() <= 1   # tiles vs one piece: summation order only


WINDOW_TIMEOUT_MS = 30_000


def viewer_of(qtbot, renderer, image, zoom, center, size, fuse=False):
    """-> (viewport, the status texts it says): a Viewport on a started `renderer`,
    showing `image` at `zoom` about `center` in a shown ZoomCanvas of `size`."""
    from zoomviewer.app.canvas import ZoomCanvas
    from zoomviewer.app.viewport import Viewport

    viewport = Viewport(renderer, debounce_ms=10)
    viewport.fuse = fuse
    states = []
    viewport.state_changed.connect(states.append)
    viewport.place(zoom, center)
    viewport.set_image(image)
    canvas = ZoomCanvas(viewport)
    qtbot.addWidget(canvas)
    canvas.resize(*size)
    canvas.show()
    return viewport, states


def shown_window(qtbot, window, size=(420, 320)):
    """The window shown at `size`, once its render thread has loaded the model."""
    qtbot.addWidget(window)
    window.resize(*size)
    window.show()
    qtbot.waitExposed(window)
    qtbot.waitUntil(lambda: window.viewport.model_name is not None, timeout=WINDOW_TIMEOUT_MS)
    return window


def open_and_wait(qtbot, window, path) -> bool:
    """Open through the window (decoded on its loader thread); True when it is now shown."""
    with qtbot.waitSignal(window.open_finished, timeout=WINDOW_TIMEOUT_MS) as outcome:
        window.open_path(path)
    assert outcome.args[0] == path
    return outcome.args[1]


@pytest.fixture(scope="module")
def tiny_weights(tmp_path_factory):
    """A weights file of a tiny fast model, as the CLI reads one."""
    from engine_models import spread_model
    from zoomviewer.engine.model import save_weights
    model = spread_model("fast", residual=True)
    path = tmp_path_factory.mktemp("w") / "tiny.pt"
    save_weights(path, model, model.config, {"iterations": 0})
    return path


def wheel(widget, pos, angle_y: int = 0, pixel_y: int = 0) -> None:
    """A wheel event at `pos` (QPointF): angle_y in eighths of a degree (120 = one notch),
    pixel_y for a trackpad's smooth scrolling."""
    from PySide6.QtCore import QPoint, Qt
    from PySide6.QtGui import QWheelEvent
    from PySide6.QtWidgets import QApplication

    event = QWheelEvent(pos, widget.mapToGlobal(pos), QPoint(0, pixel_y), QPoint(0, angle_y),
                        Qt.MouseButton.NoButton, Qt.KeyboardModifier.NoModifier, Qt.ScrollPhase.NoScrollPhase, False)
    QApplication.sendEvent(widget, event)


def mouse(widget, kind, pos, buttons=None) -> None:
    """A left-button mouse event: kind is "press", "move", "release" or "double"."""
    from PySide6.QtCore import Qt
    from PySide6.QtGui import QMouseEvent
    from PySide6.QtWidgets import QApplication

    buttons = Qt.MouseButton.LeftButton if buttons is None else buttons
    types = {"press": QMouseEvent.Type.MouseButtonPress, "move": QMouseEvent.Type.MouseMove,
             "release": QMouseEvent.Type.MouseButtonRelease, "double": QMouseEvent.Type.MouseButtonDblClick}
    button = Qt.MouseButton.NoButton if kind == "move" else Qt.MouseButton.LeftButton
    held = Qt.MouseButton.NoButton if kind == "release" else buttons
    QApplication.sendEvent(widget, QMouseEvent(types[kind], pos, widget.mapToGlobal(pos), button, held,
                                               Qt.KeyboardModifier.NoModifier))
