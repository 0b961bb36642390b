"""A photo in memory and what reading and writing photo files share: the Photo and its
metadata, the one error every file problem becomes, and the small conversions both
directions need (pixels to integer levels, a usable DPI, EXIF that says "upright").
numpy and Pillow only.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

ORIENTATION_TAG = 0x0112
EXIF_SUB_IFD = 0x8769
EXIF_PIXEL_WIDTH, EXIF_PIXEL_HEIGHT = 0xA002, 0xA003

# TIFF layout tags and resolution: meaningless (or contradicting the file being written)
# once the EXIF block is carried into another file, so they are dropped from EXIF.
EXIF_TAGS_NOT_CARRIED = {
    254, 255, 256, 257, 258, 259, 262, 266, 273, 277, 278, 279, 280, 281, 282, 283, 284, 296,
    317, 320, 322, 323, 324, 325, 338, 339, 340, 341, 513, 514, 530, 531, 532, 34675,
}


class ImageError(ValueError):
    """One clear sentence naming the file and what is wrong."""


@dataclass
class PhotoMetadata:
    icc_profile: bytes | None = None       # the profile the *returned pixels* are in (None = sRGB)
    exif: bytes | None = None              # orientation reset to 1, thumbnail removed
    dpi: tuple[float, float] | None = None
    bit_depth: int = 8                     # 8 or 16 (source precision)
    mode: str = "RGB"                      # original Pillow mode
    notes: list[str] = field(default_factory=list)
    source_format: str = ""


@dataclass
class Photo:
    pixels: np.ndarray                     # float32 HxWx3 in [0, 1], C-contiguous
    metadata: PhotoMetadata
    path: Path


def quantise(pixels: np.ndarray, bits: int) -> np.ndarray:
    """Float pixels to 8- or 16-bit levels: NaN as 0, clipped to [0, 1], rounded."""
    top = 255 if bits == 8 else 65535
    clipped = np.clip(np.nan_to_num(pixels, nan=0.0), 0.0, 1.0)
    return np.rint(clipped * top).astype(np.uint8 if bits == 8 else np.uint16)


def valid_dpi(dpi) -> tuple[float, float] | None:
    """(x, y) dots per inch if `dpi` holds two finite positive numbers, else None."""
    try:
        x, y = float(dpi[0]), float(dpi[1])
    except (TypeError, ValueError, IndexError):
        return None
    return (x, y) if all(np.isfinite(v) and v > 0 for v in (x, y)) else None


def clean_exif(exif: Image.Exif, size: tuple[int, int] | None = None) -> bytes | None:
    """EXIF bytes that say 'upright', without thumbnail or another file's layout tags;
    with `size` (W, H), the pixel size recorded in the Exif sub-IFD is set to it."""
    for tag in EXIF_TAGS_NOT_CARRIED & set(exif):
        del exif[tag]
    if ORIENTATION_TAG in exif:
        exif[ORIENTATION_TAG] = 1
    if size is not None and EXIF_SUB_IFD in exif:
        sub_ifd = exif.get_ifd(EXIF_SUB_IFD)
        for tag, value in ((EXIF_PIXEL_WIDTH, size[0]), (EXIF_PIXEL_HEIGHT, size[1])):
            if tag in sub_ifd:
                sub_ifd[tag] = value
    # Exif.tobytes() writes IFD0 and its sub-IFDs but not IFD1, where the thumbnail lives.
    return exif.tobytes() if len(exif) else None
