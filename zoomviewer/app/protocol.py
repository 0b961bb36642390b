"""What crosses the boundary between the GUI thread and the render thread: plain, frozen
records and the names of the kinds of frame. No Qt, no torch: the widgets import this,
never the render thread (which loads torch).

A `RenderRequest` goes to the render thread; `RenderPiece`s come back, each a finished
part of the requested frame (its `image` is a QImage made on the render thread; typed
`object` here so this module needs no Qt). An `ExportJob` asks for one export.
"""

from __future__ import annotations

from dataclasses import dataclass

MODEL, BICUBIC, AREA = "model", "bicubic", "area"   # kinds of frame; AREA only inside the render thread
MODEL_NAMES = {"fast": "fast decoder", "liif": "LIIF"}   # model kind -> what the status bar calls it


@dataclass(frozen=True)
class RenderRequest:
    request_id: int
    image_id: int
    view: object                     # geometry.View, snapped (View.snapped)
    kinds: tuple[str, ...] = (MODEL,)
    sparse: bool = False             # Faster Deep Zoom (render.render_sparse) for the sharp tiles


@dataclass(frozen=True)
class RenderPiece:
    """A finished piece of a frame: `rect` in the view's global device pixels
    (end-exclusive); `image` (a QImage) is rect-sized when sharp, smaller for the coarse pass."""
    request_id: int
    kind: str                        # the requested kind it belongs to (MODEL or BICUBIC)
    view: object
    rect: tuple[int, int, int, int]
    image: object
    coarse: bool = False
    from_cache: bool = False


@dataclass(frozen=True)
class ExportJob:
    photo: object                    # images.Photo (its metadata and path go to the file)
    region: tuple[float, float, float, float]
    out_size: tuple[int, int]
    path: str
    format: str | None = None
    bits: int = 8
    quality: int = 95


@dataclass(frozen=True)
class ModelInfo:
    """What the widgets may know of the loaded model: its name for people ("" when there
    is none), the device it runs on, and whether it blends a local ensemble (Explain)."""
    name: str
    device: str
    local_ensemble: bool = True
