"""Encoding ahead while the viewer is idle: once a view is sharp, the render thread encodes
the latent tiles around it (AHEAD times its width and height, within the photo), so that
a pan or a zoom out there is sharp without waiting for the encoder. It works strip by
strip and stops as soon as there is something else to do (a request, an export, a new
photo), between two of the encoder's blocks; what is left waits for the next idle moment.
It never fills more than half the latent's budget, so the view's own tiles are not pushed
out. No Qt (the render thread runs it)."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import contextmanager

import torch

AHEAD = 3            # the area encoded ahead: this many times the view's width and height
STRIP_ROWS = 128     # source rows per encoder call: one block of a strip is the longest a new request waits


class _Interrupted(Exception):
    pass


@contextmanager
def encoder_threads(n: int | None):
    """The calling thread's torch intra-op threads set to `n` for an encoding, then put
    back. The render thread decodes on all cores but one (small operations, and the GUI
    thread's core kept free), but an encoding is seconds of large convolutions that the GUI
    thread hardly competes with: on 2 cores, 2 threads encode a view in half the time of 1."""
    before = torch.get_num_threads()
    if n and n != before:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        if torch.get_num_threads() != before:
            torch.set_num_threads(before)


class EncodeAhead:
    """The one area to encode ahead (planned after each sharp view), and running it."""

    def __init__(self, threads: int | None = None) -> None:
        self._job = None    # (latent, [y0, y1, x0, x1]) still to encode
        self.threads = threads   # torch threads for its encodings (None: the caller's)

    @property
    def pending(self) -> bool:
        return self._job is not None

    def clear(self) -> None:
        self._job = None

    def plan(self, latent, region) -> None:
        """Around `region` (x, y, w, h, in source pixels) of the photo `latent` encodes."""
        x, y, w, h = region
        y0, y1 = max(int(y - (AHEAD - 1) / 2 * h), 0), min(int(y + h + (AHEAD - 1) / 2 * h) + 1, latent.height)
        x0, x1 = max(int(x - (AHEAD - 1) / 2 * w), 0), min(int(x + w + (AHEAD - 1) / 2 * w) + 1, latent.width)
        self._job = (latent, [y0, y1, x0, x1]) if y0 < y1 and x0 < x1 else None

    def run(self, busy: Callable[[], bool]) -> None:
        """Encode the planned area strip by strip until it is done or `busy()` says there
        is other work (checked between the encoder's blocks)."""
        if self._job is None:
            return
        latent, area = self._job

        def check(fraction: float) -> None:
            if busy():
                raise _Interrupted

        y0, y1, x0, x1 = area
        strip_bytes = latent.tile_bytes * (-(-(x1 - x0) // latent.tile) + 1) * (-(-STRIP_ROWS // latent.tile) + 1)
        try:
            for s0 in range(y0, y1, STRIP_ROWS):
                if busy():
                    return
                if latent.bytes_held()[0] + strip_bytes > latent.budget_bytes / 2:
                    break
                with encoder_threads(self.threads):
                    latent.ensure(s0, min(s0 + STRIP_ROWS, y1), x0, x1, check)
                area[0] = min(s0 + STRIP_ROWS, y1)
        except _Interrupted:
            return
        self._job = None
