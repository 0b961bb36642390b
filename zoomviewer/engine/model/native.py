"""The fast decoder's fused per-query kernel (fast_kernel.c), built for this machine.

On the CPU the torch path makes ~20 passes over memory per query (a layer, a blend, a
copy at a time); the kernel keeps each pixel's four ensemble members in registers from
the table to the colour. It is compiled once with the system C compiler (`cc`, or $CC)
into the user's cache folder and loaded with ctypes, which lets go of the GIL while it
runs, so tiles decode in parallel threads.

Nothing depends on it: without a compiler, on another device or dtype, for another
decoder width, or with ZOOMVIEWER_NATIVE=0, `fast_kernel()` is None and the renderer
takes the torch path. Both paths are held to the decoder's plain formulation by tests.
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
import threading
from pathlib import Path

import numpy as np
import torch

log = logging.getLogger(__name__)

SOURCE = Path(__file__).with_name("fast_kernel.c")
_FLAGS = ["-O3", "-fPIC", "-shared", "-fno-math-errno", "-std=gnu11"]
_lock = threading.Lock()
_state: dict[str, object] = {}


def _cache_dir() -> Path:
    root = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(root) / "zoomviewer" / "native"


def _cpu_signature() -> str:
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


def _compile(compiler: str, target: Path) -> bool:
    """Build the kernel into `target` (atomically: other processes may be loading it)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    for arch in (["-march=native"], []):
        fd, tmp = tempfile.mkstemp(suffix=".so", dir=target.parent)
        os.close(fd)
        try:
            done = subprocess.run([compiler, *_FLAGS, *arch, "-o", tmp, str(SOURCE)],
                                  capture_output=True, text=True, timeout=120)
            if done.returncode == 0:
                os.replace(tmp, target)
                for old in target.parent.glob("fast_kernel-*.so"):  # builds of older sources
                    if old != target:
                        old.unlink(missing_ok=True)
                return True
            log.info("building the fast kernel with %s %s failed: %s", compiler, arch, done.stderr.strip()[:500])
        except (OSError, subprocess.SubprocessError) as e:
            log.info("building the fast kernel failed: %s", e)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
    return False


def _compiler() -> str | None:
    return os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")


def build_path(compiler: str) -> Path:
    """Where the build for this source, compiler and CPU lives."""
    key = hashlib.sha256()
    for part in (SOURCE.read_bytes(), " ".join(_FLAGS).encode(), compiler.encode(),
                 platform.machine().encode(), _cpu_signature().encode()):
        key.update(part)
    return _cache_dir() / f"fast_kernel-{key.hexdigest()[:16]}.so"


def _load() -> ctypes.CDLL | None:
    if os.environ.get("ZOOMVIEWER_NATIVE", "1") == "0" or not sys.platform.startswith("linux"):
        return None
    compiler = _compiler()
    if compiler is None:
        log.info("no C compiler: the fast decoder runs on torch ops")
        return None
    lib = None
    try:
        target = build_path(compiler)
        for attempt in range(2):  # a cached build that does not load (a broken file) is built again, once
            if not target.exists() and not _compile(compiler, target):
                return None
            try:
                lib = ctypes.CDLL(str(target))
                f = lib.fast_decode
                break
            except (OSError, AttributeError) as e:
                log.info("the cached fast kernel did not load (%s)%s", e, "" if attempt else "; building it again")
                target.unlink(missing_ok=True)
                lib = None
    except OSError as e:  # no source, an unwritable cache
        log.info("the fast kernel could not be built: %s", e)
        return None
    if lib is None:
        return None
    f.restype = ctypes.c_int
    p, i, s = ctypes.c_void_p, ctypes.c_int, ctypes.c_ssize_t
    f.argtypes = [p, s, s, s, i, i, p, p, p, p, i, p, p, i, p, p, i, i, ctypes.POINTER(_Residual), p]
    return lib


class _Residual(ctypes.Structure):
    """fast_kernel.c's struct residual."""
    _fields_ = [("src", ctypes.c_void_p), ("channel_stride", ctypes.c_ssize_t), ("row_stride", ctypes.c_ssize_t),
                ("width", ctypes.c_ssize_t),
                ("y", ctypes.c_void_p), ("ty", ctypes.c_void_p), ("x", ctypes.c_void_p), ("tx", ctypes.c_void_p)]


def library() -> ctypes.CDLL | None:
    """The built kernel, or None where it cannot be had (built on the first call)."""
    with _lock:
        if "lib" not in _state:
            _state["lib"] = _load()
        return _state["lib"]  # type: ignore[return-value]


class FastKernel:
    """The fused decode for one FastLIIF, its weights laid out for the kernel."""

    def __init__(self, lib: ctypes.CDLL, model) -> None:
        self._f = lib.fast_decode
        c, k = model.code_dim, model.width
        self.width, self.depth = k, model.depth
        with torch.no_grad():
            self.w_rel = model.render_in.weight[:, c:c + 2].float().contiguous()
            cols = [m.weight.t() for m in model.render_hidden] or [torch.zeros(k, k)]
            self.w_cols = torch.stack(cols).float().contiguous()
            self.w_out = model.render_out.weight.float().contiguous()
            self.b_out = model.render_out.bias.float().contiguous()

    def decode(self, planes: torch.Tensor, row_code: np.ndarray, row_rel: np.ndarray,
               col_code: np.ndarray, col_rel: np.ndarray, out: torch.Tensor, base=None) -> None:
        """planes (P, h, w, K) fp32 (any strides, K contiguous); row_code/row_rel (A, R)
        and col_code/col_rel (B, C): each member's code index into the planes and its
        rel_coord; out (R, C, 3) fp32 contiguous receives the colours in [0, 1].
        `base`, for the residual option: (src (3, h, w), rows (2, R), row weights (R,),
        cols (2, C), col weights (C,)), the bilinear base's source window and, per output
        row and column, the two source rows / columns (in the window) and the weight of
        the second."""
        rc, rr = _ints(row_code), _floats(row_rel)
        cc, cr = _ints(col_code), _floats(col_rel)
        for t in (planes, out):
            if t.device.type != "cpu" or t.dtype != torch.float32:
                raise ValueError("the fast kernel works on float32 CPU tensors")
        if planes.dim() != 4 or tuple(planes.shape[::3]) != (1 + 2 * self.depth, self.width) or planes.stride(3) != 1:
            raise ValueError("the table must be (parts, h, w, width) with each part's units contiguous")
        if not out.is_contiguous() or tuple(out.shape) != (rc.shape[1], cc.shape[1], 3):
            raise ValueError("the kernel writes a contiguous (rows, columns, 3) output")
        if rr.shape != rc.shape or cr.shape != cc.shape:
            raise ValueError("each code index needs its rel_coord")
        _check_range(rc, planes.shape[1])
        _check_range(cc, planes.shape[2])
        keep = [rc, rr, cc, cr]
        residual = _Residual()
        if base is not None:
            src, by, bty, bx, btx = base
            if src.dtype != torch.float32 or src.device.type != "cpu" or src.shape[0] != 3 or src.stride(2) != 1:
                raise ValueError("the residual's source window must be (3, h, w) with contiguous rows")
            by, bty, bx, btx = _ints(by), _floats(bty), _ints(bx), _floats(btx)
            _check_range(by, src.shape[1])
            _check_range(bx, src.shape[2])
            keep += [src, by, bty, bx, btx]
            residual = _Residual(src.data_ptr(), src.stride(0), src.stride(1), src.shape[2], by.ctypes.data, bty.ctypes.data,
                                 bx.ctypes.data, btx.ctypes.data)
        ps, rs, cs, _ = planes.stride()
        status = self._f(planes.data_ptr(), ps, rs, cs, self.width, self.depth,
                         self.w_rel.data_ptr(), self.w_cols.data_ptr(), self.w_out.data_ptr(),
                         self.b_out.data_ptr(), rc.shape[0], rc.ctypes.data, rr.ctypes.data,
                         cc.shape[0], cc.ctypes.data, cr.ctypes.data, rc.shape[1], cc.shape[1],
                         ctypes.byref(residual), out.data_ptr())
        del keep
        if status == 2:
            raise MemoryError("no memory for the fast kernel's row buffer")
        if status != 0:
            raise ValueError("the fast kernel was not built for this decoder's layout")


def _ints(a) -> np.ndarray:
    return np.ascontiguousarray(a.numpy() if isinstance(a, torch.Tensor) else a, dtype=np.int32)


def _floats(a) -> np.ndarray:
    return np.ascontiguousarray(a.numpy() if isinstance(a, torch.Tensor) else a, dtype=np.float32)


def _check_range(index: np.ndarray, size: int) -> None:
    """The kernel reads raw memory: an index outside the array is an error here."""
    if index.size and (index.min() < 0 or index.max() >= size):
        raise IndexError("an index falls outside the table or the source window")


def fast_kernel(model, device: torch.device) -> FastKernel | None:
    """The fused kernel for `model` on `device`, or None where the torch path must run:
    not a fast decoder, not the CPU, a width the kernel was not built for, or no build."""
    if device.type != "cpu" or getattr(model, "kind", None) != "fast" or model.width != 16:
        return None
    if next(model.parameters()).dtype != torch.float32:
        return None
    lib = library()
    return None if lib is None else FastKernel(lib, model)
