#!/usr/bin/env python3
"""Checks that edge-tl's extractor (tract) agrees with onnxruntime on the same input tensors.

For each model, `edge-tl dump-inputs --with-outputs` writes the exact tensors edge-tl feeds the
network plus tract's embeddings and logits; this script runs onnxruntime on those tensors and
requires, for every photo: embedding cosine >= 0.998 and the same ImageNet top-1 (the
EfficientNet-Lite int8 files, quantized after training, measured 0.99925-0.99957).

usage: check_onnxruntime.py EDGE_TL_BINARY [MODEL ...]   (needs: pip install onnxruntime numpy)
Environment: EDGE_TL_SHARED (default ../shared); models are taken from $EDGE_TL_SHARED/models.
"""
import json
import os
import subprocess
import sys
import tempfile

import numpy as np
import onnxruntime as ort

from peer_common import agreement, shared_setup

MIN_COSINE = 0.998
MODELS = ["mobilenet-v2-int8", "mobilenet-v2-f32", "mobilenet-v2-qop", "mobilenet-v1-int8",
          "efficientnet-lite0-f32", "efficientnet-lite0-int8", "efficientnet-lite2-f32",
          "efficientnet-lite2-int8"]


def main():
    binary = sys.argv[1]
    models = sys.argv[2:] or MODELS
    _, env, _, photos = shared_setup()
    failures = 0
    print(f"{'model':<24} {'photo':<18} {'cosine':>9} {'top-1 tract':>12} {'top-1 ort':>10}")
    for model in models:
        with tempfile.TemporaryDirectory() as out:
            subprocess.run([binary, "dump-inputs", "--with-outputs", "--model", model, "-o", out, *photos],
                           check=True, env=env, stdout=subprocess.DEVNULL)
            with open(os.path.join(out, "index.json")) as f:
                index = json.load(f)
            so = ort.SessionOptions()
            so.intra_op_num_threads = 1
            sess = ort.InferenceSession(index["model_path"], so, providers=["CPUExecutionProvider"])
            names = [index["embedding_output"], index["logits_output"]]
            for item in index["items"]:
                raw = np.fromfile(os.path.join(out, item["tensor"]), dtype=item["dtype"]).reshape(item["shape"])
                emb, logits = sess.run(names, {index["input_name"]: raw})
                cos, t1, o1, ok = agreement(item["embedding"], item["logits"], emb, logits.ravel(), MIN_COSINE)
                failures += not ok
                name = os.path.basename(item["source"])
                print(f"{model:<24} {name:<18} {cos:>9.6f} {t1:>12} {o1:>10}{'' if ok else '   FAIL'}")
    if failures:
        print(f"{failures} photo/model pairs disagree with onnxruntime")
        return 1
    print("tract agrees with onnxruntime on every photo and model")
    return 0


if __name__ == "__main__":
    sys.exit(main())
