"""Multi-view fusion (render/fusion.py) and the fused export: each view's render is a plain
render of the rotated or flipped photo, carried back; the fused picture commutes with
every view it averages over (a plain render does not); one view is render_region itself;
the fusion changes the picture; the export of a fused view is its render, tiled, and
keeps its progress and Cancel."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from engine_models import sample_image, spread_model
from zoomviewer.engine.export import export_view
from zoomviewer.engine.render import VIEWS, Cancelled, Latent, render_fused, render_fused_crop, render_region, view_latents
from zoomviewer.engine.render.fusion import fusion_crop, render_view

# Each view written out independently of the module: what it does to the photo (and,
# undone, to a render), and where it sends a photo point (px, py) of a W x H photo.
SPEC = {
    "identity": (lambda a: a, lambda a: a, lambda px, py, W, H: (px, py)),
    "flip x": (np.fliplr, np.fliplr, lambda px, py, W, H: (W - px, py)),
    "flip y": (np.flipud, np.flipud, lambda px, py, W, H: (px, H - py)),
    "rotate 180": (lambda a: np.rot90(a, 2), lambda a: np.rot90(a, 2), lambda px, py, W, H: (W - px, H - py)),
    "transpose": (lambda a: a.swapaxes(0, 1), lambda a: a.swapaxes(0, 1), lambda px, py, W, H: (py, px)),
    "transpose, flip x": (lambda a: np.rot90(a, -1), lambda a: np.rot90(a, 1), lambda px, py, W, H: (H - py, px)),
    "transpose, flip y": (lambda a: np.rot90(a, 1), lambda a: np.rot90(a, -1), lambda px, py, W, H: (py, W - px)),
    "transpose, rotate 180": (lambda a: np.rot90(a.swapaxes(0, 1), 2), lambda a: np.rot90(a.swapaxes(0, 1), 2),
                              lambda px, py, W, H: (H - py, W - px)),
}
# Dyadic numbers: a region carried through two views is the same floats as through their product.
REGION, SIZE = (2.5, 3.25, 17.75, 11.5), (37, 23)


def transformed(name: str, image: np.ndarray, region, size):
    """(the photo as view `name` sees it, contiguous; the region and output size there)."""
    do, _, point = SPEC[name]
    H, W = image.shape[:2]
    x, y, w, h = region
    (ax, ay), (bx, by) = point(x, y, W, H), point(x + w, y + h, W, H)
    swapped = name.startswith("transpose")
    return (np.ascontiguousarray(do(image)), (min(ax, bx), min(ay, by), abs(bx - ax), abs(by - ay)),
            (size[1], size[0]) if swapped else tuple(size))


@pytest.fixture(scope="module", params=["fast", "liif"])
def model(request):
    """Both decoders (the fused kernel and the torch ops), for the view renders' exactness."""
    return spread_model(request.param, residual=request.param == "fast")


@pytest.fixture(scope="module")
def fast():
    """The fast decoder with the residual option, for the properties of the mean."""
    return spread_model("fast", residual=True)


def test_the_views_are_the_eight_of_the_spec():
    assert VIEWS == tuple(SPEC)


@pytest.mark.parametrize("cell", [None, (0.375, 0.625)])
def test_each_view_render_is_a_plain_render_of_the_transformed_photo(model, cell):
    """... and the fused picture of the first 2, 4 or 8 views is their mean."""
    image = sample_image()
    latents = view_latents(model, image, "cpu", 8)
    expected = []
    for k, name in enumerate(VIEWS):
        photo, region, size = transformed(name, image, REGION, SIZE)
        # the cell is (height, width) in source pixels: the transpose swaps it too
        view_cell = None if cell is None else (cell[::-1] if name.startswith("transpose") else cell)
        expected.append(SPEC[name][1](render_region(Latent(model, photo, "cpu"), region, size, cell=view_cell)))
        got = render_view(latents[k], k, REGION, SIZE, cell=cell)
        assert got.shape == (SIZE[1], SIZE[0], 3)
        np.testing.assert_allclose(got, expected[k], rtol=0, atol=1e-6, err_msg=name)
    for views in (2, 4, 8):
        np.testing.assert_allclose(render_fused(latents[:views], REGION, SIZE, cell=cell),
                                   np.mean(expected[:views], axis=0), rtol=0, atol=1e-6)


@pytest.mark.parametrize("views", [2, 4, 8])
def test_the_fused_picture_commutes_with_every_view_it_averages(fast, views):
    """Rendering the rotated photo at the rotated region gives the rotated picture: exact
    for the mean over a group (up to the order of the sum). A plain render does not."""
    image, size = sample_image(), (19, 13)     # 64 fused renders: small ones
    fused = render_fused(view_latents(fast, image, "cpu", views), REGION, size)
    for name in VIEWS[:views]:
        photo, region, view_size = transformed(name, image, REGION, size)
        again = render_fused(view_latents(fast, photo, "cpu", views), region, view_size)
        np.testing.assert_allclose(again, SPEC[name][0](fused), rtol=0, atol=1e-6, err_msg=name)
    photo, region, view_size = transformed("flip x", image, REGION, size)
    plain = render_region(Latent(fast, photo, "cpu"), region, view_size)
    assert np.abs(plain - np.fliplr(render_region(Latent(fast, image, "cpu"), REGION, size))).max() > 1e-3


def test_one_view_is_render_region_itself(model):
    image = sample_image()
    latents = view_latents(model, image, "cpu", 1)
    assert len(latents) == 1
    assert np.array_equal(render_fused(latents, REGION, SIZE), render_region(Latent(model, image, "cpu"), REGION, SIZE))


def test_the_fusion_changes_the_picture_and_stays_a_picture(fast):
    image = sample_image()
    single = render_region(Latent(fast, image, "cpu"), REGION, SIZE)
    for views in (2, 4, 8):
        fused = render_fused(view_latents(fast, image, "cpu", views), REGION, SIZE)
        assert fused.dtype == np.float32 and fused.shape == single.shape
        assert 0 <= fused.min() and fused.max() <= 1
        assert np.abs(fused - single).mean() > 1e-3, views


def test_fused_progress_runs_over_all_views_and_cancel_stops_it():
    model, image = spread_model("fast"), sample_image()
    told = []
    render_fused(view_latents(model, image, "cpu", 8), REGION, SIZE, progress=told.append)
    assert told == sorted(told) and told[-1] == pytest.approx(1.0)
    assert sum(f <= 0.5 for f in told) >= 4        # the first half of the views report half of the way
    again = []
    with pytest.raises(Cancelled):   # Cancel once the first view is done: no other view is made
        render_fused(view_latents(model, image, "cpu", 8), REGION, SIZE, progress=again.append,
                     cancel=lambda: bool(again) and again[-1] >= 1 / 8)
    assert again[-1] == pytest.approx(1 / 8)


def test_bad_view_counts_are_refused():
    with pytest.raises(ValueError, match="1, 2, 4, 8"):
        view_latents(spread_model("fast"), sample_image(), "cpu", 3)


def read(path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"), dtype=np.float32) / 255


def test_a_fused_export_is_the_fused_render_tiled(tmp_path):
    """Tiles of 16 pixels (6 of them, each from 8 views): no seams, the fused pixels,
    progress after every view of every tile, and the photo's own Latent reused."""
    model, image = spread_model("fast", residual=True), sample_image()
    latent = Latent(model, image, "cpu")
    out = tmp_path / "fused.png"
    steps = list(export_view(latent, None, REGION, SIZE, out, tile=16, views=8))
    fused = render_fused(view_latents(model, image, "cpu", 8), REGION, SIZE)
    assert np.abs(read(out) - fused).max() <= 0.5 / 255 + 1e-6
    assert len(steps) == 6 * 8 + 1 and steps == sorted(steps) and steps[-1] == 1.0
    assert latent.tiles_encoded == 1
    plain = tmp_path / "plain.png"
    list(export_view(latent, None, REGION, SIZE, plain, tile=16))
    assert np.abs(read(plain) - read(out)).max() > 0.02
    assert latent.tiles_encoded == 1     # the plain export reads the tiles the fused one encoded


def test_a_cancelled_fused_export_leaves_no_file(tmp_path):
    latent = Latent(spread_model("fast"), sample_image(), "cpu")
    out = tmp_path / "never.png"
    seen = []
    with pytest.raises(Cancelled):
        for fraction in export_view(latent, None, REGION, SIZE, out, tile=16, views=8,
                                    cancel=lambda: len(seen) >= 3):
            seen.append(fraction)
    assert len(seen) == 3 and seen[-1] < 0.2
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("region", [(21.5, 17.25, 9.75, 6.5), (0.25, 30.5, 8.0, 5.25)])
def test_fusing_a_crop_equals_fusing_the_whole_photo(region):
    """The viewer's deep-zoom fusion encodes, for each turned view, only the crop the
    region reads (and the encoder's halo): the picture is the whole photo's fusion; in the
    middle of the photo and at its border."""
    model = spread_model("fast", residual=True)
    image = sample_image(48, 64, seed=4)
    size, cell = (39, 26), (0.25, 0.25)
    whole = render_fused(view_latents(model, image, "cpu", 8), region, size, cell=cell)
    latent = Latent(model, image, "cpu")
    crop = render_fused_crop(latent, region, size, 8, cell=cell)
    y0, y1, x0, x1 = fusion_crop(latent, region, size)
    assert (y1 - y0) * (x1 - x0) < image.shape[0] * image.shape[1] / 4      # a crop, not the photo
    assert np.abs(crop - whole).max() < 1e-5
    assert np.abs(crop - render_region(latent, region, size, cell=cell)).max() > 1e-3   # fused: not one view
