"""The pass kernel (engine/kernel.py) and the halving OOM retry (engine/retry.py): what every caller shares."""

from __future__ import annotations

import logging
from typing import Any

import pytest
import torch

from sae_checks.engine import chunks
from sae_checks.engine.kernel import clean_pass, pass_context, splice_pass, unspliced
from sae_checks.engine.retry import halving
from sae_checks.experiments.cloze import ClozeOptions, run_cloze
from sae_checks.loading.data import ClozeItem
from tests.test_cloze import ITEMS, loaded
from tests.tiny import tiny_model, tiny_sae, tiny_tokenizer


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    tok = tiny_tokenizer(tmp_path_factory.mktemp("tok"))
    model = tiny_model(tok)  # 2 layers, d_model 16, n_ctx 32
    saes = {str(L): loaded(tiny_sae(model, L, context_size=8), L, context_size=8) for L in (0, 1)}
    return {"tok": tok, "model": model, "saes": saes}


# --- the halving retry ------------------------------------------------------------------------------


def fake_job(fits: int, tried: list[int]) -> Any:
    """A job that runs out of CUDA memory above ``fits`` rows, recording every size it is asked for."""

    def job(size: int) -> str:
        tried.append(size)
        if size > fits:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory (simulated)")
        return f"ran {size}"

    return job


def test_halving_retries_at_half_the_size_until_it_fits(caplog: pytest.LogCaptureFixture) -> None:
    tried: list[int] = []
    with caplog.at_level(logging.WARNING, logger="sae_checks"):
        done = halving(fake_job(3, tried), 13, "the fake job")
    assert tried == [13, 6, 3]
    assert (done.value, done.size, done.halved) == ("ran 3", 3, True)
    assert "CUDA out of memory in the fake job; batch size halved to 6" in caplog.text


def test_halving_without_oom_runs_once() -> None:
    tried: list[int] = []
    assert halving(fake_job(100, tried), 7, "x") == ("ran 7", 7, False)
    assert tried == [7]


def test_halving_gives_up_at_one() -> None:
    tried: list[int] = []
    with pytest.raises(torch.cuda.OutOfMemoryError):
        halving(fake_job(0, tried), 5, "x")
    assert tried == [5, 2, 1]
    with pytest.raises(ValueError, match="size=0"):
        halving(fake_job(1, []), 0, "x")


def test_other_errors_are_not_retried() -> None:
    calls: list[int] = []

    def job(size: int) -> None:
        calls.append(size)
        raise RuntimeError("not memory")

    with pytest.raises(RuntimeError, match="not memory"):
        halving(job, 8, "x")
    assert calls == [8]


# --- the mask of what a splice leaves clean ---------------------------------------------------------


def test_unspliced_keeps_special_tokens_and_padding() -> None:
    tokens = torch.tensor([[0, 5, 7, 2, 9], [0, 5, 0, 0, 0]])  # specials 0 (BOS/pad) and 2 (EOS)
    specials = torch.tensor([0, 2])
    attention = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]])
    keep = unspliced(tokens, specials, splice_bos=False, attention_mask=attention)
    assert keep is not None
    assert keep.tolist() == [[True, False, False, True, False], [True, False, True, True, True]]
    keep = unspliced(tokens, specials, splice_bos=True, attention_mask=attention)  # padding only
    assert keep is not None
    assert keep.tolist() == [[False] * 5, [False, False, False, True, True]]
    assert unspliced(tokens, specials, splice_bos=True) is None  # the engine's sequences: nothing kept
    assert torch.equal(unspliced(tokens, specials, splice_bos=False), torch.isin(tokens, specials))  # type: ignore[arg-type]


# --- the context and the passes ---------------------------------------------------------------------


def test_pass_context_refuses_a_model_with_hooks(world: dict[str, Any]) -> None:
    model = world["model"]
    model.add_hook("blocks.0.hook_resid_pre", lambda act, hook: act)
    try:
        with pytest.raises(RuntimeError, match="hooks leaked"), pass_context(model):
            pass
    finally:
        model.reset_hooks()
    with pytest.raises(RuntimeError, match="hooks leaked"), pass_context(model):  # a hook left inside
        model.add_hook("blocks.0.hook_resid_pre", lambda act, hook: act)
    model.reset_hooks()
    with pytest.raises(ValueError, match="dtype='float16'"), pass_context(model, dtype="float16"):  # type: ignore[arg-type]
        pass


def test_splice_of_the_clean_activation_is_the_clean_pass(world: dict[str, Any]) -> None:
    """A splice that puts back the clean activation gives the clean final residual, for a residual hook
    (start_at_layer) and one off the stream (a scoped splice hook from the cached hook_resid_pre)."""
    model = world["model"]
    toks = torch.randint(1, 300, (3, 12))
    hooks = ["blocks.1.hook_resid_pre", "blocks.1.hook_mlp_out", "blocks.1.attn.hook_z"]
    with pass_context(model, fast=False):
        resid, acts = clean_pass(model, toks, hooks)
        assert torch.is_inference_mode_enabled()
        for hook in hooks[:2]:
            again, _ = splice_pass(model, hook, acts, acts[hook], toks)
            torch.testing.assert_close(again, resid, rtol=1e-5, atol=1e-5)
    assert resid.shape == (3, 12, model.cfg.d_model)


# --- the cloze numbers under bfloat16 come from a bfloat16 pass -------------------------------------


def test_cloze_under_bfloat16_runs_bfloat16_passes(world: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    """``run_cloze`` with dtype bfloat16 runs every pass inside the kernel's context: the SAE sees its input
    under bfloat16 autocast (on the CPU here, which the kernel accepts; the CLI allows bfloat16 on CUDA
    only), the logits the scores read are bfloat16, and the numbers differ from the float32 run's. Fails if run_cloze (or any of its passes) bypasses ``engine.kernel.pass_context``."""
    model, saes = world["model"], world["saes"]
    seen: list[tuple[bool, torch.dtype, bool]] = []
    logit_dtypes: list[torch.dtype] = []  # of the logits the scores read (engine.chunks.unembed)
    for ls in saes.values():
        real_encode = ls.sae.encode

        def encode(x: torch.Tensor, real: Any = real_encode) -> torch.Tensor:
            seen.append((torch.is_autocast_enabled("cpu"), torch.get_autocast_dtype("cpu"),
                         torch.is_inference_mode_enabled()))
            return real(x)

        monkeypatch.setattr(ls.sae, "encode", encode)
    real_unembed = chunks.unembed

    def unembed(model: Any, resid: torch.Tensor) -> torch.Tensor:
        logits = real_unembed(model, resid)
        logit_dtypes.append(logits.dtype)
        return logits

    monkeypatch.setattr(chunks, "unembed", unembed)
    items: list[ClozeItem] = ITEMS[:4]
    opts = {"task": "lambada", "n_bootstrap": 0, "features": False}
    f32 = run_cloze(model, saes, items, ClozeOptions(**opts))
    assert seen and all(not autocast and inference for autocast, _, inference in seen)
    assert logit_dtypes and set(logit_dtypes) == {torch.float32}
    seen.clear()
    logit_dtypes.clear()
    bf16 = run_cloze(model, saes, items, ClozeOptions(**opts, dtype="bfloat16"))
    assert seen and all(autocast and dtype == torch.bfloat16 for autocast, dtype, _ in seen), seen
    assert logit_dtypes and set(logit_dtypes) == {torch.bfloat16}, logit_dtypes
    a, b = f32.cloze["prompts"]["0"]["delta_logp"], bf16.cloze["prompts"]["0"]["delta_logp"]
    assert a != b, "bfloat16 passes gave the float32 numbers"
    assert torch.allclose(torch.tensor(a), torch.tensor(b), atol=0.2)  # the same quantity, rounded coarser
