"""The viewer's entry points, which the CLI calls: `new_window` (a MainWindow with its own
render thread for a model), and `run_view`, which opens the window at a view and either
stays open or, with `screenshot`, waits until the view is fully refined, saves the
window grab and returns. This module wires the render thread (torch) to the widgets.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from PySide6.QtCore import QEventLoop, QTimer
from PySide6.QtWidgets import QApplication

from ..engine import images
from ..engine.bundled import MODEL_FILES, resource_dir
from ..engine.model import load_preview
from .compare import MODES
from .desktop import name_the_application
from .display_check import display_problem
from .protocol import BICUBIC
from .render_thread import RenderThread
from .settings import APPLICATION, ORGANISATION
from .window import MainWindow

SCRIPTED_TIMEOUT_S = 900


def application() -> QApplication:
    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setOrganizationName(ORGANISATION)
    app.setApplicationName(APPLICATION)
    name_the_application(app)
    return app


def new_window(model_or_weights=None, device: str | None = None, **window_options) -> MainWindow:
    """A main window rendering with `model_or_weights` (a model, a weights file, or None
    for bicubic only) on `device` (None: the best there is); `window_options` go to
    MainWindow. With a shipped model the views show the shipped preview while the
    model's latent is encoded (not with other weights: the preview is distilled for them)."""
    shipped = isinstance(model_or_weights, (str, os.PathLike)) and Path(model_or_weights).resolve().parent == resource_dir()
    window = MainWindow(RenderThread(model_or_weights, device, preview_loader=load_preview if shipped else None),
                        **window_options)
    window.viewport.fuse = True     # at deep zoom, a last pass fused from 8 views where this machine affords it
    return window


def _fail(message: str) -> int:
    print(f"zoomviewer: {message}", file=sys.stderr)
    return 2


def run_view(photo_path, model_or_weights, zoom: float | None = None, center: tuple[float, float] | None = None,
             compare: str | None = None, explain: bool = False, screenshot=None,
             size: tuple[int, int] = (1280, 800), device: str | None = None,
             timeout_s: float = SCRIPTED_TIMEOUT_S, compare_with: str | None = None,
             remembered_model: bool = False) -> int:
    """Open the window on `photo_path` at this view (zoom: device pixels per source pixel,
    None = fit; center: source pixel, None = the photo's centre). Without `screenshot` the
    viewer stays open and this returns when it closes. With it: wait until fully
    refined, save the window grab (PNG) and return 0; on failure print one sentence to
    stderr and return 2. `compare_with`: bicubic (None) or a model's name for the compare
    modes; `remembered_model`: without a screenshot, switch to the model chosen last time."""
    if compare not in (None, *MODES):
        return _fail(f"unknown compare mode {compare!r} (use {' or '.join(MODES)})")
    problem = display_problem(scripted=screenshot is not None)
    if problem:
        return _fail(problem)
    app = application()
    try:
        photo = images.load(photo_path)
    except ValueError as e:
        return _fail(str(e))
    if compare_with not in (None, BICUBIC, *MODEL_FILES):
        return _fail(f"cannot compare with {compare_with!r} (use bicubic, {', '.join(MODEL_FILES)})")
    if screenshot is None:
        window = new_window(model_or_weights, device, prefer_remembered_model=remembered_model)
    else:
        target = Path(screenshot)
        if not target.parent.is_dir():
            return _fail(f"cannot save the screenshot: the folder {target.parent} does not exist")
        window = new_window(model_or_weights, device)
        errors: list[str] = []
        window.show_error = errors.append      # no modal boxes in scripted mode
    window.resize(*size)
    window.set_compare(compare)
    window.compare_with(compare_with or BICUBIC)
    window.set_explain(explain)
    if screenshot is not None:
        window.set_navigator(False, remember=False)    # the view asked for, and nothing over it
    window.show_photo(photo)
    window.show()
    window.viewport.place(zoom, center)
    if screenshot is None:
        window.remember_recent(Path(photo_path))
        window.compare.left.setFocus()
        return app.exec()

    loop = QEventLoop()
    timed_out = []

    def check(*_):
        # model_name is None until the worker has loaded (or failed to load) the model
        if errors or (window.viewport.model_name is not None and window.viewport.is_sharp()):
            loop.quit()

    window.viewport.model_changed.connect(check)
    window.renderer.model_failed.connect(check)
    window.viewport.sharp.connect(check)
    QTimer.singleShot(int(timeout_s * 1000), lambda: (timed_out.append(True), loop.quit()))
    QTimer.singleShot(0, check)
    try:
        loop.exec()
        app.processEvents()
        if errors:
            return _fail(errors[0])
        if timed_out:
            return _fail(f"the view was not fully rendered within {timeout_s:g} s")
        if not window.grab().save(os.fspath(target), "PNG"):
            return _fail(f"cannot save the screenshot to {target}")
        return 0
    finally:
        window.close()
