"""Geometry of the Explain overlay (numpy only): which latent codes decide the colour at a
source point and how much each one counts, and where the latent grid lies on screen.

LIIF (docs/LIIF.md section 1, steps 2, 3 and 6): the point is shifted by half a latent
cell up/down and left/right; the nearest code to each shifted point is one member of the
local ensemble; each member's prediction is weighted by the area of the rectangle between
the point and the *diagonally opposite* member's code centre, normalised to sum 1. Those
rules come from engine/ensemble.py, run here on float32 arrays as the renderer runs them
on float32 tensors, so the codes and weights named here are the renderer's, bit for bit.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .ensemble import axis_members, blend_weights
from .geometry import View


@dataclass(frozen=True)
class Member:
    """One local-ensemble member: latent code (row, col), its centre in source pixels,
    rel_coord (y, x) in the decoder's units (2 per source pixel) and its blend weight."""
    row: int
    col: int
    centre: tuple[float, float]   # (x, y) source pixels
    rel: tuple[float, float]      # (y, x)
    weight: float


def _axis(p: float, n: int, local_ensemble: bool) -> list[tuple[int, np.ndarray]]:
    """(code index, rel_coord as a float32 array of one) of each member along one axis
    for source coordinate p."""
    # formed in float64, then float32, as the renderer forms a pixel centre's coordinate;
    # 1-d, because numpy 1.x would compute a 0-d float32 plus a Python float in float64
    coord = np.array([-1 + 2 * float(p) / n], dtype=np.float32)
    return [(int(index[0]), rel) for index, rel in axis_members(coord, n, local_ensemble, np.clip, np.round)]


def ensemble_members(x: float, y: float, img_w: int, img_h: int, local_ensemble: bool = True) -> list[Member]:
    """The members that decide the colour at source point (x, y) of a img_w x img_h
    latent grid, in the decoder's order (y0,x0), (y0,x1), (y1,x0), (y1,x1). Near the
    border two members can name the same code; their weights then add up."""
    ys = _axis(y, img_h, local_ensemble)
    xs = _axis(x, img_w, local_ensemble)
    weights = blend_weights([ry for _, ry in ys], [rx for _, rx in xs], np.ones_like)
    pairs = [(iy, float(ry[0]), ix, float(rx[0])) for iy, ry in ys for ix, rx in xs]
    return [Member(iy, ix, (ix + 0.5, iy + 0.5), (ry, rx), float(w[0]))
            for (iy, ry, ix, rx), w in zip(pairs, weights)]


def code_weights(members: list[Member]) -> dict[tuple[int, int], float]:
    """Total weight per distinct latent code (row, col)."""
    out: dict[tuple[int, int], float] = {}
    for m in members:
        out[(m.row, m.col)] = out.get((m.row, m.col), 0.0) + m.weight
    return out


def grid_lines(view: View, img_w: int, img_h: int, min_spacing: float = 10.0) -> tuple[np.ndarray, np.ndarray]:
    """Screen x of the visible vertical and screen y of the horizontal latent cell
    boundaries (one cell per source pixel), or two empty arrays when cells would be
    closer than `min_spacing` device pixels (the grid would be a grey haze)."""
    if view.zoom < min_spacing:
        return np.empty(0), np.empty(0)
    x, y, w, h = view.visible_region()
    cols = np.arange(max(0, int(np.ceil(x))), min(img_w, int(np.floor(x + w))) + 1)
    rows = np.arange(max(0, int(np.ceil(y))), min(img_h, int(np.floor(y + h))) + 1)
    sx, _ = view.image_to_screen(cols, 0)
    _, sy = view.image_to_screen(0, rows)
    return np.asarray(sx, dtype=np.float64), np.asarray(sy, dtype=np.float64)
