#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Batching, back-pressure, deadlines, cancellation and drain, end to end.

Each case starts the real server binary (mi_server) on 127.0.0.1 with free
ports and a copy of the fall-detection pipeline made for it in a temporary
folder, and drives it with real clients over gRPC (stubs from proto/, see
mi_proto) and HTTP (urllib):

- batching: "batching": {"max_batch_size": 32, "max_queue_delay_us": 5000};
  16 concurrent clients (extended, basic, OIP ModelStreamInfer, OIP HTTP)
  send the 31 reference windows pipelined with distinct ids; every answer
  equals output_f32 within 1e-5 and the answer of a server without
  batching; mi_batch_size shows model runs of more than one request;
- queue_full: a 200 ms sleep step, --workers 1 --queue-capacity 2; ten
  extended streams at once: the surplus ends with RESOURCE_EXHAUSTED naming
  the queue; ten HTTP requests at once: the surplus gets 429; both counted
  in mi_requests_rejected_total;
- deadlines: with the queue full of slow work, an OIP ModelInfer with the
  timeout parameter (1000 us), one with a 50 ms gRPC deadline and an HTTP
  request with Inference-Timeout-Ms: 50 time out while queued and never
  reach the model (statistics and stage counters);
- cancel: an extended stream sends five slow requests and is cancelled;
  the queued ones are dropped (inference_count grows by fewer than five)
  and the server stays healthy;
- drain: a 20 ms sleep step, several streams sending continuously, then
  SIGTERM with --grace-ms 3000: readiness turns false at once (HTTP 503 on
  an open connection), new connections are refused, every stream gets the
  answers to exactly the requests the server read (a prefix of its ids)
  and then UNAVAILABLE "shutting down", and the process exits 0 within the
  grace period.

    /usr/bin/python3 tests/integration/test_throughput.py \\
        --binary build/modinfer \\
        --pipeline examples/fall-detection/pipeline.json \\
        --vectors ../shared/reference/fall-detection/vectors.json \\
        --proto proto [--case SUBSTRING]... [--server-arg=--grpc-threads=2]...

Prints one line per case and a last line "N passed, M failed"; exits 0 when
every case passed, 1 otherwise, and 77 (skip) when the Python grpc packages
are missing, unless CI=true.
"""

import http.client
import json
import math
import pathlib
import queue
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import types
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor

HERE = pathlib.Path(__file__).resolve().parent
sys.dont_write_bytecode = True  # keep the source tree clean
sys.path.insert(0, str(HERE))

import mi_server  # noqa: E402

import mi_testlib  # noqa: E402
from mi_testlib import (  # noqa: E402
    grpc, mi_proto, CaseFailure, check, rpc_text, END, drain, load_oip)
import mi_cases  # noqa: E402
from mi_cases import pick, reference_args, run_one, setup_failed, summary  # noqa: E402,E501

TOL = 1e-5
INPUT = "array"
OUTPUT = "prediction"
SHAPE = [9, 3]
CALL_TIMEOUT = 60.0
SETTLE_TIMEOUT = 20.0
CHANNEL_OPTIONS = [("grpc.enable_http_proxy", 0)]
HTTP_RE = re.compile(r"http listening on 127\.0\.0\.1:(\d+)")
SIGTERM_RE = re.compile(r"SIGTERM: stopping")
OIP = "/inference.GRPCInferenceService/"
# urllib without the environment's proxies: the server is on 127.0.0.1.
OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))

BATCH_STREAMS = 16      # 4 of each protocol
BATCH_ROUNDS = 2        # every window this many times per stream
SLOW_MS = 200           # the sleep step of the back-pressure cases
DRAIN_SLEEP_MS = 20     # the sleep step of the drain case
DRAIN_GRACE_MS = 3000
DRAIN_WINDOW = 8        # requests a drain client keeps unanswered


def fail_on(problems, limit=8):
    mi_testlib.fail_on(problems, limit)


# ---- Reference data and pipelines ----

def load_windows(path):
    """The 31 reference windows: dicts with flat raw values and want."""
    windows = mi_cases.load_windows(path)
    if len(windows) != 31:
        raise ValueError(f"{path}: {len(windows)} windows, want 31")
    return windows


def make_pipeline(src, folder, name, batching=None, sleep_ms=None):
    """A copy of the pipeline `src` and its model in folder/name/.

    batching: None keeps the file's own setting, {} turns batching off,
    anything else replaces it. sleep_ms: a sleep step in front of the
    preprocessing.
    """
    src = pathlib.Path(src)
    cfg = json.loads(src.read_text())
    model = pathlib.Path(cfg["model"]["path"])
    if not model.is_absolute():
        model = src.parent / model
    dst = folder / name
    dst.mkdir()
    shutil.copy(model, dst / model.name)
    cfg["model"]["path"] = model.name
    if batching == {}:
        cfg.pop("batching", None)
    elif batching is not None:
        cfg["batching"] = batching
    if sleep_ms is not None:
        cfg["pre"] = ([{"step": "sleep", "params": {"ms": sleep_ms}}]
                      + cfg.get("pre", []))
    path = dst / "pipeline.json"
    path.write_text(json.dumps(cfg, indent=2))
    return path, cfg


# ---- Servers ----

class Served:
    """A running server: its process, gRPC and HTTP ports, model name."""

    def __init__(self, srv, model):
        self.srv = srv
        self.proc = srv.proc
        self.grpc_port = srv.port
        self.target = f"127.0.0.1:{srv.port}"
        m = HTTP_RE.search(mi_server.log_text(srv.proc))
        check(m is not None, "no 'http listening on' line in the log")
        self.http_port = int(m.group(1))
        self.model = model
        self.channels = []

    def channel(self):
        ch = grpc.insecure_channel(self.target, options=CHANNEL_OPTIONS)
        grpc.channel_ready_future(ch).result(timeout=10)
        self.channels.append(ch)
        return ch

    def close_channels(self):
        for ch in self.channels:
            ch.close()
        self.channels = []

    def http(self, method, path, body=None, headers=None, timeout=30.0):
        """(status, body bytes) of one request on a new connection."""
        req = urllib.request.Request(
            f"http://127.0.0.1:{self.http_port}{path}", data=body,
            method=method, headers=headers or {})
        try:
            with OPENER.open(req, timeout=timeout) as r:
                return r.status, r.read()
        except urllib.error.HTTPError as e:
            return e.code, e.read()

    def scrape(self):
        status, body = self.http("GET", "/metrics")
        check(status == 200, f"GET /metrics: HTTP {status}")
        return Scrape(body.decode("utf-8", errors="replace"))

    def stats(self):
        status, body = self.http("GET", f"/v2/models/{self.model}/stats")
        check(status == 200, f"GET stats: HTTP {status}: {body[:200]!r}")
        entries = json.loads(body)["model_stats"]
        check(len(entries) == 1, f"model_stats {entries!r}")
        return entries[0]

    def settle(self, timeout=SETTLE_TIMEOUT):
        """Waits until nothing is queued or in flight; returns the scrape."""
        deadline = time.monotonic() + timeout
        while True:
            s = self.scrape()
            if (s.value("mi_queue_depth") == 0
                    and s.value("mi_requests_in_flight") == 0):
                return s
            check(time.monotonic() < deadline,
                  f"still {s.value('mi_queue_depth'):.0f} queued, "
                  f"{s.value('mi_requests_in_flight'):.0f} in flight after "
                  f"{timeout:.0f} s")
            time.sleep(0.05)

    def wait_metric(self, name, at_least, timeout=10.0, **labels):
        deadline = time.monotonic() + timeout
        while True:
            v = self.scrape().value(name, **labels)
            if v >= at_least:
                return v
            check(time.monotonic() < deadline,
                  f"{name}{labels or ''} is {v:.0f}, waited {timeout:.0f} s "
                  f"for {at_least}")
            time.sleep(0.01)


class serve:
    """with serve(ctx, pipeline, cfg, [args]) as s: a Served, stopped at
    the end (SIGTERM, exit 0 required) unless the case stopped it."""

    def __init__(self, ctx, pipeline, cfg, extra_args=()):
        self.srv = mi_server.Server(ctx.args.binary, pipeline,
                                    [*extra_args, *ctx.args.server_arg])
        self.model = cfg["name"]
        self.served = None

    def __enter__(self):
        self.srv.__enter__()
        try:
            self.served = Served(self.srv, self.model)
        except BaseException:
            self.srv.__exit__(*sys.exc_info())
            raise
        return self.served

    def __exit__(self, exc_type, exc, tb):
        if self.served is not None:
            self.served.close_channels()
        return self.srv.__exit__(exc_type, exc, tb)


# ---- /metrics ----

SAMPLE_RE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)")
LABEL_RE = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


class Scrape:
    """Samples of one /metrics text: [(name, labels dict, value)]."""

    def __init__(self, text):
        self.samples = []
        for line in text.splitlines():
            if not line or line.startswith("#"):
                continue
            m = SAMPLE_RE.match(line)
            check(m is not None, f"not a sample: {line!r}")
            labels = dict(LABEL_RE.findall(m.group(2) or ""))
            v = m.group(3)
            value = math.inf if v == "+Inf" else float(v)
            self.samples.append((m.group(1), labels, value))

    def value(self, name, **labels):
        """Sum of the samples of `name` whose labels include `labels`."""
        want = {k: str(v) for k, v in labels.items()}
        return sum(v for n, lab, v in self.samples
                   if n == name and all(lab.get(k) == x
                                        for k, x in want.items()))


# ---- Messages and answers ----

def ext_request(pb, rid, flat):
    req = pb.extended_pb2.ExtendedInferenceRequest(id=rid)
    t = req.input[INPUT]
    t.dtype = pb.types_pb2.DT_INT32
    for size in SHAPE:
        t.tensor_shape.dim.add(size=size)
    t.int_val.extend(flat)
    return req


def ext_value(resp):
    t = resp.output[OUTPUT]
    check(len(t.float_val) == 1, f"id={resp.id}: {len(t.float_val)} "
                                 f"float_val values")
    return t.float_val[0]


def basic_request(pb, rid, flat):
    return pb.basic_pb2.BasicInferenceRequest(
        id=rid, tensor=pb.basic_pb2.Tensor32(array=[float(v) for v in flat],
                                             shape=SHAPE))


def basic_value(resp):
    check(len(resp.tensor.array) == 1,
          f"id={resp.id}: {len(resp.tensor.array)} values")
    return resp.tensor.array[0]


def oip_request(ctx, model, rid, flat, timeout_us=None):
    req = ctx.oip.ModelInferRequest(model_name=model, id=str(rid))
    t = req.inputs.add(name=INPUT, datatype="INT32", shape=SHAPE)
    t.contents.int_contents.extend(flat)
    if timeout_us is not None:
        req.parameters["timeout"].int64_param = timeout_us
    return req


def oip_value(resp):
    check(len(resp.raw_output_contents) == 1,
          f"id={resp.id!r}: {len(resp.raw_output_contents)} raw outputs")
    return struct.unpack("<f", resp.raw_output_contents[0])[0]


def http_body(rid, flat):
    return json.dumps({"id": str(rid), "inputs": [
        {"name": INPUT, "datatype": "INT32", "shape": SHAPE,
         "data": flat}]}).encode()


def http_value(body):
    doc = json.loads(body)
    out = doc["outputs"][0]
    check(out["name"] == OUTPUT and out["shape"] == [1, 1],
          f"output {out!r}")
    return doc.get("id"), float(out["data"][0])


def http_infer(served, rid, flat, headers=None, timeout=CALL_TIMEOUT):
    h = {"Content-Type": "application/json", **(headers or {})}
    return served.http("POST", f"/v2/models/{served.model}/infer",
                       http_body(rid, flat), h, timeout)


def http_error(body):
    try:
        return json.loads(body).get("error", "")
    except ValueError:
        return body.decode("utf-8", errors="replace")


def stubs(ctx, channel):
    pb = ctx.pb
    return types.SimpleNamespace(
        ext=pb.extended_grpc.ExtendedInferenceServiceStub(channel).predict,
        basic=pb.basic_grpc.BasicInferenceServiceStub(channel).predict,
        oip=ctx.oip_grpc.GRPCInferenceServiceStub(channel))


# ---- Case: batching over the network ----

def client_run(ctx, served, kind, channel, jobs):
    """Sends jobs [(id, window)] pipelined over one client of `kind`;
    returns {id: value}. Problems raise CaseFailure."""
    got = {}

    def put(rid, value):
        check(rid not in got, f"id={rid} answered twice")
        got[rid] = value

    if kind in ("ext", "basic"):
        st = stubs(ctx, channel)
        make = ext_request if kind == "ext" else basic_request
        value = ext_value if kind == "ext" else basic_value
        call = (st.ext if kind == "ext" else st.basic)(
            iter([make(ctx.pb, rid, w["flat"]) for rid, w in jobs]),
            timeout=CALL_TIMEOUT)
        try:
            for resp in call:
                put(resp.id, value(resp))
        except grpc.RpcError as e:
            raise CaseFailure(f"{kind} stream: {rpc_text(e)}") from None
    elif kind == "oip":
        st = stubs(ctx, channel)
        reqs = [oip_request(ctx, served.model, rid, w["flat"])
                for rid, w in jobs]
        try:
            for resp in st.oip.ModelStreamInfer(iter(reqs),
                                                timeout=CALL_TIMEOUT):
                check(not resp.error_message,
                      f"ModelStreamInfer error: {resp.error_message!r}")
                r = resp.infer_response
                put(int(r.id), oip_value(r))
        except grpc.RpcError as e:
            raise CaseFailure(f"ModelStreamInfer: {rpc_text(e)}") from None
    else:
        def one(job):
            rid, w = job
            status, body = http_infer(served, rid, w["flat"])
            check(status == 200, f"HTTP id={rid}: {status} "
                                 f"{http_error(body)!r}")
            echoed, value = http_value(body)
            check(echoed == str(rid), f"HTTP id={rid}: answer has id "
                                      f"{echoed!r}")
            return rid, value

        # Four requests at a time on their own connections.
        with ThreadPoolExecutor(4) as pool:
            for rid, value in pool.map(one, jobs):
                put(rid, value)
    return got


def reference_answers(ctx, served):
    """{window index: value} from one extended stream."""
    ch = served.channel()
    jobs = [(i, w) for i, w in enumerate(ctx.windows)]
    return client_run(ctx, served, "ext", ch, jobs)


def case_batching(ctx):
    plain, plain_cfg = make_pipeline(ctx.args.pipeline, ctx.folder,
                                     "unbatched", batching={})
    batched, cfg = make_pipeline(
        ctx.args.pipeline, ctx.folder, "batched",
        batching={"max_batch_size": 32, "max_queue_delay_us": 5000})

    with serve(ctx, plain, plain_cfg, ["--workers", "1"]) as s:
        check(s.stats()["execution_count"] == 0, "fresh server has runs")
        unbatched = reference_answers(ctx, s)
        st = s.stats()
        check(st["execution_count"] == st["inference_count"] == 31,
              f"unbatched server: {st['inference_count']} inferences in "
              f"{st['execution_count']} runs, want 31 in 31")

    kinds = ["ext", "basic", "oip", "http"] * (BATCH_STREAMS // 4)
    with serve(ctx, batched, cfg, ["--workers", "2"]) as s:
        channels = [s.channel() for _ in range(4)]
        jobs = []
        for k in range(BATCH_STREAMS):
            jobs.append([(k * 1000 + n + 1, n % len(ctx.windows))
                         for n in range(BATCH_ROUNDS * len(ctx.windows))])
        barrier = threading.Barrier(BATCH_STREAMS)

        def stream(k):
            barrier.wait(timeout=30)
            return client_run(ctx, s, kinds[k], channels[k % 4],
                              [(rid, ctx.windows[i]) for rid, i in jobs[k]])

        problems = []
        max_diff = 0.0
        with ThreadPoolExecutor(BATCH_STREAMS) as pool:
            futures = [pool.submit(stream, k) for k in range(BATCH_STREAMS)]
            for k, fut in enumerate(futures):
                where = f"client {k} ({kinds[k]})"
                try:
                    got = fut.result(timeout=CALL_TIMEOUT + 30)
                except CaseFailure as e:
                    problems.append(f"{where}: {e}")
                    continue
                want_ids = {rid for rid, _ in jobs[k]}
                if set(got) != want_ids:
                    problems.append(
                        f"{where}: missing ids "
                        f"{sorted(want_ids - set(got))[:6]}, unknown ids "
                        f"{sorted(set(got) - want_ids)[:6]}")
                for rid, i in jobs[k]:
                    if rid not in got:
                        continue
                    v = got[rid]
                    want = ctx.windows[i]["want"]
                    max_diff = max(max_diff, abs(v - unbatched[i]))
                    if not abs(v - want) <= TOL:
                        problems.append(f"{where}: id={rid} window {i}: got "
                                        f"{v:.8f}, want {want:.8f}")
                    if not abs(v - unbatched[i]) <= TOL:
                        problems.append(f"{where}: id={rid} window {i}: got "
                                        f"{v:.8f}, unbatched server "
                                        f"{unbatched[i]:.8f}")
        fail_on(problems)

        total = BATCH_STREAMS * BATCH_ROUNDS * len(ctx.windows)
        m = s.settle()
        runs = m.value("mi_batch_size_count")
        rows = m.value("mi_batch_size_sum")
        singles = m.value("mi_batch_size_bucket", le="1")
        check(rows == total,
              f"mi_batch_size_sum {rows:.0f}, want {total} (every request "
              f"ran once)")
        check(runs - singles > 0,
              f"mi_batch_size: all {runs:.0f} runs had one request")
        check(runs < rows, f"{runs:.0f} runs for {rows:.0f} requests")
        st = s.stats()
        check(st["inference_count"] == total and
              st["execution_count"] == runs,
              f"stats: {st['inference_count']} inferences in "
              f"{st['execution_count']} runs; /metrics: {rows:.0f} in "
              f"{runs:.0f}")
        buckets = sorted((float(lab["le"]), v) for n, lab, v in m.samples
                         if n == "mi_batch_size_bucket")
        biggest = next(le for le, v in buckets if v == runs)
    return (f"{total} requests in {runs:.0f} runs ({runs - singles:.0f} "
            f"batched, largest <= {biggest:g}); max diff to unbatched "
            f"{max_diff:.1e}")


# ---- Case: a full queue refuses ----

def case_queue_full(ctx):
    path, cfg = make_pipeline(ctx.args.pipeline, ctx.folder, "queue-full",
                              batching={}, sleep_ms=SLOW_MS)
    n = 10
    w = ctx.windows[0]
    with serve(ctx, path, cfg,
               ["--workers", "1", "--queue-capacity", "2"]) as s:
        channels = [s.channel() for _ in range(n)]
        barrier = threading.Barrier(n)

        def one(k):
            barrier.wait(timeout=30)
            call = stubs(ctx, channels[k]).ext(
                iter([ext_request(ctx.pb, k + 1, w["flat"])]),
                timeout=CALL_TIMEOUT)
            try:
                return "ok", [ext_value(r) for r in call]
            except grpc.RpcError as e:
                return e.code(), e.details() or ""

        problems = []
        ok = refused = 0
        with ThreadPoolExecutor(n) as pool:
            for k, (what, detail) in enumerate(pool.map(one, range(n))):
                if what == "ok":
                    if len(detail) != 1 or not abs(detail[0] - w["want"]) \
                            <= TOL:
                        problems.append(f"stream {k}: answers {detail}")
                    ok += 1
                elif what == grpc.StatusCode.RESOURCE_EXHAUSTED:
                    refused += 1
                    if not re.search(r"queue", detail, re.I):
                        problems.append(f"stream {k}: RESOURCE_EXHAUSTED "
                                        f"{detail!r} does not name the "
                                        f"queue")
                else:
                    problems.append(f"stream {k}: {what.name}: {detail!r}")
        fail_on(problems)
        check(refused >= 1, f"all {n} requests were taken ({ok} ok): no "
                            f"refusal with a queue of 2")
        check(ok >= 1, "every request was refused")
        grpc_note = f"extended {ok} ok / {refused} refused"
        s.settle()

        def post(k):
            barrier.wait(timeout=30)
            return http_infer(s, 100 + k, w["flat"])

        barrier = threading.Barrier(n)
        http_ok = http_429 = 0
        with ThreadPoolExecutor(n) as pool:
            for k, (status, body) in enumerate(pool.map(post, range(n))):
                if status == 200:
                    _, v = http_value(body)
                    if not abs(v - w["want"]) <= TOL:
                        problems.append(f"HTTP {k}: got {v}")
                    http_ok += 1
                elif status == 429:
                    http_429 += 1
                    msg = http_error(body)
                    if not re.search(r"queue", msg, re.I):
                        problems.append(f"HTTP {k}: 429 {msg!r} does not "
                                        f"name the queue")
                else:
                    problems.append(f"HTTP {k}: {status} "
                                    f"{http_error(body)!r}")
        fail_on(problems)
        check(http_429 >= 1, f"all {n} HTTP requests were taken: no 429")
        check(http_ok >= 1, "every HTTP request was refused")

        m = s.settle()
        got_ext = m.value("mi_requests_rejected_total", protocol="extended")
        got_http = m.value("mi_requests_rejected_total", protocol="oip_http")
        check(got_ext == refused and got_http == http_429,
              f"mi_requests_rejected_total extended {got_ext:.0f} "
              f"(refused {refused}), oip_http {got_http:.0f} (429: "
              f"{http_429})")
        counted = m.value("mi_requests_total", protocol="extended",
                          status="resource_exhausted")
        check(counted == refused,
              f"mi_requests_total{{extended,resource_exhausted}} "
              f"{counted:.0f}, refused {refused}")
        check(m.value("mi_requests_total", protocol="extended",
                      status="ok") == ok,
              "mi_requests_total{extended,ok} differs from the answers")
    return f"{grpc_note}; HTTP {http_ok} ok / {http_429} x 429"


# ---- Case: deadlines expire in the queue ----

def case_deadlines(ctx):
    path, cfg = make_pipeline(ctx.args.pipeline, ctx.folder, "deadlines",
                              batching={}, sleep_ms=SLOW_MS)
    n_fill = 5
    w = ctx.windows[1]
    with serve(ctx, path, cfg, ["--workers", "1"]) as s:
        st = stubs(ctx, s.channel())
        before = s.stats()
        m0 = s.scrape()
        # Slow work: one running, the rest queued for about a second.
        fillers = [st.oip.ModelInfer.future(
            oip_request(ctx, s.model, f"fill-{k}", w["flat"]),
            timeout=CALL_TIMEOUT) for k in range(n_fill)]
        s.wait_metric("mi_queue_depth", n_fill - 1)

        t0 = time.monotonic()
        by_param = st.oip.ModelInfer.future(
            oip_request(ctx, s.model, "timeout-param", w["flat"],
                        timeout_us=1000), timeout=CALL_TIMEOUT)
        by_deadline = st.oip.ModelInfer.future(
            oip_request(ctx, s.model, "grpc-deadline", w["flat"]),
            timeout=0.05)
        with ThreadPoolExecutor(1) as pool:
            # Queued behind about a second of slow work, like the others.
            by_header = pool.submit(http_infer, s, "header", w["flat"],
                                    {"Inference-Timeout-Ms": "50"})
            status, body = by_header.result(timeout=CALL_TIMEOUT)
        t_header = time.monotonic() - t0

        problems = []
        for name, fut in (("timeout=1000us", by_param),
                          ("gRPC deadline 50 ms", by_deadline)):
            try:
                resp = fut.result()
                problems.append(f"{name}: answered {resp.id!r}, want "
                                f"DEADLINE_EXCEEDED")
            except grpc.RpcError as e:
                if e.code() != grpc.StatusCode.DEADLINE_EXCEEDED:
                    problems.append(f"{name}: {rpc_text(e)}")
                elif name.startswith("timeout") and not re.search(
                        r"deadline", e.details() or "", re.I):
                    problems.append(f"{name}: details {e.details()!r} do "
                                    f"not say 'deadline'")
        if status != 504:
            problems.append(f"Inference-Timeout-Ms: 50: HTTP {status} "
                            f"{body[:200]!r}, want 504")
        elif not re.search(r"deadline", http_error(body), re.I):
            problems.append(f"504 body {http_error(body)!r} does not say "
                            f"'deadline'")
        if t_header < 0.05:
            problems.append(f"the 504 came after {t_header * 1e3:.0f} ms, "
                            f"before the deadline")
        for k, fut in enumerate(fillers):
            try:
                v = oip_value(fut.result())
                if not abs(v - w["want"]) <= TOL:
                    problems.append(f"fill-{k}: got {v}")
            except grpc.RpcError as e:
                problems.append(f"fill-{k}: {rpc_text(e)}")
        fail_on(problems)

        m = s.settle()
        after = s.stats()
        ran = after["inference_count"] - before["inference_count"]
        runs = after["execution_count"] - before["execution_count"]
        infer = (m.value("mi_stage_duration_seconds_count", stage="infer")
                 - m0.value("mi_stage_duration_seconds_count",
                            stage="infer"))
        check(ran == n_fill and runs == n_fill and infer == n_fill,
              f"the model ran {ran} requests in {runs} runs (infer stage "
              f"{infer:.0f}); only the {n_fill} without deadlines should")
        expired_grpc = m.value("mi_requests_total", protocol="oip_grpc",
                               status="deadline_exceeded")
        expired_http = m.value("mi_requests_total", protocol="oip_http",
                               status="deadline_exceeded")
        check(expired_grpc == 2 and expired_http == 1,
              f"mi_requests_total deadline_exceeded: oip_grpc "
              f"{expired_grpc:.0f} (want 2), oip_http {expired_http:.0f} "
              f"(want 1)")
    return (f"3 expired unrun; {n_fill} ran; 504 after "
            f"{t_header * 1e3:.0f} ms")


# ---- Case: a cancelled stream's queued requests are dropped ----

def case_cancel(ctx):
    path, cfg = make_pipeline(ctx.args.pipeline, ctx.folder, "cancel",
                              batching={}, sleep_ms=SLOW_MS)
    w = ctx.windows[2]
    with serve(ctx, path, cfg, ["--workers", "1"]) as s:
        st = stubs(ctx, s.channel())
        before = s.stats()["inference_count"]
        q = queue.Queue()
        call = st.ext(drain(q), timeout=CALL_TIMEOUT)
        for rid in range(1, 6):
            q.put(ext_request(ctx.pb, rid, w["flat"]))
        # The server read all five (one running, four queued): cancel.
        s.wait_metric("mi_requests_in_flight", 5)
        call.cancel()
        q.put(END)
        try:
            extra = list(call)
            raise CaseFailure(f"cancelled call went on: {extra!r}")
        except grpc.RpcError as e:
            check(e.code() == grpc.StatusCode.CANCELLED,
                  f"cancelled call ended with {rpc_text(e)}")
        m = s.settle()
        ran = s.stats()["inference_count"] - before
        check(ran < 5, f"the model ran all 5 requests of the cancelled "
                       f"stream")
        dropped = m.value("mi_requests_total", protocol="extended",
                          status="cancelled")
        check(dropped >= 1 and dropped + ran == 5,
              f"{ran} ran, {dropped:.0f} counted cancelled; want 5 in all")

        # Still healthy and serving.
        status, body = s.http("GET", "/v2/health/ready")
        check(status == 200, f"ready: HTTP {status} after a cancel")
        resp = list(st.ext(iter([ext_request(ctx.pb, 77, w["flat"])]),
                           timeout=CALL_TIMEOUT))
        check(len(resp) == 1 and resp[0].id == 77 and
              abs(ext_value(resp[0]) - w["want"]) <= TOL,
              f"answer after the cancel: {resp!r}")
    return f"{ran} of 5 ran, {dropped:.0f} dropped"


# ---- Case: drain on SIGTERM ----

class Pump:
    """A stream that keeps DRAIN_WINDOW requests unanswered until the
    server ends it; records what was sent, answered, and how it ended."""

    def __init__(self, ctx, channel, kind, model, window):
        self.ctx = ctx
        self.kind = kind
        self.window = window
        self.q = queue.Queue()
        self.sem = threading.Semaphore(DRAIN_WINDOW)
        self.lock = threading.Lock()
        self.n_sent = 0
        self.answers = []     # (id, value, monotonic time)
        self.problems = []
        self.code = None      # grpc.StatusCode at the end
        self.details = ""
        self.t_end = None
        self.stop_evt = threading.Event()
        st = stubs(ctx, channel)
        if kind == "ext":
            self.call = st.ext(drain(self.q), timeout=CALL_TIMEOUT)
        elif kind == "basic":
            self.call = st.basic(drain(self.q), timeout=CALL_TIMEOUT)
        else:
            self.call = st.oip.ModelStreamInfer(drain(self.q),
                                                timeout=CALL_TIMEOUT)
        self.model = model
        self.sender = threading.Thread(target=self._send, daemon=True)
        self.receiver = threading.Thread(target=self._receive, daemon=True)

    def start(self):
        self.receiver.start()
        self.sender.start()

    def _request(self, rid):
        flat = self.window["flat"]
        if self.kind == "ext":
            return ext_request(self.ctx.pb, rid, flat)
        if self.kind == "basic":
            return basic_request(self.ctx.pb, rid, flat)
        return oip_request(self.ctx, self.model, rid, flat)

    def _send(self):
        rid = 1
        while not self.stop_evt.is_set():
            if not self.sem.acquire(timeout=0.05):
                continue
            with self.lock:
                self.n_sent = rid
            self.q.put(self._request(rid))
            rid += 1

    def _receive(self):
        try:
            for resp in self.call:
                now = time.monotonic()
                if self.kind == "ext":
                    rid, v = resp.id, ext_value(resp)
                elif self.kind == "basic":
                    rid, v = resp.id, basic_value(resp)
                else:
                    if resp.error_message:
                        # A request the server read must be run and
                        # answered, also while it drains.
                        self.problems.append(
                            f"a request read by the server was answered "
                            f"with error_message {resp.error_message!r}")
                        continue
                    rid = int(resp.infer_response.id)
                    v = oip_value(resp.infer_response)
                with self.lock:
                    self.answers.append((rid, v, now))
                self.sem.release()
            self.code = grpc.StatusCode.OK
        except grpc.RpcError as e:
            self.code = e.code()
            self.details = e.details() or ""
        except Exception as e:  # a malformed answer
            self.problems.append(f"{type(e).__name__}: {e}")
            self.code = None
        finally:
            self.t_end = time.monotonic()
            self.stop_evt.set()
            self.q.put(END)

    def join(self, timeout):
        self.receiver.join(timeout)
        self.stop_evt.set()
        self.sender.join(timeout)
        self.q.put(END)
        return not self.receiver.is_alive()

    def verify(self, t_term):
        """Problems with this stream's answers and end; (n, n after)."""
        problems = list(self.problems)
        ids = [a[0] for a in self.answers]
        k = len(ids)
        if len(set(ids)) != k:
            problems.append(f"repeated ids in {sorted(ids)[:12]}")
        prefix = set(range(1, k + 1))
        if set(ids) != prefix:
            problems.append(f"answered ids are not the first {k} sent: "
                            f"missing {sorted(prefix - set(ids))[:6]}, "
                            f"unexpected {sorted(set(ids) - prefix)[:6]}")
        if any(r > self.n_sent for r in ids):
            problems.append("an answer for an id never sent")
        bad = [(r, v) for r, v, _ in self.answers
               if not abs(v - self.window["want"]) <= TOL]
        if bad:
            problems.append(f"wrong values {bad[:3]}")
        if self.code == grpc.StatusCode.UNAVAILABLE:
            if re.search(r"reset|broken pipe", self.details, re.I):
                problems.append(f"the connection broke before the stream's "
                                f"status arrived (answers sent just before "
                                f"are lost with it): {self.details!r}")
            elif not re.search(r"shutting down", self.details, re.I):
                problems.append(f"UNAVAILABLE {self.details!r} does not say "
                                f"'shutting down'")
        elif self.code not in (grpc.StatusCode.OK, grpc.StatusCode.CANCELLED):
            problems.append(f"ended with {self.code} {self.details!r}")
        if self.answers and self.t_end is not None and \
                max(t for _, _, t in self.answers) > self.t_end:
            problems.append("an answer after the stream's status")
        after = sum(1 for _, _, t in self.answers if t >= t_term)
        return problems, k, after


def case_drain(ctx):
    path, cfg = make_pipeline(ctx.args.pipeline, ctx.folder, "drain",
                              sleep_ms=DRAIN_SLEEP_MS)
    kinds = ["ext", "ext", "basic", "basic", "oip", "oip", "oip", "oip"]
    srv = mi_server.Server(ctx.args.binary, path,
                           ["--workers", "2", "--grace-ms",
                            str(DRAIN_GRACE_MS), *ctx.args.server_arg])
    srv.__enter__()
    s = None
    pumps = []
    keep = None
    try:
        s = Served(srv, cfg["name"])
        channels = [s.channel() for _ in range(2)]
        pumps = [Pump(ctx, channels[k % 2], kind, s.model,
                      ctx.windows[k]) for k, kind in enumerate(kinds)]
        for p in pumps:
            p.start()
        # Traffic for a while; every stream must be answering.
        deadline = time.monotonic() + 10
        while any(len(p.answers) < 10 for p in pumps):
            check(time.monotonic() < deadline,
                  f"answers before SIGTERM: "
                  f"{[len(p.answers) for p in pumps]}")
            check(all(p.code is None for p in pumps),
                  f"a stream ended early: "
                  f"{[(p.kind, p.code, p.details) for p in pumps]}")
            time.sleep(0.05)
        time.sleep(0.5)
        keep = http.client.HTTPConnection("127.0.0.1", s.http_port,
                                          timeout=5)
        keep.request("GET", "/v2/health/ready")
        r = keep.getresponse()
        r.read()
        check(r.status == 200, f"ready before SIGTERM: HTTP {r.status}")

        t_term = time.monotonic()
        srv.stopped = True  # this case sends SIGTERM and reaps the process
        srv.proc.send_signal(signal.SIGTERM)
        while not SIGTERM_RE.search(mi_server.log_text(srv.proc)):
            check(time.monotonic() - t_term < 5,
                  "no 'SIGTERM: stopping' line within 5 s")
            time.sleep(0.005)

        # Readiness is false at once, on a connection opened before.
        keep.request("GET", "/v2/health/ready")
        r = keep.getresponse()
        r.read()
        t_ready = time.monotonic() - t_term
        alive_ready = srv.proc.poll() is None
        check(r.status == 503, f"ready after SIGTERM: HTTP {r.status}, "
                               f"want 503")

        # New connections: gRPC refused, HTTP not answered.
        new_grpc = "answered"
        ch = grpc.insecure_channel(s.target, options=CHANNEL_OPTIONS)
        try:
            ctx.oip_grpc.GRPCInferenceServiceStub(ch).ServerLive(
                ctx.oip.ServerLiveRequest(), timeout=2)
        except grpc.RpcError as e:
            new_grpc = e.code().name
        finally:
            ch.close()
        check(new_grpc != "answered",
              "a new gRPC connection after SIGTERM was served")
        try:
            with socket.create_connection(("127.0.0.1", s.http_port),
                                          timeout=0.5) as sock:
                sock.sendall(b"GET /v2/health/live HTTP/1.1\r\n"
                             b"Host: x\r\nConnection: close\r\n\r\n")
                head = sock.recv(64)
            new_http = head.split(b"\r\n")[0].decode(errors="replace") \
                or "closed"
        except OSError as e:
            new_http = type(e).__name__
        check(not new_http.startswith("HTTP/1.1 200"),
              f"a new HTTP connection after SIGTERM got {new_http!r}")
        keep.close()
        keep = None

        try:
            rc = srv.proc.wait(DRAIN_GRACE_MS / 1000 + 10)
        except subprocess.TimeoutExpired:
            srv.proc.kill()
            srv.proc.wait()
            raise CaseFailure(f"still running {DRAIN_GRACE_MS / 1000 + 10:.0f}"
                              f" s after SIGTERM (killed)") from None
        t_exit = time.monotonic() - t_term
        check(rc == 0, f"exit code {rc} after SIGTERM")
        # The grace period, plus the last HTTP replies and the teardown.
        check(t_exit <= DRAIN_GRACE_MS / 1000 + 1.5,
              f"exited {t_exit:.2f} s after SIGTERM, grace "
              f"{DRAIN_GRACE_MS / 1000:.0f} s")

        problems = []
        total = after = 0
        ends = {}
        for k, p in enumerate(pumps):
            if not p.join(10):
                problems.append(f"stream {k} ({p.kind}) never ended")
                continue
            probs, n, n_after = p.verify(t_term)
            problems += [f"stream {k} ({p.kind}): {x}" for x in probs]
            total += n
            after += n_after
            name = p.code.name if p.code is not None else "error"
            ends[name] = ends.get(name, 0) + 1
        check(alive_ready, "the server had exited before the readiness "
                           "check")
        check("Traceback" not in mi_server.log_text(srv.proc) and
              "ERROR" not in mi_server.log_text(srv.proc),
              "errors in the server log")
        fail_on(problems)
        check(after > 0, "no answer arrived after SIGTERM: nothing was in "
                         "flight, the drain was not exercised")
        mi_server.remove_log(srv.proc)
        return (f"{total} answers ({after} after SIGTERM); ends {ends}; "
                f"ready 503 after {t_ready * 1e3:.0f} ms; new gRPC "
                f"{new_grpc}, new HTTP {new_http!r}; exit 0 after "
                f"{t_exit:.2f} s")
    except BaseException:
        print(f"--- server log tail ({srv.proc.mi_log_path})\n"
              f"{srv.tail()}", file=sys.stderr)
        if srv.proc.poll() is None:
            srv.proc.kill()
            srv.proc.wait()
        raise
    finally:
        if keep is not None:
            keep.close()
        for p in pumps:
            p.stop_evt.set()
            p.q.put(END)
        if s is not None:
            s.close_channels()


CASES = [
    ("batching", case_batching),
    ("queue_full", case_queue_full),
    ("deadlines", case_deadlines),
    ("cancel", case_cancel),
    ("drain", case_drain),
]


# ---- Runner ----

class Ctx:
    def __init__(self, args, pb, oip, oip_grpc, windows, folder):
        self.args = args
        self.pb = pb
        self.oip = oip
        self.oip_grpc = oip_grpc
        self.windows = windows
        self.folder = folder


def parse_args(argv):
    return reference_args(__doc__, "--grpc-threads=2").parse_args(argv)


def main(argv):
    args = parse_args(argv)
    if args.list:
        print("\n".join(name for name, _ in CASES))
        return 0
    cases = pick(CASES, args.case)
    folder = pathlib.Path(tempfile.mkdtemp(prefix="modinfer-throughput-"))
    try:
        try:
            windows = load_windows(args.vectors)
            pb = mi_proto.load(HERE.parents[1], args.proto)
            oip, oip_grpc = load_oip()  # generated into pb.out_dir
        except (OSError, ValueError, KeyError, RuntimeError,
                ImportError) as e:
            return setup_failed(f"setup: {e}")
        ctx = Ctx(args, pb, oip, oip_grpc, windows, folder)
        passed = failed = 0
        for name, fn in cases:
            if run_one(name, fn, ctx, (CaseFailure, mi_server.ServerError),
                       tb_limit=6):
                passed += 1
            else:
                failed += 1
        return summary(passed, failed)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
