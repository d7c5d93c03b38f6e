#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""The plugin ABI from the outside: install, build a plugin, load it, serve.

`cmake --install` puts the build into a temporary prefix; the example
plugin (examples/plugin/, the "clip" step) is copied out of the tree and
built with its own Makefile against the installed header only, found by
pkg-config through PKG_CONFIG_PATH=<prefix>/lib/pkgconfig (the test checks
that the compiler read modinfer/plugin.h from the prefix, never from the
source tree). Then the installed modinfer, with --plugin-dir, runs `check`
on the example pipeline, and `serve`: a window of the reference vectors
gives the reference confidence, a window with samples beyond the sensor's
range gives exactly the result of the same window clipped by hand, and
/metrics counts the clipped values. Last, the trust rules: a path with a
slash outside the plugin directory, and a registry reference by tag, are
refused with their explanations.

    /usr/bin/python3 tests/integration/test_plugin_install.py \\
        --build build --source . \\
        --vectors ../shared/reference/fall-detection/vectors.json

Prints one line per case and "N passed, M failed"; exits 0 when all
passed, 1 otherwise, 77 (skip) when make, cc, pkg-config or curl is
missing, unless CI=true.
"""

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import mi_server  # noqa: E402
from mi_cases import IS_CI, CaseFailure, check, summary  # noqa: E402

MODEL = "fall-detection-clip"
TOL = 1e-5
HTTP_RE = re.compile(r"http listening on 127\.0\.0\.1:(\d+)")


def run(cmd, env=None, cwd=None, timeout=300):
    full_env = dict(os.environ)
    full_env.update(env or {})
    p = subprocess.run(cmd, env=full_env, cwd=cwd, capture_output=True,
                       text=True, timeout=timeout)
    return p.returncode, p.stdout, p.stderr


def curl(url, body=None):
    cmd = ["curl", "-sS", "--max-time", "60", "-w", "\n%{http_code}", url]
    if body is not None:
        cmd += ["-H", "Content-Type: application/json", "--data-binary",
                json.dumps(body)]
    rc, out, err = run(cmd)
    check(rc == 0, f"curl {url}: exit {rc}: {err.strip()}")
    text, _, status = out.rpartition("\n")
    return int(status), text


class Ctx:
    """What the cases share: paths, and the running server's HTTP port."""

    def __init__(self, args, tmp):
        self.args = args
        self.tmp = tmp
        self.prefix = os.path.join(tmp, "prefix")
        self.pc_dir = None
        self.plugin_dir = None
        self.modinfer = os.path.join(self.prefix, "bin", "modinfer")
        self.example = os.path.join(tmp, "plugin-src")
        self.pipeline = None
        self.http_port = None
        self.window = None
        self.want = None


# ---- Cases ----

def case_install(ctx):
    rc, out, err = run(["cmake", "--install", ctx.args.build, "--prefix",
                        ctx.prefix])
    check(rc == 0, f"cmake --install failed ({rc}): {err or out}")
    check(os.access(ctx.modinfer, os.X_OK), f"{ctx.modinfer} not installed")
    for h in ("plugin.h", "status.h"):
        check(os.path.isfile(os.path.join(ctx.prefix, "include", "modinfer",
                                          h)), f"include/modinfer/{h} "
              f"not installed")
    for root, _, files in os.walk(ctx.prefix):
        if "modinfer-plugin.pc" in files:
            ctx.pc_dir = root
    check(ctx.pc_dir is not None, "no modinfer-plugin.pc under the prefix")
    env = {"PKG_CONFIG_PATH": ctx.pc_dir}
    rc, out, err = run(["pkg-config", "--variable=plugindir",
                        "modinfer-plugin"], env=env)
    check(rc == 0 and out.strip(), f"pkg-config plugindir: {err}")
    ctx.plugin_dir = os.path.realpath(out.strip())
    check(ctx.plugin_dir.startswith(os.path.realpath(ctx.prefix) + "/"),
          f"plugindir {ctx.plugin_dir} is not under the prefix")
    check(os.path.isdir(ctx.plugin_dir), "the plugin folder is not created")
    return f"pc in {os.path.relpath(ctx.pc_dir, ctx.prefix)}"


def case_header_self_contained(ctx):
    """plugin.h compiles alone, as C and as C++, from the prefix."""
    inc = os.path.join(ctx.prefix, "include")
    src = os.path.join(ctx.tmp, "alone.c")
    with open(src, "w") as f:
        f.write("#include <modinfer/plugin.h>\nint main(void) "
                "{ return MI_PLUGIN_ABI_MAJOR - 1; }\n")
    rc, _, err = run(["cc", "-std=c11", "-Wall", "-Wextra", "-Wpedantic",
                      "-Werror", "-I", inc, "-c", "-o", src + ".o", src])
    check(rc == 0, f"plugin.h alone does not compile as C11: {err}")
    if shutil.which("c++"):
        rc, _, err = run(["c++", "-x", "c++", "-std=c++17", "-Wall",
                          "-Werror", "-I", inc, "-c", "-o", src + ".cc.o",
                          src])
        check(rc == 0, f"plugin.h does not compile as C++: {err}")


def case_build_example(ctx):
    shutil.copytree(os.path.join(ctx.args.source, "examples", "plugin"),
                    ctx.example,
                    ignore=shutil.ignore_patterns("*.so", "*.o"))
    env = {"PKG_CONFIG_PATH": ctx.pc_dir}
    rc, out, err = run(["pkg-config", "--cflags", "modinfer-plugin"],
                       env=env)
    check(rc == 0, f"pkg-config --cflags: {err}")
    src_inc = os.path.realpath(os.path.join(ctx.args.source, "include"))
    for flag in out.split():
        if flag.startswith("-I"):
            check(os.path.realpath(flag[2:]) != src_inc,
                  f"--cflags points at the source tree: {out.strip()}")
    rc, out, err = run(["make"], env=env, cwd=ctx.example)
    check(rc == 0, f"make failed ({rc}):\n{out}{err}")
    so = os.path.join(ctx.example, "clip.so")
    check(os.path.isfile(so), "make made no clip.so")
    # Which plugin.h did the compiler read?  -M lists every header.
    rc, deps, err = run(["sh", "-c", "cc -M $(pkg-config --cflags "
                         "modinfer-plugin) clip.c"], env=env,
                        cwd=ctx.example)
    check(rc == 0, f"cc -M: {err}")
    headers = [w for w in deps.replace("\\\n", " ").split()
               if w.endswith("modinfer/plugin.h")]
    check(len(headers) == 1, f"plugin.h not among the headers: {deps}")
    real = os.path.realpath(headers[0])
    check(real.startswith(os.path.realpath(ctx.prefix) + "/"),
          f"compiled against {real}, not the installed header")
    # The plugin exports its entry point and nothing else of its own.
    if shutil.which("nm"):
        rc, out, _ = run(["nm", "-D", "--defined-only", so])
        syms = [line.split()[-1] for line in out.splitlines()
                if line.strip()]
        check(syms == ["mi_plugin_entry"], f"exported symbols: {syms}")
    rc, out, err = run(["make", "install"], env=env, cwd=ctx.example)
    check(rc == 0, f"make install failed: {err}")
    check(os.path.isfile(os.path.join(ctx.plugin_dir, "clip.so")),
          "make install did not put clip.so into the plugin folder")
    # The example pipeline, with its model path made absolute.
    with open(os.path.join(ctx.args.source, "examples", "plugin",
                           "pipeline.json")) as f:
        doc = json.load(f)
    doc["model"]["path"] = os.path.join(ctx.args.source, "examples",
                                        "fall-detection", "model.onnx")
    ctx.pipeline = os.path.join(ctx.tmp, "pipeline.json")
    with open(ctx.pipeline, "w") as f:
        json.dump(doc, f)
    return f"headers from {os.path.relpath(real, ctx.prefix)}"


def case_check(ctx):
    rc, out, err = run([ctx.modinfer, "check", ctx.pipeline, "--plugin-dir",
                        ctx.plugin_dir])
    check(rc == 0, f"check failed ({rc}): {err}")
    check("pre[0] 'clip'" in out and "int32[9,3]" in out and
          out.rstrip().endswith("ok"), f"check output: {out}")
    check("loaded step 'clip' version '1.0.0'" in err,
          f"no load line in the log: {err}")


def infer(ctx, flat):
    status, text = curl(f"http://127.0.0.1:{ctx.http_port}/v2/models/"
                        f"{MODEL}/infer",
                        {"inputs": [{"name": "array", "datatype": "INT32",
                                     "shape": [9, 3], "data": flat}]})
    check(status == 200, f"infer: HTTP {status}: {text}")
    doc = json.loads(text)
    return float(doc["outputs"][0]["data"][0])


def plugin_counter(ctx):
    status, text = curl(f"http://127.0.0.1:{ctx.http_port}/metrics")
    check(status == 200, f"/metrics: HTTP {status}")
    m = re.search(r'^mi_plugin_events_total\{plugin="clip",'
                  r'event="values_clipped"\} (\d+)$', text, re.M)
    check(m is not None, "no mi_plugin_events_total series of clip in "
          "/metrics")
    return int(m.group(1))


def case_serve(ctx):
    with mi_server.Server(ctx.modinfer, ctx.pipeline,
                          ["--plugin-dir", ctx.plugin_dir, "--workers",
                           "2"]) as srv:
        m = HTTP_RE.search(mi_server.log_text(srv.proc))
        check(m is not None, "no 'http listening' line")
        ctx.http_port = int(m.group(1))
        before = plugin_counter(ctx)
        check(before == 0, f"counter starts at {before}")

        # In range: the reference result, nothing clipped.
        got = infer(ctx, ctx.window)
        check(abs(got - ctx.want) <= TOL,
              f"reference window: {got}, expected {ctx.want}")
        check(plugin_counter(ctx) == 0, "values in range were counted")

        # Beyond the sensor's range: the same as clipped by hand.
        spiked = list(ctx.window)
        spiked[0], spiked[4], spiked[8] = 30000, -25000, 9999
        by_hand = list(ctx.window)
        by_hand[0], by_hand[4], by_hand[8] = 2047, -2048, 2047
        got = infer(ctx, spiked)
        want = infer(ctx, by_hand)
        check(abs(got - want) <= 1e-7,
              f"spiked window gives {got}, clipped by hand {want}")
        n = plugin_counter(ctx)
        check(n == 3, f"values_clipped is {n}, expected 3")
        srv.stop()
    return f"clipped window {got:.5f}, counter 3"


def refused(ctx, entry, *needles):
    with open(ctx.pipeline) as f:
        doc = json.load(f)
    doc["plugins"] = [entry]
    path = os.path.join(ctx.tmp, "refused.json")
    with open(path, "w") as f:
        json.dump(doc, f)
    rc, out, err = run([ctx.modinfer, "check", path, "--plugin-dir",
                        ctx.plugin_dir])
    check(rc != 0, f"'{entry}' was accepted")
    for n in needles:
        check(n in err, f"message lacks {n!r}:\n{err}")


def case_refuse_path_outside(ctx):
    so = os.path.join(ctx.example, "clip.so")
    refused(ctx, so, f"plugins[0]: '{so}' is outside the plugin directory "
            f"'{ctx.plugin_dir}': native plugins load only from there or "
            f"from a registry by digest")


def case_refuse_unpinned_tag(ctx):
    ref = "oci://127.0.0.1:5000/modinfer/clip:1.0"
    refused(ctx, ref, f"plugins[0]: '{ref}' does not name a digest",
            "pin it by digest: oci://127.0.0.1:5000/modinfer/clip@sha256:")


def case_refuse_without_plugin_dir(ctx):
    rc, out, err = run([ctx.modinfer, "check", ctx.pipeline,
                        "--plugin-dir", ""])
    check(rc != 0, "a plain file name loaded without a plugin directory")
    check("no plugin directory is set" in err, f"message: {err}")


CASES = [
    ("install", case_install),
    ("header_self_contained", case_header_self_contained),
    ("build_example_out_of_tree", case_build_example),
    ("check_with_plugin", case_check),
    ("serve_with_plugin", case_serve),
    ("refuse_path_outside_plugin_dir", case_refuse_path_outside),
    ("refuse_unpinned_tag", case_refuse_unpinned_tag),
    ("refuse_without_plugin_dir", case_refuse_without_plugin_dir),
]


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--build", required=True)
    p.add_argument("--source", required=True)
    p.add_argument("--vectors", required=True)
    args = p.parse_args()
    args.source = os.path.abspath(args.source)

    missing = [t for t in ("make", "cc", "pkg-config", "curl", "cmake")
               if shutil.which(t) is None]
    if missing:
        print(f"skip: missing {', '.join(missing)}")
        return 1 if IS_CI else 77

    with open(args.vectors) as f:
        sample = json.load(f)["client_samples"][0]
    tmp = tempfile.mkdtemp(prefix="mi-plugin-install-")
    ctx = Ctx(args, tmp)
    ctx.window = [int(v) for row in sample["raw"] for v in row]
    ctx.want = float(sample["output_f32"])
    passed = failed = 0
    for name, fn in CASES:
        t0 = time.monotonic()
        try:
            note = fn(ctx)
            passed += 1
            print(f"ok   {name}  ({time.monotonic() - t0:.2f} s)"
                  + (f"  {note}" if note else ""))
        except (CaseFailure, mi_server.ServerError) as e:
            failed += 1
            print(f"FAIL {name}: {e}")
        except Exception:  # noqa: BLE001 - report and go on
            failed += 1
            print(f"FAIL {name}: unexpected error\n{traceback.format_exc()}")
        sys.stdout.flush()
        if failed and name in ("install", "build_example_out_of_tree"):
            break
    if failed == 0:
        shutil.rmtree(tmp, ignore_errors=True)
    else:
        print(f"kept {tmp}")
    return summary(passed, failed)


if __name__ == "__main__":
    sys.exit(main())
