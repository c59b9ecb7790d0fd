"""Read-only accessors over a report dict (docs/report.md, docs/architecture.md `results`), keyed
by SAE name (schema_version 2; read version 1 reports through ``io.read_report``, which upgrades them).

Every figure and the HTML page read the report through these functions only, and these read its
sections through ``sae_checks.results`` (``Results.section``, ``Estimate``), so that when a producer
(engine, cloze, features) renames a key, there is one place to align. Each accessor is
defensive: a missing or malformed section yields ``None`` / an empty container, never an exception;
the caller turns that into a "skipped" note. No torch, no model: plain dicts, lists and numpy.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np

from sae_checks.metrics import registry
from sae_checks.report.upgrade import sae_name
from sae_checks.results import Estimate, Results
from sae_checks.status import rank as status_rank  # noqa: F401  (sort key: what blocks publishing first)

# The post's log-spaced view of positions (docs/definitions.md): 1, 2, 4, ..., 512, plus T-2.
POST_POSITIONS = tuple(2**k for k in range(10))


def metric_label(metric: str) -> str:
    """Axis label with units for ``metric``, from ``sae_checks.metrics.registry`` (the bare name where
    the registry does not know it)."""
    return registry.axis_label(metric)


def to_float(value: Any) -> float:
    """``value`` as a float; ``nan`` for None, non-numbers and non-finite strings."""
    if isinstance(value, bool) or value is None:
        return math.nan
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def as_array(values: Any) -> np.ndarray:
    """A JSON list (with nulls) as a float array, nulls as nan; an empty array for anything else."""
    if not isinstance(values, Sequence) or isinstance(values, str):
        return np.zeros(0)
    return np.array([to_float(v) for v in values], dtype=float)


def estimate(value: Any) -> Estimate:
    """Read ``{"mean", "ci": [lo, hi]}``, ``{"value", "ci_lo", "ci_hi"}`` or a bare number (nan where
    unreadable): ``sae_checks.results.Estimate.lenient``."""
    return Estimate.lenient(value)


class SaeInfo(NamedTuple):
    """What the figures need to know about one SAE."""

    name: str
    layer: int | None
    hook: str  # "" when unknown
    context_size: int | None
    d_sae: int | None

    @property
    def kind(self) -> str:
        """The hook without its block: ``hook_resid_pre``, ``attn.hook_z`` (the hook itself if not ``blocks.L.*``)."""
        match = re.match(r"^blocks\.\d+\.(.+)$", self.hook)
        return match.group(1) if match else self.hook


def _int(value: Any) -> int | None:
    x = to_float(value)
    return int(x) if math.isfinite(x) else None


def saes(report: Mapping[str, Any]) -> dict[str, SaeInfo]:
    """``{name: SaeInfo}`` from ``results.saes`` and ``provenance.saes``, ordered by (layer, hook, name)."""
    out: dict[str, SaeInfo] = {}
    for entry in provenance(report).get("saes") or []:
        if isinstance(entry, Mapping):
            name = sae_name(entry)
            out[name] = SaeInfo(name, _int(entry.get("layer")), str(entry.get("hook") or ""),
                                _int(entry.get("context_size")), _int(entry.get("d_sae")))
    info = results(report).get("saes")
    for name, entry in (info.items() if isinstance(info, Mapping) else ()):
        if isinstance(entry, Mapping):
            old = out.get(str(name))
            out[str(name)] = SaeInfo(
                str(name), _int(entry.get("layer")) if "layer" in entry else (old.layer if old else None),
                str(entry.get("hook") or (old.hook if old else "")),
                _int(entry.get("context_size")) or (old.context_size if old else None),
                _int(entry.get("d_sae")) or (old.d_sae if old else None))
    return dict(sorted(out.items(), key=lambda kv: _info_key(kv[1])))


def _info_key(info: SaeInfo) -> tuple[int, int, str]:
    """Forward order: (layer, hook stage, name), as ``names.sae_sort_key``."""
    from sae_checks.names import sae_sort_key

    return sae_sort_key(info.layer if info.layer is not None else 1 << 30, info.hook, info.name)


def sae_sort_key(report: Mapping[str, Any]) -> Any:
    """A sort key over SAE names: (layer, hook, name) of the SAEs the report describes, others by name last."""
    known = {name: i for i, name in enumerate(saes(report))}
    return lambda name: (known.get(str(name), len(known)), str(name))


def sorted_saes(section: Any, report: Mapping[str, Any]) -> list[str]:
    """The SAE names keying ``section``, in (layer, hook, name) order."""
    if not isinstance(section, Mapping):
        return []
    return sorted((str(k) for k in section), key=sae_sort_key(report))


def sweeps(report: Mapping[str, Any]) -> dict[str, list[str]]:
    """``results.sweeps``: ``{hook: [names]}`` for hooks with at least two SAEs (empty when absent)."""
    sec = results(report).get("sweeps")
    if not isinstance(sec, Mapping):
        return {}
    return {str(h): [str(n) for n in names] for h, names in sorted(sec.items())
            if isinstance(names, Sequence) and not isinstance(names, str) and len(names) >= 2}


def by_hook(report: Mapping[str, Any], names: Sequence[str]) -> dict[str, list[str]]:
    """``names`` grouped by their SAE's hook (unknown hook: ``"?"``), hooks in (layer, hook) order."""
    info = saes(report)
    groups: dict[str, list[str]] = {}
    for name in sorted(names, key=sae_sort_key(report)):
        groups.setdefault(info[name].hook if name in info and info[name].hook else "?", []).append(name)
    return groups


def bucket_sort_key(bucket: str) -> tuple[float, str]:
    """Buckets ``"a-b"`` in order of their start."""
    match = re.match(r"\s*(-?\d+)", str(bucket))
    return (float(match.group(1)) if match else math.inf, str(bucket))


def results(report: Mapping[str, Any]) -> Mapping[str, Any]:
    """``report["results"]`` or an empty mapping."""
    return Results.from_report(report).raw


def section(report: Mapping[str, Any], name: str) -> Mapping[str, Any] | None:
    """``results[name]`` when it is a non-empty mapping, else None."""
    return Results.from_report(report).section(name)


# --------------------------------------------------------------------------------------- per position


def per_position(report: Mapping[str, Any]) -> dict[str, dict[str, np.ndarray]]:
    """``{sae: {metric: array}}`` with ``position`` included; SAEs in (layer, hook, name) order, nulls as nan."""
    sec = section(report, "per_position") or {}
    out: dict[str, dict[str, np.ndarray]] = {}
    for layer in sorted_saes(sec, report):
        entry = sec[layer]
        if not isinstance(entry, Mapping):
            continue
        arrays = {str(k): as_array(v) for k, v in entry.items()}
        if "position" not in arrays or arrays["position"].size == 0:
            n = max((a.size for a in arrays.values()), default=0)
            arrays["position"] = np.arange(n, dtype=float)
        out[layer] = arrays
    return out


def post_positions(positions: np.ndarray) -> list[int]:
    """Positions of the post's view present in ``positions``: 1, 2, 4, ..., 512 and T−2."""
    present = {int(p) for p in positions[np.isfinite(positions)]}
    if not present:
        return []
    last = max(present)  # T-1
    chosen = [p for p in POST_POSITIONS if p in present and p <= last - 1]
    if last - 1 in present and last - 1 > 0 and last - 1 not in chosen:
        chosen.append(last - 1)
    return chosen


def context_sizes(report: Mapping[str, Any]) -> dict[str, int]:
    """Training context size per SAE name, from ``results.context_size`` then the SAEs' own entries."""
    out: dict[str, int] = {}
    fallback = results(report).get("context_size")
    if isinstance(fallback, Mapping):
        for name, size in fallback.items():
            if math.isfinite(to_float(size)):
                out[str(name)] = int(to_float(size))
    for name, info in saes(report).items():
        if info.context_size is not None:
            out[name] = info.context_size
    return out


def provenance(report: Mapping[str, Any]) -> Mapping[str, Any]:
    """``report["provenance"]`` or an empty mapping."""
    prov = report.get("provenance") if isinstance(report, Mapping) else None
    return prov if isinstance(prov, Mapping) else {}


# ----------------------------------------------------------------------------------------- buckets


def per_bucket(report: Mapping[str, Any]) -> dict[str, dict[str, dict[str, Estimate]]]:
    """``{sae: {bucket: {metric: Estimate}}}``, SAEs and buckets in order."""
    sec = section(report, "per_bucket") or {}
    out: dict[str, dict[str, dict[str, Estimate]]] = {}
    for layer in sorted_saes(sec, report):
        buckets = sec[layer]
        if not isinstance(buckets, Mapping):
            continue
        out[layer] = {
            str(b): {str(m): estimate(v) for m, v in metrics.items()}
            for b, metrics in sorted(buckets.items(), key=lambda kv: bucket_sort_key(kv[0]))
            if isinstance(metrics, Mapping)
        }
    return out


class ContextRatio(NamedTuple):
    """beyond-context mean / inside-context mean of one metric of one SAE."""

    inside: str
    beyond: str
    ratio: Estimate
    from_buckets: bool  # True when computed here from per_bucket means (no CI)


def context_generalization(report: Mapping[str, Any]) -> dict[str, dict[str, ContextRatio]]:
    """``results.context_generalization`` per SAE and metric; falls back to per_bucket means
    (first bucket = inside, last = beyond) when the section is absent."""
    sec = section(report, "context_generalization")
    out: dict[str, dict[str, ContextRatio]] = {}
    if sec is not None:
        for layer in sorted_saes(sec, report):
            metrics = sec[layer]
            if not isinstance(metrics, Mapping):
                continue
            out[layer] = {}
            for metric, entry in metrics.items():
                if not isinstance(entry, Mapping):
                    continue
                ratio = estimate({"mean": entry.get("ratio"), "ci": entry.get("ci")})
                out[layer][str(metric)] = ContextRatio(
                    str(entry.get("inside", "")), str(entry.get("beyond", "")), ratio, False
                )
        return out
    for layer, buckets in per_bucket(report).items():
        names = list(buckets)
        if len(names) < 2:
            continue
        inside, beyond = names[0], names[-1]
        out[layer] = {}
        for metric in ("fvu", "l0", "delta_ce", "kl", "mse"):
            a, b = buckets[inside].get(metric), buckets[beyond].get(metric)
            if a is None or b is None or not a.value:
                continue
            out[layer][metric] = ContextRatio(
                inside, beyond, Estimate(b.value / a.value, None), True
            )
    return out


# ------------------------------------------------------------------------------------- propagation


class Propagation(NamedTuple):
    """``matrices[metric][i, j]`` for upstream SAE ``labels[i]``, downstream ``labels[j]``; nan where undefined."""

    labels: list[str]  # SAE names (``saes``), else the layers of an old report
    window: tuple[float, float] | None
    matrices: dict[str, np.ndarray]


def propagation_metrics() -> list[str]:
    """The propagation matrices drawn: the registry's propagation metrics, read at call time."""
    return list(registry.directions("propagation"))


def propagation(report: Mapping[str, Any]) -> Propagation | None:
    """The propagation section with square float matrices; None when absent or malformed.

    Accepts the documented flat form ``{"layers", "window", "mse": [[..]], ...}`` and a nested
    ``{"matrices": {metric: [[..]]}}`` variant."""
    sec = section(report, "propagation")
    if sec is None:
        return None
    nested = sec.get("matrices")
    source: Mapping[str, Any] = nested if isinstance(nested, Mapping) else sec
    layers = [str(x) for x in sec.get("saes") or sec.get("layers") or []]
    matrices: dict[str, np.ndarray] = {}
    for metric in propagation_metrics():
        rows = source.get(metric)
        if not isinstance(rows, Sequence) or not rows:
            continue
        lengths = {len(r) if isinstance(r, Sequence) else -1 for r in rows}
        if len(lengths) != 1:
            continue
        matrix = np.array([as_array(r) for r in rows], dtype=float)
        if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1]:
            continue
        matrices[metric] = matrix
    if not matrices:
        return None
    n = next(iter(matrices.values())).shape[0]
    if len(layers) != n:
        layers = [str(i) for i in range(n)]
    window = sec.get("window")
    win = (
        (to_float(window[0]), to_float(window[1]))
        if isinstance(window, Sequence) and not isinstance(window, str) and len(window) == 2
        else None
    )
    return Propagation(layers, win, matrices)


# ------------------------------------------------------------------------------------------- cloze

# Prompt classes (docs/definitions.md) with the post's colours, and spellings seen in the wild.
CLASS_COLORS = {
    "both_right": "tab:green",
    "both_wrong": "tab:red",
    "clean_only": "tab:orange",
    "spliced_only": "tab:blue",
}
CLASS_LABELS = {
    "both_right": "both right",
    "both_wrong": "both wrong",
    "clean_only": "only clean right",
    "spliced_only": "only spliced right",
}
_CLASS_SYNONYMS = {
    "both_correct": "both_right",
    "both_incorrect": "both_wrong",
    "only_clean": "clean_only",
    "only_clean_right": "clean_only",
    "clean_right": "clean_only",
    "only_spliced": "spliced_only",
    "only_spliced_right": "spliced_only",
    "spliced_right": "spliced_only",
    "sae_only": "spliced_only",
}
# Answer-CE keys the cloze runner may use; the first present wins, else −logp is used.
_CE_KEYS = ("ce", "ce_answer", "answer_ce", "nll", "ce_first_token", "loss")
_PROMPT_KEYS = ("prompts", "per_prompt")
_CLASS_KEYS = ("class", "classes", "outcome", "category")


def normalize_class(value: Any) -> str:
    """A prompt class in canonical spelling (``both_right``, ``both_wrong``, ``clean_only``,
    ``spliced_only``); unknown values are returned lower-cased with underscores."""
    key = re.sub(r"[\s\-]+", "_", str(value).strip().lower())
    return _CLASS_SYNONYMS.get(key, key)


@dataclass
class ClozeTask:
    """One cloze task, normalized: scalars as :class:`Estimate`, per-prompt columns as arrays."""

    baseline: dict[str, Estimate] = field(default_factory=dict)
    per_sae: dict[str, dict[str, Estimate]] = field(default_factory=dict)
    prompts: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)
    classes: dict[str, list[str]] = field(default_factory=dict)

    def accuracy_metrics(self) -> list[str]:
        """Metric names starting with ``acc`` present per SAE (e.g. acc_first_token, acc_word)."""
        names = {m for metrics in self.per_sae.values() for m in metrics}
        return sorted(m for m in names if m.startswith("acc"))

    def ce_metric(self) -> tuple[str, float] | None:
        """(metric name, sign): the answer CE per SAE, or ``("logp", -1)`` to plot −log p."""
        names = {m for metrics in self.per_sae.values() for m in metrics}
        for key in _CE_KEYS:
            if key in names:
                return key, 1.0
        if "logp" in names:
            return "logp", -1.0
        return None


def _columns(prompts: Any) -> tuple[dict[str, np.ndarray], list[str]]:
    """Per-prompt data as numeric columns and a class list; accepts dict-of-lists or list-of-dicts."""
    if isinstance(prompts, Sequence) and not isinstance(prompts, str):
        rows = [r for r in prompts if isinstance(r, Mapping)]
        keys = {k for r in rows for k in r}
        prompts = {k: [r.get(k) for r in rows] for k in keys}
    if not isinstance(prompts, Mapping):
        return {}, []
    classes: list[str] = []
    for key in _CLASS_KEYS:
        if isinstance(prompts.get(key), Sequence) and not isinstance(prompts.get(key), str):
            classes = [normalize_class(c) for c in prompts[key]]
            break
    cols = {
        str(k): as_array(v)
        for k, v in prompts.items()
        if k not in _CLASS_KEYS and isinstance(v, Sequence) and not isinstance(v, str)
    }
    return {k: v for k, v in cols.items() if np.isfinite(v).any()}, classes


def cloze(report: Mapping[str, Any]) -> dict[str, ClozeTask]:
    """``{task: ClozeTask}`` for every task with at least a baseline, per-SAE values or prompts."""
    sec = section(report, "cloze") or {}
    out: dict[str, ClozeTask] = {}
    for task, entry in sorted(sec.items()):
        if not isinstance(entry, Mapping):
            continue
        t = ClozeTask()
        base = entry.get("baseline", entry.get("clean"))
        if isinstance(base, Mapping):
            t.baseline = {str(k): estimate(v) for k, v in base.items() if not isinstance(v, Sequence)}
        per_sae = entry.get("per_sae")
        if isinstance(per_sae, Mapping):
            for name in sorted_saes(per_sae, report):
                metrics = per_sae[name]
                if isinstance(metrics, Mapping):
                    t.per_sae[name] = {str(m): estimate(v) for m, v in metrics.items()}
        prompts = next((entry[k] for k in _PROMPT_KEYS if isinstance(entry.get(k), Mapping)), None)
        if isinstance(prompts, Mapping):
            for layer in sorted_saes(prompts, report):
                cols, classes = _columns(prompts[layer])
                if cols:
                    t.prompts[layer] = cols
                    t.classes[layer] = classes
        if t.baseline or t.per_sae or t.prompts:
            out[str(task)] = t
    return out


# ---------------------------------------------------------------------------------------- features

FEATURE_HISTS = ("mean_delta_logp", "score")
_HIST_KEYS = ("hist", "hists", "histogram", "histograms")
_HIST_SYNONYMS = {"mean_delta_logp": ("mean_delta_logp", "mean_dlogp"), "score": ("score", "scores")}


def _hist(entry: Any) -> tuple[np.ndarray, np.ndarray] | None:
    """``{"bins", "counts"}`` (bins as edges, len n+1, or centres, len n) as (edges, counts);
    a plain list of per-feature values is histogrammed here."""
    if isinstance(entry, Mapping):
        bins = as_array(entry.get("bins", entry.get("edges")))
        counts = as_array(entry.get("counts"))
        if counts.size == 0 or not np.isfinite(bins).all():
            return None
        if bins.size == counts.size + 1:
            return bins, counts
        if bins.size == counts.size and bins.size >= 2:
            step = np.diff(bins).mean()
            return np.append(bins - step / 2, bins[-1] + step / 2), counts
        return None
    values = as_array(entry)
    values = values[np.isfinite(values)]
    if values.size == 0:
        return None
    counts, edges = np.histogram(values, bins=min(50, max(5, int(np.sqrt(values.size)))))
    return edges, counts.astype(float)


def feature_hists(report: Mapping[str, Any]) -> dict[str, dict[str, tuple[np.ndarray, np.ndarray]]]:
    """``{kind: {sae: (edges, counts)}}`` for kind in ``mean_delta_logp``, ``score``."""
    sec = section(report, "features") or {}
    out: dict[str, dict[str, tuple[np.ndarray, np.ndarray]]] = {k: {} for k in FEATURE_HISTS}
    for layer in sorted_saes(sec, report):
        entry = sec[layer]
        if not isinstance(entry, Mapping):
            continue
        hists = next((entry[k] for k in _HIST_KEYS if isinstance(entry.get(k), Mapping)), entry)
        for kind in FEATURE_HISTS:
            for key in _HIST_SYNONYMS[kind]:
                h = _hist(hists.get(key)) if isinstance(hists, Mapping) else None
                if h is not None:
                    out[kind][layer] = h
                    break
    return {k: v for k, v in out.items() if v}


# ------------------------------------------------------------------------------------------ checks



def checks(report: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """The checks list (entries that are mappings), failures first, then by id."""
    raw = report.get("checks") if isinstance(report, Mapping) else None
    rows = [c for c in raw or [] if isinstance(c, Mapping)] if isinstance(raw, list) else []
    return sorted(rows, key=lambda c: (status_rank(str(c.get("status", ""))), str(c.get("id", ""))))


def custom_checks(report: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """One's own checks (``sae_record``: report["custom_checks"]), failures first, then by id."""
    raw = report.get("custom_checks") if isinstance(report, Mapping) else None
    rows = [c for c in raw or [] if isinstance(c, Mapping)] if isinstance(raw, list) else []
    return sorted(rows, key=lambda c: (status_rank(str(c.get("status", ""))), str(c.get("id", ""))))


def status_counts(report: Mapping[str, Any]) -> dict[str, int]:
    """Counts by status of the gate's checks and one's own: from the lists when present, else from
    ``summary`` (which counts both)."""
    counts: dict[str, int] = {}
    rows = [*checks(report), *custom_checks(report)]
    if rows:
        for c in rows:
            s = str(c.get("status", "unknown"))
            counts[s] = counts.get(s, 0) + 1
    else:
        summary = report.get("summary") if isinstance(report, Mapping) else None
        if isinstance(summary, Mapping):
            for s, n in summary.items():
                if math.isfinite(to_float(n)):
                    counts[str(s)] = int(to_float(n))
    return dict(sorted(counts.items(), key=lambda kv: status_rank(kv[0])))
