# SPDX-License-Identifier: Apache-2.0
"""Several pipelines in one server, and hot reload under load.

The server serves a folder of pipeline files made from the fall-detection
example: model "fall" version "1" (the example), model "fall-half" (the
same pipeline with its confidence halved by a postprocessing step), and
later versions and broken files written while it runs. It checks:

- every model answers over HTTP (OIP) and the paper's extended protocol
  goes to --default-model (or else to the first model loaded); metadata lists each model's versions; the
  repository index shows what is served;
- hot reload under a steady load of extended-protocol streams and HTTP
  requests: a new file "fall" version "2" (confidence halved, so its
  answers differ from version 1's) is loaded beside version 1, unversioned
  traffic switches to it, and not one request fails; version 1 still
  answers by explicit version;
- a changed file that fails verification is refused, the old version
  keeps serving, and the index shows the reason;
- a removed file's version is retired (404 afterwards);
- SIGHUP rescans when polling is off;
- the repository API: 403 unless --repository-api 1; unload, then load.

usage: test_repository.py --binary build/modinfer --pipeline
       examples/fall-detection/pipeline.json --vectors .../vectors.json
       --proto proto
"""

import argparse
import http.client
import json
import os
import pathlib
import queue
import re
import shutil
import signal
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from mi_testlib import (CaseFailure, END, check, drain, fail_on, grpc,  # noqa: E402
                        mi_proto, run_case, sigterm_case)
import mi_server  # noqa: E402
from mi_cases import load_windows  # noqa: E402

HTTP_RE = re.compile(r"http listening on (\S+):(\d+)")
TOL = 1e-5


# ---- HTTP ----

def request(port, method, path, body=None, timeout=10):
    """(status, parsed JSON or text) of one request."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        data = json.dumps(body).encode() if body is not None else None
        conn.request(method, path, body=data,
                     headers={"Content-Type": "application/json"})
        r = conn.getresponse()
        text = r.read().decode()
    finally:
        conn.close()
    try:
        return r.status, json.loads(text)
    except ValueError:
        return r.status, text


def infer_body(flat):
    return {"inputs": [{"name": "array", "datatype": "INT32",
                        "shape": [9, 3], "data": flat}]}


def http_infer(port, model, flat, version=None):
    """The confidence, or raises CaseFailure with the status and body."""
    path = (f"/v2/models/{model}/versions/{version}/infer" if version
            else f"/v2/models/{model}/infer")
    status, body = request(port, "POST", path, infer_body(flat))
    if status != 200:
        raise CaseFailure(f"POST {path}: {status} {body!r}")
    return float(body["outputs"][0]["data"][0]), body.get("model_version")


# ---- Pipeline files ----

def write_pipeline(folder, file_name, base, model_path, name, version,
                   halve=False, broken=False):
    cfg = json.loads(json.dumps(base))
    cfg["name"] = name
    cfg["version"] = version
    cfg["model"]["path"] = str(model_path)
    if halve:
        cfg["post"] = cfg.get("post", []) + [
            {"step": "scale", "params": {"mul": 0.5}}]
    if broken:
        cfg["pre"] = [{"step": "no_such_step"}] + cfg["pre"]
    tmp = folder / (file_name + ".tmp")
    tmp.write_text(json.dumps(cfg, indent=2))
    os.replace(tmp, folder / file_name)  # the watcher never sees half a file


def wait_until(fn, what, timeout=30.0):
    deadline = time.monotonic() + timeout
    while True:
        got = fn()
        if got:
            return got
        check(time.monotonic() < deadline, f"{what}: not within {timeout} s")
        time.sleep(0.1)


def index(ctx):
    status, body = request(ctx.http_port, "POST", "/v2/repository/index", {})
    check(status == 200 and isinstance(body, list),
          f"repository index: {status} {body!r}")
    return body


def index_state(ctx, name, version):
    for e in index(ctx):
        if e.get("name") == name and e.get("version") == version:
            return e
    return None


# ---- Load generator ----

class Load:
    """Extended-protocol streams and HTTP clients sending windows until
    stopped; every answer is checked against version 1 or version 2."""

    def __init__(self, ctx, n_streams=2, n_http=1):
        self.ctx = ctx
        self.stop_flag = threading.Event()
        self.lock = threading.Lock()
        self.sent = 0
        self.ok_v1 = 0
        self.ok_v2 = 0
        self.problems = []
        self.threads = [threading.Thread(target=self.stream, args=(i,))
                        for i in range(n_streams)]
        self.threads += [threading.Thread(target=self.http_client)
                         for _ in range(n_http)]

    def classify(self, got, want, where):
        with self.lock:
            if abs(got - want) <= TOL:
                self.ok_v1 += 1
            elif abs(got - want * 0.5) <= TOL:
                self.ok_v2 += 1
            else:
                self.problems.append(f"{where}: {got} is neither {want} "
                                     f"(v1) nor {want * 0.5} (v2)")

    def stream(self, k):
        pb = self.ctx.pb
        stub = pb.extended_grpc.ExtendedInferenceServiceStub(self.ctx.channel)
        windows = self.ctx.windows
        rid = 0
        while not self.stop_flag.is_set():
            # Streams of 200 messages, one message at a time on each.
            q = queue.Queue()
            calls = stub.predict(drain(q), timeout=60)
            try:
                for _ in range(200):
                    if self.stop_flag.is_set():
                        break
                    w = windows[rid % len(windows)]
                    t = pb.tensor_pb2.TensorProto(dtype=pb.types_pb2.DT_INT32)
                    for size in (9, 3):
                        t.tensor_shape.dim.add(size=size)
                    t.int_val.extend(w["flat"])
                    req = pb.extended_pb2.ExtendedInferenceRequest(id=rid)
                    req.input["array"].CopyFrom(t)
                    with self.lock:
                        self.sent += 1
                    q.put(req)
                    resp = next(calls)
                    got = resp.output["prediction"].float_val[0]
                    self.classify(got, w["want"], f"stream {k} id {rid}")
                    rid += 1
            except grpc.RpcError as e:
                with self.lock:
                    self.problems.append(f"stream {k} id {rid}: "
                                         f"{e.code().name} {e.details()}")
            finally:
                q.put(END)

    def http_client(self):
        i = 0
        windows = self.ctx.windows
        while not self.stop_flag.is_set():
            w = windows[i % len(windows)]
            with self.lock:
                self.sent += 1
            try:
                got, _ = http_infer(self.ctx.http_port, "fall", w["flat"])
                self.classify(got, w["want"], f"http {i}")
            except (CaseFailure, OSError) as e:
                with self.lock:
                    self.problems.append(f"http {i}: {e}")
            i += 1

    def __enter__(self):
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc):
        self.stop_flag.set()
        for t in self.threads:
            t.join(timeout=90)

    def counts(self):
        with self.lock:
            return self.sent, self.ok_v1, self.ok_v2, list(self.problems)


# ---- Cases ----

def case_models_served(ctx):
    w = ctx.windows[0]
    got, version = http_infer(ctx.http_port, "fall", w["flat"])
    check(abs(got - w["want"]) <= TOL and version == "1",
          f"fall: {got} version {version!r}, want {w['want']} version '1'")
    got, version = http_infer(ctx.http_port, "fall-half", w["flat"])
    check(abs(got - w["want"] / 2) <= TOL,
          f"fall-half: {got}, want {w['want'] / 2}")
    status, body = request(ctx.http_port, "GET", "/v2/models/fall")
    check(status == 200 and body.get("versions") == ["1"],
          f"metadata of fall: {status} {body!r}")
    status, body = request(ctx.http_port, "GET", "/v2/models/nope/ready")
    check(status == 404 and "served: 'fall', 'fall-half'" in body["error"],
          f"unknown model: {status} {body!r}")
    states = sorted((e["name"], e.get("version"), e["state"])
                    for e in index(ctx))
    check(states == [("fall", "1", "READY"), ("fall-half", "1", "READY")],
          f"index {states}")
    # The paper's protocol goes to --default-model (fall here).
    got = extended_once(ctx, w["flat"])
    check(abs(got - w["want"]) <= TOL,
          f"extended protocol: {got}, want fall's {w['want']}")
    status, body = request(ctx.http_port, "GET", "/metrics")
    check(status == 200 and 'model="fall-half"' in body
          and 'model="fall"' in body, "/metrics lacks one of the models")
    return "2 models, extended protocol on --default-model fall"


def extended_once(ctx, flat):
    stub = ctx.pb.extended_grpc.ExtendedInferenceServiceStub(ctx.channel)
    t = ctx.pb.tensor_pb2.TensorProto(dtype=ctx.pb.types_pb2.DT_INT32)
    for size in (9, 3):
        t.tensor_shape.dim.add(size=size)
    t.int_val.extend(flat)
    req = ctx.pb.extended_pb2.ExtendedInferenceRequest(id=7)
    req.input["array"].CopyFrom(t)
    resp = next(stub.predict(iter([req]), timeout=10))
    return resp.output["prediction"].float_val[0]


def case_hot_reload_under_load(ctx):
    w = ctx.windows[1]
    with Load(ctx) as load:
        time.sleep(1.0)
        before = load.counts()
        check(before[1] > 0 and before[2] == 0,
              f"before the switch: {before[1]} v1 and {before[2]} v2 answers")
        write_pipeline(ctx.folder, "fall-2.json", ctx.base, ctx.model,
                       "fall", "2", halve=True)
        wait_until(lambda: load.counts()[2] > 20,
                   "answers from version 2 under load")
        time.sleep(1.0)
    sent, v1, v2, problems = load.counts()
    fail_on(problems)
    check(v1 + v2 == sent, f"{sent} sent, {v1 + v2} answered")
    got, version = http_infer(ctx.http_port, "fall", w["flat"])
    check(abs(got - w["want"] / 2) <= TOL and version == "2",
          f"unversioned after the switch: {got} version {version!r}")
    got, version = http_infer(ctx.http_port, "fall", w["flat"], "1")
    check(abs(got - w["want"]) <= TOL and version == "1",
          f"version 1 by name: {got} version {version!r}")
    status, body = request(ctx.http_port, "GET", "/v2/models/fall")
    check(body.get("versions") == ["1", "2"], f"versions {body!r}")
    return (f"{sent} requests, 0 failed: {v1} answered by version 1, "
            f"{v2} by version 2")


def case_broken_change_refused(ctx):
    w = ctx.windows[2]
    write_pipeline(ctx.folder, "fall-2.json", ctx.base, ctx.model, "fall",
                   "2", halve=True, broken=True)
    entry = wait_until(
        lambda: next((e for e in index(ctx) if e.get("state") ==
                      "UNAVAILABLE"), None),
        "the index showing the refused file")
    check("unknown step 'no_such_step'" in entry.get("reason", ""),
          f"index entry {entry!r}")
    got, version = http_infer(ctx.http_port, "fall", w["flat"])
    check(abs(got - w["want"] / 2) <= TOL and version == "2",
          f"after a refused change: {got} version {version!r}, want the "
          f"old version 2 still serving")
    log = mi_server.log_text(ctx.srv.proc)
    check("goes on serving" in log, "no log line saying the old version "
          "goes on serving")
    return f"reason: {entry['reason'][:70]}..."


def case_removed_file_retires(ctx):
    (ctx.folder / "fall-2.json").unlink()
    wait_until(lambda: request(ctx.http_port, "GET",
                            "/v2/models/fall/versions/2/ready")[0] == 404,
               "version 2 gone after its file was removed")
    w = ctx.windows[3]
    got, version = http_infer(ctx.http_port, "fall", w["flat"])
    check(abs(got - w["want"]) <= TOL and version == "1",
          f"after the removal: {got} version {version!r}")
    wait_until(lambda: "version '2' retired" in
               mi_server.log_text(ctx.srv.proc), "the retired log line")
    return "version 2 retired, version 1 serves"


def case_repository_api_disabled(ctx):
    status, body = request(ctx.http_port, "POST",
                        "/v2/repository/models/fall/unload", {})
    check(status == 403 and "--repository-api 1" in body.get("error", ""),
          f"unload while disabled: {status} {body!r}")
    status, _ = request(ctx.http_port, "GET", "/v2/models/fall/ready")
    check(status == 200, f"fall not ready after a refused unload: {status}")


def case_sighup_and_api(ctx2):
    """A second server: no polling, repository API on."""
    w = ctx2.windows[0]
    # No --default-model: the paper's protocol goes to the first model
    # loaded, fall-half (files load in name order).
    got = extended_once(ctx2, w["flat"])
    check(abs(got - w["want"] / 2) <= TOL,
          f"extended protocol: {got}, want fall-half's {w['want'] / 2}")
    write_pipeline(ctx2.folder, "fall-3.json", ctx2.base, ctx2.model,
                   "fall", "3", halve=True)
    time.sleep(0.5)
    status, _ = request(ctx2.http_port, "GET", "/v2/models/fall/versions/3/ready")
    check(status == 404, f"version 3 loaded without SIGHUP ({status}), "
          f"with --watch-interval-ms 0")
    ctx2.srv.proc.send_signal(signal.SIGHUP)
    wait_until(lambda: request(ctx2.http_port, "GET",
                            "/v2/models/fall/versions/3/ready")[0] == 200,
               "version 3 after SIGHUP")
    status, body = request(ctx2.http_port, "POST",
                        "/v2/repository/models/fall/unload", {})
    check(status == 200, f"unload: {status} {body!r}")
    status, body = request(ctx2.http_port, "POST", "/v2/models/fall/infer",
                        infer_body(w["flat"]))
    check(status == 404, f"infer after unload: {status} {body!r}")
    states = [(e["name"], e["state"], e.get("reason")) for e in index(ctx2)]
    check(("fall", "UNAVAILABLE", "unloaded") in states, f"index {states}")
    ctx2.srv.proc.send_signal(signal.SIGHUP)  # a rescan keeps it unloaded
    time.sleep(0.5)
    status, _ = request(ctx2.http_port, "GET", "/v2/models/fall/ready")
    check(status == 404, f"fall came back on a rescan after unload: {status}")
    status, body = request(ctx2.http_port, "POST",
                        "/v2/repository/models/fall/load", {})
    check(status == 200, f"load: {status} {body!r}")
    got, version = http_infer(ctx2.http_port, "fall", w["flat"])
    check(abs(got - w["want"] / 2) <= TOL and version == "3",
          f"after load: {got} version {version!r}")
    status, body = request(ctx2.http_port, "POST",
                        "/v2/repository/models/nope/load", {})
    check(status == 404 and "no pipeline file defines model 'nope'" in
          body.get("error", ""), f"load of an unknown model: {status} {body!r}")
    return "SIGHUP loaded version 3; unload, rescan, load"


# ---- Main ----

class Ctx:
    pass


def make_ctx(args, pb, windows, extra, tmp_name):
    ctx = Ctx()
    ctx.pb = pb
    ctx.windows = windows
    ctx.base = json.loads(pathlib.Path(args.pipeline).read_text())
    ctx.model = (pathlib.Path(args.pipeline).parent /
                 ctx.base["model"]["path"]).resolve()
    ctx.folder = pathlib.Path(tempfile.mkdtemp(prefix=tmp_name))
    write_pipeline(ctx.folder, "fall.json", ctx.base, ctx.model, "fall", "1")
    write_pipeline(ctx.folder, "fall-half.json", ctx.base, ctx.model,
                   "fall-half", "1", halve=True)
    ctx.extra = ["--workers", "2", *extra]
    return ctx


def serve(ctx, cases):
    ok = True
    with mi_server.Server(ctx.binary, ctx.folder, ctx.extra,
                          ready_timeout=60) as srv:
        ctx.srv = srv
        m = HTTP_RE.search(mi_server.log_text(srv.proc))
        check(m is not None, "no 'http listening on' line")
        ctx.http_port = int(m.group(2))
        ctx.channel = grpc.insecure_channel(f"127.0.0.1:{srv.port}")
        for name, fn in cases:
            ok = run_case(srv, ctx, name, fn, rpc_errors=True) and ok
        ctx.channel.close()
        ok = sigterm_case(srv) and ok
    return ok


def main(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--binary", required=True)
    p.add_argument("--pipeline", required=True)
    p.add_argument("--vectors", required=True)
    p.add_argument("--proto", required=True)
    args = p.parse_args(argv)
    pb = mi_proto.load(pathlib.Path(__file__).parents[2], args.proto)
    windows = load_windows(args.vectors,
                           groups=("client_samples", "dataset_windows"))

    ctx = make_ctx(args, pb, windows,
                   ["--default-model", "fall", "--watch-interval-ms",
                    "200"], "mi-repo-")
    ctx.binary = args.binary
    ok = serve(ctx, [("models_served", case_models_served),
                     ("hot_reload_under_load", case_hot_reload_under_load),
                     ("broken_change_refused", case_broken_change_refused),
                     ("removed_file_retires", case_removed_file_retires),
                     ("repository_api_disabled",
                      case_repository_api_disabled)])
    ctx2 = make_ctx(args, pb, windows,
                    ["--watch-interval-ms", "0", "--repository-api", "1"],
                    "mi-repo-api-")
    ctx2.binary = args.binary
    ok = serve(ctx2, [("sighup_and_repository_api", case_sighup_and_api)]) \
        and ok
    if ok:
        shutil.rmtree(ctx.folder, ignore_errors=True)
        shutil.rmtree(ctx2.folder, ignore_errors=True)
    print("all passed" if ok else "FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
