#!/usr/bin/env bash
# Builds the release binary for a Raspberry Pi target and checks it under qemu-user against the
# x86 build on the shared photos (scripts/cross_compare.py). Optionally runs the library's unit
# tests for the target under qemu too (--unit).
# usage: scripts/cross-test.sh [aarch64-unknown-linux-gnu|armv7-unknown-linux-gnueabihf] [--unit]
set -euo pipefail
cd "$(dirname "$0")/.."
target="${1:-aarch64-unknown-linux-gnu}"
export EDGE_TL_SHARED="${EDGE_TL_SHARED:-$(cd .. && pwd)/shared}"
bash scripts/cross-setup.sh >/dev/null
case "$target" in
  aarch64-unknown-linux-gnu) runner="qemu-aarch64 -L /usr/aarch64-linux-gnu" ;;
  armv7-unknown-linux-gnueabihf) runner="qemu-arm -L /usr/arm-linux-gnueabihf" ;;
  *) echo "unknown target $target"; exit 2 ;;
esac
target_dir="$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')"
start=$(date +%s)
cargo build --release --target "$target"
echo "release build for $target: $(( $(date +%s) - start )) s"
bin="$target_dir/$target/release/edge-tl"
echo "binary size: $(stat -c %s "$bin") bytes ($target, stripped)"
# The same features as scripts/test.sh's test build, so this is that build's binary rather than a
# second build of tract on x86 (`grad` changes the features of half and num-complex under it).
cargo build --features grad
python3 scripts/cross_compare.py "$target_dir/debug/edge-tl" "$runner $bin"
if [ "${2:-}" = "--unit" ]; then
  start=$(date +%s)
  cargo test --release --target "$target" --lib
  echo "unit tests under qemu for $target: $(( $(date +%s) - start )) s"
fi
