"""Per-token reconstruction metrics of an SAE (DESIGN.md section 3).

For an activation ``x`` (B, T, d), features ``f = sae.encode(x)`` (B, T, k) and reconstruction
``x_hat = sae.decode(f)`` (B, T, d), every function returns per-token values (B, T) that the
aggregator sums per position; means are taken once, at the end, as ratios of sums.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor


class ReconstructionTerms(NamedTuple):
    """Per-token terms, each (B, T) float32; ``x`` is kept for the variance term of fvu."""

    sse: Tensor  # Σ_d (x − x̂)²: the per-token ``mse`` (sum over d, SAELens >= 6.5x convention)
    x2: Tensor  # Σ_d x²: with Σ x over tokens gives Σ_d (x − x̄)², the denominator of fvu
    l0: Tensor  # #{k : f_k ≠ 0} (≠ 0, not > 0: signed-activation SAEs exist)
    feat_l1: Tensor  # Σ_k |f_k|, the post's "feature activation norm"
    resid_norm: Tensor  # ‖x‖₂
    cos: Tensor  # cos(x, x̂)


def reconstruction_terms(x: Tensor, x_hat: Tensor, f: Tensor) -> ReconstructionTerms:
    """Per-token sse, x², l0, feat_l1, resid_norm and cos for activations (B, T, d), features (B, T, k)."""
    x = x.float()
    x_hat = x_hat.float()
    f = f.float()
    err = x - x_hat  # (B, T, d)
    return ReconstructionTerms(
        sse=err.pow(2).sum(-1),
        x2=x.pow(2).sum(-1),
        l0=torch.linalg.vector_norm(f, ord=0, dim=-1),  # the count of f ≠ 0, 5x faster than (f != 0).sum()
        feat_l1=torch.linalg.vector_norm(f, ord=1, dim=-1),
        resid_norm=x.norm(dim=-1),
        cos=torch.nn.functional.cosine_similarity(x, x_hat, dim=-1, eps=1e-8),
    )


def fvu_from_sums(sse: Tensor, x2: Tensor, sum_x: Tensor, n: Tensor) -> Tensor:
    """Fraction of variance unexplained as a ratio of sums over a set of tokens.

    fvu = Σ_tokens Σ_d (x − x̂)² / Σ_tokens Σ_d (x − x̄)², with x̄ the mean over those tokens, and
    Σ (x − x̄)² = Σ x² − ‖Σ x‖² / n. Shapes: ``sse``, ``x2``, ``n`` (...); ``sum_x`` (..., d).
    Returns NaN where n == 0; explained variance is ``1 − fvu``.
    """
    var = x2 - sum_x.pow(2).sum(-1) / n
    return sse / var
