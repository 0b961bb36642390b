"""The zoomable widget: paints a Viewport and turns wheel, drag, keys and double-clicks
into new views. Never imports torch.

Painting works in device pixels (the painter is scaled by 1/devicePixelRatio), so frames
rendered at device resolution are blitted one to one on HiDPI screens. Each paint draws,
for the kind this canvas shows: the source smoothly scaled (the fallback), then the
best frame warped to the current view, then overlays (the heat map of detail_overlay.py,
Explain, labels, the swipe divider).
"""

from __future__ import annotations

from PySide6.QtCore import QPointF, QRectF, Qt, Signal
from PySide6.QtGui import QColor, QFont, QImage, QPainter, QPen
from PySide6.QtWidgets import QWidget

from ..engine.explain import code_weights, ensemble_members, grid_lines
from .viewport import Viewport
from .protocol import BICUBIC, MODEL

BACKGROUND = QColor(38, 38, 40)
WHEEL_NOTCH_OCTAVES = 1 / 4      # one wheel notch (120 units) zooms by 2**(1/4) = x1.19
PIXEL_DELTA_OCTAVES = 1 / 300    # trackpads: 300 px of scrolling per doubling
KEY_ZOOM = 2 ** 0.5
KEY_PAN_FRACTION = 0.1           # arrows move the picture by a tenth of the screen
DIVIDER_GRAB = 8                 # logical pixels either side of the swipe divider that grab it
# What the canvas does without a menu action (the Help menu's shortcut list adds these to
# the actions' own shortcuts; keep them next to the handlers below; the navigator, a child
# of the canvas, has its handlers in navigator.py)
POINTER_AND_KEYS = (("Arrow keys", "pan by a tenth of the view"), ("Wheel / trackpad", "zoom about the pointer"),
                    ("Drag", "pan"), ("Double-click", "zoom in ×2 about the pointer"),
                    ("Drag the divider", "move the swipe divider"),
                    ("Click or drag on the navigator", "centre the view there"))
CODE_COLOURS = [QColor(255, 80, 80), QColor(80, 220, 80), QColor(90, 150, 255), QColor(255, 210, 60)]


class ZoomCanvas(QWidget):
    """Shows `kind` (MODEL or BICUBIC) of a Viewport; in swipe mode, `kind` left of the
    divider and `other_kind` right of it."""

    divider_moved = Signal(float)

    def __init__(self, viewport: Viewport, kind: str = MODEL, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.viewport = viewport
        self.kind = kind
        self.other_kind = BICUBIC
        self.swipe = False
        self.divider = 0.5               # swipe divider, fraction of the width
        self.explain = False
        self.overlays: list = []         # painters (painter, canvas) over the picture: the heat map
        self.primary = True              # reports its size as the shared screen size
        self._drag_start = None          # (logical position, view) while panning
        self._dragging_divider = False
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.setMouseTracking(True)
        self.setAttribute(Qt.WidgetAttribute.WA_OpaquePaintEvent)
        self.setMinimumSize(64, 64)
        viewport.changed.connect(self.update)

    # -- geometry helpers ----------------------------------------------------------------
    def dpr(self) -> float:
        return self.devicePixelRatioF()

    def device_size(self) -> tuple[int, int]:
        d = self.dpr()
        return round(self.width() * d), round(self.height() * d)

    def to_device(self, pos: QPointF) -> tuple[float, float]:
        d = self.dpr()
        return pos.x() * d, pos.y() * d

    # -- input ---------------------------------------------------------------------------
    def resizeEvent(self, event) -> None:
        if self.primary:
            self.viewport.set_screen_size(*self.device_size())
        super().resizeEvent(event)

    def wheelEvent(self, event) -> None:
        pixel, angle = event.pixelDelta(), event.angleDelta()
        if not pixel.isNull():   # trackpad: smooth, many small events
            octaves = pixel.y() * PIXEL_DELTA_OCTAVES
        else:
            octaves = angle.y() / 120 * WHEEL_NOTCH_OCTAVES
        if event.inverted():
            octaves = -octaves
        if octaves:
            self.viewport.zoom_at(*self.to_device(event.position()), 2.0 ** octaves)
        event.accept()

    def event(self, event) -> bool:
        # Pinch on a trackpad arrives as a native zoom gesture (value = relative change).
        if event.type() == event.Type.NativeGesture and event.gestureType() == Qt.NativeGestureType.ZoomNativeGesture:
            self.viewport.zoom_at(*self.to_device(event.position()), 1.0 + event.value())
            return True
        return super().event(event)

    def _near_divider(self, pos: QPointF) -> bool:
        return self.swipe and abs(pos.x() - self.divider * self.width()) <= DIVIDER_GRAB

    def mousePressEvent(self, event) -> None:
        if event.button() != Qt.MouseButton.LeftButton:
            return super().mousePressEvent(event)
        if self._near_divider(event.position()):
            self._dragging_divider = True
        elif self.viewport.view is not None:
            self.viewport.stop_glide()       # the drag moves what is on screen
            self._drag_start = (event.position(), self.viewport.view)
            self.setCursor(Qt.CursorShape.ClosedHandCursor)
        event.accept()

    def mouseMoveEvent(self, event) -> None:
        pos = event.position()
        if self._dragging_divider:
            self.divider = min(max(pos.x() / max(self.width(), 1), 0.0), 1.0)
            self.divider_moved.emit(self.divider)
            self.update()
        elif self._drag_start is not None:
            # Pan from where the drag began, not step by step: the picture follows the
            # pointer exactly, with no rounding drift.
            start, view = self._drag_start
            d = self.dpr()
            self.viewport.set_view(view.pan_by((pos.x() - start.x()) * d, (pos.y() - start.y()) * d))
        elif self.swipe:
            self.setCursor(Qt.CursorShape.SplitHCursor if self._near_divider(pos) else Qt.CursorShape.ArrowCursor)
        self.viewport.set_pointer(self.to_device(pos))
        if self.explain:
            self.update()

    def mouseReleaseEvent(self, event) -> None:
        if event.button() == Qt.MouseButton.LeftButton:
            self._drag_start = None
            self._dragging_divider = False
            self.unsetCursor()
        event.accept()

    def mouseDoubleClickEvent(self, event) -> None:
        vp, pos = self.viewport, event.position()
        if event.button() == Qt.MouseButton.LeftButton and not self._near_divider(pos) and vp.view is not None:
            vp.glide_to(vp.view.zoom_at(*self.to_device(pos), 2.0, *vp.limits()))
        event.accept()

    def leaveEvent(self, event) -> None:
        self.viewport.set_pointer(None)
        super().leaveEvent(event)

    def keyPressEvent(self, event) -> None:
        vp, key = self.viewport, event.key()
        view = vp.view
        if view is None:
            return super().keyPressEvent(event)
        step_x, step_y = view.screen_w * KEY_PAN_FRACTION, view.screen_h * KEY_PAN_FRACTION
        pans = {Qt.Key.Key_Left: (step_x, 0), Qt.Key.Key_Right: (-step_x, 0),
                Qt.Key.Key_Up: (0, step_y), Qt.Key.Key_Down: (0, -step_y)}
        if key in pans:
            vp.pan_by(*pans[key])
        elif key in (Qt.Key.Key_Plus, Qt.Key.Key_Equal):
            vp.glide_by(KEY_ZOOM)
        elif key in (Qt.Key.Key_Minus, Qt.Key.Key_Underscore):
            vp.glide_by(1 / KEY_ZOOM)
        elif key == Qt.Key.Key_0:
            vp.glide_fit()
        elif key == Qt.Key.Key_1:
            vp.glide_actual()
        else:
            return super().keyPressEvent(event)
        event.accept()

    # -- painting ------------------------------------------------------------------------
    def paintEvent(self, event) -> None:
        p = QPainter(self)
        p.scale(1 / self.dpr(), 1 / self.dpr())   # device pixels from here on
        w, h = self.device_size()
        p.fillRect(0, 0, w, h, BACKGROUND)
        view = self.viewport.view
        if view is None:
            p.setPen(QColor(200, 200, 200))
            p.drawText(QRectF(0, 0, w, h), Qt.AlignmentFlag.AlignCenter, "Open a photo (Ctrl+O) or drop one here")
            return
        self._paint_kind(p, self.kind)
        if self.swipe:
            split = round(self.divider * w)
            p.save()
            p.setClipRect(split, 0, w - split, h)
            self._paint_kind(p, self.other_kind)
            p.restore()
        for overlay in self.overlays:
            overlay(p, self)
        if self.explain:
            self._paint_explain(p)
        if self.swipe:
            split = round(self.divider * w)
            p.setPen(QPen(QColor(255, 255, 255), 2 * self.dpr()))
            p.drawLine(split, 0, split, h)
            self._paint_label(p, self.viewport.kind_label(self.kind), left=True)
            self._paint_label(p, self.viewport.kind_label(self.other_kind), left=False)
        else:
            self._paint_label(p, self.viewport.kind_label(self.kind), left=True)

    def picture(self) -> QImage | None:
        """What this canvas shows of its kind, at device resolution, without overlays or
        labels (Copy View); None before a photo is shown."""
        if self.viewport.view is None:
            return None
        w, h = self.device_size()
        image = QImage(w, h, QImage.Format.Format_RGB32)
        image.fill(BACKGROUND)
        p = QPainter(image)
        self._paint_kind(p, self.kind)
        p.end()
        return image

    def _paint_kind(self, p: QPainter, kind: str) -> None:
        vp, view = self.viewport, self.viewport.view
        img_w, img_h = vp.image_size
        # 1. the source, smoothly scaled: what is at hand before any frame exists
        level, _ = vp.source_level(view.zoom)
        sx_step, sy_step = img_w / level.width(), img_h / level.height()  # source px per level px
        x, y, w, h = view.visible_region()
        lx0, ly0 = max(int(x // sx_step), 0), max(int(y // sy_step), 0)
        lx1 = min(int(-(-(x + w) // sx_step)) + 1, level.width())
        ly1 = min(int(-(-(y + h) // sy_step)) + 1, level.height())
        if lx1 > lx0 and ly1 > ly0:
            (sx0, sx1), (sy0, sy1) = view.image_to_screen([lx0 * sx_step, lx1 * sx_step], [ly0 * sy_step, ly1 * sy_step])
            p.save()
            p.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform)
            p.drawImage(QRectF(sx0, sy0, sx1 - sx0, sy1 - sy0), level, QRectF(lx0, ly0, lx1 - lx0, ly1 - ly0))
            p.restore()
        # 2. the best frame, warped to this view (exact when it was rendered for it)
        frame = vp.frames.get(kind)
        if frame is not None:
            p.save()
            t = frame.transform_to(view)
            p.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, t.m11() != 1)
            p.setTransform(t, combine=True)
            p.drawImage(0, 0, frame.image)
            p.restore()

    def _paint_label(self, p: QPainter, text: str, left: bool) -> None:
        d = self.dpr()
        font = QFont(self.font())
        font.setPixelSize(round(13 * d))
        p.setFont(font)
        metrics = p.fontMetrics()
        pad = round(6 * d)
        box_w, box_h = metrics.horizontalAdvance(text) + 2 * pad, metrics.height() + pad
        x = pad if left else self.device_size()[0] - box_w - pad
        box = QRectF(x, pad, box_w, box_h)
        p.setPen(Qt.PenStyle.NoPen)
        p.setBrush(QColor(0, 0, 0, 160))
        p.drawRoundedRect(box, 4 * d, 4 * d)
        p.setPen(QColor(240, 240, 240))
        p.drawText(box, Qt.AlignmentFlag.AlignCenter, text)

    def explain_point(self) -> tuple[float, float]:
        """The source point Explain describes: under the pointer, else the screen centre."""
        vp = self.viewport
        if vp.cursor is not None:
            return vp.cursor
        return vp.view.cx, vp.view.cy

    def _paint_explain(self, p: QPainter) -> None:
        vp, view = self.viewport, self.viewport.view
        img_w, img_h = vp.image_size
        w, h = self.device_size()
        d = self.dpr()
        xs, ys = grid_lines(view, img_w, img_h)
        if len(xs):
            p.setPen(QPen(QColor(255, 255, 255, 70), 1))
            top, bottom = view.image_to_screen(0, [0, img_h])[1]
            left, right = view.image_to_screen([0, img_w], 0)[0]
            for sx in xs:
                p.drawLine(QPointF(sx, max(top, 0)), QPointF(sx, min(bottom, h)))
            for sy in ys:
                p.drawLine(QPointF(max(left, 0), sy), QPointF(min(right, w), sy))
        px, py = self.explain_point()
        if not (0 <= px < img_w and 0 <= py < img_h):
            return
        codes = code_weights(ensemble_members(px, py, img_w, img_h, vp.local_ensemble))
        qx, qy = view.image_to_screen(px, py)
        font = QFont(self.font())
        font.setPixelSize(round(12 * d))
        p.setFont(font)
        metrics = p.fontMetrics()
        for k, ((row, col), weight) in enumerate(codes.items()):
            colour = CODE_COLOURS[k % 4]
            cx, cy = view.image_to_screen(col + 0.5, row + 0.5)
            (cell_x0, cell_x1), (cell_y0, cell_y1) = view.image_to_screen([col, col + 1], [row, row + 1])
            p.setPen(QPen(colour, 2 * d))
            p.setBrush(Qt.BrushStyle.NoBrush)
            p.drawRect(QRectF(cell_x0, cell_y0, cell_x1 - cell_x0, cell_y1 - cell_y0))
            p.drawLine(QPointF(qx, qy), QPointF(cx, cy))
            # dot area proportional to the weight, never larger than the cell
            radius = max(2 * d, min(0.4 * view.zoom, 10 * d)) * (0.3 + 0.7 * weight ** 0.5)
            p.setBrush(colour)
            p.drawEllipse(QPointF(cx, cy), radius, radius)
            # the weight sits outside the group of codes, on this code's side of the point
            text = f"{weight:.2f}"
            tw, th = metrics.horizontalAdvance(text), metrics.ascent()
            gap = radius + 3 * d
            tx = cx + gap if cx >= qx else cx - gap - tw
            ty = cy - gap if cy < qy else cy + gap + th
            p.setPen(QColor(0, 0, 0))
            p.drawText(QPointF(tx + d, ty + d), text)
            p.setPen(colour.lighter(130))
            p.drawText(QPointF(tx, ty), text)
        p.setPen(QPen(QColor(255, 255, 255), 1.5 * d))
        p.setBrush(Qt.BrushStyle.NoBrush)
        arm = 7 * d
        p.drawLine(QPointF(qx - arm, qy), QPointF(qx + arm, qy))
        p.drawLine(QPointF(qx, qy - arm), QPointF(qx, qy + arm))
        caption = f"colour at ({px:.2f}, {py:.2f}) = " + " + ".join(
            f"{w:.2f}·code[{r},{c}]" for (r, c), w in codes.items())
        box = QRectF(6 * d, h - metrics.height() - 12 * d, metrics.horizontalAdvance(caption) + 12 * d,
                     metrics.height() + 6 * d)
        p.setPen(Qt.PenStyle.NoPen)
        p.setBrush(QColor(0, 0, 0, 160))
        p.drawRoundedRect(box, 4 * d, 4 * d)
        p.setPen(QColor(240, 240, 240))
        p.drawText(box, Qt.AlignmentFlag.AlignCenter, caption)
