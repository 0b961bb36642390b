"""Memory check on a 100-megapixel photo: open it, zoom to x8 anywhere, export a 4000x3000 view.

Generates a procedural photo (gradients, rings, stripes, a grid, noise) of --width x --height
pixels in a temporary folder (never in the repository), then, in this one process, does what
the CLI and the viewer do: images.load, a render.Latent over the full pixels, three 1280x800
views at x8 (top-left corner, centre, bottom-right corner) and a 4000x3000 export through
export.export_view. Prints wall time and peak RSS after each step; exits 1 if the peak
exceeds --limit-gb. Meant to be run under GNU time:

    /usr/bin/time -v python tools/bigphoto.py            # then read "Maximum resident set size"

Without --weights it writes a weights file with the full-size architecture (EDSR-baseline
encoder, fast decoder, residual) and random weights: memory and time are those of trained
weights, the pictures are not. --keep leaves the photo, the weights and the export in the
printed folder, for the same check through the command line:

    /usr/bin/time -v python -m zoomviewer upscale DIR/big.jpg --size 4000x3000 \
        --region 5750,3980,500,375 --weights DIR/random-full-size.pt -o DIR/cli.png
"""

from __future__ import annotations

import argparse
import gc
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run from a checkout without `pip install -e`
    sys.path.insert(0, str(ROOT))

VIEW = (1280, 800)        # a screen
ZOOM = 8.0
EXPORT = (4000, 3000)


def peak_mb() -> float:
    """Peak resident set size of this process so far (ru_maxrss is KB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def current_mb() -> float:
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * resource.getpagesize() / 2**20
    except OSError:
        return float("nan")


def procedural_rows(y0: int, y1: int, width: int, height: int, rng: np.random.Generator) -> np.ndarray:
    """Rows y0:y1 of the test photo as uint8 (y1-y0, width, 3): smooth gradients, concentric
    rings, diagonal stripes, a grid of thin lines every 500 px and sensor-like noise, so the
    encoder sees edges and texture everywhere and JPEG/PNG cannot compress it to nothing."""
    y = (np.arange(y0, y1, dtype=np.float32) / height)[:, None]
    x = (np.arange(width, dtype=np.float32) / width)[None, :]
    aspect = width / height
    r = np.hypot((x - 0.5) * aspect, y - 0.5)
    red = 0.15 + 0.6 * x + 0.15 * np.sin(2 * np.pi * 180 * r)
    green = 0.2 + 0.5 * y + 0.12 * np.sin(2 * np.pi * (90 * x * aspect + 60 * y))
    blue = 0.5 + 0.25 * np.sign(np.sin(2 * np.pi * 40 * x * aspect) * np.sin(2 * np.pi * 40 * y)) * (1 - r)
    rgb = np.stack(np.broadcast_arrays(red, green, blue), axis=-1)
    rows = np.arange(y0, y1)[:, None]
    cols = np.arange(width)[None, :]
    grid = (rows % 500 < 3) | (cols % 500 < 3)
    rgb[grid] = 0.05
    out = np.clip(rgb * 255 + 0.5, 0, 255).astype(np.int16)
    out += rng.integers(-10, 11, size=out.shape, dtype=np.int16)
    return np.clip(out, 0, 255).astype(np.uint8)


def make_photo(path: Path, width: int, height: int, seed: int = 0) -> None:
    """Write the procedural photo strip by strip into one Pillow image, then save it."""
    rng = np.random.default_rng(seed)
    canvas = Image.new("RGB", (width, height))
    strip = 256
    for y0 in range(0, height, strip):
        y1 = min(y0 + strip, height)
        canvas.paste(Image.fromarray(procedural_rows(y0, y1, width, height, rng)), (0, y0))
    if path.suffix.lower() == ".png":
        canvas.save(path, compress_level=1)   # level 1: noise does not compress anyway
    else:
        canvas.save(path, quality=92)
    canvas.close()


def make_weights(path: Path) -> None:
    from zoomviewer.engine.model import new_model, save_weights
    model = new_model({"kind": "fast", "encoder": "edsr-baseline", "residual": True})
    save_weights(path, model, model.config)


def view_regions(width: int, height: int) -> dict[str, tuple[float, float, float, float]]:
    w, h = VIEW[0] / ZOOM, VIEW[1] / ZOOM
    return {"top-left": (0.0, 0.0, w, h),
            "centre": ((width - w) / 2, (height - h) / 2, w, h),
            "bottom-right": (width - w, height - h, w, h)}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--width", type=int, default=12000)
    p.add_argument("--height", type=int, default=8334)
    p.add_argument("--format", choices=["jpg", "png"], default="jpg", help="of the generated photo")
    p.add_argument("--image", help="use this photo instead of generating one")
    p.add_argument("--weights", help="weights file (default: full-size architecture, random weights)")
    p.add_argument("--export-region", default="500x375",
                   help="WxH source px of the 4000x3000 export, centred (500x375 = x8)")
    p.add_argument("--device", default="cpu", help="cpu, cuda, mps or auto")
    p.add_argument("--quick", action="store_true", help="a 3000x2084 photo instead (a smoke run)")
    p.add_argument("--limit-gb", type=float, default=4.0, help="exit 1 if peak RSS exceeds this")
    p.add_argument("--keep", action="store_true", help="keep the temporary folder and print its path")
    args = p.parse_args(argv)
    if args.quick:
        args.width, args.height = 3000, 2084
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)

    from zoomviewer.engine.export import export_view
    from zoomviewer.engine.images import load
    from zoomviewer.engine.model import load_weights, pick_device
    from zoomviewer.engine.render import Latent, render_region

    work = Path(tempfile.mkdtemp(prefix="bigphoto-"))
    steps: list[tuple[str, float, float, float]] = []

    def step(name: str, started: float) -> None:
        steps.append((name, time.perf_counter() - started, current_mb(), peak_mb()))
        print(f"{name:<28} {steps[-1][1]:7.1f} s   RSS now {steps[-1][2]:7.0f} MB   "
              f"peak {steps[-1][3]:7.0f} MB", flush=True)

    try:
        t = time.perf_counter()
        if args.image:
            photo_path = Path(args.image)
        else:
            photo_path = work / f"big.{args.format}"
            make_photo(photo_path, args.width, args.height)
            gc.collect()
        weights = Path(args.weights) if args.weights else work / "random-full-size.pt"
        if not args.weights:
            make_weights(weights)
        step(f"prepare ({photo_path.stat().st_size / 2**20:.0f} MB file)", t)
        model = load_weights(weights)[0]

        t = time.perf_counter()
        photo = load(photo_path)
        height, width = photo.pixels.shape[:2]
        step(f"load {width}x{height}", t)

        t = time.perf_counter()
        device = pick_device(args.device)
        latent = Latent(model, photo.pixels, device)
        step("Latent (lazy)", t)

        for name, region in view_regions(width, height).items():
            t = time.perf_counter()
            view = render_region(latent, region, VIEW)
            assert view.shape == (VIEW[1], VIEW[0], 3)
            step(f"view x{ZOOM:g} {name}", t)

        ew, eh = (float(v) for v in args.export_region.lower().split("x"))
        region = ((width - ew) / 2, (height - eh) / 2, ew, eh)
        out = work / "export.png"
        t = time.perf_counter()
        for _ in export_view(latent, photo, region, EXPORT, out):
            pass
        with Image.open(out) as im:
            assert im.size == EXPORT
        step(f"export {EXPORT[0]}x{EXPORT[1]} of {ew:g}x{eh:g}", t)

        total_peak = peak_mb()
        print(f"\n{width}x{height} = {width * height / 1e6:.1f} MP; float32 pixels "
              f"{photo.pixels.nbytes / 2**20:.0f} MB; tiles encoded {latent.tiles_encoded}, "
              f"cached {latent.tiles_cached}")
        print(f"peak RSS {total_peak:.0f} MB ({total_peak / 1024:.2f} GB), limit {args.limit_gb:g} GB")
        if device.type == "cuda":
            import torch
            print(f"peak GPU memory {torch.cuda.max_memory_allocated(device) / 2**20:.0f} MB allocated, "
                  f"{torch.cuda.max_memory_reserved(device) / 2**20:.0f} MB reserved on {device}")
        if args.keep:
            print(f"photo and export kept in {work}")
        return 0 if total_peak <= args.limit_gb * 1024 else 1
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
