"""A big photo opens and zooms to x8 anywhere without needing much more memory than its pixels.

A 25-megapixel photo is written to disk; a separate Python process (so that the memory
counted is that of opening and viewing, not of pytest or of writing the file) loads it,
builds the lazily encoded latent, renders a 1280x800 screen at x8 in two corners and the
centre, and reports its own peak resident set size. The photo's float32 pixels are
unavoidable (12 bytes a pixel); the bound allows 2.5 times that plus 600 MB for Python,
torch and the render. tools/bigphoto.py does the same at 100 MP with the full-size model.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
WIDTH, HEIGHT = 6000, 4200           # 25.2 MP
VIEW = (1280, 800)                   # a screen, at x8: 160 x 100 photo pixels
ZOOM = 8

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"),
                                reason="ru_maxrss is in kilobytes on Linux only")

# Runs in the child. The model is a real tiny LIIF whose learned correction is zero
# (render_out all zeros, residual on), so every rendered pixel is the bilinear colour of
# the photo at that point and the views can be checked against the photo's own pixels.
CHILD = r"""
import json, resource, sys
import torch
from zoomviewer.engine.images import load
from zoomviewer.engine.model import new_model
from zoomviewer.engine.render import Latent, render_region

torch.manual_seed(0)
model = new_model({"kind": "fast", "encoder": "edsr-baseline", "residual": True,
                   "encoder_args": {"n_resblocks": 1, "n_feats": 8}})
with torch.no_grad():
    model.render_out.weight.zero_()
    model.render_out.bias.zero_()
photo = load(sys.argv[1])
latent = Latent(model, photo.pixels, "cpu")
view_w, view_h, zoom = 1280, 800, 8
views = {}
for name, x, y in json.loads(sys.argv[2]):
    view = render_region(latent, (x, y, view_w / zoom, view_h / zoom), (view_w, view_h))
    views[name] = {"shape": list(view.shape), "mean": view.reshape(-1, 3).mean(0).tolist()}
print(json.dumps({"pixels_shape": list(photo.pixels.shape), "pixels_bytes": photo.pixels.nbytes,
                  "tiles_encoded": latent.tiles_encoded, "tile": latent.tile, "views": views,
                  "peak_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}))
"""


def photo_rows() -> np.ndarray:
    """uint8 HxWx3: red rises left to right, green top to bottom, blue in fine stripes, so
    each place in the photo has its own colour."""
    x = np.linspace(0, 255, WIDTH, dtype=np.float32)[None, :]
    y = np.linspace(0, 255, HEIGHT, dtype=np.float32)[:, None]
    blue = 128 + 60 * np.sign(np.sin(np.arange(WIDTH, dtype=np.float32) / 3))[None, :]
    rgb = np.stack(np.broadcast_arrays(x, y, blue), axis=-1)
    return np.rint(rgb).astype(np.uint8)


@pytest.fixture(scope="module")
def big_photos(tmp_path_factory):
    """The same 25 MP picture as an RGB JPEG (a camera's file) and an RGBA PNG (an edited
    one, whose alpha compositing once needed five times the pixels' memory)."""
    folder = tmp_path_factory.mktemp("big")
    rgb = photo_rows()
    jpeg, png = folder / "camera.jpg", folder / "edited.png"
    Image.fromarray(rgb).save(jpeg, quality=95)
    rgba = np.concatenate([rgb, np.full((HEIGHT, WIDTH, 1), 255, np.uint8)], axis=-1)
    Image.fromarray(rgba).save(png, compress_level=1)
    return {"jpeg": jpeg, "rgba-png": png}, rgb.astype(np.float32) / 255


def view_places() -> list[tuple[str, float, float]]:
    w, h = VIEW[0] / ZOOM, VIEW[1] / ZOOM
    return [("top-left", 0.0, 0.0), ("centre", (WIDTH - w) / 2, (HEIGHT - h) / 2),
            ("bottom-right", WIDTH - w, HEIGHT - h)]


def open_and_zoom_in_a_fresh_process(path: Path) -> dict:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
               OMP_NUM_THREADS="1")
    done = subprocess.run([sys.executable, "-c", CHILD, str(path), json.dumps(view_places())],
                          capture_output=True, text=True, env=env, cwd=ROOT, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("kind", ["jpeg", "rgba-png"])
def test_25_megapixel_photo_opens_and_zooms_x8_anywhere_within_a_memory_bound(big_photos, kind):
    paths, source = big_photos
    report = open_and_zoom_in_a_fresh_process(paths[kind])

    # The whole photo was opened at full resolution (no shortcut through a smaller copy)...
    assert report["pixels_shape"] == [HEIGHT, WIDTH, 3]
    float_mb = report["pixels_bytes"] / 2**20
    # ...only the tiles under the three views were encoded, a few percent of the photo...
    assert report["tiles_encoded"] * report["tile"] ** 2 < 0.05 * WIDTH * HEIGHT
    # ...each x8 view shows that place of the photo...
    for name, x, y in view_places():
        view = report["views"][name]
        assert view["shape"] == [VIEW[1], VIEW[0], 3]
        x0, y0 = int(round(x)), int(round(y))
        expected = source[y0:y0 + VIEW[1] // ZOOM, x0:x0 + VIEW[0] // ZOOM].reshape(-1, 3).mean(0)
        assert np.abs(np.array(view["mean"]) - expected).max() < 3 / 255, name
    # ...and the process never held much more than the float32 pixels themselves.
    peak_mb = report["peak_kb"] / 1024
    bound_mb = 2.5 * float_mb + 600
    assert peak_mb < bound_mb, f"peak RSS {peak_mb:.0f} MB for {float_mb:.0f} MB of pixels (bound {bound_mb:.0f} MB)"
