"""The Python API for notebooks: ``sae_checks.run / judge / diff / RunConfig / Results / build_report``,
their docstring examples run as doctests (the zoo, 2 sequences, no bootstrap), ``run``'s keywords in
step with RunConfig, and ``import sae_checks`` light (no torch until a run)."""

from __future__ import annotations

import dataclasses
import doctest
import importlib
import json
import subprocess
import sys
import typing
from pathlib import Path

import pytest

import sae_checks
from sae_checks.config import RunConfig
from sae_checks.notebook import RunOptions
from tests.test_plugin_support import fake_results, sae

DOCTEST_MODULES = ["sae_checks.notebook", "sae_checks.config", "sae_checks.report.io", "sae_checks.results"]


@pytest.mark.parametrize("name", DOCTEST_MODULES)
def test_docstring_examples(name: str) -> None:
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS, verbose=False)
    assert result.failed == 0


def test_public_names_and_docstrings() -> None:
    for name in ("run", "judge", "diff", "RunConfig", "Results", "build_report", "evaluate", "load"):
        obj = getattr(sae_checks, name)
        assert obj.__doc__, name
    for name in ("run", "judge", "diff", "RunConfig", "build_report"):
        assert ">>> " in (getattr(sae_checks, name).__doc__ or ""), f"{name}: no docstring example"
    assert sae_checks.RunConfig is RunConfig and "judge" in dir(sae_checks)
    assert sorted(sae_checks.__all__) == sorted(["__version__", *sae_checks._LAZY])
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        sae_checks.nope  # noqa: B018


def test_run_keywords_mirror_run_config() -> None:
    fields = {f.name: f for f in dataclasses.fields(RunConfig)}
    hints = typing.get_type_hints(RunConfig)
    options = typing.get_type_hints(RunOptions)
    assert set(options) == set(fields)
    for name, tp in options.items():
        assert tp == hints[name], f"RunOptions.{name}: {tp} != RunConfig.{name}: {hints[name]}"


def test_import_is_light() -> None:
    code = "import sys, sae_checks, sae_checks.pytest_plugin; print(sorted(m for m in ('torch', 'sae_lens', "\
           "'transformer_lens') if m in sys.modules))"
    root = Path(sae_checks.__file__).resolve().parents[1]
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=root, check=True)
    assert out.stdout.strip() == "[]"


def test_judge_a_results_dict_with_an_explicit_policy(tmp_path: Path) -> None:
    results = fake_results()["results"]
    results["saes"] = {sae(i): {"layer": i, "hook": sae(i)} for i in range(3)}
    results["buckets"] = {sae(i): ["1-16", "16-32"] for i in range(3)}
    policy = tmp_path / "p.toml"
    policy.write_text("[metrics.fvu]\nlimit = 0.125\n")
    checks = sae_checks.judge(results, policy)
    assert [c["id"] for c in checks][:2] == [f"fvu-L0-pos1_16-{sae(0)}", f"fvu-L0-pos16_32-{sae(0)}"]
    assert [c["status"] for c in checks] == ["new", "fail", "new", "fail", "new", "fail"]  # 0.15+ over 0.125
    base = tmp_path / "b.json"
    base.write_text(json.dumps({"format": "sae-checks-baseline", "version": 1,
                                "entries": {f"fvu-L0-pos1_16-{sae(0)}": {"value": 0.1, "ci": None}}}))
    assert sae_checks.judge(results, policy, base)[0]["status"] == "pass"
