#!/usr/bin/env python3
"""edge-tl's benchmark and its peer, onnxruntime, on the same model file and the same input
tensors, in one run; prints both and the latency ratio.

usage: bench.py EDGE_TL_BINARY [--model NAME] [--rounds N] [--loop-frames N] [--busy N] [--json]
edge-tl is measured at 1 thread, on all cores and with `--threads auto` (run's default),
onnxruntime at 1 thread and on all cores, in the same run. `--busy N` runs N busy loops at
`nice -n 10` beside all of it (a Pi that also runs other services), stopped at the end.
Needs `pip install -r scripts/requirements.txt` and $EDGE_TL_SHARED (default ../shared).
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np
import onnxruntime as ort

from peer_common import shared_setup


def percentile(values, q):
    values = sorted(values)
    rank = max(1, min(len(values), int(np.ceil(q * len(values)))))
    return values[rank - 1]


def ort_latencies(index, out_dir, threads, rounds):
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    sess = ort.InferenceSession(index["model_path"], so, providers=["CPUExecutionProvider"])
    tensors = [np.fromfile(os.path.join(out_dir, it["tensor"]), dtype=it["dtype"]).reshape(it["shape"])
               for it in index["items"]]
    names = [index["embedding_output"]]
    for t in tensors:  # warm-up
        sess.run(names, {index["input_name"]: t})
    times = []
    for _ in range(rounds):
        for t in tensors:
            start = time.perf_counter()
            sess.run(names, {index["input_name"]: t})
            times.append((time.perf_counter() - start) * 1e3)
    return percentile(times, 0.5), percentile(times, 0.9)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("binary")
    ap.add_argument("--model", default="mobilenet-v2-f32")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--loop-frames", type=int, default=100)
    ap.add_argument("--busy", type=int, default=0,
                    help="busy loops at nice 10 running beside the measurements")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    busy = [subprocess.Popen(["nice", "-n", "10", sys.executable, "-c", "while True: pass"])
            for _ in range(args.busy)]
    try:
        return measure(args)
    finally:
        for p in busy:
            p.kill()
            p.wait()


def measure(args):
    _, env, photos_dir, photos = shared_setup()
    cores = os.cpu_count() or 1

    def edge_bench(threads, loop_frames):
        return json.loads(subprocess.run(
            [args.binary, "bench", "--json", "--model", args.model, "--rounds", str(args.rounds),
             "--photos", photos_dir, "--threads", str(threads), "--loop-frames", str(loop_frames)],
            check=True, env=env, capture_output=True, text=True).stdout)

    edge = edge_bench(1, args.loop_frames)
    edge_all = edge_bench(cores, args.loop_frames)
    edge_auto = edge_bench("auto", args.loop_frames)
    with tempfile.TemporaryDirectory() as out:
        subprocess.run([args.binary, "dump-inputs", "--model", args.model, "-o", out, *photos],
                       check=True, env=env, stdout=subprocess.DEVNULL)
        with open(os.path.join(out, "index.json")) as f:
            index = json.load(f)
        ort1 = ort_latencies(index, out, 1, args.rounds)
        ort_all = ort_latencies(index, out, os.cpu_count() or 1, args.rounds)
    report = {
        "model": args.model,
        "edge_tl": edge,
        "edge_tl_all_cores": edge_all,
        "edge_tl_auto": edge_auto,
        "busy_loops": args.busy,
        "onnxruntime_1_thread_ms_p50": ort1[0],
        "onnxruntime_1_thread_ms_p90": ort1[1],
        "onnxruntime_all_cores_ms_p50": ort_all[0],
        "onnxruntime_all_cores_ms_p90": ort_all[1],
        "ratio_p50_1_thread": edge["extract_ms_p50"] / ort1[0],
        "ratio_p50_all_cores": edge_all["extract_ms_p50"] / ort_all[0],
        "cores": os.cpu_count(),
        "onnxruntime": ort.__version__,
    }
    if args.json:
        print(json.dumps(report))
        return 0
    print(f"model {args.model}, {edge['pictures']} photos x {edge['rounds']} rounds, {os.cpu_count()} cores, "
          f"kernels {edge['kernels']} on a CPU with {edge['cpu_flags']}"
          + (f", beside {args.busy} busy loop(s) at nice 10" if args.busy else ""))
    print(f"{'':28} {'p50 ms':>8} {'p90 ms':>8}")
    print(f"{'edge-tl, 1 thread':28} {edge['extract_ms_p50']:>8.1f} {edge['extract_ms_p90']:>8.1f}")
    print(f"{'onnxruntime, 1 thread':28} {ort1[0]:>8.1f} {ort1[1]:>8.1f}")
    print(f"{'edge-tl, all cores':28} {edge_all['extract_ms_p50']:>8.1f} {edge_all['extract_ms_p90']:>8.1f}")
    print(f"{'onnxruntime, all cores':28} {ort_all[0]:>8.1f} {ort_all[1]:>8.1f}")
    print(f"{'edge-tl, auto':28} {edge_auto['extract_ms_p50']:>8.1f} {edge_auto['extract_ms_p90']:>8.1f}"
          f"   (on {edge_auto['threads']} at the end)")
    print(f"ratio edge-tl / onnxruntime (p50): {report['ratio_p50_1_thread']:.2f}x at 1 thread, "
          f"{report['ratio_p50_all_cores']:.2f}x on all cores")
    for name, run in [("1 thread", edge), (f"{cores} threads", edge_all), ("auto", edge_auto)]:
        loop = run.get("loop")
        if loop:
            print(f"camera loop, {name + ':':11} {loop['fps']:5.1f} frames/s over {loop['frames']} frames of {loop['stream']} "
                  f"(on {loop['threads']} at the end); p50 decode {loop['decode_ms_p50']:.1f} ms, "
                  f"resize {loop['resize_ms_p50']:.1f} ms, extract {loop['extract_ms_p50']:.1f} ms, "
                  f"head {loop['head_ms_p50']:.2f} ms")
    print(f"edge-tl load {edge['load_ms']:.0f} ms, start-up to first prediction {edge['first_prediction_ms']:.0f} ms, "
          f"decode+resize p50 {edge['preprocess_ms_p50']:.1f} ms")
    if edge.get("train_ms") is not None:
        print(f"edge-tl head training: {edge['train_ms']:.0f} ms for {edge['train_samples']} samples (embeddings cached)")
    print(f"edge-tl peak RSS {edge['peak_rss_mib']:.0f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
