"""The pass kernel: every forward pass sae-checks runs on a model goes through this module.

Callers: the engine's batch loop (``engine.run``), the cloze tasks (``experiments.cloze_passes``), the causal
sweep (``experiments.causal``) and the zoo builder's measuring loops (``zoo_builder``). What they share,
written once here so it cannot drift apart:

- :func:`pass_context`: inference mode, bfloat16 autocast when the run asks for it, the fused attention
  kernel (``engine.attention``), and ``assert_no_hooks`` when the block is entered and when it is left;
- :func:`clean_pass`: one clean forward caching some hooks, stopped at the final residual (or earlier);
- :func:`splice_pass`: one forward with the activation at a hook replaced, started as late as it can
  (``engine.hooks.forward_from``), recording downstream hooks in the same pass;
- :func:`unspliced`: the positions a splice leaves at their clean value: the tokenizer's special tokens
  (BOS/EOS/PAD/UNK) unless ``splice_bos``, and right padding always.

Each pass checks before and after that no hook is attached (``engine.hooks.assert_no_hooks``): a splice
that outlived its pass would corrupt every later measurement (the seed notebook measured its Lambada
MSE/L0 with the splice hook still attached).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, Literal

import torch
from torch import Tensor

from sae_checks.engine.attention import FusedAttention, fast_attention
from sae_checks.engine.hooks import assert_no_hooks, capture, forward_from, start_activation

Dtype = Literal["float32", "bfloat16"]


def device_type(model: Any) -> str:
    """"cuda" or "cpu" (torch.autocast's device type) of the model's ``cfg.device``."""
    return torch.device(getattr(model.cfg, "device", None) or "cpu").type


@contextlib.contextmanager
def pass_context(model: Any, *, dtype: Dtype = "float32", fast: bool = True) -> Iterator[FusedAttention]:
    """The context every pass runs in: ``torch.inference_mode``, ``torch.autocast(bfloat16)`` on the model's
    device type when ``dtype`` is "bfloat16" (float32: no autocast), and the fused attention kernel when
    ``fast`` (``engine.attention.fast_attention``). No hook may be attached when the block is entered or
    when it is left (RuntimeError naming them). Yields the fused attention's call counts."""
    if dtype not in ("float32", "bfloat16"):
        raise ValueError(f"dtype={dtype!r}: must be 'float32' or 'bfloat16'")
    assert_no_hooks(model)
    autocast = (torch.autocast(device_type(model), dtype=torch.bfloat16) if dtype == "bfloat16"
                else contextlib.nullcontext())
    with torch.inference_mode(), autocast, fast_attention(model, fast) as fused:
        yield fused
    assert_no_hooks(model)


def clean_pass(model: Any, tokens: Tensor, hooks: Sequence[str], stop: int | None = None,
               ) -> tuple[Tensor, dict[str, Tensor]]:
    """One clean forward of ``tokens`` (B, T) caching ``hooks``: (residual (B, T, d_model) before block
    ``stop``, default the final residual before the unembedding; activations hook -> (B, T, d))."""
    assert_no_hooks(model)
    with capture(model, hooks) as store:
        out = model(tokens, stop_at_layer=stop if stop is not None else model.cfg.n_layers)
        acts = dict(store)
    assert_no_hooks(model)
    return out, acts


def splice_pass(model: Any, hook: str, acts: Mapping[str, Tensor], new: Tensor, tokens: Tensor,
                capture_hooks: Sequence[str] = (), stop: int | None = None) -> tuple[Tensor, dict[str, Tensor]]:
    """One forward with ``new`` (B, T, d) at ``hook`` instead of the clean ``acts[hook]``, from the clean
    ``acts`` a :func:`clean_pass` cached (the start point of ``engine.hooks.splice_start``): (final residual
    (B, T, d_model), or the residual before block ``stop``; the ``capture_hooks`` activations of the same
    pass)."""
    assert_no_hooks(model)
    start = start_activation(acts, hook, model.cfg.n_layers)
    out = forward_from(model, hook, acts[hook], new, tokens, capture_hooks=capture_hooks, start_act=start,
                       final="resid", stop=stop)
    assert_no_hooks(model)
    return out


def unspliced(tokens: Tensor, specials: Tensor, splice_bos: bool, attention_mask: Tensor | None = None,
              ) -> Tensor | None:
    """(B, T) True where a splice keeps the clean activation: the special tokens ``specials`` (ids; BOS
    among them) unless ``splice_bos``, and the padding (``attention_mask == 0``) always; None when no
    position is kept (``engine.hooks.keep_positions`` then returns x̂ as it is)."""
    keep = None if splice_bos else torch.isin(tokens, specials.to(tokens.device))
    if attention_mask is not None:
        pad = attention_mask == 0
        keep = pad if keep is None else keep | pad
    return keep


def special_token_ids(tokenizer: Any) -> list[int]:
    """BOS/EOS/PAD/UNK ids of a tokenizer (None-safe); these are excluded from means and not spliced."""
    if tokenizer is None:
        return []
    ids = {getattr(tokenizer, name, None) for name in
           ("bos_token_id", "eos_token_id", "pad_token_id", "unk_token_id")}
    ids |= set(getattr(tokenizer, "all_special_ids", []) or [])
    return sorted(i for i in ids if i is not None)


def specials_of(model: Any) -> Tensor:
    """The model tokenizer's special token ids as a tensor (``[-1]``, matching nothing, when it has none)."""
    return torch.tensor(special_token_ids(getattr(model, "tokenizer", None)) or [-1])
