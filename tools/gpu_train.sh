#!/bin/sh
# On a lent GPU machine (the device tool, docs/DEVELOPERS.md): train the shipped fast and
# restore models further from the committed weights, each for a fixed time with its
# learning rate decayed to fit (train --minutes), write the new weights and logs to $OUT,
# and print their eval beside the committed weights'. The data travels packed (carry
# runs/pack, made here by `python tools/pack_training_data.py`). Nothing is shipped
# there: bring the weights back and ship them here only if `zoomviewer eval` says so.
#
#   sh tools/gpu_train.sh [MINUTES_EACH]      (default 4: two models and the eval in about 10)
set -eu
MINUTES=${1:-4}
OUT=${OUT:-runs/gpu}
mkdir -p "$OUT"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
DEVICE=$(python3 -c "import torch; print('cuda' if torch.cuda.is_available() else 'cpu')")
D="runs/pack/bsds500 runs/pack/photos"
zv() { python3 -m zoomviewer "$@"; }
zv train --device "$DEVICE" --data $D --model fast --init-from resources/fast.pt --out "$OUT/fast.pt" \
    --iters 1000000 --minutes "$MINUTES" --lr 1e-4 --eval-every 2000 --eval-data runs/pack/Set14
zv train --device "$DEVICE" --data $D --model fast --init-from resources/restore.pt --degrade --out "$OUT/restore.pt" \
    --iters 1000000 --minutes "$MINUTES" --lr 1e-4 --eval-every 2000 --eval-data runs/pack/Set14
zv eval --data runs/pack/Set5 runs/pack/Set14 --scales 2,4,8 --model fast --weights "$OUT/fast.pt"
zv eval --data runs/pack/Set5 runs/pack/Set14 --scales 2,4,8 --degrade scan --model restore \
    --weights "$OUT/restore.pt"
rm -f "$OUT"/*.state
