"""Viewer geometry and the Explain overlay's arithmetic, without Qt: anchored zoom, exact
panning, fit, the render target on the screen's pixel grid, tiles that can be reused,
and the four latent codes (and weights) that really decide a pixel."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from zoomviewer.engine.explain import code_weights, ensemble_members, grid_lines
from zoomviewer.engine.geometry import View, render_target, tile_parts, zoom_limits
from zoomviewer.engine.model import blend_weights, ensemble_axis
from zoomviewer.engine.render import Latent, render_region


def test_screen_and_image_transforms_are_inverse():
    view = View(123.4, 56.7, 3.3, 800, 600)
    sx, sy = np.array([0.0, 17.5, 799.0]), np.array([3.0, 300.0, 599.5])
    back = view.image_to_screen(*view.screen_to_image(sx, sy))
    np.testing.assert_allclose(back, (sx, sy), atol=1e-9)


@pytest.mark.parametrize("factor", [1.19, 2.0, 0.5, 1 / 1.19, 100.0])
def test_zoom_at_keeps_the_point_under_the_cursor(factor):
    view = View(40.0, 30.0, 2.5, 640, 480)
    cursor = (501.3, 97.0)
    before = view.screen_to_image(*cursor)
    zoomed = view.zoom_at(*cursor, factor, *zoom_limits(64, 48, 640, 480))
    np.testing.assert_allclose(zoomed.screen_to_image(*cursor), before, atol=1e-9)
    # and snapping to the pixel grid moves that point by less than half a device pixel
    snapped = zoomed.snapped()
    assert abs(snapped.image_to_screen(*before)[0] - cursor[0]) <= 0.5 + 1e-9


def test_zoom_stops_at_the_limits_and_keeps_the_anchor():
    view = View(32, 24, 60.0, 640, 480)
    lo, hi = zoom_limits(64, 48, 640, 480)
    assert hi >= 64
    zoomed = view.zoom_at(100, 100, 4.0, lo, hi)
    assert zoomed.zoom == hi
    np.testing.assert_allclose(zoomed.screen_to_image(100, 100), view.screen_to_image(100, 100), atol=1e-9)


def test_fit_100_percent_and_x64_are_all_reachable():
    for img in [(64, 48), (6000, 4000)]:
        lo, hi = zoom_limits(*img, 1280, 800)
        fit = View.fit(*img, 1280, 800).zoom
        assert lo <= min(fit, 1.0) and hi >= 64


def test_pan_moves_the_picture_by_exactly_the_dragged_amount():
    view = View(20.0, 10.0, 7.3, 300, 200)
    point = (12.25, 8.5)
    sx, sy = view.image_to_screen(*point)
    moved = view.pan_by(37, -11)
    np.testing.assert_allclose(moved.image_to_screen(*point), (sx + 37, sy - 11), atol=1e-9)


def test_fit_shows_the_whole_photo_centred():
    view = View.fit(640, 480, 1000, 600)
    x, y, w, h = view.visible_region()
    assert view.zoom == pytest.approx(600 / 480)
    assert y == pytest.approx(0) and h == pytest.approx(480)          # touches top and bottom
    assert x + w / 2 == pytest.approx(320) and w >= 640               # centred, all columns in


def test_render_target_samples_the_screen_pixel_centres():
    """Render pixel (i, j) is the query at the source point under screen pixel (i, j)."""
    view = View(30.3, 20.1, 5.7, 200, 150).snapped()
    target = render_target(view, 64, 48)
    x0, y0, x1, y1 = target.screen_rect
    x, y, w, h = target.region
    out_w, out_h = target.out_size
    assert (out_w, out_h) == (x1 - x0, y1 - y0)
    cols = x0 + np.arange(out_w) + 0.5
    rows = y0 + np.arange(out_h) + 0.5
    np.testing.assert_allclose(x + (np.arange(out_w) + 0.5) * w / out_w, view.screen_to_image(cols, 0)[0], atol=1e-9)
    np.testing.assert_allclose(y + (np.arange(out_h) + 0.5) * h / out_h, view.screen_to_image(0, rows)[1], atol=1e-9)


def test_render_target_is_only_the_photo_when_zoomed_out():
    view = View.fit(64, 48, 300, 100).snapped()     # pillarboxed: bars left and right
    x0, y0, x1, y1 = render_target(view, 64, 48).screen_rect
    left, right = view.image_to_screen([0, 64], 0)[0]
    assert x0 == np.floor(left) and x1 == np.ceil(right - 1e-6) and (y0, y1) == (0, 100)


def test_tiles_cover_the_target_once_and_repeat_exactly_after_a_pan():
    view = View(30.3, 20.1, 5.7, 200, 150).snapped()
    target = render_target(view, 64, 48)
    parts = tile_parts(view, 64, 48, tile=64)
    ox, oy = view.origin
    cover = np.zeros((150, 200), dtype=int)
    for p in parts:
        cover[p.rect[1] - oy:p.rect[3] - oy, p.rect[0] - ox:p.rect[2] - ox] += 1
    x0, y0, x1, y1 = target.screen_rect
    assert (cover[y0:y1, x0:x1] == 1).all() and cover.sum() == (x1 - x0) * (y1 - y0)
    # the same tile seen from a panned view asks for the same source region: reusable
    panned = view.pan_by(-40, 0).snapped()
    again = {p.key: p for p in tile_parts(panned, 64, 48, tile=64)}
    for p in parts:
        q = again.get(p.key)
        if q is not None and q.rect == p.rect:
            assert q.region == p.region and q.out_size == p.out_size


# ------------------------------------------------------------------------------ Explain

POINTS = [(10.3, 7.8), (0.2, 0.1), (63.9, 47.6), (31.5001, 20.49), (5.0, 40.75)]


@pytest.mark.parametrize("point", POINTS)
def test_explain_weights_sum_to_one_and_name_the_decoders_codes(point):
    x, y = point
    members = ensemble_members(x, y, 64, 48)
    assert sum(m.weight for m in members) == pytest.approx(1.0, abs=1e-6)
    assert sum(code_weights(members).values()) == pytest.approx(1.0, abs=1e-6)
    # the decoder's own index and weight code (model.liif) for the same query
    cy = torch.tensor([-1 + 2 * y / 48], dtype=torch.float64).float()
    cx = torch.tensor([-1 + 2 * x / 64], dtype=torch.float64).float()
    ys, xs = ensemble_axis(cy, 48, True), ensemble_axis(cx, 64, True)
    weights = blend_weights([r for _, r in ys], [r for _, r in xs])
    expected = [(int(iy), int(ix)) for iy, _ in ys for ix, _ in xs]
    assert [(m.row, m.col) for m in members] == expected
    np.testing.assert_allclose([m.weight for m in members], [float(w) for w in weights], atol=1e-6)


@pytest.mark.parametrize("local_ensemble", [True, False])
@pytest.mark.parametrize("size", [(64, 48), (7, 3), (1999, 1333)])
def test_explain_names_the_renderers_codes_and_weights_bit_for_bit(size, local_ensemble):
    """At many random source points (and on code centres and boundaries, where a rounding
    decides the code), the overlay's members, rel_coords and weights are exactly the
    renderer's (model.liif on torch float32), not merely close."""
    w, h = size
    rng = np.random.default_rng(w)
    points = np.concatenate([rng.uniform(0, 1, (300, 2)) * (w, h),
                             np.stack([np.arange(40) % w + 0.5, np.arange(40) % h], 1),   # centres and edges
                             [(0.0, 0.0), (w, h), (w - 1e-4, 1e-4)]])
    cy = torch.tensor(-1 + 2 * points[:, 1] / h, dtype=torch.float64).float()
    cx = torch.tensor(-1 + 2 * points[:, 0] / w, dtype=torch.float64).float()
    ys, xs = ensemble_axis(cy, h, local_ensemble), ensemble_axis(cx, w, local_ensemble)
    weights = blend_weights([r for _, r in ys], [r for _, r in xs])
    for k, (x, y) in enumerate(points):
        members = ensemble_members(x, y, w, h, local_ensemble)
        expected = [(int(iy[k]), int(ix[k]), float(ry[k]), float(rx[k])) for iy, ry in ys for ix, rx in xs]
        assert [(m.row, m.col, *m.rel) for m in members] == expected
        assert [m.weight for m in members] == [float(wt[k]) for wt in weights]


def test_explain_weights_are_bilinear_between_the_four_nearest_code_centres():
    members = ensemble_members(10.75, 7.25, 64, 48)      # 1/4 of a cell right of centre 10.5, ...
    w = {(m.row, m.col): m.weight for m in members}
    assert set(w) == {(6, 10), (6, 11), (7, 10), (7, 11)}
    assert w[(7, 10)] == pytest.approx(0.75 * 0.75, abs=1e-5)   # nearest code: 0.75 x 0.75
    assert w[(6, 11)] == pytest.approx(0.25 * 0.25, abs=1e-5)


@pytest.mark.parametrize("point", POINTS[:3])
def test_explain_blend_reproduces_the_rendered_colour(tiny_model, small_image, point):
    """Each named code's own prediction, blended with the named weights, is the colour
    the renderer draws at that point."""
    x, y = point
    latent = Latent(tiny_model, small_image, device="cpu")
    # a 1x1 render of a tiny square centred on the point queries exactly (x, y)
    rendered = render_region(latent, (x - 0.005, y - 0.005, 0.01, 0.01), (1, 1))[0, 0]
    with torch.no_grad():
        feat = latent.encode_all()[None]
        unfolded = torch.nn.functional.unfold(feat, 3, padding=1).view(1, -1, 48, 64)[0]
        cell = torch.tensor([[0.02, 0.02]])   # 2 x (source px per output px), as render_region sets it
        blend = 0
        for m in ensemble_members(x, y, 64, 48):
            pred = tiny_model.plain_decode(unfolded[:, m.row, m.col][None], torch.tensor([m.rel]), cell)
            blend = blend + pred[0].numpy() * m.weight
    np.testing.assert_allclose(np.clip(blend * 0.5 + 0.5, 0, 1), rendered, atol=1e-5)

def test_latent_grid_only_when_cells_are_visible():
    assert len(grid_lines(View(32, 24, 2.0, 200, 150), 64, 48)[0]) == 0
    xs, ys = grid_lines(View(32, 24, 20.0, 200, 150), 64, 48)
    assert len(xs) == 11 and len(ys) == 7                     # 10 x 7.5 cells are on screen
    np.testing.assert_allclose(np.diff(xs), 20.0)
