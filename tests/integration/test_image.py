#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""End-to-end test of the image-detection example (text detection).

Renders test photos with ImageMagick at test time
(examples/image-detection/make_images.py: text lines of known content, font,
size and position on plain, gradient and noisy backgrounds, images without
text, and one with fifteen labels), starts the real server on
examples/image-detection/pipeline.json (uint8 [-1,900,1200,3] over the
paper's extended protocol) and checks:

- every rendered text line is found: some box has IoU >= 0.5 with the
  line's rendered extent; images without text give no boxes; no box is
  far from any line; the fifteen-label image gives exactly 12 boxes;
- the same images in requests of 1, 4 and 16 images give the same boxes
  (within 1 px) and scores (within 1e-4), also when the server stacks
  requests of several streams into one model run;
- malformed requests are refused with INVALID_ARGUMENT: an image of the
  wrong size for the declared shape, the wrong dtype, and too few bytes;
- then, on pipeline_encoded.json over the Open Inference Protocol (gRPC
  ModelInfer, BYTES [B]): the PNG files give exactly the boxes of the raw
  pixels, the JPEG files find every line, and a request with one truncated
  JPEG among good ones is refused with INVALID_ARGUMENT naming that
  image's index; the server still answers afterwards;
- both servers stop cleanly on SIGTERM (exit code 0).

    /usr/bin/python3 tests/integration/test_image.py --binary build/modinfer \\
        [--source .] [--case SUBSTRING]... [--server-arg=--workers=2]...

The model is examples/image-detection/model/ch_PP-OCRv4_det_infer.onnx;
when it is missing, scripts/install-models.sh fetches it. Prints one line
per case and a last line "N passed, M failed"; exits 0 when every case
passed, 1 otherwise, and 77 (skip) when grpc, numpy, ImageMagick or the
model cannot be had, unless CI=true.
"""

import argparse
import json
import os
import pathlib
import subprocess
import sys
import tempfile
import time
import traceback

HERE = pathlib.Path(__file__).resolve().parent
REPO = HERE.parents[1]
EXAMPLE = REPO / "examples" / "image-detection"
sys.dont_write_bytecode = True  # keep the source tree clean
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(EXAMPLE))

import mi_server  # noqa: E402

IN_CI = os.environ.get("CI", "").lower() == "true"


def skip(why):
    if IN_CI:
        print(f"FAIL setup: {why}")
        print("0 passed, 1 failed")
        sys.exit(1)
    print(f"skip: {why}")
    sys.exit(77)


try:
    import grpc
    import numpy as np
    import mi_proto
    import client as det  # examples/image-detection/client.py
    import make_images
except ImportError as missing:
    skip(f"{missing} (run with /usr/bin/python3, which has grpcio and numpy)")

MODEL = EXAMPLE / "model" / "ch_PP-OCRv4_det_infer.onnx"
IOU_MIN = 0.5
BOX_TOL = 1.0      # px between batch sizes
SCORE_TOL = 1e-4
MAX_BOXES = 12     # top_k of the pipeline
CALL_TIMEOUT = 300.0
ERROR_TIMEOUT = 60.0
CHANNEL_OPTIONS = det.CHANNEL_OPTIONS


class CaseFailure(AssertionError):
    """A case's expectation did not hold; the message says which."""


def check(cond, message):
    if not cond:
        raise CaseFailure(message)


# ---- Geometry ----

def as_rect(box):
    """[x0, y0, x1, y1] of a box of 4 values or of a quadrilateral of 8."""
    box = [float(v) for v in box]
    if len(box) == 4:
        return box
    return [min(box[0::2]), min(box[1::2]), max(box[0::2]), max(box[1::2])]


def iou(a, b):
    ax0, ay0, ax1, ay1 = a
    bx0, by0, bx1, by1 = b
    w = min(ax1, bx1) - max(ax0, bx0)
    h = min(ay1, by1) - max(ay0, by0)
    if w <= 0 or h <= 0:
        return 0.0
    inter = w * h
    union = (ax1 - ax0) * (ay1 - ay0) + (bx1 - bx0) * (by1 - by0) - inter
    return inter / union if union > 0 else 0.0


def match_lines(image, boxes, scores, expect_all=True):
    """Per truth line its best IoU; problems as a list of strings."""
    problems = []
    best = []
    rects = [as_rect(b) for b in boxes]
    for ln in image["lines"]:
        m = max((iou(ln["box"], r) for r in rects), default=0.0)
        best.append(m)
        if expect_all and m < IOU_MIN:
            problems.append(f"{image['name']}: line {ln['text']!r} at "
                            f"{ln['box']} not found (best IoU {m:.2f}; "
                            f"boxes {[[round(v) for v in r] for r in rects]})")
    for r, s in zip(rects, scores):
        m = max((iou(ln["box"], r) for ln in image["lines"]), default=0.0)
        if m < IOU_MIN:
            problems.append(f"{image['name']}: box {[round(v) for v in r]} "
                            f"(score {s:.3f}) matches no text line "
                            f"(best IoU {m:.2f})")
    return best, problems


def compare_results(want, got, what):
    """Problems between two per-image (boxes, scores) lists."""
    problems = []
    for k, ((wb, ws), (gb, gs)) in enumerate(zip(want, got)):
        if wb.shape != gb.shape:
            problems.append(f"{what}: image {k}: {len(gb)} boxes, want "
                            f"{len(wb)}")
            continue
        if wb.size:
            db = float(np.max(np.abs(wb - gb)))
            ds = float(np.max(np.abs(ws - gs)))
            if db > BOX_TOL or ds > SCORE_TOL:
                problems.append(f"{what}: image {k}: boxes differ by up to "
                                f"{db:.3f} px, scores by {ds:.2e}")
    if len(want) != len(got):
        problems.append(f"{what}: {len(got)} images answered, want "
                        f"{len(want)}")
    return problems


# ---- Context ----

class Ctx:
    def __init__(self, pb, target, truth, img_dir):
        self.pb = pb
        self.target = target
        self.truth = truth
        self.images = truth["images"]
        self.img_dir = img_dir
        self.pixels = []
        for im in self.images:
            h, w, data = make_images.read_rgb(img_dir / im["png"])
            self.pixels.append(np.frombuffer(data, np.uint8)
                               .reshape(h, w, 3))
        self.channel = grpc.insecure_channel(target, options=CHANNEL_OPTIONS)
        grpc.channel_ready_future(self.channel).result(timeout=10)
        self.stub = self.pb.extended_grpc.ExtendedInferenceServiceStub(
            self.channel)
        self.single = None  # per image (boxes, scores), one image a request

    def run(self, batches, channel=None):
        """Sends requests of the given image indices on one stream.

        Returns per request its list of (boxes, scores).
        """
        stub = self.stub
        if channel is not None:
            stub = self.pb.extended_grpc.ExtendedInferenceServiceStub(channel)
        reqs = [det.ext_request(self.pb, rid + 1,
                                np.stack([self.pixels[k] for k in b]))
                for rid, b in enumerate(batches)]
        out = {}
        for resp in stub.predict(iter(reqs), timeout=CALL_TIMEOUT):
            check(resp.id not in out, f"id={resp.id} answered twice")
            check(1 <= resp.id <= len(batches), f"unexpected id={resp.id}")
            out[resp.id] = det.ext_results(self.pb, resp,
                                           len(batches[resp.id - 1]))
        check(len(out) == len(batches),
              f"{len(batches) - len(out)} of {len(batches)} requests not "
              f"answered")
        return [out[i + 1] for i in range(len(batches))]

    def baseline(self):
        if self.single is None:
            res = self.run([[k] for k in range(len(self.images))])
            self.single = [r[0] for r in res]
        return self.single

    def expect_error(self, req, pattern_words):
        """Sends one request on its own stream; wants INVALID_ARGUMENT."""
        try:
            for resp in self.stub.predict(iter([req]),
                                          timeout=ERROR_TIMEOUT):
                raise CaseFailure(f"answered (id={resp.id}) instead of "
                                  f"refused")
        except grpc.RpcError as e:
            check(e.code() == grpc.StatusCode.INVALID_ARGUMENT,
                  f"status {e.code().name} ({e.details()}), want "
                  f"INVALID_ARGUMENT")
            details = e.details() or ""
            for w in pattern_words:
                check(w.lower() in details.lower(),
                      f"message {details!r} does not mention {w!r}")
            return details
        raise CaseFailure("the stream ended without an answer or an error")


# ---- Cases: raw pixels, extended protocol ----

def case_detect_single(ctx):
    res = ctx.baseline()
    problems, ious, n_lines = [], [], 0
    for im, (boxes, scores) in zip(ctx.images, res):
        many = len(im["lines"]) > MAX_BOXES
        best, p = match_lines(im, boxes, scores, expect_all=not many)
        problems += p
        if many:
            check(len(boxes) == MAX_BOXES,
                  f"{im['name']}: {len(boxes)} boxes for "
                  f"{len(im['lines'])} lines, want {MAX_BOXES} (top_k)")
            continue
        n_lines += len(im["lines"])
        ious += best
        if not im["lines"]:
            check(len(boxes) == 0,
                  f"{im['name']} has no text but got {len(boxes)} boxes: "
                  f"{boxes.tolist()}")
    check(not problems, "; ".join(problems[:6]))
    return (f"{n_lines} lines found, IoU min {min(ious):.2f} mean "
            f"{sum(ious) / len(ious):.2f}; {MAX_BOXES} of 15 labels kept")


def case_batch_4(ctx):
    want = ctx.baseline()
    n = len(ctx.images)
    batches = [list(range(i, min(i + 4, n))) for i in range(0, n, 4)]
    got = [r for req in ctx.run(batches) for r in req]
    problems = compare_results(want, got, "batch 4")
    check(not problems, "; ".join(problems[:6]))
    return f"{len(batches)} requests of up to 4 images"


def case_batch_16(ctx):
    want = ctx.baseline()
    n = len(ctx.images)
    # 16 images in one request, in another order, some twice.
    order = [(7 * i + 3) % n for i in range(16)]
    got = ctx.run([order])[0]
    problems = compare_results([want[k] for k in order], got, "batch 16")
    check(not problems, "; ".join(problems[:6]))
    return "one request of 16 images"


def case_streams_stacked(ctx):
    """Requests of two streams at once: the server may stack them."""
    import threading
    want = ctx.baseline()
    n = len(ctx.images)
    plans = [[[k] for k in range(0, n, 2)], [[k] for k in range(1, n, 2)]]
    results, errors = [None, None], []
    channels = [grpc.insecure_channel(ctx.target, options=CHANNEL_OPTIONS)
                for _ in plans]

    def go(s):
        try:
            results[s] = ctx.run(plans[s], channels[s])
        except Exception as e:  # reported below
            errors.append(f"stream {s}: {type(e).__name__}: {e}")

    threads = [threading.Thread(target=go, args=(s,)) for s in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for c in channels:
        c.close()
    check(not errors, "; ".join(errors))
    problems = []
    for s, plan in enumerate(plans):
        problems += compare_results([want[b[0]] for b in plan],
                                    [r[0] for r in results[s]],
                                    f"stream {s}")
    check(not problems, "; ".join(problems[:6]))
    return "2 streams of single images"


def case_wrong_size(ctx):
    pix = np.zeros((1, 900, 1000, 3), np.uint8)
    details = ctx.expect_error(det.ext_request(ctx.pb, 41, pix),
                               ["id=41", "1000"])
    return details


def case_wrong_size_in_batch(ctx):
    pix = np.zeros((2, 800, 1200, 3), np.uint8)
    return ctx.expect_error(det.ext_request(ctx.pb, 42, pix),
                            ["id=42", "800"])


def case_wrong_dtype(ctx):
    req = det.ext_request(ctx.pb, 43, ctx.pixels[0][None])
    t = req.input[det.INPUT]
    t.dtype = ctx.pb.types_pb2.DT_FLOAT
    t.tensor_content = np.zeros(900 * 1200 * 3, np.float32).tobytes()
    return ctx.expect_error(req, ["id=43"])


def case_short_content(ctx):
    req = det.ext_request(ctx.pb, 44, np.stack(ctx.pixels[:2]))
    t = req.input[det.INPUT]
    t.tensor_content = t.tensor_content[:-1200 * 3]
    return ctx.expect_error(req, ["id=44"])


def case_after_errors(ctx):
    got = ctx.run([[0]])[0]
    problems = compare_results([ctx.baseline()[0]], got, "after errors")
    check(not problems, "; ".join(problems))


RAW_CASES = [
    ("detect_single_images", case_detect_single),
    ("batch_4_equal", case_batch_4),
    ("batch_16_equal", case_batch_16),
    ("two_streams_equal", case_streams_stacked),
    ("refuse_wrong_width", case_wrong_size),
    ("refuse_wrong_height_batch", case_wrong_size_in_batch),
    ("refuse_wrong_dtype", case_wrong_dtype),
    ("refuse_short_content", case_short_content),
    ("answers_after_errors", case_after_errors),
]


# ---- Cases: encoded files, Open Inference Protocol ----

class OipCtx:
    def __init__(self, raw_ctx, target):
        import grpc_predict_v2_pb2 as oip  # generated by mi_proto.load
        import grpc_predict_v2_pb2_grpc as oip_grpc
        self.oip = oip
        self.raw = raw_ctx
        self.channel = grpc.insecure_channel(target, options=CHANNEL_OPTIONS)
        grpc.channel_ready_future(self.channel).result(timeout=10)
        self.stub = oip_grpc.GRPCInferenceServiceStub(self.channel)
        self.model = "image-detection-encoded"

    def infer(self, blobs, rid):
        req = det.oip_request(self.oip, rid, blobs, self.model)
        resp = self.stub.ModelInfer(req, timeout=CALL_TIMEOUT)
        return det.oip_results(resp, len(blobs))


def _files(ctx, kind):
    return [(ctx.raw.img_dir / im[kind]).read_bytes()
            for im in ctx.raw.images]


def case_png_equals_raw(ctx):
    blobs = _files(ctx, "png")
    got = []
    for i in range(0, len(blobs), 4):
        got += ctx.infer(blobs[i:i + 4], 100 + i)
    problems = compare_results(ctx.raw.baseline(), got, "PNG over OIP")
    check(not problems, "; ".join(problems[:6]))
    return f"{len(blobs)} PNG files in requests of up to 4"


def case_jpeg_lines(ctx):
    blobs = _files(ctx, "jpeg")
    got = ctx.infer(blobs, 200)
    problems, ious = [], []
    for im, (boxes, scores) in zip(ctx.raw.images, got):
        many = len(im["lines"]) > MAX_BOXES
        best, p = match_lines(im, boxes, scores, expect_all=not many)
        problems += p
        if not many:
            ious += best
        if not im["lines"]:
            check(len(boxes) == 0, f"{im['name']}.jpg: {len(boxes)} boxes")
    check(not problems, "; ".join(problems[:6]))
    return (f"{len(blobs)} JPEG files in one request, IoU min "
            f"{min(ious):.2f}")


def case_truncated_jpeg(ctx):
    blobs = _files(ctx, "jpeg")[:4]
    blobs[2] = blobs[2][:len(blobs[2]) // 2]
    try:
        ctx.infer(blobs, 300)
    except grpc.RpcError as e:
        check(e.code() == grpc.StatusCode.INVALID_ARGUMENT,
              f"status {e.code().name} ({e.details()}), want "
              f"INVALID_ARGUMENT")
        details = e.details() or ""
        check("2" in details and "image" in details.lower(),
              f"message {details!r} does not name image 2")
        return details
    raise CaseFailure("a truncated JPEG was answered instead of refused")


def case_not_an_image(ctx):
    blobs = _files(ctx, "png")[:2]
    blobs[1] = b"GIF89a not an image we take"
    try:
        ctx.infer(blobs, 301)
    except grpc.RpcError as e:
        check(e.code() == grpc.StatusCode.INVALID_ARGUMENT,
              f"status {e.code().name} ({e.details()}), want "
              f"INVALID_ARGUMENT")
        details = e.details() or ""
        check("1" in details and "image" in details.lower(),
              f"message {details!r} does not name image 1")
        return details
    raise CaseFailure("a GIF header was answered instead of refused")


def case_encoded_after_errors(ctx):
    got = ctx.infer(_files(ctx, "png")[:1], 302)
    problems = compare_results(ctx.raw.baseline()[:1], got, "after errors")
    check(not problems, "; ".join(problems))


ENCODED_CASES = [
    ("encoded_png_equals_raw", case_png_equals_raw),
    ("encoded_jpeg_lines_found", case_jpeg_lines),
    ("encoded_refuse_truncated_jpeg", case_truncated_jpeg),
    ("encoded_refuse_unknown_format", case_not_an_image),
    ("encoded_answers_after_errors", case_encoded_after_errors),
]


# ---- Driver ----

def run_cases(cases, make_ctx):
    passed = failed = 0
    ctx = None
    try:
        ctx = make_ctx()
    except Exception as e:
        print(f"FAIL connect: {type(e).__name__}: {e}")
        return 0, 1, None
    for name, fn in cases:
        t0 = time.monotonic()
        try:
            note = fn(ctx)
            passed += 1
            print(f"ok   {name}  ({time.monotonic() - t0:.2f} s)"
                  + (f"  {note}" if note else ""))
        except CaseFailure as e:
            failed += 1
            print(f"FAIL {name}  ({time.monotonic() - t0:.2f} s): {e}")
        except grpc.RpcError as e:
            failed += 1
            print(f"FAIL {name}  ({time.monotonic() - t0:.2f} s): "
                  f"{e.code().name}: {e.details()}")
        except Exception as e:  # a test bug or an unexpected error
            failed += 1
            print(f"FAIL {name}: unexpected {type(e).__name__}: {e}")
            traceback.print_exc(limit=4, file=sys.stdout)
        sys.stdout.flush()
    return passed, failed, ctx


def serve(binary, pipeline, server_args, cases, make_ctx):
    """Starts a server, runs the cases, stops it; returns (passed, failed)."""
    try:
        srv = mi_server.Server(binary, pipeline, server_args,
                               ready_timeout=120.0, stop_timeout=60.0)
        srv.__enter__()
    except mi_server.ServerError as e:
        print(f"FAIL server_start ({pipeline.name}): {e}")
        return 0, 1, None
    print(f"server: {pipeline.name}, pid {srv.proc.pid}, "
          f"127.0.0.1:{srv.port}")
    try:
        passed, failed, ctx = run_cases(cases,
                                        lambda: make_ctx(srv.port))
        if ctx is not None:
            ctx.channel.close()
    except BaseException:
        srv.__exit__(*sys.exc_info())
        raise
    t0 = time.monotonic()
    try:
        srv.stop()
        passed += 1
        print(f"ok   sigterm_exit_0 ({pipeline.name})  "
              f"({time.monotonic() - t0:.2f} s)")
    except mi_server.ServerError as e:
        failed += 1
        print(f"FAIL sigterm_exit_0 ({pipeline.name}): {e}")
    if failed:
        srv.failed = True
        print(f"--- server log tail ({srv.proc.mi_log_path})")
        print(srv.tail(40))
    srv.__exit__(None, None, None)
    return passed, failed, ctx


def ensure_model():
    if MODEL.is_file():
        return
    script = REPO / "scripts" / "install-models.sh"
    print(f"setup: {MODEL.name} is missing; running {script.name}")
    done = subprocess.run(["bash", str(script)], capture_output=True,
                          text=True)
    if done.returncode != 0 or not MODEL.is_file():
        skip(f"cannot get the model: {script.name} exited "
             f"{done.returncode}: {done.stderr.strip()[-500:]}")


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--binary", required=True)
    p.add_argument("--source", default=str(REPO),
                   help="the modinfer checkout (default: this one)")
    p.add_argument("--case", action="append", default=[],
                   help="run only cases whose name contains this")
    p.add_argument("--server-arg", action="append", default=[],
                   help="extra server argument (repeatable)")
    p.add_argument("--list", action="store_true")
    return p.parse_args(argv)


def main(argv):
    args = parse_args(argv)
    if args.list:
        print("\n".join(n for n, _ in RAW_CASES + ENCODED_CASES))
        return 0
    pick = (lambda cases: [(n, f) for n, f in cases
                           if not args.case or any(c in n for c in args.case)])
    raw_cases, enc_cases = pick(RAW_CASES), pick(ENCODED_CASES)
    source = pathlib.Path(args.source).resolve()
    server_args = args.server_arg or ["--workers", "2"]

    try:
        make_images.check_tools()
    except make_images.ImageError as e:
        skip(str(e))
    ensure_model()

    with tempfile.TemporaryDirectory(prefix="modinfer-images-") as tmp:
        img_dir = pathlib.Path(tmp)
        t0 = time.monotonic()
        try:
            truth = make_images.render(img_dir)
            pb = mi_proto.load(source)
        except (make_images.ImageError, OSError, RuntimeError) as e:
            print(f"FAIL setup: {e}")
            print("0 passed, 1 failed")
            return 1
        n_lines = sum(len(im["lines"]) for im in truth["images"])
        print(f"setup: {len(truth['images'])} images, {n_lines} text lines "
              f"rendered in {time.monotonic() - t0:.1f} s")

        raw_pipeline = source / "examples" / "image-detection" / \
            "pipeline.json"
        passed, failed, raw_ctx = serve(
            args.binary, raw_pipeline, server_args, raw_cases,
            lambda port: Ctx(pb, f"127.0.0.1:{port}", truth, img_dir))
        if enc_cases:
            if raw_ctx is None:
                raw_ctx = Ctx.__new__(Ctx)
            enc_pipeline = source / "examples" / "image-detection" / \
                "pipeline_encoded.json"
            # The PNG case compares with the raw pixels' answers.
            need_baseline = raw_ctx.__dict__.get("single") is None
            if need_baseline:
                print("note: the encoded cases need the raw answers; "
                      "running detect_single_images first")
                p, f, raw_ctx = serve(
                    args.binary, raw_pipeline, server_args,
                    [("detect_single_images", case_detect_single)],
                    lambda port: Ctx(pb, f"127.0.0.1:{port}", truth,
                                     img_dir))
                passed, failed = passed + p, failed + f
            if raw_ctx is not None and raw_ctx.single is not None:
                p, f, _ = serve(args.binary, enc_pipeline, server_args,
                                enc_cases,
                                lambda port: OipCtx(raw_ctx,
                                                    f"127.0.0.1:{port}"))
                passed, failed = passed + p, failed + f
            else:
                failed += 1
                print("FAIL encoded cases: no raw answers to compare with")
    print(f"{passed} passed, {failed} failed")
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
