"""The `zoomviewer` command: the parser (every argument explained in --help and checked as
it is read), main, and the commands view (the default), eval, bench and train; upscale
lives in batch.py, its progress in progress.py.

Every failure a person can cause (a bad file, a bad flag, a misspelt command, missing
weights) ends as one line on stderr and exit code 2; no traceback reaches the terminal.
"""

from __future__ import annotations

import argparse
import difflib
import math
import os
import sys
from collections.abc import Callable
from pathlib import Path

from .engine.bundled import version

COMMANDS = ("view", "upscale", "eval", "bench", "train")
TOP_LEVEL_FLAGS = ("-h", "--help", "--version")


class UsageError(ValueError):
    """A command line that cannot be carried out, in one sentence."""


# argparse types: each reads one argument or says, in a few words, what it must look like
# (argparse puts "argument --NAME:" before the words, _Parser.error the program name).

def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"must be a number above 0, got {text!r}")
    return value


def whole_number(low: int, high: int | None, wanted: str) -> Callable[[str], int]:
    """An argparse type: a whole number in [low, high] (high None: no bound), else
    "must be `wanted`, got '...'"."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = low - 1
        if value < low or (high is not None and value > high):
            raise argparse.ArgumentTypeError(f"must be {wanted}, got {text!r}")
        return value
    return parse


positive_int = whole_number(1, None, "a whole number above 0")
count = whole_number(0, None, "a whole number, 0 or more")     # 0: none, or never
quality = whole_number(1, 100, "a whole number from 1 to 100")


def size(text: str) -> tuple[int, int]:
    """'4000x3000' -> (4000, 3000)."""
    parts = text.lower().split("x")
    if len(parts) != 2 or not all(p.strip().isdigit() and int(p) > 0 for p in parts):
        raise argparse.ArgumentTypeError(f"must be WxH in pixels, two whole numbers above 0 such as "
                                         f"4000x3000, got {text!r}")
    return int(parts[0]), int(parts[1])


def _numbers(text: str, count: int) -> tuple[float, ...] | None:
    try:
        values = tuple(float(p) for p in text.split(","))
    except ValueError:
        return None
    return values if len(values) == count and all(math.isfinite(v) for v in values) else None


def point(text: str) -> tuple[float, float]:
    """'X,Y' -> (x, y)."""
    values = _numbers(text, 2)
    if values is None:
        raise argparse.ArgumentTypeError(f"must be X,Y in photo pixels, got {text!r}")
    return values


def region(text: str) -> tuple[float, float, float, float]:
    """'x,y,w,h' -> (x, y, w, h), with x, y >= 0 and w, h > 0."""
    values = _numbers(text, 4)
    if values is None or min(values[:2]) < 0 or min(values[2:]) <= 0:
        raise argparse.ArgumentTypeError(f"must be x,y,w,h in source pixels with x, y >= 0 and w, h > 0, "
                                         f"got {text!r}")
    return values


def scales(text: str) -> list[float]:
    """'2,3,4' -> [2.0, 3.0, 4.0]."""
    try:
        return [positive_float(p) for p in text.split(",")]
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(f"must be numbers above 0 separated by commas, got {text!r}") from None


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


def cmd_upscale(args) -> int:
    from .batch import run   # batch.py imports this module: here, not at the top

    return run(args)


def cmd_view(args) -> int:
    from .app.display_check import display_problem
    from .engine.bundled import sample_photo

    if args.photo and not os.path.exists(args.photo):
        raise UsageError(f"no such file: {args.photo}")
    problem = display_problem(scripted=args.screenshot is not None)
    if problem:   # before the model loads: saying there is no display takes no seconds
        raise UsageError(problem)
    model = args.weights or load_model(args.model, None)
    from .app.launch import run_view

    status = run_view(args.photo or str(sample_photo()), model, zoom=args.zoom, center=args.center,
                      compare=args.compare, explain=args.explain, screenshot=args.screenshot,
                      device=args.device, compare_with=args.compare_with,
                      remembered_model=not (args.model or args.weights))
    return 2 if status else 0   # the window's own failures: the same status as every other


def cmd_eval(args) -> int:
    from .lab.evaluate import evaluate, markdown_table, write_json

    peer = None
    if args.peer:   # before any model loads: a missing peer environment takes no seconds
        from .lab.peer import check_peer, peer_command

        peer = peer_command()
        check_peer(peer)
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
    timings: dict = {}
    results = evaluate(args.data, args.scales, models, max_images=args.max_images, degrade=args.degrade,
                       views=args.views, timings=timings)
    if peer:
        from .lab.peer import evaluate_peer

        evaluate_peer(args.data, args.scales, peer, max_images=args.max_images, degrade=args.degrade,
                      results=results, timings=timings, log=lambda line: print(line, file=sys.stderr, flush=True))
    print(markdown_table(results, timings))
    if args.json:
        write_json(results, args.json, timings)
    return 0


def cmd_train(args) -> int:
    from .engine.model import pick_device
    from .lab.train import train

    device = pick_device(args.device)   # a device that is not there: one sentence, before any data loads
    train(args.data, args.model, args.out, iters=args.iters, batch=args.batch, lr=args.lr,
          residual=not args.no_residual, threads=args.threads, eval_every=args.eval_every,
          eval_data=args.eval_data, snapshot_every=args.snapshot_every, bf16=True if args.bf16 else False if args.fp32 else None,
          encoder_from=args.encoder_from, freeze_encoder=args.freeze_encoder, init_from=args.init_from, degrade=args.degrade,
          lr_size=args.patch, teacher=args.teacher, device=device, minutes=args.minutes, workers=args.workers)
    return 0


def cmd_bench(args) -> int:
    from .lab.bench import run_bench

    return run_bench(json_path=args.json, device=args.device, quick=args.quick, opening=args.opening)


class _Parser(argparse.ArgumentParser):
    """argparse that reports a bad command line in one line (exit 2), without the usage
    dump, pointing at the --help of the command that was typed."""

    def error(self, message: str):
        self.exit(2, f"zoomviewer: {message} (see {self.prog} --help)\n")


def model_flags(sp) -> None:
    sp.add_argument("--model", help="shipped model: fast (default), liif (exact, slow) or restore "
                                    "(for scanned, noisy or JPEG-compressed photos)")
    sp.add_argument("--weights", metavar="FILE", help="a weights file to use instead: ours or a published LIIF .pth")
    sp.add_argument("--device", help="where to compute: auto (default: CUDA, then MPS, then the CPU), cpu, cuda or mps")


def views_flag(sp, more: str = "") -> None:
    sp.add_argument("--views", type=int, choices=[1, 2, 4, 8], default=1, metavar="N", help="render as the mean of "
                    "N views of the photo, flipped and turned (geometric self-ensemble): 1 (default: the photo as "
                    "it is), 2, 4 or 8; slightly more accurate, about N times the time" + more)


def view_parser(sub) -> None:
    v = sub.add_parser("view", help="open the viewer (the default command: `zoomviewer PHOTO`)",
                       description="Open the viewer on a photo.")
    v.add_argument("photo", nargs="?", help="photo to open (default: the bundled sample)")
    v.add_argument("--zoom", type=positive_float, help="start at this zoom, screen pixels per photo pixel "
                                                       "(above 0; default: the photo fits the window)")
    v.add_argument("--center", type=point, metavar="X,Y", help="photo pixel to centre on (default: the middle)")
    v.add_argument("--compare", choices=["side", "swipe"], help="open in a compare mode: side by side or swipe")
    v.add_argument("--compare-with", metavar="METHOD",
                   help="what the compare modes set beside the model: bicubic (default), fast, liif or restore")
    v.add_argument("--explain", action="store_true", help="show the Explain overlay (the latent grid and the mix)")
    v.add_argument("--screenshot", metavar="PNG",
                   help="wait until the view is sharp, save the window to this PNG and exit (needs no display)")
    model_flags(v)


def upscale_parser(sub) -> None:
    u = sub.add_parser("upscale", help="render photos, or a region of them, at any continuous scale",
                       description="Render photos at any scale: one photo to -o FILE, or photos and "
                                   "folders into the folder -o DIR/.")
    u.add_argument("input", nargs="+", help="photos and folders to upscale (a folder: its photos, not its subfolders')")
    how = u.add_mutually_exclusive_group(required=True)
    how.add_argument("--scale", type=positive_float, metavar="S",
                     help="output pixels per source pixel, above 0, such as 2 or 12.5")
    how.add_argument("--size", type=size, metavar="WxH",
                     help="output size in pixels, such as 4000x3000, of the region's aspect unless --stretch")
    u.add_argument("--region", type=region, metavar="x,y,w,h",
                   help="the part of each photo to render, in source pixels (default: the whole photo)")
    u.add_argument("--stretch", action="store_true", help="allow a --size of another aspect than the region's")
    u.add_argument("-o", "--output", required=True, metavar="OUT",
                   help="the output file, for one photo; a folder for several photos or a folder "
                        "(made if missing; end OUT with / to make one for a single photo)")
    u.add_argument("--name", metavar="PATTERN",
                   help="output names in the -o folder (default {stem}_x{scale}{ext}); fields: {stem} (the "
                        "photo's name without suffix), {scale} (as 2 or 12.5), {ext} (the photo's suffix, or "
                        ".png where zoomviewer does not write its format), {width} and {height} (the output's)")
    u.add_argument("--overwrite", action="store_true",
                   help="replace outputs in the -o folder that exist (they are skipped otherwise; "
                        "-o FILE is always replaced)")
    u.add_argument("--bits", type=int, choices=[8, 16], default=8,
                   help="bits per channel: 8 (default) or 16 (PNG and TIFF)")
    u.add_argument("--quality", type=quality, default=95, metavar="Q", help="JPEG quality, 1 to 100 (default 95)")
    u.add_argument("--cell-clip", action="store_true", help="clip the decoder's cell to its x4 value above x4")
    views_flag(u)
    u.add_argument("-q", "--quiet", action="store_true", help="print nothing but errors")
    model_flags(u)


def eval_parser(sub) -> None:
    from .lab.degrade import PROTOCOLS

    e = sub.add_parser("eval", help="PSNR on benchmark folders (LIIF paper protocol)",
                       description="Mean PSNR of bicubic and the models on folders of HR photos.")
    e.add_argument("--data", nargs="+", required=True, metavar="DIR", help="folders of high-resolution photos")
    e.add_argument("--scales", type=scales, default=[2.0, 3.0, 4.0], metavar="S,S,...",
                   help="downscaling factors to measure, separated by commas (default 2,3,4)")
    e.add_argument("--model", help="comma list of shipped models, bicubic among them "
                                   "(default: bicubic and all installed)")
    e.add_argument("--weights", nargs="*", metavar="FILE", help="weights files to measure too, each a row named by its file")
    e.add_argument("--json", metavar="PATH", help="also write the results to this JSON file")
    e.add_argument("--max-images", type=positive_int, metavar="N", help="only the first N photos of each folder, by name")
    views_flag(e, "; with N above 1 each model has a second row, such as \"fast ×8 views\", beside its own")
    e.add_argument("--degrade", choices=sorted(PROTOCOLS), metavar="NAME",
                   help="degrade each LR image by this named protocol first: "
                        + "; ".join(f"{k}: {v[1]}" for k, v in sorted(PROTOCOLS.items())))
    e.add_argument("--peer", choices=["dat-light"],
                   help="also measure a fixed-scale peer on the same LR images: dat-light, DAT-light run once at "
                        "x2, x3 or x4, then bicubic to the size (a row \"DAT-light (one pass, then bicubic)\"; "
                        "its own environment, made by `sh tools/peer/setup.sh`; about 15 s per 320x320 LR image "
                        "on a CPU; its progress on stderr)")


def train_parser(sub) -> None:
    t = sub.add_parser("train", help="train a model (LIIF recipe) on folders of photos",
                       description="Train a model, or go on training --out where it exists.")
    t.add_argument("--data", nargs="+", required=True, metavar="DIR", help="folders of training photos")
    t.add_argument("--model", choices=["liif", "fast"], required=True, help="the decoder to train: liif or fast")
    t.add_argument("--out", required=True, metavar="FILE",
                   help="the weights file to write; training resumes from it (and FILE.state) if it exists")
    t.add_argument("--iters", type=count, default=2000, metavar="N",
                   help="train up to this many iterations in all, resumed ones included (default 2000)")
    t.add_argument("--batch", type=positive_int, default=16, metavar="N", help="patches per iteration (default 16)")
    t.add_argument("--lr", type=positive_float, default=2e-4, help="Adam learning rate, cosine-decayed (default 2e-4)")
    t.add_argument("--threads", type=positive_int, metavar="N", help="CPU threads for PyTorch (default: its own choice)")
    t.add_argument("--no-residual", action="store_true",
                   help="predict colours outright, not as a correction of the bilinear upscale")
    t.add_argument("--eval-every", type=count, default=0, metavar="N",
                   help="measure PSNR x4 on --eval-data every N iterations (default 0: never)")
    t.add_argument("--eval-data", metavar="DIR", help="the folder --eval-every measures on")
    t.add_argument("--snapshot-every", type=count, default=0, metavar="N",
                   help="also keep FILE.itN every N iterations (default 0: never)")
    precision = t.add_mutually_exclusive_group()
    precision.add_argument("--fp32", action="store_true",
                           help="train the encoder in fp32 (default: bf16 autocast where the CPU computes bf16)")
    precision.add_argument("--bf16", action="store_true",
                           help="train the encoder with bf16 autocast even where the CPU only emulates bf16")
    t.add_argument("--encoder-from", metavar="WEIGHTS", help="start a new model with the encoder of these weights")
    t.add_argument("--freeze-encoder", action="store_true", help="train the decoder only")
    t.add_argument("--init-from", metavar="WEIGHTS", help="start a new model as a copy of these weights")
    t.add_argument("--degrade", nargs="?", const="wide", choices=["wide", "scan"], metavar="CHAIN", help="degrade"
                   " the LR side by the chain wide (default) or scan (centred on scans): trains a restore model")
    t.add_argument("--patch", type=positive_int, default=48, metavar="N", help="LR patch side (default 48 px)")
    t.add_argument("--minutes", type=float, metavar="M",
                   help="stop after M minutes, the learning rate's decay fitted to them (--iters is then a ceiling)")
    t.add_argument("--device", default="cpu", help="where to train: cpu (default), cuda, or auto (the best there is)")
    t.add_argument("--workers", type=count, default=0, metavar="N", help="processes drawing the patches (default 0:"
                   " the training process; on a GPU, several keep it busy)")
    t.add_argument("--teacher", metavar="WEIGHTS",
                   help="distil a preview encoder from these weights (their decoder, frozen, reads it)")


def build_parser() -> argparse.ArgumentParser:
    """The parser; `.commands` maps each command's name to its own parser."""
    p = _Parser(prog="zoomviewer", description="A photo viewer in which magnification never shows pixels.",
                epilog="`zoomviewer PHOTO` opens the viewer on PHOTO; `zoomviewer COMMAND --help` explains a command.")
    p.add_argument("--version", action="version", version=f"zoomviewer {version()}",
                   help="print the version and exit")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", help="one of: " + ", ".join(COMMANDS))
    for add in (view_parser, upscale_parser, eval_parser, train_parser):
        add(sub)
    b = sub.add_parser("bench", help="timings on this machine", description="Timings on this machine.")
    b.add_argument("--json", metavar="PATH", help="also write the timings to this JSON file")
    b.add_argument("--device", help="where to compute: auto (default), cpu, cuda or mps")
    b.add_argument("--quick", action="store_true", help="smaller sizes, for a smoke run")
    b.add_argument("--opening", action="store_true",
                   help="only the opening figures: the preview and the first sharp view of a photo just opened")
    p.commands = dict(sub.choices)
    return p


def not_a_photo(word: str) -> str | None:
    """Why `zoomviewer WORD` cannot open WORD in the viewer (None: it exists). A word that
    names no file and looks like no file name is taken for a misspelt command."""
    if os.path.exists(word):
        return None
    if os.sep in word or "/" in word or Path(word).suffix:
        return f"no such file: {word}"
    close = difflib.get_close_matches(word.lower(), COMMANDS, n=1, cutoff=0.6)
    if close:
        return f"unknown command {word!r}; did you mean {close[0]!r}?"
    return f"{word!r} is neither a command ({', '.join(COMMANDS)}) nor a file"


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    implicit = not argv or argv[0] not in COMMANDS + TOP_LEVEL_FLAGS
    if implicit:   # `zoomviewer [PHOTO] [view options]` is `zoomviewer view ...`
        if argv and not argv[0].startswith("-") and not_a_photo(argv[0]):
            return _fail(not_a_photo(argv[0]))
        argv.insert(0, "view")
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra:
        (parser if implicit else parser.commands[args.command]).error(f"unrecognized arguments: {' '.join(extra)}")
    handler = {"view": cmd_view, "upscale": cmd_upscale, "eval": cmd_eval, "train": cmd_train,
               "bench": cmd_bench}[args.command]
    from .engine.render import Cancelled
    try:
        return handler(args) or 0
    except ValueError as e:  # UsageError, ImageError, WeightsError and ExportError among them
        return _fail(str(e))
    except MemoryError:
        return _fail("not enough memory for this request")
    except OSError as e:     # a file or folder of the command line that cannot be read or written
        return _fail(f"{e.strerror or e}: {e.filename}" if e.filename else str(e))
    except (KeyboardInterrupt, Cancelled):
        return _fail("interrupted", status=130)


def _fail(message: str, status: int = 2) -> int:
    """Say why in one line on stderr; the exit status. On a terminal the line starts with
    a carriage return, over the ^C the terminal may have echoed where the cursor was."""
    start = "\r" if sys.stderr.isatty() else ""
    print(f"{start}zoomviewer: {message}", file=sys.stderr)
    return status


if __name__ == "__main__":
    sys.exit(main())
