"""Check planning and judging: pure functions over the JSON-ready ``results`` dict (no torch, no I/O).

The unit of a check is an SAE (its name: release id or folder name; layer and hook are fields). A check
is one (metric, SAE, bucket) -- or (context ratio, SAE), (cloze task metric, SAE), (propagation metric,
upstream SAE, downstream SAE) -- with a stable id used as the baseline key, the pytest id and ``-k``
target. Ids use only ``[A-Za-z0-9_.+-]`` (``-k "fvu and L3"`` selects what one expects); the SAE part
is ``names.slug(name)``:

    fvu-L3-pos1_128-<sae>                 results["per_bucket"][name]["1-128"]["fvu"]           {"mean", "ci"}
    context_ratio-fvu-L3-<sae>            results["context_generalization"][name]["fvu"]        {"ratio", "ci"}
    cloze-lambada-acc_word-L3-<sae>       results["cloze"]["lambada"]["per_sae"][name][...]     {"mean", "ci"}
    propagation-mse-L1-<up>-to-L3-<down>  results["propagation"]["mse"][i][j]                   float

Ids of schema 1 (``fvu/layer=3/bucket=1-128``, ``context_ratio/fvu/layer=3``,
``cloze/lambada/acc_word/layer=3``, ``propagation/mse/up=1/down=3``), from when the unit was a layer,
are mapped to the SAE at that layer by ``legacy_id`` so published baselines stay valid.

Judging (DESIGN.md section 5), in order: a non-finite or missing value fails; a value past the absolute
``limit`` fails; no baseline entry is ``new`` (fails); past the band ``max(abs_tol, rel_tol*|baseline|)``
on the bad side fails, on the good side is ``improved``. ``severity = "warn"`` turns the limit and band
failures into ``warn``. Only ``fail`` and ``new`` fail the gate.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sae_checks.gate.thresholds import Baselines, Family, Policy, Rule
from sae_checks.names import check_id, slug
from sae_checks.status import STATUSES, Status, count, fails  # noqa: F401  (STATUSES, Status re-exported)

FIX = "rerun with --sae-update-baseline"


class GateWarning(UserWarning):
    """A check with status ``warn`` or ``improved``, or a tolerance narrower than the baseline's CI."""


@dataclass(frozen=True, kw_only=True)
class CheckSpec:
    """One planned check: what to read from the results and which policy entry judges it."""

    id: str
    family: Family
    metric: str  # policy name: "fvu", "context_ratio.fvu", "cloze.lambada.acc_word", "propagation.mse"
    sae: str  # the SAE's name; for propagation the downstream SAE
    layer: int  # the SAE's layer (policy overrides by layer apply)
    hook: str = ""  # the SAE's hook
    bucket: str | None = None
    upstream: int | None = None  # propagation only: the upstream SAE's layer
    upstream_sae: str | None = None  # propagation only: the upstream SAE's name

    @property
    def group(self) -> str:
        """xdist group: one per SAE (a propagation check goes with its upstream SAE, whose run fills it)."""
        return f"sae-{slug(self.upstream_sae if self.family == 'propagation' and self.upstream_sae else self.sae)}"


@dataclass(frozen=True, kw_only=True)
class Check:
    """A judged check; ``to_dict`` is the report's check entry (DESIGN.md section 6)."""

    id: str
    metric: str
    sae: str
    layer: int
    hook: str
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
    upstream_sae: str | None = None

    @property
    def failed(self) -> bool:
        return fails(self.status)

    def to_dict(self) -> dict[str, Any]:
        def num(v: float | None) -> float | None:
            return v if v is not None and math.isfinite(v) else None

        d: dict[str, Any] = {
            "id": self.id, "metric": self.metric, "sae": self.sae, "layer": self.layer, "hook": self.hook,
            "bucket": self.bucket,
            "value": num(self.value), "ci": list(self.ci) if self.ci else None, "baseline": self.baseline,
            "limit": self.limit, "band": list(self.band) if self.band else None, "direction": self.direction,
            "severity": self.severity, "status": self.status, "message": self.message, "reason": self.reason,
        }
        if self.upstream is not None:
            d["upstream"] = self.upstream
            d["upstream_sae"] = self.upstream_sae
        return d


def legacy_id(old: str, specs: Iterable[CheckSpec]) -> str | None:
    """The id of today's check that a schema-1 id (``fvu/layer=3/bucket=1-128``: one SAE per layer)
    named, when its layer has exactly one planned SAE and the check is planned; else None. The mapping
    is the report's (``report.upgrade.upgrade_check_id``), so baselines and old reports map alike."""
    from sae_checks.report.upgrade import upgrade_check_id

    specs = list(specs)
    by_layer: dict[str, set[str]] = {}
    for s in specs:
        by_layer.setdefault(str(s.layer), set()).add(s.sae)
        if s.upstream is not None and s.upstream_sae is not None:
            by_layer.setdefault(str(s.upstream), set()).add(s.upstream_sae)
    new, _ = upgrade_check_id(old, {layer: sorted(names) for layer, names in by_layer.items()})
    return new if new != old and new in {s.id for s in specs} else None


def plan_checks(policy: Policy, *, saes: Mapping[str, Any], buckets: Mapping[str, Sequence[str]],
                tasks: Sequence[str], pairs: Sequence[tuple[str, str]] = (),
                others: Mapping[str, Any] | None = None) -> list[CheckSpec]:
    """Every check the policy names for these SAEs (name -> object with ``layer`` and ``hook``, in
    forward order), buckets and tasks, in a deterministic order (family, metric in policy order, SAE,
    bucket) so every xdist worker plans the same list. ``pairs``: (upstream, downstream) propagation pairs;
    ``others``: SAEs outside this run (a shard's) that pairs may name as downstream."""
    specs: list[CheckSpec] = []
    every = {**(others or {}), **saes}

    def spec(family: Family, m: Any, name: str, bucket: str | None = None) -> CheckSpec:
        s = saes[name]
        return CheckSpec(id=check_id(family, m.name, s.layer, name, bucket), family=family, metric=m.name,
                         sae=name, layer=s.layer, hook=s.hook, bucket=bucket)

    for m in policy.metrics:
        if m.family == "bucket":
            specs += [spec("bucket", m, n, b) for n in saes for b in buckets.get(n, ())]
        elif m.family == "context_ratio":
            specs += [spec("context_ratio", m, n) for n in saes]
        elif m.family == "cloze" and m.task in tasks:
            specs += [spec("cloze", m, n) for n in saes]
        elif m.family == "propagation":
            specs += [CheckSpec(id=check_id("propagation", m.name, every[d].layer, d, upstream=every[u].layer,
                                            upstream_sae=u),
                                family="propagation", metric=m.name, sae=d, layer=every[d].layer,
                                hook=every[d].hook, upstream=every[u].layer, upstream_sae=u)
                      for u, d in pairs]
    order = {"bucket": 0, "context_ratio": 1, "cloze": 2, "propagation": 3}
    return sorted(specs, key=lambda s: order[s.family])  # stable: keeps policy order within a family


def lookup(results: Mapping[str, Any], spec: CheckSpec) -> tuple[float | None, tuple[float, float] | None]:
    """(value, ci) of a check in the results; (None, None) when the results do not have it."""
    L = spec.sae
    try:
        if spec.family == "bucket":
            est = results["per_bucket"][L][spec.bucket][spec.metric]
            return _float(est.get("mean")), _ci(est.get("ci"))
        if spec.family == "context_ratio":
            est = results["context_generalization"][L][spec.metric.split(".", 1)[1]]
            return _float(est.get("ratio")), _ci(est.get("ci"))
        if spec.family == "cloze":
            _, task, metric = spec.metric.split(".")
            est = results["cloze"][task]["per_sae"][L][metric]
            if isinstance(est, dict):
                return _float(est.get("mean")), _ci(est.get("ci"))
            return _float(est), None
        prop = results["propagation"]
        names = list(prop["saes"])
        matrix = prop[spec.metric.split(".", 1)[1]]
        return _float(matrix[names.index(spec.upstream_sae)][names.index(spec.sae)]), None
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
    where = (f"SAE {spec.sae} (layer {spec.layer})" if spec.upstream is None
             else f"upstream SAE {spec.upstream_sae} (layer {spec.upstream}) -> SAE {spec.sae} (layer {spec.layer})")
    if spec.bucket:
        where += f", positions [{spec.bucket.replace('-', ', ')})"
    shown = _fmt(value) + (f" (CI {_fmt(ci[0])}..{_fmt(ci[1])})" if ci else "")
    head = f"{spec.metric} at {where} = {shown}"
    band_txt = (f"baseline {_fmt(base)}, band {_fmt(band[0])}..{_fmt(band[1])} "
                f"({rule.direction} is better)") if band else "no baseline"

    def make(status: Status, reason: str | None, message: str) -> Check:
        return Check(id=spec.id, metric=spec.metric, sae=spec.sae, layer=spec.layer, hook=spec.hook,
                     bucket=spec.bucket, value=value, ci=ci, baseline=base, limit=rule.limit, band=band,
                     direction=rule.direction, severity=rule.severity, status=status, message=message,
                     reason=reason, upstream=spec.upstream, upstream_sae=spec.upstream_sae)

    broken = {e.get("sae") for e in results.get("nonfinite") or () if e.get("where") == "weights"}
    if spec.sae in broken or (spec.upstream_sae is not None and spec.upstream_sae in broken):
        return make("fail", "nonfinite", f"{head}: the SAE has non-finite weights (provenance.saes[].nonfinite_params)")
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
    """Counts by status (the report's ``summary``; ``status.count``)."""
    return count(checks)


def unused_baselines(baselines: Baselines, judged_ids: Iterable[str]) -> list[str]:
    """Baseline entries no judged check used (meaningful only after a full run)."""
    return sorted(set(baselines.entries) - set(judged_ids))


from sae_checks.report.merge import merge_propagation, merge_provenance, merge_results  # noqa: E402,F401
