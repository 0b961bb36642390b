"""The local ensemble's rules, written once (docs/LIIF.md section 1, steps 2, 3 and 6).

Along each axis a query point is shifted by half a code cell either way; the nearest code
to each shifted point is one member, and its rel_coord is the unshifted point minus that
code's centre, in codes (2 units per code). Each of the four members is weighted by the
area of the rectangle between the point and the diagonally opposite member's centre.

The renderer (torch tensors, engine/model/liif.py) and the Explain overlay (numpy, which
the Qt canvas imports without torch) both call the functions below, so the overlay names
the very codes and weights the renderer uses. The arithmetic is operators only, plus the
caller's own clip / round / ones_like; fed float32 arrays or tensors it runs in float32
in both libraries, bit for bit. (numpy 1.x computes a 0-d float32 plus a Python float in
float64: pass 1-d arrays.) This module imports nothing, so importing it costs nothing.

The fused C kernel (model/fast_kernel.c) is compiled with AREA_EPS from here.
"""

from __future__ import annotations

SHIFTS = (-1.0, 1.0)   # each member's shift along an axis, in half code cells
ENSEMBLE_EPS = 1e-6    # the reference code's nudge added to every shift, so a point on a code boundary picks one side
COORD_EPS = 1e-6       # shifted points are clamped to [-1 + COORD_EPS, 1 - COORD_EPS], inside the grid
AREA_EPS = 1e-9        # added to every area, so the weights' sum is never zero


def axis_members(coord, n: int, local_ensemble: bool, clip, round_) -> list[tuple[object, object]]:
    """Normalised float32 coordinates along one axis of an n-code grid -> (code index,
    rel_coord) of each member: shift -1 then +1, or one unshifted member without the
    local ensemble. The index comes back as float32 (whole numbers in [0, n-1]); the
    caller casts it. `clip` (array, lo, hi) and `round_` (half to even) are the array
    library's, e.g. np.clip and np.round, or torch.clamp and torch.round.

    The index is the one grid_sample(nearest, align_corners=False) picks; the centre is
    formed as make_coord does ((-1 + 1/n) + (2/n) i, in float32), so rel_coord is exactly
    0 where the reference code's is."""
    shifts = SHIFTS if local_ensemble else (0.0,)
    eps = ENSEMBLE_EPS if local_ensemble else 0.0
    out = []
    for v in shifts:
        shifted = clip(coord + (v / n + eps), -1 + COORD_EPS, 1 - COORD_EPS)
        index = clip(round_(((shifted + 1) * n - 1) / 2), 0, n - 1)
        centre = (-1 + 1 / n) + (2 / n) * index
        out.append((index, (coord - centre) * n))
    return out


def blend_weights(rel_y: list, rel_x: list, ones_like) -> list:
    """Each member's weight, member order (y0,x0), (y0,x1), (y1,x0), (y1,x1), from the
    y-members' and x-members' rel_coords (any shapes that broadcast): the area of the
    diagonally opposite member over the sum of the four. One member (no local ensemble)
    weighs 1. `ones_like` is the array library's."""
    if len(rel_y) == 1:
        return [ones_like(rel_y[0] * rel_x[0])]
    areas = [abs(ry * rx) + AREA_EPS for ry in rel_y for rx in rel_x]
    total = areas[0] + areas[1] + areas[2] + areas[3]
    return [areas[3 - k] / total for k in range(4)]
