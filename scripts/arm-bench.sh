#!/usr/bin/env bash
# Instructions per inference on the Raspberry Pi's CPUs, edge-tl against onnxruntime on the
# same files and photo: the Pi speed proxy of ../shared/tools/arm-icount (its README says
# what the count is and is not). Builds the aarch64 release binary, runs
# `edge-tl bench --rounds {N}` on one photo under qemu's cortex-a72 (Pi 4) and cortex-a76
# (Pi 5) models with N = 1 and 3 and takes the difference (load, warm-up and start-up
# cancel), then onnxruntime 1.32 the same way, and prints one table with the ratios.
# usage: scripts/arm-bench.sh [--models "mobilenet-v2-f32 mobilenet-v2-int8"] [--threads "1 4"]
#                             [--kernels "neon tract"] [--cpus cortex-a72,cortex-a76]
# Threads above 1 are counted with --atomic (exact with concurrent guest threads).
# Takes about 2 minutes per (model, kernels, threads, cpu) on 2 cores, plus setup the first time.
set -euo pipefail
cd "$(dirname "$0")/.."
export EDGE_TL_SHARED="${EDGE_TL_SHARED:-$(cd .. && pwd)/shared}"
models="mobilenet-v2-f32 mobilenet-v2-int8" threads="1" kernels="neon" cpus="cortex-a72,cortex-a76"
while [ $# -gt 0 ]; do
  case "$1" in
    --models) models="$2"; shift 2 ;;
    --threads) threads="$2"; shift 2 ;;
    --kernels) kernels="$2"; shift 2 ;;
    --cpus) cpus="$2"; shift 2 ;;
    *) echo "arm-bench: unknown argument $1 (see the usage at the top of $0)" >&2; exit 2 ;;
  esac
done
icount="$EDGE_TL_SHARED/tools/arm-icount"
[ -x "$icount/icount.sh" ] || { echo "arm-bench: no $icount/icount.sh (EDGE_TL_SHARED?)" >&2; exit 1; }
bash "$icount/setup.sh" >&2 # idempotent: a few seconds once set up
bash scripts/cross-setup.sh >/dev/null
target=aarch64-unknown-linux-gnu
target_dir="$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')"
cargo build --release --target "$target" >&2
bin="$target_dir/$target/release/edge-tl"
photo_dir="$(mktemp -d)"; trap 'rm -rf "$photo_dir"' EXIT
cp "$EDGE_TL_SHARED/models/testdata/grace_hopper.bmp" "$photo_dir/"
file_of() { # the model file a manifest names, under $EDGE_TL_SHARED/models
  python3 - "$1" <<'PY'
import sys, tomllib
m = tomllib.load(open(f"models/{sys.argv[1]}.toml", "rb"))
print(m.get("file") or m["model"]["file"])
PY
}
# "... cpu CPU per_inference|per_iteration N ..." -> "CPU N"
counts() { awk '{c=""; for (i = 1; i < NF; i++) { if ($i == "cpu") c = $(i+1); if ($i ~ /^per_(inference|iteration)$/) p = $(i+1) } if (c != "" && p != "") print c, p; p = "" }'; }
declare -A ort
results=()
for model in $models; do
  file="$EDGE_TL_SHARED/models/$(file_of "$model")"
  while read -r cpu per; do ort["$model/$cpu"]=$per; done < <(
    bash "$icount/icount.sh" --cpu "$cpus" "$file" | counts)
  for k in $kernels; do
    for t in $threads; do
      atomic=(); [ "$t" = 1 ] || atomic=(--atomic)
      while read -r cpu per; do
        results+=("$model $k $t $cpu $per ${ort[$model/$cpu]}")
      done < <(bash "$icount/icount.sh" --cpu "$cpus" --sysroot /usr/aarch64-linux-gnu "${atomic[@]}" \
          --env EDGE_TL_SHARED="$EDGE_TL_SHARED" --env EDGE_TL_MODELS="$EDGE_TL_SHARED/models" \
          --env EDGE_TL_KERNELS="$k" -- \
          "$bin" bench --model "$model" --photos "$photo_dir" --rounds '{N}' --threads "$t" \
          --loop-frames 0 --no-train --json | counts)
    done
  done
done
echo "instructions per inference (grace_hopper.bmp, embedding), qemu CPU models; edge-tl $(git describe --always --dirty)"
printf '%-20s %-8s %-7s %-11s %14s %14s %7s\n' model kernels threads cpu edge-tl onnxruntime ratio
for r in "${results[@]}"; do
  read -r model k t cpu per o <<<"$r"
  printf '%-20s %-8s %-7s %-11s %14s %14s %7s\n' "$model" "$k" "$t" "$cpu" "$per" "$o" \
    "$(python3 -c "print(f'{$per / $o:.2f}x')")"
done
