"""report.diff: CI-aware classification, SAEs matched by name (vanished, new, excluded), refusal of
incomparable reports, the three formats, the exit code."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from sae_checks.errors import ReportError
from sae_checks.report import DiffError, build_report, diff_exit_code, diff_reports, format_diff, load_report

DATA = Path(__file__).parent / "data"


def make(checks: list[dict[str, Any]] | None = None, per_bucket: dict[str, Any] | None = None,
         model: str = "zoo", ctx_len: int = 64, saes: tuple[str, ...] = ("s0",), **results: Any) -> dict[str, Any]:
    hooks = {name: "blocks.0.hook_resid_pre" for name in saes}
    prov = {"sae_checks": "0.1.0", "torch": None, "transformer_lens": None, "sae_lens": None, "device": "cpu",
            "dtype": "float32", "git_commit": None, "created": "2025-01-01", "model": model,
            "saes": [{"layer": 0, "hook": hook, "release": None, "id": name, "sha256": None, "context_size": 32}
                     for name, hook in hooks.items()],
            "data": {"dataset": "zoo", "split": "train", "revision": None, "n_sequences": 8, "ctx_len": ctx_len,
                     "seed": 0}}
    results = {"saes": {n: {"layer": 0, "hook": h} for n, h in hooks.items()}, "per_bucket": per_bucket or {},
               **results}
    return build_report(provenance=prov, config={}, results=results, checks=checks or [])


def check(cid: str, value: float | None, ci: list[float] | None = None, status: str = "pass",
          direction: str | None = "lower", metric: str | None = None) -> dict[str, Any]:
    return {"id": cid, "metric": metric or cid.split("/")[0], "value": value, "ci": ci, "direction": direction,
            "status": status}


def bucket(sae: str = "s0", **metrics: tuple[float, list[float] | None]) -> dict[str, Any]:
    return {sae: {"1-32": {m: {"mean": v, "ci": ci} for m, (v, ci) in metrics.items()}}}


def test_regression_beyond_noise():
    old = make([check("fvu/layer=0", 0.10, [0.09, 0.11])])
    new = make([check("fvu/layer=0", 0.13, [0.12, 0.14])])
    diff = diff_reports(old, new)
    e = diff.get("checks/fvu/layer=0")
    assert e.category == "regressed"
    assert e.old == 0.10 and e.new == 0.13 and e.delta == pytest.approx(0.03) and e.delta_pct == pytest.approx(30)
    assert "do not overlap" in e.reason
    assert diff_exit_code(diff) == 1


def test_change_inside_noise_is_not_a_regression():
    old = make([check("fvu/layer=0", 0.10, [0.08, 0.12])])
    new = make([check("fvu/layer=0", 0.11, [0.09, 0.13])])
    diff = diff_reports(old, new)
    e = diff.get("checks/fvu/layer=0")
    assert e.category == "unchanged" and e.delta == pytest.approx(0.01) and "within noise" in e.reason
    assert diff_exit_code(diff) == 0


def test_improved_follows_direction():
    old = make([check("acc/layer=0", 0.20, [0.18, 0.22], direction="higher"),
                check("fvu/layer=0", 0.20, [0.18, 0.22])])
    new = make([check("acc/layer=0", 0.30, [0.28, 0.32], direction="higher"),
                check("fvu/layer=0", 0.10, [0.08, 0.12])])
    diff = diff_reports(old, new)
    assert diff.get("checks/acc/layer=0").category == "improved"
    assert diff.get("checks/fvu/layer=0").category == "improved"
    assert diff_exit_code(diff) == 0


def test_one_sided_ci_and_no_ci():
    old = make([check("fvu/layer=0", 0.10, None), check("kl/layer=0", 0.10, None)])
    new = make([check("fvu/layer=0", 0.105, [0.09, 0.12]), check("kl/layer=0", 0.1000001, None)])
    diff = diff_reports(old, new)
    assert diff.get("checks/fvu/layer=0").category == "unchanged"  # old value inside the new CI
    assert diff.get("checks/kl/layer=0").category == "unchanged"  # below the rounding of 6 digits
    new2 = make([check("fvu/layer=0", 0.2, [0.15, 0.25]), check("kl/layer=0", 0.11, None)])
    diff2 = diff_reports(old, new2)
    assert diff2.get("checks/fvu/layer=0").category == "regressed"
    assert diff2.get("checks/kl/layer=0").category == "regressed"


def test_status_pass_to_fail_is_a_regression_even_inside_noise():
    old = make([check("fvu/layer=0", 0.10, [0.08, 0.12], status="pass"),
                check("l0/layer=0", 10, [9, 11], status="fail", direction=None)])
    new = make([check("fvu/layer=0", 0.10, [0.08, 0.12], status="fail"),
                check("l0/layer=0", 10, [9, 11], status="pass", direction=None)])
    diff = diff_reports(old, new)
    e = diff.get("checks/fvu/layer=0")
    assert e.category == "regressed" and e.reason == "status pass -> fail"
    assert (e.old_status, e.new_status) == ("pass", "fail")
    assert diff.get("checks/l0/layer=0").category == "improved"
    assert diff.get("summary/fail").category == "unchanged"


def test_unknown_direction_is_changed_not_regressed():
    old = make(per_bucket=bucket(resid_norm=(10.0, [9.0, 11.0]), fvu=(0.1, [0.09, 0.11])))
    new = make(per_bucket=bucket(resid_norm=(50.0, [45.0, 55.0]), fvu=(0.1, [0.09, 0.11])))
    diff = diff_reports(old, new)
    assert diff.get("per_bucket/sae=s0/bucket=1-32/resid_norm").category == "changed"
    assert diff.get("per_bucket/sae=s0/bucket=1-32/fvu").category == "unchanged"
    assert diff_exit_code(diff) == 0


def test_directions_come_from_the_registry_l0_lower_as_the_gate():
    old = make(per_bucket=bucket(l0=(10.0, [9.0, 11.0])))
    new = make(per_bucket=bucket(l0=(50.0, [45.0, 55.0])))
    assert diff_reports(old, new).get("per_bucket/sae=s0/bucket=1-32/l0").category == "regressed"


def test_check_direction_overrides_the_registry_for_results_metrics():
    checks = [check("resid_norm-L0-pos1_32-s0", 10, [9, 11], direction="lower", metric="resid_norm")]
    old = make(checks, per_bucket=bucket(resid_norm=(10.0, [9.0, 11.0])))
    new = make(checks, per_bucket=bucket(resid_norm=(50.0, [45.0, 55.0])))
    assert diff_reports(old, new).get("per_bucket/sae=s0/bucket=1-32/resid_norm").category == "regressed"


def test_value_becoming_null_is_a_regression():
    old = make([check("fvu/layer=0", 0.1, [0.09, 0.11])])
    new = make([check("fvu/layer=0", float("nan"), None)])
    e = diff_reports(old, new).get("checks/fvu/layer=0")
    assert e.category == "regressed" and "null" in e.reason


def test_added_and_vanished_results():
    old = make([check("fvu/layer=0", 0.1), check("fvu/layer=1", 0.2)])
    new = make([check("fvu/layer=0", 0.1), check("fvu/layer=2", 0.3)])
    diff = diff_reports(old, new)
    added, gone = diff.get("checks/fvu/layer=2"), diff.get("checks/fvu/layer=1")
    assert (added.category, added.old, added.new) == ("added", None, 0.3)
    assert (gone.category, gone.old, gone.new) == ("regressed", 0.2, None) and gone.reason.startswith("vanished")
    assert diff_exit_code(diff) == 1
    assert diff_exit_code(diff_reports(old, new, exclude=["fvu/layer=1"])) == 0  # a check id glob


def _suite(names: tuple[str, ...], model: str = "zoo") -> dict[str, Any]:
    checks = [check(f"fvu-L0-pos1_32-{n}", 0.1, [0.09, 0.11], metric="fvu") | {"sae": n} for n in names]
    per_bucket = {n: bucket(n, fvu=(0.1, [0.09, 0.11]))[n] for n in names}
    return make(checks, per_bucket=per_bucket, model=model, saes=names)


def test_vanished_sae_is_a_regression_and_new_sae_is_new():
    old, new = _suite(("a", "b")), _suite(("a", "c"))
    diff = diff_reports(old, new)
    assert diff.vanished_saes == ("b",) and diff.new_saes == ("c",)
    assert diff.get("saes/b").category == "regressed" and diff.get("saes/c").category == "added"
    assert diff.get("checks/fvu-L0-pos1_32-b").category == "regressed"
    assert diff.get("per_bucket/sae=b/bucket=1-32/fvu").category == "regressed"
    assert {e.category for e in diff.entries if e.sae == "c"} == {"added"}
    assert diff.get("saes/a").category == "unchanged"
    assert diff_exit_code(diff) == 1
    text = format_diff(diff, "table")
    assert "new SAEs (1): c" in text and "vanished SAEs (1, regressions): b" in text


def test_excluded_sae_is_not_a_regression():
    diff = diff_reports(_suite(("a", "b")), _suite(("a",)), exclude=["b*"])
    assert diff_exit_code(diff) == 0 and diff.vanished_saes == ()
    assert {e.category for e in diff.entries if e.sae == "b"} == {"excluded"}
    assert diff.get("saes/b").reason == "excluded by 'b*'"
    assert "excluded (" in format_diff(diff, "markdown")


def test_new_sae_alone_is_not_a_regression():
    diff = diff_reports(_suite(("a",)), _suite(("a", "wide")))
    assert diff.new_saes == ("wide",) and diff_exit_code(diff) == 0


def test_different_models_are_refused_unless_allowed():
    with pytest.raises(DiffError) as info:
        diff_reports(_suite(("a",)), _suite(("a",), model="gpt2-small"), labels=("a.json", "b.json"))
    msg = str(info.value)
    assert "'zoo' vs 'gpt2-small'" in msg and "--allow-different" in msg and msg.startswith("cannot compare a.json")
    allowed = diff_reports(_suite(("a",)), _suite(("a",), model="gpt2-small"), allow_different=True)
    assert allowed.incompatible == ("different models: 'zoo' vs 'gpt2-small'",)


def test_disjoint_sae_sets_are_refused_naming_the_saes():
    with pytest.raises(DiffError, match=r"no SAE in common: old has 'a', 'b'; new has 'x'"):
        diff_reports(_suite(("a", "b")), _suite(("x",)))
    diff = diff_reports(_suite(("a", "b")), _suite(("x",)), allow_different=True)
    assert diff.vanished_saes == ("a", "b") and diff.new_saes == ("x",)


def test_same_name_at_another_hook_is_refused():
    old, new = _suite(("a",)), _suite(("a",))
    new["results"]["saes"]["a"]["hook"] = "blocks.0.hook_mlp_out"
    with pytest.raises(DiffError, match=r"SAE 'a' is at hook 'blocks.0.hook_resid_pre' in the old report"):
        diff_reports(old, new)


def test_v1_baseline_against_the_v2_suite():
    """An old (schema 1) baseline, upgraded on read, against the new suite: the resid_pre SAEs match by
    name, the sweep's second width and the hook_z / mlp_out SAEs are new, nothing vanished."""
    diff = diff_reports(load_report(DATA / "report_v1.json"), load_report(DATA / "report_full.json"))
    assert diff.vanished_saes == ()
    assert diff.new_saes == ("blocks.1.hook_resid_pre.w1024", "blocks.2.hook_mlp_out", "blocks.2.hook_z")
    assert diff.get("checks/fvu-L2-pos1_32-blocks.2.hook_resid_pre").category == "unchanged"


def test_same_report_diffs_to_nothing():
    full = load_report(DATA / "report_full.json")
    diff = diff_reports(full, copy.deepcopy(full))
    assert set(diff.counts().items()) >= {("regressed", 0), ("improved", 0), ("changed", 0), ("added", 0),
                                          ("excluded", 0)}
    keys = {e.key for e in diff.entries}
    s3, s0, s2 = "blocks.3.hook_resid_pre", "blocks.0.hook_resid_pre", "blocks.2.hook_z"
    assert {f"per_bucket/sae={s3}/bucket=32-256/fvu", f"context_generalization/sae={s0}/l0",
            f"cloze/task=lambada/sae={s2}/acc_first_token", f"cloze/task=lambada/sae={s2}/classes/both_right",
            "cloze/task=lambada/baseline/acc_word", "summary/fail", f"saes/{s2}"} <= keys


def test_degraded_full_report():
    old = load_report(DATA / "report_full.json")
    new = copy.deepcopy(old)
    two, one = "blocks.2.hook_resid_pre", "blocks.1.hook_resid_pre.w1024"
    est = new["results"]["per_bucket"][two]["1-32"]["fvu"]
    est["mean"], est["ci"] = est["mean"] * 2, [est["ci"][0] * 2, est["ci"][1] * 2]
    ratio = new["results"]["context_generalization"][one]["l0"]
    ratio["ratio"] *= 2
    ratio["ci"] = [x * 2 for x in ratio["ci"]]
    diff = diff_reports(old, new)
    assert {e.key for e in diff.regressions} == {f"per_bucket/sae={two}/bucket=1-32/fvu",
                                                 f"context_generalization/sae={one}/l0"}
    assert diff.counts()["changed"] == 0


@pytest.mark.parametrize(("where", "value"), [
    (("provenance", "data", "dataset"), "openwebtext"),
    (("provenance", "data", "ctx_len"), 128),
    (("config", "buckets"), [[1, 16], [16, 64]]),
    (("results", "buckets"), {"s0": ["1-16", "16-64"]}),
])
def test_incompatible_reports_are_refused_unless_forced(where, value):
    old = make([check("fvu/layer=0", 0.1)], buckets={"s0": ["1-32", "32-64"]})
    new = copy.deepcopy(old)
    node = new
    for key in where[:-1]:
        node = node[key]
    before = node.get(where[-1])
    node[where[-1]] = value
    with pytest.raises(ReportError) as info:
        diff_reports(old, new, labels=("a.json", "b.json"))
    msg = str(info.value)
    assert msg.startswith("cannot compare a.json with b.json:")
    assert repr(before) in msg or repr(before["s0"]) in msg
    assert "--force" in msg
    forced = diff_reports(old, new, force=True)
    assert len(forced.incompatible) == 1 and "vs" in forced.incompatible[0]


def test_n_sequences_and_seed_may_differ():
    old = make([check("fvu/layer=0", 0.1)])
    new = copy.deepcopy(old)
    new["provenance"]["data"].update(n_sequences=999, seed=7)
    assert diff_reports(old, new).incompatible == ()


def _pair():
    old = make([check("fvu/layer=0", 0.10, [0.09, 0.11]), check("kl/layer=0", 0.5, [0.4, 0.6]),
                check("gone/layer=0", 1.0)])
    new = make([check("fvu/layer=0", 0.13, [0.12, 0.14], status="fail"), check("kl/layer=0", 0.51, [0.41, 0.61]),
                check("fresh/layer=0", 2.0, status="new")])
    return diff_reports(old, new, labels=("v1.json", "v2.json"))


def test_format_table():
    text = format_diff(_pair(), "table")
    lines = text.splitlines()
    assert lines[0] == "sae-checks diff: REGRESSED"
    assert lines[1] == "v1.json -> v2.json"
    assert "within noise" in lines[2]
    header = next(i for i, line in enumerate(lines) if line.lstrip().startswith("key"))
    row = next(line for line in lines if "checks/fvu/layer=0" in line)
    assert row.startswith("regressed")
    assert "0.1 (pass)" in row and "0.13 (fail)" in row and "+0.03" in row and "+30.0%" in row
    # aligned: every column starts at the same offset in the header and the rows
    assert lines[header].index("key") == row.index("checks/")
    assert "kl/layer=0" not in text  # unchanged rows hidden by default
    assert "checks/kl/layer=0" in format_diff(_pair(), "table", show_unchanged=True)


def test_format_markdown():
    text = format_diff(_pair(), "markdown")
    assert text.startswith("### sae-checks diff: REGRESSED")
    assert "| key | change | old | new | delta | delta % | why |" in text
    assert "| checks/fvu/layer=0 | regressed |" in text
    assert "| checks/fresh/layer=0 | added |" in text and "| checks/gone/layer=0 | regressed |" in text


def test_format_json_is_complete_and_canonical():
    diff = _pair()
    data = json.loads(format_diff(diff, "json"))
    assert data["exit_code"] == 1 and data["old"] == "v1.json"
    assert data["counts"]["regressed"] == len(diff.regressions)
    assert {e["key"] for e in data["entries"]} == {e.key for e in diff.entries}  # unchanged included
    assert format_diff(diff, "json") == format_diff(_pair(), "json")


def test_format_unknown():
    with pytest.raises(ReportError, match="format='html'"):
        format_diff(_pair(), "html")  # type: ignore[arg-type]


def test_exit_code():
    old = make([check("fvu/layer=0", 0.1, [0.09, 0.11])])
    assert diff_exit_code(diff_reports(old, old)) == 0
    assert diff_exit_code(_pair()) == 1
