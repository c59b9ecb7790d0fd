"""The command line: errors name the option at fault and exit 2; diff/plot/html run on saved reports."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from sae_checks.cli import config_from_args, main, parser, pyproject_defaults
from sae_checks.errors import ConfigError

DATA = Path(__file__).parent / "data"


def test_bad_option_value_names_the_option(capsys):
    assert main(["run", "--n-seqs", "0"]) == 2
    err = capsys.readouterr().err
    assert "n_seqs=0" in err and "must be >= 1" in err


def test_unknown_task_names_the_task(capsys):
    assert main(["run", "--tasks", "lambada,squad"]) == 2
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
    assert main(["diff", str(tmp_path / "nope.json"), str(DATA / "report_full.json")]) == 2
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
