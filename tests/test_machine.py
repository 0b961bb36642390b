"""What `zoomviewer bench` records of the machine it ran on: the CPU's features as torch
and the CPU report them, the kernels torch dispatches to, and a calibration figure."""

from __future__ import annotations

import subprocess
import sys

import torch

from zoomviewer.lab import machine


def test_the_machine_record_says_what_torch_runs_with():
    info = machine.describe(["-O3"])
    assert info["torch_kernels"] == torch.backends.cpu.get_cpu_capability()
    assert info["torch"] == torch.__version__ and info["fused_kernel_flags"] == ["-O3"]
    assert info["gemm_fp32_gflops"] > 0 and info["cores"] >= 1
    assert set(info["torch_features"]) == {"AVX2", "AVX-512", "AVX512-BF16", "VNNI", "AMX"}
    if info["cpu_flags"]:                         # where the CPU lists them (Linux)
        assert info["cpu_flags"]["AVX2"] == info["torch_features"]["AVX2"]
    assert info["cpu"] in machine.summary(info) and info["torch_kernels"] in machine.summary(info)


def test_forcing_avx2_kernels_is_recorded():
    code = ("import json; from zoomviewer.lab import machine; d = machine.describe();"
            "print(json.dumps([d['torch_kernels'], d['aten_cpu_capability_env']]))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          env={"ATEN_CPU_CAPABILITY": "avx2", "PATH": "/usr/bin:/bin"})
    assert done.returncode == 0, done.stderr[-400:]
    kernels, env = __import__("json").loads(done.stdout)
    assert env == "avx2" and kernels in ("AVX2", "DEFAULT")
