"""The photos of a folder in the order people expect (natural sort: "img2" before
"img10", case-insensitive), and a photo's neighbours in it, for next / previous photo.
No Qt, no torch."""

from __future__ import annotations

import re
from pathlib import Path

from ..engine.formats import is_photo_name

_DIGITS = re.compile(r"(\d+)")


def natural_key(name: str) -> tuple:
    """Sort key: runs of digits compare as numbers, the rest case-insensitively."""
    return tuple((0, int(part), "") if part.isdigit() else (1, 0, part.casefold())
                 for part in _DIGITS.split(name) if part)


def photos_in(folder: Path) -> list[Path]:
    """The files of `folder` (not its subfolders) that are photos we can read, by name."""
    try:
        entries = [p for p in Path(folder).iterdir() if p.is_file() and is_photo_name(p)]
    except OSError:
        return []
    return sorted(entries, key=lambda p: natural_key(p.name))


def place_in_folder(path: Path) -> tuple[int, int] | None:
    """(1-based position, count) of `path` among its folder's photos, or None."""
    photos = photos_in(Path(path).parent)
    resolved = Path(path).resolve()
    for i, p in enumerate(photos):
        if p.resolve() == resolved:
            return i + 1, len(photos)
    return None


def neighbour(path: Path, step: int) -> Path | None:
    """The photo `step` places after (negative: before) `path` in its folder, or None at
    either end (the folder as it is now: files may have come or gone)."""
    photos = photos_in(Path(path).parent)
    resolved = Path(path).resolve()
    names = [p.resolve() for p in photos]
    if resolved in names:
        i = names.index(resolved) + step
    else:   # the photo itself was removed: go from where it would sort
        keys = [natural_key(p.name) for p in photos]
        i = sum(k < natural_key(Path(path).name) for k in keys) + (step if step < 0 else step - 1)
    return photos[i] if 0 <= i < len(photos) else None
