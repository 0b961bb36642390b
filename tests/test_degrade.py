"""Degradations for the restore model: the evaluation protocol is fixed by the image's
index and scale (anyone reproduces the restore table), it really degrades (blur, noise,
JPEG blocks), the training chain is seeded, keeps the patch aligned with its HR crop, and
is sometimes clean; `train --degrade --init-from` starts from the given weights and says
what it did in the meta; `eval --degrade` makes bicubic measurably worse."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from engine_models import sample_image
from zoomviewer.engine.model import load_weights, new_model, save_weights
from zoomviewer.lab.degrade import PROTOCOLS, TRAINING_CHAIN, degrade_for_training, degrade_protocol, gaussian_kernel, jpeg
from zoomviewer.lab.evaluate import evaluate_model, make_pair
from zoomviewer.lab.train import train


def photo(h=64, w=96, seed=0) -> np.ndarray:
    return (sample_image(h, w, seed=seed) * 255).round().astype(np.uint8)


def test_the_scan_protocol_is_fixed_by_index_and_scale():
    lr = photo()
    a, b = degrade_protocol("scan", lr, 3, 4.0), degrade_protocol("scan", lr, 3, 4.0)
    assert a.dtype == np.uint8 and a.shape == lr.shape and np.array_equal(a, b)
    assert not np.array_equal(a, degrade_protocol("scan", lr, 4, 4.0))
    assert not np.array_equal(a, degrade_protocol("scan", lr, 3, 2.0))


def test_the_scan_protocol_degrades_visibly():
    lr = photo()
    out = degrade_protocol("scan", lr, 0, 4.0).astype(float)
    assert 2.0 < np.abs(out - lr).mean() < 40.0      # changed, but still the same picture
    assert np.corrcoef(out.ravel(), lr.ravel())[0, 1] > 0.8


def test_an_unknown_protocol_is_one_sentence():
    with pytest.raises(ValueError, match="unknown degradation 'nope'.*scan"):
        degrade_protocol("nope", photo(), 0, 2.0)
    assert set(PROTOCOLS) >= {"scan"}


def test_blur_kernels_are_normalised_and_anisotropic():
    k = gaussian_kernel(2.0, 0.5, 0.0)
    assert abs(k.sum() - 1) < 1e-12 and k.shape[0] % 2 == 1
    centre = k.shape[0] // 2
    assert k[centre, centre + 2] > 10 * k[centre + 2, centre]   # wide along x, narrow along y


def test_jpeg_loses_more_at_lower_quality():
    img = photo().astype(float)
    errors = [np.abs(jpeg(img, q) - img).mean() for q in (30, 60, 95)]
    assert errors[0] > errors[1] > errors[2] > 0


@pytest.mark.parametrize("chain", ["wide", "scan"])
def test_the_training_chain_is_seeded_aligned_and_sometimes_clean(chain):
    hr = photo(144, 144)
    draws = [degrade_for_training(hr, 48, np.random.default_rng(s), chain) for s in range(40)]
    again = degrade_for_training(hr, 48, np.random.default_rng(5), chain)
    assert np.array_equal(draws[5], again)
    assert all(d.shape == (48, 48, 3) and d.dtype == np.uint8 for d in draws)
    clean = np.asarray(Image.fromarray(hr).resize((48, 48), Image.BICUBIC)).astype(float)
    diffs = [np.abs(d - clean).mean() for d in draws]
    assert min(diffs) == 0.0 and max(diffs) > 3.0      # some patches clean, most degraded
    # still the crop's picture (aligned with the HR targets), never another one
    assert all(np.corrcoef(d.ravel().astype(float), clean.ravel())[0, 1] > 0.5 for d in draws)


def test_eval_with_the_protocol_makes_bicubic_worse():
    hr = photo(96, 128)
    clean = make_pair(hr, 2.0)[1]
    degraded = make_pair(hr, 2.0, "scan", 0)[1]
    assert clean.shape == degraded.shape and np.abs(clean - degraded).mean() > 0.01


def test_eval_degrade_lowers_the_bicubic_psnr(tmp_path):
    folder = tmp_path / "set"
    folder.mkdir()
    for i in range(2):
        Image.fromarray(photo(96, 128, seed=i)).save(folder / f"im{i}.png")
    clean = evaluate_model(None, folder, [2.0])[2.0]
    degraded = evaluate_model(None, folder, [2.0], degrade="scan")[2.0]
    assert degraded < clean - 0.5


def test_restore_training_starts_from_the_given_weights_and_records_the_chain(tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    for i in range(2):
        Image.fromarray(photo(60, 64, seed=i)).save(folder / f"p{i}.png")
    torch.manual_seed(2)
    start = new_model({"kind": "fast", "encoder": "edsr-baseline", "encoder_args": {"n_resblocks": 1, "n_feats": 8}})
    start_path = tmp_path / "fast.pt"
    save_weights(start_path, start, start.config, {"iterations": 11, "training_data": ["clean photos"]})
    n = torch.get_num_threads()
    out = tmp_path / "restore.pt"
    try:
        train([str(folder)], "fast", str(out), iters=0, batch=2, threads=1, init_from=str(start_path), degrade="wide")
    finally:
        torch.set_num_threads(n)
    model, config, meta = load_weights(out)
    assert config == start.config
    assert all(torch.equal(v, start.state_dict()[k]) for k, v in model.state_dict().items())
    assert "fast.pt (11 iterations)" in meta["init_from"] and meta["degradation"] == f"wide chain: {TRAINING_CHAIN}"
    assert meta["training_data"] == ["clean photos", str(folder)]
