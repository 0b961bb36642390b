"""Ship a trained checkpoint: measure fp32 vs fp16 on Set14 x4, record the measured PSNR
in the file's meta, and write resources/<name>.pt (fp16 when that costs < 0.01 dB).

    python tools/ship_weights.py runs/fast.pt fast [--data ../shared/data/bench/Set14]
    python tools/ship_weights.py runs/restore.pt restore --degrade scan

`restore` is a fast model trained on degraded photos: its fp16 cost is measured on the
degraded protocol it is for, and its meta gets the name the viewer's Model menu shows.
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
from pathlib import Path

import torch

from zoomviewer.engine.bundled import resource_dir
from zoomviewer.lab.evaluate import evaluate_model
from zoomviewer.engine.model import load_weights, save_weights


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("checkpoint")
    ap.add_argument("kind", choices=["fast", "liif", "restore", "preview"], help="the shipped model it becomes")
    ap.add_argument("--degrade", help="measure on this eval protocol's degraded LR (restore: scan)")
    ap.add_argument("--data", default=str(Path(__file__).resolve().parents[2] / "shared/data/bench/Set14"))
    ap.add_argument("--psnr-json", help="eval JSON whose rows for this model go into the meta")
    ap.add_argument("--history", help="how the checkpoint was trained (phases, commands), kept in the meta")
    args = ap.parse_args()
    model, config, meta = load_weights(args.checkpoint)
    half = copy.deepcopy(model)
    with torch.no_grad():
        for p in half.parameters():
            p.copy_(p.half().float())
    with torch.no_grad():
        full_psnr = evaluate_model(model, args.data, [4], degrade=args.degrade)[4]
        half_psnr = evaluate_model(half, args.data, [4], degrade=args.degrade)[4]
    cost = full_psnr - half_psnr
    use_half = abs(cost) < 0.01
    where = f"Set14 x4{' ' + args.degrade if args.degrade else ''}"
    print(f"{where}: fp32 {full_psnr:.4f} dB, fp16 {half_psnr:.4f} dB (cost {cost:+.4f}); "
          f"shipping {'fp16' if use_half else 'fp32'}", file=sys.stderr)
    meta = dict(meta)
    key = "set14_x4" + (f"_{args.degrade}" if args.degrade else "")
    meta[f"{key}_psnr_fp32"] = round(full_psnr, 4)
    meta[f"{key}_psnr_fp16"] = round(half_psnr, 4)
    if args.kind == "restore":
        meta["name"] = "restore"     # model_name(): what the Model menu and the labels call it
    meta["stored_as"] = "fp16" if use_half else "fp32"
    meta["training_data"] = ["shared/data/train/bsds500 (train+test, 400 photos)",
                             "shared/data/train/photos (54 Debian wallpaper/puzzle photos, halved)"]
    if args.history:
        meta["history"] = args.history
    if args.psnr_json:
        meta["eval"] = json.loads(Path(args.psnr_json).read_text())
    out = resource_dir() / f"{args.kind}.pt"
    save_weights(out, model, config, meta, half=use_half)
    print(f"wrote {out} ({out.stat().st_size / 1e6:.1f} MB)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
