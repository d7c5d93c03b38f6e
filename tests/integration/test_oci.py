#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""End-to-end test of the component repository against a real OCI registry.

Starts Debian's docker-registry (Distribution 2.8) as a child process with
a generated config.yml (filesystem storage in a temporary folder, HTTP on
127.0.0.1 and a free port), then, with the real modinfer binary:

- pushes the fall-detection model and a pipeline bundle (pipeline.json +
  model.onnx) with `modinfer push`; a second push uploads nothing;
- pulls by tag (the resolved digest is logged) and refuses the wrong kind;
- serves `oci://.../fall/pipeline@sha256:...` and checks every reference
  window over the Open Inference Protocol (HTTP JSON); serves a local
  pipeline whose model.path is a pinned oci:// reference;
- publishes the test plugin add_const.so, serves a pipeline whose custom
  step (the plugin) and model both come from the registry by digest, with
  no plugin directory, and a pinned bundle that carries its own plugin (by
  tag, that plugin is refused);
- stops the registry: a pinned bundle still serves from the cache, and so
  does the plugin-and-model pipeline; that pipeline then switches to a new
  version (a file added beside it, add_const 2.0) under a steady request
  load without a failed request; a tag
  uses its cached resolution (with a warning), an unknown tag fails
  clearly, and a cache file that changed is refused naming its digest;
- restarts the registry: the cache repairs itself;
- tampers a blob and a manifest in the registry's storage, and asks for a
  digest the registry does not have: each is refused naming the digest,
  and nothing unverified is left in the cache;
- refuses plain HTTP to a host not in --insecure-registries (oci:// and
  http://...#sha256=), and fetches a plain file by http://...#sha256=;
- puts a token-gated proxy in front of the registry (401 with a Bearer
  challenge, a token endpoint that checks Basic credentials) and pulls
  through it with MI_REGISTRY_USERNAME/MI_REGISTRY_PASSWORD, and fails
  clearly without them.

    /usr/bin/python3 tests/integration/test_oci.py --binary build/modinfer \\
        --source . --vectors ../shared/reference/fall-detection/vectors.json \\
        [--registry /usr/bin/docker-registry] [--case SUBSTRING]...

Prints one line per case and "N passed, M failed"; exits 0 when every case
passed, 1 otherwise, 77 (skip) when docker-registry is missing, unless
CI=true.
"""

import argparse
import base64
import hashlib
import http.server
import json
import os
import pathlib
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request

HERE = pathlib.Path(__file__).resolve().parent
sys.dont_write_bytecode = True
sys.path.insert(0, str(HERE))

import mi_server  # noqa: E402
from mi_cases import (  # noqa: E402
    check, load_windows, pick, run_one, setup_failed,
    skip_or_fail, summary)

TOL = 1e-5
MODEL = "fall-detection"
HTTP_RE = re.compile(r"http listening on 127\.0\.0\.1:(\d+)")
DIGEST_RE = re.compile(r"@(sha256:[0-9a-f]{64})")
NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def sha256_file(path):
    return hashlib.sha256(pathlib.Path(path).read_bytes()).hexdigest()


# ---- The registry ----

class Registry:
    """docker-registry serving one storage folder on a fixed port."""

    def __init__(self, binary, root, port):
        self.binary = binary
        self.root = pathlib.Path(root)
        self.port = port
        self.proc = None
        self.host = f"127.0.0.1:{port}"
        self.config = self.root / "config.yml"
        self.store = self.root / "store"
        self.log = self.root / "registry.log"
        self.config.write_text(
            "version: 0.1\n"
            "log:\n  level: warn\n"
            "storage:\n"
            f"  filesystem:\n    rootdirectory: {self.store}\n"
            "  delete:\n    enabled: true\n"
            f"http:\n  addr: 127.0.0.1:{port}\n"
            "  secret: modinfer-test-secret\n")

    def start(self):
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                [self.binary, "serve", str(self.config)],
                stdin=subprocess.DEVNULL, stdout=log, stderr=log)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"docker-registry exited with "
                                   f"{self.proc.returncode}:\n"
                                   f"{self.log.read_text()[-2000:]}")
            try:
                with NO_PROXY.open(f"http://{self.host}/v2/", timeout=2) as r:
                    if r.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.1)
        raise RuntimeError("docker-registry did not answer /v2/ in 20 s")

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def blob_file(self, digest):
        hexd = digest.split(":", 1)[1]
        return (self.store / "docker" / "registry" / "v2" / "blobs" /
                "sha256" / hexd[:2] / hexd / "data")


# ---- A token-gated proxy in front of the registry ----

class TokenProxy:
    """Answers 401 with a Bearer challenge unless the request carries the
    token; /token hands the token out for the right Basic credentials;
    everything else is forwarded to the registry."""

    TOKEN = "t0ken-for-modinfer"
    USER, PASSWORD = "puller", "s3cret"

    def __init__(self, registry_host):
        self.registry_host = registry_host
        self.port = free_port()
        self.host = f"127.0.0.1:{self.port}"
        self.token_requests = []
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def _send(self, status, headers, body=b""):
                self.send_response(status)
                for k, v in headers:
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            def _handle(self):
                if self.path.startswith("/token"):
                    proxy.token_requests.append(self.path)
                    want = "Basic " + base64.b64encode(
                        f"{proxy.USER}:{proxy.PASSWORD}".encode()).decode()
                    if self.headers.get("Authorization") != want:
                        self._send(401, [("Content-Type",
                                          "application/json")],
                                   b'{"details":"bad credentials"}')
                        return
                    self._send(200, [("Content-Type", "application/json")],
                               json.dumps({"token": proxy.TOKEN}).encode())
                    return
                if self.headers.get("Authorization") != \
                        f"Bearer {proxy.TOKEN}":
                    repo = self.path.split("/")[2:-2]
                    self._send(401, [
                        ("Content-Type", "application/json"),
                        ("WWW-Authenticate",
                         f'Bearer realm="http://{proxy.host}/token",'
                         f'service="modinfer-test",scope="repository:'
                         f'{"/".join(repo)}:pull"')],
                        b'{"errors":[{"code":"UNAUTHORIZED",'
                        b'"message":"authentication required"}]}')
                    return
                req = urllib.request.Request(
                    f"http://{proxy.registry_host}{self.path}",
                    method=self.command,
                    headers={"Accept": self.headers.get("Accept", "*/*")})
                try:
                    with NO_PROXY.open(req, timeout=10) as r:
                        status, hdrs, body = r.status, r.headers, r.read()
                except urllib.error.HTTPError as e:
                    status, hdrs, body = e.code, e.headers, e.read()
                keep = [(k, v) for k, v in hdrs.items()
                        if k.lower() in ("content-type",
                                         "docker-content-digest")]
                self._send(status, keep, body)

            do_GET = _handle
            do_HEAD = _handle

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1",
                                                       self.port), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever,
                                       daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


class FileServer:
    """A plain HTTP server for one folder (for http://...#sha256=)."""

    def __init__(self, folder):
        folder = str(folder)

        class Handler(http.server.SimpleHTTPRequestHandler):
            def __init__(self, *a, **kw):
                super().__init__(*a, directory=folder, **kw)

            def log_message(self, *a):
                pass

        self.port = free_port()
        self.host = f"127.0.0.1:{self.port}"
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1",
                                                       self.port), Handler)
        threading.Thread(target=self.server.serve_forever,
                         daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


# ---- Running modinfer ----

class Ctx:
    pass


def run(ctx, *args, cache=None, insecure=True, env=None, timeout=60):
    """Runs modinfer; returns (rc, stdout, stderr)."""
    cmd = [ctx.binary, *args, "--cache-dir", str(cache or ctx.cache)]
    if insecure:
        cmd += ["--insecure-registries", ctx.insecure]
    full_env = dict(os.environ)
    for k in ("MI_REGISTRY_USERNAME", "MI_REGISTRY_PASSWORD"):
        full_env.pop(k, None)
    full_env.update(env or {})
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                       env=full_env, stdin=subprocess.DEVNULL)
    # Under ASan/UBSan, an expected failure must still be a clean one.
    check("Sanitizer" not in p.stderr and "runtime error:" not in p.stderr,
          f"sanitizer report from {' '.join(map(str, args))}:\n"
          f"{p.stderr[-3000:]}")
    return p.returncode, p.stdout, p.stderr


def expect_fail(rc, out, err, *needles):
    check(rc != 0, f"exit code 0, expected a failure; stderr:\n{err[-800:]}")
    for n in needles:
        check(n in err, f"stderr lacks {n!r}:\n{err[-1200:]}")


def infer_one(http_port, flat):
    """One window over OIP HTTP JSON; returns the confidence."""
    doc = {"inputs": [{"name": "array", "datatype": "INT32",
                       "shape": [9, 3], "data": flat}]}
    req = urllib.request.Request(
        f"http://127.0.0.1:{http_port}/v2/models/{MODEL}/infer",
        data=json.dumps(doc).encode(),
        headers={"Content-Type": "application/json"})
    with NO_PROXY.open(req, timeout=30) as r:
        reply = json.loads(r.read())
    return float(reply["outputs"][0]["data"][0])


def infer_all(http_port, windows):
    """Sends every window over OIP HTTP JSON; returns the problems."""
    problems = []
    for w in windows:
        got = infer_one(http_port, w["flat"])
        if abs(got - w["want"]) > TOL:
            problems.append(f"{w['label']}: got {got}, want {w['want']}")
    return problems


def serve_and_check(ctx, ref, cache=None, windows=None, extra=()):
    """Serves ref, checks the windows, stops; returns the server log."""
    args = ["--cache-dir", str(cache or ctx.cache),
            "--insecure-registries", ctx.insecure, "--workers", "1",
            *extra]
    srv = mi_server.Server(ctx.binary, ref, args, ready_timeout=60)
    with srv:
        text = mi_server.log_text(srv.proc)
        m = HTTP_RE.search(text)
        check(m is not None, "no 'http listening' line in the log")
        problems = infer_all(int(m.group(1)), windows or ctx.windows)
        check(not problems, f"{len(problems)} wrong answers: "
              + "; ".join(problems[:4]))
        srv.stop()
        return mi_server.log_text(srv.proc)


# ---- Cases ----

def case_push_model(ctx):
    rc, out, err = run(ctx, "push", "model", ctx.model,
                       f"oci://{ctx.reg.host}/fall/model:v1")
    check(rc == 0, f"push failed ({rc}):\n{err[-1200:]}")
    m = DIGEST_RE.search(out)
    check(m is not None and out.startswith(
        f"oci://{ctx.reg.host}/fall/model@"), f"stdout {out!r}")
    ctx.model_digest = m.group(1)
    ctx.model_ref = out.strip()
    ctx.model_blob = "sha256:" + sha256_file(ctx.model)
    check("pushed 'model.onnx'" in err, f"no per-blob log line:\n{err}")
    return ctx.model_digest[:19] + "..."


def case_push_bundle(ctx):
    bundle = ctx.work / "bundle"
    bundle.mkdir()
    shutil.copy(ctx.pipeline, bundle / "pipeline.json")
    shutil.copy(ctx.model, bundle / "model.onnx")
    rc, out, err = run(ctx, "push", "pipeline", bundle / "pipeline.json",
                       f"oci://{ctx.reg.host}/fall/pipeline:v1")
    check(rc == 0, f"push failed ({rc}):\n{err[-1200:]}")
    m = DIGEST_RE.search(out)
    check(m is not None, f"stdout {out!r}")
    ctx.bundle_digest = m.group(1)
    ctx.bundle_ref = out.strip()
    check("pushed 'pipeline.json'" in err, f"log:\n{err}")


def case_push_again_uploads_nothing(ctx):
    rc, out, err = run(ctx, "push", "pipeline",
                       ctx.work / "bundle" / "pipeline.json",
                       f"oci://{ctx.reg.host}/fall/pipeline:v1")
    check(rc == 0, f"push failed ({rc}):\n{err[-1200:]}")
    check(out.strip() == ctx.bundle_ref, f"{out!r} != {ctx.bundle_ref!r}")
    check("already in the registry" in err and "pushed 'model.onnx'"
          not in err, f"log:\n{err}")


def case_pull_tag_resolves(ctx):
    rc, out, err = run(ctx, "pull", "model",
                       f"oci://{ctx.reg.host}/fall/model:v1")
    check(rc == 0, f"pull failed ({rc}):\n{err[-1200:]}")
    path = pathlib.Path(out.strip())
    check(path.name == "model.onnx", f"path {path}")
    check(path.read_bytes() == pathlib.Path(ctx.model).read_bytes(),
          "pulled file differs from the pushed one")
    check(f"to {ctx.model_digest}" in err, f"no resolution logged:\n{err}")
    check(f"blobs/sha256/{ctx.model_blob[7:]}" not in out, "path is the blob")
    check((ctx.cache / "blobs" / "sha256" / ctx.model_blob[7:]).exists(),
          "blob not in the content-addressed cache")
    rc, out, err = run(ctx, "pull", "pipeline",
                       f"oci://{ctx.reg.host}/fall/pipeline:v1")
    check(rc == 0, f"pull failed ({rc}):\n{err[-1200:]}")
    check(pathlib.Path(out.strip()).name == "pipeline.json" and
          (pathlib.Path(out.strip()).parent / "model.onnx").exists(),
          f"bundle not extracted at {out.strip()}")


def case_pull_wrong_kind(ctx):
    rc, out, err = run(ctx, "pull", "plugin", ctx.model_ref)
    expect_fail(rc, out, err, "is a 'model' artifact, not a 'plugin'")
    rc, out, err = run(ctx, "pull", "model", ctx.bundle_ref)
    expect_fail(rc, out, err, "is a 'pipeline' artifact, not a 'model'")


def case_serve_bundle_pinned(ctx):
    log = serve_and_check(ctx, ctx.bundle_ref)
    check(f"artifacts/sha256/{ctx.bundle_digest[7:]}/pipeline.json" in log,
          "the bundle's cached pipeline was not the one served")


def case_serve_model_ref(ctx):
    cfg = json.loads(pathlib.Path(ctx.pipeline).read_text())
    cfg["model"]["path"] = ctx.model_ref
    path = ctx.work / "model-ref.json"
    path.write_text(json.dumps(cfg))
    serve_and_check(ctx, path, windows=ctx.windows[:5])


def case_push_plugin(ctx):
    rc, out, err = run(ctx, "push", "plugin", ctx.plugin,
                       f"oci://{ctx.reg.host}/plugins/add_const:1.0")
    check(rc == 0, f"push failed ({rc}):\n{err[-1200:]}")
    m = DIGEST_RE.search(out)
    check(m is not None, f"stdout {out!r}")
    ctx.plugin_ref = out.strip()
    return ctx.plugin_ref.split("@")[1][:19] + "..."


def plugin_pipeline(ctx, plugins, model_path, folder):
    """The fall pipeline plus add_const 1.0 after the model."""
    cfg = json.loads(pathlib.Path(ctx.pipeline).read_text())
    cfg["plugins"] = plugins
    cfg["model"]["path"] = model_path
    cfg["post"] = cfg.get("post", []) + [
        {"step": "add_const", "params": {"value": 1.0}}]
    folder.mkdir(exist_ok=True)
    path = folder / "pipeline.json"
    path.write_text(json.dumps(cfg))
    return path


def plus_one(windows):
    return [dict(w, want=w["want"] + 1.0) for w in windows]


def case_serve_plugin_and_model_by_digest(ctx):
    """The custom step and the model both come from the registry, pinned
    by digest; no plugin directory at all."""
    ctx.plugin_pipeline = plugin_pipeline(
        ctx, [ctx.plugin_ref], ctx.model_ref, ctx.work / "plugin-refs")
    log = serve_and_check(ctx, ctx.plugin_pipeline, windows=plus_one(
        ctx.windows[:8]), extra=["--plugin-dir", ""])
    return "answers are the model's + 1.0 (add_const from the registry)"


def case_push_bundle_with_plugin(ctx):
    folder = ctx.work / "bundle-plugin"
    path = plugin_pipeline(ctx, ["add_const.so"], "model.onnx", folder)
    shutil.copy(ctx.model, folder / "model.onnx")
    shutil.copy(ctx.plugin, folder / "add_const.so")
    rc, out, err = run(ctx, "push", "pipeline", path,
                       f"oci://{ctx.reg.host}/fall/pipeline-plugin:v1")
    check(rc == 0, f"push failed ({rc}):\n{err[-1200:]}")
    check("pushed 'add_const.so'" in err, f"plugin not in the bundle:\n{err}")
    ctx.plugin_bundle_ref = DIGEST_RE.search(out) and out.strip()
    check(ctx.plugin_bundle_ref, f"stdout {out!r}")
    # Pinned by digest: its plugin loads from the bundle itself.
    serve_and_check(ctx, ctx.plugin_bundle_ref,
                    windows=plus_one(ctx.windows[:4]),
                    extra=["--plugin-dir", ""])
    # By tag: the plugin is not pinned, and is refused.
    rc, out, err = run(ctx, "check",
                       f"oci://{ctx.reg.host}/fall/pipeline-plugin:v1",
                       "--plugin-dir", "")
    expect_fail(rc, out, err,
                "plugins[0]: 'add_const.so': no plugin directory is set")
    return "pinned bundle serves its own plugin; by tag it is refused"


def case_registry_down_pinned_serves(ctx):
    ctx.reg.stop()
    log = serve_and_check(ctx, ctx.bundle_ref)
    check("pulled" not in log, "downloaded with the registry down?")
    # The custom step and the model of the digest-pinned pipeline too.
    serve_and_check(ctx, ctx.plugin_pipeline,
                    windows=plus_one(ctx.windows[:4]),
                    extra=["--plugin-dir", ""])
    serve_and_check(ctx, ctx.plugin_bundle_ref,
                    windows=plus_one(ctx.windows[:4]),
                    extra=["--plugin-dir", ""])


def case_registry_down_switch_version_under_load(ctx):
    """With the registry still down: the digest-pinned plugin-and-model
    pipeline serves from the cache, and a new version of it (add_const 2.0
    instead of 1.0) is loaded beside it under load; no request fails."""
    folder = ctx.work / "versions"
    folder.mkdir()
    cfg = json.loads(ctx.plugin_pipeline.read_text())
    cfg["version"] = "1"
    (folder / "v1.json").write_text(json.dumps(cfg))
    args = ["--cache-dir", str(ctx.cache), "--insecure-registries",
            ctx.insecure, "--workers", "1", "--plugin-dir", "",
            "--watch-interval-ms", "200"]
    windows = ctx.windows[:8]
    results = {"sent": 0, "plus1": 0, "plus2": 0, "problems": []}
    stop = threading.Event()

    def client(port):
        i = 0
        while not stop.is_set():
            w = windows[i % len(windows)]
            i += 1
            results["sent"] += 1
            try:
                got = infer_one(port, w["flat"])
            except (OSError, ValueError, KeyError) as e:
                results["problems"].append(f"request {i}: {e}")
                continue
            if abs(got - (w["want"] + 1.0)) <= TOL:
                results["plus1"] += 1
            elif abs(got - (w["want"] + 2.0)) <= TOL:
                results["plus2"] += 1
            else:
                results["problems"].append(f"request {i}: {got}")

    with mi_server.Server(ctx.binary, folder, args, ready_timeout=60) as srv:
        port = int(HTTP_RE.search(mi_server.log_text(srv.proc)).group(1))
        threads = [threading.Thread(target=client, args=(port,))
                   for _ in range(2)]
        for t in threads:
            t.start()
        try:
            time.sleep(1.0)
            cfg["version"] = "2"
            cfg["post"][-1]["params"]["value"] = 2.0
            tmp = folder / "v2.json.tmp"
            tmp.write_text(json.dumps(cfg))
            os.replace(tmp, folder / "v2.json")
            deadline = time.monotonic() + 30
            while results["plus2"] < 20 and time.monotonic() < deadline:
                time.sleep(0.1)
            time.sleep(0.5)
        finally:
            stop.set()
            for t in threads:
                t.join(timeout=60)
        srv.stop()
    check(not results["problems"], f"{len(results['problems'])} failed: "
          + "; ".join(results["problems"][:4]))
    check(results["plus1"] > 0 and results["plus2"] >= 20,
          f"answers: {results['plus1']} from version 1, {results['plus2']} "
          f"from version 2")
    return (f"{results['sent']} requests, 0 failed: {results['plus1']} by "
            f"version 1, {results['plus2']} by version 2")


def case_registry_down_tag_cached(ctx):
    rc, out, err = run(ctx, "pull", "pipeline",
                       f"oci://{ctx.reg.host}/fall/pipeline:v1")
    check(rc == 0, f"pull failed ({rc}):\n{err[-1200:]}")
    check("using the cached resolution of tag 'v1' to " + ctx.bundle_digest
          in err, f"no warning about the cached resolution:\n{err}")
    rc, out, err = run(ctx, "pull", "pipeline",
                       f"oci://{ctx.reg.host}/fall/pipeline:v2")
    expect_fail(rc, out, err, "tag 'v2' cannot be resolved",
                "cannot reach")


def case_registry_down_cache_tampered(ctx):
    folder = ctx.cache / "artifacts" / "sha256" / ctx.bundle_digest[7:]
    target = folder / "model.onnx"
    data = bytearray(target.read_bytes())
    data[-1] ^= 0x55
    os.chmod(target, 0o644)
    target.write_bytes(bytes(data))
    rc, out, err = run(ctx, "check", ctx.bundle_ref)
    expect_fail(rc, out, err, ctx.model_blob, "cannot reach")


def case_registry_back_cache_repairs(ctx):
    ctx.reg.start()
    rc, out, err = run(ctx, "check", ctx.bundle_ref)
    check(rc == 0 and out.rstrip().endswith("ok"),
          f"check failed ({rc}):\n{err[-1200:]}")
    check("pulled 'model.onnx'" in err, f"not fetched again:\n{err}")


def case_registry_blob_tampered(ctx):
    blob = ctx.reg.blob_file(ctx.model_blob)
    check(blob.exists(), f"{blob} missing")
    saved = blob.read_bytes()
    data = bytearray(saved)
    data[len(data) // 2] ^= 0xFF
    blob.write_bytes(bytes(data))
    fresh = ctx.work / "cache-tamper"
    try:
        rc, out, err = run(ctx, "pull", "model", ctx.model_ref, cache=fresh)
        expect_fail(rc, out, err, "digest mismatch",
                    f"expected {ctx.model_blob}")
        left = list((fresh / "tmp").iterdir())
        check(not left, f"left in the cache's tmp/: {left}")
        check(not (fresh / "blobs" / "sha256" / ctx.model_blob[7:]).exists(),
              "the corrupt blob was kept")
        check(not any((fresh / "artifacts" / "sha256").iterdir()),
              "an artifact folder was made")
    finally:
        blob.write_bytes(saved)


def case_registry_manifest_tampered(ctx):
    blob = ctx.reg.blob_file(ctx.model_digest)
    saved = blob.read_bytes()
    text = saved.replace(b"model.onnx", b"model.onnY")
    check(text != saved, "manifest has no title to change")
    blob.write_bytes(text)
    try:
        rc, out, err = run(ctx, "pull", "model", ctx.model_ref,
                           cache=ctx.work / "cache-manifest")
        expect_fail(rc, out, err, "manifest digest mismatch",
                    f"expected {ctx.model_digest}")
    finally:
        blob.write_bytes(saved)


def case_wrong_digest_refused(ctx):
    bad = "sha256:" + hashlib.sha256(b"not pushed").hexdigest()
    rc, out, err = run(ctx, "pull", "model",
                       f"oci://{ctx.reg.host}/fall/model@{bad}",
                       cache=ctx.work / "cache-wrong")
    expect_fail(rc, out, err, bad, "404")


def case_insecure_refused(ctx):
    rc, out, err = run(ctx, "pull", "model", ctx.model_ref, insecure=False,
                       cache=ctx.work / "cache-insecure")
    expect_fail(rc, out, err, "--insecure-registries")
    rc, out, err = run(ctx, "pull", "model",
                       f"http://{ctx.files.host}/model.onnx#sha256="
                       f"{ctx.model_blob[7:]}", insecure=False,
                       cache=ctx.work / "cache-insecure")
    expect_fail(rc, out, err, f"plain HTTP to '{ctx.files.host}' is "
                "refused", "--insecure-registries")
    check(not (ctx.work / "cache-insecure" / "blobs" / "sha256" /
               ctx.model_blob[7:]).exists(), "fetched anyway")


def case_http_url_pinned(ctx):
    url = f"http://{ctx.files.host}/model.onnx#sha256={ctx.model_blob[7:]}"
    rc, out, err = run(ctx, "pull", "model", url,
                       cache=ctx.work / "cache-url")
    check(rc == 0, f"pull failed ({rc}):\n{err[-1200:]}")
    check(pathlib.Path(out.strip()).read_bytes() ==
          pathlib.Path(ctx.model).read_bytes(), "content differs")
    bad = "0" * 64
    rc, out, err = run(ctx, "pull", "model",
                       f"http://{ctx.files.host}/model.onnx#sha256={bad}",
                       cache=ctx.work / "cache-url")
    expect_fail(rc, out, err, "digest mismatch", f"expected sha256:{bad}")


def case_bearer_token_flow(ctx):
    proxy = TokenProxy(ctx.reg.host)
    try:
        ref = ctx.model_ref.replace(ctx.reg.host, proxy.host)
        insecure = f"{ctx.insecure},{proxy.host}"
        ctx_ins, ctx.insecure = ctx.insecure, insecure
        try:
            rc, out, err = run(ctx, "pull", "model", ref,
                               cache=ctx.work / "cache-noauth")
            expect_fail(rc, out, err, "MI_REGISTRY_USERNAME")
            rc, out, err = run(ctx, "pull", "model", ref,
                               cache=ctx.work / "cache-auth",
                               env={"MI_REGISTRY_USERNAME": proxy.USER,
                                    "MI_REGISTRY_PASSWORD": proxy.PASSWORD})
        finally:
            ctx.insecure = ctx_ins
        check(rc == 0, f"pull through the token proxy failed ({rc}):\n"
              f"{err[-1200:]}")
        check(pathlib.Path(out.strip()).read_bytes() ==
              pathlib.Path(ctx.model).read_bytes(), "content differs")
        check(any("service=modinfer-test" in p and
                  "scope=repository%3Afall%2Fmodel%3Apull" in p
                  for p in proxy.token_requests),
              f"token requests {proxy.token_requests}")
    finally:
        proxy.close()


CASES = [
    ("push_model", case_push_model),
    ("push_bundle", case_push_bundle),
    ("push_again_uploads_nothing", case_push_again_uploads_nothing),
    ("pull_tag_resolves", case_pull_tag_resolves),
    ("pull_wrong_kind", case_pull_wrong_kind),
    ("serve_bundle_pinned", case_serve_bundle_pinned),
    ("serve_model_ref", case_serve_model_ref),
    ("push_plugin", case_push_plugin),
    ("serve_plugin_and_model_by_digest",
     case_serve_plugin_and_model_by_digest),
    ("push_bundle_with_plugin", case_push_bundle_with_plugin),
    ("registry_down_pinned_serves", case_registry_down_pinned_serves),
    ("registry_down_switch_version_under_load",
     case_registry_down_switch_version_under_load),
    ("registry_down_tag_cached", case_registry_down_tag_cached),
    ("registry_down_cache_tampered", case_registry_down_cache_tampered),
    ("registry_back_cache_repairs", case_registry_back_cache_repairs),
    ("registry_blob_tampered", case_registry_blob_tampered),
    ("registry_manifest_tampered", case_registry_manifest_tampered),
    ("wrong_digest_refused", case_wrong_digest_refused),
    ("insecure_refused", case_insecure_refused),
    ("http_url_pinned", case_http_url_pinned),
    ("bearer_token_flow", case_bearer_token_flow),
]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--binary", required=True)
    ap.add_argument("--source", required=True)
    ap.add_argument("--vectors", default=os.environ.get("MI_TEST_VECTORS"))
    ap.add_argument("--registry", default="/usr/bin/docker-registry")
    ap.add_argument("--plugin", required=True,
                    help="a plugin to publish (the test plugin add_const.so)")
    ap.add_argument("--case", action="append", default=[])
    args = ap.parse_args()

    if not os.access(args.registry, os.X_OK):
        return skip_or_fail(
            f"{args.registry} is missing (apt-get install docker-registry)")

    ctx = Ctx()
    ctx.binary = args.binary
    ctx.plugin = args.plugin
    source = pathlib.Path(args.source)
    ctx.model = os.environ.get("MI_TEST_FALL_MODEL") or str(
        source / "examples" / "fall-detection" / "model.onnx")
    ctx.pipeline = source / "examples" / "fall-detection" / "pipeline.json"
    try:
        ctx.windows = load_windows(args.vectors)
    except (OSError, TypeError, ValueError, KeyError) as e:
        return setup_failed(f"setup: reference vectors: {e}")
    tmp = tempfile.mkdtemp(prefix="modinfer-oci-")
    ctx.work = pathlib.Path(tmp)
    ctx.cache = ctx.work / "cache"
    ctx.reg = Registry(args.registry, ctx.work, free_port())
    files = ctx.work / "files"
    files.mkdir()
    shutil.copy(ctx.model, files / "model.onnx")
    ctx.files = FileServer(files)
    ctx.insecure = f"{ctx.reg.host},{ctx.files.host}"
    passed = failed = 0
    try:
        try:
            ctx.reg.start()
        except (OSError, RuntimeError) as e:
            return setup_failed(f"registry_start: {e}")
        for name, fn in pick(CASES, args.case):
            if run_one(name, fn, ctx):
                passed += 1
            else:
                failed += 1
    finally:
        ctx.reg.stop()
        ctx.files.close()
        if failed == 0:
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            print(f"work folder kept: {tmp}")
    return summary(passed, failed)


if __name__ == "__main__":
    sys.exit(main())
