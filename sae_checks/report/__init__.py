"""The report: versioned JSON (the record of a run), its schema, a Markdown summary and the diff of two runs.

JSON only: these modules never import torch or load a model (docs/report.md).
"""

from __future__ import annotations

from sae_checks.report.diff import DiffEntry, DiffError, ReportDiff, diff_exit_code, diff_reports, format_diff
from sae_checks.report.io import (
    build_report,
    canonical_json,
    load_report,
    read_report,
    upgrade_report,
    write_report,
)
from sae_checks.report.markdown import append_github_summary, summary_markdown
from sae_checks.report.schema import SCHEMA_VERSION, validate

__all__ = [
    "SCHEMA_VERSION",
    "DiffEntry",
    "DiffError",
    "ReportDiff",
    "append_github_summary",
    "build_report",
    "canonical_json",
    "diff_exit_code",
    "diff_reports",
    "format_diff",
    "load_report",
    "read_report",
    "summary_markdown",
    "upgrade_report",
    "validate",
    "write_report",
]
