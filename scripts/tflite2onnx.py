#!/usr/bin/env python3
"""Reproduces edge-tl's ONNX backbones from the public Coral TFLite files.

    pip install tensorflow-cpu tf2onnx onnx onnxruntime    # in a separate venv: tensorflow is large
    python3 scripts/tflite2onnx.py mobilenet_v2_1.0_224_quant.tflite out_qdq.onnx
    python3 scripts/tflite2onnx.py mobilenet_v2_1.0_224_quant.tflite out_f32.onnx --dequantize
    python3 scripts/tflite2onnx.py mobilenet_v2_1.0_224_quant.tflite out.onnx --compare REFERENCE.onnx

tf2onnx (opset 13) converts the uint8 TFLite graph to QDQ ONNX (or, with --dequantize, to
float weights); this script then names the interface the way the manifests in models/ expect:
input `input` (uint8 NHWC), outputs `probs` (the model's own output), `logits` (the classifier's squeezed output,
dequantized) and `embedding` (the float global average pool of the last 1x1 conv + ReLU6,
before its int8 requantization, flattened). With --compare it runs both files in onnxruntime on
random pictures and reports the largest output differences.

The QLinearConv variant (`*_qop.onnx`) is not produced by this script.
"""
import argparse
import subprocess
import sys
import tempfile

import numpy as np
import onnx
from onnx import helper


def convert(tflite, out, dequantize):
    with tempfile.NamedTemporaryFile(suffix=".onnx") as tmp:
        cmd = [sys.executable, "-m", "tf2onnx.convert", "--tflite", tflite, "--output", tmp.name, "--opset", "13"]
        if dequantize:
            cmd.append("--dequantize")
        subprocess.run(cmd, check=True)
        model = onnx.load(tmp.name)
    g = model.graph
    assert len(g.input) == 1 and g.input[0].name == "input", [i.name for i in g.input]
    consumers = {}
    for n in g.node:
        for i in n.input:
            consumers.setdefault(i, []).append(n)

    def dequantized(name):
        # The float value of `name`: its DequantizeLinear when it is int8, or after its
        # QuantizeLinear -> DequantizeLinear rounding (QDQ files); `name` itself otherwise.
        for q in consumers.get(name, []):
            if q.op_type == "DequantizeLinear":
                return q.output[0]
            if q.op_type == "QuantizeLinear":
                for dq in consumers.get(q.output[0], []):
                    if dq.op_type == "DequantizeLinear":
                        return dq.output[0]
        return name

    pool = [n for n in g.node if n.op_type == "AveragePool"][-1]
    squeeze = [n for n in g.node if n.op_type == "Reshape"][-1]
    embedding_src = pool.output[0]          # float global average pool, before requantization
    logits_src = dequantized(squeeze.output[0])
    old_out = g.output[0].name
    g.node.extend([
        helper.make_node("Identity", [old_out], ["probs"], name="probs"),
        helper.make_node("Identity", [logits_src], ["logits"], name="logits"),
        helper.make_node("Flatten", [embedding_src], ["embedding"], name="embedding", axis=1),
    ])
    elem = g.output[0].type.tensor_type.elem_type
    del g.output[:]
    classes = 1001
    g.output.extend([
        helper.make_tensor_value_info("probs", elem, [1, classes]),
        helper.make_tensor_value_info("logits", onnx.TensorProto.FLOAT, [1, classes]),
        helper.make_tensor_value_info("embedding", onnx.TensorProto.FLOAT, [1, "embedding_dim"]),
    ])
    onnx.checker.check_model(model)
    onnx.save(model, out)


def compare(a, b):
    import onnxruntime as ort
    sa = ort.InferenceSession(a, providers=["CPUExecutionProvider"])
    sb = ort.InferenceSession(b, providers=["CPUExecutionProvider"])
    shape = [d.dim_value for d in onnx.load(a).graph.input[0].type.tensor_type.shape.dim]
    rng = np.random.default_rng(0)
    worst = {"embedding": 0.0, "logits": 0.0}
    for _ in range(4):
        x = rng.integers(0, 256, size=shape, dtype=np.uint8)
        for name in worst:
            ya, = sa.run([name], {"input": x})
            yb, = sb.run([name], {"input": x})
            worst[name] = max(worst[name], float(np.abs(ya.ravel() - yb.ravel()).max()))
    print(f"largest difference to {b}: " + ", ".join(f"{k} {v:.3g}" for k, v in worst.items()))
    return worst


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("tflite")
    ap.add_argument("out")
    ap.add_argument("--dequantize", action="store_true", help="float32 weights instead of QDQ")
    ap.add_argument("--compare", metavar="REFERENCE.onnx")
    args = ap.parse_args()
    convert(args.tflite, args.out, args.dequantize)
    print(f"wrote {args.out}")
    if args.compare:
        worst = compare(args.out, args.compare)
        return 0 if max(worst.values()) < 1e-4 else 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
