"""The reference code's way of rendering, kept as the baseline for tests and the bench:
the photo's whole latent unfolded for every chunk of queries, the nearest codes found by
grid_sample, the full decoder per query and member (docs/LIIF.md section 1). Only the
ensemble's constants are shared with the renderer (engine/ensemble.py); the arithmetic is
the reference code's own."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from .. import ensemble
from ..latent import Latent
from .coords import Region, check_region, pixel_coords, rel_cell


@torch.no_grad()
def render_region_reference(latent: Latent, region: Region, out_size: tuple[int, int], *,
                            chunk: int = 30000, cell_clip: bool = False) -> np.ndarray:
    """The reference code's way: the photo's whole latent unfolded for every chunk of
    30 000 queries, nearest codes by grid_sample, the full decoder per query."""
    check_region(region, out_size)
    model, dev = latent.model, latent.device
    x, y, w, h = (float(v) for v in region)
    out_w, out_h = int(out_size[0]), int(out_size[1])
    H, W = latent.height, latent.width
    feat = latent.encode_all()[None]
    cy, cx = rel_cell(region, (out_w, out_h), cell_clip)
    gy, gx = torch.meshgrid(pixel_coords(y, h, out_h, H, dev), pixel_coords(x, w, out_w, W, dev), indexing="ij")
    coord = torch.stack((gy, gx), -1).reshape(-1, 2)
    shifts = list(ensemble.SHIFTS) if model.local_ensemble else [0.0]
    eps = ensemble.ENSEMBLE_EPS if model.local_ensemble else 0.0
    cell = torch.tensor([cy, cx], device=dev)
    preds = []
    for s in range(0, coord.shape[0], chunk):
        q = coord[s:s + chunk]
        unfolded = F.unfold(feat, 3, padding=1).view(1, -1, H, W) if model.feat_unfold else feat
        outs, areas = [], []
        for vy in shifts:
            for vx in shifts:
                qs = q.clone()
                qs[:, 0] += vy / H + eps
                qs[:, 1] += vx / W + eps
                qs.clamp_(-1 + ensemble.COORD_EPS, 1 - ensemble.COORD_EPS)
                grid = qs.flip(-1)[None, None]
                q_feat = F.grid_sample(unfolded, grid, mode="nearest", align_corners=False)[0, :, 0].t()
                iy = torch.round(((qs[:, 0] + 1) * H - 1) / 2)
                ix = torch.round(((qs[:, 1] + 1) * W - 1) / 2)
                rel = torch.stack(((q[:, 0] - ((-1 + 1 / H) + (2 / H) * iy)) * H,
                                   (q[:, 1] - ((-1 + 1 / W) + (2 / W) * ix)) * W), -1)
                outs.append(model.plain_decode(q_feat, rel, cell.expand(q.shape[0], 2)))
                areas.append((rel[:, 0] * rel[:, 1]).abs() + ensemble.AREA_EPS)
        if len(outs) == 4:
            total = sum(areas)
            pred = sum(o * (areas[3 - k] / total)[:, None] for k, o in enumerate(outs))
        else:
            pred = outs[0]
        if model.residual:
            inp = latent.source(0, H, 0, W)[None]
            grid = q.flip(-1)[None, None]
            pred = pred + F.grid_sample(inp, grid, mode="bilinear", padding_mode="border",
                                        align_corners=False)[0, :, 0].t()
        preds.append(pred)
    rgb = (torch.cat(preds) * 0.5 + 0.5).clamp(0, 1)
    return rgb.reshape(out_h, out_w, 3).cpu().numpy()
