"""The zoo's architecture set (``zoo:arch``, built by ``zoo_builder.arch``): what its files hold, and every
engine path on each of its SAEs (positions and buckets at two hook kinds, cloze, propagation, the causal
sweep) through ``sae_checks.api.run`` with ``zoo:v2,zoo:arch``."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest

torch = pytest.importorskip("torch")

from sae_checks import zoo  # noqa: E402

ARCH = {  # folder name -> (sae_lens class, hook)
    "blocks.1.hook_resid_pre.topk": ("TopKSAE", "blocks.1.hook_resid_pre"),
    "blocks.2.hook_resid_pre.jumprelu": ("JumpReLUSAE", "blocks.2.hook_resid_pre"),
    "blocks.2.hook_mlp_out.gated": ("GatedSAE", "blocks.2.hook_mlp_out"),
    "blocks.3.hook_resid_pre.norm": ("StandardSAE", "blocks.3.hook_resid_pre"),
}


@pytest.fixture(scope="module")
def model() -> Any:
    return zoo.load_zoo_model("cpu")


@pytest.fixture(scope="module")
def acts(model: Any) -> dict[str, Any]:
    """Activations at the arch SAEs' hooks on 4 held-out rows, BOS dropped: hook -> (N, d)."""
    hooks = {h for _, h in ARCH.values()}
    with torch.no_grad():
        _, cache = model.run_with_cache(zoo.zoo_eval_tokens()[:4], names_filter=lambda n: n in hooks)
    return {h: cache[h][:, 1:].reshape(-1, cache[h].shape[-1]) for h in hooks}


def _fvu(x: Any, x_hat: Any) -> float:
    return ((x - x_hat).pow(2).sum() / (x - x.mean(0)).pow(2).sum()).item()


def test_arch_set_is_registered_and_small() -> None:
    assert "arch" in zoo.ZOO_SAE_SETS
    folder = zoo.zoo_sae_dir("arch")
    assert sorted(p.name for p in folder.iterdir()) == sorted(ARCH)
    size = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
    assert size < 600_000, f"zoo:arch is {size} bytes"
    for name in ARCH:
        assert sorted(p.name for p in (folder / name).iterdir()) == ["cfg.json", "sae_weights.safetensors"]


@pytest.mark.parametrize("name", sorted(ARCH))
def test_arch_sae_loads_and_reconstructs(name: str, acts: dict[str, Any]) -> None:
    from sae_lens import SAE

    cls, hook = ARCH[name]
    sae = SAE.load_from_disk(zoo.zoo_sae_dir("arch") / name)
    assert type(sae).__name__ == cls
    meta = sae.cfg.metadata
    assert (meta.hook_name, meta.context_size, meta.model_name) == (hook, 256, "sae-checks-zoo")
    assert (sae.cfg.d_in, sae.cfg.d_sae, sae.cfg.normalize_activations) == (128, 128, "none")
    x = acts[hook]
    with torch.no_grad():
        f = sae.encode(x)
        fvu = _fvu(x, sae.decode(f))
    l0 = (f != 0).float().sum(-1)
    assert fvu < 0.4, (name, fvu)
    assert 2 < l0.mean().item() < 40, (name, l0.mean().item())
    assert (f != 0).any(0).float().mean().item() > 0.5, name  # most latents fire on 1000 tokens
    if cls == "TopKSAE":
        assert sae.cfg.k == 16 and l0.max().item() <= 16
    if cls == "JumpReLUSAE":
        assert (sae.threshold > 0).all()


def test_expected_average_only_in_is_folded_as_sae_lens_training_leaves_it(acts: dict[str, Any]) -> None:
    """sae_lens' trainer trains on x * s (s = sqrt(d_in) / E||x||) and folds s into W_enc, W_dec and b_dec at
    the end, writing normalize_activations "none": the saved SAE reads raw activations. Unfolding s again
    gives the SAE a trainer's mid-run checkpoint holds: on x * s it has the shipped SAE's feature
    activations, and its reconstructions are the shipped ones times s."""
    from sae_lens import SAE

    folder = zoo.zoo_sae_dir("arch") / "blocks.3.hook_resid_pre.norm"
    cfg = json.loads((folder / "cfg.json").read_text())
    assert cfg["normalize_activations"] == "none"
    training = cfg["metadata"]["sae_checks_zoo_training"]
    assert training["normalize_activations"] == "expected_average_only_in"
    s = training["norm_scaling_factor"]
    x = acts["blocks.3.hook_resid_pre"]
    assert s == pytest.approx(128**0.5 / x.norm(dim=-1).mean().item(), rel=0.05)  # the factor's definition
    assert abs(s - 1) > 0.3  # a factor far from 1, so that a missing fold shows
    shipped, unfolded = SAE.load_from_disk(folder), SAE.load_from_disk(folder)
    with torch.no_grad():
        unfolded.W_enc /= s
        unfolded.W_dec *= s
        unfolded.b_dec *= s
        f = shipped.encode(x)
        torch.testing.assert_close(unfolded.encode(x * s), f, rtol=1e-4, atol=1e-4)
        torch.testing.assert_close(unfolded.decode(f), shipped.decode(f) * s, rtol=1e-4, atol=1e-4)
        assert not torch.allclose(unfolded.encode(x), f, rtol=1e-2, atol=1e-2)


@pytest.fixture(scope="module")
def results() -> dict[str, Any]:
    from sae_checks.api import run
    from sae_checks.config import RunConfig

    config = RunConfig(saes="zoo:v2,zoo:arch", n_seqs=2, n_bootstrap=20, tasks=("lambada",), n_prompts=8,
                       n_causal=1, causal_max_prompts=4, progress=False, device="cpu", buckets=((1, 32), (32, 256)))
    return run(config).results  # type: ignore[no-any-return]


def _finite(v: Any) -> bool:
    return isinstance(v, int | float) and math.isfinite(v)


def test_run_loads_the_arch_set_next_to_v2(results: dict[str, Any]) -> None:
    arch = {n: s for n, s in results["saes"].items() if s["release"] == "zoo:arch"}
    assert {n: s["hook"] for n, s in arch.items()} == {n: h for n, (_, h) in ARCH.items()}
    assert {s["architecture"] for s in arch.values()} == {"topk", "jumprelu", "gated", "standard"}
    assert results["nonfinite"] == []
    assert results["sweeps"]["blocks.1.hook_resid_pre"] == ["blocks.1.hook_resid_pre", "blocks.1.hook_resid_pre.topk"]


@pytest.mark.parametrize("name", sorted(ARCH))
def test_every_engine_path_runs_on_each_arch_sae(results: dict[str, Any], name: str) -> None:
    for bucket in ("1-32", "32-256"):  # positions and buckets: reconstruction and splice metrics
        got = results["per_bucket"][name][bucket]
        for metric in ("mse", "explained_variance", "l0", "ce_spliced", "delta_ce", "kl"):
            assert _finite(got[metric]["mean"]), (name, bucket, metric, got[metric])
        assert 0.5 < got["explained_variance"]["mean"] < 1.0, (name, bucket, got["explained_variance"])
    assert all(_finite(v) for v in results["per_position"][name]["fvu"][1:]), name
    if name.endswith(".topk"):  # TopK: exactly k latents on every token (no ties at 0 in float32)
        assert results["per_bucket"][name]["32-256"]["l0"]["mean"] == pytest.approx(16.0)
    cloze = results["cloze"]["lambada"]["per_sae"][name]  # cloze
    assert all(_finite(cloze[m]["mean"]) for m in ("logp", "acc_first_token", "delta_logp", "l0")), cloze
    prop = results["propagation"]  # propagation: its row (downstream SAEs) and column (upstream SAEs)
    i = prop["saes"].index(name)
    row = [v for v in prop["mse"][i] if v is not None]
    col = [r[i] for r in prop["mse"] if r[i] is not None]
    assert all(_finite(v) for v in row + col) and (row or col), (name, row, col)
    features = results["features"][name]  # features and the causal sweep on its top feature
    assert features["n_features"] == 128 and features["n_active"] > 0
    assert _finite(features["top"][0]["causal_delta_logp"]), features["top"][0]


@pytest.mark.slow
def test_arch_only_build_writes_only_the_arch_set(tmp_path: Any) -> None:
    import shutil

    from sae_lens import SAE

    from zoo_builder import build

    for part in ("model", "tokenizer"):
        shutil.copytree(zoo.ZOO_DIR / part, tmp_path / part)
    before = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    assert build.main(["--arch-only", "--quick", "--out", str(tmp_path)]) == 0
    after = {p for p in tmp_path.rglob("*") if p.is_file()}
    assert {p: p.read_bytes() for p in before} == before  # model and tokenizer untouched
    written = sorted(p.relative_to(tmp_path).as_posix() for p in after - set(before))
    assert written == sorted(f"saes/arch/{n}/{f}" for n in ARCH for f in ("cfg.json", "sae_weights.safetensors"))
    for name, (cls, hook) in ARCH.items():
        sae = SAE.load_from_disk(tmp_path / "saes" / "arch" / name)
        assert type(sae).__name__ == cls and sae.cfg.metadata.hook_name == hook
        assert sae.cfg.normalize_activations == "none"
