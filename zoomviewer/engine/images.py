"""Reading photo files: pixels as float32 HxWx3 in [0, 1] plus metadata.

load() decodes any file Pillow can read into an upright RGB float array (EXIF orientation
applied, 16-bit precision kept, alpha composited on grey, CMYK converted), keeping the
photo's own colour space and ICC profile; to_srgb() converts for display. read_size()
reads the upright size from the header only. Every failure a person can cause (bad path,
damaged file, huge image) is an ImageError with one sentence. Writing lives in saving.py;
save is imported here too, so that one import gives the whole photo file API.
Pillow and numpy only: no torch, no Qt.
"""

from __future__ import annotations

import functools
import io
import os
import sys
import threading
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import numpy as np
from PIL import Image, ImageCms, UnidentifiedImageError

from .photo import ORIENTATION_TAG, ImageError, Photo, PhotoMetadata, clean_exif, quantise, valid_dpi
from .saving import save

__all__ = ["ImageError", "PhotoMetadata", "Photo", "load", "save", "read_size", "to_srgb"]

# Truncated files must be refused at load time, not shown half grey.
Image.LOAD_TRUNCATED_IMAGES = False

GREY_FOR_TRANSPARENCY = 0.5

# Pillow decodes 16-bit colour to 8 bits through these raw modes. Decoding the same data a
# second time through the opposite byte order yields the other byte, so two decodes give
# full 16-bit precision while Pillow's C code still does the unfiltering/decompression.
# (libtiff hands over samples in native order, ";16N".)
_NOT_NATIVE = "B" if sys.byteorder == "little" else "L"
_OTHER_BYTE_RAWMODE = {
    f"{mode};16{order}": f"{mode};16{other}"
    for mode in ("RGB", "RGBA", "RGBX")
    for order, other in (("B", "L"), ("L", "B"), ("N", _NOT_NATIVE))
}


# Pillow's bomb limit is a process global; loads hold this lock while they set it to theirs.
_PILLOW_LIMIT_LOCK = threading.Lock()


def load(path, max_pixels: int = 250_000_000) -> Photo:
    """Decode a photo fully; raise ImageError (one sentence) for anything unusable.

    16-bit RGB(A) PNG/TIFF and 16-bit grey keep full precision; 16-bit grey + alpha PNG is
    read at 8-bit precision (Pillow has no way to reach its low bytes).
    """
    path = Path(path)
    with _opened(path, max_pixels) as im:
        notes: list[str] = []
        source_mode, source_format = im.mode, im.format or "unknown"
        rawmode = _tile_rawmode(im)  # how Pillow will unpack samples; gone after load()
        im.load()  # full decode now, so truncation is found here and not while viewing
        icc, bit_depth, ints, maxval = _decode_pixels(path, im, rawmode, notes)
        exif_raw, orientation = _read_exif(im, notes)
        dpi = valid_dpi(im.info.get("dpi"))
        if _is_animated(im):
            notes.append("animated: showing the first frame")
        im.close()  # Pillow's decoded copy (4 bytes a pixel) is not needed past this point
    pixels = _to_rgb(_apply_orientation(ints, orientation), maxval, notes)
    meta = PhotoMetadata(icc_profile=icc, exif=exif_raw, dpi=dpi, bit_depth=bit_depth,
                         mode=source_mode, notes=notes, source_format=source_format)
    return Photo(pixels=pixels, metadata=meta, path=path)


def read_size(path) -> tuple[int, int]:
    """(width, height) of the upright photo, read from the header without decoding pixels."""
    path = Path(path)
    with _opened(path, max_pixels=2**62) as im:
        width, height = im.size
        orientation = _header_orientation(im)
    return (height, width) if orientation in (5, 6, 7, 8) else (width, height)


def _header_orientation(im) -> int:
    try:
        if im.format == "PNG":  # PNG's getexif() decodes the whole image to look past IDAT
            exif = Image.Exif()
            exif.load(im.info.get("exif", b""))
        else:
            exif = im.getexif()
        return exif.get(ORIENTATION_TAG, 1)
    except Exception:  # a damaged EXIF block does not make the size unreadable
        return 1


def to_srgb(photo: Photo) -> np.ndarray:
    """The photo's pixels converted to sRGB for display (the same array when already sRGB).

    Pillow's colour management works on 8-bit RGB, so the result has 8-bit steps; that is
    what a display shows anyway. If the profile cannot be used the pixels are returned as is.
    """
    icc = photo.metadata.icc_profile
    if not icc:
        return photo.pixels
    try:
        transform = _transform_to_srgb(icc, "RGB")
        rgb8 = Image.fromarray(quantise(photo.pixels, 8))
        out = np.asarray(ImageCms.applyTransform(rgb8, transform), dtype=np.float32)
    except (ImageCms.PyCMSError, OSError, ValueError):
        return photo.pixels
    return np.ascontiguousarray(out / np.float32(255))


@contextmanager
def _opened(path: Path, max_pixels: int) -> Iterator[Image.Image]:
    """Open `path` with Pillow under our pixel limit; every failure becomes an ImageError."""
    name = path.name or str(path)

    def refuse(why: str) -> ImageError:
        return ImageError(f"Cannot open '{name}': {why}.")

    try:
        file = open(path, "rb")
    except FileNotFoundError:
        raise refuse("the file does not exist") from None
    except IsADirectoryError:
        raise refuse("it is a folder, not an image file") from None
    except PermissionError:
        raise refuse("it is a folder, not an image file" if path.is_dir()
                     else "you do not have permission to read it") from None
    except OSError as error:
        raise refuse(f"the file cannot be read ({error.strerror or error})") from None
    with file, _PILLOW_LIMIT_LOCK, warnings.catch_warnings():
        if os.fstat(file.fileno()).st_size == 0:
            raise refuse("the file is empty (0 bytes)")
        # Our max_pixels rules, not Pillow's default (which would refuse 180-250 MP photos);
        # Pillow's checks still guard frames it discovers while decoding.
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        previous_limit = Image.MAX_IMAGE_PIXELS
        limit = f"the limit of {max_pixels / 1e6:g} megapixels"
        try:
            Image.MAX_IMAGE_PIXELS = None  # reading the header allocates nothing; we check next
            try:
                im = Image.open(file)
            except UnidentifiedImageError:
                raise refuse("it is not an image in a format that can be read") from None
            width, height = im.size
            if width <= 0 or height <= 0:
                raise refuse(f"the image declares no pixels ({width} x {height})")
            if width * height > max_pixels:
                raise refuse(f"it is {width} x {height} pixels, more than {limit}")
            Image.MAX_IMAGE_PIXELS = max_pixels
            yield im
        except ImageError:
            raise
        except (Image.DecompressionBombError, Image.DecompressionBombWarning):
            raise refuse(f"it declares more pixels than {limit}") from None
        except MemoryError:
            raise refuse("there is not enough memory to decode it") from None
        except Exception as error:  # Pillow's decoders raise many types for damaged data
            detail = str(error) or type(error).__name__
            # "truncated (155 bytes not processed)" inside our own brackets would close twice
            detail = detail.replace(" (", ", ").replace("(", "").replace(")", "")
            raise refuse(f"the image data is damaged or incomplete ({detail})") from None
        finally:
            Image.MAX_IMAGE_PIXELS = previous_limit


def _decode_pixels(path, im, rawmode, notes):
    """Return (icc, bit_depth, integer HxWxC array, max value) for the loaded image.

    C is 1 (grey), 2 (grey + alpha), 3 (RGB) or 4 (RGBA); colours stay in the space of the
    returned icc profile (None = sRGB).
    """
    icc = im.info.get("icc_profile") or None
    space = _profile_space(icc) if icc else None
    if icc and space is None:
        notes.append("its ICC profile is unreadable and was ignored")
        icc = None

    if im.mode in ("I;16", "I;16L", "I;16B", "I;16N", "I", "F"):
        if icc and space != "RGB":
            notes.append("its grey ICC profile cannot be applied at 16 bits and was ignored")
            icc = None
        values = np.asarray(im)
        if im.mode == "F":
            values = np.nan_to_num(values, nan=0.0, posinf=1.0, neginf=0.0) * 65535.0
        values = np.clip(values, 0, 65535).astype(np.uint16)
        return icc, 16, values[..., None], 65535

    if rawmode in _OTHER_BYTE_RAWMODE:
        high = np.array(im)
        low = _decode_other_byte(path, rawmode, im.mode)
        if icc and space != "RGB":
            notes.append("its ICC profile does not describe RGB colours and was ignored")
            icc = None
        if low is None:
            notes.append("16-bit samples were read at 8-bit precision")
            return icc, 16, high, 255
        return icc, 16, (high.astype(np.uint16) << 8) | low, 65535

    if im.mode == "CMYK":
        im = _cmyk_to_srgb(im, icc if space == "CMYK" else None, notes)
        icc = None
    elif icc and space == "GRAY" and im.mode in ("L", "LA"):
        im = _grey_to_srgb(im, icc, notes)
        icc = None
    elif icc and space != "RGB":
        notes.append(f"its {space} ICC profile does not fit the image's colours and was ignored")
        icc = None

    if im.has_transparency_data:
        target = "LA" if im.mode in ("LA", "La") else "RGBA"
    else:
        target = "L" if im.mode in ("1", "L") else "RGB"
    if im.mode != target:
        im = im.convert(target)
    values = np.asarray(im)
    return icc, 8, values.reshape(values.shape[0], values.shape[1], -1), 255


def _is_animated(im) -> bool:
    try:  # finding a second frame means reading on; damage there does not spoil frame one
        return bool(getattr(im, "is_animated", False))
    except Exception:
        return False


def _tile_rawmode(im) -> str | None:
    if not im.tile:
        return None
    args = im.tile[0].args
    rawmode = args[0] if isinstance(args, tuple) and args else args
    return rawmode if isinstance(rawmode, str) else None


def _decode_other_byte(path: Path, rawmode: str, mode: str) -> np.ndarray | None:
    """Decode the file again so Pillow keeps the other byte of each 16-bit sample."""
    other = _OTHER_BYTE_RAWMODE[rawmode]
    try:
        with Image.open(path) as again:
            again.tile = [tile._replace(args=_with_rawmode(tile.args, other)) for tile in again.tile]
            again.load()
            return np.array(again) if again.mode == mode else None
    except Exception:  # the first decode worked, so this is Pillow lacking the raw mode
        return None


def _with_rawmode(args, rawmode):
    return (rawmode, *args[1:]) if isinstance(args, tuple) else rawmode


def _profile_space(icc: bytes) -> str | None:
    """'RGB', 'GRAY', 'CMYK', ... for a usable profile, None for an unreadable one."""
    try:
        space = ImageCms.ImageCmsProfile(io.BytesIO(icc)).profile.xcolor_space.strip()
        if space == "RGB":
            _transform_to_srgb(icc, "RGB")  # proves the profile can actually be used
        return space
    except (ImageCms.PyCMSError, OSError, ValueError, TypeError):
        return None


@functools.lru_cache(maxsize=8)
def _transform_to_srgb(icc: bytes, mode: str) -> ImageCms.ImageCmsTransform:
    source = ImageCms.ImageCmsProfile(io.BytesIO(icc))
    return ImageCms.buildTransform(source, ImageCms.createProfile("sRGB"), mode, "RGB")


def _cmyk_to_srgb(im, icc, notes):
    if icc:
        try:
            rgb = ImageCms.applyTransform(im, _transform_to_srgb(icc, "CMYK"))
            notes.append("converted from CMYK to sRGB with its embedded ICC profile")
            return rgb
        except (ImageCms.PyCMSError, OSError, ValueError):
            pass
    notes.append("converted from CMYK without a usable profile (colours are approximate)")
    return im.convert("RGB")


def _grey_to_srgb(im, icc, notes):
    alpha = im.getchannel("A") if im.mode == "LA" else None
    try:
        rgb = ImageCms.applyTransform(im.convert("L"), _transform_to_srgb(icc, "L"))
    except (ImageCms.PyCMSError, OSError, ValueError):
        notes.append("its grey ICC profile could not be applied and was ignored")
        return im
    notes.append("converted from its grey ICC profile to sRGB")
    if alpha is not None:
        rgb.putalpha(alpha)
    return rgb


def _read_exif(im, notes) -> tuple[bytes | None, int]:
    """(cleaned EXIF bytes or None, orientation still to apply)."""
    try:
        exif = im.getexif()
        orientation = exif.get(ORIENTATION_TAG, 1)
        return clean_exif(exif), orientation if orientation in range(1, 9) else 1
    except Exception:  # EXIF parsing is best effort; the pixels are what matters
        notes.append("its EXIF data is damaged and was ignored")
        return None, 1


def _apply_orientation(a: np.ndarray, orientation: int) -> np.ndarray:
    """ImageOps.exif_transpose on an HxWxC array (a view; the caller copies)."""
    if orientation == 2:
        return a[:, ::-1]
    if orientation == 3:
        return a[::-1, ::-1]
    if orientation == 4:
        return a[::-1]
    if orientation == 5:
        return a.swapaxes(0, 1)
    if orientation == 6:
        return np.rot90(a, -1)
    if orientation == 7:
        return a.swapaxes(0, 1)[::-1, ::-1]
    if orientation == 8:
        return np.rot90(a, 1)
    return a


def _to_rgb(ints: np.ndarray, maxval: int, notes: list[str]) -> np.ndarray:
    """HxWxC integers (C = 1..4, 0..maxval) to float32 HxWx3 in [0, 1], C-contiguous:
    alpha composited on grey, grey replicated.

    Converted in strips of rows straight into the result, so that no full-size float
    temporary exists besides it: whole-array arithmetic made a 100 MP RGBA photo need
    over 5 GB to open.
    """
    height, width, channels = ints.shape
    pixels = np.empty((height, width, 3), dtype=np.float32)
    rows = max(1, (8 << 20) // (width * channels * 4))  # about 8 MB of floats per strip
    see_through = False
    for top in range(0, height, rows):
        strip = ints[top:top + rows].astype(np.float32)
        strip /= np.float32(maxval)
        if channels in (2, 4):
            alpha = strip[..., -1:]
            see_through = see_through or float(alpha.min()) < 1.0
            strip = strip[..., :-1] * alpha + np.float32(GREY_FOR_TRANSPARENCY) * (np.float32(1) - alpha)
            np.clip(strip, 0.0, 1.0, out=strip)
        pixels[top:top + rows] = strip  # a grey strip (C = 1) broadcasts to three channels
    if see_through:
        notes.append("transparency composited on grey")
    return pixels
