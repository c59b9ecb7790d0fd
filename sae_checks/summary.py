"""A terminal summary of a report: per SAE and bucket, the numbers a person checks first.

Reads only the report dict (no torch), so it works on any saved report. After the header, each check
family (``sae_checks.gate.families``) prints its own lines (``summary``), in report order.
"""

from __future__ import annotations

import sys
from typing import Any, TextIO

from sae_checks.gate import families
from sae_checks.results import Results


def summary_lines(report: dict[str, Any]) -> list[str]:
    """Lines of text: a per SAE x bucket table, the context-generalization ratios, check counts."""
    prov, res = report.get("provenance", {}), report.get("results", {})
    saes = prov.get("saes", [])
    source = ", ".join(sorted({s.get("release") or s.get("path") or "?" for s in saes})) or "?"
    lines = [f"model {prov.get('model', '?')}  saes {source}  "
             f"data {prov.get('data', {}).get('dataset', '?')} "
             f"({prov.get('data', {}).get('n_sequences', '?')} x {prov.get('data', {}).get('ctx_len', '?')} tokens)"]
    results = Results.from_report(report)
    for family in families.families():
        lines += family.summary(results) if family.summary else []
    for bad in res.get("nonfinite", []):
        lines.append(f"NON-FINITE: sae {bad.get('sae')} (layer {bad['layer']}) {bad['where']} sequence {bad['sequence']} "
                     f"position {bad['position']}")
    summary = report.get("summary")
    if summary and report.get("checks"):
        lines.append("checks: " + ", ".join(f"{k} {v}" for k, v in summary.items() if isinstance(v, int)))
    return lines


def print_summary(report: dict[str, Any], file: TextIO | None = None) -> None:
    print("\n".join(summary_lines(report)), file=file or sys.stdout)
