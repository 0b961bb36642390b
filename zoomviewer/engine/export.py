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
from .render import Cancelled, Latent, Region, render_region

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
                cell_clip: bool = False) -> Iterator[float]:
    """Render `region` (x, y, w, h source px) at out_size (W, H) and write it to `path`."""
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
    for k, (i, j) in enumerate(tiles):
        th, tw = min(tile, out_h - i), min(tile, out_w - j)
        out[i:i + th, j:j + tw] = render_region(latent, (x + j * sx, y + i * sy, tw * sx, th * sy), (tw, th),
                                                cancel=cancel, cell_clip=cell_clip, keep_table=False)
        yield 0.95 * (k + 1) / len(tiles)
    if cancel is not None and cancel():
        raise Cancelled()
    try:
        save(path, out, photo.metadata if photo is not None else None, format=fmt, bits=bits,
             quality=quality, scale_dpi=out_w / w)
    except ImageError as e:
        raise ExportError(str(e)) from None
    yield 1.0
