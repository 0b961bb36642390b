"""`zoomviewer bench`: timings on the current device, as a table and a JSON.

Each figure is the median of several runs after a warm-up unless it says otherwise.
Weights: the shipped models when installed, else random weights of the same
architecture (timings do not depend on weight values).
"""

from __future__ import annotations

import json
import os
import platform
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from ..engine.latent import LATENT_TILE
from ..engine.model import load_preview, load_weights, new_model, pick_device
from ..engine.model.layout import encoder_layout
from ..engine.model import native
from ..engine.model.native import fast_kernel
from ..engine.render import Latent, deep_zoom_step, render_region, render_region_reference, render_sparse
from . import machine
from .bench_kernel import bench_kernel_builds
from .bench_viewer import bench_first_view, bench_viewer_refine, viewer_available

VIEW = (1280, 800)
NO_VIEWER = "skipped: PySide6 is not installed, so the viewer's render thread cannot run here"


def _model(kind: str):
    from ..engine.bundled import shipped_weights
    path = shipped_weights(kind)
    if path is not None:
        return load_weights(path)[0], "shipped"
    return new_model({"kind": kind, "encoder": "edsr-baseline", "residual": True}), "random"


def _photo(h: int, w: int, seed: int = 0) -> np.ndarray:
    """A synthetic photo with texture at several scales (timings do not depend on content)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    img = np.stack([0.5 + 0.4 * np.sin(xx / 37.0 + c) * np.cos(yy / 23.0 - c) for c in range(3)], -1)
    img += 0.1 * rng.random((h, w, 3), dtype=np.float32)
    return np.clip(img, 0, 1).astype(np.float32)


def _median_time(fn, runs: int, warmup: int = 1) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def _view_region(scale: float, corner: tuple[float, float] = (0.0, 0.0), size=VIEW):
    return (corner[0], corner[1], size[0] / scale, size[1] / scale)


def bench_decoder(latent: Latent, scales, runs: int, log, warmup: int = 1) -> dict:
    out = {}
    for s in scales:
        t = _median_time(lambda: render_region(latent, _view_region(s), VIEW), runs, warmup)
        out[f"x{s:g}"] = VIEW[0] * VIEW[1] / t
        log(f"  {latent.model.kind} x{s:g}: {t * 1000:.0f} ms per 1280x800 view")
    return out


def bench_reference(latent: Latent, scale: float, n_rows: int, log) -> float:
    """Throughput of the reference code's method on the first n_rows of the view (its cost
    per 30 000-query chunk is constant, so a strip measures its rate)."""
    region = _view_region(scale)
    strip = (region[0], region[1], region[2], region[3] * n_rows / VIEW[1])
    t = _median_time(lambda: render_region_reference(latent, strip, (VIEW[0], n_rows)), 1, warmup=0)
    log(f"  reference method x{scale:g}: {VIEW[0] * n_rows / t:.0f} px/s")
    return VIEW[0] * n_rows / t


def bench_refine(latent: Latent, scale: float, runs: int, fused: bool = True) -> float:
    """A view as the viewer refines it: coarse pass (1/4 linear resolution), then full."""
    region = _view_region(scale, (7.0, 5.0))

    def refine():
        render_region(latent, region, (VIEW[0] // 4, VIEW[1] // 4), fused=fused)
        render_region(latent, region, VIEW, fused=fused)
    return _median_time(refine, runs)


def bench_coarse(latent: Latent, scale: float, runs: int) -> float:
    """The viewer's coarse pass alone: a 1/4-resolution render of the view with the full
    pass's cell, its code table computed each time (as for a new zoom)."""
    region = _view_region(scale, (7.0, 5.0))

    def coarse():
        latent.forget_tables()
        render_region(latent, region, (VIEW[0] // 4, VIEW[1] // 4), cell=(1 / scale, 1 / scale))
    return _median_time(coarse, runs)


def bench_sparse(model, photo: np.ndarray, device: torch.device, runs: int, log) -> dict:
    """The optional Faster Deep Zoom: its viewer refine time at x12 and its error against the
    exact render (PSNR, 1280x800 views at the photo's centre) on the bench photo and the
    bundled sample photo."""
    from ..engine.bundled import sample_photo
    from ..engine.images import load, to_srgb

    out: dict = {"refine_ms": {}, "step": {}, "psnr_vs_exact_db": {}}
    if viewer_available():
        out["refine_ms"]["x12"] = 1000 * bench_viewer_refine(model, photo, device, 12, runs, sparse=True)
        log(f"  viewer refine with Faster Deep Zoom: x12 {out['refine_ms']['x12']:.0f} ms")
    photos = {"bench photo": photo, "sample photo": np.ascontiguousarray(to_srgb(load(sample_photo())), np.float32)}
    for s in (12, 16, 24, 30):
        step = deep_zoom_step(s)
        out["step"][f"x{s}"] = step
        worst = float("inf")
        for name, pixels in photos.items():
            latent = Latent(model, pixels, device)
            h, w = pixels.shape[:2]
            region = (w / 2 - VIEW[0] / s / 2, h / 2 - VIEW[1] / s / 2, VIEW[0] / s, VIEW[1] / s)
            exact = render_region(latent, region, VIEW)
            mse = float(np.mean((render_sparse(latent, region, VIEW, step) - exact) ** 2))
            worst = min(worst, 10 * np.log10(1 / max(mse, 1e-20)))
        out["psnr_vs_exact_db"][f"x{s}"] = worst
        log(f"  Faster Deep Zoom x{s}: 1 pixel in {step}x{step} decoded, PSNR against exact >= {worst:.1f} dB")
    return out


def viewer_encoder_s_per_mp(model, photo: np.ndarray, dev: torch.device) -> tuple[float, str]:
    """(seconds per megapixel, layout) to encode the whole photo as the viewer does: its
    latent tiles, in bands, keeping the first-layer term and not the codes."""
    latent = Latent(model, photo, dev, tile=LATENT_TILE, keep_codes=False)
    t = time.perf_counter()
    latent.ensure(0, photo.shape[0], 0, photo.shape[1], share=1.0)
    _sync(dev)
    return (time.perf_counter() - t) / (photo.shape[0] * photo.shape[1] / 1e6), latent.layout


def bench_model(kind: str, key: str, mp1: np.ndarray, dev: torch.device, runs: int, quick: bool, log) -> dict:
    """The decoder figures of one shipped model on a 1 MP photo: encoder rate, throughput,
    render_region, coarse pass, viewer refine; Faster Deep Zoom (fast), the reference
    method (exact)."""
    model, origin = _model(kind)
    rate, layout = viewer_encoder_s_per_mp(model, mp1, dev)
    entry: dict = {"weights": origin, "encoder_s_per_mp": rate, "encoder_layout": layout}
    log(f"{key} encoder: {entry['encoder_s_per_mp']:.2f} s per megapixel ({entry['encoder_layout']}, chosen by measurement)")
    latent = Latent(model, mp1, dev)
    latent.encode_all()
    log(f"{key} decoder, 1280x800 region of a {mp1.shape[1]}x{mp1.shape[0]} photo:")
    n = runs if key == "fast" else 1   # the exact decoder takes seconds per view: one timed run is enough
    scales = (2, 4, 12, 30) if not quick else (4, 12)
    entry["throughput_px_s"] = bench_decoder(latent, scales, n, log, warmup=1 if key == "fast" else 0)
    entry["render_ms"] = {f"x{s}": 1000 * bench_refine(latent, s, n) for s in (4, 12)}
    log("  coarse + full render_region: " + ", ".join(f"{k} {v:.0f} ms" for k, v in entry["render_ms"].items()))
    if key == "fast":
        entry["decoder_path"] = "fused kernel" if fast_kernel(model, dev) is not None else "torch ops"
        if entry["decoder_path"] == "fused kernel":
            entry["decoder_path"] += f" ({native.chosen_build(model)[0]} build, the faster here)"
        if entry["decoder_path"].startswith("fused kernel"):  # what a machine without a C compiler gets
            entry["render_ms_torch_ops"] = {f"x{s}": 1000 * bench_refine(latent, s, runs, fused=False) for s in (4, 12)}
            log("  the same with torch ops instead of the fused kernel: "
                + ", ".join(f"{k} {v:.0f} ms" for k, v in entry["render_ms_torch_ops"].items()))
            entry["kernel_builds"] = bench_kernel_builds(model, log, runs)
    entry["coarse_ms"] = {"x4": 1000 * bench_coarse(latent, 4, 3 if not quick else 1)}
    log(f"  coarse pass alone ({VIEW[0] // 4}x{VIEW[1] // 4}, code table included), x4: {entry['coarse_ms']['x4']:.0f} ms")
    entry["refine_ms"] = {f"x{s}": 1000 * bench_viewer_refine(model, mp1, dev, s, n) for s in (4, 12)
                          if viewer_available()}
    log("  viewer refine (render thread, coarse then sharp): "
        + (", ".join(f"{k} {v:.0f} ms" for k, v in entry["refine_ms"].items()) or NO_VIEWER))
    if key == "fast":
        entry["sparse"] = bench_sparse(model, mp1, dev, runs, log)
    else:
        rows = 40 if not quick else 8
        entry["reference_throughput_px_s"] = {f"x{s}": bench_reference(latent, s, rows, log) for s in (4, 12)}
        entry["speedup_vs_reference"] = {k: entry["throughput_px_s"][k] / v
                                         for k, v in entry["reference_throughput_px_s"].items()}
    return entry


def bench_opening(mp1: np.ndarray, dev: torch.device, quick: bool, log, export: bool = True) -> dict:
    """The first sharp view of a photo just opened (render thread, nothing encoded; and
    the preview's time where one is shipped), the first sharp frame and an export of a
    big photo rendered directly."""
    fast, _ = _model("fast")
    preview = load_preview()
    big = _photo(3000, 4000) if not quick else _photo(1000, 1500)
    res: dict = {"encoder_layout": encoder_layout(fast.encoder.to(dev), dev)}
    # the views first, as a photo just opened meets them: a whole-photo encode on this
    # thread before them made the first preview 4.2 s instead of 2.0 (native, this EPYC)
    sharp, previews = {}, {}
    if viewer_available():
        sharp, previews = bench_first_view(fast, {f"{mp1.shape[1]}x{mp1.shape[0]}": mp1,
                                                  f"{big.shape[1]}x{big.shape[0]}": big}, dev, preview=preview)
    else:
        res["viewer_figures"] = NO_VIEWER
    if preview is not None:
        res["preview_encoder_s_per_mp"] = viewer_encoder_s_per_mp(preview, mp1, dev)[0]
        log(f"preview encoder: {res['preview_encoder_s_per_mp']:.2f} s per megapixel")
    res["first_view_after_open_ms"] = {k: 1000 * v for k, v in sharp.items()}
    log("first sharp view after opening (render thread, nothing encoded): "
        + (", ".join(f"{k} {v:.0f} ms" for k, v in res["first_view_after_open_ms"].items()) or NO_VIEWER))
    if previews:
        res["first_preview_after_open_ms"] = {k: 1000 * v for k, v in previews.items()}
        log("its preview after opening: " + ", ".join(f"{k} {v:.0f} ms" for k, v in res["first_preview_after_open_ms"].items()))
    t = time.perf_counter()
    latent = Latent(fast, big, dev, tile=LATENT_TILE)   # as the viewer's
    render_region(latent, _view_region(10), VIEW)
    _sync(dev)
    res["first_sharp_frame_ms"] = 1000 * (time.perf_counter() - t)
    res["first_sharp_frame_photo"] = f"{big.shape[1]}x{big.shape[0]}"
    log(f"first sharp frame, {big.shape[1]}x{big.shape[0]} photo, 1280x800 at x10 on a corner: "
        f"{res['first_sharp_frame_ms']:.0f} ms")
    if not export:
        return res
    size = (7680, 4320) if not quick else (1920, 1080)
    region = (500.0, 400.0, size[0] / 4, size[1] / 4)
    from ..engine.export import export_view
    with tempfile.TemporaryDirectory() as d:
        t = time.perf_counter()
        for _ in export_view(latent, None, region, size, Path(d) / "export.png"):
            pass
        res[f"export_{size[0]}x{size[1]}_s"] = time.perf_counter() - t
    log(f"export {size[0]}x{size[1]} (x4 of a {size[0] // 4}x{size[1] // 4} region, fast, PNG): "
        f"{res[f'export_{size[0]}x{size[1]}_s']:.1f} s")
    return res


def run_bench(json_path: str | None = None, device: str | None = None, quick: bool = False,
              log=lambda s: print(s, file=sys.stderr, flush=True), opening: bool = False) -> int:
    """The bench; `opening`: only the machine and the opening figures (no export)."""
    dev = pick_device(device)
    runs = 1 if quick else 5  # fast-decoder figures: the median of 5 (this machine varies by ±20 %)
    res: dict = {"device": dev.type, "device_name": _device_name(dev), "quick": quick,
                 "machine": machine.describe(native.build_flags() + [f"CC={os.environ.get('CC', 'cc')}"]
                                             if native.library() is not None else None)}
    log("machine: " + machine.summary(res["machine"]))
    mp1 = _photo(816, 1224) if not quick else _photo(408, 612)
    if opening:
        res.update(bench_opening(mp1, dev, quick, log, export=False))
        print("\n".join(_opening_rows(res)))
        if json_path:
            Path(json_path).write_text(json.dumps(res, indent=2))
        return 0
    for kind, key in (("fast", "fast"), ("liif", "exact")):
        res[key] = bench_model(kind, key, mp1, dev, runs, quick, log)
    res["encoder_s_per_mp"] = res["fast"]["encoder_s_per_mp"]
    res["fast_decoder_path"] = res["fast"]["decoder_path"]
    res.update(bench_opening(mp1, dev, quick, log))
    if dev.type == "cuda":
        for kind, key in (("fast", "fast"), ("liif", "exact")):
            model, _ = _model(kind)
            lat = Latent(model, mp1, dev)
            lat.encode_all()
            t = _median_time(lambda: (render_region(lat, _view_region(4, size=(1920, 1080)), (1920, 1080)),
                                      _sync(dev)), runs)
            res[key]["frame_1920x1080_ms"] = 1000 * t
            log(f"{key}: {1000 * t:.1f} ms per 1920x1080 frame at x4")
    res["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    log(f"peak RSS: {res['peak_rss_mb']:.0f} MB")
    print(markdown(res))
    if json_path:
        Path(json_path).write_text(json.dumps(res, indent=2))
    return 0


def _opening_rows(res: dict) -> list[str]:
    rows = [f"| encoder layout (the faster, measured) | {res.get('encoder_layout', '?')} | |"]
    if "preview_encoder_s_per_mp" in res:
        rows.append(f"| preview encoder, s per megapixel | {res['preview_encoder_s_per_mp']:.2f} | |")
    photo = res.get("first_sharp_frame_photo", "4000x3000").replace("x", "×")
    rows.append(f"| first sharp frame, {photo} photo, ×10 corner, ms | {res['first_sharp_frame_ms']:.0f} | |")
    previews = res.get("first_preview_after_open_ms", {})
    for k, v in res.get("first_view_after_open_ms", {}).items():
        name = k.replace('x', '×', 1).replace(' x', ' ×')
        if k in previews:
            rows.append(f"| preview after opening, {name}, ms | {previews[k]:.0f} | |")
        rows.append(f"| first sharp view after opening, {name}, ms | {v:.0f} | |")
    return rows


def _device_name(dev: torch.device) -> str:
    if dev.type == "cuda":
        return torch.cuda.get_device_name(dev)
    return f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads"


def markdown(res: dict) -> str:
    rows = ["| figure | fast decoder | exact LIIF |", "|---|---|---|"]
    for k in res["fast"]["throughput_px_s"]:
        rows.append(f"| 1280×800 view {k.replace('x', '×')}, Mpx/s | {res['fast']['throughput_px_s'][k] / 1e6:.2f} | "
                    f"{res['exact']['throughput_px_s'].get(k, float('nan')) / 1e6:.3f} |")
    for k in res["fast"]["refine_ms"]:
        rows.append(f"| viewer: 1280×800 view fully refined {k.replace('x', '×')}, ms | {res['fast']['refine_ms'][k]:.0f} | "
                    f"{res['exact']['refine_ms'][k]:.0f} |")
    rows.append(f"| viewer's coarse pass alone ×4 ({VIEW[0] // 4}×{VIEW[1] // 4}, code table included), ms | "
                f"{res['fast']['coarse_ms']['x4']:.0f} | {res['exact']['coarse_ms']['x4']:.0f} |")
    for k in res["fast"]["render_ms"]:
        rows.append(f"| render_region coarse + full {k.replace('x', '×')}, ms | {res['fast']['render_ms'][k]:.0f} | "
                    f"{res['exact']['render_ms'][k]:.0f} |")
    for k, v in res["fast"].get("render_ms_torch_ops", {}).items():
        rows.append(f"| the same with torch ops, no fused kernel {k.replace('x', '×')}, ms | {v:.0f} | |")
    for k, v in res["fast"].get("kernel_builds", {}).get("ns_per_pixel", {}).items():
        rows.append(f"| fused kernel built for {k}, ns per pixel on one core ×4 | {v:.0f} | |")
    sparse = res["fast"].get("sparse")
    if sparse:
        if "x12" in sparse["refine_ms"]:
            rows.append(f"| viewer ×12 with Faster Deep Zoom (approximate), ms | {sparse['refine_ms']['x12']:.0f} | |")
        for k, v in sparse["psnr_vs_exact_db"].items():
            step = sparse["step"][k]
            rows.append(f"| Faster Deep Zoom {k.replace('x', '×')} (1 pixel in {step}×{step} decoded), PSNR vs exact, dB "
                        f"| {v:.1f} | |")
    for k, v in res["exact"].get("speedup_vs_reference", {}).items():
        rows.append(f"| speed-up over the reference method {k.replace('x', '×')} | | {v:.1f}× |")
    rows.append(f"| encoder, s per megapixel | {res['encoder_s_per_mp']:.2f} | |")
    rows += _opening_rows(res)
    for k, v in res.items():
        if k.startswith("export_"):
            rows.append(f"| {k.replace('_', ' ')} | {v:.1f} | |")
    rows.append(f"| peak RSS, MB | {res['peak_rss_mb']:.0f} | |")
    weights = ", ".join(f"{k} {res[k]['weights']}" for k in ("fast", "exact"))
    return (f"device: {res['device_name']} ({res['device']}); machine: {machine.summary(res['machine'])}; "
            f"weights: {weights}; fast decoder: {res.get('fast_decoder_path', 'torch ops')}\n\n" + "\n".join(rows))
