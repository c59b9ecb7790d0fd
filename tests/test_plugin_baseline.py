"""Plugin: --sae-update-baseline new / all writes the baseline once, never the policy file."""

from __future__ import annotations

import json

import pytest

from tests.test_plugin_support import GATE, SKIPPED, full_baseline, setup_gate


def entries(root) -> dict:  # type: ignore[no-untyped-def]
    return json.loads((root / "baseline.json").read_text())["entries"]


def test_update_new_records_new_and_failing(pytester: pytest.Pytester) -> None:
    baseline = full_baseline()
    baseline["fvu-L1-pos1_16-blocks.1.hook_resid_pre"]["value"] = 0.05  # fails the band
    baseline["l0-L0-pos1_16-blocks.0.hook_resid_pre"]["value"] = 9.5  # passes (band 2): must stay untouched
    del baseline["context_ratio-fvu-L2-blocks.2.hook_resid_pre"]  # new
    root = setup_gate(pytester, baseline=baseline)
    policy_before = (root / "policy.toml").read_text()
    result = pytester.runpytest(*GATE, "--sae-update-baseline")  # default mode: new
    result.assert_outcomes(passed=18, skipped=SKIPPED)  # what the update fixes does not fail the run
    result.stdout.fnmatch_lines(["sae-checks: baseline (new) updated 2 entries in *baseline.json"])
    after = entries(root)
    assert after["fvu-L1-pos1_16-blocks.1.hook_resid_pre"]["value"] == pytest.approx(0.11)
    assert after["context_ratio-fvu-L2-blocks.2.hook_resid_pre"] == {"value": 1.5, "ci": [1.4, 1.6]}
    assert after["l0-L0-pos1_16-blocks.0.hook_resid_pre"]["value"] == 9.5
    assert (root / "policy.toml").read_text() == policy_before
    pytester.runpytest(*GATE).assert_outcomes(passed=18, skipped=SKIPPED)  # the next run is green


def test_update_all_rewrites_every_check(pytester: pytest.Pytester) -> None:
    baseline = full_baseline()
    baseline["l0-L0-pos1_16-blocks.0.hook_resid_pre"]["value"] = 9.5
    root = setup_gate(pytester, baseline=baseline)
    pytester.runpytest(*GATE, "--sae-update-baseline=all").assert_outcomes(passed=18, skipped=SKIPPED)
    after = entries(root)
    assert after["l0-L0-pos1_16-blocks.0.hook_resid_pre"]["value"] == 10.0 and len(after) == 18


def test_update_creates_baseline_and_limit_failures_still_fail(pytester: pytest.Pytester) -> None:
    root = setup_gate(pytester, policy='baseline = "new-base.json"\n[metrics.fvu]\nlimit = 0.125\n')
    result = pytester.runpytest(*GATE, "--sae-update-baseline", "new")
    result.assert_outcomes(passed=3, failed=3, skipped=SKIPPED + 2)  # fvu over 0.125 in bucket 16-32 fails anyway
    created = json.loads((root / "new-base.json").read_text())
    assert created["format"] == "sae-checks-baseline" and len(created["entries"]) == 6


def test_a_published_baseline_with_schema_1_ids_still_judges(pytester: pytest.Pytester) -> None:
    """Ids of the layer era (``fvu/layer=0/bucket=1-16``) are mapped to the SAE at that layer on load."""
    setup_gate(pytester, baseline=full_baseline(legacy=True))
    result = pytester.runpytest(*GATE)
    result.assert_outcomes(passed=18, skipped=SKIPPED)  # not "new": every legacy entry found its check
    assert "unused baseline" not in result.stdout.str()
