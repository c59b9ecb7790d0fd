"""Per-token next-token losses and divergences from logits (docs/definitions.md).

The engine compares one clean pass with one spliced pass per SAE. Materializing a ``log_softmax`` per
spliced pass (and its ``exp`` for KL) costs several passes over the largest tensor of the run, so the
clean side is prepared once per chunk of tokens (:class:`CleanLogits`: its logits, softmax and
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
    return _ce_aligned(torch.logsumexp(logits[:, :-1].float(), dim=-1), logits[:, :-1], tokens[:, 1:])


def kl_div(logp_clean: Tensor, logits_other: Tensor) -> Tensor:
    """KL(p_clean ‖ p_other) per position, shape (B, T); ``logp_clean`` are log-probabilities (B, T, V).

    The reference definition; the engine uses the equivalent :meth:`CleanLogits.compare`.
    """
    logp_other = torch.log_softmax(logits_other.float(), dim=-1)
    return (logp_clean.exp() * (logp_clean - logp_other)).sum(-1)


class CleanLogits(NamedTuple):
    """The clean pass's logits of some tokens, prepared once for comparison with every spliced pass.

    Shapes: logits (..., V) with ``targets`` (...) the token each position predicts (aligned: the caller
    shifts). The engine uses it per chunk of tokens (``engine.chunks.losses``). Log-normalizers are kept
    as (max, log Σ exp(z − max)): gpt2's logits sit near −100, where a float32 lse has an ulp of ~1e-5,
    too coarse for a KL of 1e-2; differences of the parts are exact enough. ``scratch``: a logits-sized
    float32 work buffer a caller may pass and reuse (on CPU, allocating a fresh logits-sized tensor per
    pass costs as much as the arithmetic: its pages are faulted in anew).
    """

    logits: Tensor  # (..., V) float32
    probs: Tensor  # (..., V) softmax of logits
    max: Tensor  # (...) max logit
    log_sum: Tensor  # (...) log Σ exp(logits − max)
    ce: Tensor  # (...) CE of the targets

    @classmethod
    def of(cls, logits: Tensor, targets: Tensor) -> CleanLogits:
        z = logits.float()
        m, log_sum = _max_log_sum(z, out=torch.empty_like(z))
        return cls(logits=z, probs=torch.softmax(z, dim=-1), max=m, log_sum=log_sum,
                   ce=_ce_aligned(m + log_sum, z, targets))

    def compare(self, logits: Tensor, targets: Tensor, *, consume: bool = False,
                scratch: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """(CE (...), KL(clean ‖ other) (...)) of another pass's logits (..., V) on the same targets.

        ``consume=True`` lets the computation overwrite ``logits`` instead of allocating another
        logits-sized tensor; the caller must not use them afterwards.
        """
        z = logits.float()
        work = scratch if scratch is not None else torch.empty_like(z)
        m, log_sum = _max_log_sum(z, out=work)
        ce = _ce_aligned(m + log_sum, z, targets)
        owned = consume or z is not logits  # a float32 copy of bf16 logits is ours to overwrite too
        diff = z.sub_(self.logits) if owned else torch.sub(z, self.logits, out=work)  # z_other − z_clean
        # Σ p (log p − log p') = Σ p (z − z') + (m' − m) + (log_sum' − log_sum)
        dot = (self.probs * diff).sum(-1) if diff.ndim != 2 else torch.einsum("nv,nv->n", self.probs, diff)
        kl = ((m - self.max) - dot) + (log_sum - self.log_sum)
        return ce, kl

    def ce_of(self, logits: Tensor, targets: Tensor, *, scratch: Tensor | None = None) -> Tensor:
        """CE (...) of another pass's logits, without KL (e.g. the zero-ablated pass)."""
        z = logits.float()
        m, log_sum = _max_log_sum(z, out=scratch if scratch is not None else torch.empty_like(z))
        return _ce_aligned(m + log_sum, z, targets)


def _ce_aligned(lse: Tensor, logits: Tensor, targets: Tensor) -> Tensor:
    return lse - logits.gather(-1, targets[..., None]).squeeze(-1).float()


def _max_log_sum(z: Tensor, out: Tensor) -> tuple[Tensor, Tensor]:
    """(max, log Σ exp(z − max)) over the last dim of z (B, T, V), with ``out`` as work space.

    Their sum is logsumexp; a row of −inf gives (0, −inf), a NaN gives NaN.
    """
    m = z.amax(dim=-1, keepdim=True)
    m = torch.where(torch.isfinite(m), m, torch.zeros_like(m))
    torch.sub(z, m, out=out).exp_()
    return m.squeeze(-1), out.sum(dim=-1).log_()
