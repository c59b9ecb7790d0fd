"""Threshold policy (hand-written TOML) and baselines (machine-written JSON), kept apart.

docs/gate.md: the *policy* says, per metric, which direction is better, an optional absolute
``limit``, the tolerance band around a baseline (``max(abs_tol, rel_tol * |baseline|)``) and whether a
violation fails or warns; overrides by layer and by bucket. *Baselines* are numbers (value + CI per check
id), regenerated with ``--sae-update-baseline``; writing them never touches the policy file.

The TOML format is documented in ``thresholds/README.md``. Every problem raises ``ThresholdError`` naming
the file, the key and the line (found by scanning the TOML text for the key).
"""

from __future__ import annotations

import json
import math
import os
import re
import tomllib
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from sae_checks.errors import ThresholdError
from sae_checks.gate import families as _families
from sae_checks.tasks import task_names

Direction = Literal["lower", "higher"]
Severity = Literal["fail", "warn"]
Family = str  # a registered check family's name (sae_checks.gate.families): "bucket", "cloze", ...

RULE_KEYS = ("limit", "abs_tol", "rel_tol", "severity", "baseline")
FIXED_KEYS = ("description", "buckets", "baseline", "tasks", "defaults")  # then one table per family
BUCKET_RE = re.compile(r"^(\d+)-(\d+)$")


def top_keys() -> tuple[str, ...]:
    """The keys a policy may hold at its top: the fixed ones, then each family's table."""
    return FIXED_KEYS + tuple(f.section for f in _families.families())


_LEGACY = {"BUCKET_METRICS": "bucket", "CONTEXT_RATIO_METRICS": "context_ratio", "CLOZE_METRICS": "cloze",
           "PROPAGATION_METRICS": "propagation"}


def __getattr__(name: str) -> Any:
    """``BUCKET_METRICS`` etc. (``{metric: direction}`` of a family) and ``TOP_KEYS``, read when asked,
    so metrics and families registered after this import are included."""
    if name in _LEGACY:
        return _families.get(_LEGACY[name]).metrics()
    if name == "TOP_KEYS":
        return top_keys()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


@dataclass(frozen=True, kw_only=True)
class Rule:
    """The resolved rule for one check."""

    direction: Direction  # which way is better
    limit: float | None = None  # absolute bound on the bad side (max for "lower", min for "higher")
    abs_tol: float = 0.0  # band half-width around the baseline, absolute
    rel_tol: float = 0.0  # band half-width around the baseline, relative to |baseline|
    severity: Severity = "fail"  # "warn": a violation warns instead of failing
    baseline: bool = True  # False: a limit-only check (card, latent health): no baseline needed, none compared

    def band(self, baseline: float) -> float:
        """Allowed distance from the baseline: ``max(abs_tol, rel_tol * |baseline|)``."""
        return max(self.abs_tol, self.rel_tol * abs(baseline))


@dataclass(frozen=True, kw_only=True)
class Override:
    """A partial rule (None = inherit) from ``defaults``, ``layers.L``, ``buckets.a-b``."""

    limit: float | None = None
    abs_tol: float | None = None
    rel_tol: float | None = None
    severity: Severity | None = None
    baseline: bool | None = None

    def apply(self, rule: Rule) -> Rule:
        changes = {k: getattr(self, k) for k in RULE_KEYS if getattr(self, k) is not None}
        return replace(rule, **changes) if changes else rule


@dataclass(frozen=True, kw_only=True)
class MetricPolicy:
    """Policy for one named metric: ``fvu``, ``context_ratio.fvu``, ``cloze.lambada.acc_word``,
    ``propagation.mse``. Precedence: defaults < metric < layers.L < buckets.b < layers.L.buckets.b
    (a bucket is a regime, e.g. beyond the training context, that can lift per-layer limits with
    ``limit = inf``). ``rule`` resolves them; an infinite limit means no limit.
    For propagation, ``layers.L`` means the downstream layer."""

    name: str
    family: Family
    metric: str  # the key inside the results ("fvu", "acc_word", ...)
    task: str | None = None  # cloze task
    base: Rule
    layers: dict[int, Override] = field(default_factory=dict)
    buckets: dict[str, Override] = field(default_factory=dict)
    layer_buckets: dict[tuple[int, str], Override] = field(default_factory=dict)
    saes: dict[str, Override] = field(default_factory=dict)  # by SAE name: saes."<name>" (a suite holds many per layer)

    def rule(self, layer: int | None = None, bucket: str | None = None, sae: str | None = None) -> Rule:
        rule = self.base
        if layer is not None and layer in self.layers:
            rule = self.layers[layer].apply(rule)
        if bucket is not None and bucket in self.buckets:
            rule = self.buckets[bucket].apply(rule)
        if layer is not None and bucket is not None and (layer, bucket) in self.layer_buckets:
            rule = self.layer_buckets[(layer, bucket)].apply(rule)
        if sae is not None and sae in self.saes:  # the most specific: one SAE
            rule = self.saes[sae].apply(rule)
        if rule.limit is not None and math.isinf(rule.limit):  # limit = inf / -inf: no limit
            rule = replace(rule, limit=None)
        return rule

    def key(self) -> tuple[str, ...]:
        """The TOML key path of this metric's table (for error lines)."""
        return _families.get(self.family).policy_key(self.metric, self.task)


@dataclass(frozen=True, kw_only=True)
class Policy:
    """A parsed threshold policy. ``buckets``/``tasks``/``baseline`` feed the run config when set."""

    path: str  # the file (or "<string>"), for messages
    text: str  # the TOML source, to find lines for later errors
    metrics: tuple[MetricPolicy, ...]
    buckets: tuple[tuple[int, int], ...] | None = None
    tasks: tuple[str, ...] | None = None
    baseline: Path | None = None  # resolved relative to the TOML file
    description: str = ""

    def family(self, family: Family) -> list[MetricPolicy]:
        return [m for m in self.metrics if m.family == family]

    def get(self, name: str) -> MetricPolicy | None:
        return next((m for m in self.metrics if m.name == name), None)

    def error(self, key: Sequence[str], problem: str) -> ThresholdError:
        return ThresholdError(self.path, ".".join(key), problem, find_line(self.text, key))

    def check_run(self, layers: Sequence[int], buckets: Mapping[int, Sequence[str]], tasks: Sequence[str],
                  *, restricted: bool = False) -> None:
        """Raise ThresholdError for overrides naming a layer, bucket or task the run does not have.
        ``restricted``: the user selected a subset of layers, so other layers' overrides are fine."""
        all_buckets = {b for bs in buckets.values() for b in bs}
        for m in self.metrics:
            if m.task is not None and m.task not in tasks:
                raise self.error(m.key(), f"{m.family} task {m.task!r} is not run (tasks={list(tasks)}); add it "
                                 f"with --sae-tasks {m.task} or tasks = [\"{m.task}\"] at the top of the policy")
            for layer in list(m.layers) + [lb[0] for lb in m.layer_buckets]:
                if layer not in layers and not restricted:
                    raise self.error(m.key() + ("layers", str(layer)),
                                     f"layer {layer} is not in the run (layers {list(layers)})")
            for bucket in list(m.buckets) + [lb[1] for lb in m.layer_buckets]:
                if bucket not in all_buckets:
                    raise self.error(m.key() + ("buckets", bucket),
                                     f"bucket {bucket!r} is not in the run (buckets {sorted(all_buckets)}); "
                                     "set buckets = [[a, b], ...] at the top of the policy")


# --------------------------------------------------------------------------------------------------
# Parsing


def load_policy(path: str | os.PathLike[str]) -> Policy:
    """Read and validate a policy TOML file."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise ThresholdError(str(p), "-", f"cannot read the policy file: {exc.strerror or exc}") from None
    return parse_policy(text, path=str(p), base_dir=p.parent)


def parse_policy(text: str, *, path: str = "<string>", base_dir: Path | None = None) -> Policy:
    """Parse policy TOML text; see thresholds/README.md for the format."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        m = re.search(r"line (\d+)", str(exc))
        raise ThresholdError(path, "-", f"not valid TOML: {exc}", int(m.group(1)) if m else None) from None
    ctx = _Ctx(path, text)
    known_keys = top_keys()
    for key in data:
        if key not in known_keys:
            raise ctx.err((key,), f"unknown key; known top-level keys: {', '.join(known_keys)}")
    defaults = _override(ctx, ("defaults",), data.get("defaults", {}), allow=RULE_KEYS)
    metrics: list[MetricPolicy] = []
    for fam in _families.families():  # each family's table, in report order
        section = _table(ctx, (fam.section,), data.get(fam.section, {}))
        if not fam.tasks:
            metrics += [_metric(ctx, (fam.section, name), table, fam, name, None, defaults)
                        for name, table in section.items()]
            continue
        for task, tasktable in section.items():
            if task not in fam.tasks:
                raise ctx.err((fam.section, task), f"unknown {fam.name} task; known: {', '.join(fam.tasks)}")
            metrics += [_metric(ctx, (fam.section, task, name), table, fam, name, task, defaults)
                        for name, table in _table(ctx, (fam.section, task), tasktable).items()]

    buckets = None
    if "buckets" in data:
        raw = data["buckets"]
        if not isinstance(raw, list) or not raw:
            raise ctx.err(("buckets",), "must be a non-empty list of [a, b] pairs, e.g. [[1, 128], [128, 1024]]")
        out = []
        for b in raw:
            if (not isinstance(b, list) or len(b) != 2 or not all(type(v) is int for v in b)
                    or not 0 <= b[0] < b[1]):
                raise ctx.err(("buckets",), f"bad bucket {b!r}: each must be [a, b] with integers 0 <= a < b")
            out.append((b[0], b[1]))
        buckets = tuple(out)
    tasks = None
    if "tasks" in data:
        raw = data["tasks"]
        if not isinstance(raw, list) or any(t not in task_names() for t in raw):
            raise ctx.err(("tasks",), f"must be a list drawn from {list(task_names())}, got {raw!r}")
        tasks = tuple(raw)
    baseline = None
    if "baseline" in data:
        if not isinstance(data["baseline"], str) or not data["baseline"]:
            raise ctx.err(("baseline",), f"must be a file name (string), got {data['baseline']!r}")
        baseline = (base_dir or Path.cwd()) / data["baseline"]
    description = data.get("description", "")
    if not isinstance(description, str):
        raise ctx.err(("description",), "must be a string")
    return Policy(path=path, text=text, metrics=tuple(metrics), buckets=buckets, tasks=tasks,
                  baseline=baseline, description=description)


@dataclass(frozen=True)
class _Ctx:
    path: str
    text: str

    def err(self, key: Sequence[str], problem: str) -> ThresholdError:
        return ThresholdError(self.path, ".".join(key), problem, find_line(self.text, key))


def _table(ctx: _Ctx, key: tuple[str, ...], value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ctx.err(key, f"must be a table, got {type(value).__name__} {value!r}")
    return value


def _number(ctx: _Ctx, key: tuple[str, ...], value: Any, *, nonneg: bool) -> float:
    """A number; only ``limit`` may be inf/-inf (= no limit), tolerances must be finite and >= 0."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value):
        raise ctx.err(key, f"must be a number, got {value!r}")
    if nonneg and math.isinf(value):
        raise ctx.err(key, f"must be finite, got {value!r}")
    if nonneg and value < 0:
        raise ctx.err(key, f"must be >= 0, got {value!r}")
    return float(value)


def _override(ctx: _Ctx, key: tuple[str, ...], table: Any, *, allow: Iterable[str]) -> Override:
    table = _table(ctx, key, table)
    allow = tuple(allow)
    values: dict[str, Any] = {}
    for k, v in table.items():
        if k not in allow:
            raise ctx.err(key + (k,), f"unknown key; allowed here: {', '.join(allow)}")
        if k == "baseline":
            if not isinstance(v, bool):
                raise ctx.err(key + (k,), f"must be true or false, got {v!r}")
            values[k] = v
        elif k in RULE_KEYS and k != "severity":
            values[k] = _number(ctx, key + (k,), v, nonneg=k != "limit")
        elif k == "severity":
            if v not in ("fail", "warn"):
                raise ctx.err(key + (k,), f"must be \"fail\" or \"warn\", got {v!r}")
            values[k] = v
    return Override(**values)


def _layer(ctx: _Ctx, key: tuple[str, ...], raw: str) -> int:
    if not raw.isdigit():
        raise ctx.err(key, f"layer must be a non-negative integer, got {raw!r}")
    return int(raw)


def _bucket(ctx: _Ctx, key: tuple[str, ...], raw: str) -> str:
    m = BUCKET_RE.match(raw)
    if not m or int(m.group(1)) >= int(m.group(2)):
        raise ctx.err(key, f"bucket must be \"a-b\" with a < b, got {raw!r}")
    return raw


def _metric(ctx: _Ctx, key: tuple[str, ...], table: Any, family: _families.CheckFamily, metric: str,
            task: str | None, defaults: Override) -> MetricPolicy:
    known = family.metrics()
    if metric not in known:
        raise ctx.err(key, f"unknown metric; known here: {', '.join(known)}")
    table = _table(ctx, key, table)
    direction = table.get("direction", known[metric])
    if direction not in ("lower", "higher"):
        raise ctx.err(key + ("direction",), f"must be \"lower\" or \"higher\", got {direction!r}")
    nested = ("layers", "buckets", "saes") if family.buckets else ("layers", "saes")
    own = _override(ctx, key, {k: v for k, v in table.items() if k not in nested + ("direction",)},
                    allow=RULE_KEYS + nested + ("direction",))
    base = own.apply(defaults.apply(Rule(direction=direction)))
    layers: dict[int, Override] = {}
    layer_buckets: dict[tuple[int, str], Override] = {}
    for raw, sub in _table(ctx, key + ("layers",), table.get("layers", {})).items():
        lkey = key + ("layers", raw)
        layer = _layer(ctx, lkey, raw)
        sub = _table(ctx, lkey, sub)
        inner = ("buckets",) if family.buckets else ()
        layers[layer] = _override(ctx, lkey, {k: v for k, v in sub.items() if k not in inner},
                                  allow=RULE_KEYS + inner)
        for k in sub:
            if k not in RULE_KEYS + inner:
                raise ctx.err(lkey + (k,), f"unknown key; allowed here: {', '.join(RULE_KEYS + inner)}")
        for braw, bsub in _table(ctx, lkey + ("buckets",), sub.get("buckets", {})).items():
            bkey = lkey + ("buckets", braw)
            layer_buckets[(layer, _bucket(ctx, bkey, braw))] = _override(ctx, bkey, bsub, allow=RULE_KEYS)
    buckets: dict[str, Override] = {}
    for braw, bsub in _table(ctx, key + ("buckets",), table.get("buckets", {})).items():
        bkey = key + ("buckets", braw)
        buckets[_bucket(ctx, bkey, braw)] = _override(ctx, bkey, bsub, allow=RULE_KEYS)
    saes = {str(name): _override(ctx, key + ("saes", name), sub, allow=RULE_KEYS)
            for name, sub in _table(ctx, key + ("saes",), table.get("saes", {})).items()}
    return MetricPolicy(name=family.policy_name(metric, task), family=family.name, metric=metric, task=task, base=base, layers=layers,
                        buckets=buckets, layer_buckets=layer_buckets, saes=saes)


# --------------------------------------------------------------------------------------------------
# Finding the line of a key in TOML text (tomllib does not report positions).


def _split_key(s: str) -> tuple[str, ...]:
    """``a."b.c".d`` -> ("a", "b.c", "d")."""
    parts, cur, quote = [], "", ""
    for ch in s.strip():
        if quote:
            if ch == quote:
                quote = ""
            else:
                cur += ch
        elif ch in "\"'":
            quote = ch
        elif ch == ".":
            parts.append(cur.strip())
            cur = ""
        else:
            cur += ch
    parts.append(cur.strip())
    return tuple(parts)


def _key_lines(text: str) -> Iterator[tuple[tuple[str, ...], int]]:
    """Yield (full key path, line number) for every table header and key/value line."""
    header: tuple[str, ...] = ()
    depth = 0  # open brackets of a multi-line array value
    for i, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].strip() if '"' not in raw else raw.strip()
        if depth > 0:
            depth += line.count("[") - line.count("]")
            continue
        if not line or line.startswith("#"):
            continue
        if line.startswith("[") and "=" not in line.split("]", 1)[0]:
            inner = line[2:line.index("]]")] if line.startswith("[[") else line[1:line.index("]")]
            header = _split_key(inner)
            yield header, i
        elif "=" in line:
            k, v = line.split("=", 1)
            yield header + _split_key(k), i
            depth = max(0, v.count("[") - v.count("]"))


def find_line(text: str, key: Sequence[str]) -> int | None:
    """Line (1-based) that defines ``key`` or, failing that, its closest enclosing table."""
    key = tuple(key)
    best, best_len = None, 0
    for path, line in _key_lines(text):
        n = len(path)
        if n > best_len and path == key[:n]:
            best, best_len = line, n
        elif n > len(key) and path[: len(key)] == key and best_len < len(key):
            best, best_len = line, len(key)  # e.g. a key defined only through a longer dotted path
    return best


# --------------------------------------------------------------------------------------------------
# Baselines: machine-written numbers, keyed by check id.

BASELINE_FORMAT = "sae-checks-baseline"


@dataclass(frozen=True, kw_only=True)
class BaselineEntry:
    value: float
    ci: tuple[float, float] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"value": self.value, "ci": list(self.ci) if self.ci is not None else None}


@dataclass(frozen=True, kw_only=True)
class Baselines:
    """Baseline entries by check id (``fvu-L3-pos1_128-<sae>``); ``path`` None = no file yet."""

    path: Path | None = None
    entries: dict[str, BaselineEntry] = field(default_factory=dict)
    subject: dict[str, Any] | None = None  # what it is a baseline of (``baseline_subject``); None: older file

    def get(self, check_id: str) -> BaselineEntry | None:
        return self.entries.get(check_id)

    def remapped(self, new_id: Callable[[str], str | None]) -> Baselines:
        """Entries under today's ids: ``new_id(old)`` maps an id of an older schema (None: keep as is).
        An entry already under the new id wins over a mapped one."""
        entries: dict[str, BaselineEntry] = {}
        for key, entry in self.entries.items():
            entries.setdefault(new_id(key) or key, entry)
        entries.update({k: v for k, v in self.entries.items() if k in entries})
        return Baselines(path=self.path, entries=entries, subject=self.subject)


def load_baselines(path: str | os.PathLike[str] | None) -> Baselines:
    """Read a baseline JSON file; a missing file is an empty baseline (every check is ``new``)."""
    if path is None:
        return Baselines()
    p = Path(path)
    if not p.exists():
        return Baselines(path=p)
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ThresholdError(str(p), "-", f"cannot read the baseline file: {exc}") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ThresholdError(str(p), "-", f"not valid JSON: {exc.msg}", exc.lineno) from None

    def err(key: str, problem: str) -> ThresholdError:
        line = next((i for i, ln in enumerate(text.splitlines(), 1) if f'"{key}"' in ln), None)
        return ThresholdError(str(p), key, problem + " (regenerate it with --sae-update-baseline all)", line)

    if not isinstance(data, dict) or data.get("format") != BASELINE_FORMAT:
        raise err("format", f"not a sae-checks baseline file (expected \"format\": \"{BASELINE_FORMAT}\")")
    if not isinstance(data.get("entries") or {}, dict):
        raise err("entries", f"must be an object of check id -> entry, got {type(data['entries']).__name__}")
    entries: dict[str, BaselineEntry] = {}
    for cid, entry in (data.get("entries") or {}).items():
        if not isinstance(entry, dict) or set(entry) - {"value", "ci"}:
            raise err(cid, "each entry must be {\"value\": number, \"ci\": [lo, hi] or null}")
        value, ci = entry.get("value"), entry.get("ci")
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise err(cid, f"value must be a number, got {value!r}")
        if ci is not None and not (isinstance(ci, list) and len(ci) == 2
                                   and all(isinstance(c, (int, float)) and not isinstance(c, bool) for c in ci)):
            raise err(cid, f"ci must be [lo, hi] or null, got {ci!r}")
        # Python's json reads NaN / Infinity; a NaN baseline would make every comparison false (= pass)
        if not math.isfinite(value) or (ci is not None and not all(math.isfinite(c) for c in ci)):
            raise err(cid, f"non-finite number (value {value!r}, ci {ci!r}); baselines hold finite numbers only")
        entries[cid] = BaselineEntry(value=float(value), ci=(float(ci[0]), float(ci[1])) if ci else None)
    subject = data.get("subject")
    if subject is not None and not (isinstance(subject, dict) and isinstance(subject.get("model"), str)
                                    and isinstance(subject.get("saes"), dict)):
        raise err("subject", "must be {\"model\": name, \"saes\": {name: sha256}, \"ctx_len\", \"data\"}")
    return Baselines(path=p, entries=entries, subject=subject)


def write_baselines(path: str | os.PathLike[str], entries: Mapping[str, BaselineEntry],
                    subject: Mapping[str, Any] | None = None) -> None:
    """Write atomically (short temporary file in the same folder, then os.replace; mode per the umask);
    sorted keys. ``subject``: what the numbers are a baseline of (``baseline_subject``)."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    data: dict[str, Any] = {"format": BASELINE_FORMAT, "version": 1,
                            "entries": {k: entries[k].to_dict() for k in sorted(entries)}}
    if subject is not None:
        data["subject"] = dict(subject)
    from sae_checks.io import atomic_write_json

    atomic_write_json(p, data)


def updated_baselines(old: Baselines, checks: Iterable[Mapping[str, Any]],
                      mode: Literal["new", "all"]) -> tuple[dict[str, BaselineEntry], list[str]]:
    """Entries after an update from judged check dicts. ``new``: add new and failing checks; ``all``:
    every judged check. Non-finite values are never written. Returns (entries, ids written)."""
    entries = dict(old.entries)
    written = []
    for c in checks:
        value = c.get("value")
        if mode == "new" and c["status"] not in ("new", "fail"):
            continue
        if value is None or not math.isfinite(value):
            continue
        ci = c.get("ci") or None
        if ci is not None and all(v is not None and math.isfinite(v) for v in ci):
            ci = (float(ci[0]), float(ci[1]))
        else:
            ci = None
        entries[c["id"]] = BaselineEntry(value=float(value), ci=ci)
        written.append(c["id"])
    return entries, sorted(written)


def unsafe_tolerances(rules: Mapping[str, Rule], baselines: Baselines) -> list[str]:
    """Check ids whose band ``max(abs_tol, rel_tol*|baseline|)`` is narrower than the baseline's CI
    half-width: re-running the same SAE on other data could fail them. ``rules``: check id -> Rule."""
    out = []
    for cid, rule in sorted(rules.items()):
        entry = baselines.get(cid)
        if entry is None or entry.ci is None:
            continue
        half = (entry.ci[1] - entry.ci[0]) / 2
        band = rule.band(entry.value)
        if band < half * (1 - 1e-9):  # ignore float noise in the CI bounds
            out.append(f"{cid}: band {band:.4g} < CI half-width {half:.4g}")
    return out


def baseline_subject(report: Mapping[str, Any], model: str) -> dict[str, Any]:
    """What a report's numbers are a baseline of: the model (as configured: ``zoo``, ``gpt2-small``), the
    SAEs (name -> sha256 of the weights), the context length and the data set."""
    prov = report.get("provenance", {})
    data = prov.get("data", {}) or {}
    return {"model": model,
            "saes": {str(s.get("name")): str(s.get("sha256") or "") for s in prov.get("saes", []) or []},
            "ctx_len": data.get("ctx_len"), "data": data.get("dataset")}


def subject_mismatch(subject: Mapping[str, Any] | None, *, model: str, saes: Iterable[str]) -> str | None:
    """Why a baseline of ``subject`` cannot judge a run of ``model`` on SAEs ``saes`` (another model, or
    none of these SAEs), or None when it can (or records no subject: an older file)."""
    if subject is None:
        return None
    names = set(saes)
    theirs = set(subject.get("saes", {}))
    if subject.get("model") != model:
        return f"it is a baseline of model {subject.get('model')!r}, this run is model {model!r}"
    if names and theirs and not names & theirs:
        return (f"it is a baseline of SAEs {', '.join(sorted(theirs)[:5])}{' ...' if len(theirs) > 5 else ''}; "
                f"this run has none of them ({', '.join(sorted(names)[:5])}{' ...' if len(names) > 5 else ''})")
    return None


def baselines_from_report(report: Mapping[str, Any], old: Baselines, mode: Literal["new", "all"], *,
                          model: str) -> tuple[dict[str, BaselineEntry], list[str], dict[str, Any]]:
    """(entries, ids written, subject) for a baseline update from a report's judged checks. Refuses
    (ThresholdError) a report of a run that stopped early (``"incomplete": true``): its numbers would
    silently drop the checks that did not run."""
    if report.get("incomplete"):
        not_run = list(report.get("not_run") or [])
        raise ThresholdError(str(old.path or "<baseline>"), "-",
                             f"refusing to write a baseline from an incomplete run ({len(not_run)} planned "
                             f"checks did not run, e.g. {', '.join(not_run[:3])}); rerun the whole gate")
    entries, written = updated_baselines(old, report.get("checks", []), mode)
    subject = baseline_subject(report, model)
    if old.subject is not None and mode == "new" and old.subject.get("model") == model:
        subject["saes"] = {**old.subject.get("saes", {}), **subject["saes"]}
    return entries, written, subject
