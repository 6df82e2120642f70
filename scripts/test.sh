#!/usr/bin/env bash
# The whole test suite: unit and end-to-end tests on the real photos (the MQTT ones against a
# Mosquitto broker they start), then the onnxruntime agreement check, the systemd unit check,
# the live page in headless Chromium, the docs' runnable examples, then the camera code against the vivid virtual-camera
# driver in a VM.
# Needs ../shared (or $EDGE_TL_SHARED), `pip install -r scripts/requirements.txt`, Debian's
# mosquitto, chromium and nodejs/npm, and for the VM test qemu-system-x86, kmod, cpio and
# busybox-static (.ci/run installs all of these).
set -euo pipefail
cd "$(dirname "$0")/.."
export EDGE_TL_SHARED="${EDGE_TL_SHARED:-$(cd .. && pwd)/shared}"
# No two modules of src/ import each other.
python3 scripts/check-imports.py
cargo test --all-targets --features grad
echo "test build and run: ${SECONDS} s"
# The lean build (no HTTP service, no MQTT, no async runtime) must keep compiling.
cargo check --no-default-features --all-targets
echo "lean check done: ${SECONDS} s"
target_dir="$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')"
python3 scripts/check_onnxruntime.py "$target_dir/debug/edge-tl"
bash scripts/check-systemd.sh "$target_dir/debug/edge-tl"
bash scripts/browser-test.sh "$target_dir/debug/edge-tl"
# The docs' examples marked runnable, and every link between the pages.
bash scripts/check-docs.sh "$target_dir/debug/edge-tl"
# The V4L2 path against a real driver (vivid in a qemu VM, ~1 min); EDGE_TL_SKIP_VIVID=1 skips it.
if [ "${EDGE_TL_SKIP_VIVID:-0}" != 1 ]; then
  bash scripts/vivid-test.sh "$target_dir/debug/edge-tl"
fi
