"""Writing photo files: every format we offer can be written and read back under every
name it answers to, and a write that fails (full disk, folder that will not take a file,
broken encoder) leaves the old file as it was and no half-written one beside it. These
run as root too: CI does."""

import errno
import os
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from zoomviewer.engine import formats
from zoomviewer.engine.export import ExportError, output_format
from zoomviewer.engine.images import ImageError, load, save
from zoomviewer.engine.saving import write_atomically, write_png16

W, H = 40, 30
IS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0


def picture(seed=0):
    """A smooth RGB float picture with a little noise, so JPEG keeps it close."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:H, 0:W].astype(np.float32)
    rgb = np.stack([x / (W - 1), y / (H - 1), 0.5 + 0.4 * np.sin(x / 5 + y / 7)], axis=2)
    return np.clip(rgb + rng.normal(0, 0.02, rgb.shape), 0, 1).astype(np.float32)


def only_files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


# ------------------------------------------------------------------------------ the table

WRITABLE = [(suffix, bits) for suffix, name in formats.WRITE_FORMATS.items()
            for bits in formats.find(name).write_bits]


@pytest.mark.parametrize("suffix, bits", WRITABLE, ids=[f"{s}-{b}bit" for s, b in WRITABLE])
def test_every_writable_suffix_round_trips_through_export_and_save(tmp_path, suffix, bits):
    path = tmp_path / f"export{suffix.upper()}"          # IMG.JPG is as good as img.jpg
    fmt = output_format(path)
    assert fmt == formats.write_format(path)
    pixels = picture()
    save(path, pixels, format=fmt, bits=bits)            # what an export does
    save(tmp_path / f"plain{suffix}", pixels, bits=bits)  # the name alone decides
    for written in (path, tmp_path / f"plain{suffix}"):
        with Image.open(written) as im:
            assert im.format == fmt                       # the file is what its name says
        photo = load(written)
        assert photo.metadata.source_format == fmt and photo.metadata.bit_depth == bits
        error = np.abs(photo.pixels - pixels)
        if fmt == "JPEG":
            assert error.mean() < 0.02
        else:
            assert error.max() <= 0.5 / (2 ** bits - 1) + 1e-6
    assert formats.is_photo_name(path)                     # and a folder scan would take it


@pytest.mark.parametrize("suffix", sorted(formats.READ_SUFFIXES - set(formats.WRITE_FORMATS)) + [".gif", ""])
def test_a_suffix_we_do_not_write_is_refused_by_export_and_save_alike(tmp_path, suffix):
    path = tmp_path / f"out{suffix}"
    with pytest.raises(ExportError, match=r"\.png, \.tif or \.jpg"):
        output_format(path)
    with pytest.raises(ImageError, match=r"\.png, \.tif or \.jpg"):
        save(path, picture())
    assert only_files(tmp_path) == []


def test_format_names_and_suffixes_name_the_same_formats():
    for name in ("png", "PNG", ".png"):
        assert output_format("x", name) == "PNG"
    for name in ("jpg", "jpeg", "JPE", "JPEG"):
        assert output_format("x", name) == "JPEG"
    for name in ("tif", "TIFF"):
        assert output_format("x", name) == "TIFF"
    with pytest.raises(ExportError, match="PNG, TIFF or JPEG"):
        output_format("x.png", "bmp")


def test_the_open_dialog_offers_every_suffix_we_read():
    offered = formats.open_dialog_filter().split(";;")[0]
    assert sorted(offered[offered.index("(") + 1:offered.index(")")].split()) == \
        sorted(f"*{s}" for s in formats.READ_SUFFIXES)
    assert formats.open_dialog_filter().endswith(";;All files (*)")


# ------------------------------------------------------------------------------ failures

def test_failing_encoder_leaves_existing_export_untouched_and_no_temp_file(tmp_path, monkeypatch):
    target = tmp_path / "export.png"
    save(target, picture(seed=1))
    before = target.read_bytes()

    def encoder_that_runs_out_of_disk(im, fp, filename):
        fp.write(b"\x89PNG\r\n\x1a\n half an image")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setitem(Image.SAVE, "PNG", encoder_that_runs_out_of_disk)  # Pillow's encoder registry
    with pytest.raises(ImageError, match="export.png.*disk is full"):
        save(target, picture(seed=2))
    assert target.read_bytes() == before
    assert only_files(tmp_path) == ["export.png"]


def test_failing_16bit_writer_leaves_no_partial_file(tmp_path, monkeypatch):
    def compressor_that_breaks(*args):
        raise zlib.error("simulated encoder failure")

    monkeypatch.setattr(zlib, "compressobj", compressor_that_breaks)
    with pytest.raises(ImageError, match="new.png.*encoder failed"):
        save(tmp_path / "new.png", picture(), bits=16)
    assert only_files(tmp_path) == []


def test_refused_write_part_way_keeps_the_old_file_and_says_the_folder_is_not_writable(tmp_path):
    target = tmp_path / "export.png"
    target.write_bytes(b"previous export")
    levels = np.zeros((H, W, 3), np.uint16)

    def writer_refused_part_way(file):
        write_png16(file, levels, None, None, None)
        raise PermissionError(errno.EACCES, "Permission denied")   # as a network share may

    with pytest.raises(ImageError, match=f"export.png.*'{tmp_path}' is not writable"):
        write_atomically(target, writer_refused_part_way)
    assert target.read_bytes() == b"previous export"
    assert only_files(tmp_path) == ["export.png"]


@pytest.mark.skipif(not sys.platform.startswith("linux") or not os.path.isdir("/sys/kernel"),
                    reason="needs Linux's /sys, a folder that takes no new file, not even from root")
def test_folder_that_takes_no_new_file_gives_a_clear_error():
    with pytest.raises(ImageError, match="out.png.*'/sys' is not writable"):
        save("/sys/out.png", picture())


@pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="needs Linux /proc")
def test_a_virtual_folder_that_exists_is_not_called_missing():
    with pytest.raises(ImageError, match="'/proc' does not accept new files"):
        save("/proc/out.png", picture())


def test_folder_under_a_file_gives_a_clear_error(tmp_path):
    save(tmp_path / "holiday.png", picture())
    with pytest.raises(ImageError, match="out.png.*part of its path is a file"):
        save(tmp_path / "holiday.png" / "out.png", picture())
    assert only_files(tmp_path) == ["holiday.png"]


@pytest.mark.skipif(IS_ROOT, reason="root writes into read-only folders; the tests above run for root")
def test_read_only_folder_gives_a_clear_error(tmp_path):
    folder = tmp_path / "locked"
    folder.mkdir()
    folder.chmod(0o500)
    try:
        with pytest.raises(ImageError, match="out.png.*not writable"):
            save(folder / "out.png", picture())
    finally:
        folder.chmod(0o755)


def test_bad_save_requests_are_refused_clearly(tmp_path):
    with pytest.raises(ImageError, match="out.bmp"):
        save(tmp_path / "out.bmp", picture())
    with pytest.raises(ImageError, match="16-bit"):
        save(tmp_path / "out.jpg", picture(), bits=16)
    with pytest.raises(ImageError, match="does not exist"):
        save(tmp_path / "no such folder" / "out.png", picture())
    assert only_files(tmp_path) == []


def test_out_of_range_and_nan_pixels_are_clipped_on_save(tmp_path):
    pixels = picture()
    pixels[0, 0] = (-0.5, 1.7, np.nan)
    save(tmp_path / "clip.png", pixels)
    assert np.array_equal(load(tmp_path / "clip.png").pixels[0, 0], (0, 1, 0))


def test_saved_file_permissions_follow_the_umask(tmp_path):
    save(tmp_path / "shared.png", picture())
    umask = os.umask(0)
    os.umask(umask)
    assert (tmp_path / "shared.png").stat().st_mode & 0o777 == 0o666 & ~umask
