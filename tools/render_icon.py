"""Draw resources/desktop/zoomviewer.png (256 px) from resources/desktop/zoomviewer.svg,
the icon for desktops and Qt builds that do not read SVG. Run after editing the SVG:
    python tools/render_icon.py
"""

from __future__ import annotations

import sys
from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtGui import QGuiApplication, QImage, QPainter
from PySide6.QtSvg import QSvgRenderer

ROOT = Path(__file__).resolve().parents[1]
SIZE = 256


def main() -> int:
    app = QGuiApplication.instance() or QGuiApplication(sys.argv[:1])   # fonts and painting need one
    renderer = QSvgRenderer(str(ROOT / "resources" / "desktop" / "zoomviewer.svg"))
    if not renderer.isValid():
        print("render_icon: resources/desktop/zoomviewer.svg is not a valid SVG", file=sys.stderr)
        return 2
    image = QImage(SIZE, SIZE, QImage.Format.Format_ARGB32_Premultiplied)
    image.fill(Qt.GlobalColor.transparent)
    painter = QPainter(image)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    renderer.render(painter)
    painter.end()
    out = ROOT / "resources" / "desktop" / "zoomviewer.png"
    if not image.save(str(out), "PNG"):
        print(f"render_icon: cannot write {out}", file=sys.stderr)
        return 2
    print(f"wrote {out.relative_to(ROOT)} ({SIZE}x{SIZE})")
    app.quit()
    return 0


if __name__ == "__main__":
    sys.exit(main())
