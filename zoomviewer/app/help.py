"""The Help menu's windows: Keyboard Shortcuts, made from the window's own actions (so it
cannot go stale) plus the canvas's pointer and arrow keys, and About (version, model and
its training, device, Qt, PyTorch, licences). Torch-free: what is known of the model and
of PyTorch comes from the render thread (ModelInfo.about)."""

from __future__ import annotations

import html

import PySide6
from PySide6.QtCore import qVersion
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QDialog, QDialogButtonBox, QMessageBox, QTextBrowser, QVBoxLayout, QWidget

from ..engine.bundled import version  # the package's, which `zoomviewer --version` prints too
from .canvas import POINTER_AND_KEYS


def shortcut_rows(menu_bar) -> list[tuple[str, str, str]]:
    """(menu, action, keys) for every action of every menu (submenus included) that has a
    shortcut, in menu order."""
    rows = []

    def walk(menu, path):
        for action in menu.actions():
            if action.menu() is not None:
                walk(action.menu(), path + [action.menu().title().replace("&", "")])
            elif isinstance(action, QAction) and action.shortcuts():
                keys = ", ".join(k.toString(QKeySequence.SequenceFormat.NativeText) for k in action.shortcuts())
                rows.append((" › ".join(path), action.text().replace("&", ""), keys))
    for action in menu_bar.actions():
        if action.menu() is not None:
            walk(action.menu(), [action.menu().title().replace("&", "")])
    return rows


def shortcuts_html(menu_bar) -> str:
    cells = "".join(f"<tr><td>{html.escape(keys)}</td><td>{html.escape(text)}</td><td>{html.escape(menu)}</td></tr>"
                    for menu, text, keys in shortcut_rows(menu_bar))
    pointer = "".join(f"<tr><td>{html.escape(k)}</td><td>{html.escape(t)}</td><td>canvas</td></tr>"
                      for k, t in POINTER_AND_KEYS)
    return (f"<table cellspacing=6><tr><th align=left>Keys</th><th align=left>Does</th><th align=left>Menu</th></tr>"
            f"{cells}{pointer}</table>")


def show_shortcuts(parent: QWidget) -> QDialog:
    dialog = QDialog(parent)
    dialog.setWindowTitle("Keyboard Shortcuts")
    text = QTextBrowser(dialog)
    text.setHtml(shortcuts_html(parent.menuBar()))
    buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close, parent=dialog)
    buttons.rejected.connect(dialog.reject)
    layout = QVBoxLayout(dialog)
    layout.addWidget(text)
    layout.addWidget(buttons)
    dialog.resize(560, 520)
    dialog.show()
    return dialog


def about_html(info) -> str:
    """`info`: the render thread's ModelInfo (None while it loads)."""
    lines = [f"<h3>zoomviewer {html.escape(version())}</h3>",
             "<p>A photo viewer in which magnification never shows pixels: every frame asks a "
             "learned continuous image representation (LIIF) for exactly the visible pixels.</p>"]
    if info is not None:
        lines += [f"<p>{html.escape(line)}</p>" for line in info.about]
    lines.append(f"<p>Qt {html.escape(qVersion())}, PySide6 {html.escape(PySide6.__version__)}</p>")
    lines.append("<p>zoomviewer: BSD-3-Clause. Qt and PySide6: LGPLv3. PyTorch: BSD-3-Clause. "
                 "The shipped weights are derived from the photos named in their training data "
                 "(BSDS500: non-commercial research use; Debian wallpaper and puzzle photos: CC-BY, "
                 "CC-BY-SA, CC0, GPL, LGPL, public domain); the sample photo is from Kodak's "
                 "image set, released for unrestricted use.</p>")
    return "".join(lines)


def show_about(parent: QWidget, info) -> None:
    QMessageBox.about(parent, "About zoomviewer", about_html(info))
