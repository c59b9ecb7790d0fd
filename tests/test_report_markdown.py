"""report.markdown: the compact summary (failing checks first) and the GitHub step summary."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest

from sae_checks.report import append_github_summary, load_report, summary_markdown

DATA = Path(__file__).parent / "data"


@pytest.fixture
def full() -> dict:
    return load_report(DATA / "report_full.json")


def test_summary_of_full_report(full):
    text = summary_markdown(full)
    assert text.startswith("## sae-checks: ❌ FAIL\n")
    assert "- **Model** `zoo`" in text
    assert "`zoo:v2`, 7 SAEs at 6 hooks, layers 0, 1, 2, 3 (context 32): `blocks.0.hook_resid_pre`" in text
    assert "`blocks.1.hook_resid_pre.w1024`" in text
    assert "64 sequences x 256 tokens" in text
    assert "2 fail, 1 new, 1 warn, 1 improved, 57 pass" in text
    order = [text.index(h) for h in ("### Failing checks (3)", "### Warnings (1)", "### Improved (1)",
                                     "### Unused baseline entries (2)")]
    assert order == sorted(order)
    row = next(line for line in text.splitlines() if line.startswith("| `fvu-L0-pos32_256-blocks.0.hook_resid_pre`"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[1] == "`blocks.0.hook_resid_pre`" and cells[2] == "fail"
    assert cells[4].startswith("[") and cells[5].startswith("≤ ")  # CI, then limit (lower is better)
    assert "training context" in cells[6]
    assert "| `fvu-L0-pos1_32-blocks.0.hook_resid_pre` |" not in text  # passing checks are counted, not listed


def test_summary_of_passing_report():
    text = summary_markdown(load_report(DATA / "report_minimal.json"))
    assert text.startswith("## sae-checks: ✅ PASS")
    assert "###" not in text


def test_pipes_in_messages_are_escaped(full):
    report = copy.deepcopy(full)
    failing = next(c for c in report["checks"] if c["status"] == "fail")
    failing["message"] = "a | b\nc"
    assert "a \\| b c" in summary_markdown(report)


def test_append_github_summary(tmp_path, monkeypatch, full):
    target = tmp_path / "summary.md"
    target.write_text("earlier step\n")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(target))
    assert append_github_summary(full) is True
    text = target.read_text()
    assert text.startswith("earlier step\n## sae-checks: ❌ FAIL")


def test_append_github_summary_without_env(monkeypatch, full):
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)
    assert append_github_summary(full) is False
