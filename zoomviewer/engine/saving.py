"""Writing photo files: save() turns float [0, 1] HxWx3 pixels into a PNG (8/16-bit),
TIFF (8/16-bit) or JPEG file, carrying ICC profile, DPI and EXIF, and writes it
atomically (write_atomically: complete or not at all). Pillow encodes 8-bit files; the
48-bit PNG and TIFF writers are our own, since Pillow cannot write 48-bit RGB. Every
failure a person can cause (unknown suffix, unwritable folder, full disk) is an
ImageError with one sentence. Pillow and numpy only: no torch, no Qt.
"""

from __future__ import annotations

import errno
import fractions
import os
import secrets
import struct
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import Image

from . import formats
from .photo import ImageError, PhotoMetadata, clean_exif, quantise, valid_dpi

JPEG_EXIF_LIMIT = 65000  # a JPEG APP1 segment cannot hold more


def save(path, pixels: np.ndarray, metadata: PhotoMetadata | None = None, *, format: str | None = None,
         bits: int = 8, quality: int = 95, scale_dpi: float = 1.0) -> None:
    """Write float [0, 1] HxWx3 pixels atomically as PNG, TIFF or JPEG (`format`, a name
    or suffix; default: from the file name).

    The file appears complete or not at all (see write_atomically); on failure any existing
    target is left untouched. ICC profile, DPI (times scale_dpi) and EXIF are carried where
    the format allows. The 16-bit TIFF writer carries ICC and DPI but not EXIF. 8-bit TIFF
    is uncompressed.
    """
    path = Path(path)
    fmt = _checked_request(path, pixels, format, bits, quality)
    pixels = np.asarray(pixels)
    meta = metadata or PhotoMetadata()
    height, width = pixels.shape[:2]
    dpi = valid_dpi(meta.dpi)
    if dpi is not None:
        dpi = (dpi[0] * scale_dpi, dpi[1] * scale_dpi)
    exif = exif_for_export(meta.exif, (width, height))
    if fmt == "JPEG" and exif and len(exif) > JPEG_EXIF_LIMIT:
        exif = None
    values = quantise(pixels, bits)

    def write(file: BinaryIO) -> None:
        if bits == 16 and fmt == "PNG":
            write_png16(file, values, meta.icc_profile, dpi, exif)
        elif bits == 16:
            write_tiff16(file, values, meta.icc_profile, dpi)
        else:
            options = {"icc_profile": meta.icc_profile, "exif": exif, "dpi": dpi}
            if fmt == "JPEG":
                options.update(quality=quality, dpi=dpi and (round(dpi[0]), round(dpi[1])))
            # 8-bit TIFF stays uncompressed: Pillow's libtiff (compressing) path cannot
            # write EXIF sub-IFDs, and uncompressed TIFF is what every reader accepts.
            Image.fromarray(values).save(file, format=fmt,
                                          **{k: v for k, v in options.items() if v is not None})

    write_atomically(path, write)


def _checked_request(path: Path, pixels, format: str | None, bits: int, quality: int) -> str:
    """The Pillow format to write; ImageError for a request that cannot be carried out."""
    name = path.name or str(path)
    fmt = formats.format_named(format) if format else formats.write_format(path)
    if fmt is None:
        raise ImageError(f"Cannot save '{name}': choose a {formats.writable_suffixes_hint()} file name.")
    if bits not in formats.find(fmt).write_bits:
        raise ImageError(f"Cannot save '{name}': {fmt} cannot store {bits}-bit channels.")
    if not 1 <= quality <= 100:
        raise ImageError(f"Cannot save '{name}': JPEG quality must be between 1 and 100.")
    pixels = np.asarray(pixels)
    if pixels.ndim != 3 or pixels.shape[2] != 3 or 0 in pixels.shape:
        raise ImageError(f"Cannot save '{name}': expected an HxWx3 picture, got shape {pixels.shape}.")
    if not np.issubdtype(pixels.dtype, np.floating):
        raise ImageError(f"Cannot save '{name}': expected float pixels in [0, 1], got {pixels.dtype}.")
    return fmt


def exif_for_export(raw: bytes | None, size: tuple[int, int]) -> bytes | None:
    """A photo's EXIF made fit for an exported file of `size` (W, H); None if there is
    none or it is damaged (damaged EXIF is dropped rather than failing the export)."""
    if not raw:
        return None
    try:
        exif = Image.Exif()
        exif.load(raw)
        return clean_exif(exif, size)
    except Exception:
        return None


def write_atomically(path, write: Callable[[BinaryIO], None]) -> None:
    """Create `path` with `write(file)`, complete or not at all: the bytes go to a hidden
    temporary file in the same folder, which is synced and renamed over the target. If
    anything fails, the temporary file is removed, an existing target is left as it was
    and the failure becomes an ImageError naming the file (an OSError says why in words).
    """
    path = Path(path)
    name = path.name or str(path)
    folder = path.parent
    temp = folder / f".{name}.{secrets.token_hex(4)}.part"
    try:
        # os.open with 0o666 lets the umask decide permissions, as for any new file.
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
    except OSError as error:
        raise ImageError(f"Cannot save '{name}': {why_not_writable(error, folder)}.") from None
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
            why = why_not_writable(error, folder)
        else:
            why = f"the encoder failed ({error or type(error).__name__})"
        raise ImageError(f"Cannot save '{name}': {why}.") from None
    _sync_folder(folder)


def why_not_writable(error: OSError, folder: Path) -> str:
    """What a failed write into `folder` means for a person, in a few words."""
    if error.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return f"the folder '{folder}' is not writable"
    if error.errno == errno.ENOENT:
        # /proc and other virtual folders exist but refuse new files with ENOENT
        return (f"the folder '{folder}' does not accept new files" if folder.is_dir()
                else f"the folder '{folder}' does not exist")
    if error.errno == errno.ENOTDIR:
        return f"the folder '{folder}' cannot exist: part of its path is a file"
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


def write_png16(file: BinaryIO, rgb16: np.ndarray, icc, dpi, exif) -> None:
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


def write_tiff16(file: BinaryIO, rgb16: np.ndarray, icc, dpi, compress: bool = True) -> None:
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
