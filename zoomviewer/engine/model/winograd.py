"""EDSR-baseline's encoding on the CPU with its body's 32 convolutions done by Winograd's
F(2x2, 3x3) in C (winograd_conv.c): 2.25x fewer multiply-adds than the direct
convolution oneDNN runs, which on an AVX2-only CPU made the encoder the wall between a
new user and the first sharp view (issue 13; docs/ARCHITECTURE.md, "winograd").

The head (3 -> 64 channels, 0.4 % of the work) stays a torch convolution. The body runs
on three padded channels-last fp32 buffers (the head's output, the running activation and
a temporary); each convolution is split by tile rows over threads (ctypes lets go of the
GIL), joined before the next. `WinogradEncoder.encode(x, step)` equals
`EDSRBaseline.encode` up to fp32 rounding (tests/test_winograd.py holds it to 1e-5 of the
features' scale) and tells `step` after every block, as the torch path does, so progress
and cancellation between blocks work the same.

`winograd_encoder(encoder, device)` is None where it cannot run: not the CPU, not a
64-channel EDSR-baseline in fp32, no C compiler or ZOOMVIEWER_NATIVE=0 (cbuild.py). Whether
it runs when it can is measured, not assumed (layout.py).
"""

from __future__ import annotations

import ctypes
import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import torch

from . import cbuild
from .encoders import EDSRBaseline

log = logging.getLogger(__name__)

SOURCE = Path(__file__).with_name("winograd_conv.c")
FLAGS = ["-O3", "-fPIC", "-shared", "-fno-math-errno", "-std=gnu11"]
CHANNELS = 64
# F(2x2, 3x3)'s filter transform; the input and output transforms are written out in C
_G = torch.tensor([[1.0, 0.0, 0.0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0.0, 0.0, 1.0]], dtype=torch.float64)
_lock = threading.Lock()
_state: dict[str, object] = {}


def _load() -> ctypes.CDLL | None:
    if not cbuild.enabled():
        return None
    compiler = cbuild.find_compiler()
    if compiler is None:
        return None
    try:
        lib = cbuild.open_build(cbuild.build_path(SOURCE, FLAGS, compiler),
                                lambda target: cbuild.compile_source(compiler, SOURCE, FLAGS, target),
                                "winograd_conv")
    except OSError as e:  # no source, an unwritable cache
        log.info("the Winograd convolution could not be built: %s", e)
        return None
    if lib is None:
        return None
    p, i = ctypes.c_void_p, ctypes.c_int
    lib.winograd_conv.restype = ctypes.c_int
    lib.winograd_conv.argtypes = [p, p, p, i, i, p, p, i, i, i, p]
    lib.winograd_scratch_floats.restype = ctypes.c_long
    lib.winograd_scratch_floats.argtypes = []
    return lib


def library() -> ctypes.CDLL | None:
    """The built convolution, or None where it cannot be had (built on the first call)."""
    with _lock:
        if "lib" not in _state:
            _state["lib"] = _load()
        return _state["lib"]  # type: ignore[return-value]


def reset() -> None:
    """Forget the loaded build: the next library() looks again, under the environment of then."""
    with _lock:
        _state.clear()


def _pool(workers: int) -> ThreadPoolExecutor:
    """The threads that run a convolution's other parts, shared by every encoder (grown,
    never shrunk, to the most workers asked for)."""
    with _lock:
        if _state.get("pool_workers", 0) < workers:
            _state["pool"] = ThreadPoolExecutor(workers, thread_name_prefix="winograd")
            _state["pool_workers"] = workers
        return _state["pool"]  # type: ignore[return-value]


def filter_transform(weight: torch.Tensor) -> torch.Tensor:
    """U = G g G^T of a (K, C, 3, 3) convolution weight, as (16, C, K): position p = 4i + j
    of the 4x4 transform, then input channel, then output channel (the C product's B
    operand). Computed in float64, stored in float32."""
    u = torch.einsum("ia,kcab,jb->ijck", _G, weight.detach().double(), _G)
    return u.reshape(16, weight.shape[1], weight.shape[0]).float().contiguous()


class _Conv:
    """One body convolution's transformed filter and bias, as the C code reads them."""

    def __init__(self, conv: torch.nn.Conv2d) -> None:
        self.u = filter_transform(conv.weight)
        self.bias = conv.bias.detach().float().contiguous()


class WinogradEncoder:
    """An EDSRBaseline's encoding with the body in C. The weights are read once, here: a
    changed encoder needs a new WinogradEncoder."""

    def __init__(self, lib: ctypes.CDLL, encoder: EDSRBaseline, threads: int | None = None) -> None:
        self._f = lib.winograd_conv
        self._scratch_floats = int(lib.winograd_scratch_floats())
        self.head = encoder.head
        with torch.no_grad():
            self.blocks = [(_Conv(b.body[0]), _Conv(b.body[2])) for b in encoder.body[:-1]]
            self.last = _Conv(encoder.body[-1])
        self.threads = max(1, threads or torch.get_num_threads())
        self._scratch = threading.local()

    def _scratches(self) -> list[torch.Tensor]:
        """Each calling thread's own scratch, one per worker (encodes may run at once)."""
        if getattr(self._scratch, "bufs", None) is None:
            self._scratch.bufs = [torch.empty(self._scratch_floats) for _ in range(self.threads)]
        return self._scratch.bufs

    def _conv(self, src: torch.Tensor, dst: torch.Tensor, res: torch.Tensor | None, conv: _Conv,
              relu: bool, h: int, w: int) -> None:
        rows = (h + 1) // 2
        parts = min(self.threads, rows)
        cuts = [rows * k // parts for k in range(parts + 1)]
        scratch = self._scratches()
        args = (src.data_ptr(), dst.data_ptr(), None if res is None else res.data_ptr(), h, w,
                conv.u.data_ptr(), conv.bias.data_ptr(), int(relu))

        def run(k: int) -> int:
            return self._f(*args, cuts[k], cuts[k + 1], scratch[k].data_ptr())

        later = [_pool(parts - 1).submit(run, k) for k in range(1, parts)]
        status = [run(0)] + [f.result() for f in later]
        if any(status):
            raise ValueError(f"the Winograd convolution refused a {h}x{w} image")

    @torch.no_grad()
    def encode(self, x: torch.Tensor, step=None) -> torch.Tensor:
        """x (1, 3, h, w) normalised, on the CPU -> the latent (1, 64, h, w), contiguous;
        `step(fraction)` is told after each of the body's blocks (and may raise to cancel)."""
        if x.shape[0] != 1:
            return torch.cat([self.encode(x[i:i + 1], step) for i in range(x.shape[0])])
        head = self.head(x.float())[0]
        h, w = head.shape[1:]
        padded = [torch.zeros(h + 3, w + 3, CHANNELS) for _ in range(3)]
        first, run, temp = padded
        first[1:h + 1, 1:w + 1] = head.permute(1, 2, 0)
        del head
        run.copy_(first)
        n = len(self.blocks) + 1
        for k, (a, b) in enumerate(self.blocks, 1):
            self._conv(run, temp, None, a, True, h, w)
            self._conv(temp, run, run, b, False, h, w)    # x + body(x), in place
            if step is not None:
                step(k / n)
        self._conv(run, temp, first, self.last, False, h, w)  # head + body(head)
        if step is not None:
            step(1.0)
        return temp[1:h + 1, 1:w + 1].permute(2, 0, 1)[None].contiguous()

    __call__ = encode


def winograd_encoder(encoder: torch.nn.Module, device: torch.device) -> WinogradEncoder | None:
    """The C encoding of `encoder` on `device`, or None where only torch can run it."""
    if torch.device(device).type != "cpu" or not isinstance(encoder, EDSRBaseline):
        return None
    if encoder.out_dim != CHANNELS or encoder.head[0].weight.dtype != torch.float32:
        return None
    lib = library()
    return None if lib is None else WinogradEncoder(lib, encoder)
