"""The result of comparing two reports: one entry per compared quantity, and the exit code.

``report.diff`` computes it, ``report.diff_format`` renders it; both import these types from here.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

Category = Literal["regressed", "improved", "changed", "unchanged", "added", "excluded"]
Direction = Literal["lower", "higher"]
CATEGORIES: tuple[Category, ...] = ("regressed", "improved", "changed", "added", "excluded", "unchanged")


@dataclass(frozen=True, kw_only=True)
class DiffEntry:
    key: str  # "checks/fvu-L3-pos1_128-blocks.3.hook_resid_pre", "per_bucket/sae=<name>/bucket=1-128/fvu", ...
    section: str  # "saes", "checks", "per_bucket", "context_generalization", "cloze", "summary"
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
    sae: str | None = None  # the SAE this entry belongs to (None: summary, cloze baseline)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, kw_only=True)
class ReportDiff:
    entries: tuple[DiffEntry, ...]  # sorted by category (CATEGORIES order), then key
    old_label: str = "old"
    new_label: str = "new"
    incompatible: tuple[str, ...] = field(default=())  # mismatches compared anyway (force / allow_different)
    new_saes: tuple[str, ...] = ()  # SAEs only in the new report (listed, not regressions)
    vanished_saes: tuple[str, ...] = ()  # SAEs only in the old report, not excluded (regressions)
    exclude: tuple[str, ...] = ()  # the exclude patterns applied

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
            "new_saes": list(self.new_saes),
            "vanished_saes": list(self.vanished_saes),
            "exclude": list(self.exclude),
            "counts": self.counts(),
            "exit_code": diff_exit_code(self),
            "entries": [e.to_dict() for e in self.entries],
        }


def diff_exit_code(diff: ReportDiff) -> int:
    """1 when anything regressed, else 0 (usage errors, e.g. incompatible reports, are 2 via ReportError)."""
    return 1 if diff.regressions else 0
