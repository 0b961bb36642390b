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
each convolution is split by tile rows over the calling thread's torch threads (ctypes
lets go of the GIL), joined before the next. `WinogradEncoder.encode(x, step)` equals the
encoder's `encode` up to fp32 rounding (tests/test_winograd.py holds the latent to 1e-5
of its scale, and the shipped models' colours to 1e-5) and tells `step` after every
block, as the torch path does, so progress and cancellation between blocks work the same.

`winograd_encoder(encoder, device)` is None where it cannot run: not the CPU, not one of
those encoders in fp32, channel counts the build cannot do, no C compiler or
ZOOMVIEWER_NATIVE=0 (cbuild.py). Whether it runs when it can is measured, not assumed
(layout.py).
"""

from __future__ import annotations

import ctypes
import logging
import threading
import weakref
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import torch

from . import cbuild
from .encoders import EDSRBaseline, PreviewEncoder

log = logging.getLogger(__name__)

SOURCE = Path(__file__).with_name("winograd_conv.c")
FLAGS = ["-O3", "-fPIC", "-shared", "-fno-math-errno", "-std=gnu11"]
MAX_CHANNELS = 64             # channels in, at most (the C code's MAXCH)
MAX_OUT = 256                 # and out (MAXOUT)
PAD = 5                       # the C code's buffers: (h + PAD) x (w + PAD) pixels, image at (1, 1)
# The filter transforms G of F(2x2, 3x3) and F(4x4, 3x3) (Lavin and Gray's points 0, +-1,
# +-2 for the latter); the input and output transforms are written out in C.
_G = {2: torch.tensor([[1.0, 0.0, 0.0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0.0, 0.0, 1.0]], dtype=torch.float64),
      4: torch.tensor([[1 / 4, 0, 0], [-1 / 6, -1 / 6, -1 / 6], [-1 / 6, 1 / 6, -1 / 6],
                       [1 / 24, 1 / 12, 1 / 6], [1 / 24, -1 / 12, 1 / 6], [0, 0, 1]], dtype=torch.float64)}
TILE = 4                      # the output tile side encoders use (TILE x TILE outputs per transform)
# and the decoder's first-layer term (term()): F(4x4)'s rounding, through a decoder with
# spread weights, moved colours by up to 1.02e-5 from the plain formulation, F(2x2)'s by
# 5.6e-6; F(2x2) cost 3 % more on a whole latent (6.36-6.45 s against 6.15-6.28 s for a
# 1224x816 photo, native AVX-512, 2 cores)
TERM_TILE = 2
_lock = threading.Lock()
_state: dict[str, object] = {}
_made: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()   # encoder -> (its weights' versions, build), WinogradEncoder


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
    lib.winograd_conv.argtypes = [i, p, i, p, i, i, p, i, i, p, p, i, i, i, p]
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

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor | None, m: int) -> None:
        self.m = m
        self.u = filter_transform(weight, m)
        self.cout, self.cin = weight.shape[:2]
        self.bias = (torch.zeros(self.cout) if bias is None else bias.detach()).float().contiguous()

    @classmethod
    def of(cls, conv: torch.nn.Conv2d, m: int) -> "_Conv":
        return cls(conv.weight, conv.bias, m)


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
            self.blocks = [(_Conv.of(b.body[0], tile), _Conv.of(b.body[2], tile)) for b in encoder.body[:-1]]
            self.last = _Conv.of(encoder.body[-1], tile)
            # the preview encoder's projection to the latent's channels, after head + body(head)
            self.project = _Conv.of(encoder.project, tile) if isinstance(encoder, PreviewEncoder) else None
        self._lib = lib
        # None: the calling thread's torch threads at each encode, so that the viewer's
        # encoder_threads() applies (the render thread decodes on one thread of two)
        self.threads = threads
        self._scratch = threading.local()

    def _scratches(self, parts: int) -> list[torch.Tensor]:
        """Each calling thread's own scratch, one per part (encodes may run at once)."""
        bufs = getattr(self._scratch, "bufs", None) or []
        if len(bufs) < parts:
            bufs = self._scratch.bufs = bufs + [torch.empty(self._scratch_floats) for _ in range(parts - len(bufs))]
        return bufs

    def _conv(self, src: torch.Tensor, dst: torch.Tensor, res: torch.Tensor | None, conv: _Conv,
              relu: bool, h: int, w: int, rows: tuple[int, int] | None = None) -> None:
        """dst = relu?(conv(src)) (+ res) over the image, or over the tile rows covering the
        image rows [rows[0], rows[1]) (the rest of dst untouched)."""
        m = conv.m
        r0, r1 = (0, (h + m - 1) // m) if rows is None else (rows[0] // m, (rows[1] + m - 1) // m)
        parts = max(1, min(self.threads or torch.get_num_threads(), r1 - r0))
        cuts = [r0 + (r1 - r0) * k // parts for k in range(parts + 1)]
        scratch = self._scratches(parts)
        args = (m, src.data_ptr(), conv.cin, dst.data_ptr(), conv.cout, dst.shape[-1],
                None if res is None else res.data_ptr(), h, w, conv.u.data_ptr(), conv.bias.data_ptr(), int(relu))

        def run(k: int) -> int:
            return self._f(*args, cuts[k], cuts[k + 1], scratch[k].data_ptr())

        later = [_pool(parts - 1).submit(run, k) for k in range(1, parts)]
        status = [run(0)] + [f.result() for f in later]
        if any(status):
            raise ValueError(f"the Winograd convolution refused a {h}x{w} image")

    def _latent(self, x: torch.Tensor, step) -> torch.Tensor:
        """The latent of one image as a padded (h + PAD, w + PAD, C) buffer, border zero."""
        head = self.head(x.float())[0]
        c, h, w = head.shape
        first, run, temp = (torch.zeros(h + PAD, w + PAD, c) for _ in range(3))
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
            out = torch.zeros(h + PAD, w + PAD, self.project.cout)
            self._conv(temp, out, None, self.project, False, h, w)
            temp = out
        if step is not None:
            step(1.0)
        return temp

    @torch.no_grad()
    def encode(self, x: torch.Tensor, step=None) -> torch.Tensor:
        """x (1, 3, h, w) normalised, on the CPU -> the latent (1, C, h, w), channels-last;
        `step(fraction)` is told after each of the body's blocks (and may raise to cancel)."""
        if x.shape[0] != 1:
            return torch.cat([self.encode(x[i:i + 1], step) for i in range(x.shape[0])])
        h, w = x.shape[2:]
        # channels-last, as the buffers are: a channels-first copy cost 0.3-0.5 s per megapixel
        return _inner(self._latent(x, step), h, w).permute(2, 0, 1)[None].contiguous(memory_format=torch.channels_last)

    def term(self, kernel: torch.Tensor) -> _Conv | None:
        """A decoder's first-layer term (code_features_kernel, (D, C, 3, 3)) for
        encode_with_term, or None where the C code cannot do it (then torch does)."""
        d, c, *k = kernel.shape
        if k != [3, 3] or kernel.dtype != torch.float32 or not _fits(self._lib, c, d):
            return None
        return _Conv(kernel, None, TERM_TILE)

    @torch.no_grad()
    def encode_with_term(self, x: torch.Tensor, term: _Conv, rows: tuple[int, int],
                         step=None) -> tuple[torch.Tensor, torch.Tensor]:
        """x (1, 3, h, w) -> (the latent (1, C, h, w), channels-last; the first-layer term
        (h, w, D), valid in the rows [rows[0], rows[1]) only: a view of a buffer whose
        other rows are never written, so they take no memory)."""
        h, w = x.shape[2:]
        latent = self._latent(x, step)
        out = torch.empty(h + PAD, w + PAD, term.cout)
        self._conv(latent, out, None, term, False, h, w, rows)
        return _inner(latent, h, w).permute(2, 0, 1)[None], _inner(out, h, w)

    __call__ = encode


def _inner(buffer: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """The h x w image inside a padded buffer, as a view."""
    return buffer[1:h + 1, 1:w + 1]


def _fits(lib: ctypes.CDLL, cin: int, cout: int) -> bool:
    """Whether the C code can do these channel counts: its vectors divide them, at most
    MAX_CHANNELS in and MAX_OUT out."""
    vw = int(lib.winograd_vector_floats())
    return 0 < cin <= MAX_CHANNELS and 0 < cout <= MAX_OUT and cin % vw == 0 and cout % vw == 0


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
    # one per encoder while its weights stay as they are: the filter transforms took 20-30 ms,
    # at every photo opened (a weight changed in place, by training or loading, bumps its version)
    versions = tuple(p._version for p in encoder.parameters())
    with _lock:
        kept = _made.get(encoder)
        if kept is not None and kept[0] == (versions, lib):
            return kept[1]
    made = WinogradEncoder(lib, encoder)
    with _lock:
        _made[encoder] = ((versions, lib), made)
    return made
