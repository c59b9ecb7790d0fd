"""Plugin: runs that stop early or cannot start. A stopped run (-x, --maxfail, Ctrl-C) writes a report
marked incomplete and never updates the baseline; an engine input error fails its checks with one line
and is not retried per test; a release missing from an offline cache is one OfflineError line."""

from __future__ import annotations

import json

import pytest

from sae_checks.errors import ThresholdError
from sae_checks.gate.thresholds import Baselines, baselines_from_report
from tests.test_plugin_support import (
    GATE,
    SKIPPED,
    engine_calls,
    full_baseline,
    setup_gate,
    use_this_checkout,
)

LIMIT_POLICY = 'baseline = "baseline.json"\n[metrics.fvu]\nlimit = 0.105\n[metrics.l0]\nabs_tol = 2.0\n'


def test_stopped_run_is_incomplete_and_never_updates_the_baseline(pytester: pytest.Pytester) -> None:
    root = setup_gate(pytester, policy=LIMIT_POLICY, baseline=full_baseline())
    before = (root / "baseline.json").read_text()
    result = pytester.runpytest(*GATE, "-x", "--sae-update-baseline=all")  # fvu at L0 16-32 is over the limit
    assert result.ret == 1
    result.assert_outcomes(passed=1, failed=1)
    report = json.loads((root / "sae-report.json").read_text())
    assert report["incomplete"] is True
    assert len(report["checks"]) == 2 and len(report["not_run"]) == 10  # 12 planned: 6 fvu + 6 l0
    assert "l0-L2-pos16_32-blocks.2.hook_resid_pre" in report["not_run"]
    assert (root / "baseline.json").read_text() == before
    result.stdout.fnmatch_lines(["*the run stopped early: 10 planned checks did not run*",
                                 "*baseline not updated*refusing to write a baseline from an incomplete run*"])


def test_maxfail_marks_the_report_incomplete(pytester: pytest.Pytester) -> None:
    root = setup_gate(pytester, policy=LIMIT_POLICY, baseline=full_baseline())
    pytester.runpytest(*GATE, "--maxfail=2")
    report = json.loads((root / "sae-report.json").read_text())
    assert report["incomplete"] is True and len(report["not_run"]) == 12 - len(report["checks"])
    pytester.runpytest(*GATE, "-k", "l0")  # a complete run (of what -k selected) carries no such mark
    report = json.loads((root / "sae-report.json").read_text())
    assert "incomplete" not in report and "not_run" not in report


def test_interrupt_marks_the_report_incomplete(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    use_this_checkout(monkeypatch)
    root = setup_gate(pytester, policy=LIMIT_POLICY, baseline=full_baseline())
    # Ctrl-C during an l0 check (a plugin, not conftest hooks: those apply only to tests under their folder)
    (root / "ctrl_c.py").write_text("def pytest_runtest_call(item):\n    if 'l0-L0-pos1_16' in item.name:\n"
                                    "        raise KeyboardInterrupt\n")
    result = pytester.runpytest_subprocess(*GATE, "-p", "ctrl_c")  # in-process, pytester re-raises Ctrl-C
    assert result.ret == pytest.ExitCode.INTERRUPTED
    report = json.loads((root / "sae-report.json").read_text())
    assert report["incomplete"] is True and "l0-L2-pos16_32-blocks.2.hook_resid_pre" in report["not_run"]


def test_baseline_writer_refuses_an_incomplete_report() -> None:
    report = {"checks": [{"id": "a", "status": "pass", "value": 1.0, "ci": None}], "incomplete": True,
              "not_run": ["b", "c"], "provenance": {}}
    with pytest.raises(ThresholdError, match="refusing to write a baseline from an incomplete run"):
        baselines_from_report(report, Baselines(), "all", model="zoo")
    del report["incomplete"]
    entries, written, subject = baselines_from_report(report, Baselines(), "all", model="zoo")
    assert written == ["a"] and entries["a"].value == 1.0 and subject["model"] == "zoo"


CORRUPT = '''
from sae_checks.errors import LoadError
_real_run = _api.run
def _corrupt_run(config, **kw):
    with open(HERE / "attempts.txt", "a") as fh:
        fh.write("run\\n")
    raise LoadError("/saes/blocks.1.hook_resid_pre/sae_weights.safetensors: not a safetensors file (corrupt?)")
_api.run = _corrupt_run
'''


def test_engine_input_error_is_reported_once_and_not_retried(pytester: pytest.Pytester) -> None:
    root = setup_gate(pytester, baseline=full_baseline())
    with (root / "conftest.py").open("a") as fh:
        fh.write(CORRUPT)
    result = pytester.runpytest(*GATE)
    result.assert_outcomes(failed=18, skipped=SKIPPED)
    assert (root / "attempts.txt").read_text().splitlines() == ["run"]  # one attempt for all 18 checks
    out = result.stdout.str()
    line = "not a safetensors file (corrupt?)"
    assert out.count(line) >= 18 and "Traceback" not in out
    result.stdout.fnmatch_lines(["sae-checks: the engine failed for SAEs blocks.0.hook_resid_pre, "
                                 "blocks.1.hook_resid_pre, blocks.2.hook_resid_pre: */blocks.1.hook_resid_pre/"
                                 "sae_weights.safetensors: not a safetensors file (corrupt?)"])
    report = json.loads((root / "sae-report.json").read_text())
    assert {c["reason"] for c in report["checks"]} == {"error"} and report["summary"]["fail"] == 18
    assert engine_calls(root) == []


def test_offline_release_missing_from_the_cache_is_one_line(pytester: pytest.Pytester, empty_offline_hub: object,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    use_this_checkout(monkeypatch)  # a subprocess: sae_lens / datasets imported in-process would not survive
    result = pytester.runpytest_subprocess(*GATE, "--sae-model", "gpt2-small", "--sae-saes", "gpt2-small-res-jb",
                                "--sae-ctx", "128", "--sae-layers", "3")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stdout.fnmatch_lines(["*sae-checks: SAE config 'gpt2-small-res-jb' / 'blocks.3.hook_resid_pre' is not "
                                 "available offline (HF_HUB_OFFLINE=1 and not in the Hugging Face cache)*"])
    out = result.stdout.str()
    assert "Traceback" not in out and "LocalEntryNotFoundError" not in out and "OfflineModeIsEnabled" not in out
