"""Per-token next-token losses and divergences from logits (DESIGN.md section 3).

The engine compares one clean pass with one spliced pass per layer. Materializing a (B, T, V)
``log_softmax`` per spliced pass (and its ``exp`` for KL) costs several passes over the largest tensor
of the run, so the clean side is prepared once per batch (:class:`CleanLogits`: its logits, softmax and
logsumexp) and each spliced pass needs only its logsumexp and one product with the clean probabilities:

    CE_t  = lse(z'_t) − z'_t[tok_{t+1}]
    KL_t  = Σ_v p_t,v (log p_t,v − log p'_t,v) = Σ_v p_t,v (z_t,v − z'_t,v) + lse(z'_t) − lse(z_t)

with z the clean logits, z' the spliced ones, p = softmax(z). Identical logits give exactly 0.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor


def next_token_ce(logits: Tensor, tokens: Tensor) -> Tensor:
    """CE of the prediction made at position t of token t+1: −log p(tok[t+1]), shape (B, T−1).

    ``logits`` (B, T, V), ``tokens`` (B, T). Computed in float32.
    """
    return _ce_from_lse(torch.logsumexp(logits.float(), dim=-1), logits, tokens)


def _ce_from_lse(lse: Tensor, logits: Tensor, tokens: Tensor) -> Tensor:
    target = logits[:, :-1].gather(-1, tokens[:, 1:, None]).squeeze(-1).float()  # (B, T-1)
    return lse[:, :-1] - target


def kl_div(logp_clean: Tensor, logits_other: Tensor) -> Tensor:
    """KL(p_clean ‖ p_other) per position, shape (B, T); ``logp_clean`` are log-probabilities (B, T, V).

    The reference definition; the engine uses the equivalent :meth:`CleanLogits.compare`.
    """
    logp_other = torch.log_softmax(logits_other.float(), dim=-1)
    return (logp_clean.exp() * (logp_clean - logp_other)).sum(-1)


class CleanLogits(NamedTuple):
    """The clean pass's logits prepared once per batch for comparison with every spliced pass.

    ``scratch`` is a (B, T, V) buffer reused by every :meth:`compare`: on CPU, allocating a fresh
    logits-sized tensor per pass costs as much as the arithmetic (its pages are faulted in anew).
    Log-normalizers are kept as (max, log Σ exp(z − max)): gpt2's logits sit near −100, where a float32
    lse has an ulp of ~1e-5, too coarse for a KL of 1e-2; differences of the parts are exact enough.
    """

    logits: Tensor  # (B, T, V) float32
    probs: Tensor  # (B, T, V) softmax of logits
    max: Tensor  # (B, T) max logit
    log_sum: Tensor  # (B, T) log Σ exp(logits − max)
    ce: Tensor  # (B, T-1) next-token CE
    scratch: Tensor  # (B, T, V) float32 work buffer

    @classmethod
    def of(cls, logits: Tensor, tokens: Tensor) -> CleanLogits:
        z = logits.float()
        m, log_sum = _max_log_sum(z, out=torch.empty_like(z))
        return cls(logits=z, probs=torch.softmax(z, dim=-1), max=m, log_sum=log_sum,
                   ce=_ce_from_lse(m + log_sum, z, tokens), scratch=torch.empty_like(z))

    def compare(self, logits: Tensor, tokens: Tensor, *, consume: bool = False) -> tuple[Tensor, Tensor]:
        """(CE (B, T−1), KL(clean ‖ other) (B, T)) of another pass's logits on the same tokens.

        ``consume=True`` lets the computation overwrite ``logits`` instead of allocating another
        (B, T, V) tensor; the caller must not use them afterwards.
        """
        z = logits.float()
        m, log_sum = _max_log_sum(z, out=self.scratch)
        ce = _ce_from_lse(m + log_sum, z, tokens)
        owned = consume or z is not logits  # a float32 copy of bf16 logits is ours to overwrite too
        diff = z.sub_(self.logits) if owned else torch.sub(z, self.logits, out=self.scratch)  # z_other − z_clean
        # Σ p (log p − log p') = Σ p (z − z') + (m' − m) + (log_sum' − log_sum)
        kl = ((m - self.max) - torch.einsum("btv,btv->bt", self.probs, diff)) + (log_sum - self.log_sum)
        return ce, kl

    def ce_of(self, logits: Tensor, tokens: Tensor) -> Tensor:
        """Next-token CE (B, T−1) of another pass's logits, without KL (e.g. the zero-ablated pass)."""
        z = logits.float()
        m, log_sum = _max_log_sum(z, out=self.scratch)
        return _ce_from_lse(m + log_sum, z, tokens)


def _max_log_sum(z: Tensor, out: Tensor) -> tuple[Tensor, Tensor]:
    """(max, log Σ exp(z − max)) over the last dim of z (B, T, V), with ``out`` as work space.

    Their sum is logsumexp; a row of −inf gives (0, −inf), a NaN gives NaN.
    """
    m = z.amax(dim=-1, keepdim=True)
    m = torch.where(torch.isfinite(m), m, torch.zeros_like(m))
    torch.sub(z, m, out=out).exp_()
    return m.squeeze(-1), out.sum(dim=-1).log_()
