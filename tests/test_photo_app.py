"""What people expect of a photo app, in the window (pytest-qt, offscreen, a tiny real
model): paste opens an image from the clipboard, Copy View puts the rendered view there,
next / previous walk the folder in natural order past what is not a photo (the next one
preloaded), Help lists every shortcut, the zoom box takes a typed zoom, fit survives a
resize, and the export dialog's name follows the scale, remembers its settings and stays
open with a sentence when the target cannot be written."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from PySide6.QtGui import QAction
from PySide6.QtWidgets import QApplication

from zoomviewer.app.clipboard import PASTED_NAME
from zoomviewer.app.exportdialog import ExportDialog
from zoomviewer.app.folder import natural_key, neighbour, photos_in
from zoomviewer.app.help import about_html, shortcut_rows, version
from zoomviewer.app.launch import new_window
from zoomviewer.app.photo_loader import PhotoLoader
from zoomviewer.app.qimages import qimage_from_rgb8, rgb8_from_qimage
from zoomviewer.app.settings import app_settings
from zoomviewer.app.zoombox import parse_zoom
from zoomviewer.engine import images
from zoomviewer.engine.geometry import render_target
from zoomviewer.engine.resample import to_rgb8

from conftest import open_and_wait, shown, shown_window

TIMEOUT_MS = 30_000


@pytest.fixture
def window(qtbot, tiny_model):
    win = new_window(tiny_model, "cpu", photo_loader=PhotoLoader(load=images.load))
    yield shown_window(qtbot, win)
    win.close()


@pytest.fixture
def folder(tmp_path):
    """img1, img2, img10 (PNG), b.jpg, a text file and a folder that looks like a photo."""
    rng = np.random.default_rng(0)
    for name in ("img10.png", "img2.png", "img1.png", "b.jpg"):
        Image.fromarray(rng.integers(0, 256, (40, 56, 3), dtype=np.uint8)).save(tmp_path / name)
    (tmp_path / "notes.txt").write_text("not a photo")
    (tmp_path / "dir.png").mkdir()
    return tmp_path


def step_and_wait(qtbot, win, step) -> Path:
    with qtbot.waitSignal(win.open_finished, timeout=TIMEOUT_MS) as outcome:
        win.step_photo(step)
    return Path(outcome.args[0])


def test_natural_order_and_neighbours(folder):
    assert [p.name for p in photos_in(folder)] == ["b.jpg", "img1.png", "img2.png", "img10.png"]
    assert natural_key("IMG9") < natural_key("img10")
    assert neighbour(folder / "img2.png", 1).name == "img10.png"
    assert neighbour(folder / "img10.png", 1) is None and neighbour(folder / "b.jpg", -1) is None


def test_next_and_previous_walk_the_folder(qtbot, window, folder):
    assert open_and_wait(qtbot, window, folder / "img1.png")
    assert "img1.png — 2 of 4" in window.windowTitle()
    qtbot.waitUntil(lambda: window.loader.preloaded == folder / "img2.png", timeout=TIMEOUT_MS)
    walked = [step_and_wait(qtbot, window, 1).name for _ in range(2)]
    assert walked == ["img2.png", "img10.png"]
    window.step_photo(1)                                   # the last one: says so, stays
    assert "last photo" in window.statusBar().currentMessage()
    assert Path(window.photo.path).name == "img10.png"
    assert [step_and_wait(qtbot, window, -1).name for _ in range(3)] == ["img2.png", "img1.png", "b.jpg"]
    keys = {a.text(): [k.toString() for k in a.shortcuts()] for a in window.findChildren(QAction)}
    assert keys["&Next Photo in Folder"] == ["PgDown", "Space"]


def test_paste_opens_an_image_from_the_clipboard(qtbot, window):
    rgb = np.random.default_rng(1).integers(0, 256, (30, 50, 3), dtype=np.uint8)
    QApplication.clipboard().setImage(qimage_from_rgb8(rgb))
    window.paste()
    assert window.photo is not None and Path(window.photo.path).name == PASTED_NAME
    assert np.array_equal(to_rgb8(window.photo.pixels), rgb)
    assert window.viewport.image_size == (50, 30) and PASTED_NAME in window.windowTitle()


def test_paste_with_nothing_to_paste_says_so(qtbot, window):
    QApplication.clipboard().setText("just words")
    window.paste()
    assert window.photo is None and "no image" in window.statusBar().currentMessage()


def test_copy_view_puts_the_rendered_view_on_the_clipboard(qtbot, window, folder):
    assert open_and_wait(qtbot, window, folder / "img1.png")
    window.viewport.place(3.0, (28, 20))
    qtbot.waitUntil(window.viewport.is_sharp, timeout=TIMEOUT_MS)
    window.copy_view()
    copied = rgb8_from_qimage(QApplication.clipboard().image())
    frame = shown(window.viewport)
    w, h = window.viewport.image_size
    x0, y0, x1, y1 = render_target(window.viewport.view, w, h).screen_rect
    assert copied.shape == frame.shape
    assert np.array_equal(copied[y0:y1, x0:x1], frame[y0:y1, x0:x1])   # the model's pixels, no label


def test_the_shortcut_list_holds_every_actions_shortcut(window):
    listed = {(text, keys) for _, text, keys in shortcut_rows(window.menuBar())}
    for action in window.findChildren(QAction):
        if action.shortcuts() and action.text():
            keys = ", ".join(k.toString(k.SequenceFormat.NativeText) for k in action.shortcuts())
            assert (action.text().replace("&", ""), keys) in listed, action.text()
    assert ("Copy View", "Ctrl+C") in listed and ("Paste", "Ctrl+V") in listed


def test_about_names_the_version_the_model_and_pytorch(window):
    text = about_html(window.renderer.model_info)
    assert version() in text and "Model: fast decoder" in text and "PyTorch" in text


@pytest.mark.parametrize("text, zoom", [("1250 %", 12.5), ("×12.5", 12.5), ("x4", 4.0), ("2,5", 2.5),
                                        ("300%", 3.0), ("abc", None), ("-2", None), ("0", None), ("x50%", None)])
def test_zoom_box_reads_what_people_type(text, zoom):
    assert parse_zoom(text) == zoom


def test_typing_a_zoom_applies_it(qtbot, window, folder):
    assert open_and_wait(qtbot, window, folder / "img1.png")
    window.zoom_label.setText("400 %")
    window.zoom_label.returnPressed.emit()
    assert window.viewport.view.zoom == pytest.approx(4.0)
    assert window.zoom_label.text() == "×4"


def test_fit_survives_a_resize_until_the_user_zooms(qtbot, window, folder):
    assert open_and_wait(qtbot, window, folder / "img1.png")
    fitted = window.viewport.view.zoom
    window.resize(700, 520)
    qtbot.waitUntil(lambda: window.viewport.view.zoom > fitted * 1.3, timeout=TIMEOUT_MS)
    window.viewport.zoom_by(1.5)
    zoom = window.viewport.view.zoom
    window.resize(420, 320)
    qtbot.waitUntil(lambda: window.viewport.view.screen_w < 500, timeout=TIMEOUT_MS)
    assert window.viewport.view.zoom == pytest.approx(zoom)


@pytest.fixture
def dialog(qtbot, tmp_path):
    settings = app_settings()
    for key in ("export/format", "export/folder", "export/scale"):
        settings.remove(key)
    made = ExportDialog((0, 0, 40, 30), (80, 60), (40, 30), tmp_path / "old_e.jpg")
    qtbot.addWidget(made)
    yield made
    for key in ("export/format", "export/folder", "export/scale"):
        settings.remove(key)


def test_the_export_name_follows_the_scale_until_one_is_typed(dialog, tmp_path):
    dialog.scale.setValue(2)
    assert Path(dialog.path.text()).name == "old_e-x2.png"
    dialog.scale.setValue(10)
    assert Path(dialog.path.text()).name == "old_e-x10.png"
    dialog.width_box.setValue(200)
    assert Path(dialog.path.text()).name == "old_e-x5.png"
    dialog.path.setText(str(tmp_path / "mine.png"))
    dialog.scale.setValue(3)
    assert Path(dialog.path.text()).name == "mine.png"


def test_an_unwritable_target_keeps_the_dialog_open_with_a_sentence(qtbot, dialog):
    dialog.show()
    dialog.path.setText("/nonexistent_dir/out.png")
    dialog.accept()
    assert dialog.isVisible() and dialog.result() != ExportDialog.DialogCode.Accepted
    assert dialog.problem.text() == "The folder /nonexistent_dir does not exist."


def test_export_settings_are_remembered(qtbot, dialog, tmp_path):
    out = tmp_path / "sub"
    out.mkdir()
    dialog.format.setCurrentText("JPEG")
    dialog.scale.setValue(4)
    dialog.path.setText(str(out / "x.jpg"))
    dialog.accept()
    again = ExportDialog((0, 0, 40, 30), (80, 60), (40, 30), tmp_path / "other.png")
    qtbot.addWidget(again)
    assert again.format.currentText() == "JPEG" and again.scale.value() == 4
    assert Path(again.path.text()) == out / "other-x4.jpg"
