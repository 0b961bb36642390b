"""The preview: while a view waits for its model's encoder, the preview model's picture
(a real, tiny model here) is delivered first, over the whole missing area, and then the
model's sharp tiles, exactly as without a preview; a view over encoded tiles gets none;
and the status bar's waiting text says when the preview came and how the encoding goes."""

from __future__ import annotations

import numpy as np

from engine_models import spread_model
from zoomviewer.app.protocol import MODEL, RenderRequest
from zoomviewer.app.tile_cache import TileCache
from zoomviewer.app.view_passes import Source, ViewPasses
from zoomviewer.app.waiting import WaitingText
from zoomviewer.engine.geometry import View
from zoomviewer.engine.render import Latent, render_region
from zoomviewer.engine.resample import to_rgb8


def passes_into(pieces: list, tile: int = 32) -> ViewPasses:
    return ViewPasses(TileCache(2**30, size_of=lambda a: a.nbytes), lambda rgb8: rgb8, pieces.append,
                      lambda rid, f: None, tile=tile)


def sharp_pixels(pieces, view: View) -> np.ndarray:
    out = np.zeros((view.screen_h, view.screen_w, 3), np.uint8)
    ox, oy = view.origin
    for p in pieces:
        if not (p.coarse or p.preview):
            x0, y0, x1, y1 = p.rect
            out[y0 - oy:y1 - oy, x0 - ox:x1 - ox] = p.image
    return out


def test_a_new_view_shows_the_preview_first_then_the_models_own_sharp_tiles(tiny_model, small_image):
    preview_model = spread_model("fast", seed=5)
    model_latent = Latent(tiny_model, small_image, device="cpu")
    preview_latent = Latent(preview_model, small_image, device="cpu")
    source = Source(small_image, lambda name: model_latent, model_latent.device, models=("fast",),
                    preview=lambda: preview_latent)
    view = View(32, 24, 3.0, 150, 120).snapped()
    pieces: list = []
    passes_into(pieces).render(RenderRequest(1, 1, view, (MODEL,)), source, cancel=lambda: False)

    first = pieces[0]
    assert first.preview and not any(p.coarse for p in pieces)      # the preview replaces the coarse pass
    assert first.rect == (*view.origin, view.origin[0] + 150, view.origin[1] + 120)
    want_preview = to_rgb8(render_region(Latent(preview_model, small_image, device="cpu"), view.visible_region(), (150, 120)))
    assert np.abs(first.image.astype(int) - want_preview).max() <= 1
    want = to_rgb8(render_region(Latent(tiny_model, small_image, device="cpu"), view.visible_region(), (150, 120)))
    assert np.abs(sharp_pixels(pieces, view).astype(int) - want).max() <= 1
    assert np.abs(want_preview.astype(int) - want).max() > 10         # two models: the test can tell them apart

    pieces.clear()                                                   # the same area, another zoom: encoded already
    passes_into(pieces).render(RenderRequest(2, 1, View(32, 24, 3.5, 150, 120).snapped(), (MODEL,)), source,
                               cancel=lambda: False)
    assert pieces and not any(p.preview for p in pieces)


def test_without_a_preview_model_the_view_waits_with_a_coarse_pass(tiny_model, small_image):
    latent = Latent(tiny_model, small_image, device="cpu")
    pieces: list = []
    passes_into(pieces).render(RenderRequest(1, 1, View(32, 24, 3.0, 150, 120).snapped(), (MODEL,)),
                               Source(small_image, lambda name: latent, latent.device, models=("fast",)),
                               cancel=lambda: False)
    assert pieces[0].coarse and not any(p.preview for p in pieces)


def test_the_waiting_text_says_when_the_preview_came_and_how_long_the_encoding_has_left():
    text = WaitingText()
    text.start(7)
    assert text.encoding(0.1, now=100.0) == "encoding 10 %"
    assert text.preview(0.84) == "preview in 0.8 s; encoding"
    assert text.encoding(0.4, now=106.0) == "preview in 0.8 s; encoding 40 %, about 12 s left"
    text.start(8)                                                    # a new view forgets the last one's
    assert text.encoding(0.5, now=200.0) == "encoding 50 %"


def test_in_the_viewer_a_fresh_photo_says_when_the_preview_came_then_shows_the_model_exactly(qtbot, tiny_model):
    from conftest import assert_frame_is, viewer_of
    from zoomviewer.app.render_thread import RenderThread

    photo = np.random.default_rng(9).random((300, 400, 3), dtype=np.float32)
    renderer = RenderThread(tiny_model, "cpu", tile=64, preview_loader=lambda: spread_model("fast", seed=5))
    renderer.start()
    try:
        viewport, states = viewer_of(qtbot, renderer, photo, 3.0, (200.0, 150.0), (400, 300))
        qtbot.waitUntil(viewport.is_sharp, timeout=30_000)
        waiting = [s for s in states if s.startswith("preview in ")]
        assert waiting and " s; encoding" in waiting[0], states
        assert states[-1].startswith("sharp in") and states.index(waiting[0]) < len(states) - 1
        latent = Latent(tiny_model, photo, device="cpu")
        assert_frame_is(viewport, MODEL, lambda region, size: render_region(latent, region, size))
    finally:
        renderer.stop()
