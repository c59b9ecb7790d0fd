"""Latent-health functions against an independent NumPy computation of SAEBench core's definitions."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from sae_checks.metrics import latents


def _acts(seed: int, n: int = 64, d_sae: int = 12) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    f = torch.relu(torch.randn(n, d_sae, generator=g) - 0.8)
    f[:, 0] = 0.0  # one dead latent
    f[:, 1] = 1.0  # one latent firing on every token
    valid = torch.rand(n, generator=g) > 0.2
    return f, valid


@given(seed=st.integers(0, 10_000), split=st.integers(1, 63))
@settings(max_examples=25, deadline=None)
def test_firing_counts_batch_by_batch_equal_all_at_once(seed: int, split: int) -> None:
    f, valid = _acts(seed)
    whole = latents.firing_counts(f, valid)
    parts = latents.firing_counts(f[:split], valid[:split]) + latents.firing_counts(f[split:], valid[split:])
    assert torch.equal(whole, parts)


def test_density_figures_equal_saebench_definitions() -> None:
    f, valid = _acts(3)
    fn, vn = f.numpy(), valid.numpy()
    dens = ((fn[vn] > 0).sum(0)) / vn.sum()  # SAEBench: (f > 0) over masked tokens / tokens
    got = latents.density(latents.firing_counts(f, valid), int(vn.sum()))
    assert got.n_tokens == int(vn.sum())
    assert got.frac_alive == pytest.approx((dens > 0).mean())
    assert got.frac_dead == pytest.approx(1 - (dens > 0).mean())
    assert got.freq_over_1_percent == pytest.approx((dens > 0.01).mean())
    assert got.freq_over_10_percent == pytest.approx((dens > 0.1).mean())
    assert got.n_dead == int((dens == 0).sum()) >= 1
    expected, _ = np.histogram(np.clip(np.log10(dens[dens > 0]), -8, 0), bins=np.array(latents.HIST_EDGES))
    assert got.histogram == expected.tolist()
    assert sum(got.histogram) + got.n_dead == f.shape[1]


def test_density_without_tokens_is_nan_not_zero_dead() -> None:
    got = latents.density(torch.zeros(5, dtype=torch.int64), 0)
    assert math.isnan(got.frac_alive) and math.isnan(got.frac_dead)


def test_l2_ratio_and_bias_equal_saebench() -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(50, 6, generator=g)
    x[0] = 0.0  # below the 1e-4 floor: divides by 1
    x_hat = 0.8 * x + 0.1 * torch.randn(50, 6, generator=g)
    xn, xh = x.numpy().astype(np.float64), x_hat.numpy().astype(np.float64)
    norm_in = np.linalg.norm(xn, axis=-1)
    norm_in[np.abs(norm_in) < 1e-4] = 1
    ratio = np.linalg.norm(xh, axis=-1) / norm_in
    assert latents.l2_ratio(x, x_hat).double().numpy() == pytest.approx(ratio, rel=1e-5)
    sq, dot = latents.bias_terms(x, x_hat)
    bias = (np.linalg.norm(xh, axis=-1) ** 2).mean() / (xn * xh).sum(-1).mean()
    assert float(sq.sum() / dot.sum()) == pytest.approx(bias, rel=1e-5)
    assert float(sq.sum() / dot.sum()) < 1  # a shrunk reconstruction has bias below 1


@pytest.mark.parametrize("chunk", [1, 3, 7, 4096])
def test_max_decoder_cosine_in_chunks_equals_the_full_matrix(chunk: int) -> None:
    g = torch.Generator().manual_seed(1)
    w = torch.randn(10, 4, generator=g)
    w[7] = 3 * w[2]  # a near-duplicate latent: cosine 1 with latent 2
    wn = w.numpy().astype(np.float64)
    unit = wn / np.linalg.norm(wn, axis=1, keepdims=True)
    sims = unit @ unit.T
    np.fill_diagonal(sims, -np.inf)
    got = latents.max_decoder_cosine(w, chunk=chunk)
    assert got.double().numpy() == pytest.approx(sims.max(1), abs=1e-5)
    assert float(got[2]) == pytest.approx(1.0, abs=1e-5) and float(got[7]) == pytest.approx(1.0, abs=1e-5)
    assert latents.decoder_norms(w).numpy() == pytest.approx(np.linalg.norm(wn, axis=1), rel=1e-5)


def test_histogram_distance_is_zero_for_equal_and_counts_decades_moved() -> None:
    a = [0, 4, 0, 0]
    assert latents.histogram_distance(a, [0, 8, 0, 0]) == 0.0
    assert latents.histogram_distance(a, [0, 0, 4, 0]) == pytest.approx(latents.HIST_STEP)
    assert latents.histogram_distance(a, [0, 0, 0, 4]) == pytest.approx(2 * latents.HIST_STEP)
    assert math.isnan(latents.histogram_distance(a, [0, 0, 0, 0]))
