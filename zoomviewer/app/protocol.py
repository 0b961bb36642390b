"""What crosses the boundary between the GUI thread and the render thread: plain, frozen
records and the names of the kinds of frame. No Qt, no torch: the widgets import this,
never the render thread (which loads torch).

A `RenderRequest` goes to the render thread; `RenderPiece`s come back, each a finished
part of the requested frame (its `image` is a QImage made on the render thread; typed
`object` here so this module needs no Qt). An `ExportJob` asks for one export.
"""

from __future__ import annotations

from dataclasses import dataclass

# Kinds of frame: MODEL is the model chosen in the Model menu (RenderRequest.model says
# which); a model's name (fast, liif, restore) asks for that model whatever is chosen (the
# other side of a model-vs-model compare); AREA is only used inside the render thread.
MODEL, BICUBIC, AREA = "model", "bicubic", "area"
MODEL_NAMES = {"fast": "fast decoder", "liif": "exact LIIF", "restore": "restore"}   # model name -> label


def model_label(name: str) -> str:
    """What people read for a model's name ("fast" -> "fast decoder")."""
    return MODEL_NAMES.get(name, name)


@dataclass(frozen=True)
class RenderRequest:
    request_id: int
    image_id: int
    view: object                     # geometry.View, snapped (View.snapped)
    kinds: tuple[str, ...] = (MODEL,)
    sparse: bool = False             # Faster Deep Zoom (render.render_sparse) for the sharp tiles
    model: str = ""                  # the model MODEL stands for ("": the render thread's first)
    fuse: bool = False               # once sharp, a fused pass (8 views) where it is affordable


@dataclass(frozen=True)
class RenderPiece:
    """A finished piece of a frame: `rect` in the view's global device pixels
    (end-exclusive); `image` (a QImage) is rect-sized when sharp, smaller for the coarse pass.
    A `preview` piece (the preview model's picture, while the model's latent is encoded)
    is painted like a coarse one: under whatever is sharp already, replaced by the sharp tiles."""
    request_id: int
    kind: str                        # the requested kind it belongs to (MODEL or BICUBIC)
    view: object
    rect: tuple[int, int, int, int]
    image: object
    coarse: bool = False
    from_cache: bool = False
    preview: bool = False
    fused: bool = False              # the fused pass: the mean of the photo's 8 turned and flipped views


@dataclass(frozen=True)
class ExportJob:
    photo: object                    # images.Photo (its metadata and path go to the file)
    region: tuple[float, float, float, float]
    out_size: tuple[int, int]
    path: str
    format: str | None = None
    bits: int = 8
    quality: int = 95
    model: str = ""                  # the model to render with ("": the render thread's first)
    views: int = 1                   # 1, or 2, 4, 8: the mean of that many flipped / turned views


@dataclass(frozen=True)
class ModelInfo:
    """What the widgets may know of the models: the first model's name (fast, liif,
    restore, or what its weights call it; "" when there is none), the device they run on,
    whether it blends a local ensemble (Explain), and the names of the models that can be
    chosen instead (the Model menu), its own first."""
    name: str
    device: str
    local_ensemble: bool = True
    choices: tuple[str, ...] = ()
    about: tuple[str, ...] = ()      # lines for Help > About: the model's training, PyTorch's version
