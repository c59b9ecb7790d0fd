"""The judge's semantics on hand-made results (docs/gate.md#judging), check planning, merging."""

from __future__ import annotations

import math

import pytest

from sae_checks.gate.checks import (
    CheckSpec,
    check_id,
    judge,
    legacy_id,
    lookup,
    plan_checks,
    summarize,
    unused_baselines,
)
from sae_checks.gate.thresholds import BaselineEntry, Baselines, Rule, parse_policy
from sae_checks.merge import merge_provenance, merge_results

REPORT_KEYS = {"id", "metric", "sae", "hook", "layer", "bucket", "value", "ci", "baseline", "limit", "band", "direction",
               "severity", "status", "message"}


def results(value: float = 0.1, ci: tuple[float, float] | None = (0.09, 0.11)) -> dict:
    return {
        "per_bucket": {"s3": {"1-128": {"fvu": {"mean": value, "ci": list(ci) if ci else None},
                                       "explained_variance": {"mean": 1 - value, "ci": None}}}},
        "context_generalization": {"s3": {"fvu": {"inside": "1-128", "beyond": "128-1024", "ratio": 4.0,
                                                 "ci": [3.5, 4.5]}}},
        "cloze": {"lambada": {"baseline": {}, "per_sae": {"s3": {"acc_first_token": {"mean": 0.2,
                                                                                  "ci": [0.18, 0.22]}}}}},
        "propagation": {"saes": ["s1", "s3"], "layers": [1, 3], "window": [1, 101],
                        "mse": [[None, 0.4], [None, None]]},
    }


FVU = CheckSpec(id="fvu-L3-pos1_128-s3", family="bucket", metric="fvu", sae="s3", layer=3, bucket="1-128")
EV = CheckSpec(id="explained_variance-L3-pos1_128-s3", family="bucket", metric="explained_variance", sae="s3",
               layer=3, bucket="1-128")
LOWER = Rule(direction="lower", limit=0.3, abs_tol=0.01, rel_tol=0.1)


def base(**entries: float) -> Baselines:
    return Baselines(entries={FVU.id if k == "fvu" else EV.id: BaselineEntry(value=v) for k, v in entries.items()})


def test_pass_within_band_and_report_dict() -> None:
    c = judge(FVU, results(0.105), LOWER, base(fvu=0.1))
    assert c.status == "pass" and not c.failed
    assert c.band == pytest.approx((0.09, 0.11))  # max(0.01, 0.1 * 0.1) = 0.01
    d = c.to_dict()
    assert set(d) >= REPORT_KEYS
    assert d["id"] == "fvu-L3-pos1_128-s3" and d["sae"] == "s3" and d["layer"] == 3 and d["bucket"] == "1-128"
    assert d["ci"] == [0.09, 0.11] and d["baseline"] == 0.1 and d["limit"] == 0.3 and d["direction"] == "lower"


def test_fail_on_limit_lower_and_higher() -> None:
    c = judge(FVU, results(0.35), LOWER, base(fvu=0.34))
    assert c.status == "fail" and c.reason == "limit"
    assert "fvu at SAE s3 (layer 3), positions [1, 128) = 0.35 (CI 0.09..0.11): above the limit 0.3" in c.message
    ev = judge(EV, results(0.35), Rule(direction="higher", limit=0.7), base(ev=0.65))
    assert ev.status == "fail" and "below the limit 0.7" in ev.message


def test_fail_past_band_in_the_bad_direction() -> None:
    c = judge(FVU, results(0.13), LOWER, base(fvu=0.1))
    assert c.status == "fail" and c.reason == "band"
    assert "worse than baseline 0.1, band 0.09..0.11" in c.message
    assert "rerun with --sae-update-baseline" in c.message
    ev = judge(EV, results(0.2), Rule(direction="higher", abs_tol=0.01), base(ev=0.9))  # value 0.8 < 0.89
    assert ev.status == "fail"


def test_improved_past_band_in_the_good_direction() -> None:
    c = judge(FVU, results(0.05), LOWER, base(fvu=0.1))
    assert c.status == "improved" and not c.failed and "--sae-update-baseline" in c.message


def test_new_without_baseline_fails() -> None:
    c = judge(FVU, results(0.1), LOWER, Baselines())
    assert c.status == "new" and c.failed and c.baseline is None and c.band is None
    assert "no baseline entry" in c.message and "--sae-update-baseline new" in c.message


def test_warn_severity_turns_failures_into_warnings() -> None:
    warn = Rule(direction="lower", limit=0.3, abs_tol=0.01, severity="warn")
    assert judge(FVU, results(0.35), warn, base(fvu=0.1)).status == "warn"
    assert judge(FVU, results(0.13), warn, base(fvu=0.1)).status == "warn"
    assert not judge(FVU, results(0.13), warn, base(fvu=0.1)).failed


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_nonfinite_always_fails(bad: float) -> None:
    warn = Rule(direction="higher", severity="warn")  # even with severity warn and no limit
    c = judge(FVU, results(bad), warn, base(fvu=0.1))
    assert c.status == "fail" and c.reason == "nonfinite" and "non-finite" in c.message
    assert c.to_dict()["value"] is None  # JSON has no NaN


def test_missing_value_fails() -> None:
    spec = CheckSpec(id="kl-L3-pos1_128-s3", family="bucket", metric="kl", sae="s3", layer=3, bucket="1-128")
    c = judge(spec, results(), LOWER, Baselines())
    assert c.status == "fail" and c.reason == "missing" and "not in the results" in c.message


def test_lookup_every_family() -> None:
    r = results()
    ctx = CheckSpec(id="c", family="context_ratio", metric="context_ratio.fvu", sae="s3", layer=3)
    cloze = CheckSpec(id="z", family="cloze", metric="cloze.lambada.acc_first_token", sae="s3", layer=3)
    prop = CheckSpec(id="p", family="propagation", metric="propagation.mse", sae="s3", layer=3, upstream=1,
                     upstream_sae="s1")
    assert lookup(r, ctx) == (4.0, (3.5, 4.5))
    assert lookup(r, cloze) == (0.2, (0.18, 0.22))
    assert lookup(r, prop) == (0.4, None)
    assert lookup(r, CheckSpec(id="x", family="propagation", metric="propagation.l0", sae="s3", layer=3, upstream=1,
                               upstream_sae="s1")) == (None, None)


class _S:
    def __init__(self, layer: int, hook: str) -> None:
        self.layer, self.hook = layer, hook


SUITE = {"blocks.0.hook_resid_pre": _S(0, "blocks.0.hook_resid_pre"),
         "layer_2/width_16k/l0_71": _S(2, "blocks.2.hook_resid_post")}


def test_plan_checks_ids_and_order() -> None:
    policy = parse_policy('[metrics.fvu]\n[context_ratio.l0]\n[cloze.lambada.acc_word]\n[propagation.mse]\n')
    specs = plan_checks(policy, saes=SUITE, tasks=["lambada"],
                        buckets={"blocks.0.hook_resid_pre": ["1-16", "16-32"], "layer_2/width_16k/l0_71": ["1-16"]},
                        pairs=[("blocks.0.hook_resid_pre", "layer_2/width_16k/l0_71")])
    assert [s.id for s in specs] == [
        "fvu-L0-pos1_16-blocks.0.hook_resid_pre", "fvu-L0-pos16_32-blocks.0.hook_resid_pre",
        "fvu-L2-pos1_16-layer_2_width_16k_l0_71",
        "context_ratio-l0-L0-blocks.0.hook_resid_pre",  # not L2: one bucket (inside its context) has no ratio
        "cloze-lambada-acc_word-L0-blocks.0.hook_resid_pre", "cloze-lambada-acc_word-L2-layer_2_width_16k_l0_71",
        "propagation-mse-L0-blocks.0.hook_resid_pre-to-L2-layer_2_width_16k_l0_71"]
    assert specs[2].sae == "layer_2/width_16k/l0_71" and specs[2].hook == "blocks.2.hook_resid_post"
    assert specs[0].group == "sae-blocks.0.hook_resid_pre" == specs[-1].group  # propagation: with its upstream SAE
    assert not [s for s in plan_checks(policy, saes=SUITE, buckets={}, tasks=[]) if s.family == "cloze"]
    assert check_id("propagation", "propagation.l0", 5, "b", upstream=2, upstream_sae="a") == "propagation-l0-L2-a-to-L5-b"


def test_check_ids_select_with_dash_k() -> None:
    """Every id parses as one pytest -k identifier, so ``-k "fvu and L2"`` can select it."""
    from _pytest.mark.expression import Expression

    policy = parse_policy('[metrics.fvu]\n[context_ratio.l0]\n[cloze.lambada.acc_word]\n[propagation.mse]\n')
    specs = plan_checks(policy, saes=SUITE, tasks=["lambada"], buckets={n: ["1-16"] for n in SUITE},
                        pairs=[("blocks.0.hook_resid_pre", "layer_2/width_16k/l0_71")])
    for s in specs:
        assert Expression.compile(s.id).evaluate(lambda name, sid=s.id: name == sid), s.id
    chosen = [s.id for s in specs if Expression.compile("fvu and L2").evaluate(lambda k, sid=s.id: k in sid)]
    assert chosen == ["fvu-L2-pos1_16-layer_2_width_16k_l0_71"]


def test_legacy_ids_map_to_the_sae_at_that_layer() -> None:
    policy = parse_policy('[metrics.fvu]\n[context_ratio.l0]\n[cloze.lambada.acc_word]\n[propagation.mse]\n')
    specs = plan_checks(policy, saes=SUITE, tasks=["lambada"], buckets={n: ["1-16", "16-32"] for n in SUITE},
                        pairs=[("blocks.0.hook_resid_pre", "layer_2/width_16k/l0_71")])
    assert legacy_id("fvu/layer=2/bucket=1-16", specs) == "fvu-L2-pos1_16-layer_2_width_16k_l0_71"
    assert legacy_id("context_ratio/l0/layer=0", specs) == "context_ratio-l0-L0-blocks.0.hook_resid_pre"
    assert legacy_id("cloze/lambada/acc_word/layer=2", specs) == "cloze-lambada-acc_word-L2-layer_2_width_16k_l0_71"
    assert legacy_id("propagation/mse/up=0/down=2", specs) == specs[-1].id
    assert legacy_id("fvu/layer=1/bucket=1-16", specs) is None  # no SAE at layer 1
    two = {**SUITE, "other": _S(2, "blocks.2.hook_mlp_out")}
    ambiguous = plan_checks(policy, saes=two, tasks=[], buckets={n: ["1-16"] for n in two})
    assert legacy_id("fvu/layer=2/bucket=1-16", ambiguous) is None  # two SAEs at layer 2: not guessed
    old = Baselines(entries={"fvu/layer=2/bucket=1-16": BaselineEntry(value=0.5),
                             "fvu-L0-pos1_16-blocks.0.hook_resid_pre": BaselineEntry(value=0.1)})
    new = old.remapped(lambda k: legacy_id(k, specs))
    assert set(new.entries) == {"fvu-L2-pos1_16-layer_2_width_16k_l0_71", "fvu-L0-pos1_16-blocks.0.hook_resid_pre"}


def test_summary_and_unused() -> None:
    checks = [{"status": "pass"}, {"status": "fail"}, {"status": "new"}, {"status": "pass"}]
    assert summarize(checks) == {"pass": 2, "fail": 1, "warn": 0, "improved": 0, "new": 1}
    b = Baselines(entries={"a": BaselineEntry(value=1), "b": BaselineEntry(value=2)})
    assert unused_baselines(b, ["a", "c"]) == ["b"]


def test_merge_results_and_provenance() -> None:
    a = {"per_bucket": {"a": {"x": 1}}, "nonfinite": [{"layer": 0}], "propagation": {"saes": ["a"]}}
    b = {"per_bucket": {"b": {"x": 2}}, "nonfinite": [{"layer": 1}], "propagation": {"saes": ["a", "b"]},
         "cloze": {"lambada": {"baseline": {"acc": 1}, "per_sae": {"b": {}}}}}
    m = merge_results(a, b)
    assert m["per_bucket"] == {"a": {"x": 1}, "b": {"x": 2}}
    assert m["nonfinite"] == [{"layer": 0}, {"layer": 1}] and m["propagation"] == {"saes": ["a", "b"]}
    assert m["cloze"]["lambada"]["per_sae"] == {"b": {}}
    p = merge_provenance({"model": "m", "saes": [{"name": "z", "layer": 2, "hook": "blocks.2.hook_resid_pre"}]},
                         {"model": "m", "saes": [{"name": "y", "layer": 0, "hook": "blocks.0.hook_resid_pre"},
                                                 {"name": "x", "layer": 2, "hook": "blocks.2.hook_resid_pre"}]})
    assert [s["name"] for s in p["saes"]] == ["y", "x", "z"]


@pytest.mark.parametrize("rule, baseline", [
    (Rule(direction="lower", abs_tol=0.01), math.nan),  # band NaN: compares false both ways
    (Rule(direction="lower", abs_tol=0.01), math.inf),
    (Rule(direction="higher", rel_tol=0.1), -math.inf),
    (Rule(direction="lower", limit=math.nan, abs_tol=0.01), 0.1),  # NaN limit
    (Rule(direction="lower", abs_tol=math.nan), 0.1),  # NaN tolerance
])
def test_nonfinite_limit_or_baseline_never_passes(rule: Rule, baseline: float) -> None:
    # load_baselines and the policy parser reject these; judge must not pass them either way
    c = judge(FVU, results(0.1), rule, Baselines(entries={FVU.id: BaselineEntry(value=baseline)}))
    assert c.status == "fail" and c.failed and c.reason == "bad_baseline"
    assert "--sae-update-baseline" in c.message
