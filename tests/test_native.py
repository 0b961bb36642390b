"""The fast decoder's fused kernel (model/native.py) and its torch fallback both draw the
paper's picture: against the plain per-query formulation (the reference method, and the
reference written in test_render.py), on cached table
blocks read through offset views, with and without the local ensemble. A machine
without a compiler (or with ZOOMVIEWER_NATIVE=0) gets the torch path and the same
picture, never an error."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from engine_models import sample_image, spread_model
from test_render import full_reference
from zoomviewer.engine.model import native
from zoomviewer.engine.render import Latent, render_region, render_region_reference

needs_kernel = pytest.mark.skipif(native.library() is None, reason="no C compiler here: the torch path runs")


@pytest.mark.parametrize("ensemble, residual", [(True, True), (False, True), (False, False)])
@pytest.mark.parametrize("fused", [True, False])
def test_both_decode_paths_equal_the_plain_formulation(fused, ensemble, residual):
    """Every switch the kernel handles: with and without the local ensemble (four members
    or one) and the residual base."""
    if fused and native.library() is None:
        pytest.skip("no C compiler here: the torch path runs")
    model = spread_model("fast", residual=residual, local_ensemble=ensemble)
    img = sample_image()
    latent = Latent(model, img, "cpu", tile=8)
    h, w = img.shape[:2]
    for region, size in [((0, 0, w, h), (46, 32)), ((2.3, 1.7, 11.1, 7.9), (126, 89)), ((5, 3, 3.1, 2.2), (93, 67))]:
        ours = render_region(latent, region, size, chunk=999, fused=fused)
        ref = render_region_reference(latent, region, size)
        assert ref.std() > 0.05
        assert np.abs(ours - ref).max() <= 1e-5


@pytest.mark.parametrize("fused", [True, False])
def test_both_decode_paths_equal_the_paper_written_out(fused):
    if fused and native.library() is None:
        pytest.skip("no C compiler here: the torch path runs")
    model = spread_model("fast")
    img = sample_image()
    h, w = img.shape[:2]
    latent = Latent(model, img, "cpu", tile=8)
    for scale in (1.7, 4.0, 11.3):
        out_h, out_w = round(h * scale), round(w * scale)
        ours = render_region(latent, (0, 0, w, h), (out_w, out_h), chunk=999, fused=fused)
        assert np.abs(ours - full_reference(model, img, out_h, out_w)).max() <= 1e-5


@needs_kernel
def test_fused_kernel_reads_a_cached_block_through_offset_views():
    """A pan inside a view reads its codes from the middle of the cached table block (a
    view with an offset and the block's strides): the same pixels as the torch path."""
    model = spread_model("fast", seed=3)
    img = sample_image(41, 57, seed=4)
    latent = Latent(model, img, "cpu", tile=16)
    render_region(latent, (0, 0, 57, 41), (57 * 6, 41 * 6))  # caches the whole block at this zoom
    regions = [(13.2, 9.7, 20.0, 12.5), (40.1, 30.3, 16.9, 10.7), (0.0, 28.5, 9.5, 12.5)]
    fused = [render_region(latent, r, (round(r[2] * 6), round(r[3] * 6))) for r in regions]
    latent.forget_planes()
    for r, a in zip(regions, fused):
        b = render_region(latent, r, (round(r[2] * 6), round(r[3] * 6)), fused=False)
        assert a.std() > 0.05
        assert np.abs(a - b).max() <= 2e-6


@needs_kernel
def test_fused_kernel_refuses_codes_outside_the_table():
    """The kernel reads raw memory: an index past the table, or a table of the wrong
    shape, is an error, not a read of whatever lies beyond it."""
    model = spread_model("fast")
    kernel = native.fast_kernel(model, torch.device("cpu"))
    planes = torch.zeros(13, 4, 5, 16)
    out = torch.empty(2, 3, 3)
    rows, cols = np.array([[0, 1], [1, 2]]), np.array([[0, 1, 2], [1, 2, 5]])
    with pytest.raises(IndexError):
        kernel.decode(planes, rows, np.zeros((2, 2)), cols, np.zeros((2, 3)), out)
    with pytest.raises(ValueError):  # a table with a part missing would be read past its end
        kernel.decode(planes[:12], rows, np.zeros((2, 2)), cols[:, :2].clip(0, 4), np.zeros((2, 2)), out[:, :2])


def test_no_compiler_means_the_torch_path(monkeypatch, tmp_path):
    """Where the kernel cannot be built the viewer still renders: no exception, the torch
    path, the same picture."""
    monkeypatch.setenv("CC", str(tmp_path / "no-such-compiler"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setattr(native, "_state", {})
    assert native.library() is None
    model = spread_model("fast")
    assert native.fast_kernel(model, torch.device("cpu")) is None
    img = sample_image()
    h, w = img.shape[:2]
    ours = render_region(Latent(model, img, "cpu", tile=8), (0, 0, w, h), (w * 3, h * 3))
    assert np.abs(ours - full_reference(model, img, h * 3, w * 3)).max() <= 1e-5


@needs_kernel
def test_a_broken_cached_build_is_built_again(monkeypatch, tmp_path):
    """A cached build that does not load (a half-written or damaged file) is replaced,
    not a reason to lose the fast path for good."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.setattr(native, "_state", {})
    target = native.build_path(native._compiler())
    target.parent.mkdir(parents=True)
    target.write_bytes(b"not a shared library")
    assert native.library() is not None
    assert target.stat().st_size > 1000


def test_switched_off_or_unsupported_decoders_take_the_torch_path(monkeypatch):
    monkeypatch.setattr(native, "_state", {})
    monkeypatch.setenv("ZOOMVIEWER_NATIVE", "0")
    assert native.fast_kernel(spread_model("fast"), torch.device("cpu")) is None
    monkeypatch.setattr(native, "_state", {})
    monkeypatch.delenv("ZOOMVIEWER_NATIVE")
    assert native.fast_kernel(spread_model("liif"), torch.device("cpu")) is None
    assert native.fast_kernel(spread_model("fast", width=8), torch.device("cpu")) is None
