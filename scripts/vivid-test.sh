#!/usr/bin/env bash
# The V4L2 path against a real driver: boots Debian's kernel under qemu (software emulation),
# loads the `vivid` virtual-camera driver and runs edge-tl against /dev/video0 inside the VM:
# `devices`, `capture` (YUYV), an impossible format request, and `run` with the default model.
# Adapted from ../shared/tools/run-vivid-test.sh. Takes 2-4 minutes; needs root for apt.
# usage: scripts/vivid-test.sh [EDGE_TL_BINARY]
set -euo pipefail
cd "$(dirname "$0")/.."
export EDGE_TL_SHARED="${EDGE_TL_SHARED:-$(cd .. && pwd)/shared}"
BIN="${1:-$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')/debug/edge-tl}"
BIN=$(realpath "$BIN")
need=""
for c in qemu-system-x86_64 busybox cpio depmod; do command -v $c >/dev/null || need=1; done
if [ -n "$need" ]; then
  apt-get install -y --no-install-recommends qemu-system-x86 kmod cpio busybox-static >/dev/null
fi
W="${VIVID_WORK:-$HOME/.cache/edge-tl/vivid}"
mkdir -p "$W"
if [ ! -d "$W/kroot" ]; then
  PKG=$(apt-cache depends linux-image-amd64 | awk '/Depends: linux-image-[0-9]/{print $2; exit}')
  (cd "$W" && apt-get download "$PKG" && dpkg-deb -x "$PKG"_*.deb kroot)
fi
K=$(ls "$W/kroot/lib/modules" | head -1)
[ -f "$W/kroot/lib/modules/$K/modules.dep" ] || depmod -b "$W/kroot" "$K"
R=$(mktemp -d)
trap 'rm -rf "$R"' EXIT
mkdir -p "$R"/{bin,proc,sys,dev,tmp,models,lib/modules/$K}
cp "$(command -v busybox)" "$R/bin/"
for a in sh mount ls modprobe cat poweroff grep wc mkdir; do ln -s busybox "$R/bin/$a"; done
for m in $(grep "/vivid.ko:" "$W/kroot/lib/modules/$K/modules.dep" | tr -d ':'); do
  mkdir -p "$R/lib/modules/$K/$(dirname "$m")"; cp "$W/kroot/lib/modules/$K/$m" "$R/lib/modules/$K/$m"
done
cp "$W"/kroot/lib/modules/"$K"/modules.* "$R/lib/modules/$K/"
cp "$BIN" "$R/bin/edge-tl"
for l in $(ldd "$BIN" | grep -oE '/[^ ]+\.so[^ ]*'); do mkdir -p "$R$(dirname "$l")"; cp -L "$l" "$R$l"; done
cp "$EDGE_TL_SHARED/models/mobilenet_v2_1.0_224_quant_deq_f32.onnx" "$R/models/"
cat > "$R/init" <<'EOI'
#!/bin/sh
mount -t proc proc /proc; mount -t sysfs sys /sys; mount -t devtmpfs dev /dev
export EDGE_TL_MODELS=/models HOME=/tmp
modprobe vivid n_devs=1 && echo "== vivid loaded"
echo "== devices"; edge-tl devices
echo "== capture"; edge-tl capture --label thing --count 3 --interval 100ms --format yuyv --data /tmp/d \
  --source v4l:/dev/video0; echo "CAPTURE_RC=$?"
echo "SAVED=$(ls /tmp/d/thing | grep -c jpg)"
echo "== impossible"; edge-tl capture --label x --count 1 --format mjpeg --size 123x45 --data /tmp/e \
  --source v4l:/dev/video0; echo "IMPOSSIBLE_RC=$?"
echo "== run"; edge-tl run --source v4l:/dev/video0 --format yuyv --frames 3; echo "RUN_RC=$?"
echo "== end"
poweroff -f
EOI
chmod +x "$R/init"
(cd "$R" && find . | cpio -o -H newc 2>/dev/null | gzip -1) > "$W/initrd-edge-tl.gz"
log="$W/vivid.log"
timeout 600 qemu-system-x86_64 -accel tcg -m 1024 -smp 1 -nographic -no-reboot \
  -kernel "$W/kroot/boot/vmlinuz-$K" -initrd "$W/initrd-edge-tl.gz" \
  -append "console=ttyS0 rdinit=/init panic=-1 quiet" | tr -d '\r' | sed -n '/== vivid loaded/,$p' | tee "$log"
fail() { echo "vivid test FAILED: $1"; exit 1; }
grep -q "^/dev/video0 (vivid" "$log" || fail "devices does not list the vivid camera"
grep -q "  YUYV 640x480" "$log" || fail "devices does not list YUYV 640x480"
grep -q "CAPTURE_RC=0" "$log" || fail "capture failed"
grep -q "SAVED=3" "$log" || fail "capture did not save 3 pictures"
grep -q "cannot give MJPEG 123x45; it offers:" "$log" || fail "no list of offered modes"
grep -q "IMPOSSIBLE_RC=1" "$log" || fail "an impossible mode did not fail"
[ "$(grep -c '"label"' "$log")" = 3 ] || fail "run did not print 3 results"
grep -q "RUN_RC=0" "$log" || fail "run failed"
echo "vivid test passed"
