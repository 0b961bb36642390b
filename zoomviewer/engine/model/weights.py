"""Weights files: our own format and the published LIIF `.pth` layout (docs/LIIF.md section 2).

Both are read with torch.load(weights_only=True), which refuses any pickle that would
construct arbitrary objects, so a crafted file cannot run code. Our format:
  {'format': 'zoomviewer-weights', 'version': 1, 'config': {...}, 'state_dict': {...},
   'meta': {training data, iterations, PSNR ...}}
"""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import torch
from torch import nn

from .fast import FastLIIF
from .liif import LIIF

FORMAT = "zoomviewer-weights"
KINDS = {"liif": LIIF, "fast": FastLIIF}


class WeightsError(ValueError):
    """A weights file that cannot be used; the message says which file and why."""


def build_model(config: dict) -> nn.Module:
    config = dict(config)
    kind = config.pop("kind", None)
    if kind not in KINDS:
        raise WeightsError(f"unknown model kind {kind!r} (known: {', '.join(KINDS)})")
    try:
        return KINDS[kind](**config)
    except (TypeError, ValueError) as e:
        raise WeightsError(f"bad model configuration: {e}") from None


def save_weights(path: str | os.PathLike, model: nn.Module, config: dict, meta: dict | None = None,
                 half: bool = False) -> None:
    """Write our format atomically (temporary file, then rename)."""
    sd = {k: (v.detach().half() if half and v.is_floating_point() else v.detach()).cpu().clone()
          for k, v in model.state_dict().items()}
    blob = {"format": FORMAT, "version": 1, "config": dict(config), "state_dict": sd,
            "meta": dict(meta or {})}
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        torch.save(blob, tmp)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def _read(path: Path) -> object:
    if path.is_dir():
        raise WeightsError(f"{path}: is a directory, not a weights file")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise WeightsError(f"{path}: no such weights file") from None
    except PermissionError:
        raise WeightsError(f"{path}: permission denied") from None
    except pickle.UnpicklingError:
        # torch's own message is a page of advice about torch.load: no use to a person here
        raise WeightsError(f"{path}: refused to load: the file holds objects other than "
                           f"plain tensors and numbers, which could run code") from None
    except Exception as e:  # zip damage, truncation, not a torch file at all
        raise WeightsError(f"{path}: not a readable weights file ({type(e).__name__})") from None


def _published_config(spec: dict) -> dict:
    args = spec.get("args", {})
    enc = args.get("encoder_spec", {})
    imnet = args.get("imnet_spec", {})
    if spec.get("name") != "liif" or imnet.get("name") != "mlp":
        raise WeightsError(f"unsupported published model {spec.get('name')!r} (only 'liif' with an 'mlp' decoder)")
    return {
        "kind": "liif",
        "encoder": enc.get("name"),
        "encoder_args": {k: v for k, v in enc.get("args", {}).items() if k != "no_upsampling"},
        "hidden": list(imnet.get("args", {}).get("hidden_list", [256, 256, 256, 256])),
        "local_ensemble": bool(args.get("local_ensemble", True)),
        "feat_unfold": bool(args.get("feat_unfold", True)),
        "cell_decode": bool(args.get("cell_decode", True)),
    }


def load_weights(path: str | os.PathLike) -> tuple[nn.Module, dict, dict]:
    """-> (model in eval mode on the CPU in fp32, config, meta). Accepts our files and
    published LIIF checkpoints."""
    path = Path(path)
    blob = _read(path)
    if isinstance(blob, dict) and blob.get("format") == FORMAT:
        config, sd, meta = blob.get("config"), blob.get("state_dict"), dict(blob.get("meta") or {})
    elif isinstance(blob, dict) and isinstance(blob.get("model"), dict) and "sd" in blob["model"]:
        config, meta = _published_config(blob["model"]), {"source": "published LIIF checkpoint"}
        sd = {k: v for k, v in blob["model"]["sd"].items()}
        if "epoch" in blob:
            meta["epoch"] = blob["epoch"]
    else:
        raise WeightsError(f"{path}: not a zoomviewer or LIIF weights file")
    if not isinstance(config, dict) or not isinstance(sd, dict):
        raise WeightsError(f"{path}: damaged weights file (no configuration or state dict)")
    try:
        model = build_model(config)
    except WeightsError as e:
        raise WeightsError(f"{path}: {e}") from None
    _load_state(model, sd, path)
    model.config = dict(config)
    model.meta = meta
    return model.eval(), dict(config), meta


def _load_state(model: nn.Module, sd: dict, path: Path) -> None:
    own = model.state_dict()
    missing = [k for k in own if k not in sd]
    unexpected = [k for k in sd if k not in own]
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"missing {len(missing)} tensor(s), e.g. {missing[0]}")
        if unexpected:
            parts.append(f"unexpected {len(unexpected)} tensor(s), e.g. {unexpected[0]}")
        raise WeightsError(f"{path}: does not match the model ({'; '.join(parts)})")
    for k, v in own.items():
        t = sd[k]
        if not isinstance(t, torch.Tensor):
            raise WeightsError(f"{path}: {k} is not a tensor")
        if tuple(t.shape) != tuple(v.shape):
            raise WeightsError(f"{path}: {k} has shape {tuple(t.shape)}, the model needs {tuple(v.shape)}")
    model.load_state_dict({k: sd[k].float() if sd[k].is_floating_point() else sd[k] for k in own})


def load_preview():
    """The shipped preview model (bundled.PREVIEW_FILE), or None when it is not installed."""
    from ..bundled import shipped_preview

    path = shipped_preview()
    return None if path is None else load_weights(path)[0]
