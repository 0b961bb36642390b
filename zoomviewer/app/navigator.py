"""The navigator (OpenSeadragon's minimap): a small picture of the whole photo in the
bottom-right corner of the main canvas, the part on screen outlined on it; a click or a
drag on it centres the view there. It hides itself while the whole photo is on screen
(fit, or less), and when it is switched off (View > Navigator, M). No torch.

It is a child widget of the canvas, so it is painted over the picture and gets its own
mouse presses; the wheel and hover moves fall through to the canvas beneath.
"""

from __future__ import annotations

from dataclasses import replace

from PySide6.QtCore import QEvent, QObject, QPointF, QRectF, Qt
from PySide6.QtGui import QColor, QImage, QPainter, QPainterPath, QPen
from PySide6.QtWidgets import QWidget

LARGEST = (180, 135)       # logical pixels: the picture fits in this ...
CANVAS_SHARE = 0.3         # ... and in this share of the canvas's width and height
MARGIN = 10                # logical pixels from the canvas's corner
BORDER = 2                 # logical pixels of dark frame around the picture


class Navigator(QWidget):
    """The overview of `viewport`'s photo over the corner of `canvas` (a ZoomCanvas)."""

    def __init__(self, viewport, canvas: QWidget) -> None:
        super().__init__(canvas)
        self.viewport, self.canvas = viewport, canvas
        self.wanted = True                    # View > Navigator
        self._thumb: QImage | None = None
        self._thumb_key: tuple | None = None
        self.setCursor(Qt.CursorShape.PointingHandCursor)
        self.setToolTip("the whole photo: click or drag to look there")
        canvas.installEventFilter(self)
        viewport.view_changed.connect(lambda _view: self.refresh())
        self.hide()

    # -- when and where ----------------------------------------------------------------------
    def set_wanted(self, on: bool) -> None:
        self.wanted = bool(on)
        self.refresh()

    def needed(self) -> bool:
        """Some of the photo is off screen (to within a device pixel)."""
        view, size = self.viewport.view, self.viewport.image_size
        if view is None or size is None:
            return False
        x, y, w, h = view.visible_region()
        slack = 1 / view.zoom
        return x > slack or y > slack or x + w < size[0] - slack or y + h < size[1] - slack

    def scale(self) -> float:
        """Logical navigator pixels per source pixel."""
        img_w, img_h = self.viewport.image_size or (1, 1)
        return min(LARGEST[0] / img_w, LARGEST[1] / img_h,
                   CANVAS_SHARE * self.canvas.width() / img_w, CANVAS_SHARE * self.canvas.height() / img_h)

    def picture_rect(self) -> QRectF:
        """Where the photo's picture lies in this widget (logical pixels)."""
        img_w, img_h = self.viewport.image_size or (1, 1)
        s = self.scale()
        return QRectF(BORDER, BORDER, max(round(img_w * s), 1), max(round(img_h * s), 1))

    def refresh(self) -> None:
        show = self.wanted and self.needed()
        if show:
            picture = self.picture_rect()
            w, h = round(picture.width()) + 2 * BORDER, round(picture.height()) + 2 * BORDER
            self.setGeometry(self.canvas.width() - w - MARGIN, self.canvas.height() - h - MARGIN, w, h)
            self.update()
        self.setVisible(show)

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if watched is self.canvas and event.type() == QEvent.Type.Resize:
            self.refresh()           # keep to the corner; the picture's size follows the canvas
        return False

    # -- source <-> navigator ---------------------------------------------------------------
    def on_screen_rect(self) -> QRectF:
        """The part of the photo on screen, in this widget's pixels (within the picture)."""
        picture, s = self.picture_rect(), self.scale()
        x, y, w, h = self.viewport.view.visible_region()
        rect = QRectF(picture.x() + x * s, picture.y() + y * s, w * s, h * s)
        return rect.intersected(picture)

    def to_source(self, pos: QPointF) -> tuple[float, float]:
        """The source point shown at `pos` (kept on the photo)."""
        picture, s = self.picture_rect(), self.scale()
        img_w, img_h = self.viewport.image_size
        return (min(max((pos.x() - picture.x()) / s, 0.0), float(img_w)),
                min(max((pos.y() - picture.y()) / s, 0.0), float(img_h)))

    def look_at(self, pos: QPointF) -> None:
        view = self.viewport.view
        if view is not None:
            x, y = self.to_source(pos)
            self.viewport.set_view(replace(view, cx=x, cy=y))

    # -- input -------------------------------------------------------------------------------
    def mousePressEvent(self, event) -> None:
        if event.button() == Qt.MouseButton.LeftButton:
            self.look_at(event.position())
        event.accept()            # never a pan of the canvas beneath

    def mouseMoveEvent(self, event) -> None:
        if event.buttons() & Qt.MouseButton.LeftButton:
            self.look_at(event.position())
        event.accept()

    def mouseReleaseEvent(self, event) -> None:
        event.accept()

    # -- painting ----------------------------------------------------------------------------
    def thumbnail(self) -> QImage:
        """The photo at the picture's size, smoothly scaled from the screen pyramid's
        smallest level that is still larger (made once per photo and size)."""
        picture, dpr = self.picture_rect(), self.devicePixelRatioF()
        w, h = round(picture.width() * dpr), round(picture.height() * dpr)
        key = (self.viewport.image_id, w, h)
        if key != self._thumb_key:
            level, _ = self.viewport.source_level(w / self.viewport.image_size[0])
            self._thumb = level.scaled(w, h, Qt.AspectRatioMode.IgnoreAspectRatio,
                                       Qt.TransformationMode.SmoothTransformation)
            self._thumb.setDevicePixelRatio(dpr)
            self._thumb_key = key
        return self._thumb

    def paintEvent(self, event) -> None:
        if self.viewport.view is None or self.viewport.image_size is None:
            return
        p = QPainter(self)
        p.fillRect(self.rect(), QColor(0, 0, 0, 170))
        picture = self.picture_rect()
        p.drawImage(picture, self.thumbnail())
        on_screen = self.on_screen_rect()
        # the rest of the photo dimmed, so that the part on screen stands out
        rest = QPainterPath()
        rest.setFillRule(Qt.FillRule.OddEvenFill)
        rest.addRect(picture)
        rest.addRect(on_screen)
        p.fillPath(rest, QColor(0, 0, 0, 110))
        # at least 4 pixels across, so that it stays visible at x64
        grow_x, grow_y = max(0.0, 4 - on_screen.width()) / 2, max(0.0, 4 - on_screen.height()) / 2
        outline = on_screen.adjusted(-grow_x, -grow_y, grow_x, grow_y)
        p.setBrush(Qt.BrushStyle.NoBrush)
        p.setPen(QPen(QColor(0, 0, 0, 200), 3))
        p.drawRect(outline)
        p.setPen(QPen(QColor(255, 210, 60), 1.5))
        p.drawRect(outline)
        p.end()
