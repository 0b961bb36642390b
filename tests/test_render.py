"""render_region is exactly LIIF: against a plain reference written here from docs/LIIF.md
section 1 (and section 5 for the fast decoder), for regions, chunk sizes and both paths."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from engine_models import spread_model, sample_image
from zoomviewer.engine.render import Cancelled, Latent, deep_zoom_step, render_region, render_region_reference, render_sparse

SCALES = [1, 2.5, 4, 12.3]


def make_coord(n: int) -> torch.Tensor:
    return -1 + (2 * torch.arange(n, dtype=torch.float32) + 1) / n


def reference_liif(model, feat: torch.Tensor, coord: torch.Tensor, cell: torch.Tensor) -> torch.Tensor:
    """docs/LIIF.md section 1, steps 1-7, written without any of the renderer's shortcuts.
    feat (1,C,H,W); coord, cell (Q,2) normalised (y, x) -> RGB (Q,3) in [0,1]."""
    _, c, h, w = feat.shape
    feat = F.unfold(feat, 3, padding=1).view(1, c * 9, h, w)
    centres = torch.stack(torch.meshgrid(make_coord(h), make_coord(w), indexing="ij"), 0)[None]
    preds, areas = [], []
    for vy in (-1, 1):
        for vx in (-1, 1):
            q = coord.clone()
            q[:, 0] += vy / h + 1e-6  # one shift value, as the reference code adds it
            q[:, 1] += vx / w + 1e-6
            q.clamp_(-1 + 1e-6, 1 - 1e-6)
            grid = q.flip(-1)[None, None]
            q_feat = F.grid_sample(feat, grid, mode="nearest", align_corners=False)[0, :, 0].t()
            q_centre = F.grid_sample(centres, grid, mode="nearest", align_corners=False)[0, :, 0].t()
            rel = (coord - q_centre) * torch.tensor([h, w])
            rel_cell = cell * torch.tensor([h, w])
            preds.append(decoder_reference(model, q_feat, rel, rel_cell))
            areas.append((rel[:, 0] * rel[:, 1]).abs() + 1e-9)
    total = sum(areas)
    areas = [areas[3], areas[2], areas[1], areas[0]]
    out = sum(p * (a / total)[:, None] for p, a in zip(preds, areas))
    return (out * 0.5 + 0.5).clamp(0, 1)


def decoder_reference(model, q_feat, rel, rel_cell):
    if model.kind == "liif":
        x = torch.cat([q_feat, rel, rel_cell], -1)
        for layer in model.imnet.layers:
            x = layer(x)
        return x
    # docs/LIIF.md section 5: latent MLP on [feature, rel_cell] -> 16-value code and 6 x (scale, shift)
    z = model.latent_out(torch.relu(model.latent_in(torch.cat([q_feat, rel_cell], -1))))
    code, mods = z[:, :16], z[:, 16:].reshape(-1, 6, 2, 16)
    h = model.render_in(torch.cat([code, rel, rel_cell], -1))
    for i in range(6):
        if i:
            h = model.render_hidden[i - 1](h)
        h = torch.relu(h * (1 + mods[:, i, 0]) + mods[:, i, 1])
    return model.render_out(h)


def full_reference(model, img: np.ndarray, out_h: int, out_w: int) -> np.ndarray:
    with torch.no_grad():
        feat = model.encoder(torch.from_numpy((img - 0.5) / 0.5).permute(2, 0, 1)[None])
        coord = torch.stack(torch.meshgrid(make_coord(out_h), make_coord(out_w), indexing="ij"), -1).reshape(-1, 2)
        cell = torch.tensor([2 / out_h, 2 / out_w]).expand_as(coord)
        return reference_liif(model, feat, coord, cell).reshape(out_h, out_w, 3).numpy()


@pytest.fixture(scope="module", params=["liif", "fast"])
def setup(request):
    model = spread_model(request.param)
    img = sample_image()
    return model, img, Latent(model, img, "cpu", tile=8)


@pytest.mark.parametrize("scale", SCALES)
def test_full_render_equals_paper_formulation(setup, scale):
    model, img, latent = setup
    h, w = img.shape[:2]
    out_h, out_w = round(h * scale), round(w * scale)
    ours = render_region(latent, (0, 0, w, h), (out_w, out_h), chunk=777)
    ref = full_reference(model, img, out_h, out_w)
    assert ours.shape == (out_h, out_w, 3)
    assert ref.std() > 0.05  # a meaningful picture, not flat grey
    assert np.abs(ours - ref).max() <= 1e-5


def test_minified_render_equals_paper_formulation(setup):
    """Below x1 neighbouring pixels skip codes, so the renderer gathers codes instead of
    taking slices of the table: still the same picture. (2e-5: the fast model's table
    folds the latent MLP into one affine map, a different summation order; with these
    deliberately large test weights that reaches 1.3e-5 here, 0.003/255.)"""
    model, img, latent = setup
    h, w = img.shape[:2]
    out_h, out_w = round(h * 0.6), round(w * 0.6)
    ours = render_region(latent, (0, 0, w, h), (out_w, out_h))
    assert np.abs(ours - full_reference(model, img, out_h, out_w)).max() <= 2e-5


@pytest.mark.parametrize("scale", [2.5, 12.3])
def test_sub_region_is_crop_of_full_render(setup, scale):
    model, img, latent = setup
    h, w = img.shape[:2]
    out_h, out_w = round(h * scale), round(w * scale)
    full = render_region(latent, (0, 0, w, h), (out_w, out_h))
    sy, sx = h / out_h, w / out_w
    for (i0, j0, n_i, n_j) in [(0, 0, 5, 9), (7, 13, 11, 17), (out_h - 6, out_w - 4, 6, 4)]:
        part = render_region(latent, (j0 * sx, i0 * sy, n_j * sx, n_i * sy), (n_j, n_i))
        assert np.abs(part - full[i0:i0 + n_i, j0:j0 + n_j]).max() <= 1e-5


def test_chunk_size_and_reference_method_agree(setup):
    model, img, latent = setup
    region, size = (3.3, 2.1, 14.2, 9.7), (61, 37)
    a = render_region(latent, region, size, chunk=64)
    b = render_region(latent, region, size, chunk=100_000)
    c = render_region(latent, region, size, chunk=1000, table_budget=1)  # one code row per band
    d = render_region_reference(latent, region, size, chunk=500)
    assert np.array_equal(a, b) or np.abs(a - b).max() <= 1e-6
    assert np.abs(a - c).max() <= 1e-6
    assert np.abs(a - d).max() <= 1e-5


@pytest.mark.parametrize("kind", ["liif", "fast"])
def test_residual_option_adds_bilinear_source(kind):
    """With the residual option and a decoder that predicts zero, a render is the bilinear
    upsampling of the photo (grid_sample, border), so low-quality weights still look right."""
    model = spread_model(kind, residual=True)
    with torch.no_grad():
        last = model.imnet.layers[-1] if kind == "liif" else model.render_out
        last.weight.zero_()
        last.bias.zero_()
    img = sample_image()
    out = render_region(Latent(model, img, "cpu"), (0, 0, 27, 19), (61, 43))
    src = torch.from_numpy(img).permute(2, 0, 1)[None]
    expect = F.interpolate(src, size=(43, 61), mode="bilinear", align_corners=False)[0].permute(1, 2, 0).numpy()
    assert np.abs(out - expect).max() <= 1e-5


def test_ablation_flags_follow_the_paper():
    """Without the local ensemble each output pixel takes exactly one code: a render is then
    piecewise constant in the code index when rel_coord and cell do not matter."""
    model = spread_model("liif", local_ensemble=False, cell_decode=False, feat_unfold=False)
    assert model.imnet.layers[0].in_features == 16 + 2
    with torch.no_grad():
        model.imnet.layers[0].weight[:, 16:].zero_()
    img = sample_image()
    out = render_region(Latent(model, img, "cpu"), (0, 0, 27, 19), (108, 76))
    block = out[4:8, 8:12]  # one source pixel at x4
    assert np.abs(block - block[0, 0]).max() <= 1e-6
    assert np.abs(out[4, 8] - out[4, 12]).max() > 1e-4


def test_cancel_stops_between_chunks(setup):
    _, _, latent = setup
    seen = []
    with pytest.raises(Cancelled):
        render_region(latent, (0, 0, 27, 19), (270, 190), chunk=270 * 10,
                      progress=seen.append, cancel=lambda: len(seen) >= 3)
    assert len(seen) == 3 and seen[-1] < 0.5


def test_progress_reaches_one(setup):
    _, _, latent = setup
    seen = []
    render_region(latent, (0, 0, 27, 19), (100, 70), chunk=1000, progress=seen.append)
    assert seen == sorted(seen) and seen[-1] == 1.0


def test_cell_clip_changes_only_scales_above_four(setup):
    model, img, latent = setup
    for size, differs in (((54, 38), False), ((270, 190), True)):
        a = render_region(latent, (0, 0, 27, 19), size)
        b = render_region(latent, (0, 0, 27, 19), size, cell_clip=True)
        assert (np.abs(a - b).max() > 1e-4) == differs


def test_bad_regions_are_refused(setup):
    _, _, latent = setup
    for region, size in (((0, 0, 0, 5), (10, 10)), ((0, 0, 5, 5), (0, 10)), ((0, 0, float("nan"), 5), (4, 4))):
        with pytest.raises(ValueError):
            render_region(latent, region, size)


def test_bands_on_several_workers_give_the_same_picture(setup):
    """The viewer decodes bands of rows on parallel workers; a user must see the same
    picture as from one worker, and a cancel must still stop them all."""
    model, img, latent = setup
    h, w = img.shape[:2]
    one = render_region(latent, (0, 0, w, h), (w * 5, h * 5), workers=1)
    done = []
    three = render_region(latent, (0, 0, w, h), (w * 5, h * 5), workers=3, progress=done.append)
    assert np.abs(one - three).max() <= 1e-6
    assert done[-1] == pytest.approx(1.0) and max(done) <= 1.0 + 1e-9
    calls = []

    def cancel() -> bool:
        calls.append(1)
        return len(calls) > 2

    with pytest.raises(Cancelled):
        render_region(latent, (0, 0, w, h), (w * 5, h * 5), workers=3, cancel=cancel, chunk=64)


def test_sparse_render_is_exact_on_its_samples_and_linear_between(setup):
    """The optional deep-zoom approximation decodes every step-th pixel each way: those
    pixels are the exact render's, every other pixel lies between its four samples, and
    step 1 is the exact render itself."""
    _, _, latent = setup
    region, size = (3.3, 2.1, 14.2, 9.7), (142, 97)
    exact = render_region(latent, region, size)
    assert np.array_equal(render_sparse(latent, region, size, 1), exact)
    sparse = render_sparse(latent, region, size, 3)
    assert sparse.shape == exact.shape
    assert np.abs(sparse[1::3, 1::3] - exact[1::3, 1::3]).max() <= 1e-5   # the sample centres
    assert np.abs(sparse - exact).max() > 1e-3                          # and an approximation elsewhere
    samples = sparse[1::3, 1::3]
    lo = np.minimum.reduce([samples[:-1, :-1], samples[:-1, 1:], samples[1:, :-1], samples[1:, 1:]])
    hi = np.maximum.reduce([samples[:-1, :-1], samples[:-1, 1:], samples[1:, :-1], samples[1:, 1:]])
    between = sparse[2:-3:3, 2:-3:3]  # a pixel inside each square of four samples
    assert (between >= lo[:between.shape[0], :between.shape[1]] - 1e-6).all()
    assert (between <= hi[:between.shape[0], :between.shape[1]] + 1e-6).all()


def test_deep_zoom_step_starts_at_twelve():
    assert [deep_zoom_step(s) for s in (1, 4, 11.9, 12, 17.9, 18, 24, 100)] == [1, 1, 1, 2, 2, 3, 4, 4]


def test_sparse_tiles_on_one_global_grid_meet_without_a_seam(setup):
    """The viewer renders tiles separately: with the tiles' global origins, two halves of
    a view are the whole view's sparse render (no seam where the sample grids meet)."""
    _, _, latent = setup
    region, size, step = (3.3, 2.1, 14.2, 9.7), (142, 97), 3
    whole = render_sparse(latent, region, size, step, (50, 20))
    px = region[2] / size[0]
    left = render_sparse(latent, (region[0], region[1], 61 * px, region[3]), (61, 97), step, (50, 20))
    right = render_sparse(latent, (region[0] + 61 * px, region[1], 81 * px, region[3]), (81, 97), step, (111, 20))
    assert np.abs(np.concatenate([left, right], 1) - whole).max() <= 1e-5


@pytest.mark.parametrize("relu", [False, True])
def test_cpu_linear_kernel_equals_plain_linear(relu):
    """The oneDNN path the renderer takes on the CPU is F.linear (and ReLU), batched
    leading dimensions included; training keeps autograd."""
    from zoomviewer.engine.model.kernels import linear
    torch.manual_seed(0)
    x, w, b = torch.randn(2, 2, 3, 4, 5, 7, 16), torch.randn(16, 16) / 4, torch.randn(16)
    plain = F.linear(x, w, b)
    plain = plain.relu() if relu else plain
    with torch.no_grad():
        assert torch.allclose(linear(x, w, b, relu=relu), plain, atol=1e-5, rtol=1e-5)
    x.requires_grad_(True)
    linear(x, w, b, relu=relu).sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_renderers_stacked_weights_are_the_ensembles_weights():
    """The torch path blends members with stacked_blend_weights (laid out for its
    chunks); those are ensemble.blend_weights' weights, to the last bit or two of the
    sum's order, with the local ensemble and without."""
    from zoomviewer.engine.model.liif import blend_weights, stacked_blend_weights
    torch.manual_seed(0)
    ry, rx = torch.rand(2, 500) * 4 - 2, torch.rand(2, 500) * 4 - 2
    ry[:, :20] = 0  # points on a code centre: two areas are AREA_EPS alone
    stacked = stacked_blend_weights(ry[:, None], rx[None, :])
    for k, w in enumerate(blend_weights(list(ry), list(rx))):
        assert torch.allclose(stacked[k // 2, k % 2], w, rtol=3e-7, atol=0)
    assert torch.equal(stacked_blend_weights(ry[:1, None], rx[None, :1]), torch.ones(1, 1, 500))
