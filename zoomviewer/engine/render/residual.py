"""The residual option's base (docs/LIIF.md section 1, step 7): the bilinear upsampling
of the source (grid_sample's, align_corners=False, border), to which the decoder's
prediction is added. Separable: a window of the source, then per output row and
column the two source rows / columns it lies between and the weight of the second."""

from __future__ import annotations

import torch

from ..latent import Latent

Axis = tuple[torch.Tensor, torch.Tensor, torch.Tensor]  # (first index, second index, weight of the second)


def bilinear_axis(coord: torch.Tensor, n: int) -> Axis:
    """Indices and weight along one axis of grid_sample(bilinear, border, align_corners=False)."""
    f = ((coord.double() + 1) * n - 1) / 2
    f = f.clamp(0, n - 1)
    i0 = f.floor()
    t = (f - i0).float()
    i0 = i0.long()
    return i0, (i0 + 1).clamp(max=n - 1), t


def bilinear_window(latent: Latent, by: Axis, bx: Axis, r0: int, r1: int):
    """The base for output rows r0:r1, what to blend -> (source window (3, h, w), source
    rows (2, R) and columns (2, W) in the window, row weights (R,), column weights (W,)):
    each output pixel lies between two source rows and columns."""
    y0, y1, ty = by[0][r0:r1], by[1][r0:r1], by[2][r0:r1]
    x0, x1, tx = bx
    lo, hi = int(y0.min()), int(y1.max()) + 1
    xl, xh = int(x0.min()), int(x1.max()) + 1
    return latent.source(lo, hi, xl, xh), torch.stack((y0, y1)) - lo, ty, torch.stack((x0, x1)) - xl, tx


def bilinear_rows(src: torch.Tensor, y: torch.Tensor, ty: torch.Tensor, x: torch.Tensor,
                  tx: torch.Tensor) -> torch.Tensor:
    """The base, blended from bilinear_window -> (R, W, 3): source rows first (few
    columns), then columns (full width)."""
    src = src.permute(1, 2, 0)
    rows = torch.lerp(src.index_select(0, y[0]), src.index_select(0, y[1]), ty[:, None, None])
    return torch.lerp(rows.index_select(1, x[0]), rows.index_select(1, x[1]), tx[None, :, None])
