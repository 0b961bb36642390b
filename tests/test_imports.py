"""The house rules on imports, read from the source with `ast` (lazy imports inside
functions count too): layers import one way only, nothing before the Qt line imports
PySide6, and the widgets never import torch. A new module must be given a place here."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "zoomviewer"

# Each room may import rooms of its own layer or an earlier one, never a later one.
LAYERS = [
    {"geometry", "images", "resample", "bundled", "resources"},
    {"model"},
    {"latent"},
    {"render"},
    {"export"},
    # ---- the Qt line ----
    {"worker"},
    {"viewport"},
    {"canvas"},
    {"compare"},
    {"exportdialog"},
    {"window"},
]
QT_LINE = 5
QT_ROOMS = set().union(*LAYERS[QT_LINE:])
# Entry points and tools that sit where they do; only the pure ones may be imported by rooms.
FREE = {"__init__", "__main__", "cli", "train", "evaluate", "bench", "explain"}
PURE_FREE = {"explain"}
NO_TORCH = QT_ROOMS - {"worker"}          # the widgets reach torch only through the worker
ENTRY_POINTS = {"cli", "__main__", "bench"}  # may start the GUI (window) or time the render thread, lazily


def room_of(path: Path) -> str:
    rel = path.relative_to(PACKAGE)
    return rel.parts[0].removesuffix(".py") if len(rel.parts) > 1 or rel.name != "__init__.py" else "__init__"


def imports(path: Path) -> list[tuple[str, int]]:
    """(what, line): a room of ours ("zoomviewer.<room>") or a top-level third-party name."""
    package = ["zoomviewer", *path.relative_to(PACKAGE).parent.parts]
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names = [a.name.split(".") for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[:len(package) - (node.level - 1)]
                names = [base + node.module.split(".")] if node.module else [base + [a.name] for a in node.names]
            else:
                names = [node.module.split(".")]
        else:
            continue
        for parts in names:
            if parts[0] == "zoomviewer":
                found.append(("zoomviewer." + (parts[1] if len(parts) > 1 else "__init__"), node.lineno))
            else:
                found.append((parts[0], node.lineno))
    return found


MODULES = sorted(p for p in PACKAGE.rglob("*.py"))


def layer(room: str) -> int | None:
    for i, rooms in enumerate(LAYERS):
        if room in rooms:
            return i
    return None


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_module_respects_the_layers(path):
    room = room_of(path)
    assert layer(room) is not None or room in FREE, \
        f"{room}.py has no place in the layers: add it to LAYERS or FREE in tests/test_imports.py"
    for what, line in imports(path):
        where = f"{path.relative_to(PACKAGE.parent)}:{line}"
        if what.startswith("zoomviewer."):
            target = what.split(".", 1)[1]
            if target == room:
                continue
            if room in FREE:
                if room not in ENTRY_POINTS:
                    assert target not in QT_ROOMS, f"{where}: {room} must stay below the Qt line, imports {target}"
                if room in PURE_FREE:
                    assert layer(target) == 0, f"{where}: {room} is pure geometry, imports {target}"
                continue
            if target in FREE:
                assert target in PURE_FREE, f"{where}: {room} imports the entry point {target}"
                continue
            assert layer(target) is not None, f"{where}: {room} imports unknown room {target}"
            assert layer(target) <= layer(room), f"{where}: {room} imports {target}, which sits above it"
        elif what == "PySide6":
            assert room in QT_ROOMS or room in ENTRY_POINTS, f"{where}: {room} is before the Qt line but imports PySide6"
        elif what == "torch":
            assert room not in NO_TORCH, f"{where}: {room} must not import torch (only the worker does)"


def test_geometry_and_explain_need_only_numpy():
    for room in ("geometry", "explain"):
        third_party = {what for what, _ in imports(PACKAGE / f"{room}.py") if not what.startswith("zoomviewer.")}
        assert third_party <= {"numpy", "__future__", "math", "dataclasses"}, (room, third_party)
