"""`zoomviewer upscale`: one photo to a file, or several photos and folders into a folder.

plan() turns the command line into jobs reading only each photo's header (its size names
the output and sets the output's size), so that outputs already there are skipped without
decoding a photo or loading the model. run() makes the rest, one photo after another:
first the encoding (the slow part), then the export, both inside the progress. A photo
that cannot be made is reported in one line and the run goes on; the exit status is 2 if
any failed. cli.py builds the parser and calls run().
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from .app.folder import photos_in
from .cli import UsageError, load_model
from .engine import formats
from .progress import Progress

DEFAULT_NAME = "{stem}_x{scale}{ext}"
NAME_FIELDS = ("stem", "scale", "ext", "width", "height")
ASPECT_TOLERANCE = 0.01
# The encoder's cost per source pixel in decoder output pixels (about 10 for the fast
# model on a CPU, 1 for liif): how much of a photo's bar the encoding takes.
ENCODE_WEIGHT = 8


@dataclass
class Job:
    source: Path
    target: Path | None = None
    problem: str | None = None      # why it cannot be made, known before rendering


def scale_text(scale: float) -> str:
    """The {scale} of a name: 2 -> '2', 12.5 -> '12.5', 6.0243 -> '6.02'."""
    return f"{round(scale, 2):g}"


def output_ext(source: Path) -> str:
    """The {ext} of a name: the photo's own suffix where zoomviewer writes that format,
    else .png (a .webp or .bmp photo is upscaled to PNG)."""
    return source.suffix if formats.write_format(source) else ".png"


def output_name(pattern: str, source: Path, scale: float, size: tuple[int, int]) -> str:
    return pattern.format(stem=source.stem, scale=scale_text(scale), ext=output_ext(source),
                          width=size[0], height=size[1])


def check_name(pattern: str) -> None:
    """Refuse a --name pattern that names no plain file, before any photo is read."""
    fields = ", ".join("{" + f + "}" for f in NAME_FIELDS)
    try:
        name = output_name(pattern, Path("photo.jpg"), 2.0, (10, 10))
    except KeyError as e:
        raise UsageError(f"--name {pattern!r} has the unknown field {{{e.args[0]}}}; the fields are {fields}") from None
    except (ValueError, IndexError):
        raise UsageError(f"--name {pattern!r} is not a name pattern: write fields as {fields}, "
                         "a brace itself as {{ or }}") from None
    if Path(name).name != name or name in ("", ".", ".."):
        raise UsageError(f"--name {pattern!r} must make a file name, without folders (those go in -o)")


def check_aspect(size: tuple[int, int], width: float, height: float, what: str) -> None:
    """Refuse a --size whose shape is not the region's: it would stretch the photo."""
    out_w, out_h = size
    want = width / height
    if abs(out_w / out_h / want - 1) <= ASPECT_TOLERANCE or round(out_w / want) == out_h or round(out_h * want) == out_w:
        return
    raise UsageError(f"--size {out_w}x{out_h} has the aspect {out_w / out_h:.3f} (width/height), but {what} "
                     f"({width:g}x{height:g}) has {want:.3f}: give --stretch to stretch it, or a size of "
                     f"that aspect such as {out_w}x{max(1, round(out_w / want))}")


def geometry(args, width: int, height: int) -> tuple[tuple[float, ...], tuple[int, int], float]:
    """(region, output size, scale) for a photo of width x height."""
    region = args.region or (0.0, 0.0, float(width), float(height))
    x, y, rw, rh = region
    if x + rw > width + 1e-9 or y + rh > height + 1e-9:
        raise UsageError(f"--region {','.join(f'{v:g}' for v in region)} reaches outside the {width}x{height} photo")
    if args.scale is not None:
        return region, (max(1, round(rw * args.scale)), max(1, round(rh * args.scale))), args.scale
    if not args.stretch:
        check_aspect(args.size, rw, rh, "the region" if args.region else "the photo")
    return region, args.size, args.size[0] / rw


def sources(inputs: list[str]) -> list[Job]:
    """A job per photo: files as given, folders' photos (not their subfolders') in natural
    order, each photo once; a folder without photos is a job with a problem."""
    jobs, seen = [], set()
    for text in inputs:
        path = Path(text)
        found = photos_in(path) if path.is_dir() else [path]
        if not found:
            jobs.append(Job(path, problem=f"no photos in the folder {path} (looked for {', '.join(sorted(formats.READ_SUFFIXES))})"))
        for photo in found:
            key = os.path.realpath(photo)
            if key not in seen:
                seen.add(key)
                jobs.append(Job(photo))
    return jobs


def is_batch(args) -> bool:
    """Several photos, a folder, or -o naming a folder: outputs are named by --name."""
    output = args.output
    return (len(args.input) > 1 or any(Path(p).is_dir() for p in args.input) or Path(output).is_dir()
            or output.endswith(("/", os.sep)))


def output_folder(output: str) -> Path:
    """-o as the folder of a batch, made if missing."""
    folder = Path(output)
    if folder.exists() and not folder.is_dir():
        raise UsageError(f"-o {output} is a file; with several photos or a folder, -o names a folder")
    if not folder.exists() and formats.is_photo_name(folder) and not output.endswith(("/", os.sep)):
        raise UsageError(f"-o {output} looks like a file name; with several photos or a folder, -o names "
                         f"a folder (end it with / to make a folder of that name)")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UsageError(f"cannot make the folder {output}: {e.strerror or e}") from None
    return folder


def plan(args) -> tuple[list[Job], Path | None]:
    """The jobs of a command line and the batch's folder (None: one photo to -o FILE)."""
    from .engine.export import output_format
    from .engine.images import read_size

    batch = is_batch(args)
    if not batch and args.name is not None:
        raise UsageError("--name names the outputs in a folder: give -o a folder (ending in /)")
    pattern = DEFAULT_NAME if args.name is None else args.name
    check_name(pattern)
    if args.region and args.size and not args.stretch:
        check_aspect(args.size, args.region[2], args.region[3], "the region")
    jobs = sources(args.input)
    folder = output_folder(args.output) if batch else None
    claimed: dict[Path, Path] = {}
    for job in (j for j in jobs if j.problem is None):
        try:
            region, size, scale = geometry(args, *read_size(job.source))
            job.target = folder / output_name(pattern, job.source, scale, size) if batch else Path(args.output)
            fmt = output_format(job.target)   # a bad target is said now, not after the render
            if args.bits not in formats.find(fmt).write_bits:
                raise UsageError(f"Cannot save '{job.target.name}': {fmt} cannot store {args.bits}-bit channels "
                                 f"(--bits 16 needs .png or .tif)")
        except ValueError as e:   # ImageError, UsageError, ExportError
            job.problem = str(e)
            continue
        if job.target in claimed:
            job.problem = (f"{job.target} is the output of {claimed[job.target]} too; put {{ext}} or another "
                           f"field in --name to tell them apart")
        claimed.setdefault(job.target, job.source)
    return jobs, folder


class Renderer:
    """The device and the model, loaded for the first photo that is made: a run that skips
    or refuses every photo loads neither."""

    def __init__(self, args) -> None:
        self.args, self.device, self.model = args, None, None

    def ready(self) -> Renderer:
        if self.model is None:
            from .engine.model import pick_device

            self.device = pick_device(self.args.device)
            self.model = load_model(self.args.model, self.args.weights)
        return self


def make(job: Job, args, renderer: Renderer, progress: Progress, label: str) -> None:
    """Encode and export one photo, telling `progress` (label: its line, with {size} in
    it); a ValueError says why it failed."""
    from .engine.export import export_view
    from .engine.images import load
    from .engine.render import Latent, codes_read

    photo = load(job.source)
    region, size, _ = geometry(args, photo.pixels.shape[1], photo.pixels.shape[0])
    latent = Latent(renderer.model, photo.pixels, renderer.device)
    progress.start(label.format(size=f"{size[0]}x{size[1]}"))
    y0, y1, x0, x1 = codes_read(latent, region, size, keep_table=False)
    encoding = ENCODE_WEIGHT * (y1 - y0) * (x1 - x0)
    share = encoding / (args.views * (encoding + size[0] * size[1]))   # the other views encode in the export
    latent.ensure(y0, y1, x0, x1, lambda f: progress.show(share * f))
    for fraction in export_view(latent, photo, region, size, job.target, bits=args.bits,
                                quality=args.quality, cell_clip=args.cell_clip, views=args.views):
        progress.show(share + (1 - share) * fraction)
    progress.end()


def one(job: Job, number: int, count: int, args, folder: Path | None, renderer: Renderer,
        progress: Progress) -> str:
    """Make, skip or refuse one photo of the run: 'written', 'skipped' or 'failed'."""
    if job.problem is None and folder is not None and job.target.exists() and not args.overwrite:
        progress.note(f"skipped {job.target} (exists; --overwrite to replace)")
        progress.leave()
        return "skipped"
    if job.problem is not None:
        return _failed(job.problem, job, folder, progress)
    renderer.ready()    # weights that do not load end the whole run, so outside the try below
    label = (f"photo {number}/{count} {job.source.name} {{size}}" if folder is not None
             else f"{job.target.name} {{size}} on {renderer.device.type}")
    try:
        make(job, args, renderer, progress, label)
    except ValueError as e:   # ImageError, ExportError, UsageError
        return _failed(str(e), job, folder, progress)
    except MemoryError:
        return _failed("there is not enough memory for this photo", job, folder, progress)
    return "written"


def _failed(message: str, job: Job, folder: Path | None, progress: Progress) -> str:
    if folder is not None and job.source.name not in message:
        message = f"{job.source.name}: {message}"   # in a batch, say which photo
    progress.leave()    # first: the photo's bar ends above the line, not below it
    progress.error(f"zoomviewer: {message}")
    return "failed"


def run(args) -> int:
    """`zoomviewer upscale`: the exit status (2 if any photo failed)."""
    jobs, folder = plan(args)
    renderer = Renderer(args)
    outcomes = {"written": 0, "skipped": 0, "failed": 0}
    with Progress(len(jobs), quiet=args.quiet, batch=folder is not None) as progress:
        for number, job in enumerate(jobs, 1):
            outcomes[one(job, number, len(jobs), args, folder, renderer, progress)] += 1
        if folder is not None:
            progress.close()    # the summary goes below the finished bars, not above them
            progress.note(f"{outcomes['written']} written to {folder}"
                          + "".join(f", {n} {what}" for what, n in outcomes.items() if n and what != "written"))
    return 2 if outcomes["failed"] else 0
