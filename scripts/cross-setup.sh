#!/usr/bin/env bash
# Installs what cross-compiling for the Raspberry Pi needs on Debian/Ubuntu, without Docker:
# the Rust targets, Debian's cross linkers and C libraries, qemu-user to run the results, and
# libclang for bindgen (v4l). Linker and runner per target are named in .cargo/config.toml.
# usage: scripts/cross-setup.sh   (as root, or with sudo available)
set -euo pipefail
sudo=""; [ "$(id -u)" = 0 ] || sudo=sudo
rustup target add aarch64-unknown-linux-gnu armv7-unknown-linux-gnueabihf
need=()
# g++: OpenH264 (the RTSP cameras' H.264 decoder) is C++, built by the cc crate.
for p in gcc-aarch64-linux-gnu g++-aarch64-linux-gnu libc6-dev-arm64-cross gcc-arm-linux-gnueabihf \
         g++-arm-linux-gnueabihf libc6-dev-armhf-cross qemu-user libclang-dev; do
  dpkg -s "$p" >/dev/null 2>&1 || need+=("$p")
done
if [ ${#need[@]} -gt 0 ]; then
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
echo "cross-compiling set up: cargo build --release --target aarch64-unknown-linux-gnu (or armv7-unknown-linux-gnueabihf)"
