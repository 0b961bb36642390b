"""Where the bundled files are: the sample photo and the shipped weights; and the
package's version (`zoomviewer --version`, Help > About), also known installed or not.

They live in the top-level `resources/` folder, installed as the package
`zoomviewer.resources`; from a plain checkout (nothing installed) the folder is found
next to the package.
"""

from __future__ import annotations

from pathlib import Path

MODEL_FILES = {"fast": "fast.pt", "liif": "liif.pt", "restore": "restore.pt"}
DEFAULT_MODEL = "fast"
# the preview model (the fast decoder on a distilled, 14x cheaper encoder): not a choice of
# the Model menu, but what a view shows while the chosen model's latent is being encoded
PREVIEW_FILE = "preview.pt"


def version() -> str:
    """The installed package's version; `__version__` in a plain checkout."""
    from importlib import metadata

    try:
        return metadata.version("zoomviewer")
    except metadata.PackageNotFoundError:   # a plain checkout, nothing installed
        from .. import __version__
        return __version__


def resource_dir() -> Path:
    try:
        import zoomviewer.resources as res
        return Path(res.__file__).resolve().parent
    except ImportError:
        return Path(__file__).resolve().parents[2] / "resources"


def sample_photo() -> Path:
    return resource_dir() / "sample.png"


def shipped_weights(kind: str = DEFAULT_MODEL) -> Path | None:
    """The shipped weights file of model `kind` (fast, liif, restore), or None when not installed."""
    if kind not in MODEL_FILES:
        raise ValueError(f"unknown model {kind!r} (choose {' or '.join(MODEL_FILES)})")
    p = resource_dir() / MODEL_FILES[kind]
    return p if p.is_file() else None


def shipped_preview() -> Path | None:
    """The shipped preview model's weights file, or None when not installed."""
    p = resource_dir() / PREVIEW_FILE
    return p if p.is_file() else None
