"""Where the viewer's resident memory goes: RSS after each stage of opening a photo.

    QT_QPA_PLATFORM=offscreen python tools/memory_report.py [PHOTO] [--zoom Z]

Stages, each measured as the growth of VmRSS (Linux /proc) over the one before: the
interpreter with numpy and Pillow, `import torch`, Qt (QApplication), the photo decoded, the
window with its render thread and the model loaded, and the view fully refined (latent tiles,
code tables, screen tiles, the source pyramid). Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))


def rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("photo", nargs="?", help="photo to open (default: the bundled sample)")
    p.add_argument("--zoom", type=float, default=None, help="zoom to refine (default: fit)")
    args = p.parse_args()
    rows: list[tuple[str, float]] = []
    last = [0.0]

    def stage(name: str) -> None:
        now = rss_mb()
        rows.append((name, now - last[0]))
        last[0] = now

    for name in ("numpy", "PIL.Image"):
        importlib.import_module(name)
    stage("Python, numpy, Pillow")
    importlib.import_module("torch")
    stage("import torch")
    from zoomviewer.app.launch import application, new_window
    from zoomviewer.engine import images
    from zoomviewer.engine.bundled import sample_photo, shipped_weights
    app = application()
    stage("Qt (PySide6, QApplication) and the app's modules")
    photo = images.load(args.photo or sample_photo())
    stage(f"the photo decoded ({photo.pixels.shape[1]}x{photo.pixels.shape[0]}, {photo.pixels.dtype})")
    window = new_window(shipped_weights("fast"))
    window.resize(1280, 800)
    window.show_photo(photo)
    window.show()
    window.viewport.place(args.zoom, None)
    deadline = time.time() + 600
    while time.time() < deadline and not (window.viewport.model_name is not None
                                          and window.viewport.is_sharp()):
        app.processEvents()
        time.sleep(0.01)
    stage("window, model, latent and caches, view refined")
    print("| stage | RSS growth, MB |\n|---|---|")
    for name, mb in rows:
        print(f"| {name} | {mb:.0f} |")
    print(f"| **total** | **{rss_mb():.0f}** |")
    print("\n| held by the renderer | MB |\n|---|---|")
    for name, n in window.renderer.memory_held().items():
        print(f"| {name} | {n / 2**20:.0f} |")
    window.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
