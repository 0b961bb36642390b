"""The Details list: where a photo rewards zooming in, faces first (with the `faces`
extra) then detail regions (engine/detail.py), in a dock (View > Details List, D); N and
Shift+N (Go > Next / Previous Detail) and a click on an entry fly there with the keys'
animated zoom, to the zoom at which the region fills the view with a margin; the status
bar says "detail 2 of 8 (face)". View > Detail Map (H) paints the detail map over the
photo (detail_overlay.py). No torch: the details are found on the render thread's
details thread (details_thread.py), once the first view of a photo is sharp, so that
they never slow it down.
"""

from __future__ import annotations

from PySide6.QtCore import QObject, QRect, QSize, Qt
from PySide6.QtGui import QAction, QIcon, QImage, QKeySequence, QPixmap
from PySide6.QtWidgets import QDockWidget, QLabel, QListWidget, QListWidgetItem, QVBoxLayout, QWidget

from ..engine.geometry import View
from .detail_overlay import HeatOverlay

MARGIN = 0.15          # of the region's size, on each side, when it fills the view
THUMB = 56             # logical pixels of an entry's picture
STATUS_MS = 5000


def view_of(rect, screen: tuple[int, int], limits: tuple[float, float]) -> View:
    """The view in which source rectangle `rect` (x, y, w, h) fills the screen, but for a
    margin of MARGIN of its size each side, within the zoom `limits`."""
    x, y, w, h = rect
    sw, sh = screen
    zoom = min(sw / (w * (1 + 2 * MARGIN)), sh / (h * (1 + 2 * MARGIN)))
    return View(x + w / 2, y + h / 2, min(max(zoom, limits[0]), limits[1]), sw, sh)


def entry_text(index: int, region) -> str:
    x, y, w, h = region.rect
    return f"{index + 1}. {region.kind}\n{w:.0f} × {h:.0f} px at {x:.0f}, {y:.0f}"


class DetailsPanel(QObject):
    """The Details dock, its actions in `view_menu` and `go_menu`, and the heat map, for
    `window` (a MainWindow: its viewport, compare panes, render thread and status bar)."""

    def __init__(self, window, view_menu, go_menu) -> None:
        super().__init__(window)
        self.window, self.viewport = window, window.viewport
        self.found = None                 # details_thread.FoundDetails of the photo on show
        self.index = -1                   # the entry flown to last
        self._asked = 0                   # the image_id whose details were asked for
        self._shown = 0                   # the image_id the list is for
        self._fly_when_found = False      # N came before the details did
        self.heat = HeatOverlay()
        for canvas in (window.compare.left, window.compare.right):
            canvas.overlays.append(self.heat)
        self._build_dock()
        self._build_actions(view_menu, go_menu)
        self.finder = window.renderer.detail_finder(self)
        self.finder.found.connect(self._found)
        self.finder.failed.connect(lambda image_id, message: self._failed(image_id, message))
        self.viewport.sharp.connect(self._ask_when_ready)
        self.viewport.view_changed.connect(lambda _view: self._follow_photo())
        self.finder.start()

    def _build_dock(self) -> None:
        self.dock = QDockWidget("Details", self.window)
        self.dock.setObjectName("details")
        body = QWidget(self.dock)
        layout = QVBoxLayout(body)
        layout.setContentsMargins(4, 4, 4, 4)
        self.list = QListWidget(body)
        self.list.setIconSize(QSize(THUMB, THUMB))
        self.list.itemClicked.connect(lambda item: self.go(self.list.row(item)))
        self.list.itemActivated.connect(lambda item: self.go(self.list.row(item)))
        self.note = QLabel("Open a photo: its faces and details are listed here.", body)
        self.note.setWordWrap(True)
        layout.addWidget(self.list, 1)
        layout.addWidget(self.note)
        self.dock.setWidget(body)
        self.window.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, self.dock)
        self.dock.hide()

    def _build_actions(self, view_menu, go_menu) -> None:
        view_menu.addSeparator()
        self.list_action = self.dock.toggleViewAction()
        self.list_action.setText("Details &List (faces, then where the model adds most)")
        self.list_action.setShortcut(QKeySequence("D"))
        view_menu.addAction(self.list_action)
        self.map_action = QAction("Detail &Map (heat map of the model's detail)", self.window, checkable=True)
        self.map_action.setShortcut(QKeySequence("H"))
        self.map_action.triggered.connect(self.set_map)
        view_menu.addAction(self.map_action)
        go_menu.addSeparator()
        self.next_action = QAction("Next &Detail", self.window)
        self.next_action.setShortcut(QKeySequence("N"))
        self.next_action.triggered.connect(lambda: self.step(1))
        self.previous_action = QAction("Previous D&etail", self.window)
        self.previous_action.setShortcut(QKeySequence("Shift+N"))
        self.previous_action.triggered.connect(lambda: self.step(-1))
        for action in (self.list_action, self.map_action, self.next_action, self.previous_action):
            action.setAutoRepeat(False)      # a key held down acts once
        go_menu.addActions([self.next_action, self.previous_action])

    # -- finding ---------------------------------------------------------------------------
    def _ask_when_ready(self) -> None:
        """Ask once per photo, when its view is sharp (the render thread idle) and the model is loaded."""
        vp = self.viewport
        if vp.pixels is not None and vp.image_id != self._asked and vp.model_name is not None:
            self._asked = vp.image_id
            self.finder.find(vp.image_id, vp.pixels)

    def _follow_photo(self) -> None:
        """A new photo: the last one's details go."""
        if self.viewport.image_id == self._shown:
            return
        self._shown = self.viewport.image_id
        self.found, self.index, self._fly_when_found = None, -1, False
        self.list.clear()
        self.note.setText("finding the details…")
        self.heat.show(None)

    def _found(self, found) -> None:
        if found.image_id != self.viewport.image_id:
            return                                   # a photo no longer on show
        self.found = found
        self.list.clear()
        level, _ = self.viewport.source_level(1.0)
        for i, region in enumerate(found.regions):
            item = QListWidgetItem(self._thumbnail(level, region.rect), entry_text(i, region))
            item.setToolTip(f"{region.kind}, score {region.score:.3g}: N and Shift+N go through the list")
            self.list.addItem(item)
        faces = sum(r.kind == "face" for r in found.regions)
        text = f"{faces} face{'s' * (faces != 1)}, {len(found.regions) - faces} detail regions."
        self.note.setText(text + (f" ({found.faces_missing})" if found.faces_missing else ""))
        self.heat.show(found.map)
        self._repaint()
        if self._fly_when_found:
            self._fly_when_found = False
            self.step(1)

    def _failed(self, image_id: int, message: str) -> None:
        if image_id == self.viewport.image_id:
            self.note.setText(message)

    @staticmethod
    def _thumbnail(level: QImage, rect) -> QIcon:
        x, y, w, h = (round(v) for v in rect)
        crop = level.copy(QRect(x, y, max(w, 1), max(h, 1)))
        return QIcon(QPixmap.fromImage(crop.scaled(THUMB * 2, THUMB * 2, Qt.AspectRatioMode.KeepAspectRatio,
                                                   Qt.TransformationMode.SmoothTransformation)))

    # -- going there -----------------------------------------------------------------------
    @property
    def regions(self) -> tuple:
        return () if self.found is None else self.found.regions

    def step(self, step: int) -> None:
        """Fly to the next (1) or previous (-1) entry, round the list."""
        if self.viewport.view is None:
            return
        if self.found is None:
            self._fly_when_found = True
            self._ask_when_ready()
            self._say("finding the details…")
            return
        n = len(self.regions)
        if n == 0:
            self._say("no faces or details found in this photo")
        elif self.index < 0:
            self.go(0 if step > 0 else n - 1)
        else:
            self.go((self.index + step) % n)

    def go(self, index: int) -> None:
        """Fly to entry `index` of the list."""
        if not 0 <= index < len(self.regions) or self.viewport.view is None:
            return
        self.index = index
        self.list.setCurrentRow(index)
        region = self.regions[index]
        vp = self.viewport
        vp.glide_to(view_of(region.rect, vp.screen_size, vp.limits()))
        self._say(f"detail {index + 1} of {len(self.regions)} ({region.kind})")

    def _say(self, text: str) -> None:
        self.window.statusBar().showMessage(text, STATUS_MS)

    # -- the heat map ----------------------------------------------------------------------
    def set_map(self, on: bool) -> None:
        self.map_action.setChecked(bool(on))
        self.heat.on = bool(on)
        if on and self.heat.image is None:
            self._say("the detail map is being made…")
        self._repaint()

    def _repaint(self) -> None:
        self.window.compare.left.update()
        self.window.compare.right.update()

    def stop(self) -> None:
        self.finder.stop()
