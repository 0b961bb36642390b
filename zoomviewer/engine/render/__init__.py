"""Viewport rendering: the one place that turns a region of the photo into queries.

Pixel (i, j) of a W x H render of region (x, y, w, h) is the query at source point
(x + (j + 1/2) w/W, y + (i + 1/2) h/H) with cell (h/H, w/W) source pixels. Rows and
columns are separable, so code indices and rel_coords are computed per row and per
column; the code table (the decoder's per-code values, docs/LIIF.md sections 1, 5 and 6)
is computed once for the codes the region touches, and the queries read it.

  coords.py        the region, its check, the query coordinates and the decoder's cell
  region.py        render_region: planning (members, block of codes, bands) and execution
  torch_decode.py  a band through torch ops: codes read as strided views of the table
  fused.py         a band through the fused C kernel (model/native.py)
  residual.py      the residual option's bilinear base
  fusion.py        multi-view fusion (the geometric self-ensemble): render_region of each
                   flipped / transposed view of the photo, carried back and averaged
  sparse.py        Faster Deep Zoom: render_region on every step-th display pixel, linear
                   in between (off unless asked for; never exports)
  reference.py     render_region_reference, the reference code's method (whole latent
                   unfolded per chunk, first layer per query): the baseline for tests and
                   the bench
"""

from __future__ import annotations

from ..latent import Latent
from .coords import Region
from .fusion import VIEW_COUNTS, VIEWS, render_fused, render_fused_crop, view_latents
from .reference import render_region_reference
from .region import Cancelled, codes_read, render_region, render_workers
from .sparse import deep_zoom_step, render_sparse

__all__ = ["Cancelled", "Latent", "Region", "render_region", "render_sparse", "render_region_reference",
           "deep_zoom_step", "render_workers", "codes_read", "render_fused", "render_fused_crop", "view_latents", "VIEWS",
           "VIEW_COUNTS"]
