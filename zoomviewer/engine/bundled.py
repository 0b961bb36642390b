"""Where the bundled files are: the sample photo and the shipped weights.

They live in the top-level `resources/` folder, installed as the package
`zoomviewer.resources`; from a plain checkout (nothing installed) the folder is found
next to the package.
"""

from __future__ import annotations

from pathlib import Path

MODEL_FILES = {"fast": "fast.pt", "liif": "liif.pt", "restore": "restore.pt"}
DEFAULT_MODEL = "fast"


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
