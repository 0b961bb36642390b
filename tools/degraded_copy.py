"""A benchmark image as the eval protocol degrades it, saved as a photo to open in the viewer.

    python tools/degraded_copy.py ../shared/data/bench/Kodak24/kodim04.png --scale 4 \
        --degrade scan --index 3 -o docs/kodim04-scan-x4.png

The LR image is exactly the one `zoomviewer eval --degrade NAME` scores at that scale for
that image (`--index` is its position in its set, sorted by name; kodim04 is 3 in Kodak24):
the HR cropped to a multiple of the scale, MATLAB-compatible bicubic downscale, then the
named protocol (zoomviewer/lab/degrade.py). Saved as PNG so no second JPEG pass is added.
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np
from PIL import Image

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from zoomviewer.lab.degrade import PROTOCOLS  # noqa: E402
from zoomviewer.lab.evaluate import make_pair, read_hr  # noqa: E402


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("image", help="the clean HR benchmark image")
    p.add_argument("--scale", type=float, default=4.0, help="the benchmark scale (default 4)")
    p.add_argument("--degrade", default="scan", choices=sorted(PROTOCOLS), help="the protocol (default scan)")
    p.add_argument("--index", type=int, default=0, help="the image's index in its set, sorted by name")
    p.add_argument("-o", "--out", required=True, help="the PNG to write")
    args = p.parse_args()
    _, lr = make_pair(read_hr(args.image), args.scale, args.degrade, args.index)
    Image.fromarray(np.round(lr * 255).astype(np.uint8)).save(args.out)
    print(f"{args.out}: {lr.shape[1]}x{lr.shape[0]}, {args.degrade} #{args.index} at x{args.scale:g}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
