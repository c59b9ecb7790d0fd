"""The one bootstrap (metrics/bootstrap.py), shared by the engine's bucket CIs and the cloze CIs."""

from __future__ import annotations

import pytest
import torch

from sae_checks.metrics.bootstrap import percentile_ci, resample, resample_counts
from sae_checks.metrics.cloze import bootstrap_mean_ci


def test_counts_are_the_draws_counted() -> None:
    idx = resample(7, 50, seed=3)
    counts = resample_counts(7, 50, seed=3)
    assert idx.shape == counts.shape == (50, 7)
    assert torch.equal(counts, torch.stack([torch.bincount(r, minlength=7) for r in idx]).double())
    assert torch.equal(counts.sum(1), torch.full((50,), 7.0, dtype=torch.float64))
    assert not torch.equal(resample(7, 50, seed=4), idx)  # the seed matters
    with pytest.raises(ValueError, match="n=0"):
        resample(0, 10, seed=0)


def test_the_two_consumers_resample_the_same_units() -> None:
    """A cloze CI (means of resampled values) equals the engine's way (counts weighting sums, over n) on
    the same values, seed and level."""
    v = torch.randn(40, dtype=torch.float64)
    counts = resample_counts(40, 200, seed=9)
    engine_way = percentile_ci(counts @ v / 40, 0.9)
    torch.testing.assert_close(bootstrap_mean_ci(v, n_bootstrap=200, level=0.9, seed=9), engine_way)


def test_percentile_ci_brackets_the_quantiles() -> None:
    samples = torch.arange(101, dtype=torch.float64)
    assert percentile_ci(samples, 0.9).tolist() == pytest.approx([5.0, 95.0])
