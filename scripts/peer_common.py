"""What the peer scripts (check_onnxruntime.py, cross_compare.py, bench.py) share: where the
shared models and test photos are, and when two runs of the network agree."""
import os

import numpy as np


def shared_setup():
    """($EDGE_TL_SHARED, an environment pointing edge-tl at its models, the test-photo folder,
    the test photos in name order)."""
    shared = os.environ.get("EDGE_TL_SHARED", "../shared")
    env = dict(os.environ, EDGE_TL_MODELS=os.path.join(shared, "models"), EDGE_TL_SHARED=shared)
    photos_dir = os.path.join(shared, "models", "testdata")
    photos = sorted(os.path.join(photos_dir, f) for f in os.listdir(photos_dir))
    return shared, env, photos_dir, photos


def agreement(emb_a, logits_a, emb_b, logits_b, min_cosine):
    """Embedding cosine, both ImageNet top-1 classes, and whether the cosine reaches
    `min_cosine` with the same top-1."""
    a, b = np.asarray(emb_a, dtype=np.float64).ravel(), np.asarray(emb_b, dtype=np.float64).ravel()
    cos = float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b) + 1e-12))
    top_a, top_b = int(np.argmax(logits_a)), int(np.argmax(logits_b))
    return cos, top_a, top_b, cos >= min_cosine and top_a == top_b
