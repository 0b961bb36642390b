"""Before the window is made: is there a display, and can Qt's X11 platform plugin load?
Without this check Qt aborts the process (a core dump and several lines of Qt's own text)
where a person needs one sentence: what is missing and how to get it. No Qt is started
here; the check only looks at the environment and at the plugin's shared libraries."""

from __future__ import annotations

import ctypes
import os
import shutil
import subprocess
import sys
from pathlib import Path


def debian_package(soname: str) -> str:
    """The Debian/Ubuntu package that ships a library: libxcb-icccm.so.4 -> libxcb-icccm4,
    libxkbcommon-x11.so.0 -> libxkbcommon-x11-0 (Debian's rule for names ending in a digit)."""
    name, _, version = soname.partition(".so.")
    name = name.lower()
    return f"{name}{'-' if name[-1:].isdigit() else ''}{version.split('.')[0]}"


def xcb_plugin() -> Path | None:
    import PySide6
    path = Path(PySide6.__file__).parent / "Qt" / "plugins" / "platforms" / "libqxcb.so"
    return path if path.is_file() else None


def missing_libraries(plugin: Path) -> list[str]:
    """The shared libraries `plugin` needs that the system lacks (ldd where there is one,
    else the first the dynamic loader names)."""
    if shutil.which("ldd"):
        try:
            out = subprocess.run(["ldd", str(plugin)], capture_output=True, text=True, timeout=20).stdout
        except (OSError, subprocess.SubprocessError):
            out = ""
        missing = [line.split("=>")[0].strip() for line in out.splitlines() if "not found" in line]
        return list(dict.fromkeys(missing))
    try:
        ctypes.CDLL(str(plugin), mode=os.RTLD_LAZY)
    except OSError as e:    # "libxcb-icccm.so.4: cannot open shared object file: ..."
        first = str(e).split(":")[0].strip()
        return [first] if ".so" in first else []
    return []


def display_problem(environ=os.environ, platform: str = sys.platform, scripted: bool = False) -> str | None:
    """One sentence on why no window can open here, or None. `scripted` (a screenshot run)
    falls back to Qt's offscreen platform when there is no display, instead of failing."""
    if environ.get("QT_QPA_PLATFORM") or not platform.startswith("linux"):
        return None       # someone chose the platform, or it is not X11/Wayland: Qt decides
    if not environ.get("DISPLAY") and not environ.get("WAYLAND_DISPLAY"):
        if scripted:
            environ["QT_QPA_PLATFORM"] = "offscreen"
            return None
        return ("There is no display to open the window on (neither DISPLAY nor WAYLAND_DISPLAY is set): "
                "run zoomviewer in a desktop session, or use `zoomviewer upscale`, or "
                "`zoomviewer view --screenshot FILE`, which need none.")
    if environ.get("WAYLAND_DISPLAY"):
        return None
    plugin = xcb_plugin()
    missing = missing_libraries(plugin) if plugin is not None else []
    if missing:
        packages = " ".join(debian_package(m) for m in missing)
        return (f"The window cannot open: Qt's X11 support needs {', '.join(missing)}, which this system "
                f"lacks; on Debian or Ubuntu: sudo apt-get install {packages}")
    return None
