"""Plugin: the report is written once, atomically, with every check, and the Markdown summary goes to
$GITHUB_STEP_SUMMARY; unused baseline entries are reported after a full run."""

from __future__ import annotations

import json

import pytest

from tests.test_plugin_support import GATE, SKIPPED, engine_calls, full_baseline, setup_gate

COUNT_WRITES = '''
import sae_checks.report.finish as _finish
_orig_write = _finish.write_report
def _counting_write(path, report):
    with open(HERE / "report_writes.txt", "a") as fh:
        fh.write(str(path) + "\\n")
    return _orig_write(path, report)
_finish.write_report = _counting_write
'''


def test_report_written_once_with_all_checks(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    baseline = full_baseline()
    baseline["gone-L0-pos1_16-blocks.0.hook_resid_pre"] = {"value": 1.0, "ci": None}  # not exercised by any check
    del baseline["l0-L2-pos16_32-blocks.2.hook_resid_pre"]  # -> new
    root = setup_gate(pytester, baseline=baseline)
    with (root / "conftest.py").open("a") as fh:
        fh.write(COUNT_WRITES)
    summary = root / "step-summary.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    result = pytester.runpytest(*GATE, "--sae-report", "gate.json")
    result.assert_outcomes(passed=17, failed=1, skipped=SKIPPED)
    result.stdout.fnmatch_lines(["sae-checks: 17 pass, 0 fail, 0 warn, 0 improved, 1 new",
                                 "sae-checks: report written to *gate.json",
                                 "sae-checks: 1 unused baseline entries: gone-L0-pos1_16-blocks.0.hook_resid_pre"])
    assert (root / "report_writes.txt").read_text().splitlines() == [str(root / "gate.json")]
    assert len(engine_calls(root)) == 1
    report = json.loads((root / "gate.json").read_text())
    assert report["summary"] == {"pass": 17, "fail": 0, "warn": 0, "improved": 0, "new": 1}
    assert len(report["checks"]) == 18 and report["unused_baseline"] == ["gone-L0-pos1_16-blocks.0.hook_resid_pre"]
    new = next(c for c in report["checks"] if c["status"] == "new")
    assert new["id"] == "l0-L2-pos16_32-blocks.2.hook_resid_pre" and new["value"] == 17.0
    assert report["results"]["per_bucket"]["blocks.2.hook_resid_pre"]["16-32"]["fvu"]["mean"] == pytest.approx(0.17)
    assert report["provenance"]["model"] == "stub"
    assert summary.exists() and summary.read_text().strip()


def test_partial_run_does_not_report_unused(pytester: pytest.Pytester) -> None:
    baseline = full_baseline()
    baseline["gone-L0-pos1_16-blocks.0.hook_resid_pre"] = {"value": 1.0, "ci": None}
    root = setup_gate(pytester, baseline=baseline)
    pytester.runpytest(*GATE, "-k", "context").assert_outcomes(
        passed=3, deselected=18 + SKIPPED - 3)  # (18 checks + a placeholder per empty family) - 3 selected
    assert "unused_baseline" not in json.loads((root / "sae-report.json").read_text())


def test_unsafe_tolerance_warns(pytester: pytest.Pytester) -> None:
    baseline = full_baseline()
    baseline["fvu-L0-pos1_16-blocks.0.hook_resid_pre"]["ci"] = [0.0, 0.2]  # half-width 0.1 > band 0.01
    setup_gate(pytester, baseline=baseline)
    result = pytester.runpytest(*GATE, "-k", "context")
    result.stdout.fnmatch_lines(["*1 tolerances are below the baseline CI half-width*fvu-L0-pos1_16-blocks.0.hook_resid_pre*"])


def test_no_gate_tests_no_report(pytester: pytest.Pytester) -> None:
    setup_gate(pytester)
    pytester.makepyfile(test_other="def test_x():\n    pass\n")
    pytester.runpytest("test_other.py").assert_outcomes(passed=1)
    assert not (pytester.path / "sae-report.json").exists()
