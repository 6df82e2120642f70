#!/usr/bin/env bash
# The live page in headless Chromium: capture two labels from a switchable MJPEG "camera",
# train, and see the label follow the camera (tests/browser/page.test.mjs).
# Needs node/npm and Debian's chromium (`apt install chromium`); installs playwright-core
# (no browser download) into tests/browser/node_modules from its lock file.
# Usage: scripts/browser-test.sh path/to/edge-tl
set -euo pipefail
cd "$(dirname "$0")/.."
bin="$(realpath "$1")"
if [ ! -d tests/browser/node_modules/playwright-core ]; then
  (cd tests/browser && npm ci --no-audit --no-fund --silent)
fi
node tests/browser/page.test.mjs "$bin"
