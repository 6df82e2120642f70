#!/usr/bin/env python3
"""Runs the x86 build and a cross-compiled build (under qemu-user) on the same photos and a
small dataset, and checks they agree: embedding cosine >= 0.999 and the same ImageNet top-1 on
every test photo (dump-inputs --with-outputs), and the same head labels after `train` +
`predict` on a small cat/dog set. Prints the emulated timings for information only.

usage: cross_compare.py HOST_BINARY "RUNNER CROSS_BINARY"    e.g.
       cross_compare.py target/debug/edge-tl "qemu-aarch64 -L /usr/aarch64-linux-gnu target/aarch64-unknown-linux-gnu/release/edge-tl"
"""
import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time

from peer_common import agreement, shared_setup

MIN_COSINE = 0.999


def run(cmd, env):
    start = time.perf_counter()
    out = subprocess.run(cmd, check=True, env=env, capture_output=True, text=True)
    return out.stdout, time.perf_counter() - start


def main():
    host = [sys.argv[1]]
    cross = shlex.split(sys.argv[2])
    shared, env, _, photos = shared_setup()
    failures = 0
    with tempfile.TemporaryDirectory() as work:
        outputs = {}
        for name, binary in (("host", host), ("cross", cross)):
            out = os.path.join(work, name)
            _, secs = run(binary + ["dump-inputs", "--with-outputs", "-o", out, *photos], env)
            with open(os.path.join(out, "index.json")) as f:
                outputs[name] = json.load(f)["items"]
            print(f"{name}: dump-inputs on {len(photos)} photos took {secs:.1f} s")
        for h, c in zip(outputs["host"], outputs["cross"]):
            cos, t_h, t_c, ok = agreement(h["embedding"], h["logits"], c["embedding"], c["logits"], MIN_COSINE)
            failures += not ok
            print(f"  {os.path.basename(h['source']):<18} cosine {cos:.6f}  top-1 {t_h} / {t_c}{'' if ok else '  FAIL'}")

        data = os.path.join(work, "data")
        for label in ("cat", "dog"):
            src = os.path.join(shared, "data", "catsdogs", "train", label)
            os.makedirs(os.path.join(data, label))
            for f in sorted(os.listdir(src))[:8]:
                shutil.copy(os.path.join(src, f), os.path.join(data, label, f))
        tests = []
        for label in ("cat", "dog"):
            src = os.path.join(shared, "data", "catsdogs", "test", label)
            tests += [os.path.join(src, f) for f in sorted(os.listdir(src))[:4]]
        answers = {}
        for name, binary in (("host", host), ("cross", cross)):
            head = os.path.join(work, f"{name}.head")
            _, secs = run(binary + ["train", "--data", data, "--out", head, "--folds", "0", "--no-cache"], env)
            out, psecs = run(binary + ["predict", head, "--json", *tests], env)
            answers[name] = [json.loads(line)["label"] for line in out.splitlines()]
            print(f"{name}: train on 16 photos {secs:.1f} s, predict {len(tests)} photos {psecs:.1f} s: {answers[name]}")
        if answers["host"] != answers["cross"]:
            failures += 1
            print("  FAIL: the heads disagree")
    if failures:
        print(f"cross build disagrees with the host build ({failures} failures)")
        return 1
    print("the cross build agrees with the host build")
    return 0


if __name__ == "__main__":
    sys.exit(main())
