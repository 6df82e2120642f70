#!/usr/bin/env bash
# Makes the pictures of docs/explain.md (what the network sees): feature maps of a cat,
# "ideal" tabby cat and zebra pictures dreamed from noise, and a dog photo nudged into a cat,
# each with its numbers as JSON beside it. They are not committed (the photos they start from
# are for test use only); this script is how to see them.
# Usage: scripts/lesson-pictures.sh [EDGE_TL_BINARY built with --features grad] [OUT_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
export EDGE_TL_SHARED="${EDGE_TL_SHARED:-$(cd .. && pwd)/shared}"
export EDGE_TL_MODELS="${EDGE_TL_MODELS:-$EDGE_TL_SHARED/models}"
bin="${1:-target/release/edge-tl}"
out="${2:-lesson-pictures}"
mkdir -p "$out"
cat_photo="$EDGE_TL_SHARED/data/catsdogs/test/cat/cat.101.jpg"
dog_photo="$EDGE_TL_SHARED/data/catsdogs/test/dog/dog.102.jpg"
"$bin" features "$cat_photo" --layer 0 --out "$out/features-first-layer.png"
"$bin" features "$cat_photo" --layer expanded_conv_6/expand --out "$out/features-middle.png"
"$bin" dream --class "tabby cat" --json --out "$out/ideal-tabby-cat.png" > "$out/ideal-tabby-cat.json"
"$bin" dream --class zebra --json --out "$out/ideal-zebra.png" > "$out/ideal-zebra.json"
"$bin" attack "$dog_photo" --target "tabby cat" --eps 8/255 --json --out "$out/dog-to-cat.png" \
  > "$out/dog-to-cat.json"
cat "$out"/*.json
echo "pictures in $out/"
