"""Per-token reconstruction metrics of an SAE (docs/definitions.md).

For an activation ``x`` (..., d), features ``f = sae.encode(x)`` (..., k) and reconstruction
``x_hat = sae.decode(f)`` (..., d), in float32, every function returns per-token values (...) that the
aggregator sums per position; means are taken once, at the end, as ratios of sums. The registry
(``metrics.registry``: ``SSE``, ``X2``, ...) declares them as per-token sums.
"""

from __future__ import annotations

import torch
from torch import Tensor

# name -> per-token values (B, T) (or (B, T, d) for a per-dimension sum) of the "tok" sums the registry
# declares (``engine.chunks.sae_terms``): "sse", "x2", "l0", "feat_l1", "resid_norm", "cos", "sum_x", ...
ReconstructionTerms = dict[str, Tensor]


def sse(x: Tensor, x_hat: Tensor) -> Tensor:
    """Σ_d (x − x̂)²: the per-token ``mse`` (a sum over d, SAELens >= 6.5x convention)."""
    return (x - x_hat).pow(2).sum(-1)


def x2(x: Tensor) -> Tensor:
    """Σ_d x²: with Σ x over tokens gives Σ_d (x − x̄)², the denominator of fvu."""
    return x.pow(2).sum(-1)


def l0(f: Tensor) -> Tensor:
    """#{k : f_k ≠ 0} (≠ 0, not > 0: signed-activation SAEs exist)."""
    return torch.linalg.vector_norm(f, ord=0, dim=-1)  # the count of f ≠ 0, 5x faster than (f != 0).sum()


def feat_l1(f: Tensor) -> Tensor:
    """Σ_k |f_k|, the post's "feature activation norm"."""
    return torch.linalg.vector_norm(f, ord=1, dim=-1)


def resid_norm(x: Tensor) -> Tensor:
    """‖x‖₂."""
    return x.norm(dim=-1)


def cos(x: Tensor, x_hat: Tensor) -> Tensor:
    """cos(x, x̂) (eps 1e-8: a zero vector gives 0)."""
    return torch.nn.functional.cosine_similarity(x, x_hat, dim=-1, eps=1e-8)


def fvu_from_sums(sse: Tensor, x2: Tensor, sum_x: Tensor, n: Tensor) -> Tensor:
    """Fraction of variance unexplained as a ratio of sums over a set of tokens.

    fvu = Σ_tokens Σ_d (x − x̂)² / Σ_tokens Σ_d (x − x̄)², with x̄ the mean over those tokens, and
    Σ (x − x̄)² = Σ x² − ‖Σ x‖² / n. Shapes: ``sse``, ``x2``, ``n`` (...); ``sum_x`` (..., d).
    Returns NaN where n == 0; explained variance is ``1 − fvu``.
    """
    var = x2 - sum_x.pow(2).sum(-1) / n
    return sse / var
