"""Per-token next-token losses and divergences from logits (DESIGN.md section 3)."""

from __future__ import annotations

import torch
from torch import Tensor


def next_token_ce(logits: Tensor, tokens: Tensor) -> Tensor:
    """CE of the prediction made at position t of token t+1: −log p(tok[t+1]), shape (B, T−1).

    ``logits`` (B, T, V), ``tokens`` (B, T). Computed in float32.
    """
    logp = torch.log_softmax(logits[:, :-1].float(), dim=-1)  # (B, T-1, V)
    return -logp.gather(-1, tokens[:, 1:, None]).squeeze(-1)


def kl_div(logp_clean: Tensor, logits_other: Tensor) -> Tensor:
    """KL(p_clean ‖ p_other) per position, shape (B, T); ``logp_clean`` are log-probabilities (B, T, V)."""
    logp_other = torch.log_softmax(logits_other.float(), dim=-1)
    return (logp_clean.exp() * (logp_clean - logp_other)).sum(-1)
