#!/usr/bin/env bash
# The whole test suite: unit and end-to-end tests on the real photos, then the onnxruntime
# agreement check. Needs ../shared (or $EDGE_TL_SHARED) and `pip install -r scripts/requirements.txt`.
set -euo pipefail
cd "$(dirname "$0")/.."
export EDGE_TL_SHARED="${EDGE_TL_SHARED:-$(cd .. && pwd)/shared}"
cargo test --all-targets
target_dir="$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')"
python3 scripts/check_onnxruntime.py "$target_dir/debug/edge-tl"
