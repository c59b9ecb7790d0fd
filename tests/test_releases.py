"""The registry's gpt2-small, pythia-70m-deduped and Gemma Scope releases, each from its real file layout
(``tests/release_worlds.py`` writes them where sae_lens' loader for the release reads them), loaded by
release name through sae-checks offline, planned from their configs alone, and gated.

Every check runs in a fresh offline subprocess (huggingface_hub reads ``HF_HUB_CACHE`` at import time)
with one torch thread (``OMP_NUM_THREADS=1``: on a shared two-core machine more threads only wait on
each other). Four subprocesses in all:

- ``test_every_release_plans_and_loads``: all 18 gpt2-small releases (one SAE each; the feature-splitting
  sweep's 8 widths), the pythia "sm" releases and 4 SAEs of each SAEBench sweep: ``api.plan`` (config
  only) and ``loading.saes.load_saes`` by release name agree with what was written (hook, widths,
  architecture, the weights file and its sha256); two releases with one id and Gemma Scope's
  embedding SAEs are refused in one line naming the release;
- ``test_the_gate_judges_gpt2_small_releases`` / ``..._pythia_...``: the README's gate command with small
  options and a policy of absolute limits (what an exact SAE must measure) over one suite per model:
  every loader format of the model, a sweep of several widths at one hook;
- ``test_gemma_scope_loads_at_its_real_shape_and_measures``: Gemma Scope's ``params.npz`` (16384 x 2304,
  ~300 MB: the ``gemma_2`` loader takes both sizes from the names) loaded by name and measured by the
  engine on a gemma-2-style stand-in model (TransformerLens fixes gemma-2-2b's configuration in code, so
  no tiny model can load as ``google/gemma-2-2b``; the gate command runs on the full-size world below).

Marked ``realscale`` (``make realscale`` only): ``test_the_gate_judges_full_size_pythia_saes``, pythia-70m-deduped
at its real shape with res-sm (32768) and an SAEBench TopK SAE (4096) gated at context 1024; and
``test_the_gate_judges_a_full_size_gemma_scope_sae``, gemma-2-2b at its real shape (``tests/gemma_world.py``:
2.6B parameters in bfloat16 shards, vocabulary 256000) with one Gemma Scope 16k SAE gated by release name.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from tests.hf_cache import offline_env
from tests.release_worlds import (
    GEMMA_ID,
    PYTHIA_SM,
    SWEEPS,
    build_gpt2_releases,
    build_pythia_releases,
    gpt2_releases,
    layout_of,
)

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
SMALL = ["--sae-ctx-len", "128", "--sae-n-seqs", "2", "--sae-n-prompts", "8", "--sae-n-causal", "1",
         "--sae-causal-max-prompts", "2", "--sae-n-bootstrap", "100"]


def run_python(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=900)


def result_of(proc: subprocess.CompletedProcess[str]) -> Any:
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-5000:]
    return json.loads(proc.stdout.split("RESULT", 1)[1])


def sha256(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def worlds(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """gpt2 (12 blocks) and pythia (6 blocks) tiny models with their releases in one Hugging Face cache."""
    root = tmp_path_factory.mktemp("releases")
    gpt2 = build_gpt2_releases(root / "hf", root / "work")
    pythia = build_pythia_releases(root / "hf", root / "work")
    env = offline_env(root / "hf")
    env.update(PYTHONPATH=str(REPO), OMP_NUM_THREADS="1")
    return {"root": root, "env": env, "gpt2": gpt2, "pythia": pythia}


LOAD_SCRIPT = textwrap.dedent(
    r"""
    import json, sys
    from sae_checks.api import plan
    from sae_checks.config import RunConfig
    from sae_checks.loading.models import load_model
    from sae_checks.loading.saes import load_saes

    spec = json.loads(sys.argv[1])
    out = {}
    for model_name, releases in spec["models"].items():
        model = load_model(model_name)
        for release, ids in releases.items():
            regex = "|".join(i.replace(".", r"\.") for i in ids)
            planned = plan(RunConfig(model=model_name, saes=release, sae_ids=regex, ctx_len=64)).saes
            loaded = load_saes(release, model, ids=regex)
            out[release] = {
                "plan": {n: [s.layer, s.hook, s.d_in, s.d_sae, s.context_size] for n, s in planned.items()},
                "loaded": {n: {"layer": s.layer, "hook": s.hook_name, "arch": s.architecture, "d_in": s.d_in,
                               "d_sae": s.d_sae, "context_size": s.context_size, "path": s.path,
                               "sha256": s.sha256, "release": s.release, "sae_id": s.sae_id,
                               "model_name": s.model_name}
                           for n, s in loaded.items()},
            }
    errors = {}
    for what, model_name, release, ids in spec["refused"]:
        model = load_model(model_name)
        for step in ("plan", "load"):
            try:
                if step == "plan":
                    plan(RunConfig(model=model_name, saes=release, sae_ids=ids, ctx_len=64))
                else:
                    load_saes(release, model, ids=ids)
                errors[f"{what}/{step}"] = None
            except Exception as err:
                errors[f"{what}/{step}"] = f"{type(err).__name__}: {err}"
    print("RESULT" + json.dumps({"releases": out, "errors": errors}))
    """
)


def test_every_release_plans_and_loads(worlds):
    gpt2, pythia = worlds["gpt2"]["files"], worlds["pythia"]["files"]
    spec = {
        "models": {"gpt2-small": {r: list(ids) for r, ids in gpt2.items()},
                   "pythia-70m-deduped": {r: list(ids) for r, ids in pythia.items()}},
        "refused": [
            ["clash", "gpt2-small", "gpt2-small-resid-post-v5-32k,gpt2-small-resid-post-v5-128k",
             r"blocks\.1\.hook_resid_post"],
            ["embedding", "gpt2-small", "gemma-scope-2b-pt-res", "embedding/width_4k/average_l0_6"],
        ],
    }
    result = result_of(run_python(["-c", LOAD_SCRIPT, json.dumps(spec)], worlds["env"], worlds["root"]))
    releases = result["releases"]
    assert set(releases) == set(gpt2) | set(pythia)
    expected = {r.release: dict(zip(r.ids, r.d_sae, strict=True)) for r in gpt2_releases()}
    for release, files in {**gpt2, **pythia}.items():
        got = releases[release]
        assert set(got["plan"]) == set(got["loaded"]) == set(files), (release, got)
        for sae_id, path in files.items():
            s = got["loaded"][sae_id]
            # the planning path (config only) says what the loaded SAE is
            assert got["plan"][sae_id] == [s["layer"], s["hook"], s["d_in"], s["d_sae"], s["context_size"]], release
            assert (s["release"], s["sae_id"]) == (release, sae_id)
            assert s["path"] == path and s["sha256"] == sha256(path), (release, sae_id, s["path"])
            assert str(worlds["root"]) in s["path"]  # from the test's cache, not another
            if release in expected:
                assert s["d_sae"] == expected[release][sae_id] and s["d_in"] == 64, (release, s)
                assert s["model_name"] == "gpt2-small"
            else:
                assert s["d_in"] == worlds["pythia"]["model"]["d_model"], (release, s)
                assert s["model_name"] == "pythia-70m-deduped"
    v5 = [r for r in releases if "-v5-" in r]
    assert len(v5) == 8 and all(s["arch"] == "topk" for r in v5 for s in releases[r]["loaded"].values())
    kk = releases["gpt2-small-hook-z-kk"]["loaded"]["blocks.1.hook_z"]
    assert (kk["hook"], kk["path"].endswith(".pt"), kk["context_size"]) == ("blocks.1.attn.hook_z", True, 128)
    assert layout_of("gpt2-small-hook-z-kk") == "connor_rob_hook_z"
    archs = {SWEEPS[r]: {s["arch"] for s in releases[r]["loaded"].values()} for r in SWEEPS}
    assert archs == {"standard": {"standard"}, "panneal": {"standard"}, "gated": {"gated"}, "topk": {"topk"}}
    for r in SWEEPS:
        assert all(Path(s["path"]).name == "ae.pt" and s["hook"] == "blocks.3.hook_resid_post"
                   and s["context_size"] == 128 for s in releases[r]["loaded"].values()), r
    fs = releases["gpt2-small-res-jb-feature-splitting"]["loaded"]
    assert len(fs) == 8 and {s["hook"] for s in fs.values()} == {"blocks.8.hook_resid_pre"}
    assert sorted(s["d_sae"] for s in fs.values()) == sorted(expected["gpt2-small-res-jb-feature-splitting"].values())

    errors = result["errors"]
    for step in ("plan", "load"):
        clash = errors[f"clash/{step}"]
        assert clash is not None and "blocks.1.hook_resid_post" in clash, errors
        embed = errors[f"embedding/{step}"]
        assert embed is not None and "hook_embed" in embed and "OfflineError" not in embed, errors
    assert "gpt2-small-resid-post-v5-32k" in errors["clash/load"] and "gpt2-small-resid-post-v5-128k" in \
        errors["clash/load"], errors["clash/load"]
    assert "gemma-scope-2b-pt-res" in errors["embedding/load"], errors["embedding/load"]


def write_policy(path: Path, limits: dict[str, Any]) -> Path:
    """A policy TOML of absolute limits only (``{metric: (direction, limit, {layer: limit})}``)."""
    lines = ['description = "tests/test_releases.py: what an exact SAE must measure"']
    for metric, (direction, limit, layers) in limits.items():
        lines += [f"[metrics.{metric}]", f'direction = "{direction}"', f"limit = {limit}"]
        lines += [f"layers.{layer} = {{ limit = {value} }}" for layer, value in layers.items()]
    path.write_text("\n".join(lines) + "\n")
    return path


def gate(worlds: dict[str, Any], name: str, model: str, saes: list[str], ids: str,
         limits: dict[str, Any], small: list[str] = SMALL, runner: tuple[str, ...] = ("-m", "pytest"),
         ) -> dict[str, Any]:
    """The README's gate command (tests/gpt2_world.py README_GATE's options) over ``saes``, with SMALL, the
    policy ``limits`` and --sae-update-baseline (one run: limits judge, no baseline to compare with).
    ``runner``: the Python arguments that run pytest (a wrapper script that counts passes, say)."""
    from sae_checks.report.io import load_report

    cwd = worlds["root"] / name
    cwd.mkdir()
    policy = write_policy(cwd / "policy.toml", limits)
    cmd = [*runner, "-p", "no:cacheprovider", "-q", "--pyargs", "sae_checks.gate.gate_tests",
           "--sae-model", model, "--sae-saes", ",".join(saes), "--sae-ids", ids,
           "--sae-data", "Skylion007/openwebtext", "--sae-tasks", "lambada", "--sae-thresholds", str(policy),
           "--sae-baseline", "my-baseline.json", "--sae-report", "report.json", *small, "--sae-update-baseline"]
    proc = run_python(cmd, worlds["env"], cwd)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-5000:]
    return load_report(cwd / "report.json")


def judged(report: dict[str, Any]) -> dict[tuple[str, str, str | None], dict[str, Any]]:
    """The checks by (sae, metric, bucket), after asserting that each was judged by its absolute limit and
    is within it (status ``new``: no baseline entry yet, which the run's --sae-update-baseline writes)."""
    checks = report["checks"]
    assert checks and report["summary"]["fail"] == 0, [c for c in checks if c["status"] not in ("new", "pass")]
    for c in checks:
        assert c["limit"] is not None and c["status"] in ("new", "pass"), c
        assert c["value"] <= c["limit"] if c["direction"] == "lower" else c["value"] >= c["limit"], c
    return {(c["sae"], c["metric"], c["bucket"]): c for c in checks}


def test_the_gate_judges_gpt2_small_releases(worlds):
    # one suite: the feature-splitting sweep (8 widths at blocks.8), v5 TopK at resid_post (32k) and
    # resid_mid (128k), the mlp-tm folder with a ':' in its name, hook_z from a .pt, an ajt release
    saes = ["gpt2-small-res-jb-feature-splitting", "gpt2-small-resid-post-v5-32k", "gpt2-small-resid-mid-v5-128k",
            "gpt2-small-mlp-tm", "gpt2-small-hook-z-kk", "gpt2-small-res_sce-ajt"]
    ids = r"blocks\.8\.hook_resid_pre_[0-9]+|blocks\.1\.hook_(resid_post|resid_mid|mlp_out|z)|blocks\.2\.hook_resid_pre"
    # residual-stream SAEs are the world's atoms (L0 3); at layer 1 mlp-tm and hook-z-kk are identities
    # (L0 = d_in 64 on a dense activation); every SAE reconstructs almost exactly
    limits = {"l0": ("lower", 3.5, {1: 64.5}), "explained_variance": ("higher", 0.99, {}),
              "delta_ce": ("lower", 0.05, {})}
    report = gate(worlds, "gate-gpt2", "gpt2-small", saes, ids, limits)
    checks = judged(report)
    files = worlds["gpt2"]["files"]
    by_name = {s["name"]: s for s in report["provenance"]["saes"]}
    assert sorted({s["release"] for s in by_name.values()}) == sorted(saes)
    assert len(by_name) == 8 + 5
    for name, s in by_name.items():
        assert s["sha256"] == sha256(files[s["release"]][name]), name
    per_bucket = report["results"]["per_bucket"]
    for name, s in by_name.items():
        exact = s["release"] in ("gpt2-small-mlp-tm", "gpt2-small-hook-z-kk")
        for bucket, metrics in per_bucket[name].items():
            assert ((name, "l0", bucket) in checks) and ((name, "explained_variance", bucket) in checks)
            l0 = metrics["l0"]["mean"]
            assert (l0 > 40 if exact else l0 == pytest.approx(3.0, abs=0.01)), (name, bucket, l0)
            assert metrics["explained_variance"]["mean"] > 0.99, (name, bucket, metrics["explained_variance"])
    fs = worlds["gpt2"]["files"]["gpt2-small-res-jb-feature-splitting"]
    assert sorted(report["results"]["sweeps"]["blocks.8.hook_resid_pre"]) == sorted(fs)  # one suite, one hook


def test_the_gate_judges_pythia_releases(worlds):
    # the three "sm" folders at layer 1 and SAEBench's TopK sweep as one suite at blocks.3 (4 widths)
    topk = "sae_bench_pythia70m_sweep_topk_ctx128_0730"
    saes = [*PYTHIA_SM, topk]
    ids = r"blocks\.1\.hook_(resid_post|mlp_out|attn_out)|blocks\.3\.hook_resid_post__trainer_[0-3]"
    d = worlds["pythia"]["model"]["d_model"]
    limits = {"l0": ("lower", d + 0.5, {}), "explained_variance": ("higher", 0.99, {}),
              "delta_ce": ("lower", 0.05, {})}
    report = gate(worlds, "gate-pythia", "pythia-70m-deduped", saes, ids, limits)
    checks = judged(report)
    by_name = {s["name"]: s for s in report["provenance"]["saes"]}
    assert sorted({s["release"] for s in by_name.values()}) == sorted(saes) and len(by_name) == 3 + 4
    assert report["provenance"]["model"] == "pythia-70m-deduped", report["provenance"]["model"]  # TL cfg.model_name
    files = worlds["pythia"]["files"]
    assert sorted(report["results"]["sweeps"]["blocks.3.hook_resid_post"]) == sorted(files[topk])
    for name, s in by_name.items():
        assert s["sha256"] == sha256(files[s["release"]][name]), name
        for bucket, metrics in report["results"]["per_bucket"][name].items():
            assert (name, "l0", bucket) in checks
            assert metrics["explained_variance"]["mean"] > 0.99, (name, bucket, metrics["explained_variance"])
            assert metrics["l0"]["mean"] > d / 2, (name, bucket, metrics["l0"])  # dense: about d_in


GEMMA_SCRIPT = textwrap.dedent(
    r"""
    import json, sys
    from pathlib import Path
    import torch
    from sae_checks.api import plan
    from sae_checks.config import RunConfig
    from sae_checks.engine.run import evaluate
    from sae_checks.loading.saes import load_saes
    from tests.release_worlds import GEMMA_ID, GEMMA_RELEASE, build_gemma_scope, gemma2_standin
    from tests.tiny import tiny_tokenizer

    work = Path(sys.argv[1])
    built = build_gemma_scope(work / "hf")
    model = gemma2_standin(tiny_tokenizer(work / "tok"))
    config = RunConfig(model="gemma-2-2b", saes=GEMMA_RELEASE, sae_ids=GEMMA_ID, ctx_len=48, n_seqs=2,
                       propagation=False, zero_ablation=False, n_bootstrap=50)
    planned = plan(config).saes
    loaded = load_saes(GEMMA_RELEASE, model, ids=GEMMA_ID)
    twin = load_saes("gemma-scope-2b-pt-res", model, ids="layer_0/width_16k/average_l0_105")
    tokens = torch.randint(1, model.cfg.d_vocab, (2, 48), generator=torch.Generator().manual_seed(0))
    tokens[:, 0] = model.tokenizer.bos_token_id
    results = evaluate(model, loaded, tokens, config).results
    s = loaded[GEMMA_ID]
    print("RESULT" + json.dumps({
        "built": built, "plan": {n: [p.layer, p.hook, p.d_in, p.d_sae, p.context_size] for n, p in planned.items()},
        "loaded": [s.hook_name, s.architecture, s.d_in, s.d_sae, s.context_size, s.path, s.sha256, s.model_name],
        "twin": [(n, t.path, t.sha256) for n, t in twin.items()],
        "per_bucket": {b: {m: v["mean"] for m, v in ms.items() if isinstance(v, dict) and "mean" in v}
                       for b, ms in results["per_bucket"][GEMMA_ID].items()},
    }))
    """
)


def test_gemma_scope_loads_at_its_real_shape_and_measures(tmp_path):
    env = offline_env(tmp_path / "hf")
    env.update(PYTHONPATH=str(REPO), OMP_NUM_THREADS="1")
    result = result_of(run_python(["-c", GEMMA_SCRIPT, str(tmp_path)], env, tmp_path))
    path = result["built"]["path"]
    assert "models--google--gemma-scope-2b-pt-res" in path and path.endswith(
        "layer_0/width_16k/average_l0_105/params.npz"), path
    hook, arch, d_in, d_sae, ctx, loaded_path, digest, model_name = result["loaded"]
    assert (hook, arch, d_in, d_sae, ctx, model_name) == ("blocks.0.hook_resid_post", "jumprelu", 2304, 16384, 1024,
                                                          "gemma-2-2b")
    assert loaded_path == path and digest == sha256(path)
    assert result["plan"] == {GEMMA_ID: [0, hook, d_in, d_sae, ctx]}
    assert result["twin"] == [["layer_0/width_16k/average_l0_105", path, digest]]  # same files, other name
    for bucket, metrics in result["per_bucket"].items():  # the identity SAE: exact, dense
        assert metrics["explained_variance"] > 0.999 and metrics["l0"] > 1000, (bucket, metrics)


@pytest.mark.realscale
def test_the_gate_judges_full_size_pythia_saes(tmp_path):
    """pythia-70m-deduped at its real shape and two SAEs at their real widths (res-sm 32768, SAEBench TopK
    4096) at one hook, gated by the README's command at context 1024 (``make realscale``)."""
    import time

    from tests.release_worlds import build_pythia_full

    start = time.perf_counter()
    world = build_pythia_full(tmp_path / "hf", tmp_path / "work")
    built = time.perf_counter() - start
    assert world["model"]["params"] > 70e6 and world["model"]["d_model"] == 512, world["model"]
    env = offline_env(tmp_path / "hf")
    env.update(PYTHONPATH=str(REPO), OMP_NUM_THREADS="1")
    worlds = {"root": tmp_path, "env": env}
    d = world["model"]["d_model"]
    limits = {"l0": ("lower", d + 0.5, {}), "explained_variance": ("higher", 0.99, {}),
              "delta_ce": ("lower", 0.05, {})}
    start = time.perf_counter()
    report = gate(worlds, "gate", "pythia-70m-deduped", list(world["files"]),
                  r"blocks\.3\.hook_resid_post(__trainer_0)?", limits,
                  small=["--sae-ctx-len", "1024", "--sae-n-seqs", "2", "--sae-n-prompts", "32",
                         "--sae-n-causal", "1", "--sae-causal-max-prompts", "4"])
    print(f"\nrealscale: pythia world built in {built:.0f} s, gated in {time.perf_counter() - start:.0f} s")
    checks = judged(report)
    by_name = {s["name"]: s for s in report["provenance"]["saes"]}
    assert {(s["release"], s["d_sae"]) for s in by_name.values()} == {
        ("pythia-70m-deduped-res-sm", 32768), ("sae_bench_pythia70m_sweep_topk_ctx128_0730", 4096)}
    for name, s in by_name.items():
        assert s["sha256"] == sha256(world["files"][s["release"]][name]), name
        for bucket in ("1-128", "128-1024"):
            assert (name, "explained_variance", bucket) in checks, (name, sorted(checks))


@pytest.mark.realscale
def test_the_gate_judges_a_full_size_gemma_scope_sae(tmp_path):
    """gemma-2-2b at its real shape (``tests/gemma_world.py``: 26 layers, d_model 2304, vocabulary 256000,
    bfloat16 shards) and one Gemma Scope 16k JumpReLU SAE, gated by name by the README's command
    (``make realscale``; ~17 GB peak: run it alone). The world (5.5 GB) is deleted afterwards."""
    import shutil
    import time

    from tests.gemma_world import RELEASE, build_gemma_world

    try:
        start = time.perf_counter()
        world = build_gemma_world(tmp_path / "hf", tmp_path / "work")
        built = time.perf_counter() - start
        assert 2.5e9 < world["model"]["params"] < 2.7e9, world["model"]  # gemma-2-2b: 2.61B, embedding tied
        env = offline_env(tmp_path / "hf")
        env.update(PYTHONPATH=str(REPO), OMP_NUM_THREADS="1")
        l0 = world["l0"]  # the N of the SAE's folder average_l0_N: every token's code has l0 atoms
        limits = {"l0": ("lower", l0 + 0.5, {}), "explained_variance": ("higher", 0.99, {}),
                  "delta_ce": ("lower", 0.05, {})}
        start = time.perf_counter()
        report = gate({"root": tmp_path, "env": env}, "gate", "gemma-2-2b", [RELEASE], world["sae_id"], limits,
                      small=["--sae-ctx-len", "128", "--sae-n-seqs", "2", "--sae-n-prompts", "8",
                             "--sae-n-causal", "1", "--sae-causal-max-prompts", "2", "--sae-n-bootstrap", "100"])
        gated = time.perf_counter() - start
        print(f"\nrealscale: gemma-2-2b world built in {built:.0f} s {world['seconds']}, gated in {gated:.0f} s")
        checks = judged(report)
        prov = report["provenance"]
        shape = prov["model_shape"]
        assert (shape["n_layers"], shape["d_model"], shape["d_vocab"], shape["normalization"]) == (
            26, 2304, 256000, "RMS"), shape
        # TransformerLens keeps the tied unembedding as its own matrix (and zero biases)
        assert shape["n_params"] >= world["model"]["params"] + 256000 * 2304, (shape, world["model"])
        (sae,) = prov["saes"]
        assert (sae["release"], sae["name"], sae["hook"], sae["architecture"], sae["d_in"], sae["d_sae"]) == (
            RELEASE, world["sae_id"], f"blocks.{world['layer']}.hook_resid_post", "jumprelu", 2304, 16384), sae
        assert sae["path"] == world["sae_path"] and sae["sha256"] == world["sae_sha256"] == sha256(sae["path"])
        buckets = report["results"]["per_bucket"][world["sae_id"]]
        for bucket, metrics in buckets.items():
            for metric in ("l0", "explained_variance", "delta_ce"):
                assert (world["sae_id"], metric, bucket) in checks, (metric, bucket, sorted(checks))
            assert metrics["l0"]["mean"] == pytest.approx(l0, abs=0.5), (bucket, metrics["l0"])
            assert metrics["explained_variance"]["mean"] > 0.99, (bucket, metrics["explained_variance"])
            print(f"realscale: gemma {bucket}: " + ", ".join(f"{m} {metrics[m]['mean']:.6g}" for m in
                                                             ("l0", "explained_variance", "delta_ce", "kl")))
    finally:
        shutil.rmtree(tmp_path / "hf", ignore_errors=True)
