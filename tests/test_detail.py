"""The detail map and its regions (engine/detail.py): flat sky scores below texture, with
the shipped model and without one, on a synthetic photo and on a Kodak photo; the
regions are the best windows, ranked and apart; a 12 MP photo's working copy stays
small; faces come first in the suggestions and hide the detail regions they cover."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from zoomviewer.engine.bundled import shipped_weights
from zoomviewer.engine.detail import (WORK_PIXELS, DetailMap, DetailRegion, detail_map, detail_regions, iou,
                                      suggestions, working_copy)
from zoomviewer.engine.latent import Latent
from zoomviewer.engine.model import load_weights

KODAK = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "bench" / "Kodak24"


def sky_and_texture(seed: int, w: int = 256, h: int = 192) -> np.ndarray:
    """Flat sky (a faint gradient) on top; below, random 6-pixel blocks of colour (texture
    and edges everywhere)."""
    rng = np.random.default_rng(seed)
    yy = np.mgrid[0:h, 0:w][0]
    img = np.stack([0.45 + 0.1 * yy / h, 0.6 + 0.1 * yy / h, 0.9 + 0 * yy], -1).astype(np.float32)
    blocks = rng.random((h // 6 + 1, w // 6 + 1, 3), dtype=np.float32).repeat(6, 0).repeat(6, 1)[:h, :w]
    img[h // 2:] = blocks[h // 2:]
    return img


@pytest.fixture(scope="module")
def shipped_fast():
    path = shipped_weights("fast")
    if path is None:
        pytest.skip("the shipped fast model is not installed")
    return load_weights(path)[0]


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("measure", ["model", "no model"])
def test_textured_cells_always_rank_above_the_sky(shipped_fast, seed, measure):
    img = sky_and_texture(seed)
    dmap = detail_map(shipped_fast if measure == "model" else None, img, 32)
    rows = dmap.values.shape[0]
    assert dmap.values.shape == (6, 8) and dmap.cell == 32
    sky, texture = dmap.values[:rows // 2], dmap.values[rows // 2:]
    assert texture.min() > 3 * sky.max()
    regions = detail_regions(dmap)
    assert regions and all(r.rect[1] >= 96 for r in regions)        # every suggestion in the texture


@pytest.mark.skipif(not (KODAK / "kodim20.png").is_file(), reason="Kodak24 is not in ../shared/data/bench")
def test_on_a_kodak_photo_the_sky_ranks_below_the_plane(shipped_fast):
    img = np.asarray(Image.open(KODAK / "kodim20.png").convert("RGB"), dtype=np.float32) / 255
    dmap = detail_map(shipped_fast, img, 32)
    sky_box = (480, 0, 288, 160)                      # clear sky above the wing, right of the propeller
    sky = dmap.values[:5, 15:]
    assert sky.max() < 0.25 * dmap.values.max()
    assert all(iou(r.rect, sky_box) == 0 for r in detail_regions(dmap))


def test_regions_are_the_best_windows_ranked_and_apart():
    values = np.zeros((10, 12), np.float32)
    values[2, 3], values[7, 9], values[2, 4] = 1.0, 0.8, 0.9      # two hot spots, one of two cells
    dmap = DetailMap(values, 10.0, (120, 100))
    first, second = detail_regions(dmap, k=5, cells=3)          # and nothing else: the rest is cold
    assert first.score == pytest.approx(1.9 / 9) and second.score == pytest.approx(0.8 / 9)
    assert first.rect == (20, 10, 30, 30)                          # both hot cells, the hotter in the middle
    assert second.rect == (80, 60, 30, 30)                         # the lone hot cell in the middle
    assert iou(first.rect, second.rect) == 0


def test_regions_never_overlap_more_than_asked():
    rng = np.random.default_rng(5)
    dmap = DetailMap(rng.random((16, 24)).astype(np.float32), 32.0, (768, 512))
    for overlap in (0.0, 0.1):
        regions = detail_regions(dmap, k=8, overlap=overlap, min_share=0)
        assert len(regions) == 8
        assert all(iou(a.rect, b.rect) <= overlap for i, a in enumerate(regions) for b in regions[i + 1:])


def test_a_12_megapixel_photo_is_measured_on_a_small_copy():
    img = np.zeros((3000, 4000, 3), np.float32)
    img[1500:, 2000:] = 1.0                           # one bright quarter
    small, (per_x, per_y) = working_copy(img)
    assert small.shape[0] * small.shape[1] <= WORK_PIXELS and small.dtype == np.float32
    assert per_x == pytest.approx(4000 / small.shape[1], rel=0.01) and per_y == pytest.approx(3000 / small.shape[0], rel=0.01)
    assert small[-1, -1].tolist() == [1, 1, 1] and small[0, 0].tolist() == [0, 0, 0]
    dmap = detail_map(None, img, 32)
    assert dmap.cell >= 4 * per_x                     # a cell is never a single working pixel
    hot = np.unravel_index(np.argmax(dmap.values), dmap.values.shape)
    x, y, w, h = dmap.cell_rect(*hot)
    assert abs(x + w / 2 - 2000) <= dmap.cell and y + h / 2 >= 1500 - dmap.cell    # on the quarter's edge


def test_a_latent_of_the_photo_itself_is_reused(shipped_fast):
    img = sky_and_texture(0, 128, 96)
    latent = Latent(shipped_fast, img, "cpu", keep_codes=False)
    by_latent = detail_map(latent, img, 32)
    assert latent.tiles_encoded == 1                  # its tiles are what the viewer renders from next
    np.testing.assert_allclose(by_latent.values, detail_map(shipped_fast, img, 32).values, atol=1e-4)


def test_faces_come_first_and_hide_the_details_they_cover():
    face = DetailRegion((100, 100, 60, 60), 3.0, "face")
    on_face = DetailRegion((90, 90, 90, 90), 0.5)
    elsewhere = DetailRegion((300, 0, 90, 90), 0.4)
    assert suggestions([face], [on_face, elsewhere]) == [face, elsewhere]
    assert suggestions([], [on_face, elsewhere]) == [on_face, elsewhere]
