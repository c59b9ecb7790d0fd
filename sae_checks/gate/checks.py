"""Check planning and judging: pure functions over the JSON-ready ``results`` dict (no torch, no I/O).

The unit of a check is an SAE (its name: release id or folder name; layer and hook are fields). A check
is one (metric, SAE, bucket) -- or (context ratio, SAE), (cloze task metric, SAE), (propagation metric,
upstream SAE, downstream SAE) -- with a stable id used as the baseline key, the pytest id and ``-k``
target. Ids use only ``[A-Za-z0-9_.+-]`` (``-k "fvu and L3"`` selects what one expects); the SAE part
is ``names.slug(name)``:

    fvu-L3-pos1_128-<sae>                 bucket          (per SAE and position bucket)
    context_ratio-fvu-L3-<sae>            context_ratio   (per SAE)
    cloze-lambada-acc_word-L3-<sae>       cloze           (per task and SAE)
    propagation-mse-L1-<up>-to-L3-<down>  propagation     (per upstream, downstream SAE pair)

Each family (``sae_checks.gate.families``) says which checks a policy entry plans and where their
numbers are in the results; this module only drives them.

Ids of schema 1 (``fvu/layer=3/bucket=1-128``, ``context_ratio/fvu/layer=3``,
``cloze/lambada/acc_word/layer=3``, ``propagation/mse/up=1/down=3``), from when the unit was a layer,
are mapped to the SAE at that layer by ``legacy_id`` so published baselines stay valid.

Judging (docs/gate.md), in order: a non-finite or missing value fails; a value past the absolute
``limit`` fails; no baseline entry is ``new`` (fails); past the band ``max(abs_tol, rel_tol*|baseline|)``
on the bad side fails, on the good side is ``improved``. ``severity = "warn"`` turns the limit and band
failures into ``warn``. Only ``fail`` and ``new`` fail the gate.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sae_checks.gate import families
from sae_checks.gate.families import CheckSpec, RunShape
from sae_checks.gate.thresholds import Baselines, Policy, Rule
from sae_checks.names import check_id  # noqa: F401  (re-exported: sae_checks.gate.check_id)
from sae_checks.results import Results
from sae_checks.status import STATUSES, Status, count, fails  # noqa: F401  (STATUSES, Status re-exported)

FIX = "rerun with --sae-update-baseline"


class GateWarning(UserWarning):
    """A check with status ``warn`` or ``improved``, or a tolerance narrower than the baseline's CI."""


@dataclass(frozen=True, kw_only=True)
class Check:
    """A judged check; ``to_dict`` is the report's check entry (docs/report.md)."""

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
    from sae_checks.names import upgrade_check_id

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
    forward order), buckets and tasks, in a deterministic order (family in registration order, metric in
    policy order, SAE, bucket) so every xdist worker plans the same list; each family plans its own
    (``gate.families``). ``pairs``: (upstream, downstream) propagation pairs; ``others``: SAEs outside
    this run (a shard's) that pairs may name as downstream."""
    run = RunShape(saes=saes, buckets=buckets, tasks=tasks, pairs=pairs, every=others or {})
    order = {f.name: i for i, f in enumerate(families.families())}
    specs = [s for m in policy.metrics for s in families.get(m.family).plan_checks(m.name, run)]
    return sorted(specs, key=lambda s: order[s.family])  # stable: keeps policy order within a family


def lookup(results: Mapping[str, Any], spec: CheckSpec) -> tuple[float | None, tuple[float, float] | None]:
    """(value, ci) of a check in the results, as its family reads them; (None, None) when absent."""
    est = families.get(spec.family).lookup(Results(results), spec)
    return est.mean, est.ci


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
        detail = families.get(spec.family).detail
        if detail is not None and status != "pass":
            with contextlib.suppress(KeyError, IndexError, TypeError, ValueError):  # no detail, the message stays
                message = f"{message}. {detail(Results(results), spec)}"
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
    if not rule.baseline:  # a limit-only check: within its limit is a pass, whatever a baseline says
        return make("pass", None, f"{head}: within the limit {_fmt(rule.limit)} (limit-only check)")
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
        out[s.id] = mp.rule(s.layer, s.bucket, s.sae)
    return out


def summarize(checks: Iterable[Mapping[str, Any]]) -> dict[str, int]:
    """Counts by status (the report's ``summary``; ``status.count``)."""
    return count(checks)


def unused_baselines(baselines: Baselines, judged_ids: Iterable[str]) -> list[str]:
    """Baseline entries no judged check used (meaningful only after a full run)."""
    return sorted(set(baselines.entries) - set(judged_ids))

