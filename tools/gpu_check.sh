#!/usr/bin/env bash
# The GPU check, ready for a lent device (and runnable on the CPU: device auto).
#  1. the render tests on the device against the CPU reference (tests/test_device.py),
#  2. `zoomviewer bench --device DEVICE --json $OUT/bench-DEVICE.json`,
#  3. peak device memory while a 100 MP photo opens, renders three views and exports.
# Usage: tools/gpu_check.sh [auto|cuda|cpu] [--quick]     (writes under $OUT, default ./gpu-check)
# Budget: under 8 minutes on one GPU; --quick runs the bench's smoke sizes.
set -euo pipefail
cd "$(dirname "$0")/.."
device=${1:-auto}
quick=${2:-}
out=${OUT:-gpu-check}
mkdir -p "$out"
export QT_QPA_PLATFORM=offscreen ZOOMVIEWER_DEVICE="$device" PYTHONUNBUFFERED=1
# nothing need be installed: the checkout itself is the package (a lent machine has no pip install)
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
python=${PYTHON:-python3}
"$python" - <<'PY' | tee "$out/device.txt"
import torch
from zoomviewer.engine.model import pick_device
import os
d = pick_device(os.environ["ZOOMVIEWER_DEVICE"])
print(f"device {d}; torch {torch.__version__}; cuda {torch.version.cuda}; "
      f"{torch.cuda.get_device_name(d) if d.type == 'cuda' else 'no GPU'}")
PY
echo "== 1. render tests on the device against the CPU reference"
# a failure here is reported at the end, not a reason to skip the figures (on the H200 the
# fast decoder's fp16 colours failed this step, and the first run measured nothing else)
failed=0
"$python" -m pytest -q -p no:cacheprovider tests/test_device.py || failed=1
echo "== 2. bench"
timeout 420 "$python" -m zoomviewer bench --device "$device" ${quick:+--quick} --json "$out/bench-$device.json" | tee "$out/bench-$device.md"
echo "== 3. 100 MP photo: peak memory"
timeout 300 "$python" tools/bigphoto.py --device "$device" ${quick:+--quick} | tee "$out/bigphoto-$device.txt"
echo "gpu_check: done; results in $out/"
[ "$failed" = 0 ] || { echo "gpu_check: the render tests on the device failed (above)" >&2; exit 1; }
