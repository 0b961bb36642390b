"""The fast decoder's fused kernel (model/native.py) and its torch fallback both draw the
paper's picture: against the plain per-query formulation (the reference method, and the
reference written in test_render.py), on cached code tables read through offset views,
with and without the local ensemble. A machine without a compiler (or with
ZOOMVIEWER_NATIVE=0) gets the torch path and the same picture, never an error. The
kernel reads raw memory, so every malformed input is refused before it runs; its builds
live in a cache that machines can share."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from engine_models import sample_image, spread_model
from test_render import full_reference
from zoomviewer.engine import ensemble
from zoomviewer.engine.model import native
from zoomviewer.engine.render import Latent, render_region, render_region_reference
from zoomviewer.engine.render.torch_decode import decode_band
from zoomviewer.engine.model.native import decode_with, view_inputs
from zoomviewer.lab.bench_kernel import bench_kernel_builds


@pytest.fixture
def needs_kernel():
    """Asked at run time, not at collection: the build goes to the session's cache."""
    if native.library() is None:
        pytest.skip("no C compiler here: the torch path runs")


@pytest.fixture
def fresh_native():
    """library() looks for a build again in this test's environment, and once more after
    it, so that later tests get the session's build back."""
    native.reset()
    yield
    native.reset()


@pytest.mark.parametrize("ensemble, residual, unfold", [(True, True, True), (False, True, True), (False, False, True),
                                                       (True, True, False)])
@pytest.mark.parametrize("fused", [True, False])
def test_both_decode_paths_equal_the_plain_formulation(fused, ensemble, residual, unfold):
    """Every switch the kernel handles: with and without the local ensemble (four members
    or one) and the residual base; and the preview's first layer over each code alone
    (no 3x3 unfold)."""
    if fused and native.library() is None:
        pytest.skip("no C compiler here: the torch path runs")
    model = spread_model("fast", residual=residual, local_ensemble=ensemble, feat_unfold=unfold)
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


@pytest.mark.usefixtures("needs_kernel")
def test_fused_kernel_reads_a_cached_table_through_offset_views():
    """A pan inside a view reads its codes from the middle of the cached code table (a
    view with an offset and the table's strides): the same pixels as the torch path."""
    model = spread_model("fast", seed=3)
    img = sample_image(41, 57, seed=4)
    latent = Latent(model, img, "cpu", tile=16)
    render_region(latent, (0, 0, 57, 41), (57 * 6, 41 * 6))  # caches the whole photo's table at this zoom
    regions = [(13.2, 9.7, 20.0, 12.5), (40.1, 30.3, 16.9, 10.7), (0.0, 28.5, 9.5, 12.5)]
    fused = [render_region(latent, r, (round(r[2] * 6), round(r[3] * 6))) for r in regions]
    latent.forget_tables()
    for r, a in zip(regions, fused):
        b = render_region(latent, r, (round(r[2] * 6), round(r[3] * 6)), fused=False)
        assert a.std() > 0.05
        assert np.abs(a - b).max() <= 2e-6


def test_no_compiler_means_the_torch_path(monkeypatch, tmp_path, fresh_native):
    """Where the kernel cannot be built the viewer still renders: no exception, the torch
    path, the same picture."""
    monkeypatch.setenv("CC", str(tmp_path / "no-such-compiler"))
    monkeypatch.setenv("ZOOMVIEWER_CACHE_DIR", str(tmp_path / "cache"))
    assert native.library() is None
    model = spread_model("fast")
    assert native.fast_kernel(model, torch.device("cpu")) is None
    img = sample_image()
    h, w = img.shape[:2]
    ours = render_region(Latent(model, img, "cpu", tile=8), (0, 0, w, h), (w * 3, h * 3))
    assert np.abs(ours - full_reference(model, img, h * 3, w * 3)).max() <= 1e-5


@pytest.mark.usefixtures("needs_kernel")
def test_a_broken_cached_build_is_built_again(monkeypatch, tmp_path, fresh_native):
    """A cached build that does not load (a half-written or damaged file) is replaced,
    not a reason to lose the fast path for good."""
    monkeypatch.setenv("ZOOMVIEWER_CACHE_DIR", str(tmp_path))
    target = native.build_path(native.find_compiler())
    target.parent.mkdir(parents=True)
    target.write_bytes(b"not a shared library")
    assert native.library() is not None
    assert target.stat().st_size > 1000


def test_switched_off_or_unsupported_decoders_take_the_torch_path(monkeypatch, fresh_native):
    monkeypatch.setenv("ZOOMVIEWER_NATIVE", "0")
    assert native.fast_kernel(spread_model("fast"), torch.device("cpu")) is None
    native.reset()
    monkeypatch.delenv("ZOOMVIEWER_NATIVE")
    assert native.fast_kernel(spread_model("liif"), torch.device("cpu")) is None
    assert native.fast_kernel(spread_model("fast", width=8), torch.device("cpu")) is None


# ------------------------------------------------------------- what the kernel may read

def kernel_inputs() -> dict:
    """A well-formed decode of 2 x 3 pixels, four members, with the residual base: a
    table of 4 x 5 codes and a source window of 6 x 7 pixels."""
    return {"table": torch.zeros(13, 4, 5, 16),
            "row_code": np.array([[0, 1], [1, 2]]), "row_rel": np.zeros((2, 2), np.float32),
            "col_code": np.array([[0, 1, 2], [1, 2, 3]]), "col_rel": np.zeros((2, 3), np.float32),
            "out": torch.empty(2, 3, 3),
            "base": (torch.zeros(3, 6, 7), np.array([[0, 1], [1, 2]]), np.zeros(2, np.float32),
                     np.array([[0, 1, 2], [1, 2, 3]]), np.zeros(3, np.float32))}


def with_base(part: int, value):
    """A change to one of the residual base's arrays."""
    def change(args: dict) -> None:
        base = list(args["base"])
        base[part] = value
        args["base"] = tuple(base)
    return change


MALFORMED = {
    "a row code past the table": (IndexError, lambda a: a.update(row_code=np.array([[0, 1], [1, 4]]))),
    "a column code past the table": (IndexError, lambda a: a.update(col_code=np.array([[0, 1, 2], [1, 2, 5]]))),
    "a negative code": (IndexError, lambda a: a.update(row_code=np.array([[-1, 1], [1, 2]]))),
    "a table with a part missing": (ValueError, lambda a: a.update(table=torch.zeros(12, 4, 5, 16))),
    "a table whose units are not contiguous": (ValueError, lambda a: a.update(table=torch.zeros(13, 4, 16, 5).transpose(2, 3))),
    "a float64 table": (ValueError, lambda a: a.update(table=torch.zeros(13, 4, 5, 16, dtype=torch.float64))),
    "rel_coords shorter than the codes": (ValueError, lambda a: a.update(col_rel=np.zeros((2, 2), np.float32))),
    "codes of one dimension": (ValueError, lambda a: a.update(row_code=np.array([0, 1]), row_rel=np.zeros(2))),
    "three members": (ValueError, lambda a: a.update(row_code=np.zeros((3, 2), int), row_rel=np.zeros((3, 2)))),
    "members differing between the axes": (ValueError, lambda a: a.update(col_code=np.zeros((1, 3), int),
                                                                          col_rel=np.zeros((1, 3)))),
    "codes that are not integers": (ValueError, lambda a: a.update(row_code=np.array([[0.0, 1.0], [1.0, 2.0]]))),
    "an output smaller than the codes": (ValueError, lambda a: a.update(out=torch.empty(2, 2, 3))),
    "an output with gaps": (ValueError, lambda a: a.update(out=torch.empty(2, 6, 3)[:, ::2])),
    "source rows shorter than the output": (ValueError, with_base(1, np.array([[0], [1]]))),
    "source row weights shorter than the output": (ValueError, with_base(2, np.zeros(1, np.float32))),
    "source columns shorter than the output": (ValueError, with_base(3, np.array([[0, 1], [1, 2]]))),
    "source column weights shorter than the output": (ValueError, with_base(4, np.zeros(2, np.float32))),
    "a source row past the window": (IndexError, with_base(1, np.array([[0, 1], [1, 6]]))),
    "a source column past the window": (IndexError, with_base(3, np.array([[0, 1, 2], [1, 2, 7]]))),
    "a source window of two channels": (ValueError, with_base(0, torch.zeros(2, 6, 7))),
    "a source window of one dimension too few": (ValueError, with_base(0, torch.zeros(3, 42))),
}


@pytest.mark.usefixtures("needs_kernel")
@pytest.mark.parametrize("case", list(MALFORMED))
def test_fused_kernel_refuses_what_it_would_read_out_of_bounds(case):
    """The kernel reads raw memory: an index past the table or the source window, or an
    array shorter than the output it is read for, is an error with a sentence, not a
    read of whatever lies beyond it."""
    kernel = native.fast_kernel(spread_model("fast"), torch.device("cpu"))
    args = kernel_inputs()
    kernel.decode(**args)  # well formed: decodes
    error, change = MALFORMED[case]
    change(args)
    with pytest.raises(error, match="must"):
        kernel.decode(**args)


@pytest.mark.usefixtures("needs_kernel")
def test_fused_kernel_blends_members_whose_areas_are_all_zero():
    """A point on a code centre at the photo's corner gives all four members zero area;
    the kernel's AREA_EPS (from ensemble.py) makes them weigh a quarter each, as on the
    torch path, never 0 / 0."""
    model = spread_model("fast")
    kernel = native.fast_kernel(model, torch.device("cpu"))
    torch.manual_seed(1)
    table = torch.randn(13, 4, 5, 16)
    row_code, col_code = np.array([[0, 1, 2], [1, 2, 3]]), np.array([[0, 1, 2, 3], [1, 2, 3, 4]])
    fused = torch.empty(3, 4, 3)
    kernel.decode(table, row_code, np.zeros((2, 3), np.float32), col_code, np.zeros((2, 4), np.float32), fused)
    ys = [(torch.from_numpy(c), torch.zeros(3)) for c in row_code]
    xs = [(torch.from_numpy(c), torch.zeros(4)) for c in col_code]
    with torch.no_grad():
        plain = (decode_band(model, table, ys, xs, 0, 3, 0, 0, 999, lambda done: None) * 0.5 + 0.5).clamp(0, 1)
    assert torch.isfinite(fused).all() and fused.std() > 0.05
    assert (fused - plain).abs().max() <= 1e-5


# ------------------------------------------------------------------- the builds' cache

@pytest.mark.usefixtures("needs_kernel")
def test_a_build_keeps_the_other_machines_builds(monkeypatch, tmp_path, fresh_native):
    """A cache shared by two machines (a home folder on NFS) holds a build for each:
    building this machine's kernel leaves the other's in place, or each machine would
    rebuild on every start. ZOOMVIEWER_CACHE_DIR decides where the builds go."""
    monkeypatch.setenv("ZOOMVIEWER_CACHE_DIR", str(tmp_path))
    other = tmp_path / "native" / "fast_kernel-0123456789abcdef.so"
    other.parent.mkdir(parents=True)
    other.write_bytes(b"another CPU's build")
    assert native.library() is not None
    target = native.build_path(native.find_compiler())
    assert target.parent == tmp_path / "native" and target.exists()
    assert other.read_bytes() == b"another CPU's build"


def test_a_changed_ensemble_constant_gets_its_own_build(monkeypatch):
    """The kernel is compiled with AREA_EPS from ensemble.py: a build made with another
    value is another file, never loaded in its place."""
    compiler = native.find_compiler() or "cc"
    before = native.build_path(compiler)
    monkeypatch.setattr(ensemble, "AREA_EPS", 1e-7)
    assert "-DAREA_EPS=1e-07f" in native.build_flags()
    assert native.build_path(compiler) != before


def test_every_build_the_bench_times_draws_the_renderers_colours(needs_kernel):
    """`zoomviewer bench` times the kernel built for this CPU, for AVX2 + FMA and for the
    compiler's baseline: each build must give the renderer's colours, or its ns per pixel
    would be the time of another picture."""
    model = spread_model("fast")
    inputs = view_inputs(model, rows=24, cols=96, scale=3.3)
    ours = decode_with(native.chosen_build(model)[1], model, inputs)   # the renderer's build
    assert ours.std() > 0.01
    for arch in native.ARCHES:
        lib = native.build(arch)
        assert lib is not None or arch == "x86-64-v3"   # only a CPU without AVX2 lacks one
        if lib is not None:
            assert (decode_with(lib, model, inputs) - ours).abs().max() <= 1e-5
    timed = bench_kernel_builds(model, lambda s: None, runs=1)
    assert {"native", "generic"} <= set(timed["ns_per_pixel"]) and max(timed["max_diff"].values()) <= 1e-5
