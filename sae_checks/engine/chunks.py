"""Token chunks: every per-token reduction over the vocabulary or the SAE's features, computed a chunk of
tokens at a time, so peak memory is bounded by a chunk, not by batch x context x vocabulary (issue 10.2).

At gpt2-small's vocabulary (50257) and context 1024 one batch of 8 sequences holds 1.6 GB of float32
logits per pass, and an SAE of width 24576 another 0.8 GB of feature activations; CE, KL, the zero-ablation
CE, the cloze scores and every SAE term need only per-token values. So the engine's passes stop at the
final residual (``forward_from(..., final="resid")``: (B, T, d_model), 65x smaller than the logits at
gpt2 size), and :func:`losses` applies the final norm and unembedding (TransformerLens' own modules,
with its soft-cap) one chunk of tokens at a time, comparing every spliced pass with the clean one in the
same chunk: the clean logits of a chunk are computed once, however many SAEs are compared with them.
:func:`sae_terms` does the same for the SAE's encode / decode.

The chunk size comes from a byte budget (:func:`chunk_tokens`: ``LOGIT_BUDGET``, or less when the device
has less free memory) unless the run sets ``chunk_tokens``. Values are those of the unchunked
computation up to float32 summation order (tests/test_engine.py: test_token_chunks_change_nothing,
test_chunked_losses_equal_the_full_logits; tests/test_cloze_chunks.py).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import torch
from torch import Tensor

from sae_checks.engine.memory import FLOAT, LOGIT_BUDGET, free_memory
from sae_checks.metrics import registry
from sae_checks.metrics.cloze import TokenStats, token_stats_of
from sae_checks.metrics.loss import CleanLogits
from sae_checks.metrics.reconstruction import ReconstructionTerms
from sae_checks.metrics.registry import SaeContext, Sum

LOGIT_TENSORS = 4  # clean logits, clean probabilities, spliced logits, exp work space
SAE_TENSORS = 3  # pre-activations, features, one temporary of the activation function


def chunk_tokens(width: int, tensors: int, budget: int = LOGIT_BUDGET, free: int | None = None) -> int:
    """Tokens per chunk so that ``tensors`` float32 (tokens, width) tensors fit in ``budget`` bytes (or an
    eighth of ``free`` bytes when that is smaller); at least 1."""
    if width < 1 or tensors < 1:
        raise ValueError(f"width={width!r}, tensors={tensors!r}: must be >= 1")
    if free is not None:
        budget = min(budget, max(free, 0) // 8)
    return max(1, budget // (FLOAT * tensors * width))


class Chunks(NamedTuple):
    """Tokens per chunk of the reductions over the vocabulary (``logits``) and the SAE's features (``sae``)."""

    logits: int
    sae: int


def chunk_sizes(model: Any, saes: Sequence[Any], device: str, chunk: int | None = None) -> Chunks:
    """``chunk`` tokens for both (a run's ``chunk_tokens``), or when None each from the byte budget: the
    model's vocabulary for the logits, the widest of ``saes`` (LoadedSAE-like, ``d_sae``) for the features."""
    if chunk is not None:
        return Chunks(chunk, chunk)
    free = free_memory(device)
    widest = max((int(getattr(s, "d_sae", 0) or 0) for s in saes), default=1)
    return Chunks(chunk_tokens(int(model.cfg.d_vocab), LOGIT_TENSORS, free=free),
                  chunk_tokens(max(widest, 1), SAE_TENSORS, free=free))


def spans(n: int, chunk: int) -> Iterator[slice]:
    """Slices covering range(n) in pieces of at most ``chunk``."""
    for start in range(0, n, max(1, chunk)):
        yield slice(start, min(start + chunk, n))


def unembed(model: Any, resid: Tensor) -> Tensor:
    """Logits from final residuals (..., d_model): TransformerLens' final norm, unembedding and soft-cap,
    i.e. what ``model(...)`` does after its last block."""
    from transformer_lens.utils import apply_softcap

    x = model.ln_final(resid) if model.cfg.normalization_type is not None else resid
    return apply_softcap(model.unembed(x), model.cfg.output_logits_soft_cap)


def token_stats(model: Any, resid: Tensor, targets: Tensor, chunk: int) -> TokenStats:
    """log p(target), the greedy token and whether every logit is finite (``metrics.cloze.token_stats_of``)
    for final residuals ``resid`` (n, d_model) and ``targets`` (n,), unembedding ``chunk`` tokens at a time:
    the cloze scores read a few positions per row, never a (rows, T, vocabulary) tensor."""
    parts = [token_stats_of(unembed(model, resid[s][None])[0], targets[s]) for s in spans(resid.shape[0], chunk)]
    if not parts:  # no position asked for
        empty = resid.new_zeros(0, dtype=torch.float32)
        return TokenStats(empty, targets[:0], empty.bool())
    return TokenStats(*(torch.cat(t) for t in zip(*parts, strict=True)))


@dataclass
class Losses:
    """Per-token values of one batch (B, T), position T-1 set to 0 (no next token there)."""

    ce_clean: Tensor
    clean_bad: Tensor  # max + log Σ exp + min of the clean logits: non-finite where a clean logit is
    ce: dict[str, Tensor]  # key -> CE of that pass
    kl: dict[str, Tensor]  # key -> KL(clean ‖ that pass), for the keys asked for


def losses(model: Any, tokens: Tensor, clean: Tensor, others: Mapping[str, Tensor], *, kl: set[str],
           chunk: int) -> Losses:
    """Next-token CE of the clean pass and of every pass in ``others`` (key -> final residual (B, T, d)),
    and KL(clean ‖ pass) for the keys in ``kl``, computed ``chunk`` tokens at a time from the final
    residuals (``clean`` (B, T, d)). The prediction at t is of token t + 1."""
    B, T = tokens.shape
    targets = torch.nn.functional.pad(tokens[:, 1:], (0, 1)).reshape(-1)  # (B*T,); T-1 masked by the caller
    flat = {k: r.reshape(B * T, -1) for k, r in others.items()}
    clean_flat = clean.reshape(B * T, -1)
    zeros = torch.zeros(B * T, dtype=torch.float32, device=tokens.device)
    out = Losses(ce_clean=zeros.clone(), clean_bad=zeros.clone(), ce={k: zeros.clone() for k in others},
                 kl={k: zeros.clone() for k in others if k in kl})
    scratch: Tensor | None = None
    for s in spans(B * T, chunk):
        z = unembed(model, clean_flat[s][None])[0].float()  # (n, V)
        if scratch is None or scratch.shape != z.shape:
            scratch = torch.empty_like(z)
        ref = CleanLogits.of(z, targets[s])
        out.ce_clean[s] = ref.ce
        out.clean_bad[s] = ref.max + ref.log_sum + z.amin(dim=-1)
        for key, resid in flat.items():
            other = unembed(model, resid[s][None])[0].float()
            if key in out.kl:
                out.ce[key][s], out.kl[key][s] = ref.compare(other, targets[s], consume=True, scratch=scratch)
            else:
                out.ce[key][s] = ref.ce_of(other, targets[s], scratch=scratch)
            del other
        del z, ref
    last = torch.arange(B * T, device=tokens.device) % T == T - 1
    for t in (out.ce_clean, *out.ce.values(), *out.kl.values()):
        t.masked_fill_(last, 0.0)
    out.ce_clean, out.clean_bad = out.ce_clean.view(B, T), out.clean_bad.view(B, T)
    out.ce = {k: v.view(B, T) for k, v in out.ce.items()}
    out.kl = {k: v.view(B, T) for k, v in out.kl.items()}
    return out


def sae_terms(sae: Any, x: Tensor, chunk: int, visit: Callable[[slice, Tensor], None] | None = None, *,
              sums: Sequence[Sum] | None = None, mask: Tensor | None = None) -> tuple[Tensor, ReconstructionTerms]:
    """(x̂ (B, T, d) in x's dtype, per-token terms: sum name -> (B, T), or (B, T, d) for a per_dim sum) of
    ``sae`` on ``x`` (B, T, d), encoding ``chunk`` tokens at a time: the (tokens, d_sae) features of one
    chunk are alive at once. ``sums``: the "tok" sums to compute (``metrics.registry.Sum``; default every
    one the registered bucket metrics need), each from a float32 ``SaeContext`` of the chunk; ``mask``
    (B, T) bool: the valid tokens the context carries (default all).
    ``visit(span, f)``: called with each chunk's features f (n, d_sae) and its span of the B * T tokens
    (row-major), for what else a caller reads from them (the cloze runner's active features)."""
    B, T, d = x.shape
    tok_sums = registry.SumLayout.of("bucket").tok if sums is None else tuple(sums)
    flat = x.reshape(B * T, d)
    flat_mask = mask.reshape(B * T) if mask is not None else None
    x_hat = torch.empty_like(flat)
    parts: list[dict[str, Tensor]] = []
    for s in spans(B * T, chunk):
        xs = flat[s][None]  # (1, n, d): the (batch, pos, d) layout every sae_lens SAE accepts
        f = sae.encode(xs.to(sae.dtype))
        xh = sae.decode(f).to(x.dtype)
        ms = flat_mask[s][None] if flat_mask is not None else torch.ones(xs.shape[:2], dtype=torch.bool,
                                                                          device=xs.device)
        parts.append(registry.evaluate(tok_sums, SaeContext(xs.float(), xh.float(), f.float(), ms)))
        if visit is not None:
            visit(s, f[0])
        x_hat[s] = xh[0]
        del f, xh
    terms = {name: torch.cat([p[name] for p in parts], dim=1).view(B, T, *parts[0][name].shape[2:])
             for name in (parts[0] if parts else {})}
    return x_hat.view(B, T, d), terms
