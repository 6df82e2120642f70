#!/usr/bin/env bash
# Checks systemd/edge-tl.service offline: `systemd-analyze verify` must print nothing (it exits
# 0 on typos such as `ProtectSystem=strcit`, only warning about them), and the hardening score
# of `systemd-analyze security` must stay at or below the threshold.
# usage: scripts/check-systemd.sh [EDGE_TL_BINARY]
set -euo pipefail
cd "$(dirname "$0")/.."
bin="${1:-$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')/debug/edge-tl}"
bin=$(realpath "$bin")
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
# verify needs ExecStart's binary to exist: point it at the built one.
sed "s|^ExecStart=/usr/bin/edge-tl |ExecStart=$bin |" systemd/edge-tl.service > "$work/edge-tl.service"
out=$(systemd-analyze verify "$work/edge-tl.service" 2>&1 || true)
if [ -n "$out" ]; then
  echo "systemd-analyze verify complained:"; echo "$out"; exit 1
fi
score=$(systemd-analyze security --offline=yes "$work/edge-tl.service" 2>&1 | sed -n 's/.*Overall exposure level for [^:]*: \([0-9.]*\).*/\1/p')
echo "systemd unit verified; exposure level $score (systemd-analyze security)"
systemd-analyze security --offline=yes --threshold=25 "$work/edge-tl.service" >/dev/null
"$bin" config check systemd/config.toml
