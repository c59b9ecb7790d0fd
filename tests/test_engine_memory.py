"""Batch size from a memory budget (engine/memory.py) and the batch size the report says was used."""

from __future__ import annotations

import pytest

from sae_checks.config import RunConfig
from sae_checks.engine.memory import (
    MAX_BATCH,
    auto_batch_size,
    bytes_per_sequence,
    fixed_bytes,
    free_memory,
    model_batch_size,
)
from sae_checks.engine.run import evaluate
from tests.engine_world import loaded, random_tokens
from tests.tiny import tiny_model, tiny_sae, tiny_tokenizer

GPT2 = dict(n_ctx=1024, d_model=768, n_layers=12, n_heads=12, n_passes=2)
GIB = 1 << 30


def batch(free: int = 8 * GIB, **changes: int) -> int:
    return auto_batch_size(free, bytes_per_sequence(**{**GPT2, **changes}), fixed=fixed_bytes())


def test_longer_context_or_more_passes_mean_a_smaller_batch_never_zero():
    base = batch()
    assert 1 <= base <= MAX_BATCH
    assert batch(n_ctx=4096) < base
    assert batch(n_passes=24) < base  # 12 SAEs with zero ablation keep 24 final residuals per sequence
    assert batch(d_model=4 * 768) < base
    assert batch(free=80 * GIB) >= base
    assert batch(free=0) == 1 and batch(free=1) == 1 and batch(free=-5) == 1  # never 0
    assert batch(free=1 << 50) == MAX_BATCH
    # gpt2-small on 8 GiB free: per sequence (12 + 3 + 3 + 16) x 1024 x 768 floats + 2 x 12 x 1024² attention
    per = 4 * ((12 + 3 + 3 + 16) * 1024 * 768 + 2 * 12 * 1024 * 1024)
    assert bytes_per_sequence(**GPT2) == per
    assert base == (int(0.5 * 8 * GIB) - fixed_bytes()) // per
    with pytest.raises(ValueError, match="n_ctx=0"):
        bytes_per_sequence(**{**GPT2, "n_ctx": 0})


def test_the_batch_does_not_depend_on_vocabulary_or_sae_width(world, monkeypatch):
    """CE/KL and SAE terms come in token chunks (engine.chunks): neither the vocabulary nor d_sae appears in
    the per-sequence estimate, only in the fixed chunk budget."""
    import inspect

    assert set(inspect.signature(bytes_per_sequence).parameters) == {"n_ctx", "d_model", "n_layers", "n_heads",
                                                                     "n_passes"}
    import sae_checks.engine.memory as memory

    monkeypatch.setattr(memory, "free_memory", lambda device: 4 * GIB)
    model, _ = world
    per = bytes_per_sequence(n_ctx=1024, d_model=16, n_layers=2, n_heads=model.cfg.n_heads, n_passes=4)
    assert model_batch_size(model, "cpu", 1024, 4) == min(MAX_BATCH, (2 * GIB - fixed_bytes()) // per) > 1


def test_free_memory_on_cpu_is_positive():
    assert free_memory("cpu") > 0


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    tok = tiny_tokenizer(tmp_path_factory.mktemp("tok"))
    model = tiny_model(tok, n_layers=2, d_model=16, n_ctx=20, seed=3)
    saes = {L: loaded(tiny_sae(model, L, d_sae=24), L) for L in (0, 1)}
    return model, saes


FAST = dict(n_bootstrap=0, progress=False, propagation=False, zero_ablation=False)


@pytest.mark.parametrize(("batch_size", "n_seqs", "used"), [(8, 2, 2), (3, 7, 3), (None, 2, 2)])
def test_batch_size_used_is_what_ran(world, batch_size, n_seqs, used):
    model, saes = world
    ev = evaluate(model, saes, random_tokens(model, n_seqs), RunConfig(**FAST, batch_size=batch_size))
    assert ev.provenance["batch_size_used"] == used  # min(batch, n_seqs): 2 sequences never ran 8 at a time
    assert ev.provenance["batch_size_source"] == ("auto" if batch_size is None else "config")


def test_a_zoo_run_records_batch_size_and_tokenizer():
    from sae_checks.api import run
    from sae_checks.loading.data import tokenizer_info
    from sae_checks.loading.models import load_model

    ev = run(RunConfig(n_seqs=2, ctx_len=16, n_bootstrap=0, propagation=False, zero_ablation=False,
                       progress=False, layers=(0,)))
    prov = ev.provenance
    assert prov["batch_size_used"] == 2 and prov["batch_size_source"] == "auto"
    data = prov["data"]
    assert data["dataset"] == "zoo" and data["n_sequences"] == 2
    want = tokenizer_info(load_model("zoo", device="cpu").tokenizer)
    assert data["tokenizer"] == want["tokenizer"] and data["tokenizer_sha256"] == want["tokenizer_sha256"]
    assert len(data["tokenizer_sha256"]) == 64 and "/" not in data["tokenizer"]


def test_a_256k_vocabulary_stays_inside_the_logit_budget(tmp_path, monkeypatch):
    """Gemma's vocabulary (256000): the engine unembeds at most the chunk the byte budget allows, so the
    (tokens, vocabulary) float32 work tensors of CE, KL and the zero-ablated CE stay within LOGIT_BUDGET
    (engine.chunks), here 65 tokens per chunk for the 2 x 64 tokens of one batch."""
    from transformer_lens import HookedTransformer, HookedTransformerConfig

    import sae_checks.engine.chunks as chunks
    from sae_checks.engine.memory import FLOAT, LOGIT_BUDGET

    vocab = 256_000
    cfg = HookedTransformerConfig(n_layers=1, d_model=16, d_head=8, n_heads=2, d_mlp=64, d_vocab=vocab, n_ctx=64,
                                  act_fn="gelu", normalization_type="LN", model_name="tiny", device="cpu", seed=0)
    model = HookedTransformer(cfg, tokenizer=tiny_tokenizer(tmp_path))
    model.eval()
    rows: list[int] = []
    real = chunks.unembed

    def watched(m, resid):
        logits = real(m, resid)
        assert logits.shape[-1] == vocab
        rows.append(logits[..., 0].numel())  # tokens unembedded at once
        return logits

    monkeypatch.setattr(chunks, "unembed", watched)
    monkeypatch.setattr(chunks, "free_memory", lambda device: 64 * GIB)  # the budget binds, not the free RAM
    ev = evaluate(model, {"s0": loaded(tiny_sae(model, 0, d_sae=24), 0)}, random_tokens(model, 2),
                  RunConfig(n_bootstrap=0, progress=False, propagation=False, batch_size=2))
    chunk = ev.provenance["chunk_tokens"]["logits"]
    assert chunk == LOGIT_BUDGET // (FLOAT * chunks.LOGIT_TENSORS * vocab) == 65
    assert rows and max(rows) <= chunk < 2 * 64, (max(rows), chunk)  # the batch's 128 tokens: two chunks each
    assert chunks.LOGIT_TENSORS * max(rows) * vocab * FLOAT <= LOGIT_BUDGET
    assert len(rows) == 2 * 3  # clean, spliced and zero-ablated logits, each in two chunks
    kl = ev.results["per_position"]["s0"]["kl"]
    assert all(v is not None and v == v for v in kl[1:-1])  # computed, finite
