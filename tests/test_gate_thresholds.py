"""Policy parsing and validation (file, key, line in every error), baselines I/O, unsafe tolerances."""

from __future__ import annotations

import json
import os
import stat
import textwrap
from pathlib import Path

import pytest

from sae_checks.errors import ThresholdError
from sae_checks.gate.thresholds import (
    BaselineEntry,
    Baselines,
    Rule,
    find_line,
    load_baselines,
    load_policy,
    parse_policy,
    unsafe_tolerances,
    updated_baselines,
    write_baselines,
)

REPO = Path(__file__).resolve().parents[1]

POLICY = textwrap.dedent('''\
    buckets = [[1, 32], [32, 256]]
    baseline = "base.json"

    [defaults]
    rel_tol = 0.1

    [metrics.fvu]
    limit = 0.3
    abs_tol = 0.01
    layers.2 = { limit = 0.2 }
    buckets.32-256 = { severity = "warn" }

    [metrics.fvu.layers.3.buckets."1-32"]
    limit = 0.05

    [metrics.explained_variance]
    limit = 0.7

    [context_ratio.fvu]
    rel_tol = 0.25

    [cloze.lambada.acc_first_token]
    limit = 0.2

    [propagation.mse]
    severity = "warn"
''')


def write(tmp_path: Path, text: str, name: str = "policy.toml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def test_parse_full_policy(tmp_path: Path) -> None:
    policy = load_policy(write(tmp_path, POLICY))
    assert policy.buckets == ((1, 32), (32, 256))
    assert policy.baseline == tmp_path / "base.json"  # relative to the TOML file
    assert [m.name for m in policy.metrics] == [
        "fvu", "explained_variance", "context_ratio.fvu", "cloze.lambada.acc_first_token", "propagation.mse"]
    fvu = policy.get("fvu")
    assert fvu is not None
    assert fvu.rule(0, "1-32") == Rule(direction="lower", limit=0.3, abs_tol=0.01, rel_tol=0.1)
    assert fvu.rule(2, "1-32").limit == 0.2  # layer override
    assert fvu.rule(2, "32-256").severity == "warn" and fvu.rule(2, "32-256").limit == 0.2  # bucket on top
    assert fvu.rule(3, "1-32").limit == 0.05 and fvu.rule(3, "32-256").limit == 0.3  # layer x bucket
    ev = policy.get("explained_variance")
    assert ev is not None and ev.base.direction == "higher"  # default direction of the metric
    assert policy.get("propagation.mse").base.severity == "warn"  # type: ignore[union-attr]


def test_band_is_max_of_abs_and_rel() -> None:
    rule = Rule(direction="lower", abs_tol=0.01, rel_tol=0.1)
    assert rule.band(0.05) == 0.01
    assert rule.band(-2.0) == pytest.approx(0.2)


def test_infinite_limit_means_no_limit() -> None:
    policy = parse_policy('[metrics.l0]\nlimit = 10\nbuckets.128-1024 = { limit = inf }\n')
    assert policy.get("l0").rule(0, "128-1024").limit is None  # type: ignore[union-attr]
    assert policy.get("l0").rule(0, "1-128").limit == 10  # type: ignore[union-attr]


@pytest.mark.parametrize(("text", "key", "line", "words"), [
    ('buckets = [[1, 32]]\nbogus = 3\n', "bogus", 2, "unknown key"),
    ('[metrics.fvu]\nlimit = 0.3\n\n[metrics.fvv]\nlimit = 1\n', "metrics.fvv", 4, "unknown metric"),
    ('[metrics.fvu]\nlimit = 0.3\nabs_toll = 0.1\n', "metrics.fvu.abs_toll", 3, "unknown key"),
    ('[metrics.fvu]\nlimit = "0.3"\n', "metrics.fvu.limit", 2, "must be a number"),
    ('[metrics.fvu]\nrel_tol = -1\n', "metrics.fvu.rel_tol", 2, ">= 0"),
    ('[metrics.fvu]\nseverity = "error"\n', "metrics.fvu.severity", 2, "fail"),
    ('[metrics.resid_norm]\nlimit = 1\n', "metrics.resid_norm.direction", 1, "lower"),
    ('[metrics.l0]\n\n[metrics.l0.layers.x]\nlimit = 1\n', "metrics.l0.layers.x", 3, "integer"),
    ('[metrics.l0]\nbuckets.9-3 = { limit = 1 }\n', "metrics.l0.buckets.9-3", 2, "a < b"),
    ('[context_ratio.fvu]\nbuckets.1-2 = { limit = 1 }\n', "context_ratio.fvu.buckets", 2, "unknown key"),
    ('[cloze.winogrande.acc]\nlimit = 1\n', "cloze.winogrande", 1, "unknown cloze task"),
    ('buckets = [\n  [1, 32],\n  [40, 32],\n]\n', "buckets", 1, "bad bucket"),
    ('baseline = 3\n', "baseline", 1, "file name"),
    ('[metrics.fvu\nlimit = 1\n', "-", 1, "not valid TOML"),
])
def test_errors_name_file_key_and_line(tmp_path: Path, text: str, key: str, line: int, words: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ThresholdError) as info:
        load_policy(path)
    err = info.value
    assert (err.path, err.key, err.line) == (str(path), key, line)
    assert words in str(err) and f"{path}:{line}" in str(err)


def test_missing_file_is_threshold_error(tmp_path: Path) -> None:
    with pytest.raises(ThresholdError, match="cannot read"):
        load_policy(tmp_path / "nope.toml")


def test_check_run_rejects_layers_buckets_tasks_the_run_lacks(tmp_path: Path) -> None:
    policy = load_policy(write(tmp_path, POLICY))
    buckets = {L: ["1-32", "32-256"] for L in range(4)}
    policy.check_run(range(4), buckets, ["lambada"])  # fine
    with pytest.raises(ThresholdError) as info:
        policy.check_run([0, 1, 2], {L: ["1-32", "32-256"] for L in range(3)}, ["lambada"])
    assert info.value.key == "metrics.fvu.layers.3" and info.value.line == 13 and "layer 3" in str(info.value)
    policy.check_run([0, 1], buckets, ["lambada"], restricted=True)  # the user picked a subset of layers
    with pytest.raises(ThresholdError, match="bucket '32-256' is not in the run") as info:
        policy.check_run(range(4), {L: ["1-32", "32-128"] for L in range(4)}, ["lambada"])
    assert info.value.line == 11
    with pytest.raises(ThresholdError, match="cloze task 'lambada' is not run") as info:
        policy.check_run(range(4), buckets, [])
    assert info.value.line == 22


def test_find_line_dotted_inline_and_quoted() -> None:
    text = '[metrics.fvu]\nlayers.2 = { limit = 0.2 }\n[metrics.fvu.layers.3.buckets."1-32"]\nlimit = 1\n'
    assert find_line(text, ("metrics", "fvu", "layers", "2", "limit")) == 2
    assert find_line(text, ("metrics", "fvu", "layers", "3", "buckets", "1-32", "limit")) == 4
    assert find_line(text, ("metrics", "fvu", "layers")) == 2
    assert find_line(text, ("metrics", "kl")) is None


def test_shipped_policies_parse() -> None:
    policy = load_policy(REPO / "thresholds" / "gpt2-small-res-jb.toml")
    assert policy.buckets == ((1, 128), (128, 1024)) and policy.tasks == ("lambada",)
    policy.check_run(range(12), {L: ["1-128", "128-1024"] for L in range(12)}, ["lambada"])
    l0 = policy.get("l0")  # the published L0 is the release card's: no hand-copied per-layer limits
    assert l0 is not None and l0.rule(0, "1-128").limit is None and l0.rule(0, "128-1024").severity == "warn"
    card = policy.get("card.l0_ratio")
    assert card is not None and card.rule(0).limit == 1.5 and card.rule(0).baseline is False
    acc = policy.get("cloze.lambada.acc_first_token")
    assert acc is not None and acc.rule(11).limit == pytest.approx(0.076) and acc.base.direction == "higher"
    zoo = REPO / "thresholds" / "zoo.toml"
    if zoo.exists():
        load_policy(zoo)


def test_packaged_policies_carry_the_built_in_health_and_card_rules() -> None:
    """The packaged policies repeat HEALTH_AND_CARD_POLICY (a policy file cannot include another): the same
    rules, so a user gating a release gets what the built-in policy gives."""
    from sae_checks.gate.setup import HEALTH_AND_CARD_POLICY

    builtin = parse_policy(HEALTH_AND_CARD_POLICY)
    for name in ("gpt2-small-res-jb.toml",):  # the zoo's policy keeps to what the post measured
        policy = load_policy(REPO / "thresholds" / name)
        for m in builtin.metrics:
            mine = policy.get(m.name)
            assert mine is not None, (name, m.name)
            fields = ("direction", "limit", "severity", "baseline")  # tolerances: unused without a baseline
            assert [getattr(mine.rule(0), f) for f in fields] == [getattr(m.rule(0), f) for f in fields], name


def test_per_sae_override_is_the_most_specific() -> None:
    policy = parse_policy('[card.fact_problems]\nlimit = 0\nlayers.3.limit = 2\n'
                          '[card.fact_problems.saes."layer_3/width_16k"]\nseverity = "warn"\nlimit = 5\n')
    m = policy.get("card.fact_problems")
    assert m is not None
    assert m.rule(3, None, "layer_3/width_16k").limit == 5 and m.rule(3, None, "layer_3/width_16k").severity == "warn"
    assert m.rule(3, None, "layer_3/width_65k").limit == 2 and m.rule(1, None, "x").limit == 0


# --- baselines --------------------------------------------------------------------------------------

def test_baselines_roundtrip_atomic(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "base.json"
    write_baselines(path, {"fvu/layer=0/bucket=1-32": BaselineEntry(value=0.1, ci=(0.09, 0.11)),
                           "propagation/mse/up=0/down=1": BaselineEntry(value=0.2)})
    assert sorted(p.name for p in path.parent.iterdir()) == ["base.json"]  # no temporary file left
    loaded = load_baselines(path)
    assert loaded.path == path
    assert loaded.get("fvu/layer=0/bucket=1-32") == BaselineEntry(value=0.1, ci=(0.09, 0.11))
    assert loaded.get("propagation/mse/up=0/down=1") == BaselineEntry(value=0.2, ci=None)
    assert load_baselines(tmp_path / "missing.json").entries == {}  # missing file: every check is new


def test_bad_baseline_file(tmp_path: Path) -> None:
    path = tmp_path / "b.json"
    path.write_text('{"format": "sae-checks-baseline", "version": 1,\n "entries": {\n  "fvu/layer=0": {"value": "x"}}}')
    with pytest.raises(ThresholdError) as info:
        load_baselines(path)
    assert info.value.key == "fvu/layer=0" and info.value.line == 3 and "--sae-update-baseline" in str(info.value)
    path.write_text("{not json")
    with pytest.raises(ThresholdError, match="not valid JSON"):
        load_baselines(path)
    path.write_text(json.dumps({"entries": {}}))
    with pytest.raises(ThresholdError, match="not a sae-checks baseline"):
        load_baselines(path)


def test_updated_baselines_new_and_all() -> None:
    old = Baselines(entries={"a": BaselineEntry(value=1.0), "keep": BaselineEntry(value=5.0)})
    checks = [
        {"id": "a", "status": "pass", "value": 1.1, "ci": [1.0, 1.2]},
        {"id": "b", "status": "new", "value": 2.0, "ci": [1.9, 2.1]},
        {"id": "c", "status": "fail", "value": 3.0, "ci": None},
        {"id": "d", "status": "fail", "value": None, "ci": None},  # non-finite: never written
        {"id": "e", "status": "improved", "value": 0.5, "ci": None},
    ]
    entries, written = updated_baselines(old, checks, "new")
    assert written == ["b", "c"] and entries["a"].value == 1.0 and entries["keep"].value == 5.0
    assert entries["b"] == BaselineEntry(value=2.0, ci=(1.9, 2.1))
    entries, written = updated_baselines(old, checks, "all")
    assert written == ["a", "b", "c", "e"] and entries["a"].value == 1.1 and "d" not in entries


def test_unsafe_tolerances_flag_bands_below_ci_half_width() -> None:
    base = Baselines(entries={"x": BaselineEntry(value=1.0, ci=(0.8, 1.2)),
                              "y": BaselineEntry(value=1.0, ci=(0.99, 1.01)),
                              "z": BaselineEntry(value=1.0)})
    rules = {k: Rule(direction="lower", abs_tol=0.05) for k in ("x", "y", "z", "w")}
    unsafe = unsafe_tolerances(rules, base)
    assert len(unsafe) == 1 and unsafe[0].startswith("x: band 0.05 < CI half-width 0.2")


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity"])
@pytest.mark.parametrize("where", ["value", "ci"])
def test_nonfinite_baseline_number_is_an_error(tmp_path: Path, literal: str, where: str) -> None:
    # Python's json reads NaN / Infinity; a NaN baseline made every comparison false, so every check passed
    entry = f'{{"value": {literal}, "ci": null}}' if where == "value" else f'{{"value": 0.1, "ci": [0.0, {literal}]}}'
    path = tmp_path / "b.json"
    path.write_text('{"format": "sae-checks-baseline", "version": 1,\n "entries": {\n'
                    f'  "fvu/layer=0/bucket=1-32": {entry}}}}}\n')
    with pytest.raises(ThresholdError) as info:
        load_baselines(path)
    assert (info.value.path, info.value.key, info.value.line) == (str(path), "fvu/layer=0/bucket=1-32", 3)
    assert "non-finite" in str(info.value) and "--sae-update-baseline" in str(info.value)


@pytest.mark.parametrize("value", ["nan", "+nan", "inf"])
def test_policy_nan_limit_and_infinite_tolerance_are_errors(tmp_path: Path, value: str) -> None:
    key = "limit" if "nan" in value else "abs_tol"  # limit = inf means "no limit"; tolerances must be finite
    path = write(tmp_path, f"[metrics.fvu]\n{key} = {value}\n")
    with pytest.raises(ThresholdError) as info:
        load_policy(path)
    assert info.value.key == f"metrics.fvu.{key}" and info.value.line == 2


def test_baseline_write_long_name_and_umask(tmp_path: Path) -> None:
    # the temporary name must not be longer than the target (a 250-char name failed), and the file gets the
    # mode any new file gets under the umask (mkstemp made it 0600: unreadable for a CI job or the group)
    path = tmp_path / ("b" * 245 + ".json")
    old = os.umask(0o022)
    try:
        write_baselines(path, {"fvu/layer=0/bucket=1-32": BaselineEntry(value=0.1)})
    finally:
        os.umask(old)
    assert [p.name for p in tmp_path.iterdir()] == [path.name]
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    assert load_baselines(path).get("fvu/layer=0/bucket=1-32") == BaselineEntry(value=0.1)
