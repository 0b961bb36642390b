"""How the encoder's convolutions run fastest on this machine, chosen by measurement once
per process: oneDNN in channels-last or contiguous memory (channels-last was 1.5x faster on
an AVX-512 Xeon and 15 % slower on an AVX2-only CPU, issue 13), or, for EDSR-baseline and the
preview encoder on the CPU, "winograd": their convolutions by Winograd's F(4x4, 3x3) in C
(winograd.py; the head in contiguous torch), where that can be built. No fixed choice is
right everywhere. ZOOMVIEWER_LAYOUT=channels_last, contiguous or winograd skips the
measurement (winograd only where it can run)."""

from __future__ import annotations

import os
import threading
import time

import torch

from .winograd import winograd_encoder

# each choice's memory format for the encoder's torch convolutions
LAYOUTS = {"channels_last": torch.channels_last, "contiguous": torch.contiguous_format,
           "winograd": torch.contiguous_format}
PROBE_SIDE = 128              # a probe input this size: about 20 G multiply-adds for EDSR-baseline
# At 128 px (activations in cache) oneDNN's convolution now and then tied Winograd on a 2-core
# AVX2 EPYC (0.25 s each; channels-last chosen in 6 of 36 probes), though Winograd was 1.2-1.7x
# faster from 256 px up, the sizes photos are encoded at (16.9-19.3 against 24-30 s/MP). A
# larger probe would cost seconds at every model load, so Winograd keeps its place unless a
# torch layout beats it by more than this at the probe size.
WINOGRAD_MARGIN = 1.15
_chosen: dict[tuple, str] = {}
_lock = threading.Lock()      # one measurement at a time: it changes the encoder's layout


def _time(encoder: torch.nn.Module, x: torch.Tensor, layout: str) -> float:
    encoder.to(memory_format=LAYOUTS[layout])
    x = x.contiguous(memory_format=LAYOUTS[layout])
    run = winograd_encoder(encoder, x.device) if layout == "winograd" else encoder
    if run is None:
        return float("inf")
    run(x)                     # the first call builds oneDNN's kernels for this shape
    t = time.perf_counter()
    run(x)
    return time.perf_counter() - t


def fastest_layout(times: dict[str, float]) -> str:
    """The layout to use given each one's probe time (inf: cannot run here): the fastest,
    except that Winograd stays within WINOGRAD_MARGIN of it (see there)."""
    best = min(times, key=times.get)
    return "winograd" if times.get("winograd", float("inf")) <= WINOGRAD_MARGIN * times[best] else best


@torch.no_grad()
def encoder_layout(encoder: torch.nn.Module, device: torch.device) -> str:
    """'channels_last', 'contiguous' or 'winograd': the fastest for `encoder` here
    (channels-last on GPUs, which cuDNN prefers); measured once per encoder shape and
    device type (the encoder is left in channels-last after it: the caller puts it in
    LAYOUTS[chosen])."""
    forced = os.environ.get("ZOOMVIEWER_LAYOUT", "")
    if forced in LAYOUTS and (forced != "winograd" or winograd_encoder(encoder, device) is not None):
        return forced
    if device.type != "cpu":
        return "channels_last"
    key = (type(encoder).__name__, sum(p.numel() for p in encoder.parameters()), device.type)
    with _lock:
        if key not in _chosen:
            x = torch.rand(1, 3, PROBE_SIDE, PROBE_SIDE, device=device)
            times = {name: _time(encoder, x, name) for name in LAYOUTS}
            _chosen[key] = fastest_layout(times)
            encoder.to(memory_format=torch.channels_last)
        return _chosen[key]
