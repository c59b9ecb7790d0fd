"""The causal sweep (experiments.causal) against its definition written out plainly: per (prompt, feature), a
full pass with x̂ = decode(f) and one with decode(f with f_k = 0), full logits, log-prob of the answer's
first token at the last prompt position. Same features, same prompts, same causal_delta_logp: with the
activations kept from the first sweep and without, one row per pass and chunks of one token, BOS spliced,
hooks off the residual stream. Kept activations spare the causal sweep its clean passes; a CUDA
out-of-memory error halves the rows."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from sae_checks.engine.hooks import capture, forward_from, keep_positions, start_activation
from sae_checks.experiments.causal import CausalSweep
from sae_checks.experiments.cloze import ClozeOptions, run_cloze
from sae_checks.experiments.cloze_items import EncodedItems, encode_items
from sae_checks.experiments.cloze_passes import Passes, hooks_of
from sae_checks.loading.data import ClozeItem
from sae_checks.loading.saes import LoadedSAE
from sae_checks.metrics.cloze import FEATURE_WINDOW
from tests.test_cloze import ITEMS, loaded
from tests.tiny import tiny_model, tiny_sae, tiny_tokenizer

PROMPTS = ITEMS + [ClozeItem("The cat sat on the", "xylophonic"), ClozeItem(" ".join(["the dog sat"] * 8), "log")]
OPTS = dict(task="lambada", n_bootstrap=0, min_count=2, n_top=3, n_causal=2, causal_max_prompts=3, batch_size=3)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    tok = tiny_tokenizer(tmp_path_factory.mktemp("tok"))
    model = tiny_model(tok)  # 2 layers, d_model 16 (2 heads of 8), n_ctx 32

    def at(layer: int, hook: str, seed: int) -> LoadedSAE:
        sae = tiny_sae(model, layer, d_sae=24, context_size=8, seed=seed, hook_name=hook)
        return loaded(sae, layer, context_size=8)._replace(hook_name=hook)

    saes = {"pre0": at(0, "blocks.0.hook_resid_pre", 0), "z1": at(1, "blocks.1.attn.hook_z", 1),
            "post1": at(1, "blocks.1.hook_resid_post", 2)}
    return {"tok": tok, "model": model, "saes": saes, "enc": encode_items(tok, PROMPTS, model.cfg.n_ctx)}


def reference(model: Any, ls: LoadedSAE, enc: EncodedItems, k: int, *, max_prompts: int,
              splice_bos: bool) -> tuple[float, int]:
    """(mean of logp_ablated − logp_spliced, prompts) for feature ``k``: over the first ``max_prompts``
    prompts, longest row first, where k is active at the last 32 prompt positions; one plain pass each."""
    hooks = hooks_of([ls], model.cfg.n_layers)
    order = sorted(range(len(enc.prompts)), key=lambda i: (-len(enc.prompts[i]) - len(enc.answers[i]), i))
    diffs: list[float] = []
    for i in order:
        p, a = enc.prompts[i], enc.answers[i]
        toks = torch.tensor([p + a])
        with torch.no_grad(), capture(model, hooks) as store:
            model(toks)
        acts = dict(store)
        x = acts[ls.hook_name]
        with torch.no_grad():
            f = ls.sae.encode(x)
        window = slice(max(0 if splice_bos else 1, len(p) - FEATURE_WINDOW), len(p))
        if not bool((f[0, window, k] != 0).any()) or len(diffs) == max_prompts:
            continue
        keep = torch.zeros(toks.shape, dtype=torch.bool)
        keep[0, 0] = not splice_bos

        ablated = f.clone()
        ablated[..., k] = 0
        logps = []
        for feats in (ablated, f):
            with torch.no_grad():
                new = keep_positions(x, ls.sae.decode(feats), keep)
                logits, _ = forward_from(model, ls.hook_name, x, new, toks,
                                         start_act=start_activation(acts, ls.hook_name, model.cfg.n_layers))
            logps.append(float(torch.log_softmax(logits[0, len(p) - 1].double(), -1)[a[0]]))
        diffs.append(logps[0] - logps[1])
    return (sum(diffs) / len(diffs) if diffs else float("nan")), len(diffs)


def causal_of(features: dict[str, Any]) -> dict[int, tuple[float, int]]:
    """feature -> (causal_delta_logp, causal_n) of one SAE's report, for the features that were ablated."""
    return {e["index"]: (e["causal_delta_logp"], e["causal_n"]) for rank in ("top", "bottom", "top_by_score",
            "bottom_by_score") for e in features[rank] if e["causal_n"] is not None}


@pytest.mark.parametrize("case", ["cache", "recompute", "one_row_per_pass_one_token_chunks", "splice_bos"])
def test_sweep_equals_one_full_pass_per_row(world: dict[str, Any], case: str, monkeypatch) -> None:
    from sae_checks.engine import memory

    opts: dict[str, Any] = dict(OPTS)
    if case == "recompute":
        opts["cache_bytes"] = 0  # nothing fits: a clean pass per causal batch
    if case == "one_row_per_pass_one_token_chunks":
        monkeypatch.setattr(memory, "model_batch_size", lambda *a, **k: 1)
        opts["chunk_tokens"] = 1
    if case == "splice_bos":
        opts["splice_bos"] = True
    model, saes, enc = world["model"], world["saes"], world["enc"]
    out = run_cloze(model, saes, PROMPTS, ClozeOptions(**opts))
    ablated = 0
    for name, ls in saes.items():
        got = causal_of(out.features[name])
        assert got, f"{name}: nothing ablated"
        for k, (mean, n) in got.items():
            want_mean, want_n = reference(model, ls, enc, k, max_prompts=opts["causal_max_prompts"],
                                          splice_bos=opts.get("splice_bos", False))
            assert n == want_n, (name, k)
            if n:
                assert mean == pytest.approx(want_mean, rel=1e-3, abs=1e-5), (name, k)
            ablated += n
    assert ablated > 0


def test_the_cache_spares_the_clean_passes(world: dict[str, Any], monkeypatch) -> None:
    """With the activation cache the causal sweep runs no clean pass; without, one per batch of prompts.
    Both give the same numbers."""
    calls: list[int | None] = []
    real = Passes.clean

    def counted(self: Passes, batch: Any, stop: int | None = None) -> Any:
        calls.append(stop)
        return real(self, batch, stop)

    monkeypatch.setattr(Passes, "clean", counted)
    model, saes = world["model"], world["saes"]
    n_batches = -(-len(PROMPTS) // OPTS["batch_size"])
    cached = run_cloze(model, saes, PROMPTS, ClozeOptions(**OPTS))
    assert calls == [None] * n_batches  # the first sweep's, to the final residual
    calls.clear()
    again = run_cloze(model, saes, PROMPTS, ClozeOptions(**OPTS, cache_bytes=0))
    assert calls[:n_batches] == [None] * n_batches
    assert 1 <= len(calls) - n_batches <= n_batches  # the prompts that have a row, to the last hooked block
    assert set(calls[n_batches:]) == {model.cfg.n_layers}
    for name in saes:
        a, b = causal_of(cached.features[name]), causal_of(again.features[name])
        assert a.keys() == b.keys()
        for k in a:
            assert a[k][1] == b[k][1] and a[k][0] == pytest.approx(b[k][0], rel=1e-4, abs=1e-6)


def test_cuda_oom_halves_the_rows_per_pass(world: dict[str, Any], monkeypatch) -> None:
    real = CausalSweep._pass
    sizes: list[int] = []

    def small_device(self: CausalSweep, name: str, job: Any, b: torch.Tensor, c: torch.Tensor) -> Any:
        sizes.append(b.numel())
        if b.numel() > 2:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory (simulated)")
        return real(self, name, job, b, c)

    model, saes = world["model"], world["saes"]
    want = run_cloze(model, saes, PROMPTS, ClozeOptions(**OPTS))
    monkeypatch.setattr(CausalSweep, "_pass", small_device)
    got = run_cloze(model, saes, PROMPTS, ClozeOptions(**OPTS))
    assert max(sizes) > 2 and sizes[-1] <= 2
    for name in saes:
        assert causal_of(got.features[name]).keys() == causal_of(want.features[name]).keys()
        for k, (mean, n) in causal_of(got.features[name]).items():
            assert n == causal_of(want.features[name])[k][1]
            assert mean == pytest.approx(causal_of(want.features[name])[k][0], rel=1e-4, abs=1e-6)
