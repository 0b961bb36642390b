"""Training: a run resumes where it stopped, a new model can start from another's encoder,
bf16 is used only where the CPU computes it (and the weights say which was used), a fresh
fast decoder starts with every render unit live, the sampler's LR patches are exact
downscales of the HR crops its targets come from, and the command fails in one line.
Runs train tiny models (one residual block of 8 features), so each takes seconds."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from engine_models import sample_image
from zoomviewer.cli import main
from zoomviewer.engine.model import load_weights, new_model, save_weights
from zoomviewer.lab.precision import cpu_computes_bf16, precision_name, training_precision
from zoomviewer.lab.patches import PatchSampler, batches
from zoomviewer.lab.train import train

FULL_FAST = {"kind": "fast", "encoder": "edsr-baseline", "residual": True}
TINY = {"encoder_args": {"n_resblocks": 1, "n_feats": 8}}


@pytest.fixture(autouse=True)
def _keep_torch_threads():
    """train(threads=1) sets torch's process-wide thread count; give the other tests theirs back."""
    n = torch.get_num_threads()
    yield
    torch.set_num_threads(n)


@pytest.fixture
def photos(tmp_path):
    """A folder of three small textured photos. train() samples 2304 targets from each HR
    crop, so the shorter side must be at least 48 (the default LR patch size)."""
    folder = tmp_path / "photos"
    folder.mkdir()
    for i, (h, w) in enumerate([(52, 60), (56, 50), (49, 64)]):
        Image.fromarray((sample_image(h, w, seed=i) * 255).round().astype(np.uint8)).save(folder / f"p{i}.png")
    return folder


def adam_steps(state_path) -> set[float]:
    state = torch.load(state_path, map_location="cpu", weights_only=True)
    return {float(s["step"]) for s in state["optimizer"]["state"].values()}


def log_iterations(log_path) -> list[int]:
    return [json.loads(line)["it"] for line in log_path.read_text().splitlines() if "loss" in line]


def test_training_resumes_where_it_stopped(tmp_path, photos):
    out = tmp_path / "m.pt"
    run = dict(data=[str(photos)], kind="fast", out=str(out), batch=2, threads=1, save_every_s=1e9, config=TINY)
    train(iters=10, **run)
    _, config, meta = load_weights(out)
    assert config["kind"] == "fast" and meta["iterations"] == 10
    assert config["encoder_args"] == TINY["encoder_args"]   # the model asked for, not the default
    assert meta["training_data"] == [str(photos)]
    assert adam_steps(f"{out}.state") == {10.0}
    assert log_iterations(tmp_path / "m.pt.log") == [10]
    first = load_weights(out)[0].state_dict()

    train(iters=20, **{**run, "config": None})   # resuming: the file's own config rules
    model, config, meta = load_weights(out)
    assert meta["iterations"] == 20 and meta["training_data"] == [str(photos)]
    assert config["encoder_args"] == TINY["encoder_args"]
    # the optimizer's moments came back: 20 Adam steps in all, not the 10 of the second run
    assert adam_steps(f"{out}.state") == {20.0}
    # the second run appended only its own 10 iterations (a restart would log it 10 again)
    assert log_iterations(tmp_path / "m.pt.log") == [10, 20]
    assert any(not torch.equal(v, model.state_dict()[k]) for k, v in first.items())


def test_new_model_starts_from_another_models_encoder(tmp_path, photos):
    torch.manual_seed(1)
    donor = new_model({"kind": "liif", "encoder": "edsr-baseline", **TINY})
    donor_path = tmp_path / "liif-a.pt"
    save_weights(donor_path, donor, donor.config, {"iterations": 7})
    out = tmp_path / "fast.pt"
    train([str(photos)], "fast", str(out), iters=0, batch=2, threads=1, encoder_from=str(donor_path),
          config=TINY)
    model, config, meta = load_weights(out)
    assert config["kind"] == "fast" and meta["iterations"] == 0
    mine, theirs = model.encoder.state_dict(), donor.encoder.state_dict()
    assert mine.keys() == theirs.keys()
    assert all(torch.equal(mine[k], theirs[k]) for k in mine)
    assert "liif-a.pt" in meta["encoder_from"] and "7 iterations" in meta["encoder_from"]


def test_an_encoder_of_another_shape_cannot_start_a_new_model(tmp_path, photos):
    donor = new_model({"kind": "liif", "encoder": "edsr-baseline", **TINY})
    donor_path = tmp_path / "small.pt"
    save_weights(donor_path, donor, donor.config)
    out = tmp_path / "fast.pt"
    wider = {"encoder_args": {"n_resblocks": 1, "n_feats": 16}}
    with pytest.raises(ValueError, match="small.pt: its encoder is not shaped like the new model's"):
        train([str(photos)], "fast", str(out), iters=0, threads=1, encoder_from=str(donor_path), config=wider)
    assert not out.exists()


# ------------------------------------------------------------------ bf16 or fp32

AVX2_ONLY = {"avx2": True, "avx512_f": False, "avx512_bf16": False, "amx_bf16": False}
AVX512_NO_BF16 = {"avx2": True, "avx512_f": True, "avx512_bf16": False, "amx_bf16": False}
AVX512_BF16 = {"avx2": True, "avx512_f": True, "avx512_bf16": True, "amx_bf16": False}
AMX = {"avx2": True, "avx512_f": True, "avx512_bf16": True, "amx_bf16": True}


@pytest.mark.parametrize("cpu, kernels, environ, native", [
    (AVX2_ONLY, "AVX2", {}, False),                           # bf16 emulated: ~11x slower there
    (AVX512_NO_BF16, "AVX512", {}, False),
    (AVX512_BF16, "AVX512", {}, True),
    (AMX, "AVX512", {}, True),
    (AMX, "AVX512", {"ATEN_CPU_CAPABILITY": "avx2"}, False),  # torch told to use AVX2 kernels
    (AMX, "AVX2", {}, False),                                 # ... and honouring it
    (AMX, "AVX512", {"ATEN_CPU_CAPABILITY": "avx512"}, True),
    ({}, "DEFAULT", {}, False),                               # nothing known: never assume
])
def test_bf16_only_where_the_cpu_computes_it(cpu, kernels, environ, native):
    assert cpu_computes_bf16(cpu, kernels, environ)[0] is native


def test_forcing_avx2_kernels_means_fp32_on_this_machine():
    code = ("from zoomviewer.lab.precision import training_precision, precision_name; "
            "print(precision_name(training_precision('cpu')[0]))")
    env = {**os.environ, "ATEN_CPU_CAPABILITY": "avx2"}
    r = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and r.stdout.strip() == "fp32", r.stderr


def test_bf16_and_fp32_can_be_forced_everywhere():
    assert training_precision("cpu", bf16=True)[0] == torch.bfloat16
    assert training_precision("cpu", bf16=False)[0] == torch.float32


def test_the_weights_record_the_precision_and_why(tmp_path, photos):
    out = tmp_path / "auto.pt"
    train([str(photos)], "fast", str(out), iters=0, threads=1, config=TINY)
    dtype, why = training_precision("cpu")
    assert f"{precision_name(dtype)} encoder ({why})" in load_weights(out)[2]["recipe"]
    for flag, said in (("--fp32", "fp32 encoder (fp32 as asked)"), ("--bf16", "bf16 encoder (bf16 as asked)")):
        out = tmp_path / f"forced{flag}.pt"
        assert main(["train", "--data", str(photos), "--model", "fast", "--out", str(out), "--iters", "0",
                     "--threads", "1", flag]) == 0
        assert said in load_weights(out)[2]["recipe"]


@pytest.fixture(scope="module")
def fresh_fast_decoder():
    """A freshly initialised full-size fast model queried as in training: four 24 x 24
    photos at scales 1, 2, 3 and 4 (cell 2 / output size), 500 random points each.
    -> (model, code table per photo, post-ReLU activations of each render layer (N, 16))."""
    torch.manual_seed(0)
    model = new_model(FULL_FAST).eval()
    acts: list[list[torch.Tensor]] = [[] for _ in range(model.depth)]

    def recording_decode(codes, rel_y, rel_x):
        # the render MLP as FastLIIF.decode defines it, h = relu((W h) * scale + shift), keeping each layer's output
        w_rel = model.render_in.weight[:, model.code_dim:model.code_dim + 2]
        mods = codes[..., model.width:].unflatten(-1, (model.depth, 2, model.width))
        h = (codes[..., :model.width] + rel_x * w_rel[:, 1]) + rel_y * w_rel[:, 0]
        for i in range(model.depth):
            if i:
                h = h @ model.render_hidden[i - 1].weight.t()
            h = torch.addcmul(mods[..., i, 1, :], h, mods[..., i, 0, :]).relu_()
            acts[i].append(h.reshape(-1, model.width))
        return model.render_out(h)

    rng = np.random.default_rng(0)
    photos = np.stack([sample_image(24, 24, seed=s) for s in range(4)])
    inp = (torch.from_numpy(photos).permute(0, 3, 1, 2) - 0.5) / 0.5
    coord = torch.from_numpy(rng.uniform(-1, 1, (4, 500, 2))).float()
    cell = torch.stack([torch.full((500, 2), 2 / (24 * s)) for s in (1, 2, 3, 4)])
    with torch.no_grad():
        feat = model.encoder(inp)
        plain = model.query(inp, coord, cell, feat=feat)
        model.decode = recording_decode
        recorded = model.query(inp, coord, cell, feat=feat)
        table = model.code_table(feat, cell[:, 0, :] * 24)
    assert torch.allclose(plain, recorded, atol=1e-6)   # the recording decoder is the real one
    return model, table, [torch.cat(a) for a in acts]


def test_fresh_fast_decoder_starts_with_identity_modulations(fresh_fast_decoder):
    model, table, _ = fresh_fast_decoder
    mods = table[..., model.width:].unflatten(-1, (model.depth, 2, model.width))
    scale, shift = mods[..., 0, :], mods[..., 1, :]
    # PyTorch's default init gives about 0.07 and 0.13 here
    assert (scale - 1).abs().mean() < 0.05
    assert shift.abs().mean() < 0.05


def test_fresh_fast_decoder_has_no_dead_render_units(fresh_fast_decoder):
    """A unit that never fires gets no gradient and never recovers: a trained model with
    dead units plateaued ~0.4 dB over bicubic (fast.py, _init_decoder)."""
    _, _, acts = fresh_fast_decoder
    dead = {i: torch.nonzero((a > 0).sum(0) == 0).flatten().tolist() for i, a in enumerate(acts)}
    assert all(not units for units in dead.values()), f"dead units per render layer: {dead}"


# ------------------------------------------------------------------ the patch sampler

def symmetric_view(a: np.ndarray, fx: bool, fy: bool, tr: bool) -> np.ndarray:
    """The flips and transpose in the order PatchSampler applies them."""
    if fx:
        a = a[:, ::-1]
    if fy:
        a = a[::-1]
    if tr:
        a = a.swapaxes(0, 1)
    return a


def to_uint8(t: torch.Tensor) -> np.ndarray:
    return ((t.numpy() * 0.5 + 0.5) * 255).round().astype(np.int64)


def test_sampler_lr_patches_are_bicubic_downscales_of_the_targets_crop():
    # every pixel of every photo has its own colour, so a target's colour says where it came from
    rng = np.random.default_rng(5)
    shapes = [(40, 40), (40, 44), (46, 40)]
    colours = rng.choice(2 ** 24, sum(h * w for h, w in shapes), replace=False)
    images, where, start = [], {}, 0
    for k, (h, w) in enumerate(shapes):
        packed = colours[start:start + h * w].reshape(h, w)
        start += h * w
        images.append(np.stack([packed >> 16, (packed >> 8) & 255, packed & 255], -1).astype(np.uint8))
        for (y, x), c in np.ndenumerate(packed):
            where[int(c)] = (k, y, x)
    n, n_targets = 8, 40
    sampler = PatchSampler(images, lr_size=n, n_targets=n_targets, seed=3)
    lr, coord, cell, gt = sampler.sample(16)
    assert lr.shape == (16, 3, n, n) and coord.shape == cell.shape == (16, n_targets, 2)

    sizes = set()
    for b in range(16):
        size = round(2 / float(cell[b, 0, 0]))
        assert n <= size <= 4 * n
        sizes.add(size)
        assert torch.allclose(cell[b], torch.full_like(cell[b], 2 / size))
        # targets sit at pixel centres of a size x size grid, all different
        grid = (coord[b].double().numpy() + 1) * size / 2 - 0.5
        idx = grid.round().astype(int)
        assert np.abs(grid - idx).max() < 1e-4 and idx.min() >= 0 and idx.max() < size
        assert len({tuple(p) for p in idx}) == n_targets
        # each target colour is one source pixel, all from one photo
        rgb = to_uint8(gt[b])
        src = np.array([where[int(r) << 16 | int(g) << 8 | int(bl)] for r, g, bl in rgb])
        assert len(set(src[:, 0])) == 1
        im = images[src[0, 0]]
        # some flip/transpose of one size x size crop maps the grid onto those pixels,
        # and the LR patch is the bicubic downscale of that crop, flipped the same way
        matches = 0
        for fx in (False, True):
            for fy in (False, True):
                for tr in (False, True):
                    crop_pos = symmetric_view(np.indices((size, size)).transpose(1, 2, 0), fx, fy, tr)[idx[:, 0], idx[:, 1]]
                    offset = src[:, 1:] - crop_pos
                    if (offset != offset[0]).any():
                        continue
                    y0, x0 = offset[0]
                    assert 0 <= y0 <= im.shape[0] - size and 0 <= x0 <= im.shape[1] - size
                    crop = im[y0:y0 + size, x0:x0 + size]
                    want = np.asarray(Image.fromarray(crop).resize((n, n), Image.BICUBIC))
                    matches += np.array_equal(to_uint8(lr[b].permute(1, 2, 0)), symmetric_view(want, fx, fy, tr))
        assert matches >= 1, f"batch item {b}: the LR patch is not the downscaled crop of its targets"
    assert len(sizes) > 1   # the scale varies


def test_batches_drawn_by_worker_processes_are_the_same_on_every_run_and_differ_between_workers():
    """A GPU run draws its patches in worker processes (train --workers): a rerun with the
    same seed must train on the same patches, and no two workers may repeat each other."""
    rng = np.random.default_rng(2)
    images = [rng.integers(0, 256, (40 + 3 * k, 44, 3), dtype=np.uint8) for k in range(3)]

    def draw(seed, workers, n=4):
        stream = batches(images, 2, seed, workers, lr_size=8, n_targets=10, degrade="scan")
        return [next(stream) for _ in range(n)]

    first, again, other = draw(7, 2), draw(7, 2), draw(8, 2)
    assert all(torch.equal(a, b) for x, y in zip(first, again) for a, b in zip(x, y))
    assert not torch.equal(first[0][0], other[0][0])
    assert not torch.equal(first[0][0], first[1][0])   # batches 0 and 1 come from workers 0 and 1
    lr, coord, cell, gt = first[0]
    assert lr.shape == (2, 3, 8, 8) and coord.shape == cell.shape == gt.shape[:2] + (2,) == (2, 10, 2)
    here = draw(7, 0, 1)[0]    # workers 0: the same sampler as before, in this process
    assert torch.equal(here[0], PatchSampler(images, lr_size=8, n_targets=10, seed=7, degrade="scan").sample(2)[0])


# ------------------------------------------------------------------ the command

def test_train_command_with_a_missing_data_folder_fails_in_one_line(tmp_path, capsys):
    missing = tmp_path / "no such folder"
    out = tmp_path / "m.pt"
    status = main(["train", "--data", str(missing), "--model", "fast", "--out", str(out), "--iters", "1",
                   "--threads", "1"])
    err = capsys.readouterr().err
    assert status == 2
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and str(missing) in lines[0] and "Traceback" not in err
    assert list(tmp_path.iterdir()) == []   # nothing written


def test_a_preview_encoder_is_distilled_under_the_teachers_frozen_decoder(tmp_path, photos):
    """train(teacher=...) makes the fast decoder of the teacher read a PreviewEncoder's
    latent through a first layer of its own over each code alone (the teacher's unfolds
    3x3, which costs more than the preview encoder): that layer starts as the teacher's
    centre taps; the rest of the decoder is the teacher's, bit for bit, after training;
    the encoder and that layer learned, and the weights say what they were distilled from."""
    torch.manual_seed(2)
    teacher = new_model({**FULL_FAST, **TINY})
    teacher_path = tmp_path / "teacher.pt"
    save_weights(teacher_path, teacher, teacher.config, {"iterations": 5})
    out = tmp_path / "preview.pt"
    run = dict(data=[str(photos)], kind="fast", out=str(out), batch=2, threads=1, save_every_s=1e9,
               teacher=str(teacher_path))
    train(iters=0, **run)
    untrained = load_weights(out)[0].state_dict()
    w = teacher.latent_in.weight.detach()
    c = teacher.encoder.out_dim
    assert torch.equal(untrained["latent_in.weight"][:, :c], w[:, 4:9 * c:9])   # the centre taps
    train(iters=3, **run)                  # resumed: the rest of the decoder stays frozen
    student, config, meta = load_weights(out)
    assert config["encoder"] == "preview" and student.encoder.out_dim == 8 and not config["feat_unfold"]
    assert "teacher.pt (5 iterations)" in meta["distilled_from"]
    mine, theirs = student.state_dict(), teacher.state_dict()
    decoder = [k for k in theirs if not k.startswith(("encoder.", "latent_in."))]
    assert decoder and all(torch.equal(mine[k], theirs[k]) for k in decoder)
    for part in ("encoder.", "latent_in.weight"):
        assert any(not torch.equal(v, untrained[k]) for k, v in mine.items() if k.startswith(part))


def test_a_run_with_a_time_budget_stops_in_time_and_keeps_what_it_learned(tmp_path, photos):
    """--minutes: the run ends when its time is up (a lent GPU's fixed minutes), long before
    --iters, with the weights and the optimiser's state saved where it stopped."""
    out = tmp_path / "m.pt"
    train([str(photos)], "fast", str(out), iters=100_000, batch=2, threads=1, config=TINY, minutes=1e-4)
    meta = load_weights(out)[2]
    assert 1 <= meta["iterations"] < 100
    assert adam_steps(f"{out}.state") == {float(meta["iterations"])}
