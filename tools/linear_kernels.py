"""Time the decoders' linear layers on one CPU thread: PyTorch's default fp32 matmul
(F.linear) against the oneDNN kernels zoomviewer uses (zoomviewer.engine.model.kernels), on the
same float32 inputs, and print the largest difference. Usage: python tools/linear_kernels.py"""

from __future__ import annotations

import time

import torch
import torch.nn.functional as F

from zoomviewer.engine.model import kernels


def per_call_us(fn, n: int) -> float:
    fn()
    start = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - start) / n * 1e6


def main() -> None:
    torch.set_num_threads(1)
    torch.manual_seed(0)
    cases = [("render layer 16 -> 16, 32768 rows", 32768, 16, 16, False),
             ("output layer 16 -> 3, 32768 rows", 32768, 16, 3, True),
             ("code table 208 -> 208, 4096 codes", 4096, 208, 208, True),
             ("LIIF layer 256 -> 256, 4096 rows", 4096, 256, 256, True)]
    with torch.no_grad():
        for name, rows, k, n, bias in cases:
            x, w = torch.randn(rows, k), torch.randn(n, k) / k ** 0.5
            b = torch.randn(n) if bias else None
            plain = per_call_us(lambda: F.linear(x, w, b), 50)
            ours = per_call_us(lambda: kernels.linear(x, w, b), 50)
            diff = (kernels.linear(x, w, b) - F.linear(x, w, b)).abs().max().item()
            print(f"{name:38s} F.linear {plain:8.0f} us   kernels.linear {ours:8.0f} us   "
                  f"{plain / ours:4.1f}x   max difference {diff:.1e}")


if __name__ == "__main__":
    main()
