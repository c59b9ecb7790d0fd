"""Pure metric functions and the accumulator: definitions on hand-built values; chunked == whole."""

from __future__ import annotations

import math

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from sae_checks.aggregate import LayerAccumulator, metrics_from_sums
from sae_checks.metrics import registry
from sae_checks.metrics.loss import CleanLogits, kl_div, next_token_ce
from sae_checks.metrics.reconstruction import fvu_from_sums
from sae_checks.metrics.registry import SaeContext, SumLayout


def test_reconstruction_terms_by_hand():
    """The registry's built-in "tok" sums, evaluated on a hand-built context."""
    x = torch.tensor([[[3.0, 4.0], [1.0, 0.0]]])  # (1, 2, 2)
    x_hat = torch.tensor([[[3.0, 0.0], [2.0, 0.0]]])
    f = torch.tensor([[[0.0, -1.5, 2.0], [0.0, 0.0, 0.0]]])  # a negative activation counts for l0
    t = registry.evaluate(SumLayout.of("bucket").tok, SaeContext(x, x_hat, f, torch.ones(1, 2, dtype=torch.bool)))
    assert t["sse"].tolist() == [[16.0, 1.0]]
    assert t["x2"].tolist() == [[25.0, 1.0]]
    assert t["l0"].tolist() == [[2.0, 0.0]]
    assert t["feat_l1"].tolist() == [[3.5, 0.0]]
    assert t["resid_norm"].tolist() == [[5.0, 1.0]]
    assert torch.allclose(t["cos"], torch.tensor([[0.6, 1.0]]))
    assert torch.equal(t["sum_x"], x)  # the per-dimension sum of fvu's variance


def test_fvu_is_ratio_of_sums_around_the_pooled_mean():
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(50, 4, generator=gen) + 3
    x_hat = x + 0.3 * torch.randn(50, 4, generator=gen)
    expected = ((x - x_hat) ** 2).sum() / ((x - x.mean(0)) ** 2).sum()
    got = fvu_from_sums(((x - x_hat) ** 2).sum(), (x ** 2).sum(), x.sum(0), torch.tensor(50.0))
    assert torch.allclose(got, expected, rtol=1e-5)


def test_ce_and_kl_definitions():
    logits = torch.log(torch.tensor([[[0.5, 0.25, 0.25], [0.1, 0.8, 0.1]]]))  # (1, 2, 3)
    tokens = torch.tensor([[0, 1]])
    ce = next_token_ce(logits, tokens)  # prediction at t=0 of tokens[1] = 1
    assert ce.shape == (1, 1) and torch.allclose(ce, -torch.log(torch.tensor([[0.25]])))
    logp = torch.log_softmax(logits, -1)
    assert torch.allclose(kl_div(logp, logits), torch.zeros(1, 2), atol=1e-7)
    other = torch.log(torch.tensor([[[1 / 3] * 3, [0.1, 0.8, 0.1]]]))
    expected0 = sum(p * torch.log(torch.tensor(p / (1 / 3))) for p in (0.5, 0.25, 0.25))
    assert torch.allclose(kl_div(logp, other)[0, 0], expected0, atol=1e-6)


@given(offset=st.sampled_from([0.0, -100.0, 50.0]), scale=st.sampled_from([0.01, 0.3, 3.0]),
       seed=st.integers(0, 1000))
@settings(max_examples=20, deadline=None)
def test_engine_losses_equal_the_reference_definitions(offset: float, scale: float, seed: int):
    """CleanLogits.compare (no per-pass log_softmax) == log_softmax-based CE and KL, in float64 truth;
    gpt2's logits sit near -100, where a plain float32 logsumexp difference would be off by ~1e-5."""
    gen = torch.Generator().manual_seed(seed)
    clean = torch.randn(2, 5, 40, generator=gen) * 3 + offset
    other = clean + scale * torch.randn(2, 5, 40, generator=gen)
    tokens = torch.randint(0, 40, (2, 5), generator=gen)
    targets = tokens[:, 1:]  # the prediction at t is of token t + 1: CleanLogits takes aligned targets
    ref = CleanLogits.of(clean[:, :-1], targets)
    ce, kl = ref.compare(other[:, :-1].clone(), targets, consume=True)
    true_kl = kl_div(torch.log_softmax(clean.double(), -1), other.double())[:, :-1]
    assert torch.allclose(kl.double(), true_kl, atol=2e-6, rtol=1e-4)
    true_ce = -torch.log_softmax(other.double(), -1)[:, :-1].gather(-1, targets[..., None])[..., 0]
    assert torch.allclose(ce.double(), true_ce, atol=1e-5, rtol=1e-5)
    assert torch.allclose(ref.ce, next_token_ce(clean, tokens), atol=1e-5, rtol=1e-5)
    assert torch.allclose(ref.ce_of(other[:, :-1], targets), ce)
    flat = CleanLogits.of(clean[:, :-1].reshape(-1, 40), targets.reshape(-1))  # the engine's (tokens, V) chunks
    ce_flat, kl_flat = flat.compare(other[:, :-1].reshape(-1, 40), targets.reshape(-1), scratch=torch.empty(8, 40))
    assert torch.allclose(ce_flat.view(2, 4), ce) and torch.allclose(kl_flat.view(2, 4), kl, atol=1e-6)
    ce_same, kl_same = ref.compare(clean[:, :-1].clone(), targets)
    assert torch.equal(kl_same, torch.zeros_like(kl_same)) and torch.equal(ce_same, ref.ce)


def test_engine_losses_keep_non_finite_values():
    clean = torch.zeros(1, 3, 4)
    other = clean.clone()
    other[0, 1, 2] = float("nan")
    other[0, 2, :] = float("-inf")
    tokens = torch.zeros(1, 3, dtype=torch.long)
    ce, kl = CleanLogits.of(clean, tokens).compare(other, tokens)
    assert torch.isfinite(kl[0, 0]) and kl[0, 0] == 0
    assert not torch.isfinite(kl[0, 1]) and not torch.isfinite(kl[0, 2]) and not torch.isfinite(ce[0, 1])


def _batch(seed: int, B: int, T: int, d: int):
    gen = torch.Generator().manual_seed(seed)
    terms = {n: torch.rand(B, T, generator=gen) for n in
             ("sse", "x2", "l0", "feat_l1", "resid_norm", "cos", "ce_clean", "ce_spliced", "kl", "ce_zero",
              "l2_ratio", "xhat2", "x_dot_xhat")}
    terms["x2"] = terms["x2"] + 5
    terms["sum_x"] = torch.randn(B, T, d, generator=gen)  # x itself
    tok = torch.rand(B, T, generator=gen) > 0.2
    pred = tok.clone()
    pred[:, -1] = False
    return terms, tok, pred


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 10_000), st.lists(st.integers(1, 4), min_size=1, max_size=4))
def test_chunked_accumulation_equals_whole(seed, sizes):
    """Merging per-batch accumulators is addition: any split of the batch gives the same means."""
    T, d, buckets = 12, 3, [(1, 5), (5, 12)]
    terms, tok, pred = _batch(seed, sum(sizes), T, d)
    whole = LayerAccumulator(T, d, buckets)
    whole.add(terms, tok, pred)
    chunked = LayerAccumulator(T, d, buckets)
    start = 0
    for size in sizes:
        part = LayerAccumulator(T, d, buckets)
        part.add({k: v[start:start + size] for k, v in terms.items()}, tok[start:start + size],
                 pred[start:start + size])
        chunked.merge(part)
        start += size
    a = whole.finalize(n_bootstrap=0, ci_level=0.95, seed=0, ratio_pair=(0, 1))
    b = chunked.finalize(n_bootstrap=0, ci_level=0.95, seed=0, ratio_pair=(0, 1))
    assert a.metrics == tuple(m.name for m in registry.metrics("bucket"))  # ce_zero measured: all reported
    for m in a.metrics:
        torch.testing.assert_close(a.per_bucket[m], b.per_bucket[m], rtol=1e-9, atol=1e-12, equal_nan=True)
        torch.testing.assert_close(a.per_position[m], b.per_position[m], rtol=1e-9, atol=1e-12, equal_nan=True)


def test_bucket_means_are_token_weighted_and_masked():
    T, d = 6, 2
    terms, tok, pred = _batch(3, 4, T, d)
    acc = LayerAccumulator(T, d, [(1, 6)])
    acc.add(terms, tok, pred)
    out = acc.finalize(n_bootstrap=50, ci_level=0.9, seed=0, ratio_pair=None)
    m = tok[:, 1:6]
    expected_mse = terms["sse"][:, 1:6][m].double().mean()
    torch.testing.assert_close(out.per_bucket["mse"][0], expected_mse)
    p = pred[:, 1:6]
    expected_dce = (terms["ce_spliced"] - terms["ce_clean"])[:, 1:6][p].double().mean()
    torch.testing.assert_close(out.per_bucket["delta_ce"][0], expected_dce)
    lo, hi = out.per_bucket_json()["1-6"]["mse"]["ci"]
    assert lo <= expected_mse.item() <= hi


def test_masked_nan_does_not_leak_into_means():
    T, d = 4, 2
    terms, tok, pred = _batch(1, 2, T, d)
    terms["sse"][:, 0] = float("nan")
    tok[:, 0] = False  # BOS excluded
    acc = LayerAccumulator(T, d, [(1, 4)])
    acc.add(terms, tok, pred)
    assert torch.isfinite(acc.finalize(n_bootstrap=0, ci_level=0.95, seed=0, ratio_pair=None).per_bucket["mse"]).all()


def test_metrics_from_sums_nan_where_no_tokens():
    layout = SumLayout.of("bucket")
    s = torch.zeros(3, len(layout.columns), dtype=torch.float64)
    out = metrics_from_sums(layout.metrics, layout, s, {"sum_x": torch.zeros(3, 2, dtype=torch.float64)})
    assert torch.isnan(out["mse"]).all() and torch.isnan(out["delta_ce"]).all()


def test_metrics_need_every_sum_measured():
    """Without ce_zero (no zero-ablation pass) ce_zero and ce_loss_score are not reported; the rest is."""
    T, d = 5, 2
    terms, tok, pred = _batch(2, 3, T, d)
    del terms["ce_zero"]
    acc = LayerAccumulator(T, d, [(1, 5)])
    acc.add(terms, tok, pred)
    out = acc.finalize(n_bootstrap=0, ci_level=0.95, seed=0, ratio_pair=None)
    assert "ce_zero" not in out.metrics and "ce_loss_score" not in out.metrics
    assert {"mse", "fvu", "delta_ce", "kl"} <= set(out.per_position_json())


def test_per_dim_sums_added_early_equal_added_with_the_rest():
    """The engine adds Σx (add_per_dim) before the batch's losses exist: the same sums as one add."""
    T, d, buckets = 7, 3, [(1, 4), (4, 7)]
    terms, tok, pred = _batch(5, 3, T, d)
    one = LayerAccumulator(T, d, buckets)
    one.add(terms, tok, pred)
    two = LayerAccumulator(T, d, buckets)
    two.add_per_dim({"sum_x": terms["sum_x"]}, tok)
    two.add({k: v for k, v in terms.items() if k != "sum_x"}, tok, pred)
    a = one.finalize(n_bootstrap=10, ci_level=0.9, seed=0, ratio_pair=(0, 1))
    b = two.finalize(n_bootstrap=10, ci_level=0.9, seed=0, ratio_pair=(0, 1))
    assert a.metrics == b.metrics and "fvu" in a.metrics
    assert a.per_bucket_json() == b.per_bucket_json() and a.per_position_json() == b.per_position_json()


def test_context_ratio_of_zero_inside_and_beyond_is_one_not_missing() -> None:
    from sae_checks.aggregate import context_ratio

    beyond, inside = torch.tensor([0.0, 2.0, 0.0, 3.0]), torch.tensor([0.0, 1.0, 1.0, 0.0])
    got = context_ratio(beyond, inside)
    assert got[:3].tolist() == [1.0, 2.0, 0.0] and math.isinf(float(got[3]))
