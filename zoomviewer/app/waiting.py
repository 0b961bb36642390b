"""What the status bar says while a view waits for its model: `WaitingText`, from the
encoding progress the render thread reports and the moment the preview arrived
("preview in 0.8 s; encoding 40 %, about 6 s left"); then while the view, sharp, is fused
from 8 views ("sharp in 0.4 s; fusing 8 views 40 %") and when it is done ("sharp in
0.4 s; fused 8 views in 1.9 s"). Pure Python: no Qt, no torch."""

from __future__ import annotations


class WaitingText:
    """The waiting text of the current request; `start` it for each new request."""

    def __init__(self) -> None:
        self.request_id: int | None = None
        self.preview_s: float | None = None          # when the preview arrived, after the request
        self._encoding: tuple[float, float] | None = None   # (when, fraction) of the first report

    def start(self, request_id: int, now: float = 0.0) -> None:
        self.request_id, self.preview_s, self._encoding = request_id, None, None
        self.started, self.sharp_s, self.fusing_since = now, None, None

    def fusing(self, fraction: float, now: float) -> str:
        """The view is sharp and being fused: 'sharp in 0.4 s; fusing 8 views 40 %'."""
        if self.fusing_since is None:
            self.sharp_s, self.fusing_since = now - self.started, now
        return f"sharp in {self.sharp_s:.1f} s; fusing 8 views {int(100 * fraction)} %"

    def finished(self, now: float) -> str:
        """'sharp in 1.2 s', or after a fused pass 'sharp in 0.4 s; fused 8 views in 1.9 s'."""
        if self.fusing_since is None:
            return f"sharp in {now - self.started:.1f} s"
        return f"sharp in {self.sharp_s:.1f} s; fused 8 views in {now - self.fusing_since:.1f} s"

    def preview(self, seconds: float) -> str:
        """The preview arrived `seconds` after the request."""
        if self.preview_s is None:
            self.preview_s = seconds
        return f"preview in {self.preview_s:.1f} s; encoding"

    def encoding(self, fraction: float, now: float) -> str:
        """'encoding 40 %, about 6 s left' (the estimate from the reports' pace since the
        first one), after the preview's time when there was one."""
        if self._encoding is None:
            self._encoding = (now, fraction)
        since, first = self._encoding
        text = f"encoding {int(100 * fraction)} %"
        if fraction > first:
            text += f", about {(now - since) * (1 - fraction) / (fraction - first):.0f} s left"
        return text if self.preview_s is None else f"preview in {self.preview_s:.1f} s; {text}"
