#!/usr/bin/env python3
"""What `run --confirm N` trades: false changes of state against the frames a true change
waits, on the real test photos replayed as a "camera" that looks at one thing for a while.

    python3 scripts/confirm_bench.py target/debug/edge-tl [--run 10] [--confirm 1,2,3,4,5]
        [--smooth 1] [--sets catsdogs,pets37]

For each set (catsdogs, pets37) a head is trained on the train split; the test photos are
replayed in runs of --run photos of one label (the labels of the runs in a seeded random
order, each photo once), so every frame's decision is independent of the last: errors do
not come in bursts as on a real camera, where they do it is a lower bound on what --confirm
must absorb. For each N, `edge-tl run --confirm N` over the replay, and from its JSON lines:
false changes (the state changed to a label that is not the run's) per 1,000 frames, the mean
frames from a run's start until the state is the run's label, and the runs that end before.
"""

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))


def replay(test_dir, run, seed, into):
    """Links the test photos into `into` as runs of `run` photos of one label; returns the
    true label of each frame."""
    rng = random.Random(seed)
    runs = []
    for label in sorted(os.listdir(test_dir)):
        photos = sorted(os.listdir(os.path.join(test_dir, label)))
        for i in range(0, len(photos) - run + 1, run):
            runs.append([(label, os.path.join(test_dir, label, p)) for p in photos[i:i + run]])
    rng.shuffle(runs)
    truth = []
    for n, (label, photo) in enumerate(p for r in runs for p in r):
        os.symlink(photo, os.path.join(into, f"{n:05d}{os.path.splitext(photo)[1]}"))
        truth.append(label)
    return truth


def score(labels, truth, run):
    false_changes, waits, missed = 0, [], 0
    for start in range(0, len(truth), run):
        want = truth[start]
        reached = None
        for k in range(start, start + run):
            if k > 0 and labels[k] != labels[k - 1] and labels[k] != want:
                false_changes += 1
            if reached is None and labels[k] == want:
                reached = k - start
        if reached is None:
            missed += 1
        else:
            waits.append(reached)
    runs = len(truth) // run
    return 1000 * false_changes / len(truth), sum(waits) / max(len(waits), 1), missed, runs


def main():
    p = argparse.ArgumentParser()
    p.add_argument("binary")
    p.add_argument("--run", type=int, default=10, help="photos per run of one label")
    p.add_argument("--confirm", default="1,2,3,4,5")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--sets", default="catsdogs,pets37")
    p.add_argument("--smooth", default="1", help="run's --smooth")
    args = p.parse_args()
    shared = os.environ.get("EDGE_TL_SHARED", os.path.join(HERE, "..", "..", "shared"))
    env = dict(os.environ, EDGE_TL_MODELS=os.path.join(shared, "models"))
    print(f"runs of {args.run} photos of one label, seed {args.seed}; smooth {args.smooth}, "
          f"no threshold")
    print(f"{'set':>9} {'confirm':>7} {'false changes/1000 frames':>26} "
          f"{'mean wait (frames)':>19} {'runs missed':>12}")
    with tempfile.TemporaryDirectory() as work:
        for name in args.sets.split(","):
            head = os.path.join(work, f"{name}.head")
            subprocess.run([args.binary, "train", "--data",
                            os.path.join(shared, "data", name, "train"), "--out", head,
                            "--folds", "0"], check=True, env=env, stdout=subprocess.DEVNULL)
            frames = os.path.join(work, name)
            os.mkdir(frames)
            truth = replay(os.path.join(shared, "data", name, "test"), args.run, args.seed,
                           frames)
            for n in args.confirm.split(","):
                out = subprocess.run(
                    [args.binary, "run", "--head", head, "--source", f"dir:{frames}",
                     "--confirm", n, "--smooth", args.smooth, "--top", "1"],
                    check=True, env=env, capture_output=True, text=True).stdout
                labels = [json.loads(line)["label"] for line in out.splitlines()]
                assert len(labels) == len(truth), (len(labels), len(truth))
                false, wait, missed, runs = score(labels, truth, args.run)
                print(f"{name:>9} {n:>7} {false:>26.1f} {wait:>19.2f} {f'{missed}/{runs}':>12}")


if __name__ == "__main__":
    sys.exit(main())
