"""Pure per-prompt functions for the cloze tasks and feature helpfulness (docs/definitions.md).

Tensors in, tensors out: no model, no ``.item()``, no I/O. The cloze runner
(``sae_checks.experiments.cloze``) builds the row layout these functions read:

    row b = [BOS, prompt tokens …, continuation tokens …, padding …]      tokens (B, T)
    prompt_len[b] = P  (BOS included)     cont_len[b] = A  (the ``" " + word`` tokens)

The prediction of continuation token i is made at position ``P − 1 + i`` (teacher forcing), so the
answer's first token is predicted at the last prompt position ``P − 1``.

Definitions (docs/definitions.md, used exactly):

- ``acc_first_token``: argmax at the last prompt position equals the answer's first token (never
  when a logit there is NaN/inf: the argmax of non-finite logits is no answer; ``finite`` flags rows).
- ``acc_word``: every answer token is the greedy argmax under teacher forcing.
- ``logp``: log-prob of the answer's first token; ``delta_logp = logp_spliced − logp_clean``.
- ``ce`` over the prompt: −log p(tok[t+1]) for the predictions made at prompt positions
  t = 1 … P−2 (BOS, t = 0, excluded; targets are prompt tokens only), mean per prompt.
- ``cont_logp``: Σ_i log p(continuation token i) under teacher forcing (lm-eval's loglikelihood);
  ``ppl = exp(−mean cont_logp)`` over prompts (lm-eval's lambada ``perplexity``).
- ``acc_choice`` (CBT): the option whose ``" " + option`` tokens have the highest summed log-prob under
  teacher forcing wins.
- Feature helpfulness: over the prompts where feature k is active (f_k ≠ 0) at any of the last 32
  prompt positions, ``mean_delta_logp`` and ``score = #(delta_logp > 0) − #(delta_logp < 0)``;
  the update returns sums and counts (merging batches is addition), the mean is taken once at the end.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor

from sae_checks.metrics.bootstrap import percentile_ci, resample
from sae_checks.metrics.reconstruction import ReconstructionTerms

CLASSES = ("both_right", "both_wrong", "clean_only", "spliced_only")
FEATURE_WINDOW = 32  # feature helpfulness looks at the last 32 prompt positions (docs/definitions.md)


class TokenStats(NamedTuple):
    """What the cloze scores read from the logits of one prediction, each of the predictions' shape."""

    logp: Tensor  # log p(target) = target logit − logsumexp, float32
    greedy: Tensor  # argmax over the vocabulary
    finite: Tensor  # bool: every logit is finite (the argmax over NaN/inf logits is no answer)


def token_stats_of(logits: Tensor, targets: Tensor) -> TokenStats:
    """:class:`TokenStats` of ``logits`` (..., V) for ``targets`` (...): logsumexp + gather, so no (..., V)
    log-softmax copy is made (gpt2's vocabulary is 50k); computed in float32."""
    lg = logits.float()
    target = lg.gather(-1, targets[..., None]).squeeze(-1)
    return TokenStats(target - torch.logsumexp(lg, dim=-1), logits.argmax(-1), torch.isfinite(logits).all(-1))


def token_logprobs(logits: Tensor, tokens: Tensor) -> Tensor:
    """log p(tok[t+1] | tok[≤t]) for the prediction made at each position t, shape (B, T−1), from ``logits``
    (B, T, V) and ``tokens`` (B, T) (:func:`token_stats_of`)."""
    return token_stats_of(logits[:, :-1], tokens[:, 1:]).logp


def continuation_index(prompt_len: Tensor, cont_len: Tensor, T: int) -> tuple[Tensor, Tensor]:
    """Positions (B, T−1) at which continuation token i is predicted (``P − 1 + i``), clamped into
    [0, T−2], and the mask (B, T−1) of the i that exist (i < A)."""
    i = torch.arange(T - 1, device=prompt_len.device)  # every offset: no host sync for the true max
    pos = (prompt_len[:, None] - 1 + i[None, :]).clamp(0, T - 2)
    valid = i[None, :] < cont_len[:, None]
    return pos, valid


def scored_positions(prompt_len: Tensor, cont_len: Tensor, T: int) -> Tensor:
    """(B, T−1) bool: the predictions :func:`cloze_scores` reads, t = 0 … P+A−2 (the row's real predictions;
    t = 0 only for the ``finite`` flag). What the others hold changes no score."""
    t = torch.arange(T - 1, device=prompt_len.device)
    return t[None, :] < (prompt_len + cont_len - 1)[:, None]


class ClozeScores(NamedTuple):
    """Per-row scores of one pass (clean or spliced), each (B,)."""

    logp_first: Tensor  # log p(answer's first token) at the last prompt position
    correct_first: Tensor  # bool: argmax there == answer's first token (acc_first_token)
    correct_word: Tensor  # bool: every continuation token is the greedy argmax (acc_word)
    cont_logp: Tensor  # Σ_i log p(continuation token i): the CBT option score
    ce_sum: Tensor  # Σ over prompt predictions t = 1..P−2 of −log p(tok[t+1])
    ce_count: Tensor  # number of those predictions (P − 2, at least 0)
    ce_terms: Tensor  # (B, T−1) per-prediction CE, 0 outside the prompt window (for delta_ce)
    finite: Tensor  # bool: every logit at the row's real prediction positions 0 … P+A−2 is finite


def cloze_scores(logits: Tensor, tokens: Tensor, prompt_len: Tensor, cont_len: Tensor) -> ClozeScores:
    """Scores of every row: ``logits`` (B, T, V), ``tokens`` (B, T), ``prompt_len``/``cont_len`` (B,).

    See the module docstring for the row layout and the definitions.
    """
    return scores_from_stats(token_stats_of(logits[:, :-1], tokens[:, 1:]), tokens, prompt_len, cont_len)


def scores_from_stats(stats: TokenStats, tokens: Tensor, prompt_len: Tensor, cont_len: Tensor) -> ClozeScores:
    """:func:`cloze_scores` from the :class:`TokenStats` (B, T−1) of the predictions made at t = 0 … T−2 of
    ``tokens[:, t + 1]``; only the :func:`scored_positions` are read, so a caller may fill only those
    (``experiments.cloze_passes``: from final residuals, a chunk of tokens at a time)."""
    B, T = tokens.shape
    logp, greedy, ok = stats
    pos, valid = continuation_index(prompt_len, cont_len, T)  # (B, A)
    target = tokens[:, 1:].gather(1, pos)  # (B, A): tokens[pos + 1]
    lp_cont = logp.gather(1, pos)
    hit = (greedy.gather(1, pos) == target) & ok.gather(1, pos)
    used = scored_positions(prompt_len, cont_len, T)  # (B, T-1) the row's real predictions
    t = torch.arange(T - 1, device=tokens.device)
    prompt_pred = (t[None, :] >= 1) & (t[None, :] <= prompt_len[:, None] - 2)  # (B, T-1)
    ce = torch.where(prompt_pred, -logp, torch.zeros_like(logp))
    return ClozeScores(
        logp_first=lp_cont[:, 0],
        correct_first=hit[:, 0],
        correct_word=(hit | ~valid).all(1),
        cont_logp=torch.where(valid, lp_cont, torch.zeros_like(lp_cont)).sum(1),
        ce_sum=ce.sum(1),
        ce_count=prompt_pred.sum(1),
        ce_terms=ce,
        finite=(ok | ~used).all(1),
    )


def perplexity(cont_logp: Tensor) -> Tensor:
    """lm-evaluation-harness' lambada perplexity: ``exp(−mean(cont_logp))`` over prompts (N,) -> (),
    ``cont_logp`` the summed log-prob of each continuation. Non-finite in, non-finite out."""
    return torch.exp(-cont_logp.double().mean())


def prompt_mask(prompt_len: Tensor, T: int, *, include_bos: bool = False) -> Tensor:
    """(B, T) bool: the prompt positions 0 … P−1 of each row, BOS (position 0) left out by default."""
    t = torch.arange(T, device=prompt_len.device)
    m = t[None, :] < prompt_len[:, None]
    if not include_bos:
        m = m & (t[None, :] >= 1)
    return m


def window_mask(prompt_len: Tensor, T: int, window: int = FEATURE_WINDOW, *, include_bos: bool = False) -> Tensor:
    """(B, T) bool: the last ``window`` prompt positions max(P − window, 0) … P−1 (BOS out by default)."""
    t = torch.arange(T, device=prompt_len.device)
    return prompt_mask(prompt_len, T, include_bos=include_bos) & (t[None, :] >= prompt_len[:, None] - window)


class PromptSaeSums(NamedTuple):
    """Per-row sums over the masked positions, each (B,): divide by ``n_tokens`` for the per-prompt means."""

    sse: Tensor  # Σ_t Σ_d (x − x̂)²  (mse per token is the sum over d)
    l0: Tensor  # Σ_t #{k : f_k ≠ 0}
    resid_norm: Tensor  # Σ_t ‖x‖₂
    n_tokens: Tensor  # number of masked positions


def prompt_sae_sums(terms: ReconstructionTerms, mask: Tensor) -> PromptSaeSums:
    """mse, l0 and resid_norm summed over the positions in ``mask`` (B, T), from the per-token terms
    (``metrics.reconstruction``, each (B, T)) of the SAE on the *clean* activations."""
    m = mask.float()
    return PromptSaeSums((terms["sse"] * m).sum(1), (terms["l0"] * m).sum(1), (terms["resid_norm"] * m).sum(1),
                         mask.sum(1))


def classify(clean_right: Tensor, spliced_right: Tensor) -> Tensor:
    """Class index (B,) into ``CLASSES``: both_right 0, both_wrong 1, clean_only 2, spliced_only 3."""
    c, s = clean_right.bool(), spliced_right.bool()
    out = torch.full(c.shape, 1, dtype=torch.long, device=c.device)
    out[c & s] = 0
    out[c & ~s] = 2
    out[~c & s] = 3
    return out


def choice_correct(option_logp: Tensor, answer_index: Tensor) -> Tensor:
    """acc_choice per prompt (N,): the option with the highest summed log-prob (N, O) is the answer.

    Ties go to the first option; ``answer_index`` −1 (answer not among the options) is never right;
    options that do not exist are −inf.
    """
    return option_logp.argmax(-1) == answer_index


def active_features(f: Tensor, mask: Tensor) -> Tensor:
    """(B, k) bool: feature k is active (f_k ≠ 0) at any position in ``mask`` (B, T) of ``f`` (B, T, k)."""
    return ((f != 0) & mask[..., None]).any(1)


def active_counts(f: Tensor, rows: Tensor, n_rows: int) -> Tensor:
    """(n_rows, k) int32: at how many of the positions ``f`` (n, k) holds, row ``rows`` (n,), feature k is
    active (f_k ≠ 0). Summed over chunks of a batch's masked positions, ``> 0`` is :func:`active_features`."""
    out = torch.zeros(n_rows, f.shape[-1], dtype=torch.int32, device=f.device)
    return out.index_add_(0, rows, (f != 0).int())


class FeatureSums(NamedTuple):
    """Per-feature sums over prompts, each (k,); merge with :func:`add_feature_sums` (addition)."""

    n_active: Tensor  # number of prompts where the feature is active
    sum_delta: Tensor  # Σ delta_logp over those prompts
    n_pos: Tensor  # #(delta_logp > 0)
    n_neg: Tensor  # #(delta_logp < 0)


def feature_sums(active: Tensor, delta_logp: Tensor) -> FeatureSums:
    """Helpfulness sums from ``active`` (B, k) bool and ``delta_logp`` (B,) (docs/definitions.md)."""
    a = active.double()
    d = delta_logp.double()
    return FeatureSums(
        n_active=a.sum(0),
        sum_delta=(a * d[:, None]).sum(0),
        n_pos=(a * (d > 0).double()[:, None]).sum(0),
        n_neg=(a * (d < 0).double()[:, None]).sum(0),
    )


def add_feature_sums(a: FeatureSums, b: FeatureSums) -> FeatureSums:
    """Merge two shards' sums: elementwise addition."""
    return FeatureSums(*(x + y for x, y in zip(a, b, strict=True)))


def feature_stats(s: FeatureSums) -> tuple[Tensor, Tensor]:
    """(mean_delta_logp, score), each (k,): sum_delta / n_active (NaN where n_active = 0) and n_pos − n_neg."""
    return s.sum_delta / s.n_active, s.n_pos - s.n_neg


def bootstrap_mean_ci(values: Tensor, *, n_bootstrap: int, level: float, seed: int) -> Tensor:
    """Percentile bootstrap CI (2,) of the mean of ``values`` (N,) over resampled prompts.

    Non-finite values are dropped first; NaN (2,) when nothing is left or ``n_bootstrap`` is 0.
    Seeded: the same values and seed give the same interval.
    """
    v = values.double()
    v = v[torch.isfinite(v)]
    if v.numel() == 0 or n_bootstrap <= 0:
        return torch.full((2,), float("nan"), dtype=torch.float64)
    means = v.cpu()[resample(v.numel(), n_bootstrap, seed)].mean(1)  # (R,)
    return percentile_ci(means, level)
