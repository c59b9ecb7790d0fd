"""Merging engine results: per-SAE tables from several runs (xdist workers, shards, the parts of a run
too large to hold every SAE at once) into one.

Pure functions over the JSON-ready dicts (no torch). Merging is a union of per-SAE tables: every run
evaluates disjoint SAEs on the same data, so nothing is averaged; the propagation matrix is combined
cell by cell (each run fills the rows of its own upstream SAEs). ``report.merge.merge_reports`` (what
``sae-checks merge`` runs on a sharded run's partial reports) builds on them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


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
