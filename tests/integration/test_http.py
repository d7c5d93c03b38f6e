#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""End-to-end test of the Open Inference Protocol over HTTP, with curl.

Starts the real server binary on 127.0.0.1 with free ports, reads the HTTP
port from its "http listening on 127.0.0.1:<port>" log line, waits for
/v2/health/ready, and sends every request with the curl command-line tool:
health, server and model metadata, readiness, JSON inference of the 31
reference windows of vectors.json (INT32, and INT16 converted by the
server), the binary tensor data extension both ways, output selection,
keep-alive (several URLs on one curl invocation), concurrent clients, the
error paths with their status and message, statistics and /metrics. A
second server with a small --max-message-bytes checks the 413 answer. Both
servers must exit 0 on SIGTERM.

    /usr/bin/python3 tests/integration/test_http.py \\
        --binary build/modinfer \\
        --pipeline examples/fall-detection/pipeline.json \\
        --vectors ../shared/reference/fall-detection/vectors.json \\
        [--case SUBSTRING]... [--server-arg=--workers=4]...

Prints one line per case and a last line "N passed, M failed"; exits 0 when
every case passed, 1 otherwise, and 77 (skip) when curl is missing, unless
CI=true.
"""

import argparse
import json
import os
import re
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import threading
import time
import traceback

from mi_cases import load_windows

TOL = 1e-5
MODEL = "fall-detection"
INPUT = "array"
OUTPUT = "prediction"
SHAPE = [9, 3]
N_ELEMENTS = 27
SMALL_LIMIT = 1024          # --max-message-bytes of the second server
CURL_TIMEOUT = 60           # seconds for one curl invocation
LISTEN_RE = re.compile(r"http listening on 127\.0\.0\.1:(\d+)")


class CaseFailure(AssertionError):
    """A case's expectation did not hold; the message says which."""


def check(cond, message):
    if not cond:
        raise CaseFailure(message)


# ---- curl ----

class Reply:
    """One HTTP response: status, headers (lower-case names), body bytes."""

    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers
        self.body = body

    def json(self):
        try:
            return json.loads(self.body)
        except ValueError as e:
            raise CaseFailure(f"body is not JSON ({e}): {self.body[:300]!r}")

    def error(self):
        doc = self.json()
        check(isinstance(doc, dict) and isinstance(doc.get("error"), str),
              f"error body is not {{\"error\": ...}}: {doc!r}")
        return doc["error"]


def parse_headers(text):
    """Headers of the last response in a curl -D dump (after any 100)."""
    blocks = [b for b in re.split(r"\r?\n\r?\n", text) if b.strip()]
    headers = {}
    if not blocks:
        return headers
    for line in blocks[-1].splitlines()[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return headers


class Curl:
    """Runs curl against one server; every request goes through here."""

    def __init__(self, port, workdir):
        self.base = f"http://127.0.0.1:{port}"
        self.workdir = workdir
        self.n = 0
        self.lock = threading.Lock()

    def _paths(self):
        with self.lock:
            self.n += 1
            n = self.n
        return [os.path.join(self.workdir, f"{n}.{s}")
                for s in ("in", "hdr", "out")]

    def request(self, path, method=None, body=None, headers=(),
                extra=()):
        fin, fhdr, fout = self._paths()
        cmd = ["curl", "-sS", "--noproxy", "*", "-D", fhdr, "-o", fout,
               "-w", "%{http_code}"]
        if method == "HEAD":
            cmd.append("-I")
        elif method is not None:
            cmd += ["-X", method]
        if body is not None:
            with open(fin, "wb") as f:
                f.write(body)
            cmd += ["--data-binary", "@" + fin]
        for h in headers:
            cmd += ["-H", h]
        cmd += list(extra)
        cmd.append(self.base + path)
        proc = subprocess.run(cmd, capture_output=True, text=True,
                              timeout=CURL_TIMEOUT)
        if proc.returncode != 0:
            raise CaseFailure(f"curl exited with {proc.returncode}: "
                              f"{proc.stderr.strip()}")
        with open(fhdr, "r", errors="replace") as f:
            hdrs = parse_headers(f.read())
        body_out = b""
        if os.path.exists(fout):
            with open(fout, "rb") as f:
                body_out = f.read()
        for p in (fin, fhdr, fout):
            if os.path.exists(p):
                os.unlink(p)
        return Reply(int(proc.stdout.strip() or 0), hdrs, body_out)

    def get(self, path, **kw):
        return self.request(path, **kw)

    def post_json(self, path, doc, **kw):
        body = doc if isinstance(doc, bytes) else json.dumps(doc).encode()
        headers = ["Content-Type: application/json", *kw.pop("headers", ())]
        return self.request(path, body=body, headers=headers, **kw)

    def many(self, sections):
        """One curl invocation, one transfer per section (joined by
        --next); returns [(status, num_connects)] in order."""
        cmd = ["curl", "-sS", "--noproxy", "*"]
        files = []
        for i, (path, body) in enumerate(sections):
            if i > 0:
                cmd.append("--next")
            cmd += ["-sS", "--noproxy", "*", "-o", os.devnull,
                    "-w", "%{http_code} %{num_connects}\\n"]
            if body is not None:
                fin = self._paths()[0]
                files.append(fin)
                with open(fin, "wb") as f:
                    f.write(body)
                cmd += ["-H", "Content-Type: application/json",
                        "--data-binary", "@" + fin]
            cmd.append(self.base + path)
        proc = subprocess.run(cmd, capture_output=True, text=True,
                              timeout=CURL_TIMEOUT)
        for p in files:
            os.unlink(p)
        if proc.returncode != 0:
            raise CaseFailure(f"curl exited with {proc.returncode}: "
                              f"{proc.stderr.strip()}")
        out = []
        for line in proc.stdout.split("\n"):
            if line.strip():
                code, conns = line.split()
                out.append((int(code), int(conns)))
        return out


# ---- Server ----

class Server:
    """The real binary on 127.0.0.1 with free ports; log in a temp file."""

    def __init__(self, binary, pipeline, extra_args=()):
        self.cmd = [binary, "serve", pipeline, "--grpc-port", "0",
                    "--http-port", "0", "--address", "127.0.0.1",
                    *extra_args]
        fd, self.log_path = tempfile.mkstemp(prefix="modinfer-http-",
                                             suffix=".log")
        with os.fdopen(fd, "ab", buffering=0) as log:
            self.proc = subprocess.Popen(self.cmd, stdin=subprocess.DEVNULL,
                                         stdout=log, stderr=log)
        self.port = None

    def log(self):
        with open(self.log_path, "r", errors="replace") as f:
            return f.read()

    def tail(self, lines=30):
        return "\n".join(self.log().splitlines()[-lines:])

    def wait_listening(self, timeout=60.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            m = LISTEN_RE.search(self.log())
            if m and int(m.group(1)) > 0:
                self.port = int(m.group(1))
                return self.port
            if self.proc.poll() is not None:
                raise CaseFailure(f"server exited with {self.proc.returncode}"
                                  f" before listening:\n{self.tail()}")
            time.sleep(0.05)
        raise CaseFailure(f"no 'http listening on' line in {timeout:.0f} s:"
                          f"\n{self.tail()}")

    def wait_ready(self, curl, timeout=60.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if curl.get("/v2/health/ready").status == 200:
                return
            if self.proc.poll() is not None:
                raise CaseFailure(f"server exited with {self.proc.returncode}"
                                  f":\n{self.tail()}")
            time.sleep(0.1)
        raise CaseFailure(f"not ready within {timeout:.0f} s:\n{self.tail()}")

    def stop(self, timeout=15.0):
        """SIGTERM; returns the exit code (None if it had to be killed)."""
        if self.proc.poll() is not None:
            return self.proc.returncode
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            return None

    def remove_log(self):
        try:
            os.unlink(self.log_path)
        except OSError:
            pass


# ---- Reference data and requests ----

def infer_doc(flat, datatype="INT32", shape=None, **extra):
    doc = {"inputs": [{"name": INPUT, "shape": shape or SHAPE,
                       "datatype": datatype, "data": flat}]}
    doc.update(extra)
    return doc


def binary_body(doc, blobs):
    """JSON header + blobs; returns (body, header length)."""
    head = json.dumps(doc).encode()
    return head + b"".join(blobs), len(head)


def infer_path(version=None):
    if version is None:
        return f"/v2/models/{MODEL}/infer"
    return f"/v2/models/{MODEL}/versions/{version}/infer"


def prediction(reply, want_binary=False):
    """The single prediction value of a 200 inference reply."""
    check(reply.status == 200,
          f"status {reply.status}: {reply.body[:300]!r}")
    hlen = reply.headers.get("inference-header-content-length")
    if want_binary:
        check(hlen is not None,
              f"no Inference-Header-Content-Length; headers "
              f"{reply.headers!r}")
        check(reply.headers.get("content-type", "").startswith(
            "application/octet-stream"),
              f"content-type {reply.headers.get('content-type')!r}")
        n = int(hlen)
        doc = json.loads(reply.body[:n])
        blob = reply.body[n:]
    else:
        check(hlen is None, "unexpected Inference-Header-Content-Length")
        doc = reply.json()
        blob = b""
    check(doc.get("model_name") == MODEL, f"model_name in {doc!r}")
    outs = doc.get("outputs")
    check(isinstance(outs, list) and len(outs) == 1, f"outputs in {doc!r}")
    out = outs[0]
    check(out.get("name") == OUTPUT and out.get("datatype") == "FP32",
          f"output {out!r}")
    check(out.get("shape") == [1, 1], f"shape {out.get('shape')!r}")
    if want_binary:
        size = out.get("parameters", {}).get("binary_data_size")
        check(size == 4 and "data" not in out, f"binary output {out!r}")
        check(len(blob) == 4, f"{len(blob)} bytes of binary data")
        return struct.unpack("<f", blob)[0]
    data = out.get("data")
    check(isinstance(data, list) and len(data) == 1, f"data {data!r}")
    return float(data[0])


def close_to(got, want, label):
    check(abs(got - want) <= TOL,
          f"{label}: got {got!r}, want {want!r} (tolerance {TOL})")


def expect_error(reply, status, *needles):
    check(reply.status == status,
          f"status {reply.status}, want {status}: {reply.body[:300]!r}")
    msg = reply.error()
    for n in needles:
        check(n in msg, f"message {msg!r} lacks {n!r}")
    return msg


def model_stats(curl):
    r = curl.get(f"/v2/models/{MODEL}/stats")
    check(r.status == 200, f"stats status {r.status}")
    stats = r.json()["model_stats"]
    check(len(stats) == 1 and stats[0]["name"] == MODEL,
          f"model_stats {stats!r}")
    return stats[0]


# ---- Cases ----

def case_health_live(t):
    r = t.curl.get("/v2/health/live")
    check(r.status == 200 and r.json() == {"live": True},
          f"{r.status} {r.body!r}")
    check(r.headers.get("content-type") == "application/json",
          f"content-type {r.headers.get('content-type')!r}")


def case_health_ready(t):
    r = t.curl.get("/v2/health/ready")
    check(r.status == 200 and r.json() == {"ready": True},
          f"{r.status} {r.body!r}")


def case_head(t):
    r = t.curl.request("/v2/health/live", method="HEAD")
    check(r.status == 200, f"status {r.status}")
    check(r.headers.get("content-type") == "application/json",
          f"headers {r.headers!r}")


def case_server_metadata(t):
    r = t.curl.get("/v2")
    doc = r.json()
    check(r.status == 200, f"status {r.status}")
    check(doc.get("name") == "modinfer" and doc.get("version") == "0.1.0",
          f"{doc!r}")
    check(doc.get("extensions") == ["binary_tensor_data", "statistics",
                                         "model_repository"],
          f"extensions {doc.get('extensions')!r}")


def case_model_metadata(t):
    for path in (f"/v2/models/{MODEL}",
                 f"/v2/models/{MODEL}/versions/{t.version}"):
        r = t.curl.get(path)
        check(r.status == 200, f"{path}: status {r.status}")
        doc = r.json()
        check(doc.get("name") == MODEL and doc.get("versions") == [t.version]
              and doc.get("platform") == "modinfer_pipeline",
              f"{path}: {doc!r}")
        check(doc.get("inputs") == [{"name": INPUT, "datatype": "INT32",
                                     "shape": SHAPE}],
              f"{path}: inputs {doc.get('inputs')!r}")
        outs = doc.get("outputs")
        check(isinstance(outs, list) and len(outs) == 1
              and outs[0]["name"] == OUTPUT
              and outs[0]["datatype"] == "FP32",
              f"{path}: outputs {outs!r}")


def case_model_ready(t):
    for path in (f"/v2/models/{MODEL}/ready",
                 f"/v2/models/{MODEL}/versions/{t.version}/ready"):
        r = t.curl.get(path)
        check(r.status == 200 and r.json() == {"name": MODEL, "ready": True},
              f"{path}: {r.status} {r.body!r}")


def case_model_ready_unknown(t):
    expect_error(t.curl.get("/v2/models/nope/ready"), 404,
                 "unknown model 'nope'")
    expect_error(t.curl.get(f"/v2/models/{MODEL}/versions/999/ready"), 404,
                 "no version '999'")
    expect_error(t.curl.get("/v2/models/nope"), 404, "unknown model 'nope'")


def case_infer_all_windows_int32(t):
    for w in t.windows:
        r = t.curl.post_json(infer_path(), infer_doc(w["flat"]))
        close_to(prediction(r), w["want"], w["label"])
    t.note(f"{len(t.windows)} windows")


def case_infer_nested_data(t):
    w = t.windows[0]
    r = t.curl.post_json(infer_path(), infer_doc(w["raw"]))
    close_to(prediction(r), w["want"], w["label"])


def case_infer_int16(t):
    w = t.windows[1]
    r = t.curl.post_json(infer_path(), infer_doc(w["flat"], "INT16"))
    close_to(prediction(r), w["want"], w["label"])


def case_infer_versioned_with_id(t):
    w = t.windows[2]
    r = t.curl.post_json(infer_path(t.version),
                         infer_doc(w["flat"], id="req-42"))
    close_to(prediction(r), w["want"], w["label"])
    doc = r.json()
    check(doc.get("id") == "req-42", f"id not echoed: {doc!r}")
    check(doc.get("model_version") == t.version, f"version in {doc!r}")


def case_binary_input(t):
    for w in t.windows[:5]:
        doc = {"inputs": [{"name": INPUT, "shape": SHAPE,
                           "datatype": "INT32",
                           "parameters": {"binary_data_size": 108}}]}
        body, hlen = binary_body(doc, [struct.pack("<27i", *w["flat"])])
        r = t.curl.request(infer_path(), body=body, headers=[
            "Content-Type: application/octet-stream",
            f"Inference-Header-Content-Length: {hlen}"])
        close_to(prediction(r), w["want"], w["label"])


def case_binary_input_int16(t):
    w = t.windows[3]
    doc = {"inputs": [{"name": INPUT, "shape": SHAPE, "datatype": "INT16",
                       "parameters": {"binary_data_size": 54}}]}
    body, hlen = binary_body(doc, [struct.pack("<27h", *w["flat"])])
    r = t.curl.request(infer_path(), body=body, headers=[
        f"Inference-Header-Content-Length: {hlen}"])
    close_to(prediction(r), w["want"], w["label"])


def case_binary_output_all(t):
    for w in t.windows[:5]:
        doc = infer_doc(w["flat"], parameters={"binary_data_output": True})
        r = t.curl.post_json(infer_path(), doc)
        close_to(prediction(r, want_binary=True), w["want"], w["label"])


def case_binary_output_requested(t):
    w = t.windows[4]
    doc = infer_doc(w["flat"], outputs=[
        {"name": OUTPUT, "parameters": {"binary_data": True}}])
    r = t.curl.post_json(infer_path(), doc)
    close_to(prediction(r, want_binary=True), w["want"], w["label"])
    # binary both ways
    doc = {"inputs": [{"name": INPUT, "shape": SHAPE, "datatype": "INT32",
                       "parameters": {"binary_data_size": 108}}],
           "outputs": [{"name": OUTPUT,
                        "parameters": {"binary_data": True}}]}
    body, hlen = binary_body(doc, [struct.pack("<27i", *w["flat"])])
    r = t.curl.request(infer_path(), body=body, headers=[
        f"Inference-Header-Content-Length: {hlen}"])
    close_to(prediction(r, want_binary=True), w["want"], w["label"])


def case_output_selection(t):
    w = t.windows[5]
    doc = infer_doc(w["flat"], outputs=[{"name": OUTPUT}],
                    parameters={"binary_data_output": True})
    # The output's own parameters win over the request's default.
    doc["outputs"][0]["parameters"] = {"binary_data": False}
    r = t.curl.post_json(infer_path(), doc)
    close_to(prediction(r), w["want"], w["label"])
    r = t.curl.post_json(infer_path(),
                         infer_doc(w["flat"], outputs=[{"name": "nope"}]))
    expect_error(r, 400, "unknown output 'nope'", OUTPUT)
    r = t.curl.post_json(infer_path(), infer_doc(
        w["flat"], outputs=[{"name": OUTPUT}, {"name": OUTPUT}]))
    expect_error(r, 400, f"output '{OUTPUT}'", "twice")


def case_keep_alive(t):
    w = t.windows[0]
    body = json.dumps(infer_doc(w["flat"])).encode()
    sections = [("/v2/health/live", None), (infer_path(), body),
                ("/v2/health/ready", None), (infer_path(), body),
                (f"/v2/models/{MODEL}", None), (infer_path(), body)]
    got = t.curl.many(sections)
    check(len(got) == len(sections), f"{len(got)} transfers: {got!r}")
    check(all(code == 200 for code, _ in got), f"statuses {got!r}")
    check(got[0][1] == 1 and all(c == 0 for _, c in got[1:]),
          f"connections opened per transfer {[c for _, c in got]!r}; "
          f"want 1 then 0s (one connection kept alive)")


def case_concurrent_clients(t):
    errors = []

    def client(k):
        try:
            for i in range(4):
                w = t.windows[(k * 4 + i) % len(t.windows)]
                r = t.curl.post_json(infer_path(), infer_doc(w["flat"]))
                close_to(prediction(r), w["want"], w["label"])
        except Exception as e:  # reported below, with the client number
            errors.append(f"client {k}: {e}")

    threads = [threading.Thread(target=client, args=(k,)) for k in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    check(not errors, "; ".join(errors[:3]))


def case_error_unknown_model(t):
    w = t.windows[0]
    r = t.curl.post_json("/v2/models/nope/infer", infer_doc(w["flat"]))
    expect_error(r, 404, "unknown model 'nope'")


def case_error_unknown_version(t):
    w = t.windows[0]
    r = t.curl.post_json(infer_path("999"), infer_doc(w["flat"]))
    expect_error(r, 404, "no version '999'")


def case_error_wrong_datatype(t):
    w = t.windows[0]
    r = t.curl.post_json(infer_path(),
                         infer_doc([float(v) for v in w["flat"]], "FP32"))
    expect_error(r, 400, f"input '{INPUT}'", "FP32", "INT32")


def case_error_wrong_shape(t):
    w = t.windows[0]
    r = t.curl.post_json(infer_path(), infer_doc(w["flat"], shape=[3, 9]))
    expect_error(r, 400, f"input '{INPUT}'", "[3,9]")


def case_error_value_count(t):
    w = t.windows[0]
    r = t.curl.post_json(infer_path(), infer_doc(w["flat"][:26]))
    expect_error(r, 400,
                 f"input '{INPUT}': 26 values for shape [9,3] (27 elements)")


def case_error_values(t):
    flat = list(t.windows[0]["flat"])
    flat[3] = 40000
    r = t.curl.post_json(infer_path(), infer_doc(flat, "INT16"))
    expect_error(r, 400, f"input '{INPUT}'", "40000", "index 3", "INT16")
    flat = list(t.windows[0]["flat"])
    flat[5] = 1.5
    r = t.curl.post_json(infer_path(), infer_doc(flat))
    expect_error(r, 400, f"input '{INPUT}'", "index 5", "not a JSON integer")


def case_error_bad_json(t):
    r = t.curl.post_json(infer_path(), b'{"inputs": [')
    expect_error(r, 400, "malformed JSON", "line", "column")
    r = t.curl.post_json(infer_path(), b'[1, 2]')
    expect_error(r, 400, "JSON object")


def case_error_inputs(t):
    w = t.windows[0]
    doc = infer_doc(w["flat"])
    doc["inputs"][0]["name"] = "other"
    expect_error(t.curl.post_json(infer_path(), doc), 400,
                 "unknown input 'other'", f"'{INPUT}'")
    doc = infer_doc(w["flat"])
    doc["inputs"].append(dict(doc["inputs"][0]))
    expect_error(t.curl.post_json(infer_path(), doc), 400,
                 f"input '{INPUT}' appears twice")
    expect_error(t.curl.post_json(infer_path(), {"inputs": []}), 400,
                 "'inputs'")
    doc = infer_doc(w["flat"])
    del doc["inputs"][0]["data"]
    expect_error(t.curl.post_json(infer_path(), doc), 400,
                 f"input '{INPUT}': no data")
    doc = infer_doc(w["flat"], "FLOAT32")
    expect_error(t.curl.post_json(infer_path(), doc), 400,
                 f"input '{INPUT}'", "unknown datatype 'FLOAT32'")


def case_error_binary_sizes(t):
    w = t.windows[0]
    blob = struct.pack("<27i", *w["flat"])

    def send(size, data, hlen_delta=0, header=True):
        doc = {"inputs": [{"name": INPUT, "shape": SHAPE,
                           "datatype": "INT32",
                           "parameters": {"binary_data_size": size}}]}
        body, hlen = binary_body(doc, [data])
        headers = []
        if header:
            headers.append(
                f"Inference-Header-Content-Length: {hlen + hlen_delta}")
        return t.curl.request(infer_path(), body=body, headers=headers)

    # The body holds fewer bytes than binary_data_size says.
    expect_error(send(108, blob[:100]), 400, f"input '{INPUT}'", "108",
                 "100")
    # binary_data_size and the body agree, but not with the shape.
    expect_error(send(100, blob[:100]), 400, f"input '{INPUT}'", "100",
                 "108")
    # More bytes than the inputs account for.
    expect_error(send(108, blob + b"\0\0\0\0"), 400, f"'{INPUT}'", "112",
                 "108")
    # The header claims more than the body has.
    expect_error(send(108, blob, hlen_delta=1000), 400,
                 "Inference-Header-Content-Length")
    # binary_data_size without the header: the whole body is the JSON.
    expect_error(send(108, b"", header=False), 400, f"input '{INPUT}'",
                 "Inference-Header-Content-Length")
    expect_error(send(108, blob, header=False), 400, "malformed JSON")


def case_error_unknown_path(t):
    expect_error(t.curl.get("/v3/nothing"), 404, "unknown path '/v3/nothing'")
    expect_error(t.curl.get("/v2/health"), 404, "unknown path")


def case_error_wrong_method(t):
    r = t.curl.get(infer_path())
    expect_error(r, 405, "GET", "POST")
    check(r.headers.get("allow") == "POST",
          f"Allow header {r.headers.get('allow')!r}")
    r = t.curl.request("/v2/health/live", method="POST", body=b"{}")
    expect_error(r, 405, "POST")
    check("GET" in r.headers.get("allow", ""),
          f"Allow header {r.headers.get('allow')!r}")
    r = t.curl.request("/metrics", method="DELETE")
    expect_error(r, 405)


def case_stats_count_inferences(t):
    before = model_stats(t.curl)
    n_ok = 5
    for w in t.windows[:n_ok]:
        prediction(t.curl.post_json(infer_path(), infer_doc(w["flat"])))
    n_bad = 2
    for _ in range(n_bad):
        t.curl.post_json(infer_path(), infer_doc([1, 2, 3]))
    after = model_stats(t.curl)
    b, a = before["inference_stats"], after["inference_stats"]
    moves = {
        "inference_count": after["inference_count"]
        - before["inference_count"],
        "success.count": a["success"]["count"] - b["success"]["count"],
        "fail.count": a["fail"]["count"] - b["fail"]["count"],
    }
    for key in ("queue", "compute_input", "compute_infer", "compute_output"):
        moves[key + ".count"] = a[key]["count"] - b[key]["count"]
    want = {k: n_ok for k in moves}
    want["fail.count"] = n_bad
    check(moves == want, f"counts moved by {moves!r}, want {want!r}")
    # A model execution may serve several requests (batching).
    executions = after["execution_count"] - before["execution_count"]
    check(1 <= executions <= n_ok,
          f"execution_count moved by {executions}, want 1 to {n_ok}")
    check(a["success"]["ns"] > b["success"]["ns"]
          and a["compute_infer"]["ns"] > b["compute_infer"]["ns"],
          "durations did not grow")
    check(after["last_inference"] > 0, "last_inference is 0")
    check(after["version"] == t.version, f"version {after['version']!r}")


def case_stats_endpoints(t):
    r = t.curl.get("/v2/models/stats")
    check(r.status == 200, f"status {r.status}")
    names = [m["name"] for m in r.json()["model_stats"]]
    check(names == [MODEL], f"models {names!r}")
    r = t.curl.get(f"/v2/models/{MODEL}/versions/{t.version}/stats")
    check(r.status == 200 and r.json()["model_stats"][0]["name"] == MODEL,
          f"{r.status} {r.body[:200]!r}")
    expect_error(t.curl.get("/v2/models/nope/stats"), 404, "nope")


def case_metrics(t):
    r = t.curl.get("/metrics")
    check(r.status == 200, f"status {r.status}")
    ctype = r.headers.get("content-type", "")
    check(ctype.startswith("text/plain") and "version=0.0.4" in ctype,
          f"content-type {ctype!r}")
    text = r.body.decode()
    lines = [ln for ln in text.splitlines()
             if ln.startswith("mi_requests_total{")
             and 'protocol="oip_http"' in ln]
    check(lines, "no mi_requests_total{...protocol=\"oip_http\"...} line")


CASES = [
    case_health_live,
    case_health_ready,
    case_head,
    case_server_metadata,
    case_model_metadata,
    case_model_ready,
    case_model_ready_unknown,
    case_infer_all_windows_int32,
    case_infer_nested_data,
    case_infer_int16,
    case_infer_versioned_with_id,
    case_binary_input,
    case_binary_input_int16,
    case_binary_output_all,
    case_binary_output_requested,
    case_output_selection,
    case_keep_alive,
    case_concurrent_clients,
    case_error_unknown_model,
    case_error_unknown_version,
    case_error_wrong_datatype,
    case_error_wrong_shape,
    case_error_value_count,
    case_error_values,
    case_error_bad_json,
    case_error_inputs,
    case_error_binary_sizes,
    case_error_unknown_path,
    case_error_wrong_method,
    case_stats_count_inferences,
    case_stats_endpoints,
    case_metrics,
]


# ---- Small-limit server ----

def small_limit_cases():
    """Cases for the server started with --max-message-bytes 1024."""

    def too_large(tt):
        body = json.dumps(infer_doc(list(range(SMALL_LIMIT)))).encode()
        check(len(body) > SMALL_LIMIT, "body not large enough")
        r = tt.curl.post_json(infer_path(), body)
        expect_error(r, 413, str(SMALL_LIMIT))

    def too_large_chunked(tt):
        body = json.dumps(infer_doc(list(range(SMALL_LIMIT)))).encode()
        r = tt.curl.post_json(infer_path(), body,
                              headers=["Transfer-Encoding: chunked"])
        expect_error(r, 413, str(SMALL_LIMIT))

    def under_limit(tt):
        w = tt.windows[0]
        r = tt.curl.post_json(infer_path(), infer_doc(w["flat"]))
        close_to(prediction(r), w["want"], w["label"])

    return [("too_large_413", too_large),
            ("too_large_chunked_413", too_large_chunked),
            ("under_limit_ok", under_limit)]


# ---- Runner ----

class Run:
    """State shared by the cases of one server."""

    def __init__(self, curl, windows, version):
        self.curl = curl
        self.windows = windows
        self.version = version
        self.notes = []

    def note(self, text):
        self.notes.append(text)


class Tally:
    def __init__(self, filters):
        self.filters = filters
        self.passed = 0
        self.failed = 0

    def wanted(self, name):
        return not self.filters or any(f in name for f in self.filters)

    def run(self, name, fn, run):
        if not self.wanted(name):
            return
        run.notes = []
        t0 = time.monotonic()
        try:
            fn(run)
        except CaseFailure as e:
            self.failed += 1
            print(f"FAIL {name}: {e}")
            return
        except Exception:
            self.failed += 1
            print(f"FAIL {name}: unexpected error\n{traceback.format_exc()}")
            return
        self.passed += 1
        extra = f" ({', '.join(run.notes)})" if run.notes else ""
        print(f"ok   {name}{extra} [{time.monotonic() - t0:.2f} s]")

    def fail(self, name, message):
        self.failed += 1
        print(f"FAIL {name}: {message}")


def serve_and_run(tally, label, args, extra_args, cases, windows, version,
                  workdir):
    """Start one server, run `cases` [(name, fn)], stop it with SIGTERM."""
    server = Server(args.binary, args.pipeline, extra_args)
    ok = False
    try:
        try:
            port = server.wait_listening()
            curl = Curl(port, workdir)
            server.wait_ready(curl)
        except CaseFailure as e:
            tally.fail(f"{label}start", str(e))
            return
        run = Run(curl, windows, version)
        for name, fn in cases:
            tally.run(label + name, fn, run)
        rc = server.stop()
        if rc == 0:
            tally.passed += 1
            print(f"ok   {label}sigterm_exit_0")
            ok = True
        else:
            tally.fail(f"{label}sigterm_exit_0",
                       f"exit code {rc}\n{server.tail()}")
    finally:
        if server.proc.poll() is None:
            server.stop()
        if ok and tally.failed == 0:
            server.remove_log()
        else:
            print(f"server log kept: {server.log_path}", file=sys.stderr)


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--binary", required=True)
    p.add_argument("--pipeline", required=True)
    p.add_argument("--vectors", required=True)
    p.add_argument("--case", action="append", default=[],
                   help="run only cases whose name contains this")
    p.add_argument("--server-arg", action="append", default=[],
                   help="extra server argument (repeatable)")
    return p.parse_args(argv)


def main(argv):
    sys.stdout.reconfigure(line_buffering=True)
    args = parse_args(argv)
    if shutil.which("curl") is None:
        if os.environ.get("CI", "").lower() == "true":
            print("FAIL curl is not installed\n0 passed, 1 failed")
            return 1
        print("skip: curl is not installed")
        return 77
    if not os.access(args.binary, os.X_OK):
        print(f"FAIL server binary {args.binary} is missing\n"
              f"0 passed, 1 failed")
        return 1
    windows = load_windows(args.vectors, n_elements=N_ELEMENTS)
    with open(args.pipeline) as f:
        version = str(json.load(f).get("version", "1"))

    tally = Tally(args.case)
    with tempfile.TemporaryDirectory(prefix="modinfer-http-") as workdir:
        cases = [(fn.__name__[len("case_"):], fn) for fn in CASES]
        if any(tally.wanted(n) for n, _ in cases):
            serve_and_run(tally, "", args, args.server_arg, cases, windows,
                          version, workdir)
        small = small_limit_cases()
        if any(tally.wanted("small_limit." + n) for n, _ in small):
            serve_and_run(tally, "small_limit.", args,
                          [*args.server_arg, "--max-message-bytes",
                           str(SMALL_LIMIT)],
                          small, windows, version, workdir)
    print(f"{tally.passed} passed, {tally.failed} failed")
    return 0 if tally.failed == 0 and tally.passed > 0 else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
