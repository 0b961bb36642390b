"""The fast decoder's fused per-query kernel (fast_kernel.c), built for this machine.

On the CPU the torch path makes ~20 passes over memory per query (a layer, a blend, a
copy at a time); the kernel keeps each pixel's four ensemble members in registers from
the code table to the colour (docs/LIIF.md section 6). It is compiled once with the
system C compiler (`cc`, or $CC) into a cache folder and loaded with ctypes, which lets go
of the GIL while it runs, so tiles decode in parallel threads.

Builds are compiled, cached and loaded by cbuild.py (the cache folder, one build per
source, flags, compiler and CPU).

Nothing depends on it: without a compiler, on another device or dtype, for another
decoder width, or with ZOOMVIEWER_NATIVE=0, `fast_kernel()` is None and the renderer
takes the torch path. Both paths are held to the decoder's plain formulation by tests.
`reset()` forgets the loaded build, so that the next `library()` looks again.
`build(arch)` makes the other builds the bench times side by side (ARCHES: this CPU's,
x86-64-v3 for AVX2 + FMA desktops, the compiler's baseline); `fast_kernel()` uses the faster
of this CPU's and the x86-64-v3 build, timed once per process (`chosen_build`).
"""

from __future__ import annotations

import ctypes
import logging
import platform
import threading
import time
from pathlib import Path

import numpy as np
import torch

from .. import ensemble
from . import cbuild
from .cbuild import find_compiler

log = logging.getLogger(__name__)

SOURCE = Path(__file__).with_name("fast_kernel.c")
_lock = threading.Lock()
_state: dict[str, object] = {}


def build_flags() -> list[str]:
    """The compiler flags of a build (besides -march): the kernel's constants come from
    the Python rules (fast_kernel.c refuses to build without them)."""
    return ["-O3", "-fPIC", "-shared", "-fno-math-errno", "-std=gnu11", f"-DAREA_EPS={ensemble.AREA_EPS!r}f"]


def _compile(compiler: str, target: Path, arches=cbuild.NATIVE_ARCHES) -> bool:
    return cbuild.compile_source(compiler, SOURCE, build_flags(), target, arches)


def build_path(compiler: str, arch: str | None = None) -> Path:
    """Where the build for this source, these flags, compiler and CPU lives (the one the
    renderer loads; or, with `arch`, the build for ARCHES[arch])."""
    return cbuild.build_path(SOURCE, build_flags(), compiler, arch)


def _load() -> ctypes.CDLL | None:
    if not cbuild.enabled():
        return None
    compiler = find_compiler()
    if compiler is None:
        log.info("no C compiler: the fast decoder runs on torch ops")
        return None
    try:
        return _open(build_path(compiler), lambda target: _compile(compiler, target))
    except OSError as e:  # no source, an unwritable cache
        log.info("the fast kernel could not be built: %s", e)
        return None


def _open(target: Path, compile_to) -> ctypes.CDLL | None:
    """The build at `target`, made by `compile_to(target)` where it is missing, with the
    kernel's argument types set."""
    lib = cbuild.open_build(target, compile_to, "fast_decode")
    if lib is None:
        return None
    f = lib.fast_decode
    f.restype = ctypes.c_int
    p, i, s = ctypes.c_void_p, ctypes.c_int, ctypes.c_ssize_t
    f.argtypes = [p, s, s, s, i, i, p, p, p, p, i, p, p, i, p, p, i, i, ctypes.POINTER(_Residual), p]
    return lib


# The builds the bench times side by side: for this CPU, for AVX2 + FMA (x86-64-v3, what most
# desktops have), and for the compiler's baseline (SSE2 on x86-64).
ARCHES = {"native": ["-march=native"], "x86-64-v3": ["-march=x86-64-v3"], "generic": []}
_V3_FLAGS = {"avx2", "fma", "bmi1", "bmi2", "f16c", "movbe", "abm"}


def build(arch: str) -> ctypes.CDLL | None:
    """The kernel built for ARCHES[arch] and cached beside the renderer's build, or None
    where it cannot be built or this CPU cannot run it (x86-64-v3 without AVX2 + FMA)."""
    compiler = find_compiler()
    if compiler is None or not cbuild.enabled():
        return None
    if arch == "x86-64-v3" and not (platform.machine() in ("x86_64", "AMD64")
                                    and _V3_FLAGS <= set(cbuild.cpu_signature().split())):
        return None
    try:
        return _open(build_path(compiler, arch), lambda target: _compile(compiler, target, [ARCHES[arch]]))
    except OSError as e:
        log.info("the fast kernel for %s could not be built: %s", arch, e)
        return None


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


def reset() -> None:
    """Forget the loaded kernel: the next library() call looks for a build again, under
    the environment of then (ZOOMVIEWER_NATIVE, CC, the cache folder)."""
    with _lock:
        _state.clear()


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

    def decode(self, table: torch.Tensor, row_code, row_rel, col_code, col_rel, out: torch.Tensor,
               base=None) -> None:
        """table (P, h, w, K) fp32, the code table part by part (any strides, each part's
        K units contiguous); row_code/row_rel (A, R) and col_code/col_rel (A, C): each
        member's code index into the table and its rel_coord (A = 2 with the local
        ensemble, else 1); out (R, C, 3) fp32 contiguous receives the colours in [0, 1].
        `base`, for the residual option: (src (3, h, w), rows (2, R), row weights (R,),
        cols (2, C), col weights (C,)), the bilinear base's source window and, per output
        row and column, the two source rows / columns (in the window) and the weight of
        the second. Arrays are numpy or CPU tensors.

        The C code reads raw memory, so every array it reads is checked here first: a
        wrong shape, dtype or layout is a ValueError, an index outside the table or the
        window an IndexError."""
        _check_tensor("the code table", table, 4)
        if tuple(table.shape[::3]) != (1 + 2 * self.depth, self.width) or table.stride(3) != 1:
            raise ValueError(f"the code table must be ({1 + 2 * self.depth}, h, w, {self.width}) with each part's "
                             f"units contiguous, not {tuple(table.shape)} with strides {table.stride()}")
        row_code, col_code = _as_array("the row codes", row_code), _as_array("the column codes", col_code)
        if row_code.ndim != 2 or col_code.ndim != 2 or row_code.shape[0] not in (1, 2) \
                or col_code.shape[0] != row_code.shape[0]:
            raise ValueError(f"row and column codes must be (members, rows) and (members, columns) with 1 or 2 "
                             f"members, the same on both axes, not {row_code.shape} and {col_code.shape}")
        (members, rows), cols = row_code.shape, col_code.shape[1]
        if max(rows, cols) >= 2**30:
            raise ValueError("the kernel counts rows and columns in C ints: there must be fewer than 2**30 of each")
        rc = _index("the row codes", row_code, (members, rows), table.shape[1])
        cc = _index("the column codes", col_code, (members, cols), table.shape[2])
        rr = _values("the rows' rel_coords", row_rel, (members, rows))
        cr = _values("the columns' rel_coords", col_rel, (members, cols))
        _check_tensor("the output", out, 3)
        if not out.is_contiguous() or tuple(out.shape) != (rows, cols, 3):
            raise ValueError(f"the output must be a contiguous ({rows}, {cols}, 3) tensor, not {tuple(out.shape)}"
                             + ("" if out.is_contiguous() else " with gaps"))
        keep = [rc, rr, cc, cr]
        residual = _Residual()
        if base is not None:
            keep += self._residual_inputs(base, rows, cols)
            src, by, bty, bx, btx = keep[4:]
            residual = _Residual(src.data_ptr(), src.stride(0), src.stride(1), src.shape[2], by.ctypes.data,
                                 bty.ctypes.data, bx.ctypes.data, btx.ctypes.data)
        ps, rs, cs, _ = table.stride()
        status = self._f(table.data_ptr(), ps, rs, cs, self.width, self.depth,
                         self.w_rel.data_ptr(), self.w_cols.data_ptr(), self.w_out.data_ptr(),
                         self.b_out.data_ptr(), members, rc.ctypes.data, rr.ctypes.data,
                         members, cc.ctypes.data, cr.ctypes.data, rows, cols,
                         ctypes.byref(residual), out.data_ptr())
        del keep
        if status == 2:
            raise MemoryError("no memory for the fast kernel's row buffer")
        if status != 0:
            raise ValueError("the fast kernel was not built for this decoder's layout")

    @staticmethod
    def _residual_inputs(base, rows: int, cols: int) -> list:
        """The residual base's arrays, checked against the output's rows and columns and
        the source window, as the C code reads them."""
        src, by, bty, bx, btx = base
        _check_tensor("the residual's source window", src, 3)
        if src.shape[0] != 3 or (src.stride(2) != 1 and src.shape[2] > 1):
            raise ValueError(f"the residual's source window must be (3, h, w) with contiguous rows, "
                             f"not {tuple(src.shape)} with strides {src.stride()}")
        return [src,
                _index("the residual's source rows", by, (2, rows), src.shape[1]),
                _values("the residual's row weights", bty, (rows,)),
                _index("the residual's source columns", bx, (2, cols), src.shape[2]),
                _values("the residual's column weights", btx, (cols,))]


def _check_tensor(name: str, t: torch.Tensor, dims: int) -> None:
    if not isinstance(t, torch.Tensor) or t.device.type != "cpu" or t.dtype != torch.float32 or t.dim() != dims:
        raise ValueError(f"{name} must be a {dims}-d float32 CPU tensor")


def _as_array(name: str, a) -> np.ndarray:
    if isinstance(a, torch.Tensor):
        if a.device.type != "cpu":
            raise ValueError(f"{name} must be on the CPU")
        return a.numpy()
    return np.asarray(a)


def _index(name: str, a, shape: tuple[int, ...], size: int) -> np.ndarray:
    """An index array the kernel reads: `shape`, integers in [0, size) -> int32, contiguous."""
    a = _as_array(name, a)
    if a.shape != shape:
        raise ValueError(f"{name} must be {shape}, not {a.shape}")
    if a.dtype.kind not in "iu":
        raise ValueError(f"{name} must be integers, not {a.dtype}")
    if a.size and (a.min() < 0 or a.max() >= size):
        raise IndexError(f"{name} must lie in [0, {size}), not [{a.min()}, {a.max()}]")
    return np.ascontiguousarray(a, dtype=np.int32)


def _values(name: str, a, shape: tuple[int, ...]) -> np.ndarray:
    """A value array the kernel reads: `shape`, real numbers -> float32, contiguous."""
    a = _as_array(name, a)
    if a.shape != shape:
        raise ValueError(f"{name} must be {shape}, not {a.shape}")
    if a.dtype.kind != "f":
        raise ValueError(f"{name} must be floating point, not {a.dtype}")
    return np.ascontiguousarray(a, dtype=np.float32)


def view_inputs(model, rows: int, cols: int, scale: float, seed: int = 0) -> dict:
    """FastKernel.decode's arguments for `rows` x `cols` output pixels of a view at `scale`:
    a random code table of the source block those pixels read, each pixel's two members
    per axis (their code indices and rel_coords as the renderer computes them), and the
    residual base's window."""
    rng = np.random.default_rng(seed)
    h, w = int(np.ceil(rows / scale)) + 2, int(np.ceil(cols / scale)) + 2

    def axis(n: int, size: int):
        c = (np.arange(n) + 0.5) / scale - 0.5              # source coordinate of each pixel centre
        lo = np.clip(np.floor(c).astype(np.int64), 0, size - 2)
        code = np.stack([lo, lo + 1]).astype(np.int32)
        rel = np.stack([c - lo, c - lo - 1]).astype(np.float32) * 2.0 / size
        return code, rel, (c - lo).astype(np.float32)

    rc, rr, rt = axis(rows, h)
    cc, cr, ct = axis(cols, w)
    table = torch.from_numpy(rng.standard_normal((1 + 2 * model.depth, h, w, model.width), dtype=np.float32))
    base = (torch.from_numpy(rng.random((3, h, w), dtype=np.float32)), rc, rt, cc, ct)
    return {"table": table, "row_code": rc, "row_rel": rr, "col_code": cc, "col_rel": cr,
            "out": torch.empty(rows, cols, 3), "base": base if model.residual else None}


def decode_with(lib, model, inputs: dict) -> torch.Tensor:
    """The colours one build decodes for `inputs` (view_inputs)."""
    a = inputs
    FastKernel(lib, model).decode(a["table"], a["row_code"], a["row_rel"], a["col_code"], a["col_rel"],
                                  a["out"], a["base"])
    return a["out"].clone()


# Which of this CPU's builds the renderer uses: the faster of two, timed on the first model.
# Tuning for the CPU made the kernel 1.3-1.5x slower on a 2-core AMD EPYC with AVX2 (gcc 12's
# znver3 tuning: 520-637 ns per pixel, against 403-426 for the x86-64-v3 build), while on an
# AVX-512 EPYC the native build took 110 ns and x86-64-v3 223. No fixed choice is right.
CANDIDATES = ("native", "x86-64-v3")


def _time_build(lib, model, inputs: dict) -> float:
    t = time.perf_counter()
    decode_with(lib, model, inputs)
    return time.perf_counter() - t


def chosen_build(model) -> tuple[str, ctypes.CDLL] | None:
    """(name, library) of the faster of CANDIDATES for `model` on this CPU, measured once
    per process on a small view band (about 0.1 s), or None without a build."""
    with _lock:
        if "chosen" in _state:
            return _state["chosen"]  # type: ignore[return-value]
    own = library()
    choice = None
    if own is not None:
        builds = {"native": own, **{arch: lib for arch in CANDIDATES[1:] if (lib := build(arch)) is not None}}
        inputs = view_inputs(model, 32, 640, 4.0)
        times = {k: float("inf") for k in builds}
        for _ in range(3):   # interleaved, the best of three: this VM's timings vary by +-20 %
            for k, lib in builds.items():
                times[k] = min(times[k], _time_build(lib, model, inputs))
        name = min(times, key=times.get)
        choice = (name, builds[name])
        log.info("fused kernel: the %s build (%s)", name, ", ".join(f"{k} {v * 1e3:.1f} ms" for k, v in times.items()))
    with _lock:
        _state.setdefault("chosen", choice)
        return _state["chosen"]  # type: ignore[return-value]


def fast_kernel(model, device: torch.device) -> FastKernel | None:
    """The fused kernel for `model` on `device`, or None where the torch path must run:
    not a fast decoder, not the CPU, a width the kernel was not built for, or no build."""
    if device.type != "cpu" or getattr(model, "kind", None) != "fast" or model.width != 16:
        return None
    if next(model.parameters()).dtype != torch.float32:
        return None
    chosen = chosen_build(model)
    return None if chosen is None else FastKernel(chosen[1], model)
