"""What a render asks for, as the decoder's queries: the region, its check, the query
coordinates of the output pixels and the decoder's cell (docs/LIIF.md section 1)."""

from __future__ import annotations

import math
from typing import Sequence

import torch

Region = Sequence[float]  # (x, y, w, h) in source pixels


def check_region(region: Region, out_size: tuple[int, int]) -> None:
    """A ValueError for a region that has no area or is not finite, or an empty output."""
    x, y, w, h = (float(v) for v in region)
    if not all(math.isfinite(v) for v in (x, y, w, h)) or w <= 0 or h <= 0:
        raise ValueError(f"region {tuple(region)} must have a positive, finite width and height")
    if int(out_size[0]) < 1 or int(out_size[1]) < 1:
        raise ValueError(f"output size {tuple(out_size)} must be at least 1x1")


def pixel_coords(start: float, length: float, n_out: int, n_src: int, device) -> torch.Tensor:
    """Normalised fp32 coordinates of the n_out pixel centres spanning [start, start+length),
    computed as the reference code's make_coord does (first centre + step * i, in fp32), so a
    full render queries bit-identical coordinates."""
    first = -1 + 2 * (start + 0.5 * length / n_out) / n_src
    step = 2 * length / (n_out * n_src)
    return torch.arange(n_out, dtype=torch.float32, device=device) * step + first


def rel_cell(region: Region, out_size: tuple[int, int], cell_clip: bool,
             cell: tuple[float, float] | None = None) -> tuple[float, float]:
    """rel_cell = cell x (H, W) = 2 x source pixels per output pixel (or per `cell`);
    optionally clipped to its x4 value (LTE/LMF's cell clipping) for larger scales."""
    if cell is None:
        cell = (region[3] / out_size[1], region[2] / out_size[0])
    cy, cx = 2 * float(cell[0]), 2 * float(cell[1])
    if cell_clip:
        cy, cx = max(cy, 0.5), max(cx, 0.5)
    return cy, cx
