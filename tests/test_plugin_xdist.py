"""Plugin under pytest-xdist: loadgroup keeps an SAE on one worker, each SAE's engine run happens exactly
once across workers (propagation checks ride on their upstream SAE's run), and the controller merges
everything into one report, equal to the single-process one, and one baseline update."""

from __future__ import annotations

import json

import pytest

from tests.test_plugin_support import GATE, SKIPPED, engine_calls, full_baseline, sae, setup_gate

pytest.importorskip("xdist")


@pytest.mark.slow
def test_two_workers_one_report_one_baseline(pytester: pytest.Pytester) -> None:
    baseline = full_baseline()
    del baseline["fvu-L2-pos1_16-blocks.2.hook_resid_pre"]  # new on whichever worker gets layer 2
    root = setup_gate(pytester, baseline=baseline)
    result = pytester.runpytest(*GATE, "-n", "2", "--dist", "loadgroup", "--sae-update-baseline", "new")
    result.assert_outcomes(passed=18, skipped=SKIPPED)
    calls = engine_calls(root)
    assert sorted(c["saes"] for c in calls) == [[sae(0)], [sae(1)], [sae(2)]]  # each SAE ran once, in all
    assert len({c["pid"] for c in calls}) == 2  # on two workers
    report = json.loads((root / "sae-report.json").read_text())
    assert len(report["checks"]) == 18
    assert report["summary"] == {"pass": 17, "fail": 0, "warn": 0, "improved": 0, "new": 1}
    assert sorted(report["results"]["per_bucket"]) == [sae(0), sae(1), sae(2)]
    assert [s["layer"] for s in report["provenance"]["saes"]] == [0, 1, 2]
    assert report["results"]["propagation"]["saes"] == [sae(0), sae(1), sae(2)]
    assert json.loads((root / "baseline.json").read_text())["entries"]["fvu-L2-pos1_16-blocks.2.hook_resid_pre"]["value"] == \
        pytest.approx(0.12)

    # the same run in one process: the same engine passes in total, the same report
    (root / "engine_calls.jsonl").unlink()
    (root / "baseline.json").write_text(json.dumps({"format": "sae-checks-baseline", "version": 1,
                                                    "entries": baseline}))
    single = pytester.runpytest(*GATE, "-p", "no:xdist", "--sae-update-baseline", "new",
                                "--sae-report", "single.json")
    single.assert_outcomes(passed=18, skipped=SKIPPED)
    assert [sorted(c["saes"]) for c in engine_calls(root)] == [sorted([sae(0), sae(1), sae(2)])]
    one = json.loads((root / "single.json").read_text())
    assert one["results"] == report["results"] and one["checks"] == report["checks"]
