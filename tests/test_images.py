"""Photo files in and out: what a person opening, viewing and exporting photos would notice."""

import os
import struct
import zlib

import numpy as np
import pytest
from PIL import Image, ImageCms, ImageOps

from zoomviewer.engine.images import ImageError, PhotoMetadata, load, read_size, save, to_srgb
from zoomviewer.engine.saving import write_tiff16

W, H = 64, 48


def gradient(w=W, h=H, seed=0):
    """A smooth photo-like RGB float image with a little noise."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    rgb = np.stack([x / (w - 1), y / (h - 1), 0.5 + 0.4 * np.sin(x / 5 + y / 7)], axis=2)
    return np.clip(rgb + rng.normal(0, 0.02, rgb.shape), 0, 1).astype(np.float32)


def srgb_profile_bytes():
    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


def png_chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def assert_photo_array(pixels, height, width):
    assert pixels.shape == (height, width, 3)
    assert pixels.dtype == np.float32 and pixels.flags.c_contiguous
    assert np.isfinite(pixels).all() and pixels.min() >= 0 and pixels.max() <= 1


# ------------------------------------------------------------------------------ round trips

def test_8bit_png_round_trip_is_exact_to_one_level(tmp_path):
    pixels = gradient()
    save(tmp_path / "a.png", pixels)
    photo = load(tmp_path / "a.png")
    assert_photo_array(photo.pixels, H, W)
    assert np.abs(photo.pixels - pixels).max() <= 0.5 / 255 + 1e-6
    assert photo.metadata.bit_depth == 8 and photo.metadata.source_format == "PNG"


@pytest.mark.parametrize("suffix", [".png", ".tif"])
def test_16bit_round_trip_keeps_values_one_65535th_apart_distinct(tmp_path, suffix):
    levels = np.arange(W * H * 3, dtype=np.float64).reshape(H, W, 3) + 30000
    pixels = (levels / 65535).astype(np.float32)
    save(tmp_path / f"deep{suffix}", pixels, bits=16)
    photo = load(tmp_path / f"deep{suffix}")
    back = np.rint(photo.pixels.astype(np.float64) * 65535)
    assert np.array_equal(back, levels)
    assert len(np.unique(back)) == W * H * 3
    assert photo.metadata.bit_depth == 16


@pytest.mark.parametrize("suffix", [".png", ".tif"])
def test_16bit_files_show_the_same_picture_in_other_programs(tmp_path, suffix):
    # Pillow's own 8-bit reading stands in for another program: our writer's byte order,
    # filters and strips must agree with what any reader expects.
    pixels = gradient()
    save(tmp_path / f"deep{suffix}", pixels, bits=16)
    seen = np.asarray(Image.open(tmp_path / f"deep{suffix}").convert("RGB"))
    expected_high_bytes = np.rint(pixels * 65535).astype(np.uint16) >> 8
    assert np.array_equal(seen, expected_high_bytes)


def test_uncompressed_16bit_tiff_keeps_full_precision(tmp_path):
    # Many scanners write 48-bit TIFF without compression; Pillow reads those differently.
    levels = (np.arange(W * H * 3).reshape(H, W, 3) * 11 + 5).astype(np.uint16)
    with open(tmp_path / "scan.tif", "wb") as file:
        write_tiff16(file, levels, None, (1200.0, 1200.0), compress=False)
    photo = load(tmp_path / "scan.tif")
    assert np.array_equal(np.rint(photo.pixels * 65535), levels)
    assert photo.metadata.dpi == (1200.0, 1200.0)


def test_16bit_grey_png_from_another_writer_keeps_full_precision(tmp_path):
    grey = (np.arange(W * H, dtype=np.uint16).reshape(H, W) * 7 + 1000)
    Image.fromarray(grey).save(tmp_path / "grey16.png")
    photo = load(tmp_path / "grey16.png")
    assert photo.metadata.bit_depth == 16 and photo.metadata.mode.startswith("I;16")
    assert np.array_equal(np.rint(photo.pixels[..., 0] * 65535), grey)
    assert np.array_equal(photo.pixels[..., 0], photo.pixels[..., 2])


def test_tiff_8bit_round_trip(tmp_path):
    pixels = gradient()
    save(tmp_path / "a.tiff", pixels)
    photo = load(tmp_path / "a.tiff")
    assert photo.metadata.source_format == "TIFF"
    assert np.abs(photo.pixels - pixels).max() <= 0.5 / 255 + 1e-6


def test_jpeg_quality_trades_size_for_fidelity(tmp_path):
    pixels = gradient(256, 192)
    save(tmp_path / "low.jpg", pixels, quality=30)
    save(tmp_path / "high.jpg", pixels, quality=95)
    assert os.path.getsize(tmp_path / "low.jpg") < os.path.getsize(tmp_path / "high.jpg")
    error_low = np.abs(load(tmp_path / "low.jpg").pixels - pixels).mean()
    error_high = np.abs(load(tmp_path / "high.jpg").pixels - pixels).mean()
    assert error_high < error_low < 0.1


def test_export_metadata_dpi_scaled_icc_and_camera_exif_carried(tmp_path):
    exif = Image.Exif()
    exif[0x010F] = "Zoomcam"   # camera make, which a person expects to survive export
    exif[0x0112] = 1
    meta = PhotoMetadata(icc_profile=srgb_profile_bytes(), exif=exif.tobytes(), dpi=(300.0, 300.0))
    for name, bits in [("x.png", 8), ("x16.png", 16), ("x.tif", 8), ("x16.tif", 16), ("x.jpg", 8)]:
        save(tmp_path / name, gradient(), meta, bits=bits, scale_dpi=2.0)
        photo = load(tmp_path / name)
        assert photo.metadata.icc_profile == meta.icc_profile, name
        assert photo.metadata.dpi == pytest.approx((600, 600), rel=1e-3), name
        if name != "x16.tif":   # our 16-bit TIFF writer documents that it carries no EXIF
            # another program finds the camera in the file itself, not only our loader
            with Image.open(tmp_path / name) as written:
                assert written.getexif().get(0x010F) == "Zoomcam", name
            carried = Image.Exif()
            carried.load(photo.metadata.exif)
            assert carried.get(0x010F) == "Zoomcam", name


def test_profile_of_another_colour_space_is_never_attached_to_rgb_pixels(tmp_path):
    lab = ImageCms.ImageCmsProfile(ImageCms.createProfile("LAB")).tobytes()
    Image.fromarray(np.rint(gradient() * 255).astype(np.uint8)).save(tmp_path / "lab.png", icc_profile=lab)
    photo = load(tmp_path / "lab.png")
    assert photo.metadata.icc_profile is None
    assert any("ICC" in note for note in photo.metadata.notes)


def test_to_srgb_is_identity_without_profile_and_close_for_an_srgb_profile(tmp_path):
    pixels = gradient()
    save(tmp_path / "plain.png", pixels)
    plain = load(tmp_path / "plain.png")
    assert to_srgb(plain) is plain.pixels
    save(tmp_path / "tagged.png", pixels, PhotoMetadata(icc_profile=srgb_profile_bytes()))
    tagged = load(tmp_path / "tagged.png")
    shown = to_srgb(tagged)
    assert shown.shape == pixels.shape and shown.dtype == np.float32
    assert np.abs(shown - tagged.pixels).max() <= 2 / 255


# ------------------------------------------------------------------------------ orientation

def test_exif_rotated_jpeg_shows_upright_and_exports_without_rotating_twice(tmp_path):
    stored = np.full((40, 60, 3), 128, np.uint8)   # landscape as stored by the camera
    stored[:8, :8] = (255, 0, 0)                   # red top-left corner, stored
    exif = Image.Exif()
    exif[0x0112] = 6                               # "rotate 90 degrees clockwise to view"
    exif[0x0110] = "Portrait"
    Image.fromarray(stored).save(tmp_path / "cam.jpg", exif=exif, quality=95)

    photo = load(tmp_path / "cam.jpg")
    assert photo.pixels.shape == (60, 40, 3)       # upright portrait
    assert photo.pixels[2, -3, 0] > 0.9 and photo.pixels[2, -3, 1] < 0.2   # red top-right
    assert photo.pixels[-3, 2, 0] < 0.6                                     # grey elsewhere
    assert read_size(tmp_path / "cam.jpg") == (40, 60)
    kept = Image.Exif()
    kept.load(photo.metadata.exif)
    assert kept.get(0x0112, 1) == 1 and kept.get(0x0110) == "Portrait"

    save(tmp_path / "export.jpg", photo.pixels, photo.metadata)
    again = load(tmp_path / "export.jpg")
    assert again.pixels.shape == (60, 40, 3) and again.pixels[2, -3, 0] > 0.9


@pytest.mark.parametrize("orientation", range(1, 9))
def test_every_exif_orientation_matches_pillows_exif_transpose(tmp_path, orientation):
    stored = np.rint(gradient(7, 5) * 255).astype(np.uint8)
    exif = Image.Exif()
    exif[0x0112] = orientation
    Image.fromarray(stored).save(tmp_path / "o.png", exif=exif)
    upright = np.asarray(ImageOps.exif_transpose(Image.open(tmp_path / "o.png")))
    photo = load(tmp_path / "o.png")
    assert np.array_equal(np.rint(photo.pixels * 255).astype(np.uint8), upright)


def test_exif_rotated_tiff_is_not_rotated_twice(tmp_path):
    stored = np.full((40, 60, 3), 128, np.uint8)
    stored[:8, :8] = (255, 0, 0)
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(stored).save(tmp_path / "cam.tif", exif=exif)
    photo = load(tmp_path / "cam.tif")
    assert photo.pixels.shape == (60, 40, 3) and photo.pixels[2, -3, 0] > 0.9


# ------------------------------------------------------------------------------ colour modes

def test_grey_image_becomes_three_equal_channels(tmp_path):
    grey = np.rint(gradient()[..., 0] * 255).astype(np.uint8)
    Image.fromarray(grey).save(tmp_path / "grey.png")
    photo = load(tmp_path / "grey.png")
    assert_photo_array(photo.pixels, H, W)
    assert np.array_equal(np.rint(photo.pixels * 255)[..., 1], grey)
    assert np.array_equal(photo.pixels[..., 0], photo.pixels[..., 2])


@pytest.mark.parametrize("mode, see_through", [("LA", (0, 0)), ("RGBA", (255, 0, 0, 0)), ("PA", None)])
def test_transparency_is_composited_on_grey_with_a_note(tmp_path, mode, see_through):
    if mode == "PA":
        im = Image.new("P", (W, H), 1)
        im.putpalette([255, 0, 0, 0, 0, 255] + [0] * 762)
        im.info["transparency"] = 0
        im.paste(0, (0, 0, W // 2, H))             # left half: transparent palette entry
        im.save(tmp_path / "t.png", transparency=0)
    else:
        opaque = (255, 255) if mode == "LA" else (0, 0, 255, 255)
        im = Image.new(mode, (W, H), opaque)
        im.paste(see_through, (0, 0, W // 2, H))
        im.save(tmp_path / "t.png")
    photo = load(tmp_path / "t.png")
    assert_photo_array(photo.pixels, H, W)
    assert np.allclose(photo.pixels[:, : W // 2], 0.5)            # see-through part: grey
    assert not np.allclose(photo.pixels[:, W // 2 :], 0.5)        # opaque part: its colour
    assert any("transparency" in note for note in photo.metadata.notes)


def test_palette_and_one_bit_images_show_their_colours(tmp_path):
    palette = Image.new("P", (W, H), 0)
    palette.putpalette([10, 200, 30] + [0] * 765)
    palette.save(tmp_path / "p.gif")
    assert np.allclose(load(tmp_path / "p.gif").pixels[0, 0], np.array([10, 200, 30]) / 255)

    bits = Image.new("1", (W, H), 0)
    bits.paste(1, (0, 0, W // 2, H))
    bits.save(tmp_path / "b.png")
    pixels = load(tmp_path / "b.png").pixels
    assert np.all(pixels[:, : W // 2] == 1) and np.all(pixels[:, W // 2 :] == 0)


def test_cmyk_jpeg_is_converted_to_rgb_with_a_note(tmp_path):
    Image.new("CMYK", (W, H), (255, 0, 0, 0)).save(tmp_path / "press.jpg", quality=95)  # cyan
    photo = load(tmp_path / "press.jpg")
    assert photo.metadata.mode == "CMYK" and photo.metadata.icc_profile is None
    assert np.allclose(photo.pixels[H // 2, W // 2], (0, 1, 1), atol=0.03)
    assert any("CMYK" in note for note in photo.metadata.notes)


def test_animated_gif_shows_its_first_frame(tmp_path):
    frames = [Image.new("RGB", (W, H), colour) for colour in ((255, 0, 0), (0, 0, 255))]
    frames[0].save(tmp_path / "anim.gif", save_all=True, append_images=frames[1:], duration=100)
    photo = load(tmp_path / "anim.gif")
    assert np.allclose(photo.pixels[0, 0], (1, 0, 0))
    assert any("first frame" in note for note in photo.metadata.notes)


def test_non_ascii_paths_load_save_and_name_the_file_in_errors(tmp_path):
    folder = tmp_path / "Fotos für Ümit ✓"
    folder.mkdir()
    save(folder / "海辺の写真.png", gradient())
    assert load(folder / "海辺の写真.png").pixels.shape == (H, W, 3)
    with pytest.raises(ImageError, match="写真なし.png"):
        load(folder / "写真なし.png")


# ------------------------------------------------------------------------------ refusals

def refusal_for(path, **kwargs):
    with pytest.raises(ImageError) as caught:
        load(path, **kwargs)
    message = str(caught.value)
    assert os.path.basename(path) in message and message.endswith(".")
    return message


def test_missing_empty_folder_and_non_image_files_are_refused_in_one_sentence(tmp_path):
    assert "does not exist" in refusal_for(tmp_path / "missing.png")
    (tmp_path / "empty.jpg").write_bytes(b"")
    assert "empty" in refusal_for(tmp_path / "empty.jpg")
    (tmp_path / "album.png").mkdir()
    assert "folder" in refusal_for(tmp_path / "album.png")
    (tmp_path / "notes.png").write_text("shopping list: milk, eggs\n")
    assert "not an image" in refusal_for(tmp_path / "notes.png")
    with pytest.raises(ImageError, match="missing.png"):
        read_size(tmp_path / "missing.png")


def test_path_through_a_file_is_refused_as_unreadable(tmp_path):
    # root may read anything, but no one can open a path that runs through a file
    save(tmp_path / "holiday.png", gradient())
    assert "cannot be read" in refusal_for(tmp_path / "holiday.png" / "secret.png")


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0,
                    reason="root reads files whatever their permissions; the test above runs for root")
def test_file_without_read_permission_is_refused(tmp_path):
    path = tmp_path / "secret.png"
    save(path, gradient())
    path.chmod(0)
    try:
        assert "permission" in refusal_for(path)
    finally:
        path.chmod(0o644)


@pytest.mark.parametrize("suffix", [".png", ".jpg", ".gif", ".tif"])
def test_truncated_files_are_refused_now_not_shown_half_grey(tmp_path, suffix):
    whole = tmp_path / f"whole{suffix}"
    if suffix == ".gif":
        Image.fromarray(np.rint(gradient() * 255).astype(np.uint8)).convert("P").save(whole)
    else:
        save(whole, gradient())
    data = whole.read_bytes()
    cut = tmp_path / f"cut{suffix}"
    cut.write_bytes(data[: len(data) * 2 // 3])
    assert "damaged or incomplete" in refusal_for(cut)


def crafted_png(width, height):
    """A valid PNG header declaring width x height, followed by a few bytes of image data."""
    return (b"\x89PNG\r\n\x1a\n"
            + png_chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + png_chunk(b"IDAT", zlib.compress(b"\x00" * 64))
            + png_chunk(b"IEND", b""))


def test_decompression_bomb_is_refused_from_its_header(tmp_path):
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(crafted_png(100_000, 100_000))   # 10 gigapixels in 100 bytes
    message = refusal_for(bomb)
    assert "100000 x 100000" in message and "megapixels" in message
    assert read_size(bomb) == (100_000, 100_000)      # the size itself can still be reported


def test_our_pixel_limit_rules_not_pillows(tmp_path, monkeypatch):
    path = tmp_path / "small.png"
    save(path, gradient())
    assert "megapixels" in refusal_for(path, max_pixels=W * H - 1)
    assert load(path, max_pixels=W * H).pixels.shape == (H, W, 3)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)   # a stricter global from elsewhere
    assert load(path).pixels.shape == (H, W, 3)
    assert Image.MAX_IMAGE_PIXELS == 1000                   # and it is left as it was


def test_truncated_bomb_under_the_limit_is_refused_as_damaged(tmp_path):
    path = tmp_path / "liar.png"
    path.write_bytes(crafted_png(2000, 1500))
    assert "damaged or incomplete" in refusal_for(path)
