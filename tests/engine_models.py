"""Small random-weight models for engine tests, with outputs spread over a wide range so
that comparisons are meaningful (default initialisation predicts almost flat grey)."""

from __future__ import annotations

import numpy as np
import torch

from zoomviewer.engine.model import new_model


def spread_model(kind: str, residual: bool = False, seed: int = 0, **flags) -> torch.nn.Module:
    torch.manual_seed(seed)
    cfg = {"kind": kind, "encoder": "edsr-baseline", "encoder_args": {"n_resblocks": 2, "n_feats": 16},
           "residual": residual, **flags}
    model = new_model(cfg).eval()
    with torch.no_grad():
        if kind == "liif":
            model.imnet.layers[-1].weight.mul_(25)
        else:
            # the fast decoder starts with near-identity modulations; spread them as training would
            model.render_out.weight.mul_(3)
            model.latent_out.weight.mul_(30)
    return model


def sample_image(h: int = 19, w: int = 27, seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    base = np.stack([xx / w, yy / h, 0.5 + 0.5 * np.sin(xx / 3.0)], -1)
    return np.clip(0.7 * base + 0.3 * rng.random((h, w, 3)), 0, 1).astype(np.float32)
