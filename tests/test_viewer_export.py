"""Export from the viewer (the render thread's export job): exactly the requested size,
the same pixels as `zoomviewer upscale` of the same region, and Cancel leaves no file."""

from __future__ import annotations

import os

import numpy as np
from PIL import Image

from zoomviewer.cli import main
from zoomviewer.engine.images import load, save
from zoomviewer.engine.model import save_weights
from zoomviewer.app.protocol import ExportJob
from zoomviewer.app.render_thread import RenderThread


def _export_on_worker(qtbot, model, photo, job, connect) -> list:
    """Run `job` on a fresh render thread; `connect(worker, seen)` wires the signal whose
    arrival (appended to `seen`) ends the wait."""
    worker = RenderThread(model, "cpu")
    seen: list = []
    connect(worker, seen)
    worker.start()
    try:
        qtbot.waitUntil(lambda: worker.loaded, timeout=10000)
        worker.set_image(photo.pixels, 1)
        worker.start_export(job)
        qtbot.waitUntil(lambda: bool(seen), timeout=60000)
    finally:
        worker.stop()
    return seen


def test_viewer_export_equals_upscale_of_the_same_region(qtbot, tiny_model, small_image, tmp_path):
    src = tmp_path / "photo.png"
    save(src, small_image)
    photo = load(src)
    weights = tmp_path / "tiny.pt"
    save_weights(weights, tiny_model, tiny_model.config)
    out = tmp_path / "view.png"
    _export_on_worker(qtbot, tiny_model, photo, ExportJob(photo, (10.25, 7.5, 30.0, 20.0), (333, 222), str(out)),
                      lambda w, seen: w.export_finished.connect(seen.append))
    cli_out = tmp_path / "cli.png"
    assert main(["upscale", str(src), "--size", "333x222", "--region", "10.25,7.5,30,20",
                 "--weights", str(weights), "-o", str(cli_out)]) == 0
    a = np.asarray(Image.open(out))
    b = np.asarray(Image.open(cli_out))
    assert a.shape == (222, 333, 3)
    # the same picture: the viewer's latent is encoded in its own tiles (32 px, in bands),
    # so colours agree to 1e-5 and a rare pixel rounds to the next level
    diff = np.abs(a.astype(int) - b.astype(int))
    assert diff.max() <= 1 and (diff > 0).mean() < 1e-3


def test_cancelled_viewer_export_leaves_no_file(qtbot, tiny_model, small_image, tmp_path):
    src = tmp_path / "photo.png"
    save(src, small_image)
    photo = load(src)
    progress = []

    def connect(worker, seen):
        worker.export_cancelled.connect(lambda: seen.append(True))
        worker.export_progress.connect(lambda f: (progress.append(f), worker.cancel_export()))

    out = tmp_path / "big.png"
    _export_on_worker(qtbot, tiny_model, photo, ExportJob(photo, (0, 0, 64, 48), (4096, 3072), str(out)), connect)
    assert progress and progress[-1] < 1.0
    assert not out.exists()
    assert sorted(os.listdir(tmp_path)) == ["photo.png"]
