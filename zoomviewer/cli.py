"""The `zoomviewer` command: view (default), upscale, eval, bench, train.

Every failure a person can cause (a bad file, a bad flag, missing weights) ends as one
line on stderr and exit code 2; no traceback reaches the terminal.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

COMMANDS = ("view", "upscale", "eval", "bench", "train")


class UsageError(ValueError):
    """A command line that cannot be carried out, in one sentence."""


def _parse_pair(text: str, sep: str, what: str, cast=float) -> tuple:
    parts = text.lower().split(sep)
    try:
        vals = tuple(cast(p) for p in parts)
    except ValueError:
        vals = ()
    if len(vals) != 2:
        raise UsageError(f"{what} must look like A{sep}B, got {text!r}")
    return vals


def _parse_region(text: str) -> tuple[float, float, float, float]:
    try:
        vals = tuple(float(p) for p in text.split(","))
    except ValueError:
        vals = ()
    if len(vals) != 4 or vals[2] <= 0 or vals[3] <= 0:
        raise UsageError(f"--region must be x,y,w,h in source pixels with w, h > 0, got {text!r}")
    return vals


def load_model(name: str | None, weights: str | None):
    """The model to use: --weights FILE, else the shipped weights of --model."""
    from .engine.bundled import DEFAULT_MODEL, shipped_weights
    from .engine.model import load_weights

    if weights:
        return load_weights(weights)[0]
    kind = name or DEFAULT_MODEL
    try:
        path = shipped_weights(kind)
    except ValueError as e:
        raise UsageError(str(e)) from None
    if path is None:
        raise UsageError(f"no trained weights for the {kind!r} model are installed; "
                         f"pass --weights FILE (ours or a published LIIF .pth)")
    return load_weights(path)[0]


class ProgressLine:
    """A progress line on stderr, rewritten in place. `ProgressLine.unfinished` says whether
    one is on screen without its newline, so that what is printed next can start on a line
    of its own (and on the same line as before when there was none)."""

    unfinished = False

    def __init__(self, label: str) -> None:
        self.label, self.start = label, time.time()

    def show(self, fraction: float) -> None:
        print(f"\r{self.label} {100 * fraction:5.1f}%  {time.time() - self.start:6.1f} s",
              end="", file=sys.stderr, flush=True)
        ProgressLine.unfinished = True

    @staticmethod
    def finish() -> None:
        """End the progress line on screen, if one is."""
        if ProgressLine.unfinished:
            print(file=sys.stderr)
            ProgressLine.unfinished = False


def cmd_upscale(args) -> int:
    from .engine.export import export_view
    from .engine.images import load
    from .engine.model import pick_device
    from .engine.render import Latent

    if (args.scale is None) == (args.size is None):
        raise UsageError("give exactly one of --scale S or --size WxH")
    photo = load(args.input)
    h, w = photo.pixels.shape[:2]
    region = _parse_region(args.region) if args.region else (0.0, 0.0, float(w), float(h))
    x, y, rw, rh = region
    if x < 0 or y < 0 or x + rw > w + 1e-9 or y + rh > h + 1e-9:
        raise UsageError(f"--region {args.region} reaches outside the {w}x{h} photo")
    if args.scale is not None:
        if not args.scale > 0:
            raise UsageError("--scale must be positive")
        size = (max(1, round(rw * args.scale)), max(1, round(rh * args.scale)))
    else:
        size = _parse_pair(args.size, "x", "--size", int)
    device = pick_device(args.device)
    model = load_model(args.model, args.weights)
    latent = Latent(model, photo.pixels, device)
    progress = ProgressLine(f"{Path(args.output).name} {size[0]}x{size[1]} on {device.type}")
    for fraction in export_view(latent, photo, region, size, args.output, bits=args.bits,
                                quality=args.quality, cell_clip=args.cell_clip):
        progress.show(fraction)
    ProgressLine.finish()
    return 0


def cmd_view(args) -> int:
    from .engine.bundled import sample_photo
    from .app.launch import run_view

    center = _parse_pair(args.center, ",", "--center") if args.center else None
    if args.weights:
        model = args.weights
    else:
        model = load_model(args.model, None)
    return run_view(args.photo or str(sample_photo()), model, zoom=args.zoom, center=center,
                    compare=args.compare, explain=args.explain, screenshot=args.screenshot,
                    device=args.device, compare_with=args.compare_with,
                    remembered_model=not (args.model or args.weights))


def cmd_eval(args) -> int:
    from .lab.evaluate import evaluate, markdown_table, write_json

    scales = [float(s) for s in args.scales.split(",")]
    models = {"bicubic": None}
    names = [m for m in args.model.split(",") if m] if args.model else []
    for name in names:
        if name != "bicubic":
            models[name] = load_model(name, None)
    for path in args.weights or []:
        models[Path(path).stem] = load_model(None, path)
    if len(models) == 1 and not args.model:
        for kind in ("fast", "liif"):
            try:
                models[kind] = load_model(kind, None)
            except UsageError:
                pass
    results = evaluate(args.data, scales, models, max_images=args.max_images, degrade=args.degrade)
    print(markdown_table(results))
    if args.json:
        write_json(results, args.json)
    return 0


def cmd_train(args) -> int:
    from .lab.train import train

    train(args.data, args.model, args.out, iters=args.iters, batch=args.batch, lr=args.lr,
          residual=not args.no_residual, threads=args.threads, eval_every=args.eval_every,
          eval_data=args.eval_data, snapshot_every=args.snapshot_every,
          bf16=True if args.bf16 else False if args.fp32 else None,
          encoder_from=args.encoder_from, freeze_encoder=args.freeze_encoder,
          init_from=args.init_from, degrade=args.degrade)
    return 0


def cmd_bench(args) -> int:
    from .lab.bench import run_bench

    return run_bench(json_path=args.json, device=args.device, quick=args.quick)


class _Parser(argparse.ArgumentParser):
    """argparse that reports a bad command line in one line (exit 2), without the usage dump."""

    def error(self, message: str):
        self.exit(2, f"zoomviewer: {message} (see zoomviewer {self.prog.split()[-1]} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    from .lab.degrade import PROTOCOLS

    p = _Parser(prog="zoomviewer", description="A photo viewer in which magnification never shows pixels.")
    sub = p.add_subparsers(dest="command")

    def model_flags(sp):
        sp.add_argument("--model", help="shipped model: fast (default), liif (exact, slow) or restore "
                                        "(for scanned, noisy or JPEG-compressed photos)")
        sp.add_argument("--weights", help="a weights file: ours or a published LIIF .pth")
        sp.add_argument("--device", help="auto (default), cpu, cuda, mps")

    v = sub.add_parser("view", help="open the viewer (the default command)")
    v.add_argument("photo", nargs="?", help="photo to open (default: the bundled sample)")
    v.add_argument("--zoom", type=float, help="start at this zoom (screen px per photo px)")
    v.add_argument("--center", help="X,Y photo pixel to centre on")
    v.add_argument("--compare", choices=["side", "swipe"], help="open in a compare mode")
    v.add_argument("--compare-with", metavar="METHOD",
                   help="what the compare modes set beside the model: bicubic (default), fast, liif or restore")
    v.add_argument("--explain", action="store_true", help="show the Explain overlay")
    v.add_argument("--screenshot", help="wait until sharp, save the window to this PNG and exit")
    model_flags(v)

    u = sub.add_parser("upscale", help="render a photo or a region of it at any continuous scale")
    u.add_argument("input")
    u.add_argument("--scale", type=float)
    u.add_argument("--size", help="WxH output size")
    u.add_argument("--region", help="x,y,w,h in source pixels")
    u.add_argument("-o", "--output", required=True)
    u.add_argument("--bits", type=int, choices=[8, 16], default=8)
    u.add_argument("--quality", type=int, default=95)
    u.add_argument("--cell-clip", action="store_true", help="clip the cell to its x4 value above x4")
    model_flags(u)

    e = sub.add_parser("eval", help="PSNR on benchmark folders (LIIF paper protocol)")
    e.add_argument("--data", nargs="+", required=True)
    e.add_argument("--scales", default="2,3,4")
    e.add_argument("--model", help="comma list of shipped models (default: all installed)")
    e.add_argument("--weights", nargs="*")
    e.add_argument("--json")
    e.add_argument("--max-images", type=int)
    e.add_argument("--degrade", choices=sorted(PROTOCOLS), metavar="NAME",
                   help="degrade each LR image by this named protocol first: "
                        + "; ".join(f"{k}: {v[1]}" for k, v in sorted(PROTOCOLS.items())))

    t = sub.add_parser("train", help="train a model (LIIF recipe) on folders of photos")
    t.add_argument("--data", nargs="+", required=True)
    t.add_argument("--model", choices=["liif", "fast"], required=True)
    t.add_argument("--out", required=True)
    t.add_argument("--iters", type=int, default=2000)
    t.add_argument("--batch", type=int, default=16)
    t.add_argument("--lr", type=float, default=2e-4)
    t.add_argument("--threads", type=int)
    t.add_argument("--no-residual", action="store_true")
    t.add_argument("--eval-every", type=int, default=0)
    t.add_argument("--eval-data")
    t.add_argument("--snapshot-every", type=int, default=0)
    precision = t.add_mutually_exclusive_group()
    precision.add_argument("--fp32", action="store_true",
                           help="train the encoder in fp32 (default: bf16 autocast where the CPU computes bf16)")
    precision.add_argument("--bf16", action="store_true",
                           help="train the encoder with bf16 autocast even where the CPU only emulates bf16")
    t.add_argument("--encoder-from", help="start a new model with the encoder of these weights")
    t.add_argument("--freeze-encoder", action="store_true", help="train the decoder only")
    t.add_argument("--init-from", help="start a new model as a copy of these weights")
    t.add_argument("--degrade", action="store_true",
                   help="degrade the LR side (blur, noise, grain, JPEG): trains a restore model")

    b = sub.add_parser("bench", help="timings on this machine")
    b.add_argument("--json")
    b.add_argument("--device")
    b.add_argument("--quick", action="store_true", help="smaller sizes, for a smoke run")
    return p


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or (argv[0] not in COMMANDS and argv[0] not in ("-h", "--help")):
        argv.insert(0, "view")
    parser = build_parser()
    args = parser.parse_args(argv)
    handler = {"view": cmd_view, "upscale": cmd_upscale, "eval": cmd_eval, "train": cmd_train,
               "bench": cmd_bench}[args.command]
    from .engine.render import Cancelled
    try:
        return handler(args) or 0
    except ValueError as e:  # UsageError, ImageError, WeightsError and ExportError among them
        return _fail(str(e))
    except MemoryError:
        return _fail("not enough memory for this request")
    except (KeyboardInterrupt, Cancelled):
        if not ProgressLine.unfinished and sys.stderr.isatty():
            print(file=sys.stderr)  # the terminal echoed ^C where the cursor was
        return _fail("interrupted", status=130)


def _fail(message: str, status: int = 2) -> int:
    """Say why in one line of its own on stderr; the exit status."""
    ProgressLine.finish()
    print(f"zoomviewer: {message}", file=sys.stderr)
    return status


if __name__ == "__main__":
    sys.exit(main())
