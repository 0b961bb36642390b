"""Export: render a region of the photo at any size, tile by tile, and write it atomically.

`export_view` is a generator yielding progress in [0, 1]; it never writes the source
photo, and the file appears only when complete (images.save writes a temporary file and
renames it into place), so a cancelled, failed or killed export leaves nothing behind.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

from . import formats
from .images import ImageError, Photo, save
from .render import Cancelled, Latent, Region, codes_read
from .render.fusion import Mean, check_views, view_latents, view_renders

MAX_OUTPUT_PIXELS = 400_000_000


class ExportError(ValueError):
    """An export that cannot be done; the message is one sentence for a person."""


def output_format(path: str | os.PathLike, format: str | None = None) -> str:
    """The Pillow format an export to `path` is written in: `format` (a name or suffix such
    as 'PNG', 'jpg') if given, else the one its file name's suffix stands for."""
    if format:
        fmt = formats.format_named(format)
        if fmt is None:
            raise ExportError(f"cannot export as {format!r}: choose {formats.writable_names()}")
        return fmt
    fmt = formats.write_format(path)
    if fmt is None:
        ext = formats.suffix_of(path)
        raise ExportError(f"{Path(path).name}: unknown file type {ext or '(none)'!r}; "
                          f"use {formats.writable_suffixes_hint()}")
    return fmt


def _same_file(a: Path, b: Path | None) -> bool:
    if b is None:
        return False
    try:
        return a.exists() and b.exists() and os.path.samefile(a, b)
    except OSError:
        return False


def export_view(latent: Latent, photo: Photo | None, region: Region, out_size: tuple[int, int],
                path: str | os.PathLike, *, format: str | None = None, bits: int = 8, quality: int = 95,
                cancel: Callable[[], bool] | None = None, tile: int = 1024,
                cell_clip: bool = False, views: int = 1) -> Iterator[float]:
    """Render `region` (x, y, w, h source px) at out_size (W, H) and write it to `path`.
    With `views` 2, 4 or 8 each tile is the fused render of that many views of the photo
    (render/fusion.py; `latent` is the first), about `views` times the work."""
    views = check_views(views)
    path = Path(path)
    fmt = output_format(path, format)
    out_w, out_h = int(out_size[0]), int(out_size[1])
    if out_w < 1 or out_h < 1 or out_w * out_h > MAX_OUTPUT_PIXELS:
        raise ExportError(f"an export of {out_w}x{out_h} pixels is outside the supported range "
                          f"(1 to {MAX_OUTPUT_PIXELS // 1_000_000} megapixels)")
    if photo is not None and _same_file(path, Path(photo.path)):
        raise ExportError(f"{path.name} is the open photo; export to another file name")
    if path.is_dir():
        raise ExportError(f"{path} is a folder; choose a file name")
    if not path.parent.is_dir():
        raise ExportError(f"the folder {path.parent} does not exist")
    x, y, w, h = (float(v) for v in region)
    out = np.empty((out_h, out_w, 3), dtype=np.float32)
    tiles = [(i, j) for i in range(0, out_h, tile) for j in range(0, out_w, tile)]
    sx, sy = w / out_w, h / out_h
    first = (min(tile, out_w), min(tile, out_h))    # the largest tile
    latents = [latent] if views == 1 else _view_latents(latent, views, (x, y, first[0] * sx, first[1] * sy), first)
    steps = len(tiles) * views
    for k, (i, j) in enumerate(tiles):
        th, tw = min(tile, out_h - i), min(tile, out_w - j)
        mean = Mean()   # render_fused's, with a step told after each view
        part = (x + j * sx, y + i * sy, tw * sx, th * sy)
        for v, picture in enumerate(view_renders(latents, part, (tw, th), cancel=cancel, cell_clip=cell_clip,
                                                 keep_table=False)):
            mean.add(picture)
            yield 0.95 * (k * views + v + 1) / steps
        out[i:i + th, j:j + tw] = mean.value()
    if cancel is not None and cancel():
        raise Cancelled()
    try:
        save(path, out, photo.metadata if photo is not None else None, format=fmt, bits=bits,
             quality=quality, scale_dpi=out_w / w)
    except ImageError as e:
        raise ExportError(str(e)) from None
    yield 1.0


def _view_latents(latent: Latent, views: int, region: Region, size: tuple[int, int]) -> list[Latent]:
    """The views' Latents for an export whose largest tile renders `region` at `size`:
    `latent` first; the others keep no codes (a render reads only the first-layer term)
    and share the budget of `latent`'s tiles, each holding at least the tiles one export
    tile reads and a row and column more (a tile's code table reads its block row by
    row: fewer would encode tiles again within one render)."""
    y0, y1, x0, x1 = codes_read(latent, region, size, keep_table=False)
    t = latent.tile
    need = ((y1 - 1) // t - y0 // t + 2) * ((x1 - 1) // t - x0 // t + 2)
    latents = view_latents(latent.model, latent.image, latent.device, views, identity=latent,
                           tile=latent.tile, keep_codes=False)
    for other in latents[1:]:
        other.budget_bytes = max(latent.budget_bytes // (views - 1), need * other.tile_bytes)
    return latents
