"""The fused attention fast path computes TransformerLens' attention function, is used only where it
can, falls back where a caller needs TransformerLens' own path, and never outlives its block."""

from __future__ import annotations

import warnings

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from sae_checks.config import RunConfig
from sae_checks.engine.attention import fast_attention
from sae_checks.engine.run import evaluate
from tests.engine_world import loaded, random_tokens
from tests.tiny import tiny_model, tiny_sae

VARIANTS = {
    "gpt2-like": {},
    "rotary": {"positional_embedding_type": "rotary", "rotary_dim": 8},
    "grouped-query": {"positional_embedding_type": "rotary", "rotary_dim": 8, "n_key_value_heads": 1,
                      "normalization_type": "RMS", "act_fn": "silu", "gated_mlp": True},
    "grouped-query-2kv": {"n_heads": 4, "d_head": 4, "n_key_value_heads": 2},  # the head-grouping order
    "shortformer": {"positional_embedding_type": "shortformer"},
    "layer-scaled": {"scale_attn_by_inverse_layer_idx": True},
}


def _model(seed: int = 0, **overrides):
    from transformer_lens import HookedTransformer, HookedTransformerConfig

    torch.manual_seed(seed)
    fields = dict(n_layers=2, d_model=16, d_head=8, n_heads=2, d_mlp=32, d_vocab=50, n_ctx=24,
                  act_fn="gelu", normalization_type="LN", device="cpu", seed=seed)
    fields.update(overrides)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = HookedTransformer(HookedTransformerConfig(**fields))
    model.eval()
    return model


def _tokens(seed: int, batch: int = 3, T: int = 24) -> torch.Tensor:
    return torch.randint(0, 50, (batch, T), generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("variant", sorted(VARIANTS))
@given(seed=st.integers(0, 10_000))
@settings(max_examples=4, deadline=None)
def test_fused_attention_equals_transformer_lens(variant: str, seed: int):
    model = _model(seed, **VARIANTS[variant])
    toks = _tokens(seed)
    with torch.inference_mode():
        ref = model(toks)
        with fast_attention(model) as stats:
            fused = model(toks)
    assert stats.patched == model.cfg.n_layers and stats.fallback_calls == 0
    assert torch.allclose(fused, ref, atol=1e-5, rtol=1e-5)
    assert all("forward" not in vars(b.attn) for b in model.blocks)


def test_fast_path_is_taken_and_falls_back_for_pattern_hooks_and_masks():
    model = _model(1)
    toks = _tokens(1)
    calls = {"scores": 0}

    def count(act, hook):
        calls["scores"] += 1

    with torch.inference_mode(), fast_attention(model) as fused:
        model(toks)
        assert calls["scores"] == 0 and (fused.fused_calls, fused.fallback_calls) == (2, 0)
        with model.hooks(fwd_hooks=[("blocks.0.attn.hook_attn_scores", count)]):
            hooked = model(toks)  # block 0 falls back to TransformerLens (its hook fires), block 1 stays fused
        assert (fused.fused_calls, fused.fallback_calls) == (3, 1)
        masked = model(toks, attention_mask=torch.ones_like(toks))  # a padding mask: TransformerLens' path
        assert (fused.fused_calls, fused.fallback_calls) == (3, 3)
    assert calls["scores"] == 1
    assert "fell back" in fused.describe(2) and fused.describe(2).startswith("fused scaled_dot_product_attention in 2 of 2")
    with torch.inference_mode():
        ref = model(toks)
    assert torch.allclose(hooked, ref, atol=1e-5) and torch.allclose(masked, ref, atol=1e-5)


@pytest.mark.parametrize("overrides", [
    {"positional_embedding_type": "alibi"},
    {"attn_scores_soft_cap": 30.0},
    {"use_attn_result": True},
    {"use_local_attn": True, "attn_types": ["global", "local"], "window_size": 4},
], ids=["alibi", "softcap", "attn-result", "local-window"])
def test_attention_variants_it_cannot_reproduce_are_left_alone(overrides):
    model = _model(2, **overrides)
    expect = 1 if "attn_types" in overrides else 0  # the global layer is still fused, the local one not
    with fast_attention(model) as stats:
        assert stats.patched == expect
    assert all("forward" not in vars(b.attn) for b in model.blocks)


def test_patch_is_removed_on_error():
    model = _model(3)
    with pytest.raises(RuntimeError, match="boom"), fast_attention(model):
        assert "forward" in vars(model.blocks[0].attn)
        raise RuntimeError("boom")
    assert all("forward" not in vars(b.attn) for b in model.blocks)


@pytest.fixture(scope="module")
def tok(tmp_path_factory):
    from tests.tiny import tiny_tokenizer

    return tiny_tokenizer(tmp_path_factory.mktemp("tok"))


def test_left_padding_tokenizer_does_not_send_full_passes_to_the_fallback(tok):
    """TransformerLens builds a mask for every full pass when the tokenizer pads on the left; the engine's
    inputs are never left-padded, so inside fast_attention every pass is fused, and the side is restored."""
    model = tiny_model(tok, n_layers=2, d_model=16, n_ctx=20, seed=6)
    saes = {L: loaded(tiny_sae(model, L, d_sae=24), L) for L in (0, 1)}
    toks = random_tokens(model, 4)
    model.tokenizer.padding_side = "left"
    try:
        out = evaluate(model, saes, toks, RunConfig(n_bootstrap=0, progress=False, device="cpu"))
        assert model.tokenizer.padding_side == "left"
    finally:
        model.tokenizer.padding_side = "right"
    assert out.provenance["attention"] == "fused scaled_dot_product_attention in 2 of 2 layers"


def test_engine_results_do_not_depend_on_the_attention_path(tok):
    model = tiny_model(tok, n_layers=3, d_model=16, n_ctx=20, seed=5)
    saes = {L: loaded(tiny_sae(model, L, d_sae=24), L) for L in (0, 2)}
    toks = random_tokens(model, 4)
    cfg = RunConfig(n_bootstrap=0, progress=False, device="cpu")
    fused = evaluate(model, saes, toks, cfg)
    plain = evaluate(model, saes, toks, cfg.replace(fast_attention=False))
    assert fused.provenance["attention"].startswith("fused") and plain.provenance["attention"] == "transformer_lens"
    for L in ("0", "2"):
        for metric in ("mse", "l0", "delta_ce", "kl", "ce_loss_score"):
            a = fused.results["per_bucket"][L]["1-16"][metric]["mean"]
            b = plain.results["per_bucket"][L]["1-16"][metric]["mean"]
            assert a == pytest.approx(b, rel=1e-4, abs=1e-6), (L, metric)
