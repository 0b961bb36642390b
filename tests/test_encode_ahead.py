"""Encoding ahead: once a view is sharp and nothing else is asked, the render thread
encodes the latent tiles around it, so the next pan is sharp without an encoding wait; it
gives way to any new request between two encoder blocks, and never takes more than half
the latent's budget."""

from __future__ import annotations

import numpy as np
import torch

from zoomviewer.app.encode_ahead import EncodeAhead
from zoomviewer.app.protocol import MODEL, RenderRequest
from zoomviewer.engine.geometry import View
from zoomviewer.engine.model import new_model
from zoomviewer.engine.render import Latent

TIMEOUT_MS = 30_000


def small_model():
    torch.manual_seed(0)
    return new_model({"kind": "fast", "encoder": "edsr-baseline", "encoder_args": {"n_resblocks": 2, "n_feats": 8}})


def test_the_area_around_a_view_is_encoded_strip_by_strip_and_gives_way_to_other_work():
    photo = np.random.default_rng(1).random((400, 300, 3), dtype=np.float32)
    latent = Latent(small_model(), photo, "cpu", tile=32)
    ahead = EncodeAhead()
    ahead.plan(latent, (120.0, 160.0, 60.0, 80.0))                  # the view: 60 x 80 in the middle
    checks = []
    ahead.run(busy=lambda: checks.append(1) or len(checks) > 8)     # a request comes in after 8 checks
    assert ahead.pending and 0 < latent.tiles_cached
    ahead.run(busy=lambda: False)                                   # the next idle moment finishes it
    assert not ahead.pending
    assert latent.missing(80, 320, 60, 240) == 0                    # 3x the view's width and height
    assert latent.missing(0, 40, 0, 300) > 0                        # and not the whole photo


def test_encoding_ahead_stops_at_half_the_latents_budget():
    photo = np.random.default_rng(2).random((600, 600, 3), dtype=np.float32)
    latent = Latent(small_model(), photo, "cpu", tile=32, budget_mb=300, keep_codes=False)
    ahead = EncodeAhead()
    ahead.plan(latent, (0.0, 0.0, 600.0, 600.0))
    ahead.run(busy=lambda: False)
    assert 0 < latent.bytes_held()[0] <= latent.budget_bytes / 2


def test_after_a_sharp_view_a_pan_next_to_it_needs_no_encoding(qtbot):
    from zoomviewer.app.render_thread import RenderThread

    photo = np.random.default_rng(3).random((300, 400, 3), dtype=np.float32)
    renderer = RenderThread(small_model(), "cpu", tile=64)
    finished, encoding = [], []
    renderer.request_finished.connect(lambda rid, _: finished.append(rid))
    renderer.encoding_progress.connect(lambda rid, fraction: encoding.append(rid))
    renderer.start()
    try:
        qtbot.waitUntil(lambda: renderer.loaded, timeout=TIMEOUT_MS)
        renderer.set_image(photo, 1)
        view = View(200, 150, 4.0, 240, 160).snapped()
        renderer.request(RenderRequest(1, 1, view, (MODEL,)))
        qtbot.waitUntil(lambda: 1 in finished, timeout=TIMEOUT_MS)
        assert 1 in encoding                                        # the first view waited for its tiles
        qtbot.waitUntil(lambda: not renderer.ahead.pending, timeout=TIMEOUT_MS)
        renderer.request(RenderRequest(2, 1, view.pan_by(-240, 0).snapped(), (MODEL,)))   # one screen right
        qtbot.waitUntil(lambda: 2 in finished, timeout=TIMEOUT_MS)
        assert 2 not in encoding
    finally:
        renderer.stop()


def test_an_encoding_runs_on_the_threads_asked_and_gives_the_caller_its_own_back():
    from zoomviewer.app.encode_ahead import encoder_threads

    before = torch.get_num_threads()
    with encoder_threads(before + 1):
        assert torch.get_num_threads() == before + 1
    assert torch.get_num_threads() == before
    try:
        with encoder_threads(before + 1):
            raise KeyError
    except KeyError:
        pass
    assert torch.get_num_threads() == before
