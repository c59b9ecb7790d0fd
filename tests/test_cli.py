"""The command line: errors name the option at fault and exit 4 (pytest's exit codes); diff/plot/html run on
saved reports."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from sae_checks.cli import config_from_args, main, parser, pyproject_defaults
from sae_checks.errors import ConfigError

DATA = Path(__file__).parent / "data"


def test_bad_option_value_names_the_option(capsys):
    assert main(["run", "--n-seqs", "0"]) == 4
    err = capsys.readouterr().err
    assert "n_seqs=0" in err and "must be >= 1" in err


def test_unknown_task_names_the_task(capsys):
    assert main(["run", "--tasks", "lambada,squad"]) == 4
    assert "tasks='squad'" in capsys.readouterr().err


def test_pyproject_defaults_and_flags_win(tmp_path):
    (tmp_path / "pyproject.toml").write_text('[tool.sae-checks]\nn-seqs = 5\nseed = 3\nthresholds = "x.toml"\n')
    defaults = pyproject_defaults(tmp_path / "pyproject.toml")
    args = parser().parse_args(["run", "--seed", "9", "--buckets", "1-8,8-16"])
    config = config_from_args(args, defaults)
    assert (config.n_seqs, config.seed, config.buckets) == (5, 9, ((1, 8), (8, 16)))


def test_unknown_pyproject_key_is_named(tmp_path):
    (tmp_path / "pyproject.toml").write_text("[tool.sae-checks]\nn-sequences = 5\n")
    with pytest.raises(ConfigError, match="n-sequences"):
        config_from_args(parser().parse_args(["run"]), pyproject_defaults(tmp_path / "pyproject.toml"))


def test_diff_identical_reports_exits_0_and_regression_exits_1(tmp_path, capsys):
    old = DATA / "report_full.json"
    assert main(["diff", str(old), str(old)]) == 0
    report = json.loads(old.read_text())
    worse = next(c for c in report["checks"] if c["status"] == "pass")
    worse["status"] = "fail"
    new = tmp_path / "new.json"
    new.write_text(json.dumps(report))
    capsys.readouterr()
    assert main(["diff", str(old), str(new), "--format", "markdown"]) == 1
    assert worse["id"] in capsys.readouterr().out


def test_diff_of_a_missing_file_is_a_one_line_error(tmp_path, capsys):
    assert main(["diff", str(tmp_path / "nope.json"), str(DATA / "report_full.json")]) == 4
    assert "nope.json" in capsys.readouterr().err


def test_html_and_plot_from_a_saved_report(tmp_path):
    report = tmp_path / "r.json"
    shutil.copy(DATA / "report_minimal.json", report)
    assert main(["html", str(report), "-o", str(tmp_path / "r.html")]) == 0
    assert (tmp_path / "r.html").read_text().startswith("<!DOCTYPE html>")
    assert main(["plot", str(report), "-o", str(tmp_path / "plots")]) == 0


def test_default_n_seqs_is_about_100k_tokens_and_64_on_the_zoo():
    from sae_checks.config import RunConfig

    assert RunConfig(data="Skylion007/openwebtext").n_seqs_for(1024) == 98  # 98 x 1024 >= 100k tokens
    assert RunConfig(data="text.jsonl").n_seqs_for(256) == 391
    assert RunConfig().n_seqs_for(256) == 64  # the zoo's held-out rows
    assert RunConfig(data="text.jsonl", n_seqs=5).n_seqs_for(1024) == 5


def test_help_lists_the_exit_codes(capsys):
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    assert "exit codes" in out and "SAE_CHECKS_DEBUG=1" in out
    for code in range(6):
        assert f"\n  {code}  " in out


def test_usage_errors_exit_4(capsys):
    assert main(["run", "--n-seqs", "four"]) == 4  # argparse's own errors (2 in argparse = interrupted here)
    assert "--n-seqs: invalid int value" in capsys.readouterr().err
    assert main(["nope"]) == 4
    assert main(["zoo", "frobnicate"]) == 4


def test_interrupt_exits_2_and_a_bug_exits_3_in_one_line(tmp_path, capsys, monkeypatch):
    from sae_checks import cli

    args = ["html", str(DATA / "report_minimal.json"), "-o", str(tmp_path / "r.html")]

    def interrupted(_args):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "cmd_html", interrupted)
    assert main(args) == 2
    assert "interrupted" in capsys.readouterr().err

    def bug(_args):
        raise ZeroDivisionError("division by zero\nsecond line")

    monkeypatch.setattr(cli, "cmd_html", bug)
    monkeypatch.delenv("SAE_CHECKS_DEBUG", raising=False)
    assert main(args) == 3
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "internal error: ZeroDivisionError: division by zero" in err
    assert "SAE_CHECKS_DEBUG=1" in err
    monkeypatch.setenv("SAE_CHECKS_DEBUG", "1")
    with pytest.raises(ZeroDivisionError):  # the traceback on request
        main(args)


def test_nothing_selected_exits_5(capsys, monkeypatch):
    import sae_checks.api

    monkeypatch.setattr(sae_checks.api, "run", _no_model)
    assert main(["run", "--layers", ""]) == 5
    assert "nothing selected" in capsys.readouterr().err


def _no_model(*args, **kwargs):
    raise AssertionError("the model must not be loaded")


@pytest.mark.parametrize("command, out, what", [
    (["run", "--report"], "missing/r.json", "does not exist"),
    (["run", "--report"], ".", "is a directory"),
    (["run", "--report"], "r" * 300 + ".json", "longer than this file system allows"),
    (["html", str(DATA / "report_minimal.json"), "-o"], "missing/r.html", "does not exist"),
    (["html", str(DATA / "report_minimal.json"), "-o"], ".", "is a directory"),
    (["plot", str(DATA / "report_minimal.json"), "-o"], "a-file", "is not a directory"),
    (["plot", str(DATA / "report_minimal.json"), "-o"], "missing/plots", "does not exist"),
])
def test_output_paths_checked_before_any_work(tmp_path, capsys, monkeypatch, command, out, what):
    import sae_checks.api

    monkeypatch.setattr(sae_checks.api, "run", _no_model)
    (tmp_path / "a-file").write_text("x")
    path = tmp_path / out
    assert main([*command, str(path)]) == 4
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"={str(path)!r}: " in err and what in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-file"]  # nothing written


def test_wrong_type_in_pyproject_is_one_line_before_any_work(tmp_path, capsys, monkeypatch):
    import sae_checks.api

    monkeypatch.setattr(sae_checks.api, "run", _no_model)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "pyproject.toml").write_text('[tool.sae-checks]\nn_seqs = "4"\n')
    assert main(["run"]) == 4
    err = capsys.readouterr().err
    assert err == "sae-checks: error: [tool.sae-checks]: n_seqs='4': must be an integer (or unset), got a string\n"
