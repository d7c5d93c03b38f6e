#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Readiness while the pipeline loads: grpc.health.v1, OIP, HTTP.

Copies the fall-detection pipeline and its model into a temporary folder,
adds a 100 ms "sleep" step to its preprocessing and "warmup": {"runs": 10},
so that loading takes about a second after the listeners are up, and checks
what a client sees:

- from the moment the gRPC port is logged: grpc.health.v1.Health/Check says
  NOT_SERVING, OIP ServerReady false (ServerLive true), and inference over
  the paper's extended protocol fails with UNAVAILABLE;
- readiness never turns before the warm-up could have finished, and never
  turns back;
- once "ready:" is logged: Check says SERVING, for the whole server and for
  "inference.GRPCInferenceService"; an unknown service is NOT_FOUND; the
  extended protocol answers correctly;
- over HTTP (curl): /v2/health/ready is 503, then 200; /v2/health/live is
  200 throughout.

    /usr/bin/python3 tests/integration/test_health.py \\
        --binary build/modinfer \\
        --pipeline examples/fall-detection/pipeline.json \\
        --vectors ../shared/reference/fall-detection/vectors.json \\
        --proto proto [--server-arg=--workers=2]...

Prints one line per check and a last line "N passed, M failed"; exits 0 when
every check passed, 1 otherwise, and 77 (skip) when the Python grpc packages
are missing, unless CI=true.
"""

import json
import os
import pathlib
import re
import shutil
import subprocess
import sys
import tempfile
import time

HERE = pathlib.Path(__file__).resolve().parent
sys.dont_write_bytecode = True  # keep the source tree clean
sys.path.insert(0, str(HERE))

import mi_server  # noqa: E402

from mi_testlib import (  # noqa: E402
    grpc, mi_proto, CaseFailure, check, rpc_text, Results, start_server,
    finish, setup_failed, load_health_pb2, load_oip)
from mi_cases import reference_args  # noqa: E402

TOL = 1e-5
SLEEP_MS = 100
WARMUP_RUNS = 10
# Warm-up alone takes WARMUP_RUNS * SLEEP_MS; readiness earlier than this
# after the listening line means it did not wait for the warm-up.
MIN_LOAD_S = 0.8
READY_TIMEOUT = 60.0
CHANNEL_OPTIONS = [("grpc.enable_http_proxy", 0)]
READY_RE = re.compile(r"\bready: serving\b")
HTTP_RE = re.compile(r"http listening on (\S+):(\d+)")
CHECK = "/grpc.health.v1.Health/Check"
OIP_SERVICE = "inference.GRPCInferenceService"
EXT_SERVICE = "extended_inference.ExtendedInferenceService"
EXT_ID = 77




def slow_pipeline(src, folder):
    """A copy of the pipeline whose loading takes about a second."""
    src = pathlib.Path(src)
    cfg = json.loads(src.read_text())
    model = pathlib.Path(cfg["model"]["path"])
    if not model.is_absolute():
        model = src.parent / model
    shutil.copy(model, folder / model.name)
    cfg["model"]["path"] = model.name
    cfg["pre"] = ([{"step": "sleep", "params": {"ms": SLEEP_MS}}]
                  + cfg.get("pre", []))
    cfg["warmup"] = {"runs": WARMUP_RUNS}
    dst = folder / "pipeline.json"
    dst.write_text(json.dumps(cfg, indent=2))
    return dst, cfg


def http_status(port, path):
    """The HTTP status code of GET path (curl); 0 if no answer."""
    done = subprocess.run(
        ["curl", "-s", "--noproxy", "*", "--max-time", "5", "-o",
         os.devnull, "-w", "%{http_code}", f"http://127.0.0.1:{port}{path}"],
        capture_output=True, text=True)
    try:
        return int(done.stdout.strip() or 0)
    except ValueError:
        return 0


class Client:
    def __init__(self, pb, health, target, cfg, window):
        oip, oip_grpc = load_oip()  # generated into pb.out_dir
        self.pb = pb
        self.health = health
        self.oip = oip
        self.cfg = cfg
        self.window = window
        self.channel = grpc.insecure_channel(target, options=CHANNEL_OPTIONS)
        grpc.channel_ready_future(self.channel).result(timeout=10)
        self.oip_stub = oip_grpc.GRPCInferenceServiceStub(self.channel)
        self.ext_stub = pb.extended_grpc.ExtendedInferenceServiceStub(
            self.channel)
        self._check = self.channel.unary_unary(
            CHECK,
            request_serializer=health.HealthCheckRequest.SerializeToString,
            response_deserializer=health.HealthCheckResponse.FromString)

    def check_status(self, service=""):
        """The status name Check answers for `service`."""
        resp = self._check(self.health.HealthCheckRequest(service=service),
                           timeout=5)
        return self.health.HealthCheckResponse.ServingStatus.Name(resp.status)

    def ext_infer(self):
        """One window over the extended protocol; returns the confidence."""
        pb = self.pb
        inp = self.cfg["input"][0]
        t = pb.tensor_pb2.TensorProto(dtype=pb.types_pb2.DT_INT32)
        for size in inp["shape"]:
            t.tensor_shape.dim.add(size=size)
        t.int_val.extend(self.window["flat"])
        req = pb.extended_pb2.ExtendedInferenceRequest(id=EXT_ID)
        req.input[inp["name"]].CopyFrom(t)
        resps = list(self.ext_stub.predict(iter([req]), timeout=10))
        check(len(resps) == 1 and resps[0].id == EXT_ID,
              f"{len(resps)} responses ({[r.id for r in resps]}), want "
              f"id={EXT_ID}")
        out = resps[0].output.get("prediction")
        check(out is not None and len(out.float_val) == 1,
              f"no one-value 'prediction' output in {resps[0]}")
        return out.float_val[0]

    def close(self):
        self.channel.close()


def first_window(vectors_path):
    v = json.loads(pathlib.Path(vectors_path).read_text())
    w = v["client_samples"][0]
    return {"flat": [int(x) for row in w["raw"] for x in row],
            "want": float(w["output_f32"])}


# ---- The checks ----

def while_loading(srv, cli, res, t_listen):
    """Checks made before the server is ready; each must finish before the
    'ready:' line shows, or it proves nothing."""

    def not_ready_yet(what):
        check(not READY_RE.search(mi_server.log_text(srv.proc)),
              f"inconclusive: the server was ready before {what} finished "
              f"({time.monotonic() - t_listen:.2f} s after listening); "
              f"loading should take about "
              f"{WARMUP_RUNS * SLEEP_MS / 1000:.1f} s")

    def health_not_serving():
        got = {s or "(server)": cli.check_status(s) for s in ("", OIP_SERVICE)}
        not_ready_yet("Check")
        bad = {k: v for k, v in got.items() if v != "NOT_SERVING"}
        check(not bad, f"Check while loading: {bad}, want NOT_SERVING")
        return (f"{time.monotonic() - t_listen:.2f} s after listening: "
                f"{got}")

    def health_unknown_service():
        try:
            status = cli.check_status("nope")
        except grpc.RpcError as e:
            check(e.code() == grpc.StatusCode.NOT_FOUND,
                  f"Check('nope') while loading: {rpc_text(e)}, want "
                  f"NOT_FOUND")
            return rpc_text(e)
        raise CaseFailure(f"Check('nope') while loading answered {status}, "
                          f"want NOT_FOUND")

    def oip_not_ready():
        live = cli.oip_stub.ServerLive(cli.oip.ServerLiveRequest(),
                                       timeout=5).live
        ready = cli.oip_stub.ServerReady(cli.oip.ServerReadyRequest(),
                                         timeout=5).ready
        try:
            mready = cli.oip_stub.ModelReady(
                cli.oip.ModelReadyRequest(name=cli.cfg["name"]),
                timeout=5).ready
        except grpc.RpcError as e:
            mready = rpc_text(e)
        not_ready_yet("ServerReady")
        check(live is True, f"ServerLive while loading: live={live}")
        check(ready is False, f"ServerReady while loading: ready={ready}")
        check(mready is False,
              f"ModelReady while loading: {mready!r}, want ready=false")
        return "live, not ready, model not ready"

    def ext_unavailable():
        try:
            got = cli.ext_infer()
        except grpc.RpcError as e:
            not_ready_yet("the extended request")
            check(e.code() == grpc.StatusCode.UNAVAILABLE,
                  f"extended request while loading: {rpc_text(e)}, want "
                  f"UNAVAILABLE")
            details = e.details() or ""
            check(details, "UNAVAILABLE without a message")
            named = re.findall(r"\bid[=: ]+(-?\d+)", details)
            check(all(n == str(EXT_ID) for n in named),
                  f"the message names id {', '.join(named)}, but the "
                  f"request's id is {EXT_ID}: {details!r}")
            return rpc_text(e)
        not_ready_yet("the extended request")
        raise CaseFailure(f"extended request while loading answered {got}, "
                          f"want UNAVAILABLE")

    def oip_infer_unavailable():
        inp = cli.cfg["input"][0]
        req = cli.oip.ModelInferRequest(model_name=cli.cfg["name"], id="x")
        t = req.inputs.add(name=inp["name"], datatype="INT32",
                           shape=inp["shape"])
        t.contents.int_contents.extend(cli.window["flat"])
        try:
            cli.oip_stub.ModelInfer(req, timeout=5)
        except grpc.RpcError as e:
            not_ready_yet("ModelInfer")
            check(e.code() == grpc.StatusCode.UNAVAILABLE,
                  f"ModelInfer while loading: {rpc_text(e)}, want "
                  f"UNAVAILABLE")
            return rpc_text(e)
        raise CaseFailure("ModelInfer while loading was answered, want "
                          "UNAVAILABLE")

    res.run("loading.health_not_serving", health_not_serving)
    res.run("loading.health_unknown_service", health_unknown_service)
    res.run("loading.oip_not_ready", oip_not_ready)
    res.run("loading.extended_unavailable", ext_unavailable)
    res.run("loading.oip_infer_unavailable", oip_infer_unavailable)


def find_http_port(srv, wait_s=0.5):
    """The HTTP port from the log, or None when it is not logged in time
    (it is logged right after the gRPC one, before loading)."""
    deadline = time.monotonic() + wait_s
    while True:
        text = mi_server.log_text(srv.proc)
        m = HTTP_RE.search(text)
        if m and int(m.group(2)) > 0:
            return int(m.group(2))
        if READY_RE.search(text) or time.monotonic() > deadline:
            return None
        time.sleep(0.02)


def http_while_loading(srv, res, port, t_listen):
    def ready_503():
        live = http_status(port, "/v2/health/live")
        ready = http_status(port, "/v2/health/ready")
        check(not READY_RE.search(mi_server.log_text(srv.proc)),
              "inconclusive: the server was ready before the HTTP checks")
        check(live == 200, f"GET /v2/health/live while loading: {live}, "
                           f"want 200")
        check(ready == 503, f"GET /v2/health/ready while loading: {ready}, "
                            f"want 503")
        return (f"live 200, ready 503 at {time.monotonic() - t_listen:.2f} s"
                f" after listening")
    res.run("loading.http_ready_503", ready_503)


def until_ready(srv, cli, t_listen):
    """Polls Check until SERVING; checks it never comes too early, and that
    the 'ready:' line follows at once. Returns a note."""
    seen = []
    deadline = time.monotonic() + READY_TIMEOUT
    while True:
        check(srv.alive(), f"server exited with {srv.proc.returncode} "
                           f"while loading")
        status = cli.check_status("")
        t = time.monotonic() - t_listen
        if not seen or seen[-1][0] != status:
            seen.append((status, t))
        if status == "SERVING":
            break
        check(status == "NOT_SERVING",
              f"Check while loading said {status}, want NOT_SERVING")
        check(time.monotonic() < deadline,
              f"not SERVING {READY_TIMEOUT:.0f} s after listening")
        time.sleep(0.02)
    t_serving = seen[-1][1]
    check(t_serving >= MIN_LOAD_S,
          f"SERVING {t_serving:.2f} s after listening, but the warm-up "
          f"alone takes {WARMUP_RUNS * SLEEP_MS / 1000:.1f} s")
    t_wait = time.monotonic()
    while not READY_RE.search(mi_server.log_text(srv.proc)):
        check(time.monotonic() - t_wait < 2.0,
              "Check said SERVING, but no 'ready:' line followed within 2 s")
        time.sleep(0.01)
    # It must stay SERVING.
    for _ in range(5):
        status = cli.check_status("")
        check(status == "SERVING", f"SERVING, then {status}")
        time.sleep(0.02)
    return (" -> ".join(f"{s} at {t:.2f} s" for s, t in seen)
            + " after listening")


def when_ready(srv, cli, res, http_port):
    def health_serving():
        got = {s or "(server)": cli.check_status(s)
               for s in ("", OIP_SERVICE, EXT_SERVICE)}
        bad = {k: v for k, v in got.items() if v != "SERVING"}
        check(not bad, f"Check when ready: {bad}, want SERVING")
        return str(got)

    def health_unknown_service():
        try:
            status = cli.check_status("nope")
        except grpc.RpcError as e:
            check(e.code() == grpc.StatusCode.NOT_FOUND,
                  f"Check('nope'): {rpc_text(e)}, want NOT_FOUND")
            return rpc_text(e)
        raise CaseFailure(f"Check('nope') answered {status}, want NOT_FOUND")

    def oip_ready():
        ready = cli.oip_stub.ServerReady(cli.oip.ServerReadyRequest(),
                                         timeout=5).ready
        mready = cli.oip_stub.ModelReady(
            cli.oip.ModelReadyRequest(name=cli.cfg["name"]), timeout=5).ready
        check(ready is True, f"ServerReady: ready={ready}")
        check(mready is True, f"ModelReady: ready={mready}")
        return "server and model ready"

    def ext_answers():
        got = cli.ext_infer()
        want = cli.window["want"]
        check(abs(got - want) <= TOL, f"got {got:.8f}, want {want:.8f}")
        return f"confidence {got:.5f}"

    def http_ready_200():
        ready = http_status(http_port, "/v2/health/ready")
        live = http_status(http_port, "/v2/health/live")
        check(ready == 200, f"GET /v2/health/ready when ready: {ready}, "
                            f"want 200")
        check(live == 200, f"GET /v2/health/live when ready: {live}, "
                           f"want 200")
        return "live 200, ready 200"

    res.run("ready.health_serving", health_serving)
    res.run("ready.health_unknown_service", health_unknown_service)
    res.run("ready.oip_ready", oip_ready)
    res.run("ready.extended_answers", ext_answers)
    if http_port is not None:
        res.run("ready.http_ready_200", http_ready_200)


# ---- Runner ----

def parse_args(argv):
    return reference_args(__doc__, "--workers=2",
                          cases=False).parse_args(argv)


def main(argv):
    args = parse_args(argv)
    res = Results()
    folder = pathlib.Path(tempfile.mkdtemp(prefix="modinfer-health-"))
    try:
        try:
            pipeline, cfg = slow_pipeline(args.pipeline, folder)
            window = first_window(args.vectors)
            pb = mi_proto.load(HERE.parents[1], args.proto)
            health = load_health_pb2(pb.out_dir)
        except (OSError, ValueError, KeyError, RuntimeError,
                ImportError) as e:
            return setup_failed(f"setup: {e}")
        return run(args, res, pipeline, cfg, window, pb, health)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def run(args, res, pipeline, cfg, window, pb, health):
    # Returns at the gRPC listening line, before the pipeline is loaded.
    srv = start_server(args.binary, pipeline, args.server_arg,
                       wait_ready=False)
    if srv is None:
        return 1
    t_listen = time.monotonic()
    cli = None
    try:
        cli = Client(pb, health, f"127.0.0.1:{srv.port}", cfg, window)
        while_loading(srv, cli, res, t_listen)
        http_port = find_http_port(srv)
        if http_port is None:
            res.failed += 1
            print("FAIL loading.http_ready_503: no 'http listening on' line "
                  "in the log before the pipeline loaded")
        else:
            http_while_loading(srv, res, http_port, t_listen)
        res.run("readiness_turns", until_ready, srv, cli, t_listen)
        when_ready(srv, cli, res, http_port)
    except grpc.FutureTimeoutError:
        res.failed += 1
        print(f"FAIL connect: no gRPC connection to 127.0.0.1:{srv.port} "
              f"within 10 s")
    except BaseException:
        if cli is not None:
            cli.close()
        srv.__exit__(*sys.exc_info())
        raise
    if cli is not None:
        cli.close()

    return finish(srv, res)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
