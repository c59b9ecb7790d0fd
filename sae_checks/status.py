"""The status vocabulary: what a judged check (the gate's, or one's own recorded with ``sae_record``) can
be, what each status means, and which ones fail the gate. The gate, the terminal and Markdown summaries,
the HTML page, the diff and the report schema all read it from here (docs/gate.md has the semantics).

A status that fails the gate is also one that blocks publishing: the exit code, the report's
``summary``, the Markdown verdict and the HTML verdict are all decided by ``FAILING``.

No imports beyond typing: the plugin imports this at start-up.
"""

from __future__ import annotations

import typing
from collections.abc import Iterable, Mapping
from typing import Any, Literal

Status = Literal["pass", "fail", "warn", "improved", "new"]
# Every status, in the order the report's ``summary`` and the terminal summary count them.
STATUSES: tuple[Status, ...] = ("pass", "fail", "warn", "improved", "new")
MEANING: dict[Status, str] = {
    "pass": "within the limit and the band around its baseline",
    "fail": "past its limit or band on the bad side, non-finite, missing, or its engine run failed; "
            "a check of one's own: recorded with passed=False, or its test failed",
    "warn": "a failure of a check with severity \"warn\" (policy, or sae_record): reported, never blocking",
    "improved": "better than its baseline beyond the band: update the baseline to lock the gain in",
    "new": "no baseline entry yet: fails until the baseline has one (--sae-update-baseline)",
}
FAILING: frozenset[str] = frozenset({"fail", "new"})  # fail the gate (exit 1) and block publishing
NOTEWORTHY: frozenset[str] = frozenset({"warn", "improved"})  # pass, with a warning
# Display order: what blocks publishing first.
ORDER: tuple[Status, ...] = ("fail", "new", "warn", "improved", "pass")
# A check of one's own (sae_record) is pass, fail, or (severity "warn") warn: it has no baseline.
CustomStatus = Literal["pass", "fail", "warn"]
Severity = Literal["fail", "warn"]  # what a failure of a check is: fail (blocks) or warn (reported only)
SEVERITIES: tuple[Severity, ...] = typing.get_args(Severity)


def fails(status: Any) -> bool:
    """Whether a check with ``status`` fails the gate (and blocks publishing)."""
    return status in FAILING


def rank(status: Any) -> int:
    """Sort key: what blocks publishing first, unknown statuses after the known ones."""
    return ORDER.index(status) if status in ORDER else len(ORDER)


def count(checks: Iterable[Mapping[str, Any]]) -> dict[str, int]:
    """Checks per status, every status present (zeros included), in ``STATUSES`` order. A status outside
    the vocabulary raises ValueError naming the check."""
    counts: dict[str, int] = dict.fromkeys(STATUSES, 0)
    for check in checks:
        status = check.get("status")
        if status not in counts:
            raise ValueError(f"check {check.get('id')!r}: status {status!r} is not one of {', '.join(STATUSES)}")
        counts[status] += 1
    return counts


def custom_status(passed: bool | None, severity: Severity, outcome_passed: bool) -> CustomStatus:
    """The status of a check of one's own (``sae_record``): from ``passed`` when given, else from its
    test's outcome; an explicit ``passed=False`` with ``severity="warn"`` is ``warn``."""
    if passed is None:
        return "pass" if outcome_passed else "fail"
    if passed:
        return "pass"
    return "warn" if severity == "warn" else "fail"
