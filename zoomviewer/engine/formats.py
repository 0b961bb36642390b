"""The photo file formats zoomviewer knows: which file name suffixes it opens, which it
writes, with which Pillow encoder and at which channel depths.

This table is the only list of suffixes in the program: folder scans (training and
benchmark photos), the open and export dialogs, the export's choice of format and the
writer all read it, so a suffix accepted in one place is accepted in all of them.
Standard library only.
"""

from __future__ import annotations

import os
from dataclasses import dataclass


@dataclass(frozen=True)
class FileFormat:
    name: str                        # Pillow's name for the format, also what people are shown
    suffixes: tuple[str, ...]        # lower case with the dot; a new file gets the first
    write_bits: tuple[int, ...] = ()  # channel depths we write; empty: read only


# .jpe is an old but registered JPEG suffix: a file named so opens, so it can be written too.
FILE_FORMATS = (
    FileFormat("PNG", (".png",), (8, 16)),
    FileFormat("TIFF", (".tif", ".tiff"), (8, 16)),
    FileFormat("JPEG", (".jpg", ".jpeg", ".jpe"), (8,)),
    FileFormat("WEBP", (".webp",)),
    FileFormat("BMP", (".bmp",)),
)
WRITABLE = tuple(f for f in FILE_FORMATS if f.write_bits)

READ_SUFFIXES = frozenset(suffix for f in FILE_FORMATS for suffix in f.suffixes)
# suffix -> Pillow format name, for the formats we write
WRITE_FORMATS = {suffix: f.name for f in WRITABLE for suffix in f.suffixes}


def suffix_of(path: str | os.PathLike) -> str:
    """The file name's last suffix in lower case ('.jpg' for 'IMG.JPG'), '' if none."""
    return os.path.splitext(os.fspath(path))[1].lower()


def is_photo_name(path: str | os.PathLike) -> bool:
    """Whether a folder scan should take this file as a photo, by its name."""
    return suffix_of(path) in READ_SUFFIXES


def write_format(path: str | os.PathLike) -> str | None:
    """The Pillow format a file of this name is written in; None if we do not write it."""
    return WRITE_FORMATS.get(suffix_of(path))


def format_named(text: str) -> str | None:
    """A writable format given by name or suffix, in any case ('jpg', 'TIF', '.jpeg',
    'png'): its Pillow name; None if it is not one we write."""
    wanted = text.strip().lower().lstrip(".")
    for f in WRITABLE:
        if wanted == f.name.lower() or f".{wanted}" in f.suffixes:
            return f.name
    return None


def find(name: str) -> FileFormat:
    """The format of this Pillow name ('PNG', 'TIFF', 'JPEG', ...)."""
    for f in FILE_FORMATS:
        if f.name == name:
            return f
    raise KeyError(name)


def _one_of(words: list[str]) -> str:
    return ", ".join(words[:-1]) + " or " + words[-1] if len(words) > 1 else words[0]


def writable_names() -> str:
    """'PNG, TIFF or JPEG', for messages."""
    return _one_of([f.name for f in WRITABLE])


def writable_suffixes_hint() -> str:
    """'.png, .tif or .jpg' (each writable format's own suffix), for messages."""
    return _one_of([f.suffixes[0] for f in WRITABLE])


def _patterns(formats) -> str:
    return " ".join(f"*{suffix}" for f in formats for suffix in f.suffixes)


def open_dialog_filter() -> str:
    """The name filter of the 'Open photo' dialog: every suffix we open, then all files."""
    return f"Images ({_patterns(FILE_FORMATS)});;All files (*)"


def save_dialog_filter() -> str:
    """The name filter of the 'Export to' dialog: every suffix we write."""
    return f"Images ({_patterns(WRITABLE)})"
