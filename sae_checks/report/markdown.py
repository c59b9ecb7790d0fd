"""A compact Markdown summary of one report, for people: the CI job summary and PR comments.

Failing checks come first (value, CI, limit or band, message), then warnings, improved checks (update
the baseline), unused baseline entries, one's own checks (``custom_checks``). The verdict counts the
gate's checks and one's own alike (``sae_checks.status.FAILING``), as the exit code does. Reads only the
report dict.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterable
from typing import Any

from sae_checks.report.upgrade import sae_name
from sae_checks.status import FAILING, ORDER, rank

MAX_ROWS = 50  # rows per table; GitHub caps a step summary at 1 MiB and nobody reads row 51
MAX_NAMED = 12  # SAE names spelled out in the header; a larger suite is counted


def summary_markdown(report: dict[str, Any]) -> str:
    """The report as Markdown: a verdict line, what was checked, counts, then tables of the checks to act on."""
    prov = report.get("provenance", {})
    checks: list[dict[str, Any]] = report.get("checks", [])
    failing = [c for c in checks if c.get("status") in FAILING]
    custom: list[dict[str, Any]] = report.get("custom_checks", [])
    summary = Counter(str(c.get("status")) for c in [*checks, *custom])  # = report["summary"]
    verdict = "❌ FAIL" if any(summary[s] for s in FAILING) else "✅ PASS"
    lines = [f"## sae-checks: {verdict}", ""]
    lines += [f"- **Model** `{prov.get('model', '?')}`", f"- **SAEs** {_saes(prov.get('saes', []))}"]
    data = prov.get("data", {})
    if data:
        lines.append(
            f"- **Data** `{data.get('dataset', '?')}`"
            + (f" ({data['split']})" if data.get("split") else "")
            + f": {data.get('n_sequences', '?')} sequences x {data.get('ctx_len', '?')} tokens, seed {data.get('seed')}"
        )
    extras = [f"{k} `{prov[k]}`" for k in ("device", "dtype", "git_commit", "created") if prov.get(k)]
    if extras:
        lines.append("- " + ", ".join(extras))
    counts = ", ".join(f"{summary[s]} {s}" for s in ORDER)
    own = f" (and {len(custom)} of your own)" if custom else ""
    lines += [f"- **Checks** {len(checks)}{own}: {counts}", ""]

    lines += _table("Failing checks", failing, "A `new` check has no baseline entry and fails: add one.")
    lines += _table("Warnings", [c for c in checks if c.get("status") == "warn"])
    lines += _table("Improved", [c for c in checks if c.get("status") == "improved"],
                    "Better than the baseline beyond its band: update the baseline to lock the gain in.")
    unused = report.get("unused_baseline") or []
    if unused:
        shown = ", ".join(f"`{u}`" for u in unused[:MAX_ROWS])
        more = f" and {len(unused) - MAX_ROWS} more" if len(unused) > MAX_ROWS else ""
        lines += [f"### Unused baseline entries ({len(unused)})", "", shown + more, ""]
    if report.get("incomplete"):
        lines += [f"**Incomplete run**: {len(report.get('not_run') or [])} planned checks did not run.", ""]
    if custom:  # the user's own checks (sae_record in their test files)
        lines += [f"### Custom checks ({len(custom)})", "", "| check | SAE | status | value | test |",
                  "|---|---|---|---:|---|"]
        lines += [f"| `{c.get('id')}` | {c.get('sae') or ''} | {c.get('status')} | {_num(c.get('value'))} | "
                  f"`{c.get('test', '')}` |" for c in sorted(custom, key=lambda c: rank(c.get("status")))[:MAX_ROWS]]
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def append_github_summary(report: dict[str, Any], path: str | os.PathLike[str] | None = None) -> bool:
    """Append ``summary_markdown(report)`` to ``path``, default ``$GITHUB_STEP_SUMMARY``; False when neither is set."""
    target = path if path is not None else os.environ.get("GITHUB_STEP_SUMMARY")
    if not target:
        return False
    from sae_checks.io import atomic_append_text

    atomic_append_text(target, summary_markdown(report) + "\n")  # a full disk leaves it as it was
    return True


def _saes(saes: Iterable[dict[str, Any]]) -> str:
    """``release``, the SAE count, hooks and layers, contexts; the names when there are a few."""
    saes = list(saes)
    if not saes:
        return "none"
    sources = sorted({str(s.get("release") or s.get("id") or s.get("hook")) for s in saes})
    layers = ", ".join(map(str, sorted({int(s["layer"]) for s in saes if isinstance(s.get("layer"), int)})))
    hooks = {s.get("hook") for s in saes}
    contexts = sorted({int(s["context_size"]) for s in saes if s.get("context_size")})
    ctx = f" (context {', '.join(map(str, contexts))})" if contexts else ""
    names = [str(s.get("name") or sae_name(s)) for s in saes]
    listed = ": " + ", ".join(f"`{n}`" for n in names) if len(names) <= MAX_NAMED else ""
    count = f"{len(saes)} SAE{'s' if len(saes) != 1 else ''} at {len(hooks)} hook{'s' if len(hooks) != 1 else ''}"
    return f"{', '.join(f'`{s}`' for s in sources)}, {count}, layers {layers}{ctx}{listed}"


def _table(title: str, checks: list[dict[str, Any]], note: str = "") -> list[str]:
    if not checks:
        return []
    lines = [f"### {title} ({len(checks)})", ""]
    if note:
        lines += [note, ""]
    lines += ["| check | SAE | status | value | CI | limit / band | message |", "|---|---|---|---:|---|---|---|"]
    for c in checks[:MAX_ROWS]:
        cells = [f"`{c.get('id')}`", f"`{c['sae']}`" if c.get("sae") else "", str(c.get("status")), _num(c.get("value")), _interval(c.get("ci")),
                 _bound(c), str(c.get("message") or "")]
        lines.append("| " + " | ".join(cell.replace("|", "\\|").replace("\n", " ") for cell in cells) + " |")
    if len(checks) > MAX_ROWS:
        lines.append(f"\n… and {len(checks) - MAX_ROWS} more in the report JSON.")
    return [*lines, ""]


def _num(x: Any) -> str:
    return "null" if x is None else f"{x:.4g}" if isinstance(x, float) else str(x)


def _interval(ci: Any) -> str:
    if not ci or ci[0] is None or ci[1] is None:
        return ""
    return f"[{_num(ci[0])}, {_num(ci[1])}]"


def _bound(check: dict[str, Any]) -> str:
    """The limit (``≤`` when lower is better) and/or the band around the baseline."""
    parts = []
    if check.get("limit") is not None:
        op = {"lower": "≤ ", "higher": "≥ "}.get(str(check.get("direction")), "limit ")
        parts.append(op + _num(check["limit"]))
    if check.get("band"):
        parts.append("band " + _interval(check["band"]))
    elif check.get("baseline") is not None:
        parts.append("baseline " + _num(check["baseline"]))
    return "; ".join(parts)
