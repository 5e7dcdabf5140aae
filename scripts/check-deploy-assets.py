#!/usr/bin/env python3
"""Checks firebreak's ops assets in deploy/ (standard library only).

  --dashboard FILE   Grafana dashboard JSON: the structure Grafana needs to load it (title,
                     uid, schemaVersion >= 36, panels with unique ids, known types, a gridPos
                     inside 24 columns without overlaps, targets with refId and expr),
                     consistent data source references, defined template variables.
  --rules FILE       Prometheus rule file: every `expr:` (single-line, quoted, plain
                     multi-line or `|`/`>` block scalars) read by a small line-based parser;
                     every alert has severity, summary and description. The YAML itself is
                     linted by `promtool check rules`.
  --scrape FILE      Prometheus text exposition from a real /metrics (repeatable: e.g. the
                     ingest's and the worker's). Every metric name in every PromQL expression
                     must be in it (`_bucket`/`_sum`/`_count` only of a histogram), every
                     label matcher's label must be on that metric, and the values of
                     equality matchers (and of literal `a|b` regex matchers) must occur.
  --run-binary BIN   scrape a real process instead of a file: starts `BIN run` with a
                     throwaway config (one source, one job type, one integration; 127.0.0.1,
                     free ports, a temp dir), reads the ingress's and the sidecar's /metrics,
                     stops it (SIGTERM to its PID). Every label value is registered at start,
                     so no traffic is needed.
  --allow-missing N  a metric that may be absent from the scrape (reported, not an error).
  --self-test        runs the checker's own negative cases.

Without --scrape only the structure is checked and the metric names found are listed.
Exit status: 0 ok, 1 problems found, 2 usage error.
"""
import argparse
import json
import re
import sys

PANEL_TYPES = {"timeseries", "stat", "gauge", "table", "bargauge", "state-timeline",
               "heatmap", "row", "text"}
NO_TARGET_TYPES = {"row", "text"}
# Labels Prometheus attaches to every scraped series (the scrape job, the target and the
# target labels of deploy/prometheus/prometheus.yml); not in a /metrics scrape.
DEFAULT_TARGET_LABELS = ("job", "instance", "role")
# Series Prometheus writes itself for every target.
SYNTHETIC_SERIES = {"up", "scrape_duration_seconds", "scrape_samples_scraped",
                    "scrape_samples_post_metric_relabeling", "scrape_series_added"}
GRAFANA_BUILTIN_VARS = {"__rate_interval", "__interval", "__interval_ms", "__range",
                        "__range_s", "__range_ms", "__from", "__to", "__dashboard", "__org",
                        "__user", "__name", "timeFilter", "__timeFilter"}

AGGREGATIONS = {"sum", "min", "max", "avg", "group", "stddev", "stdvar", "count",
                "count_values", "bottomk", "topk", "quantile", "limitk", "limit_ratio"}
FUNCTIONS = {
    "abs", "absent", "absent_over_time", "acos", "acosh", "asin", "asinh", "atan", "atanh",
    "avg_over_time", "ceil", "changes", "clamp", "clamp_max", "clamp_min", "cos", "cosh",
    "count_over_time", "day_of_month", "day_of_week", "day_of_year", "days_in_month", "deg",
    "delta", "deriv", "exp", "floor", "histogram_avg", "histogram_count", "histogram_fraction",
    "histogram_quantile", "histogram_stddev", "histogram_stdvar", "histogram_sum",
    "holt_winters", "double_exponential_smoothing", "hour", "idelta", "increase", "irate",
    "label_join", "label_replace", "last_over_time", "ln", "log10", "log2",
    "mad_over_time", "max_over_time", "min_over_time", "minute", "month", "pi",
    "predict_linear", "present_over_time", "quantile_over_time", "rad", "rate", "resets",
    "round", "scalar", "sgn", "sin", "sinh", "sort", "sort_by_label", "sort_by_label_desc",
    "sort_desc", "sqrt", "stddev_over_time", "stdvar_over_time", "sum_over_time", "tan",
    "tanh", "time", "timestamp", "vector", "year",
}
GROUPING_KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right"}
KEYWORDS = {"and", "or", "unless", "bool", "offset", "atan2", "inf", "nan", "start", "end"}

# Grafana variable query functions (Prometheus data source) wrapping a PromQL selector.
VARIABLE_QUERY = re.compile(r"^\s*(label_values|query_result)\s*\((.*)\)\s*$", re.S)
LABEL_VALUES_ARGS = re.compile(r"^(.*),\s*([A-Za-z_][A-Za-z0-9_]*)\s*$", re.S)


class Problems:
    def __init__(self):
        self.errors = []
        self.warnings = []

    def error(self, msg):
        self.errors.append(msg)

    def warn(self, msg):
        self.warnings.append(msg)


# ------------------------------------------------------------------------------------
# PromQL: a tokenizer and just enough of a reader to find selectors and their matchers

TOKEN = re.compile(r"""
    (?P<ws>\s+|\#[^\n]*)
  | (?P<string>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`)
  | (?P<var>\$\{[^}]*\}|\$[A-Za-z_][A-Za-z0-9_]*|\[\[[A-Za-z0-9_]+\]\])
  | (?P<duration>(?:\d+(?:ms|[smhdwy]))+)
  | (?P<number>0[xX][0-9a-fA-F]+|(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)
  | (?P<ident>[A-Za-z_:][A-Za-z0-9_:]*)
  | (?P<op>=~|!~|!=|==|<=|>=|[-+*/%^<>=@])
  | (?P<punct>[{}()\[\],:])
""", re.X)


def tokenize(expr):
    """Returns [(kind, text)] or raises ValueError naming the offending character."""
    tokens = []
    pos = 0
    while pos < len(expr):
        m = TOKEN.match(expr, pos)
        if not m:
            raise ValueError(f"unexpected character {expr[pos]!r} at offset {pos}")
        kind = m.lastgroup
        if kind != "ws":
            tokens.append((kind, m.group()))
        pos = m.end()
    return tokens


def unquote(text):
    if text[0] == "`":
        return text[1:-1]
    body = text[1:-1]
    return re.sub(r"\\(.)", lambda m: {"n": "\n", "t": "\t"}.get(m.group(1), m.group(1)), body)


def template_vars(expr):
    """Names of the Grafana template variables used in `expr` ($x, ${x}, ${x:fmt}, [[x]])."""
    names = set()
    for m in re.finditer(r"\$\{([A-Za-z0-9_]+)(?::[^}]*)?\}|\$([A-Za-z_][A-Za-z0-9_]*)|"
                         r"\[\[([A-Za-z0-9_]+)\]\]", expr):
        names.add(next(g for g in m.groups() if g))
    return names


class Selector:
    def __init__(self, metric):
        self.metric = metric
        self.matchers = []  # (label, op, value)


def read_promql(expr):
    """Returns (selectors, grouping_labels, functions, problems) of one PromQL expression."""
    problems = []
    try:
        tokens = tokenize(expr)
    except ValueError as e:
        return [], set(), set(), [str(e)]
    selectors, grouping, functions = [], set(), set()
    depth = {"(": 0, "[": 0, "{": 0}
    closing = {")": "(", "]": "[", "}": "{"}
    i = 0
    n = len(tokens)

    def skip_label_list(j):
        """tokens[j] is '(' of a `by (...)` list; returns the index after ')'."""
        j += 1
        while j < n and tokens[j][1] != ")":
            if tokens[j][0] == "ident":
                grouping.add(tokens[j][1])
            elif tokens[j][1] != ",":
                problems.append(f"unexpected {tokens[j][1]!r} in a label list")
            j += 1
        if j >= n:
            problems.append("unclosed label list")
        return j + 1

    def read_matchers(j, selector):
        """tokens[j] is '{'; returns the index after '}'."""
        j += 1
        while j < n and tokens[j][1] != "}":
            if tokens[j][1] == ",":
                j += 1
                continue
            if (j + 2 < n and tokens[j][0] in ("ident", "string") and
                    tokens[j + 1][1] in ("=", "!=", "=~", "!~") and tokens[j + 2][0] == "string"):
                label = tokens[j][1] if tokens[j][0] == "ident" else unquote(tokens[j][1])
                selector.matchers.append((label, tokens[j + 1][1], unquote(tokens[j + 2][1])))
                j += 3
                continue
            problems.append(f"cannot read the label matcher at {tokens[j][1]!r}")
            j += 1
        if j >= n:
            problems.append("unclosed '{'")
        return j + 1

    while i < n:
        kind, text = tokens[i]
        nxt = tokens[i + 1][1] if i + 1 < n else None
        if text == "[":
            # range or subquery: durations, `:`, $__rate_interval — nothing to check inside
            j = i + 1
            while j < n and tokens[j][1] != "]":
                j += 1
            if j >= n:
                problems.append("unclosed '['")
            i = j + 1
            continue
        if text in ("(", "{") and kind == "punct":
            if text == "{":
                # a selector without a metric name: {__name__="x", ...}
                sel = Selector(None)
                i = read_matchers(i, sel)
                names = [v for (l, o, v) in sel.matchers if l == "__name__" and o == "="]
                sel.metric = names[0] if names else None
                if sel.metric is None:
                    problems.append("selector without a metric name")
                else:
                    selectors.append(sel)
                continue
            depth[text] += 1
        elif text in closing and kind == "punct":
            depth[closing[text]] -= 1
            if depth[closing[text]] < 0:
                problems.append(f"unbalanced {text!r}")
                depth[closing[text]] = 0
        elif kind == "ident":
            lower = text.lower()
            if lower in GROUPING_KEYWORDS:
                i = skip_label_list(i + 1) if nxt == "(" else i + 1
                continue
            if nxt == "(":
                if lower not in FUNCTIONS and lower not in AGGREGATIONS:
                    problems.append(f"unknown function {text}()")
                functions.add(lower)
                i += 1
                continue
            if lower in KEYWORDS or lower in AGGREGATIONS:
                i += 1
                continue
            sel = Selector(text)
            selectors.append(sel)
            i = read_matchers(i + 1, sel) if nxt == "{" else i + 1
            continue
        i += 1
    for opener, d in depth.items():
        if d:
            problems.append(f"unbalanced {opener!r}")
    return selectors, grouping, functions, problems


# ------------------------------------------------------------------------------------
# Prometheus rule files: a line-based reader of `expr:` values

KEY_LINE = re.compile(r"^(?P<indent>\s*)(?P<dash>-\s+)?(?P<key>[A-Za-z_][A-Za-z0-9_]*):(?:\s+|$)(?P<value>.*)$")


def strip_plain_comment(value):
    m = re.search(r"\s#", value)
    return value[:m.start()] if m else value


def yaml_scalar(value, path, lineno, problems):
    value = value.strip()
    if value.startswith("'"):
        if not value.endswith("'") or len(value) < 2:
            problems.error(f"{path}:{lineno}: unterminated single-quoted expr")
            return value
        return value[1:-1].replace("''", "'")
    if value.startswith('"'):
        if not value.endswith('"') or len(value) < 2:
            problems.error(f"{path}:{lineno}: unterminated double-quoted expr")
            return value
        return re.sub(r'\\(.)', lambda m: {"n": "\n", "t": "\t"}.get(m.group(1), m.group(1)),
                      value[1:-1])
    return strip_plain_comment(value).strip()


def read_rules(path, problems):
    """Returns [(where, name, expr)] and checks each alert's labels/annotations."""
    try:
        lines = open(path, encoding="utf-8").read().split("\n")
    except OSError as e:
        problems.error(f"{path}: cannot read: {e.strerror}")
        return []
    if not any(re.match(r"^groups:\s*(#.*)?$", line) for line in lines):
        problems.error(f"{path}: no top-level `groups:` key")
    rules = []
    current = None  # {"name", "line", "indent", "keys"}
    blocks = []

    def column_of(m):
        return len(m.group("indent")) + (len(m.group("dash")) if m.group("dash") else 0)

    i = 0
    while i < len(lines):
        line = lines[i]
        m = KEY_LINE.match(line)
        if not m or line.lstrip().startswith("#"):
            i += 1
            continue
        key, value, col = m.group("key"), m.group("value"), column_of(m)
        if key in ("alert", "record") and m.group("dash"):
            current = {"kind": key, "name": yaml_scalar(value, path, i + 1, problems),
                       "line": i + 1, "col": col, "keys": set(), "exprs": 0}
            blocks.append(current)
        elif current is not None and col < current["col"]:
            current = None  # a key at a shallower level (the next group, `tests:`...)
        elif current is not None:
            current["keys"].add(key)
            if value.strip().startswith("{"):  # flow mapping: labels: {severity: warning}
                current["keys"].update(re.findall(r"([A-Za-z_][A-Za-z0-9_]*)\s*:", value))
        if key != "expr":
            i += 1
            if value.strip()[:1] in ("|", ">"):
                # another key's block scalar (a description): its lines are text, not keys
                while i < len(lines) and (not lines[i].strip() or
                                          len(lines[i]) - len(lines[i].lstrip()) > col):
                    i += 1
            continue
        where = f"{path}:{i + 1}"
        name = current["name"] if current else "?"
        stripped = value.strip()
        body = []
        if stripped[:1] in ("|", ">"):
            folded = stripped[0] == ">"
            j = i + 1
            while j < len(lines):
                nxt = lines[j]
                if nxt.strip() and (len(nxt) - len(nxt.lstrip())) <= col:
                    break
                body.append(nxt)
                j += 1
            while body and not body[-1].strip():
                body.pop()
            indents = [len(b) - len(b.lstrip()) for b in body if b.strip()]
            cut = min(indents) if indents else 0
            body = [b[cut:] for b in body]
            expr = (" " if folded else "\n").join(body)
            i = j
        else:
            expr = yaml_scalar(stripped, path, i + 1, problems)
            j = i + 1
            # plain scalar continued on more-indented lines
            if stripped[:1] not in ("'", '"'):
                while j < len(lines):
                    nxt = lines[j]
                    if not nxt.strip() or (len(nxt) - len(nxt.lstrip())) <= col or \
                            KEY_LINE.match(nxt):
                        break
                    expr += " " + strip_plain_comment(nxt.strip())
                    j += 1
            i = j
        if not expr.strip():
            problems.error(f"{where}: {name}: empty expr")
        if current is not None:
            current["exprs"] += 1
        rules.append((where, name, expr))
    for b in blocks:
        where = f"{path}:{b['line']}"
        if b["exprs"] != 1:
            problems.error(f"{where}: {b['kind']} {b['name']}: expected one expr, found {b['exprs']}")
        if b["kind"] == "alert":
            for needed in ("severity", "summary", "description"):
                if needed not in b["keys"]:
                    problems.error(f"{where}: alert {b['name']}: no `{needed}`")
    if not rules:
        problems.error(f"{path}: no `expr:` found")
    return rules


# ------------------------------------------------------------------------------------
# Grafana dashboards

def is_int(v):
    return isinstance(v, int) and not isinstance(v, bool)


def read_dashboard(path, problems):
    """Returns [(where, expr)] of every PromQL expression (targets and variable queries)."""
    try:
        with open(path, encoding="utf-8") as f:
            dash = json.load(f)
    except OSError as e:
        problems.error(f"{path}: cannot read: {e.strerror}")
        return []
    except json.JSONDecodeError as e:
        problems.error(f"{path}:{e.lineno}:{e.colno}: invalid JSON: {e.msg}")
        return []
    if not isinstance(dash, dict):
        problems.error(f"{path}: the top level must be an object")
        return []
    # An export for sharing wraps nothing, but the API's {"dashboard": {...}} form is common.
    if "dashboard" in dash and isinstance(dash["dashboard"], dict) and "panels" not in dash:
        dash = dash["dashboard"]

    for key in ("title", "uid"):
        if not isinstance(dash.get(key), str) or not dash.get(key).strip():
            problems.error(f"{path}: `{key}` must be a non-empty string")
    uid = dash.get("uid")
    if isinstance(uid, str) and (len(uid) > 40 or not re.fullmatch(r"[A-Za-z0-9_-]+", uid)):
        problems.error(f"{path}: uid {uid!r}: at most 40 of [A-Za-z0-9_-]")
    sv = dash.get("schemaVersion")
    if not is_int(sv) or sv < 36:
        problems.error(f"{path}: `schemaVersion` must be an integer >= 36, got {sv!r}")
    panels = dash.get("panels")
    if not isinstance(panels, list) or not panels:
        problems.error(f"{path}: `panels` must be a non-empty list")
        panels = []

    # Template variables
    variables = {}
    templating = dash.get("templating", {"list": []})
    var_list = templating.get("list", []) if isinstance(templating, dict) else None
    if not isinstance(var_list, list):
        problems.error(f"{path}: `templating.list` must be a list")
        var_list = []
    exprs = []
    for v in var_list:
        if not isinstance(v, dict) or not isinstance(v.get("name"), str) or not v.get("name"):
            problems.error(f"{path}: templating: every variable needs a name")
            continue
        if v["name"] in variables:
            problems.error(f"{path}: templating: variable {v['name']!r} defined twice")
        variables[v["name"]] = v
    datasource_vars = {n: v for n, v in variables.items() if v.get("type") == "datasource"}
    for n, v in datasource_vars.items():
        if v.get("query") != "prometheus":
            problems.error(f"{path}: variable {n!r}: a datasource variable of type "
                           f"{v.get('query')!r}; these panels need \"prometheus\"")

    literal_uids = set()

    def check_datasource(ref, where):
        """Returns a normalized key for consistency checks, or None."""
        if ref is None:
            return None
        if isinstance(ref, str):
            problems.error(f"{where}: datasource given by name ({ref!r}); use "
                           "{\"type\": \"prometheus\", \"uid\": ...}")
            return ref
        if not isinstance(ref, dict):
            problems.error(f"{where}: datasource must be an object")
            return None
        ds_type, ds_uid = ref.get("type"), ref.get("uid")
        if ds_type != "prometheus":
            problems.error(f"{where}: datasource type {ds_type!r}, expected \"prometheus\"")
        if not isinstance(ds_uid, str) or not ds_uid:
            problems.error(f"{where}: datasource without a uid")
            return None
        names = template_vars(ds_uid)
        if names:
            for name in names:
                if name not in datasource_vars:
                    problems.error(f"{where}: datasource uid {ds_uid!r}: no datasource "
                                   f"variable {name!r} in templating")
        else:
            literal_uids.add(ds_uid)
        return ds_uid

    def check_vars_used(text, where):
        for name in template_vars(text):
            if name not in variables and name not in GRAFANA_BUILTIN_VARS:
                problems.error(f"{where}: uses ${name}, which is not a template variable")

    for n, v in variables.items():
        where = f"{path}: variable {n!r}"
        if v.get("type") != "query":
            continue
        check_datasource(v.get("datasource"), where)
        query = v.get("query")
        if isinstance(query, dict):
            query = query.get("query")
        if not isinstance(query, str) or not query.strip():
            problems.error(f"{where}: query variable without a query")
            continue
        check_vars_used(query, where)
        m = VARIABLE_QUERY.match(query)
        if m and m.group(1) == "label_values":
            args = LABEL_VALUES_ARGS.match(m.group(2))
            inner = args.group(1) if args else None
            if inner is None:
                continue  # label_values(label): no metric to check
            exprs.append((where, inner))
        elif m:
            exprs.append((where, m.group(2)))
        elif re.fullmatch(r"\s*(label_names|metrics)\s*\(.*\)\s*", query, re.S):
            continue
        else:
            problems.error(f"{where}: unrecognised variable query {query!r}")

    # Panels (collapsed rows hold theirs inside)
    flat = []
    for p in panels:
        flat.append((p, True))
        if isinstance(p, dict) and p.get("type") == "row" and isinstance(p.get("panels"), list):
            if p["panels"] and not p.get("collapsed"):
                problems.error(f"{path}: row {p.get('title')!r} is expanded but holds panels "
                               "(Grafana expects them at the top level)")
            flat.extend((c, False) for c in p["panels"])
    ids = {}
    placed = []
    for p, top_level in flat:
        if not isinstance(p, dict):
            problems.error(f"{path}: a panel is not an object")
            continue
        pid = p.get("id")
        title = p.get("title")
        where = f"{path}: panel {pid!r} {title!r}"
        if not is_int(pid):
            problems.error(f"{where}: `id` must be an integer")
        elif pid in ids:
            problems.error(f"{where}: id {pid} already used by panel {ids[pid]!r}")
        else:
            ids[pid] = title
        if not isinstance(title, str) or (p.get("type") != "row" and not title.strip()):
            problems.error(f"{where}: `title` must be a non-empty string")
        ptype = p.get("type")
        if ptype not in PANEL_TYPES:
            problems.error(f"{where}: type {ptype!r} is not one of {sorted(PANEL_TYPES)}")
        g = p.get("gridPos")
        if not isinstance(g, dict) or not all(is_int(g.get(k)) for k in ("h", "w", "x", "y")):
            problems.error(f"{where}: `gridPos` needs integer h, w, x, y")
        else:
            if not (1 <= g["w"] <= 24 and 0 <= g["x"] <= 23 and g["x"] + g["w"] <= 24):
                problems.error(f"{where}: gridPos x={g['x']} w={g['w']} leaves the 24 columns")
            if g["h"] < 1 or g["y"] < 0:
                problems.error(f"{where}: gridPos needs h >= 1 and y >= 0")
            if top_level:
                for other_where, o in placed:
                    if (g["x"] < o["x"] + o["w"] and o["x"] < g["x"] + g["w"] and
                            g["y"] < o["y"] + o["h"] and o["y"] < g["y"] + g["h"]):
                        problems.error(f"{where}: gridPos overlaps {other_where}")
                placed.append((f"panel {pid!r} {title!r}", g))
        panel_ds = check_datasource(p.get("datasource"), where)
        if ptype in NO_TARGET_TYPES:
            continue
        targets = p.get("targets")
        if not isinstance(targets, list) or not targets:
            problems.error(f"{where}: needs a non-empty `targets` list")
            continue
        ref_ids = set()
        for t in targets:
            if not isinstance(t, dict):
                problems.error(f"{where}: a target is not an object")
                continue
            ref = t.get("refId")
            twhere = f"{where} target {ref!r}"
            if not isinstance(ref, str) or not ref:
                problems.error(f"{twhere}: needs a non-empty `refId`")
            elif ref in ref_ids:
                problems.error(f"{twhere}: refId used twice in the panel")
            ref_ids.add(ref)
            expr = t.get("expr")
            if not isinstance(expr, str) or not expr.strip():
                problems.error(f"{twhere}: needs a non-empty `expr`")
                continue
            target_ds = check_datasource(t.get("datasource"), twhere)
            if panel_ds is None and target_ds is None:
                problems.error(f"{twhere}: neither the panel nor the target names a datasource")
            elif panel_ds and target_ds and panel_ds != target_ds and panel_ds != "-- Mixed --":
                problems.error(f"{twhere}: datasource {target_ds!r} differs from the panel's "
                               f"{panel_ds!r}")
            check_vars_used(expr, twhere)
            exprs.append((twhere, expr))
    if len(literal_uids) > 1:
        problems.error(f"{path}: panels use several datasource uids {sorted(literal_uids)}; "
                       "use one (or the datasource variable)")
    return exprs


# ------------------------------------------------------------------------------------
# Scrapes

SAMPLE = re.compile(r"^([A-Za-z_:][A-Za-z0-9_:]*)(\{.*\})?\s+\S+(\s+\S+)?\s*$")
LABEL_PAIR = re.compile(r'\s*([A-Za-z_][A-Za-z0-9_]*)\s*=\s*"((?:[^"\\]|\\.)*)"\s*,?')


class Scrape:
    def __init__(self):
        self.types = {}   # family name -> type
        self.labels = {}  # sample name -> {label: {values}}

    def read(self, path, problems):
        try:
            text = open(path, encoding="utf-8").read()
        except OSError as e:
            problems.error(f"{path}: cannot read: {e.strerror}")
            return
        self.read_text(text, path, problems)

    def read_text(self, text, path, problems):
        samples = 0
        for lineno, line in enumerate(text.split("\n"), 1):
            line = line.strip()
            if not line:
                continue
            if line.startswith("#"):
                parts = line.split(None, 3)
                if len(parts) >= 4 and parts[1] == "TYPE":
                    self.types[parts[2]] = parts[3].strip()
                continue
            m = SAMPLE.match(line)
            if not m:
                problems.error(f"{path}:{lineno}: not a sample line: {line[:80]!r}")
                continue
            name, block = m.group(1), m.group(2)
            samples += 1
            entry = self.labels.setdefault(name, {})
            if block:
                inner, pos = block[1:-1], 0
                while pos < len(inner):
                    lm = LABEL_PAIR.match(inner, pos)
                    if not lm:
                        problems.error(f"{path}:{lineno}: cannot read labels {block!r}")
                        break
                    value = re.sub(r"\\(.)", lambda x: "\n" if x.group(1) == "n" else x.group(1),
                                   lm.group(2))
                    entry.setdefault(lm.group(1), set()).add(value)
                    pos = lm.end()
        if samples == 0:
            problems.error(f"{path}: no samples")

    def resolve(self, metric):
        """(ok, reason): whether `metric` may be referenced."""
        if metric in self.types:
            if metric in self.labels:
                return True, ""
            if self.types[metric] in ("histogram", "summary"):
                return False, (f"{metric} is a {self.types[metric]}: reference its _bucket, "
                               "_sum or _count series")
            return False, f"{metric} has a TYPE line but no samples"
        for suffix in ("_bucket", "_sum", "_count"):
            if metric.endswith(suffix):
                base = metric[: -len(suffix)]
                base_type = self.types.get(base)
                if base_type == "histogram" or (base_type == "summary" and suffix != "_bucket"):
                    if metric in self.labels:
                        return True, ""
                    return False, f"{base} is a {base_type} but has no {metric} samples"
                if metric in self.labels:
                    return False, (f"{metric} is in the scrape but {base} is "
                                   f"{'untyped' if base_type is None else 'a ' + base_type}, "
                                   "not a histogram")
        if metric in self.labels:
            return True, ""  # untyped sample
        return False, f"{metric} is not in the scrape"


LITERAL_ALTERNATION = re.compile(r"[A-Za-z0-9_:.\-]+(\|[A-Za-z0-9_:.\-]+)*")


def check_expressions(exprs, scrape, target_labels, allow_missing, problems):
    """Reads every expression; with a scrape also checks names, labels and values."""
    metrics, matcher_count, missing_allowed = set(), 0, set()
    for where, expr in exprs:
        selectors, grouping, functions, read_problems = read_promql(expr)
        for p in read_problems:
            problems.error(f"{where}: {p} in: {expr.strip()}")
        if not selectors and not read_problems:
            problems.error(f"{where}: no metric selector in: {expr.strip()}")
        for sel in selectors:
            metrics.add(sel.metric)
            matcher_count += len(sel.matchers)
        if scrape is None:
            continue
        known_labels = set(target_labels)
        all_resolved = True  # grouping labels can only be judged when every metric is known
        for sel in selectors:
            m = sel.metric
            if m in SYNTHETIC_SERIES:
                for label, _, _ in sel.matchers:
                    if label not in target_labels and label != "__name__":
                        problems.error(f"{where}: {m}{{{label}}}: {m} has only target labels")
                continue
            ok, reason = scrape.resolve(m)
            if not ok:
                all_resolved = False
                if m in allow_missing:
                    missing_allowed.add(m)
                else:
                    problems.error(f"{where}: {reason}")
                continue
            labels = scrape.labels[m]
            known_labels |= set(labels)
            for label, op, value in sel.matchers:
                if label == "__name__" or label in target_labels:
                    continue
                if label not in labels:
                    problems.error(f"{where}: {m} has no label {label!r} (it has: "
                                   f"{', '.join(sorted(labels)) or 'none'})")
                    continue
                if "$" in value or "[[" in value:
                    continue  # a template variable
                if op in ("=", "!="):
                    wanted = [value] if value else []
                elif LITERAL_ALTERNATION.fullmatch(value):
                    wanted = value.split("|")
                else:
                    continue
                for w in wanted:
                    if w not in labels[label]:
                        problems.error(f"{where}: {m}{{{label}{op}\"{value}\"}}: no series has "
                                       f"{label}=\"{w}\" (seen: {', '.join(sorted(labels[label]))})")
        if all_resolved and not (functions & {"label_replace", "label_join"}):
            for label in sorted(grouping - known_labels):
                problems.error(f"{where}: groups by {label!r}, which none of its metrics has")
    return metrics, matcher_count, missing_allowed


# ------------------------------------------------------------------------------------
# A live scrape of `firebreak run`

def scrape_binary(binary, problems, out):
    """Returns the text of the ingress's and the sidecar's /metrics, or [] on failure."""
    import os
    import socket
    import subprocess
    import tempfile
    import time
    import urllib.request

    def free_port():
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            return s.getsockname()[1]

    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    bot = os.path.join(repo, "examples", "echo-bot", "bot.py")
    with tempfile.TemporaryDirectory(prefix="firebreak-scrape-") as tmp:
        listen, sidecar = free_port(), free_port()
        secret = os.path.join(tmp, "signing-secret")
        with open(secret, "w") as f:
            f.write("check-deploy-assets\n")
        config = os.path.join(tmp, "firebreak.toml")
        with open(config, "w") as f:
            f.write(f"""[server]
listen = "127.0.0.1:{listen}"
[queue]
path = "{tmp}/queue.db"
[worker]
sidecar = "127.0.0.1:{sidecar}"
[telemetry]
log_level = "warn"
[[sources]]
name = "slack"
kind = "slack"
path = "/hooks/slack"
secret = {{ file = "{secret}" }}
job = "slack.event"
[[jobs]]
type = "slack.event"
handler = {{ command = ["python3", "{bot}"] }}
concurrency = 1
[[integrations]]
name = "example-api"
base_url = "http://127.0.0.1:9"
timeout = "1s"
""")
        log = open(os.path.join(tmp, "firebreak.log"), "w+")
        try:
            proc = subprocess.Popen([binary, "run", "-c", config], stdout=log,
                                    stderr=subprocess.STDOUT, cwd=tmp)
        except OSError as e:
            problems.error(f"{binary}: cannot start: {e.strerror}")
            return []
        texts = []
        try:
            deadline = time.monotonic() + 15
            for port in (listen, sidecar):
                while True:
                    if proc.poll() is not None:
                        log.seek(0)
                        problems.error(f"{binary} run exited with {proc.returncode}: "
                                       f"{log.read()[-2000:]}")
                        return []
                    try:
                        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics",
                                                    timeout=2) as r:
                            texts.append(r.read().decode())
                            break
                    except OSError:
                        if time.monotonic() > deadline:
                            problems.error(f"{binary} run: no /metrics on 127.0.0.1:{port}")
                            return []
                        time.sleep(0.1)
            print(f"scraped `{os.path.basename(binary)} run` (pid {proc.pid}): ingress "
                  f"127.0.0.1:{listen}/metrics, sidecar 127.0.0.1:{sidecar}/metrics", file=out)
            return texts
        finally:
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
            log.close()


# ------------------------------------------------------------------------------------

def run(args, out=sys.stdout):
    problems = Problems()
    exprs = []
    counts = {}
    if args.dashboard:
        for path in args.dashboard:
            found = read_dashboard(path, problems)
            counts[path] = len(found)
            exprs += found
    if args.rules:
        for path in args.rules:
            found = [(w, e) for (w, _name, e) in read_rules(path, problems)]
            counts[path] = len(found)
            exprs += found
    scrape = None
    sources = list(args.scrape or [])
    if args.scrape or args.run_binary:
        scrape = Scrape()
        for path in args.scrape or []:
            scrape.read(path, problems)
        if args.run_binary:
            texts = scrape_binary(args.run_binary, problems, out)
            for i, text in enumerate(texts):
                scrape.read_text(text, f"{args.run_binary} run /metrics #{i + 1}", problems)
                sources.append(f"live scrape #{i + 1}")
            if not texts:
                scrape = None  # the error says why; checking against nothing would only add noise
    target_labels = set(l for l in args.target_labels.split(",") if l)
    metrics, matchers, missing = check_expressions(exprs, scrape, target_labels,
                                                   set(args.allow_missing or []), problems)

    for path, n in counts.items():
        print(f"{path}: {n} PromQL expressions", file=out)
    print(f"{len(exprs)} expressions, {len(metrics)} distinct metric names, "
          f"{matchers} label matchers", file=out)
    if scrape is None:
        for m in sorted(metrics):
            print(f"  {m}", file=out)
        print("(structure only: give --scrape FILE to check names, labels and values)", file=out)
    else:
        print(f"checked against {len(sources)} scrape(s): "
              f"{len(scrape.labels)} sample names, {len(scrape.types)} typed families", file=out)
        for m in sorted(missing):
            print(f"warning: {m} is not in the scrape (allowed by --allow-missing)", file=out)
    for w in problems.warnings:
        print(f"warning: {w}", file=out)
    for e in problems.errors:
        print(f"error: {e}", file=sys.stderr)
    if problems.errors:
        print(f"{len(problems.errors)} problem(s) found", file=sys.stderr)
        return 1
    print("ok", file=out)
    return 0


def self_test():
    """Negative and positive cases of the checker itself, in a temp dir."""
    import io
    import os
    import tempfile

    scrape_text = """# TYPE firebreak_jobs_total counter
firebreak_jobs_total{job_type="a",outcome="succeeded"} 1
firebreak_jobs_total{job_type="a",outcome="dead_lettered"} 0
# TYPE firebreak_job_duration_seconds histogram
firebreak_job_duration_seconds_bucket{job_type="a",le="+Inf"} 1
firebreak_job_duration_seconds_sum{job_type="a"} 1
firebreak_job_duration_seconds_count{job_type="a"} 1
# TYPE weird_count gauge
weird_count 3
"""
    ds = {"type": "prometheus", "uid": "${datasource}"}

    def dashboard(exprs, **overrides):
        panels = [{"id": 1, "type": "row", "title": "r", "gridPos": {"h": 1, "w": 24, "x": 0, "y": 0},
                   "collapsed": False, "panels": []}]
        for i, e in enumerate(exprs):
            panels.append({"id": 2 + i, "type": "timeseries", "title": f"p{i}", "datasource": ds,
                           "gridPos": {"h": 8, "w": 12, "x": 12 * (i % 2), "y": 1 + 8 * (i // 2)},
                           "targets": [{"refId": "A", "expr": e, "datasource": ds}]})
        d = {"uid": "t", "title": "t", "schemaVersion": 39, "panels": panels,
             "templating": {"list": [{"name": "datasource", "type": "datasource",
                                      "query": "prometheus"},
                                     {"name": "job", "type": "query", "datasource": ds,
                                      "query": "label_values(firebreak_jobs_total, job)"}]}}
        d.update(overrides)
        return json.dumps(d)

    good_expr = ('histogram_quantile(0.95, sum by (job_type, le) (rate('
                 'firebreak_job_duration_seconds_bucket{job=~"$job"}[$__rate_interval])))')
    cases = [
        # (name, files {name: text}, args, expect_ok, expected substring in stderr)
        ("valid dashboard", {"d.json": dashboard([good_expr,
                                                  'sum(rate(firebreak_jobs_total{outcome=~"succeeded|dead_lettered"}[5m])) by (job_type)'])},
         ["--dashboard", "d.json", "--scrape", "s.prom"], True, ""),
        ("label value typo", {"d.json": dashboard(['rate(firebreak_jobs_total{outcome="deadlettered"}[5m])'])},
         ["--dashboard", "d.json", "--scrape", "s.prom"], False, 'outcome="deadlettered"'),
        ("regex alternative typo", {"d.json": dashboard(['rate(firebreak_jobs_total{outcome=~"succeeded|timedout"}[5m])'])},
         ["--dashboard", "d.json", "--scrape", "s.prom"], False, 'outcome="timedout"'),
        ("unknown label", {"d.json": dashboard(['rate(firebreak_jobs_total{jobtype="a"}[5m])'])},
         ["--dashboard", "d.json", "--scrape", "s.prom"], False, "no label 'jobtype'"),
        ("grouping label typo", {"d.json": dashboard(['sum by (jobtype) (rate(firebreak_jobs_total[5m]))'])},
         ["--dashboard", "d.json", "--scrape", "s.prom"], False, "groups by 'jobtype'"),
        ("missing metric", {"d.json": dashboard(['rate(firebreak_job_total[5m])'])},
         ["--dashboard", "d.json", "--scrape", "s.prom"], False, "firebreak_job_total is not in the scrape"),
        ("missing but allowed", {"d.json": dashboard(['rate(firebreak_job_total[5m])'])},
         ["--dashboard", "d.json", "--scrape", "s.prom", "--allow-missing", "firebreak_job_total"], True, ""),
        ("_count of a non-histogram", {"d.json": dashboard(['rate(firebreak_jobs_count[5m])'])},
         ["--dashboard", "d.json", "--scrape", "s.prom"], False, "firebreak_jobs_count is not in the scrape"),
        ("histogram by base name", {"d.json": dashboard(['rate(firebreak_job_duration_seconds[5m])'])},
         ["--dashboard", "d.json", "--scrape", "s.prom"], False, "reference its _bucket"),
        ("gauge named *_count", {"d.json": dashboard(['weird_count'])},
         ["--dashboard", "d.json", "--scrape", "s.prom"], True, ""),
        ("unknown function", {"d.json": dashboard(['rated(firebreak_jobs_total[5m])'])},
         ["--dashboard", "d.json"], False, "unknown function rated()"),
        ("undefined variable", {"d.json": dashboard(['rate(firebreak_jobs_total{job=~"$jb"}[5m])'])},
         ["--dashboard", "d.json"], False, "$jb"),
        ("old schemaVersion", {"d.json": dashboard([good_expr], schemaVersion=27)},
         ["--dashboard", "d.json"], False, "schemaVersion"),
        ("no uid", {"d.json": dashboard([good_expr], uid="")}, ["--dashboard", "d.json"], False, "`uid`"),
        ("duplicate id / overlap / bad type", {"d.json": json.dumps({
            "uid": "t", "title": "t", "schemaVersion": 39, "panels": [
                {"id": 1, "type": "graph", "title": "a", "gridPos": {"h": 8, "w": 12, "x": 0, "y": 0},
                 "targets": [{"refId": "A", "expr": "up", "datasource": {"type": "prometheus", "uid": "p"}}]},
                {"id": 1, "type": "stat", "title": "b", "gridPos": {"h": 8, "w": 16, "x": 10, "y": 0},
                 "datasource": {"type": "prometheus", "uid": "q"}, "targets": [{"expr": ""}]}]})},
         ["--dashboard", "d.json"], False, "id 1 already used"),
        ("rules: block scalar, quoted, plain", {"r.yml": """groups:
  - name: g
    rules:
      - alert: A
        expr: |
          sum by (job_type) (
            rate(firebreak_jobs_total{outcome="dead_lettered"}[5m])
          ) > 0
        labels: {severity: warning}
        annotations: {summary: s, description: d}
      - alert: B
        expr: 'firebreak_jobs_total{outcome="succeeded"} > 0'
        labels:
          severity: info
        annotations:
          summary: s
          description: d
      - record: job:c:rate5m
        expr: sum(rate(firebreak_jobs_total[5m]))  # comment
"""}, ["--rules", "r.yml", "--scrape", "s.prom"], True, ""),
        ("rules: typo inside a block scalar", {"r.yml": """groups:
  - name: g
    rules:
      - alert: A
        expr: >-
          rate(firebreak_jobs_total{outcome="dead-lettered"}[5m])
            > 0
        labels: {severity: warning}
        annotations: {summary: s, description: d}
"""}, ["--rules", "r.yml", "--scrape", "s.prom"], False, 'outcome="dead-lettered"'),
        ("rules: alert without description", {"r.yml": """groups:
  - name: g
    rules:
      - alert: A
        expr: up == 0
        labels: {severity: warning}
        annotations: {summary: s}
"""}, ["--rules", "r.yml"], False, "no `description`"),
    ]
    failures = 0
    with tempfile.TemporaryDirectory() as tmp:
        cwd = os.getcwd()
        os.chdir(tmp)
        try:
            with open("s.prom", "w") as f:
                f.write(scrape_text)
            for name, files, argv, expect_ok, needle in cases:
                for fname, text in files.items():
                    with open(fname, "w") as f:
                        f.write(text)
                out, err = io.StringIO(), io.StringIO()
                saved = sys.stderr
                sys.stderr = err
                try:
                    rc = run(parse_args(argv), out=out)
                finally:
                    sys.stderr = saved
                ok = (rc == 0) == expect_ok and needle in err.getvalue()
                print(f"{'ok  ' if ok else 'FAIL'} {name}")
                if not ok:
                    failures += 1
                    print(out.getvalue() + err.getvalue())
                for fname in files:
                    os.remove(fname)
        finally:
            os.chdir(cwd)
    print(f"{len(cases) - failures}/{len(cases)} self-test cases passed")
    return 1 if failures else 0


def parse_args(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dashboard", action="append", metavar="FILE", help="Grafana dashboard JSON")
    ap.add_argument("--rules", action="append", metavar="FILE", help="Prometheus rule file")
    ap.add_argument("--scrape", action="append", metavar="FILE",
                    help="Prometheus text exposition of a /metrics scrape (repeatable)")
    ap.add_argument("--run-binary", metavar="BIN",
                    help="scrape a `BIN run` started with a throwaway config")
    ap.add_argument("--allow-missing", action="append", metavar="METRIC",
                    help="a metric that may be absent from the scrape (repeatable)")
    ap.add_argument("--target-labels", default=",".join(DEFAULT_TARGET_LABELS),
                    help="labels Prometheus adds at scrape time (default: %(default)s)")
    ap.add_argument("--self-test", action="store_true", help="run the checker's own cases")
    args = ap.parse_args(argv)
    if not args.self_test and not (args.dashboard or args.rules):
        ap.error("give --dashboard and/or --rules (or --self-test)")
    return args


def main(argv):
    args = parse_args(argv)
    if args.self_test:
        return self_test()
    return run(args)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
