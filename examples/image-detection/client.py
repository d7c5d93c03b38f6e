#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Client of the image-detection example: text boxes in a folder of photos.

Raw pixels (pipeline.json): each image becomes 1200x900 RGB uint8 (an image
of another size is scaled to fit and padded on the right and bottom, and its
boxes are scaled back), B images go in one uint8 [B,900,1200,3] tensor
(tensor_content) of the paper's extended protocol, all requests on one
stream:

    build/modinfer serve examples/image-detection/pipeline.json &
    /usr/bin/python3 examples/image-detection/client.py --batch 4 photos/

Encoded files (pipeline_encoded.json): the JPEG or PNG files themselves, B
per request as a BYTES [B] tensor, over the Open Inference Protocol, gRPC
ModelInfer (default) or HTTP with the binary tensor data extension
(--http); the images of one request must have equal sizes:

    build/modinfer serve examples/image-detection/pipeline_encoded.json &
    /usr/bin/python3 examples/image-detection/client.py --encoded photos/
    /usr/bin/python3 examples/image-detection/client.py --encoded --http photos/

It prints, per image, every box (x0 y0 x1 y1 in the image's pixels, or the
four corners x,y of a quadrilateral) with its score; --draw OUTDIR writes
each image with its boxes drawn (ImageMagick's convert). Reading images
also goes through convert (Debian: imagemagick). Exit status: 0 when every
request was answered, 1 otherwise.
"""

import argparse
import json
import pathlib
import struct
import subprocess
import sys
import urllib.error
import urllib.request

HERE = pathlib.Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.dont_write_bytecode = True  # keep the source tree clean
sys.path.insert(0, str(REPO / "tests" / "integration"))
sys.path.insert(0, str(HERE))

import numpy as np  # noqa: E402

import make_images  # noqa: E402

WIDTH, HEIGHT = 1200, 900     # the declared input: uint8 [-1,900,1200,3]
INPUT = "image"
BOXES, SCORES, COUNTS = "boxes", "scores", "counts"
MODEL = "image-detection"
EXTENSIONS = {".png", ".jpg", ".jpeg", ".ppm", ".pnm", ".bmp", ".gif",
              ".webp", ".tif", ".tiff"}
CHANNEL_OPTIONS = [("grpc.enable_http_proxy", 0),
                   ("grpc.max_receive_message_length", 64 << 20),
                   ("grpc.max_send_message_length", 64 << 20)]


class ClientError(RuntimeError):
    """A request was refused or an answer is malformed."""


# ---- Images ----

def list_images(paths):
    """The image files among paths (folders are listed, sorted)."""
    files = []
    for p in map(pathlib.Path, paths):
        if p.is_dir():
            files += sorted(f for f in p.iterdir()
                            if f.suffix.lower() in EXTENSIONS)
        else:
            files.append(p)
    return files


def load_fitted(path):
    """(pixels uint8 [900,1200,3], scale) with the image fitted into 1200x900.

    scale converts boxes back: x_image = x_sent / scale.
    """
    h, w, data = make_images.read_rgb(path)
    if (w, h) == (WIDTH, HEIGHT):
        return np.frombuffer(data, np.uint8).reshape(HEIGHT, WIDTH, 3), 1.0
    scale = min(WIDTH / w, HEIGHT / h)
    nw, nh = max(1, round(w * scale)), max(1, round(h * scale))
    out = subprocess.run(
        ["convert", f"{path}[0]", "-background", "black", "-alpha", "remove",
         "-resize", f"{nw}x{nh}!", "-gravity", "northwest",
         "-extent", f"{WIDTH}x{HEIGHT}", "-colorspace", "sRGB",
         "-depth", "8", "rgb:-"], capture_output=True, check=True).stdout
    return np.frombuffer(out, np.uint8).reshape(HEIGHT, WIDTH, 3), scale


# ---- Responses ----

def tf_array(pb, t):
    """A numpy array from a TensorProto (tensor_content or typed values)."""
    dt = pb.types_pb2
    shape = [d.size for d in t.tensor_shape.dim]
    kinds = {dt.DT_FLOAT: (np.float32, "float_val"),
             dt.DT_INT32: (np.int32, "int_val"),
             dt.DT_INT64: (np.int64, "int64_val"),
             dt.DT_DOUBLE: (np.float64, "double_val")}
    if t.dtype not in kinds:
        raise ClientError(f"unexpected dtype {dt.DataType.Name(t.dtype)}")
    np_type, field = kinds[t.dtype]
    n = int(np.prod(shape)) if shape else 1
    if t.tensor_content:
        a = np.frombuffer(t.tensor_content, np_type)
    else:
        vals = list(getattr(t, field))
        if n and not vals:
            raise ClientError(f"tensor {shape} has no values")
        a = np.array((vals + vals[-1:] * n)[:n] if n else [], np_type)
    if a.size != n:
        raise ClientError(f"tensor {shape} holds {a.size} values")
    return a.reshape(shape)


def split_images(boxes, scores, counts, n_images, where):
    """Per image of a request: (boxes [k,4|8] float32, scores [k])."""
    counts = np.asarray(counts).reshape(-1)
    scores = np.asarray(scores).reshape(-1)
    if counts.size != n_images:
        raise ClientError(f"{where}: counts has {counts.size} entries for "
                          f"{n_images} images")
    if boxes.ndim != 2 or boxes.shape[1] not in (4, 8) or \
            boxes.shape[0] != scores.size or scores.size != counts.sum():
        raise ClientError(f"{where}: boxes {list(boxes.shape)}, scores "
                          f"{scores.size}, counts {counts.tolist()} "
                          f"do not agree")
    out, at = [], 0
    for c in counts:
        out.append((boxes[at:at + c], scores[at:at + c]))
        at += c
    return out


def ext_request(pb, rid, pixels):
    """An extended-protocol request: uint8 [B,900,1200,3] in tensor_content."""
    req = pb.extended_pb2.ExtendedInferenceRequest(id=rid)
    t = req.input[INPUT]
    t.dtype = pb.types_pb2.DT_UINT8
    for d in pixels.shape:
        t.tensor_shape.dim.add(size=int(d))
    t.tensor_content = np.ascontiguousarray(pixels, np.uint8).tobytes()
    return req


def ext_results(pb, resp, n_images):
    """Per image of an extended-protocol response: (boxes, scores)."""
    where = f"id={resp.id}"
    for name in (BOXES, SCORES, COUNTS):
        if name not in resp.output:
            raise ClientError(f"{where}: no output '{name}' "
                              f"(outputs: {sorted(resp.output)})")
    boxes = tf_array(pb, resp.output[BOXES]).astype(np.float32)
    if boxes.ndim == 1 and boxes.size == 0:
        boxes = boxes.reshape(0, 4)
    return split_images(boxes, tf_array(pb, resp.output[SCORES]),
                        tf_array(pb, resp.output[COUNTS]), n_images, where)


def oip_request(oip, rid, blobs, model=MODEL):
    """An OIP ModelInferRequest: the files as one BYTES [B] tensor."""
    req = oip.ModelInferRequest(model_name=model, id=str(rid))
    t = req.inputs.add(name=INPUT, datatype="BYTES", shape=[len(blobs)])
    t.contents.bytes_contents.extend(blobs)
    return req


_OIP_NP = {"FP32": np.float32, "INT32": np.int32, "INT64": np.int64,
           "FP64": np.float64}


def oip_results(resp, n_images):
    """Per image of an OIP gRPC ModelInferResponse: (boxes, scores)."""
    arrays = {}
    for k, out in enumerate(resp.outputs):
        np_type = _OIP_NP.get(out.datatype)
        if np_type is None:
            raise ClientError(f"output '{out.name}': datatype {out.datatype}")
        if k < len(resp.raw_output_contents):
            a = np.frombuffer(resp.raw_output_contents[k], np_type)
        else:
            field = {"FP32": "fp32_contents", "INT32": "int_contents",
                     "INT64": "int64_contents",
                     "FP64": "fp64_contents"}[out.datatype]
            a = np.array(getattr(out.contents, field), np_type)
        arrays[out.name] = a.reshape(list(out.shape))
    return _named_results(arrays, n_images, f"id={resp.id}")


def _named_results(arrays, n_images, where):
    for name in (BOXES, SCORES, COUNTS):
        if name not in arrays:
            raise ClientError(f"{where}: no output '{name}' "
                              f"(outputs: {sorted(arrays)})")
    boxes = arrays[BOXES].astype(np.float32)
    if boxes.ndim == 1 and boxes.size == 0:
        boxes = boxes.reshape(0, 4)
    return split_images(boxes, arrays[SCORES], arrays[COUNTS], n_images,
                        where)


def http_infer(base_url, rid, blobs, model=MODEL, timeout=120.0):
    """OIP over HTTP with binary data both ways; per image (boxes, scores)."""
    blob = b"".join(struct.pack("<I", len(b)) + b for b in blobs)
    header = json.dumps({
        "id": str(rid),
        "inputs": [{"name": INPUT, "datatype": "BYTES",
                    "shape": [len(blobs)],
                    "parameters": {"binary_data_size": len(blob)}}],
        "outputs": [{"name": n, "parameters": {"binary_data": True}}
                    for n in (BOXES, SCORES, COUNTS)],
    }).encode()
    req = urllib.request.Request(
        f"{base_url}/v2/models/{model}/infer", data=header + blob,
        headers={"Content-Type": "application/octet-stream",
                 "Inference-Header-Content-Length": str(len(header))})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            body = r.read()
            json_len = r.headers.get("Inference-Header-Content-Length")
    except urllib.error.HTTPError as e:
        raise ClientError(f"HTTP {e.code}: "
                          f"{e.read().decode(errors='replace')}") from None
    json_len = int(json_len) if json_len else len(body)
    doc = json.loads(body[:json_len])
    at, arrays = json_len, {}
    for out in doc["outputs"]:
        np_type = _OIP_NP[out["datatype"]]
        size = (out.get("parameters") or {}).get("binary_data_size")
        if size is not None:
            a = np.frombuffer(body[at:at + size], np_type)
            at += size
        else:
            a = np.array(out["data"], np_type)
        arrays[out["name"]] = a.reshape(out["shape"])
    return _named_results(arrays, len(blobs), f"id={rid}")


# ---- Output ----

def format_box(box):
    return " ".join(f"{v:7.1f}" for v in box)


def draw(src, dst, boxes, scores):
    """Writes src with its boxes (rectangles or quadrilaterals) drawn."""
    cmd = ["convert", f"{src}[0]", "-fill", "none", "-stroke", "#ff2020",
           "-strokewidth", "3"]
    for box in boxes:
        if len(box) == 4:
            x0, y0, x1, y1 = box
            cmd += ["-draw", f"rectangle {x0:.1f},{y0:.1f} {x1:.1f},{y1:.1f}"]
        else:
            pts = " ".join(f"{box[i]:.1f},{box[i + 1]:.1f}"
                           for i in range(0, 8, 2))
            cmd += ["-draw", f"polygon {pts}"]
    font = make_images.FONT_DIR / make_images.SANS
    if not font.is_file():
        scores = []  # no labels without the font
    cmd += ["-stroke", "none", "-fill", "#ff2020", "-font", str(font),
            "-pointsize", "20"]
    for box, score in zip(boxes, scores):
        x, y = min(box[0::2]), min(box[1::2])
        cmd += ["-annotate", f"+{x:.0f}+{max(20.0, y - 6):.0f}",
                f"{score:.2f}"]
    cmd.append(str(dst))
    subprocess.run(cmd, check=True)


# ---- Main ----

def run_raw(args, files):
    import grpc
    import mi_proto

    pb = mi_proto.load(REPO)
    fitted = [load_fitted(f) for f in files]
    batches = [list(range(i, min(i + args.batch, len(files))))
               for i in range(0, len(files), args.batch)]
    requests = [ext_request(pb, rid + 1, np.stack([fitted[k][0] for k in b]))
                for rid, b in enumerate(batches)]
    results = {}
    target = f"{args.host}:{args.port}"
    with grpc.insecure_channel(target, options=CHANNEL_OPTIONS) as channel:
        stub = pb.extended_grpc.ExtendedInferenceServiceStub(channel)
        try:
            for resp in stub.predict(iter(requests), timeout=args.timeout):
                b = batches[resp.id - 1]
                for k, r in zip(b, ext_results(pb, resp, len(b))):
                    scale = fitted[k][1]
                    results[k] = (r[0] / scale, r[1])
        except grpc.RpcError as e:
            raise ClientError(f"{target}: {e.code().name}: {e.details()}") \
                from None
    return results


def run_encoded(args, files):
    blobs = [f.read_bytes() for f in files]
    batches = [list(range(i, min(i + args.batch, len(files))))
               for i in range(0, len(files), args.batch)]
    results = {}
    if args.http:
        base = f"http://{args.host}:{args.http_port}"
        for rid, b in enumerate(batches, 1):
            for k, r in zip(b, http_infer(base, rid, [blobs[k] for k in b],
                                          args.model, args.timeout)):
                results[k] = r
        return results

    import grpc
    import mi_proto

    pb = mi_proto.load(REPO)
    import grpc_predict_v2_pb2 as oip  # generated by mi_proto.load
    import grpc_predict_v2_pb2_grpc as oip_grpc

    target = f"{args.host}:{args.port}"
    with grpc.insecure_channel(target, options=CHANNEL_OPTIONS) as channel:
        stub = oip_grpc.GRPCInferenceServiceStub(channel)
        for rid, b in enumerate(batches, 1):
            req = oip_request(oip, rid, [blobs[k] for k in b], args.model)
            try:
                resp = stub.ModelInfer(req, timeout=args.timeout)
            except grpc.RpcError as e:
                raise ClientError(f"{target}: {e.code().name}: "
                                  f"{e.details()}") from None
            for k, r in zip(b, oip_results(resp, len(b))):
                results[k] = r
    del pb
    return results


def main():
    p = argparse.ArgumentParser(
        description="text boxes in images, from the image-detection example")
    p.add_argument("paths", nargs="+", help="image files or folders")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=50051, help="gRPC port")
    p.add_argument("--http-port", type=int, default=8000)
    p.add_argument("--batch", type=int, default=1,
                   help="images per request (default 1)")
    p.add_argument("--encoded", action="store_true",
                   help="send the files themselves (pipeline_encoded.json) "
                        "over the Open Inference Protocol")
    p.add_argument("--http", action="store_true",
                   help="with --encoded: OIP over HTTP instead of gRPC")
    p.add_argument("--model", default=MODEL,
                   help=f"OIP model name (default {MODEL})")
    p.add_argument("--draw", metavar="OUTDIR",
                   help="write each image with its boxes drawn")
    p.add_argument("--timeout", type=float, default=120.0,
                   help="seconds for the whole call")
    args = p.parse_args()
    if args.batch < 1:
        p.error("--batch must be at least 1")
    if args.http and not args.encoded:
        p.error("--http needs --encoded")

    files = list_images(args.paths)
    if not files:
        print("no images found", file=sys.stderr)
        return 1
    try:
        results = (run_encoded if args.encoded else run_raw)(args, files)
    except (ClientError, make_images.ImageError, OSError,
            subprocess.CalledProcessError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    if args.draw:
        pathlib.Path(args.draw).mkdir(parents=True, exist_ok=True)
    for k, f in enumerate(files):
        boxes, scores = results[k]
        print(f"{f}: {len(boxes)} box{'es' if len(boxes) != 1 else ''}")
        for box, score in zip(boxes, scores):
            print(f"  {format_box(box)}   score {score:.4f}")
        if args.draw:
            draw(f, pathlib.Path(args.draw) / f"{f.stem}.boxes.png", boxes,
                 scores)
    return 0


if __name__ == "__main__":
    sys.exit(main())
