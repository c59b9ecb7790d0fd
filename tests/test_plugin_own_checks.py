"""Plugin: fixtures for one's own test files (README "Your own checks"). ``sae_results`` shares the gate's
cached evaluation, ``sae_record`` lands in report["custom_checks"] and the Markdown summary, and the
README's example file runs and passes on the real zoo."""

from __future__ import annotations

import json
import re
import textwrap
from pathlib import Path

import pytest

from tests.test_plugin_support import (
    GATE,
    SKIPPED,
    engine_calls,
    full_baseline,
    sae,
    setup_gate,
    use_this_checkout,
)

ROOT = Path(__file__).resolve().parents[1]

MINE = textwrap.dedent('''
    def test_reads_the_same_results(sae_results, sae_record):
        assert sae_results.saes() == ["blocks.0.hook_resid_pre", "blocks.1.hook_resid_pre", "blocks.2.hook_resid_pre"]
        est = sae_results.bucket("blocks.1.hook_resid_pre", "16-32")["fvu"]
        assert abs(est.mean - 0.16) < 1e-9 and est.ci[0] < est.mean < est.ci[1]
        sae_record("fvu_late-blocks.1", est.mean, passed=est.mean < 0.2, sae="blocks.1.hook_resid_pre")

    def test_outcome_decides_without_passed(sae_results, sae_record):
        sae_record("always_fails", 1.0)
        assert False, "on purpose"
''')


def test_sae_results_shares_the_gate_cache_and_records_custom_checks(pytester: pytest.Pytester,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    root = setup_gate(pytester, baseline=full_baseline())
    pytester.makepyfile(test_mine=MINE)
    summary = root / "step-summary.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    result = pytester.runpytest(*GATE, "test_mine.py")  # the gate's checks and one's own in one session
    result.assert_outcomes(passed=19, failed=1, skipped=SKIPPED)
    assert [sorted(c["saes"]) for c in engine_calls(root)] == [[sae(0), sae(1), sae(2)]]  # evaluated once
    result.stdout.fnmatch_lines(["sae-checks: 18 pass, 0 fail, 0 warn, 0 improved, 0 new; 2 custom checks (1 failed)"])
    report = json.loads((root / "sae-report.json").read_text())
    custom = {c["id"]: c for c in report["custom_checks"]}
    assert custom["fvu_late-blocks.1"]["status"] == "pass" and custom["fvu_late-blocks.1"]["value"] == pytest.approx(0.16)
    assert custom["fvu_late-blocks.1"]["sae"] == sae(1)
    assert custom["fvu_late-blocks.1"]["test"] == "test_mine.py::test_reads_the_same_results"
    assert custom["always_fails"]["status"] == "fail" and custom["always_fails"]["outcome"] == "failed"
    md = summary.read_text()
    assert "### Custom checks (2)" in md and "`always_fails`" in md and "FAIL" in md


def test_own_checks_alone_run_the_engine_once(pytester: pytest.Pytester) -> None:
    root = setup_gate(pytester, baseline=full_baseline())
    pytester.makepyfile(test_mine=MINE.replace("    assert False, \"on purpose\"\n", ""))
    result = pytester.runpytest("test_mine.py", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=2)
    assert len(engine_calls(root)) == 1
    result.stdout.fnmatch_lines(["sae-checks: no gate checks ran; 2 custom checks (0 failed)"])


def readme_example() -> str:
    """The code block that follows "`tests/test_my_saes.py`" in README.md's "Your own checks"."""
    text = (ROOT / "README.md").read_text()
    section = text.split("## Your own checks", 1)[1].split("\n## ", 1)[0]
    m = re.search(r"`tests/test_my_saes.py`[^\n]*\n\n```python\n(.*?)```", section, re.S)
    assert m, "README.md: no ```python block after `tests/test_my_saes.py` in 'Your own checks'"
    return m.group(1)


def test_readme_example_is_the_example_file() -> None:
    assert readme_example() == (ROOT / "docs" / "examples" / "test_my_saes.py").read_text()


@pytest.mark.slow
def test_readme_example_passes_on_the_zoo(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    use_this_checkout(monkeypatch)
    (pytester.path / "tests").mkdir()
    (pytester.path / "tests" / "test_my_saes.py").write_text(readme_example())
    result = pytester.runpytest_subprocess(
        "tests/test_my_saes.py", "-p", "no:cacheprovider", "-p", "no:xdist", "--sae-saes", "zoo:v2",
        "--sae-n-seqs", "4", "--sae-n-bootstrap", "20", "--sae-n-prompts", "16", "--sae-n-causal", "0",
        timeout=300)
    import torch

    gpu = torch.cuda.is_available()
    result.assert_outcomes(passed=4 if gpu else 3, skipped=0 if gpu else 1)
    report = json.loads((pytester.path / "sae-report.json").read_text())
    ids = sorted(c["id"] for c in report["custom_checks"])
    assert len(ids) == 8 and ids[0] == "dead_features-blocks.0.hook_resid_pre"
    assert all(c["status"] == "pass" for c in report["custom_checks"])
    assert sorted(report["results"]["per_bucket"]) == [f"blocks.{i}.hook_resid_pre" for i in range(4)]
