"""The house rules on imports, read from the source with `ast` (imports inside functions
count too), and checked once in a fresh interpreter:
  - rooms import one way: engine <- app <- lab <- cli (lab reaches app only for the bench;
    the cli room is cli.py with batch.py and progress.py, upscale's);
  - within a room, a module imports only modules of its own level or an earlier one;
  - nothing in engine/ imports Qt;
  - the widgets, and what they import transitively, never load torch.
A new module must be given a place in LEVELS."""

from __future__ import annotations

import ast
import subprocess
import sys
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "zoomviewer"

# Each module's level in its room; it may import levels <= its own in its room, and earlier rooms.
LEVELS = {
    "engine": [
        {"geometry", "formats", "ensemble", "explain", "bundled", "resample", "images", "photo", "saving"},
        {"model"},
        {"band_encoder"},
        {"latent"},
        {"render"},
        {"export", "detail", "faces"},
    ],
    "app": [
        {"protocol", "qimages", "tile_cache", "frame", "settings", "folder", "clipboard", "display_check",
         "zoom_animation", "desktop", "detail_overlay", "waiting", "encode_ahead"},
        {"view_passes", "exports", "details_thread"},
        {"render_thread"},
        {"viewport"},
        {"photo_loader", "canvas", "navigator"},
        {"compare", "exportdialog", "model_menu", "help", "zoombox", "details"},
        {"window"},
        {"launch"},
    ],
    "lab": [{"precision", "degrade", "evaluate", "machine", "bench_kernel", "patches"}, {"bench_viewer", "peer"}, {"train", "bench"}],
}
ROOMS = ["engine", "app", "lab", "cli"]
# The widgets and what the GUI thread runs: none of them may load torch, even indirectly.
TORCH_FREE = {"zoomviewer.app." + m for m in ("protocol", "qimages", "tile_cache", "frame", "settings", "folder", "clipboard", "viewport", "photo_loader",
                                             "canvas", "compare", "exportdialog", "model_menu", "help", "zoombox", "window",
                                             "zoom_animation", "navigator", "desktop", "detail_overlay",
                                             "details", "waiting")}
NUMPY_ONLY = {"zoomviewer.engine.geometry", "zoomviewer.engine.explain", "zoomviewer.engine.ensemble"}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def is_package(name: str) -> bool:
    return MODULES.get(name) is not None and MODULES[name].name == "__init__.py"


def imported(path: Path) -> set[str]:
    """Every module an import in `path` runs: ours by full dotted name (with the packages
    above it), anything else by its top-level name."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[:len(package.split(".")) - (node.level - 1)]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module
            targets = [module] + [f"{module}.{a.name}" for a in node.names if f"{module}.{a.name}" in MODULES]
        else:
            continue
        for target in targets:
            parts = target.split(".")
            if parts[0] != "zoomviewer":
                found.add(parts[0])
                continue
            found.update(".".join(parts[:k]) for k in range(1, len(parts) + 1) if ".".join(parts[:k]) in MODULES)
    return found - {name}


@cache
def closure(name: str) -> frozenset[str]:
    """All that importing `name` may run, transitively (ours and third-party top levels)."""
    seen, todo = set(), [name]
    while todo:
        current = todo.pop()
        if current in seen:
            continue
        seen.add(current)
        if current in MODULES:
            todo.extend(imported(MODULES[current]))
    return frozenset(seen)


def room_and_level(name: str) -> tuple[str, int | None]:
    parts = name.split(".")
    if len(parts) == 1 or parts[1] in ("__main__", "cli", "batch", "progress"):
        return "cli", None
    room = parts[1]
    if len(parts) == 2:
        return room, -1          # the room's own __init__
    for level, names in enumerate(LEVELS[room]):
        if parts[2] in names:
            return room, level
    raise AssertionError(f"{name} has no place in LEVELS: add it in tests/test_imports.py")


@pytest.mark.parametrize("name", sorted(MODULES))
def test_imports_run_one_way(name):
    room, level = room_and_level(name)
    for target in imported(MODULES[name]):
        if not target.startswith("zoomviewer.") or target.startswith(name + "."):
            continue
        t_room, t_level = room_and_level(target)
        assert ROOMS.index(t_room) <= ROOMS.index(room), f"{name} ({room}) imports {target}, from a later room"
        if t_room == room and room != "cli" and t_level != -1 and level != -1:
            same_subpackage = name.split(".")[2] == target.split(".")[2]
            assert same_subpackage or t_level <= level, f"{name} imports {target}, which sits above it in {room}"
        if room == "lab" and t_room == "app":
            assert name.rpartition(".")[2].startswith("bench"), f"{name}: only the bench may drive the app's render thread"


@pytest.mark.parametrize("name", sorted(n for n in MODULES if n.startswith("zoomviewer.engine")))
def test_the_engine_never_imports_qt(name):
    assert "PySide6" not in closure(name), f"{name} reaches Qt"


@pytest.mark.parametrize("name", sorted(TORCH_FREE))
def test_widgets_never_reach_torch_even_indirectly(name):
    reached = [m for m in closure(name) if m in MODULES and "torch" in imported(MODULES[m])]
    assert not reached, f"{name} reaches torch through {sorted(reached)}"


def test_geometry_explain_and_the_ensemble_rules_need_only_numpy():
    for name in NUMPY_ONLY:
        third_party = {m for m in closure(name) if not m.startswith("zoomviewer")}
        assert third_party <= {"numpy", "__future__", "math", "dataclasses"}, (name, third_party)


def test_importing_the_widgets_in_a_fresh_interpreter_leaves_torch_unloaded():
    """What actually runs, not only what the source says: one interpreter per module."""
    for name in sorted(TORCH_FREE):
        code = f"import sys, {name}; sys.exit('torch' in sys.modules)"
        done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, f"importing {name} loaded torch {done.stderr[-500:]}"
