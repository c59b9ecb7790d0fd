"""Shared set-up for the pytester-driven plugin tests (no tests here).

``setup_gate(pytester)`` writes into the pytester folder: a ``conftest.py`` that replaces
``sae_checks.api`` by a stub (``plan`` / ``run`` over hand-made results for SAEs ``blocks.L.hook_resid_pre``
at layers 0..2, buckets 1-16 and 16-32; every ``run`` call appends ``{"pid", "layers", "saes"}`` to
``engine_calls.jsonl``), a policy TOML and optionally a baseline. The stub conftest is loaded by xdist workers too (they share the folder).
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Any

import pytest

LAYERS = (0, 1, 2)
BUCKETS = ("1-16", "16-32")

STUB_CONFTEST = textwrap.dedent('''
    """Stub sae_checks.api: plan/run over hand-made results (see tests/test_plugin_support.py)."""
    import json, os, sys, types
    from dataclasses import dataclass
    from pathlib import Path

    import sae_checks

    HERE = Path(__file__).parent
    FAKE = json.loads((HERE / "fake_results.json").read_text())

    @dataclass
    class PlannedSAE:
        name: str
        layer: int
        hook: str
        context_size: int

    @dataclass
    class Plan:
        saes: dict
        buckets: dict
        tasks: list

        @property
        def layers(self):
            return sorted({s.layer for s in self.saes.values()})

    @dataclass
    class Evaluation:
        provenance: dict
        results: dict

    def name(l):
        return f"blocks.{l}.hook_resid_pre"

    def plan(config):
        layers = [l for l in FAKE["layers"] if config.layers is None or l in config.layers]
        saes = {name(l): PlannedSAE(name(l), l, name(l), 16) for l in layers}
        return Plan(saes=saes, buckets={n: list(FAKE["buckets"]) for n in saes}, tasks=list(config.tasks))

    def run(config, *, layers=None, saes=None, progress=None):
        names = list(saes) if saes is not None else list(plan(config).saes)
        if progress is not None:  # as the engine: one update per "batch" (one per SAE here)
            progress.start(len(names), f"stub engine ({len(names)} SAEs)")
            for _ in names:
                progress.update(1)
            progress.close()
        if layers is not None:
            names = [n for n in names if int(n.split(".")[1]) in layers]
        layers = sorted(int(n.split(".")[1]) for n in names)
        with open(HERE / "engine_calls.jsonl", "a") as fh:
            fh.write(json.dumps({"pid": os.getpid(), "layers": layers, "saes": names,
                                 "device": config.device}) + "\\n")
        keep = set(names)
        r = FAKE["results"]
        results = {k: {n: v for n, v in r[k].items() if n in keep} for k in ("per_bucket", "context_generalization")}
        results["cloze"] = {t: {"baseline": d["baseline"], "per_sae": {n: v for n, v in d["per_sae"].items() if n in keep}}
                            for t, d in r["cloze"].items()}
        every = [name(l) for l in FAKE["layers"]]  # the suite: each run fills its own upstream rows
        results["propagation"] = {"saes": every, "layers": list(FAKE["layers"]), "hooks": every, "window": [1, 101],
                                  **{m: [[v if every[i] in keep else None for v in row]
                                         for i, row in enumerate(r["propagation"][m])] for m in ("mse", "l0")}}
        results["nonfinite"] = []
        prov = dict(FAKE["provenance"])
        prov["saes"] = [s for s in prov["saes"] if s["name"] in keep]
        return Evaluation(provenance=prov, results=results)

    _api = types.ModuleType("sae_checks.api")
    _api.plan, _api.run, _api.Plan, _api.Evaluation = plan, run, Plan, Evaluation
    _saved = (sys.modules.get("sae_checks.api"), getattr(sae_checks, "api", None))
    sys.modules["sae_checks.api"] = _api
    sae_checks.api = _api

    def pytest_unconfigure(config):
        if _saved[0] is None:
            sys.modules.pop("sae_checks.api", None)
        else:
            sys.modules["sae_checks.api"] = _saved[0]
        if _saved[1] is None:
            sae_checks.__dict__.pop("api", None)
        else:
            sae_checks.api = _saved[1]
''')

POLICY = textwrap.dedent('''
    buckets = [[1, 16], [16, 32]]
    baseline = "baseline.json"

    [defaults]
    rel_tol = 0.1

    [metrics.fvu]
    limit = 0.5

    [metrics.l0]
    abs_tol = 2.0

    [context_ratio.fvu]

    [propagation.mse]
    abs_tol = 0.05
''')


def empty_families(policy: str = POLICY) -> int:
    """How many registered check families ``policy`` names no check of: each is one skipped test of a gate
    run ("the policy names no <family> checks"), so expected outcomes follow the registry and the policy."""
    import tomllib

    from sae_checks.gate import families

    tables = tomllib.loads(policy)  # the sections it has (parsing would need the user's metrics registered)
    return sum(not tables.get(f.section) for f in families.families())


SKIPPED = empty_families()  # of POLICY: propagation, latents, card


def fake_results(fvu: float = 0.1, l0: float = 10.0) -> dict[str, Any]:
    """Hand-made results: fvu grows by 0.01 per layer and 0.05 beyond position 16."""
    per_bucket, ctx, cloze = {}, {}, {}
    for L in LAYERS:
        name = sae(L)
        per_bucket[name] = {}
        for k, b in enumerate(BUCKETS):
            v, n = fvu + 0.01 * L + 0.05 * k, l0 + L + 5 * k
            per_bucket[name][b] = {"fvu": {"mean": v, "ci": [v - 0.005, v + 0.005]},
                                   "l0": {"mean": n, "ci": [n - 0.5, n + 0.5]}}
        ctx[name] = {"fvu": {"inside": "1-16", "beyond": "16-32", "ratio": 1.5, "ci": [1.4, 1.6]}}
        cloze[name] = {"acc_first_token": {"mean": 0.3, "ci": [0.25, 0.35]}}
    prop = [[0.1 * (j - i) if i < j else None for j in LAYERS] for i in LAYERS]
    return {
        "layers": list(LAYERS), "buckets": list(BUCKETS),
        "results": {"per_bucket": per_bucket, "context_generalization": ctx,
                    "cloze": {"lambada": {"baseline": {"acc_first_token": 0.35}, "per_sae": cloze}},
                    "propagation": {"mse": prop, "l0": prop}},
        "provenance": {
            "sae_checks": "0.1.0", "torch": None, "transformer_lens": None, "sae_lens": None, "device": "cpu",
            "dtype": "float32", "git_commit": None, "created": "2025-01-01T00:00:00Z", "model": "stub",
            "saes": [{"name": sae(L), "layer": L, "hook": sae(L), "release": None, "id": None,
                      "sha256": None, "context_size": 16} for L in LAYERS],
            "data": {"dataset": "stub", "split": None, "revision": None, "n_sequences": 4, "ctx_len": 32,
                     "seed": 0},
        },
    }


def setup_gate(pytester: pytest.Pytester, *, policy: str = POLICY, baseline: dict[str, Any] | None = None,
               results: dict[str, Any] | None = None) -> Path:
    """Write the stub conftest, results, policy (``policy.toml``) and baseline; returns the folder."""
    root = pytester.path
    (root / "conftest.py").write_text(STUB_CONFTEST)
    (root / "fake_results.json").write_text(json.dumps(results or fake_results()))
    (root / "policy.toml").write_text(policy)
    (root / "pyproject.toml").write_text('[tool.sae-checks]\nthresholds = "policy.toml"\n')
    if baseline is not None:
        (root / "baseline.json").write_text(json.dumps(
            {"format": "sae-checks-baseline", "version": 1, "entries": baseline}))
    return root


def engine_calls(root: Path) -> list[dict[str, Any]]:
    path = root / "engine_calls.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def sae(layer: int) -> str:
    """The stub's SAE name at ``layer``."""
    return f"blocks.{layer}.hook_resid_pre"


def bucket_id(metric: str, layer: int, bucket: str) -> str:
    a, b = bucket.split("-")
    return f"{metric}-L{layer}-pos{a}_{b}-{sae(layer)}"


def full_baseline(fvu: float = 0.1, l0: float = 10.0, *, legacy: bool = False) -> dict[str, Any]:
    """Baseline entries equal to ``fake_results(fvu, l0)`` for every check of POLICY; ``legacy``: under the
    schema-1 ids (``fvu/layer=0/bucket=1-16``) that published baselines still carry."""
    data = fake_results(fvu, l0)["results"]
    out: dict[str, Any] = {}
    for L in LAYERS:
        for b in BUCKETS:
            for m in ("fvu", "l0"):
                e = data["per_bucket"][sae(L)][b][m]
                key = f"{m}/layer={L}/bucket={b}" if legacy else bucket_id(m, L, b)
                out[key] = {"value": e["mean"], "ci": e["ci"]}
        key = f"context_ratio/fvu/layer={L}" if legacy else f"context_ratio-fvu-L{L}-{sae(L)}"
        out[key] = {"value": 1.5, "ci": [1.4, 1.6]}
    for i in LAYERS:
        for j in LAYERS:
            if i < j:
                key = (f"propagation/mse/up={i}/down={j}" if legacy
                       else f"propagation-mse-L{i}-{sae(i)}-to-L{j}-{sae(j)}")
                out[key] = {"value": data["propagation"]["mse"][i][j], "ci": None}
    return out


GATE = ("--pyargs", "sae_checks.gate.gate_tests", "-p", "no:cacheprovider")


def use_this_checkout(monkeypatch: pytest.MonkeyPatch) -> None:
    """For ``runpytest_subprocess``: import this checkout's sae_checks (not another installed copy)."""
    import os

    import sae_checks

    root = str(Path(sae_checks.__file__).resolve().parents[1])
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([root, *filter(None, [os.environ.get("PYTHONPATH")])]))


def test_option_flags_never_repeat_the_prefix():
    """Options whose name starts with "sae-" keep one prefix under pytest (``--sae-ids``, ``--sae-id``), as the
    README and the CLI spell them; the flags that ``sae-checks gate`` hands pytest round-trip."""
    import argparse

    from sae_checks.options import RUN, add_pytest, as_pytest_args, flag, pytest_values

    assert flag("sae-ids") == "--sae-ids" and flag("sae-id") == "--sae-id" and flag("ctx-len") == "--sae-ctx-len"
    parser = argparse.ArgumentParser()
    add_pytest(argparse.Namespace(addoption=parser.add_argument), RUN)
    flags = {s for a in parser._actions for s in a.option_strings}
    assert {"--sae-ids", "--sae-id", "--sae-saes", "--sae-ctx"} <= flags
    assert not [f for f in flags if f.startswith("--sae-sae-")]
    values = {"sae_ids": "blocks.*.hook_z", "sae_id": "blocks.{layer}.x", "layers": (1, 3), "ctx_len": 64}
    ns = parser.parse_args(as_pytest_args(values, RUN))
    assert pytest_values(lambda dest: getattr(ns, dest), RUN) == values
