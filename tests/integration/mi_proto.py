# SPDX-License-Identifier: Apache-2.0
"""Python stubs for modinfer's two gRPC protocols, generated when first needed.

The repository keeps only the .proto files. load() runs grpc_tools.protoc on
every .proto file under <repo>/proto into a fresh temporary directory, puts
that directory first on sys.path, imports the generated modules and returns
them in one namespace:

    pb = mi_proto.load(repo_root)
    t = pb.tensor_pb2.TensorProto(dtype=pb.types_pb2.DT_INT32)
    req = pb.extended_pb2.ExtendedInferenceRequest(id=1)
    stub = pb.extended_grpc.ExtendedInferenceServiceStub(channel)

The generated tree contains a package named "tensorflow"; load() gives each
of its folders an __init__.py so that the generated package wins over an
installed TensorFlow. The directory is removed when the process exits. A
second call with the same proto folder returns the same namespace.
"""

import atexit
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile
import types

_loaded = {}


def _proto_files(proto_dir):
    files = sorted(p.relative_to(proto_dir).as_posix()
                   for p in proto_dir.rglob("*.proto"))
    if not files:
        raise FileNotFoundError(f"no .proto files under {proto_dir}")
    return files


def _generate(proto_dir, out_dir):
    cmd = [sys.executable, "-m", "grpc_tools.protoc", f"-I{proto_dir}",
           f"--python_out={out_dir}", f"--grpc_python_out={out_dir}"]
    cmd += _proto_files(proto_dir)
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"protoc failed ({done.returncode}): "
                           f"{' '.join(cmd)}\n{done.stderr.strip()}")
    for sub in pathlib.Path(out_dir).rglob("*"):
        if sub.is_dir():
            (sub / "__init__.py").touch()


def load(repo_root, proto_dir=None):
    """Generate and import the stubs; returns a namespace of modules.

    repo_root: the modinfer checkout; proto_dir defaults to <repo_root>/proto.
    Raises RuntimeError when protoc fails and ImportError when grpc_tools or
    protobuf is missing.
    """
    proto_dir = pathlib.Path(proto_dir or pathlib.Path(repo_root) / "proto")
    proto_dir = proto_dir.resolve()
    key = str(proto_dir)
    if key in _loaded:
        return _loaded[key]

    out_dir = tempfile.mkdtemp(prefix="modinfer-stubs-")
    atexit.register(shutil.rmtree, out_dir, True)
    _generate(proto_dir, out_dir)
    sys.path.insert(0, out_dir)

    import basic_inference_pb2
    import basic_inference_pb2_grpc
    import extended_inference_pb2
    import extended_inference_pb2_grpc
    from tensorflow.core.framework import tensor_pb2
    from tensorflow.core.framework import tensor_shape_pb2
    from tensorflow.core.framework import types_pb2

    pb = types.SimpleNamespace(
        out_dir=out_dir,
        tensor_pb2=tensor_pb2,
        tensor_shape_pb2=tensor_shape_pb2,
        types_pb2=types_pb2,
        extended_pb2=extended_inference_pb2,
        extended_grpc=extended_inference_pb2_grpc,
        basic_pb2=basic_inference_pb2,
        basic_grpc=basic_inference_pb2_grpc,
        EXTENDED_PREDICT="/extended_inference.ExtendedInferenceService/predict",
        BASIC_PREDICT="/basic_inference.BasicInferenceService/predict",
    )
    _loaded[key] = pb
    return pb


if __name__ == "__main__":
    here = pathlib.Path(__file__).resolve()
    root = sys.argv[1] if len(sys.argv) > 1 else here.parents[2]
    ns = load(root)
    for name, mod in sorted(vars(ns).items()):
        if isinstance(mod, types.ModuleType):
            print(f"{name:18} {os.path.relpath(mod.__file__, ns.out_dir)}")
