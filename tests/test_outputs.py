"""Every output goes through one atomic writer (sae_checks.io), every output path is checked before compute,
and a write that still fails never loses the results (issue 19 item 7: each case seen by a user, reproduced).

A full disk is simulated by monkeypatching (the tests may run as root, whom chmod does not stop): the
writer's fsync or matplotlib's savefig raise ENOSPC part-way.
"""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from sae_checks.cli import main
from sae_checks.errors import ConfigError
from sae_checks.io import OutputError, OutputLock, atomic_append_text, atomic_write_text
from sae_checks.report.finish import finish_gate
from sae_checks.report.io import load_report

DATA = Path(__file__).parent / "data"
ENOSPC = os.strerror(errno.ENOSPC)


def _full_disk(*_args, **_kwargs):
    raise OSError(errno.ENOSPC, ENOSPC)


def _no_model(*_args, **_kwargs):
    raise AssertionError("the engine must not run")


def _files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


# --- the writer --------------------------------------------------------------------------------------


def test_full_disk_keeps_the_previous_file_and_names_the_target(tmp_path, monkeypatch):
    path = tmp_path / "out.txt"
    atomic_write_text(path, "old\n")
    monkeypatch.setattr(os, "fsync", _full_disk)
    with pytest.raises(OutputError) as info:
        atomic_write_text(path, "new\n")
    assert str(info.value) == f"{path}: not written: {ENOSPC}"  # the target, never the temporary file
    assert path.read_text() == "old\n" and _files(tmp_path) == ["out.txt"]


def test_append_is_all_or_nothing(tmp_path, monkeypatch):
    path = tmp_path / "summary.md"
    atomic_append_text(path, "one\n")
    atomic_append_text(path, "two\n")
    assert path.read_text() == "one\ntwo\n"
    monkeypatch.setattr(os, "fsync", _full_disk)
    with pytest.raises(OutputError):
        atomic_append_text(path, "three\n")
    assert path.read_text() == "one\ntwo\n" and _files(tmp_path) == ["summary.md"]


def test_a_full_disk_never_leaves_a_truncated_figure(tmp_path, monkeypatch):
    """Seen: on a full disk a figure was left truncated over the previous one."""
    from matplotlib.figure import Figure

    from sae_checks.report.plots import make_plots

    report = load_report(DATA / "report_full.json")
    first = make_plots(report, tmp_path)
    before = {p.name: p.read_bytes() for p in first.paths}
    real = Figure.savefig

    def savefig_then_disk_full(fig, target, **kwargs):
        import io

        buf = io.BytesIO()
        real(fig, buf, **kwargs)
        half = buf.getvalue()[: len(buf.getvalue()) // 2]
        if hasattr(target, "write"):
            target.write(half)
        else:
            with open(target, "wb") as fh:
                fh.write(half)
        raise OSError(errno.ENOSPC, ENOSPC)

    monkeypatch.setattr(Figure, "savefig", savefig_then_disk_full)
    with pytest.raises(OSError):
        make_plots(report, tmp_path)
    assert {p.name: p.read_bytes() for p in first.paths} == before  # every figure whole, as before
    monkeypatch.setattr(Figure, "savefig", real)
    monkeypatch.setattr(os, "fsync", _full_disk)  # the rendering works, the disk is full at the write
    with pytest.raises(OutputError, match=rf"{first.paths[0].name}: not written: {ENOSPC}"):
        make_plots(report, tmp_path)
    assert {p.name: p.read_bytes() for p in first.paths} == before
    assert not [n for n in _files(tmp_path) if n.endswith(".tmp")]


def test_html_write_failure_names_the_page_and_exits_4(tmp_path, capsys, monkeypatch):
    out = tmp_path / "r.html"
    monkeypatch.setattr(os, "fsync", _full_disk)
    assert main(["html", str(DATA / "report_minimal.json"), "-o", str(out)]) == 4  # not 3, "internal error"
    err = capsys.readouterr().err
    assert err == f"sae-checks: error: {out}: not written: {ENOSPC}\n"
    assert _files(tmp_path) == []


def test_baseline_write_is_the_shared_writer(tmp_path, monkeypatch):
    from sae_checks.gate import BaselineEntry, load_baselines, write_baselines

    path = tmp_path / "baseline.json"
    write_baselines(path, {"a": BaselineEntry(value=1.0, ci=None)})
    before = path.read_bytes()
    monkeypatch.setattr(os, "fsync", _full_disk)
    with pytest.raises(OutputError, match=f"baseline.json: not written: {ENOSPC}"):
        write_baselines(path, {"a": BaselineEntry(value=2.0, ci=None)})
    assert path.read_bytes() == before and load_baselines(path).entries["a"].value == 1.0


# --- the lock ----------------------------------------------------------------------------------------


def test_second_writer_of_one_report_is_refused_naming_path_and_holder(tmp_path):
    report = tmp_path / "report.json"
    with OutputLock(report, "--report"):
        with pytest.raises(ConfigError) as info:
            OutputLock(report, "--report").acquire()
        msg = str(info.value)
        assert msg.startswith(f"--report={str(report)!r}: another sae-checks run writes this report")
        assert f"pid {os.getpid()}" in msg
        OutputLock(tmp_path / "other.json", "--report").acquire().release()  # another path: free
    OutputLock(report, "--report").acquire().release()  # released: free again
    assert _files(tmp_path) == []  # no lock file left behind


def test_lock_held_by_another_process(tmp_path):
    report = tmp_path / "report.json"
    code = ("import sys, time; from sae_checks.io import OutputLock; "
            f"lock = OutputLock({str(report)!r}, '--report').acquire(); print('held', flush=True); "
            "sys.stdin.readline()")
    holder = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        with pytest.raises(ConfigError, match=f"held by pid {holder.pid} "):
            OutputLock(report, "--report").acquire()
    finally:
        holder.communicate("\n", timeout=30)
    OutputLock(report, "--report").acquire().release()  # the holder exited: free


def test_cli_run_refuses_a_report_another_run_writes(tmp_path, capsys, monkeypatch):
    """Seen: two runs on one report path overwrite each other silently."""
    import sae_checks.api

    monkeypatch.setattr(sae_checks.api, "run", _no_model)
    report = tmp_path / "report.json"
    with OutputLock(report, "--report"):
        assert main(["run", "--report", str(report)]) == 4
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"--report={str(report)!r}: another sae-checks run writes this report" in err


def test_gate_refuses_a_report_another_run_writes(tmp_path):
    from sae_checks.gate import GateSession

    (tmp_path / "policy.toml").write_text("[metrics.fvu]\nabs_tol = 0.1\n")
    cli = {"thresholds": "policy.toml", "report": "r.json"}
    first = GateSession.create(cli, rootdir=tmp_path, invocation_dir=tmp_path)
    with pytest.raises(ConfigError, match="--sae-report=.*r.json.*another sae-checks run writes this report"):
        GateSession.create(cli, rootdir=tmp_path, invocation_dir=tmp_path)
    GateSession.create(cli, rootdir=tmp_path, invocation_dir=tmp_path, worker=1)  # xdist workers do not lock
    finish_gate(first)  # nothing ran: nothing written, the lock released
    GateSession.create(cli, rootdir=tmp_path, invocation_dir=tmp_path).close()


# --- refused before the engine -----------------------------------------------------------------------


@pytest.fixture
def offline_without_cbt(tmp_path, monkeypatch):
    """Offline, with an empty datasets cache (datasets reads these settings at import: patched too)."""
    import datasets
    from huggingface_hub import constants

    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True, raising=False)
    monkeypatch.setattr(datasets.config, "HF_DATASETS_OFFLINE", True, raising=False)
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "empty-cache")


def test_cbt_offline_without_data_is_refused_before_the_engine(capsys, monkeypatch, offline_without_cbt):
    """Seen: `--tasks cbt` offline was refused only after the engine ran."""
    import sae_checks.api

    monkeypatch.setattr(sae_checks.api, "run", _no_model)
    assert main(["run", "--tasks", "cbt"]) == 4
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "cloze task 'cbt': dataset 'cam-cst/cbt' (config 'CN', split 'test') is not available offline" in err
    assert "task_data" in err and "sentences, question, answer, options" in err  # how to provide it


def test_gate_refuses_cbt_offline_up_front(tmp_path, offline_without_cbt):
    from sae_checks.errors import OfflineError
    from sae_checks.gate import GateSession

    (tmp_path / "policy.toml").write_text("[cloze.cbt.acc_choice]\nlimit = 0.1\n")
    from sae_checks import api

    session = GateSession.create({"thresholds": "policy.toml", "tasks": ["cbt"]}, rootdir=tmp_path,
                                 invocation_dir=tmp_path)
    with pytest.raises(OfflineError, match="cloze task 'cbt': dataset 'cam-cst/cbt'"):
        session.plan(api.plan)  # at collection, before any test runs the engine


def test_too_little_text_is_refused_before_the_engine(tmp_path, capsys, monkeypatch):
    """Seen: --sae-data with too little text exited 1 with every check an "error"."""
    import sae_checks.api

    monkeypatch.setattr(sae_checks.api, "run", _no_model)
    short = tmp_path / "short.txt"
    short.write_text("A few words of text, far too few for eight rows.\n")
    assert main(["run", "--data", str(short), "--n-seqs", "8", "--ctx-len", "64"]) == 4
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"{short}: too little text: " in err
    assert "tokens available, 504 needed for n_seqs=8 sequences of ctx_len=64" in err  # 8 x 63


def test_gate_refuses_too_little_text_up_front(tmp_path):
    from sae_checks.errors import DataError
    from sae_checks.gate import GateSession

    short = tmp_path / "short.txt"
    short.write_text("A few words.\n")
    (tmp_path / "policy.toml").write_text("[metrics.fvu]\nabs_tol = 0.1\n")
    from sae_checks import api

    session = GateSession.create({"thresholds": "policy.toml", "data": str(short), "n_seqs": 4, "ctx_len": 64},
                                 rootdir=tmp_path, invocation_dir=tmp_path)
    with pytest.raises(DataError, match=r"short\.txt: too little text: \d+ tokens available, 252 needed"):
        session.plan(api.plan)  # at collection, before any test runs the engine


# --- a write that fails after compute ----------------------------------------------------------------


@pytest.fixture
def saved_evaluation(monkeypatch):
    """api.run answering with the results and provenance of a saved report (the engine is not under test)."""
    import sae_checks.api
    from sae_checks.engine.run import Evaluation

    report = load_report(DATA / "report_full.json")
    monkeypatch.setattr(sae_checks.api, "run",
                        lambda config, **kw: Evaluation(provenance=report["provenance"], results=report["results"]))
    return report


def test_report_write_failure_after_the_run_keeps_the_results(tmp_path, capsys, monkeypatch, saved_evaluation):
    """Seen: an unwritable --report found after the whole run, called an internal error (exit 3) with the
    temporary file's name, and the results lost."""
    import tempfile

    import sae_checks.report.io as report_io

    out = tmp_path / "report.json"
    rescue_dir = tmp_path / "rescue"
    rescue_dir.mkdir()
    monkeypatch.setattr(tempfile, "gettempdir", lambda: str(rescue_dir))
    real = report_io.atomic_write_text

    def disk_full_for_the_report(path, text):
        if Path(path) == out:
            raise OutputError(path, ENOSPC, errno.ENOSPC)
        return real(path, text)

    monkeypatch.setattr(report_io, "atomic_write_text", disk_full_for_the_report)
    assert main(["run", "--report", str(out)]) == 4
    captured = capsys.readouterr()
    assert "bucket" in captured.out  # the summary table is printed
    (saved,) = rescue_dir.iterdir()
    assert captured.err == (f"sae-checks: error: report not written to {out}: {ENOSPC}; the report was saved to "
                            f"{saved} instead\n")
    assert json.loads(saved.read_text())["results"] == json.loads(json.dumps(saved_evaluation["results"]))
    assert _files(tmp_path) == ["rescue"]  # no temporary file, no lock file


def test_gate_says_baseline_updated_only_after_writing_it(tmp_path, monkeypatch, saved_evaluation):
    """Seen: the gate printed "baseline updated" before failing to write it."""
    from sae_checks.gate import GateSession
    from sae_checks.report import finish

    (tmp_path / "policy.toml").write_text("[metrics.fvu]\nabs_tol = 0.1\n")
    session = GateSession.create({"thresholds": "policy.toml", "update_baseline": "all"}, rootdir=tmp_path,
                                 invocation_dir=tmp_path)
    session.results = saved_evaluation["results"]
    session.provenance = saved_evaluation["provenance"]
    session.checks = {c["id"]: c for c in saved_evaluation["checks"]}
    monkeypatch.setattr(finish, "write_baselines",
                        lambda path, *a, **k: (_ for _ in ()).throw(OutputError(path, ENOSPC, errno.ENOSPC)))
    report = finish_gate(session)
    assert report is not None and session.report_written == tmp_path / "sae-report.json"
    lines = session.summary_lines()
    assert not any("updated" in line for line in lines)
    target = session.options.baseline_target
    assert session.errors == [f"sae-checks: baseline not updated: baseline not written to {target}: {ENOSPC}"]
    assert not target.exists()


def test_gate_checks_the_step_summary_path_up_front(tmp_path, monkeypatch):
    from sae_checks.gate import GateSession

    (tmp_path / "policy.toml").write_text("[metrics.fvu]\nabs_tol = 0.1\n")
    (tmp_path / "a-file").write_text("x")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(tmp_path / "a-file" / "summary.md"))
    with pytest.raises(ConfigError, match=r"GITHUB_STEP_SUMMARY=.*a-file is not a directory"):
        GateSession.create({"thresholds": "policy.toml"}, rootdir=tmp_path, invocation_dir=tmp_path)


def test_gate_step_summary_failure_after_the_run_keeps_the_report(tmp_path, monkeypatch, saved_evaluation):
    from sae_checks.gate import GateSession

    (tmp_path / "policy.toml").write_text("[metrics.fvu]\nabs_tol = 0.1\n")
    summary = tmp_path / "summary.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    session = GateSession.create({"thresholds": "policy.toml"}, rootdir=tmp_path, invocation_dir=tmp_path)
    session.results, session.provenance = saved_evaluation["results"], saved_evaluation["provenance"]
    summary.mkdir()  # the summary path went bad during the run
    finish_gate(session)
    assert session.report_written == tmp_path / "sae-report.json" and session.report_written.exists()
    assert session.errors == [f"sae-checks: GitHub step summary not written to {summary}: cannot read it to append: Is a directory"]
