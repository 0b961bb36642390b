"""What a viewer's window is expected to do beyond showing the photo (pytest-qt, offscreen,
a tiny real model): the navigator shows where the view is and takes it elsewhere, the
keys' zoom glides to exactly its step (a second press steps on, the wheel interrupts)
and asks the renderer once, the status bar names bicubic when B shows it and keeps the
cursor's source point current, and the desktop entry and icon are there and installed."""

from __future__ import annotations

import configparser
import fnmatch
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from PySide6.QtCore import QEvent, QPointF, Qt
from PySide6.QtWidgets import QApplication

from zoomviewer.app.canvas import ZoomCanvas
from zoomviewer.app.desktop import MIME_TYPES, desktop_file, icon_file
from zoomviewer.app.folder import place_in_folder
from zoomviewer.app.photo_loader import PhotoLoader
from zoomviewer.app.render_thread import RenderThread
from zoomviewer.app.settings import app_settings
from zoomviewer.app.viewport import Viewport
from zoomviewer.app.window import MainWindow
from zoomviewer.app.zoom_animation import GLIDE_MS, zoom_path
from zoomviewer.engine import formats, images
from zoomviewer.engine.bundled import sample_photo
from zoomviewer.engine.geometry import View

from conftest import mouse, open_and_wait, shown_window, wheel

TIMEOUT_MS = 30_000
ROOT = Path(__file__).resolve().parents[1]
OUTLINE = (255, 210, 60)          # the navigator's outline of the part on screen


class AskingRenderThread(RenderThread):
    """The real render thread, keeping the views it was asked for."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.asked = []

    def request(self, request) -> None:
        self.asked.append(request.view)
        super().request(request)


@pytest.fixture
def window(qtbot, tiny_model):
    app_settings().remove("navigator")
    win = MainWindow(AskingRenderThread(tiny_model, "cpu", tile=64), photo_loader=PhotoLoader(load=images.load))
    yield shown_window(qtbot, win)
    win.close()
    app_settings().remove("navigator")


def save_photo(path, w, h, seed=0):
    """Dark blue-grey noise: nothing in it is the navigator's yellow."""
    rng = np.random.default_rng(seed)
    Image.fromarray((rng.random((h, w, 3)) * (60, 70, 110)).astype(np.uint8)).save(path)
    return path


def arrive(qtbot, win, zoom) -> None:
    qtbot.waitUntil(lambda: win.viewport.view.zoom == pytest.approx(zoom), timeout=TIMEOUT_MS)


# ---------------------------------------------------------------------------- navigator

def outline_box(navigator):
    """(left, top, right, bottom) of the outline's pixels in a grab of the navigator."""
    image = navigator.grab().toImage()
    rgb = np.array([[image.pixelColor(x, y).getRgb()[:3] for x in range(image.width())]
                    for y in range(image.height())])
    ys, xs = np.nonzero((rgb == OUTLINE).all(-1))
    assert len(xs), "no outline drawn"
    return xs.min(), ys.min(), xs.max(), ys.max()


def test_the_navigator_shows_where_the_view_is_and_a_click_goes_there(qtbot, window, tmp_path):
    open_and_wait(qtbot, window, save_photo(tmp_path / "wide.png", 160, 120))
    nav, vp = window.navigator, window.viewport
    assert not nav.isVisible()                                  # fitted: the whole photo is on screen
    vp.place(8.0, (100.0, 40.0))
    assert nav.isVisible()
    canvas = window.compare.left
    assert nav.geometry().right() < canvas.width() and nav.geometry().bottom() < canvas.height()
    # the outline lies where the view is, on the picture of the whole photo
    picture, s = nav.picture_rect(), nav.picture_rect().width() / 160
    x, y, w, h = vp.view.visible_region()
    left, top, right, bottom = outline_box(nav)
    assert abs(left - (picture.x() + x * s)) <= 2 and abs(right - (picture.x() + (x + w) * s)) <= 2
    assert abs(top - (picture.y() + y * s)) <= 2 and abs(bottom - (picture.y() + (y + h) * s)) <= 2
    # a click on the picture's far corner centres the view on the photo's far corner
    zoom = vp.view.zoom
    mouse(nav, "press", QPointF(picture.right() - 0.01, picture.bottom() - 0.01))
    mouse(nav, "release", QPointF(picture.right() - 0.01, picture.bottom() - 0.01))
    assert vp.view.cx == pytest.approx(160, abs=1) and vp.view.cy == pytest.approx(120, abs=1)
    assert vp.view.zoom == zoom                                 # only the place changed
    # a drag on it follows the pointer
    mouse(nav, "press", QPointF(picture.x() + 40 * s, picture.y() + 60 * s))
    mouse(nav, "move", QPointF(picture.x() + 20 * s, picture.y() + 30 * s))
    assert vp.view.cx == pytest.approx(20, abs=1.5) and vp.view.cy == pytest.approx(30, abs=1.5)
    mouse(nav, "release", QPointF(picture.x() + 20 * s, picture.y() + 30 * s))
    window.viewport.glide_fit()                                 # back to fit: it goes away
    qtbot.waitUntil(lambda: not nav.isVisible(), timeout=TIMEOUT_MS)


def test_the_navigator_switch_is_remembered(qtbot, window, tmp_path, tiny_model):
    open_and_wait(qtbot, window, save_photo(tmp_path / "wide.png", 160, 120))
    window.viewport.place(8.0, (100.0, 40.0))
    assert window.navigator.isVisible() and window.navigator_action.isChecked()
    assert window.navigator_action.shortcut().toString() == "M"
    window.navigator_action.trigger()
    assert not window.navigator.isVisible()
    again = MainWindow(RenderThread(tiny_model, "cpu"))
    qtbot.addWidget(again)
    assert not again.navigator_action.isChecked() and not again.navigator.wanted
    again.close()


# --------------------------------------------------------------------------- the glide

def test_a_glide_is_geometric_keeps_its_anchor_and_ends_exactly_at_the_target():
    start = View(50.0, 40.0, 2.0, 400, 300)
    end = start.zoom_at(100, 80, 4.0)                          # x8 about screen point (100, 80)
    path = zoom_path(start, end)
    steps = [path(u) for u in np.linspace(0, 1, 41)]
    zooms = [v.zoom for v in steps]
    assert all(b > a for a, b in zip(zooms, zooms[1:]))        # monotone, never overshooting
    assert path(0.0) == start and path(1.0) == end             # exactly there
    assert path(0.5).zoom == pytest.approx(4.0)                # geometric: half-way is x2 of x4
    anchor = start.screen_to_image(100, 80)
    for v in steps:
        assert v.screen_to_image(100, 80) == pytest.approx(anchor)
    back = zoom_path(end, View.fit(200, 150, 400, 300))        # out to fit: monotone down, exact end
    out = [back(u).zoom for u in np.linspace(0, 1, 21)]
    assert all(b < a for a, b in zip(out, out[1:])) and back(1.0) == View.fit(200, 150, 400, 300)


def test_plus_glides_to_the_step_a_second_press_steps_on_and_the_wheel_interrupts(qtbot, window, tmp_path):
    open_and_wait(qtbot, window, save_photo(tmp_path / "wide.png", 160, 120))
    vp, canvas = window.viewport, window.compare.left
    vp.place(2.0, (80.0, 60.0))
    qtbot.waitUntil(vp.is_sharp, timeout=TIMEOUT_MS)
    qtbot.keyClick(canvas, Qt.Key.Key_Plus)
    arrive(qtbot, window, 2.0 * 2 ** 0.5)
    # + twice before the first glide is over: two steps, from where the first was going
    qtbot.keyClick(canvas, Qt.Key.Key_Plus)
    assert vp.glide.running
    qtbot.keyClick(canvas, Qt.Key.Key_Plus)
    arrive(qtbot, window, 4.0 * 2 ** 0.5)
    # the wheel during a glide stops it and zooms from what is on screen, at once
    qtbot.keyClick(canvas, Qt.Key.Key_Minus)
    on_screen = vp.view.zoom
    wheel(canvas, QPointF(100, 80), angle_y=120)
    after_wheel = vp.view
    assert after_wheel.zoom == pytest.approx(on_screen * 2 ** 0.25)
    qtbot.wait(3 * GLIDE_MS)
    assert vp.view == after_wheel                               # the glide did not carry on
    qtbot.waitUntil(vp.is_sharp, timeout=TIMEOUT_MS)
    assert window.renderer.asked[-1] == after_wheel


def test_a_glide_asks_the_renderer_once_where_it_arrives(qtbot, tiny_model, small_image):
    renderer = AskingRenderThread(tiny_model, "cpu", tile=64)
    renderer.start()
    vp = Viewport(renderer, debounce_ms=0)          # without the glide's care, every frame would be asked for
    vp.set_image(small_image)
    canvas = ZoomCanvas(vp)
    qtbot.addWidget(canvas)
    canvas.resize(200, 150)
    canvas.show()
    qtbot.waitExposed(canvas)
    qtbot.waitUntil(lambda: vp.model_name is not None and vp.is_sharp(), timeout=TIMEOUT_MS)
    asked, fit = len(renderer.asked), vp.view.zoom
    qtbot.keyClick(canvas, Qt.Key.Key_Plus)
    assert vp.glide.running and vp.view.zoom == fit          # it moves there, it does not jump
    qtbot.waitUntil(lambda: vp.view.zoom == pytest.approx(fit * 2 ** 0.5) and vp.is_sharp(), timeout=TIMEOUT_MS)
    assert renderer.asked[asked:] == [vp.view]
    mouse(canvas, "double", QPointF(40, 30))        # double-click too: x2 about the pointer, asked once
    assert vp.glide.running
    qtbot.waitUntil(lambda: vp.view.zoom == pytest.approx(fit * 2 ** 1.5) and vp.is_sharp(), timeout=TIMEOUT_MS)
    assert renderer.asked[asked + 1:] == [vp.view]
    renderer.stop()


# ------------------------------------------------------------------------- the status bar

def test_b_shows_bicubic_and_the_status_bar_says_so(qtbot, window, tmp_path):
    open_and_wait(qtbot, window, save_photo(tmp_path / "wide.png", 160, 120))
    window.viewport.place(3.0, (80.0, 60.0))
    assert window.device_label.text() == "fast decoder on cpu"
    qtbot.keyClick(window.compare.left, Qt.Key.Key_B)          # the key, as a user presses it
    assert window.compare.left.kind == "bicubic" and window.device_label.text() == "bicubic on cpu"
    window.set_compare("side")                                  # the main (left) pane still shows bicubic
    assert window.device_label.text() == "bicubic on cpu"
    qtbot.keyClick(window.compare.left, Qt.Key.Key_B)
    assert window.device_label.text() == "fast decoder on cpu"
    assert not window.ab_action.autoRepeat()                    # holding B does not flicker back and forth
    window.viewport.place(0.5, (80.0, 60.0))                    # at <= 100 % no decoder runs
    assert window.device_label.text() == "source, area-averaged on cpu"
    window.viewport.place(2.0, (80.0, 60.0))
    assert window.device_label.text() == "fast decoder on cpu"


def test_the_cursors_source_point_follows_every_change_of_view(qtbot, window, tmp_path):
    open_and_wait(qtbot, window, save_photo(tmp_path / "wide.png", 160, 120))
    vp, canvas, label = window.viewport, window.compare.left, window.cursor_label
    vp.place(2.0, (80.0, 60.0))
    pointer = QPointF(150, 100)

    def says_the_point_under_the_pointer() -> bool:
        x, y = vp.view.screen_to_image(pointer.x(), pointer.y())
        return label.text() == f"x {float(x):.1f}  y {float(y):.1f}"

    mouse(canvas, "move", pointer, buttons=Qt.MouseButton.NoButton)
    assert says_the_point_under_the_pointer()
    first = label.text()
    qtbot.keyClick(canvas, Qt.Key.Key_Plus)                     # keyboard zoom; the pointer stays
    arrive(qtbot, window, 2.0 * 2 ** 0.5)
    assert says_the_point_under_the_pointer() and label.text() != first
    qtbot.keyClick(canvas, Qt.Key.Key_Left)                     # pan
    assert says_the_point_under_the_pointer()
    # another photo, of another size: its own point under the pointer, not the last one's
    open_and_wait(qtbot, window, save_photo(tmp_path / "tall.png", 120, 200, seed=1))
    assert vp.image_size == (120, 200) and says_the_point_under_the_pointer()
    # a photo on which the pointer is off the picture: nothing, not the last photo's point
    open_and_wait(qtbot, window, save_photo(tmp_path / "narrow.png", 20, 200, seed=2))
    assert label.text() == ""
    open_and_wait(qtbot, window, tmp_path / "wide.png")
    assert says_the_point_under_the_pointer()
    QApplication.sendEvent(canvas, QEvent(QEvent.Type.Leave))   # the pointer leaves the canvas
    assert label.text() == ""


# ------------------------------------------------------------------------- the desktop

def test_the_desktop_entry_runs_zoomviewer_with_its_icon_for_every_format(window):
    entry = configparser.ConfigParser(interpolation=None)
    entry.optionxform = str                                     # keys are case-sensitive
    entry.read(desktop_file(), encoding="utf-8")
    fields = entry["Desktop Entry"]
    assert fields["Type"] == "Application" and fields["Name"] == "zoomviewer"
    assert fields["Exec"].split() == ["zoomviewer", "%f"]
    assert icon_file(".svg").name == fields["Icon"] + ".svg" and icon_file(".svg").is_file()
    assert icon_file(".png").is_file()
    offered = set(filter(None, fields["MimeType"].split(";")))
    assert offered == {MIME_TYPES[f.name] for f in formats.FILE_FORMATS}   # every format opened
    assert not window.windowIcon().isNull()
    assert not window.windowIcon().pixmap(64, 64).toImage().isNull()


def test_the_icon_and_entry_are_installed_with_the_package():
    tomllib = pytest.importorskip("tomllib")
    with open(ROOT / "pyproject.toml", "rb") as f:
        patterns = tomllib.load(f)["tool"]["setuptools"]["package-data"]["zoomviewer.resources"]
    for path in (desktop_file(), icon_file(".svg"), icon_file(".png")):
        name = path.relative_to(ROOT / "resources").as_posix()
        assert any(fnmatch.fnmatch(name, p) for p in patterns), name
    assert place_in_folder(sample_photo()) == (1, 1)           # Go > Next from the sample: not the icon


def test_the_application_is_named_for_the_desktop(qtbot, window, tmp_path):
    from zoomviewer.app.launch import application

    app = application()
    assert app.desktopFileName() == "zoomviewer" and app.applicationDisplayName() == "zoomviewer"
    open_and_wait(qtbot, window, save_photo(tmp_path / "wide.png", 160, 120))
    assert window.windowTitle() == "wide.png — 1 of 1 (160×120) — zoomviewer"
