"""`zoomviewer upscale` and export: exact pixels, atomic files, one-line errors; and the
command line's conventions: --version, help on every argument, one line with the right
program name for a bad argument or a misspelt command, numbers checked as they are read,
and the display check before the viewer's window."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from importlib import metadata

try:
    import resource
except ImportError:   # Windows
    resource = None

import numpy as np
import pytest
from PIL import Image

from engine_models import sample_image, spread_model
from zoomviewer.app.display_check import debian_package, display_problem
from zoomviewer.engine import bundled
from zoomviewer.cli import build_parser, main
from zoomviewer.engine.export import ExportError, export_view
from zoomviewer.engine.images import load, save
from zoomviewer.engine.render import Cancelled, Latent, render_region


@pytest.fixture
def photo_path(tmp_path):
    path = tmp_path / "photo.png"
    save(path, sample_image(30, 40))
    return path


def read(path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"), dtype=np.float32) / 255


def test_upscale_writes_exactly_the_requested_region_and_size(tmp_path, tiny_weights, photo_path):
    """A size of another aspect than the region's (x6 across, x7 down): --stretch allows it."""
    out = tmp_path / "face.png"
    assert main(["upscale", str(photo_path), "--size", "123x77", "--region", "5,4,20.5,11", "--stretch",
                 "--weights", str(tiny_weights), "-o", str(out)]) == 0
    got = read(out)
    assert got.shape == (77, 123, 3)
    model = spread_model("fast", residual=True)
    expect = render_region(Latent(model, load(photo_path).pixels, "cpu"), (5, 4, 20.5, 11), (123, 77))
    assert np.abs(got - expect).max() <= 0.5 / 255 + 1e-6


def test_upscale_scale_sets_the_size(tmp_path, tiny_weights, photo_path):
    out = tmp_path / "big.png"
    assert main(["upscale", str(photo_path), "--scale", "2.5", "--weights", str(tiny_weights), "-o", str(out)]) == 0
    assert Image.open(out).size == (100, 75)


def test_tiled_export_equals_one_render(tmp_path, tiny_weights, photo_path):
    """Export goes tile by tile; the tiles join without seams."""
    model = spread_model("fast", residual=True)
    photo = load(photo_path)
    latent = Latent(model, photo.pixels, "cpu")
    out = tmp_path / "t.png"
    list(export_view(latent, photo, (2.5, 1.5, 33, 25), (211, 160), out, tile=64))
    whole = render_region(latent, (2.5, 1.5, 33, 25), (211, 160))
    assert np.abs(read(out) - whole).max() <= 0.5 / 255 + 1e-6


def run_cli(*args, **kw):
    return subprocess.run([sys.executable, "-m", "zoomviewer", *args], capture_output=True, text=True,
                          timeout=120, **kw)


@pytest.mark.parametrize("case", ["missing", "directory", "not_image", "bad_scale", "bad_region", "bad_weights"])
def test_cli_errors_are_one_line_with_exit_code_2(tmp_path, tiny_weights, photo_path, case):
    junk = tmp_path / "junk.png"
    junk.write_bytes(b"this is not a picture")
    args = {
        "missing": [str(tmp_path / "nope.jpg"), "--scale", "2"],
        "directory": [str(tmp_path), "--scale", "2"],
        "not_image": [str(junk), "--scale", "2"],
        "bad_scale": [str(photo_path), "--scale", "-1"],
        "bad_region": [str(photo_path), "--scale", "2", "--region", "30,20,50,50"],
        "bad_weights": [str(photo_path), "--scale", "2", "--weights", str(junk)],
    }[case]
    if case != "bad_weights":
        args += ["--weights", str(tiny_weights)]
    r = run_cli("upscale", *args, "-o", str(tmp_path / "o.png"))
    assert r.returncode == 2
    # one line, and no empty one before it: nothing had started a progress line
    assert r.stderr.startswith("zoomviewer: ") and r.stderr.count("\n") == 1, r.stderr
    assert "Traceback" not in r.stderr
    assert not (tmp_path / "o.png").exists()


def test_refuses_to_run_without_trained_weights(tmp_path, photo_path, monkeypatch, capsys):
    monkeypatch.setattr(bundled, "shipped_weights", lambda kind="fast": None)
    assert main(["upscale", str(photo_path), "--scale", "2", "-o", str(tmp_path / "o.png")]) == 2
    assert "no trained weights" in capsys.readouterr().err
    assert not (tmp_path / "o.png").exists()


def test_export_refuses_to_overwrite_the_open_photo(tiny_weights, photo_path):
    before = photo_path.read_bytes()
    photo = load(photo_path)
    latent = Latent(spread_model("fast"), photo.pixels, "cpu")
    with pytest.raises(ExportError, match="open photo"):
        list(export_view(latent, photo, (0, 0, 40, 30), (80, 60), photo_path))
    assert photo_path.read_bytes() == before


def test_cancelled_export_leaves_no_file(tmp_path, photo_path):
    photo = load(photo_path)
    latent = Latent(spread_model("fast"), photo.pixels, "cpu")
    out = tmp_path / "o.png"
    steps = []
    with pytest.raises(Cancelled):
        for p in export_view(latent, photo, (0, 0, 40, 30), (400, 300), out, tile=100,
                             cancel=lambda: len(steps) >= 2):
            steps.append(p)
    assert not out.exists() and os.listdir(tmp_path) == ["photo.png"]


@pytest.mark.skipif(resource is None, reason="needs POSIX file size limits")
def test_write_failure_leaves_the_target_as_it_was(tmp_path, tiny_weights, photo_path):
    """The disk takes only 64 KB more (a file size limit, which binds root too): the
    export fails in one line of its own after the progress line, the old file stays."""
    target = tmp_path / "o.tif"   # 8-bit TIFF is uncompressed: 400 x 300 x 3 bytes
    target.write_bytes(b"previous export")
    limited = ("import resource, sys; resource.setrlimit(resource.RLIMIT_FSIZE, (1 << 16, "
               "resource.getrlimit(resource.RLIMIT_FSIZE)[1])); from zoomviewer.cli import main; "
               "sys.exit(main(sys.argv[1:]))")
    r = subprocess.run([sys.executable, "-c", limited, "upscale", str(photo_path), "--size", "400x300",
                        "--weights", str(tiny_weights), "-o", str(target)], capture_output=True, text=True, timeout=120)
    assert r.returncode == 2, r.stderr
    progress, message = r.stderr.rstrip("\n").rsplit("\n", 1)
    assert "%" in progress and message == "zoomviewer: Cannot save 'o.tif': writing failed (File too large).", r.stderr
    assert target.read_bytes() == b"previous export"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["o.tif", "photo.png"]


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0,
                    reason="root writes into read-only folders; the file size limit above binds root")
def test_read_only_folder_leaves_the_target_as_it_was(tmp_path, photo_path):
    photo = load(photo_path)
    latent = Latent(spread_model("fast"), photo.pixels, "cpu")
    folder = tmp_path / "ro"
    folder.mkdir()
    target = folder / "o.png"
    target.write_bytes(b"previous export")
    folder.chmod(0o555)
    try:
        with pytest.raises(ExportError, match="not writable"):
            list(export_view(latent, photo, (0, 0, 40, 30), (80, 60), target))
        assert target.read_bytes() == b"previous export"
    finally:
        folder.chmod(0o755)


def test_killed_export_leaves_no_partial_file(tmp_path, tiny_weights):
    """SIGKILL in the middle of a long export: the target never appears half written."""
    src = tmp_path / "p.png"
    save(src, sample_image(60, 80))
    out = tmp_path / "out.png"
    proc = subprocess.Popen([sys.executable, "-m", "zoomviewer", "upscale", str(src), "--size", "4000x3000",
                             "--weights", str(tiny_weights), "-o", str(out)],
                            stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
    # wait until it has rendered part of the image (progress lines on stderr), then kill it;
    # the deadline only keeps a stuck run from hanging the tests
    buf = ""
    deadline = time.time() + 120
    try:
        while "%" not in buf and time.time() < deadline:
            char = proc.stderr.read(1)
            if not char:   # it ended without ever showing progress
                break
            buf += char
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    assert "%" in buf, f"the export never showed progress, so it was not killed mid-way: {buf!r}"
    assert not out.exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith("out")] == []


def test_version_prints_the_package_version():
    r = run_cli("--version")
    assert r.returncode == 0 and r.stdout == f"zoomviewer {metadata.version('zoomviewer')}\n" and r.stderr == ""


def test_every_argument_of_every_command_is_explained():
    parser = build_parser()
    for name, command in [("zoomviewer", parser), *parser.commands.items()]:
        for action in command._actions:
            if "-h" not in action.option_strings:
                assert (action.help or "").strip(), f"{name}: {action.option_strings or action.dest} has no help"
        assert "%" not in command.format_help().replace("%%", "")


@pytest.mark.parametrize("args, said", [
    (["--bogus"], "unrecognized arguments: --bogus (see zoomviewer --help)"),
    (["upscale", "p.png", "--scale", "2", "-o", "o.png", "--bogus"],
     "unrecognized arguments: --bogus (see zoomviewer upscale --help)"),
    (["upscale", "p.png", "-o", "o.png"], "(see zoomviewer upscale --help)"),
    (["upscal", "p.png"], "unknown command 'upscal'; did you mean 'upscale'?"),
    (["veiw"], "unknown command 'veiw'; did you mean 'view'?"),
    (["holiday.jpg"], "no such file: holiday.jpg"),
    (["view", "holiday.jpg"], "no such file: holiday.jpg"),
    (["holiday"], "'holiday' is neither a command"),
    (["view", "--zoom", "-2"], "argument --zoom: must be a number above 0, got '-2'"),
    (["view", "--zoom", "0"], "argument --zoom: must be a number above 0"),
    (["upscale", "p.png", "--scale", "0", "-o", "o.png"], "argument --scale: must be a number above 0"),
    (["upscale", "p.png", "--scale", "nan", "-o", "o.png"], "argument --scale: must be a number above 0"),
    (["upscale", "p.png", "--size", "0x10", "-o", "o.png"], "argument --size: must be WxH"),
    (["upscale", "p.png", "--size", "12", "-o", "o.png"], "argument --size: must be WxH"),
    (["upscale", "p.png", "--size", "1.5x10", "-o", "o.png"], "argument --size: must be WxH"),
    (["upscale", "p.png", "--scale", "2", "--quality", "101", "-o", "o.png"], "argument --quality: must be"),
])
def test_a_bad_command_line_is_one_line_with_exit_code_2(tmp_path, args, said):
    save(tmp_path / "p.png", sample_image(8, 8))
    r = run_cli(*args, cwd=tmp_path)
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and r.stderr.startswith("zoomviewer: "), r.stderr
    assert said in r.stderr and "zoomviewer zoomviewer" not in r.stderr and r.stdout == ""
    assert sorted(os.listdir(tmp_path)) == ["p.png"]


def test_a_truncated_jpeg_is_named_in_one_line_with_its_brackets_matched(tmp_path, tiny_weights, capsys):
    Image.fromarray((sample_image(48, 64) * 255).astype(np.uint8)).save(tmp_path / "full.jpg", quality=90)
    data = (tmp_path / "full.jpg").read_bytes()
    (tmp_path / "cut.jpg").write_bytes(data[:len(data) // 2])
    assert main(["upscale", str(tmp_path / "cut.jpg"), "--scale", "2", "--weights", str(tiny_weights),
                 "-o", str(tmp_path / "o.png")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("zoomviewer: Cannot open 'cut.jpg': the image data is damaged or incomplete ("), err
    assert err.count("\n") == 1 and err.count("(") == err.count(")") == 1 and err.endswith(").\n"), err


def without_display() -> dict:
    return {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM")}


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="X11 and Wayland are Linux's")
def test_the_viewer_without_a_display_says_so_in_one_line():
    r = run_cli(env=without_display())
    assert r.returncode == 2 and r.stderr.count("\n") == 1, r.stderr
    assert r.stderr.startswith("zoomviewer: There is no display") and "DISPLAY" in r.stderr


def test_display_problem_is_one_sentence_and_a_screenshot_falls_back_to_offscreen():
    problem = display_problem({}, "linux", scripted=False)
    assert problem and "\n" not in problem and problem.endswith(".") and ". " not in problem.rstrip(".")
    environ: dict = {}
    assert display_problem(environ, "linux", scripted=True) is None and environ == {"QT_QPA_PLATFORM": "offscreen"}
    assert display_problem({"QT_QPA_PLATFORM": "xcb"}, "linux") is None      # chosen: Qt decides
    assert display_problem({"WAYLAND_DISPLAY": "wayland-0"}, "linux") is None
    assert display_problem({}, "darwin") is None and display_problem({}, "win32") is None


def test_debian_package_names_follow_debians_rule():
    assert debian_package("libxcb-icccm.so.4") == "libxcb-icccm4"
    assert debian_package("libxkbcommon-x11.so.0") == "libxkbcommon-x11-0"
    assert debian_package("libxcb-cursor.so.0.0.0") == "libxcb-cursor0"


def test_a_file_that_cannot_be_written_is_one_line_not_a_traceback(tmp_path, capsys):
    data, taken = tmp_path / "data", tmp_path / "taken.json"
    data.mkdir()
    taken.mkdir()          # --json names a folder: the results cannot be written there
    save(data / "hr.png", sample_image(24, 24))
    assert main(["eval", "--data", str(data), "--model", "bicubic", "--scales", "2", "--json", str(taken)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("zoomviewer: ") and err.count("\n") == 1 and str(taken) in err, err
