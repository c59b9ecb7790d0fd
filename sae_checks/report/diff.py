"""Compare two reports: what regressed, improved, changed, appeared or disappeared, beyond the noise.

Reads only the JSON dicts (``io.read_report``, which upgrades schema_version 1); never a model. The
CLI's ``sae-checks diff OLD NEW [--format table|markdown|json] [--force] [--allow-different]
[--exclude PATTERN ...]`` is ``format_diff(diff_reports(...), fmt)`` plus ``diff_exit_code``;
``ReportError`` / ``DiffError`` (incompatible reports) exit 2 like every ``SaeChecksError``.

SAEs are matched by name (schema_version 2). Compared quantities (each one entry, keyed by a path-like
string):

- ``saes/<name>``: the SAE itself: in the new report only, ``added`` (a new SAE, listed, never a
  regression); in the old report only, ``regressed`` (it vanished);
- ``checks/<check id>``: the check's ``value`` and ``ci``, and its ``status``;
- the numbers each check family (``sae_checks.gate.families``) lists as its ``points``, for the
  built-ins: ``per_bucket/sae=<name>/bucket=a-b/<metric>`` (the bucket ``mean`` and ``ci``);
  ``context_generalization/sae=<name>/<metric>`` (the beyond/inside ``ratio`` and ``ci``);
  ``cloze/task=T/baseline/<metric>`` and ``cloze/task=T/sae=<name>/<metric>`` (every number, or
  ``{"mean", "ci"}`` pair, in the task's ``baseline`` and ``per_sae`` dicts, nested keys joined by ``/``);
- ``summary/<status>``: the check counts.

Anything in the old report and absent from the new one is a regression ("vanished"), unless excluded:
``exclude`` patterns (shell globs) over SAE names and check ids put every matching entry, present or not,
in the ``excluded`` category. Which way is better comes from ``sae_checks.metrics.registry``.

Per-position arrays, propagation matrices and feature lists are not diffed: they are views for people
(plots, html), and the checks and buckets already summarize them with CIs.
"""

from __future__ import annotations

import fnmatch
import math
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from sae_checks.errors import ReportError
from sae_checks.gate import families
from sae_checks.metrics import registry
from sae_checks.report.diff_format import format_diff
from sae_checks.report.diff_types import (
    CATEGORIES,
    Category,
    DiffEntry,
    Direction,
    ReportDiff,
    diff_exit_code,
)
from sae_checks.report.upgrade import sae_name
from sae_checks.results import Results
from sae_checks.status import FAILING

EXACT_REL_TOL = 1e-5  # without any CI, changes below this relative size are float rounding (6 significant digits)
SUMMARY_DIRECTION: dict[str, Direction] = dict.fromkeys(FAILING, "lower")  # pass/warn/improved move with the check set


class DiffError(ReportError):
    """Two reports that measure different things: other models, or SAE sets that cannot be matched."""


# --------------------------------------------------------------------------------------------------
# compatibility


def compatibility_problems(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    """Differences in what two reports measured on: data source (dataset, split, revision, config name),
    ctx_len, position buckets of the SAEs in both. n_sequences, seed and SAEs may differ (that is the
    point); models and SAE sets are checked by :func:`identity_problems`."""
    def prov(r: Mapping[str, Any], *keys: str) -> Any:
        node: Any = r.get("provenance", {})
        for k in keys:
            node = node.get(k) if isinstance(node, Mapping) else None
        return node

    pairs: list[tuple[str, Any, Any]] = [
        ("data.dataset", prov(old, "data", "dataset"), prov(new, "data", "dataset")),
        ("data.split", prov(old, "data", "split"), prov(new, "data", "split")),
        ("data.revision", prov(old, "data", "revision"), prov(new, "data", "revision")),
        ("data.ctx_len", prov(old, "data", "ctx_len"), prov(new, "data", "ctx_len")),
        ("config.data_config", old.get("config", {}).get("data_config"), new.get("config", {}).get("data_config")),
        ("config.buckets", old.get("config", {}).get("buckets"), new.get("config", {}).get("buckets")),
    ]
    old_b, new_b = old.get("results", {}).get("buckets", {}), new.get("results", {}).get("buckets", {})
    for sae in sorted(set(old_b) & set(new_b)):
        pairs.append((f"results.buckets[{sae}]", old_b[sae], new_b[sae]))
    return [f"{name}: {a!r} vs {b!r}" for name, a, b in pairs if a != b]


def sae_hooks(report: Mapping[str, Any]) -> dict[str, str | None]:
    """``{SAE name: hook}`` of a (version 2) report: ``results.saes``, else ``provenance.saes``, else the
    keys of ``results.per_bucket`` (hook unknown)."""
    results = report.get("results", {})
    saes = results.get("saes") if isinstance(results, Mapping) else None
    if isinstance(saes, Mapping) and saes:
        return {str(n): (i.get("hook") if isinstance(i, Mapping) else None) for n, i in saes.items()}
    prov = report.get("provenance", {})
    entries = [e for e in (prov.get("saes") or []) if isinstance(e, Mapping)] if isinstance(prov, Mapping) else []
    if entries:
        return {sae_name(e): e.get("hook") for e in entries}
    per_bucket = results.get("per_bucket") if isinstance(results, Mapping) else None
    return dict.fromkeys(map(str, per_bucket or {}))


def identity_problems(old: Mapping[str, Any], new: Mapping[str, Any],
                      exclude: Iterable[str] = ()) -> list[str]:
    """Why two reports are not two runs of one suite: different models; SAE sets with no name in common
    (after ``exclude``); an SAE name at different hooks. Each problem names the models or the SAEs."""
    problems = []
    old_model, new_model = old.get("provenance", {}).get("model"), new.get("provenance", {}).get("model")
    if old_model != new_model:
        problems.append(f"different models: {old_model!r} vs {new_model!r}")
    patterns = tuple(exclude)
    a = {n: h for n, h in sae_hooks(old).items() if not _excluded(patterns, n)}
    b = {n: h for n, h in sae_hooks(new).items() if not _excluded(patterns, n)}
    if a and b and not set(a) & set(b):
        problems.append(f"no SAE in common: old has {_names(a)}; new has {_names(b)}")
    for name in sorted(set(a) & set(b)):
        if a[name] and b[name] and a[name] != b[name]:
            problems.append(f"SAE {name!r} is at hook {a[name]!r} in the old report and {b[name]!r} in the new one")
    return problems


def _names(names: Iterable[str], limit: int = 8) -> str:
    listed = sorted(names)
    more = f" and {len(listed) - limit} more" if len(listed) > limit else ""
    return ", ".join(repr(n) for n in listed[:limit]) + more


def _excluded(patterns: tuple[str, ...], *names: str | None) -> str | None:
    """The first pattern matching one of ``names`` (SAE names, check ids), or None."""
    for pattern in patterns:
        if any(n is not None and fnmatch.fnmatchcase(n, pattern) for n in names):
            return pattern
    return None


# --------------------------------------------------------------------------------------------------
# the diff


def diff_reports(
    old: Mapping[str, Any],
    new: Mapping[str, Any],
    *,
    force: bool = False,
    labels: tuple[str, str] = ("old", "new"),
    allow_different: bool = False,
    exclude: Iterable[str] = (),
) -> ReportDiff:
    """Classify every compared quantity (see the module docstring) of ``new`` against ``old``.

    Noise rule: a change is *significant* only when it leaves the noise:

    - both sides have a CI ``[lo, hi]``: the two intervals do not overlap (``new_lo > old_hi`` or
      ``new_hi < old_lo``). For symmetric intervals this is ``|delta| > half_width_old + half_width_new``;
      with 95% bootstrap CIs it is a conservative test (a false alarm well under 1% per quantity), so
      re-running an unchanged SAE on another data sample does not regress;
    - one side has a CI: the other side's value lies outside it;
    - neither (summary counts, cloze counts, CI-less checks): ``|delta| > 1e-5 * max(|old|, |new|)``,
      i.e. any change that survives the report's 6-significant-digit rounding.

    A significant change is ``regressed`` or ``improved`` according to the direction: the check's
    ``direction`` field, else the direction of a check on the same metric, else the metric registry
    (``sae_checks.metrics.registry``); without a known direction it is ``changed`` (never a
    regression). A value that becomes null (non-finite) is ``regressed``. Not significant:
    ``unchanged`` (its ``reason`` says "within noise"). A check whose status goes from passing (pass,
    warn, improved) to failing (fail, new) is ``regressed`` whatever its value; failing to passing is
    ``improved``. Keys in the new report only are ``added``; keys in the old report only are
    ``regressed`` (vanished). Entries whose SAE name or check id matches an ``exclude`` glob are
    ``excluded``, whatever they are.

    Raises ``DiffError`` naming both models, or the SAE names, when the reports are not two runs of one
    suite (see ``identity_problems``) unless ``allow_different=True``; raises ``ReportError`` naming both
    values when they measure on different data (see ``compatibility_problems``) unless ``force=True``.
    Mismatches compared anyway are kept in ``ReportDiff.incompatible``.
    """
    patterns = tuple(exclude)
    identity = identity_problems(old, new, patterns)
    if identity and not allow_different:
        raise DiffError(
            f"cannot compare {labels[0]} with {labels[1]}: " + "; ".join(identity)
            + " (pass --allow-different / allow_different=True to compare anyway, or leave SAEs out with"
            " --exclude PATTERN)"
        )
    problems = compatibility_problems(old, new)
    if problems and not force:
        raise ReportError(
            f"cannot compare {labels[0]} with {labels[1]}: " + "; ".join(problems)
            + " (these reports measure different things; pass --force / force=True to compare anyway)"
        )
    directions = _check_directions(old, new)
    old_points = dict(_points(old, directions))
    new_points = dict(_points(new, directions))
    entries = []
    for key in old_points.keys() | new_points.keys():
        a, b = old_points.get(key), new_points.get(key)
        point = b or a
        assert point is not None, key
        pattern = _excluded(patterns, point.sae, point.upstream_sae, point.check_id)
        entries.append(_compare(key, a, b, pattern))
    entries += _histogram_entries(old, new, patterns)
    order = {c: i for i, c in enumerate(CATEGORIES)}
    entries.sort(key=lambda e: (order[e.category], e.key))
    saes = [e for e in entries if e.section == "saes"]
    return ReportDiff(
        entries=tuple(entries), old_label=labels[0], new_label=labels[1],
        incompatible=tuple(identity + problems),
        new_saes=tuple(sorted(e.sae or "" for e in saes if e.category == "added")),
        vanished_saes=tuple(sorted(e.sae or "" for e in saes if e.category == "regressed")),
        exclude=patterns,
    )


HISTOGRAM_MOVE = 0.25  # decades (one histogram bin): a smaller earth mover's distance is "unchanged"


def _histogram_entries(old: Mapping[str, Any], new: Mapping[str, Any], patterns: tuple[str, ...]) -> list[DiffEntry]:
    """Per SAE in both reports, how far the latents' log10 firing-density histogram moved: the earth
    mover's distance in decades (``metrics.latents.histogram_distance``); "changed" past one bin (no
    direction: a shift is not better or worse by itself), "unchanged" within it."""
    from sae_checks.metrics.latents import histogram_distance

    a, b = Results.from_report(old).raw.get("latents", {}), Results.from_report(new).raw.get("latents", {})
    out = []
    for sae in sorted(set(a) & set(b)):
        ha = (a[sae].get("density_histogram") or {}).get("counts") or []
        hb = (b[sae].get("density_histogram") or {}).get("counts") or []
        distance = histogram_distance(list(ha), list(hb))
        if distance != distance:  # NaN: no histogram on one side, or different bins
            continue
        excluded = _excluded(patterns, sae)
        category: Category = ("excluded" if excluded else "changed" if distance > HISTOGRAM_MOVE else "unchanged")
        reason = (f"excluded by {excluded!r}" if excluded else
                  f"the latents' log10 firing densities moved {distance:.3g} decades (earth mover's distance; "
                  f"{'more' if distance > HISTOGRAM_MOVE else 'no more'} than one {HISTOGRAM_MOVE}-decade bin)")
        out.append(DiffEntry(key=f"latents/sae={sae}/density_histogram_distance", section="latents", category=category,
                             old=0.0, new=distance, delta=distance, delta_pct=None, direction=None, reason=reason,
                             sae=sae))
    return out


@dataclass(frozen=True)
class _Point:
    section: str
    value: float | None
    ci: tuple[float | None, float | None] | None
    direction: Direction | None
    status: str | None = None
    sae: str | None = None
    upstream_sae: str | None = None  # propagation checks: an exclude pattern may name either SAE
    check_id: str | None = None


def _check_directions(*reports: Mapping[str, Any]) -> dict[str, Direction]:
    """metric -> direction declared by the checks (the newer report wins)."""
    out: dict[str, Direction] = {}
    for report in reports:
        for check in report.get("checks", []):
            if check.get("direction") in ("lower", "higher"):
                out[check["metric"]] = check["direction"]
    return out


def _check_direction(metric: str) -> Direction | None:
    """Direction of a check's policy metric: ``fvu``, ``context_ratio.fvu``, ``cloze.lambada.acc_word``,
    ``propagation.mse`` (the registry's entry of the family the name starts with)."""
    family, _, rest = metric.partition(".")
    if rest and family in {f.name for f in families.families()}:
        return registry.direction(rest.rpartition(".")[2], family)  # type: ignore[arg-type]
    return registry.direction(metric)


def _points(report: Mapping[str, Any], directions: Mapping[str, Direction]) -> Iterator[tuple[str, _Point]]:
    for name in sae_hooks(report):
        yield f"saes/{name}", _Point("saes", None, None, None, sae=name)
    for check in report.get("checks", []):
        metric = check.get("metric", "")
        direction = check.get("direction") or directions.get(metric) or _check_direction(metric)
        yield f"checks/{check['id']}", _Point("checks", _num(check.get("value")), _ci(check.get("ci")),
                                             direction, check.get("status"), check.get("sae"),
                                             check.get("upstream_sae"), str(check["id"]))
    results = Results.from_report(report)
    for family in families.families():  # each family's numbers, where it says they are
        for p in family.points(results, directions) if family.points else ():
            yield p.key, _Point(p.section, _num(p.value), _ci(p.ci), _direction(p.direction), sae=p.sae)
    for status, count in report.get("summary", {}).items():
        yield f"summary/{status}", _Point("summary", _num(count), None, SUMMARY_DIRECTION.get(status))


def _direction(direction: str | None) -> Direction | None:
    return direction if direction in ("lower", "higher") else None  # type: ignore[return-value]


def _compare(key: str, old: _Point | None, new: _Point | None, excluded_by: str | None = None) -> DiffEntry:
    point = new or old
    assert point is not None, key
    category: Category
    if excluded_by is not None:
        category, reason = "excluded", f"excluded by {excluded_by!r}"
    elif old is None:
        category, reason = "added", "new SAE" if point.section == "saes" else "only in the new report"
    elif new is None:
        category = "regressed"
        reason = ("vanished: the SAE is not in the new report" if point.section == "saes"
                  else "vanished: only in the old report")
    elif point.section == "saes":
        category, reason = "unchanged", "in both reports"
    else:
        category, reason = _classify(old, new)
    delta = None if old is None or new is None or old.value is None or new.value is None else new.value - old.value
    pct = None if delta is None or old is None or not old.value else 100.0 * delta / abs(old.value)
    return DiffEntry(key=key, section=point.section, direction=point.direction, category=category,
                     old=old.value if old else None, new=new.value if new else None, delta=delta, delta_pct=pct,
                     old_ci=old.ci if old else None, new_ci=new.ci if new else None,
                     old_status=old.status if old else None, new_status=new.status if new else None,
                     reason=reason, sae=point.sae)


def _classify(old: _Point, new: _Point) -> tuple[Category, str]:
    if old.status is not None and new.status is not None and old.status != new.status:
        was, now = old.status in FAILING, new.status in FAILING
        if now and not was:
            return "regressed", f"status {old.status} -> {new.status}"
        if was and not now:
            return "improved", f"status {old.status} -> {new.status}"
    if old.value is None and new.value is None:
        return "unchanged", "null in both"
    if new.value is None:
        return "regressed", "became null (non-finite or undefined)"
    if old.value is None:
        return "changed", "was null (non-finite or undefined)"
    significant, why = beyond_noise(old.value, new.value, old.ci, new.ci)
    if not significant:
        return "unchanged", why
    direction = new.direction or old.direction
    if direction is None:
        return "changed", f"{why}; no known direction"
    better = new.value < old.value if direction == "lower" else new.value > old.value
    return ("improved" if better else "regressed"), f"{why}; {direction} is better"


def beyond_noise(
    old: float, new: float,
    old_ci: tuple[float | None, float | None] | None, new_ci: tuple[float | None, float | None] | None,
) -> tuple[bool, str]:
    """(significant, reason) by the noise rule of ``diff_reports``."""
    o, n = _full(old_ci), _full(new_ci)
    if o and n:
        if n[0] > o[1] or n[1] < o[0]:
            return True, f"CIs [{_g(o[0])}, {_g(o[1])}] and [{_g(n[0])}, {_g(n[1])}] do not overlap"
        return False, "within noise (CIs overlap)" if new != old else "equal"
    if o or n:
        lo, hi = o or n  # type: ignore[misc]
        other = new if o else old
        if not lo <= other <= hi:
            return True, f"{_g(other)} outside the {'old' if o else 'new'} CI [{_g(lo)}, {_g(hi)}]"
        return False, "within noise (inside the CI)" if new != old else "equal"
    if abs(new - old) > EXACT_REL_TOL * max(abs(old), abs(new)):
        return True, "no CI: exact comparison"
    return False, "equal" if new == old else "within rounding"


def _full(ci: tuple[float | None, float | None] | None) -> tuple[float, float] | None:
    if ci is None or ci[0] is None or ci[1] is None:
        return None
    return float(ci[0]), float(ci[1])


def _num(value: Any) -> float | None:
    if value is None or isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


def _ci(value: Any) -> tuple[float | None, float | None] | None:
    if isinstance(value, (list, tuple)) and len(value) == 2:
        return _num(value[0]), _num(value[1])
    return None


def _g(x: float | None) -> str:
    return "null" if x is None else f"{x:.4g}"


__all__ = ["CATEGORIES", "DiffEntry", "DiffError", "ReportDiff", "beyond_noise", "compatibility_problems",
           "diff_exit_code", "diff_reports", "format_diff", "identity_problems", "sae_hooks"]
