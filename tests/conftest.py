"""Shared fixtures: a tiny real model, small test images, and settings kept out of the
user's home. Qt runs offscreen (no display on CI)."""

from __future__ import annotations

import os

import numpy as np
import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

TINY_CONFIG = {"kind": "fast", "encoder": "edsr-baseline", "encoder_args": {"n_resblocks": 1, "n_feats": 8}}


@pytest.fixture(scope="session", autouse=True)
def _settings_in_temp_dir(tmp_path_factory):
    """QSettings (recent files) write to a temporary folder, never the user's settings."""
    try:
        from PySide6.QtCore import QSettings
    except ImportError:
        yield
        return
    folder = tmp_path_factory.mktemp("settings")
    for fmt in (QSettings.Format.IniFormat, QSettings.Format.NativeFormat):
        QSettings.setPath(fmt, QSettings.Scope.UserScope, str(folder))
    yield folder


@pytest.fixture
def tiny_model():
    """A real fast-decoder model with random weights (seeded), small enough for tests.
    The output layer is scaled up so that colours vary visibly across the picture
    (default initialisation predicts nearly flat grey)."""
    import torch

    from zoomviewer.model import new_model

    torch.manual_seed(0)
    model = new_model(TINY_CONFIG).eval()
    with torch.no_grad():
        model.render_out.weight.mul_(20)
    return model


@pytest.fixture
def small_image() -> np.ndarray:
    """64 x 48 float32 RGB: smooth gradients plus noise, so every pixel differs."""
    rng = np.random.default_rng(3)
    yy, xx = np.mgrid[0:48, 0:64]
    base = np.stack([xx / 64, yy / 48, 0.5 + 0.5 * np.sin(xx / 5.0 + yy / 7.0)], -1)
    return np.clip(0.75 * base + 0.25 * rng.random((48, 64, 3)), 0, 1).astype(np.float32)
