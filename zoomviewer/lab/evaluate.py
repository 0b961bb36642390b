"""The paper's benchmark protocol (docs/LIIF.md section 4): PSNR of a model, and of bicubic
interpolation, on folders of HR images at several scales, plus the markdown and JSON
reports the `zoomviewer eval` command prints and writes.

Protocol: HR is read as uint8 RGB and cropped at the top left to a multiple of the
scale; LR is MATLAB's bicubic `imresize` of that uint8 HR (rounded to uint8 between the
two passes as MATLAB does, so x2-x4 equal the published MATLAB LR images bit for bit).
The model renders the whole image at HR size and is clamped to [0, 1], not quantised;
the bicubic baseline is `imresize(LR, scale)` clamped. PSNR is taken on the Y channel of
the difference with `ceil(scale)` pixels shaved at each border (benchmarks), or on RGB
with `ceil(scale) + 6` shaved (the DIV2K protocol), and averaged over images. With views
above 1 each model also renders as the mean of that many views of the LR image (the
geometric self-ensemble, engine/render/fusion.py), a row of its own ("fast ×8 views");
the time per output megapixel of every row (encoding and rendering) is reported beside it.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image

from ..engine.formats import is_photo_name
from ..engine.resample import imresize
from .degrade import degrade_protocol

# ITU-R BT.601 luma of a [0, 1] RGB difference, as in the reference code (the 16 offset
# cancels in a difference).
Y_COEFFS = np.array([65.738, 129.057, 25.064]) / 256.0
BICUBIC = "bicubic"
TIME_KEY = "seconds per megapixel"   # write_json's key for the timings, beside the sets' names


def shave_for(scale: float, rgb: bool = False) -> int:
    """Border pixels excluded from the PSNR: ceil(scale), plus 6 in the RGB protocol."""
    return int(math.ceil(scale - 1e-9)) + (6 if rgb else 0)


def psnr(pred: np.ndarray, hr: np.ndarray, scale: float, rgb: bool = False) -> float:
    """PSNR (dB) of `pred` against `hr` (both HxWx3 in [0, 1]) under the benchmark
    protocol: Y channel of the difference and `scale` shaved (rgb=False), or all three
    channels with `scale + 6` shaved (rgb=True). Identical images give inf."""
    if pred.shape != hr.shape:
        raise ValueError(f"prediction is {pred.shape[1]}x{pred.shape[0]} but the HR image is "
                         f"{hr.shape[1]}x{hr.shape[0]}")
    diff = np.asarray(pred, dtype=np.float64) - np.asarray(hr, dtype=np.float64)
    if not rgb:
        diff = diff @ Y_COEFFS
    shave = shave_for(scale, rgb)
    if diff.shape[0] <= 2 * shave or diff.shape[1] <= 2 * shave:
        raise ValueError(f"a {hr.shape[1]}x{hr.shape[0]} image is too small to shave {shave} "
                         "pixels at each border")
    valid = diff[shave:-shave, shave:-shave]
    mse = float(np.mean(valid * valid))
    return math.inf if mse == 0.0 else -10.0 * math.log10(mse)


def list_images(data_dir: str | os.PathLike) -> list[Path]:
    """The image files of one benchmark folder, sorted by name."""
    folder = Path(data_dir)
    if not folder.is_dir():
        raise ValueError(f"benchmark folder {folder} does not exist")
    files = sorted(p for p in folder.iterdir() if is_photo_name(p) and p.is_file())
    if not files:
        raise ValueError(f"benchmark folder {folder} has no images in it")
    return files


def read_hr(path: Path) -> np.ndarray:
    """An HR image as uint8 HxWx3 RGB."""
    try:
        with Image.open(path) as im:
            return np.asarray(im.convert("RGB"))
    except (OSError, ValueError) as exc:
        raise ValueError(f"{path} is not a readable image ({exc})") from None


def make_pair(hr: np.ndarray, scale: float, degrade: str | None = None,
              index: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(HR, LR) as float64 in [0, 1] for one scale: HR cropped at the top left so its
    size is the LR size times the scale, LR its MATLAB bicubic downscale to uint8, then
    degraded by the protocol `degrade` (degrade.PROTOCOLS) drawn for image `index`."""
    lr_h = int(math.floor(hr.shape[0] / scale + 1e-9))
    lr_w = int(math.floor(hr.shape[1] / scale + 1e-9))
    if lr_h < 1 or lr_w < 1:
        raise ValueError(f"a {hr.shape[1]}x{hr.shape[0]} image is too small for scale x{scale:g}")
    hr = hr[: int(round(lr_h * scale)), : int(round(lr_w * scale))]
    lr = imresize(hr, out_shape=(lr_h, lr_w))  # uint8 in, uint8 out, as MATLAB
    if degrade:
        lr = degrade_protocol(degrade, lr, index, scale)
    return hr / 255.0, lr / 255.0


def predict(model, lr: np.ndarray, hr_size: tuple[int, int], device=None, views: int = 1) -> np.ndarray:
    """The HR-sized (W, H) = hr_size rendering of the whole LR image, in [0, 1]:
    the model through the viewer's engine (the mean of `views` views of the LR image:
    1, 2, 4 or 8), or bicubic `imresize` when model is None."""
    hr_w, hr_h = hr_size
    if model is None:
        return np.clip(imresize(lr, out_shape=(hr_h, hr_w)), 0.0, 1.0)
    # Imported here so bicubic evaluation needs neither torch nor the engine.
    from ..engine.render import render_fused, view_latents

    lr_h, lr_w = lr.shape[:2]
    latents = view_latents(model, np.ascontiguousarray(lr, dtype=np.float32), device, views)
    out = render_fused(latents, (0.0, 0.0, float(lr_w), float(lr_h)), (hr_w, hr_h))
    return np.clip(out, 0.0, 1.0)


def fused_name(name: str, views: int) -> str:
    """The row of model `name` rendered as the mean of `views` views: 'fast ×8 views'."""
    return f"{name} ×{views} views"


def evaluate_model(model, data_dir: str | os.PathLike, scales: list[float], *, device=None,
                   max_images: int | None = None, rgb: bool = False, degrade: str | None = None,
                   log: Callable[[str], None] | None = None, views: int = 1,
                   clock: dict[str, float] | None = None) -> dict[float, float]:
    """Mean PSNR (dB) per scale of `model` (None: bicubic; rendered as the mean of `views`
    views) over the images of `data_dir` (the first `max_images` by name if given), their
    LR degraded by protocol `degrade`. `clock`, if given, is added the seconds the
    predictions took and the megapixels they made ("seconds", "megapixels")."""
    files = list_images(data_dir)[:max_images]
    sums = {float(s): 0.0 for s in scales}
    for index, path in enumerate(files):
        hr_full = read_hr(path)
        for scale in sums:
            hr, lr = make_pair(hr_full, scale, degrade, index)
            start = time.perf_counter()
            pred = predict(model, lr, (hr.shape[1], hr.shape[0]), device, views)
            if clock is not None:
                clock["seconds"] = clock.get("seconds", 0.0) + time.perf_counter() - start
                clock["megapixels"] = clock.get("megapixels", 0.0) + hr.shape[0] * hr.shape[1] / 1e6
            value = psnr(pred, hr, scale, rgb)
            sums[scale] += value
            if log is not None:
                log(f"{path.name} x{scale:g}: {value:.2f} dB")
    return {scale: total / len(files) for scale, total in sums.items()}


def evaluate(data_dirs: list[str], scales: list[float], models: dict[str, object], *, device=None,
             max_images: int | None = None, rgb: bool = False, degrade: str | None = None,
             log: Callable[[str], None] | None = None, views: int = 1,
             timings: dict | None = None) -> dict[str, dict[str, dict[float, float]]]:
    """{set name: {row name: {scale: mean PSNR}}} for every folder in `data_dirs`, with a
    "bicubic" row first and one row per entry of `models` (a None model is bicubic),
    each model followed by its fused row (fused_name) when `views` is above 1.
    `timings`, if given, is filled {set name: {row name: seconds per output megapixel}}."""
    rows: dict[str, tuple[object, int]] = {BICUBIC: (None, 1)}
    for name, m in models.items():
        if not (name == BICUBIC and m is None):
            rows[name] = (m, 1)
            if m is not None and views > 1:
                rows[fused_name(name, views)] = (m, views)
    results: dict[str, dict[str, dict[float, float]]] = {}
    for model, row_views in rows.values():
        if model is not None and row_views == 1:   # the first render builds kernels, warms caches: in no row's time
            predict(model, np.full((8, 8, 3), 0.5), (16, 16), device)
    for data_dir in data_dirs:
        set_name = Path(data_dir).name or str(data_dir)
        if set_name in results:
            set_name = str(data_dir)
        results[set_name] = {}
        for row, (model, row_views) in rows.items():
            if log is not None:
                log(f"{set_name}: {row}")
            clock: dict[str, float] = {}
            results[set_name][row] = evaluate_model(model, data_dir, scales, device=device,
                                                    max_images=max_images, rgb=rgb, degrade=degrade,
                                                    log=log, views=row_views, clock=clock)
            if timings is not None:
                timings.setdefault(set_name, {})[row] = clock["seconds"] / clock["megapixels"]
    return results


def format_scale(scale: float) -> str:
    """'×4' for 4.0, '×2.5' for 2.5."""
    return f"×{float(scale):g}"


def _format_psnr(value: float | None) -> str:
    if value is None:
        return "–"
    return "inf" if math.isinf(value) else f"{value:.2f}"


def markdown_table(results: dict[str, dict[str, dict[float, float]]], timings: dict | None = None) -> str:
    """Per set, a heading and a markdown table: one row per method, one column per
    scale, PSNR in dB with 2 decimals; with `timings` (evaluate's), a last column of
    seconds per output megapixel, 3 significant digits."""
    parts = []
    for set_name, rows in results.items():
        scales = sorted({float(s) for row in rows.values() for s in row})
        times = (timings or {}).get(set_name)
        lines = [f"### {set_name}", "",
                 "| method | " + " | ".join(format_scale(s) for s in scales) + (" | s/MP" if times else "") + " |",
                 "|---|" + "---|" * (len(scales) + bool(times))]
        for row_name, by_scale in rows.items():
            values = {float(s): v for s, v in by_scale.items()}
            cells = [_format_psnr(values.get(s)) for s in scales]
            if times:
                cells.append(f"{times[row_name]:.3g}" if row_name in times else "–")
            lines.append(f"| {row_name} | " + " | ".join(cells) + " |")
        parts.append("\n".join(lines))
    return "\n\n".join(parts) + "\n"


def write_json(results: dict[str, dict[str, dict[float, float]]], path: str | os.PathLike,
               timings: dict | None = None) -> None:
    """Write results as strict JSON: {set: {row: {scale: PSNR}}}, scales as keys like "4"
    or "2.5", PSNR in dB (an infinite PSNR, i.e. a perfect reconstruction, is written as
    null); with `timings`, also {TIME_KEY: {set: {row: seconds per output megapixel}}}."""
    plain: dict[str, dict] = {
        set_name: {
            row: {f"{float(s):g}": (float(v) if math.isfinite(v) else None) for s, v in by_scale.items()}
            for row, by_scale in rows.items()
        }
        for set_name, rows in results.items()
    }
    if timings:
        plain[TIME_KEY] = {set_name: {row: float(t) for row, t in rows.items()} for set_name, rows in timings.items()}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(plain, indent=2) + "\n")
