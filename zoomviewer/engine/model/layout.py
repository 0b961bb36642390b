"""The memory layout the encoder's convolutions run fastest in on this machine, chosen by
measurement once per process: oneDNN's channels-last kernels were 1.5x faster than the
contiguous ones on an AVX-512 Xeon, and 15 % slower on an AVX2-only CPU (issue 13), so no
fixed choice is right everywhere. ZOOMVIEWER_LAYOUT=channels_last or contiguous skips the
measurement. Pure torch."""

from __future__ import annotations

import os
import threading
import time

import torch

LAYOUTS = {"channels_last": torch.channels_last, "contiguous": torch.contiguous_format}
PROBE_SIDE = 128              # a probe input this size: about 20 G multiply-adds for EDSR-baseline
_chosen: dict[tuple, str] = {}
_lock = threading.Lock()      # one measurement at a time: it changes the encoder's layout


def _time(encoder: torch.nn.Module, x: torch.Tensor, layout: torch.memory_format) -> float:
    encoder.to(memory_format=layout)
    x = x.contiguous(memory_format=layout)
    encoder(x)                 # the first call builds oneDNN's kernels for this shape
    t = time.perf_counter()
    encoder(x)
    return time.perf_counter() - t


@torch.no_grad()
def encoder_layout(encoder: torch.nn.Module, device: torch.device) -> str:
    """'channels_last' or 'contiguous': the faster for `encoder` here (channels-last on
    GPUs, which cuDNN prefers); measured once per encoder shape and device type (the
    encoder is left in channels-last after it: the caller puts it in the chosen one)."""
    forced = os.environ.get("ZOOMVIEWER_LAYOUT", "")
    if forced in LAYOUTS:
        return forced
    if device.type != "cpu":
        return "channels_last"
    key = (type(encoder).__name__, sum(p.numel() for p in encoder.parameters()), device.type)
    with _lock:
        if key not in _chosen:
            x = torch.rand(1, 3, PROBE_SIDE, PROBE_SIDE, device=device)
            times = {name: _time(encoder, x, layout) for name, layout in LAYOUTS.items()}
            _chosen[key] = min(times, key=times.get)
            encoder.to(memory_format=torch.channels_last)
        return _chosen[key]
