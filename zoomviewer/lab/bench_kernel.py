"""The fused kernel's nanoseconds per output pixel on one core, for each build this machine
has (model/native.py ARCHES: this CPU's, AVX2 + FMA, the compiler's baseline), so a run on
one machine says what the kernel costs on the CPUs people own.

Every build decodes the same view-shaped inputs as the renderer's own build (native.chosen_build),
and its colours are compared with that build's before it is timed (the renderer's build is held
to the plain formulation by tests/test_native.py)."""

from __future__ import annotations

import time

import numpy as np
import torch

from ..engine.model import native
from ..engine.model.native import decode_with, view_inputs

VIEW_ROWS, VIEW_COLS, VIEW_SCALE = 100, 1280, 4.0   # a band of a 1280x800 window at x4


def bench_kernel_builds(model, log, runs: int = 5) -> dict:
    """{arch: ns per output pixel} on one core for each build there is, and the largest
    colour difference of each build from the renderer's (`max_diff`); {} without a build."""
    if native.fast_kernel(model, torch.device("cpu")) is None:
        return {}
    inputs = view_inputs(model, VIEW_ROWS, VIEW_COLS, VIEW_SCALE)
    reference = decode_with(native.chosen_build(model)[1], model, inputs)
    out: dict = {"ns_per_pixel": {}, "max_diff": {},
                 "view": f"{VIEW_ROWS}x{VIEW_COLS} pixels at x{VIEW_SCALE:g}, one thread"}
    pixels = VIEW_ROWS * VIEW_COLS
    for arch in native.ARCHES:
        lib = native.build(arch)
        if lib is None:
            continue
        out["max_diff"][arch] = float((decode_with(lib, model, inputs) - reference).abs().max())
        times = []
        for _ in range(runs):
            t = time.perf_counter()
            decode_with(lib, model, inputs)
            times.append(time.perf_counter() - t)
        out["ns_per_pixel"][arch] = 1e9 * float(np.median(times)) / pixels
    log("fused kernel, ns per pixel on one core: "
        + ", ".join(f"{k} {v:.0f}" for k, v in out["ns_per_pixel"].items())
        + " (largest difference from the renderer's build: "
        + ", ".join(f"{k} {v:.1e}" for k, v in out["max_diff"].items()) + ")")
    return out
