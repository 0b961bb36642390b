"""The main window as a user meets it (pytest-qt, offscreen, a tiny real model): photos
open on the loader thread while the window stays live, a bad file gets one sentence and
the photo on show stays, the newest of two opens wins, drag and drop, recent files,
settings kept out of the user's folder, and the scripted screenshot mode."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from PySide6.QtCore import QPoint, QPointF, Qt, QTimer
from PySide6.QtWidgets import QApplication

from zoomviewer.app.launch import new_window
from zoomviewer.app.photo_loader import PhotoLoader
from zoomviewer.engine import images
from zoomviewer.engine.resample import to_rgb8

from conftest import open_and_wait, wheel

TIMEOUT_MS = 30_000


@pytest.fixture
def photo_file(tmp_path, small_image):
    path = tmp_path / "photo.png"
    Image.fromarray(to_rgb8(small_image)).save(path)
    return path


class GatedLoad:
    """images.load, except that a file called `name` is held until `release()` (a big
    photo's decode, as long as the test needs it). `loading` is set while it is held;
    `thread` is the thread that decoded it."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.loading = threading.Event()
        self.gate = threading.Event()
        self.thread = None

    def __call__(self, path, *args, **kwargs):
        if Path(path).name == self.name:
            self.thread = threading.current_thread()
            self.loading.set()
            self.gate.wait(TIMEOUT_MS / 1000)
            self.loading.clear()
        return images.load(path, *args, **kwargs)

    def release(self) -> None:
        self.gate.set()


def window_with(tiny_model, load=images.load):
    return new_window(tiny_model, "cpu", photo_loader=PhotoLoader(load=load))


def save_photo(path, w, h, seed=0):
    Image.fromarray(np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)).save(path)
    return path


def test_opening_a_big_photo_never_freezes_the_window(qtbot, tiny_model, photo_file, tmp_path):
    big = save_photo(tmp_path / "big.png", 80, 60)
    load = GatedLoad("big.png")
    window = window_with(tiny_model, load)
    qtbot.addWidget(window)
    window.resize(320, 240)
    window.show()
    assert open_and_wait(qtbot, window, photo_file)
    with qtbot.waitSignal(window.open_finished, timeout=TIMEOUT_MS) as outcome:
        window.open_path(big)
        assert window.statusBar().currentMessage() == "opening big.png…"
        qtbot.waitUntil(load.loading.is_set, timeout=TIMEOUT_MS)
        # while the decode is held, the event loop runs timers and input ...
        ticks = []
        QTimer.singleShot(0, lambda: ticks.append(load.loading.is_set()))
        qtbot.waitUntil(lambda: bool(ticks), timeout=TIMEOUT_MS)
        assert ticks == [True]
        # ... and the photo on show stays usable
        zoom = window.viewport.view.zoom
        wheel(window.compare.left, QPointF(100, 80), angle_y=2 * 120)
        assert window.viewport.view.zoom > zoom and window.photo.path == photo_file
        load.release()
    assert outcome.args == [big, True]
    assert window.photo.path == big and window.viewport.image_size == (80, 60)
    assert window.statusBar().currentMessage() == ""
    assert load.thread is not threading.main_thread()
    window.close()


def test_a_bad_file_gets_one_sentence_and_the_photo_stays(qtbot, tiny_model, photo_file, tmp_path):
    load = GatedLoad("broken.jpg")
    window = window_with(tiny_model, load)
    boxes = []
    window.show_error = boxes.append            # the window's one place for a sentence (a message box)
    qtbot.addWidget(window)
    window.resize(320, 240)
    window.show()
    assert open_and_wait(qtbot, window, photo_file)
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"not a jpeg at all")
    load.release()                          # the failure arrives while the window runs
    assert not open_and_wait(qtbot, window, bad)
    assert len(boxes) == 1 and "broken.jpg" in boxes[0] and "\n" not in boxes[0]
    assert window.photo.path == photo_file and window.viewport.pixels is window.photo.pixels
    zoom = window.viewport.view.zoom                        # still on show and usable
    qtbot.keyClick(window.compare.left, Qt.Key.Key_Plus)
    qtbot.waitUntil(lambda: window.viewport.view.zoom > zoom, timeout=TIMEOUT_MS)
    # the good photo went to the recent files, kept in the test's settings folder ...
    assert window.recent_files()[0] == str(photo_file.resolve())
    # ... and a recent file that has gone is said so and leaves the list
    gone = save_photo(tmp_path / "gone.png", 40, 30)
    assert open_and_wait(qtbot, window, gone)
    gone.unlink()
    with qtbot.waitSignal(window.open_finished, timeout=TIMEOUT_MS) as outcome:
        window.recent_menu.actions()[0].trigger()
    assert outcome.args[1] is False and len(boxes) == 2 and "gone.png" in boxes[1]
    assert window.recent_files()[0] == str(photo_file.resolve()) and str(gone.resolve()) not in window.recent_files()
    assert window.photo.path == gone                        # what was on show stays
    window.close()


def test_of_two_quick_opens_the_second_wins(qtbot, tiny_model, photo_file, tmp_path):
    load = GatedLoad("first.png")
    window = window_with(tiny_model, load)
    qtbot.addWidget(window)
    first = save_photo(tmp_path / "first.png", 80, 60)
    outcomes = []
    window.open_finished.connect(lambda path, ok: outcomes.append((path, ok)))
    window.open_path(first)
    qtbot.waitUntil(load.loading.is_set, timeout=TIMEOUT_MS)   # the first is being decoded
    images_shown = window.viewport.image_id
    window.open_path(photo_file)
    assert window.statusBar().currentMessage() == "opening photo.png…"
    load.release()
    qtbot.waitUntil(lambda: bool(outcomes), timeout=TIMEOUT_MS)
    # the loader decodes one photo at a time: once the second has been shown, the
    # first's result has been dropped, so nothing more can arrive
    assert outcomes == [(photo_file, True)]                 # the first never reports, never shows
    assert window.viewport.image_id == images_shown + 1
    assert window.photo.path == photo_file and window.viewport.image_size == (64, 48)
    window.close()


def test_dropping_a_file_on_the_window_opens_it(qtbot, tiny_model, photo_file):
    from PySide6.QtCore import QMimeData, QUrl
    from PySide6.QtGui import QDragEnterEvent, QDropEvent

    window = new_window(tiny_model, "cpu")
    qtbot.addWidget(window)
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(photo_file))])
    try:
        enter = QDragEnterEvent(QPointF(50, 50), Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton,
                                Qt.KeyboardModifier.NoModifier)
    except TypeError:   # PySide6 before 6.12 takes only an integer point here
        enter = QDragEnterEvent(QPoint(50, 50), Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton,
                                Qt.KeyboardModifier.NoModifier)
    QApplication.sendEvent(window, enter)
    assert enter.isAccepted()
    with qtbot.waitSignal(window.open_finished, timeout=TIMEOUT_MS):
        QApplication.sendEvent(window, QDropEvent(QPointF(50, 50), Qt.DropAction.CopyAction, mime,
                                                  Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier))
    assert window.photo is not None and window.photo.path == photo_file
    assert window.viewport.image_size == (64, 48)
    window.close()


def test_settings_never_touch_the_users_folder(_settings_in_temp_dir):
    from zoomviewer.app.settings import app_settings

    assert app_settings().fileName().startswith(str(_settings_in_temp_dir))


def screenshot(tiny_model, photo_file, out, **view) -> np.ndarray:
    from zoomviewer.app.launch import run_view

    code = run_view(str(photo_file), tiny_model, zoom=5.0, center=(20.0, 15.0), screenshot=str(out),
                    size=(420, 260), device="cpu", **view)
    assert code == 0
    with Image.open(out) as shot:
        assert shot.size == (420, 260)
        return np.asarray(shot.convert("RGB")).astype(int)


def test_scripted_view_saves_the_view_it_was_asked_for(tiny_model, photo_file, tmp_path):
    single = screenshot(tiny_model, photo_file, tmp_path / "single.png")
    side = screenshot(tiny_model, photo_file, tmp_path / "side.png", compare="side")
    explained = screenshot(tiny_model, photo_file, tmp_path / "explain.png", compare="side", explain=True)
    # side by side splits the picture: its right half is no longer the single view's
    right = (slice(40, 200), slice(250, 400))
    assert np.abs(side[right] - single[right]).sum(-1).mean() > 2
    # Explain marks the codes and their shares at the centre and spells out the blend at
    # the bottom, in each pane; the picture between stays as it was
    for pane in (slice(0, 205), slice(215, 420)):
        marks, label, plain = (slice(100, 150), pane), (slice(200, 235), pane), (slice(40, 80), pane)
        assert (np.abs(explained[marks] - side[marks]).sum(-1) > 30).sum() > 50
        assert (np.abs(explained[label] - side[label]).sum(-1) > 30).sum() > 200
        assert np.array_equal(explained[plain], side[plain])


def test_scripted_view_of_a_missing_file_fails_with_one_line_and_exit_code_2(tiny_model, tmp_path, capsys):
    from zoomviewer.app.launch import run_view

    code = run_view(str(tmp_path / "missing.png"), tiny_model, screenshot=str(tmp_path / "x.png"))
    err = capsys.readouterr().err.strip()
    assert code == 2 and "missing.png" in err and len(err.splitlines()) == 1
