#!/bin/sh
# On a lent GPU machine (the device tool, docs/DEVELOPERS.md): train shipped models further
# from the committed weights, each for a fixed time with its learning rate decayed to fit
# (train --minutes), write the new weights and logs to $OUT, and print their eval on Set5
# and Set14. The data travels packed (carry runs/pack, made here by
# `python tools/pack_training_data.py`). Nothing is shipped there: bring the weights back
# and ship them here only if `zoomviewer eval` on all four sets says so.
#
#   sh tools/gpu_train.sh [MINUTES_EACH [MODEL ...]]    (default: 4 minutes, restore then fast)
#
# restore trains on the scan-centred chain (docs/RESTORE.md); batch 32, the patches drawn
# by worker processes (the degraded sampler alone takes ~32 ms per 16 patches on one core).
set -eu
MINUTES=${1:-4}
[ $# -gt 0 ] && shift
MODELS=${*:-restore fast}
OUT=${OUT:-runs/gpu}
PYTHON=${PYTHON:-python3}
mkdir -p "$OUT"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
DEVICE=$($PYTHON -c "import torch; print('cuda' if torch.cuda.is_available() else 'cpu')")
WORKERS=${WORKERS:-$($PYTHON -c "import os; print(max(0, min(12, (os.cpu_count() or 2) - 2)))")}
D="runs/pack/bsds500 runs/pack/photos"
zv() { $PYTHON -m zoomviewer "$@"; }
common="--device $DEVICE --workers $WORKERS --data $D --iters 1000000 --minutes $MINUTES --batch 32"
for m in $MODELS; do
    case $m in
    restore)
        zv train $common --model fast --init-from resources/restore.pt --degrade scan --out "$OUT/restore-gpu.pt" \
            --lr 2e-4 --eval-every 12000 --eval-data runs/pack/Set14
        zv eval --data runs/pack/Set5 runs/pack/Set14 --scales 2,4,8,12 --degrade scan \
            --model bicubic,fast,restore --weights "$OUT/restore-gpu.pt"
        zv eval --data runs/pack/Set5 runs/pack/Set14 --scales 2,4,8,12 \
            --model bicubic,fast,restore --weights "$OUT/restore-gpu.pt" ;;
    fast)
        zv train $common --model fast --init-from resources/fast.pt --out "$OUT/fast-gpu.pt" \
            --lr 1e-4 --eval-every 12000 --eval-data runs/pack/Set14
        zv eval --data runs/pack/Set5 runs/pack/Set14 --scales 2,4,8 --model bicubic,fast \
            --weights "$OUT/fast-gpu.pt" ;;
    *) echo "gpu_train.sh: unknown model $m (restore or fast)" >&2; exit 2 ;;
    esac
done
rm -f "$OUT"/*.state
