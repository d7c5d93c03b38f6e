#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Prometheus metrics of a live server, scraped from GET /metrics.

Serves a copy of the fall-detection pipeline with a 20 ms "sleep" step at
the start of its preprocessing, scrapes /metrics over HTTP with curl, and
checks:

- `promtool check metrics` accepts every scrape;
- after exactly N valid requests per protocol (the paper's extended and
  basic gRPC protocols, the Open Inference Protocol over gRPC, and over
  HTTP with JSON bodies sent by curl) and K invalid ones per protocol,
  mi_requests_total{protocol=...,status="ok"} moved by exactly N and
  status="invalid_argument" by exactly K, and no other status moved;
- every histogram's _count moved by exactly the number of requests it
  accounts for: request durations per protocol by N + K, the stage
  histograms and the batch size by the successful requests; buckets are
  cumulative and "+Inf" equals _count;
- the 20 ms step puts every mi_stage_duration_seconds{stage="pre"}
  observation above 0.01 s (none in le="0.01"), with _sum >= 0.02 x count;
- mi_build_info carries the version ServerMetadata reports; the process
  gauges are sane (resident memory > 0).

    /usr/bin/python3 tests/integration/test_metrics.py \\
        --binary build/modinfer \\
        --pipeline examples/fall-detection/pipeline.json \\
        --vectors ../shared/reference/fall-detection/vectors.json \\
        --proto proto

promtool comes with the Debian package "prometheus". Without it the test
exits 77 (skip), or fails when CI=true; likewise without the Python grpc
packages. Prints one line per check and a last line "N passed, M failed";
exits 0 when every check passed, 1 otherwise.
"""

import json
import math
import pathlib
import re
import shutil
import struct
import subprocess
import sys
import tempfile
import time

HERE = pathlib.Path(__file__).resolve().parent
sys.dont_write_bytecode = True  # keep the source tree clean
sys.path.insert(0, str(HERE))

import mi_server  # noqa: E402

import mi_testlib  # noqa: E402
from mi_testlib import (  # noqa: E402
    grpc, mi_proto, CaseFailure, check, rpc_text, load_oip, Results,
    start_server, finish, setup_failed)
from mi_cases import load_windows, reference_args, skip_or_fail  # noqa: E402

N = 6              # valid requests per protocol
K = 2              # invalid requests per protocol
SLEEP_MS = 20
TOL = 1e-5
PROTOCOLS = ("extended", "basic", "oip_grpc", "oip_http")
STAGES = ("queue", "pre", "infer", "post")
READY_TIMEOUT = 60.0
SETTLE_S = 3.0     # how long counters may lag behind the responses
CHANNEL_OPTIONS = [("grpc.enable_http_proxy", 0)]
READY_RE = re.compile(r"\bready: serving\b")
HTTP_RE = re.compile(r"http listening on (\S+):(\d+)")
GARBAGE = b"\x0a\x40not a protobuf message"   # field 1 cut short


def fail_on(problems, limit=8):
    mi_testlib.fail_on(problems, limit)


# ---- The exposition format ----

SAMPLE_RE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)"
                       r"(\s+-?\d+)?$")
LABEL_RE = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"\s*'
                      r'(,|$)')

def parse_value(text):
    if text in ("+Inf", "Inf"):
        return math.inf
    if text == "-Inf":
        return -math.inf
    return float(text)


class Scrape:
    """One scrape: samples keyed by (name, sorted label pairs)."""

    def __init__(self, text, content_type=""):
        self.text = text
        self.content_type = content_type
        self.samples = {}
        self.types = {}
        self.helps = set()
        for n, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            if line.startswith("#"):
                parts = line.split(None, 3)
                if len(parts) >= 3 and parts[1] == "TYPE":
                    self.types[parts[2]] = parts[3] if len(parts) > 3 else ""
                elif len(parts) >= 3 and parts[1] == "HELP":
                    self.helps.add(parts[2])
                continue
            m = SAMPLE_RE.match(line)
            if not m:
                raise CaseFailure(f"line {n} is not a sample: {line!r}")
            labels = {}
            rest = m.group(3) or ""
            pos = 0
            while pos < len(rest):
                lm = LABEL_RE.match(rest, pos)
                if not lm:
                    raise CaseFailure(f"line {n}: bad labels: {line!r}")
                labels[lm.group(1)] = lm.group(2)
                pos = lm.end()
            key = (m.group(1), tuple(sorted(labels.items())))
            if key in self.samples:
                raise CaseFailure(f"line {n}: sample repeated: {line!r}")
            self.samples[key] = parse_value(m.group(4))

    def find(self, name, **labels):
        """{labels dict: value} of the samples of `name` whose labels
        include `labels`."""
        out = []
        for (n, lab), v in self.samples.items():
            d = dict(lab)
            if n == name and all(d.get(k) == str(x)
                                 for k, x in labels.items()):
                out.append((d, v))
        return out

    def value(self, name, **labels):
        """The sample of `name` whose labels, besides model and version,
        are exactly `labels`; 0 if absent (a labelled counter may appear
        only with its first event)."""
        want = {k: str(v) for k, v in labels.items()}
        found = [v for (n, lab), v in self.samples.items()
                 if n == name and {k: x for k, x in lab
                                   if k not in ("model", "version")} == want]
        if len(found) > 1:
            raise CaseFailure(f"{len(found)} samples of {name} {labels}")
        return found[0] if found else 0.0

    def one(self, name, **labels):
        """Like value(), but the sample must exist."""
        check(self.find(name, **labels),
              f"no sample {name}{labels} in the scrape")
        return self.value(name, **labels)


def histogram_problems(scrape):
    """Buckets cumulative, '+Inf' == _count, for every histogram series."""
    problems = []
    for family, kind in scrape.types.items():
        if kind != "histogram":
            continue
        series = {}
        for (name, lab), v in scrape.samples.items():
            if name != family + "_bucket":
                continue
            d = dict(lab)
            le = d.pop("le", None)
            series.setdefault(tuple(sorted(d.items())), []).append(
                (parse_value(le), v))
        if not series:
            problems.append(f"histogram {family} has no buckets")
        for lab, buckets in series.items():
            buckets.sort()
            counts = [v for _, v in buckets]
            where = f"{family}{dict(lab)}"
            if buckets[-1][0] != math.inf:
                problems.append(f"{where}: no le=\"+Inf\" bucket")
            if any(b < a for a, b in zip(counts, counts[1:])):
                problems.append(f"{where}: buckets not cumulative: {counts}")
            count = scrape.samples.get((family + "_count", lab))
            total = scrape.samples.get((family + "_sum", lab))
            if count is None or total is None:
                problems.append(f"{where}: _count or _sum missing")
            elif counts[-1] != count:
                problems.append(f"{where}: +Inf bucket {counts[-1]} != "
                                f"_count {count}")
    return problems


# ---- Transport helpers ----

def curl(args, data=None, timeout=10):
    done = subprocess.run(["curl", "-s", "--noproxy", "*", "--max-time",
                           str(timeout), *args], input=data,
                          capture_output=True)
    return done


def scrape(port):
    """GET /metrics with curl; returns a Scrape."""
    with tempfile.NamedTemporaryFile(prefix="modinfer-headers-") as h:
        done = curl(["-D", h.name, "-o", "-", "-w", "%{http_code}",
                     f"http://127.0.0.1:{port}/metrics"])
        headers = pathlib.Path(h.name).read_text(errors="replace")
    out = done.stdout.decode("utf-8", errors="replace")
    status, body = out[-3:], out[:-3]
    check(done.returncode == 0 and status == "200",
          f"GET /metrics: curl exit {done.returncode}, HTTP {status!r}: "
          f"{body[:200]!r}")
    m = re.search(r"^content-type:\s*(.*?)\s*$", headers, re.I | re.M)
    return Scrape(body, m.group(1) if m else "")


def promtool_check(text):
    done = subprocess.run(["promtool", "check", "metrics"], input=text,
                          capture_output=True, text=True, timeout=60)
    out = (done.stdout + done.stderr).strip()
    check(done.returncode == 0,
          f"promtool check metrics exited {done.returncode}:\n    "
          + "\n    ".join(out.splitlines()[:12]))
    return out


def http_infer(port, model, body):
    """POST /v2/models/<model>/infer; returns (status, parsed JSON or
    text)."""
    done = curl(["-o", "-", "-w", "\n%{http_code}", "-H",
                 "Content-Type: application/json", "--data-binary", "@-",
                 f"http://127.0.0.1:{port}/v2/models/{model}/infer"],
                data=body)
    out = done.stdout.decode("utf-8", errors="replace")
    text, _, status = out.rpartition("\n")
    try:
        return int(status), json.loads(text)
    except ValueError:
        return int(status or 0), text


# ---- Requests ----

class Traffic:
    def __init__(self, pb, target, http_port, cfg, windows):
        oip, oip_grpc = load_oip()  # generated into pb.out_dir
        self.pb = pb
        self.oip = oip
        self.cfg = cfg
        self.name = cfg["name"]
        self.input = cfg["input"][0]["name"]
        self.shape = list(cfg["input"][0]["shape"])
        self.windows = windows
        self.http_port = http_port
        self.channel = grpc.insecure_channel(target, options=CHANNEL_OPTIONS)
        grpc.channel_ready_future(self.channel).result(timeout=10)
        self.oip_stub = oip_grpc.GRPCInferenceServiceStub(self.channel)
        self.ext_stub = pb.extended_grpc.ExtendedInferenceServiceStub(
            self.channel)
        self.basic_stub = pb.basic_grpc.BasicInferenceServiceStub(
            self.channel)

    def close(self):
        self.channel.close()

    # -- messages --

    def ext_request(self, rid, flat, shape=None):
        pb = self.pb
        t = pb.tensor_pb2.TensorProto(dtype=pb.types_pb2.DT_INT32)
        for size in shape or self.shape:
            t.tensor_shape.dim.add(size=size)
        t.int_val.extend(flat)
        req = pb.extended_pb2.ExtendedInferenceRequest(id=rid)
        req.input[self.input].CopyFrom(t)
        return req

    def basic_request(self, rid, flat, shape=None):
        return self.pb.basic_pb2.BasicInferenceRequest(
            id=rid, tensor=self.pb.basic_pb2.Tensor32(
                array=[float(v) for v in flat], shape=shape or self.shape))

    def oip_request(self, rid, flat, shape=None):
        req = self.oip.ModelInferRequest(model_name=self.name, id=str(rid))
        t = req.inputs.add(name=self.input, datatype="INT32",
                           shape=shape or self.shape)
        t.contents.int_contents.extend(flat)
        return req

    def http_body(self, rid, flat, shape=None):
        return json.dumps({"id": str(rid), "inputs": [{
            "name": self.input, "datatype": "INT32",
            "shape": shape or self.shape, "data": flat}]}).encode()

    # -- N valid requests per protocol --

    def valid(self, protocol):
        """Sends N valid requests; returns problems."""
        ws = [self.windows[i % len(self.windows)] for i in range(N)]
        problems = []
        got = {}
        if protocol == "extended":
            resps = list(self.ext_stub.predict(
                iter([self.ext_request(i, w["flat"])
                      for i, w in enumerate(ws)]), timeout=60))
            for r in resps:
                t = r.output.get("prediction")
                got[r.id] = t.float_val[0] if t and t.float_val else None
        elif protocol == "basic":
            resps = list(self.basic_stub.predict(
                iter([self.basic_request(i, w["flat"])
                      for i, w in enumerate(ws)]), timeout=60))
            for r in resps:
                got[r.id] = r.tensor.array[0] if r.tensor.array else None
        elif protocol == "oip_grpc":
            for i, w in enumerate(ws):
                r = self.oip_stub.ModelInfer(self.oip_request(i, w["flat"]),
                                             timeout=60)
                raw = r.raw_output_contents
                got[int(r.id)] = (struct.unpack("<f", raw[0])[0]
                                  if raw and len(raw[0]) == 4 else None)
        else:
            for i, w in enumerate(ws):
                status, body = http_infer(self.http_port, self.name,
                                          self.http_body(i, w["flat"]))
                if status != 200 or not isinstance(body, dict):
                    problems.append(f"HTTP request {i}: {status} "
                                    f"{str(body)[:200]!r}")
                    continue
                try:
                    got[int(body["id"])] = float(body["outputs"][0]["data"][0])
                except (KeyError, IndexError, TypeError, ValueError) as e:
                    problems.append(f"HTTP request {i}: {e!r} in {body}")
        for i, w in enumerate(ws):
            v = got.get(i)
            if v is None or not abs(v - w["want"]) <= TOL:
                problems.append(f"{protocol} request {i}: got {v!r}, want "
                                f"{w['want']:.8f}")
        return problems

    # -- K invalid requests per protocol --

    def invalid(self, protocol):
        """Sends K invalid requests (a wrong shape, then a malformed
        message); each must fail with INVALID_ARGUMENT (HTTP 400).
        Returns problems."""
        flat = self.windows[0]["flat"]
        wrong = [self.shape[1], self.shape[0]]
        problems = []
        if protocol in ("extended", "basic"):
            stub = self.ext_stub if protocol == "extended" else \
                self.basic_stub
            make = self.ext_request if protocol == "extended" else \
                self.basic_request
            method = ("/extended_inference.ExtendedInferenceService/predict"
                      if protocol == "extended" else
                      "/basic_inference.BasicInferenceService/predict")
            raw = self.channel.stream_stream(method)
            for what, call, msg in (
                    ("wrong shape", stub.predict, make(901, flat, wrong)),
                    ("garbage", raw, GARBAGE)):
                try:
                    resps = list(call(iter([msg]), timeout=10))
                    problems.append(f"{protocol} {what}: answered "
                                    f"{len(resps)} times, stream OK")
                except grpc.RpcError as e:
                    if e.code() != grpc.StatusCode.INVALID_ARGUMENT:
                        problems.append(f"{protocol} {what}: {rpc_text(e)}")
        elif protocol == "oip_grpc":
            raw = self.channel.unary_unary(
                "/inference.GRPCInferenceService/ModelInfer")
            for what, call, msg in (
                    ("wrong shape", self.oip_stub.ModelInfer,
                     self.oip_request(901, flat, wrong)),
                    ("garbage", raw, GARBAGE)):
                try:
                    call(msg, timeout=10)
                    problems.append(f"{protocol} {what}: answered")
                except grpc.RpcError as e:
                    if e.code() != grpc.StatusCode.INVALID_ARGUMENT:
                        problems.append(f"{protocol} {what}: {rpc_text(e)}")
        else:
            for what, body in (("wrong shape",
                                self.http_body(901, flat, wrong)),
                               ("malformed JSON", b'{"inputs": [')):
                status, text = http_infer(self.http_port, self.name, body)
                if status != 400:
                    problems.append(f"{protocol} {what}: HTTP {status} "
                                    f"{str(text)[:200]!r}, want 400")
        return problems


# ---- The checks ----

def settle(port, before, want):
    """Scrapes until every mi_requests_total delta in `want` is reached
    (counters may be updated just after the response leaves), at most
    SETTLE_S; returns the last scrape."""
    deadline = time.monotonic() + SETTLE_S
    while True:
        after = scrape(port)
        reached = all(
            after.value("mi_requests_total", protocol=p, status=s)
            - before.value("mi_requests_total", protocol=p, status=s) >= n
            for (p, s), n in want.items())
        if reached or time.monotonic() > deadline:
            return after
        time.sleep(0.1)


def delta(after, before, name, **labels):
    return after.value(name, **labels) - before.value(name, **labels)


def check_counts(before, after):
    problems = []
    for p in PROTOCOLS:
        ok = delta(after, before, "mi_requests_total", protocol=p,
                   status="ok")
        inv = delta(after, before, "mi_requests_total", protocol=p,
                    status="invalid_argument")
        if ok != N:
            problems.append(f'mi_requests_total{{protocol="{p}",status="ok"}}'
                            f" moved by {ok:g}, want {N}")
        if inv != K:
            problems.append(f'mi_requests_total{{protocol="{p}",status='
                            f'"invalid_argument"}} moved by {inv:g}, want {K}')
        others = {}
        for d, v in after.find("mi_requests_total", protocol=p):
            s = d.get("status")
            if s in ("ok", "invalid_argument"):
                continue
            moved = v - before.value("mi_requests_total", protocol=p,
                                     status=s)
            if moved:
                others[s] = moved
        if others:
            problems.append(f"protocol {p}: other statuses moved: {others}")
        rej = delta(after, before, "mi_requests_rejected_total", protocol=p)
        if rej:
            problems.append(f"mi_requests_rejected_total{{protocol=\"{p}\"}} "
                            f"moved by {rej:g}")
    fail_on(problems)
    return f"{N} ok + {K} invalid_argument on each of {', '.join(PROTOCOLS)}"


def check_request_durations(before, after):
    problems = []
    notes = []
    for p in PROTOCOLS:
        name = "mi_request_duration_seconds"
        n = delta(after, before, name + "_count", protocol=p)
        inf = delta(after, before, name + "_bucket", protocol=p, le="+Inf")
        fast = delta(after, before, name + "_bucket", protocol=p, le="0.01")
        total = delta(after, before, name + "_sum", protocol=p)
        if n != N + K or inf != N + K:
            problems.append(f'{name}{{protocol="{p}"}}: _count moved by '
                            f"{n:g} (+Inf bucket {inf:g}), want {N + K} "
                            f"({N} ok + {K} invalid)")
        if fast > K:
            problems.append(f'{name}{{protocol="{p}"}}: {fast:g} requests '
                            f"within 0.01 s, but the {N} valid ones sleep "
                            f"{SLEEP_MS} ms (at most {K} may be that fast)")
        if total < SLEEP_MS / 1000 * N:
            problems.append(f'{name}{{protocol="{p}"}}: _sum moved by '
                            f"{total:.4f} s, want >= {SLEEP_MS / 1000 * N}")
        notes.append(f"{p} {total / max(n, 1) * 1000:.1f} ms")
    fail_on(problems)
    return "mean " + ", ".join(notes)


def check_stages(before, after):
    problems = []
    ok = N * len(PROTOCOLS)
    name = "mi_stage_duration_seconds"
    for s in STAGES:
        n = delta(after, before, name + "_count", stage=s)
        if n != ok:
            problems.append(f'{name}{{stage="{s}"}}: _count moved by {n:g}, '
                            f"want {ok} (the successful requests)")
    fast = delta(after, before, name + "_bucket", stage="pre", le="0.01")
    total = delta(after, before, name + "_sum", stage="pre")
    n = delta(after, before, name + "_count", stage="pre")
    below = {}
    for d, v in after.find(name + "_bucket", stage="pre"):
        le = parse_value(d["le"])
        if le < SLEEP_MS / 1000:
            moved = v - before.value(name + "_bucket", stage="pre",
                                     le=d["le"])
            if moved:
                below[d["le"]] = moved
    if fast != 0 or below:
        problems.append(f'{name}{{stage="pre"}}: observations below '
                        f"{SLEEP_MS} ms with a {SLEEP_MS} ms sleep step: "
                        f"le=\"0.01\" moved by {fast:g}; {below}")
    if not after.find(name + "_bucket", stage="pre", le="0.01"):
        problems.append(f'{name}{{stage="pre"}} has no le="0.01" bucket')
    if total < SLEEP_MS / 1000 * n:
        problems.append(f'{name}{{stage="pre"}}: _sum moved by {total:.4f} s '
                        f"for {n:g} observations, want >= "
                        f"{SLEEP_MS / 1000 * n:.3f}")
    b_n = delta(after, before, "mi_batch_size_count")
    b_sum = delta(after, before, "mi_batch_size_sum")
    # Batching may run several requests per execution: every successful
    # request is in exactly one execution.
    if b_sum != ok or not 1 <= b_n <= ok:
        problems.append(f"mi_batch_size: _count moved by {b_n:g}, _sum by "
                        f"{b_sum:g}, want 1..{ok} executions covering {ok} "
                        f"requests")
    fail_on(problems)
    return (f"{ok} per stage; pre mean {total / max(n, 1) * 1000:.1f} ms, "
            f"none in le=\"0.01\"")


def check_gauges(after, cfg, version):
    problems = []
    info = after.find("mi_build_info")
    if len(info) != 1 or info[0][1] != 1:
        problems.append(f"mi_build_info: {info}, want one sample of value 1")
    elif info[0][0].get("version") != version:
        problems.append(f"mi_build_info version {info[0][0].get('version')!r}"
                        f", ServerMetadata says {version!r}")
    rss = after.one("mi_process_resident_memory_bytes")
    if not rss > 1e6:
        problems.append(f"mi_process_resident_memory_bytes = {rss}")
    cpu = after.one("mi_process_cpu_seconds_total")
    if not cpu > 0:
        problems.append(f"mi_process_cpu_seconds_total = {cpu}")
    start = after.one("mi_process_start_time_seconds")
    if not time.time() - 3600 < start <= time.time() + 5:
        problems.append(f"mi_process_start_time_seconds = {start}, now is "
                        f"{time.time():.0f}")
    for name in ("mi_requests_in_flight", "mi_queue_depth"):
        v = after.one(name)
        if v != 0:
            problems.append(f"{name} = {v:g} with no request open")
    load = after.one("mi_model_load_seconds")
    if not load > 0:
        problems.append(f"mi_model_load_seconds = {load}")
    for (name, lab), _ in after.samples.items():
        d = dict(lab)
        if "model" in d and (d["model"] != cfg["name"] or
                             d.get("version") != cfg.get("version", "1")):
            problems.append(f"{name}{d}: want model={cfg['name']!r}, "
                            f"version={cfg.get('version', '1')!r}")
            break
    fail_on(problems)
    return (f"build {version}, rss {rss / 2 ** 20:.1f} MiB, cpu {cpu:.2f} s, "
            f"load {load:.3f} s")


def check_format(s):
    problems = histogram_problems(s)
    if not re.match(r"text/plain;\s*version=0\.0\.4", s.content_type):
        problems.append(f"Content-Type {s.content_type!r}, want "
                        f"'text/plain; version=0.0.4...'")
    missing_help = sorted(set(s.types) - s.helps)
    if missing_help:
        problems.append(f"families without # HELP: {missing_help}")
    for (name, _), _ in s.samples.items():
        base = re.sub(r"_(bucket|count|sum)$", "", name)
        if name not in s.types and base not in s.types:
            problems.append(f"{name} has no # TYPE")
            break
    fail_on(problems)
    return f"{len(s.samples)} samples, {len(s.types)} families"


# ---- Runner ----

def sleepy_pipeline(src, folder):
    src = pathlib.Path(src)
    cfg = json.loads(src.read_text())
    model = pathlib.Path(cfg["model"]["path"])
    if not model.is_absolute():
        model = src.parent / model
    shutil.copy(model, folder / model.name)
    cfg["model"]["path"] = model.name
    cfg["pre"] = ([{"step": "sleep", "params": {"ms": SLEEP_MS}}]
                  + cfg.get("pre", []))
    dst = folder / "pipeline.json"
    dst.write_text(json.dumps(cfg, indent=2))
    return dst, cfg


def wait_for(srv, regex, timeout):
    deadline = time.monotonic() + timeout
    while True:
        m = regex.search(mi_server.log_text(srv.proc))
        if m:
            return m
        check(srv.alive(), f"server exited with {srv.proc.returncode}")
        check(time.monotonic() < deadline,
              f"no /{regex.pattern}/ line in the log within {timeout:.0f} s")
        time.sleep(0.05)


def parse_args(argv):
    return reference_args(__doc__, "--workers=2",
                          cases=False).parse_args(argv)


def main(argv):
    args = parse_args(argv)
    if shutil.which("promtool") is None:
        return skip_or_fail(
            "promtool not found (Debian: apt-get install prometheus)")
    folder = pathlib.Path(tempfile.mkdtemp(prefix="modinfer-metrics-"))
    try:
        try:
            pipeline, cfg = sleepy_pipeline(args.pipeline, folder)
            windows = load_windows(args.vectors)
            pb = mi_proto.load(HERE.parents[1], args.proto)
        except (OSError, ValueError, KeyError, RuntimeError,
                ImportError) as e:
            return setup_failed(f"setup: {e}")
        return run(args, pipeline, cfg, windows, pb)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def run(args, pipeline, cfg, windows, pb):
    res = Results()
    srv = start_server(args.binary, pipeline, args.server_arg)
    if srv is None:
        return 1
    traffic = None
    try:
        state = {}

        def ready():
            m = wait_for(srv, HTTP_RE, 10)
            state["http"] = int(m.group(2))
            wait_for(srv, READY_RE, READY_TIMEOUT)
            return f"http port {state['http']}"

        def first_scrape():
            state["before"] = scrape(state["http"])
            promtool_check(state["before"].text)
            return check_format(state["before"])

        def traffic_sent():
            nonlocal traffic
            traffic = Traffic(pb, f"127.0.0.1:{srv.port}", state["http"],
                              cfg, windows)
            problems = []
            for p in PROTOCOLS:
                problems += traffic.valid(p)
                problems += traffic.invalid(p)
            fail_on(problems)
            md = traffic.oip_stub.ServerMetadata(
                traffic.oip.ServerMetadataRequest(), timeout=10)
            state["version"] = md.version
            state["after"] = settle(
                state["http"], state["before"],
                {(p, s): n for p in PROTOCOLS
                 for s, n in (("ok", N), ("invalid_argument", K))})
            return f"{N} valid + {K} invalid per protocol"

        def second_scrape():
            promtool_check(state["after"].text)
            return check_format(state["after"])

        steps = [("http_and_ready", ready),
                 ("scrape_before.promtool", first_scrape),
                 ("traffic", traffic_sent),
                 ("scrape_after.promtool", second_scrape)]
        for name, fn in steps:
            if not res.run(name, fn):
                break
        else:
            before, after = state["before"], state["after"]
            res.run("requests_total", check_counts, before, after)
            res.run("request_duration_count", check_request_durations,
                    before, after)
            res.run("stage_durations", check_stages, before, after)
            res.run("gauges_and_build_info", check_gauges, after, cfg,
                    state["version"])
    except grpc.FutureTimeoutError:
        res.failed += 1
        print(f"FAIL connect: no gRPC connection to 127.0.0.1:{srv.port}")
    except BaseException:
        if traffic is not None:
            traffic.close()
        srv.__exit__(*sys.exc_info())
        raise
    if traffic is not None:
        traffic.close()

    return finish(srv, res)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
