"""Cloze items as token rows: the tokenization of prompts and continuations (lm-evaluation-harness' split for
Lambada), the cut that makes a row fit the context, and right-padded batches of rows, longest first.

Definitions: docs/definitions.md#cloze-rows.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

import torch
from torch import Tensor

from sae_checks.errors import DataError

if TYPE_CHECKING:
    from sae_checks.loading.data import ClozeItem


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
    BOS for gpt2 (``add_bos_token=False``) where sae-checks puts BOS first (position 0 is BOS,
    docs/definitions.md#notation): log-probs equal lm-eval's run with ``add_bos_token=True``."""
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


class RowBatch(NamedTuple):
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


def make_batch(prompts: list[list[int]], conts: list[list[int]], pad_id: int, device: Any) -> RowBatch:
    """Rows ``prompt + continuation`` right-padded with ``pad_id`` on ``device`` (see :class:`RowBatch`)."""
    rows = [p + c for p, c in zip(prompts, conts, strict=True)]
    T = max(len(r) for r in rows)
    tokens = torch.full((len(rows), T), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), T), dtype=torch.long)
    for b, r in enumerate(rows):
        tokens[b, :len(r)] = torch.tensor(r)
        mask[b, :len(r)] = 1
    return RowBatch(
        tokens.to(device), mask.to(device),
        torch.tensor([len(p) for p in prompts], device=device),
        torch.tensor([len(c) for c in conts], device=device),
    )


def batches(lengths: list[int], batch_size: int) -> Iterator[list[int]]:
    """Row indices in batches, longest first (less padding); results are scattered back by index."""
    order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))
    for s in range(0, len(order), batch_size):
        yield order[s:s + batch_size]


def max_row_length(enc: EncodedItems) -> int:
    """The longest row the passes run: prompt + answer, or prompt + its longest option (CBT)."""
    options = enc.options or [[] for _ in enc.prompts]
    return max(len(p) + max([len(a)] + [len(o) for o in opts])
               for p, a, opts in zip(enc.prompts, enc.answers, options, strict=True))
