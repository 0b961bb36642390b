"""Multi-view fusion where people ask for it: `zoomviewer upscale --views N` writes the fused
render, `zoomviewer eval --views N` puts each model's fused row beside its own with the
time per megapixel of both, and the export dialog's "Best quality" box sends an 8-view
export to the render thread (remembered), which writes what `upscale --views 8` writes."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from engine_models import sample_image, spread_model
from zoomviewer.app.exportdialog import ExportDialog
from zoomviewer.app.protocol import ExportJob
from zoomviewer.app.render_thread import RenderThread
from zoomviewer.app.settings import app_settings
from zoomviewer.cli import main
from zoomviewer.engine.images import load, save
from zoomviewer.engine.render import Latent, render_fused, render_region, view_latents
from zoomviewer.lab.evaluate import TIME_KEY, evaluate_model

EXPORT_KEYS = ("export/format", "export/folder", "export/scale", "export/best")


@pytest.fixture(scope="module")
def weights(tiny_weights):
    return tiny_weights


def read(path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"), dtype=np.float32) / 255


def test_upscale_views_writes_the_fused_render(tmp_path, weights):
    src = tmp_path / "photo.png"
    save(src, sample_image(30, 40))
    region = ["--region", "5,4,20.5,11", "--size", "82x44", "--weights", str(weights)]
    assert main(["upscale", str(src), *region, "--views", "8", "-o", str(tmp_path / "eight.png")]) == 0
    assert main(["upscale", str(src), *region, "-o", str(tmp_path / "one.png")]) == 0
    pixels = load(src).pixels
    model = spread_model("fast", residual=True)
    fused = render_fused(view_latents(model, pixels, "cpu", 8), (5, 4, 20.5, 11), (82, 44))
    assert np.abs(read(tmp_path / "eight.png") - fused).max() <= 0.5 / 255 + 1e-6
    plain = render_region(Latent(model, pixels, "cpu"), (5, 4, 20.5, 11), (82, 44))
    assert np.abs(read(tmp_path / "one.png") - plain).max() <= 0.5 / 255 + 1e-6
    assert np.abs(read(tmp_path / "eight.png") - read(tmp_path / "one.png")).max() > 0.02


def test_upscale_refuses_a_view_count_it_does_not_have(tmp_path, weights):
    src = tmp_path / "photo.png"
    save(src, sample_image(30, 40))
    done = subprocess.run([sys.executable, "-m", "zoomviewer", "upscale", str(src), "--scale", "2", "--views", "3",
                           "--weights", str(weights), "-o", str(tmp_path / "o.png")],
                          capture_output=True, text=True, timeout=120)
    err = done.stderr.strip().splitlines()
    assert done.returncode == 2 and len(err) == 1 and "--views" in err[0] and "1, 2, 4, 8" in err[0]
    assert not (tmp_path / "o.png").exists()


def test_eval_views_puts_the_fused_row_beside_the_model_with_its_time(tmp_path, weights, capsys):
    folder = tmp_path / "tiny_set"
    folder.mkdir()
    for k in range(2):
        Image.fromarray((sample_image(24, 28, seed=k) * 255).astype(np.uint8)).save(folder / f"img{k}.png")
    out = tmp_path / "psnr.json"
    assert main(["eval", "--data", str(folder), "--scales", "2", "--weights", str(weights), "--views", "8",
                 "--json", str(out)]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[2] == "| method | ×2 | s/MP |"
    rows = [line.split("|")[1].strip() for line in lines[4:]]
    assert rows == ["bicubic", "tiny", "tiny ×8 views"]
    report = json.loads(out.read_text())
    model = spread_model("fast", residual=True)
    assert report["tiny_set"]["tiny ×8 views"]["2"] == pytest.approx(evaluate_model(model, folder, [2], views=8)[2.0])
    assert report["tiny_set"]["tiny"]["2"] == pytest.approx(evaluate_model(model, folder, [2])[2.0])
    assert report["tiny_set"]["tiny ×8 views"]["2"] != pytest.approx(report["tiny_set"]["tiny"]["2"], abs=1e-3)
    times = report[TIME_KEY]["tiny_set"]
    assert set(times) == {"bicubic", "tiny", "tiny ×8 views"} and all(t > 0 for t in times.values())


@pytest.fixture
def clean_settings():
    settings = app_settings()
    for key in EXPORT_KEYS:
        settings.remove(key)
    yield
    for key in EXPORT_KEYS:
        settings.remove(key)


def _export(qtbot, model, photo, job) -> None:
    worker = RenderThread(model, "cpu")
    done: list = []
    worker.export_finished.connect(done.append)
    worker.export_failed.connect(done.append)
    worker.start()
    try:
        qtbot.waitUntil(lambda: worker.loaded, timeout=10000)
        worker.set_image(photo.pixels, 1)
        worker.start_export(job)
        qtbot.waitUntil(lambda: bool(done), timeout=60000)
    finally:
        worker.stop()
    assert done == [job.path]


def test_best_quality_exports_eight_views_and_is_remembered(qtbot, tmp_path, weights, clean_settings):
    src = tmp_path / "photo.png"
    save(src, sample_image(30, 40))
    photo = load(src)
    dialog = ExportDialog((5, 4, 20.5, 11), (82, 44), (40, 30), src)
    qtbot.addWidget(dialog)
    assert not dialog.best.isChecked() and dialog.job(photo).views == 1
    dialog.view_button.setChecked(True)
    dialog.best.setChecked(True)
    dialog.path.setText(str(tmp_path / "best.png"))
    dialog.accept()
    job = dialog.job(photo)
    assert job.views == 8 and job.region == (5, 4, 20.5, 11) and job.out_size == (82, 44)
    again = ExportDialog((5, 4, 20.5, 11), (82, 44), (40, 30), src)
    qtbot.addWidget(again)
    assert again.best.isChecked()

    model = spread_model("fast", residual=True)
    _export(qtbot, model, photo, job)
    plain = ExportJob(photo, job.region, job.out_size, str(tmp_path / "plain.png"))
    _export(qtbot, model, photo, plain)
    assert np.abs(read(job.path) - read(plain.path)).max() > 0.02
    assert main(["upscale", str(src), "--region", "5,4,20.5,11", "--size", "82x44", "--weights", str(weights),
                 "--views", "8", "-o", str(tmp_path / "cli.png")]) == 0
    assert np.array_equal(np.asarray(Image.open(job.path)), np.asarray(Image.open(tmp_path / "cli.png")))
