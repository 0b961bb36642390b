"""Training (docs/LIIF.md section 3) on folders of photos: random scale, 48 px LR patches,
2304 sampled HR targets, flips and transpose, L1 loss, Adam. Resumable. The encoder runs
under bf16 autocast only where the hardware computes bf16 (precision.py).

Photos are decoded once into memory and patches drawn from them by patches.py, in this
process or in worker processes (`workers`, for a GPU whose step outruns one core).
"""

from __future__ import annotations

import json
import math
import sys
import time
from pathlib import Path

import torch

from ..engine.model import load_weights, new_model, save_weights
from .degrade import CHAINS
from .patches import batches, load_training_images
from .precision import precision_name, training_precision

DEFAULT_ENCODER = "edsr-baseline"
PLAN_AFTER = 50      # with a time budget, the schedule's length is set from the pace of this many iterations
WARM_UP = 10         # ... after this many: a GPU's first steps (kernel choice, workers starting) are slow


def lr_at(it: int, total: int, base: float) -> float:
    """Cosine decay over the planned run, floored at 5 % of the base rate."""
    t = min(it / max(total, 1), 1.0)
    return base * max(0.05, 0.5 * (1 + math.cos(math.pi * t)))


def train(data: list[str], kind: str, out: str, iters: int, batch: int = 16, lr: float = 2e-4,
          residual: bool = True, threads: int | None = None, save_every_s: float = 300,
          eval_every: int = 0, eval_data: str | None = None, log: str | None = None,
          seed: int = 0, lr_size: int = 48, snapshot_every: int = 0, bf16: bool | None = None,
          encoder_from: str | None = None, freeze_encoder: bool = False,
          config: dict | None = None, init_from: str | None = None, degrade: str | None = None,
          teacher: str | None = None, device: str = "cpu", minutes: float | None = None,
          workers: int = 0) -> None:
    """Train a `kind` model ('fast' or 'liif') into `out` up to `iters` iterations in all,
    resuming `out` (and its optimiser state, `out`.state) if it exists.

    `config`: the new model's configuration over the default (an EDSR-baseline encoder,
    `residual`), e.g. {"encoder_args": {"n_resblocks": 1, "n_feats": 8}}; not used when
    resuming. `bf16`: None picks bf16 autocast for the encoder where the CPU computes bf16
    natively, True or False forces it; the choice and its reason go into the recipe.
    `init_from`: a new model starts as a copy of these weights (all of it). `degrade`: the
    LR side of every patch goes through this chain of degrade.CHAINS (a restore model), and
    evaluation during training uses the "scan" protocol. `teacher`: distil a preview
    encoder from these weights: the new model is the teacher's decoder (kept frozen) on a
    PreviewEncoder, trained on the photos and to reproduce the teacher's latent.
    `device`: where the networks train ('cpu', 'cuda'); the sampler always runs on the CPU,
    in `workers` processes (0: in this one).
    `minutes`: stop after this long, the cosine planned from the pace of PLAN_AFTER
    iterations after the first WARM_UP so that it ends decayed (for a lent GPU's fixed time).
    """
    if threads:
        torch.set_num_threads(threads)
    out_p = Path(out)
    state_p = _state_path(out_p)
    wanted = {"kind": kind, "encoder": DEFAULT_ENCODER, "residual": residual, **(config or {})}
    if teacher and not out_p.exists():
        wanted = _student_config(teacher)
    model, config, meta, start = _start_model(out_p, wanted, encoder_from, init_from)
    model.to(device).train()
    teacher_model = _trained_parts(model, meta, freeze_encoder, teacher, start, device)
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=lr)
    _resume_optimizer(opt, state_p, start)
    images = load_training_images(data, min_side=lr_size)
    stream = batches(images, batch, seed + start, workers, pin=str(device).startswith("cuda"),
                     lr_size=lr_size, degrade=degrade)
    dtype, why = training_precision(str(device), bf16)
    precision = f"{precision_name(dtype)} encoder ({why})"
    _record_recipe(meta, data, f"LIIF recipe: scale U(1,4), {lr_size}px LR patches, batch {batch}, 2304 targets, "
                   f"flips+transpose, L1, Adam lr {lr} cosine over {iters} its, residual={config.get('residual')}"
                   f", {precision}{', encoder frozen' if freeze_encoder else ''}", degrade)
    print(f"training {config['kind']} on {len(images)} images from {start} to {iters} iterations, {precision}",
          file=sys.stderr)

    logf = open(log or str(out_p) + ".log", "a")
    t_save = t0 = t_warm = time.time()
    loss_acc, n_acc = 0.0, 0
    try:
        it = start
        while it < iters:
            for g in opt.param_groups:
                g["lr"] = lr_at(it, iters, lr)
            loss_acc += _step(model, opt, [t.to(device, non_blocking=True) for t in next(stream)], dtype, teacher_model)
            n_acc += 1
            it += 1
            if it % 10 == 0:
                _log(logf, config["kind"], it, iters, loss_acc / n_acc, (it - start) / (time.time() - t0), g["lr"])
                loss_acc, n_acc = 0.0, 0
            if minutes:
                t_warm = time.time() if it - start == WARM_UP else t_warm
                iters = _fitted_total(iters, minutes, it, start, (t0, t_warm), meta)
                if time.time() - t0 > minutes * 60:
                    break
            if eval_every and eval_data and it % eval_every == 0:
                _evaluate_now(model, eval_data, it, meta, logf, "scan" if degrade else None)
            if snapshot_every and it % snapshot_every == 0:
                meta["iterations"] = it
                save_weights(out_p.with_name(f"{out_p.stem}.it{it}{out_p.suffix}"), model, config, meta)
            if time.time() - t_save > save_every_s:
                _checkpoint(out_p, model, config, meta, opt, it)
                t_save = time.time()
        _checkpoint(out_p, model, config, meta, opt, it)
    finally:
        logf.close()
    print(file=sys.stderr)


def _checkpoint(out_p: Path, model, config: dict, meta: dict, opt: torch.optim.Optimizer, it: int) -> None:
    """The weights at iteration `it` into `out_p`, the optimiser's state beside them (resumable)."""
    meta["iterations"] = it
    save_weights(out_p, model, config, meta)
    torch.save({"iterations": it, "optimizer": opt.state_dict()}, _state_path(out_p))


def _state_path(out_p: Path) -> Path:
    """Where the optimiser's state of the weights `out_p` is kept: FILE.state."""
    return out_p.with_suffix(out_p.suffix + ".state")


def _fitted_total(iters: int, minutes: float, it: int, start: int, times: tuple[float, float],
                  meta: dict) -> int:
    """The run's planned total: once PLAN_AFTER iterations after the warm-up are timed
    (`times`: the run's start, the warm-up's end), what fits the rest of `minutes`."""
    if it - start != WARM_UP + PLAN_AFTER:
        return iters
    now, (t0, t_warm) = time.time(), times
    left = max(0.0, minutes * 60 - (now - t0))
    iters = min(iters, it + int(PLAN_AFTER / max(now - t_warm, 1e-9) * left))
    meta["planned"] = (f"{iters} iterations in all, to fit {minutes:g} minutes at the pace of {PLAN_AFTER} "
                       f"after the first {WARM_UP}")
    return iters


def _log(logf, kind: str, it: int, iters: int, loss: float, rate: float, lr: float) -> None:
    print(f"\r{kind} it {it}/{iters}  loss {loss:.4f}  {rate:.2f} it/s", end="", file=sys.stderr, flush=True)
    logf.write(json.dumps({"it": it, "loss": round(loss, 5), "it_s": round(rate, 3), "lr": lr, "time": time.time()}) + "\n")
    logf.flush()


def _start_model(out_p: Path, wanted: dict, encoder_from: str | None,
                 init_from: str | None = None) -> tuple[torch.nn.Module, dict, dict, int]:
    """(model, config, meta, iterations done): `out_p` resumed if it exists, else a copy
    of `init_from`, else a new model of config `wanted`, with the encoder of
    `encoder_from` if given."""
    if out_p.exists():
        model, config, meta = load_weights(out_p)
        model.config, model.meta = config, meta
        if encoder_from or init_from:
            print(f"{out_p} exists: resuming it, --encoder-from/--init-from are not used", file=sys.stderr)
        return model, config, meta, int(meta.get("iterations", 0))
    if init_from:
        model, config, donor_meta = load_weights(init_from)
        meta = {"init_from": f"{Path(init_from).name} ({donor_meta.get('iterations', '?')} iterations)",
                "training_data": donor_meta.get("training_data", [])}
        return model, config, meta, 0
    model, meta = new_model(wanted), {}
    if encoder_from:
        donor = load_weights(encoder_from)[0]
        try:
            model.encoder.load_state_dict(donor.encoder.state_dict())
        except RuntimeError:
            raise ValueError(f"{encoder_from}: its encoder is not shaped like the new model's "
                             f"({wanted['encoder']}), so it cannot start this one") from None
        meta["encoder_from"] = f"{Path(encoder_from).name} ({donor.meta.get('iterations', '?')} iterations)"
    return model, wanted, meta, 0


def _resume_optimizer(opt: torch.optim.Optimizer, state_p: Path, start: int) -> None:
    """Adam's moments back from the last checkpoint, if it was taken at `start`."""
    if not state_p.exists():
        return
    st = torch.load(state_p, map_location="cpu", weights_only=True)
    if st.get("iterations") == start:
        try:
            opt.load_state_dict(st["optimizer"])
        except ValueError:
            print("the optimizer starts afresh (the set of trained parameters changed)", file=sys.stderr)


def _record_recipe(meta: dict, data: list[str], recipe: str, degrade: str | None) -> None:
    meta["training_data"] = list(dict.fromkeys(meta.get("training_data", []) + [str(d) for d in data]))
    meta["recipe"] = recipe
    if degrade:
        meta["degradation"] = f"{degrade} chain: {CHAINS[degrade][1]}"


def _student_config(teacher: str) -> dict:
    """A preview model: the teacher's configuration, a PreviewEncoder of its width, and a
    first layer of its own over each code alone (feat_unfold off): the teacher's 3x3
    unfolded first layer costs more per pixel than the whole preview encoder."""
    teacher_model, teacher_config, _ = load_weights(teacher)
    return {**teacher_config, "encoder": "preview", "encoder_args": {"out_dim": teacher_model.encoder.out_dim},
            "feat_unfold": False}


def _trained_parts(model, meta: dict, freeze_encoder: bool, teacher: str | None, start: int, device):
    """Freeze what is not trained; -> the teacher model (eval mode, on `device`) when
    distilling, else None."""
    # a new decoder on a trained encoder is first fitted with the encoder frozen: trained
    # jointly from the start, its random gradients disturb the encoder and kill render units
    model.encoder.requires_grad_(not freeze_encoder)
    return _distillation(model, meta, teacher, start).to(device) if teacher else None


def _distillation(model, meta: dict, teacher: str, start: int) -> torch.nn.Module:
    """The teacher in eval mode: a new student takes the teacher's decoder, which stays
    frozen, so the student's first-layer term is read by it exactly as the teacher's. A
    student with a first layer of another shape (over each code alone where the
    teacher's unfolds 3x3) trains that layer too, started at the teacher's centre taps."""
    teacher_model = load_weights(teacher)[0].eval().requires_grad_(False)
    own_first = model.feat_unfold != teacher_model.feat_unfold
    if start == 0:
        mine, theirs = model.state_dict(), teacher_model.state_dict()
        decoder = {k: v for k, v in theirs.items() if not k.startswith("encoder.") and v.shape == mine[k].shape}
        if own_first:
            w, c = theirs["latent_in.weight"], teacher_model.encoder.out_dim
            # unfolded columns are ordered c*9 + 3*dy + dx: the centre tap of channel c is c*9 + 4
            decoder["latent_in.weight"] = torch.cat((w[:, 4:9 * c:9], w[:, 9 * c:]), 1)
        model.load_state_dict({**mine, **decoder})
        meta["distilled_from"] = f"{Path(teacher).name} ({teacher_model.meta.get('iterations', '?')} iterations)"
    trained = ("encoder.", "latent_in.") if own_first else ("encoder.",)
    for name, p in model.named_parameters():
        p.requires_grad_(name.startswith(trained))
    return teacher_model


def _step(model, opt: torch.optim.Optimizer, sample, dtype: torch.dtype, teacher=None) -> float:
    """One optimiser step on a sampled batch; the L1 loss before it (with a teacher, the
    colour loss plus the L1 distance of the first-layer term to the teacher's: what the
    shared decoder reads of each code)."""
    inp, coord, cell, gt = sample
    # the encoder is most of an iteration, so only it runs under autocast; the decoder
    # stays fp32, as it runs at render time
    with torch.autocast(inp.device.type, dtype=torch.bfloat16, enabled=dtype == torch.bfloat16):
        feat = model.encoder(inp)
        if teacher is not None:
            with torch.no_grad():
                target = teacher.encoder(inp).float()
    pred = model.query(inp, coord, cell, feat=feat.float())
    loss = (pred - gt).abs().mean()
    if teacher is not None:
        loss = loss + (model.code_features(feat.float()) - teacher.code_features(target)).abs().mean()
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    return loss.item()


def _evaluate_now(model, eval_data: str, it: int, meta: dict, logf, degrade: str | None) -> None:
    """PSNR x4 on `eval_data` (its LR degraded by protocol `degrade`), added to the
    weights' curve and the log."""
    from .evaluate import evaluate_model

    model.eval()
    with torch.no_grad():
        res = evaluate_model(model, eval_data, [4], degrade=degrade, device=next(model.parameters()).device)
    model.train()
    key = f"{Path(eval_data).name.lower()}_x4" + (f"_{degrade}" if degrade else "")
    meta.setdefault("curve", []).append({"it": it, key: round(res[4], 3)})
    logf.write(json.dumps({"it": it, "eval_x4": res[4], "time": time.time()}) + "\n")
    logf.flush()
    print(f"\n{model.config['kind']} it {it}: PSNR x4 {res[4]:.3f} dB", file=sys.stderr)
