#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
#
# Builds the fall-detection model as an ONNX file from the plain-number
# reference description (model.json).
#
# The graph follows section 2.4 of the reference README: the [batch, 9, 4]
# input is transposed to time-major order, run through two ONNX LSTM nodes
# whose gate blocks are reordered from the stored i, f, g, o to ONNX's
# i, o, f, g, with hard-sigmoid gates (alpha 0.2, beta 0.5), and the last
# hidden state of the second LSTM goes through Gemm and Sigmoid.  Weights
# are read from their float32 bit patterns, so the file holds exactly the
# stored values.  The output is deterministic: the same model.json always
# gives the same bytes.
#
# Usage: build_model.py [model.json [model.onnx]]
#   model.json defaults to <repo>/../shared/reference/fall-detection/
#   model.json, where <repo> is two levels above this script; model.onnx
#   defaults to the folder of this script.

import argparse
import json
import os
import struct
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper

OPSET = 17
IR_VERSION = 8

INPUT_NAME = "lstm_input"
OUTPUT_NAME = "dense"
N_STEPS = 9
N_FEATURES = 4

HERE = os.path.dirname(os.path.abspath(__file__))
REPO_ROOT = os.path.dirname(os.path.dirname(HERE))
DEFAULT_JSON = os.path.join(REPO_ROOT, "..", "shared", "reference",
                            "fall-detection", "model.json")
DEFAULT_OUT = os.path.join(HERE, "model.onnx")


def load_tensors(path):
    """Returns {name: float32 array} decoded from values_f32_hex."""
    with open(path, "r", encoding="utf-8") as f:
        doc = json.load(f)
    tensors = {}
    for entry in doc["tensors"]:
        bits = [int(h, 16) for h in entry["values_f32_hex"]]
        raw = struct.pack("<%dI" % len(bits), *bits)
        values = np.frombuffer(raw, dtype="<f4").astype(np.float32)
        shape = tuple(entry["shape"])
        if values.size != int(np.prod(shape)):
            raise ValueError("tensor '%s': %d values for shape %s"
                             % (entry["name"], values.size, shape))
        # The decimals must describe the same float32 values as the bits.
        decimals = np.asarray(entry["values"], dtype=np.float64)
        if not np.array_equal(decimals.astype(np.float32), values):
            raise ValueError("tensor '%s': values and values_f32_hex differ"
                             % entry["name"])
        tensors[entry["name"]] = values.reshape(shape)
    return doc, tensors


def reorder_gates(a, units):
    """Reorders row blocks from the stored i, f, g, o to ONNX i, o, f, g."""
    blocks = [a[k * units:(k + 1) * units] for k in range(4)]
    i, f, g, o = blocks
    return np.concatenate([i, o, f, g], axis=0)


def lstm_initializers(prefix, tensors, layer):
    """Returns the W, R, B initializers of one LSTM layer."""
    w = tensors[layer + ".input_kernel"]
    r = tensors[layer + ".recurrent_kernel"]
    b = tensors[layer + ".bias"]
    units = r.shape[1]
    if w.shape[0] != 4 * units or r.shape[0] != 4 * units:
        raise ValueError("layer '%s': kernels do not hold 4 gates" % layer)
    w_onnx = reorder_gates(w, units)[np.newaxis, :, :]
    r_onnx = reorder_gates(r, units)[np.newaxis, :, :]
    # ONNX has an input bias Wb and a recurrent bias Rb; the stored model
    # has one bias, so it goes into Wb and Rb stays zero.
    b_onnx = np.concatenate(
        [reorder_gates(b, units), np.zeros(4 * units, dtype=np.float32)]
    )[np.newaxis, :]
    inits = [
        numpy_initializer(prefix + "_W", w_onnx),
        numpy_initializer(prefix + "_R", r_onnx),
        numpy_initializer(prefix + "_B", b_onnx),
    ]
    return units, inits


def numpy_initializer(name, array):
    array = np.ascontiguousarray(array, dtype=np.float32)
    return helper.make_tensor(name, TensorProto.FLOAT, list(array.shape),
                              array.tobytes(), raw=True)


def lstm_node(prefix, x, units, outputs):
    return helper.make_node(
        "LSTM",
        inputs=[x, prefix + "_W", prefix + "_R", prefix + "_B"],
        outputs=outputs,
        name=prefix,
        hidden_size=units,
        direction="forward",
        activations=["HardSigmoid", "Tanh", "Tanh"],
        activation_alpha=[0.2],
        activation_beta=[0.5],
    )


def build(doc, tensors):
    units1, inits1 = lstm_initializers("lstm1", tensors, "lstm1")
    units2, inits2 = lstm_initializers("lstm2", tensors, "lstm2")
    kernel = tensors["dense.kernel"]
    bias = tensors["dense.bias"]
    initializers = inits1 + inits2 + [
        numpy_initializer("dense_kernel", kernel),
        numpy_initializer("dense_bias", bias),
        helper.make_tensor("squeeze_axis1", TensorProto.INT64, [1], [1]),
        helper.make_tensor("squeeze_axis0", TensorProto.INT64, [1], [0]),
    ]
    nodes = [
        # [batch, 9, 4] -> [9, batch, 4]: ONNX LSTM is time-major.
        helper.make_node("Transpose", [INPUT_NAME], ["x_time_major"],
                         name="to_time_major", perm=[1, 0, 2]),
        # Y is [9, 1 (direction), batch, 4].
        lstm_node("lstm1", "x_time_major", units1, ["lstm1_Y"]),
        helper.make_node("Squeeze", ["lstm1_Y", "squeeze_axis1"],
                         ["lstm1_seq"], name="lstm1_squeeze"),
        # Only Y_h ([1 (direction), batch, 2]) of the second layer is used.
        lstm_node("lstm2", "lstm1_seq", units2, ["", "lstm2_Y_h"]),
        helper.make_node("Squeeze", ["lstm2_Y_h", "squeeze_axis0"],
                         ["lstm2_h"], name="lstm2_squeeze"),
        helper.make_node("Gemm", ["lstm2_h", "dense_kernel", "dense_bias"],
                         ["logit"], name="dense_gemm", transB=1),
        helper.make_node("Sigmoid", ["logit"], [OUTPUT_NAME],
                         name="dense_sigmoid"),
    ]
    graph = helper.make_graph(
        nodes,
        "fall_detection",
        inputs=[helper.make_tensor_value_info(
            INPUT_NAME, TensorProto.FLOAT, ["batch", N_STEPS, N_FEATURES])],
        outputs=[helper.make_tensor_value_info(
            OUTPUT_NAME, TensorProto.FLOAT, ["batch", 1])],
        initializer=initializers,
    )
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", OPSET)],
        producer_name="modinfer",
        producer_version="1",
        doc_string="fall-detection %s: LSTM(4) -> LSTM(2) -> Dense(1) "
                   "-> sigmoid, hard-sigmoid gates"
                   % doc["model"].get("configured_version", ""),
    )
    model.ir_version = IR_VERSION
    model.model_version = 1
    return model


def main(argv):
    parser = argparse.ArgumentParser(
        description="Build the fall-detection ONNX model from model.json.")
    parser.add_argument("json", nargs="?", default=DEFAULT_JSON,
                        help="reference model.json (default: %(default)s)")
    parser.add_argument("output", nargs="?", default=DEFAULT_OUT,
                        help="ONNX file to write (default: %(default)s)")
    args = parser.parse_args(argv)

    doc, tensors = load_tensors(args.json)
    model = build(doc, tensors)
    onnx.checker.check_model(model, full_check=True)

    data = model.SerializeToString(deterministic=True)
    tmp = args.output + ".tmp"
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, args.output)
    print("wrote %s (%d bytes)" % (args.output, len(data)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
