"""The right policy or none: the zoo's policy judges only the zoo, a release's shipped policy its release,
anything else the built-in generic policy; a baseline update never lands in the installed package; a
baseline says what it is a baseline of, and a baseline of another model or SAE set is refused."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sae_checks.gate import BUILTIN_POLICY, GateSession, resolve_options
from sae_checks.gate.setup import BUILTIN_SOURCE, default_policy_path, inside_package, packaged_thresholds
from sae_checks.gate.thresholds import load_baselines, subject_mismatch, write_baselines
from tests.test_plugin_support import GATE, SKIPPED, full_baseline, sae, setup_gate


def resolve(tmp_path: Path, **cli: object):  # type: ignore[no-untyped-def]
    return resolve_options(cli, {}, rootdir=tmp_path, invocation_dir=tmp_path)


@pytest.mark.parametrize("model, saes, expected", [
    ("zoo", "zoo:v2", "zoo.toml"),
    ("zoo", "zoo:v1,zoo:suite", "zoo.toml"),
    ("gpt2-small", "gpt2-small-res-jb", "gpt2-small-res-jb.toml"),
    ("gpt2-small", "zoo:v2", None),  # the zoo's SAEs on another model: not the zoo
    ("gpt2-small", "some/local/folder", None),
    ("pythia-70m", "pythia-70m-deduped-res-sm", None),  # a release without a shipped policy
])
def test_policy_is_chosen_by_model_and_saes(tmp_path: Path, model: str, saes: str, expected: str | None) -> None:
    if expected == "gpt2-small-res-jb.toml":
        _, policy, options = resolve(tmp_path, model=model, saes=saes, ctx_len=1024)
    else:
        _, policy, options = resolve(tmp_path, model=model, saes=saes)
    if expected is None:
        assert options.thresholds is None and policy.path == "<built-in policy>"
        assert options.policy_source == BUILTIN_SOURCE and policy.text == BUILTIN_POLICY
    else:
        assert options.thresholds is not None and options.thresholds.name == expected
        assert expected.removesuffix(".toml") in options.policy_source


def test_an_explicit_policy_wins_and_says_so(tmp_path: Path) -> None:
    (tmp_path / "mine.toml").write_text("[metrics.fvu]\nabs_tol = 0.1\n")
    _, _, options = resolve(tmp_path, thresholds="mine.toml")
    assert options.policy_source == f"--sae-thresholds {tmp_path / 'mine.toml'}"
    (tmp_path / "pyproject.toml").write_text('[tool.sae-checks]\nthresholds = "mine.toml"\n')
    session = GateSession.create({}, rootdir=tmp_path, invocation_dir=tmp_path)
    assert session.options.policy_source.startswith("[tool.sae-checks] thresholds")


def test_a_baseline_update_never_lands_in_the_package(tmp_path: Path) -> None:
    assert packaged_thresholds() is not None and inside_package(default_policy_path())  # type: ignore[arg-type]
    _, policy, options = resolve(tmp_path, update_baseline="all")  # the zoo: its baseline is packaged
    assert options.baseline == policy.baseline and inside_package(options.baseline)  # type: ignore[arg-type]
    assert options.baseline_target == tmp_path / "sae-baseline.json"
    # the packaged policy named explicitly: its baseline = is still inside the package
    _, _, options = resolve(tmp_path, thresholds=str(default_policy_path()), update_baseline="new")
    assert options.baseline_target == tmp_path / "sae-baseline.json"
    # a user's policy without baseline =: next to it
    (tmp_path / "cfg").mkdir()
    (tmp_path / "cfg" / "mine.toml").write_text("[metrics.fvu]\nabs_tol = 0.1\n")
    _, _, options = resolve(tmp_path, thresholds="cfg/mine.toml", update_baseline="new")
    assert options.baseline_target == tmp_path / "cfg" / "sae-baseline.json"
    # an explicit path is obeyed
    _, _, options = resolve(tmp_path, baseline="b.json", update_baseline="new")
    assert options.baseline_target == tmp_path / "b.json"


def test_subject_mismatch() -> None:
    subject = {"model": "gpt2-small", "saes": {"blocks.3.hook_resid_pre": "ab"}, "ctx_len": 128, "data": "x"}
    assert subject_mismatch(None, model="zoo", saes=["a"]) is None
    assert subject_mismatch(subject, model="gpt2-small", saes=["blocks.3.hook_resid_pre", "new"]) is None
    assert "model 'gpt2-small', this run is model 'zoo'" in str(subject_mismatch(subject, model="zoo", saes=[]))
    assert "none of them" in str(subject_mismatch(subject, model="gpt2-small", saes=["blocks.9.hook_z"]))


def test_baseline_records_its_subject_and_old_files_still_load(tmp_path: Path) -> None:
    path = tmp_path / "b.json"
    write_baselines(path, {}, {"model": "zoo", "saes": {"s": "00"}, "ctx_len": 8, "data": "zoo"})
    assert load_baselines(path).subject == {"model": "zoo", "saes": {"s": "00"}, "ctx_len": 8, "data": "zoo"}
    path.write_text(json.dumps({"format": "sae-checks-baseline", "version": 1, "entries": {}}))
    assert load_baselines(path).subject is None
    zoo = load_baselines(default_policy_path().parent / "zoo.baseline.json")  # type: ignore[union-attr]
    assert zoo.subject is not None and zoo.subject["model"] == "zoo" and len(zoo.subject["saes"]) == 4


def subject_baseline(model: str, saes: list[str]) -> dict[str, object]:
    return {"format": "sae-checks-baseline", "version": 1, "entries": full_baseline(),
            "subject": {"model": model, "saes": dict.fromkeys(saes, ""), "ctx_len": 32, "data": "stub"}}


def test_gate_refuses_a_baseline_of_another_model_or_sae_set(pytester: pytest.Pytester) -> None:
    root = setup_gate(pytester)
    (root / "baseline.json").write_text(json.dumps(subject_baseline("gpt2-small", [sae(0)])))
    result = pytester.runpytest(*GATE)
    assert result.ret != 0
    result.stdout.fnmatch_lines(["*--sae-baseline=*baseline.json*: it is a baseline of model 'gpt2-small', this "
                                 "run is model 'zoo'*--sae-baseline-any*"])
    pytester.runpytest(*GATE, "--sae-baseline-any").assert_outcomes(passed=18, skipped=SKIPPED)
    (root / "baseline.json").write_text(json.dumps(subject_baseline("zoo", ["other.sae"])))
    result = pytester.runpytest(*GATE)
    result.stdout.fnmatch_lines(["*it is a baseline of SAEs other.sae; this run has none of them*"])
    (root / "baseline.json").write_text(json.dumps(subject_baseline("zoo", [sae(0), sae(1), sae(2)])))
    result = pytester.runpytest(*GATE)
    result.assert_outcomes(passed=18, skipped=SKIPPED)
    assert "does not record" not in result.stdout.str()


def test_update_records_the_subject_and_an_old_baseline_warns_once(pytester: pytest.Pytester) -> None:
    root = setup_gate(pytester, baseline=full_baseline())  # an older file: no subject
    result = pytester.runpytest(*GATE, "--sae-update-baseline=all")
    result.assert_outcomes(passed=18, skipped=SKIPPED)
    assert result.stdout.str().count("sae-checks: note: baseline") == 1
    assert "sae-checks: policy: [tool.sae-checks] thresholds = " in result.stdout.str()
    written = json.loads((root / "baseline.json").read_text())
    assert written["subject"]["model"] == "zoo" and sorted(written["subject"]["saes"]) == [sae(0), sae(1), sae(2)]
    assert written["subject"]["ctx_len"] == 32 and written["subject"]["data"] == "stub"
    report = json.loads((root / "sae-report.json").read_text())
    assert report["config"]["gate"]["policy_source"].startswith("[tool.sae-checks] thresholds")
    assert "note: baseline" not in pytester.runpytest(*GATE).stdout.str()  # recorded now
