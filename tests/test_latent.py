"""The latent is encoded lazily in tiles and equals the whole-image encoding, and so does
the decoder's first-layer term it caches per tile; one latent can serve several threads."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import torch

from engine_models import sample_image, spread_model
from zoomviewer.engine.model import new_model
from zoomviewer.engine.render import Latent, render_region

ENCODERS = {
    "edsr-baseline": {"n_resblocks": 3, "n_feats": 8},
    "rdn": {"n_blocks": 2, "n_layers": 2, "g0": 8, "growth": 4},
    "preview": {"n_resblocks": 2, "n_feats": 8, "out_dim": 8},
}


@pytest.mark.parametrize("encoder", list(ENCODERS))
def test_tiled_encoding_equals_whole_image(encoder):
    torch.manual_seed(0)
    model = new_model({"kind": "fast", "encoder": encoder, "encoder_args": ENCODERS[encoder]})
    img = sample_image(70, 53, seed=3)
    with torch.no_grad():
        whole = model.encoder(torch.from_numpy((img - 0.5) / 0.5).permute(2, 0, 1)[None])[0]
    latent = Latent(model, img, "cpu", tile=16)
    tiled = latent.encode_all()
    assert latent.tiles_encoded == 5 * 4
    assert torch.abs(tiled - whole).max() <= 1e-4
    assert whole.abs().max() > 0.1
    with torch.no_grad():
        pre_whole = model.code_features(whole[None])[0].permute(1, 2, 0)
    pre_tiled = latent.code_features(0, 70, 0, 53)
    assert torch.abs(pre_tiled - pre_whole).max() <= 1e-4 * pre_whole.abs().max()


def test_the_whole_latent_is_encoded_in_bands_where_its_tiles_fit_the_budget():
    """encode_all (the bench's encoder figure, the reference method) reads the photo about
    once when all its tiles fit in the budget, even when they would not fit in half of it,
    and gives the same codes as tiles encoded one by one."""
    torch.manual_seed(0)
    model = new_model({"kind": "fast", "encoder": "edsr-baseline", "encoder_args": ENCODERS["edsr-baseline"]})
    img = sample_image(70, 53, seed=3)
    tile_bytes = Latent(model, img, "cpu", tile=16).tile_bytes
    budget_mb = 20 * tile_bytes * 1.01 / 2**20          # all 20 tiles, not twice
    whole = Latent(model, img, "cpu", tile=16, budget_mb=budget_mb)
    codes = whole.encode_all()
    assert whole.tiles_encoded == 20 and whole.pixels_encoded == 70 * 53
    alone = Latent(model, img, "cpu", tile=16, budget_mb=budget_mb)
    for ty in range(5):
        for tx in range(4):
            alone.code_features(ty * 16, min(ty * 16 + 1, 70), tx * 16, tx * 16 + 1)
    assert alone.pixels_encoded > 3 * whole.pixels_encoded
    assert torch.abs(codes - alone.encode_all()).max() <= 1e-4


def test_missing_tiles_are_encoded_in_bands_with_one_halo_each():
    """ensure() encodes a block's missing tiles in a few encoder runs, each with one halo
    around many tiles: the encoder reads the photo about once, not 20 tiles' halos, and
    the codes are the tiles' own; its progress moves block by block of the encoder."""
    torch.manual_seed(0)
    model = new_model({"kind": "fast", "encoder": "edsr-baseline", "encoder_args": ENCODERS["edsr-baseline"]})
    img = sample_image(70, 53, seed=3)
    banded = Latent(model, img, "cpu", tile=16)
    banded.ensure(0, 70, 0, 53)
    assert banded.tiles_encoded == 20 and banded.pixels_encoded == 70 * 53     # one run; its halo is off the photo
    alone = Latent(model, img, "cpu", tile=16)
    for ty in range(5):
        for tx in range(4):
            alone.code_features(ty * 16, min(ty * 16 + 1, 70), tx * 16, tx * 16 + 1)
    assert alone.pixels_encoded > 3 * banded.pixels_encoded
    assert torch.abs(banded.code_features(0, 70, 0, 53) - alone.code_features(0, 70, 0, 53)).max() <= 1e-4
    told = []
    Latent(model, img, "cpu", tile=16).ensure(0, 70, 0, 53, progress=told.append)
    assert len(told) >= 1 + 4 and told[0] == 0.0 and told[-1] == 1.0 and told == sorted(told)   # 3 blocks + the last conv


def test_receptive_radius_of_the_published_encoders():
    assert new_model({"kind": "liif", "encoder": "edsr-baseline"}).encoder.receptive_radius == 34
    assert new_model({"kind": "liif", "encoder": "rdn"}).encoder.receptive_radius == 131


def test_small_region_encodes_only_the_tiles_it_needs():
    torch.manual_seed(0)
    model = new_model({"kind": "fast", "encoder": "edsr-baseline", "encoder_args": {"n_resblocks": 1, "n_feats": 8}})
    img = np.random.default_rng(0).random((1000, 1500, 3), dtype=np.float32)
    latent = Latent(model, img, "cpu", tile=100)
    # 30x20 source px inside tile row 4, tile column 7; the 3x3 unfold and ensemble need
    # at most 2 codes around it, still inside that tile
    render_region(latent, (705, 410, 30, 20), (300, 200))
    assert latent.tiles_encoded == 1
    # a region straddling a tile corner needs the four tiles around it, and no others
    render_region(latent, (290, 590, 20, 20), (160, 160))
    assert latent.tiles_encoded == 1 + 4
    # panning back within the same tiles encodes nothing new
    render_region(latent, (292, 592, 10, 10), (80, 80))
    assert latent.tiles_encoded == 5


def test_memory_budget_evicts_least_recently_used_tiles():
    model = new_model({"kind": "fast", "encoder": "edsr-baseline", "encoder_args": {"n_resblocks": 1, "n_feats": 8}})
    img = np.random.default_rng(0).random((400, 400, 3), dtype=np.float32)
    per_tile_mb = (8 + 208) * 100 * 100 * 4 / 2**20  # latent codes + the decoder's first-layer term
    latent = Latent(model, img, "cpu", tile=100, budget_mb=3.5 * per_tile_mb)
    first = latent.features(0, 10, 0, 10).clone()          # the first tile, encoded first
    latent.encode_all()
    assert latent.tiles_encoded == 16 and latent.tiles_cached == 3
    latent.features(350, 360, 350, 360)                    # the last tile is still cached
    assert latent.tiles_encoded == 16
    again = latent.features(0, 10, 0, 10)                  # evicted since: encoded again, identically
    assert latent.tiles_encoded == 17
    assert torch.equal(first, again)


def test_a_latent_without_codes_renders_the_same_in_less_memory():
    """The viewer keeps only the first-layer term per tile: the same pixels, the codes
    still there on request (encoded again), and the tiles' memory cut by the codes' share."""
    torch.manual_seed(0)
    model = spread_model("fast")
    img = sample_image(40, 50, seed=5)
    kept, lean = Latent(model, img, "cpu", tile=16), Latent(model, img, "cpu", tile=16, keep_codes=False)
    region, size = (3.0, 4.0, 30.0, 25.0), (90, 75)
    # to within summation order: encoded again tile by tile, the convolutions see other
    # shapes than in the first banded run (and the machine's load can change oneDNN's split)
    assert np.abs(render_region(kept, region, size) - render_region(lean, region, size)).max() <= 1e-5
    assert torch.allclose(kept.features(0, 40, 0, 50), lean.features(0, 40, 0, 50), rtol=0, atol=1e-5)
    kept_bytes, lean_bytes = kept.bytes_held()[0], lean.bytes_held()[0]
    channels, term = model.encoder.out_dim, model.code_features_dim
    assert lean_bytes * (channels + term) == kept_bytes * term
    assert lean.tile_bytes * (channels + term) == kept.tile_bytes * term


# A shared latent's tiles are encoded in other bands than a latent's of its own (which
# thread asks first decides). oneDNN's convolutions give each pixel the same arithmetic
# wherever the band starts; Winograd's rounding depends on where its tiles fall, and moved
# these colours by 3.3e-6 to 6.9e-6 in 30 runs, under a fiftieth of a grey level. A race
# between threads shows as whole codes wrong: far above either bound.
@pytest.mark.parametrize("layout, bound", [("channels_last", 1e-6), ("winograd", 2e-5)])
def test_one_latent_shared_by_threads_renders_as_each_alone(layout, bound, monkeypatch):
    """The viewer and an export share one Latent: renders on four threads at once, at
    three zooms, one of them keeping no table (as an export does), give the pixels each
    gives on a latent of its own, and every tile is encoded once."""
    monkeypatch.setenv("ZOOMVIEWER_LAYOUT", layout)
    model = spread_model("fast")
    img = sample_image(60, 80, seed=2)
    jobs = [((0, 0, 80, 60), (200, 150), True), ((10.3, 7.1, 30, 20), (150, 100), True),
            ((0, 0, 80, 60), (80, 60), False), ((41.5, 22.2, 25, 31), (75, 93), True)]

    def render(latent, job):
        region, size, keep = job
        return render_region(latent, region, size, workers=2, keep_table=keep)

    alone = [render(Latent(model, img, "cpu", tile=16), job) for job in jobs]
    shared = Latent(model, img, "cpu", tile=16)
    with ThreadPoolExecutor(4) as pool:
        together = list(pool.map(lambda job: render(shared, job), jobs * 2))
    for a, b in zip(alone * 2, together):
        assert a.std() > 0.05
        assert np.abs(a - b).max() <= bound
    assert shared.tiles_encoded == 4 * 5
    assert shared.layout == layout


def test_encoding_a_block_ahead_tells_its_progress_and_changes_nothing():
    """The viewer encodes the latent tiles a view needs before decoding it, to say
    'encoding 40 %': reports from 0 as the encoder goes through its blocks, ending at 1,
    the same codes after."""
    model = new_model({"kind": "fast", "encoder": "edsr-baseline", "encoder_args": {"n_resblocks": 1, "n_feats": 8}})
    img = np.random.default_rng(2).random((300, 300, 3), dtype=np.float32)
    ahead, lazy = Latent(model, img, "cpu", tile=100), Latent(model, img, "cpu", tile=100)
    seen = []
    assert ahead.ensure(0, 150, 50, 250, seen.append) == 6
    assert len(seen) >= 3 and seen[0] == 0 and seen[-1] == 1.0 and seen == sorted(seen)
    seen = []
    assert ahead.ensure(0, 150, 50, 250, seen.append) == 0 and seen == []      # nothing missing: nothing told
    assert ahead.tiles_encoded == 6
    seen = []
    assert ahead.ensure(0, 300, 0, 300, seen.append) == 3 and seen[0] == 0 and seen[-1] == 1.0 and len(seen) >= 3
    assert torch.abs(ahead.encode_all() - lazy.encode_all()).max() <= 1e-5


def test_the_codes_a_render_reads_are_the_tiles_it_encodes():
    """codes_read names exactly the block of codes render_region reads: encoding its tiles
    ahead leaves the render nothing to encode, and it encodes no tile the render would not."""
    from zoomviewer.engine.render import codes_read

    model = new_model({"kind": "fast", "encoder": "edsr-baseline", "encoder_args": {"n_resblocks": 1, "n_feats": 8}})
    img = np.random.default_rng(4).random((120, 120, 3), dtype=np.float32)
    for region, size in (((31.5, 15.9, 32.0, 16.0), (96, 48)), ((0.0, 0.0, 120.0, 120.0), (60, 60)),
                         ((15.99, 47.2, 17.0, 33.0), (170, 330))):
        lazy, ahead = Latent(model, img, "cpu", tile=16), Latent(model, img, "cpu", tile=16)
        render_region(lazy, region, size, workers=1)
        ahead.ensure(*codes_read(ahead, region, size), lambda fraction: None)
        encoded = ahead.tiles_encoded
        render_region(ahead, region, size, workers=1)
        assert ahead.tiles_encoded == encoded == lazy.tiles_encoded, region


def test_an_encoding_cancelled_between_encoder_blocks_leaves_nothing_half_done():
    """A new view cancels the encoding from inside the encoder's run (its progress raises):
    no tile of that run is kept, none stays claimed, and the next ensure encodes them."""
    model = new_model({"kind": "fast", "encoder": "edsr-baseline", "encoder_args": {"n_resblocks": 3, "n_feats": 8}})
    img = np.random.default_rng(5).random((120, 90, 3), dtype=np.float32)
    latent = Latent(model, img, "cpu", tile=32)

    def cancel_midway(fraction: float) -> None:
        if 0 < fraction < 1:
            raise InterruptedError

    with pytest.raises(InterruptedError):
        latent.ensure(0, 120, 0, 90, cancel_midway)
    assert latent.tiles_cached == 0
    assert latent.ensure(0, 120, 0, 90) == 4 * 3 and latent.tiles_cached == 12
    assert torch.abs(latent.encode_all() - Latent(model, img, "cpu", tile=32).encode_all()).max() <= 1e-5
