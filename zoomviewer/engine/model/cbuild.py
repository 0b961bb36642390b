"""Building the engine's C sources (fast_kernel.c, winograd_conv.c) with the system C
compiler (`cc`, or $CC), once per machine, into a cache folder, and loading them with
ctypes (which lets go of the GIL while a C function runs, so threads compute in parallel).

The cache folder is $ZOOMVIEWER_CACHE_DIR/native, else $XDG_CACHE_HOME/zoomviewer/native,
else ~/.cache/zoomviewer/native (tests point ZOOMVIEWER_CACHE_DIR at a temporary folder).
A build's name is the source's name and a hash of what it was built from and for: the
source, the flags, the compiler, the CPU. A cache shared by several machines (a home
folder on NFS), or by two installations, holds a build for each, and no build is deleted
for another's sake (a build is ~20 KB; deleting the others' would have each rebuild on
every start).

Nothing depends on a build: `enabled()` is False with ZOOMVIEWER_NATIVE=0 or off Linux,
and every caller has a torch path for when a build cannot be had.
"""

from __future__ import annotations

import ctypes
import hashlib
import logging
import os
import platform
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger(__name__)

# -march=native where the compiler knows it, else the compiler's baseline
NATIVE_ARCHES = (["-march=native"], [])


def enabled() -> bool:
    """Whether C builds may be used at all here."""
    return os.environ.get("ZOOMVIEWER_NATIVE", "1") != "0" and sys.platform.startswith("linux")


def cache_dir() -> Path:
    """The folder of the builds (see the module docstring)."""
    own = os.environ.get("ZOOMVIEWER_CACHE_DIR")
    if own:
        return Path(own) / "native"
    root = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(root) / "zoomviewer" / "native"


def cpu_signature() -> str:
    """The instruction sets a -march=native build may use: a cache shared by two
    machines must not hand one the other's build."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith(("flags", "Features")):
                    return line
    except OSError:
        pass
    return platform.processor()


def find_compiler() -> str | None:
    """The C compiler a build uses: $CC, else cc or gcc on the PATH."""
    return os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")


def build_path(source: Path, flags: list[str], compiler: str, arch: str | None = None) -> Path:
    """Where the build of `source` with `flags` by `compiler` for this CPU lives (with
    `arch`, a named other build of it, beside it)."""
    key = hashlib.sha256()
    for part in (source.read_bytes(), " ".join(flags).encode(), compiler.encode(),
                 platform.machine().encode(), cpu_signature().encode()):
        key.update(part)
    return cache_dir() / f"{source.stem}-{key.hexdigest()[:16]}{'' if arch is None else '-' + arch}.so"


def compile_source(compiler: str, source: Path, flags: list[str], target: Path,
                   arches=NATIVE_ARCHES) -> bool:
    """Build `source` into `target` (atomically: other processes may be loading it), for
    the first of `arches` the compiler takes. Other builds in the folder stay: they may be
    other machines' or installations'."""
    target.parent.mkdir(parents=True, exist_ok=True)
    for arch in arches:
        fd, tmp = tempfile.mkstemp(suffix=".so", dir=target.parent)
        os.close(fd)
        try:
            done = subprocess.run([compiler, *flags, *arch, "-o", tmp, str(source)],
                                  capture_output=True, text=True, timeout=120)
            if done.returncode == 0:
                os.replace(tmp, target)
                return True
            log.info("building %s with %s %s failed: %s", source.name, compiler, arch, done.stderr.strip()[:500])
        except (OSError, subprocess.SubprocessError) as e:
            log.info("building %s failed: %s", source.name, e)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
    return False


def open_build(target: Path, compile_to: Callable[[Path], bool], symbol: str) -> ctypes.CDLL | None:
    """The build at `target`, made by `compile_to(target)` where it is missing; None where
    it cannot be built or does not export `symbol`."""
    for attempt in range(2):  # a cached build that does not load (a broken file) is built again, once
        if not target.exists() and not compile_to(target):
            return None
        try:
            lib = ctypes.CDLL(str(target))
            getattr(lib, symbol)
            return lib
        except (OSError, AttributeError) as e:
            log.info("the cached build %s did not load (%s)%s", target.name, e, "" if attempt else "; building it again")
            target.unlink(missing_ok=True)
    return None
