"""Read old reports: schema_version 1 (one SAE per layer, keyed ``"<layer>"``) upgraded to version 2
(keyed by SAE name, docs/report.md#versions-and-upgrade). JSON only, no torch.

Version 1 -> 2:

- every SAE gets a name (:func:`sae_name`): its ``id`` if non-empty, else the last component of its
  ``path``, else ``layer<L>``; ``provenance.saes`` entries gain ``"name"`` and are sorted by
  (layer, hook, name);
- ``results`` sections keyed by layer (``per_position``, ``per_bucket``, ``context_generalization``,
  ``buckets``, ``context_size``, ``features``) are re-keyed by name; cloze ``per_layer`` becomes
  ``per_sae`` (and per-prompt tables keyed by layer are re-keyed); ``nonfinite`` entries gain ``"sae"``;
  ``propagation`` gains ``"saes"``; ``results["saes"]`` and ``results["sweeps"]`` are added;
- legacy check ids are mapped to the new ids (:func:`upgrade_check_id`) and checks gain ``"sae"`` and
  ``"hook"`` (propagation: ``"upstream_sae"``); ``unused_baseline`` ids are mapped when their layer has
  exactly one SAE in the report, kept as they are otherwise.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping
from typing import Any

from sae_checks.names import (
    slug,  # noqa: F401  (re-exported: the report's side of the same rule)
    upgrade_check_id,
)
from sae_checks.report.schema import SCHEMA_VERSION

LAYER_KEYED = ("per_position", "per_bucket", "context_generalization", "buckets", "context_size", "features")
SAE_FIELDS = ("layer", "hook", "d_in", "d_sae", "architecture", "context_size", "release", "id")


def sae_name(entry: Mapping[str, Any]) -> str:
    """The name of a ``provenance.saes`` entry: ``name`` when set; else its ``id`` if non-empty; else
    the last component of its ``path``; else ``layer<L>``."""
    for key in ("name", "id"):
        value = entry.get(key)
        if isinstance(value, str) and value.strip():
            return value
    path = entry.get("path")
    if isinstance(path, str):
        parts = [p for p in re.split(r"[/\\]", path) if p]
        if parts:
            return parts[-1]
    return f"layer{entry.get('layer')}"


def layer_names(report: Mapping[str, Any]) -> dict[str, list[str]]:
    """``{"<layer>": [names of the SAEs at that layer]}`` from ``provenance.saes`` (names made unique)."""
    out: dict[str, list[str]] = {}
    for entry in _named_saes(report):
        out.setdefault(str(entry.get("layer")), []).append(str(entry["name"]))
    return out


def _named_saes(report: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Copies of ``provenance.saes`` entries with ``"name"`` set (a clash gets ``.layer<L>`` appended),
    sorted by (layer, hook, name)."""
    prov = report.get("provenance")
    raw = prov.get("saes") if isinstance(prov, Mapping) else None
    entries = [dict(e) for e in raw or [] if isinstance(e, Mapping)] if isinstance(raw, list) else []
    seen: set[str] = set()
    for entry in entries:
        name = sae_name(entry)
        if name in seen:  # v1 never held two SAEs at one layer, but two local folders may share a name
            name = f"{name}.layer{entry.get('layer')}"
        seen.add(name)
        entry["name"] = name
    return sorted(entries, key=sort_key)


def sort_key(entry: Mapping[str, Any]) -> tuple[int, int, str]:
    """Forward order (layer, hook stage, name) for sorting ``provenance.saes`` (a missing layer sorts last)."""
    from sae_checks.names import sae_sort_key

    layer = entry.get("layer")
    number = layer if isinstance(layer, int) and not isinstance(layer, bool) else 1 << 30
    return sae_sort_key(number, str(entry.get("hook") or ""), str(entry.get("name") or sae_name(entry)))


def upgrade_report(report: Mapping[str, Any]) -> dict[str, Any]:
    """``report`` in the schema_version 2 layout (a new dict; the argument is not modified).

    A version 2 report is returned as a copy; a version 1 report is upgraded as the module docstring
    says; anything else (another version, not a dict) is returned as a copy for the caller's schema
    check to reject. Tolerant: malformed sections are carried over unchanged."""
    out: dict[str, Any] = copy.deepcopy(dict(report)) if isinstance(report, Mapping) else report
    if not isinstance(out, dict) or out.get("schema_version") != 1:
        return out
    saes = _named_saes(out)
    names = layer_names(out)
    hooks = {str(e["name"]): e.get("hook") for e in saes}
    by_layer = {layer: found[0] for layer, found in names.items() if len(found) == 1}

    def rename(section: Any) -> Any:
        if not isinstance(section, Mapping):
            return section
        return {by_layer.get(str(k), k if not str(k).isdigit() else f"layer{k}"): v for k, v in section.items()}

    if isinstance(out.get("provenance"), dict):
        out["provenance"]["saes"] = saes
    results = out.get("results")
    if isinstance(results, dict):
        for key in LAYER_KEYED:
            if key in results:
                results[key] = rename(results[key])
        _upgrade_cloze(results.get("cloze"), rename)
        _upgrade_propagation(results.get("propagation"), by_layer)
        for item in results.get("nonfinite") or []:
            if isinstance(item, dict):
                item.setdefault("sae", by_layer.get(str(item.get("layer"))))
        results["saes"] = {str(e["name"]): {k: e[k] for k in SAE_FIELDS if k in e} for e in saes}
        results["sweeps"] = sweeps(results["saes"])
    for check in out.get("checks") or []:
        if isinstance(check, dict) and isinstance(check.get("id"), str):
            check["id"], fields = upgrade_check_id(check["id"], names)
            for key, value in fields.items():
                check.setdefault(key, value)
            if "sae" in fields:
                check.setdefault("hook", hooks.get(fields["sae"]))
    if isinstance(out.get("unused_baseline"), list):
        out["unused_baseline"] = sorted(upgrade_check_id(c, names)[0] if isinstance(c, str) else c
                                        for c in out["unused_baseline"])
    if isinstance(out.get("checks"), list):
        out["checks"].sort(key=lambda c: str(c.get("id")) if isinstance(c, Mapping) else "")
    out["schema_version"] = SCHEMA_VERSION
    return out


def sweeps(saes: Mapping[str, Any]) -> dict[str, list[str]]:
    """``{hook: sorted names}`` for every hook with at least two SAEs in ``results["saes"]``."""
    by_hook: dict[str, list[str]] = {}
    for name, info in saes.items():
        hook = info.get("hook") if isinstance(info, Mapping) else None
        if isinstance(hook, str):
            by_hook.setdefault(hook, []).append(str(name))
    return {hook: sorted(names) for hook, names in sorted(by_hook.items()) if len(names) >= 2}


def _upgrade_cloze(cloze: Any, rename: Any) -> None:
    if not isinstance(cloze, Mapping):
        return
    for body in cloze.values():
        if not isinstance(body, dict):
            continue
        if "per_layer" in body:
            body["per_sae"] = rename(body.pop("per_layer"))
        for key in ("prompts", "per_prompt"):  # per-prompt tables, keyed by layer when present
            if isinstance(body.get(key), Mapping):
                body[key] = rename(body[key])


def _upgrade_propagation(prop: Any, by_layer: Mapping[str, str]) -> None:
    if isinstance(prop, dict) and isinstance(prop.get("layers"), list) and "saes" not in prop:
        prop["saes"] = [by_layer.get(str(layer), f"layer{layer}") for layer in prop["layers"]]
