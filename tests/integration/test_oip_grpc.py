#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""The Open Inference Protocol over gRPC, driven by an independent client.

The client is written from the public specification of the protocol (the
KServe v2 / Triton gRPC API) using only the stubs generated from
proto/grpc_predict_v2.proto; it shares no code with the server. Against the
real server binary and the fall-detection pipeline it checks:

- ServerLive, ServerReady, ServerMetadata, ModelReady and ModelMetadata;
- ModelInfer of the 31 reference windows of vectors.json in every accepted
  integer encoding (INT32 and INT16 in int_contents, INT32 and INT16 as
  raw_input_contents, INT64 in int64_contents), outputs read from
  raw_output_contents by default and from fp32_contents when the request
  sets binary_data_output=false; ids echoed; requested outputs;
- errors as gRPC status codes with messages that say what is wrong;
- ModelStreamInfer: 8 concurrent pipelined streams, each with a bad request
  in the middle that is answered with error_message while the stream goes
  on; a client that pipelines thousands of requests before reading any
  answer (flow control must hold it back; the server must not fall over);
- the same windows over the paper's extended protocol give exactly the same
  numbers; no call-handling failures in the server's log; and a clean
  SIGTERM shutdown with exit code 0.

    /usr/bin/python3 tests/integration/test_oip_grpc.py \\
        --binary build/modinfer \\
        --pipeline examples/fall-detection/pipeline.json \\
        --vectors ../shared/reference/fall-detection/vectors.json \\
        --proto proto [--case SUBSTRING]... [--server-arg=--workers=4]...

Prints one line per case and a last line "N passed, M failed"; exits 0 when
every case passed, 1 otherwise, and 77 (skip) when the Python grpc packages
are missing, unless CI=true.
"""

import json
import pathlib
import queue
import re
import struct
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

HERE = pathlib.Path(__file__).resolve().parent
sys.dont_write_bytecode = True  # keep the source tree clean
sys.path.insert(0, str(HERE))

import mi_server  # noqa: E402

from mi_testlib import (  # noqa: E402
    grpc, mi_proto, CaseFailure, check, fail_on, rpc_text, run_case,
    sigterm_case, start_server, end_server, END, drain, load_oip)
from mi_cases import load_windows, pick, reference_args, setup_failed  # noqa: E402,E501

TOL = 1e-5
OUTPUT = "prediction"
N_STREAMS = 8
CALL_TIMEOUT = 60.0
READY_TIMEOUT = 60.0
CHANNEL_OPTIONS = [("grpc.enable_http_proxy", 0)]
READY_RE = re.compile(r"\bready: serving\b")
SERVICE = "/inference.GRPCInferenceService/"

# (case suffix, datatype, how the values travel)
ENCODINGS = (
    ("int32_contents", "INT32", "int_contents"),
    ("int16_contents", "INT16", "int_contents"),
    ("int32_raw", "INT32", "raw"),
    ("int16_raw", "INT16", "raw"),
    ("int64_contents", "INT64", "int64_contents"),
)
# A message about shape [3, 9] for [9, 3] names both, or says "shape".
SHAPE_RE = (r"shape|dimension|\[9, ?3\].*\[3, ?9\]|"
            r"\[3, ?9\].*\[9, ?3\]")
RAW_FORMATS = {"INT16": "h", "INT32": "i", "INT64": "q", "FP32": "f"}


# ---- Messages ----

class Model:
    """What the pipeline file declares: the model the server must serve."""

    def __init__(self, pipeline_path):
        cfg = json.loads(pathlib.Path(pipeline_path).read_text())
        self.name = cfg["name"]
        self.version = cfg.get("version", "1")
        inp = cfg["input"][0]
        self.input = inp["name"]
        self.input_dtype = inp["dtype"].upper()
        self.shape = [int(d) for d in inp["shape"]]


def infer_request(ctx, rid, flat, datatype="INT32", how="int_contents",
                  shape=None, name=None, model=None, version=None):
    """A ModelInferRequest carrying one window."""
    m = ctx.model
    req = ctx.oip.ModelInferRequest(
        model_name=m.name if model is None else model,
        model_version="" if version is None else version, id=str(rid))
    t = req.inputs.add(name=m.input if name is None else name,
                       datatype=datatype,
                       shape=m.shape if shape is None else shape)
    if how == "raw":
        req.raw_input_contents.append(
            struct.pack(f"<{len(flat)}{RAW_FORMATS[datatype]}", *flat))
    elif how == "int_contents":
        t.contents.int_contents.extend(flat)
    elif how == "int64_contents":
        t.contents.int64_contents.extend(flat)
    elif how == "fp32_contents":
        t.contents.fp32_contents.extend(float(v) for v in flat)
    elif how != "none":
        raise ValueError(how)
    return req


def set_binary_output(req, value):
    req.parameters["binary_data_output"].bool_param = value


def prediction(ctx, resp, rid, typed=False):
    """The confidence in a ModelInferResponse; CaseFailure if malformed."""
    m = ctx.model
    what = f"id={rid!r}"
    check(resp.id == str(rid), f"{what}: response id is {resp.id!r}")
    check(resp.model_name == m.name,
          f"{what}: model_name {resp.model_name!r}, want {m.name!r}")
    check(resp.model_version == m.version,
          f"{what}: model_version {resp.model_version!r}, want "
          f"{m.version!r}")
    check(len(resp.outputs) == 1,
          f"{what}: {len(resp.outputs)} outputs, want 1 "
          f"({[o.name for o in resp.outputs]})")
    out = resp.outputs[0]
    check(out.name == OUTPUT, f"{what}: output {out.name!r}, want {OUTPUT!r}")
    check(out.datatype == "FP32", f"{what}: datatype {out.datatype!r}, want "
                                  f"'FP32'")
    check(list(out.shape) == [1, 1],
          f"{what}: shape {list(out.shape)}, want [1, 1]")
    if typed:
        check(len(resp.raw_output_contents) == 0,
              f"{what}: binary_data_output=false, yet "
              f"{len(resp.raw_output_contents)} raw_output_contents")
        vals = out.contents.fp32_contents
        check(len(vals) == 1, f"{what}: {len(vals)} fp32_contents, want 1")
        return vals[0]
    check(len(resp.raw_output_contents) == 1,
          f"{what}: {len(resp.raw_output_contents)} raw_output_contents, "
          f"want 1")
    check(not out.HasField("contents"),
          f"{what}: output has typed contents as well as raw bytes")
    raw = resp.raw_output_contents[0]
    check(len(raw) == 4, f"{what}: {len(raw)} raw bytes for FP32 [1, 1], "
                         f"want 4")
    return struct.unpack("<f", raw)[0]


def compare_one(ctx, w, resp, rid, typed=False):
    """Problems (a list) with one response to window w."""
    try:
        got = prediction(ctx, resp, rid, typed)
    except CaseFailure as e:
        return [str(e)]
    if not abs(got - w["want"]) <= TOL:
        return [f"id={rid!r} ({w['label']}): got {got:.8f}, want "
                f"{w['want']:.8f} (diff {got - w['want']:+.2e})"]
    return []


# ---- Test context ----

class Ctx:
    def __init__(self, pb, oip, oip_grpc, target, model, windows):
        self.pb = pb
        self.oip = oip
        self.oip_grpc = oip_grpc
        self.target = target
        self.model = model
        self.windows = windows
        self.channel = self.new_channel()
        self.stub = oip_grpc.GRPCInferenceServiceStub(self.channel)

    def new_channel(self):
        ch = grpc.insecure_channel(self.target, options=CHANNEL_OPTIONS)
        grpc.channel_ready_future(ch).result(timeout=10)
        return ch

    def raw_unary(self, method):
        """A unary method that sends and returns bytes as they are."""
        return self.channel.unary_unary(SERVICE + method)

    def raw_stream(self, channel):
        """ModelStreamInfer sending bytes and decoding responses."""
        return channel.stream_stream(
            SERVICE + "ModelStreamInfer",
            response_deserializer=self.oip.ModelStreamInferResponse.FromString)


def unary_many(ctx, reqs, typed=False):
    """Sends [(req, window)] as concurrent unary calls; returns problems."""
    futures = [(ctx.stub.ModelInfer.future(r, timeout=CALL_TIMEOUT), r, w)
               for r, w in reqs]
    problems = []
    for fut, req, w in futures:
        try:
            resp = fut.result()
        except grpc.RpcError as e:
            problems.append(f"id={req.id!r} ({w['label']}): {rpc_text(e)}")
            continue
        problems += compare_one(ctx, w, resp, req.id, typed)
    return problems


# ---- Cases: server and model queries ----

def case_server_live(ctx):
    resp = ctx.stub.ServerLive(ctx.oip.ServerLiveRequest(), timeout=10)
    check(resp.live is True, f"live={resp.live}")
    return "live"


def case_server_ready(ctx):
    resp = ctx.stub.ServerReady(ctx.oip.ServerReadyRequest(), timeout=10)
    check(resp.ready is True, f"ready={resp.ready} after the 'ready:' line")
    return "ready"


def case_server_metadata(ctx):
    resp = ctx.stub.ServerMetadata(ctx.oip.ServerMetadataRequest(),
                                   timeout=10)
    check(resp.name == "modinfer", f"name {resp.name!r}, want 'modinfer'")
    check(re.fullmatch(r"\d+\.\d+\.\d+\S*", resp.version),
          f"version {resp.version!r} is not a version number")
    check(len(set(resp.extensions)) == len(resp.extensions),
          f"extensions repeat: {list(resp.extensions)}")
    return f"{resp.name} {resp.version} extensions {list(resp.extensions)}"


def expect_rpc_error(fn, code, pattern, what):
    """Runs fn(); it must fail with `code` and details matching pattern."""
    try:
        resp = fn()
    except grpc.RpcError as e:
        details = e.details() or ""
        check(e.code() == code,
              f"{what}: {rpc_text(e)}, want {code.name}")
        check(re.search(pattern, details, re.I),
              f"{what}: details {details!r} do not say what is wrong "
              f"(/{pattern}/)")
        return details
    raise CaseFailure(f"{what}: answered {str(resp).strip()!r}, want "
                      f"{code.name}")


def case_model_ready(ctx):
    m = ctx.model
    req = ctx.oip.ModelReadyRequest
    for version in ("", m.version):
        resp = ctx.stub.ModelReady(req(name=m.name, version=version),
                                   timeout=10)
        check(resp.ready is True,
              f"ModelReady({m.name!r}, {version!r}): ready={resp.ready}")
    d1 = expect_rpc_error(
        lambda: ctx.stub.ModelReady(req(name="no-such-model"), timeout=10),
        grpc.StatusCode.NOT_FOUND, r"no-such-model",
        "ModelReady of an unknown model")
    d2 = expect_rpc_error(
        lambda: ctx.stub.ModelReady(req(name=m.name, version="9-9-9"),
                                    timeout=10),
        grpc.StatusCode.NOT_FOUND, r"9-9-9", "ModelReady of a wrong version")
    return f"unknown: {d1!r}; wrong version: {d2!r}"


def case_model_metadata(ctx):
    m = ctx.model
    req = ctx.oip.ModelMetadataRequest
    for version in ("", m.version):
        resp = ctx.stub.ModelMetadata(req(name=m.name, version=version),
                                      timeout=10)
        what = f"ModelMetadata({m.name!r}, {version!r})"
        check(resp.name == m.name, f"{what}: name {resp.name!r}")
        check(list(resp.versions) == [m.version],
              f"{what}: versions {list(resp.versions)}, want [{m.version!r}]")
        ins = [(t.name, t.datatype, list(t.shape)) for t in resp.inputs]
        outs = [(t.name, t.datatype, list(t.shape)) for t in resp.outputs]
        check(ins == [(m.input, m.input_dtype, m.shape)],
              f"{what}: inputs {ins}, want "
              f"{[(m.input, m.input_dtype, m.shape)]}")
        check(outs == [(OUTPUT, "FP32", [1, 1])],
              f"{what}: outputs {outs}, want [('{OUTPUT}', 'FP32', [1, 1])]")
    expect_rpc_error(
        lambda: ctx.stub.ModelMetadata(req(name="no-such-model"), timeout=10),
        grpc.StatusCode.NOT_FOUND, r"no-such-model",
        "ModelMetadata of an unknown model")
    expect_rpc_error(
        lambda: ctx.stub.ModelMetadata(req(name=m.name, version="9-9-9"),
                                       timeout=10),
        grpc.StatusCode.NOT_FOUND, r"9-9-9",
        "ModelMetadata of a wrong version")
    return f"inputs {ins}, outputs {outs}, platform {resp.platform!r}"


# ---- Cases: ModelInfer ----

def make_case_infer(suffix, datatype, how):
    def case(ctx):
        reqs = [(infer_request(ctx, f"{suffix}-{w['id']}", w["flat"],
                               datatype, how), w) for w in ctx.windows]
        fail_on(unary_many(ctx, reqs))
        return f"{len(reqs)} windows as {datatype} in {how}"
    case.__doc__ = f"31 windows as {datatype} in {how}"
    return case


def case_infer_typed_output(ctx):
    """binary_data_output=false: fp32_contents instead of raw bytes."""
    reqs = []
    for w in ctx.windows:
        req = infer_request(ctx, f"typed-{w['id']}", w["flat"])
        set_binary_output(req, False)
        reqs.append((req, w))
    problems = unary_many(ctx, reqs, typed=True)
    # binary_data_output=true is the default made explicit.
    w = ctx.windows[1]
    req = infer_request(ctx, "explicit-true", w["flat"])
    set_binary_output(req, True)
    problems += unary_many(ctx, [(req, w)])
    fail_on(problems)
    return f"{len(reqs)} windows from fp32_contents, 1 with explicit true"


def case_infer_ids(ctx):
    """Any id string comes back as it was sent, the empty one included."""
    w = ctx.windows[0]
    ids = ["", "0", "id with spaces", "ünïcødé-✓", "x" * 200,
           "9223372036854775808"]
    reqs = [(infer_request(ctx, rid, w["flat"]), w) for rid in ids]
    fail_on(unary_many(ctx, reqs))
    return f"{len(ids)} ids echoed"


def case_infer_version(ctx):
    w = ctx.windows[1]
    req = infer_request(ctx, "with-version", w["flat"],
                        version=ctx.model.version)
    fail_on(unary_many(ctx, [(req, w)]))
    return f"model_version {ctx.model.version!r} accepted"


def case_infer_requested_output(ctx):
    problems = []
    for typed in (False, True):
        w = ctx.windows[typed]
        req = infer_request(ctx, f"asks-prediction-{typed}", w["flat"])
        req.outputs.add(name=OUTPUT)
        if typed:
            set_binary_output(req, False)
        problems += unary_many(ctx, [(req, w)], typed=typed)
    fail_on(problems)
    req = infer_request(ctx, "asks-nope", ctx.windows[0]["flat"])
    req.outputs.add(name="nope")
    details = expect_rpc_error(
        lambda: ctx.stub.ModelInfer(req, timeout=10),
        grpc.StatusCode.INVALID_ARGUMENT, r"nope",
        "an unknown requested output")
    return f"'{OUTPUT}' raw and typed; unknown: {details!r}"


# ---- Cases: errors ----

def still_answers(ctx):
    w = ctx.windows[1]
    req = infer_request(ctx, "after-error", w["flat"])
    try:
        resp = ctx.stub.ModelInfer(req, timeout=10)
    except grpc.RpcError as e:
        raise CaseFailure(f"a valid request after the bad one failed: "
                          f"{rpc_text(e)}") from None
    fail_on(compare_one(ctx, w, resp, req.id))


def bad_request(ctx, req, code, pattern, what):
    details = expect_rpc_error(lambda: ctx.stub.ModelInfer(req, timeout=10),
                               code, pattern, what)
    still_answers(ctx)
    return f"{code.name}: {details!r}"


def case_bad_unknown_model(ctx):
    req = infer_request(ctx, "b1", ctx.windows[0]["flat"],
                        model="no-such-model")
    return bad_request(ctx, req, grpc.StatusCode.NOT_FOUND,
                       r"no-such-model", "unknown model")


def case_bad_wrong_version(ctx):
    req = infer_request(ctx, "b2", ctx.windows[0]["flat"], version="9-9-9")
    return bad_request(ctx, req, grpc.StatusCode.NOT_FOUND, r"9-9-9",
                       "wrong model version")


def case_bad_datatype_fp32(ctx):
    req = infer_request(ctx, "b3", ctx.windows[0]["flat"], "FP32",
                        "fp32_contents")
    return bad_request(ctx, req, grpc.StatusCode.INVALID_ARGUMENT,
                       r"FP32", "datatype FP32 for an INT32 input")


def case_bad_shape(ctx):
    req = infer_request(ctx, "b4", ctx.windows[0]["flat"], shape=[3, 9])
    return bad_request(ctx, req, grpc.StatusCode.INVALID_ARGUMENT,
                       SHAPE_RE, "shape [3, 9]")


def case_bad_rank(ctx):
    req = infer_request(ctx, "b5", ctx.windows[0]["flat"], shape=[1, 9, 3])
    return bad_request(ctx, req, grpc.StatusCode.INVALID_ARGUMENT,
                       r"shape|rank|dimension|\[1, ?9, ?3\]",
                       "shape [1, 9, 3]")


def case_bad_value_count(ctx):
    req = infer_request(ctx, "b6", ctx.windows[0]["flat"][:26])
    return bad_request(ctx, req, grpc.StatusCode.INVALID_ARGUMENT,
                       r"\b26\b", "26 values for a [9, 3] shape")


def case_bad_raw_size(ctx):
    flat = ctx.windows[0]["flat"]
    req = infer_request(ctx, "b7", flat, "INT32", "raw")
    # INT16-sized bytes for an INT32 tensor: 54 bytes where 108 are needed.
    req.raw_input_contents[0] = struct.pack(f"<{len(flat)}h", *flat)
    return bad_request(ctx, req, grpc.StatusCode.INVALID_ARGUMENT,
                       r"\b54\b.*\b108\b|\b108\b.*\b54\b",
                       "54 raw bytes for 27 INT32 values")


def case_bad_int64_range(ctx):
    flat = list(ctx.windows[0]["flat"])
    flat[5] = 2 ** 31
    req = infer_request(ctx, "b8", flat, "INT64", "int64_contents")
    return bad_request(ctx, req, grpc.StatusCode.INVALID_ARGUMENT,
                       r"2147483648", "INT64 value 2^31 for an INT32 input")


def case_bad_unknown_input(ctx):
    req = infer_request(ctx, "b9", ctx.windows[0]["flat"], name="arrray")
    return bad_request(ctx, req, grpc.StatusCode.INVALID_ARGUMENT,
                       r"arrray", "unknown input name")


def case_bad_no_data(ctx):
    req = infer_request(ctx, "b10", ctx.windows[0]["flat"], how="none")
    return bad_request(ctx, req, grpc.StatusCode.INVALID_ARGUMENT,
                       r"data|contents", "input without data")


def case_bad_raw_entries(ctx):
    flat = ctx.windows[0]["flat"]
    req = infer_request(ctx, "b11", flat, "INT32", "raw")
    req.raw_input_contents.append(req.raw_input_contents[0])
    return bad_request(ctx, req, grpc.StatusCode.INVALID_ARGUMENT,
                       r"raw_input_contents|entries",
                       "2 raw_input_contents for 1 input")


def case_bad_malformed_bytes(ctx):
    garbage = b"\x0a\x40not a protobuf message"   # field 1 cut short
    try:
        ctx.oip.ModelInferRequest.FromString(garbage)
    except Exception:
        pass
    else:
        raise CaseFailure("test bug: the garbage decodes")
    details = expect_rpc_error(
        lambda: ctx.raw_unary("ModelInfer")(garbage, timeout=10),
        grpc.StatusCode.INVALID_ARGUMENT,
        r"malformed|decod|pars|protobuf|invalid",
        "garbage bytes on ModelInfer")
    still_answers(ctx)
    return f"INVALID_ARGUMENT: {details!r}"


# ---- Cases: ModelStreamInfer ----


GARBAGE = b"\x0a\x40not a protobuf message"


def bad_stream_requests(ctx, rid):
    """(name, serialized bad request, pattern of its error_message)."""
    flat = ctx.windows[0]["flat"]
    wide = list(flat)
    wide[3] = -(2 ** 40)
    unknown_out = infer_request(ctx, rid, flat)
    unknown_out.outputs.add(name="nope")
    short_raw = infer_request(ctx, rid, flat, "INT32", "raw")
    short_raw.raw_input_contents[0] = short_raw.raw_input_contents[0][:-4]
    return [
        ("shape [3, 9]", infer_request(ctx, rid, flat, shape=[3, 9]),
         SHAPE_RE),
        ("datatype FP32", infer_request(ctx, rid, flat, "FP32",
                                        "fp32_contents"), r"FP32"),
        ("unknown model", infer_request(ctx, rid, flat, model="nobody"),
         r"nobody"),
        ("INT64 out of range", infer_request(ctx, rid, wide, "INT64",
                                             "int64_contents"),
         r"1099511627776"),
        ("26 values", infer_request(ctx, rid, flat[:26]), r"\b26\b"),
        ("104 raw bytes", short_raw, r"\b104\b"),
        ("unknown output", unknown_out, r"nope"),
        ("garbage bytes", GARBAGE, r"malformed|decod|pars|protobuf|invalid"),
    ]


def run_oip_stream(ctx, channel, messages):
    """Sends serialized messages pipelined on one ModelStreamInfer call,
    half-closes, and returns every response."""
    try:
        return list(ctx.raw_stream(channel)(iter(messages),
                                            timeout=CALL_TIMEOUT))
    except grpc.RpcError as e:
        raise CaseFailure(f"stream failed after sending {len(messages)} "
                          f"messages: {rpc_text(e)}") from None


def check_stream(ctx, responses, good, bad_pattern, n_bad, typed=False):
    """good: {id: window}. Returns problems."""
    problems = []
    seen = {}
    errors = []
    for r in responses:
        if r.error_message:
            # An infer_response next to the error may name the failed
            # request; it must not claim to answer a good one.
            if r.HasField("infer_response") and r.infer_response.id in good:
                problems.append(f"error_message {r.error_message!r} comes "
                                f"with the id of a good request, "
                                f"{r.infer_response.id!r}")
            errors.append(r.error_message)
            continue
        if not r.HasField("infer_response"):
            problems.append("a response with neither error_message nor "
                            "infer_response")
            continue
        rid = r.infer_response.id
        seen[rid] = seen.get(rid, 0) + 1
        if rid not in good:
            problems.append(f"unexpected id={rid!r}")
        elif seen[rid] > 1:
            problems.append(f"id={rid!r} answered {seen[rid]} times")
        else:
            problems += compare_one(ctx, good[rid], r.infer_response, rid,
                                    typed)
    missing = sorted(set(good) - set(seen))
    if missing:
        problems.insert(0, f"{len(missing)} of {len(good)} good requests not "
                           f"answered, e.g. ids {missing[:5]}")
    if len(errors) != n_bad:
        problems.append(f"{len(errors)} error_message responses, want "
                        f"{n_bad}: {errors[:3]}")
    for e in errors:
        if bad_pattern and not re.search(bad_pattern, e, re.I):
            problems.append(f"error_message {e!r} does not say what is "
                            f"wrong (/{bad_pattern}/)")
    return problems


def case_stream_concurrent(ctx):
    """8 streams at once; each: good windows, one bad request, more good
    windows, all pipelined; every good id answered, the bad one with
    error_message, and the stream ends OK."""
    per_stream = 16
    plan = []
    for s in range(N_STREAMS):
        name, bad, pattern = bad_stream_requests(ctx, f"s{s}-bad")[s]
        good = {}
        msgs = []
        for k in range(per_stream):
            w = ctx.windows[(s * per_stream + k) % len(ctx.windows)]
            how = ENCODINGS[(s + k) % len(ENCODINGS)]
            rid = f"s{s}-{k}-{w['id']}"
            req = infer_request(ctx, rid, w["flat"], how[1], how[2])
            good[rid] = w
            msgs.append(req.SerializeToString())
            if k == per_stream // 2 - 1:
                msgs.append(bad if isinstance(bad, bytes)
                            else bad.SerializeToString())
        plan.append((name, pattern, good, msgs))

    channels = [ctx.channel] * 4 + [ctx.new_channel()
                                    for _ in range(N_STREAMS - 4)]
    barrier = threading.Barrier(N_STREAMS)

    def one(s):
        barrier.wait(timeout=30)
        return run_oip_stream(ctx, channels[s], plan[s][3])

    problems = []
    try:
        with ThreadPoolExecutor(N_STREAMS) as pool:
            futures = [pool.submit(one, s) for s in range(N_STREAMS)]
            for s, fut in enumerate(futures):
                name, pattern, good, _ = plan[s]
                try:
                    responses = fut.result(timeout=CALL_TIMEOUT + 30)
                except CaseFailure as e:
                    problems.append(f"stream {s} ({name}): {e}")
                    continue
                problems += [f"stream {s} ({name}): {p}" for p in
                             check_stream(ctx, responses, good, pattern, 1)]
    finally:
        for ch in channels[4:]:
            ch.close()
    fail_on(problems)
    return (f"{N_STREAMS} streams x {per_stream} windows + 1 bad each "
            f"({', '.join(p[0] for p in plan)})")


def case_stream_lockstep(ctx):
    """One stream in lock-step: each answer arrives before the next
    request is sent, bad requests answered in place."""
    q = queue.Queue()
    call = ctx.raw_stream(ctx.channel)(drain(q), timeout=CALL_TIMEOUT)
    bads = bad_stream_requests(ctx, "lockstep-bad")
    log = []
    try:
        for k, w in enumerate(ctx.windows[:len(bads)]):
            rid = f"lockstep-{k}"
            q.put(infer_request(ctx, rid, w["flat"]).SerializeToString())
            r = next(call)
            check(not r.error_message,
                  f"good request {rid}: error_message {r.error_message!r}")
            fail_on(compare_one(ctx, w, r.infer_response, rid))
            name, bad, pattern = bads[k]
            q.put(bad if isinstance(bad, bytes) else bad.SerializeToString())
            r = next(call)
            check(r.error_message,
                  f"bad request ({name}) answered without error_message: "
                  f"{str(r).strip()[:200]!r}")
            check(re.search(pattern, r.error_message, re.I),
                  f"bad request ({name}): error_message "
                  f"{r.error_message!r} does not say what is wrong")
            log.append(f"{name}: {r.error_message!r}")
        q.put(END)
        rest = list(call)
        check(not rest, f"{len(rest)} responses after the last request")
    except StopIteration:
        raise CaseFailure("the stream ended early with OK status") from None
    except grpc.RpcError as e:
        raise CaseFailure(f"the stream failed: {rpc_text(e)}") from None
    finally:
        q.put(END)
    return "; ".join(log)


def case_stream_typed(ctx):
    """binary_data_output=false on a stream: fp32_contents."""
    good = {}
    msgs = []
    for w in ctx.windows:
        rid = f"typed-stream-{w['id']}"
        req = infer_request(ctx, rid, w["flat"])
        set_binary_output(req, False)
        good[rid] = w
        msgs.append(req.SerializeToString())
    responses = run_oip_stream(ctx, ctx.channel, msgs)
    fail_on(check_stream(ctx, responses, good, None, 0, typed=True))
    return f"{len(msgs)} windows"


def case_stream_unread(ctx):
    """A client that pipelines many requests and reads no answer for a
    while: HTTP/2 flow control must hold it back (the client's receive
    window is kept at its initial 64 KiB), and once it reads, every request
    is answered."""
    n = 3000
    ch = grpc.insecure_channel(ctx.target, options=CHANNEL_OPTIONS + [
        ("grpc.http2.bdp_probe", 0)])
    q = queue.Queue()
    good = {}
    try:
        call = ctx.raw_stream(ch)(drain(q), timeout=CALL_TIMEOUT)
        for k in range(n):
            w = ctx.windows[k % len(ctx.windows)]
            rid = f"unread-{k}"
            good[rid] = w
            q.put(infer_request(ctx, rid, w["flat"], "INT32",
                                "raw").SerializeToString())
        q.put(END)
        time.sleep(2.0)  # the server answers into a client that does not read
        try:
            responses = list(call)
        except grpc.RpcError as e:
            died = ""
            time.sleep(0.2)
            if not ctx.srv.alive():
                died = (f"; the server died (exit code "
                        f"{ctx.srv.proc.returncode}): "
                        f"{ctx.srv.tail(1).strip()!r}")
            raise CaseFailure(f"{n} requests pipelined, none read for 2 s: "
                              f"stream failed with {rpc_text(e)}"
                              f"{died}") from None
    finally:
        q.put(END)
        ch.close()
    fail_on(check_stream(ctx, responses, good, None, 0))
    return f"{n} requests, read after 2 s"


# ---- Cases: the paper's extended protocol gives the same numbers ----

def ext_request(ctx, rid, flat):
    pb = ctx.pb
    t = pb.tensor_pb2.TensorProto(dtype=pb.types_pb2.DT_INT32)
    for size in ctx.model.shape:
        t.tensor_shape.dim.add(size=size)
    t.int_val.extend(flat)
    req = pb.extended_pb2.ExtendedInferenceRequest(id=rid)
    req.input[ctx.model.input].CopyFrom(t)
    return req


def case_same_as_extended(ctx):
    stub = ctx.pb.extended_grpc.ExtendedInferenceServiceStub(ctx.channel)
    try:
        ext = list(stub.predict(iter([ext_request(ctx, w["id"], w["flat"])
                                      for w in ctx.windows]),
                                timeout=CALL_TIMEOUT))
    except grpc.RpcError as e:
        raise CaseFailure(f"extended stream failed: {rpc_text(e)}") from None
    ext_vals = {}
    for r in ext:
        t = r.output.get(OUTPUT)
        check(t is not None and len(t.float_val) == 1,
              f"extended id={r.id}: no one-value '{OUTPUT}' output")
        ext_vals[r.id] = t.float_val[0]
    check(len(ext_vals) == len(ctx.windows),
          f"extended protocol answered {len(ext_vals)} of "
          f"{len(ctx.windows)} windows")

    unary = {}
    for w in ctx.windows:
        rid = f"same-{w['id']}"
        resp = ctx.stub.ModelInfer(infer_request(ctx, rid, w["flat"]),
                                   timeout=CALL_TIMEOUT)
        unary[w["id"]] = prediction(ctx, resp, rid)
    stream = {}
    msgs = [infer_request(ctx, f"same-stream-{w['id']}",
                          w["flat"]).SerializeToString()
            for w in ctx.windows]
    for r in run_oip_stream(ctx, ctx.channel, msgs):
        check(not r.error_message, f"stream: {r.error_message!r}")
        rid = r.infer_response.id
        stream[int(rid.rsplit("-", 1)[1])] = prediction(ctx, r.infer_response,
                                                        rid)
    problems = []
    bits = lambda v: struct.pack("<f", v).hex()  # noqa: E731
    for w in ctx.windows:
        e = ext_vals.get(w["id"])
        for what, got in (("ModelInfer", unary.get(w["id"])),
                          ("ModelStreamInfer", stream.get(w["id"]))):
            if got is None or e is None or bits(got) != bits(e):
                problems.append(f"window {w['id']} ({w['label']}): {what} "
                                f"{got!r}, extended {e!r}")
    fail_on(problems)
    return f"{len(ctx.windows)} windows bit-identical on 3 paths"


def case_still_alive(ctx):
    w = ctx.windows[0]
    fail_on(unary_many(ctx, [(infer_request(ctx, "last", w["flat"]), w)]))
    resp = ctx.stub.ServerLive(ctx.oip.ServerLiveRequest(), timeout=10)
    check(resp.live, "ServerLive says not live")
    return "answers and is live"


def case_server_log_clean(ctx):
    """No call-handling failures in the server's log (a failed
    grpc_call_start_batch means the server lost track of a call's state)."""
    bad = [line for line in mi_server.log_text(ctx.srv.proc).splitlines()
           if re.search(r"start_batch failed|assertion failed|\bERROR\b",
                        line)]
    check(not bad, f"{len(bad)} such log lines, e.g.:\n    "
                   + "\n    ".join(bad[:3]))
    return "no call errors logged"


CASES = [
    ("server_live", case_server_live),
    ("server_ready", case_server_ready),
    ("server_metadata", case_server_metadata),
    ("model_ready", case_model_ready),
    ("model_metadata", case_model_metadata),
    *[(f"infer.{s}", make_case_infer(s, dt, how)) for s, dt, how in ENCODINGS],
    ("infer.typed_output", case_infer_typed_output),
    ("infer.ids_echoed", case_infer_ids),
    ("infer.model_version", case_infer_version),
    ("infer.requested_output", case_infer_requested_output),
    ("bad.unknown_model", case_bad_unknown_model),
    ("bad.wrong_version", case_bad_wrong_version),
    ("bad.datatype_fp32", case_bad_datatype_fp32),
    ("bad.shape_3x9", case_bad_shape),
    ("bad.rank_3", case_bad_rank),
    ("bad.value_count", case_bad_value_count),
    ("bad.raw_byte_size", case_bad_raw_size),
    ("bad.int64_out_of_range", case_bad_int64_range),
    ("bad.unknown_input", case_bad_unknown_input),
    ("bad.no_data", case_bad_no_data),
    ("bad.raw_entries", case_bad_raw_entries),
    ("bad.malformed_bytes", case_bad_malformed_bytes),
    ("stream.concurrent_with_errors", case_stream_concurrent),
    ("stream.lockstep_errors", case_stream_lockstep),
    ("stream.typed_output", case_stream_typed),
    ("same_as_extended", case_same_as_extended),
    ("still_alive", case_still_alive),
    ("server_log_clean", case_server_log_clean),
    ("stream.unread_answers", case_stream_unread),  # last: a stress case
]


# ---- Runner ----

def wait_ready(srv, timeout=READY_TIMEOUT):
    """Waits for the server's 'ready:' line; raises CaseFailure."""
    deadline = time.monotonic() + timeout
    while not READY_RE.search(mi_server.log_text(srv.proc)):
        if not srv.alive():
            raise CaseFailure(f"server exited with {srv.proc.returncode} "
                              f"before 'ready:'")
        if time.monotonic() > deadline:
            raise CaseFailure(f"no 'ready:' line within {timeout:.0f} s")
        time.sleep(0.05)


def parse_args(argv):
    return reference_args(__doc__, "--workers=4").parse_args(argv)


def main(argv):
    args = parse_args(argv)
    if args.list:
        print("\n".join(name for name, _ in CASES))
        return 0
    cases = pick(CASES, args.case)

    try:
        windows = load_windows(args.vectors, n_elements=27, n_windows=31)
        model = Model(args.pipeline)
        pb = mi_proto.load(HERE.parents[1], args.proto)
        oip, oip_grpc = load_oip()  # generated into pb.out_dir
    except (OSError, ValueError, KeyError, RuntimeError, ImportError) as e:
        return setup_failed(f"setup: {e}")

    srv = start_server(args.binary, args.pipeline, args.server_arg)
    if srv is None:
        return 1
    try:
        passed, failed = run_cases(srv, cases, pb, oip, oip_grpc, model,
                                   windows)
    except BaseException:
        srv.__exit__(*sys.exc_info())
        raise

    return end_server(srv, passed, failed, tail=60)


def run_cases(srv, cases, pb, oip, oip_grpc, model, windows):
    """Runs the cases, then stops the server; returns (passed, failed)."""
    passed = failed = 0
    ctx = None
    try:
        t0 = time.monotonic()
        try:
            wait_ready(srv)
            passed += 1
            print(f"ok   server_ready_line  ({time.monotonic() - t0:.2f} s)")
        except CaseFailure as e:
            failed += 1
            print(f"FAIL server_ready_line: {e}")
            cases = []
        if cases:
            ctx = Ctx(pb, oip, oip_grpc, f"127.0.0.1:{srv.port}", model,
                      windows)
            ctx.srv = srv
        for name, fn in cases:
            if run_case(srv, ctx, name, fn, rpc_errors=True):
                passed += 1
            else:
                failed += 1
    except grpc.FutureTimeoutError:
        failed += 1
        print(f"FAIL connect: no gRPC connection to 127.0.0.1:{srv.port} "
              f"within 10 s")
    finally:
        if ctx is not None:
            ctx.channel.close()

    if sigterm_case(srv):
        passed += 1
    else:
        failed += 1
    return passed, failed


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
