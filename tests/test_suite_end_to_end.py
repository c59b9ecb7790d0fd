"""A zoo suite (zoo:v2 with zoo:suite: two SAEs at blocks.1.hook_resid_pre, an attn.hook_z and a
hook_mlp_out SAE) through the gate, diff, plot and html, as a user runs them: the gate once through
``sae-checks gate`` writing a baseline, once through ``pytest --pyargs`` judging against it. Both must
exit 0 and produce the same results and the same checks."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
COMMON = ["--n-seqs", "4", "--n-bootstrap", "20", "--n-prompts", "16", "--n-causal", "0", "--no-progress"]
SUITE = ["--saes", "zoo:v2,zoo:suite"]


def _env() -> dict[str, str]:
    return {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "MPLBACKEND": "Agg",
            "PYTHONPATH": str(ROOT)}


@pytest.mark.slow
def test_suite_through_gate_diff_plot_and_html(tmp_path: Path) -> None:
    baseline, first, second = tmp_path / "baseline.json", tmp_path / "first.json", tmp_path / "second.json"
    cli = [sys.executable, "-m", "sae_checks.cli"]
    gate = subprocess.run([*cli, "gate", *SUITE, *COMMON, "--baseline", str(baseline), "--report", str(first),
                           "--update-baseline", "all", "--", "-q", "-p", "no:cacheprovider"],
                          cwd=tmp_path, env=_env(), capture_output=True, text=True, timeout=900)
    assert gate.returncode == 0, gate.stdout[-3000:] + gate.stderr[-2000:]
    pytest_args = [a.replace("--", "--sae-", 1) if a.startswith("--") else a for a in SUITE + COMMON]
    judged = subprocess.run([sys.executable, "-m", "pytest", "--pyargs", "sae_checks.gate.gate_tests", *pytest_args,
                             f"--sae-baseline={baseline}", f"--sae-report={second}", "-q", "-p", "no:cacheprovider"],
                            cwd=tmp_path, env=_env(), capture_output=True, text=True, timeout=900)
    assert judged.returncode == 0, judged.stdout[-3000:] + judged.stderr[-2000:]

    a, b = json.loads(first.read_text()), json.loads(second.read_text())
    names = set(b["results"]["per_bucket"])
    assert {"blocks.1.hook_resid_pre", "blocks.1.hook_resid_pre.w1024", "blocks.1.attn.hook_z",
            "blocks.2.hook_mlp_out"} <= names and len(names) == 7
    assert b["results"]["sweeps"] == {"blocks.1.hook_resid_pre": ["blocks.1.hook_resid_pre",
                                                                  "blocks.1.hook_resid_pre.w1024"]}
    assert a["results"] == b["results"]  # `sae-checks gate` and `pytest --pyargs` ran the same gate
    assert [c["id"] for c in a["checks"]] == [c["id"] for c in b["checks"]]
    assert {c["status"] for c in b["checks"]} <= {"pass", "warn"} and b["summary"]["pass"] > 0
    assert any(c["sae"] == "blocks.1.attn.hook_z" for c in b["checks"])

    from sae_checks.cli import main

    assert main(["diff", str(first), str(second)]) == 0
    assert main(["plot", str(second), "-o", str(tmp_path / "plots")]) == 0
    assert (tmp_path / "plots" / "sweep_blocks.1.hook_resid_pre.png").stat().st_size > 10_000
    assert main(["html", str(second), "-o", str(tmp_path / "suite.html")]) == 0
    page = (tmp_path / "suite.html").read_text()
    assert "blocks.1.attn.hook_z" in page and "sweep" in page.lower()
