"""Correctness bar (docs/definitions.md#agreement-with-other-tools): on the same tokens, the engine's
mean mse, l0, explained variance, CE with and without the SAE and ce_loss_score match
``sae_lens.evals.run_evals`` to 1e-4 relative, for every architecture sae_lens loads: random standard, TopK,
JumpReLU and gated SAEs on a tiny model, and the trained SAEs of ``zoo:arch`` on the zoo model (one of them at
``hook_mlp_out``, one trained with ``expected_average_only_in``).

``run_evals`` draws its CE batches and its sparsity/variance batches from *different* rows of its
activation store (CE first, then sparsity); the store here holds the same N sequences twice, so both
halves see exactly the tokens the engine sees.
"""

from __future__ import annotations

import warnings
from typing import Any

import pytest
import torch

from sae_checks.config import RunConfig
from sae_checks.engine.run import evaluate
from tests.engine_world import loaded, random_tokens
from tests.tiny import tiny_model, tiny_sae, tiny_tokenizer


def _run_evals(model, sae, tokens, batch):
    import datasets
    from sae_lens import ActivationsStore
    from sae_lens.evals import EvalConfig, run_evals
    from sae_lens.training.activation_scaler import ActivationScaler

    rows = torch.cat([tokens, tokens]).tolist()  # CE batches, then sparsity batches: same rows
    ds = datasets.Dataset.from_dict({"tokens": rows})
    n_batches = tokens.shape[0] // batch
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        store = ActivationsStore.from_sae(model, sae, dataset=ds, context_size=tokens.shape[1], streaming=False,
                                          store_batch_size_prompts=batch, device="cpu")
        cfg = EvalConfig(batch_size_prompts=batch, n_eval_reconstruction_batches=n_batches,
                         n_eval_sparsity_variance_batches=n_batches, compute_ce_loss=True,
                         compute_sparsity_metrics=True, compute_variance_metrics=True)
        metrics, _ = run_evals(sae, store, model, ActivationScaler(), eval_config=cfg)
    return metrics


@pytest.mark.parametrize("arch", ["standard", "topk", "jumprelu", "gated"])
def test_engine_matches_run_evals(tmp_path, arch):
    tok = tiny_tokenizer(tmp_path / "tok")
    model = tiny_model(tok, n_layers=2, d_model=16, n_ctx=24, seed=7)
    layer = 1
    sae = tiny_sae(model, layer, arch=arch, d_sae=64, seed=3, context_size=24)
    with torch.no_grad():  # a reconstruction that is good but not perfect, so every metric is non-trivial
        sae.W_dec.copy_(torch.linalg.pinv(sae.W_enc) if arch == "standard" else sae.W_dec * 0.5)
    tokens = random_tokens(model, 8, seed=1)
    ref = _run_evals(model, sae, tokens, batch=4)
    ev = evaluate(model, {layer: loaded(sae, layer, context_size=24)}, tokens,
                  RunConfig(n_bootstrap=0, progress=False, propagation=False, buckets=((1, 24),)))
    ours = {m: v["mean"] for m, v in ev.results["per_bucket"][str(layer)]["1-24"].items()}
    _compare(ours, ref)


def _compare(ours: dict[str, float], ref: dict[str, Any]) -> None:
    pairs = {
        "mse": ref["reconstruction_quality"]["mse"],
        "explained_variance": ref["reconstruction_quality"]["explained_variance"],
        "l0": ref["sparsity"]["l0"],
        "ce_clean": ref["model_performance_preservation"]["ce_loss_without_sae"],
        "ce_spliced": ref["model_performance_preservation"]["ce_loss_with_sae"],
        "ce_zero": ref["model_performance_preservation"]["ce_loss_with_ablation"],
        "ce_loss_score": ref["model_performance_preservation"]["ce_loss_score"],
    }
    for metric, expected in pairs.items():
        assert ours[metric] == pytest.approx(expected, rel=1e-4), (metric, ours[metric], expected)


@pytest.fixture(scope="module")
def zoo_world() -> tuple[Any, dict[str, Any], torch.Tensor]:
    from sae_checks.loading.saes import load_saes
    from sae_checks.zoo import load_zoo_model, zoo_eval_tokens

    model = load_zoo_model("cpu")
    return model, load_saes("zoo:arch", model), zoo_eval_tokens()[:4, :64]


@pytest.mark.parametrize("name", ["blocks.1.hook_resid_pre.topk", "blocks.2.hook_resid_pre.jumprelu",
                                  "blocks.2.hook_mlp_out.gated", "blocks.3.hook_resid_pre.norm"])
def test_engine_matches_run_evals_on_trained_zoo_saes(zoo_world: tuple[Any, dict[str, Any], torch.Tensor],
                                                      name: str) -> None:
    """The same bar on the SAEs sae_lens' own trainer wrote (zoo:arch): TopK, JumpReLU, gated at hook_mlp_out,
    and the standard SAE trained with expected_average_only_in (folded on save)."""
    model, saes, tokens = zoo_world
    ref = _run_evals(model, saes[name].sae, tokens, batch=2)
    T = tokens.shape[1]
    ev = evaluate(model, {name: saes[name]}, tokens,
                  RunConfig(n_bootstrap=0, progress=False, propagation=False, buckets=((1, T),)))
    ours = {m: v["mean"] for m, v in ev.results["per_bucket"][name][f"1-{T}"].items()}
    _compare(ours, ref)
