"""Check planning and judging: pure functions over the JSON-ready ``results`` dict (no torch, no I/O).

A check is one (metric, layer, bucket) -- or (context ratio, layer), (cloze task metric, layer),
(propagation metric, upstream, downstream) -- with a stable id used as the baseline key:

    fvu/layer=3/bucket=1-128          results["per_bucket"]["3"]["1-128"]["fvu"]            {"mean", "ci"}
    context_ratio/fvu/layer=3         results["context_generalization"]["3"]["fvu"]         {"ratio", "ci"}
    cloze/lambada/acc_word/layer=3    results["cloze"]["lambada"]["per_layer"]["3"][...]    {"mean", "ci"}
    propagation/mse/up=1/down=3       results["propagation"]["mse"][i][j]                   float

Judging (DESIGN.md section 5), in order: a non-finite or missing value fails; a value past the absolute
``limit`` fails; no baseline entry is ``new`` (fails); past the band ``max(abs_tol, rel_tol*|baseline|)``
on the bad side fails, on the good side is ``improved``. ``severity = "warn"`` turns the limit and band
failures into ``warn``. Only ``fail`` and ``new`` fail the gate.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from sae_checks.gate.thresholds import Baselines, Family, Policy, Rule

Status = Literal["pass", "fail", "warn", "improved", "new"]
STATUSES: tuple[Status, ...] = ("pass", "fail", "warn", "improved", "new")
FIX = "rerun with --sae-update-baseline"


class GateWarning(UserWarning):
    """A check with status ``warn`` or ``improved``, or a tolerance narrower than the baseline's CI."""


@dataclass(frozen=True, kw_only=True)
class CheckSpec:
    """One planned check: what to read from the results and which policy entry judges it."""

    id: str
    family: Family
    metric: str  # policy name: "fvu", "context_ratio.fvu", "cloze.lambada.acc_word", "propagation.mse"
    layer: int  # for propagation: the downstream layer
    bucket: str | None = None
    upstream: int | None = None  # propagation only

    @property
    def group(self) -> str:
        """xdist group: one per layer; propagation needs several layers, so it has its own group."""
        return "sae-propagation" if self.family == "propagation" else f"sae-layer-{self.layer}"


@dataclass(frozen=True, kw_only=True)
class Check:
    """A judged check; ``to_dict`` is the report's check entry (DESIGN.md section 6)."""

    id: str
    metric: str
    layer: int
    bucket: str | None
    value: float | None
    ci: tuple[float, float] | None
    baseline: float | None
    limit: float | None
    band: tuple[float, float] | None  # [baseline - tol, baseline + tol]
    direction: str
    severity: str
    status: Status
    message: str
    reason: str | None = None  # why not pass: nonfinite | missing | limit | band | no_baseline | improved
    upstream: int | None = None

    @property
    def failed(self) -> bool:
        return self.status in ("fail", "new")

    def to_dict(self) -> dict[str, Any]:
        def num(v: float | None) -> float | None:
            return v if v is not None and math.isfinite(v) else None

        d: dict[str, Any] = {
            "id": self.id, "metric": self.metric, "layer": self.layer, "bucket": self.bucket,
            "value": num(self.value), "ci": list(self.ci) if self.ci else None, "baseline": self.baseline,
            "limit": self.limit, "band": list(self.band) if self.band else None, "direction": self.direction,
            "severity": self.severity, "status": self.status, "message": self.message, "reason": self.reason,
        }
        if self.upstream is not None:
            d["upstream"] = self.upstream
        return d


def check_id(family: Family, metric: str, layer: int, bucket: str | None = None,
             upstream: int | None = None) -> str:
    """The baseline key of a check (never a pytest node id: xdist rewrites those)."""
    if family == "bucket":
        return f"{metric}/layer={layer}/bucket={bucket}"
    if family == "propagation":
        return f"{metric.replace('.', '/')}/up={upstream}/down={layer}"
    return f"{metric.replace('.', '/')}/layer={layer}"


def plan_checks(policy: Policy, *, layers: Sequence[int], buckets: Mapping[int, Sequence[str]],
                tasks: Sequence[str]) -> list[CheckSpec]:
    """Every check the policy names for these layers/buckets/tasks, in a deterministic order
    (family, metric in policy order, layer, bucket) so every xdist worker plans the same list."""
    specs: list[CheckSpec] = []
    layers = sorted(layers)
    for m in policy.metrics:
        if m.family == "bucket":
            specs += [CheckSpec(id=check_id("bucket", m.name, L, b), family="bucket", metric=m.name, layer=L, bucket=b)
                      for L in layers for b in buckets.get(L, ())]
        elif m.family == "context_ratio":
            specs += [CheckSpec(id=check_id("context_ratio", m.name, L), family="context_ratio", metric=m.name,
                                layer=L) for L in layers]
        elif m.family == "cloze" and m.task in tasks:
            specs += [CheckSpec(id=check_id("cloze", m.name, L), family="cloze", metric=m.name, layer=L)
                      for L in layers]
        elif m.family == "propagation":
            specs += [CheckSpec(id=check_id("propagation", m.name, j, upstream=i), family="propagation",
                                metric=m.name, layer=j, upstream=i)
                      for i in layers for j in layers if i < j]
    order = {"bucket": 0, "context_ratio": 1, "cloze": 2, "propagation": 3}
    return sorted(specs, key=lambda s: order[s.family])  # stable: keeps policy order within a family


def lookup(results: Mapping[str, Any], spec: CheckSpec) -> tuple[float | None, tuple[float, float] | None]:
    """(value, ci) of a check in the results; (None, None) when the results do not have it."""
    L = str(spec.layer)
    try:
        if spec.family == "bucket":
            est = results["per_bucket"][L][spec.bucket][spec.metric]
            return _float(est.get("mean")), _ci(est.get("ci"))
        if spec.family == "context_ratio":
            est = results["context_generalization"][L][spec.metric.split(".", 1)[1]]
            return _float(est.get("ratio")), _ci(est.get("ci"))
        if spec.family == "cloze":
            _, task, metric = spec.metric.split(".")
            est = results["cloze"][task]["per_layer"][L][metric]
            if isinstance(est, dict):
                return _float(est.get("mean")), _ci(est.get("ci"))
            return _float(est), None
        prop = results["propagation"]
        layers = list(prop["layers"])
        matrix = prop[spec.metric.split(".", 1)[1]]
        return _float(matrix[layers.index(spec.upstream)][layers.index(spec.layer)]), None
    except (KeyError, IndexError, ValueError, TypeError):
        return None, None


def _float(v: Any) -> float | None:
    return None if v is None else float(v)


def _ci(v: Any) -> tuple[float, float] | None:
    if not v or v[0] is None or v[1] is None:
        return None
    return float(v[0]), float(v[1])


def _fmt(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.4g}"


def judge(spec: CheckSpec, results: Mapping[str, Any], rule: Rule, baselines: Baselines) -> Check:
    """Judge one check against its rule and baseline (see the module docstring for the order)."""
    value, ci = lookup(results, spec)
    entry = baselines.get(spec.id)
    base = entry.value if entry else None
    tol = rule.band(base) if base is not None else None
    band = (base - tol, base + tol) if base is not None and tol is not None else None
    lower = rule.direction == "lower"
    soft: Status = "warn" if rule.severity == "warn" else "fail"
    where = f"layer {spec.layer}" if spec.upstream is None else f"upstream layer {spec.upstream} -> layer {spec.layer}"
    if spec.bucket:
        where += f", positions [{spec.bucket.replace('-', ', ')})"
    shown = _fmt(value) + (f" (CI {_fmt(ci[0])}..{_fmt(ci[1])})" if ci else "")
    head = f"{spec.metric} at {where} = {shown}"
    band_txt = (f"baseline {_fmt(base)}, band {_fmt(band[0])}..{_fmt(band[1])} "
                f"({rule.direction} is better)") if band else "no baseline"

    def make(status: Status, reason: str | None, message: str) -> Check:
        return Check(id=spec.id, metric=spec.metric, layer=spec.layer, bucket=spec.bucket, value=value, ci=ci,
                     baseline=base, limit=rule.limit, band=band, direction=rule.direction,
                     severity=rule.severity, status=status, message=message, reason=reason,
                     upstream=spec.upstream)

    if value is None:
        return make("fail", "missing", f"{spec.metric} at {where}: not in the results (the policy checks it; "
                    "was the run configured to compute it, e.g. zero_ablation for ce_loss_score?)")
    if not math.isfinite(value):
        return make("fail", "nonfinite", f"{head}: non-finite value; see results['nonfinite'] for the first "
                    "sequence and position")
    # defensive: a NaN limit, or a band from a non-finite baseline, compares false both ways (= pass)
    bad_rule = rule.limit is not None and math.isnan(rule.limit)
    if bad_rule or (base is not None and not (math.isfinite(base) and tol is not None and math.isfinite(tol))):
        return make("fail", "bad_baseline", f"{head}: non-finite limit {_fmt(rule.limit)} or baseline {_fmt(base)}"
                    " cannot be compared; fix the policy, or regenerate the baseline with --sae-update-baseline all")
    if rule.limit is not None and (value > rule.limit if lower else value < rule.limit):
        word = "above the limit" if lower else "below the limit"
        return make(soft, "limit", f"{head}: {word} {_fmt(rule.limit)} ({band_txt}). Fix the SAE, or relax "
                    f"the limit in the policy file")
    if entry is None:
        return make("new", "no_baseline", f"{head}: new check, no baseline entry "
                    f"(limit {_fmt(rule.limit)}); {FIX} new")
    assert band is not None
    worse = value > band[1] if lower else value < band[0]
    better = value < band[0] if lower else value > band[1]
    if worse:
        return make(soft, "band", f"{head}: worse than {band_txt}. If the change is intended, {FIX} all "
                    f"(or new to update only failing checks)")
    if better:
        return make("improved", "improved", f"{head}: better than {band_txt}; {FIX} all to lock it in")
    return make("pass", None, f"{head}: within {band_txt}" + (f", limit {_fmt(rule.limit)}" if rule.limit is not None else ""))


def rules_for(policy: Policy, specs: Iterable[CheckSpec]) -> dict[str, Rule]:
    """check id -> resolved rule."""
    out = {}
    for s in specs:
        mp = policy.get(s.metric)
        assert mp is not None, s.metric
        out[s.id] = mp.rule(s.layer, s.bucket)
    return out


def summarize(checks: Iterable[Mapping[str, Any]]) -> dict[str, int]:
    """Counts by status (the report's ``summary``)."""
    counts: dict[str, int] = dict.fromkeys(STATUSES, 0)
    for c in checks:
        counts[c["status"]] += 1
    return counts


def unused_baselines(baselines: Baselines, judged_ids: Iterable[str]) -> list[str]:
    """Baseline entries no judged check used (meaningful only after a full run)."""
    return sorted(set(baselines.entries) - set(judged_ids))


# --------------------------------------------------------------------------------------------------
# Merging results from several engine runs (per layer, per xdist worker).


def merge_results(a: Mapping[str, Any], b: Mapping[str, Any]) -> dict[str, Any]:
    """Union of two results dicts from runs over different layers. Per-layer tables merge by key;
    ``nonfinite`` lists concatenate; ``propagation`` keeps the run that covered more layers."""
    out = dict(a)
    for key, bv in b.items():
        av = out.get(key)
        if av is None:
            out[key] = bv
        elif key == "propagation":
            if len(bv.get("layers", ())) > len(av.get("layers", ())):
                out[key] = bv
        elif key == "nonfinite" and isinstance(av, list):
            out[key] = av + [x for x in bv if x not in av]
        elif isinstance(av, dict) and isinstance(bv, dict):
            out[key] = merge_results(av, bv)
    return out


def merge_provenance(a: Mapping[str, Any], b: Mapping[str, Any]) -> dict[str, Any]:
    """Provenance of the union: the first run's fields, ``saes`` unioned and sorted by layer."""
    out = dict(a) if a else dict(b)
    if a and b:
        seen = {s.get("layer"): s for s in list(b.get("saes", [])) + list(a.get("saes", []))}
        out["saes"] = [seen[k] for k in sorted(seen, key=lambda x: (x is None, x))]
    return out
