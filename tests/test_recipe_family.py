"""Recipe "a check family in one file" (docs/extending.md): a module outside the package declares a
family reading its own results key; a conftest.py imports it; a real gate session (pytester, stubbed
engine) plans, names, judges and reports its checks; the diff, the summary and the policy parser see it."""

from __future__ import annotations

import json
import textwrap

import pytest

from sae_checks.gate import families
from sae_checks.metrics import registry
from tests.test_plugin_support import GATE, LAYERS, POLICY, full_baseline, sae, setup_gate

torch = pytest.importorskip("torch")  # imported outside pytester: its C extension cannot load twice

# The one file a user writes (here beside the conftest): the family and the metric it gates.
PROBE_FAMILY = textwrap.dedent('''
    """A probe accuracy per SAE: results["probe"][sae][metric] = {"mean", "ci"}."""
    from sae_checks.gate.families import CheckFamily, Point, register
    from sae_checks.metrics import registry
    from sae_checks.results import Estimate

    ACC = registry.register(registry.Metric(name="acc", family="probe", direction="higher",
                                            label="probe accuracy", unit="fraction"))


    def read(results, spec):
        return Estimate.of(results.raw["probe"][spec.sae][spec.key])


    def points(results, directions):
        for name, metrics in results.raw.get("probe", {}).items():
            for metric, est in metrics.items():
                yield Point(f"probe/sae={name}/{metric}", "probe", name, est.get("mean"), est.get("ci"),
                            registry.direction(metric, "probe"))


    def summary(results):
        return [f"probe {name}: acc {Estimate.of(m['acc']).mean:.3g}"
                for name, m in results.raw.get("probe", {}).items()]


    PROBE = register(CheckFamily(name="probe", section="probe", test="test_probe",
                                 doc="Linear-probe accuracy with the SAE spliced in.",
                                 read=read, points=points, summary=summary))
''')

# the stub engine (tests/test_plugin_support.py) learns to report the probe: layer L scores ACC[L]
ACC = {0: 0.9, 1: 0.8, 2: 0.3}
CONFTEST_TAIL = textwrap.dedent(f'''
    sys.path.insert(0, str(HERE))
    import probe_family
    from sae_checks.gate import families as _families

    _run = run
    def run(config, **kw):
        ev = _run(config, **kw)
        ev.results["probe"] = {{n: {{"acc": {{"mean": {ACC}[int(n.split(".")[1])], "ci": None}}}}
                               for n in ev.results["per_bucket"]}}
        return ev
    _api.run = run

    _unconfigure = pytest_unconfigure
    def pytest_unconfigure(config):
        _unconfigure(config)
        from sae_checks.metrics import registry
        _families.unregister("probe")
        registry.unregister("probe", "acc")
        sys.modules.pop("probe_family", None)
''')
PROBE_POLICY = POLICY + "\n[probe.acc]\nlimit = 0.5\nabs_tol = 0.05\n"


def probe_id(layer: int) -> str:
    return f"probe-acc-L{layer}-{sae(layer)}"


@pytest.fixture
def gate_dir(pytester: pytest.Pytester):
    baseline = full_baseline()
    baseline.update({probe_id(L): {"value": ACC[L], "ci": None} for L in LAYERS})
    root = setup_gate(pytester, policy=PROBE_POLICY, baseline=baseline)
    (root / "probe_family.py").write_text(PROBE_FAMILY)
    (root / "conftest.py").write_text((root / "conftest.py").read_text() + CONFTEST_TAIL)
    yield root
    assert "probe" not in {f.name for f in families.families()}  # the session cleaned up after itself
    assert registry.get("probe", "acc") is None  # type: ignore[arg-type]


def test_family_in_one_file_is_planned_judged_reported_and_diffed(gate_dir, pytester: pytest.Pytester) -> None:
    from sae_checks.report.diff import diff_reports
    from sae_checks.summary import summary_lines

    result = pytester.runpytest(*GATE, "--collect-only", "-q")
    out = result.stdout.str()
    for L in LAYERS:
        assert f"test_probe[{probe_id(L)}]" in out, out
    result = pytester.runpytest(*GATE, "-k", "probe", "--sae-report", "old.json", "-rf")
    # layer 2 scores 0.3, under the limit 0.5 (higher is better): the one failure
    result.assert_outcomes(passed=len(LAYERS) - 1, failed=1)
    result.stdout.fnmatch_lines([f"probe.acc at SAE {sae(2)} (layer 2) = 0.3: below the limit 0.5*",
                                 f"FAILED *test_probe[[]{probe_id(2)}]*"])
    old = json.loads((gate_dir / "old.json").read_text())
    checks = {c["id"]: c for c in old["checks"]}
    assert {probe_id(L) for L in LAYERS} == set(checks)
    assert [checks[probe_id(L)]["status"] for L in LAYERS] == ["pass", "pass", "fail"]
    assert checks[probe_id(0)]["value"] == ACC[0] and checks[probe_id(0)]["direction"] == "higher"

    # the family's own results, its diff entries and its summary line (the report outlives the session:
    # register the family again in this process, as a conftest would for `sae-checks diff`)
    pytester.syspathinsert(gate_dir)
    import importlib

    module = importlib.import_module("probe_family")
    try:
        new = json.loads(json.dumps(old))
        new["results"]["probe"][sae(0)]["acc"]["mean"] = 0.5  # worse: higher is better
        next(c for c in new["checks"] if c["id"] == probe_id(0))["value"] = 0.5
        diff = diff_reports(old, new)
        assert diff.get(f"probe/sae={sae(0)}/acc").category == "regressed"
        assert diff.get(f"checks/{probe_id(0)}").category == "regressed"
        assert diff.get(f"probe/sae={sae(1)}/acc").category == "unchanged"
        assert f"probe {sae(2)}: acc 0.3" in summary_lines(new)
    finally:
        families.unregister(module.PROBE.name)
        registry.unregister("probe", "acc")


def test_policy_sections_follow_the_registered_families() -> None:
    """A section no family declares is an unknown key naming the known ones; a registered family's is not."""
    from sae_checks.errors import ThresholdError
    from sae_checks.gate.thresholds import parse_policy
    from sae_checks.results import Estimate

    with pytest.raises(ThresholdError, match="unknown key; known top-level keys: .*propagation, latents, card$"):
        parse_policy("[probe.acc]\nlimit = 0.5\n")
    probe = families.register(families.CheckFamily(
        name="probe", section="probe", test="test_probe", doc="", read=lambda r, s: Estimate(None, None)))
    try:
        with pytest.raises(ThresholdError, match="unknown metric; known here: $"):  # the registry has none yet
            parse_policy("[probe.acc]\nlimit = 0.5\n")
        with pytest.raises(ValueError, match=r"section \[probe\] is family 'probe'"):
            families.register(families.CheckFamily(name="other", section="probe", test="test_other", doc="",
                                                   read=probe.read))
        with pytest.raises(ValueError, match=r"test function 'test_metric' is family 'bucket'"):
            families.register(families.CheckFamily(name="other", section="other", test="test_metric", doc="",
                                                   read=probe.read))
    finally:
        families.unregister("probe")
