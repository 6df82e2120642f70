#!/usr/bin/env bash
# What the HTTP service costs inference: 400 frames of a folder replay (unpaced, so every frame
# is classified and the time is inference-bound) without the service, with it, and with 10
# live-preview plus 10 event-stream clients connected. Prints elapsed time and peak RSS.
# Usage: scripts/service-bench.sh path/to/edge-tl FOLDER_OF_PICTURES   (needs curl)
set -euo pipefail
BIN=$1; FRAMES=$2
export EDGE_TL_MODELS="${EDGE_TL_MODELS:-${EDGE_TL_SHARED:-../shared}/models}"
run() { /usr/bin/time -f "%e s %M KiB" "$BIN" run --source "dir:$FRAMES" --loop --frames 400 --threads 2 "$@" 2>&1 >/dev/null | grep -E "frames classified| s .*KiB" | tr '\n' ' '; echo; }
echo "plain:"; run
echo "http, no clients:"; run --http 127.0.0.1:18080
echo "http + 10 preview clients + 10 event clients:"
( sleep 2; for i in $(seq 10); do curl -s -N -o /dev/null --max-time 30 http://127.0.0.1:18081/stream.mjpg & curl -s -N -o /dev/null --max-time 30 http://127.0.0.1:18081/api/events & done; wait ) &
run --http 127.0.0.1:18081
wait
