"""The encoders' 3x3 convolutions on the CPU by Winograd's minimal filtering in C
(winograd_conv.c): F(4x4, 3x3) by default, 4x fewer multiply-adds than the direct
convolution oneDNN runs (F(2x2, 3x3): 2.25x), which on an AVX2-only CPU made the encoder
the wall between a new user and the first sharp view (issue 13; docs/ARCHITECTURE.md,
"winograd"). On a 512 px encode with AVX2 kernels, the fast model's encoder took 11.4 s/MP
by F(2x2) and 7.0 by F(4x4) (16.8 in oneDNN's channels-last); the preview's 1.40 and 1.08
(1.39 channels-last).

For EDSR-baseline (the fast model's; any width the build's vectors divide, up to 64) and
the preview encoder: the head (3 -> C channels, 0.4 % of the work) stays a torch
convolution; the body, and the preview's projection to the latent, run on padded
channels-last fp32 buffers (the head's output, the running activation and a temporary);
each convolution is split by tile rows over threads (ctypes lets go of the GIL), joined
before the next. `WinogradEncoder.encode(x, step)` equals the encoder's `encode` up to fp32
rounding (tests/test_winograd.py holds the latent to 1e-5 of its scale, and the shipped
models' colours to 1e-5) and tells `step` after every block, as the torch path does, so
progress and cancellation between blocks work the same.

`winograd_encoder(encoder, device)` is None where it cannot run: not the CPU, not one of
those encoders in fp32, channel counts the build cannot do, no C compiler or
ZOOMVIEWER_NATIVE=0 (cbuild.py). Whether it runs when it can is measured, not assumed
(layout.py).
"""

from __future__ import annotations

import ctypes
import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import torch

from . import cbuild
from .encoders import EDSRBaseline, PreviewEncoder

log = logging.getLogger(__name__)

SOURCE = Path(__file__).with_name("winograd_conv.c")
FLAGS = ["-O3", "-fPIC", "-shared", "-fno-math-errno", "-std=gnu11"]
MAX_CHANNELS = 64
PAD = 5                       # the C code's buffers: (h + PAD) x (w + PAD) pixels, image at (1, 1)
# The filter transforms G of F(2x2, 3x3) and F(4x4, 3x3) (Lavin and Gray's points 0, +-1,
# +-2 for the latter); the input and output transforms are written out in C.
_G = {2: torch.tensor([[1.0, 0.0, 0.0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0.0, 0.0, 1.0]], dtype=torch.float64),
      4: torch.tensor([[1 / 4, 0, 0], [-1 / 6, -1 / 6, -1 / 6], [-1 / 6, 1 / 6, -1 / 6],
                       [1 / 24, 1 / 12, 1 / 6], [1 / 24, -1 / 12, 1 / 6], [0, 0, 1]], dtype=torch.float64)}
TILE = 4                      # the output tile side encoders use (TILE x TILE outputs per transform)
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
    lib.winograd_conv.argtypes = [i, p, i, p, i, p, i, i, p, p, i, i, i, p]
    lib.winograd_scratch_floats.restype = ctypes.c_long
    lib.winograd_scratch_floats.argtypes = []
    lib.winograd_vector_floats.restype = ctypes.c_int
    lib.winograd_vector_floats.argtypes = []
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


def filter_transform(weight: torch.Tensor, m: int = TILE) -> torch.Tensor:
    """U = G g G^T of a (K, C, 3, 3) convolution weight for F(m x m, 3x3), as (P, C, K),
    P = (m + 2)^2: position p = (m + 2) i + j of the transform, then input channel, then
    output channel (the C product's B operand). Computed in float64, stored in float32."""
    g = _G[m]
    u = torch.einsum("ia,kcab,jb->ijck", g, weight.detach().double(), g)
    return u.reshape((m + 2) ** 2, weight.shape[1], weight.shape[0]).float().contiguous()


class _Conv:
    """One convolution's transformed filter and bias, as the C code reads them."""

    def __init__(self, conv: torch.nn.Conv2d, m: int) -> None:
        self.u = filter_transform(conv.weight, m)
        self.cin, self.cout = conv.in_channels, conv.out_channels
        self.bias = conv.bias.detach().float().contiguous()


class WinogradEncoder:
    """An EDSRBaseline's or PreviewEncoder's encoding with every 3x3 convolution after the
    head in C, by F(m x m, 3x3) (m = `tile`: 2 or 4). The weights are read once, here: a
    changed encoder needs a new WinogradEncoder."""

    def __init__(self, lib: ctypes.CDLL, encoder: torch.nn.Module, threads: int | None = None,
                 tile: int = TILE) -> None:
        self._f = lib.winograd_conv
        self._scratch_floats = int(lib.winograd_scratch_floats())
        self.tile = tile
        self.head = encoder.head
        with torch.no_grad():
            self.blocks = [(_Conv(b.body[0], tile), _Conv(b.body[2], tile)) for b in encoder.body[:-1]]
            self.last = _Conv(encoder.body[-1], tile)
            # the preview encoder's projection to the latent's channels, after head + body(head)
            self.project = _Conv(encoder.project, tile) if isinstance(encoder, PreviewEncoder) else None
        self.threads = max(1, threads or torch.get_num_threads())
        self._scratch = threading.local()

    def _scratches(self) -> list[torch.Tensor]:
        """Each calling thread's own scratch, one per worker (encodes may run at once)."""
        if getattr(self._scratch, "bufs", None) is None:
            self._scratch.bufs = [torch.empty(self._scratch_floats) for _ in range(self.threads)]
        return self._scratch.bufs

    def _conv(self, src: torch.Tensor, dst: torch.Tensor, res: torch.Tensor | None, conv: _Conv,
              relu: bool, h: int, w: int) -> None:
        m = self.tile
        rows = (h + m - 1) // m
        parts = min(self.threads, rows)
        cuts = [rows * k // parts for k in range(parts + 1)]
        scratch = self._scratches()
        args = (m, src.data_ptr(), conv.cin, dst.data_ptr(), conv.cout, None if res is None else res.data_ptr(),
                h, w, conv.u.data_ptr(), conv.bias.data_ptr(), int(relu))

        def run(k: int) -> int:
            return self._f(*args, cuts[k], cuts[k + 1], scratch[k].data_ptr())

        later = [_pool(parts - 1).submit(run, k) for k in range(1, parts)]
        status = [run(0)] + [f.result() for f in later]
        if any(status):
            raise ValueError(f"the Winograd convolution refused a {h}x{w} image")

    @torch.no_grad()
    def encode(self, x: torch.Tensor, step=None) -> torch.Tensor:
        """x (1, 3, h, w) normalised, on the CPU -> the latent (1, C, h, w), channels-last;
        `step(fraction)` is told after each of the body's blocks (and may raise to cancel)."""
        if x.shape[0] != 1:
            return torch.cat([self.encode(x[i:i + 1], step) for i in range(x.shape[0])])
        head = self.head(x.float())[0]
        (c, h, w), pad = head.shape, PAD
        first, run, temp = (torch.zeros(h + pad, w + pad, c) for _ in range(3))
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
        if self.project is not None:
            del first, run
            out = torch.zeros(h + pad, w + pad, self.project.cout)
            self._conv(temp, out, None, self.project, False, h, w)
            temp = out
        if step is not None:
            step(1.0)
        # channels-last, as the buffers are: a channels-first copy cost 0.3-0.5 s per megapixel
        return temp[1:h + 1, 1:w + 1].permute(2, 0, 1)[None].contiguous(memory_format=torch.channels_last)

    __call__ = encode


def _fits(lib: ctypes.CDLL, cin: int, cout: int) -> bool:
    """Whether the build's vectors divide these channel counts (the C code's rule)."""
    vw = int(lib.winograd_vector_floats())
    return 0 < cin <= MAX_CHANNELS and 0 < cout <= MAX_CHANNELS and cin % vw == 0 and cout % (2 * vw) == 0


def winograd_encoder(encoder: torch.nn.Module, device: torch.device) -> WinogradEncoder | None:
    """The C encoding of `encoder` on `device`, or None where only torch can run it."""
    if torch.device(device).type != "cpu" or not isinstance(encoder, (EDSRBaseline, PreviewEncoder)):
        return None
    head = encoder.head if isinstance(encoder, PreviewEncoder) else encoder.head[0]
    if head.weight.dtype != torch.float32:
        return None
    lib = library()
    if lib is None:
        return None
    convs = [c for c in encoder.modules() if isinstance(c, torch.nn.Conv2d) and c.kernel_size == (3, 3)]
    if not all(_fits(lib, c.in_channels, c.out_channels) for c in convs if c is not head):
        return None
    return WinogradEncoder(lib, encoder)
