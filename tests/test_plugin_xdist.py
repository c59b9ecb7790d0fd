"""Plugin under pytest-xdist: loadgroup keeps a layer on one worker, each worker runs the engine only
for its layers, and the controller merges everything into one report and one baseline update."""

from __future__ import annotations

import json

import pytest

from tests.test_plugin_support import GATE, engine_calls, full_baseline, setup_gate

pytest.importorskip("xdist")


@pytest.mark.slow
def test_two_workers_one_report_one_baseline(pytester: pytest.Pytester) -> None:
    baseline = full_baseline()
    del baseline["fvu/layer=2/bucket=1-16"]  # new on whichever worker gets layer 2
    root = setup_gate(pytester, baseline=baseline)
    result = pytester.runpytest(*GATE, "-n", "2", "--dist", "loadgroup", "--sae-update-baseline", "new")
    result.assert_outcomes(passed=18, skipped=1)
    calls = engine_calls(root)
    per_layer = [c for c in calls if len(c["layers"]) == 1]
    assert sorted(c["layers"][0] for c in per_layer) == [0, 1, 2]  # each layer ran on exactly one worker
    assert [c["layers"] for c in calls if len(c["layers"]) > 1] == [[0, 1, 2]]  # propagation group
    report = json.loads((root / "sae-report.json").read_text())
    assert len(report["checks"]) == 18
    assert report["summary"] == {"pass": 17, "fail": 0, "warn": 0, "improved": 0, "new": 1}
    assert sorted(report["results"]["per_bucket"]) == ["0", "1", "2"]
    assert [s["layer"] for s in report["provenance"]["saes"]] == [0, 1, 2]
    assert report["results"]["propagation"]["layers"] == [0, 1, 2]
    assert json.loads((root / "baseline.json").read_text())["entries"]["fvu/layer=2/bucket=1-16"]["value"] == \
        pytest.approx(0.12)
