"""Faster Deep Zoom, an optional approximation (off unless asked for; never exports): the
decoder runs on every step-th display pixel each way and the pixels between are filled
in linearly."""

from __future__ import annotations

import numpy as np
import torch

from ..latent import Latent
from .coords import Region, check_region
from .region import render_region


def deep_zoom_step(scale: float) -> int:
    """Display pixels per decoded sample, each way, for render_sparse: at least six
    samples per source pixel (so from x12), at most every 4th pixel."""
    return max(1, min(4, int(scale // 6)))


@torch.no_grad()
def render_sparse(latent: Latent, region: Region, out_size: tuple[int, int], step: int,
                  origin: tuple[int, int] = (0, 0), **kw) -> np.ndarray:
    """An optional approximation of render_region for deep zoom: the decoder runs at
    every `step`-th display pixel each way (with the display pixel's cell) and the
    pixels between are filled in linearly. `origin`: the global index (x, y) of the
    region's first pixel; samples sit on the global grid of every step-th pixel, so
    renders of neighbouring tiles meet without a seam. One sample beyond each edge keeps
    the edges interpolated, not extrapolated. step 1 is render_region itself."""
    if step <= 1:
        return render_region(latent, region, out_size, **kw)
    check_region(region, out_size)
    x, y, w, h = (float(v) for v in region)
    out_w, out_h = int(out_size[0]), int(out_size[1])
    pw, ph = w / out_w, h / out_h
    # sample k covers global pixels [step k, step k + step); the first one used is k0
    kx0, ky0 = origin[0] // step - 1, origin[1] // step - 1
    nx = -(-(origin[0] + out_w) // step) - kx0 + 1
    ny = -(-(origin[1] + out_h) // step) - ky0 + 1
    sx, sy = step * kx0 - origin[0], step * ky0 - origin[1]   # the first sample's first pixel, locally
    low_region = (x + sx * pw, y + sy * ph, nx * step * pw, ny * step * ph)
    kw.setdefault("cell", (ph, pw))
    low = torch.from_numpy(render_region(latent, low_region, (nx, ny), **kw))

    def axis(n: int, first: int, k0: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        u = (torch.arange(first, first + n, dtype=torch.float64) + 0.5) / step - 0.5 - k0
        i0 = u.floor()
        return i0.long(), i0.long() + 1, (u - i0).float()

    (y0, y1, ty), (x0, x1, tx) = axis(out_h, origin[1], ky0), axis(out_w, origin[0], kx0)
    rows = torch.lerp(low.index_select(0, y0), low.index_select(0, y1), ty[:, None, None])
    return torch.lerp(rows.index_select(1, x0), rows.index_select(1, x1), tx[None, :, None]).numpy()
