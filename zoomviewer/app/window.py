"""The main window: menus (File, Edit, View, Go, Model, Help), shortcuts, compare layouts
(with bicubic or another model), Explain, the navigator, the Details list (details.py),
export, recent files, the photos of the folder (next / previous, the next one
preloaded), the clipboard, drag and drop, the status bar with its zoom box, the icon
(desktop.py). It is handed its render thread
(launch.py makes one), so this module never loads torch; photos open on a PhotoLoader
thread (photo_loader.py).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from PySide6.QtCore import Signal
from PySide6.QtGui import QAction, QActionGroup, QKeySequence
from PySide6.QtWidgets import QLabel, QMainWindow, QMessageBox, QWidget

from ..engine import formats
from ..engine.geometry import render_target
from .compare import SIDE, SINGLE, SWIPE, CompareArea
from .exportdialog import ExportDialog, ExportSession
from .photo_loader import PhotoLoader, ScreenPhoto, for_screen
from .clipboard import pasted
from .desktop import NAME, app_icon
from .details import DetailsPanel
from .folder import neighbour, place_in_folder
from .help import show_about, show_shortcuts
from .model_menu import ModelMenus
from .navigator import Navigator
from .settings import app_settings, truthy
from .viewport import Viewport
from .zoombox import ZoomBox

MAX_RECENT = 8


class MainWindow(QMainWindow):
    open_finished = Signal(object, bool)     # path, whether it is now the photo on show

    def __init__(self, renderer, parent: QWidget | None = None, photo_loader: PhotoLoader | None = None,
                 prefer_remembered_model: bool = False) -> None:
        """`renderer`: a render thread not yet started (launch.new_window makes one for a
        model, a weights file, or None: the "model" pane then shows bicubic, and says so).
        The window starts it, and its `photo_loader` (default: a PhotoLoader), and stops
        both when it closes. `prefer_remembered_model`: switch to the model chosen last
        time (when nobody asked for one) once the render thread has said what there is."""
        super().__init__(parent)
        self.prefer_remembered_model = prefer_remembered_model
        self.photo = None
        self.model_error = ""
        self.renderer = renderer
        self.viewport = Viewport(renderer, parent=self)
        self.compare = CompareArea(self.viewport, self)
        self.navigator = Navigator(self.viewport, self.compare.left)
        self.setCentralWidget(self.compare)
        self.setAcceptDrops(True)
        self.setWindowTitle(NAME)
        self.setWindowIcon(app_icon())
        self.resize(1280, 800)

        self.zoom_label = ZoomBox(self.viewport.zoom_to, lambda text: self.statusBar().showMessage(text, 5000))
        self.cursor_label = QLabel()
        self.state_label, self.device_label = QLabel(), QLabel("loading model…")
        bar = self.statusBar()
        bar.addWidget(self.zoom_label)
        bar.addWidget(self.cursor_label)
        bar.addWidget(self.state_label, 1)
        bar.addPermanentWidget(self.device_label)
        self.viewport.view_changed.connect(lambda view: (self.zoom_label.show_zoom(view.zoom), self.models.show()))
        self.viewport.cursor_changed.connect(self._show_cursor)
        self.viewport.state_changed.connect(self.state_label.setText)
        self.renderer.model_ready.connect(self._model_ready)
        self.renderer.model_failed.connect(self._model_failed)
        self.viewport.model_changed.connect(lambda: self.models.show())
        self.loader = photo_loader or PhotoLoader()
        self.loader.setParent(self)
        self.loader.loaded.connect(self._photo_loaded)
        self.loader.failed.connect(self._photo_failed)
        self._open_ticket = 0
        self._opening: tuple[int, Path, tuple] | None = None    # ticket, path, placement
        self._build_menus()
        self.renderer.start()
        self.loader.start()

    # -- menus ---------------------------------------------------------------------------
    def _action(self, menu, text: str, slot, shortcut=None, checkable: bool = False) -> QAction:
        action = QAction(text, self, checkable=checkable)
        if shortcut is not None:
            keys = shortcut if isinstance(shortcut, list) else [shortcut]
            action.setShortcuts([QKeySequence(k) for k in keys])
        action.triggered.connect(slot)
        menu.addAction(action)
        return action

    def _build_menus(self) -> None:
        file = self.menuBar().addMenu("&File")
        self._action(file, "&Open…", self.choose_file, QKeySequence.StandardKey.Open)
        self.recent_menu = file.addMenu("Open &Recent")
        self.export_action = self._action(file, "&Export…", self.export, "Ctrl+E")
        self.export_action.setEnabled(False)
        file.addSeparator()
        self._action(file, "&Quit", self.close, QKeySequence.StandardKey.Quit)
        self._rebuild_recent()
        edit = self.menuBar().addMenu("&Edit")
        self.copy_action = self._action(edit, "&Copy View", self.copy_view, QKeySequence.StandardKey.Copy)
        self.copy_action.setEnabled(False)
        self._action(edit, "&Paste", self.paste, QKeySequence.StandardKey.Paste)

        view = self.menuBar().addMenu("&View")
        vp = self.viewport
        self._action(view, "Zoom &In", lambda: vp.glide_by(2 ** 0.5), ["+", "=", QKeySequence.StandardKey.ZoomIn])
        self._action(view, "Zoom &Out", lambda: vp.glide_by(2 ** -0.5), ["-", QKeySequence.StandardKey.ZoomOut])
        self._action(view, "&Fit", vp.glide_fit, "0")
        self._action(view, "&Actual Pixels (100 %)", vp.glide_actual, "1")
        view.addSeparator()
        group = QActionGroup(self)
        self.mode_actions = {}
        for mode, text, key in ((SINGLE, "&Single", "Ctrl+1"), (SIDE, "Side by Side (model | bicubic)", "Ctrl+2"),
                                (SWIPE, "S&wipe", "Ctrl+3")):
            action = self._action(view, text, lambda _=False, m=mode: self.set_compare(m), key, checkable=True)
            group.addAction(action)
            self.mode_actions[mode] = action
        self.mode_actions[SINGLE].setChecked(True)
        cycle = self._action(view, "&Cycle Compare Modes", self.compare.cycle_mode, "C")
        self.ab_action = self._action(view, "Toggle &A/B (model ↔ what it is compared with)", self._toggle_ab, "B")
        self.compare_with_menu = view.addMenu("Compare &With")
        view.addSeparator()
        self.explain_action = self._action(view, "&Explain (latent grid and blend)", self.set_explain, "E",
                                           checkable=True)
        self.full_screen_action = self._action(view, "F&ull Screen", self.set_full_screen, "F", checkable=True)
        self.navigator_action = self._action(view, "&Navigator (the whole photo, in a corner)", self.set_navigator,
                                             "M", checkable=True)
        self.set_navigator(truthy(app_settings().value("navigator", True)), remember=False)
        for toggle in (cycle, self.ab_action, self.explain_action, self.full_screen_action, self.navigator_action):
            toggle.setAutoRepeat(False)   # a key held down toggles once, never flickers back and forth
        view.addSeparator()
        self.sparse_action = self._action(view, "Faster &Deep Zoom (approximate, from ×12)", self.set_sparse,
                                          checkable=True)
        self.sparse_action.setToolTip("decode every 2nd to 4th screen pixel each way and fill in between "
                                      "(exports are always exact)")
        if truthy(app_settings().value("sparse", False)):
            self.sparse_action.setChecked(True)
            self.viewport.set_sparse(True)
        self.compare.mode_changed.connect(lambda m: self.mode_actions[m].setChecked(True))
        self.compare.mode_changed.connect(lambda _: self.models.show())
        go = self.menuBar().addMenu("&Go")
        self._action(go, "&Next Photo in Folder", lambda: self.step_photo(1), ["PgDown", "Space"])
        self._action(go, "&Previous Photo in Folder", lambda: self.step_photo(-1), ["PgUp", "Backspace"])
        self.details = DetailsPanel(self, view, go)    # the Details list, N / Shift+N, the heat map (H)
        self.models = ModelMenus(self, self.menuBar().addMenu("&Model"), self.compare_with_menu, self.device_label)
        help_menu = self.menuBar().addMenu("&Help")
        self._action(help_menu, "&Keyboard Shortcuts", lambda: show_shortcuts(self), QKeySequence.StandardKey.HelpContents)
        self._action(help_menu, "&About zoomviewer", lambda: show_about(self, self.renderer.model_info))

    # -- models ----------------------------------------------------------------------------
    @property
    def model_actions(self):
        return self.models.model_actions

    def choose_model(self, name: str) -> None:
        self.models.choose(name)

    def compare_with(self, kind: str) -> None:
        """What the side-by-side and swipe modes compare the chosen model with."""
        self.models.compare_with(kind)

    def _toggle_ab(self) -> None:
        self.compare.toggle_ab()
        self.models.show()

    def set_sparse(self, on: bool) -> None:
        self.viewport.set_sparse(on)
        app_settings().setValue("sparse", bool(on))

    # -- recent files ----------------------------------------------------------------------
    def recent_files(self) -> list[str]:
        value = app_settings().value("recent", [])
        if isinstance(value, str):   # INI stores a one-item list as a plain string
            value = [value]
        return [str(v) for v in (value or [])]

    def remember_recent(self, path: Path) -> None:
        path = str(Path(path).resolve())
        recent = [path] + [p for p in self.recent_files() if p != path]
        app_settings().setValue("recent", recent[:MAX_RECENT])
        self._rebuild_recent()

    def _forget(self, path: str) -> None:
        app_settings().setValue("recent", [p for p in self.recent_files() if p != path])
        self._rebuild_recent()

    def _rebuild_recent(self) -> None:
        self.recent_menu.clear()
        recent = self.recent_files()
        for path in recent:
            self.recent_menu.addAction(Path(path).name, lambda p=path: self._open_recent(p)).setToolTip(path)
        self.recent_menu.setEnabled(bool(recent))

    def _open_recent(self, path: str) -> None:
        self.open_path(path)     # one that fails is dropped from the list (_photo_failed)

    # -- opening -------------------------------------------------------------------------
    def show_error(self, message: str) -> None:
        """One sentence in a message box (scripted mode replaces this with stderr)."""
        QMessageBox.warning(self, "zoomviewer", message)

    def choose_file(self) -> None:
        from PySide6.QtWidgets import QFileDialog
        start = str(Path(self.photo.path).parent) if self.photo is not None else str(Path.home())
        path, _ = QFileDialog.getOpenFileName(self, "Open photo", start,
                                              formats.open_dialog_filter())
        if path:
            self.open_path(path)

    def open_path(self, path, zoom: float | None = None, center: tuple[float, float] | None = None) -> None:
        """Start opening a photo; the window stays live while it is decoded on the loader
        thread, and the current photo stays on show and usable. Then it is shown (at this
        zoom and centre, None: fitted) and goes to the recent files; or one sentence says
        why it cannot be, and the current photo stays. A later open supersedes this one.
        `open_finished` tells the outcome."""
        path = Path(path)
        self._open_ticket += 1
        self._opening = (self._open_ticket, path, (zoom, center))
        self.statusBar().showMessage(self._opening_text(path))
        self.loader.open(self._open_ticket, path)

    @staticmethod
    def _opening_text(path: Path) -> str:
        return f"opening {path.name}…"

    def _end_opening(self, ticket: int) -> tuple[Path, tuple] | None:
        """(path, placement) if `ticket` is the open in progress, which ends here; None
        for one a later open superseded."""
        if self._opening is None or self._opening[0] != ticket:
            return None
        _, path, placement = self._opening
        self._opening = None
        if self.statusBar().currentMessage() == self._opening_text(path):
            self.statusBar().clearMessage()
        return path, placement

    def _photo_loaded(self, ticket: int, ready: ScreenPhoto) -> None:
        opening = self._end_opening(ticket)
        if opening is None:
            return
        path, (zoom, center) = opening
        self.show_photo(ready.photo, ready)
        if zoom is not None or center is not None:
            self.viewport.place(zoom, center)
        self.remember_recent(path)
        self.open_finished.emit(path, True)

    def _photo_failed(self, ticket: int, message: str) -> None:
        opening = self._end_opening(ticket)
        if opening is None:
            return
        path = opening[0]
        resolved = str(path.resolve())
        if resolved in self.recent_files():
            self._forget(resolved)
        self.show_error(message)
        self.open_finished.emit(path, False)

    def show_photo(self, photo, ready: ScreenPhoto | None = None) -> None:
        """Show an images.Photo (or anything with .pixels, .metadata, .path) now; `ready`:
        for_screen(photo) when it was made beforehand (off this thread)."""
        ready = ready or for_screen(photo)
        self.photo = photo
        self.viewport.set_image(photo.pixels, display=ready.display, pyramid=ready.pyramid)
        h, w = photo.pixels.shape[:2]
        place = place_in_folder(photo.path) if self._saved(photo) else None
        where = f" — {place[0]} of {place[1]}" if place else ""
        # the name last, as desktops title windows ("photo — app"); ending with it, Qt adds no second one
        self.setWindowTitle(f"{Path(photo.path).name}{where} ({w}×{h}) — {NAME}")
        self.export_action.setEnabled(True)
        self.copy_action.setEnabled(True)
        if place:
            self.loader.preload(neighbour(photo.path, 1))

    @staticmethod
    def _saved(photo) -> bool:
        return getattr(photo.metadata, "source_format", "") != "clipboard"

    # -- the folder and the clipboard ---------------------------------------------------------
    def step_photo(self, step: int) -> None:
        """Open the next (step 1) or previous (-1) photo of the folder of the one on show."""
        if self.photo is None or not self._saved(self.photo):
            return
        target = neighbour(self.photo.path, step)
        if target is None:
            self.statusBar().showMessage("That was the " + ("last" if step > 0 else "first")
                                         + " photo in the folder.", 5000)
        else:
            self.open_path(target)

    def paste(self) -> None:
        """Open what the clipboard holds: an image as an unsaved photo, or a copied file."""
        from PySide6.QtWidgets import QApplication
        what = pasted(QApplication.clipboard().mimeData())
        if isinstance(what, str):
            self.statusBar().showMessage(what, 5000)
        elif isinstance(what, Path):
            self.open_path(what)
        else:
            self.show_photo(what)

    def copy_view(self) -> None:
        """Put the pixels of the main pane on the clipboard, at device resolution."""
        from PySide6.QtWidgets import QApplication
        image = self.compare.left.picture()
        if image is not None:
            QApplication.clipboard().setImage(image)
            self.statusBar().showMessage(f"copied the view ({image.width()}×{image.height()})", 3000)

    def dragEnterEvent(self, event) -> None:
        if any(url.isLocalFile() for url in event.mimeData().urls()):
            event.acceptProposedAction()

    def dropEvent(self, event) -> None:
        files = [url.toLocalFile() for url in event.mimeData().urls() if url.isLocalFile()]
        if files:
            event.acceptProposedAction()
            self.open_path(files[0])

    # -- view modes ----------------------------------------------------------------------
    def set_compare(self, mode: str | None) -> None:
        self.compare.set_mode(mode or SINGLE)

    def set_explain(self, on: bool) -> None:
        self.explain_action.setChecked(bool(on))
        self.compare.set_explain(bool(on))

    def set_navigator(self, on: bool, remember: bool = True) -> None:
        """Show the navigator whenever part of the photo is off screen (remembered)."""
        self.navigator_action.setChecked(bool(on))
        self.navigator.set_wanted(bool(on))
        if remember:
            app_settings().setValue("navigator", bool(on))

    def set_full_screen(self, on: bool) -> None:
        self.full_screen_action.setChecked(bool(on))
        if on:
            self.showFullScreen()
        else:
            self.showNormal()

    # -- export --------------------------------------------------------------------------
    def export(self) -> None:
        if self.photo is None or self.viewport.view is None:
            return
        w, h = self.viewport.image_size
        target = render_target(self.viewport.view, w, h)
        region, size = (target.region, target.out_size) if target else ((0, 0, w, h), (w, h))
        dialog = ExportDialog(region, size, (w, h), self.photo.path, self)
        if dialog.exec() != ExportDialog.DialogCode.Accepted:
            return
        job = replace(dialog.job(self.photo), model=self.viewport.model_name or "")
        session = ExportSession(self.renderer, job, self, self.show_error)
        session.ended.connect(lambda message: message and self.statusBar().showMessage(message, 5000))
        session.start()

    # -- status --------------------------------------------------------------------------
    def _show_cursor(self, point) -> None:
        size = self.viewport.image_size
        if point is None or size is None or not (0 <= point[0] < size[0] and 0 <= point[1] < size[1]):
            self.cursor_label.setText("")
        else:
            self.cursor_label.setText(f"x {point[0]:.1f}  y {point[1]:.1f}")

    def _model_ready(self, info) -> None:
        self.models.build(info.choices)
        remembered = self.models.remembered()
        if self.prefer_remembered_model and remembered in info.choices:
            self.viewport.set_model(remembered)
            self.models.show()

    def _model_failed(self, message: str) -> None:
        self.model_error = message
        self.show_error(message)

    def closeEvent(self, event) -> None:
        self.details.stop()
        self.loader.stop()
        self.renderer.stop()
        super().closeEvent(event)
