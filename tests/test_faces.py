"""Face detection (engine/faces.py, the `faces` extra): on a bundled Kodak photo with a
hand-marked face (tests/fixtures/kodim18.json) the first suggestions hit the marked
faces; none is found in the parrots; without OpenCV there are none and one sentence
says how to have them. The OpenCV tests skip where it is not installed (CI's test
extra does not have it)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from zoomviewer.engine import faces
from zoomviewer.engine.bundled import sample_photo
from zoomviewer.engine.detail import iou

FIXTURES = Path(__file__).resolve().parent / "fixtures"
HAVE_CV2 = importlib.util.find_spec("cv2") is not None


def photo(path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"), dtype=np.float32) / 255


@pytest.fixture(scope="module")
def marked():
    """The bundled photo and its hand-marked face rectangles (x, y, w, h)."""
    notes = json.loads((FIXTURES / "kodim18.json").read_text(encoding="utf-8"))
    return photo(FIXTURES / notes["photo"]), [(f["x"], f["y"], f["w"], f["h"]) for f in notes["faces"]]


def test_the_first_suggestions_hit_the_marked_faces(marked, tiny_model):
    pytest.importorskip("cv2")
    from zoomviewer.app.details_thread import find_details

    img, truth = marked
    assert faces.available() and faces.missing() == ""
    found = faces.find_faces(img)
    assert [f.kind for f in found] == ["face"] * len(truth)      # each face once, nothing else
    suggested, _ = find_details(tiny_model, img)                 # what the Details list shows
    first = [r.rect for r in suggested[:len(truth)]]
    assert all(any(iou(face, rect) > 0.3 for rect in first) for face in truth)


def test_no_face_is_found_in_the_parrots():
    pytest.importorskip("cv2")
    assert faces.find_faces(photo(sample_photo())) == []


@pytest.mark.skipif(HAVE_CV2, reason="OpenCV is installed")
def test_without_opencv_there_are_no_faces_and_a_sentence_says_how_to_have_them(marked):
    assert faces.find_faces(marked[0]) == [] and not faces.available()
    assert "pip install 'zoomviewer[faces]'" in faces.missing()
