"""A terminal summary of a report: per SAE and bucket, the numbers a person checks first.

Reads only the report dict (no torch), so it works on any saved report.
"""

from __future__ import annotations

import sys
from typing import Any, TextIO

COLUMNS = ("fvu", "explained_variance", "mse", "l0", "delta_ce", "kl", "ce_loss_score")
HEAD = {"explained_variance": "ev", "ce_loss_score": "ce_score"}


def _fmt(v: Any) -> str:
    if v is None:
        return "nan"
    return f"{v:.4g}"


def summary_lines(report: dict[str, Any]) -> list[str]:
    """Lines of text: a per SAE x bucket table, the context-generalization ratios, check counts."""
    prov, res = report.get("provenance", {}), report.get("results", {})
    saes = prov.get("saes", [])
    source = ", ".join(sorted({s.get("release") or s.get("path") or "?" for s in saes})) or "?"
    lines = [f"model {prov.get('model', '?')}  saes {source}  "
             f"data {prov.get('data', {}).get('dataset', '?')} "
             f"({prov.get('data', {}).get('n_sequences', '?')} x {prov.get('data', {}).get('ctx_len', '?')} tokens)"]
    per_bucket = res.get("per_bucket", {})
    if per_bucket:
        cols = [c for c in COLUMNS if any(c in m for b in per_bucket.values() for m in b.values())]
        width = max(len("sae"), *(len(n) for n in per_bucket))
        header = f"{'sae':<{width}} {'bucket':>10} " + " ".join(f"{HEAD.get(c, c):>9}" for c in cols)
        lines += [header, "-" * len(header)]
        for name in per_bucket:
            for bucket, metrics in per_bucket[name].items():
                lines.append(f"{name:<{width}} {bucket:>10} " + " ".join(
                    f"{_fmt(metrics.get(c, {}).get('mean')):>9}" for c in cols))
    ratios = res.get("context_generalization", {})
    if ratios:
        lines.append("context generalization (beyond / inside the first bucket; 1 = no degradation):")
        for name, r in ratios.items():
            any_r = next(iter(r.values()))
            parts = [f"{m} x{_fmt(v.get('ratio'))}" for m, v in r.items() if m in ("fvu", "l0", "delta_ce")]
            lines.append(f"  {name} ({any_r['beyond']} vs {any_r['inside']}): " + ", ".join(parts))
    for task, section in res.get("cloze", {}).items():
        base = section.get("baseline", {}).get("acc_first_token", {})
        accs = ", ".join(f"{name} {_fmt(m.get('acc_first_token', {}).get('mean'))}"
                         for name, m in section.get("per_sae", {}).items())
        lines.append(f"cloze {task}: clean acc_first_token {_fmt(base.get('mean'))}; spliced {accs}")
    for bad in res.get("nonfinite", []):
        lines.append(f"NON-FINITE: sae {bad.get('sae')} (layer {bad['layer']}) {bad['where']} sequence {bad['sequence']} "
                     f"position {bad['position']}")
    summary = report.get("summary")
    if summary and report.get("checks"):
        lines.append("checks: " + ", ".join(f"{k} {v}" for k, v in summary.items() if isinstance(v, int)))
    return lines


def print_summary(report: dict[str, Any], file: TextIO | None = None) -> None:
    print("\n".join(summary_lines(report)), file=file or sys.stdout)
