"""Progress: the three-method protocol (``sae_checks.progress``), the engine and cloze calling it, and the
plugin's lines through pytest's terminal reporter: shown with and without -s, not under -q, off when not
on a terminal or in CI unless --sae-progress asks."""

from __future__ import annotations

import io
from typing import Any

import pytest

from sae_checks import progress
from tests.test_plugin_support import GATE, SKIPPED, full_baseline, setup_gate

LINE = "sae-checks: stub engine (3 SAEs): 3/3 (100%), *elapsed, done"


class Recorder:
    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []

    def start(self, total: int, what: str) -> None:
        self.calls.append(("start", total, what))

    def update(self, n: int = 1) -> None:
        self.calls.append(("update", n))

    def close(self) -> None:
        self.calls.append(("close",))


def test_line_progress_shows_time_left() -> None:
    lines: list[str] = []
    now = [0.0]
    p = progress.LineProgress(lines.append, interval=2.0, clock=lambda: now[0], unit=" seq")
    p.start(10, "engine")
    now[0] = 1.0
    p.update(2)  # within the interval: no line
    now[0] = 4.0
    p.update(2)  # 4 of 10 in 4 s: 6 s left
    now[0] = 10.0
    p.update(6)
    assert lines == ["sae-checks: engine: 0/10 seq ...",
                     "sae-checks: engine: 4/10 seq (40%), 4s elapsed, ~6s left",
                     "sae-checks: engine: 10/10 seq (100%), 10s elapsed, done"]


def test_enabled_only_on_a_terminal_outside_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    monkeypatch.delenv("CI", raising=False)
    assert progress.enabled(None, Tty()) and not progress.enabled(None, io.StringIO())
    assert progress.enabled(True, io.StringIO()) and not progress.enabled(False, Tty())
    monkeypatch.setenv("CI", "true")
    assert not progress.enabled(None, Tty())
    assert isinstance(progress.default(None), progress.NoProgress)


def test_iterate_reports_each_item() -> None:
    rec = Recorder()
    assert list(progress.iterate([1, 2], rec, "lambada clean+splice")) == [1, 2]
    assert rec.calls == [("start", 2, "lambada clean+splice"), ("update", 1), ("update", 1), ("close",)]


@pytest.mark.slow
def test_engine_and_cloze_report_batches() -> None:
    from sae_checks.api import run
    from sae_checks.config import RunConfig

    rec = Recorder()
    run(RunConfig(n_seqs=4, batch_size=2, n_bootstrap=0, device="cpu", tasks=("lambada",), n_prompts=8,
                  n_causal=0), progress=rec)
    starts = [c for c in rec.calls if c[0] == "start"]
    assert starts[0] == ("start", 4, "engine (4 SAEs, 4 seq)")
    assert any("lambada" in c[2] for c in starts[1:])
    engine = rec.calls[:rec.calls.index(("close",)) + 1]
    assert [c for c in engine if c[0] == "update"] == [("update", 2), ("update", 2)]
    assert rec.calls.count(("close",)) == len(starts)


@pytest.mark.parametrize("args, shown", [
    (("--sae-progress",), True),  # not a terminal here: asked for
    (("--sae-progress", "-s"), True),
    (("--sae-progress", "-q"), True),  # asked for explicitly: even under -q
    ((), False),  # not a terminal, not asked
])
def test_progress_lines_in_a_gate_run(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch,
                                      args: tuple[str, ...], shown: bool) -> None:
    monkeypatch.delenv("CI", raising=False)
    setup_gate(pytester, baseline=full_baseline())
    result = pytester.runpytest(*GATE, *args)
    result.assert_outcomes(passed=18, skipped=SKIPPED)
    if shown:
        result.stdout.fnmatch_lines(["sae-checks: stub engine (3 SAEs): 0/3 ...", LINE])
    else:
        assert "stub engine" not in result.stdout.str()


@pytest.mark.parametrize("args, shown", [
    ((), True),  # an interactive terminal outside CI: shown by default
    (("-s",), True),
    (("-q",), False),  # quiet
    (("--sae-no-progress",), False),
])
def test_progress_on_a_terminal(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch,
                                args: tuple[str, ...], shown: bool) -> None:
    monkeypatch.setattr(progress, "interactive", lambda stream=None: True)  # stands for a TTY with $CI unset
    setup_gate(pytester, baseline=full_baseline())
    result = pytester.runpytest(*GATE, *args)
    result.assert_outcomes(passed=18, skipped=SKIPPED)
    assert ("stub engine (3 SAEs): 3/3" in result.stdout.str()) is shown
