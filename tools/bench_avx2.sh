#!/bin/sh
# `zoomviewer bench` as on a CPU with AVX2 + FMA and no AVX-512, run on any x86-64 machine:
# torch's own kernels, oneDNN and MKL capped at AVX2, the fused kernel built for x86-64-v3
# (in a cache folder of its own). Usage: tools/bench_avx2.sh [bench options, e.g. --json F]
here=$(cd "$(dirname "$0")" && pwd)
export ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2 DNNL_MAX_CPU_ISA=AVX2 MKL_ENABLE_INSTRUCTIONS=AVX2
export CC="$here/cc_avx2.sh" ZOOMVIEWER_CACHE_DIR="${TMPDIR:-/tmp}/zoomviewer-avx2-cache"
exec zoomviewer bench "$@"
