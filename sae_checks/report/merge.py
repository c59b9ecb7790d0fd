"""``sae-checks merge``: the partial reports of a sharded run (``--shard I/N``) into one report, their
results merged by ``sae_checks.merge``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sae_checks.errors import ReportError
from sae_checks.merge import merge_propagation, merge_provenance, merge_results  # noqa: F401  (re-exported)

_PART_CONFIG_KEYS = ("shard",)
_PROVENANCE_SAME = ("model", "data", "dtype", "sae_checks", "torch", "transformer_lens", "sae_lens")


def merge_reports(parts: Sequence[Mapping[str, Any]], labels: Sequence[str] | None = None) -> dict[str, Any]:
    """One report from the partial reports of a sharded run: results and checks unioned, the summary
    recounted, ``config.shard`` cleared. Refuses (``ReportError`` naming the part and the key) parts of
    different configs, models or data, parts that evaluated the same SAE twice, and check ids that
    disagree. Equal to an unsharded run's report on the same data, check for check."""
    from sae_checks.report.io import build_report

    labels = list(labels or [f"part {i + 1}" for i in range(len(parts))])
    if not parts:
        raise ReportError("merge: no partial report given")
    first = parts[0]

    def config_of(r: Mapping[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in r.get("config", {}).items() if k not in _PART_CONFIG_KEYS}

    seen_saes: dict[str, str] = {}
    checks: dict[str, dict[str, Any]] = {}
    results: dict[str, Any] = {}
    provenance: dict[str, Any] = {}
    for label, part in zip(labels, parts, strict=True):
        if config_of(part) != config_of(first):
            diff = sorted(k for k in set(config_of(part)) | set(config_of(first))
                          if config_of(part).get(k) != config_of(first).get(k))
            raise ReportError(f"merge: {label} was run with another config than {labels[0]} (keys {diff}); "
                              "merge only the parts of one sharded run")
        for key in _PROVENANCE_SAME:
            if part.get("provenance", {}).get(key) != first.get("provenance", {}).get(key):
                raise ReportError(f"merge: {label} differs from {labels[0]} in provenance.{key}; "
                                  "merge only the parts of one sharded run")
        for name in part.get("results", {}).get("per_bucket", {}):
            if name in seen_saes:
                raise ReportError(f"merge: SAE {name!r} is in both {seen_saes[name]} and {label}; "
                                  "shards must be disjoint (same --shard twice?)")
            seen_saes[name] = label
        for c in part.get("checks", []):
            if c["id"] in checks and checks[c["id"]] != c:
                raise ReportError(f"merge: check {c['id']!r} differs between parts")
            checks[c["id"]] = c
        results = merge_results(results, part.get("results", {}))
        provenance = merge_provenance(provenance, part.get("provenance", {}))
    config = dict(first.get("config", {}))
    config["shard"] = None
    return build_report(provenance=provenance, config=config, results=results,
                        checks=[checks[k] for k in sorted(checks)])
