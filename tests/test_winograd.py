"""The encoders' convolutions by Winograd's F(2x2, 3x3) and F(4x4, 3x3) in C
(model/winograd.py) give the plain encoder's latent (EDSR-baseline of 64 or 32 channels,
the preview encoder), so a photo encoded this way renders the colours the torch encoder's
latent renders: on images of odd and tiny sizes (a tile's last rows or columns fall
outside the image), with progress told block by block and a cancel between blocks that
leaves nothing half-done. Where it cannot run (no build, ZOOMVIEWER_NATIVE=0, channel
counts the build's vectors do not divide, not fp32), the torch path is chosen, never an
error."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from engine_models import sample_image
from zoomviewer.engine.model import new_model, winograd
from zoomviewer.engine.model.encoders import EDSRBaseline, PreviewEncoder
from zoomviewer.engine.model.layout import encoder_layout, fastest_layout
from zoomviewer.engine.render import Latent, render_region


def edsr(blocks: int = 2, seed: int = 0, feats: int = 64) -> EDSRBaseline:
    """An EDSR-baseline with fewer blocks than 16 (64 channels: the fast model's)."""
    torch.manual_seed(seed)
    return EDSRBaseline(n_resblocks=blocks, n_feats=feats).eval()


def preview(seed: int = 0) -> PreviewEncoder:
    """The preview encoder's shape: 32 channels, then a projection to the latent's 64."""
    torch.manual_seed(seed)
    return PreviewEncoder().eval()


ENCODERS = {"edsr64": edsr, "edsr32": lambda: edsr(feats=32), "preview": preview}


@pytest.fixture
def needs_build():
    if winograd.library() is None:
        pytest.skip("no C compiler here: the encoder runs on torch")


@pytest.fixture
def fresh_build():
    winograd.reset()
    yield
    winograd.reset()


@pytest.mark.usefixtures("needs_build")
@pytest.mark.parametrize("kind", ENCODERS)
@pytest.mark.parametrize("tile", [2, 4])
@pytest.mark.parametrize("h, w", [(1, 1), (2, 3), (5, 7), (40, 33), (67, 130)])
def test_the_winograd_latent_equals_the_torch_encoders(kind, tile, h, w):
    encoder = ENCODERS[kind]()
    ours = winograd.WinogradEncoder(winograd.library(), encoder, tile=tile)
    x = torch.randn(1, 3, h, w, generator=torch.Generator().manual_seed(h * w))
    with torch.no_grad():
        plain = encoder(x)
    got = ours.encode(x)
    assert got.shape == plain.shape and plain.abs().max() > 0.1
    assert (got - plain).abs().max() <= 1e-5 * plain.abs().max()


@pytest.mark.usefixtures("needs_build")
def test_every_thread_count_draws_the_same_latent():
    """The tile rows are split over threads per convolution; where the cuts fall must not
    show (a seam at a cut would be a line across the photo)."""
    encoder = edsr(blocks=1)
    x = torch.randn(1, 3, 23, 19, generator=torch.Generator().manual_seed(3))
    lib = winograd.library()
    one = winograd.WinogradEncoder(lib, encoder, threads=1).encode(x)
    for threads in (2, 3, 7):
        assert torch.equal(winograd.WinogradEncoder(lib, encoder, threads=threads).encode(x), one)


@pytest.mark.usefixtures("needs_build")
def test_progress_is_told_after_every_block_and_a_cancel_stops_between_them():
    encoder = edsr(blocks=3)
    ours = winograd.winograd_encoder(encoder, torch.device("cpu"))
    x = torch.randn(1, 3, 9, 11)
    told: list[float] = []
    ours.encode(x, told.append)
    plain: list[float] = []
    encoder.encode(x, plain.append)
    assert told == plain == [1 / 4, 2 / 4, 3 / 4, 1.0]

    class Cancelled(Exception):
        pass

    def cancel(fraction: float) -> None:
        if fraction >= 0.5:
            raise Cancelled
    with pytest.raises(Cancelled):
        ours.encode(x, cancel)
    assert torch.equal(ours.encode(x), ours.encode(x))   # nothing of the cancelled run is left


@pytest.mark.usefixtures("needs_build")
def test_a_photo_encoded_by_winograd_renders_the_torch_encoders_colours(monkeypatch):
    torch.manual_seed(0)
    model = new_model({"kind": "fast", "encoder": "edsr-baseline", "encoder_args": {"n_resblocks": 2},
                       "residual": True}).eval()
    with torch.no_grad():
        model.latent_out.weight.mul_(30)       # spread the colours, as training would
    img = sample_image(29, 41)
    pictures = {}
    for layout in ("contiguous", "winograd"):
        monkeypatch.setenv("ZOOMVIEWER_LAYOUT", layout)
        latent = Latent(model, img, "cpu", tile=16)
        assert latent.layout == layout
        pictures[layout] = render_region(latent, (3.5, 2.25, 30.0, 21.5), (160, 120))
    assert pictures["contiguous"].std() > 0.02
    assert np.abs(pictures["winograd"] - pictures["contiguous"]).max() <= 1e-5


def test_without_a_build_the_encoder_runs_on_torch(monkeypatch, fresh_build):
    monkeypatch.setenv("ZOOMVIEWER_NATIVE", "0")
    monkeypatch.setenv("ZOOMVIEWER_LAYOUT", "winograd")
    encoder = edsr(blocks=1)
    assert winograd.winograd_encoder(encoder, torch.device("cpu")) is None
    assert encoder_layout(encoder, torch.device("cpu")) != "winograd"


@pytest.mark.usefixtures("needs_build")
def test_only_fp32_encoders_of_widths_the_vectors_divide_take_the_c_path():
    cpu = torch.device("cpu")
    assert winograd.winograd_encoder(edsr(blocks=1), cpu) is not None
    assert winograd.winograd_encoder(new_model({"kind": "fast", "encoder": "preview"}).encoder, cpu) is not None
    assert winograd.winograd_encoder(edsr(blocks=1, feats=24), cpu) is None      # 24: no vector width's twice
    assert winograd.winograd_encoder(edsr(blocks=1, feats=128), cpu) is None     # wider than the C buffers
    assert winograd.winograd_encoder(edsr(blocks=1).double(), cpu) is None


def test_the_probe_keeps_winograd_unless_a_torch_layout_clearly_beats_it():
    """At the probe's small size oneDNN can tie Winograd, which is 1.2-1.7x faster at the
    sizes photos are encoded at; a near tie must not cost every later encode that much."""
    assert fastest_layout({"channels_last": 1.0, "contiguous": 1.4, "winograd": 1.1}) == "winograd"
    assert fastest_layout({"channels_last": 1.0, "contiguous": 1.4, "winograd": 1.3}) == "channels_last"
    assert fastest_layout({"channels_last": 1.2, "contiguous": 1.0, "winograd": float("inf")}) == "contiguous"


@pytest.mark.usefixtures("needs_build")
@pytest.mark.parametrize("kind", ["fast", "preview"])
def test_the_shipped_encoders_by_winograd_draw_the_torch_colours(kind, monkeypatch):
    """Trained weights through 34 convolutions (F(4x4)'s transforms round more than
    F(2x2)'s): the colours a user sees stay within the project's 1e-5."""
    from zoomviewer.engine.bundled import shipped_weights
    from zoomviewer.engine.images import load, to_srgb
    from zoomviewer.engine.model import load_preview, load_weights

    model = load_weights(shipped_weights("fast"))[0] if kind == "fast" else load_preview()
    photo = np.ascontiguousarray(to_srgb(load(Path(__file__).parents[1] / "resources" / "sample.png")))
    img = np.ascontiguousarray(photo[100:196, 300:420], np.float32)
    pictures = {}
    for layout in ("contiguous", "winograd"):
        monkeypatch.setenv("ZOOMVIEWER_LAYOUT", layout)
        pictures[layout] = render_region(Latent(model, img, "cpu", tile=32), (10.3, 7.7, 90.0, 70.0), (360, 280))
    assert pictures["contiguous"].std() > 0.05
    assert np.abs(pictures["winograd"] - pictures["contiguous"]).max() <= 1e-5


@pytest.mark.usefixtures("needs_build")
@pytest.mark.parametrize("d", [208, 256, 248])
@pytest.mark.parametrize("tile", [2, 4])
def test_the_first_layer_term_by_winograd_equals_the_decoders_convolution(d, tile):
    """A decoder's first-layer term (D outputs from each code and its 8 neighbours: 208
    for the fast decoder, 256 for LIIF) comes out of the same C run as the latent, in
    chunks of 64 outputs and a one-vector tail, for the rows the caller's tiles need."""
    encoder = edsr()
    ours = winograd.WinogradEncoder(winograd.library(), encoder, tile=tile)
    kernel = torch.randn(d, 64, 3, 3, generator=torch.Generator().manual_seed(d)) / 24
    term = ours.term(kernel)
    if term is None:
        pytest.skip(f"this build's vectors do not divide {d} outputs")
    x = torch.randn(1, 3, 27, 38, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        plain_latent = encoder(x)
        plain = torch.nn.functional.conv2d(plain_latent, kernel, padding=1)[0].permute(1, 2, 0)
    latent, got = ours.encode_with_term(x, term, (6, 19))
    assert (latent - plain_latent).abs().max() <= 1e-5 * plain_latent.abs().max()
    assert got.shape == plain.shape and plain.abs().max() > 0.1
    assert (got[6:19] - plain[6:19]).abs().max() <= 1e-5 * plain.abs().max()


def test_a_term_the_c_code_cannot_do_is_left_to_torch():
    if winograd.library() is None:
        pytest.skip("no C compiler here: the encoder runs on torch")
    ours = winograd.WinogradEncoder(winograd.library(), edsr(blocks=1))
    assert ours.term(torch.zeros(208, 64, 1, 1)) is None          # the preview's: each code alone
    assert ours.term(torch.zeros(300, 64, 3, 3)) is None          # more outputs than the C buffers


@pytest.mark.usefixtures("needs_build")
def test_weights_changed_in_place_are_read_again(monkeypatch):
    """The C encoder and the first-layer term are made once per model and reused by every
    Latent (photo) after; weights changed in place (a training step, load_state_dict) must
    show in the next Latent's picture, not the old weights'."""
    torch.manual_seed(0)
    model = new_model({"kind": "fast", "encoder": "edsr-baseline", "encoder_args": {"n_resblocks": 1},
                       "residual": True}).eval()
    with torch.no_grad():
        model.latent_out.weight.mul_(30)
    img = sample_image(21, 26)
    region, size = (2.5, 1.25, 18.0, 15.0), (72, 60)

    def pictures():
        out = {}
        for layout in ("contiguous", "winograd"):
            monkeypatch.setenv("ZOOMVIEWER_LAYOUT", layout)
            out[layout] = render_region(Latent(model, img, "cpu", tile=16), region, size)
        return out

    before = pictures()
    for weight in (model.encoder.body[0].body[0].weight, model.latent_in.weight):  # encoder, then decoder
        with torch.no_grad():
            weight.mul_(-1.5)
        after = pictures()
        assert np.abs(after["contiguous"] - before["contiguous"]).max() > 0.01
        assert np.abs(after["winograd"] - after["contiguous"]).max() <= 1e-5
        before = after
