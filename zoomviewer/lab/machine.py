"""What machine a benchmark ran on, so that figures from different machines can be
compared: the CPU model and cores, the instruction-set features PyTorch reports and the
CPU lists (AVX2, AVX-512, AVX512-BF16, VNNI, AMX, NEON), the kernel PyTorch dispatches to
(ATEN_CPU_CAPABILITY can force AVX2 on an AVX-512 machine), the fused kernel's build
flags, the torch version, and a calibration figure: fp32 GEMM GFLOP/s measured with torch
on the threads the bench uses."""

from __future__ import annotations

import os
import platform
import time

import torch

FEATURES = {   # our name -> the flag in /proc/cpuinfo (x86: "flags", ARM: "Features")
    "AVX2": "avx2", "FMA": "fma", "AVX-512": "avx512f", "AVX512-BF16": "avx512_bf16",
    "AVX512-VNNI": "avx512_vnni", "AVX-VNNI": "avx_vnni", "AMX-BF16": "amx_bf16", "NEON": "asimd",
}


def _cpuinfo() -> tuple[str, set[str]]:
    """(model name, flags) from /proc/cpuinfo where there is one (Linux)."""
    name, flags = platform.processor() or platform.machine(), set()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                key = key.strip()
                if key in ("model name", "Model") and name in ("", platform.processor(), platform.machine()):
                    name = value.strip()
                elif key in ("flags", "Features") and not flags:
                    flags = set(value.split())
    except OSError:
        pass
    return name, flags


def torch_features() -> dict[str, bool]:
    """What PyTorch itself says the CPU supports (private helpers; absent ones count as no)."""
    ask = {"AVX2": "_is_avx2_supported", "AVX-512": "_is_avx512_supported",
           "AVX512-BF16": "_is_avx512_bf16_supported", "VNNI": "_is_vnni_supported",
           "AMX": "_is_amx_tile_supported"}
    out = {}
    for name, fn in ask.items():
        try:
            out[name] = bool(getattr(torch.cpu, fn)())
        except (AttributeError, RuntimeError):
            out[name] = False
    return out


def gemm_gflops(n: int = 1024, runs: int = 5) -> float:
    """fp32 matrix-multiply rate with torch on the current threads: the calibration figure."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    torch.mm(a, b)
    best = float("inf")
    for _ in range(runs):
        t = time.perf_counter()
        torch.mm(a, b)
        best = min(best, time.perf_counter() - t)
    return 2 * n ** 3 / best / 1e9


def describe(kernel_flags: list[str] | None = None) -> dict:
    """The machine, as the bench JSON records it."""
    name, flags = _cpuinfo()
    return {
        "cpu": name,
        "cores": os.cpu_count(),
        "machine": platform.machine(),
        "cpu_flags": {ours: theirs in flags for ours, theirs in FEATURES.items()} if flags else {},
        "torch_features": torch_features(),
        "torch_kernels": torch.backends.cpu.get_cpu_capability(),
        "aten_cpu_capability_env": os.environ.get("ATEN_CPU_CAPABILITY", ""),
        # the other libraries' own caps on the instruction sets they use (set to imitate an AVX2 CPU)
        "isa_limits": {k: os.environ[k] for k in ("ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA", "MKL_ENABLE_INSTRUCTIONS")
                       if k in os.environ},
        "fused_kernel_flags": kernel_flags,
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "gemm_fp32_gflops": round(gemm_gflops(), 1),
    }


def summary(info: dict) -> str:
    """One line for the bench's table header."""
    have = [k for k, v in info.get("cpu_flags", {}).items() if v] or [k for k, v in info["torch_features"].items() if v]
    return (f"{info['cpu']}, {info['cores']} cores ({', '.join(have) or 'no vector extensions reported'}); "
            f"torch {info['torch']} kernels {info['torch_kernels']}; fp32 GEMM {info['gemm_fp32_gflops']} GFLOP/s "
            f"on {info['threads']} threads")
