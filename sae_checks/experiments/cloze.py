"""Cloze tasks (Lambada, CBT-CN) with each SAE spliced in, plus the feature-helpfulness sums.

Definitions (DESIGN.md section 3, used exactly; the arithmetic is in ``sae_checks.metrics.cloze``):
the prompt is the text before the answer word, tokenized with BOS first; the answer is ``" " + word``
tokenized (multi-token answers kept). ``acc_first_token`` = argmax at the last prompt position equals
the answer's first token; ``acc_word`` = every answer token is the greedy argmax under teacher forcing
(lm-eval's ``acc``); ``cont_logp`` = summed log-prob of the continuation (lm-eval's loglikelihood) and
``ppl = exp(−mean cont_logp)`` (lm-eval's perplexity); ``logp`` = log-prob of the answer's first token; ``delta_logp = logp_spliced − logp_clean``; ``ce`` =
mean CE of the predictions made at the non-BOS prompt positions of the next prompt token; CBT-CN also
gets ``acc_choice``: of the options, the one whose ``" " + option`` tokens have the highest summed
log-prob under teacher forcing wins. Spliced = x replaced by x̂ = sae.decode(sae.encode(x)) at the
SAE's hook at every real position except BOS (unless ``splice_bos``); padding is never touched.

Passes per batch: one clean pass caching the SAEs' hooks, then per SAE one splice pass from the
cached activation (``engine.hooks.forward_from``: for ``hook_resid_pre`` it starts at layer L, for other
hooks at their block from its cached ``hook_resid_pre``). Results are keyed by SAE name.
Per-prompt mse, l0 and resid_norm are measured on the *clean* activations of that cached pass, and
each delta_ce comes from a pass with exactly one splice: ``assert_no_hooks`` runs before and after
every pass (the seed notebook measured its Lambada MSE/L0 with the splice hook still attached).
CBT options get their own passes (prompt + option rows, batched). Batches are right-padded; the last
prompt position of each row is read at ``prompt_len − 1``, so batching does not change the numbers.
Prompts whose tokens plus the longest continuation exceed ``n_ctx`` are cut from the left, BOS kept,
and counted in ``n_truncated``.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

import torch
from torch import Tensor

from sae_checks.aggregate import bucket_name, clean_float
from sae_checks.engine.attention import fast_attention as fused_attention
from sae_checks.engine.hooks import (
    assert_no_hooks,
    capture,
    forward_from,
    hook_layer,
    keep_positions,
    start_activation,
    start_hooks,
)
from sae_checks.engine.run import default_buckets
from sae_checks.errors import DataError
from sae_checks.experiments import features as feat
from sae_checks.metrics.cloze import (
    CLASSES,
    FeatureSums,
    active_features,
    add_feature_sums,
    bootstrap_mean_ci,
    choice_correct,
    classify,
    cloze_scores,
    feature_sums,
    perplexity,
    prompt_mask,
    prompt_sae_sums,
    window_mask,
)

if TYPE_CHECKING:
    from sae_checks.loading.data import ClozeItem
    from sae_checks.loading.saes import LoadedSAE


class ClozeOutput(NamedTuple):
    """What ``run_cloze`` returns: the two JSON-ready report sections."""

    cloze: dict[str, Any]  # results.cloze[task]
    features: dict[str, dict[str, Any]]  # results.features[sae name] ({} when features=False)


class EncodedItems(NamedTuple):
    """Token ids of a task's items, ready to batch."""

    prompts: list[list[int]]  # BOS first, cut from the left (BOS kept) to fit n_ctx with the continuation
    answers: list[list[int]]  # tokens of " " + answer
    options: list[list[list[int]]] | None  # tokens of " " + option, per item (CBT); None without options
    answer_index: list[int]  # index of the answer among the options (−1 if absent); [] without options
    truncated: list[bool]  # whether the prompt was cut


def encode_items(tokenizer: Any, items: Sequence[ClozeItem], n_ctx: int) -> EncodedItems:
    """Tokenize prompts (BOS first) and their continuations; cut prompts from the left, keeping BOS, so
    that the prompt plus its longest continuation fits ``n_ctx``.

    An item with a ``continuation`` (lambada, lm-eval's split) is encoded as lm-evaluation-harness'
    ``_encode_pair``: the prompt's trailing whitespace moves to the front of the continuation, the
    continuation's tokens are those of ``tokenize(prompt + continuation)`` after the prompt's tokens.
    Otherwise the prompt's trailing spaces are dropped (the space belongs to the answer token) and the
    continuation is ``" " + answer`` (``" " + option`` for each CBT option). lm-eval's HF backend adds no
    BOS for gpt2 (``add_bos_token=False``) where sae-checks puts BOS first (position 0 is BOS, DESIGN.md
    section 3): log-probs equal lm-eval's run with ``add_bos_token=True``."""
    bos = tokenizer.bos_token_id
    if bos is None:
        raise DataError("the tokenizer has no bos_token_id; cloze prompts need BOS first")

    def enc(texts: list[str]) -> list[list[int]]:
        return [list(ids) for ids in tokenizer(texts, add_special_tokens=False)["input_ids"]] if texts else []

    bodies = enc([it.prompt.rstrip(" ") for it in items])
    answers = enc([" " + it.answer for it in items])
    for i, it in enumerate(items):
        if it.continuation is not None:
            bodies[i], answers[i] = _encode_pair(enc, it.prompt, it.continuation)
    has_options = any(it.options is not None for it in items)
    options: list[list[list[int]]] | None = None
    answer_index: list[int] = []
    if has_options:
        options = [enc([" " + o for o in (it.options or ())]) for it in items]
        answer_index = [list(it.options or ()).index(it.answer) if it.answer in (it.options or ()) else -1
                        for it in items]
    prompts, truncated = [], []
    for i, (body, ans) in enumerate(zip(bodies, answers, strict=True)):
        if not ans:
            raise DataError(f"cloze item {i}: answer {items[i].answer!r} tokenizes to nothing")
        cont = max([len(ans)] + [len(o) for o in (options[i] if options else [])])
        room = n_ctx - 1 - cont  # prompt tokens that fit after BOS
        if room < 0:
            raise DataError(f"cloze item {i}: continuation of {cont} tokens does not fit n_ctx={n_ctx}")
        cut = len(body) > room
        prompts.append([bos] + (body[len(body) - room:] if cut else body))
        truncated.append(cut)
    return EncodedItems(prompts, answers, options, answer_index, truncated)


def _encode_pair(enc: Any, context: str, continuation: str) -> tuple[list[int], list[int]]:
    """lm-evaluation-harness' ``_encode_pair`` (v0.4, HFLM): trailing whitespace of the context moves to
    the continuation; continuation tokens = tokens of the whole string after the context's tokens."""
    n_spaces = len(context) - len(context.rstrip())
    if n_spaces > 0:
        continuation = context[-n_spaces:] + continuation
        context = context[:-n_spaces]
    whole, ctx = enc([context + continuation, context])
    return ctx, whole[len(ctx):]


class _Batch(NamedTuple):
    """One batch of prompt + continuation rows, right-padded.

    The model is run without an attention mask: with right padding and causal
    attention no real position can attend to a pad, and positions count from 0 either way, so real
    positions get exactly the logits of an unpadded pass (tests/test_cloze.py checks batched against
    one prompt at a time). Without a mask the passes can use the fused attention kernel
    (``engine.attention``). ``attention_mask`` still marks the real tokens for the metrics and the splice.
    """

    tokens: Tensor  # (B, T) right-padded
    attention_mask: Tensor  # (B, T) 1 on real tokens
    prompt_len: Tensor  # (B,) BOS included
    cont_len: Tensor  # (B,)


def _make_batch(prompts: list[list[int]], conts: list[list[int]], pad_id: int, device: Any) -> _Batch:
    rows = [p + c for p, c in zip(prompts, conts, strict=True)]
    T = max(len(r) for r in rows)
    tokens = torch.full((len(rows), T), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), T), dtype=torch.long)
    for b, r in enumerate(rows):
        tokens[b, :len(r)] = torch.tensor(r)
        mask[b, :len(r)] = 1
    return _Batch(
        tokens.to(device), mask.to(device),
        torch.tensor([len(p) for p in prompts], device=device),
        torch.tensor([len(c) for c in conts], device=device),
    )


def _batches(lengths: list[int], batch_size: int) -> Iterator[list[int]]:
    """Row indices in batches, longest first (less padding); results are scattered back by index."""
    order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))
    for s in range(0, len(order), batch_size):
        yield order[s:s + batch_size]


def _clean_pass(model: Any, hooks: list[str], batch: _Batch, *, logits: bool = True) -> tuple[Tensor | None, dict]:
    """One clean pass caching ``hooks``; without ``logits`` it stops after the last hooked block."""
    assert_no_hooks(model)
    stop = None if logits else max(hook_layer(h) for h in hooks) + 1
    if stop is not None and stop >= model.cfg.n_layers:
        stop = None
    with capture(model, hooks) as store:
        out = model(batch.tokens, return_type="logits", stop_at_layer=stop)
        acts = dict(store)
    return (out if logits else None), acts


def _splice_inputs(ls: LoadedSAE, x: Tensor, keep: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """(f, x̂, spliced activation) for the clean ``x`` (B, T, d); ``keep`` (B, T) positions stay clean."""
    sae = ls.sae
    p = next(sae.parameters(), None)
    x_in = x if p is None else x.to(device=p.device, dtype=p.dtype)
    f = sae.encode(x_in)
    x_hat = sae.decode(f).to(device=x.device, dtype=x.dtype)
    return f, x_hat, keep_positions(x, x_hat, keep)


def _keep_mask(batch: _Batch, splice_bos: bool) -> Tensor:
    keep = batch.attention_mask == 0  # padding is never touched
    if not splice_bos:
        keep[:, 0] = True
    return keep


def _progress(it: Any, progress: Any, desc: str) -> Any:
    """One update per batch to ``progress``: a ``sae_checks.progress.Progress``, or a bool (True = tqdm)."""
    from sae_checks import progress as _p

    reporter = progress if not isinstance(progress, bool) else _p.TqdmProgress("batch") if progress else None
    return _p.iterate(it, reporter, desc)


def run_cloze(
    model: Any, saes: Mapping[Any, LoadedSAE], items: Sequence[ClozeItem], *, task: str, batch_size: int = 16,
    splice_bos: bool = False, features: bool = True, n_causal: int = 10, progress: Any = False,
    n_bootstrap: int = 1000, ci_level: float = 0.95, seed: int = 0, min_count: int = 5, n_top: int = 10,
    causal_max_prompts: int = 64, fast_attention: bool = True,
    buckets: Mapping[Any, Sequence[tuple[int, int]]] | None = None,
) -> ClozeOutput:
    """Run one cloze task clean and with each SAE spliced in (definitions: module docstring, DESIGN.md 3).

    Returns ``ClozeOutput(cloze, features)``. ``cloze`` (``results.cloze[task]``)::

        {"task", "n_prompts", "n_truncated", "splice_bos", "prompt_lengths": [int],
         "baseline": {metric: {"mean", "ci"}},                 # acc_first_token, acc_word, logp, ce, cont_logp,
                                                               # ppl[, acc_choice]
         "per_sae": {name: {metric: {"mean", "ci"},            # + delta_logp, delta_ce, mse, l0, resid_norm
                             "classes": {class: count},
                             "by_bucket": {bucket: {"n", ...}}}},
         "prompts": {name: {"delta_logp", "delta_ce", "mse", "l0", "resid_norm", "class": [...]}}}

    ``by_bucket`` groups the prompts by the position at which the answer is predicted (prompt tokens
    incl. BOS, minus 1) into the SAE's position buckets ``"a-b"`` (``buckets[name]``; default: inside
    and beyond the SAE's training context). ``sae-checks run`` passes the run's buckets clipped to the
    model's ``n_ctx`` (prompts may be longer than the evaluated sequences, whose per_bucket is clipped
    to their length), so two reports with the same buckets compare the same prompts. Each gives ``n``,
    the spliced and ``*_clean`` accuracies and ``delta_logp`` (a bucket with no prompt holds only
    ``n``: 0). CIs are percentile bootstraps over prompts (``n_bootstrap``, ``seed``).
    ``features`` (``results.features[name]``): see ``experiments.features.feature_report``; the causal
    check ablates the first ``n_causal`` features of each ranking (0 turns it off), each over at most
    ``causal_max_prompts`` of the prompts where it is active (the first ones, in prompt order): on dense
    SAEs the top features are active nearly everywhere, and one pass per (prompt, feature) adds up.
    ``fast_attention``: run the passes with the engine's fused attention (``engine.attention``; the
    passes carry no attention mask, see ``_Batch``).
    """
    if batch_size < 1:
        raise ValueError(f"batch_size={batch_size!r}: must be >= 1")
    if not items:
        raise DataError(f"cloze task {task!r}: no items")
    saes = {str(k): v for k, v in saes.items()}
    buckets = {str(k): v for k, v in buckets.items()} if buckets is not None else None
    layers = list(saes)  # SAE names, in forward order
    hooks = sorted({saes[L].hook_name for L in layers} | set(start_hooks([saes[L].hook_name for L in layers],
                                                                          model.cfg.n_layers)))
    n_ctx = model.cfg.n_ctx
    layer_buckets_ = {L: list(buckets[L]) if buckets is not None and L in buckets
                      else default_buckets(saes[L].context_size, n_ctx) for L in layers}
    device = model.cfg.device
    tok = model.tokenizer
    pad_id = tok.pad_token_id if tok.pad_token_id is not None else tok.bos_token_id
    enc = encode_items(tok, items, n_ctx)
    N = len(items)
    P_all = [len(p) for p in enc.prompts]
    nan = float("nan")

    clean = {k: torch.full((N,), nan, dtype=torch.float64)
             for k in ("logp", "acc_first_token", "acc_word", "ce", "cont_logp")}
    per = {L: {k: torch.full((N,), nan, dtype=torch.float64) for k in (
        "logp", "acc_first_token", "acc_word", "ce", "cont_logp", "delta_logp", "delta_ce", "mse", "l0",
        "resid_norm")}
        for L in layers}
    fsums = {L: FeatureSums(*(torch.zeros(saes[L].d_sae, dtype=torch.float64) for _ in range(4)))
             for L in layers}

    def put(dst: Tensor, idx: list[int], values: Tensor) -> None:
        dst[torch.tensor(idx)] = values.detach().double().cpu()

    # prompts with a non-finite logit or log-prob: their every per-prompt value becomes NaN, so the means
    # over them are None and their checks fail (never silently dropped); counted, first one recorded
    bad_clean = torch.zeros(N, dtype=torch.bool)
    bad = {L: torch.zeros(N, dtype=torch.bool) for L in layers}

    def nonfinite_rows(scores: Any, *more: Tensor) -> Tensor:
        ok = scores.finite & torch.isfinite(scores.logp_first) & torch.isfinite(scores.cont_logp)
        ok &= torch.isfinite(scores.ce_sum)
        for t in more:
            ok &= torch.isfinite(t)
        return (~ok).cpu()

    with torch.no_grad(), fused_attention(model, fast_attention):
        lengths = [len(p) + len(a) for p, a in zip(enc.prompts, enc.answers, strict=True)]
        for idx in _progress(list(_batches(lengths, batch_size)), progress, f"{task} clean+splice"):
            batch = _make_batch([enc.prompts[i] for i in idx], [enc.answers[i] for i in idx], pad_id, device)
            logits, acts = _clean_pass(model, hooks, batch)
            assert logits is not None
            c = cloze_scores(logits, batch.tokens, batch.prompt_len, batch.cont_len)
            put(clean["logp"], idx, c.logp_first)
            put(clean["acc_first_token"], idx, c.correct_first)
            put(clean["acc_word"], idx, c.correct_word)
            put(clean["ce"], idx, c.ce_sum / c.ce_count)
            put(clean["cont_logp"], idx, c.cont_logp)
            bad_clean[torch.tensor(idx)] = nonfinite_rows(c)
            T = batch.tokens.shape[1]
            keep = _keep_mask(batch, splice_bos)
            pmask = prompt_mask(batch.prompt_len, T)
            wmask = window_mask(batch.prompt_len, T, include_bos=splice_bos)
            for L in layers:
                ls = saes[L]
                x = acts[ls.hook_name]  # (B, T, d) clean
                f, x_hat, new = _splice_inputs(ls, x, keep)
                assert_no_hooks(model)
                logits_s, _ = forward_from(model, ls.hook_name, x, new, batch.tokens, start_act=start_activation(acts, ls.hook_name, model.cfg.n_layers))
                assert_no_hooks(model)
                s = cloze_scores(logits_s, batch.tokens, batch.prompt_len, batch.cont_len)
                sae_sums = prompt_sae_sums(x, x_hat, f, pmask.to(x.device))
                delta = s.logp_first - c.logp_first
                d = per[L]
                put(d["logp"], idx, s.logp_first)
                put(d["acc_first_token"], idx, s.correct_first)
                put(d["acc_word"], idx, s.correct_word)
                put(d["ce"], idx, s.ce_sum / s.ce_count)
                put(d["cont_logp"], idx, s.cont_logp)
                bad[L][torch.tensor(idx)] = nonfinite_rows(s, sae_sums.sse, sae_sums.l0, sae_sums.resid_norm)
                put(d["delta_logp"], idx, delta)
                put(d["delta_ce"], idx, (s.ce_sum - c.ce_sum) / c.ce_count)
                put(d["mse"], idx, sae_sums.sse / sae_sums.n_tokens)
                put(d["l0"], idx, sae_sums.l0 / sae_sums.n_tokens)
                put(d["resid_norm"], idx, sae_sums.resid_norm / sae_sums.n_tokens)
                if features:
                    active = active_features(f, wmask.to(f.device)).cpu()
                    fsums[L] = add_feature_sums(fsums[L], feature_sums(active, delta.cpu()))

        choice: dict[Any, Tensor] = {}
        if enc.options is not None:
            choice = _choice_passes(model, saes, layers, hooks, enc, batch_size, splice_bos, pad_id, progress, task)

        causal: dict[str, dict[int, tuple[float, int]]] = {}
        ranks: dict[str, dict[str, list[int]]] = {}
        if features:
            for L in layers:
                ranks[L] = feat.rank_features(fsums[L], min_count=min_count, n_top=n_top)
            if n_causal > 0:
                causal = _causal_sweep(model, saes, layers, hooks, enc, lengths, ranks, per, n_causal,
                                       causal_max_prompts,
                                       batch_size, splice_bos, pad_id, progress, task)

    nonfinite: list[dict[str, Any]] = []
    for k in clean:
        clean[k][bad_clean] = nan
    if bad_clean.any():
        nonfinite.append(_nonfinite_entry(None, None, task, int(bad_clean.nonzero()[0])))
    for L in layers:
        for k, v in per[L].items():
            v[bad[L]] = nan
            if k.startswith("delta_"):
                v[bad_clean] = nan
        if bad[L].any():
            nonfinite.append(_nonfinite_entry(L, saes[L].layer, task, int(bad[L].nonzero()[0])))
        if enc.options is not None:
            choice[L][bad[L]] = nan
    if enc.options is not None:
        choice["clean"][bad_clean] = nan
    cls = {L: classify(clean["acc_first_token"] > 0, per[L]["acc_first_token"] > 0) for L in layers}

    def summary(v: Tensor) -> dict[str, Any]:
        """Mean and bootstrap CI over prompts; None for both when any prompt's value is non-finite."""
        if v.numel() and not bool(torch.isfinite(v).all()):
            return {"mean": None, "ci": [None, None]}
        ci = bootstrap_mean_ci(v, n_bootstrap=n_bootstrap, level=ci_level, seed=seed)
        return {"mean": clean_float(float(v.mean())) if v.numel() else None,
                "ci": [clean_float(float(t)) for t in ci]}

    def ppl(cont_logp: Tensor) -> dict[str, Any]:
        """lm-eval's perplexity exp(−mean cont_logp); its CI maps the mean's bootstrap CI (monotone)."""
        s = summary(cont_logp)
        lo, hi = s["ci"]
        return {"mean": None if s["mean"] is None else clean_float(float(perplexity(cont_logp))),
                "ci": [None if hi is None else clean_float(math.exp(-hi)),
                       None if lo is None else clean_float(math.exp(-lo))]}

    baseline = {k: summary(clean[k]) for k in ("acc_first_token", "acc_word", "logp", "ce", "cont_logp")}
    baseline["ppl"] = ppl(clean["cont_logp"])
    if enc.options is not None:
        baseline["acc_choice"] = summary(choice["clean"])
    per_sae: dict[str, Any] = {}
    prompts: dict[str, Any] = {}
    answer_pos = torch.tensor(P_all) - 1  # the answer is predicted at the prompt's last position
    for L in layers:
        d = per[L]
        entry: dict[str, Any] = {k: summary(v) for k, v in d.items()}
        entry["ppl"] = ppl(d["cont_logp"])
        if enc.options is not None:
            entry["acc_choice"] = summary(choice[L])
        entry["classes"] = {name: int((cls[L] == i).sum()) for i, name in enumerate(CLASSES)}
        entry["by_bucket"] = {}
        for a, b in layer_buckets_[L]:
            sel = (answer_pos >= a) & (answer_pos < b)
            sub: dict[str, Any] = {"n": int(sel.sum())}
            entry["by_bucket"][bucket_name((a, b))] = sub
            if not sub["n"]:  # no prompt in this bucket: nothing to summarize (absent, not null)
                continue
            for k in ("acc_first_token", "acc_word"):
                sub[k] = summary(d[k][sel])
                sub[f"{k}_clean"] = summary(clean[k][sel])
            if enc.options is not None:
                sub["acc_choice"] = summary(choice[L][sel])
                sub["acc_choice_clean"] = summary(choice["clean"][sel])
            sub["delta_logp"] = summary(d["delta_logp"][sel])
        per_sae[str(L)] = entry
        prompts[str(L)] = {
            k: [clean_float(v) for v in d[k].tolist()]
            for k in ("delta_logp", "delta_ce", "mse", "l0", "resid_norm")
        }
        prompts[str(L)]["class"] = [CLASSES[i] for i in cls[L].tolist()]

    section = {
        "task": task,
        "n_prompts": N,
        "n_truncated": sum(enc.truncated),
        "splice_bos": splice_bos,
        "prompt_lengths": P_all,
        "n_nonfinite": {"clean": int(bad_clean.sum()), **{str(L): int(bad[L].sum()) for L in layers}},
        "nonfinite": nonfinite,
        "baseline": baseline,
        "per_sae": per_sae,
        "prompts": prompts,
    }
    feats: dict[str, dict[str, Any]] = {}
    if features:
        for L in layers:
            feats[str(L)] = feat.feature_report(
                fsums[L], task=task, n_prompts=N, neuronpedia_id=saes[L].neuronpedia_id, min_count=min_count,
                ranks=ranks[L], causal=causal.get(L),
            )
    return ClozeOutput(section, feats)


def _nonfinite_entry(name: str | None, layer: int | None, task: str, prompt: int) -> dict[str, Any]:
    """A ``results.nonfinite`` entry, as the engine's: the first prompt with a non-finite value."""
    return {"sae": name, "layer": layer, "where": f"cloze:{task}", "sequence": prompt, "position": None}


def _choice_passes(
    model: Any, saes: Mapping[str, LoadedSAE], layers: list[str], hooks: list[str], enc: EncodedItems,
    batch_size: int, splice_bos: bool, pad_id: int, progress: bool, task: str,
) -> dict[Any, Tensor]:
    """acc_choice (N,) as 0/1 floats, clean (key ``"clean"``) and per layer: one row per (prompt,
    option), each scored by the summed log-prob of the option's tokens under teacher forcing."""
    assert enc.options is not None
    N = len(enc.prompts)
    O_max = max((len(o) for o in enc.options), default=0)
    rows = [(i, j) for i in range(N) for j in range(len(enc.options[i]))]
    keys: list[Any] = ["clean", *layers]
    scores = {k: torch.full((N, max(O_max, 1)), float("-inf"), dtype=torch.float64) for k in keys}
    lengths = [len(enc.prompts[i]) + len(enc.options[i][j]) for i, j in rows]
    for ridx in _progress(list(_batches(lengths, batch_size)), progress, f"{task} options"):
        pairs = [rows[r] for r in ridx]
        batch = _make_batch([enc.prompts[i] for i, _ in pairs], [enc.options[i][j] for i, j in pairs],
                            pad_id, model.cfg.device)
        ii = torch.tensor([i for i, _ in pairs])
        jj = torch.tensor([j for _, j in pairs])
        logits, acts = _clean_pass(model, hooks, batch)
        assert logits is not None
        scores["clean"][ii, jj] = _option_scores(cloze_scores(logits, batch.tokens, batch.prompt_len, batch.cont_len))
        keep = _keep_mask(batch, splice_bos)
        for L in layers:
            ls = saes[L]
            x = acts[ls.hook_name]
            _, _, new = _splice_inputs(ls, x, keep)
            assert_no_hooks(model)
            logits_s, _ = forward_from(model, ls.hook_name, x, new, batch.tokens, start_act=start_activation(acts, ls.hook_name, model.cfg.n_layers))
            assert_no_hooks(model)
            scores[L][ii, jj] = _option_scores(
                cloze_scores(logits_s, batch.tokens, batch.prompt_len, batch.cont_len))
    answer = torch.tensor(enc.answer_index)
    out = {k: choice_correct(v, answer).double() for k, v in scores.items()}
    for k, v in scores.items():  # an option scored NaN (non-finite logits): no choice, NaN
        out[k][v.isnan().any(1)] = float("nan")
    return out


def _option_scores(scores: Any) -> Tensor:
    """Summed option log-probs (B,), NaN for rows with a non-finite logit or log-prob."""
    v = scores.cont_logp.double()
    return torch.where(scores.finite & torch.isfinite(v), v, torch.full_like(v, float("nan"))).cpu()


def _causal_sweep(
    model: Any, saes: Mapping[str, LoadedSAE], layers: list[str], hooks: list[str], enc: EncodedItems,
    lengths: list[int], ranks: dict[str, dict[str, list[int]]], per: dict[str, dict[str, Tensor]],
    n_causal: int, max_prompts: int, batch_size: int, splice_bos: bool, pad_id: int, progress: bool, task: str,
) -> dict[str, dict[int, tuple[float, int]]]:
    """Second sweep over the same batches: ablate each candidate feature where it is active and
    compare with the full splice's logp (``experiments.features.causal_ablation_batch``).
    Returns SAE name -> feature -> (causal_delta_logp, number of prompts)."""
    cands = {L: torch.tensor(feat.causal_candidates(ranks[L], n_causal), dtype=torch.long) for L in layers}
    sums = {L: torch.zeros(cands[L].numel(), dtype=torch.float64) for L in layers}
    counts = {L: torch.zeros(cands[L].numel(), dtype=torch.float64) for L in layers}
    if all(c.numel() == 0 for c in cands.values()):
        return {}
    for idx in _progress(list(_batches(lengths, batch_size)), progress, f"{task} causal"):
        batch = _make_batch([enc.prompts[i] for i in idx], [enc.answers[i] for i in idx], pad_id, model.cfg.device)
        _, acts = _clean_pass(model, hooks, batch, logits=False)
        T = batch.tokens.shape[1]
        keep = _keep_mask(batch, splice_bos)
        wmask = window_mask(batch.prompt_len, T, include_bos=splice_bos)
        for L in layers:
            if cands[L].numel() == 0:
                continue
            ls = saes[L]
            x = acts[ls.hook_name]
            f, _, _ = _splice_inputs(ls, x, keep)
            active = active_features(f, wmask.to(f.device)).clone()  # (B, k)
            sub = active[:, cands[L]]  # (B, C): cap each candidate at max_prompts prompts overall
            room = (max_prompts - counts[L]).clamp(min=0).to(sub.device)
            active[:, cands[L]] = sub & (sub.cumsum(0) <= room[None])
            logp_spliced = per[L]["logp"][torch.tensor(idx)]
            s, n = feat.causal_ablation_batch(
                model, ls.sae, ls.hook_name, x, f, keep, batch.tokens, batch.prompt_len,
                batch.cont_len, active, logp_spliced, cands[L].to(f.device), batch_size=batch_size,
                start_act=start_activation(acts, ls.hook_name, model.cfg.n_layers),
            )
            sums[L] += s
            counts[L] += n
    return {
        L: {int(k): (float(sums[L][i] / counts[L][i]) if counts[L][i] > 0 else float("nan"), int(counts[L][i]))
            for i, k in enumerate(cands[L].tolist())}
        for L in layers
    }
