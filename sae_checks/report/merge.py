"""Merging results and reports: per-SAE tables from several engine runs (xdist workers, shards) into one.

Pure functions over the JSON-ready dicts (no torch). Merging is a union of per-SAE tables: every run
evaluates disjoint SAEs on the same data, so nothing is averaged; the propagation matrix is combined
cell by cell (each run fills the rows of its own upstream SAEs). ``merge_reports`` is what
``sae-checks merge`` runs on the partial reports of a sharded run (``--shard I/N``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sae_checks.errors import ReportError


def merge_results(a: Mapping[str, Any], b: Mapping[str, Any]) -> dict[str, Any]:
    """Union of two results dicts from runs over different SAEs. Per-SAE tables merge by key;
    ``nonfinite`` lists concatenate; ``propagation`` merges cell by cell; ``sweeps`` are recomputed
    from the union of ``saes``."""
    out = dict(a)
    for key, bv in b.items():
        av = out.get(key)
        if av is None:
            out[key] = bv
        elif key == "propagation":
            out[key] = merge_propagation(av, bv)
        elif key == "nonfinite" and isinstance(av, list):
            out[key] = av + [x for x in bv if x not in av]
        elif isinstance(av, dict) and isinstance(bv, dict):
            out[key] = merge_results(av, bv)
    if isinstance(out.get("saes"), dict) and "per_bucket" in out:  # sweeps span the runs' SAEs
        by_hook: dict[str, list[str]] = {}
        for name, entry in out["saes"].items():
            by_hook.setdefault(entry.get("hook", ""), []).append(name)
        out["sweeps"] = {h: sorted(ns) for h, ns in sorted(by_hook.items()) if len(ns) > 1}
    return out


def merge_propagation(a: Mapping[str, Any], b: Mapping[str, Any]) -> dict[str, Any]:
    """Two propagation sections combined cell by cell, by SAE name: each run (a shard, an xdist worker)
    fills the rows of its own upstream SAEs over the SAEs it could see downstream; the union of names is
    put in forward order (layer, hook stage, name: ``names.sae_sort_key``). Sections without ``hooks``
    (older reports) fall back to the one with more SAEs."""
    from sae_checks.names import sae_sort_key

    if "hooks" not in a or "hooks" not in b:  # older sections: same SAE lists merge cell by cell
        if list(a.get("saes", ())) != list(b.get("saes", ())):
            return dict(b) if len(b.get("saes", ())) > len(a.get("saes", ())) else dict(a)
        a = {**a, "hooks": [""] * len(a.get("saes", ()))}
        b = {**b, "hooks": a["hooks"]}
    where: dict[str, tuple[int, str]] = {}
    for sec in (a, b):
        for name, layer, hook in zip(sec["saes"], sec["layers"], sec["hooks"], strict=True):
            where[name] = (layer, hook)
    names = (sorted(where, key=lambda n: sae_sort_key(where[n][0], where[n][1], n)) if any(a["hooks"])
             else list(a["saes"]))  # no hooks recorded: the (identical) lists' own order
    out: dict[str, Any] = {"saes": names, "layers": [where[n][0] for n in names],
                           "hooks": [where[n][1] for n in names], "window": a.get("window", b.get("window"))}
    if not any(out["hooks"]):
        del out["hooks"]
    for key in sorted((set(a) | set(b)) - {"saes", "layers", "hooks", "window"}):
        cells: dict[tuple[str, str], Any] = {}
        for sec in (a, b):
            matrix = sec.get(key) or []
            for i, row in enumerate(matrix):
                for j, v in enumerate(row):
                    if v is not None:
                        cells[(sec["saes"][i], sec["saes"][j])] = v
        out[key] = [[cells.get((u, d)) for d in names] for u in names]
    return out


def merge_provenance(a: Mapping[str, Any], b: Mapping[str, Any]) -> dict[str, Any]:
    """Provenance of the union: the first run's fields, ``saes`` unioned by name, in forward order."""
    from sae_checks.names import sae_sort_key

    out = dict(a) if a else dict(b)
    if a and b:
        seen = {s.get("name") or str(s.get("layer")): s for s in list(b.get("saes", [])) + list(a.get("saes", []))}
        out["saes"] = sorted(seen.values(), key=lambda s: sae_sort_key(s.get("layer") or 0, s.get("hook") or "",
                                                                        s.get("name") or ""))
    return out


# Keys that may differ between the parts of one sharded run (everything else must be equal).
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
