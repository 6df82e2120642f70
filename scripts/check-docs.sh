#!/usr/bin/env bash
# Checks the user docs (README.md and docs/*.md) against a real binary:
#  1. every relative link (and #anchor) between the pages resolves;
#  2. every fenced block marked ```sh runnable runs with `bash -euo pipefail`.
#
# Usage: scripts/check-docs.sh BINARY      e.g. scripts/check-docs.sh target/debug/edge-tl
#
# Each page runs in a fresh folder T/work where T/shared is a link to $EDGE_TL_SHARED (default:
# the `shared` folder beside the repository), so the pages' `../shared/...` paths work as they
# do in a checkout. BINARY is on PATH as `edge-tl`; EDGE_TL_MODELS, HOME and the XDG folders
# point into T, so no block touches the user's models, caches or settings. The blocks of one
# page run in order in the same folder (a later block may use a head an earlier one trained).
# $EDGE_TL_REPO is the repository root, for blocks that read shipped files (systemd/config.toml).
# Mark a block runnable only if it is cheap and needs no camera, network, root or `grad` feature.
set -euo pipefail

repo="$(cd "$(dirname "$0")/.." && pwd)"
if [ $# -ne 1 ]; then
  echo "usage: $0 BINARY   (the edge-tl binary to run the docs' examples with)" >&2
  exit 2
fi
bin="$1"
if [ ! -x "$bin" ]; then
  echo "$0: $bin is not an executable file; build one with \`cargo build\` and pass its path" >&2
  exit 2
fi
bin="$(cd "$(dirname "$bin")" && pwd)/$(basename "$bin")"
shared="${EDGE_TL_SHARED:-$(cd "$(dirname "$0")/../.." && pwd)/shared}"
if [ ! -d "$shared/models" ] || [ ! -d "$shared/data" ]; then
  echo "$0: $shared has no models/ and data/ folders; set EDGE_TL_SHARED to the shared folder" >&2
  exit 2
fi
shared="$(cd "$shared" && pwd)"
export EDGE_TL_REPO="$repo" EDGE_TL_SHARED="$shared"
# Settings of the caller's environment must not change what the examples do.
unset EDGE_TL_MODEL EDGE_TL_SOURCE EDGE_TL_THREADS EDGE_TL_CONFIG EDGE_TL_DATA EDGE_TL_HTTP \
      EDGE_TL_HTTP_TOKEN EDGE_TL_MQTT EDGE_TL_MQTT_USER EDGE_TL_MQTT_PASSWORD EDGE_TL_DEVICE_ID \
      EDGE_TL_KERNELS

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
mkdir "$tmp/bin"
ln -s "$bin" "$tmp/bin/edge-tl"

cd "$repo"
pages=(README.md docs/*.md)

# --- 1. links -------------------------------------------------------------------------------

# GitHub's anchor of a heading: lower case, punctuation dropped, spaces to hyphens.
anchors() {
  awk '/^ *```/ { fence = !fence; next } !fence && /^#+ / { sub(/^#+ +/, ""); print }' "$1" |
    tr '[:upper:]' '[:lower:]' | sed -e 's/[^a-z0-9 _-]//g' -e 's/ /-/g'
}

bad_links=0
n_links=0
for page in "${pages[@]}"; do
  dir="$(dirname "$page")"
  # Links outside fenced blocks and outside `code spans`: [text](target) -> "line target".
  while read -r line target; do
    case "$target" in http://* | https://* | mailto:*) continue ;; esac
    n_links=$((n_links + 1))
    path="${target%%#*}"
    anchor=""
    [[ "$target" == *"#"* ]] && anchor="${target#*#}"
    file="$page"
    if [ -n "$path" ]; then
      file="$dir/$path"
      if [ ! -e "$file" ]; then
        echo "broken link: $page:$line: $target ($file does not exist)"
        bad_links=$((bad_links + 1))
        continue
      fi
    fi
    if [ -n "$anchor" ]; then
      if [[ "$file" != *.md ]] || ! anchors "$file" | grep -qxF -- "$anchor"; then
        echo "broken link: $page:$line: $target (no heading #$anchor in $file)"
        bad_links=$((bad_links + 1))
      fi
    fi
  done < <(awk '
    /^ *```/ { fence = !fence; next }
    fence { next }
    {
      s = $0
      gsub(/`[^`]*`/, "", s)
      while (match(s, /\]\([^) ]+\)/)) {
        print NR, substr(s, RSTART + 2, RLENGTH - 3)
        s = substr(s, RSTART + RLENGTH)
      }
    }' "$page")
done
echo "links: $n_links relative links checked, $bad_links broken"

# --- 2. runnable blocks ---------------------------------------------------------------------

passed=0
failed=0
not_run=0
for page in "${pages[@]}"; do
  blocks="$tmp/blocks/$page"
  mkdir -p "$blocks"
  # Each ```sh runnable block (indented ones too) into blocks/<line>.sh, with its indent removed.
  awk -v out="$blocks" '
    !inb && match($0, /^ *```sh runnable *$/) {
      inb = 1; indent = index($0, "`") - 1; start = NR; file = out "/" NR ".sh"
      printf "" > file
      next
    }
    inb {
      line = $0; sub(/^ +/, "", line)
      if (line ~ /^``` *$/) { inb = 0; close(file); print start; next }
      line = $0; n = 0
      while (n < indent && substr(line, 1, 1) == " ") { line = substr(line, 2); n++ }
      print line > file
    }
    END { if (inb) { print "unclosed runnable block at line " start > "/dev/stderr"; exit 1 } }
  ' "$page" > "$blocks/list"
  [ -s "$blocks/list" ] || continue

  # A fresh world per page: T/work with T/shared beside it.
  t="$tmp/run/$page"
  mkdir -p "$t/work" "$t/home" "$t/models"
  ln -s "$shared" "$t/shared"
  page_failed=0
  while read -r start; do
    if [ "$page_failed" = 1 ]; then
      not_run=$((not_run + 1))
      continue
    fi
    began=$SECONDS
    if (cd "$t/work" &&
        PATH="$tmp/bin:$PATH" HOME="$t/home" XDG_DATA_HOME="$t/home/.local/share" \
        XDG_CACHE_HOME="$t/home/.cache" XDG_CONFIG_HOME="$t/home/.config" \
        EDGE_TL_MODELS="$t/models" \
        timeout "${CHECK_DOCS_TIMEOUT:-600}" bash -euo pipefail "$blocks/$start.sh") \
        > "$blocks/$start.out" 2>&1 < /dev/null; then
      passed=$((passed + 1))
      echo "ok      $page:$start ($((SECONDS - began)) s)"
    else
      rc=$?
      failed=$((failed + 1))
      page_failed=1
      echo "FAILED  $page:$start (exit code $rc); the block:"
      sed 's/^/    /' "$blocks/$start.sh"
      echo "  its output (last 40 lines):"
      tail -n 40 "$blocks/$start.out" | sed 's/^/    /'
    fi
  done < "$blocks/list"
done

[ "$not_run" = 0 ] || echo "($not_run later blocks of a failed page not run)"
echo "$passed passed, $failed failed"
[ "$failed" = 0 ] && [ "$bad_links" = 0 ]
