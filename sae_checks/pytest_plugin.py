"""pytest plugin for the sae-checks gate: options, fixtures, parametrization, report hooks.

Run the gate with ``pytest --pyargs sae_checks.gate.gate_tests [--sae-* options]`` (no test files to copy).
Every option can also be set in ``[tool.sae-checks]`` of the rootdir's pyproject.toml (the command line
wins). The work happens in ``sae_checks.gate.GateSession``; this module only wires it into pytest:

- ``pytest_generate_tests``: one test per check id (``test_metric[fvu-L3-pos1_128-<sae>]``, selectable
  with ``-k "fvu and L3"``), planned from ``api.plan(config)`` and the policy: cheap and identical on
  every xdist worker; each test is in the ``xdist_group`` of its SAE (propagation: its upstream SAE), so
  ``-n N --dist loadgroup`` keeps an SAE on one worker and each SAE's engine run happens once.
- fixture ``sae_judge``: runs the engine for the layers this process needs (cached in ``config.stash``),
  judges one check, fails the test with the check's message.
- fixtures for one's own test files (README "Your own checks"): ``sae_results`` (the same cached
  evaluation, as ``sae_checks.results.Results``), ``sae_model`` / ``sae_saes`` / ``sae_tokens`` (loaded
  once per process) and ``sae_record`` (a custom check, collected into report["custom_checks"]; a
  recorded failure fails its test in ``pytest_runtest_makereport``, a ``severity="warn"`` one only
  warns); the ``gpu`` marker skips a test without CUDA.
- ``pytest_sessionfinish``: workers send results and checks as plain data through
  ``config.workeroutput``; the controller merges them in ``pytest_testnodedown`` and writes one report
  (and one baseline update with ``--sae-update-baseline``).

Heavy imports (the engine, torch) happen inside fixtures and hooks, never at plugin import.
"""

from __future__ import annotations

import sys
import warnings
from collections.abc import Callable
from contextlib import nullcontext
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from sae_checks.status import Severity

_SESSION = pytest.StashKey[Any]()  # the process's GateSession (created lazily: only gate runs pay for it)
_ERROR = pytest.StashKey[str]()  # an error raised while writing the report, shown in the summary
_USAGE = pytest.StashKey[str]()  # a usage error found while collecting: exit 4 once collection is over
_RECORD = "sae_record"  # user_properties key of a custom check

def pytest_addoption(parser: pytest.Parser) -> None:
    from sae_checks.options import GATE, RUN, add_pytest

    group = parser.getgroup("sae-checks", "sae-checks gate (the same options as `sae-checks gate`; also "
                            "settable in [tool.sae-checks])")
    add_pytest(group, RUN + GATE)


def pytest_configure(config: pytest.Config) -> None:
    if not hasattr(config, "workerinput"):  # custom checks are collected where the reports arrive
        config.pluginmanager.register(_Records(config), "sae-checks-records")
    config.addinivalue_line("markers", "gpu: needs a CUDA device; skipped without one")
    config.addinivalue_line("markers", "sae_family(name): which family of gate checks a test runs")
    config.addinivalue_line("markers", "xdist_group(name): keep tests of one group on one xdist worker")
    if config.pluginmanager.hasplugin("xdist"):
        config.pluginmanager.register(_XdistHooks(), "sae-checks-xdist")


def _gate(config: pytest.Config) -> Any:
    """The process's GateSession, created on first use from the options and [tool.sae-checks]. A CUDA
    device on a machine without CUDA is a usage error (exit 4), not a run of skipped tests."""
    if _SESSION not in config.stash:
        from sae_checks.gate import GateSession
        from sae_checks.options import GATE, RUN, pytest_values

        cli = pytest_values(config.getoption, RUN + GATE)
        workerid = getattr(config, "workerinput", {}).get("workerid")
        gate = GateSession.create(
            {k: v for k, v in cli.items() if v is not None}, rootdir=config.rootpath,
            invocation_dir=config.invocation_params.dir, worker=int(workerid[2:]) if workerid else None,
            lock_report=not getattr(config.option, "numprocesses", None))  # the xdist controller: too late to lock
        if (gate.config.device or "").startswith("cuda"):
            import torch

            if not torch.cuda.is_available():  # collection swallows pytest.exit: raised after it
                config.stash[_USAGE] = (f"sae-checks: --sae-device={gate.config.device}: CUDA is not available "
                                        "on this machine; use --sae-device cpu")
        gate.progress = _progress(config, gate.config.progress)
        config.stash[_SESSION] = gate
    return config.stash[_SESSION]


def _progress(config: pytest.Config, requested: bool | None) -> Any:
    """Progress lines through the terminal reporter (capture suspended, so they show without -s); none on
    xdist workers (their output is not shown), under -q unless --sae-progress, or when not wanted
    (``progress.enabled``: an interactive terminal outside CI, or --sae-progress)."""
    from sae_checks import progress

    reporter = config.pluginmanager.get_plugin("terminalreporter")
    quiet = config.get_verbosity() < 0 and requested is None  # -q silences the default, not --sae-progress
    if hasattr(config, "workerinput") or reporter is None or quiet or not progress.enabled(requested, sys.__stdout__):
        return progress.NoProgress()
    capman = config.pluginmanager.get_plugin("capturemanager")

    def write(line: str) -> None:
        with capman.global_and_fixture_disabled() if capman else nullcontext():
            reporter.ensure_newline()
            reporter.write_line(line)

    return progress.LineProgress(write)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "sae_check" not in metafunc.fixturenames:
        return
    from sae_checks import api
    from sae_checks.errors import SaeChecksError

    marker = metafunc.definition.get_closest_marker("sae_family")
    family = marker.args[0] if marker else "bucket"
    try:
        gate, error = _gate(metafunc.config), None
        specs = [s for s in gate.plan(api.plan) if s.family == family] if _USAGE not in metafunc.config.stash else []
    except SaeChecksError as exc:
        error = str(exc)
    if error is not None:  # an input error (policy, SAE config, offline resource): exit 4 after collection,
        # in one line, not a collection error (exit 2, "interrupted") with the hub library's exception chain
        metafunc.config.stash[_USAGE] = f"sae-checks: {error}"
        metafunc.parametrize("sae_check", [pytest.param(None, id="input-error")])
        return
    gpu = [pytest.mark.gpu] if (gate.config.device or "").startswith("cuda") else []
    params = [pytest.param(s, id=s.id, marks=[pytest.mark.xdist_group(s.group), *gpu]) for s in specs]
    skip = pytest.mark.skip(reason=f"the policy names no {family} checks for this run")
    metafunc.parametrize("sae_check", params or [pytest.param(None, id="none", marks=skip)])


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if _USAGE in config.stash:
        pytest.exit(config.stash[_USAGE], returncode=pytest.ExitCode.USAGE_ERROR)
    params = [getattr(item, "callspec", None) and item.callspec.params.get("sae_check")  # type: ignore[attr-defined]
              for item in items]
    ids = [p.id for p in params if type(p).__name__ == "CheckSpec"]  # type: ignore[union-attr]  # empty families hold NOTSET
    if ids or _SESSION in config.stash:
        _gate(config).select(ids)
    gate_items = [i for i in items if "sae_check" in getattr(getattr(i, "callspec", None), "params", {})]
    if gate_items and not ids and _SESSION in config.stash and not config.stash[_SESSION].planned_ids:
        config.stash[_SESSION].empty = True  # the gate ran, and its policy names no check for this run
    if config.getvalue("loadgroup") if hasattr(config.option, "loadgroup") else False:
        _group_nodeids(items, params)


def _group_nodeids(items: list[pytest.Item], params: list[Any]) -> None:
    """xdist <= 3.8 tags ``nodeid@group`` by setting ``item._nodeid``, which pytest >= 9 no longer reads
    (it reads ``item._id``), so ``--dist loadgroup`` silently degrades to ``load``. Redo it for our items."""
    for item, p in zip(items, params, strict=True):
        if type(p).__name__ == "CheckSpec" and "@" not in item.nodeid.rpartition("]")[2] and hasattr(item, "_id"):
            try:
                from _pytest.nodeid import NodeId

                item._id = NodeId.parse(f"{item.nodeid}@{p.group}")
            except (ImportError, AttributeError, ValueError):
                return


def pytest_runtest_setup(item: pytest.Item) -> None:
    if item.get_closest_marker("gpu") is not None:
        import torch

        if not torch.cuda.is_available():
            pytest.skip("needs CUDA (marked gpu) and none is available")


@pytest.fixture(scope="session")
def sae_gate(pytestconfig: pytest.Config) -> Any:
    """The GateSession of this process."""
    gate = _gate(pytestconfig)
    if _USAGE in pytestconfig.stash:
        pytest.exit(pytestconfig.stash[_USAGE], returncode=pytest.ExitCode.USAGE_ERROR)
    if gate.unsafe:
        from sae_checks.gate import GateWarning

        warnings.warn(GateWarning(f"{len(gate.unsafe)} tolerances are below the baseline CI half-width "
                                  f"(a rerun on other data may fail them): {'; '.join(gate.unsafe[:5])}"),
                      stacklevel=1)
    return gate


@pytest.fixture
def sae_judge(sae_gate: Any) -> Callable[[Any], Any]:
    """``sae_judge(spec)``: judge one check (running the engine if needed); fail or warn per its status."""
    from sae_checks import api
    from sae_checks.gate import EngineFailure, GateWarning
    from sae_checks.status import NOTEWORTHY

    def judge(spec: Any) -> Any:
        try:
            check, failure = sae_gate.judge(spec, api.run), None
        except EngineFailure as exc:
            check, failure = None, str(exc)
        if failure is not None:  # outside the except: the message alone, no exception chain
            pytest.fail(f"sae-checks: {failure}", pytrace=False)
        if sae_gate.fails(check):
            pytest.fail(check.message, pytrace=False)
        if check.status in NOTEWORTHY or check.failed:
            warnings.warn(GateWarning(check.message), stacklevel=2)
        return check

    return judge


@pytest.fixture(scope="session")
def sae_results(sae_gate: Any) -> Any:
    """The evaluation of the configured model / SAEs / data (``sae_checks.results.Results``), computed once
    per process and shared with the gate's own checks (the same cache: never computed twice)."""
    from sae_checks import api
    from sae_checks.gate import EngineFailure
    from sae_checks.results import Results

    try:
        return Results(sae_gate.all_results(api.plan, api.run), sae_gate.provenance)
    except EngineFailure as exc:
        failure = str(exc)
    pytest.fail(f"sae-checks: {failure}", pytrace=False)


@pytest.fixture(scope="session")
def _sae_loaded(sae_gate: Any) -> Any:
    from sae_checks import api

    return sae_gate.loaded(api.load)


@pytest.fixture(scope="session")
def sae_model(_sae_loaded: Any) -> Any:
    """The run's model (HookedTransformer, eval mode, on the run's device), loaded once per process."""
    return _sae_loaded.model


@pytest.fixture(scope="session")
def sae_saes(_sae_loaded: Any) -> Any:
    """The run's SAEs: name -> ``LoadedSAE`` (``.sae``, ``.layer``, ``.hook_name``, ...), forward order."""
    return _sae_loaded.saes


@pytest.fixture(scope="session")
def sae_tokens(_sae_loaded: Any) -> Any:
    """The run's evaluation tokens, (n_seqs, ctx_len), BOS first: the same sample the engine evaluates."""
    return _sae_loaded.tokens


@pytest.fixture
def sae_record(request: pytest.FixtureRequest) -> Callable[..., None]:
    """``sae_record(name, value, passed=None, sae=None, note="", severity="fail")``: a check of your own,
    written into the JSON report's ``custom_checks`` and the summaries. Its status (``status.custom_status``):
    ``passed=True`` pass; ``passed=False`` fail, and the test fails (severity "warn": warn, a GateWarning,
    the test passes); ``passed=None`` the test's own outcome. Names are ids: make them unique (e.g. include
    the SAE name)."""
    import math

    def record(name: str, value: float | None, *, passed: bool | None = None, sae: str | None = None,
               note: str = "", severity: Severity = "fail") -> None:
        from sae_checks.status import SEVERITIES

        if isinstance(passed, str):
            raise TypeError(f"sae_record({name!r}): passed={passed!r}: must be True, False or None (a warning: "
                            "passed=False, severity='warn')")
        if severity not in SEVERITIES:
            raise ValueError(f"sae_record({name!r}): severity={severity!r}: must be one of {', '.join(SEVERITIES)}")
        passed = None if passed is None else bool(passed)  # numpy / torch booleans too
        v = None if value is None else float(value)
        entry = {"id": str(name), "value": v if v is None or math.isfinite(v) else None, "passed": passed,
                 "sae": sae, "note": note, "severity": severity}
        request.node.user_properties.append((_RECORD, entry))
        if passed is False and severity == "warn":
            from sae_checks.gate import GateWarning

            warnings.warn(GateWarning(_custom_message(entry, "warn")), stacklevel=2)

    return record


def _custom_message(entry: dict[str, Any], status: str) -> str:
    """One line for a custom check that did not pass: ``sae-checks: custom check 'x' failed (value 0.3, SAE s): note``."""
    where = ", ".join([f"value {entry.get('value')}", *([f"SAE {entry['sae']}"] if entry.get("sae") else [])])
    note = f": {entry['note']}" if entry.get("note") else ""
    word = "failed" if status == "fail" else "warns"
    return f"sae-checks: custom check {entry['id']!r} {word} ({where}){note}"


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    """A test that recorded a failing custom check (``sae_record(..., passed=False)``, severity "fail")
    fails, with each such check's line, though it asserted nothing: the exit code, pytest's summary and
    the report agree (on an xdist worker too: the failed report is what travels)."""
    report = yield
    if report.when == "call" and report.passed and not hasattr(report, "wasxfail"):  # xfail decides itself
        entries: list[Any] = [e for k, e in item.user_properties if k == _RECORD]
        failing = [e for e in entries if e.get("passed") is False and e.get("severity") == "fail"]
        if failing:
            report.outcome = "failed"
            report.longrepr = "\n".join(_custom_message(e, "fail") for e in failing)
    return report


class _Records:
    """Collects ``sae_record`` entries on the controller (xdist sends user_properties with each report)."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config

    @pytest.hookimpl
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        entries = [v for k, v in getattr(report, "user_properties", ()) if k == _RECORD]
        if not entries or report.when != "call":
            return
        from sae_checks.status import custom_status

        gate = _gate(self.config)
        for entry in entries:
            status = custom_status(entry.get("passed"), entry.get("severity", "fail"), report.passed)
            gate.record_custom({**{k: v for k, v in entry.items() if k != "passed"},
                                "status": status, "test": report.nodeid.split("@")[0], "outcome": report.outcome})


def pytest_sessionfinish(session: pytest.Session) -> None:
    config = session.config
    if _SESSION not in config.stash:
        return
    gate = config.stash[_SESSION]
    if hasattr(config, "workerinput"):
        config.workeroutput["sae_checks"] = gate.worker_output()  # type: ignore[attr-defined]
        return
    from sae_checks.errors import SaeChecksError
    from sae_checks.report.finish import finish_gate

    try:
        finish_gate(gate)
    except (SaeChecksError, OSError) as exc:
        config.stash[_ERROR] = f"sae-checks: could not write the report/baseline: {exc}"
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
        return
    if gate.errors and session.exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
    if gate.empty and not gate.checks and session.exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.NO_TESTS_COLLECTED


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    gate = config.stash.get(_SESSION, None)
    if gate is not None and (gate.checks or gate.custom or gate.results):
        for line in gate.summary_lines():
            terminalreporter.write_line(line)
    if gate is not None and gate.empty and not gate.checks:
        terminalreporter.write_line(f"sae-checks: the policy ({gate.options.policy_source}) names no check for "
                                    "this run: nothing was checked (exit 5)", red=True)
    for line in gate.errors if gate is not None else ():
        terminalreporter.write_line(line, red=True)
    if _ERROR in config.stash:
        terminalreporter.write_line(config.stash[_ERROR], red=True)


class _XdistHooks:
    """Registered only when pytest-xdist is installed (its hooks are unknown otherwise)."""

    @pytest.hookimpl
    def pytest_testnodedown(self, node: Any, error: Any) -> None:
        payload = getattr(node, "workeroutput", {}).get("sae_checks")
        if payload:
            _gate(node.config).merge_worker(payload)
