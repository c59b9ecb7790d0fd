"""A cloze task is one declaration (sae_checks.tasks): a task defined in one file outside the package, as a
user would in a conftest.py, runs on the zoo, is reported, and is gated by a policy like the built-ins."""

from __future__ import annotations

import importlib.util
import json

import pytest

from sae_checks.errors import ConfigError, DataError, ThresholdError
from sae_checks.report.finish import finish_gate
from sae_checks.tasks import get_task, register_task, task_names, unregister_task

TOY_TASK = '''
"""A toy cloze task: a JSONL record {"context": ..., "word": ..., "choices": [...]} (the user's own file)."""
from sae_checks.errors import DataError
from sae_checks.tasks import ClozeItem, ClozeTask, register_task


def parse(record, where):
    if "context" not in record or "word" not in record:
        raise DataError(f"{where}: toy needs context and word")
    return ClozeItem(prompt=record["context"], answer=record["word"], options=tuple(record["choices"]))


TASK = register_task(ClozeTask(name="toy", parse=parse, fields=("context", "word", "choices"),
                               extra_metrics=("acc_choice",)))
'''

POLICY = """
[cloze.toy.acc_word]
limit = 0.0
[cloze.toy.acc_choice]
limit = 1.01
"""


@pytest.fixture
def toy(tmp_path):
    """The toy task registered from its own file outside the package, and its prompts (from the zoo's text)."""
    from sae_checks.zoo import zoo_cloze_path

    module_path = tmp_path / "toy_task.py"
    module_path.write_text(TOY_TASK)
    spec = importlib.util.spec_from_file_location("toy_task", module_path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    records = []
    for line in zoo_cloze_path().read_text(encoding="utf-8").splitlines()[:6]:
        context, word = json.loads(line)["text"].rsplit(" ", 1)
        records.append({"context": context, "word": word, "choices": [word, "the", "of"]})
    data = tmp_path / "toy.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in records))
    yield data
    unregister_task("toy")


def test_builtins_are_declared_once():
    assert task_names()[:2] == ("lambada", "cbt")
    assert get_task("cbt").extra_metrics == ("acc_choice",) and get_task("lambada").zoo
    with pytest.raises(ConfigError, match="unknown cloze task; choose from lambada, cbt"):
        get_task("hellaswag")


def test_a_registered_task_is_known_everywhere(toy):
    from sae_checks.config import RunConfig
    from sae_checks.gate import parse_policy
    from sae_checks.loading.data import load_cloze

    assert "toy" in task_names()
    RunConfig(tasks=("toy",)).validate()  # config validation reads the registry
    policy = parse_policy('tasks = ["toy"]\n' + POLICY, path="p.toml")  # the policy parser reads it too
    assert policy.tasks == ("toy",) and {m.task for m in policy.metrics} == {"toy"}
    items = load_cloze("toy", str(toy), n_prompts=2)
    assert [i.options for i in items] == [(items[0].answer, "the", "of"), (items[1].answer, "the", "of")]
    with pytest.raises(ConfigError, match="already registered"):
        register_task(get_task("toy").__class__(name="toy", parse=get_task("toy").parse, fields=()))
    unregister_task("toy")
    with pytest.raises(ThresholdError, match="unknown cloze task"):
        parse_policy(POLICY, path="p.toml")


def test_acc_choice_task_needs_options(toy, tmp_path):
    from sae_checks.loading.data import load_cloze
    from sae_checks.tasks import ClozeItem, ClozeTask

    register_task(ClozeTask(name="toy", fields=("text",), extra_metrics=("acc_choice",),
                            parse=lambda r, where: ClozeItem(prompt="a", answer="b")), replace=True)
    with pytest.raises(DataError, match="toy.jsonl:1: cloze task 'toy' reports acc_choice and needs options"):
        load_cloze("toy", str(toy), n_prompts=1)


def test_a_task_without_data_says_how_to_give_it(toy):
    from sae_checks.tasks import task_source

    assert task_source("toy", "zoo", {"toy": "x.jsonl"}) == "x.jsonl"
    with pytest.raises(ConfigError, match=r"task_data=.toy.: this task has no default data .*task_data = "):
        task_source("toy", "zoo")


def test_user_task_runs_is_reported_and_gated(toy, tmp_path):
    from sae_checks import api
    from sae_checks.gate import GateSession
    from sae_checks.report.io import load_report

    (tmp_path / "policy.toml").write_text(POLICY)
    cli = {"thresholds": "policy.toml", "tasks": ["toy"], "task_data": [["toy", str(toy)]], "n_prompts": 6,
           "n_seqs": 2, "layers": [1], "n_bootstrap": 0, "propagation": False, "n_causal": 0, "device": "cpu",
           "report": "gate.json"}
    session = GateSession.create(cli, rootdir=tmp_path, invocation_dir=tmp_path)
    specs = [s for s in session.plan(api.plan) if s.family == "cloze"]
    assert sorted(s.metric for s in specs) == ["cloze.toy.acc_choice", "cloze.toy.acc_word"]
    session.select(s.id for s in session.specs)
    for spec in session.specs:
        session.judge(spec, api.run)
    finish_gate(session)
    report = load_report(tmp_path / "gate.json")
    toy_results = report["results"]["cloze"]["toy"]
    assert toy_results["n_prompts"] == 6
    (sae,) = toy_results["per_sae"]
    assert 0.0 <= toy_results["per_sae"][sae]["acc_choice"]["mean"] <= 1.0  # the declared extra metric
    checks = {c["id"]: c for c in report["checks"] if c["metric"].startswith("cloze.toy.")}
    status = {c["metric"]: c["status"] for c in checks.values()}
    # acc_word meets its limit but has no baseline yet: new; acc_choice <= 1 misses its limit 1.01: fail
    assert status == {"cloze.toy.acc_word": "new", "cloze.toy.acc_choice": "fail"}
