"""`zoomviewer upscale` on several photos and folders: outputs named by --name in the -o
folder, existing ones skipped, a bad photo reported in one line while the rest are made,
the progress (tqdm bars on a terminal, plain lines otherwise, the encoding included) and
--quiet; and --size refused where it would stretch the region."""

from __future__ import annotations

import io
import os
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from zoomviewer.batch import Job, Renderer, make, plan
from zoomviewer.cli import build_parser, main
from zoomviewer.progress import LINE_EVERY_S, Progress


def photo(path: Path, width: int = 24, height: int = 16, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    Image.fromarray((rng.random((height, width, 3)) * 255).astype(np.uint8)).save(path)
    return path


def truncated_jpeg(path: Path) -> Path:
    photo(path.with_suffix(".full.jpg"), 64, 48)
    data = path.with_suffix(".full.jpg").read_bytes()
    path.with_suffix(".full.jpg").unlink()
    path.write_bytes(data[:len(data) // 2])
    return path


@pytest.fixture
def folder(tmp_path):
    """DIR with two good photos, a truncated JPEG and a file that is not a photo; and
    a.jpg beside it."""
    d = tmp_path / "DIR"
    d.mkdir()
    photo(d / "p1.png", seed=1)
    photo(d / "p2.jpg", seed=2)
    truncated_jpeg(d / "corrupt.jpg")
    (d / "notes.txt").write_text("not a photo, and not taken for one")
    photo(tmp_path / "a.jpg", seed=3)
    return tmp_path


def state(path: Path) -> tuple[int, int]:
    st = path.stat()
    return st.st_ino, st.st_mtime_ns


def upscale(*args, weights) -> int:
    return main(["upscale", *map(str, args), "--weights", str(weights)])


def test_a_folder_and_a_file_into_a_folder_then_a_second_run_skips_them(folder, tiny_weights, capsys):
    """The issue's done-when: every good photo written, the corrupt one reported in one
    line, exit 2; run again, the outputs are skipped and not touched."""
    out = folder / "OUT"
    assert upscale(folder / "DIR", folder / "a.jpg", "--scale", "2", "-o", f"{out}/", weights=tiny_weights) == 2
    err = capsys.readouterr().err
    made = sorted(p.name for p in out.iterdir())
    assert made == ["a_x2.jpg", "p1_x2.png", "p2_x2.jpg"], err
    assert all(Image.open(out / name).size == (48, 32) for name in made)
    bad = [line for line in err.splitlines() if "corrupt" in line]
    assert len(bad) == 1 and bad[0].startswith("zoomviewer: ") and "damaged or incomplete" in bad[0], err
    assert "\r" not in err and "" not in err.splitlines(), err     # a pipe gets plain lines
    before = {name: state(out / name) for name in made}

    assert upscale(folder / "DIR", folder / "a.jpg", "--scale", "2", "-o", f"{out}/", weights=tiny_weights) == 2
    err = capsys.readouterr().err
    skipped = [line for line in err.splitlines() if line.startswith("skipped ")]
    assert len(skipped) == 3 and all(line.endswith("(exists; --overwrite to replace)") for line in skipped), err
    assert {name: state(out / name) for name in made} == before
    assert len([line for line in err.splitlines() if "corrupt" in line]) == 1


def test_overwrite_replaces_what_exists(folder, tiny_weights, capsys):
    out = folder / "OUT"
    photo(folder / "b.png", seed=4)
    assert upscale(folder / "a.jpg", folder / "b.png", "--scale", "2", "-o", out, weights=tiny_weights) == 0
    before = {p.name: state(p) for p in out.iterdir()}
    assert upscale(folder / "a.jpg", folder / "b.png", "--scale", "2", "-o", out, "--overwrite", weights=tiny_weights) == 0
    assert "skipped" not in capsys.readouterr().err
    after = {p.name: state(p) for p in out.iterdir()}
    assert after.keys() == before.keys() and all(after[n] != before[n] for n in after)


def test_name_pattern_fields(folder, tiny_weights):
    out = folder / "OUT"
    photo(folder / "w.webp", seed=5)
    assert upscale(folder / "a.jpg", folder / "w.webp", "--scale", "2.5", "-o", out, weights=tiny_weights) == 0
    assert sorted(p.name for p in out.iterdir()) == ["a_x2.5.jpg", "w_x2.5.png"]   # no .webp writer: PNG
    assert upscale(folder / "a.jpg", "--scale", "1.5", "-o", f"{out}/", "--name", "{stem}-{width}x{height}.tif",
                   weights=tiny_weights) == 0
    assert Image.open(out / "a-36x24.tif").size == (36, 24)


@pytest.mark.parametrize("pattern, said", [("{stem}_{zoom}{ext}", "{zoom}"), ("sub/{stem}.png", "without folders"),
                                           ("{stem", "not a name pattern")])
def test_a_bad_name_pattern_is_one_line_before_anything(folder, tiny_weights, capsys, pattern, said):
    out = folder / "OUT"
    assert upscale(folder / "DIR", "--scale", "2", "-o", out, "--name", pattern, weights=tiny_weights) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and said in err, err
    assert not out.exists()


def test_two_photos_named_alike_do_not_overwrite_each_other(folder, tiny_weights, capsys):
    photo(folder / "a.png", seed=6)
    out = folder / "OUT"
    assert upscale(folder / "a.jpg", folder / "a.png", "--scale", "2", "-o", out, "--name", "{stem}.png",
                   weights=tiny_weights) == 2
    err = capsys.readouterr().err
    assert "is the output of" in err and err.count("zoomviewer: ") == 1, err
    assert [p.name for p in out.iterdir()] == ["a.png"]


def test_several_inputs_need_a_folder(folder, tiny_weights, capsys):
    (folder / "taken.png").write_bytes(b"a file")
    for target, said in ((folder / "taken.png", "is a file"), (folder / "new.png", "looks like a file name")):
        assert upscale(folder / "DIR", "--scale", "2", "-o", target, weights=tiny_weights) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and said in err, err
    assert not (folder / "new.png").exists() and (folder / "taken.png").read_bytes() == b"a file"
    # a folder that does not exist yet is made, and a single photo goes in it by --name
    assert upscale(folder / "a.jpg", "--scale", "2", "-o", f"{folder / 'made' / 'here'}/", weights=tiny_weights) == 0
    assert (folder / "made" / "here" / "a_x2.jpg").is_file()


def test_bad_files_each_get_one_line_and_the_batch_goes_on(tmp_path, tiny_weights, capsys):
    (tmp_path / "text.png").write_text("hello")
    (tmp_path / "empty.jpg").write_bytes(b"")
    (tmp_path / "nophotos").mkdir()
    truncated_jpeg(tmp_path / "cut.jpg")     # its header reads: it fails only when decoded
    good = photo(tmp_path / "good.png")
    out = tmp_path / "OUT"
    status = upscale(tmp_path / "text.png", tmp_path / "empty.jpg", tmp_path / "missing.jpg", tmp_path / "nophotos",
                     tmp_path / "cut.jpg", good, "--scale", "2", "-o", out, weights=tiny_weights)
    assert status == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("zoomviewer: ")]
    assert len(errors) == 5, errors
    for name in ("text.png", "empty.jpg", "missing.jpg", "nophotos", "cut.jpg"):
        assert sum(name in line for line in errors) == 1, errors
    assert [p.name for p in out.iterdir()] == ["good_x2.png"]


def test_quiet_prints_only_errors(folder, tiny_weights, capsys):
    out = folder / "OUT"
    assert upscale(folder / "DIR", folder / "a.jpg", "--scale", "2", "-o", out, "-q", weights=tiny_weights) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.count("\n") == 1 and "corrupt.jpg" in captured.err
    assert upscale(folder / "DIR", folder / "a.jpg", "--scale", "2", "-o", out, "--quiet", weights=tiny_weights) == 2
    assert "skipped" not in capsys.readouterr().err


class Terminal(io.StringIO):
    """What tqdm writes to, taken for a terminal 100 columns wide."""

    def isatty(self) -> bool:
        return True


def test_a_terminal_gets_bars_with_the_time_left(folder, tiny_weights, monkeypatch):
    screen = Terminal()
    monkeypatch.setattr(sys, "stderr", screen)
    monkeypatch.setenv("COLUMNS", "100")
    assert upscale(folder / "DIR", folder / "a.jpg", "--scale", "2", "-o", folder / "OUT", weights=tiny_weights) == 2
    text = screen.getvalue()
    assert "\r" in text and "all photos" in text and "photo 3/4 p2.jpg 48x32" in text, text
    assert "100%" in text and "<" in text      # tqdm's elapsed<remaining
    assert "zoomviewer: Cannot open 'corrupt.jpg'" in text and text.rstrip().endswith("3 written to " + str(folder / "OUT") + ", 1 failed")


def test_plain_lines_come_at_most_every_few_seconds():
    now = [0.0]
    log = io.StringIO()
    with Progress(3, stream=log, batch=True, clock=lambda: now[0]) as progress:
        for name in ("a", "b", "c"):
            progress.start(f"photo {name}")
            for step in range(1, 21):
                now[0] += 1.0
                progress.show(step / 20)
            progress.end()
    lines = log.getvalue().splitlines()
    assert "\r" not in log.getvalue() and log.getvalue().endswith("\n")
    assert len(lines) <= 1 + 60 / LINE_EVERY_S, lines
    assert lines[0] == "photo a: 0 %" and any("about" in line and "left" in line for line in lines), lines


def test_the_progress_starts_before_the_encoding(tmp_path, tiny_weights):
    """The encoder is the slow part: a photo's progress moves while it encodes, before the
    export's first tile (600 x 300 px is three latent tiles)."""

    class Recorder(Progress):
        def __init__(self):
            super().__init__(1, stream=io.StringIO(), quiet=True)
            self.seen = []

        def show(self, fraction):
            self.seen.append(fraction)
            super().show(fraction)

    args = build_parser().parse_args(["upscale", str(photo(tmp_path / "p.png", 600, 300)), "--scale", "1",
                                      "--weights", str(tiny_weights), "-o", str(tmp_path / "o.png")])
    jobs, _ = plan(args)
    recorder = Recorder()
    make(jobs[0], args, Renderer(args).ready(), recorder, "p {size}")
    assert (tmp_path / "o.png").is_file()
    encoding = [f for f in recorder.seen if 0 < f < 0.8]
    assert len(encoding) >= 2 and recorder.seen == sorted(recorder.seen) and recorder.seen[-1] == 1.0, recorder.seen


@pytest.mark.parametrize("size, refused", [("50x50", True), ("42x20", True), ("41x20", False), ("403x200", False), ("40x20", False)])
def test_a_size_of_another_aspect_than_the_region_is_refused(tmp_path, tiny_weights, capsys, size, refused):
    src, out = photo(tmp_path / "p.png"), tmp_path / "o.png"
    status = upscale(src, "--region", "0,0,20,10", "--size", size, "-o", out, weights=tiny_weights)
    err = capsys.readouterr().err
    if refused:
        assert status == 2 and err.count("\n") == 1 and "2.000" in err and "--stretch" in err, err
        width, height = map(int, size.split("x"))
        assert f"{width / height:.3f}" in err and not out.exists()
        assert upscale(src, "--region", "0,0,20,10", "--size", size, "--stretch", "-o", out, weights=tiny_weights) == 0
    else:
        assert status == 0, err
    assert Image.open(out).size == tuple(map(int, size.split("x")))


def test_the_whole_photo_at_a_size_of_another_aspect_is_refused_too(tmp_path, tiny_weights, capsys):
    assert upscale(photo(tmp_path / "p.png"), "--size", "48x48", "-o", tmp_path / "o.png", weights=tiny_weights) == 2
    err = capsys.readouterr().err
    assert "the photo (24x16)" in err and err.count("\n") == 1 and not (tmp_path / "o.png").exists()


def test_a_folder_with_a_single_photo_is_not_a_file_target(tmp_path, tiny_weights):
    (tmp_path / "in").mkdir()
    photo(tmp_path / "in" / "only.png")
    jobs, out = plan(build_parser().parse_args(["upscale", str(tmp_path / "in"), "--scale", "3",
                                                "-o", str(tmp_path / "o"), "--weights", str(tiny_weights)]))
    assert out == tmp_path / "o" and out.is_dir()
    assert jobs == [Job(tmp_path / "in" / "only.png", out / "only_x3.png")]
    assert os.listdir(out) == []       # planning writes nothing but the folder


def test_a_target_that_cannot_hold_the_output_is_said_before_rendering(tmp_path, tiny_weights, capsys):
    assert upscale(photo(tmp_path / "p.png"), "--scale", "2", "--bits", "16", "-o", tmp_path / "o.jpg",
                   weights=tiny_weights) == 2
    err = capsys.readouterr().err
    assert err == "zoomviewer: Cannot save 'o.jpg': JPEG cannot store 16-bit channels (--bits 16 needs .png or .tif)\n"
