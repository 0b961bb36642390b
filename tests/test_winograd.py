"""The encoder's body by Winograd's F(2x2, 3x3) in C (model/winograd.py) gives the plain
EDSR-baseline's latent, so a photo encoded this way renders the colours the torch
encoder's latent renders: on images of odd and tiny sizes (a tile's second row or column
falls outside the image), with progress told block by block and a cancel between blocks
that leaves nothing half-done. Where it cannot run (no build, ZOOMVIEWER_NATIVE=0, another
encoder), the torch path is chosen, never an error."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from engine_models import sample_image
from zoomviewer.engine.model import new_model, winograd
from zoomviewer.engine.model.encoders import EDSRBaseline
from zoomviewer.engine.model.layout import encoder_layout, fastest_layout
from zoomviewer.engine.render import Latent, render_region


def edsr(blocks: int = 2, seed: int = 0) -> EDSRBaseline:
    """A 64-channel EDSR-baseline (the width the C code is for), fewer blocks than 16."""
    torch.manual_seed(seed)
    return EDSRBaseline(n_resblocks=blocks).eval()


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
@pytest.mark.parametrize("h, w", [(1, 1), (2, 3), (5, 7), (40, 33), (67, 130)])
def test_the_winograd_latent_equals_the_torch_encoders(h, w):
    encoder = edsr()
    ours = winograd.winograd_encoder(encoder, torch.device("cpu"))
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


def test_only_a_64_channel_edsr_in_fp32_takes_the_c_path():
    cpu = torch.device("cpu")
    assert winograd.winograd_encoder(EDSRBaseline(n_resblocks=1, n_feats=32), cpu) is None
    assert winograd.winograd_encoder(edsr(blocks=1).double(), cpu) is None
    assert winograd.winograd_encoder(new_model({"kind": "fast", "encoder": "preview"}).encoder, cpu) is None


def test_the_probe_keeps_winograd_unless_a_torch_layout_clearly_beats_it():
    """At the probe's small size oneDNN can tie Winograd, which is 1.2-1.7x faster at the
    sizes photos are encoded at; a near tie must not cost every later encode that much."""
    assert fastest_layout({"channels_last": 1.0, "contiguous": 1.4, "winograd": 1.1}) == "winograd"
    assert fastest_layout({"channels_last": 1.0, "contiguous": 1.4, "winograd": 1.3}) == "channels_last"
    assert fastest_layout({"channels_last": 1.2, "contiguous": 1.0, "winograd": float("inf")}) == "contiguous"
