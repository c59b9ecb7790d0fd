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
- ``pytest_sessionfinish``: workers send results and checks as plain data through
  ``config.workeroutput``; the controller merges them in ``pytest_testnodedown`` and writes one report
  (and one baseline update with ``--sae-update-baseline``).

Heavy imports (the engine, torch) happen inside fixtures and hooks, never at plugin import.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import pytest

_SESSION = pytest.StashKey[Any]()  # the process's GateSession (created lazily: only gate runs pay for it)
_ERROR = pytest.StashKey[str]()  # an error raised while writing the report, shown in the summary

def pytest_addoption(parser: pytest.Parser) -> None:
    from sae_checks.options import GATE, RUN, add_pytest

    group = parser.getgroup("sae-checks", "sae-checks gate (the same options as `sae-checks gate`; also "
                            "settable in [tool.sae-checks])")
    add_pytest(group, RUN + GATE)
    group.addoption("--sae-update-baseline", dest="sae_update_baseline", nargs="?", const="new", default=None,
                    choices=("new", "all"), help="rewrite the baseline file at the end: 'new' (default) adds "
                    "new and failing checks, 'all' rewrites every check run")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "gpu: needs a CUDA device; skipped without one")
    config.addinivalue_line("markers", "sae_family(name): which family of gate checks a test runs")
    config.addinivalue_line("markers", "xdist_group(name): keep tests of one group on one xdist worker")
    if config.pluginmanager.hasplugin("xdist"):
        config.pluginmanager.register(_XdistHooks(), "sae-checks-xdist")


def _gate(config: pytest.Config) -> Any:
    """The process's GateSession, created on first use from the options and [tool.sae-checks]."""
    if _SESSION not in config.stash:
        from sae_checks.gate import GateSession
        from sae_checks.options import GATE, RUN, pytest_values

        cli = pytest_values(config.getoption, RUN + GATE)
        cli["update_baseline"] = config.getoption("sae_update_baseline")
        workerid = getattr(config, "workerinput", {}).get("workerid")
        config.stash[_SESSION] = GateSession.create(
            {k: v for k, v in cli.items() if v is not None}, rootdir=config.rootpath,
            invocation_dir=config.invocation_params.dir, worker=int(workerid[2:]) if workerid else None)
    return config.stash[_SESSION]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "sae_check" not in metafunc.fixturenames:
        return
    from sae_checks import api
    from sae_checks.errors import SaeChecksError

    marker = metafunc.definition.get_closest_marker("sae_family")
    family = marker.args[0] if marker else "bucket"
    try:
        gate = _gate(metafunc.config)
        specs = [s for s in gate.plan(api.plan) if s.family == family]
    except SaeChecksError as exc:
        pytest.fail(f"sae-checks: {exc}", pytrace=False)
    gpu = [pytest.mark.gpu] if (gate.config.device or "").startswith("cuda") else []
    params = [pytest.param(s, id=s.id, marks=[pytest.mark.xdist_group(s.group), *gpu]) for s in specs]
    skip = pytest.mark.skip(reason=f"the policy names no {family} checks for this run")
    metafunc.parametrize("sae_check", params or [pytest.param(None, id="none", marks=skip)])


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    params = [getattr(item, "callspec", None) and item.callspec.params.get("sae_check")  # type: ignore[attr-defined]
              for item in items]
    ids = [p.id for p in params if type(p).__name__ == "CheckSpec"]  # type: ignore[union-attr]  # empty families hold NOTSET
    if ids or _SESSION in config.stash:
        _gate(config).select(ids)
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


@pytest.fixture(scope="session")
def sae_gate(pytestconfig: pytest.Config) -> Any:
    """The GateSession of this process; skips when the run asks for CUDA and there is none."""
    gate = _gate(pytestconfig)
    if (gate.config.device or "").startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            pytest.skip(f"needs CUDA (device={gate.config.device!r}) and none is available")
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
    from sae_checks.gate import GateWarning

    def judge(spec: Any) -> Any:
        check = sae_gate.judge(spec, api.run)
        if sae_gate.fails(check):
            pytest.fail(check.message, pytrace=False)
        if check.status in ("warn", "improved") or check.failed:
            warnings.warn(GateWarning(check.message), stacklevel=2)
        return check

    return judge


def pytest_sessionfinish(session: pytest.Session) -> None:
    config = session.config
    if _SESSION not in config.stash:
        return
    gate = config.stash[_SESSION]
    if hasattr(config, "workerinput"):
        config.workeroutput["sae_checks"] = gate.worker_output()  # type: ignore[attr-defined]
        return
    from sae_checks.errors import SaeChecksError

    try:
        gate.finish()
    except (SaeChecksError, OSError) as exc:
        config.stash[_ERROR] = f"sae-checks: could not write the report/baseline: {exc}"
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    if _SESSION in config.stash and config.stash[_SESSION].checks:
        for line in config.stash[_SESSION].summary_lines():
            terminalreporter.write_line(line)
    if _ERROR in config.stash:
        terminalreporter.write_line(config.stash[_ERROR], red=True)


class _XdistHooks:
    """Registered only when pytest-xdist is installed (its hooks are unknown otherwise)."""

    @pytest.hookimpl
    def pytest_testnodedown(self, node: Any, error: Any) -> None:
        payload = getattr(node, "workeroutput", {}).get("sae_checks")
        if payload:
            _gate(node.config).merge_worker(payload)
