"""The torch-op decode of a band of output rows: the path every decoder and device has
(the fused C kernel, fused.py, replaces it for the fast decoder on the CPU).

Rows and columns are separable, so the output positions along each axis are grouped into
runs where every ensemble member keeps its code (AxisRun); the queries then read their
codes from the code table through strided views (no per-query gather), all members run
in the same few large operations, and the members' last hidden layers are blended before
the output layer runs once (docs/LIIF.md section 6).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import numpy as np
import torch

from ..model.liif import stacked_blend_weights


class AxisRun(NamedTuple):
    """Output positions along one axis of a band, grouped into pieces of equal length
    that each use one code per ensemble member."""
    index: np.ndarray          # (G, L) output positions (relative to the band)
    codes: np.ndarray          # (members, G) code index of each piece, per member
    rel: torch.Tensor          # (members, G, L) rel_coord of each position, per member


def axis_runs(codes: list[np.ndarray], rels: list[torch.Tensor], min_pieces: int = 4) -> list[AxisRun]:
    """Split one axis into pieces where every member keeps its code. Each stretch of at
    least `min_pieces` segments whose codes all step by one becomes a run, its segments
    cut to the shortest inner segment length L (so its codes are a slice of the table:
    no gather); every other position becomes a piece of length 1 (codes gathered)."""
    n = len(codes[0])
    change = np.zeros(n, dtype=bool)
    change[0] = True
    for c in codes:
        change[1:] |= c[1:] != c[:-1]
    starts = np.flatnonzero(change)
    lengths = np.diff(np.r_[starts, n])
    steps = np.ones(len(starts) - 1, dtype=bool)
    for c in codes:
        steps &= np.diff(c[starts]) == 1
    breaks = np.r_[0, np.flatnonzero(~steps) + 1, len(starts)]
    taken = np.zeros(n, dtype=bool)
    indices = []
    for k0, k1 in zip(breaks[:-1], breaks[1:]):
        if k1 - k0 < min(min_pieces, len(starts)):
            continue
        inner = lengths[k0 + 1:k1 - 1] if k1 - k0 > 2 else lengths[k0:k1]
        length = int(inner.min())
        while k1 - k0 > 1 and lengths[k0] < length:  # a short first or last segment (the view's edge)
            k0 += 1
        while k1 - k0 > 1 and lengths[k1 - 1] < length:
            k1 -= 1
        length = min(length, int(lengths[k0:k1].min()))
        index = starts[k0:k1, None] + np.arange(length)[None, :]
        taken[index.ravel()] = True
        indices.append(index)
    rest = np.flatnonzero(~taken)
    if len(rest):
        indices.append(rest[:, None])
    rel = torch.stack(rels)
    return [AxisRun(index, np.stack([c[index[:, 0]] for c in codes]),
                    rel.index_select(1, torch.from_numpy(index.ravel()).to(rel.device)).view(len(rels), *index.shape))
            for index in indices]


def member_codes(table: torch.Tensor, rows: np.ndarray, cols: np.ndarray) -> torch.Tensor:
    """table (P, h, w, K), the code table stored part by part; rows (A, g) and cols (B, c),
    the code rows and columns of each member -> their codes as (A, B, g, 1, 1, c, P, K).
    Along an axis where each member's codes are consecutive and the members a fixed
    number of codes apart (a run's main stretch), that is a strided view: nothing is copied."""
    def strided(codes: np.ndarray) -> bool:
        offsets = codes - codes[:1]
        return bool((np.diff(codes[0]) == 1).all() and (offsets == offsets[:, :1]).all())

    def pick(t: torch.Tensor, dim: int, codes: np.ndarray) -> torch.Tensor:
        """t with dimension `dim` replaced by (members, pieces), as a view."""
        size, stride = list(t.shape), list(t.stride())
        size[dim:dim + 1] = codes.shape
        stride[dim:dim + 1] = [int(codes[-1, 0] - codes[0, 0]) * stride[dim], stride[dim]]
        return t.as_strided(size, stride, t.storage_offset() + int(codes[0, 0]) * t.stride(dim))

    if strided(rows) and strided(cols):
        picked = pick(pick(table, 1, rows), 3, cols)              # (P, A, g, B, c, K)
    else:  # a gather of exactly the codes used (a view of the table cannot be index_selected without a full copy)
        r = torch.from_numpy(rows.ravel()).to(table.device)
        q = torch.from_numpy(cols.ravel()).to(table.device)
        picked = torch.ops.aten.index.Tensor(table, [None, r[:, None], q[None, :]])
        picked = picked.view(table.shape[0], *rows.shape, *cols.shape, table.shape[3])
    return picked.permute(1, 3, 2, 4, 0, 5)[:, :, :, None, None]


def decode_band(model, table: torch.Tensor, ys, xs, i0: int, i1: int, fy0: int, fx0: int,
                chunk: int, step: Callable[[float], None]) -> torch.Tensor:
    """Blend of the ensemble members' predictions for output rows i0:i1 -> (R, W, 3).

    `table` holds the codes from row fy0 and column fx0; ys and xs: each member's (code
    index, rel_coord) per output row and column. A chunk is laid out (member y, member
    x, row piece, row in piece, column in piece, column piece, K): the codes are a
    strided view of the table (contiguous in the last two dimensions, broadcast over the
    positions within a piece), so no query gathers its codes. `chunk` bounds the queries
    (pixels x members) of one chunk; `step(fraction done)` runs between chunks.
    """
    dev = table.device
    n_rows, n_cols = i1 - i0, xs[0][0].shape[0]
    row_runs = axis_runs([i[i0:i1].cpu().numpy() - fy0 for i, _ in ys], [r[i0:i1] for _, r in ys])
    col_runs = axis_runs([i.cpu().numpy() - fx0 for i, _ in xs], [r for _, r in xs])
    pixels = max(1, chunk // (len(ys) * len(xs)))
    out = torch.empty(n_rows, n_cols, 3, device=dev)
    pieces = []
    for run_y in row_runs:
        for run_x in col_runs:
            g_n, l_n = run_y.index.shape
            c_n, m_n = run_x.index.shape
            per_c = max(1, min(c_n, pixels // max(1, l_n * m_n)))
            per_g = max(1, pixels // (l_n * per_c * m_n))
            pieces += [(run_y, run_x, g0, min(g0 + per_g, g_n), c0, min(c0 + per_c, c_n))
                       for g0 in range(0, g_n, per_g) for c0 in range(0, c_n, per_c)]
    total = sum((g1 - g0) * ry.index.shape[1] * (c1 - c0) * rx.index.shape[1] for ry, rx, g0, g1, c0, c1 in pieces)
    done = 0
    step(0.0)
    for run_y, run_x, g0, g1, c0, c1 in pieces:
        ry = run_y.rel[:, None, g0:g1, :, None, None]                      # (A, 1, g, L, 1, 1)
        rx = run_x.rel[None, :, c0:c1].transpose(2, 3)[:, :, None, None]   # (1, B, 1, 1, M, c)
        codes = member_codes(table, run_y.codes[:, g0:g1], run_x.codes[:, c0:c1])
        h = model.decode_hidden(codes, ry[..., None], rx[..., None])       # (A, B, g, L, M, c, K)
        h.mul_(stacked_blend_weights(ry, rx)[..., None])
        pred = model.project(h.sum((0, 1))).float()                        # (g, L, M, c, 3)
        rows = torch.from_numpy(run_y.index[g0:g1]).to(dev)
        cols = torch.from_numpy(run_x.index[c0:c1].T.copy()).to(dev)
        # index_put_ rather than indexing syntax: the latter holds the GIL, and tiles render on parallel threads
        out.index_put_((rows[:, :, None, None], cols[None, None]), pred)
        done += rows.numel() * cols.numel()
        step(done / total)
    return out
