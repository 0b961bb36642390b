"""Screen <-> image geometry of the viewer (numpy only).

Coordinates are continuous: image pixel (i, j) covers [j, j+1) x [i, i+1) in source pixels,
screen pixel (i, j) covers [j, j+1) x [i, i+1) in device pixels, (0, 0) at the top left.

`View` is one frozen viewing state: the image point at the screen centre, the zoom (device
pixels per source pixel) and the screen size in device pixels. Its "global" pixel grid is
the zoomed image's: global device pixel g covers source [g/zoom, (g+1)/zoom). A view is
*snapped* when its screen origin lies on that grid, so that screen pixels are global
pixels; the viewer only shows snapped views, which is what lets tiles rendered for one
view be reused, pixel for pixel, for another view at the same zoom (panning back).

`tile_parts` cuts the visible part of the photo into screen-aligned tiles anchored to
image space; `render_target` gives the screen rectangle and source region of the whole
visible part, on the same pixel grid.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

MAX_ZOOM = 64.0


@dataclass(frozen=True)
class View:
    cx: float          # source point at the screen centre
    cy: float
    zoom: float        # device pixels per source pixel
    screen_w: int      # device pixels
    screen_h: int

    # -- the transform and its inverse -------------------------------------------------
    def screen_to_image(self, sx, sy):
        """Source coordinates of screen points (scalars or arrays)."""
        ix = self.cx + (np.asarray(sx, dtype=np.float64) - self.screen_w / 2) / self.zoom
        iy = self.cy + (np.asarray(sy, dtype=np.float64) - self.screen_h / 2) / self.zoom
        return ix, iy

    def image_to_screen(self, ix, iy):
        """Screen coordinates of source points (scalars or arrays)."""
        sx = (np.asarray(ix, dtype=np.float64) - self.cx) * self.zoom + self.screen_w / 2
        sy = (np.asarray(iy, dtype=np.float64) - self.cy) * self.zoom + self.screen_h / 2
        return sx, sy

    @property
    def origin(self) -> tuple[int, int]:
        """The global device pixel at screen (0, 0) (exact for a snapped view)."""
        return (round(self.cx * self.zoom - self.screen_w / 2),
                round(self.cy * self.zoom - self.screen_h / 2))

    # -- new views ---------------------------------------------------------------------
    def zoom_at(self, sx: float, sy: float, factor: float, min_zoom: float = 0.0,
                max_zoom: float = math.inf) -> View:
        """Zoom by `factor` (clamped to the limits) keeping the source point under the
        screen point (sx, sy) where it is."""
        zoom = float(min(max(self.zoom * factor, min_zoom), max_zoom))
        px, py = self.screen_to_image(sx, sy)
        return replace(self, zoom=zoom, cx=float(px - (sx - self.screen_w / 2) / zoom),
                       cy=float(py - (sy - self.screen_h / 2) / zoom))

    def pan_by(self, dx: float, dy: float) -> View:
        """Move the picture by (dx, dy) screen pixels (a drag to the right moves it right)."""
        return replace(self, cx=self.cx - dx / self.zoom, cy=self.cy - dy / self.zoom)

    def resized(self, screen_w: int, screen_h: int) -> View:
        """The same centre and zoom on a screen of another size."""
        return replace(self, screen_w=int(screen_w), screen_h=int(screen_h))

    def snapped(self) -> View:
        """The nearest view (less than half a device pixel away) whose screen origin lies on
        the global pixel grid."""
        ox, oy = self.origin
        return replace(self, cx=(ox + self.screen_w / 2) / self.zoom, cy=(oy + self.screen_h / 2) / self.zoom)

    def clamped(self, img_w: int, img_h: int) -> View:
        """Keep the screen centre over the photo, so it can never be panned out of sight."""
        return replace(self, cx=min(max(self.cx, 0.0), float(img_w)), cy=min(max(self.cy, 0.0), float(img_h)))

    @classmethod
    def fit(cls, img_w: int, img_h: int, screen_w: int, screen_h: int) -> View:
        """The whole photo, centred, as large as the screen allows."""
        return cls(img_w / 2, img_h / 2, fit_zoom(img_w, img_h, screen_w, screen_h), int(screen_w), int(screen_h))

    def visible_region(self) -> tuple[float, float, float, float]:
        """(x, y, w, h) of the source rectangle the whole screen shows."""
        x, y = self.screen_to_image(0, 0)
        return float(x), float(y), self.screen_w / self.zoom, self.screen_h / self.zoom


def fit_zoom(img_w: int, img_h: int, screen_w: int, screen_h: int) -> float:
    if img_w <= 0 or img_h <= 0 or screen_w <= 0 or screen_h <= 0:
        return 1.0
    return min(screen_w / img_w, screen_h / img_h)


def zoom_limits(img_w: int, img_h: int, screen_w: int, screen_h: int) -> tuple[float, float]:
    """Zoom range: out to half of fit or of 100 % (whichever is smaller, so both stay
    reachable), in to x64 (or 4x fit for a photo smaller than the screen)."""
    fit = fit_zoom(img_w, img_h, screen_w, screen_h)
    return min(fit, 1.0) / 2, max(MAX_ZOOM, 4 * fit)


def image_extent(view: View, img_w: int, img_h: int) -> tuple[int, int]:
    """Global pixels (columns, rows) the zoomed photo touches; the last may be partial."""
    # The epsilon keeps 1280.0000000002 from adding a column the photo barely touches.
    return (max(1, math.ceil(img_w * view.zoom - 1e-6)), max(1, math.ceil(img_h * view.zoom - 1e-6)))


def global_region(rect: tuple[int, int, int, int], zoom: float) -> tuple[float, float, float, float]:
    """Source region (x, y, w, h) of a rectangle (gx0, gy0, gx1, gy1) of global pixels."""
    gx0, gy0, gx1, gy1 = rect
    return gx0 / zoom, gy0 / zoom, (gx1 - gx0) / zoom, (gy1 - gy0) / zoom


@dataclass(frozen=True)
class Target:
    """The visible part of the photo: screen rectangle (device px, end-exclusive) and the
    source region and output size that render it on the screen's pixel grid."""
    screen_rect: tuple[int, int, int, int]
    region: tuple[float, float, float, float]
    out_size: tuple[int, int]


def render_target(view: View, img_w: int, img_h: int) -> Target | None:
    """What to render so that exactly the visible part of the photo is covered, or None
    when the photo is off screen."""
    ox, oy = view.origin
    ew, eh = image_extent(view, img_w, img_h)
    gx0, gy0 = max(ox, 0), max(oy, 0)
    gx1, gy1 = min(ox + view.screen_w, ew), min(oy + view.screen_h, eh)
    if gx1 <= gx0 or gy1 <= gy0:
        return None
    return Target((gx0 - ox, gy0 - oy, gx1 - ox, gy1 - oy), global_region((gx0, gy0, gx1, gy1), view.zoom),
                  (gx1 - gx0, gy1 - gy0))


@dataclass(frozen=True)
class TilePart:
    """The visible part of one tile of the global grid: tile index, its rectangle in global
    pixels (end-exclusive), and the source region / output size that render it."""
    key: tuple[int, int]
    rect: tuple[int, int, int, int]
    region: tuple[float, float, float, float]
    out_size: tuple[int, int]


def tile_parts(view: View, img_w: int, img_h: int, tile: int = 128) -> list[TilePart]:
    """The visible parts of the tiles (tile x tile global pixels) covering the photo on
    screen, nearest to the screen centre first (the first sharp pixels land where people
    look)."""
    target = render_target(view, img_w, img_h)
    if target is None:
        return []
    ox, oy = view.origin
    x0, y0, x1, y1 = target.screen_rect
    gx0, gy0, gx1, gy1 = x0 + ox, y0 + oy, x1 + ox, y1 + oy
    parts = []
    for ty in range(gy0 // tile, (gy1 - 1) // tile + 1):
        for tx in range(gx0 // tile, (gx1 - 1) // tile + 1):
            rect = (max(tx * tile, gx0), max(ty * tile, gy0), min((tx + 1) * tile, gx1), min((ty + 1) * tile, gy1))
            parts.append(TilePart((tx, ty), rect, global_region(rect, view.zoom), (rect[2] - rect[0], rect[3] - rect[1])))
    mx, my = ox + view.screen_w / 2, oy + view.screen_h / 2
    parts.sort(key=lambda p: ((p.rect[0] + p.rect[2]) / 2 - mx) ** 2 + ((p.rect[1] + p.rect[3]) / 2 - my) ** 2)
    return parts


def bounding_rect(rects) -> tuple[int, int, int, int]:
    rects = list(rects)
    return (min(r[0] for r in rects), min(r[1] for r in rects), max(r[2] for r in rects), max(r[3] for r in rects))
