"""Compare two reports: what regressed, improved, changed, appeared or disappeared, beyond the noise.

Reads only the JSON dicts (``io.load_report``); never a model. The lead's ``sae-checks diff OLD NEW
[--format table|markdown|json] [--force]`` is ``format_diff(diff_reports(...), fmt)`` plus
``diff_exit_code``; ``ReportError`` (incompatible reports) exits 2 like every ``SaeChecksError``.

Compared quantities (each one entry, keyed by a path-like string):

- ``checks/<check id>``: the check's ``value`` and ``ci``, and its ``status``;
- ``per_bucket/layer=L/bucket=a-b/<metric>``: the bucket ``mean`` and ``ci``;
- ``context_generalization/layer=L/<metric>``: the beyond/inside ``ratio`` and ``ci``;
- ``cloze/task=T/baseline/<metric>`` and ``cloze/task=T/layer=L/<metric>``: every number, or
  ``{"mean", "ci"}`` pair, in the task's ``baseline`` and ``per_layer`` dicts (nested keys joined by ``/``);
- ``summary/<status>``: the check counts.

Per-position arrays, propagation matrices and feature lists are not diffed: they are views for people
(plots, html), and the checks and buckets already summarize them with CIs.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from sae_checks.errors import ReportError

Category = Literal["regressed", "improved", "changed", "unchanged", "added", "removed"]
Direction = Literal["lower", "higher"]
CATEGORIES: tuple[Category, ...] = ("regressed", "improved", "changed", "added", "removed", "unchanged")
FAILING = frozenset({"fail", "new"})  # check statuses that fail the gate (DESIGN.md 5: "new" fails)
EXACT_REL_TOL = 1e-5  # without any CI, changes below this relative size are float rounding (6 significant digits)

# Which way is better, for metrics whose checks do not say (a check's ``direction`` wins).
# l0, feat_l1, resid_norm, ce_clean and counts have no universal good direction: they are "changed".
BUILTIN_DIRECTION: dict[str, Direction] = {
    "mse": "lower", "fvu": "lower", "delta_ce": "lower", "kl": "lower", "ce_spliced": "lower",
    "only_clean_right": "lower",  # prompts the SAE broke
    "explained_variance": "higher", "cos": "higher", "ce_loss_score": "higher",
    "acc_first_token": "higher", "acc_word": "higher", "acc_choice": "higher",
    "logp": "higher", "delta_logp": "higher",
}
# beyond/inside ratios: a larger ratio is a worse degradation past the SAE's training context (the post's
# failure mode), for every metric including l0 (12 -> 1900 at gpt2-small layer 0).
CONTEXT_RATIO_DIRECTION: Direction = "lower"
SUMMARY_DIRECTION: dict[str, Direction] = {"fail": "lower", "new": "lower"}  # pass/warn/improved move with the check set


@dataclass(frozen=True, kw_only=True)
class DiffEntry:
    key: str  # "checks/fvu/layer=3/bucket=1-128", "per_bucket/layer=3/bucket=1-128/fvu", ...
    section: str  # "checks", "per_bucket", "context_generalization", "cloze", "summary"
    category: Category
    old: float | None  # None: absent (added) or null in the report (NaN / undefined)
    new: float | None
    delta: float | None  # new - old
    delta_pct: float | None  # 100 * delta / |old|; None when old is 0 or missing
    direction: Direction | None  # which way is better; None = unknown, so a real change is "changed"
    old_ci: tuple[float | None, float | None] | None = None
    new_ci: tuple[float | None, float | None] | None = None
    old_status: str | None = None  # checks only
    new_status: str | None = None
    reason: str = ""  # why this category: "intervals ... do not overlap", "status pass -> fail", ...

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, kw_only=True)
class ReportDiff:
    entries: tuple[DiffEntry, ...]  # sorted by category (CATEGORIES order), then key
    old_label: str = "old"
    new_label: str = "new"
    incompatible: tuple[str, ...] = field(default=())  # mismatches compared anyway because force=True

    def by_category(self, category: Category) -> list[DiffEntry]:
        return [e for e in self.entries if e.category == category]

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = dict.fromkeys(CATEGORIES, 0)
        for e in self.entries:
            out[e.category] += 1
        return out

    @property
    def regressions(self) -> list[DiffEntry]:
        return self.by_category("regressed")

    def get(self, key: str) -> DiffEntry:
        """The entry for ``key`` (KeyError listing near keys when absent)."""
        for e in self.entries:
            if e.key == key:
                return e
        raise KeyError(f"{key!r} not in diff; keys: {', '.join(e.key for e in self.entries[:20])}")

    def to_dict(self) -> dict[str, Any]:
        return {
            "old": self.old_label,
            "new": self.new_label,
            "incompatible": list(self.incompatible),
            "counts": self.counts(),
            "exit_code": diff_exit_code(self),
            "entries": [e.to_dict() for e in self.entries],
        }


# --------------------------------------------------------------------------------------------------
# compatibility


def compatibility_problems(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    """Differences that make two reports incomparable: model, data source (dataset, split, revision,
    config name), ctx_len, position buckets. n_sequences, seed and SAEs may differ (that is the point)."""
    def prov(r: Mapping[str, Any], *keys: str) -> Any:
        node: Any = r.get("provenance", {})
        for k in keys:
            node = node.get(k) if isinstance(node, Mapping) else None
        return node

    pairs: list[tuple[str, Any, Any]] = [
        ("model", prov(old, "model"), prov(new, "model")),
        ("data.dataset", prov(old, "data", "dataset"), prov(new, "data", "dataset")),
        ("data.split", prov(old, "data", "split"), prov(new, "data", "split")),
        ("data.revision", prov(old, "data", "revision"), prov(new, "data", "revision")),
        ("data.ctx_len", prov(old, "data", "ctx_len"), prov(new, "data", "ctx_len")),
        ("config.data_config", old.get("config", {}).get("data_config"), new.get("config", {}).get("data_config")),
        ("config.buckets", old.get("config", {}).get("buckets"), new.get("config", {}).get("buckets")),
    ]
    old_b, new_b = old.get("results", {}).get("buckets", {}), new.get("results", {}).get("buckets", {})
    for layer in sorted(set(old_b) & set(new_b), key=_layer_order):
        pairs.append((f"results.buckets[{layer}]", old_b[layer], new_b[layer]))
    return [f"{name}: {a!r} vs {b!r}" for name, a, b in pairs if a != b]


# --------------------------------------------------------------------------------------------------
# the diff


def diff_reports(
    old: Mapping[str, Any],
    new: Mapping[str, Any],
    *,
    force: bool = False,
    labels: tuple[str, str] = ("old", "new"),
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
    ``direction`` field, else the direction of a check on the same metric, else ``BUILTIN_DIRECTION``;
    without a known direction it is ``changed`` (never a regression). A value that becomes null
    (non-finite) is ``regressed``. Not significant: ``unchanged`` (its ``reason`` says "within noise").
    A check whose status goes from passing (pass, warn, improved) to failing (fail, new) is ``regressed``
    whatever its value; failing to passing is ``improved``. Keys in one report only are ``added`` or
    ``removed``.

    Raises ``ReportError`` naming both values when the reports are incompatible (different model, data
    source, ctx_len or buckets, see ``compatibility_problems``) unless ``force=True``; then the
    mismatches are kept in ``ReportDiff.incompatible``.
    """
    problems = compatibility_problems(old, new)
    if problems and not force:
        raise ReportError(
            f"cannot compare {labels[0]} with {labels[1]}: " + "; ".join(problems)
            + " (these reports measure different things; pass --force / force=True to compare anyway)"
        )
    directions = _check_directions(old, new)
    old_points = dict(_points(old, directions))
    new_points = dict(_points(new, directions))
    entries = [_compare(key, old_points.get(key), new_points.get(key)) for key in old_points.keys() | new_points.keys()]
    order = {c: i for i, c in enumerate(CATEGORIES)}
    entries.sort(key=lambda e: (order[e.category], e.key))
    return ReportDiff(entries=tuple(entries), old_label=labels[0], new_label=labels[1], incompatible=tuple(problems))


def diff_exit_code(diff: ReportDiff) -> int:
    """1 when anything regressed, else 0 (usage errors, e.g. incompatible reports, are 2 via ReportError)."""
    return 1 if diff.regressions else 0


@dataclass(frozen=True)
class _Point:
    section: str
    value: float | None
    ci: tuple[float | None, float | None] | None
    direction: Direction | None
    status: str | None = None


def _check_directions(*reports: Mapping[str, Any]) -> dict[str, Direction]:
    """metric -> direction declared by the checks (the newer report wins)."""
    out: dict[str, Direction] = {}
    for report in reports:
        for check in report.get("checks", []):
            if check.get("direction") in ("lower", "higher"):
                out[check["metric"]] = check["direction"]
    return out


def _direction(metric: str, directions: Mapping[str, Direction]) -> Direction | None:
    return directions.get(metric) or BUILTIN_DIRECTION.get(metric)


def _points(report: Mapping[str, Any], directions: Mapping[str, Direction]) -> Iterator[tuple[str, _Point]]:
    for check in report.get("checks", []):
        metric = check.get("metric", "")
        direction = check.get("direction") or _direction(metric, directions)
        yield f"checks/{check['id']}", _Point("checks", _num(check.get("value")), _ci(check.get("ci")),
                                             direction, check.get("status"))
    results = report.get("results", {})
    for layer, buckets in results.get("per_bucket", {}).items():
        for bucket, metrics in buckets.items():
            for metric, est in metrics.items():
                yield (f"per_bucket/layer={layer}/bucket={bucket}/{metric}",
                       _Point("per_bucket", _num(est.get("mean")), _ci(est.get("ci")), _direction(metric, directions)))
    for layer, metrics in results.get("context_generalization", {}).items():
        for metric, ratio in metrics.items():
            yield (f"context_generalization/layer={layer}/{metric}",
                   _Point("context_generalization", _num(ratio.get("ratio")), _ci(ratio.get("ci")),
                          CONTEXT_RATIO_DIRECTION))
    for task, body in results.get("cloze", {}).items():
        yield from _leaves(f"cloze/task={task}/baseline", body.get("baseline", {}), directions)
        for layer, per_layer in body.get("per_layer", {}).items():
            yield from _leaves(f"cloze/task={task}/layer={layer}", per_layer, directions)
    for status, count in report.get("summary", {}).items():
        yield f"summary/{status}", _Point("summary", _num(count), None, SUMMARY_DIRECTION.get(status))


def _leaves(prefix: str, node: Any, directions: Mapping[str, Direction]) -> Iterator[tuple[str, _Point]]:
    """Numbers and {"mean", "ci"} pairs under ``node``, keyed by their joined path; lists are skipped."""
    if not isinstance(node, Mapping):
        return
    for key, value in node.items():
        path = f"{prefix}/{key}"
        if isinstance(value, Mapping) and "mean" in value:
            yield path, _Point("cloze", _num(value.get("mean")), _ci(value.get("ci")), _direction(key, directions))
        elif isinstance(value, Mapping):
            yield from _leaves(path, value, directions)
        elif isinstance(value, (int, float)) and not isinstance(value, bool) or value is None:
            yield path, _Point("cloze", _num(value), None, _direction(key, directions))


def _compare(key: str, old: _Point | None, new: _Point | None) -> DiffEntry:
    point = new or old
    assert point is not None, key
    if old is None or new is None:
        category: Category = "added" if old is None else "removed"
        return DiffEntry(key=key, section=point.section, direction=point.direction, category=category,
                         old=old.value if old else None, new=new.value if new else None, delta=None, delta_pct=None,
                         old_ci=old.ci if old else None, new_ci=new.ci if new else None,
                         old_status=old.status if old else None, new_status=new.status if new else None,
                         reason=f"only in the {'new' if old is None else 'old'} report")
    delta = None if old.value is None or new.value is None else new.value - old.value
    pct = None if delta is None or not old.value else 100.0 * delta / abs(old.value)
    category, reason = _classify(old, new)
    return DiffEntry(key=key, section=point.section, direction=point.direction, category=category, old=old.value, new=new.value, delta=delta, delta_pct=pct,
                     old_ci=old.ci, new_ci=new.ci, old_status=old.status, new_status=new.status, reason=reason)


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


def _layer_order(key: str) -> tuple[int, str]:
    return (int(key), "") if key.isdigit() else (1 << 30, key)


def _g(x: float | None) -> str:
    return "null" if x is None else f"{x:.4g}"


# --------------------------------------------------------------------------------------------------
# output


def format_diff(
    diff: ReportDiff, fmt: Literal["table", "markdown", "json"] = "table", *, show_unchanged: bool = False
) -> str:
    """Render ``diff``: ``table`` (aligned plain text for terminals), ``markdown`` (a GitHub table) or
    ``json`` (every entry, unchanged ones included, canonical: sorted keys, rounded floats).

    Table and Markdown list everything but ``unchanged`` entries (counted in the header) unless
    ``show_unchanged``; rows are ordered regressed, improved, changed, added, removed, unchanged.
    """
    if fmt == "json":
        from sae_checks.report.io import canonical_json

        return canonical_json(diff.to_dict())
    if fmt not in ("table", "markdown"):
        raise ReportError(f"format={fmt!r}: unknown diff format; choose table, markdown or json")
    counts = diff.counts()
    within = sum(1 for e in diff.by_category("unchanged") if e.delta)
    headline = ", ".join(f"{counts[c]} {c}" for c in CATEGORIES if c != "unchanged")
    headline += f", {counts['unchanged']} unchanged ({within} moved within noise)"
    verdict = "REGRESSED" if diff.regressions else "no regression"
    rows = [e for e in diff.entries if show_unchanged or e.category != "unchanged"]
    header = ["", "key", "old", "new", "delta", "delta %", "why"]
    cells = [[e.category, e.key, _value(e.old, e.old_status), _value(e.new, e.new_status),
              _signed(e.delta), _pct(e.delta_pct), e.reason] for e in rows]
    if fmt == "markdown":
        lines = [f"### sae-checks diff: {verdict}", "", f"`{diff.old_label}` → `{diff.new_label}`: {headline}", ""]
        if diff.incompatible:
            lines += [f"> **Compared with --force despite:** {'; '.join(diff.incompatible)}", ""]
        if cells:
            lines += ["| " + " | ".join(header[1:2] + ["change"] + header[2:]) + " |",
                      "|" + "---|" * 2 + "---:|" * 4 + "---|"]
            lines += ["| " + " | ".join(_md(c) for c in [row[1], row[0], *row[2:]]) + " |" for row in cells]
        return "\n".join(lines) + "\n"
    lines = [f"sae-checks diff: {verdict}", f"{diff.old_label} -> {diff.new_label}", headline]
    if diff.incompatible:
        lines.append("compared with --force despite: " + "; ".join(diff.incompatible))
    if cells:
        table = [header, *cells]
        widths = [max(len(r[i]) for r in table) for i in range(len(header) - 1)]
        right = {2, 3, 4, 5}
        lines.append("")
        for r in table:
            parts = [r[i].rjust(w) if i in right else r[i].ljust(w) for i, w in enumerate(widths)]
            lines.append("  ".join(parts + [r[-1]]).rstrip())
    return "\n".join(lines) + "\n"


def _value(x: float | None, status: str | None) -> str:
    text = "-" if x is None else f"{x:.6g}"
    return f"{text} ({status})" if status else text


def _signed(x: float | None) -> str:
    return "" if x is None else f"{x:+.4g}"


def _pct(x: float | None) -> str:
    return "" if x is None else f"{x:+.1f}%"


def _md(text: str) -> str:
    return text.replace("|", "\\|")
