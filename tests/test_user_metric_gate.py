"""A per-token metric defined outside the package, as a user would in a conftest.py, is a first-class
citizen: the gate on the real zoo measures it (per position, per bucket, context ratio, propagation), a
policy gates it, ``sae-checks diff`` compares it with its direction and ``sae-checks plot`` draws it."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.test_plugin_support import GATE, empty_families, use_this_checkout

CONFTEST = textwrap.dedent('''
    """A user's own metric: max_d |x − x̂| per token, mean over tokens."""
    from sae_checks import register_metric
    from sae_checks.metrics.registry import Metric, Sum

    MAX_ABS_ERR = Sum("max_abs_err", "tok", lambda c: (c.x - c.x_hat).abs().amax(-1))
    register_metric(Metric(name="max_abs_err", family="bucket", direction="lower", label="max_d |x - x_hat|",
                           unit="activation units", sums=(MAX_ABS_ERR,),
                           compute=lambda s: s["max_abs_err"] / s["n_tok"]))
    register_metric(Metric(name="max_abs_err", family="context_ratio", direction="lower",
                           label="max_abs_err beyond / inside", unit="ratio"))
    register_metric(Metric(name="max_abs_err", family="propagation", direction="lower",
                           label="downstream max_abs_err", unit="fractional change"))
''')

POLICY = textwrap.dedent('''
    buckets = [[1, 32], [32, 64]]
    baseline = "base.json"

    [metrics.max_abs_err]
    rel_tol = 0.5
    layers.0 = { limit = 0.0 }   # fails on purpose: the gate judges the user's metric

    [context_ratio.max_abs_err]
    rel_tol = 0.5

    [propagation.max_abs_err]
    abs_tol = 1.0
''')

FAST = ("--sae-saes", "zoo:v2", "--sae-layers", "0,1,2", "--sae-ctx-len", "64", "--sae-n-seqs", "4",
        "--sae-n-bootstrap", "20", "--sae-no-zero-ablation", "-p", "no:xdist")


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "sae_checks.cli", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=300)


@pytest.mark.slow
def test_user_metric_in_report_gate_diff_and_figure(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    use_this_checkout(monkeypatch)
    pytester.makeconftest(CONFTEST)
    (pytester.path / "policy.toml").write_text(POLICY)
    result = pytester.runpytest_subprocess(*GATE, *FAST, "--sae-thresholds", "policy.toml",
                                           "--sae-update-baseline", "new", timeout=600)
    report = json.loads((pytester.path / "sae-report.json").read_text())
    res = report["results"]

    # measured: per position, per bucket, context ratio and propagation, for every SAE
    saes = sorted(res["per_bucket"])
    assert len(saes) == 3
    for sae in saes:
        assert any(v is not None for v in res["per_position"][sae]["max_abs_err"])
        for bucket in res["buckets"][sae]:
            est = res["per_bucket"][sae][bucket]["max_abs_err"]
            assert est["mean"] > 0 and est["ci"][0] <= est["mean"] <= est["ci"][1]
        assert res["context_generalization"][sae]["max_abs_err"]["ratio"] > 0
    prop = res["propagation"]["max_abs_err"]
    pairs = sum(v is not None for row in prop for v in row)
    assert pairs == len(saes) * (len(saes) - 1) // 2

    # gated by the policy: one check per (SAE, bucket), per SAE, per propagation pair; layer 0 over its limit
    mine = [c for c in report["checks"] if c["metric"].rpartition(".")[2] == "max_abs_err"]
    n_bucket = sum(len(res["buckets"][s]) for s in saes)
    assert len(mine) == n_bucket + len(saes) + pairs == len(report["checks"])
    failed = [c for c in mine if c["status"] == "fail"]
    assert failed and all(c["layer"] == 0 and c["metric"] == "max_abs_err" for c in failed)
    assert all("limit" in c["message"] for c in failed), failed
    assert len(failed) == len(res["buckets"][saes[0]])
    # the other checks are "new" (no baseline yet: --sae-update-baseline writes it) and do not fail the run;
    # the cloze family has no check in this policy: its one test is skipped
    assert {c["status"] for c in mine} - {"fail"} == {"new"}
    result.assert_outcomes(failed=len(failed), passed=len(mine) - len(failed), skipped=empty_families(POLICY))
    base = json.loads((pytester.path / "base.json").read_text())["entries"]
    assert {c["id"] for c in mine if c["status"] == "new"} <= set(base)
    result.stdout.fnmatch_lines(["*max_abs_err*limit*"])

    # the diff (a separate process that never saw the conftest): direction from the report's checks
    worse = json.loads(json.dumps(report))
    sae, bucket = saes[1], res["buckets"][saes[1]][0]
    entry = worse["results"]["per_bucket"][sae][bucket]["max_abs_err"]
    entry["mean"] *= 3  # a regression well outside the CI
    entry["ci"] = [v * 3 for v in entry["ci"]]
    (pytester.path / "worse.json").write_text(json.dumps(worse))
    diff = _cli("diff", "sae-report.json", "worse.json", "--format", "json", cwd=pytester.path)
    assert diff.returncode == 1, diff.stderr  # 1: something regressed
    key = f"per_bucket/sae={sae}/bucket={bucket}/max_abs_err"
    entries = {e["key"]: e for e in json.loads(diff.stdout)["entries"]}
    assert entries[key]["direction"] == "lower" and entries[key]["category"] == "regressed", entries[key]

    # a figure (a separate process again): max_abs_err against position and against layer
    plot = _cli("plot", "sae-report.json", "-o", "figs", cwd=pytester.path)
    assert plot.returncode == 0, plot.stderr
    assert (pytester.path / "figs" / "position_max_abs_err.png").stat().st_size > 0
    assert (pytester.path / "figs" / "layer_max_abs_err.png").stat().st_size > 0
