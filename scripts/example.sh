#!/usr/bin/env bash
# The main job on a real example: install the default backbone from ../shared, train a head on
# 200 cat/dog photos, evaluate it on 400 others, and classify two pictures.
set -euo pipefail
cd "$(dirname "$0")/.."
shared="${EDGE_TL_SHARED:-$(cd .. && pwd)/shared}"
cargo build --quiet
bin="$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')/debug/edge-tl"
work="${EXAMPLE_DIR:-$(mktemp -d)}"
export EDGE_TL_MODELS="$work/models"
set -x
"$bin" models pull mobilenet-v2-f32 --from "$shared/models/mobilenet_v2_1.0_224_quant_deq_f32.onnx"
"$bin" train --data "$shared/data/catsdogs/train" --out "$work/catsdogs.head"
"$bin" eval "$work/catsdogs.head" "$shared/data/catsdogs/test"
"$bin" predict "$work/catsdogs.head" "$shared/data/catsdogs/test/cat/cat.101.jpg" "$shared/data/catsdogs/test/dog/dog.102.jpg"
