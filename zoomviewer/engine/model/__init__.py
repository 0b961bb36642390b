"""The networks: encoders, the LIIF decoder, the fast decoder, weights I/O and the
choice of compute device (pure torch, no I/O besides weights); the decoders' linear
layers on the CPU (kernels.py); and, imported by the renderer rather than here, the
fast decoder's fused C kernel (native.py, fast_kernel.c)."""

from __future__ import annotations

import torch

from .encoders import EDSRBaseline, RDN, make_encoder
from .fast import FastLIIF
from .liif import LIIF, blend_weights, ensemble_axis
from .weights import WeightsError, build_model, load_preview, load_weights, save_weights

__all__ = ["EDSRBaseline", "RDN", "make_encoder", "LIIF", "FastLIIF", "blend_weights",
           "ensemble_axis", "WeightsError", "build_model", "load_preview", "load_weights", "save_weights",
           "pick_device", "new_model"]


def new_model(config: dict) -> torch.nn.Module:
    """A freshly initialised model that remembers its configuration."""
    model = build_model(config)
    model.config = dict(config)
    model.meta = {}
    return model


def pick_device(name: str | None = None) -> torch.device:
    """CUDA, then MPS, then CPU; `name` ('cpu', 'cuda', 'cuda:1', 'mps') overrides."""
    if name and name != "auto":
        try:
            dev = torch.device(name)
        except RuntimeError:
            raise ValueError(f"unknown device {name!r} (use auto, cpu, cuda or mps)") from None
        if dev.type == "cuda" and not torch.cuda.is_available():
            raise ValueError("CUDA was asked for but is not available on this machine")
        if dev.type == "mps" and not torch.backends.mps.is_available():
            raise ValueError("MPS was asked for but is not available on this machine")
        return dev
    if torch.cuda.is_available():
        return torch.device("cuda")
    if torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")
