"""The viewer's place on the desktop: its name, its icon (resources/desktop/zoomviewer.svg,
and zoomviewer.png drawn from it for where SVG is not read) and its desktop entry
(resources/desktop/zoomviewer.desktop, which names the same icon and the MIME types of
the formats it opens). They have a folder of their own so that the sample photo's folder
holds one photo, not the icon too (Go > Next Photo). No torch.

The desktop file name, the Wayland app id and the X11 window class are all "zoomviewer",
so the desktop matches a running window to its entry and its icon."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtGui import QIcon

from ..engine.bundled import resource_dir

NAME = "zoomviewer"
# The MIME type of each format in engine/formats.py (by its name there) for the desktop
# entry's MimeType line: the file managers offer zoomviewer for these.
MIME_TYPES = {"PNG": "image/png", "TIFF": "image/tiff", "JPEG": "image/jpeg", "WEBP": "image/webp",
              "BMP": "image/bmp"}


def icon_file(suffix: str = ".svg") -> Path:
    return resource_dir() / "desktop" / f"{NAME}{suffix}"


def desktop_file() -> Path:
    return resource_dir() / "desktop" / f"{NAME}.desktop"


def app_icon() -> QIcon:
    """The icon from the theme when zoomviewer's is installed there, else the bundled one."""
    icon = QIcon()
    for suffix in (".svg", ".png"):
        if icon_file(suffix).is_file():
            icon.addFile(str(icon_file(suffix)))
    return QIcon.fromTheme(NAME, icon)


def name_the_application(app) -> None:
    """The names the desktop shows and matches the window by, and the icon."""
    app.setApplicationDisplayName(NAME)
    app.setDesktopFileName(NAME)
    app.setWindowIcon(app_icon())
