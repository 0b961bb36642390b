"""Reading and writing photo files: pixels as float32 HxWx3 in [0, 1] plus metadata.

load() decodes any file Pillow can read into an upright RGB float array (EXIF orientation
applied, 16-bit precision kept, alpha composited on grey, CMYK converted), keeping the
photo's own colour space and ICC profile; to_srgb() converts for display. save() writes
PNG (8/16-bit), TIFF (8/16-bit) or JPEG atomically, carrying ICC profile, DPI and EXIF.
read_size() reads the upright size from the header only. Every failure a person can cause
(bad path, damaged file, huge image, unwritable folder) is an ImageError with one sentence.
Pillow and numpy only: no torch, no Qt.
"""

from __future__ import annotations

import fractions
import functools
import io
import os
import secrets
import struct
import sys
import threading
import warnings
import zlib
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Iterator

import numpy as np
from PIL import Image, ImageCms, UnidentifiedImageError

__all__ = ["ImageError", "PhotoMetadata", "Photo", "load", "save", "read_size", "to_srgb"]

# Truncated files must be refused at load time, not shown half grey.
Image.LOAD_TRUNCATED_IMAGES = False

ORIENTATION_TAG = 0x0112
GREY_FOR_TRANSPARENCY = 0.5
SAVE_FORMATS = {".png": "PNG", ".tif": "TIFF", ".tiff": "TIFF", ".jpg": "JPEG", ".jpeg": "JPEG", ".jpe": "JPEG"}

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

# TIFF layout tags and resolution: meaningless (or contradicting the file being written)
# once the EXIF block is carried into another file, so they are dropped from EXIF.
_EXIF_TAGS_NOT_CARRIED = {
    254, 255, 256, 257, 258, 259, 262, 266, 273, 277, 278, 279, 280, 281, 282, 283, 284, 296,
    317, 320, 322, 323, 324, 325, 338, 339, 340, 341, 513, 514, 530, 531, 532, 34675,
}

# Pillow's bomb limit is a process global; loads hold this lock while they set it to theirs.
_PILLOW_LIMIT_LOCK = threading.Lock()


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


# ---------------------------------------------------------------------------------- reading

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
        dpi = _valid_dpi(im.info.get("dpi"))
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
        rgb8 = Image.fromarray(_quantise(photo.pixels, 8))
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
        return _clean_exif(exif), orientation if orientation in range(1, 9) else 1
    except Exception:  # EXIF parsing is best effort; the pixels are what matters
        notes.append("its EXIF data is damaged and was ignored")
        return None, 1


def _clean_exif(exif: Image.Exif, size: tuple[int, int] | None = None) -> bytes | None:
    """EXIF bytes that say 'upright', without thumbnail or another file's layout tags."""
    for tag in _EXIF_TAGS_NOT_CARRIED & set(exif):
        del exif[tag]
    if ORIENTATION_TAG in exif:
        exif[ORIENTATION_TAG] = 1
    if size is not None and 0x8769 in exif:   # the Exif sub-IFD records the pixel size
        sub_ifd = exif.get_ifd(0x8769)
        for tag, value in ((0xA002, size[0]), (0xA003, size[1])):
            if tag in sub_ifd:
                sub_ifd[tag] = value
    # Exif.tobytes() writes IFD0 and its sub-IFDs but not IFD1, where the thumbnail lives.
    return exif.tobytes() if len(exif) else None


def _valid_dpi(dpi) -> tuple[float, float] | None:
    try:
        x, y = float(dpi[0]), float(dpi[1])
    except (TypeError, ValueError, IndexError):
        return None
    return (x, y) if all(np.isfinite(v) and v > 0 for v in (x, y)) else None


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


# ---------------------------------------------------------------------------------- writing

def save(path, pixels: np.ndarray, metadata: PhotoMetadata | None = None, *, format: str | None = None,
         bits: int = 8, quality: int = 95, scale_dpi: float = 1.0) -> None:
    """Write float [0, 1] HxWx3 pixels atomically as PNG, TIFF or JPEG.

    The file appears complete or not at all: it is written to a hidden temporary file in the
    same folder, synced and renamed over the target; on failure any existing target is left
    untouched. ICC profile, DPI (times scale_dpi) and EXIF are carried where the format allows.
    16-bit PNG and TIFF come from our own small writers (Pillow cannot write 48-bit RGB); the
    16-bit TIFF writer carries ICC and DPI but not EXIF. 8-bit TIFF is uncompressed.
    """
    path = Path(path)
    name = path.name or str(path)
    fmt = (format or SAVE_FORMATS.get(path.suffix.lower(), "")).upper()
    fmt = {"JPG": "JPEG", "TIF": "TIFF"}.get(fmt, fmt)
    if fmt not in ("PNG", "TIFF", "JPEG"):
        raise ImageError(f"Cannot save '{name}': choose a .png, .tif or .jpg file name.")
    if bits not in (8, 16) or (fmt == "JPEG" and bits != 8):
        raise ImageError(f"Cannot save '{name}': {fmt} cannot store {bits}-bit channels.")
    if not 1 <= quality <= 100:
        raise ImageError(f"Cannot save '{name}': JPEG quality must be between 1 and 100.")
    pixels = np.asarray(pixels)
    if pixels.ndim != 3 or pixels.shape[2] != 3 or 0 in pixels.shape:
        raise ImageError(f"Cannot save '{name}': expected an HxWx3 picture, got shape {pixels.shape}.")
    if not np.issubdtype(pixels.dtype, np.floating):
        raise ImageError(f"Cannot save '{name}': expected float pixels in [0, 1], got {pixels.dtype}.")

    meta = metadata or PhotoMetadata()
    height, width = pixels.shape[:2]
    dpi = _valid_dpi(meta.dpi)
    if dpi is not None:
        dpi = (dpi[0] * scale_dpi, dpi[1] * scale_dpi)
    exif = _exif_for_export(meta.exif, (width, height))
    if fmt == "JPEG" and exif and len(exif) > 65000:
        exif = None  # a JPEG APP1 segment cannot hold more
    values = _quantise(pixels, bits)

    def write(file: BinaryIO) -> None:
        if bits == 16 and fmt == "PNG":
            _write_png16(file, values, meta.icc_profile, dpi, exif)
        elif bits == 16:
            _write_tiff16(file, values, meta.icc_profile, dpi)
        else:
            options = {"icc_profile": meta.icc_profile, "exif": exif, "dpi": dpi}
            if fmt == "JPEG":
                options.update(quality=quality, dpi=dpi and (round(dpi[0]), round(dpi[1])))
            # 8-bit TIFF stays uncompressed: Pillow's libtiff (compressing) path cannot
            # write EXIF sub-IFDs, and uncompressed TIFF is what every reader accepts.
            Image.fromarray(values).save(file, format=fmt,
                                          **{k: v for k, v in options.items() if v is not None})

    _write_atomically(path, write)


def _quantise(pixels: np.ndarray, bits: int) -> np.ndarray:
    top = 255 if bits == 8 else 65535
    clipped = np.clip(np.nan_to_num(pixels, nan=0.0), 0.0, 1.0)
    return np.rint(clipped * top).astype(np.uint8 if bits == 8 else np.uint16)


def _exif_for_export(raw: bytes | None, size: tuple[int, int]) -> bytes | None:
    if not raw:
        return None
    try:
        exif = Image.Exif()
        exif.load(raw)
        return _clean_exif(exif, size)
    except Exception:  # damaged EXIF is dropped rather than failing the export
        return None


def _write_atomically(path: Path, write) -> None:
    name = path.name or str(path)
    folder = path.parent
    temp = folder / f".{name}.{secrets.token_hex(4)}.part"
    try:
        # os.open with 0o666 lets the umask decide permissions, as for any new file.
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
    except OSError as error:
        raise ImageError(f"Cannot save '{name}': {_why_not_writable(error, folder)}.") from None
    try:
        with os.fdopen(fd, "wb") as file:
            write(file)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temp, path)
    except BaseException as error:
        try:
            os.unlink(temp)
        except OSError:
            pass
        if not isinstance(error, Exception):
            raise
        if isinstance(error, OSError):
            why = _why_not_writable(error, folder)
        else:
            why = f"the encoder failed ({error or type(error).__name__})"
        raise ImageError(f"Cannot save '{name}': {why}.") from None
    _sync_folder(folder)


def _why_not_writable(error: OSError, folder: Path) -> str:
    import errno
    if error.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return f"the folder '{folder}' is not writable"
    if error.errno == errno.ENOENT:
        return f"the folder '{folder}' does not exist"
    if error.errno == errno.ENOSPC:
        return "the disk is full"
    return f"writing failed ({error.strerror or error})"


def _sync_folder(folder: Path) -> None:
    """Make the rename itself durable; not possible everywhere, and harmless to skip."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _png_chunk(file: BinaryIO, kind: bytes, data: bytes) -> None:
    file.write(struct.pack(">I", len(data)) + kind + data)
    file.write(struct.pack(">I", zlib.crc32(kind + data)))


def _write_png16(file: BinaryIO, rgb16: np.ndarray, icc, dpi, exif) -> None:
    """48-bit RGB PNG, which Pillow cannot write: IHDR, iCCP, pHYs, eXIf, IDAT, IEND."""
    height, width = rgb16.shape[:2]
    file.write(b"\x89PNG\r\n\x1a\n")
    _png_chunk(file, b"IHDR", struct.pack(">IIBBBBB", width, height, 16, 2, 0, 0, 0))
    if icc:
        _png_chunk(file, b"iCCP", b"ICC Profile\x00\x00" + zlib.compress(icc))
    if dpi:
        per_metre = [round(d / 0.0254) for d in dpi]
        _png_chunk(file, b"pHYs", struct.pack(">IIB", *per_metre, 1))
    if exif:
        _png_chunk(file, b"eXIf", exif[6:] if exif.startswith(b"Exif\x00\x00") else exif)
    compressor = zlib.compressobj(6)
    row_bytes = width * 6
    previous = np.zeros(row_bytes, np.uint8)
    rows_per_block = max(1, (4 << 20) // row_bytes)
    for top in range(0, height, rows_per_block):
        rows = rgb16[top:top + rows_per_block].astype(">u2").view(np.uint8).reshape(-1, row_bytes)
        above = np.vstack([previous[None], rows[:-1]])
        up = rows - above                      # filter 2 (Up), wraps mod 256 as PNG wants
        sub = rows.copy()                      # filter 1 (Sub): difference to the pixel left
        sub[:, 6:] -= rows[:, :-6]
        # Per row, the filter with the smaller sum of |signed residual| (libpng's heuristic).
        cost_up = np.abs(up.view(np.int8).astype(np.int32)).sum(axis=1)
        cost_sub = np.abs(sub.view(np.int8).astype(np.int32)).sum(axis=1)
        use_sub = cost_sub < cost_up
        filtered = np.where(use_sub[:, None], sub, up)
        kinds = np.where(use_sub, 1, 2).astype(np.uint8)
        data = compressor.compress(np.hstack([kinds[:, None], filtered]).tobytes())
        if data:
            _png_chunk(file, b"IDAT", data)
        previous = rows[-1].copy()
    _png_chunk(file, b"IDAT", compressor.flush())
    _png_chunk(file, b"IEND", b"")


def _write_tiff16(file: BinaryIO, rgb16: np.ndarray, icc, dpi, compress: bool = True) -> None:
    """Baseline little-endian 48-bit RGB TIFF: deflate + predictor strips, ICC and resolution."""
    height, width = rgb16.shape[:2]
    start = file.tell()
    file.write(b"II*\x00\x00\x00\x00\x00")     # IFD offset patched at the end
    rows_per_strip = max(1, (256 << 10) // (width * 6))
    offsets, counts = [], []
    for top in range(0, height, rows_per_strip):
        rows = rgb16[top:top + rows_per_strip].astype("<u2")
        if compress:
            # Horizontal predictor: store each sample's difference to the one on its left
            # (mod 2**16), which deflate packs far better for photos.
            rows[:, 1:] -= rgb16[top:top + rows_per_strip, :-1]
            strip = zlib.compress(rows.tobytes(), 6)
        else:
            strip = rows.tobytes()
        offsets.append(file.tell() - start)
        counts.append(len(strip))
        file.write(strip)
    SHORT, LONG, RATIONAL, UNDEFINED = 3, 4, 5, 7
    entries = [
        (256, LONG, [width]), (257, LONG, [height]), (258, SHORT, [16, 16, 16]),
        (259, SHORT, [8 if compress else 1]), (262, SHORT, [2]), (273, LONG, offsets), (277, SHORT, [3]),
        (278, LONG, [rows_per_strip]), (279, LONG, counts), (284, SHORT, [1]),
    ]
    if compress:
        entries.append((317, SHORT, [2]))     # predictor: horizontal differencing
    if dpi:
        for tag, value in ((282, dpi[0]), (283, dpi[1])):
            ratio = fractions.Fraction(value).limit_denominator(10_000)
            entries.append((tag, RATIONAL, [ratio.numerator, ratio.denominator]))
        entries.append((296, SHORT, [2]))      # resolution unit: inch
    if icc:
        entries.append((34675, UNDEFINED, icc))
    entries.sort(key=lambda entry: entry[0])

    def packed(kind, values) -> bytes:
        if kind == UNDEFINED:
            return bytes(values)
        return struct.pack(f"<{len(values)}{'H' if kind == SHORT else 'I'}", *values)

    def count(kind, values) -> int:
        return len(values) // 2 if kind == RATIONAL else len(values)

    # Values longer than 4 bytes go before the IFD; the IFD then points at them.
    if (file.tell() - start) % 2:
        file.write(b"\x00")
    inline = {}
    for tag, kind, values in entries:
        data = packed(kind, values)
        if len(data) > 4:
            inline[tag] = struct.pack("<I", file.tell() - start)
            file.write(data + b"\x00" * (len(data) % 2))
        else:
            inline[tag] = data.ljust(4, b"\x00")
    ifd_offset = file.tell() - start
    file.write(struct.pack("<H", len(entries)))
    for tag, kind, values in entries:
        file.write(struct.pack("<HHI", tag, kind, count(kind, values)) + inline[tag])
    file.write(b"\x00\x00\x00\x00")
    end = file.tell()
    file.seek(start + 4)
    file.write(struct.pack("<I", ifd_offset))
    file.seek(end)
