"""Time the fast decoder's fused kernel (zoomviewer/engine/model/fast_kernel.c) on one CPU thread:
nanoseconds per output pixel (four ensemble members, the shipped decoder's weights, a
random code table), and the torch path's time for the same band for comparison. Set CC to
time another build (for example a wrapper that compiles for an older instruction set).
Usage: python tools/fused_kernel.py"""

from __future__ import annotations

import time

import numpy as np
import torch

from zoomviewer.lab.bench import _model
from zoomviewer.engine.model.native import fast_kernel
from zoomviewer.engine.render.torch_decode import decode_band


def main() -> None:
    torch.set_num_threads(1)
    torch.manual_seed(0)
    model, origin = _model("fast")
    kernel = fast_kernel(model, torch.device("cpu"))
    if kernel is None:
        print("no fused kernel on this machine (no C compiler, or ZOOMVIEWER_NATIVE=0)")
        return
    rows, cols, reps = 200, 1280, 5
    table = torch.randn(13, 80, 330, 16)
    for scale in (4, 12):
        code_r = (np.arange(rows) // scale).astype(np.int32)
        code_c = (np.arange(cols) // scale).astype(np.int32)
        rng = np.random.default_rng(0)
        row_code, col_code = np.stack([code_r, code_r + 1]), np.stack([code_c, code_c + 1])
        row_rel = rng.uniform(-1, 1, (2, rows)).astype(np.float32)
        col_rel = rng.uniform(-1, 1, (2, cols)).astype(np.float32)
        out = torch.empty(rows, cols, 3)
        kernel.decode(table, row_code, row_rel, col_code, col_rel, out)
        start = time.perf_counter()
        for _ in range(reps):
            kernel.decode(table, row_code, row_rel, col_code, col_rel, out)
        fused = (time.perf_counter() - start) / reps

        ys = [(torch.from_numpy(c).long(), torch.from_numpy(r)) for c, r in zip(row_code, row_rel)]
        xs = [(torch.from_numpy(c).long(), torch.from_numpy(r)) for c, r in zip(col_code, col_rel)]
        with torch.no_grad():
            decode_band(model, table, ys, xs, 0, rows, 0, 0, 32768, lambda done: None)
            start = time.perf_counter()
            for _ in range(reps):
                decode_band(model, table, ys, xs, 0, rows, 0, 0, 32768, lambda done: None)
        plain = (time.perf_counter() - start) / reps
        print(f"x{scale}: fused kernel {fused * 1e9 / (rows * cols):.0f} ns per pixel, "
              f"torch ops {plain * 1e9 / (rows * cols):.0f} ns per pixel (one thread, {origin} weights)")


if __name__ == "__main__":
    main()
