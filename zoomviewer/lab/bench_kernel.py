"""The fused kernel's nanoseconds per output pixel on one core, for each build this machine
has (model/native.py ARCHES: this CPU's, AVX2 + FMA, the compiler's baseline), so a run on
one machine says what the kernel costs on the CPUs people own.

Every build decodes the same view-shaped inputs as the renderer's own build, and its colours
are compared with that build's before it is timed (the renderer's build is held to the plain
formulation by tests/test_native.py)."""

from __future__ import annotations

import time

import numpy as np
import torch

from ..engine.model import native

VIEW_ROWS, VIEW_COLS, VIEW_SCALE = 100, 1280, 4.0   # a band of a 1280x800 window at x4


def view_inputs(model, rows: int = VIEW_ROWS, cols: int = VIEW_COLS, scale: float = VIEW_SCALE,
                seed: int = 0) -> dict:
    """FastKernel.decode's arguments for `rows` x `cols` output pixels of a view at `scale`:
    a random code table of the source block those pixels read, each pixel's two members
    per axis (their code indices and rel_coords as the renderer computes them), and the
    residual base's window."""
    rng = np.random.default_rng(seed)
    h, w = int(np.ceil(rows / scale)) + 2, int(np.ceil(cols / scale)) + 2

    def axis(n: int, size: int):
        c = (np.arange(n) + 0.5) / scale - 0.5              # source coordinate of each pixel centre
        lo = np.clip(np.floor(c).astype(np.int64), 0, size - 2)
        code = np.stack([lo, lo + 1]).astype(np.int32)
        rel = np.stack([c - lo, c - lo - 1]).astype(np.float32) * 2.0 / size
        return code, rel, (c - lo).astype(np.float32)

    rc, rr, rt = axis(rows, h)
    cc, cr, ct = axis(cols, w)
    table = torch.from_numpy(rng.standard_normal((1 + 2 * model.depth, h, w, model.width), dtype=np.float32))
    base = (torch.from_numpy(rng.random((3, h, w), dtype=np.float32)), rc, rt, cc, ct)
    return {"table": table, "row_code": rc, "row_rel": rr, "col_code": cc, "col_rel": cr,
            "out": torch.empty(rows, cols, 3), "base": base if model.residual else None}


def decode_with(lib, model, inputs: dict) -> torch.Tensor:
    """The colours one build decodes for `inputs` (view_inputs)."""
    a = inputs
    native.FastKernel(lib, model).decode(a["table"], a["row_code"], a["row_rel"], a["col_code"], a["col_rel"],
                                         a["out"], a["base"])
    return a["out"].clone()


def bench_kernel_builds(model, log, runs: int = 5) -> dict:
    """{arch: ns per output pixel} on one core for each build there is, and the largest
    colour difference of each build from the renderer's (`max_diff`); {} without a build."""
    own = native.library()
    if own is None or native.fast_kernel(model, torch.device("cpu")) is None:
        return {}
    inputs = view_inputs(model)
    reference = decode_with(own, model, inputs)
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
