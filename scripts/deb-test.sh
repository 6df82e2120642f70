#!/usr/bin/env bash
# The Debian package on this machine (as root): builds the amd64 package from the test build,
# installs it, upgrades it (the user's settings are kept), removes it (captures and heads in
# /var/lib/edge-tl are kept) and purges it (everything goes, with the system user). Then, if
# the aarch64/armv7 release binaries exist, builds those packages and checks their
# `dpkg-deb --info` / `--contents`.
# usage: scripts/deb-test.sh
set -euo pipefail
cd "$(dirname "$0")/.."
export EDGE_TL_SHARED="${EDGE_TL_SHARED:-$(cd .. && pwd)/shared}"
if ! command -v cargo-deb >/dev/null; then
  CARGO_TARGET_DIR="$HOME/.cache/edge-tl/cargo-deb-build" cargo install cargo-deb --version 3.8.0 --locked
fi
if dpkg -s edge-tl >/dev/null 2>&1; then
  echo "edge-tl is already installed on this machine; the package test will not touch it"; exit 1
fi
out=$(mktemp -d)
cleanup() { dpkg -P edge-tl >/dev/null 2>&1 || true; rm -rf "$out"; }
trap cleanup EXIT
fail() { echo "deb test FAILED: $1"; exit 1; }
# The test profile's binary, with scripts/test.sh's features, is packaged here (the release build
# of x86, or one with other features, would be another full tract build); `cargo deb` without
# --profile makes the release package.
cargo build --features grad
quiet_deb() { cargo deb --no-build "$@" 2>&1 | grep -v "dev profile is not supported\|To enable debug symbols" || true; }
quiet_deb --profile dev -o "$out/edge-tl-1.deb"
quiet_deb --profile dev --deb-version 0.1.1-1 -o "$out/edge-tl-2.deb"

echo "== install"
dpkg -i "$out/edge-tl-1.deb" >/dev/null
/usr/bin/edge-tl --version
getent passwd edge-tl >/dev/null || fail "no edge-tl user"
if getent group video >/dev/null; then [[ " $(id -nG edge-tl) " == *" video "* ]] || fail "edge-tl is not in the video group"; fi
[ "$(stat -c %U /var/lib/edge-tl)" = edge-tl ] || fail "/var/lib/edge-tl is not owned by edge-tl"
[ -d /var/lib/edge-tl/models ] || fail "no models folder"
[ -f /usr/lib/systemd/system/edge-tl.service ] || fail "no systemd unit"
/usr/bin/edge-tl config check /etc/edge-tl/config.toml >/dev/null || fail "the shipped settings do not check"

echo "== the user changes the settings and captures a picture"
echo "# changed by the user" >> /etc/edge-tl/config.toml
mkdir -p /var/lib/edge-tl/dataset/cat
cp "$EDGE_TL_SHARED/data/catsdogs/test/cat/cat.101.jpg" /var/lib/edge-tl/dataset/cat/
echo "== upgrade"
dpkg -i --force-confold "$out/edge-tl-2.deb" >/dev/null
[ "$(dpkg-query -W -f '${Version}' edge-tl)" = 0.1.1-1 ] || fail "not upgraded"
grep -q "changed by the user" /etc/edge-tl/config.toml || fail "the settings were replaced on upgrade"
[ -f /var/lib/edge-tl/dataset/cat/cat.101.jpg ] || fail "a capture was lost on upgrade"
echo "== remove"
dpkg -r edge-tl >/dev/null
[ ! -e /usr/bin/edge-tl ] || fail "the binary is still there after remove"
[ -f /var/lib/edge-tl/dataset/cat/cat.101.jpg ] || fail "remove deleted a capture"
[ -f /etc/edge-tl/config.toml ] || fail "remove deleted the settings"
echo "== purge"
dpkg -P edge-tl >/dev/null
[ ! -e /etc/edge-tl/config.toml ] || fail "purge left the settings"
[ ! -e /var/lib/edge-tl ] || fail "purge left /var/lib/edge-tl"
! getent passwd edge-tl >/dev/null || fail "purge left the edge-tl user"

target_dir="$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')"
for pair in aarch64-unknown-linux-gnu:arm64 armv7-unknown-linux-gnueabihf:armhf; do
  target=${pair%%:*}; arch=${pair##*:}
  [ -x "$target_dir/$target/release/edge-tl" ] || { echo "== $arch: no release binary for $target, skipped"; continue; }
  echo "== $arch package"
  quiet_deb --target "$target" -o "$out/edge-tl-$arch.deb"
  # (read whole outputs first: `cmd | grep -q` under pipefail fails when grep exits early)
  [[ "$(dpkg-deb --field "$out/edge-tl-$arch.deb" Architecture)" == "$arch" ]] || fail "$arch: wrong architecture"
  dpkg-deb --contents "$out/edge-tl-$arch.deb" > "$out/contents"
  for f in ./usr/bin/edge-tl ./etc/edge-tl/config.toml ./usr/lib/systemd/system/edge-tl.service; do
    grep -q " $f\$" "$out/contents" || fail "$arch: $f missing"
  done
  [[ "$(dpkg-deb --ctrl-tarfile "$out/edge-tl-$arch.deb" | tar -t)" == *postinst* ]] || fail "$arch: no postinst"
  echo "$arch: $(stat -c %s "$out/edge-tl-$arch.deb") bytes"
done
echo "deb test passed"
