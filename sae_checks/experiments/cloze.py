"""Cloze tasks (Lambada, CBT-CN) with each SAE spliced in, plus the feature-helpfulness sums.

Definitions (docs/definitions.md, used exactly; the arithmetic is in ``sae_checks.metrics.cloze``):
the prompt is the text before the answer word, tokenized with BOS first; the answer is ``" " + word``
tokenized (multi-token answers kept). ``acc_first_token`` = argmax at the last prompt position equals
the answer's first token; ``acc_word`` = every answer token is the greedy argmax under teacher forcing
(lm-eval's ``acc``); ``cont_logp`` = summed log-prob of the continuation (lm-eval's loglikelihood) and
``ppl = exp(−mean cont_logp)`` (lm-eval's perplexity); ``logp`` = log-prob of the answer's first token; ``delta_logp = logp_spliced − logp_clean``; ``ce`` =
mean CE of the predictions made at the non-BOS prompt positions of the next prompt token; CBT-CN also
gets ``acc_choice``: of the options, the one whose ``" " + option`` tokens have the highest summed
log-prob under teacher forcing wins. Spliced = x replaced by x̂ = sae.decode(sae.encode(x)) at the
SAE's hook at every real position except BOS (unless ``splice_bos``); padding is never touched.

Passes per batch (``experiments.cloze_passes``): one clean pass caching the SAEs' hooks, then per SAE one
splice pass from the cached activation (``engine.hooks.forward_from``: for ``hook_resid_pre`` it starts at
layer L, for other hooks at their block from its cached ``hook_resid_pre``). Every pass stops at the final
residual; the scores unembed only the positions they read, a chunk of tokens at a time, and the SAE runs
a chunk of tokens at a time (``engine.chunks``). Results are keyed by SAE name.
Per-prompt mse, l0 and resid_norm are measured on the *clean* activations of that cached pass, and
each delta_ce comes from a pass with exactly one splice: ``assert_no_hooks`` runs before and after
every pass (the seed notebook measured its Lambada MSE/L0 with the splice hook still attached).
CBT options get their own passes (prompt + option rows, batched). Batches are right-padded; the last
prompt position of each row is read at ``prompt_len − 1``, so batching does not change the numbers.
Prompts whose tokens plus the longest continuation exceed ``n_ctx`` are cut from the left, BOS kept,
and counted in ``n_truncated`` (``experiments.cloze_items``). Then the feature rankings and the causal
check (``experiments.features``, ``experiments.causal``); the report section: ``experiments.cloze_report``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

import torch
from torch import Tensor

from sae_checks.engine import memory
from sae_checks.engine.chunks import chunk_sizes
from sae_checks.engine.kernel import pass_context, specials_of
from sae_checks.engine.run import default_buckets
from sae_checks.errors import DataError
from sae_checks.experiments import features as feat
from sae_checks.experiments.causal import CausalSweep, Kept
from sae_checks.experiments.cloze_items import EncodedItems, batches, encode_items, max_row_length
from sae_checks.experiments.cloze_options import ClozeOptions
from sae_checks.experiments.cloze_passes import Passes, choice_passes, hooks_of, progress_iter
from sae_checks.experiments.cloze_report import PromptValues, cloze_section
from sae_checks.metrics.cloze import (
    FeatureSums,
    active_counts,
    add_feature_sums,
    feature_sums,
    prompt_mask,
    prompt_sae_sums,
    window_mask,
)

if TYPE_CHECKING:
    from sae_checks.loading.data import ClozeItem
    from sae_checks.loading.saes import LoadedSAE

__all__ = ["ClozeOptions", "ClozeOutput", "EncodedItems", "auto_batch_size", "encode_items", "run_cloze"]


class ClozeOutput(NamedTuple):
    """What ``run_cloze`` returns: the two JSON-ready report sections."""

    cloze: dict[str, Any]  # results.cloze[task]
    features: dict[str, dict[str, Any]]  # results.features[sae name] ({} when features=False)


def auto_batch_size(model: Any, items: Sequence[ClozeItem]) -> int:
    """Rows per pass from the memory budget (``engine.memory.model_batch_size``) for rows as long as the
    longest of ``items`` (prompt + continuation, cut to the model's context): one final residual besides
    the clean one is alive at a time, the unembedding and the SAE run in fixed token chunks."""
    enc = encode_items(model.tokenizer, items, model.cfg.n_ctx)
    return memory.model_batch_size(model, str(model.cfg.device), n_ctx=max_row_length(enc), n_passes=1)


def run_cloze(model: Any, saes: Mapping[Any, LoadedSAE], items: Sequence[ClozeItem], options: ClozeOptions,
              progress: Any = False) -> ClozeOutput:
    """Run one cloze task clean and with each SAE spliced in (definitions: module docstring, docs/definitions.md).

    Returns ``ClozeOutput(cloze, features)``. ``cloze`` (``results.cloze[task]``)::

        {"task", "n_prompts", "n_truncated", "splice_bos", "prompt_lengths": [int],
         "baseline": {metric: {"mean", "ci"}},                 # acc_first_token, acc_word, logp, ce, cont_logp,
                                                               # ppl[, acc_choice]
         "per_sae": {name: {metric: {"mean", "ci"},            # + delta_logp, delta_ce, mse, l0, resid_norm
                             "classes": {class: count},
                             "by_bucket": {bucket: {"n", ...}}}},
         "prompts": {name: {"delta_logp", "delta_ce", "mse", "l0", "resid_norm", "class": [...]}}}

    ``by_bucket`` groups the prompts by the position at which the answer is predicted (prompt tokens
    incl. BOS, minus 1) into the SAE's position buckets ``"a-b"`` (``options.buckets[name]``; default:
    inside and beyond the SAE's training context). ``sae-checks run`` passes the run's buckets clipped to
    the model's ``n_ctx`` (prompts may be longer than the evaluated sequences, whose per_bucket is clipped
    to their length), so two reports with the same buckets compare the same prompts. Each gives ``n``,
    the spliced and ``*_clean`` accuracies and ``delta_logp`` (a bucket with no prompt holds only
    ``n``: 0). CIs are percentile bootstraps over prompts (``n_bootstrap``, ``seed``).
    ``features`` (``results.features[name]``): see ``experiments.features.feature_report``; the causal
    check (``experiments.causal``) ablates the first ``n_causal`` features of each ranking (0 turns it
    off), each over at most ``causal_max_prompts`` of the prompts where it is active (the first ones, in
    the order of the batches): on dense SAEs the top features are active nearly everywhere, and one row
    per (prompt, feature) adds up. ``progress``: a ``sae_checks.progress.Progress`` told about each loop's
    batches, or a bool (True = tqdm bars).
    """
    if options.batch_size < 1:
        raise ValueError(f"batch_size={options.batch_size!r}: must be >= 1")
    if not items:
        raise DataError(f"cloze task {options.task!r}: no items")
    saes = {str(k): v for k, v in saes.items()}
    given = {str(k): list(v) for k, v in (options.buckets or {}).items()}
    buckets = {L: given[L] if L in given else default_buckets(s.context_size, model.cfg.n_ctx) for L, s in saes.items()}
    tok = model.tokenizer
    enc = encode_items(tok, items, model.cfg.n_ctx)
    passes = Passes(model, hooks_of(list(saes.values()), model.cfg.n_layers),
                    chunk_sizes(model, list(saes.values()), str(model.cfg.device), options.chunk_tokens),
                    options.splice_bos, tok.pad_token_id if tok.pad_token_id is not None else tok.bos_token_id,
                    specials_of(model))
    values = PromptValues(len(items), list(saes))
    feats: dict[str, dict[str, Any]] = {}
    with pass_context(model, dtype=options.dtype, fast=options.fast_attention):
        kept = _kept(model, saes, passes, enc, options)
        fsums = _first_sweep(passes, saes, enc, values, options, kept, progress)
        if enc.options is not None:
            values.choice = choice_passes(passes, saes, enc, options.batch_size, progress, options.task)
        if options.features:
            ranks = {L: feat.rank_features(fsums[L], min_count=options.min_count, n_top=options.n_top) for L in saes}
            causal: dict[str, dict[int, tuple[float, int]]] = {}
            if kept is not None:
                sweep = CausalSweep(passes, saes, enc, options.n_causal, options.causal_max_prompts,
                                    options.batch_size, kept)
                causal = sweep.run(ranks, {L: values.per[L]["logp"] for L in saes}, progress, options.task)
            for L, ls in saes.items():
                feats[L] = feat.feature_report(fsums[L], task=options.task, n_prompts=len(items),
                                               neuronpedia_id=ls.neuronpedia_id, min_count=options.min_count,
                                               ranks=ranks[L], causal=causal.get(L))
        values.mask_nonfinite()  # in place: the tensors made under inference mode are changed under it
        section = cloze_section(values, enc, saes, buckets, options)
    return ClozeOutput(section, feats)


def _kept(model: Any, saes: Mapping[str, LoadedSAE], passes: Passes, enc: EncodedItems,
          options: ClozeOptions) -> Kept | None:
    """What the first sweep keeps for the causal sweep (None when that does not run): the window activity,
    and the clean activations when they fit ``options.cache_bytes``."""
    if not options.features or options.n_causal <= 0:
        return None
    need = Kept.size(model, list(saes.values()), passes.hooks, [len(p) for p in enc.prompts])
    budget = options.cache_bytes if options.cache_bytes is not None else Kept.budget()
    return Kept(list(saes), len(enc.prompts), passes.hooks if need <= budget else None)


def _first_sweep(passes: Passes, saes: Mapping[str, LoadedSAE], enc: EncodedItems, values: PromptValues,
                 options: ClozeOptions, kept: Kept | None, progress: Any) -> dict[str, FeatureSums]:
    """The clean and splice passes of every batch into ``values`` (and ``kept``, for the causal sweep);
    returns the feature helpfulness sums per SAE name (zeros without ``options.features``)."""
    fsums = {L: FeatureSums(*(torch.zeros(s.d_sae, dtype=torch.float64) for _ in range(4))) for L, s in saes.items()}
    lengths = [len(p) + len(a) for p, a in zip(enc.prompts, enc.answers, strict=True)]
    for idx in progress_iter(list(batches(lengths, options.batch_size)), progress, f"{options.task} clean+splice"):
        batch = passes.batch([enc.prompts[i] for i in idx], [enc.answers[i] for i in idx])
        resid, acts = passes.clean(batch)
        if kept is not None:
            kept.keep_acts(idx, batch.prompt_len, acts)
        c = passes.scores(resid, batch)
        del resid
        values.put_scores(None, idx, c)
        B, T = batch.tokens.shape
        pmask = prompt_mask(batch.prompt_len, T)
        window = window_mask(batch.prompt_len, T, include_bos=options.splice_bos).reshape(-1)  # (B*T,)
        for L, ls in saes.items():
            active = torch.zeros(B, ls.d_sae if options.features else 0, dtype=torch.int32, device=pmask.device)
            spliced = passes.splice(ls, acts, batch, _window_activity(active, window, T) if options.features else None)
            s = passes.scores(spliced.resid, batch)
            values.put_scores(L, idx, s)
            values.put_sae(L, idx, s, c, prompt_sae_sums(spliced.terms, pmask))
            del spliced
            if options.features:
                delta = (s.logp_first - c.logp_first).cpu()
                fsums[L] = add_feature_sums(fsums[L], feature_sums((active > 0).cpu(), delta))
            if kept is not None:
                kept.keep_activity(L, idx, active > 0)
    return fsums


def _window_activity(active: Tensor, window: Tensor, T: int) -> Callable[[slice, Tensor], None]:
    """A visitor of the SAE's feature chunks (``engine.chunks.sae_terms``) that adds to ``active`` (B, d_sae)
    how often each feature is active at the ``window`` (B * T,) positions of each row: ``active > 0`` is
    ``metrics.cloze.active_features`` over the window, with no (B, T, d_sae) tensor."""

    def visit(s: slice, f: Tensor) -> None:
        at = s.start + window[s].nonzero().flatten()  # the chunk's window positions (flat B * T)
        if at.numel():
            active.add_(active_counts(f[at - s.start], at // T, active.shape[0]))

    return visit
