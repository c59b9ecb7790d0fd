"""Feature helpfulness (docs/definitions.md#feature-helpfulness): the score arithmetic on a hand-built
example, the last-32-positions window, the report, and the causal ablation check on a tiny random model."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from sae_checks.engine.hooks import forward_from, keep_positions
from sae_checks.experiments.cloze import ClozeOptions, encode_items, run_cloze
from sae_checks.experiments.features import (
    causal_candidates,
    feature_report,
    histogram,
    neuronpedia_url,
    rank_features,
)
from sae_checks.metrics.cloze import (
    FeatureSums,
    active_features,
    add_feature_sums,
    feature_stats,
    feature_sums,
    window_mask,
)
from tests.test_cloze import ITEMS, loaded
from tests.tiny import tiny_model, tiny_sae, tiny_tokenizer


def test_score_arithmetic_hand_built() -> None:
    # 4 prompts x 3 features. delta_logp = [+0.5, -1.0, 0.0, +2.0]
    active = torch.tensor([
        [True, True, False],
        [True, False, False],
        [True, True, False],  # delta 0: counted, neither positive nor negative
        [False, True, False],
    ])
    delta = torch.tensor([0.5, -1.0, 0.0, 2.0])
    s = feature_sums(active, delta)
    assert s.n_active.tolist() == [3, 3, 0]
    assert s.sum_delta.tolist() == [-0.5, 2.5, 0.0]
    assert s.n_pos.tolist() == [1, 2, 0]
    assert s.n_neg.tolist() == [1, 0, 0]
    mean, score = feature_stats(s)
    assert mean[:2].tolist() == pytest.approx([-0.5 / 3, 2.5 / 3])
    assert torch.isnan(mean[2])  # never active
    assert score.tolist() == [0, 2, 0]  # #(>0) − #(<0)
    # merging shards is addition: prompts 0-1 + prompts 2-3 == all at once
    merged = add_feature_sums(feature_sums(active[:2], delta[:2]), feature_sums(active[2:], delta[2:]))
    for a, b in zip(merged, s, strict=True):
        assert torch.equal(a, b)


def test_window_is_last_32_prompt_positions() -> None:
    T, P = 45, 40  # prompt positions 0..39; window 8..39; positions 40.. are the answer / padding
    m = window_mask(torch.tensor([P, 5]), T)
    assert m[0].nonzero().flatten().tolist() == list(range(8, 40))
    assert m[1].nonzero().flatten().tolist() == [1, 2, 3, 4]  # BOS left out
    assert window_mask(torch.tensor([5]), T, include_bos=True)[0].nonzero().flatten().tolist() == [0, 1, 2, 3, 4]
    f = torch.zeros(2, T, 3)
    f[0, 7, 0] = 1.0  # before the window: not active
    f[0, 39, 1] = -0.3  # last prompt position, negative activation: active (≠ 0, not > 0)
    f[0, 41, 2] = 1.0  # answer position: not active
    f[1, 0, 2] = 1.0  # BOS: not active
    assert active_features(f, m).tolist() == [[False, True, False], [False, False, False]]


def test_rankings_report_and_urls() -> None:
    s = FeatureSums(
        n_active=torch.tensor([5.0, 9.0, 2.0, 6.0]),
        sum_delta=torch.tensor([5.0, -9.0, 100.0, 0.6]),
        n_pos=torch.tensor([5.0, 1.0, 2.0, 4.0]),
        n_neg=torch.tensor([0.0, 8.0, 0.0, 2.0]),
    )
    ranks = rank_features(s, min_count=5, n_top=2)  # feature 2 (count 2) is not eligible
    assert ranks == {"top": [0, 3], "bottom": [1, 3], "top_by_score": [0, 3], "bottom_by_score": [1, 3]}
    assert causal_candidates(ranks, 1) == [0, 1]
    rep = feature_report(s, task="lambada", n_prompts=10, neuronpedia_id="gpt2-small/0-res-jb", min_count=5,
                         ranks=ranks, causal={0: (-0.25, 5)})
    assert rep["n_eligible"] == 3 and rep["n_active"] == 4
    top = rep["top"][0]
    assert top == {"index": 0, "count": 5, "mean_delta_logp": 1.0, "score": 5, "n_pos": 5, "n_neg": 0,
                   "url": "https://www.neuronpedia.org/gpt2-small/0-res-jb/0", "causal_delta_logp": -0.25,
                   "causal_n": 5}
    assert rep["top"][1]["causal_delta_logp"] is None
    assert sum(rep["hist"]["mean_delta_logp"]["counts"]) == 3
    assert sum(rep["hist"]["score"]["counts"]) == 3
    assert neuronpedia_url(None, 3) is None
    h = histogram(torch.tensor([-1.0, 0.0, 0.0, 2.0]), integer=True)
    assert h["bins"][0] == -1.5 and h["counts"] == [1, 2, 0, 1]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    tok = tiny_tokenizer(tmp_path_factory.mktemp("tok"))
    model = tiny_model(tok)
    sae = tiny_sae(model, 1, d_sae=24, context_size=8)
    return {"tok": tok, "model": model, "saes": {1: loaded(sae, 1, neuronpedia_id="tiny/1-res")}}


def test_features_from_run_and_causal_check(world: dict[str, Any]) -> None:
    model, tok, saes = world["model"], world["tok"], world["saes"]
    out = run_cloze(model, saes, ITEMS, ClozeOptions(task="lambada", n_bootstrap=0, min_count=2, n_top=3,
                                                     n_causal=1, batch_size=4))
    rep = out.features["1"]
    assert rep["n_features"] == saes[1].d_sae and rep["window"] == 32  # the definition's window
    deltas = out.cloze["prompts"]["1"]["delta_logp"]

    # recompute the activity and the helpfulness of the top feature by hand, one prompt at a time
    enc = encode_items(tok, ITEMS, model.cfg.n_ctx)
    sae = saes[1].sae
    top = rep["top"][0]
    k = top["index"]
    acts, causal = [], []
    for p, a in zip(enc.prompts, enc.answers, strict=True):
        toks = torch.tensor([p + a])
        with torch.no_grad():
            _, cache = model.run_with_cache(toks, names_filter="blocks.1.hook_resid_pre")
            x = cache["blocks.1.hook_resid_pre"]
            f = sae.encode(x)
            active = bool((f[0, max(1, len(p) - 32):len(p), k] != 0).any())
            acts.append(active)
            if active:
                keep = torch.zeros(1, toks.shape[1], dtype=torch.bool)
                keep[0, 0] = True
                full, _ = forward_from(model, "blocks.1.hook_resid_pre", x, keep_positions(x, sae.decode(f), keep), toks)
                fz = f.clone()
                fz[..., k] = 0
                abl, _ = forward_from(model, "blocks.1.hook_resid_pre", x, keep_positions(x, sae.decode(fz), keep), toks)
                lp_full = torch.log_softmax(full[0, len(p) - 1], -1)[a[0]]
                lp_abl = torch.log_softmax(abl[0, len(p) - 1], -1)[a[0]]
                causal.append((lp_abl - lp_full).item())
    hits = [d for d, on in zip(deltas, acts, strict=True) if on]
    assert top["count"] == len(hits) >= 2
    assert top["mean_delta_logp"] == pytest.approx(sum(hits) / len(hits), abs=1e-5)
    assert top["score"] == sum(d > 0 for d in hits) - sum(d < 0 for d in hits)
    assert top["causal_n"] == len(causal)
    assert top["causal_delta_logp"] == pytest.approx(sum(causal) / len(causal), abs=1e-4)
    assert top["url"] == f"https://www.neuronpedia.org/tiny/1-res/{k}"


def test_features_off(world: dict[str, Any]) -> None:
    out = run_cloze(world["model"], world["saes"], ITEMS[:2], ClozeOptions(task="lambada", features=False,
                                                                          n_bootstrap=0))
    assert out.features == {}
