#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""The Helm chart deploy/helm/modinfer renders, and its manifests fit together.

helm is not available where the suite runs, so this file carries a small
renderer for the subset of Helm's template language the chart is written in
(deploy/helm/README.md lists it). Anything outside the subset -- range, with,
variables, parentheses, an unknown function, a value that is not set -- stops
rendering with an error naming the file, so an unsupported construct can
never render as empty text and let the checks pass. Numbers in values are
float64 in Helm, and `{{ 67108864 }}` prints 6.7108864e+07 there; the
renderer prints them the same way, so that trap shows up here too.

Each scenario (default values, each example values file, and variants that
turn the optional parts on and off) is rendered; every manifest must parse
as YAML and the set must hold together:

  - apiVersion, kind and metadata.name on every object, names valid, the
    expected kinds present exactly when their switch is on;
  - the Deployment's selector matches its pod labels; the Service, the
    PodDisruptionBudget and the ServiceMonitor select those pods (or that
    Service); the autoscaler's scaleTargetRef is the Deployment;
  - Service targetPorts name container ports; the gRPC port is named grpc
    with appProtocol grpc; MI_GRPC_PORT / MI_HTTP_PORT equal the ports;
  - probes use the HTTP port with modinfer's real paths (read from
    src/server/routes.c) or the gRPC port; every MI_* variable is a real
    option (docs/config.md) with a value in its range;
  - the pipeline file the container is started with is a key of the
    ConfigMap mounted at that folder, parses as JSON, and equals the
    example pipeline apart from its absolute model path, which is where the
    Dockerfile puts the model (or an init container's volume);
  - drain: a drain delay (MI_DRAIN_DELAY_MS) or a preStop sleep keeps the
    pod serving while its endpoint removal spreads; the grace period is
    above the sleep + the drain delay + --grace-ms; resources,
    non-root, read-only root file system, no privilege escalation.

The example values files may set only keys values.yaml has (a misspelt key
would be ignored by helm), and the Dockerfile must expose the chart's
ports, run as its user and put the examples where the chart expects them.
Then each of a list of broken manifests must be caught by the checks, and
the renderer must refuse each unsupported construct: the test can fail.

usage: test_chart.py [--source <repository root>]
       test_chart.py --render [values.yaml ...]   print the manifests
With CI=true a missing PyYAML is a failure, not a skip (exit 77).
"""
import argparse
import copy
import decimal
import hashlib
import json
import math
import os
import pathlib
import re
import sys
import traceback

IS_CI = os.environ.get("CI", "").lower() == "true"

try:
    import yaml
except ImportError as missing:
    if IS_CI:
        raise
    print(f"skip: {missing} (run with /usr/bin/python3, Debian python3-yaml)")
    sys.exit(77)


# ---- Renderer: the template subset ----

class TemplateError(Exception):
    """A template uses something the renderer does not support, or fails."""


class Missing:
    """A map key that is not set (Go templates give nil)."""

    def __repr__(self):
        return "<missing>"


MISSING = Missing()


class GoInt(int):
    """An integer made by the `int` function (values' numbers are floats)."""


def go_float(f):
    """Formats a float64 as Go's fmt %v does (strconv 'g', shortest).

    The exponent form is used below 1e-4 and from 1e6 on: {{ 67108864 }}
    prints 6.7108864e+07.
    """
    if math.isnan(f):
        return "NaN"
    if math.isinf(f):
        return "+Inf" if f > 0 else "-Inf"
    if f == 0:
        return "-0" if math.copysign(1, f) < 0 else "0"
    sign = "-" if f < 0 else ""
    t = decimal.Decimal(repr(abs(f))).as_tuple()   # shortest round trip
    digits = "".join(map(str, t.digits))
    exp = len(digits) + t.exponent - 1              # of the first digit
    digits = digits.rstrip("0") or "0"
    if exp < -4 or exp >= 6:
        m = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
        return f"{sign}{m}e{'-' if exp < 0 else '+'}{abs(exp):02d}"
    if exp < 0:
        return f"{sign}0.{'0' * (-exp - 1)}{digits}"
    if len(digits) <= exp + 1:
        return sign + digits + "0" * (exp + 1 - len(digits))
    return f"{sign}{digits[:exp + 1]}.{digits[exp + 1:]}"


def go_str(v, where):
    """What {{ v }} prints; refuses values Helm would print as junk."""
    if isinstance(v, Missing):
        raise TemplateError(f"{where}: value is not set")
    if v is None:
        raise TemplateError(f"{where}: value is null")
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return go_float(v)
    if isinstance(v, str):
        return v
    raise TemplateError(f"{where}: cannot print a {type(v).__name__} "
                        f"(use toYaml)")


def go_quote(s):
    """Go's %q of a string: a YAML double-quoted scalar too."""
    out = []
    for ch in s:
        if ch == '"':
            out.append('\\"')
        elif ch == "\\":
            out.append("\\\\")
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\t":
            out.append("\\t")
        elif ch == "\r":
            out.append("\\r")
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\x{ord(ch):02x}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def truth(v):
    """Go template truth: false, 0, nil and empty things are false."""
    if isinstance(v, Missing) or v is None:
        return False
    if isinstance(v, (bool, int, float, str, list, dict)):
        return bool(v)
    return True


class _YamlDumper(yaml.SafeDumper):
    pass


def _represent_str(dumper, s):
    style = "|" if "\n" in s else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", s, style=style)


_YamlDumper.add_representer(str, _represent_str)
_YamlDumper.add_representer(GoInt, _YamlDumper.represent_int)


def _json_numbers(v):
    """Helm's toYaml goes through JSON: 2.0 comes out as 2."""
    if isinstance(v, dict):
        return {k: _json_numbers(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_json_numbers(x) for x in v]
    if isinstance(v, float) and v.is_integer() and abs(v) < 1e21:
        return int(v)
    return v


def fn_to_yaml(v, where):
    if isinstance(v, Missing):
        raise TemplateError(f"{where}: toYaml of a value that is not set")
    text = yaml.dump(_json_numbers(v), Dumper=_YamlDumper,
                     default_flow_style=False, sort_keys=True, width=1 << 20)
    if text.endswith("\n...\n"):
        text = text[:-4]
    return text.rstrip("\n")


def fn_indent(n, s, where):
    if not isinstance(n, (int, float)) or isinstance(n, bool):
        raise TemplateError(f"{where}: indent width must be a number")
    pad = " " * int(n)
    return pad + go_str(s, where).replace("\n", "\n" + pad)


def fn_int(v, where):
    if isinstance(v, bool):
        return GoInt(1 if v else 0)
    if isinstance(v, (int, float)):
        return GoInt(int(v))
    if isinstance(v, str) and re.fullmatch(r"-?\d+", v):
        return GoInt(int(v))
    raise TemplateError(f"{where}: int of {v!r}")


# name -> (number of arguments, function(args, where, renderer, dot))
FUNCTIONS = {
    "quote": (1, lambda a, w, r, d: go_quote(go_str(a[0], w))),
    "toYaml": (1, lambda a, w, r, d: fn_to_yaml(a[0], w)),
    "nindent": (2, lambda a, w, r, d: "\n" + fn_indent(a[0], a[1], w)),
    "indent": (2, lambda a, w, r, d: fn_indent(a[0], a[1], w)),
    "sha256sum": (1, lambda a, w, r, d: hashlib.sha256(
        go_str(a[0], w).encode()).hexdigest()),
    "int": (1, lambda a, w, r, d: fn_int(a[0], w)),
    "not": (1, lambda a, w, r, d: not truth(a[0])),
    "include": (2, lambda a, w, r, d: r.include(a[0], a[1], w)),
}

TOKEN = re.compile(r"""
    (?P<ws>\s+)
  | (?P<str>"(?:[^"\\\n]|\\.)*")
  | (?P<num>-?\d+(?:\.\d+)?)
  | (?P<field>(?:\.[A-Za-z_][A-Za-z0-9_]*)+|\.)
  | (?P<ident>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<pipe>\|)
  | (?P<bad>.)
""", re.VERBOSE)

UNSUPPORTED_KEYWORDS = {"range", "with", "template", "block", "break",
                        "continue", "else if", "tpl"}


def tokenize(action, where):
    tokens = []
    for m in TOKEN.finditer(action):
        kind = m.lastgroup
        text = m.group()
        if kind == "ws":
            continue
        if kind == "bad":
            raise TemplateError(f"{where}: unsupported {text!r} in "
                                f"{{{{{action}}}}} (no variables, "
                                f"parentheses or raw strings)")
        if kind == "str":
            text = json.loads(text)
        elif kind == "num":
            text = float(text) if "." in text else int(text)
        tokens.append((kind, text))
    return tokens


def split_actions(src, where):
    """Text and actions of a template, with {{- and -}} trimming applied.

    Returns a list of ("text", str) and ("action", tokens, "file:line");
    comments are dropped.
    """
    parts = []
    pos = 0
    trim_next = False
    while True:
        start = src.find("{{", pos)
        text = src[pos:] if start < 0 else src[pos:start]
        if trim_next:
            text = text.lstrip(" \t\r\n")
        if start < 0:
            parts.append(("text", text))
            return parts
        line = src.count("\n", 0, start) + 1
        at = f"{where}:{line}"
        inner_start = start + 2
        if src.startswith("{{-", start):
            if src[start + 3:start + 4] not in (" ", "\t", "\n", "\r"):
                raise TemplateError(f"{at}: '{{{{-' must be followed by a "
                                    f"space")
            text = text.rstrip(" \t\r\n")
            inner_start = start + 3
        parts.append(("text", text))
        trim_next = False
        rest = src[inner_start:]
        lead = len(rest) - len(rest.lstrip(" \t\r\n"))
        if rest[lead:].startswith("/*"):
            # A comment: {{/* ... */}} or {{- /* ... */ -}}.
            end = src.find("*/", inner_start + lead + 2)
            if end < 0:
                raise TemplateError(f"{at}: unterminated comment")
            close = re.match(r"([ \t\r\n]+-)?}}", src[end + 2:])
            if close is None:
                raise TemplateError(f"{at}: a comment must end its action")
            trim_next = close.group(1) is not None
            pos = end + 2 + close.end()
            continue
        # The action ends at the first }} outside a string literal.
        i = inner_start
        in_str = False
        while i < len(src):
            c = src[i]
            if in_str:
                if c == "\\":
                    i += 1
                elif c == '"':
                    in_str = False
            elif c == '"':
                in_str = True
            elif src.startswith("}}", i):
                break
            i += 1
        if i >= len(src):
            raise TemplateError(f"{at}: unterminated action")
        inner = src[inner_start:i]
        if re.search(r"[ \t\r\n]-$", inner):
            inner = inner[:-1]
            trim_next = True
        parts.append(("action", tokenize(inner, at), at))
        pos = i + 2


class Node:
    def __init__(self, kind, **kw):
        self.kind = kind
        self.__dict__.update(kw)


def parse(parts, where):
    """Builds the node tree; returns (top-level nodes, defines)."""
    defines = {}
    # Stack of (node list being filled, the if/define node owning it).
    root = []
    stack = [(root, None)]
    for part in parts:
        if part[0] == "text":
            if part[1]:
                stack[-1][0].append(Node("text", text=part[1]))
            continue
        tokens, at = part[1], part[2]
        if not tokens:
            raise TemplateError(f"{at}: empty action")
        head = tokens[0]
        word = head[1] if head[0] == "ident" else None
        if word == "else" and len(tokens) > 1 and tokens[1] == ("ident",
                                                                "if"):
            word = "else if"
        if word in UNSUPPORTED_KEYWORDS:
            raise TemplateError(f"{at}: '{word}' is not supported by this "
                                f"renderer (deploy/helm/README.md)")
        if word == "if":
            node = Node("if", cond=tokens[1:], then=[], other=None, at=at)
            if not node.cond:
                raise TemplateError(f"{at}: 'if' without a condition")
            stack[-1][0].append(node)
            stack.append((node.then, node))
        elif word == "else":
            owner = stack[-1][1]
            if len(tokens) != 1 or owner is None or owner.kind != "if" \
                    or owner.other is not None:
                raise TemplateError(f"{at}: misplaced 'else'")
            owner.other = []
            stack[-1] = (owner.other, owner)
        elif word == "end":
            if len(tokens) != 1 or stack[-1][1] is None:
                raise TemplateError(f"{at}: 'end' without 'if' or 'define'")
            stack.pop()
        elif word == "define":
            if len(stack) != 1 or len(tokens) != 2 or tokens[1][0] != "str":
                raise TemplateError(f"{at}: 'define \"name\"' only at the "
                                    f"top level")
            node = Node("define", name=tokens[1][1], body=[], at=at)
            if node.name in defines:
                raise TemplateError(f"{at}: '{node.name}' defined twice")
            defines[node.name] = node
            stack.append((node.body, node))
        else:
            stack[-1][0].append(Node("action", tokens=tokens, at=at))
    if len(stack) != 1:
        raise TemplateError(f"{where}: {stack[-1][1].kind} at "
                            f"{stack[-1][1].at} has no 'end'")
    return root, defines


class Renderer:
    """Renders the templates of one chart with one set of values."""

    def __init__(self, sources, context):
        """sources: {file name: text}; files starting with _ only define."""
        self.context = context
        self.trees = {}
        self.defines = {}
        self.depth = 0
        for name, text in sources.items():
            tree, defines = parse(split_actions(text, name), name)
            for key, node in defines.items():
                if key in self.defines:
                    raise TemplateError(f"{node.at}: '{key}' defined twice")
                self.defines[key] = node
            self.trees[name] = tree

    def render(self, name):
        return self.nodes(self.trees[name], self.context)

    def include(self, name, dot, where):
        if not isinstance(name, str) or name not in self.defines:
            raise TemplateError(f"{where}: include of unknown template "
                                f"{name!r}")
        self.depth += 1
        if self.depth > 20:
            raise TemplateError(f"{where}: include nested too deep")
        try:
            return self.nodes(self.defines[name].body, dot)
        finally:
            self.depth -= 1

    def nodes(self, nodes, dot):
        out = []
        for node in nodes:
            if node.kind == "text":
                out.append(node.text)
            elif node.kind == "if":
                branch = node.then if truth(
                    self.pipeline(node.cond, dot, node.at)) else node.other
                out.append(self.nodes(branch or [], dot))
            else:
                out.append(go_str(self.pipeline(node.tokens, dot, node.at),
                                  node.at))
        return "".join(out)

    def operand(self, token, dot, where):
        kind, text = token
        if kind == "str":
            return text
        if kind == "num":
            return float(text)
        if kind == "field":
            value = dot
            if text == ".":
                return value
            names = text[1:].split(".")
            for i, key in enumerate(names):
                if not isinstance(value, dict):
                    raise TemplateError(f"{where}: {text}: "
                                        f"'{'.'.join(names[:i])}' is not a "
                                        f"map")
                value = value.get(key, MISSING)
            return value
        raise TemplateError(f"{where}: unexpected {text!r}")

    def pipeline(self, tokens, dot, where):
        commands = [[]]
        for tok in tokens:
            if tok[0] == "pipe":
                commands.append([])
            else:
                commands[-1].append(tok)
        value = None
        for i, cmd in enumerate(commands):
            if not cmd:
                raise TemplateError(f"{where}: empty command in pipeline")
            if cmd[0][0] == "ident":
                name = cmd[0][1]
                if name not in FUNCTIONS:
                    raise TemplateError(f"{where}: function '{name}' is not "
                                        f"supported by this renderer")
                args = [self.operand(t, dot, where) for t in cmd[1:]]
                if i > 0:
                    args.append(value)
                n_args, fn = FUNCTIONS[name]
                if len(args) != n_args:
                    raise TemplateError(f"{where}: '{name}' takes {n_args} "
                                        f"argument(s), got {len(args)}")
                value = fn(args, where, self, dot)
            else:
                if i > 0 or len(cmd) != 1:
                    raise TemplateError(f"{where}: only a function can "
                                        f"follow '|' or take arguments")
                value = self.operand(cmd[0], dot, where)
        return value


# ---- The chart: values, context, rendering ----

def numbers_to_float(v):
    """Helm reads values through JSON: every number is a float64."""
    if isinstance(v, dict):
        return {k: numbers_to_float(x) for k, x in v.items()}
    if isinstance(v, list):
        return [numbers_to_float(x) for x in v]
    if isinstance(v, int) and not isinstance(v, bool):
        return float(v)
    return v


def merge_values(base, over):
    """Helm's coalescing: maps merge key by key, null deletes a key."""
    out = copy.deepcopy(base)
    for key, value in over.items():
        if value is None:
            out.pop(key, None)
        elif isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge_values(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def load_yaml(path):
    with open(path, encoding="utf-8") as f:
        return yaml.safe_load(f)


class Chart:
    def __init__(self, root):
        self.root = pathlib.Path(root)
        self.meta = load_yaml(self.root / "Chart.yaml")
        self.values = load_yaml(self.root / "values.yaml") or {}
        self.sources = {}
        for path in sorted((self.root / "templates").iterdir()):
            if path.is_file():
                self.sources[path.name] = path.read_text(encoding="utf-8")

    def render(self, overrides, release="demo", namespace="inference"):
        """{template file: text} for values.yaml merged with overrides."""
        values = self.values
        for over in overrides:
            values = merge_values(values, over)
        context = {
            "Values": numbers_to_float(values),
            "Release": {"Name": release, "Namespace": namespace,
                        "Service": "Helm", "IsInstall": True,
                        "IsUpgrade": False, "Revision": 1.0},
            "Chart": {"Name": self.meta["name"],
                      "Version": str(self.meta["version"]),
                      "AppVersion": str(self.meta.get("appVersion", "")),
                      "Description": self.meta.get("description", "")},
        }
        renderer = Renderer(self.sources, context)
        return {name: renderer.render(name) for name in self.sources
                if not name.startswith("_")}, values


def parse_manifests(rendered):
    """Every object of every .yaml template; empty documents skipped."""
    docs = []
    for name, text in sorted(rendered.items()):
        if not name.endswith((".yaml", ".yml")):
            continue
        try:
            for doc in yaml.safe_load_all(text):
                if doc is not None:
                    docs.append((name, doc))
        except yaml.YAMLError as e:
            numbered = "\n".join(f"{i + 1:4} {line}" for i, line in
                                 enumerate(text.splitlines()))
            raise AssertionError(f"{name} does not parse: {e}\n{numbered}")
    return docs


# ---- What modinfer really serves ----

class Server:
    """Facts about modinfer read from the repository, not repeated here."""

    def __init__(self, source):
        routes = (source / "src/server/routes.c").read_text()
        self.routes = set(re.findall(r'\{ROUTES_GET,\s*"([^"]+)"', routes))
        if "/v2/health/ready" not in self.routes:
            raise AssertionError("no GET routes found in src/server/"
                                 "routes.c")
        self.options = {}
        config = (source / "docs/config.md").read_text()
        table = config.split("<!-- options:begin -->")[1].split(
            "<!-- options:end -->")[0]
        for m in re.finditer(r"^\| `--[a-z-]+` \| `(MI_[A-Z_]+)` \| `[^`]*` "
                             r"\| ([^|]+) \|", table, re.M):
            rng = re.fullmatch(r"(\d+) to (\d+)", m.group(2).strip())
            self.options[m.group(1)] = ((int(rng.group(1)),
                                         int(rng.group(2))) if rng else None)
        if "MI_GRACE_MS" not in self.options:
            raise AssertionError("no options table in docs/config.md")
        health = (source / "src/server/codec_oip_grpc.c").read_text()
        self.has_grpc_health = "/grpc.health.v1.Health/Check" in health


# ---- Checks over one rendered set ----

KINDS = {
    "Deployment": "apps/v1",
    "Service": "v1",
    "ConfigMap": "v1",
    "PodDisruptionBudget": "policy/v1",
    "HorizontalPodAutoscaler": "autoscaling/v2",
    "ServiceMonitor": "monitoring.coreos.com/v1",
}
NAME_RE = re.compile(r"[a-z]([-a-z0-9]*[a-z0-9])?")
LABEL_VALUE_RE = re.compile(r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?")


def cpu_cores(q):
    text = str(q)
    if text.endswith("m"):
        return float(text[:-1]) / 1000
    return float(text)


def memory_bytes(q):
    m = re.fullmatch(r"(\d+(?:\.\d+)?)(Ki|Mi|Gi|Ti|k|M|G|T)?", str(q))
    if not m:
        raise ValueError(f"bad memory quantity {q!r}")
    scale = {None: 1, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12,
             "Ki": 1 << 10, "Mi": 1 << 20, "Gi": 1 << 30, "Ti": 1 << 40}
    return float(m.group(1)) * scale[m.group(2)]


def get(d, *path, default=None):
    for key in path:
        if not isinstance(d, dict) or key not in d:
            return default
        d = d[key]
    return d


def subset(small, big):
    return bool(small) and all(big.get(k) == v for k, v in small.items())


def check_container_security(c, problems):
    sc = c.get("securityContext") or {}
    name = c.get("name")
    if sc.get("readOnlyRootFilesystem") is not True:
        problems.append(f"container '{name}': readOnlyRootFilesystem is not "
                        f"true")
    if sc.get("allowPrivilegeEscalation") is not False:
        problems.append(f"container '{name}': allowPrivilegeEscalation is "
                        f"not false")
    if "ALL" not in (get(sc, "capabilities", "drop") or []):
        problems.append(f"container '{name}': capabilities not dropped")
    if sc.get("runAsUser") == 0 or sc.get("runAsNonRoot") is False:
        problems.append(f"container '{name}': runs as root")


def check_manifests(docs, server, expect):
    """Problems found in one rendered set; expect says which kinds to find."""
    problems = []
    by_kind = {}
    seen = set()
    for src, doc in docs:
        if not isinstance(doc, dict):
            problems.append(f"{src}: a document that is not a map")
            continue
        kind = doc.get("kind")
        name = get(doc, "metadata", "name")
        if not isinstance(kind, str) or not isinstance(doc.get("apiVersion"),
                                                       str):
            problems.append(f"{src}: no apiVersion or kind")
            continue
        if kind not in KINDS:
            problems.append(f"{src}: unexpected kind {kind}")
            continue
        if doc["apiVersion"] != KINDS[kind]:
            problems.append(f"{src}: {kind} has apiVersion "
                            f"{doc['apiVersion']}, want {KINDS[kind]}")
        if not isinstance(name, str) or not NAME_RE.fullmatch(name) or \
                len(name) > 63:
            problems.append(f"{src}: {kind} has a bad metadata.name "
                            f"{name!r}")
        if (kind, name) in seen:
            problems.append(f"{src}: {kind} '{name}' twice")
        seen.add((kind, name))
        labels = get(doc, "metadata", "labels") or {}
        for k, v in labels.items():
            if not isinstance(v, str) or len(v) > 63 or \
                    not LABEL_VALUE_RE.fullmatch(v):
                problems.append(f"{src}: label {k}={v!r} is not a valid "
                                f"label value")
        for k in ("app.kubernetes.io/name", "app.kubernetes.io/instance"):
            if k not in labels:
                problems.append(f"{src}: {kind} lacks label {k}")
        by_kind.setdefault(kind, []).append(doc)

    for kind in KINDS:
        n = len(by_kind.get(kind, []))
        want = 1 if expect.get(kind, True) else 0
        if n != want:
            problems.append(f"{n} {kind} object(s), want {want}")
    if problems:
        return problems

    dep = by_kind["Deployment"][0]
    svc = by_kind["Service"][0]
    cm = by_kind["ConfigMap"][0]
    pod = get(dep, "spec", "template") or {}
    pod_labels = get(pod, "metadata", "labels") or {}
    spec = pod.get("spec") or {}
    selector = get(dep, "spec", "selector", "matchLabels") or {}

    # -- Deployment and pod --
    if not subset(selector, pod_labels):
        problems.append(f"Deployment selector {selector} does not match its "
                        f"pod labels {pod_labels}")
    has_hpa = bool(by_kind.get("HorizontalPodAutoscaler"))
    replicas = get(dep, "spec", "replicas")
    if has_hpa and replicas is not None:
        problems.append("Deployment sets replicas although the autoscaler "
                        "owns the count")
    if not has_hpa and (not isinstance(replicas, int) or replicas < 1):
        problems.append(f"Deployment replicas {replicas!r} without an "
                        f"autoscaler")
    psc = spec.get("securityContext") or {}
    if psc.get("runAsNonRoot") is not True:
        problems.append("pod securityContext.runAsNonRoot is not true")
    if psc.get("runAsUser") in (0, None):
        problems.append("pod securityContext.runAsUser is 0 or unset")
    containers = {c.get("name"): c for c in spec.get("containers") or []}
    c = containers.get("modinfer")
    if c is None:
        return problems + ["no container named 'modinfer'"]
    for other in list(containers.values()) + (spec.get("initContainers")
                                               or []):
        check_container_security(other, problems)
    if not re.fullmatch(r"[^:\s]+:[^:\s]+", str(c.get("image"))):
        problems.append(f"container image {c.get('image')!r} has no tag")

    ports = {}
    for p in c.get("ports") or []:
        if p.get("name") in ports:
            problems.append(f"container port name {p.get('name')} twice")
        n = p.get("containerPort")
        if not isinstance(n, int) or not 1 <= n <= 65535:
            problems.append(f"container port {p.get('name')}: {n!r}")
        ports[p.get("name")] = n
    for need in ("grpc", "http"):
        if need not in ports:
            problems.append(f"no container port named {need}")
    if problems:
        return problems

    env = {}
    for e in c.get("env") or []:
        if e.get("name") in env:
            problems.append(f"variable {e.get('name')} set twice")
        if "value" in e and not isinstance(e["value"], str):
            problems.append(f"variable {e.get('name')}: value "
                            f"{e['value']!r} is not a string")
        env[e.get("name")] = e.get("value")
    for name, value in env.items():
        if not str(name).startswith("MI_"):
            continue
        if name not in server.options:
            problems.append(f"variable {name} is not a modinfer option "
                            f"(docs/config.md)")
            continue
        rng = server.options[name]
        if rng is not None:
            if not isinstance(value, str) or not re.fullmatch(r"\d+", value):
                problems.append(f"variable {name}={value!r} is not a "
                                f"decimal integer")
            elif not rng[0] <= int(value) <= rng[1]:
                problems.append(f"variable {name}={value} is outside "
                                f"{rng[0]} to {rng[1]}")
    if problems:
        return problems
    for name, port in (("MI_GRPC_PORT", "grpc"), ("MI_HTTP_PORT", "http")):
        if env.get(name) != str(ports[port]):
            problems.append(f"{name}={env.get(name)!r} but the {port} "
                            f"container port is {ports[port]}")
    if env.get("MI_ADDRESS", "0.0.0.0") in ("127.0.0.1", "localhost", "::1"):
        problems.append("MI_ADDRESS binds to loopback: probes and the "
                        "Service cannot reach it")
    if env.get("MI_LOG_LEVEL", "info") not in ("error", "warn", "info",
                                                "debug"):
        problems.append(f"MI_LOG_LEVEL={env.get('MI_LOG_LEVEL')!r}")

    resources = c.get("resources") or {}
    try:
        cpu_req = cpu_cores(get(resources, "requests", "cpu"))
        cpu_lim = cpu_cores(get(resources, "limits", "cpu"))
        mem_req = memory_bytes(get(resources, "requests", "memory"))
        mem_lim = memory_bytes(get(resources, "limits", "memory"))
        if cpu_req > cpu_lim or mem_req > mem_lim:
            problems.append("resource requests exceed limits")
        workers = int(env.get("MI_WORKERS") or 0)
        if workers < 1 or workers > math.ceil(cpu_lim):
            problems.append(f"MI_WORKERS={env.get('MI_WORKERS')!r}: set it "
                            f"to 1..{math.ceil(cpu_lim)} (the CPU limit); 0 "
                            f"counts the node's cores")
    except (TypeError, ValueError) as e:
        problems.append(f"resources requests/limits cpu and memory: {e}")

    def probe_port(probe, what):
        hg = probe.get("httpGet")
        if hg is not None:
            port = hg.get("port")
            if isinstance(port, str) and port not in ports:
                problems.append(f"{what} port {port!r} is no container port")
            elif isinstance(port, int) and port not in ports.values():
                problems.append(f"{what} port {port} is no container port")
            elif port not in ("http", ports["http"]):
                problems.append(f"{what} uses port {port!r}, not the HTTP "
                                f"port")
            if hg.get("path") not in server.routes:
                problems.append(f"{what} path {hg.get('path')!r} is not a "
                                f"GET route of modinfer")
            return hg.get("path")
        if probe.get("grpc") is not None:
            if probe["grpc"].get("port") != ports["grpc"]:
                problems.append(f"{what} gRPC port "
                                f"{probe['grpc'].get('port')!r} is not the "
                                f"gRPC container port {ports['grpc']}")
            if not server.has_grpc_health:
                problems.append(f"{what}: modinfer has no grpc.health.v1")
            if probe["grpc"].get("service", "") != "":
                problems.append(f"{what}: gRPC health service must be empty")
            return "grpc"
        problems.append(f"{what} is neither httpGet nor grpc")
        return None

    ready = c.get("readinessProbe")
    live = c.get("livenessProbe")
    if not ready or not live:
        problems.append("readiness or liveness probe missing")
    else:
        if probe_port(ready, "readinessProbe") not in ("/v2/health/ready",
                                                       "grpc"):
            problems.append("readinessProbe is not /v2/health/ready or "
                            "grpc.health.v1")
        if probe_port(live, "livenessProbe") != "/v2/health/live":
            problems.append("livenessProbe is not /v2/health/live")

    # -- Drain --
    # Kubernetes removes the pod's endpoint and sends SIGTERM at once; the
    # pod must go on answering while the removal spreads: the server's own
    # drain delay (serving, not ready) or a preStop sleep before SIGTERM.
    pre = get(c, "lifecycle", "preStop")
    sleep_s = 0
    if pre is not None:
        cmd = get(pre, "exec", "command")
        if isinstance(cmd, list) and len(cmd) == 2 and \
                cmd[0] in ("/bin/sleep", "sleep") and \
                re.fullmatch(r"\d+", str(cmd[1])):
            sleep_s = int(cmd[1])
        elif isinstance(get(pre, "sleep", "seconds"), int):
            sleep_s = pre["sleep"]["seconds"]
        else:
            problems.append(f"preStop hook is not a sleep (got {pre!r})")
    delay_ms = env.get("MI_DRAIN_DELAY_MS", "0")
    delay_s = (math.ceil(int(delay_ms) / 1000)
               if re.fullmatch(r"\d+", str(delay_ms)) else 0)
    if not delay_s and not sleep_s:
        problems.append("neither MI_DRAIN_DELAY_MS nor a preStop sleep keeps "
                        "the pod serving while its endpoint is removed")
    tgps = spec.get("terminationGracePeriodSeconds")
    grace_s = math.ceil(int(env.get("MI_GRACE_MS", "5000")) / 1000)
    if not isinstance(tgps, int) or tgps <= sleep_s + delay_s + grace_s:
        problems.append(f"terminationGracePeriodSeconds {tgps!r} is not above "
                        f"preStop sleep {sleep_s} s + drain delay {delay_s} s "
                        f"+ grace {grace_s} s")

    # -- Volumes, the pipeline file, the model --
    volumes = {v.get("name"): v for v in spec.get("volumes") or []}
    mounts = {}
    for m in c.get("volumeMounts") or []:
        if m.get("name") not in volumes:
            problems.append(f"volumeMount {m.get('name')!r} has no volume")
        mounts[m.get("mountPath")] = m
    for init in spec.get("initContainers") or []:
        for m in init.get("volumeMounts") or []:
            if m.get("name") not in volumes:
                problems.append(f"init container volumeMount "
                                f"{m.get('name')!r} has no volume")
    if "/tmp" not in mounts or mounts["/tmp"].get("readOnly"):
        problems.append("no writable /tmp although the root is read-only")
    args = c.get("args") or []
    if len(args) != 2 or args[0] != "serve":
        problems.append(f"container args {args!r}, want [serve, <file>]")
        return problems
    folder, _, file = args[1].rpartition("/")
    mount = mounts.get(folder)
    volume = volumes.get(mount.get("name")) if mount else None
    if volume is None or get(volume, "configMap", "name") != \
            get(cm, "metadata", "name"):
        problems.append(f"the pipeline folder {folder!r} is not where the "
                        f"ConfigMap {get(cm, 'metadata', 'name')!r} is "
                        f"mounted")
        return problems
    if get(volume, "configMap", "items"):
        problems.append("the ConfigMap volume lists items: mount every key")
    data = cm.get("data") or {}
    for k, v in data.items():
        if not isinstance(v, str):
            problems.append(f"ConfigMap key {k!r} is not a string")
    if file not in data:
        problems.append(f"the server reads {file!r}, the ConfigMap has "
                        f"{sorted(data)}")
        return problems
    try:
        pipeline = json.loads(data[file])
    except ValueError as e:
        problems.append(f"ConfigMap {file} is not JSON: {e}")
        return problems
    for key in ("name", "input", "model"):
        if key not in pipeline:
            problems.append(f"pipeline {file} lacks {key!r}")
    model_path = str(get(pipeline, "model", "path", default=""))
    if not model_path.startswith("/"):
        problems.append(f"model.path {model_path!r} is relative: it would "
                        f"be read from the ConfigMap's folder")
    elif model_path.startswith(folder + "/"):
        problems.append(f"model.path {model_path!r} is in the ConfigMap")
    else:
        under = [p for p in mounts if model_path.startswith(p + "/")]
        if under:
            vol = volumes.get(mounts[under[0]].get("name")) or {}
            filled = any(m.get("name") == mounts[under[0]].get("name")
                         for init in spec.get("initContainers") or []
                         for m in init.get("volumeMounts") or [])
            if "emptyDir" in vol and not filled:
                problems.append(f"model.path {model_path!r} is on an "
                                f"emptyDir no init container fills")
            init_env = {e.get("name"): e.get("value")
                        for init in spec.get("initContainers") or []
                        for e in init.get("env") or []}
            if filled and init_env.get("MODEL_DIR", "") + "/" + \
                    init_env.get("MODEL_FILE", "") != model_path:
                problems.append(f"model.path {model_path!r} is not the file "
                                f"the init container writes")
            if filled and not init_env.get("MODEL_URL"):
                problems.append("the init container has no MODEL_URL")
            if filled and not re.fullmatch(r"[0-9a-f]{64}", str(
                    init_env.get("MODEL_SHA256"))):
                problems.append("the init container has no SHA-256 to "
                                "check the model against")
        elif not model_path.startswith("/opt/modinfer/"):
            problems.append(f"model.path {model_path!r} is neither in the "
                            f"image (/opt/modinfer/) nor on a volume")

    # -- Service --
    if not subset(get(svc, "spec", "selector") or {}, pod_labels):
        problems.append(f"Service selector {get(svc, 'spec', 'selector')} "
                        f"does not match the pod labels")
    sports = {p.get("name"): p for p in get(svc, "spec", "ports") or []}
    for p in sports.values():
        t = p.get("targetPort")
        if (isinstance(t, str) and t not in ports) or \
                (isinstance(t, int) and t not in ports.values()) or t is None:
            problems.append(f"Service port {p.get('name')}: targetPort {t!r} "
                            f"is no container port")
    g = sports.get("grpc")
    if g is None or g.get("appProtocol") != "grpc":
        problems.append("Service has no port named grpc with appProtocol "
                        "grpc")
    elif g.get("targetPort") not in ("grpc", ports["grpc"]):
        problems.append("Service port grpc does not target the gRPC port")
    h = sports.get("http")
    if h is None or h.get("targetPort") not in ("http", ports["http"]):
        problems.append("Service has no port http targeting the HTTP port")

    # -- PodDisruptionBudget --
    for pdb in by_kind.get("PodDisruptionBudget", []):
        if not subset(get(pdb, "spec", "selector", "matchLabels") or {},
                      pod_labels):
            problems.append("PodDisruptionBudget selector does not match "
                            "the pod labels")
        has = [k for k in ("minAvailable", "maxUnavailable")
               if k in pdb.get("spec", {})]
        if len(has) != 1:
            problems.append(f"PodDisruptionBudget sets {has}, want exactly "
                            f"one of minAvailable, maxUnavailable")

    # -- HorizontalPodAutoscaler --
    for hpa in by_kind.get("HorizontalPodAutoscaler", []):
        ref = get(hpa, "spec", "scaleTargetRef") or {}
        if ref != {"apiVersion": "apps/v1", "kind": "Deployment",
                   "name": get(dep, "metadata", "name")}:
            problems.append(f"autoscaler scaleTargetRef {ref} is not the "
                            f"Deployment")
        lo = get(hpa, "spec", "minReplicas")
        hi = get(hpa, "spec", "maxReplicas")
        if not (isinstance(lo, int) and isinstance(hi, int) and
                1 <= lo <= hi):
            problems.append(f"autoscaler replicas {lo!r}..{hi!r}")
        cpu = [m for m in get(hpa, "spec", "metrics") or []
               if get(m, "resource", "name") == "cpu" and
               get(m, "resource", "target", "type") == "Utilization"]
        if not cpu or not isinstance(
                get(cpu[0], "resource", "target", "averageUtilization"), int):
            problems.append("autoscaler has no CPU utilisation target")
        if get(c, "resources", "requests", "cpu") is None:
            problems.append("autoscaler on CPU but no CPU request")

    # -- ServiceMonitor --
    for sm in by_kind.get("ServiceMonitor", []):
        if not subset(get(sm, "spec", "selector", "matchLabels") or {},
                      get(svc, "metadata", "labels") or {}):
            problems.append("ServiceMonitor selector does not match the "
                            "Service's labels")
        eps = get(sm, "spec", "endpoints") or []
        if not eps or eps[0].get("port") not in sports or \
                eps[0].get("path") not in server.routes or \
                eps[0].get("path") != "/metrics":
            problems.append(f"ServiceMonitor endpoint {eps[:1]} is not "
                            f"/metrics on a Service port")
    return problems


# ---- Cases ----

FAILED = []


def case(name, fn):
    try:
        note = fn()
        print(f"ok   {name}" + (f"  ({note})" if note else ""))
    except Exception as e:  # noqa: BLE001 - every failure is reported
        FAILED.append(name)
        detail = str(e) if isinstance(e, (AssertionError, TemplateError)) \
            else traceback.format_exc()
        print(f"FAIL {name}: {detail}")


def expect_kinds(values):
    return {
        "PodDisruptionBudget": bool(values["podDisruptionBudget"]["enabled"]),
        "HorizontalPodAutoscaler": bool(values["autoscaling"]["enabled"]),
        "ServiceMonitor": bool(values["serviceMonitor"]["enabled"]),
    }


def renderer_cases():
    ctx = {"Values": numbers_to_float({"a": {"b": "x", "n": 67108864,
                                             "port": 50051, "off": False,
                                             "m": {"k": "v"}}}),
           "Release": {"Name": "r"}, "Chart": {"Name": "c"}}

    def render(src):
        return Renderer({"t.yaml": src}, ctx).render("t.yaml")

    good = [
        ("{{ .Values.a.b }}", "x"),
        ("{{ .Values.a.port }}", "50051"),
        ("{{ .Values.a.n }}", "6.7108864e+07"),      # as Helm prints it
        ("{{ .Values.a.n | int | quote }}", '"67108864"'),
        ("{{ .Values.a.b | quote }}", '"x"'),
        ("a\n  {{- .Values.a.b }}\nb", "ax\nb"),
        ("a {{ .Values.a.b -}} \n b", "a xb"),
        ("{{- if .Values.a.off }}y{{- else }}n{{- end }}", "n"),
        ("{{- if not .Values.a.off }}y{{- end }}", "y"),
        ("{{- if .Values.a.unset }}y{{- end }}", ""),
        ("k:{{- toYaml .Values.a.m | nindent 2 }}", "k:\n  k: v"),
        ("{{/* c */}}z", "z"),
        ('a\n{{- /* say "}}" */ -}}\nz', "az"),
        ('{{- define "h" -}}{{ .Release.Name }}{{- end }}'
         '{{ include "h" . | quote }}', '"r"'),
    ]
    for src, want in good:
        got = render(src)
        if got != want:
            raise AssertionError(f"{src!r} renders {got!r}, want {want!r}")
    bad = [
        "{{ range .Values.a }}x{{ end }}",
        "{{ with .Values.a }}x{{ end }}",
        "{{ $x := 1 }}",
        "{{ .Values.a.b | upper }}",
        "{{ default 1 .Values.a.b }}",
        "{{ (.Values.a.b) }}",
        "{{ .Values.a.unset }}",
        "{{ .Values.nothing.b }}",
        "{{ .Values.a.m }}",
        "{{ if .Values.a.b }}x",
        "x{{ end }}",
        "{{ .Values.a.b ",
        "{{/* open",
        "{{/* c */ .Values.a.b }}",
        "{{ if .Values.a.b }}{{ else if .Values.a.b }}{{ end }}",
        '{{ template "h" . }}',
        '{{ include "nope" . }}',
        "{{ .Files.Get \"x\" }}",
        "{{ quote }}",
    ]
    for src in bad:
        try:
            got = render(src)
        except TemplateError:
            continue
        raise AssertionError(f"{src!r} rendered {got!r} instead of failing")
    return f"{len(good)} constructs rendered, {len(bad)} refused"


def go_float_cases():
    want = {0.5: "0.5", 2.0: "2", 100000.0: "100000", 1e6: "1e+06",
            1234567.0: "1.234567e+06", 0.0001: "0.0001", 0.00001: "1e-05",
            -3.25: "-3.25", 1e21: "1e+21", 123456.5: "123456.5"}
    for f, s in want.items():
        if go_float(f) != s:
            raise AssertionError(f"go_float({f!r}) = {go_float(f)!r}, "
                                 f"want {s!r}")


def values_keys_known(defaults, over, path=""):
    """Keys of a values file that values.yaml does not have (typos)."""
    unknown = []
    free_form = ("pipeline.files",)
    for key, value in over.items():
        here = f"{path}.{key}" if path else key
        if key not in defaults:
            unknown.append(here)
        elif isinstance(value, dict) and isinstance(defaults[key], dict) \
                and defaults[key] and here not in free_form:
            unknown += values_keys_known(defaults[key], value, here)
    return unknown


def pipeline_matches_example(source, values, example):
    """The chart's pipeline is the example's, with the model's image path."""
    files = values["pipeline"]["files"]
    chart_p = json.loads(files[values["pipeline"]["file"]])
    example_dir = source / "examples" / example
    want = json.loads((example_dir / "pipeline.json").read_text())
    model = os.path.normpath(example_dir / want["model"]["path"])
    image_path = "/opt/modinfer/" + os.path.relpath(model, source)
    if chart_p["model"]["path"] != image_path:
        raise AssertionError(f"model.path {chart_p['model']['path']!r}, the "
                             f"image has the model at {image_path!r}")
    chart_p["model"]["path"] = want["model"]["path"]
    if chart_p != want:
        diff = [k for k in sorted(set(chart_p) | set(want))
                if chart_p.get(k) != want.get(k)]
        raise AssertionError(f"the pipeline differs from examples/{example}/"
                             f"pipeline.json in {diff}: copy it again")
    return image_path


def dockerfile_case(source, chart):
    text = (source / "Dockerfile").read_text()
    v = chart.values
    problems = []
    if not re.search(r"^FROM debian:(12|bookworm)-slim\b", text, re.M):
        problems.append("no Debian 12 slim stage")
    exposed = set(re.findall(r"^EXPOSE\s+(.+)$", text, re.M))
    exposed = {int(p) for line in exposed for p in line.split()}
    for port in (v["service"]["grpcPort"], v["service"]["httpPort"]):
        if port not in exposed:
            problems.append(f"port {port} not EXPOSEd")
    users = re.findall(r"^USER\s+(\S+)", text, re.M)
    uid = str(v["podSecurityContext"]["runAsUser"])
    if not users or users[-1].split(":")[0] != uid:
        problems.append(f"last USER {users[-1:]} is not the chart's "
                        f"runAsUser {uid}")
    if "/opt/modinfer/examples" not in text:
        problems.append("the examples are not copied to /opt/modinfer/"
                        "examples")
    if "/v2/health/ready" not in text:
        problems.append("no HEALTHCHECK on /v2/health/ready")
    if not (source / ".dockerignore").is_file():
        problems.append("no .dockerignore")
    if problems:
        raise AssertionError("; ".join(problems))


def mutations(base_docs):
    """(what is broken, function breaking a copy of the docs)."""
    def find(docs, kind):
        return next(d for _, d in docs if d["kind"] == kind)

    def modinfer(docs):
        return find(docs, "Deployment")["spec"]["template"]["spec"][
            "containers"][0]

    def env(docs, name, value):
        for e in modinfer(docs)["env"]:
            if e["name"] == name:
                e["value"] = value
                return
        modinfer(docs)["env"].append({"name": name, "value": value})

    def rename_cm_key(docs):
        data = find(docs, "ConfigMap")["data"]
        data["other.json"] = data.pop(next(iter(data)))

    def add_monitor(docs):
        docs.append(("servicemonitor.yaml", {
            "apiVersion": "monitoring.coreos.com/v1", "kind":
            "ServiceMonitor", "metadata": {"name": "demo", "labels": find(
                docs, "Service")["metadata"]["labels"]},
            "spec": {"selector": {"matchLabels": {}}, "endpoints": []}}))

    def relative_model(docs):
        data = find(docs, "ConfigMap")["data"]
        key = next(iter(data))
        p = json.loads(data[key])
        p["model"]["path"] = "model.onnx"
        data[key] = json.dumps(p)

    return [
        ("Service targetPort names no container port",
         lambda d: find(d, "Service")["spec"]["ports"][0].update(
             targetPort="grpcx")),
        ("gRPC Service port without appProtocol",
         lambda d: find(d, "Service")["spec"]["ports"][0].pop(
             "appProtocol")),
        ("readiness probe on a path modinfer does not serve",
         lambda d: modinfer(d)["readinessProbe"]["httpGet"].update(
             path="/healthz")),
        ("liveness probe on the ready path",
         lambda d: modinfer(d)["livenessProbe"]["httpGet"].update(
             path="/v2/health/ready")),
        ("autoscaler aimed at another Deployment",
         lambda d: find(d, "HorizontalPodAutoscaler")["spec"][
             "scaleTargetRef"].update(name="other")),
        ("PodDisruptionBudget selecting other pods",
         lambda d: find(d, "PodDisruptionBudget")["spec"]["selector"][
             "matchLabels"].update({"app.kubernetes.io/instance": "x"})),
        ("Deployment selector not matching its pods",
         lambda d: find(d, "Deployment")["spec"]["selector"][
             "matchLabels"].update({"app.kubernetes.io/name": "x"})),
        ("ConfigMap key not the file the server reads", rename_cm_key),
        ("relative model path", relative_model),
        ("pod may run as root",
         lambda d: find(d, "Deployment")["spec"]["template"]["spec"][
             "securityContext"].update(runAsNonRoot=False)),
        ("writable root file system",
         lambda d: modinfer(d)["securityContext"].pop(
             "readOnlyRootFilesystem")),
        ("grace period shorter than the drain",
         lambda d: find(d, "Deployment")["spec"]["template"]["spec"].update(
             terminationGracePeriodSeconds=3)),
        ("drain delay eating the grace period",
         lambda d: env(d, "MI_DRAIN_DELAY_MS", "20000")),
        ("no drain delay and no preStop sleep",
         lambda d: env(d, "MI_DRAIN_DELAY_MS", "0")),
        ("misspelt option variable",
         lambda d: env(d, "MI_GPRC_PORT", "50051")),
        ("number printed as Helm prints large floats",
         lambda d: env(d, "MI_MAX_MESSAGE_BYTES", "6.7108864e+07")),
        ("MI_GRPC_PORT not the container port",
         lambda d: env(d, "MI_GRPC_PORT", "50052")),
        ("workers left to count the node's cores",
         lambda d: env(d, "MI_WORKERS", "0")),
        ("ServiceMonitor although disabled", add_monitor),
        ("no CPU limit",
         lambda d: modinfer(d)["resources"]["limits"].pop("cpu")),
    ]


def main():
    here = pathlib.Path(__file__).resolve()
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--source", default=str(here.parents[2]),
                    help="repository root (default: two folders up)")
    ap.add_argument("--render", nargs="*", metavar="VALUES",
                    help="print the manifests rendered with these values "
                         "files (as helm template does) instead of testing")
    args = ap.parse_args()
    source = pathlib.Path(args.source)
    chart_dir = source / "deploy/helm/modinfer"

    chart = Chart(chart_dir)
    if args.render is not None:
        rendered, _ = chart.render([load_yaml(f) or {} for f in args.render])
        for name, text in sorted(rendered.items()):
            if name.endswith(".yaml") and text.strip():
                print(f"---\n# Source: modinfer/templates/{name}"
                      f"{text.rstrip()}")
        return 0
    server = Server(source)

    case("go number formatting", go_float_cases)
    case("renderer: subset renders, everything else is refused",
         renderer_cases)

    def chart_meta():
        m = chart.meta
        if m.get("apiVersion") != "v2" or m.get("name") != "modinfer" or \
                not re.fullmatch(r"\d+\.\d+\.\d+", str(m.get("version"))) or \
                not m.get("appVersion"):
            raise AssertionError(f"Chart.yaml: {m}")
        return f"{m['name']} {m['version']}, app {m['appVersion']}"
    case("Chart.yaml", chart_meta)

    image_values = load_yaml(chart_dir / "values-image-detection.yaml")
    fetched = json.loads(image_values["pipeline"]["files"]["pipeline.json"])
    fetched["model"]["path"] = "/models/ch_PP-OCRv4_det_infer.onnx"
    scenarios = [
        ("defaults", []),
        ("values-fall-detection.yaml",
         [load_yaml(chart_dir / "values-fall-detection.yaml")]),
        ("values-image-detection.yaml", [image_values]),
        ("values-image-detection.yaml with modelFetch", [image_values, {
            "modelFetch": {"enabled": True,
                           "url": "https://models.example/det.onnx"},
            "pipeline": {"files": {"pipeline.json": json.dumps(fetched)}}}]),
        ("every option switched", [{
            "serviceMonitor": {"enabled": True, "labels": {"release": "kps"}},
            "autoscaling": {"enabled": False},
            "podDisruptionBudget": {"enabled": False},
            "probes": {"grpcReadiness": True},
            "imagePullSecrets": [{"name": "registry"}],
            "nodeSelector": {"kubernetes.io/arch": "arm64"},
            "podAnnotations": {"example.com/team": "edge"},
            "server": {"extraEnv": [{"name": "TZ", "value": "UTC"}]},
        }]),
    ]
    base_docs = None
    for name, overrides in scenarios:
        def one(overrides=overrides, name=name):
            nonlocal base_docs
            rendered, values = chart.render(overrides)
            docs = parse_manifests(rendered)
            if "NOTES.txt" in rendered and \
                    "{{" in rendered["NOTES.txt"]:
                raise AssertionError("NOTES.txt left an action unrendered")
            problems = check_manifests(docs, server, expect_kinds(values))
            if problems:
                raise AssertionError("\n    " + "\n    ".join(problems))
            if name == "defaults":
                base_docs = docs
            kinds = sorted(d["kind"] for _, d in docs)
            return f"{len(docs)} objects: {', '.join(kinds)}"
        case(f"render {name}", one)

    def values_files():
        unknown = []
        for f in ("values-fall-detection.yaml", "values-image-detection.yaml"):
            unknown += [f"{f}: {k}" for k in values_keys_known(
                chart.values, load_yaml(chart_dir / f))]
        if unknown:
            raise AssertionError(f"keys values.yaml does not have: {unknown}")
    case("example values files set only known keys", values_files)

    for label, overrides, example in (
            ("values.yaml", [], "fall-detection"),
            ("values-fall-detection.yaml",
             [load_yaml(chart_dir / "values-fall-detection.yaml")],
             "fall-detection"),
            ("values-image-detection.yaml", [image_values],
             "image-detection")):
        def sync(overrides=overrides, example=example):
            values = chart.values
            for o in overrides:
                values = merge_values(values, o)
            return pipeline_matches_example(source, values, example)
        case(f"{label}: pipeline is examples/{example}/pipeline.json", sync)

    case("Dockerfile agrees with the chart",
         lambda: dockerfile_case(source, chart))

    def broken():
        if base_docs is None:
            raise AssertionError("the default rendering failed")
        values = chart.values
        missed = []
        for what, breaks in mutations(base_docs):
            docs = copy.deepcopy(base_docs)
            breaks(docs)
            if not check_manifests(docs, server, expect_kinds(values)):
                missed.append(what)
        if missed:
            raise AssertionError(f"not caught: {missed}")
        return f"{len(mutations(base_docs))} broken charts caught"
    case("the checks catch broken manifests", broken)

    print(f"chart: {len(FAILED)} failed" + (f": {FAILED}" if FAILED else ""))
    return 1 if FAILED else 0


if __name__ == "__main__":
    sys.exit(main())
