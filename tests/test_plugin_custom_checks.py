"""Plugin: what a check of one's own (``sae_record``) does to the session (issue 22). A recorded failure
fails its test, so the exit code, pytest's summary, the sae-checks terminal line, the report's summary,
the Markdown verdict and the HTML verdict agree, with one or two xdist workers and under ``sae-checks
gate``; ``severity="warn"`` reports without blocking. The test files use only ``sae_record``: no engine run.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest

from sae_checks.report.html import render_html
from sae_checks.report.markdown import summary_markdown
from sae_checks.status import STATUSES, custom_status
from tests.test_plugin_support import engine_calls, full_baseline, setup_gate, use_this_checkout

# Every outcome: passed True / False / None, with and without an assert, and a warning.
TESTS = {
    "true": 'def test_true(sae_record):\n    sae_record("true", 1.0, passed=True)\n',
    "false": 'def test_false(sae_record):\n    sae_record("false", 2.0, passed=False, sae="s", note="too high")\n',
    "false_assert": 'def test_false_assert(sae_record):\n    sae_record("false_assert", 3.0, passed=False)\n'
                    '    assert False, "on purpose"\n',
    "none": 'def test_none(sae_record):\n    sae_record("none", 4.0)\n',
    "none_assert": 'def test_none_assert(sae_record):\n    sae_record("none_assert", 5.0)\n    assert False, "on purpose"\n',
    "warn": 'def test_warn(sae_record):\n    sae_record("warn", 6.0, passed=False, severity="warn")\n',
}
MINE = "\n".join(TESTS.values())
EXPECTED = {"true": "pass", "false": "fail", "false_assert": "fail", "none": "pass", "none_assert": "fail",
            "warn": "warn"}


def outcomes(root: Path, result: pytest.RunResult) -> dict[str, Any]:
    """What each channel says: exit code, the report's custom statuses and summary, Markdown, HTML."""
    report = json.loads((root / "sae-report.json").read_text())
    return {"ret": int(result.ret), "custom": {c["id"]: c["status"] for c in report["custom_checks"]},
            "summary": report["summary"], "markdown": summary_markdown(report).splitlines()[0],
            "html": "not ready to publish" in render_html(report), "report": report}


@pytest.mark.parametrize("workers", [(), ("-n", "2")], ids=["one-process", "two-workers"])
def test_a_recorded_failure_fails_the_session_and_every_channel_says_so(pytester: pytest.Pytester,
                                                                         workers: tuple[str, ...]) -> None:
    root = setup_gate(pytester)
    pytester.makepyfile(test_mine=MINE)
    result = pytester.runpytest("test_mine.py", "-p", "no:cacheprovider", *workers)
    result.assert_outcomes(passed=3, failed=3, warnings=1)
    seen = outcomes(root, result)
    assert seen["ret"] == pytest.ExitCode.TESTS_FAILED
    assert seen["custom"] == EXPECTED
    want = {s: sum(v == s for v in EXPECTED.values()) for s in STATUSES}
    assert seen["summary"] == want and want["fail"] == 3  # the report's summary counts one's own checks
    assert "FAIL" in seen["markdown"] and seen["html"]
    # the test that only recorded the failure fails with the check's line
    result.stdout.fnmatch_lines(["*_ test_false _*", "sae-checks: custom check 'false' failed (value 2.0, SAE s): too high",
                                 "sae-checks: no gate checks ran; 6 custom checks (3 failed, 1 warn)"])
    result.stdout.fnmatch_lines(["*GateWarning: sae-checks: custom check 'warn' warns (value 6.0)*"])
    assert engine_calls(root) == []  # sae_record alone never runs the engine


def test_warnings_and_passes_alone_pass(pytester: pytest.Pytester) -> None:
    root = setup_gate(pytester)
    pytester.makepyfile(test_mine="\n".join(TESTS[k] for k in ("true", "none", "warn")))
    result = pytester.runpytest("test_mine.py", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=3, warnings=1)
    seen = outcomes(root, result)
    assert seen["ret"] == pytest.ExitCode.OK and seen["custom"] == {k: EXPECTED[k] for k in ("true", "none", "warn")}
    assert seen["summary"]["warn"] == 1 and seen["summary"]["fail"] == 0
    assert "PASS" in seen["markdown"] and not seen["html"]


@pytest.mark.slow
def test_sae_checks_gate_exits_1_on_a_recorded_failure(pytester: pytest.Pytester,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """``sae-checks gate -- test_mine.py``: the gate's own checks pass, one's own failure decides."""
    use_this_checkout(monkeypatch)
    root = setup_gate(pytester, baseline=full_baseline())
    pytester.makepyfile(test_mine="\n".join(TESTS[k] for k in ("true", "false")))
    result = pytester.run(sys.executable, "-m", "sae_checks.cli", "gate", "--", "test_mine.py", timeout=120)
    seen = outcomes(root, result)
    assert seen["ret"] == 1 and seen["custom"] == {"true": "pass", "false": "fail"}
    assert seen["summary"]["fail"] == 1 and seen["summary"]["pass"] == len(seen["report"]["checks"]) + 1
    assert "FAIL" in seen["markdown"] and seen["html"]
    result.stdout.fnmatch_lines(["sae-checks: * pass, 0 fail, 0 warn, 0 improved, 0 new; 2 custom checks (1 failed)"])


def test_custom_status_table() -> None:
    """The rule the plugin applies, every case (passed x severity x the test's outcome)."""
    assert [custom_status(p, s, o) for p in (True, False, None) for s in ("fail", "warn") for o in (True, False)] == [
        "pass", "pass", "pass", "pass", "fail", "fail", "warn", "warn", "pass", "fail", "pass", "fail"]


def test_sae_record_refuses_a_bad_passed_or_severity_and_takes_numpy_booleans(pytester: pytest.Pytester) -> None:
    setup_gate(pytester)
    pytester.makepyfile(test_mine='''
        import pytest

        import numpy as np

        def test_bad(sae_record):
            with pytest.raises(TypeError, match="passed='warn'.*severity='warn'"):
                sae_record("x", 1.0, passed="warn")
            with pytest.raises(ValueError, match="severity='info'"):
                sae_record("x", 1.0, passed=False, severity="info")
            sae_record("numpy", 0.3, passed=np.float64(0.3) < 0.5)  # a numpy boolean is a boolean
    ''')
    pytester.runpytest("test_mine.py", "-p", "no:cacheprovider").assert_outcomes(passed=1)
    assert json.loads((pytester.path / "sae-report.json").read_text())["custom_checks"][0]["status"] == "pass"
