"""The Details list in the window (pytest-qt, offscreen): N flies to the first suggestion
(with OpenCV, to the marked face of the bundled Kodak photo) at the zoom at which it
fills the view, Shift+N goes back round, a click on an entry flies there, the status bar
counts; N pressed before the details are found flies once they are; the Detail Map (H)
lights the photo where the map is hot, stays on it at another zoom and pan, and leaves
every pixel as it was when it is off again."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import numpy as np
from PIL import Image
from PySide6.QtCore import Qt

from zoomviewer.app.details_thread import DetailsThread
from zoomviewer.app.qimages import rgb8_from_qimage
from zoomviewer.app.render_thread import RenderThread
from zoomviewer.app.window import MainWindow
from zoomviewer.engine import faces

from conftest import WINDOW_TIMEOUT_MS, open_and_wait, shown_window

FIXTURES = Path(__file__).resolve().parent / "fixtures"
PHOTO = FIXTURES / "kodim18.png"
# the details come after the first sharp view, so a loaded machine may take both waits in turn
DETAILS_TIMEOUT_MS = 3 * WINDOW_TIMEOUT_MS


def marked_face() -> tuple[float, float, float, float]:
    face = json.loads((FIXTURES / "kodim18.json").read_text(encoding="utf-8"))["faces"][0]
    return face["x"], face["y"], face["w"], face["h"]


def arrived(qtbot, window) -> None:
    vp = window.viewport
    qtbot.waitUntil(lambda: not vp.glide.running, timeout=WINDOW_TIMEOUT_MS)


def assert_fills_the_view(view, rect) -> None:
    """`rect` is all on screen, centred, and takes most of the screen's width or height."""
    x, y, w, h = rect
    vx, vy, vw, vh = view.visible_region()
    assert vx <= x and vy <= y and x + w <= vx + vw and y + h <= vy + vh
    assert 0.6 < max(w / vw, h / vh) < 0.9
    assert abs(view.cx - (x + w / 2)) <= 1 / view.zoom and abs(view.cy - (y + h / 2)) <= 1 / view.zoom


def test_n_flies_to_each_suggestion_in_turn_faces_first(qtbot, tiny_model):
    window = shown_window(qtbot, MainWindow(RenderThread(tiny_model, "cpu", tile=64)), (640, 480))
    assert open_and_wait(qtbot, window, PHOTO)
    panel, canvas = window.details, window.compare.left
    qtbot.waitUntil(lambda: panel.found is not None, timeout=DETAILS_TIMEOUT_MS)
    regions = panel.regions
    n = len(regions)
    assert n >= 3 and panel.list.count() == n
    qtbot.keyClick(canvas, Qt.Key.Key_N)
    arrived(qtbot, window)
    assert_fills_the_view(window.viewport.view, regions[0].rect)
    assert window.statusBar().currentMessage() == f"detail 1 of {n} ({regions[0].kind})"
    if faces.available():          # the face first, and the view on it
        assert regions[0].kind == "face" and window.statusBar().currentMessage() == f"detail 1 of {n} (face)"
        x, y, w, h = marked_face()
        assert x < window.viewport.view.cx < x + w and y < window.viewport.view.cy < y + h
    qtbot.keyClick(canvas, Qt.Key.Key_N)
    arrived(qtbot, window)
    assert_fills_the_view(window.viewport.view, regions[1].rect)
    qtbot.keyClick(canvas, Qt.Key.Key_N, Qt.KeyboardModifier.ShiftModifier)
    qtbot.keyClick(canvas, Qt.Key.Key_N, Qt.KeyboardModifier.ShiftModifier)   # back round to the last
    arrived(qtbot, window)
    assert_fills_the_view(window.viewport.view, regions[-1].rect)
    assert window.statusBar().currentMessage() == f"detail {n} of {n} ({regions[-1].kind})"


def test_a_click_on_an_entry_of_the_list_flies_there(qtbot, tiny_model):
    window = shown_window(qtbot, MainWindow(RenderThread(tiny_model, "cpu", tile=64)), (640, 480))
    assert open_and_wait(qtbot, window, PHOTO)
    panel = window.details
    qtbot.keyClick(window.compare.left, Qt.Key.Key_D)                # View > Details List
    assert panel.dock.isVisible()
    qtbot.waitUntil(lambda: panel.found is not None, timeout=DETAILS_TIMEOUT_MS)
    item = panel.list.item(2)
    qtbot.mouseClick(panel.list.viewport(), Qt.MouseButton.LeftButton, pos=panel.list.visualItemRect(item).center())
    arrived(qtbot, window)
    assert_fills_the_view(window.viewport.view, panel.regions[2].rect)
    assert window.statusBar().currentMessage().startswith(f"detail 3 of {len(panel.regions)}")


class HeldDetails(RenderThread):
    """A render thread whose details thread waits for `gate` before it looks at a photo."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.gate = threading.Event()

    def detail_finder(self, parent=None) -> DetailsThread:
        return DetailsThread(lambda: (self.gate.wait(WINDOW_TIMEOUT_MS / 1000), self.model)[1], parent)


def test_n_before_the_details_are_found_flies_when_they_are(qtbot, tiny_model):
    renderer = HeldDetails(tiny_model, "cpu", tile=64)
    window = shown_window(qtbot, MainWindow(renderer), (640, 480))
    assert open_and_wait(qtbot, window, PHOTO)
    fitted = window.viewport.view
    qtbot.keyClick(window.compare.left, Qt.Key.Key_N)
    assert window.statusBar().currentMessage() == "finding the details…" and window.viewport.view == fitted
    renderer.gate.set()
    qtbot.waitUntil(lambda: window.details.index == 0, timeout=DETAILS_TIMEOUT_MS)
    arrived(qtbot, window)
    assert_fills_the_view(window.viewport.view, window.details.regions[0].rect)


def sky_over_texture(path: Path, w: int = 256, h: int = 192) -> Path:
    """A photo of flat sky above random 6-pixel blocks of colour."""
    rng = np.random.default_rng(1)
    img = np.empty((h, w, 3), np.uint8)
    img[:] = (120, 160, 230)
    img[h // 2:] = rng.integers(0, 256, (h // 12 + 1, w // 6 + 1, 3), dtype=np.uint8).repeat(6, 0).repeat(6, 1)[:h // 2, :w]
    Image.fromarray(img).save(path)
    return path


def test_the_detail_map_lights_the_texture_not_the_sky_and_goes_when_off(qtbot, tmp_path):
    # No model: bicubic views, and the model-free detail measure, which is exactly 0 on the sky
    window = shown_window(qtbot, MainWindow(RenderThread(None, "cpu")), (640, 480))
    window.set_navigator(False, remember=False)
    assert open_and_wait(qtbot, window, sky_over_texture(tmp_path / "sky.png"))
    vp, canvas = window.viewport, window.compare.left
    qtbot.waitUntil(lambda: window.details.found is not None, timeout=DETAILS_TIMEOUT_MS)

    def picture():
        qtbot.waitUntil(vp.is_sharp, timeout=WINDOW_TIMEOUT_MS)
        return rgb8_from_qimage(canvas.grab().toImage()).astype(int)

    def at(image, x, y):   # the pixel showing source point (x, y)
        sx, sy = vp.view.image_to_screen(x, y)
        return image[int(sy), int(sx)]

    # two zooms and pans, each with a textured (hot) and a sky (cold) source point on screen
    for zoom, centre, hot, cold in ((2.0, (128.0, 140.0), (60, 150), (60, 40)), (4.0, (60.0, 60.0), (60, 105), (60, 20))):
        vp.place(zoom, centre)
        off = picture()
        qtbot.keyClick(canvas, Qt.Key.Key_H)
        on = picture()
        assert window.details.map_action.isChecked()
        assert np.abs(at(on, *hot) - at(off, *hot)).max() > 40            # texture: hot
        assert (at(on, *cold) == at(off, *cold)).all()                    # sky: cold, untouched
        qtbot.keyClick(canvas, Qt.Key.Key_H)
        assert (picture() == off).all()                                   # off: every pixel as it was
