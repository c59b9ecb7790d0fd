"""The one table of options: RunConfig's and GateConfig's fields give the CLI flags, the pytest options,
what ``sae-checks gate`` hands pytest, the ``[tool.sae-checks]`` keys and ``sae_checks.run``'s keywords."""

from __future__ import annotations

import argparse
import dataclasses
import inspect
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import pytest

import sae_checks
from sae_checks import cli
from sae_checks.config import (
    ALIASES,
    DTYPES,
    Flag,
    GateConfig,
    RunConfig,
    key_name,
    option,
    read_pyproject,
)
from sae_checks.errors import ConfigError
from sae_checks.options import GATE, RUN, add_pytest, options_of, pytest_values


def flags_of(parser: argparse.ArgumentParser) -> dict[str, str]:
    """flag -> dest of every option of ``parser`` (help and positional arguments left out)."""
    return {s: a.dest for a in parser._actions for s in a.option_strings if a.dest not in ("help", "version")}


def gate_subparser() -> argparse.ArgumentParser:
    sub = next(a for a in cli.parser()._actions if isinstance(a, argparse._SubParsersAction))
    return sub.choices["gate"]


def test_cli_and_pytest_options_come_from_the_config_fields() -> None:
    pytest_parser = argparse.ArgumentParser()
    add_pytest(argparse.Namespace(addoption=pytest_parser.add_argument), RUN + GATE)
    under_pytest, on_cli = flags_of(pytest_parser), flags_of(gate_subparser())
    with_flags = {f.name for cls in (RunConfig, GateConfig) for f in dataclasses.fields(cls) if f.metadata.get("flags")}
    assert set(on_cli.values()) == with_flags  # every option of `sae-checks gate` sets a config field
    assert set(under_pytest.values()) == {f"sae_{n}" for n in with_flags}
    # the same flags, with the pytest prefix: --ctx-len / --sae-ctx-len, --sae-ids / --sae-ids
    assert {f if f.startswith("--sae-") else "--sae-" + f[2:] for f in on_cli} == set(under_pytest)
    # settable only from a file or the API (no flag): their defaults are documented on the field
    assert {f.name for f in dataclasses.fields(RunConfig)} - with_flags == {
        "exclude_special", "propagation_window", "ci_level", "task_data"}


def test_choices_come_from_the_annotations() -> None:
    by_field = {o.field: o for o in RUN + GATE}
    assert by_field["dtype"].choices == DTYPES and "float32 or bfloat16" in by_field["dtype"].help
    assert by_field["update_baseline"].choices == ("new", "all") and by_field["update_baseline"].const == "new"
    with pytest.raises(SystemExit):
        gate_subparser().parse_args(["--dtype", "float16"])


def test_a_new_field_is_an_option_everywhere() -> None:
    """Adding a field is the whole recipe: its flag, type, choices and alias follow."""

    @dataclass(frozen=True, kw_only=True)
    class Extended(RunConfig):
        knob: int = option(3, "a new knob")
        mode: Literal["a", "b"] | None = option(None, Flag("a mode", name="the-mode", aliases=("m",)))

    new = {o.field: o for o in options_of(Extended)}
    assert (new["knob"].name, new["knob"].kind, new["knob"].help) == ("knob", "int", "a new knob")
    assert (new["mode"].name, new["mode"].kind, new["mode"].choices, new["mode"].aliases) == (
        "the-mode", "choice", ("a", "b"), ("m",))
    parser = argparse.ArgumentParser()
    add_pytest(argparse.Namespace(addoption=parser.add_argument), options_of(Extended))
    ns = parser.parse_args(["--sae-knob", "7", "--sae-m", "b"])
    assert pytest_values(lambda dest: getattr(ns, dest), options_of(Extended)) == {"knob": 7, "mode": "b"}

    @dataclass(frozen=True, kw_only=True)
    class Unparsable(RunConfig):
        odd: dict[str, int] | None = option(None, "no command-line form")

    with pytest.raises(TypeError, match="no command-line form for a field of type"):
        options_of(Unparsable)


def test_sae_checks_gate_hands_every_option_to_pytest(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[list[str]] = []
    monkeypatch.setattr(pytest, "main", lambda argv: seen.append(list(argv)) or 0)
    assert cli.main(["gate", "--ctx", "8", "--dtype", "bfloat16", "--no-propagation", "--report", "r.json",
                     "--baseline-any", "--update-baseline", "--", "-q"]) == 0
    argv = seen[0]
    assert argv[:2] == ["--pyargs", "sae_checks.gate.gate_tests"] and argv[-1] == "-q"
    assert {"--sae-ctx-len=8", "--sae-dtype=bfloat16", "--sae-no-propagation", "--sae-report=r.json",
            "--sae-baseline-any", "--sae-update-baseline=new"} <= set(argv)
    cli.main(["gate", "--update-baseline", "all"])
    assert "--sae-update-baseline=all" in seen[1]


def test_pyproject_keys_are_field_names_dashes_or_aliases(tmp_path: Path) -> None:
    assert key_name("ctx") == "ctx_len" and key_name("ctx-len") == "ctx_len" and key_name("sae-ids") == "sae_ids"
    assert ALIASES == {"ctx": "ctx_len", "id": "sae_id"}
    (tmp_path / "pyproject.toml").write_text('[tool.sae-checks]\nctx = 16\nupdate-baseline = "all"\n')
    assert read_pyproject(tmp_path) == read_pyproject(tmp_path / "pyproject.toml") == {
        "ctx": 16, "update-baseline": "all"}
    assert read_pyproject(tmp_path / "absent") == {}
    (tmp_path / "pyproject.toml").write_text("[tool.sae-checks\n")
    with pytest.raises(ConfigError, match=r"pyproject.toml.*invalid TOML"):
        read_pyproject(tmp_path)


def test_run_keywords_are_the_config_fields() -> None:
    params = list(inspect.signature(sae_checks.run).parameters.values())
    assert params[0].kind is inspect.Parameter.POSITIONAL_ONLY
    assert [(p.name, p.default) for p in params[1:]] == [(f.name, f.default) for f in dataclasses.fields(RunConfig)]
    with pytest.raises(ConfigError, match="sae_checks.run: n_seq.*unknown option"):
        sae_checks.run(n_seq=2)
    kwargs: dict[str, Any] = {"n_seqs": "2"}
    with pytest.raises(ConfigError, match="n_seqs.*must be an integer"):
        sae_checks.run(**kwargs)


def test_one_parse_of_the_layer_and_one_list_of_dtypes() -> None:
    from sae_checks.loading.models import DTYPES as model_dtypes
    from sae_checks.names import hook_layer, hook_site

    assert [hook_layer(h) for h in ("blocks.3.attn.hook_z", "blocks.12.hook_resid_pre", "blocks.2.odd", "hook_embed",
                                    None)] == [3, 12, 2, None, None]
    assert hook_site("blocks.2.odd") is None and hook_site("blocks.3.attn.hook_z") == (3, "attn.hook_z")
    assert model_dtypes is DTYPES
