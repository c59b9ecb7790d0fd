"""Render a :class:`~sae_checks.report.diff_types.ReportDiff` as a terminal table, GitHub Markdown or JSON."""

from __future__ import annotations

from typing import Literal

from sae_checks.errors import ReportError
from sae_checks.report.diff_types import CATEGORIES, ReportDiff


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
    saes = _sae_lines(diff)
    rows = [e for e in diff.entries if show_unchanged or e.category != "unchanged"]
    header = ["", "key", "old", "new", "delta", "delta %", "why"]
    cells = [[e.category, e.key, _value(e.old, e.old_status), _value(e.new, e.new_status),
              _signed(e.delta), _pct(e.delta_pct), e.reason] for e in rows]
    if fmt == "markdown":
        lines = [f"### sae-checks diff: {verdict}", "", f"`{diff.old_label}` → `{diff.new_label}`: {headline}", ""]
        lines += [f"- {line}" for line in saes] + ([""] if saes else [])
        if diff.incompatible:
            lines += [f"> **Compared despite:** {'; '.join(diff.incompatible)}", ""]
        if cells:
            lines += ["| " + " | ".join(header[1:2] + ["change"] + header[2:]) + " |",
                      "|" + "---|" * 2 + "---:|" * 4 + "---|"]
            lines += ["| " + " | ".join(_md(c) for c in [row[1], row[0], *row[2:]]) + " |" for row in cells]
        return "\n".join(lines) + "\n"
    lines = [f"sae-checks diff: {verdict}", f"{diff.old_label} -> {diff.new_label}", headline, *saes]
    if diff.incompatible:
        lines.append("compared despite: " + "; ".join(diff.incompatible))
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


def _sae_lines(diff: ReportDiff) -> list[str]:
    """New and vanished SAEs and the exclude patterns, one line each (none when there are none)."""
    lines = []
    if diff.new_saes:
        lines.append(f"new SAEs ({len(diff.new_saes)}): " + ", ".join(diff.new_saes))
    if diff.vanished_saes:
        lines.append(f"vanished SAEs ({len(diff.vanished_saes)}, regressions): " + ", ".join(diff.vanished_saes))
    if diff.exclude:
        n = len(diff.by_category("excluded"))
        lines.append(f"excluded ({n} entries): " + ", ".join(diff.exclude))
    return lines
