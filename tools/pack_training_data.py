"""Pack the training and evaluation photos small enough to travel with the working tree
to a lent GPU machine (the device tool carries at most 64 MiB; ../shared does not travel):
training photos whose shorter side is over 400 px are halved, as training halves them
anyway, and everything is saved as JPEG quality 95; Set5 and Set14 are copied as they are
(PNG, for the eval there). Writes runs/pack/ (ignored by git; name it in `carry`).

    python tools/pack_training_data.py [--shared ../shared/data] [--out runs/pack]
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

from PIL import Image

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--shared", default=str(ROOT.parent / "shared" / "data"))
    ap.add_argument("--out", default=str(ROOT / "runs" / "pack"))
    args = ap.parse_args()
    shared, out = Path(args.shared), Path(args.out)
    for name in ("bsds500", "photos"):
        target = out / name
        target.mkdir(parents=True, exist_ok=True)
        for f in sorted((shared / "train" / name).rglob("*")):
            if f.suffix.lower() not in (".jpg", ".jpeg", ".png"):
                continue
            with Image.open(f) as im:
                im = im.convert("RGB")
                if min(im.size) > 400:
                    im = im.resize((im.width // 2, im.height // 2), Image.BICUBIC)
                im.save(target / f"{f.stem}.jpg", quality=95)
    for name in ("Set5", "Set14"):
        shutil.copytree(shared / "bench" / name, out / name, dirs_exist_ok=True)
    total = sum(f.stat().st_size for f in out.rglob("*") if f.is_file())
    print(f"wrote {out} ({total / 2**20:.1f} MiB)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
