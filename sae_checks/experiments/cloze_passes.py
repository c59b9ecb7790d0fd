"""The cloze runner's forward passes: clean, with one SAE spliced in, and the scores read from them.

Every pass stops at the final residual (B, T, d_model) (``engine.hooks.forward_from(..., final="resid")``);
the scores (``metrics.cloze.scores_from_stats``) read only the predictions a row scores (its real positions,
``metrics.cloze.scored_positions``), unembedded a chunk of tokens at a time (``engine.chunks.token_stats``),
and the SAE encodes / decodes a chunk of tokens at a time (``engine.chunks.sae_terms``): no (rows, T,
vocabulary) or (rows, T, d_sae) tensor exists, whatever the batch. At gpt2-small's size a batch of 16 rows
of 100 tokens held 320 MB per logits tensor, several of them per splice pass.

The passes are the engine's (``engine.kernel``: ``clean_pass``, ``splice_pass``, the positions left
unspliced, the leak checks before and after every pass); the caller runs them inside
``engine.kernel.pass_context`` (inference mode, the run's dtype, the fused attention), as the engine does.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NamedTuple

import torch
from torch import Tensor

from sae_checks.engine.chunks import Chunks, sae_terms, token_stats
from sae_checks.engine.hooks import keep_positions, start_hooks
from sae_checks.engine.kernel import clean_pass, specials_of, splice_pass, unspliced
from sae_checks.experiments.cloze_items import EncodedItems, RowBatch, batches, make_batch
from sae_checks.metrics.cloze import (
    ClozeScores,
    TokenStats,
    choice_correct,
    scored_positions,
    scores_from_stats,
)
from sae_checks.metrics.reconstruction import ReconstructionTerms

if TYPE_CHECKING:
    from sae_checks.loading.saes import LoadedSAE


class Spliced(NamedTuple):
    """One splice pass: its final residual and the SAE's per-token terms on the clean activation."""

    resid: Tensor  # (B, T, d_model) final residual with x replaced by x̂
    terms: ReconstructionTerms  # (B, T) each: sse, l0, resid_norm, … of the SAE on the clean x


@dataclass(frozen=True)
class Passes:
    """How the passes of one cloze task run: on ``model``, caching ``hooks`` in the clean pass, in token
    ``chunks``, leaving the special tokens (BOS) clean unless ``splice_bos``; rows padded with ``pad_id``."""

    model: Any
    hooks: list[str]  # what the clean pass caches: the SAEs' hooks and their splice start points
    chunks: Chunks  # tokens per chunk of the unembedding and of the SAE's features
    splice_bos: bool  # splice the BOS position too
    pad_id: int  # token of the right padding
    specials: Tensor | None = None  # special token ids left unspliced (engine.kernel.unspliced); None = the
    # model tokenizer's (engine.kernel.specials_of)

    def batch(self, prompts: list[list[int]], conts: list[list[int]]) -> RowBatch:
        return make_batch(prompts, conts, self.pad_id, self.model.cfg.device)

    def clean(self, batch: RowBatch, stop: int | None = None) -> tuple[Tensor, dict[str, Tensor]]:
        """One clean pass caching ``hooks`` (``engine.kernel.clean_pass``): (final residual (B, T, d_model),
        activations); with ``stop`` it runs only the blocks before it and returns the residual there."""
        return clean_pass(self.model, batch.tokens, self.hooks, stop)

    def keep(self, batch: RowBatch) -> Tensor:
        """(B, T) positions the splice leaves clean (``engine.kernel.unspliced``): padding always, the
        special tokens (BOS) unless ``splice_bos``."""
        specials = self.specials if self.specials is not None else specials_of(self.model)
        keep = unspliced(batch.tokens, specials, self.splice_bos, batch.attention_mask)
        assert keep is not None  # the attention mask always gives one
        return keep

    def splice(self, ls: LoadedSAE, acts: Mapping[str, Tensor], batch: RowBatch,
               visit: Callable[[slice, Tensor], None] | None = None) -> Spliced:
        """The pass with x replaced by x̂ = sae.decode(sae.encode(x)) at ``ls``'s hook (except the
        :meth:`keep` positions), from the clean ``acts``; ``visit`` sees the features chunk by chunk
        (``engine.chunks.sae_terms``)."""
        x = acts[ls.hook_name]  # (B, T, d) clean
        x_hat, terms = sae_terms(ls.sae, x, self.chunks.sae, visit)
        new = keep_positions(x, x_hat, self.keep(batch))
        del x_hat
        return Spliced(self.forward(ls.hook_name, acts, new, batch.tokens), terms)

    def forward(self, hook: str, acts: Mapping[str, Tensor], new: Tensor, tokens: Tensor) -> Tensor:
        """Final residual (B, T, d_model) of the pass with ``new`` at ``hook`` instead of the clean
        ``acts[hook]``, started as late as it can (``engine.kernel.splice_pass``)."""
        return splice_pass(self.model, hook, acts, new, tokens)[0]

    def logp(self, resid: Tensor, targets: Tensor) -> Tensor:
        """log p(target) (n,) from final residuals (n, d_model) (``engine.chunks.token_stats``)."""
        return token_stats(self.model, resid, targets, self.chunks.logits).logp

    def scores(self, resid: Tensor, batch: RowBatch) -> ClozeScores:
        """``metrics.cloze.cloze_scores`` of the pass whose final residual is ``resid`` (B, T, d_model),
        unembedding only the predictions a row scores (t = 0 … P+A−2), a chunk of tokens at a time."""
        tokens = batch.tokens
        B, T = tokens.shape
        b, t = scored_positions(batch.prompt_len, batch.cont_len, T).nonzero(as_tuple=True)
        got = token_stats(self.model, resid[b, t], tokens[b, t + 1], self.chunks.logits)
        logp = torch.zeros(B, T - 1, dtype=got.logp.dtype, device=tokens.device)
        greedy = torch.zeros(B, T - 1, dtype=got.greedy.dtype, device=tokens.device)
        finite = torch.ones(B, T - 1, dtype=torch.bool, device=tokens.device)
        logp[b, t], greedy[b, t], finite[b, t] = got.logp, got.greedy, got.finite
        return scores_from_stats(TokenStats(logp, greedy, finite), tokens, batch.prompt_len, batch.cont_len)


def progress_iter(items: Iterable[Any], progress: Any, desc: str) -> Any:
    """One update per item to ``progress``: a ``sae_checks.progress.Progress``, or a bool (True = tqdm)."""
    from sae_checks import progress as _p

    reporter = progress if not isinstance(progress, bool) else _p.TqdmProgress("batch") if progress else None
    return _p.iterate(items, reporter, desc)


def choice_passes(passes: Passes, saes: Mapping[str, LoadedSAE], enc: EncodedItems, batch_size: int,
                  progress: Any, task: str) -> dict[str, Tensor]:
    """acc_choice (N,) as 0/1 floats, clean (key ``"clean"``) and per SAE name: one row per (prompt,
    option), each scored by the summed log-prob of the option's tokens under teacher forcing."""
    assert enc.options is not None
    options = enc.options
    N = len(enc.prompts)
    O_max = max((len(o) for o in options), default=0)
    rows = [(i, j) for i in range(N) for j in range(len(options[i]))]
    scores = {k: torch.full((N, max(O_max, 1)), float("-inf"), dtype=torch.float64) for k in ("clean", *saes)}
    lengths = [len(enc.prompts[i]) + len(options[i][j]) for i, j in rows]
    for ridx in progress_iter(list(batches(lengths, batch_size)), progress, f"{task} options"):
        pairs = [rows[r] for r in ridx]
        batch = passes.batch([enc.prompts[i] for i, _ in pairs], [options[i][j] for i, j in pairs])
        ii = torch.tensor([i for i, _ in pairs])
        jj = torch.tensor([j for _, j in pairs])
        resid, acts = passes.clean(batch)
        scores["clean"][ii, jj] = _option_scores(passes.scores(resid, batch))
        del resid
        for name, ls in saes.items():
            scores[name][ii, jj] = _option_scores(passes.scores(passes.splice(ls, acts, batch).resid, batch))
    answer = torch.tensor(enc.answer_index)
    out = {k: choice_correct(v, answer).double() for k, v in scores.items()}
    for k, v in scores.items():  # an option scored NaN (non-finite logits): no choice, NaN
        out[k][v.isnan().any(1)] = float("nan")
    return out


def _option_scores(scores: ClozeScores) -> Tensor:
    """Summed option log-probs (B,), NaN for rows with a non-finite logit or log-prob."""
    v = scores.cont_logp.double()
    return torch.where(scores.finite & torch.isfinite(v), v, torch.full_like(v, float("nan"))).cpu()


def hooks_of(saes: Sequence[LoadedSAE], n_layers: int) -> list[str]:
    """The hooks a clean pass caches for ``saes``: theirs and their splice start points."""
    names = [s.hook_name for s in saes]
    return sorted(set(names) | set(start_hooks(names, n_layers)))
