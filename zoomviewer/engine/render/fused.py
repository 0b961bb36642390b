"""The fused C kernel's decode of a band of output rows (model/native.py): the fast
decoder on the CPU, where the kernel could be built. Same pixels as torch_decode.py's
decode_band plus the residual base, to within summation order."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from ..model.native import FastKernel


def fused_columns(xs, fx0: int) -> tuple[np.ndarray, np.ndarray]:
    """Each x-member's code index (from column fx0 of the table) and rel_coord, (B, W)
    each, as the kernel reads them; every band of a render reads the same ones."""
    return (np.stack([i.cpu().numpy() - fx0 for i, _ in xs]).astype(np.int32),
            np.stack([r.cpu().numpy() for _, r in xs]))


def decode_band_fused(kernel: FastKernel, table: torch.Tensor, ys, cols: tuple[np.ndarray, np.ndarray],
                      i0: int, i1: int, fy0: int, chunk: int, step: Callable[[float], None], base,
                      out: torch.Tensor) -> None:
    """Output rows i0:i1 through the fused kernel, written into `out` (R, W, 3) in [0, 1]:
    the same blend of the ensemble members' predictions as decode_band, plus the residual
    `base` (residual.bilinear_window) when given. `table` holds the codes from row fy0;
    `cols` from fused_columns. `chunk` pixels (rounded to whole rows) between calls of
    `step(fraction done)`."""
    n_rows, n_cols = i1 - i0, cols[0].shape[1]
    row_code = np.stack([i[i0:i1].cpu().numpy() - fy0 for i, _ in ys]).astype(np.int32)
    row_rel = np.stack([r[i0:i1].cpu().numpy() for _, r in ys])
    if base is not None:
        base = (base[0].contiguous(), *base[1:])  # the kernel reads the source row by row
    per = max(1, chunk // n_cols)
    step(0.0)
    for r0 in range(0, n_rows, per):
        r1 = min(n_rows, r0 + per)
        rows_base = None if base is None else (base[0], base[1][:, r0:r1], base[2][r0:r1], base[3], base[4])
        kernel.decode(table, row_code[:, r0:r1], row_rel[:, r0:r1], *cols, out[r0:r1], rows_base)
        step(r1 / n_rows)
