"""The Model menu (which model renders; remembered) and View > Compare With (what the
compare modes set beside it: bicubic or another model), and the status bar's naming of
what the main pane shows. Torch-free: the models live on the render thread, which says
which there are (ModelInfo.choices)."""

from __future__ import annotations

from PySide6.QtGui import QAction, QActionGroup, QKeySequence

from .protocol import BICUBIC, MODEL, model_label
from .settings import app_settings


class ModelMenus:
    """Fills `model_menu` and `compare_with_menu` once the render thread has said what
    models there are, and keeps them, the Viewport and the status text in step."""

    def __init__(self, window, model_menu, compare_with_menu, status_label) -> None:
        self.window, self.viewport, self.compare = window, window.viewport, window.compare
        self.model_menu, self.compare_with_menu, self.status_label = model_menu, compare_with_menu, status_label
        self.model_actions: dict[str, QAction] = {}
        self.compare_actions: dict[str, QAction] = {}

    def build(self, choices: tuple[str, ...]) -> None:
        self.model_menu.clear()
        self.compare_with_menu.clear()
        models, others = QActionGroup(self.window), QActionGroup(self.window)
        self.model_actions = {}
        for i, name in enumerate(choices):
            action = self._add(self.model_menu, model_label(name), lambda _=False, n=name: self.choose(n))
            if i < 9:
                action.setShortcut(QKeySequence(f"Ctrl+Shift+{i + 1}"))
            models.addAction(action)
            self.model_actions[name] = action
        self.compare_actions = {}
        for kind in (BICUBIC,) + tuple(choices):
            action = self._add(self.compare_with_menu, model_label(kind), lambda _=False, k=kind: self.compare_with(k))
            others.addAction(action)
            self.compare_actions[kind] = action
        if self.compare.other in self.compare_actions:
            self.compare_actions[self.compare.other].setChecked(True)
        self.model_menu.setEnabled(bool(choices))
        self.show()

    def _add(self, menu, text: str, slot) -> QAction:
        action = QAction(text, self.window, checkable=True)
        action.triggered.connect(slot)
        menu.addAction(action)
        return action

    def choose(self, name: str) -> None:
        """Render with model `name` from now on (the view stays); remembered for next time."""
        self.viewport.set_model(name)
        app_settings().setValue("model", name)

    def remembered(self) -> str:
        return str(app_settings().value("model", "") or "")

    def compare_with(self, kind: str) -> None:
        self.compare.set_other(kind)
        if kind in self.compare_actions:
            self.compare_actions[kind].setChecked(True)
        self.show()

    def show(self) -> None:
        """The status bar names what the main pane shows; the Model menu ticks the choice."""
        vp = self.viewport
        if vp.model_name in self.model_actions:
            self.model_actions[vp.model_name].setChecked(True)
        if vp.model_name is None:
            return
        shown = self.compare.left.kind
        name = vp.model_name if shown == MODEL else shown
        if vp.view is not None and vp.view.zoom <= 1:   # no decoder runs: say what is drawn
            text = "source, area-averaged"
        elif not name or name == BICUBIC:
            text = "bicubic" + ("" if name == BICUBIC else " (no model)")
        else:
            text = model_label(name)
        self.status_label.setText(f"{text} on {vp.device_name}")
