"""Weights files: ours round-trip, published LIIF checkpoints load as they are, and
nothing in a weights file can run code."""

from __future__ import annotations

import os
import pickle

import numpy as np
import pytest
import torch

from engine_models import sample_image, spread_model
from zoomviewer.engine.model import WeightsError, load_weights, new_model, save_weights
from zoomviewer.engine.render import Latent, render_region


def render(model, img):
    return render_region(Latent(model, img, "cpu"), (0, 0, img.shape[1], img.shape[0]), (40, 30))


def test_our_format_round_trips_config_meta_and_pixels(tmp_path):
    model = spread_model("fast", residual=True)
    path = tmp_path / "w.pt"
    save_weights(path, model, model.config, {"iterations": 12, "training_data": ["x"]})
    loaded, config, meta = load_weights(path)
    assert config["kind"] == "fast" and config["residual"] is True
    assert meta["iterations"] == 12
    img = sample_image()
    assert np.array_equal(render(model, img), render(loaded, img))


def test_half_precision_file_is_close_and_half_the_size(tmp_path):
    model = spread_model("liif")
    save_weights(tmp_path / "a.pt", model, model.config)
    save_weights(tmp_path / "b.pt", model, model.config, half=True)
    assert os.path.getsize(tmp_path / "b.pt") < 0.6 * os.path.getsize(tmp_path / "a.pt")
    img = sample_image()
    diff = np.abs(render(model, img) - render(load_weights(tmp_path / "b.pt")[0], img)).max()
    assert 0 < diff < 5e-3


def published_checkpoint(model, encoder: str) -> dict:
    """A file in the layout the LIIF reference code writes (docs/LIIF.md section 2), tensors as
    saved from training, with Adam moments in 'optimizer'."""
    sd = {k: v.clone() for k, v in model.state_dict().items()}
    state = {i: {"step": torch.tensor(10.0), "exp_avg": torch.zeros_like(p), "exp_avg_sq": torch.zeros_like(p)}
             for i, p in enumerate(model.parameters())} if encoder == "edsr-baseline" else {}
    return {
        "model": {"name": "liif", "args": {
            "encoder_spec": {"name": encoder, "args": {"no_upsampling": True}},
            "imnet_spec": {"name": "mlp", "args": {"out_dim": 3, "hidden_list": [256, 256, 256, 256]}}},
            "sd": sd},
        "optimizer": {"name": "adam", "args": {"lr": 1e-4},
                      "sd": {"state": state, "param_groups": [{"lr": 1e-4, "betas": (0.9, 0.999), "eps": 1e-8,
                                                                "weight_decay": 0, "amsgrad": False,
                                                                "params": list(range(len(sd)))}]}},
        "epoch": 1000,
    }


@pytest.mark.parametrize("encoder", ["edsr-baseline", "rdn"])
def test_published_liif_checkpoint_loads_and_renders_identically(tmp_path, encoder):
    torch.manual_seed(1)
    model = new_model({"kind": "liif", "encoder": encoder}).eval()
    keys = list(model.state_dict())
    if encoder == "edsr-baseline":
        assert "encoder.head.0.weight" in keys and "encoder.body.16.weight" in keys
        assert "encoder.sub_mean.weight" in keys and "imnet.layers.8.weight" in keys
        assert tuple(model.state_dict()["imnet.layers.0.weight"].shape) == (256, 580)
    else:
        assert "encoder.RDBs.15.convs.7.conv.0.weight" in keys and "encoder.GFF.1.weight" in keys
    path = tmp_path / f"{encoder}-liif.pth"
    torch.save(published_checkpoint(model, encoder), path)
    loaded, config, meta = load_weights(path)
    assert config["kind"] == "liif" and config["encoder"] == encoder and meta["epoch"] == 1000
    assert config["local_ensemble"] and config["feat_unfold"] and config["cell_decode"]
    assert not loaded.residual
    img = sample_image(12, 16)
    assert np.abs(render(model, img) - render(loaded, img)).max() <= 1e-6


class _Payload:
    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_checkpoint_that_would_run_code_is_refused_without_running_it(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pth"
    torch.save({"model": {"name": "liif", "args": {}, "sd": {"x": _Payload(str(marker))}}}, path)
    with pytest.raises(WeightsError, match="refused") as refused:
        load_weights(path)
    assert not marker.exists()
    # one whole sentence for a person, not torch's page of advice cut mid-word
    assert str(refused.value).endswith("which could run code") and "\n" not in str(refused.value)
    plain = tmp_path / "evil.pkl"
    plain.write_bytes(pickle.dumps(_Payload(str(marker))))
    with pytest.raises(WeightsError):
        load_weights(plain)
    assert not marker.exists()


def test_wrong_shapes_and_keys_are_named(tmp_path):
    model = spread_model("liif")
    sd = model.state_dict()
    bad = dict(sd)
    bad["imnet.layers.0.weight"] = torch.zeros(256, 100)
    torch.save({"format": "zoomviewer-weights", "config": model.config, "state_dict": bad}, tmp_path / "a.pt")
    with pytest.raises(WeightsError, match=r"imnet\.layers\.0\.weight has shape \(256, 100\)"):
        load_weights(tmp_path / "a.pt")
    missing = {k: v for k, v in sd.items() if not k.startswith("imnet.layers.8")}
    torch.save({"format": "zoomviewer-weights", "config": model.config, "state_dict": missing}, tmp_path / "b.pt")
    with pytest.raises(WeightsError, match=r"missing 2 tensor\(s\), e\.g\. imnet\.layers\.8"):
        load_weights(tmp_path / "b.pt")


@pytest.mark.parametrize("content", [b"", b"not a checkpoint at all", b"PK\x03\x04broken zip"])
def test_unreadable_files_give_one_sentence(tmp_path, content):
    path = tmp_path / "w.pt"
    path.write_bytes(content)
    with pytest.raises(WeightsError) as err:
        load_weights(path)
    assert "w.pt" in str(err.value) and "\n" not in str(err.value)


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(WeightsError, match="no such weights file"):
        load_weights(tmp_path / "nope.pt")
    with pytest.raises(WeightsError, match="directory"):
        load_weights(tmp_path)
