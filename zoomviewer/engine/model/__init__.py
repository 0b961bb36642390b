"""The networks: encoders, the LIIF decoder, the fast decoder, weights I/O, the choice
of compute device and of where to compute in fp16 (pure torch, no I/O besides weights);
the decoders' linear layers on the CPU (kernels.py); and, imported by the renderer rather
than here, the fast decoder's fused C kernel (native.py, fast_kernel.c)."""

from __future__ import annotations

import torch

from .encoders import EDSRBaseline, RDN, make_encoder
from .fast import FastLIIF
from .liif import LIIF, blend_weights, ensemble_axis
from .weights import WeightsError, build_model, load_preview, load_weights, save_weights

__all__ = ["EDSRBaseline", "RDN", "make_encoder", "LIIF", "FastLIIF", "blend_weights",
           "ensemble_axis", "WeightsError", "build_model", "load_preview", "load_weights", "save_weights",
           "pick_device", "new_model", "uses_fp16", "reduced_precision"]


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


def uses_fp16(device: torch.device, model: torch.nn.Module) -> bool:
    """Whether `model` computes its matmuls in fp16 on `device`: on CUDA, and only for the
    exact LIIF. Under fp16 the fast decoder's colours were up to 0.0074 from the CPU's on an
    H200 (the exact LIIF's held 0.002, half a grey level), and its small layers are bound by
    kernel launches there, so fp16 bought it no speed."""
    return device.type == "cuda" and getattr(model, "kind", None) != "fast"


def reduced_precision(device: torch.device, model: torch.nn.Module):
    """fp16 matmuls where uses_fp16 says so (coordinates and blending stay fp32: they are
    computed outside and predictions are cast back to fp32); full precision elsewhere."""
    return torch.autocast("cuda", dtype=torch.float16, enabled=uses_fp16(device, model))
