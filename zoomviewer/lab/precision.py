"""Which number format training runs the encoder in: bf16 autocast where the hardware
computes bf16 itself, fp32 everywhere else.

bf16 halves an iteration on a CPU with AVX512-BF16 or AMX; on one without them PyTorch
emulates it, and an iteration took 11.6 s in bf16 against 1.03 s in fp32 on an AVX2-only
CPU. So bf16 is used only where PyTorch reports the instructions, never assumed.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

import torch

BF16_INSTRUCTIONS = {"amx_bf16": "AMX-BF16", "avx512_bf16": "AVX512-BF16"}


def cpu_computes_bf16(capabilities: Mapping[str, object], kernels: str,
                      environ: Mapping[str, str]) -> tuple[bool, str]:
    """(whether bf16 is native, why) for a CPU described by `capabilities` (as
    torch.cpu.get_capabilities() reports them), `kernels` (the kernel level torch runs,
    torch.backends.cpu.get_cpu_capability()) and the process environment."""
    forced = environ.get("ATEN_CPU_CAPABILITY", "").strip().lower()
    if forced and forced != "avx512":
        return False, f"ATEN_CPU_CAPABILITY={forced} keeps torch to kernels without bf16"
    if kernels.upper() != "AVX512":
        return False, f"torch runs {kernels} kernels here, which have no bf16"
    found = [name for key, name in BF16_INSTRUCTIONS.items() if capabilities.get(key)]
    if not found:
        return False, "the CPU has no bf16 instructions (AVX512-BF16 or AMX)"
    return True, f"the CPU has {' and '.join(found)}"


def training_precision(device: str = "cpu", bf16: bool | None = None) -> tuple[torch.dtype, str]:
    """(dtype of the encoder's autocast, the reason in a few words) for training on
    `device` ('cpu' or 'cuda'); `bf16` True or False overrides the choice."""
    if bf16 is not None:
        return (torch.bfloat16, "bf16 as asked") if bf16 else (torch.float32, "fp32 as asked")
    if device.startswith("cuda"):
        if torch.cuda.is_available() and torch.cuda.is_bf16_supported():
            return torch.bfloat16, "the GPU computes bf16"
        return torch.float32, "the GPU has no bf16"
    if device != "cpu":
        return torch.float32, f"bf16 is not known to be native on {device}"
    get_capabilities = getattr(torch.cpu, "get_capabilities", None)
    capabilities = get_capabilities() if get_capabilities is not None else {}
    native, why = cpu_computes_bf16(capabilities, torch.backends.cpu.get_cpu_capability(), os.environ)
    return (torch.bfloat16 if native else torch.float32), why


def precision_name(dtype: torch.dtype) -> str:
    """'bf16' or 'fp32', as the recipe and the log say it."""
    return "bf16" if dtype == torch.bfloat16 else "fp32"
