"""Damaged files never crash or hang the viewer: they load as a valid picture or are refused.

Seeded and fixed: the same CASES damaged versions of small real files (PNG, JPEG, GIF,
TIFF) every run, truncated, with bytes flipped, or with their size fields rewritten; each
must either load to a finite float32 HxWx3 array in [0, 1] or raise ImageError with a
message. Nothing else may escape. (About a second here: a case takes milliseconds.)
"""

import random
import signal
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from zoomviewer.engine.images import ImageError, load

CASES = 1500
# Not a speed limit: a case takes milliseconds. A decoder stuck in a loop would otherwise
# hang the test run instead of failing it.
HANG_SECONDS = 60


class Hang(BaseException):
    """Raised by the alarm; a BaseException so no `except Exception` can swallow it."""


def seed_files(folder):
    rng = np.random.default_rng(7)
    y, x = np.mgrid[0:48, 0:64]
    rgb = np.stack([x * 4, y * 5, (x + y) * 2], axis=2) + rng.integers(0, 20, (48, 64, 3))
    im = Image.fromarray(np.clip(rgb, 0, 255).astype(np.uint8))
    paths = {}
    for suffix, options in [(".png", {}), (".jpg", {"quality": 90}), (".gif", {}),
                            (".tif", {}), (".tiff", {"compression": "tiff_deflate"})]:
        path = folder / f"seed{suffix}"
        (im.convert("P") if suffix == ".gif" else im).save(path, **options)
        paths[suffix] = path.read_bytes()
    return paths


def size_field_offsets(data):
    """(offset, byte count, byte order) of fields that declare the picture's size."""
    if data.startswith(b"\x89PNG"):
        return [(16, 4, ">"), (20, 4, ">")]                       # IHDR width, height
    if data.startswith(b"GIF"):
        found = [(6, 2, "<"), (8, 2, "<")]                         # logical screen
        descriptor = data.find(b"\x2c", 13)
        if descriptor > 0:
            found += [(descriptor + 5, 2, "<"), (descriptor + 7, 2, "<")]
        return found
    if data.startswith(b"\xff\xd8"):
        sof = data.find(b"\xff\xc0")
        return [(sof + 5, 2, ">"), (sof + 7, 2, ">")] if sof > 0 else []
    # TIFF: find the ImageWidth / ImageLength entries in the first IFD (little-endian).
    ifd = struct.unpack_from("<I", data, 4)[0]
    count = struct.unpack_from("<H", data, ifd)[0]
    found = []
    for index in range(count):
        entry = ifd + 2 + 12 * index
        if struct.unpack_from("<H", data, entry)[0] in (256, 257):
            found.append((entry + 8, 4, "<"))
    return found


def mutate(data, rng):
    data = bytearray(data)
    kind = rng.choice(["truncate", "flip", "flip_header", "size"])
    if kind == "truncate":
        return bytes(data[: rng.randrange(1, len(data))])
    if kind in ("flip", "flip_header"):
        end = min(len(data), 200) if kind == "flip_header" else len(data)
        for _ in range(rng.randint(1, 8)):
            data[rng.randrange(end)] ^= 1 << rng.randrange(8)
        return bytes(data)
    fields = size_field_offsets(bytes(data))
    offset, width, order = rng.choice(fields)
    top = 256 ** width - 1
    value = rng.choice([0, 1, 2, 63, 65, 4096, 65535, top, rng.randrange(top + 1)])
    data[offset: offset + width] = value.to_bytes(width, "big" if order == ">" else "little")
    if data[:4] == b"\x89PNG" and rng.random() < 0.7:   # usually keep the IHDR CRC valid
        data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))
    return bytes(data)


def on_alarm(signum, frame):
    raise Hang()


@pytest.mark.filterwarnings("ignore")
def test_damaged_files_load_cleanly_or_are_refused_with_a_message(tmp_path):
    seeds = seed_files(tmp_path)
    rng = random.Random(1234)
    previous_handler = signal.signal(signal.SIGALRM, on_alarm)
    outcomes = {"loaded": 0, "refused": 0}
    try:
        for case in range(CASES):
            suffix = rng.choice(sorted(seeds))
            path = tmp_path / f"case{case % 10}{suffix}"
            path.write_bytes(mutate(seeds[suffix], rng))
            signal.alarm(HANG_SECONDS)
            try:
                photo = load(path, max_pixels=4_000_000)
            except ImageError as error:
                assert str(error).strip(), f"case {case}: empty message"
                assert path.name in str(error), f"case {case}: {error}"
                outcomes["refused"] += 1
            except Hang:
                pytest.fail(f"case {case} ({suffix}) hung: no answer in {HANG_SECONDS} s")
            else:
                pixels = photo.pixels
                assert pixels.dtype == np.float32 and pixels.ndim == 3 and pixels.shape[2] == 3
                assert pixels.flags.c_contiguous
                assert np.isfinite(pixels).all(), f"case {case}"
                assert pixels.min() >= 0 and pixels.max() <= 1, f"case {case}"
                outcomes["loaded"] += 1
            finally:
                signal.alarm(0)
    finally:
        signal.signal(signal.SIGALRM, previous_handler)
    # Both outcomes occur, so the mutations really exercise decoding and refusal.
    assert outcomes["loaded"] > 0 and outcomes["refused"] > 0, outcomes
