#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
#
# Builds the two synthetic models of the benchmarks and puts their pipeline
# files beside them:
#
#   identity.onnx  input x int32 [batch,9,3] -> y = Identity(x).  A model
#                  that costs nothing, so that a benchmark on it measures the
#                  server and the network alone (bench/run_rtt.sh).
#   cnn.onnx       input image fp32 [batch,3,224,224] -> logits fp32
#                  [batch,10]: five 3x3 Conv+Relu layers (3->32 stride 2,
#                  32->32, 32->64 stride 2, 64->64, 64->64; 224 -> 112 -> 56),
#                  GlobalAveragePool, Flatten, Gemm to 10 classes.  About
#                  0.42 GMAC per image: the model dominates the cost of a
#                  request (bench/run_compute.sh).  Random weights from a
#                  fixed seed.
#
# The pipeline files identity.json and cnn.json live in this folder and name
# their model by a relative path ("identity.onnx"), which the server reads
# relative to the pipeline file's folder; so this script copies them into
# the output folder, next to the models, and the benchmarks serve the
# copies.  The output is deterministic: no timestamps, ONNX opset 17, and
# weights from numpy's PCG64 generator with a fixed seed, so the same
# script writes the same bytes (numpy documents that a generator's stream
# may change between numpy versions; the benchmarks compare only figures
# of one run, so that would not matter).
#
# Usage: build_models.py [--out DIR]     (default <repo>/bench/out/models)

import argparse
import os
import shutil
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 17
IR_VERSION = 8
SEED = 20241126

HERE = os.path.dirname(os.path.abspath(__file__))
REPO_ROOT = os.path.dirname(os.path.dirname(HERE))
DEFAULT_OUT = os.path.join(REPO_ROOT, "bench", "out", "models")
PIPELINES = ("identity.json", "cnn.json")

# (output channels, stride) of each 3x3 convolution, in order.
CNN_LAYERS = ((32, 2), (32, 1), (64, 2), (64, 1), (64, 1))
CNN_CLASSES = 10
CNN_SIZE = 224


def make_model(graph):
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", OPSET)],
        producer_name="modinfer-bench-models")
    model.ir_version = IR_VERSION
    onnx.checker.check_model(model)
    return model


def build_identity():
    x = helper.make_tensor_value_info("x", TensorProto.INT32,
                                      ["batch", 9, 3])
    y = helper.make_tensor_value_info("y", TensorProto.INT32,
                                      ["batch", 9, 3])
    node = helper.make_node("Identity", ["x"], ["y"], name="identity")
    graph = helper.make_graph([node], "identity", [x], [y])
    return make_model(graph)


def build_cnn():
    rng = np.random.default_rng(SEED)
    nodes = []
    inits = []
    prev = "image"
    c_in = 3
    size = CNN_SIZE
    for i, (c_out, stride) in enumerate(CNN_LAYERS):
        fan_in = c_in * 3 * 3
        # He initialisation keeps the activations in a sane range through
        # the Relu layers, so the logits are finite and distinct.
        w = rng.standard_normal((c_out, c_in, 3, 3)) * np.sqrt(2.0 / fan_in)
        b = rng.standard_normal(c_out) * 0.01
        wn = "conv%d.weight" % i
        bn = "conv%d.bias" % i
        inits.append(numpy_helper.from_array(w.astype(np.float32), wn))
        inits.append(numpy_helper.from_array(b.astype(np.float32), bn))
        conv = "conv%d" % i
        relu = "relu%d" % i
        nodes.append(helper.make_node(
            "Conv", [prev, wn, bn], [conv], name=conv,
            kernel_shape=[3, 3], pads=[1, 1, 1, 1],
            strides=[stride, stride]))
        nodes.append(helper.make_node("Relu", [conv], [relu], name=relu))
        prev = relu
        c_in = c_out
        size //= stride
    nodes.append(helper.make_node("GlobalAveragePool", [prev], ["pool"],
                                  name="pool"))
    nodes.append(helper.make_node("Flatten", ["pool"], ["flat"], name="flat",
                                  axis=1))
    w = rng.standard_normal((CNN_CLASSES, c_in)) * np.sqrt(1.0 / c_in)
    b = rng.standard_normal(CNN_CLASSES) * 0.01
    inits.append(numpy_helper.from_array(w.astype(np.float32), "fc.weight"))
    inits.append(numpy_helper.from_array(b.astype(np.float32), "fc.bias"))
    nodes.append(helper.make_node("Gemm", ["flat", "fc.weight", "fc.bias"],
                                  ["logits"], name="fc", transB=1))
    image = helper.make_tensor_value_info(
        "image", TensorProto.FLOAT, ["batch", 3, CNN_SIZE, CNN_SIZE])
    logits = helper.make_tensor_value_info("logits", TensorProto.FLOAT,
                                           ["batch", CNN_CLASSES])
    graph = helper.make_graph(nodes, "cnn", [image], [logits],
                              initializer=inits)
    return make_model(graph), size


def cnn_macs():
    """Multiply-accumulates per image of the convolutions and the Gemm."""
    total = 0
    c_in = 3
    size = CNN_SIZE
    for c_out, stride in CNN_LAYERS:
        size //= stride
        total += size * size * c_out * c_in * 9
        c_in = c_out
    return total + c_in * CNN_CLASSES


def write(model, path):
    data = model.SerializeToString()
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, path)
    return len(data)


def main():
    ap = argparse.ArgumentParser(
        description="Build identity.onnx and cnn.onnx and copy their "
                    "pipeline files beside them.")
    ap.add_argument("--out", default=DEFAULT_OUT,
                    help="output folder (default %(default)s)")
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)

    n = write(build_identity(), os.path.join(args.out, "identity.onnx"))
    print("identity.onnx: %d bytes" % n)
    cnn, final = build_cnn()
    n = write(cnn, os.path.join(args.out, "cnn.onnx"))
    print("cnn.onnx: %d bytes, %dx%d before pooling, %.3f GMAC per image"
          % (n, final, final, cnn_macs() / 1e9))
    for name in PIPELINES:
        shutil.copyfile(os.path.join(HERE, name),
                        os.path.join(args.out, name))
    print("pipelines: %s in %s" % (", ".join(PIPELINES), args.out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
