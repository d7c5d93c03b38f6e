#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Replicas behind haproxy: spreading, failover and SIGTERM.

Starts a local cluster with deploy/local/cluster.sh (three replicas of the
real server and haproxy, on free loopback ports, run directory in a
temporary folder) and checks, one line per case:

- the script starts it and `status` reports every replica ready and UP;
- unary OIP ModelInfer calls, bidirectional streams of the paper's
  extended protocol and OIP HTTP requests are spread evenly over the
  replicas, counted by haproxy's x-served-by header and by each replica's
  own mi_requests_total; a stream left idle for IDLE_S seconds still works;
- failover without client retries: a steady load (unary gRPC, extended
  streams and HTTP, several client threads) runs while replica 1 gets
  SIGKILL and replica 2 a plain SIGTERM (os.kill; the replicas run with
  the drain delay cluster.sh gives them, 1500 ms for checks every 500 ms:
  not ready at once, serving on until haproxy has marked them DOWN).
  Every failed request must have been in flight at the kill (streams: on
  a stream the killed replica served), so failures are at most the
  requests in flight there; no request fails because of the SIGTERM;
  replica 2 answers requests that arrive after its SIGTERM, and
  afterwards every answer comes from replica 3.  Streams replica 2 ends
  (UNAVAILABLE, after their accepted requests were answered) are
  reopened, and a request it did not read is sent again there;
- clients with the gRPC retry policy of RETRY_CONFIG see no failure at all
  when, on a fresh cluster started with --drain-delay-ms 0, replica 1 gets
  SIGKILL and replica 2 a SIGTERM (without the delay it refuses new calls
  with UNAVAILABLE until haproxy notices); a client without retries runs
  alongside, for comparison;
- `cluster.sh stop` stops everything, and `status` then fails.

The counts are printed.  Rates are modest (the test also runs in the ASan
build).

    /usr/bin/python3 tests/integration/test_cluster.py \\
        --binary build/modinfer \\
        --pipeline examples/fall-detection/pipeline.json \\
        --proto proto --source . [--haproxy /usr/sbin/haproxy]

Prints one line per case and a last line "N passed, M failed"; exits 0 when
every case passed, 1 otherwise, and 77 (skip) when the Python grpc
packages, haproxy or curl are missing, unless CI=true.
"""

import argparse
import http.client
import json
import os
import pathlib
import queue
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from collections import Counter

HERE = pathlib.Path(__file__).resolve().parent
sys.dont_write_bytecode = True  # keep the source tree clean
sys.path.insert(0, str(HERE))

from mi_testlib import (  # noqa: E402
    IS_CI, grpc, mi_proto, CaseFailure, check, fail_on, rpc_text, END, drain,
    load_oip)

N_REPLICAS = 3
INPUT = "array"
SHAPE = [9, 3]
WINDOW = [120, -980, 35] * 9          # one window of raw accelerometer data
CHANNEL_OPTIONS = [("grpc.enable_http_proxy", 0)]
CALL_TIMEOUT = 30.0
IDLE_S = 8.0                          # longer than haproxy's short timeouts
PAUSE_S = 0.02                        # between two requests of a client
SERVED_BY = "x-served-by"
OIP_SERVICE = "inference.GRPCInferenceService"
# The policy deploy/local/README.md documents: retry what a replica refused
# or what failed with its connection, up to 5 attempts in all.  CANCELLED
# is how haproxy 2.6 reports a call whose stopping replica's connection
# closed under it (inference is idempotent, so retrying is safe).
RETRY_CONFIG = json.dumps({"methodConfig": [{
    "name": [{"service": OIP_SERVICE}],
    "retryPolicy": {
        "maxAttempts": 5,
        "initialBackoff": "0.05s",
        "maxBackoff": "0.5s",
        "backoffMultiplier": 2,
        "retryableStatusCodes": ["UNAVAILABLE", "CANCELLED"],
    }}]})
RETRY_OPTIONS = CHANNEL_OPTIONS + [("grpc.enable_retries", 1),
                                   ("grpc.service_config", RETRY_CONFIG)]
METRIC_RE = re.compile(r'^mi_requests_total\{([^}]*)\} (\S+)$', re.M)


# ---- Ports and the cluster script ----

def port_free(port):
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_block(n):
    """The first port of n consecutive free loopback ports."""
    rng = random.Random()
    for _ in range(200):
        base = rng.randrange(20000, 60000 - n)
        if all(port_free(base + k) for k in range(n)):
            return base
    raise CaseFailure(f"no {n} consecutive free ports found")


class Cluster:
    """deploy/local/cluster.sh on ports of its own, in a temporary folder."""

    def __init__(self, args, run_dir):
        self.script = pathlib.Path(args.source) / "deploy/local/cluster.sh"
        self.args = args
        self.run_dir = pathlib.Path(run_dir)
        self.started = False

    def run(self, *words, timeout=180):
        cmd = ["bash", str(self.script), words[0], "--run-dir",
               str(self.run_dir), *words[1:]]
        return subprocess.run(cmd, capture_output=True, text=True,
                              timeout=timeout)

    def start(self, drain_delay_ms=None):
        base = free_block(3 + 2 * N_REPLICAS)
        self.grpc_port, self.http_port, self.stats_port = base, base + 1, \
            base + 2
        self.replica_grpc = [base + 3 + k for k in range(N_REPLICAS)]
        self.replica_http = [base + 3 + N_REPLICAS + k
                             for k in range(N_REPLICAS)]
        done = self.run(
            "start", "--replicas", str(N_REPLICAS),
            "--grpc-port", str(self.grpc_port),
            "--http-port", str(self.http_port),
            "--stats-port", str(self.stats_port),
            "--replica-grpc-base", str(self.replica_grpc[0]),
            "--replica-http-base", str(self.replica_http[0]),
            "--binary", str(self.args.binary),
            "--pipeline", str(self.args.pipeline),
            "--haproxy", str(self.args.haproxy),
            # Fast checks: the test waits for haproxy to see changes.
            "--check-interval", "500ms",
            *(["--drain-delay-ms", str(drain_delay_ms)]
              if drain_delay_ms is not None else []),
            "--", "--workers", "1")
        self.started = done.returncode == 0 or self.started
        check(done.returncode == 0,
              f"cluster.sh start exited with {done.returncode}:\n"
              f"{done.stderr.strip()}")
        return done

    def pid(self, i):
        return int((self.run_dir / f"replica-{i}.pid").read_text())

    def log(self, i):
        try:
            return (self.run_dir / f"replica-{i}.log").read_text(
                errors="replace")
        except OSError as e:
            return f"(no log: {e})"

    def stop(self):
        done = self.run("stop", timeout=120)
        if done.returncode == 0:
            self.started = False
        return done

    def target(self):
        return f"127.0.0.1:{self.grpc_port}"

    def replica_requests(self, i):
        """Sum of replica i's mi_requests_total over every label."""
        conn = http.client.HTTPConnection(
            "127.0.0.1", self.replica_http[i - 1], timeout=10)
        try:
            conn.request("GET", "/metrics")
            text = conn.getresponse().read().decode()
        finally:
            conn.close()
        return sum(float(v) for _, v in METRIC_RE.findall(text))

    def all_requests(self):
        return [self.replica_requests(i) for i in range(1, N_REPLICAS + 1)]


SANITIZER_RE = re.compile(r"ERROR: (Address|Leak)Sanitizer|runtime error:")


def sanitizer_reports(cluster, replicas):
    """Problems: sanitizer reports in the logs of the given replicas."""
    return [f"replica-{i}.log: {m.group(0)}" for i in replicas
            for m in [SANITIZER_RE.search(cluster.log(i))] if m]


def wait_gone(pid, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.05)
    return False


# ---- Messages ----

class Ctx:
    def __init__(self, args, cluster, pb, oip, oip_grpc):
        self.args = args
        self.cluster = cluster
        self.pb = pb
        self.oip = oip
        self.oip_grpc = oip_grpc
        self.model = json.loads(pathlib.Path(args.pipeline).read_text())[
            "name"]

    def oip_request(self, rid):
        req = self.oip.ModelInferRequest(model_name=self.model, id=str(rid))
        t = req.inputs.add(name=INPUT, datatype="INT32", shape=SHAPE)
        t.contents.int_contents.extend(WINDOW)
        return req

    def ext_request(self, rid):
        pb = self.pb
        req = pb.extended_pb2.ExtendedInferenceRequest(id=rid)
        t = pb.tensor_pb2.TensorProto(dtype=pb.types_pb2.DT_INT32)
        for size in SHAPE:
            t.tensor_shape.dim.add(size=size)
        t.int_val.extend(WINDOW)
        req.input[INPUT].CopyFrom(t)
        return req

    def oip_stub(self, options=CHANNEL_OPTIONS):
        ch = grpc.insecure_channel(self.cluster.target(), options=options)
        return ch, self.oip_grpc.GRPCInferenceServiceStub(ch)

    def ext_stub(self):
        ch = grpc.insecure_channel(self.cluster.target(),
                                   options=CHANNEL_OPTIONS)
        return ch, self.pb.extended_grpc.ExtendedInferenceServiceStub(ch)


def served_by(call):
    return dict(call.initial_metadata() or ()).get(SERVED_BY, "?")


def http_infer(conn, ctx, rid):
    """One OIP HTTP request on conn; (status, served_by)."""
    body = json.dumps({"id": str(rid), "inputs": [{
        "name": INPUT, "shape": SHAPE, "datatype": "INT32",
        "data": WINDOW}]}).encode()
    conn.request("POST", f"/v2/models/{ctx.model}/infer", body,
                 {"Content-Type": "application/json"})
    resp = conn.getresponse()
    data = resp.read()
    if resp.status == 200:
        doc = json.loads(data)
        if not doc.get("outputs"):
            return 0, "?"
    return resp.status, resp.getheader(SERVED_BY, "?")


# ---- Steady load ----

class Load:
    """Client threads sending requests one at a time until stop().

    Every request is recorded as (kind, t_start, t_end, outcome, replica):
    outcome "ok", or the failure (a gRPC status name, "http_<code>", or the
    exception); replica from x-served-by, for streams the replica the
    stream was opened on.
    """

    def __init__(self, ctx):
        self.ctx = ctx
        self.records = []
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.threads = []
        self.sessions = []       # streams: (replica, t_open, t_close)
        self.cuts = []           # (replica, t, status, had a request out)
        self.problems = []       # test-side errors (not request failures)
        self.details = []        # what unexpected gRPC failures said

    def record(self, kind, t0, outcome, replica):
        with self.lock:
            self.records.append((kind, t0, time.monotonic(), outcome,
                                 replica))

    def add(self, target, *args):
        t = threading.Thread(target=self.guard, args=(target, *args),
                             daemon=True)
        self.threads.append(t)

    def guard(self, target, *args):
        try:
            target(*args)
        except Exception as e:  # a bug in the test, not a request failure
            with self.lock:
                self.problems.append(f"{target.__name__}: "
                                     f"{type(e).__name__}: {e}")
            traceback.print_exc(limit=4, file=sys.stdout)

    def start(self):
        for t in self.threads:
            t.start()

    def stop(self):
        self.stopping.set()
        for t in self.threads:
            t.join(CALL_TIMEOUT + 10)
        check(not any(t.is_alive() for t in self.threads),
              "a client thread did not finish")
        fail_on(self.problems)

    def unary(self, k, options=CHANNEL_OPTIONS, kind="unary"):
        ch, stub = self.ctx.oip_stub(options)
        rid = 0
        with ch:
            while not self.stopping.is_set():
                t0 = time.monotonic()
                try:
                    _, call = stub.ModelInfer.with_call(
                        self.ctx.oip_request(f"{k}-{rid}"),
                        timeout=CALL_TIMEOUT)
                    self.record(kind, t0, "ok", served_by(call))
                except grpc.RpcError as e:
                    self.record(kind, t0, e.code().name, "?")
                    if e.code() != grpc.StatusCode.UNAVAILABLE:
                        with self.lock:
                            self.details.append(
                                f"{kind} at {t0:.3f}: {e.code().name} "
                                f"{e.details()!r}")
                rid += 1
                time.sleep(PAUSE_S)

    def http(self, k):
        c = self.ctx.cluster
        conn = http.client.HTTPConnection("127.0.0.1", c.http_port,
                                          timeout=CALL_TIMEOUT)
        rid = 0
        while not self.stopping.is_set():
            t0 = time.monotonic()
            try:
                status, replica = http_infer(conn, self.ctx, f"h{k}-{rid}")
                self.record("http", t0, "ok" if status == 200
                            else f"http_{status}", replica)
            except (OSError, http.client.HTTPException) as e:
                self.record("http", t0, type(e).__name__, "?")
                conn.close()
                conn = http.client.HTTPConnection(
                    "127.0.0.1", c.http_port, timeout=CALL_TIMEOUT)
            rid += 1
            time.sleep(PAUSE_S)
        conn.close()

    def stream(self, k):
        """A bidirectional extended stream, one request outstanding, as the
        paper's clients use it.  When the stream is cut (UNAVAILABLE, or
        CANCELLED: haproxy 2.6 turns the status of a stream its replica
        ends early into RST_STREAM CANCEL), it opens a new one and sends
        the unanswered request again, as deploy/local/README.md tells
        stream clients to do; each cut is recorded in self.cuts."""
        ch, stub = self.ctx.ext_stub()
        rid = k * 1000000
        pending = None           # (id, first send time) not yet answered
        with ch:
            while not self.stopping.is_set():
                q = queue.Queue()
                t_open = time.monotonic()
                call = stub.predict(drain(q), timeout=600)
                replica = None
                try:
                    while not self.stopping.is_set():
                        if pending is None:
                            rid += 1
                            pending = (rid, time.monotonic())
                        q.put(self.ctx.ext_request(pending[0]))
                        resp = next(call)
                        if replica is None:
                            replica = served_by(call)
                        check(resp.id == pending[0],
                              f"stream answered id {resp.id}, want "
                              f"{pending[0]}")
                        self.record("stream", pending[1], "ok", replica)
                        pending = None
                        time.sleep(PAUSE_S)
                    q.put(END)
                    for _ in call:
                        pass
                    self.sessions.append((replica, t_open, time.monotonic()))
                except grpc.RpcError as e:
                    q.put(END)
                    if replica is None:
                        replica = served_by(call)
                    t_cut = time.monotonic()
                    self.sessions.append((replica, t_open, t_cut))
                    if e.code() in (grpc.StatusCode.UNAVAILABLE,
                                    grpc.StatusCode.CANCELLED):
                        with self.lock:
                            self.cuts.append((replica, t_cut, e.code().name,
                                              pending is not None))
                    elif pending is not None:
                        self.record("stream", pending[1], e.code().name,
                                    replica)
                        pending = None


# ---- Cases ----

def case_start(ctx):
    c = ctx.cluster
    c.start()
    done = c.run("status")
    check(done.returncode == 0, f"status exited with {done.returncode}:\n"
                                f"{done.stdout}{done.stderr}")
    up = [line for line in done.stdout.splitlines() if " UP " in line]
    check(len(up) == 2 * N_REPLICAS,
          f"status shows {len(up)} servers UP, want {2 * N_REPLICAS}:\n"
          f"{done.stdout}")
    cfg = (c.run_dir / "haproxy.cfg").read_text()
    for want in (f"bind 127.0.0.1:{c.grpc_port} proto h2",
                 "option httpchk GET /v2/health/ready",
                 f"proto h2 check-proto h1 port {c.replica_http[0]}",
                 "timeout tunnel 1h"):
        check(want in cfg, f"haproxy.cfg lacks '{want}'")
    check(all(a == "127.0.0.1" for a in re.findall(
        r"^\s*bind (\S+):", cfg, re.M)), "a bind address is not 127.0.0.1")
    return f"ports gRPC {c.grpc_port}, HTTP {c.http_port}"


def spread_check(ctx, before, served, n_each, what):
    after = ctx.cluster.all_requests()
    delta = [int(a - b) for a, b in zip(after, before)]
    want = {f"r{i}": n_each for i in range(1, N_REPLICAS + 1)}
    check(dict(served) == want,
          f"{what} by x-served-by: {dict(sorted(served.items()))}, want "
          f"{want}")
    check(delta == [n_each] * N_REPLICAS,
          f"{what} by the replicas' mi_requests_total: {delta}, want "
          f"{[n_each] * N_REPLICAS}")
    return f"per replica {delta}"


def case_unary_spread(ctx):
    before = ctx.cluster.all_requests()
    served = Counter()
    ch, stub = ctx.oip_stub()
    with ch:
        for k in range(4 * N_REPLICAS):
            _, call = stub.ModelInfer.with_call(ctx.oip_request(k),
                                                timeout=CALL_TIMEOUT)
            served[served_by(call)] += 1
    return spread_check(ctx, before, served, 4, "unary calls")


def case_streams_spread(ctx):
    """Long-lived streams of one connection go to different replicas, and
    survive a pause longer than haproxy's short timeouts."""
    n_streams, n_each = 2 * N_REPLICAS, 3
    before = ctx.cluster.all_requests()
    served = Counter()
    ch, stub = ctx.ext_stub()
    with ch:
        queues = [queue.Queue() for _ in range(n_streams)]
        calls = [stub.predict(drain(q), timeout=IDLE_S + 60) for q in queues]
        replicas = []
        for k, (q, call) in enumerate(zip(queues, calls)):
            q.put(ctx.ext_request(k))
            check(next(call).id == k, f"stream {k}: wrong id")
            replicas.append(served_by(call))
        time.sleep(IDLE_S)       # every stream idle
        for r in range(1, n_each):
            for k, (q, call) in enumerate(zip(queues, calls)):
                q.put(ctx.ext_request(100 * r + k))
                check(next(call).id == 100 * r + k,
                      f"stream {k}: wrong id after {IDLE_S:.0f} s idle")
        for q, call in zip(queues, calls):
            q.put(END)
            check(list(call) == [], "answers after the last request")
    for r in replicas:
        served[r] += n_each
    note = spread_check(ctx, before, served, 2 * n_each,
                        f"{n_streams} streams x {n_each} requests")
    return f"{note}; idle {IDLE_S:.0f} s in the middle"


def case_http_spread(ctx):
    before = ctx.cluster.all_requests()
    served = Counter()
    conn = http.client.HTTPConnection("127.0.0.1", ctx.cluster.http_port,
                                      timeout=CALL_TIMEOUT)
    try:
        for k in range(2 * N_REPLICAS):
            status, replica = http_infer(conn, ctx, k)
            check(status == 200, f"HTTP request {k}: status {status}")
            served[replica] += 1
    finally:
        conn.close()
    return spread_check(ctx, before, served, 2, "HTTP requests")


def counts_text(recs):
    by_kind = Counter(r[0] for r in recs)
    return ", ".join(f"{k} {n}" for k, n in sorted(by_kind.items()))


# cluster.sh's default drain delay for --check-interval 500ms: (2 + 1) x
# the interval.
DRAIN_DELAY_MS = 1500


def case_failover_sigterm(ctx):
    c = ctx.cluster
    load = Load(ctx)
    for k in range(3):
        load.add(load.unary, k)
    for k in range(2):
        load.add(load.stream, k + 1)
    for k in range(2):
        load.add(load.http, k)
    load.start()
    try:
        time.sleep(3)
        t_kill = time.monotonic()
        os.kill(c.pid(1), signal.SIGKILL)
        time.sleep(3)
        pid2 = c.pid(2)
        t_term = time.monotonic()
        os.kill(pid2, signal.SIGTERM)
        gone = wait_gone(pid2, DRAIN_DELAY_MS / 1000 + 30)
        t_gone = time.monotonic()
        check(gone, "replica 2 still running 30 s after its drain delay")
        time.sleep(2)
    finally:
        load.stop()
    recs = load.records
    ok = [r for r in recs if r[3] == "ok"]
    failed = [r for r in recs if r[3] != "ok"]
    # In flight at the SIGKILL: requests under way then, and the streams
    # open on the killed replica (one request outstanding each).
    in_flight = [r for r in recs if r[0] != "stream" and
                 r[1] <= t_kill <= r[2]]
    on_killed = [s for s in load.sessions if s[0] == "r1" and
                 s[1] <= t_kill <= s[2]]
    at_kill = [r for r in failed if r[1] <= t_kill <= r[2]]
    other = [r for r in failed if r not in at_kill]
    at_term = [r for r in recs if r[1] <= t_term <= r[2]]
    # Sent after the SIGTERM and answered by replica 2: its drain delay.
    served_after = [r for r in ok if r[1] > t_term and r[4] == "r2"]
    late = [r for r in ok if r[1] > t_gone]
    late_by = Counter(r[4] for r in late)
    cuts = Counter(f"{c[0]}:{c[2]}" for c in load.cuts)
    resent = sum(1 for c in load.cuts if c[3])
    failed_by = Counter(f"{r[0]}:{r[3]}" for r in failed)
    print(f"     failover without client retries: sent {len(recs)} "
          f"({counts_text(recs)}), answered ok {len(ok)} "
          f"({counts_text(ok)}), failed {len(failed)} {dict(failed_by)}")
    print(f"     SIGKILL replica 1: in flight {len(in_flight)} requests and "
          f"{len(on_killed)} streams on it; failed attributable to it "
          f"{len(at_kill)}")
    print(f"     plain SIGTERM replica 2: in flight {len(at_term)} requests; "
          f"failed {len(other)}; answered by it after the SIGTERM "
          f"{len(served_after)} ({counts_text(served_after)}); it exited "
          f"{t_gone - t_term:.2f} s after the SIGTERM")
    print(f"     streams cut {dict(cuts)}, their unanswered requests sent "
          f"again on a new stream: {resent}; after replica 2 exited "
          f"{len(late)} answers, by {dict(late_by)}")
    problems = []
    for r in other:
        problems.append(f"{r[0]} request failed with {r[3]} at "
                        f"{r[1] - t_kill:+.3f} s from the SIGKILL, "
                        f"{r[1] - t_term:+.3f} s from the SIGTERM (replica "
                        f"{r[4]})")
    if len(at_kill) > len(in_flight) + len(on_killed):
        problems.append(f"{len(at_kill)} failures, more than the "
                        f"{len(in_flight) + len(on_killed)} requests in "
                        f"flight at the kill")
    for cut in load.cuts:
        if not ((cut[0] == "r1" and t_kill <= cut[1] < t_term) or
                (cut[0] == "r2" and t_term <= cut[1] <= t_gone + 2.0)):
            problems.append(f"a stream on {cut[0]} was cut ({cut[2]}) at "
                            f"{cut[1] - t_kill:+.3f} s from the SIGKILL, "
                            f"{cut[1] - t_term:+.3f} s from the SIGTERM")
    if not served_after:
        problems.append("replica 2 answered nothing sent after its SIGTERM "
                        "(no drain delay?)")
    if t_gone - t_term < DRAIN_DELAY_MS / 1000:
        problems.append(f"replica 2 exited {t_gone - t_term:.2f} s after "
                        f"SIGTERM, before its {DRAIN_DELAY_MS} ms drain "
                        f"delay was over")
    if set(late_by) != {"r3"}:
        problems.append(f"answers after replica 2 exited came from "
                        f"{dict(late_by)}, want only r3")
    for kind in ("unary", "stream", "http"):
        if not any(r[0] == kind for r in late):
            problems.append(f"no {kind} answer after replica 2 exited")
    log2 = c.log(2)
    if f"serving on for {DRAIN_DELAY_MS} ms" not in log2:
        problems.append(f"replica 2 did not log a {DRAIN_DELAY_MS} ms drain "
                        f"delay: " + " | ".join(log2.splitlines()[-3:]))
    if "stopped" not in log2 or "grace period over" in log2:
        problems.append("replica 2 did not stop cleanly: "
                        + " | ".join(log2.splitlines()[-3:]))
    problems += sanitizer_reports(c, (1, 2, 3))
    fail_on(problems)
    return (f"{len(recs)} sent, {len(ok)} ok, {len(at_kill)} lost at the "
            f"SIGKILL, 0 at the SIGTERM")


def case_retry(ctx):
    """On a fresh cluster without drain delay: SIGKILL one replica and
    SIGTERM another under clients with the retry policy."""
    c = ctx.cluster
    done = c.stop()
    check(done.returncode == 0, f"cluster.sh stop exited with "
                                f"{done.returncode}:\n{done.stderr.strip()}")
    # The next start replaces the logs: the first cluster's last look.
    fail_on(sanitizer_reports(c, (1, 2, 3)))
    # No drain delay: the SIGTERM below refuses calls until haproxy
    # notices, which is what the retry policy is for.
    c.start(drain_delay_ms=0)
    load = Load(ctx)
    for k in range(4):
        load.add(load.unary, k, RETRY_OPTIONS, "retrying")
    load.add(load.unary, 9, CHANNEL_OPTIONS, "plain")
    load.start()
    try:
        time.sleep(3)
        t_kill = time.monotonic()
        os.kill(c.pid(1), signal.SIGKILL)
        time.sleep(2)
        pid2 = c.pid(2)
        os.kill(pid2, signal.SIGTERM)
        check(wait_gone(pid2, 30), "replica 2 still running 30 s after "
                                   "SIGTERM")
        time.sleep(3)
    finally:
        load.stop()
    recs = load.records
    retrying = [r for r in recs if r[0] == "retrying"]
    plain = [r for r in recs if r[0] == "plain"]
    r_failed = [r for r in retrying if r[3] != "ok"]
    # A call whose answer had begun when its replica was killed is
    # committed: gRPC does not retry it, whatever the policy.  Such calls
    # (under way at the SIGKILL) are counted, not failed; any other
    # failure of a retrying call is.
    r_at_kill = [r for r in r_failed if r[1] <= t_kill <= r[2]]
    r_failed = [r for r in r_failed if r not in r_at_kill]
    p_failed = [r for r in plain if r[3] != "ok"]
    print(f"     with the retry policy: sent {len(retrying)}, answered ok "
          f"{len(retrying) - len(r_failed) - len(r_at_kill)}, failed "
          f"{len(r_failed)}, cut while answering at the SIGKILL "
          f"{len(r_at_kill)}; "
          f"without (alongside): sent {len(plain)}, failed {len(p_failed)}"
          f" ({dict(Counter(r[3] for r in p_failed))})")
    fail_on([f"retrying client: {r[3]} at {r[1] - t_kill:+.3f} s from the "
             f"SIGKILL" for r in r_failed]
            + (load.details if r_failed else []))
    p_failed = [r for r in p_failed if not r[1] <= t_kill <= r[2]]
    check(all(r[3] in ("UNAVAILABLE", "CANCELLED") for r in p_failed),
          f"the client without retries failed with "
          f"{dict(Counter(r[3] for r in p_failed))}; only UNAVAILABLE and "
          f"CANCELLED are expected (refused, or dropped with a stopping "
          f"replica's connection: safe to retry)")
    check(len(retrying) > 0 and any(r[4] == "r3" for r in retrying),
          "no retrying call was answered by replica 3")
    return f"{len(retrying)} retrying calls, 0 failed"


def case_stop(ctx):
    c = ctx.cluster
    pids = []
    for name in ("replica-3", "haproxy"):
        f = c.run_dir / f"{name}.pid"
        if f.exists():
            pids.append((name, int(f.read_text())))
    done = c.stop()
    check(done.returncode == 0, f"cluster.sh stop exited with "
                                f"{done.returncode}:\n{done.stderr.strip()}")
    alive = [n for n, p in pids if not wait_gone(p, 1)]
    check(not alive, f"still running after stop: {alive}")
    st = c.run("status")
    check(st.returncode != 0, "status exits 0 with no cluster running")
    fail_on(sanitizer_reports(c, (1, 2, 3)))
    return f"stopped {', '.join(n for n, _ in pids)}"


CASES = [
    ("script_start", case_start),
    ("unary_calls_spread", case_unary_spread),
    ("streams_spread_and_idle", case_streams_spread),
    ("http_spread", case_http_spread),
    ("failover_kill_and_sigterm", case_failover_sigterm),
    ("retry_policy_no_failures", case_retry),
    ("script_stop", case_stop),
]


def run_case(ctx, name, fn):
    t0 = time.monotonic()
    try:
        note = fn(ctx)
        print(f"ok   {name}  ({time.monotonic() - t0:.2f} s)"
              + (f"  {note}" if note else ""))
        ok = True
    except CaseFailure as e:
        print(f"FAIL {name}  ({time.monotonic() - t0:.2f} s): {e}")
        ok = False
    except grpc.RpcError as e:
        print(f"FAIL {name}  ({time.monotonic() - t0:.2f} s): unexpected "
              f"{rpc_text(e)}")
        ok = False
    except Exception as e:  # a test bug or an unexpected error
        print(f"FAIL {name}: unexpected {type(e).__name__}: {e}")
        traceback.print_exc(limit=4, file=sys.stdout)
        ok = False
    sys.stdout.flush()
    return ok


def missing_tools(args):
    missing = []
    if not os.access(args.haproxy, os.X_OK):
        missing.append(f"haproxy ({args.haproxy})")
    if shutil.which("curl") is None:
        missing.append("curl")
    return missing


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--binary", required=True)
    ap.add_argument("--pipeline", required=True)
    ap.add_argument("--proto", required=True)
    ap.add_argument("--source", default=str(HERE.parents[1]))
    ap.add_argument("--haproxy", default="/usr/sbin/haproxy")
    ap.add_argument("--case", action="append", default=[],
                    help="run only cases whose name contains this; "
                         "script_start and script_stop always run")
    args = ap.parse_args()
    args.binary = os.path.abspath(args.binary)
    args.pipeline = os.path.abspath(args.pipeline)

    missing = missing_tools(args)
    if missing:
        if IS_CI:
            print(f"FAIL tools: missing {', '.join(missing)}")
            print("0 passed, 1 failed")
            return 1
        print(f"skip: missing {', '.join(missing)}")
        return 77

    pb = mi_proto.load(args.source, args.proto)
    oip, oip_grpc = load_oip()
    cases = [(n, f) for n, f in CASES
             if not args.case or n.startswith("script_")
             or any(s in n for s in args.case)]
    run_dir = tempfile.mkdtemp(prefix="modinfer-cluster-")
    cluster = Cluster(args, run_dir)
    ctx = Ctx(args, cluster, pb, oip, oip_grpc)
    passed = failed = 0
    try:
        for name, fn in cases:
            if name != "script_start" and not cluster.started:
                print(f"FAIL {name}: no cluster running")
                failed += 1
                continue
            if run_case(ctx, name, fn):
                passed += 1
            else:
                failed += 1
    finally:
        if cluster.started:
            cluster.stop()
    if failed:
        print(f"--- cluster files kept: {run_dir}")
        for i in range(1, N_REPLICAS + 1):
            tail = cluster.log(i).splitlines()[-5:]
            print(f"--- replica-{i}.log tail\n" + "\n".join(tail))
    else:
        shutil.rmtree(run_dir, ignore_errors=True)
    print(f"{passed} passed, {failed} failed")
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
