#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Command-line behaviour of modinfer: --help, check, and start-up failures.

Each case runs the real binary and checks its exit code and the message a
user would read: a broken pipeline must stop start-up with a message naming
the step, the tensor and both sides of the mismatch.

usage: test_cli.py --binary build/modinfer --source <repo root>
"""
import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile

FAILS = []


def run(binary, *args, env=None, timeout=30):
    full_env = dict(os.environ)
    full_env.update(env or {})
    proc = subprocess.run([binary, *args], capture_output=True, text=True,
                          timeout=timeout, env=full_env)
    return proc.returncode, proc.stdout, proc.stderr


def case(name, ok, detail=""):
    print(f"{'ok  ' if ok else 'FAIL'} {name}  {detail}".rstrip())
    if not ok:
        FAILS.append(name)


def expect(name, rc, out, want_rc, *needles):
    missing = [n for n in needles if n not in out]
    ok = rc == want_rc and not missing
    detail = f"rc={rc}"
    if missing:
        detail += f" missing {missing!r} in: {out.strip()[-600:]}"
    elif not ok:
        detail += f" (want {want_rc}): {out.strip()[-600:]}"
    case(name, ok, detail)


def broken_pipelines(base):
    """(name, mutation, expected message parts) over the example pipeline."""

    def without_step(cfg, step_name):
        cfg["pre"] = [s for s in cfg["pre"] if s["step"] != step_name
                      or s.get("params", {}).get("dtype") != "fp32"]
        return cfg

    def set_pre(index, step):
        def f(cfg):
            cfg["pre"][index] = step
            return cfg
        return f

    def drop_rename(cfg):
        cfg["pre"] = [s for s in cfg["pre"] if s["step"] != "rename"]
        return cfg

    def declared(shape, dtype="int32"):
        def f(cfg):
            cfg["input"][0]["shape"] = shape
            cfg["input"][0]["dtype"] = dtype
            return cfg
        return f

    def top(key, value):
        def f(cfg):
            cfg[key] = value
            return cfg
        return f

    def model(key, value):
        def f(cfg):
            cfg["model"][key] = value
            return cfg
        return f

    return [
        ("missing_fp32_cast", lambda c: without_step(c, "cast"),
         ["model 'fall-detection'", "input 'lstm_input'", "fp32[-1,9,4]",
          "fp64[1,9,4]", "pre[5] 'rename'"]),
        ("normalize_wrong_length",
         set_pre(3, {"step": "normalize",
                     "params": {"mean": [0, 0, 0], "std": [1, 1, 1]}}),
         ["pre[3] 'normalize'", "'array'", "4", "3"]),
        ("scale_on_integers", set_pre(0, {"step": "scale",
                                          "params": {"mul": 2}}),
         ["pre[0] 'scale'", "'array'", "int32"]),
        ("declared_shape_9x4", declared([9, 4]),
         ["pre[3] 'normalize'", "5"]),
        ("no_rename", drop_rename,
         ["input 'lstm_input' is not produced", "'array' fp32[1,9,4]"]),
        ("unknown_step", set_pre(2, {"step": "nope"}),
         ["pre[2]", "unknown step 'nope'", "magnitude"]),
        ("misspelt_param", set_pre(1, {"step": "scale",
                                       "params": {"mul": 3.90625,
                                                  "ad": 1}}),
         ["pre[1].params.ad: unknown key"]),
        ("missing_param", set_pre(1, {"step": "scale",
                                      "params": {"mull": 3.90625}}),
         ["pre[1].params", "'mul'"]),
        ("unknown_backend", model("backend", "tensorflow"),
         ["unknown backend 'tensorflow'", "onnxruntime"]),
        ("missing_model_file", model("path", "nowhere.onnx"),
         ["nowhere.onnx"]),
        ("unknown_top_key", top("preprocess", []),
         ["preprocess: unknown key"]),
        ("bad_dtype", declared([9, 3], "int33"),
         ["input[0].dtype: unknown dtype 'int33'"]),
        ("bad_rename_target", set_pre(6, {"step": "rename",
                                          "params": {"map": {"x": "y"}}}),
         ["pre[6] 'rename'", "'x'"]),
    ]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--binary", required=True)
    ap.add_argument("--source", required=True)
    args = ap.parse_args()
    binary = os.path.abspath(args.binary)
    example_dir = os.path.join(args.source, "examples", "fall-detection")
    example = os.path.join(example_dir, "pipeline.json")

    rc, out, err = run(binary, "--help")
    expect("help_lists_options", rc, out, 0, "--grpc-port N",
           "default 50051", "MI_GRPC_PORT", "--workers", "--log-level")
    rc, out, err = run(binary)
    expect("no_args_usage", rc, err, 2, "usage: modinfer serve")
    rc, out, err = run(binary, "--version")
    expect("version", rc, out, 0, "modinfer ")
    rc, out, err = run(binary, "serve", example, "--grpc-prot", "1")
    expect("unknown_flag", rc, err, 2, "unknown option '--grpc-prot'")
    rc, out, err = run(binary, "serve", example, "--grpc-port", "70000")
    expect("port_out_of_range", rc, err, 2, "--grpc-port", "70000",
           "out of range")
    rc, out, err = run(binary, "serve", example,
                       env={"MI_GRPC_PORT": "x"})
    expect("env_checked", rc, err, 2, "MI_GRPC_PORT", "'x'")
    rc, out, err = run(binary, "serve", example, "--log-level", "loud")
    expect("bad_log_level", rc, err, 2, "log level 'loud'")

    rc, out, err = run(binary, "--options-markdown")
    with open(os.path.join(args.source, "docs", "config.md")) as f:
        doc = f.read()
    table = doc.split("<!-- options:begin -->\n")[-1].split(
        "<!-- options:end -->")[0]
    case("docs_options_table_current", rc == 0 and table == out,
         "" if table == out else "docs/config.md differs from "
         "`modinfer --options-markdown`")

    rc, out, err = run(binary, "--metrics-markdown")
    with open(os.path.join(args.source, "docs", "metrics.md")) as f:
        doc = f.read()
    table = doc.split("<!-- metrics:begin -->\n")[-1].split(
        "<!-- metrics:end -->")[0]
    case("docs_metrics_table_current", rc == 0 and table == out,
         "" if table == out else "docs/metrics.md differs from "
         "`modinfer --metrics-markdown`")

    rc, out, err = run(binary, "check", example)
    expect("check_example", rc, out, 0, "input", "array", "int32[9,3]",
           "pre[2] 'magnitude'", "fp64[9,4]", "lstm_input",
           "fp32[-1,9,4]", "prediction", "fp32[1,1]", "ok")

    rc, out, err = run(binary, "check", os.path.join(example_dir, "nope.json"))
    expect("check_missing_file", rc, err, 1, "nope.json", "cannot open")

    with open(example) as f:
        base = json.load(f)
    tmp = tempfile.mkdtemp(prefix="mi-cli-")
    try:
        shutil.copy(os.path.join(example_dir, "model.onnx"), tmp)
        for name, mutate, needles in broken_pipelines(base):
            cfg = mutate(json.loads(json.dumps(base)))
            path = os.path.join(tmp, f"{name}.json")
            with open(path, "w") as f:
                json.dump(cfg, f)
            rc, out, err = run(binary, "check", path)
            expect(f"check_{name}", rc, err, 1, *needles)
        bad = os.path.join(tmp, "syntax.json")
        with open(bad, "w") as f:
            f.write('{"name": "x",\n "input": [}\n')
        rc, out, err = run(binary, "check", bad)
        expect("check_json_syntax", rc, err, 1, "syntax.json", "line 2")
    finally:
        shutil.rmtree(tmp)

    # A port already in use stops start-up with a clear message.
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        rc, out, err = run(binary, "serve", example, "--address",
                           "127.0.0.1", "--grpc-port", str(port))
        expect("port_in_use", rc, err, 1, "cannot listen on 127.0.0.1:%d"
               % port)

    print(f"{len(FAILS) == 0 and 'all' or ''} "
          f"{len(FAILS)} failed".strip())
    return 1 if FAILS else 0


if __name__ == "__main__":
    sys.exit(main())
