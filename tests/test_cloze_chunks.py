"""Cloze passes from final residuals in token chunks (experiments.cloze_passes, engine.chunks.token_stats):
the scores equal those of the full (B, T, V) logits, down to chunks of one token and with non-finite rows;
a whole run does not depend on the chunk size; the batch size comes from the rows' length."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from sae_checks.engine.chunks import Chunks, unembed
from sae_checks.experiments.cloze import ClozeOptions, auto_batch_size, run_cloze
from sae_checks.experiments.cloze_items import encode_items, make_batch, max_row_length
from sae_checks.experiments.cloze_passes import Passes
from sae_checks.loading.data import ClozeItem
from sae_checks.metrics.cloze import cloze_scores
from tests.test_cloze import ITEMS, loaded
from tests.tiny import tiny_model, tiny_sae, tiny_tokenizer

MIXED = ITEMS + [ClozeItem("The cat sat on the", "xylophonic")]  # mixed lengths (padding), a multi-token answer


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    tok = tiny_tokenizer(tmp_path_factory.mktemp("tok"))
    model = tiny_model(tok)  # 2 layers, d_model 16, n_ctx 32
    saes = {L: loaded(tiny_sae(model, L, d_sae=24, context_size=8), L, context_size=8) for L in (0, 1)}
    return {"tok": tok, "model": model, "saes": saes}


def _batch(world: dict[str, Any], items: list[ClozeItem]) -> Any:
    enc = encode_items(world["tok"], items, world["model"].cfg.n_ctx)
    return make_batch(enc.prompts, enc.answers, 0, "cpu")


def _assert_scores_equal(got: Any, want: Any) -> None:
    for name, a, b in zip(want._fields, got, want, strict=True):
        if a.dtype == torch.bool:
            assert torch.equal(a, b), name
        else:
            torch.testing.assert_close(a.double(), b.double(), rtol=1e-5, atol=1e-5, equal_nan=True, msg=name)


@pytest.mark.parametrize("chunk", [1, 3, 10_000])
def test_chunked_scores_equal_the_full_logits(world: dict[str, Any], chunk: int) -> None:
    model = world["model"]
    batch = _batch(world, MIXED)
    with torch.no_grad():
        logits = model(batch.tokens)  # (B, T, V): the definition
        resid = model(batch.tokens, stop_at_layer=model.cfg.n_layers)  # (B, T, d_model)
    assert batch.attention_mask.min() == 0, "the batch needs padding"
    passes = Passes(model, [], Chunks(chunk, chunk), False, 0)
    _assert_scores_equal(passes.scores(resid, batch), cloze_scores(logits, batch.tokens, batch.prompt_len,
                                                                   batch.cont_len))


@pytest.mark.parametrize("chunk", [1, 10_000])
def test_chunked_scores_flag_the_same_nonfinite_rows(world: dict[str, Any], chunk: int) -> None:
    """A NaN residual at a scored position (the row's real predictions) flags the row, one in the padding
    does not; scores agree with the full logits of the same residuals, NaN for NaN."""
    model = world["model"]
    batch = _batch(world, MIXED)
    P, A = batch.prompt_len.tolist(), batch.cont_len.tolist()
    with torch.no_grad():
        resid = model(batch.tokens, stop_at_layer=model.cfg.n_layers).clone()
    resid[0, 1] = float("nan")  # a prompt prediction of row 0: its ce is NaN, the row is not finite
    resid[1, P[1] - 1, 3] = float("inf")  # row 1's answer position: logp, acc and finite
    short = min(range(2, len(P)), key=lambda b: P[b] + A[b])
    resid[short, -1] = float("nan")  # padding of the shortest row: changes nothing
    assert P[short] + A[short] < resid.shape[1]
    with torch.no_grad():
        logits = unembed(model, resid)
    want = cloze_scores(logits, batch.tokens, batch.prompt_len, batch.cont_len)
    got = Passes(model, [], Chunks(chunk, chunk), False, 0).scores(resid, batch)
    _assert_scores_equal(got, want)
    assert not got.finite[0] and not got.finite[1] and got.finite[short]
    assert torch.isnan(got.ce_sum[0]) and not got.correct_first[1]


def test_a_run_does_not_depend_on_the_chunk_size(world: dict[str, Any]) -> None:
    """Every number of the cloze section and the feature report (activity over the window, rankings, the
    causal check) with chunks of one token equals the run in one chunk."""
    model, saes = world["model"], world["saes"]
    opts = dict(task="lambada", n_bootstrap=20, min_count=2, n_top=3, n_causal=2, batch_size=3)
    whole = run_cloze(model, saes, MIXED, ClozeOptions(**opts, chunk_tokens=10_000))
    one = run_cloze(model, saes, MIXED, ClozeOptions(**opts, chunk_tokens=1))
    assert_json_close(one.cloze, whole.cloze)
    assert_json_close(one.features, whole.features)
    assert any(e["causal_n"] for e in whole.features["1"]["top"])


def assert_json_close(got: Any, want: Any, path: str = "") -> None:
    """Same JSON, floats equal up to float32 summation order (rel 1e-4, abs 1e-5); ``path`` names a miss."""
    if isinstance(want, dict):
        assert list(got) == list(want), path
        for k in want:
            assert_json_close(got[k], want[k], f"{path}/{k}")
    elif isinstance(want, list):
        assert len(got) == len(want), path
        for i, (g, w) in enumerate(zip(got, want, strict=True)):
            assert_json_close(g, w, f"{path}[{i}]")
    elif isinstance(want, float):
        assert got == pytest.approx(want, rel=1e-4, abs=1e-5, nan_ok=True), path
    else:
        assert got == want, path


def test_auto_batch_size_reads_the_rows_length_not_the_context(world: dict[str, Any], monkeypatch) -> None:
    from sae_checks.engine import memory

    model = world["model"]
    # 1 MiB left after the fixed chunk budgets: batches of a few dozen tiny rows, under the cap of 64
    monkeypatch.setattr(memory, "free_memory", lambda device: 2 * (memory.fixed_bytes() + (1 << 20)))
    enc = encode_items(world["tok"], MIXED, model.cfg.n_ctx)
    longest = max_row_length(enc)
    assert longest < model.cfg.n_ctx
    assert auto_batch_size(model, MIXED) == memory.model_batch_size(model, "cpu", n_ctx=longest, n_passes=1)
    assert auto_batch_size(model, MIXED) > memory.model_batch_size(model, "cpu")  # rows of the full context
