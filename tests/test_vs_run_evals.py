"""Correctness bar (docs/definitions.md#agreement-with-other-tools): on the same tokens, the engine's
mean mse, l0, explained variance, CE with and without the SAE and ce_loss_score match
``sae_lens.evals.run_evals`` to 1e-4 relative.

``run_evals`` draws its CE batches and its sparsity/variance batches from *different* rows of its
activation store (CE first, then sparsity); the store here holds the same N sequences twice, so both
halves see exactly the tokens the engine sees.
"""

from __future__ import annotations

import warnings

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


@pytest.mark.parametrize("arch", ["standard", "topk"])
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
