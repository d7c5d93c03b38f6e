#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Demo client for the fall-detection pipeline.

Sends the two client samples of the reference vectors ("not fall" and
"fall", 9 accelerometer samples x 3 axes in tag units) as DT_INT32 int_val
tensors named "array" on one stream of the extended protocol, and prints the
confidence the server returns next to the expected float32 output:

    $ /usr/bin/python3 examples/fall-detection/client.py --port 50051
    id=1 not_fall  confidence=0.25607  (expected 0.25607)
    id=2 fall      confidence=0.96048  (expected 0.96048)

Exits 1 when a confidence differs from the expected value by more than
1e-5, when an answer is missing, or when the call fails. The Python stubs
are generated from proto/ at start-up (tests/integration/mi_proto.py), so
the client needs grpcio and grpcio-tools.
"""

import argparse
import json
import pathlib
import sys

REPO = pathlib.Path(__file__).resolve().parents[2]
sys.dont_write_bytecode = True  # keep the source tree clean
sys.path.insert(0, str(REPO / "tests" / "integration"))

import grpc  # noqa: E402
import mi_proto  # noqa: E402

DEFAULT_VECTORS = REPO / ".." / "shared" / "reference" / "fall-detection" \
    / "vectors.json"
TOL = 1e-5


def make_request(pb, sample):
    req = pb.extended_pb2.ExtendedInferenceRequest(id=int(sample["id"]))
    t = req.input["array"]
    t.dtype = pb.types_pb2.DT_INT32
    for size in (len(sample["raw"]), len(sample["raw"][0])):
        t.tensor_shape.dim.add(size=size)
    t.int_val.extend(int(v) for row in sample["raw"] for v in row)
    return req


def main():
    p = argparse.ArgumentParser(description="fall-detection demo client")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=50051)
    p.add_argument("--vectors", default=str(DEFAULT_VECTORS.resolve()),
                   help="vectors.json of the fall-detection reference")
    p.add_argument("--timeout", type=float, default=10.0,
                   help="seconds for the whole call")
    args = p.parse_args()

    samples = json.loads(pathlib.Path(args.vectors).read_text())[
        "client_samples"]
    pb = mi_proto.load(REPO)
    requests = [make_request(pb, s) for s in samples]

    target = f"{args.host}:{args.port}"
    answers = {}
    with grpc.insecure_channel(target) as channel:
        stub = pb.extended_grpc.ExtendedInferenceServiceStub(channel)
        try:
            for resp in stub.predict(iter(requests), timeout=args.timeout):
                answers[resp.id] = resp
        except grpc.RpcError as e:
            print(f"error: {target}: {e.code().name}: {e.details()}",
                  file=sys.stderr)
            return 1

    ok = True
    width = max(len(s["name"]) for s in samples)
    for s in samples:
        want = float(s["output_f32"])
        resp = answers.get(int(s["id"]))
        if resp is None or "prediction" not in resp.output \
                or not resp.output["prediction"].float_val:
            print(f"id={s['id']} {s['name']:<{width}}  no prediction "
                  f"(expected {want:.5f})")
            ok = False
            continue
        got = resp.output["prediction"].float_val[0]
        mark = "" if abs(got - want) <= TOL else "  MISMATCH"
        ok = ok and not mark
        print(f"id={s['id']} {s['name']:<{width}}  confidence={got:.5f}  "
              f"(expected {want:.5f}){mark}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
