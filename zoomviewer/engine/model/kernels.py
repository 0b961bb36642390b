"""Linear layers for inference on the CPU through oneDNN, when this PyTorch has it.

PyTorch's default fp32 CPU matmul is slow for the decoders' narrow layers (16 to 256
wide): oneDNN's JIT kernels ran them 1.6-2.4x faster here on the same float32 numbers
(a different summation order, no lower precision; tools/linear_kernels.py). Training,
other devices and builds without oneDNN take F.linear.
"""

from __future__ import annotations

import os

# oneDNN compiles a kernel per input shape and by default keeps 1024 of them; a viewer
# sees many chunk shapes, and the full cache grew the soak test by ~150 MB; with 128
# it stays flat and views render as fast.
# (Read when oneDNN first builds a kernel, so it must be set before then.)
os.environ.setdefault("ONEDNN_PRIMITIVE_CACHE_CAPACITY", "128")

import torch  # noqa: E402
import torch.nn.functional as F

_onednn = [bool(torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, "_linear_pointwise"))]


def linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None, relu: bool = False) -> torch.Tensor:
    """F.linear (then ReLU when `relu`) on the last dimension of x."""
    if _onednn[0] and x.device.type == "cpu" and x.dtype == torch.float32 and not torch.is_grad_enabled():
        try:
            return torch.ops.mkldnn._linear_pointwise(x.contiguous(), weight, bias, "relu" if relu else "none", [], "")
        except RuntimeError:  # an unexpected build: fall back for the rest of the session
            _onednn[0] = False
    y = F.linear(x, weight, bias)
    return torch.relu(y) if relu else y
