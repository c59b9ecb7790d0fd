"""Sharded runs: a zoo suite split three ways (``--shard I/3``) merges into the unsharded report, check for
check; the shards are disjoint, cover the suite and are balanced by cost; ``merge`` refuses parts that do
not belong together."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from sae_checks.api import PlannedSAE, plan, run, shard_names
from sae_checks.config import RunConfig
from sae_checks.errors import ReportError
from sae_checks.gate.checks import judge, plan_checks, rules_for
from sae_checks.gate.setup import default_policy_path
from sae_checks.gate.thresholds import Baselines, load_policy
from sae_checks.names import propagation_pairs
from sae_checks.report.io import build_report, canonical_json, write_report
from sae_checks.report.merge import merge_reports

SUITE = RunConfig(saes="zoo:v2,zoo:suite", n_seqs=4, n_bootstrap=50, tasks=("lambada",), n_prompts=16, n_causal=1,
                  causal_max_prompts=4, progress=False, device="cpu", buckets=((1, 32), (32, 256)))


def _checks(config: RunConfig, results: dict[str, Any]) -> list[dict[str, Any]]:
    """The zoo policy's checks of this run (a shard: its SAEs, and its rows of the propagation matrix),
    judged as the gate judges them (no baseline: every check without a limit failure is "new")."""
    policy = load_policy(default_policy_path())  # type: ignore[arg-type]
    part, suite = plan(config), plan(config.replace(shard=None))
    pairs = [(u, d) for u, d in propagation_pairs({n: s.hook for n, s in suite.saes.items()}) if u in part.saes]
    specs = plan_checks(policy, saes=part.saes, buckets=part.buckets, tasks=part.tasks, pairs=pairs,
                        others=suite.saes)
    rules = rules_for(policy, specs)
    return [judge(s, results, rules[s.id], Baselines()).to_dict() for s in specs]


def _report(config: RunConfig) -> dict[str, Any]:
    """The report as written to disk (floats rounded as in every report file), with the zoo policy's checks."""
    ev = run(config)
    report = build_report(provenance=ev.provenance, config=config.to_dict(), results=ev.results,
                          checks=_checks(config, ev.results))
    return json.loads(canonical_json(report))


@pytest.fixture(scope="module")
def reports() -> dict[str, Any]:
    return {"full": _report(SUITE), "parts": [_report(SUITE.replace(shard=(i, 3))) for i in range(3)]}


def test_shards_are_disjoint_cover_the_suite_and_balance_cost() -> None:
    names = list(plan(SUITE).saes)
    parts = [list(plan(SUITE.replace(shard=(i, 3))).saes) for i in range(3)]
    assert sorted(n for p in parts for n in p) == sorted(names) and len(names) == 7
    assert all(parts) and max(map(len, parts)) - min(map(len, parts)) <= 1
    assert parts == [list(plan(SUITE.replace(shard=(i, 3))).saes) for i in range(3)]  # deterministic
    wide = {f"s{k}": PlannedSAE(f"s{k}", 0, "blocks.0.hook_resid_pre", None, 10, 1000 if k == 0 else 10)
            for k in range(4)}
    assert shard_names(wide, (0, 3)) == ["s0"]  # the costly SAE gets a shard to itself


def test_three_shards_merge_into_the_unsharded_report(reports: dict[str, Any], tmp_path: Path) -> None:
    full, parts = reports["full"], reports["parts"]
    assert [sorted(p["results"]["per_bucket"]) for p in parts] != [sorted(full["results"]["per_bucket"])] * 3
    merged = json.loads(canonical_json(merge_reports(parts)))
    assert merged["results"] == full["results"]
    planned = _checks(SUITE, full["results"])  # every check the policy names for the whole suite
    assert len(full["checks"]) == len(planned) > 0
    assert sum(len(p["checks"]) for p in parts) == len(planned)  # each shard judged its own checks
    assert merged["config"] == full["config"] and merged["checks"] == full["checks"]
    assert merged["summary"] == full["summary"]
    assert merged["results"]["sweeps"] == {"blocks.1.hook_resid_pre": ["blocks.1.hook_resid_pre",
                                                                       "blocks.1.hook_resid_pre.w1024"]}
    # the CLI does the same from files
    from sae_checks.cli import main

    paths = []
    for i, p in enumerate(parts):
        paths.append(tmp_path / f"part{i}.json")
        write_report(paths[-1], p)
    failing = full["summary"]["fail"] + full["summary"]["new"]  # merge exits as the gate: 1 when a check fails
    assert main(["merge", *map(str, paths), "-o", str(tmp_path / "merged.json")]) == (1 if failing else 0)
    assert json.loads((tmp_path / "merged.json").read_text())["results"] == full["results"]


def test_merge_refuses_parts_that_do_not_belong_together(reports: dict[str, Any]) -> None:
    parts = reports["parts"]
    with pytest.raises(ReportError, match=r"SAE .* is in both"):
        merge_reports([parts[0], parts[0]])
    other = json.loads(json.dumps(parts[1]))
    other["config"]["seed"] = 7
    with pytest.raises(ReportError, match=r"part 2 was run with another config .*seed"):
        merge_reports([parts[0], other])
    other = json.loads(json.dumps(parts[1]))
    other["provenance"]["model"] = "gpt2"
    with pytest.raises(ReportError, match=r"provenance.model"):
        merge_reports([parts[0], other])
