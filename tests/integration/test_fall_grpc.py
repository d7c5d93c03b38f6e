#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""End-to-end test of the fall-detection pipeline over both gRPC protocols.

Starts the real server binary on 127.0.0.1 with a free port (mi_server),
generates the Python stubs from proto/ (mi_proto), and drives the server with
a real gRPC client: the 31 reference windows of vectors.json in every accepted
integer encoding, on one stream and on 8 concurrent pipelined streams, over
the extended and the basic protocol; the replay of stream.csv; TensorFlow's
repeat-last rule; malformed messages, each on its own stream while a healthy
stream keeps getting correct answers; unknown methods; and finally a clean
SIGTERM shutdown with exit code 0.

    /usr/bin/python3 tests/integration/test_fall_grpc.py \\
        --binary build/modinfer \\
        --pipeline examples/fall-detection/pipeline.json \\
        --vectors ../shared/reference/fall-detection/vectors.json \\
        --proto proto [--case SUBSTRING]... [--server-arg=--workers=4]...

Prints one line per case and a last line "N passed, M failed"; exits 0 when
every case passed, 1 otherwise, and 77 (skip) when the Python grpc packages
are missing, unless CI=true.
"""

import csv
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

from mi_testlib import (  # noqa: E402
    grpc, mi_proto, CaseFailure, check, fail_on, rpc_text, run_case,
    sigterm_case, start_server, end_server, END, drain)
from mi_cases import load_windows, pick, reference_args, setup_failed  # noqa: E402,E501

TOL = 1e-5
INPUT = "array"
OUTPUT = "prediction"
SHAPE = (9, 3)
N_ELEMENTS = 27
CALL_TIMEOUT = 60.0     # seconds for a whole well-formed stream
ERROR_TIMEOUT = 10.0    # seconds for the server to end a malformed stream
N_STREAMS = 8
CHANNEL_OPTIONS = [("grpc.enable_http_proxy", 0)]

ENCODINGS = ("int32_val", "int16_val", "int32_content", "int16_content")


# ---- Reference data ----


def load_stream_windows(vectors, csv_path):
    """Windows of stream.csv per README 4.3, with their outputs_f64."""
    samples = {}
    with open(csv_path, newline="") as f:
        for row in csv.DictReader(f):
            if int(row["sample_2hz"]) == 1:
                samples.setdefault(int(row["participant"]), []).append(
                    [int(row["x"]), int(row["y"]), int(row["z"])])
    windows = []
    for excerpt in vectors["stream"]["excerpts"]:
        part = int(excerpt["participant"])
        rows = samples.get(part, [])
        want = excerpt["outputs_f64"]
        n = len(rows) - SHAPE[0] + 1
        if n != len(want):
            raise ValueError(f"participant {part}: {len(rows)} 2 Hz samples "
                             f"give {n} windows, vectors.json has {len(want)}")
        for k in range(n):
            flat = [v for r in rows[k:k + SHAPE[0]] for v in r]
            windows.append({"id": part * 10000 + k,
                            "label": f"participant {part} window {k}",
                            "flat": flat, "want": float(want[k])})
    return windows


# ---- Messages ----

def int_tensor(pb, flat, encoding, shape=SHAPE):
    """A TensorProto holding integers in one of ENCODINGS."""
    dt = pb.types_pb2
    t = pb.tensor_pb2.TensorProto()
    t.dtype = dt.DT_INT16 if encoding.startswith("int16") else dt.DT_INT32
    for size in shape:
        t.tensor_shape.dim.add(size=size)
    if encoding.endswith("_val"):
        t.int_val.extend(flat)
    else:
        fmt = "<%dh" if encoding.startswith("int16") else "<%di"
        t.tensor_content = struct.pack(fmt % len(flat), *flat)
    return t


def ext_request(pb, rid, flat, encoding="int32_val", name=INPUT, shape=SHAPE):
    req = pb.extended_pb2.ExtendedInferenceRequest(id=rid)
    req.input[name].CopyFrom(int_tensor(pb, flat, encoding, shape))
    return req


def basic_request(pb, rid, values, shape=SHAPE):
    return pb.basic_pb2.BasicInferenceRequest(
        id=rid, tensor=pb.basic_pb2.Tensor32(array=[float(v) for v in values],
                                             shape=list(shape)))


def ext_prediction(pb, resp):
    """The confidence in an extended response; CaseFailure if malformed."""
    check(OUTPUT in resp.output,
          f"id={resp.id}: no output '{OUTPUT}' (outputs: {list(resp.output)})")
    t = resp.output[OUTPUT]
    dims = [d.size for d in t.tensor_shape.dim]
    check(t.dtype == pb.types_pb2.DT_FLOAT,
          f"id={resp.id}: dtype {pb.types_pb2.DataType.Name(t.dtype)}, "
          f"want DT_FLOAT")
    check(dims == [1, 1], f"id={resp.id}: shape {dims}, want [1, 1]")
    check(len(t.float_val) >= 1,
          f"id={resp.id}: float_val is empty (tensor_content has "
          f"{len(t.tensor_content)} bytes); a one-element output belongs "
          f"in float_val")
    return t.float_val[0]


def basic_prediction(pb, resp):
    t = resp.tensor
    check(list(t.shape) == [1, 1],
          f"id={resp.id}: shape {list(t.shape)}, want [1, 1]")
    check(len(t.array) == 1,
          f"id={resp.id}: {len(t.array)} values, want 1")
    return t.array[0]


def compare(expected, responses, extract, what="requests"):
    """Checks responses against expected {id: (label, want)}.

    Returns a list of problems: missing, unknown or repeated ids, malformed
    responses and values off by more than TOL.
    """
    problems = []
    seen = {}
    for resp in responses:
        seen[resp.id] = seen.get(resp.id, 0) + 1
        if resp.id not in expected:
            problems.append(f"unexpected id={resp.id}")
            continue
        if seen[resp.id] > 1:
            problems.append(f"id={resp.id} answered {seen[resp.id]} times")
            continue
        label, want = expected[resp.id]
        try:
            got = extract(resp)
        except CaseFailure as e:
            problems.append(str(e))
            continue
        if not abs(got - want) <= TOL:
            problems.append(f"id={resp.id} ({label}): got {got:.8f}, want "
                            f"{want:.8f} (diff {got - want:+.2e})")
    missing = sorted(set(expected) - set(seen))
    if missing:
        problems.insert(0, f"{len(missing)} of {len(expected)} {what} not "
                           f"answered, e.g. ids {missing[:6]}")
    return problems


# ---- Streams ----


class Bidi:
    """A bidi stream fed one message at a time, kept open until close()."""

    def __init__(self, multi_callable, timeout):
        self.q = queue.Queue()
        self.call = multi_callable(drain(self.q), timeout=timeout)

    def send(self, msg):
        self.q.put(msg)

    def recv(self):
        """Next response; raises StopIteration or grpc.RpcError."""
        return next(self.call)

    def close(self):
        self.q.put(END)


def run_stream(multi_callable, requests, timeout=CALL_TIMEOUT):
    """Sends all requests (pipelined), half-closes, collects all responses."""
    try:
        return list(multi_callable(iter(requests), timeout=timeout))
    except grpc.RpcError as e:
        raise CaseFailure(f"stream failed after sending {len(requests)} "
                          f"requests: {rpc_text(e)}") from None


def run_concurrent(ctx, make_callable, requests, extract):
    """Spreads requests over N_STREAMS concurrent pipelined streams.

    Streams 0..3 share the context's channel; the others get one channel
    each. Every id must be answered exactly once, on its own stream.
    """
    slices = [requests[s::N_STREAMS] for s in range(N_STREAMS)]
    channels = [ctx.channel] * 4 + [ctx.new_channel()
                                    for _ in range(N_STREAMS - 4)]
    barrier = threading.Barrier(N_STREAMS)

    def one(s):
        barrier.wait(timeout=30)
        return run_stream(make_callable(channels[s]), [r for r, _ in slices[s]])

    try:
        with ThreadPoolExecutor(N_STREAMS) as pool:
            futures = [pool.submit(one, s) for s in range(N_STREAMS)]
            problems = []
            for s, fut in enumerate(futures):
                try:
                    responses = fut.result(timeout=CALL_TIMEOUT + 30)
                except CaseFailure as e:
                    problems.append(f"stream {s}: {e}")
                    continue
                expected = {r.id: w for r, w in slices[s]}
                problems += [f"stream {s}: {p}"
                             for p in compare(expected, responses, extract)]
    finally:
        for ch in channels[4:]:
            ch.close()
    fail_on(problems)
    return f"{len(requests)} requests on {N_STREAMS} streams"


class Healthy:
    """A stream in a thread that sends valid windows in lock-step.

    Used around a malformed stream: it must have answers before the
    malformed stream opens and after it ended, and none of its answers may
    be wrong or missing. Answers that arrive while the malformed stream is
    open are counted as "during".
    """

    def __init__(self, ctx, min_each=3):
        self.ctx = ctx
        self.min_each = min_each
        self.times = []
        self.error = None
        self.stop_evt = threading.Event()
        self.cond = threading.Condition()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.window = (None, None)

    def _run(self):
        pb, windows = self.ctx.pb, self.ctx.windows
        bidi = Bidi(self.ctx.ext_stub(self.ctx.channel).predict, CALL_TIMEOUT)
        i = 0
        try:
            while not self.stop_evt.is_set():
                w = windows[i % len(windows)]
                rid = 900000 + i
                bidi.send(ext_request(pb, rid, w["flat"]))
                resp = bidi.recv()
                check(resp.id == rid, f"sent id={rid}, answer has id={resp.id}")
                got = ext_prediction(pb, resp)
                check(abs(got - w["want"]) <= TOL,
                      f"id={rid}: got {got:.8f}, want {w['want']:.8f}")
                with self.cond:
                    self.times.append(time.monotonic())
                    self.cond.notify_all()
                i += 1
            bidi.close()
            extra = list(bidi.call)
            check(not extra, f"{len(extra)} responses after the last request")
        except grpc.RpcError as e:
            self.error = f"healthy stream failed: {rpc_text(e)}"
        except StopIteration:
            self.error = "healthy stream ended by the server"
        except CaseFailure as e:
            self.error = f"healthy stream: {e}"
        finally:
            bidi.close()
            with self.cond:
                self.cond.notify_all()

    def _wait_count(self, n):
        deadline = time.monotonic() + ERROR_TIMEOUT
        with self.cond:
            while len(self.times) < n and self.error is None:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self.cond.wait(left)
        if self.error:
            raise CaseFailure(self.error)
        check(len(self.times) >= n,
              f"healthy stream: {len(self.times)} answers, wanted {n} "
              f"within {ERROR_TIMEOUT:.0f} s")

    def __enter__(self):
        self.thread.start()
        self._wait_count(self.min_each)
        return self

    def during(self, t_open, t_close):
        self.window = (t_open, t_close)

    def finish(self):
        """Waits for answers after the malformed stream; returns a summary."""
        t_open, t_close = self.window
        self._wait_count(len(self.times) + self.min_each)
        self.stop_evt.set()
        self.thread.join(ERROR_TIMEOUT)
        check(not self.thread.is_alive(), "healthy stream did not finish")
        if self.error:
            raise CaseFailure(self.error)
        before = sum(1 for t in self.times if t < t_open)
        during = sum(1 for t in self.times if t_open <= t <= t_close)
        after = sum(1 for t in self.times if t > t_close)
        check(before and after, f"healthy answers before/during/after: "
                                f"{before}/{during}/{after}")
        return f"healthy {before}/{during}/{after}"

    def __exit__(self, exc_type, exc, tb):
        self.stop_evt.set()
        self.thread.join(ERROR_TIMEOUT)
        return False


# ---- Test context ----

class Ctx:
    def __init__(self, pb, target, windows, stream_windows):
        self.pb = pb
        self.target = target
        self.windows = windows
        self.stream_windows = stream_windows
        self.channel = self.new_channel()

    def new_channel(self):
        ch = grpc.insecure_channel(self.target, options=CHANNEL_OPTIONS)
        grpc.channel_ready_future(ch).result(timeout=10)
        return ch

    def ext_stub(self, channel):
        return self.pb.extended_grpc.ExtendedInferenceServiceStub(channel)

    def basic_stub(self, channel):
        return self.pb.basic_grpc.BasicInferenceServiceStub(channel)

    def raw_method(self, channel, method):
        return channel.stream_stream(method, request_serializer=lambda b: b,
                                     response_deserializer=lambda b: b)

    def expected(self, windows, base=0):
        return {base + w["id"]: (w["label"], w["want"]) for w in windows}


def all_encodings(ctx):
    """(request, (label, want)) for every window in every encoding."""
    out = []
    for k, enc in enumerate(ENCODINGS):
        for w in ctx.windows:
            rid = (k + 1) * 1000 + w["id"]
            out.append((ext_request(ctx.pb, rid, w["flat"], enc),
                        (f"{w['label']} as {enc}", w["want"])))
    return out


def basic_all(ctx, base=0):
    return [(basic_request(ctx.pb, base + w["id"], w["flat"]),
             (w["label"], w["want"])) for w in ctx.windows]


# ---- Cases: correct answers ----

def case_ext_one_stream(ctx):
    reqs = all_encodings(ctx)
    responses = run_stream(ctx.ext_stub(ctx.channel).predict,
                           [r for r, _ in reqs])
    problems = compare({r.id: w for r, w in reqs}, responses,
                       lambda resp: ext_prediction(ctx.pb, resp))
    by_enc = {}
    for p in problems:
        m = re.search(r"as (\w+)\)", p)
        if m:
            by_enc[m.group(1)] = by_enc.get(m.group(1), 0) + 1
    if by_enc:
        problems.insert(0, "wrong answers per encoding: " + ", ".join(
            f"{e}={n}" for e, n in by_enc.items()))
    fail_on(problems)
    return f"{len(reqs)} requests ({len(ctx.windows)} windows x " \
           f"{', '.join(ENCODINGS)})"


def case_ext_concurrent(ctx):
    return run_concurrent(ctx, lambda ch: ctx.ext_stub(ch).predict,
                          all_encodings(ctx),
                          lambda resp: ext_prediction(ctx.pb, resp))


def case_basic_one_stream(ctx):
    reqs = basic_all(ctx)
    responses = run_stream(ctx.basic_stub(ctx.channel).predict,
                           [r for r, _ in reqs])
    fail_on(compare({r.id: w for r, w in reqs}, responses,
                    lambda resp: basic_prediction(ctx.pb, resp)))
    return f"{len(reqs)} requests"


def case_basic_concurrent(ctx):
    reqs = basic_all(ctx) + basic_all(ctx, base=1000)
    return run_concurrent(ctx, lambda ch: ctx.basic_stub(ch).predict, reqs,
                          lambda resp: basic_prediction(ctx.pb, resp))


def case_stream_replay(ctx):
    reqs = [(ext_request(ctx.pb, w["id"], w["flat"]), (w["label"], w["want"]))
            for w in ctx.stream_windows]
    responses = run_stream(ctx.ext_stub(ctx.channel).predict,
                           [r for r, _ in reqs])
    fail_on(compare({r.id: w for r, w in reqs}, responses,
                    lambda resp: ext_prediction(ctx.pb, resp), "windows"))
    return f"{len(reqs)} windows against outputs_f64"


def case_repeat_last(ctx):
    """Fewer int_val values than elements repeat the last one (TensorFlow)."""
    base = ctx.windows[0]["flat"]
    variants = [
        ("last 2 equal", base[:25] + [base[25]] * 2, 26),
        ("last 6 equal", base[:21] + [-250] * 6, 22),
        ("all equal", [-150] * N_ELEMENTS, 1),
    ]
    reqs = []
    for k, (name, full, n_short) in enumerate(variants):
        for j, enc in enumerate(("int32_val", "int16_val")):
            rid = 100 * (k + 1) + 10 * j
            reqs.append((ext_request(ctx.pb, rid, full, enc), name, enc, "full"))
            reqs.append((ext_request(ctx.pb, rid + 1, full[:n_short], enc),
                         name, enc, f"{n_short} values"))
    responses = run_stream(ctx.ext_stub(ctx.channel).predict,
                           [r for r, *_ in reqs])
    got = {}
    problems = []
    for resp in responses:
        try:
            got[resp.id] = ext_prediction(ctx.pb, resp)
        except CaseFailure as e:
            problems.append(str(e))
    for req, name, enc, form in reqs[1::2]:
        full_id = req.id - 1
        if req.id not in got or full_id not in got:
            problems.append(f"{name} {enc}: ids {full_id}/{req.id} not both "
                            f"answered")
        elif not abs(got[req.id] - got[full_id]) <= TOL:
            problems.append(f"{name} {enc}: {form} gave {got[req.id]:.8f}, "
                            f"all 27 gave {got[full_id]:.8f}")
    fail_on(problems)
    return ", ".join(f"{name}: {got.get(100 * (k + 1), float('nan')):.5f}"
                     for k, (name, _, _) in enumerate(variants))


# ---- Cases: malformed messages ----

ID_WORDS = r"(?:\b(?:request[_ ]?)?id\b\s*[=:#]?\s*|\brequest\s+#?)"


def names_id(details, rid):
    return re.search(ID_WORDS + str(rid) + r"(?!\d)", details, re.I) is not None


def malformed(ctx, protocol, bad, bad_id, need_id=True,
              problem_re=None):
    """Sends a valid request and then `bad` on one fresh stream, next to a
    healthy stream; the bad stream must end with INVALID_ARGUMENT.

    protocol: "ext", "basic" or "raw" (bytes on the extended method).
    """
    pb = ctx.pb
    w = ctx.windows[1]
    good_id = bad_id - 1
    if protocol == "ext":
        call = ctx.ext_stub(ctx.channel).predict
        good = ext_request(pb, good_id, w["flat"])
        value = lambda r: ext_prediction(pb, r)  # noqa: E731
    elif protocol == "basic":
        call = ctx.basic_stub(ctx.channel).predict
        good = basic_request(pb, good_id, w["flat"])
        value = lambda r: basic_prediction(pb, r)  # noqa: E731
    else:
        call = ctx.raw_method(ctx.channel, pb.EXTENDED_PREDICT)
        good = ext_request(pb, good_id, w["flat"]).SerializeToString()
        value = lambda r: ext_prediction(pb, r)  # noqa: E731
    parse = pb.extended_pb2.ExtendedInferenceResponse.FromString

    with Healthy(ctx) as healthy:
        t_open = time.monotonic()
        bidi = Bidi(call, ERROR_TIMEOUT)
        stage = "the valid request before the bad one"
        try:
            bidi.send(good)
            first = bidi.recv()
            if protocol == "raw":
                first = parse(first)
            check(first.id == good_id,
                  f"valid request id={good_id} answered as id={first.id}")
            got = value(first)
            check(abs(got - w["want"]) <= TOL,
                  f"valid request before the bad one: got {got:.8f}, want "
                  f"{w['want']:.8f}")
            stage = "the bad request"
            bidi.send(bad)
            t_bad = time.monotonic()
            resp = bidi.recv()
            rid = parse(resp).id if protocol == "raw" else resp.id
            raise CaseFailure(f"bad request answered (response id={rid}) "
                              f"instead of ending the stream")
        except StopIteration:
            raise CaseFailure(f"stream ended with OK status after {stage}, "
                              f"want INVALID_ARGUMENT") from None
        except grpc.RpcError as e:
            err = e
            if stage != "the bad request":
                raise CaseFailure(f"{stage} failed: {rpc_text(e)}") from None
        finally:
            bidi.close()
        t_close = time.monotonic()
        healthy.during(t_open, t_close)
        summary = healthy.finish()

    code, details = err.code(), err.details() or ""
    shown = f"details={details!r}"
    check(code == grpc.StatusCode.INVALID_ARGUMENT,
          f"status {code.name} after {t_close - t_bad:.2f} s, want "
          f"INVALID_ARGUMENT; {shown}")
    if need_id:
        check(names_id(details, bad_id),
              f"details do not name the request id {bad_id}; {shown}")
    else:
        check(details.strip(), "details are empty")
    if problem_re:
        check(re.search(problem_re, details, re.I),
              f"details do not say what is wrong (/{problem_re}/); {shown}")
    return f"{shown}  {summary}"


def case_bad_truncated(ctx):
    full = ext_request(ctx.pb, 7001, ctx.windows[0]["flat"]).SerializeToString()
    cut = full[:-7]
    try:
        ctx.pb.extended_pb2.ExtendedInferenceRequest.FromString(cut)
    except Exception:
        pass
    else:
        raise CaseFailure("test bug: the cut message still decodes")
    return malformed(ctx, "raw", cut, 7001, need_id=False,
                     problem_re=r"decod|pars|truncat|malformed|protobuf|"
                                r"wire|invalid|bytes|length")


def _ext_tensor(ctx, rid, tensor, name=INPUT):
    req = ctx.pb.extended_pb2.ExtendedInferenceRequest(id=rid)
    req.input[name].CopyFrom(tensor)
    return req


def case_bad_dtype_float(ctx):
    pb = ctx.pb
    t = pb.tensor_pb2.TensorProto(dtype=pb.types_pb2.DT_FLOAT)
    for size in SHAPE:
        t.tensor_shape.dim.add(size=size)
    t.float_val.extend(float(v) for v in ctx.windows[0]["flat"])
    return malformed(ctx, "ext", _ext_tensor(ctx, 7011, t), 7011)


def case_bad_shape_3x9(ctx):
    flat = ctx.windows[0]["flat"]
    return malformed(ctx, "ext", ext_request(ctx.pb, 7021, flat, shape=(3, 9)),
                     7021)


def case_bad_shape_9x4(ctx):
    flat = ctx.windows[0]["flat"] + [0] * 9
    return malformed(ctx, "ext", ext_request(ctx.pb, 7031, flat, shape=(9, 4)),
                     7031)


def case_bad_unknown_input(ctx):
    req = ext_request(ctx.pb, 7041, ctx.windows[0]["flat"], name="arrray")
    return malformed(ctx, "ext", req, 7041)


def case_bad_extra_input(ctx):
    req = ext_request(ctx.pb, 7051, ctx.windows[0]["flat"])
    req.input["bogus"].CopyFrom(int_tensor(ctx.pb, ctx.windows[0]["flat"],
                                           "int32_val"))
    return malformed(ctx, "ext", req, 7051)


def case_bad_content_size(ctx):
    pb = ctx.pb
    t = int_tensor(pb, ctx.windows[0]["flat"][:26], "int32_content")
    return malformed(ctx, "ext", _ext_tensor(ctx, 7061, t), 7061)


def case_bad_content_size_int16(ctx):
    """DT_INT16 with 4-byte elements: 108 bytes where 54 are expected."""
    pb = ctx.pb
    t = int_tensor(pb, ctx.windows[0]["flat"], "int32_content")
    t.dtype = pb.types_pb2.DT_INT16
    return malformed(ctx, "ext", _ext_tensor(ctx, 7071, t), 7071)


def case_bad_too_many_values(ctx):
    flat = ctx.windows[0]["flat"] + [1]
    return malformed(ctx, "ext", ext_request(ctx.pb, 7081, flat), 7081)


def case_bad_basic_fraction(ctx):
    values = [float(v) for v in ctx.windows[0]["flat"]]
    values[4] = 1.5
    return malformed(ctx, "basic", basic_request(ctx.pb, 7091, values), 7091)


def case_bad_basic_shape_9x4(ctx):
    values = ctx.windows[0]["flat"] + [0] * 9
    return malformed(ctx, "basic",
                     basic_request(ctx.pb, 7101, values, shape=(9, 4)), 7101)


def case_bad_basic_count(ctx):
    """26 values for a [9, 3] shape: Tensor32 has no repeat-last rule."""
    values = ctx.windows[0]["flat"][:26]
    return malformed(ctx, "basic", basic_request(ctx.pb, 7111, values), 7111)


# ---- Cases: unknown methods, liveness ----

def case_unknown_methods(ctx):
    notes = []
    for method in ("/extended_inference.ExtendedInferenceService/nope",
                   "/foo.Bar/baz"):
        bidi = Bidi(ctx.raw_method(ctx.channel, method), 2.0)
        t0 = time.monotonic()
        try:
            bidi.send(b"")
            resp = bidi.recv()
            raise CaseFailure(f"{method}: got a response {resp!r}")
        except StopIteration:
            raise CaseFailure(f"{method}: ended with OK status") from None
        except grpc.RpcError as e:
            took = time.monotonic() - t0
            check(e.code() == grpc.StatusCode.UNIMPLEMENTED,
                  f"{method}: {rpc_text(e)} after {took:.2f} s, want "
                  f"UNIMPLEMENTED within 2 s")
            notes.append(f"{method} {took * 1000:.0f} ms")
        finally:
            bidi.close()
    return "; ".join(notes)


def case_still_alive(ctx):
    w = ctx.windows[0]
    responses = run_stream(ctx.ext_stub(ctx.channel).predict,
                           [ext_request(ctx.pb, 4242, w["flat"])])
    fail_on(compare({4242: (w["label"], w["want"])}, responses,
                    lambda resp: ext_prediction(ctx.pb, resp)))
    return f"confidence {ext_prediction(ctx.pb, responses[0]):.5f}"


CASES = [
    ("ext.one_stream", case_ext_one_stream),
    ("ext.concurrent_streams", case_ext_concurrent),
    ("basic.one_stream", case_basic_one_stream),
    ("basic.concurrent_streams", case_basic_concurrent),
    ("ext.stream_replay", case_stream_replay),
    ("ext.repeat_last", case_repeat_last),
    ("bad.truncated_bytes", case_bad_truncated),
    ("bad.dtype_float", case_bad_dtype_float),
    ("bad.shape_3x9", case_bad_shape_3x9),
    ("bad.shape_9x4", case_bad_shape_9x4),
    ("bad.unknown_input_name", case_bad_unknown_input),
    ("bad.extra_input_name", case_bad_extra_input),
    ("bad.content_size", case_bad_content_size),
    ("bad.content_size_int16", case_bad_content_size_int16),
    ("bad.too_many_values", case_bad_too_many_values),
    ("bad.basic_fraction", case_bad_basic_fraction),
    ("bad.basic_shape_9x4", case_bad_basic_shape_9x4),
    ("bad.basic_value_count", case_bad_basic_count),
    ("unknown_methods", case_unknown_methods),
    ("still_alive", case_still_alive),
]


# ---- Runner ----

def parse_args(argv):
    return reference_args(__doc__, "--workers=4",
                          stream_csv=True).parse_args(argv)


def main(argv):
    args = parse_args(argv)
    if args.list:
        print("\n".join(name for name, _ in CASES))
        return 0
    cases = pick(CASES, args.case)

    try:
        vectors = json.loads(pathlib.Path(args.vectors).read_text())
        windows = load_windows(vectors, n_elements=N_ELEMENTS)
        csv_path = args.stream_csv or (pathlib.Path(args.vectors).parent
                                       / vectors["stream"]["file"])
        stream_windows = load_stream_windows(vectors, csv_path)
        pb = mi_proto.load(HERE.parents[1], args.proto)
    except (OSError, ValueError, KeyError, RuntimeError) as e:
        return setup_failed(f"setup: {e}")

    srv = start_server(args.binary, args.pipeline, args.server_arg)
    if srv is None:
        return 1
    try:
        passed, failed = run_cases(srv, cases, pb, windows, stream_windows)
    except BaseException:
        srv.__exit__(*sys.exc_info())
        raise

    return end_server(srv, passed, failed, tail=60)


def run_cases(srv, cases, pb, windows, stream_windows):
    """Runs the cases, then stops the server; returns (passed, failed)."""
    passed = failed = 0
    ctx = None
    try:
        ctx = Ctx(pb, f"127.0.0.1:{srv.port}", windows, stream_windows)
        for name, fn in cases:
            if run_case(srv, ctx, name, fn):
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
