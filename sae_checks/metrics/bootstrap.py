"""The one bootstrap: seeded resamples of N units (sequences, prompts) and percentile intervals.

Used by the engine's per-bucket CIs (``sae_checks.aggregate``: resample counts weighting per-sequence sums,
so a resampled mean is a ratio of resampled sums) and the cloze CIs (``metrics.cloze.bootstrap_mean_ci``:
means of resampled per-prompt values). Both draw the same indices for the same (N, resamples, seed).
"""

from __future__ import annotations

import torch
from torch import Tensor


def resample(n: int, n_bootstrap: int, seed: int) -> Tensor:
    """(n_bootstrap, n) int64: each row draws n of ``range(n)`` with replacement, from a CPU generator
    seeded with ``seed`` (the same arguments give the same draws)."""
    if n < 1 or n_bootstrap < 1:
        raise ValueError(f"n={n!r}, n_bootstrap={n_bootstrap!r}: both must be >= 1")
    gen = torch.Generator().manual_seed(seed)
    return torch.randint(0, n, (n_bootstrap, n), generator=gen)


def resample_counts(n: int, n_bootstrap: int, seed: int) -> Tensor:
    """(n_bootstrap, n) float64: how often each unit is drawn in each resample of :func:`resample` (each row
    sums to n), for resampling sums: ``counts @ per_unit_sums``."""
    idx = resample(n, n_bootstrap, seed)
    return torch.zeros(n_bootstrap, n, dtype=torch.float64).scatter_add_(
        1, idx, torch.ones(n_bootstrap, n, dtype=torch.float64))


def percentile_ci(samples: Tensor, level: float) -> Tensor:
    """(2,) percentile interval of ``samples`` (R,) at confidence ``level``: the (1 − level)/2 and
    (1 + level)/2 quantiles, in the samples' dtype. The caller drops non-finite samples first."""
    alpha = (1 - level) / 2
    return torch.quantile(samples, torch.tensor([alpha, 1 - alpha], dtype=samples.dtype))
