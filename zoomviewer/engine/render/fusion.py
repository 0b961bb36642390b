"""Multi-view fusion (the geometric self-ensemble, docs/LIIF.md section 7): a region
rendered from each of the photo's dihedral views and averaged.

A view is the photo transposed or not, then flipped along x and/or y. For each view the
region and the output size are carried into that view's frame so that every display
pixel centre lands on the same point of the photo (flips: x -> W - x - w; the transpose
swaps x with y, w with h and the output's width with its height), the view's own Latent
renders it with plain render_region, and the result is carried back: the view's render.
The fused picture is the mean of the view renders in linear float, before any
quantisation. Views 1, 2, 4 and 8 are the first entries of VIEWS: each count is a group
(identity; and flip x; the flips; all eight), so the fused picture commutes with every
view it averages over. (A view here is the photo turned or flipped, not a geometry.View.)

The viewer fuses a small region of a big photo (deep zoom): render_fused_crop encodes,
for each view but the identity, only the crop of the photo the region reads, with the
encoder's halo around it, in one encoder run (codes inside that halo equal the whole
photo's, as a latent tile's do).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import NamedTuple

import numpy as np

from ..latent import Latent
from .coords import Region, check_region
from .region import codes_read, render_region


class View(NamedTuple):
    """Transpose first (rows become columns), then flip the columns and/or the rows."""
    transpose: bool
    flip_x: bool
    flip_y: bool


_VIEWS = tuple(View(t, fx, fy) for t in (False, True) for fy in (False, True) for fx in (False, True))
VIEWS = ("identity", "flip x", "flip y", "rotate 180",
         "transpose", "transpose, flip x", "transpose, flip y", "transpose, rotate 180")
VIEW_COUNTS = (1, 2, 4, 8)


def check_views(views: int) -> int:
    """`views` as an int, or a ValueError unless it is 1, 2, 4 or 8."""
    if views not in VIEW_COUNTS:
        raise ValueError(f"views must be one of {', '.join(map(str, VIEW_COUNTS))}, got {views!r}")
    return int(views)


def view_image(image: np.ndarray, k: int) -> np.ndarray:
    """The photo (H x W x C) as view k sees it: a numpy view, not a copy (Latent.source
    copies each crop it encodes contiguous)."""
    view = _VIEWS[k]
    if view.transpose:
        image = image.transpose(1, 0, 2)
    if view.flip_x:
        image = image[:, ::-1]
    if view.flip_y:
        image = image[::-1]
    return image


def view_region(k: int, region: Region, out_size: tuple[int, int],
                view_size: tuple[int, int]) -> tuple[tuple[float, float, float, float], tuple[int, int]]:
    """(region, out_size) in view k's frame, whose photo is view_size = (W, H) (the view's
    own size: transposed views swap the photo's): pixel (i, j) of the photo-frame render
    is pixel (i', j') of the view's render at the same source point, with (i', j') what
    view_output maps back."""
    view = _VIEWS[k]
    x, y, w, h = (float(v) for v in region)
    out_w, out_h = int(out_size[0]), int(out_size[1])
    if view.transpose:
        x, y, w, h, out_w, out_h = y, x, h, w, out_h, out_w
    if view.flip_x:
        x = view_size[0] - x - w
    if view.flip_y:
        y = view_size[1] - y - h
    return (x, y, w, h), (out_w, out_h)


def view_output(k: int, picture: np.ndarray) -> np.ndarray:
    """A render in view k's frame (H' x W' x C) carried back to the photo's frame."""
    view = _VIEWS[k]
    if view.flip_y:
        picture = picture[::-1]
    if view.flip_x:
        picture = picture[:, ::-1]
    if view.transpose:
        picture = picture.transpose(1, 0, 2)
    return picture


def view_latents(model, image: np.ndarray, device=None, views: int = 8, *, identity: Latent | None = None,
                 **latent_kwargs) -> list[Latent]:
    """One Latent per view (VIEWS[:views]) of `image` (float32 HxWx3, referenced, not
    copied), each encoding only the tiles a render asks of it. `identity`, when given,
    is the photo's own Latent (the viewer's, with what it has encoded) and stands for
    the first view; `latent_kwargs` go to the others' Latent()."""
    views = check_views(views)
    first = identity if identity is not None else Latent(model, image, device, **latent_kwargs)
    device = first.device
    return [first] + [Latent(model, view_image(image, k), device, **latent_kwargs) for k in range(1, views)]


def render_view(latent: Latent, k: int, region: Region, out_size: tuple[int, int],
                  **render_kwargs) -> np.ndarray:
    """View k's render: render_region of the view's Latent (`latent`, made of
    view_image(photo, k)) at the region carried into its frame, carried back to the
    photo's frame -> float32 HxWx3 as render_region returns it. A `cell` (height, width)
    among render_kwargs is swapped for the transposed views."""
    if k == 0:
        return render_region(latent, region, out_size, **render_kwargs)
    check_region(region, out_size)
    vregion, vsize = view_region(k, region, out_size, (latent.width, latent.height))
    cell = render_kwargs.get("cell")
    if cell is not None and _VIEWS[k].transpose:
        render_kwargs = {**render_kwargs, "cell": (cell[1], cell[0])}
    return view_output(k, render_region(latent, vregion, vsize, **render_kwargs))


def view_renders(latents: list[Latent], region: Region, out_size: tuple[int, int],
            progress: Callable[[float], None] | None = None, **render_kwargs) -> Iterator[np.ndarray]:
    """Each view's render in turn (latents[k] is view k's Latent), `progress` told the
    fraction of all of them done."""
    n = check_views(len(latents))
    for k, latent in enumerate(latents):
        told = None if progress is None else (lambda f, k=k: progress((k + f) / n))
        yield render_view(latent, k, region, out_size, progress=told, **render_kwargs)


def render_fused(latents: list[Latent], region: Region, out_size: tuple[int, int], *,
                 progress: Callable[[float], None] | None = None, **render_kwargs) -> np.ndarray:
    """The mean of the view renders -> float32 HxWx3 in [0, 1]; latents as view_latents
    makes them (1, 2, 4 or 8). One view is render_region itself. `cancel` and the other
    render_region options pass through; `progress` is over all views."""
    mean = Mean()
    for picture in view_renders(latents, region, out_size, progress, **render_kwargs):
        mean.add(picture)
    return mean.value()


def fusion_crop(latent: Latent, region: Region, out_size: tuple[int, int]) -> tuple[int, int, int, int]:
    """(y0, y1, x0, x1): the part of the photo whose encoding renders `region` exactly:
    the codes it reads and the encoder's halo around them, within the photo."""
    y0, y1, x0, x1 = codes_read(latent, region, out_size, keep_table=False)
    r = latent.halo
    return max(y0 - r, 0), min(y1 + r, latent.height), max(x0 - r, 0), min(x1 + r, latent.width)


def render_fused_crop(latent: Latent, region: Region, out_size: tuple[int, int], views: int = 8, *,
                      progress: Callable[[float], None] | None = None, **render_kwargs) -> np.ndarray:
    """render_fused of `region` with `latent` (the photo's own, with what it has encoded)
    as the identity view, and for every other view a Latent of just fusion_crop's part of
    the photo, encoded in one run -> float32 HxWx3. `cancel` and the other render_region
    options pass through; `progress` is over all views."""
    views = check_views(views)
    y0, y1, x0, x1 = fusion_crop(latent, region, out_size)
    crop = latent.image[y0:y1, x0:x1]
    side = max(y1 - y0, x1 - x0)
    latents = [latent] + [Latent(latent.model, view_image(crop, k), latent.device, tile=side, keep_codes=False)
                          for k in range(1, views)]
    inside = (region[0] - x0, region[1] - y0, region[2], region[3])
    mean = Mean()
    for k, view_latent in enumerate(latents):
        told = None if progress is None else (lambda f, k=k: progress((k + f) / views))
        mean.add(render_view(view_latent, k, region if k == 0 else inside, out_size, progress=told, **render_kwargs))
    return mean.value()


class Mean:
    """The running mean of view renders: float64 sums, so that it does not depend on the order
    the views come in (to float32); a single one is returned unchanged."""

    def __init__(self) -> None:
        self.total, self.count = None, 0

    def add(self, picture: np.ndarray) -> None:
        self.total = picture if self.total is None else self.total + picture.astype(np.float64)
        self.count += 1

    def value(self) -> np.ndarray:
        if self.count == 1:
            return self.total
        return (self.total / self.count).astype(np.float32)
