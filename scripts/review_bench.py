#!/usr/bin/env python3
"""Does labelling the review queue's frames first help more than labelling random ones?
Measured on the 37 Oxford-IIIT Pet breeds, with the folder names standing in for the person.

    python3 scripts/review_bench.py target/debug/edge-tl [--seeds 5] [--start 5] [--add 5]
        [--set pets37]

For each seed: a head is trained on --start pictures per breed (chosen at random from the
train split); the rest of the train split is the "camera's" pool. `edge-tl predict` scores
the pool with that head and the pool is put in the review queue's order (the smallest margin
between the best two labels first, as `GET /api/review` lists it). Then two heads are
trained on the start pictures plus --add more per breed: "queue" takes each breed's first
--add pictures in that order, "random" takes --add at random. Both are measured with
`edge-tl eval` on the test split. Prints one line per seed and the mean of each.

(The queue's other filters do not act here: every pool picture is a different photo, so none
is a near copy, and every picture is offered, where a camera offers only unsure, close and
changed frames and one ordinary frame in 250.)
"""

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile


def run(cmd, **kw):
    out = subprocess.run(cmd, capture_output=True, text=True, **kw)
    if out.returncode != 0:
        sys.exit(f"{' '.join(cmd[:3])}... failed:\n{out.stderr}")
    return out.stdout


def link_set(pictures, into):
    """A dataset folder of symbolic links: {label: [path, ...]} -> into/<label>/<name>."""
    for label, paths in pictures.items():
        os.makedirs(os.path.join(into, label), exist_ok=True)
        for p in paths:
            os.symlink(p, os.path.join(into, label, os.path.basename(p)))


def train(binary, pictures, work, name, cache):
    data = os.path.join(work, name)
    link_set(pictures, data)
    head = os.path.join(work, f"{name}.head")
    run([binary, "train", "--data", data, "--out", head, "--cache-dir", cache])
    return head


def accuracy(binary, head, test, cache):
    return json.loads(run([binary, "eval", head, test, "--json", "--cache-dir", cache]))["accuracy"]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("binary")
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--start", type=int, default=5)
    ap.add_argument("--add", type=int, default=5)
    ap.add_argument("--set", default="pets37")
    a = ap.parse_args()
    shared = os.environ.get("EDGE_TL_SHARED", os.path.join(os.path.dirname(__file__), "../../shared"))
    root = os.path.join(shared, "data", a.set)
    train_dir, test = os.path.join(root, "train"), os.path.join(root, "test")
    everything = {
        label: sorted(os.path.join(train_dir, label, f) for f in os.listdir(os.path.join(train_dir, label)))
        for label in sorted(os.listdir(train_dir))
    }
    results = {"queue": [], "random": []}
    with tempfile.TemporaryDirectory() as work:
        cache = os.path.join(work, "cache")
        for seed in range(a.seeds):
            rng = random.Random(seed)
            start, pool = {}, []
            for label, paths in everything.items():
                chosen = rng.sample(paths, a.start)
                start[label] = chosen
                pool += [(label, p) for p in paths if p not in chosen]
            base = train(binary := a.binary, start, work, f"s{seed}-start", cache)
            lines = run([binary, "predict", base, "--json", "--top", "2"] + [p for _, p in pool])
            margins = {}
            for (label, path), line in zip(pool, lines.splitlines()):
                top = json.loads(line)["top"]
                margins[path] = top[0]["prob"] - (top[1]["prob"] if len(top) > 1 else 0.0)
            order = sorted(pool, key=lambda lp: (margins[lp[1]], lp[1]))
            by_queue = {label: list(ps) for label, ps in start.items()}
            for label, path in order:
                if len(by_queue[label]) < a.start + a.add:
                    by_queue[label].append(path)
            by_random = {
                label: ps + rng.sample([p for l, p in pool if l == label], a.add)
                for label, ps in start.items()
            }
            row = {}
            for name, pictures in (("queue", by_queue), ("random", by_random)):
                head = train(binary, pictures, work, f"s{seed}-{name}", cache)
                row[name] = accuracy(binary, head, test, cache)
                results[name].append(row[name])
            print(f"seed {seed}: start {a.start}/label {accuracy(binary, base, test, cache):.3f}; "
                  f"+{a.add} uncertain first {row['queue']:.3f}; +{a.add} random {row['random']:.3f}",
                  flush=True)
    mean = {k: sum(v) / len(v) for k, v in results.items()}
    wins = sum(q > r for q, r in zip(results["queue"], results["random"]))
    print(f"mean test accuracy over {a.seeds} seeds ({a.set}, {a.start} -> {a.start + a.add} per label): "
          f"uncertain first {mean['queue']:.3f}, random {mean['random']:.3f} "
          f"(difference {100 * (mean['queue'] - mean['random']):+.1f} points; "
          f"uncertain first ahead in {wins} of {a.seeds})")


if __name__ == "__main__":
    main()
