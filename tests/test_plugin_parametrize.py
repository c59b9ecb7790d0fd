"""Plugin: parametrization and readable ids, -k selection, options from pyproject and the command line,
failure messages, clean errors for a bad policy. Real pytest sessions (pytester) over a stubbed api."""

from __future__ import annotations

import json

import pytest

from sae_checks.gate.checks import plan_checks
from sae_checks.gate.families import CheckSpec, families
from sae_checks.gate.thresholds import parse_policy
from sae_checks.names import propagation_pairs
from tests.test_plugin_support import (
    BUCKETS,
    GATE,
    LAYERS,
    POLICY,
    engine_calls,
    full_baseline,
    sae,
    setup_gate,
)

# imported here, not first inside a pytester run: pytester drops modules imported during a test, and
# torch's C extension cannot be imported twice in one process
torch = pytest.importorskip("torch")


class _Planned:
    """The checks the stub gate (tests/test_plugin_support.py) plans for POLICY, for expected counts."""

    def __init__(self, policy: str = POLICY, layers: tuple[int, ...] = LAYERS) -> None:
        saes = {sae(L): CheckSpec(id="", family="", metric="", sae=sae(L), layer=L, hook=sae(L)) for L in layers}
        self.specs = plan_checks(parse_policy(policy), saes=saes, buckets={n: list(BUCKETS) for n in saes},
                                 tasks=[], pairs=propagation_pairs({n: n for n in saes}))
        # a family without checks collects one skipped placeholder ("none")
        self.empty = [f for f in families() if not any(s.family == f.name for s in self.specs)]
        self.collected = len(self.specs) + len(self.empty)

    def selected(self, expr: str) -> int:
        """How many checks ``-k expr`` selects (matched, as pytest does, against the test's name)."""
        from _pytest.mark.expression import Expression

        test = {f.name: f.test for f in families()}
        names = [f"{test[s.family]}[{s.id}]".lower() for s in self.specs]
        return sum(Expression.compile(expr).evaluate(lambda k, n=n: k.lower() in n) for n in names)


def test_ids_are_check_ids(pytester: pytest.Pytester) -> None:
    setup_gate(pytester, baseline=full_baseline())
    result = pytester.runpytest(*GATE, "--collect-only", "-q")
    out = result.stdout.str()
    for nodeid in ("test_metric[fvu-L0-pos1_16-blocks.0.hook_resid_pre]", "test_metric[l0-L2-pos16_32-blocks.2.hook_resid_pre]",
                   "test_context_ratio[context_ratio-fvu-L1-blocks.1.hook_resid_pre]",
                   "test_propagation[propagation-mse-L0-blocks.0.hook_resid_pre-to-L2-blocks.2.hook_resid_pre]", "test_cloze[none]"):
        assert nodeid in out
    assert f"{_Planned().collected} tests collected" in out
    assert engine_calls(pytester.path) == []  # planning never runs the engine


def test_k_selection_runs_engine_once_for_selected_layers(pytester: pytest.Pytester) -> None:
    setup_gate(pytester, baseline=full_baseline())
    plan = _Planned()
    result = pytester.runpytest(*GATE, "-k", "fvu and pos1_16 and not context", "-v")
    n = plan.selected("fvu and pos1_16 and not context")
    assert n == len(LAYERS)
    result.assert_outcomes(passed=n, deselected=plan.collected - n)
    calls = engine_calls(pytester.path)
    assert [c["layers"] for c in calls] == [[0, 1, 2]]
    result = pytester.runpytest(*GATE, "-k", "fvu and L1", "-v")  # what a person types: fvu checks of layer 1
    n = plan.selected("fvu and L1")
    result.assert_outcomes(passed=n, deselected=plan.collected - n)
    result.stdout.fnmatch_lines(["*test_metric[[]fvu-L1-pos1_16-blocks.1.hook_resid_pre] PASSED*",
                                 "*test_metric[[]fvu-L1-pos16_32-blocks.1.hook_resid_pre] PASSED*",
                                 "*test_context_ratio[[]context_ratio-fvu-L1-blocks.1.hook_resid_pre] PASSED*"])
    assert engine_calls(pytester.path)[-1]["saes"] == ["blocks.1.hook_resid_pre"]  # only the selected SAE ran
    result = pytester.runpytest(*GATE, "-k", "context_ratio")
    n = plan.selected("context_ratio")
    result.assert_outcomes(passed=n, deselected=plan.collected - n)


def test_layers_option_and_pyproject_precedence(pytester: pytest.Pytester) -> None:
    root = setup_gate(pytester, baseline=full_baseline())
    (root / "pyproject.toml").write_text('[tool.sae-checks]\nthresholds = "policy.toml"\nn-seqs = 7\nseed = 3\n'
                                         'report = "out/r.json"\n')
    (root / "out").mkdir()  # an output folder that does not exist is an error before any work
    result = pytester.runpytest(*GATE, "--sae-layers", "1", "--sae-seed", "5")
    one = _Planned(layers=(1,))  # 2 fvu + 2 l0 + 1 context ratio; no cloze, no propagation
    result.assert_outcomes(passed=len(one.specs), skipped=len(one.empty))
    assert "unused baseline" not in result.stdout.str()  # a layer subset is not a full run
    config = json.loads((root / "out" / "r.json").read_text())["config"]
    assert config["n_seqs"] == 7 and config["seed"] == 5 and config["layers"] == [1]  # CLI wins
    assert config["buckets"] == [[1, 16], [16, 32]]  # from the policy


def test_failing_check_message(pytester: pytest.Pytester) -> None:
    baseline = full_baseline()
    baseline["fvu-L1-pos1_16-blocks.1.hook_resid_pre"]["value"] = 0.05  # the run measures 0.11: worse than the band
    setup_gate(pytester, baseline=baseline)
    result = pytester.runpytest(*GATE, "-k", "fvu and pos1_16 and not context")
    plan = _Planned()
    n = plan.selected("fvu and pos1_16 and not context")
    result.assert_outcomes(passed=n - 1, failed=1, deselected=plan.collected - n)
    result.stdout.fnmatch_lines([
        "*fvu at SAE blocks.1.hook_resid_pre (layer 1), positions [[]1, 16) = 0.11 (CI 0.105..0.115): worse than baseline 0.05, band*"
        "rerun with --sae-update-baseline*",
        "FAILED *test_metric[[]fvu-L1-pos1_16-blocks.1.hook_resid_pre]*",
    ])


def test_bad_policy_is_a_usage_error_in_one_line(pytester: pytest.Pytester) -> None:
    setup_gate(pytester, policy="[metrics.fvu]\nlimt = 0.3\n")
    result = pytester.runpytest(*GATE)
    assert result.ret == pytest.ExitCode.USAGE_ERROR  # 4, as the CLI: an input error, not "interrupted"
    assert "Traceback" not in result.stdout.str()
    result.stdout.fnmatch_lines(["*sae-checks: *policy.toml:2: key 'metrics.fvu.limt': unknown key*"])


def test_policy_layer_the_run_lacks(pytester: pytest.Pytester) -> None:
    setup_gate(pytester, policy="[metrics.fvu]\nlayers.7 = { limit = 0.3 }\n")
    result = pytester.runpytest(*GATE, "--collect-only")
    result.stdout.fnmatch_lines(["*policy.toml:2: key 'metrics.fvu.layers.7': layer 7 is not in the run*"])


def test_cuda_without_cuda_is_a_usage_error(pytester: pytest.Pytester) -> None:
    """--sae-device cuda on a machine without CUDA: one line, exit 4 (not skipped tests and exit 0)."""
    if torch.cuda.is_available():
        pytest.skip("CUDA present: no usage error to see")
    setup_gate(pytester, baseline=full_baseline())
    result = pytester.runpytest(*GATE, "--sae-device", "cuda")
    assert result.ret == pytest.ExitCode.USAGE_ERROR == 4
    result.stdout.fnmatch_lines(["*sae-checks: --sae-device=cuda: CUDA is not available on this machine; "
                                 "use --sae-device cpu*"])
    assert "Traceback" not in result.stdout.str() and "error during collection" not in result.stdout.str()
    assert not (pytester.path / "sae-report.json").exists()
    # the same through a user's own test file that asks for the results
    pytester.makepyfile(test_mine="def test_x(sae_results):\n    pass\n")
    result = pytester.runpytest("test_mine.py", "--sae-device", "cuda", "-p", "no:cacheprovider")
    assert result.ret == 4
    result.stdout.fnmatch_lines(["*CUDA is not available*"])


def test_gpu_marker_skips_cleanly_without_cuda(pytester: pytest.Pytester) -> None:
    if torch.cuda.is_available():
        pytest.skip("CUDA present: nothing to skip")
    pytester.makepyfile(test_gpu="import pytest\n\n@pytest.mark.gpu\ndef test_on_gpu():\n    raise AssertionError\n\n"
                                 "def test_cpu():\n    pass\n")
    result = pytester.runpytest("-rs", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, skipped=1)
    result.stdout.fnmatch_lines(["*needs CUDA (marked gpu)*"])
    assert result.ret == 0


def test_zero_checks_exit_5(pytester: pytest.Pytester) -> None:
    """A gate whose policy names no check for the run exits 5, not 0 with skipped placeholders."""
    setup_gate(pytester, policy='[propagation.mse]\nabs_tol = 0.1\n')
    result = pytester.runpytest(*GATE, "--sae-layers", "1")  # one SAE: no propagation pair
    assert result.ret == pytest.ExitCode.NO_TESTS_COLLECTED == 5
    result.stdout.fnmatch_lines(["*names no check for this run*"])
    # -k deselecting everything on purpose: pytest's own behaviour, no sae-checks message
    setup_gate(pytester)
    result = pytester.runpytest(*GATE, "-k", "nothing_matches_this")
    assert result.ret == 5 and "names no check" not in result.stdout.str()
