"""A fused attention fast path for the engine's passes: ``torch.nn.functional.scaled_dot_product_attention``
in place of TransformerLens' explicit scores → mask → softmax → pattern @ V.

TransformerLens materializes the (batch, head, query, key) scores and pattern so that ``hook_attn_scores``
and ``hook_pattern`` can see them; on a 2-core CPU at context 256 that masking and softmax traffic is a
third of a forward pass, and on CUDA the fused kernel (flash / memory-efficient attention) is the
difference between O(T²) and O(T) memory. sae-checks never reads those two hooks, so inside
:func:`fast_attention` each eligible attention module computes the same function with the fused kernel.

Everything else is TransformerLens' own code: ``calculate_qkv_matrices`` (with ``hook_q/k/v`` and any
QK-norm it applies), ``apply_rotary`` (with ``hook_rot_q/k``), ``hook_z`` and the output projection.
A module is patched only when nothing in its configuration changes the attention function (a plain
causal global attention: no ALiBi / relative bias, soft-capping, sinks, local windows, QKV clipping,
log-n scaling, 4-bit weights, per-head results); a call falls back to TransformerLens' forward when it
passes a KV cache, a padding mask or an additive mask, or when a hook is attached to ``hook_attn_scores``
or ``hook_pattern``. The patch is an instance attribute removed on exit, also on error.

TransformerLens builds an attention mask itself on every full forward from tokens when the tokenizer
pads on the left, which would send those passes (but not the ``start_at_layer`` splice passes) down the
fallback. sae-checks never passes left-padded tokens (sequences are packed, cloze batches right-padded),
so inside :func:`fast_attention` the tokenizer's ``padding_side`` is "right" (restored on exit). The
yielded :class:`FusedAttention` counts the calls that took the fused path and those that fell back.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch.nn.functional as F
from torch import Tensor

_POSITIONAL = ("standard", "rotary", "shortformer")
_QK_NORM_ARCHS = ("OlmoeForCausalLM", "Olmo2ForCausalLM", "Olmo3ForCausalLM")


@dataclass
class FusedAttention:
    """What :func:`fast_attention` did: modules patched, and calls fused or sent back to TransformerLens."""

    patched: int = 0
    fused_calls: int = 0
    fallback_calls: int = 0

    def describe(self, n_layers: int) -> str:
        """One line for a report's provenance."""
        if not self.patched:
            return "transformer_lens"
        text = f"fused scaled_dot_product_attention in {self.patched} of {n_layers} layers"
        if self.fallback_calls:
            total = self.fused_calls + self.fallback_calls
            text += (f"; {self.fallback_calls} of {total} attention calls fell back to transformer_lens "
                     "(attention mask, KV cache or pattern hook)")
        return text


_STATS = "_sae_checks_fused_stats"  # instance attribute of a patched module: its FusedAttention


def _has_hooks(hook_point: Any) -> bool:
    return bool(hook_point._forward_hooks or hook_point._forward_pre_hooks)


def eligible(attn: Any) -> bool:
    """Whether ``attn`` computes plain causal softmax attention that the fused kernel reproduces."""
    from transformer_lens.components import Attention, GroupedQueryAttention

    cfg = attn.cfg
    cap = getattr(cfg, "attn_scores_soft_cap", None)
    return (
        type(attn) in (Attention, GroupedQueryAttention)
        and getattr(attn, "attn_type", "global") == "global"
        and (getattr(attn, "_attention_dir_override", None) or cfg.attention_dir) == "causal"
        and cfg.positional_embedding_type in _POSITIONAL
        and cfg.original_architecture not in _QK_NORM_ARCHS
        and getattr(cfg, "clip_qkv", None) is None
        and not getattr(cfg, "use_logn_attn", False)
        and not getattr(cfg, "use_attention_sinks", False)
        and not (cap is not None and cap > 0)
        and not cfg.load_in_4bit
        and not cfg.use_attn_result
    )


def _sdpa_forward(
    self: Any,
    query_input: Tensor,
    key_input: Tensor,
    value_input: Tensor,
    past_kv_cache_entry: Any = None,
    additive_attention_mask: Tensor | None = None,
    attention_mask: Tensor | None = None,
    position_bias: Tensor | None = None,
) -> Tensor:
    """``AbstractAttention.forward`` for plain causal attention, with the fused kernel (see module doc)."""
    stats: FusedAttention | None = self.__dict__.get(_STATS)
    if (
        past_kv_cache_entry is not None or additive_attention_mask is not None or attention_mask is not None
        or position_bias is not None or _has_hooks(self.hook_attn_scores) or _has_hooks(self.hook_pattern)
    ):
        if stats is not None:
            stats.fallback_calls += 1
        return type(self).forward(self, query_input, key_input, value_input, past_kv_cache_entry,
                                  additive_attention_mask, attention_mask, position_bias)
    if stats is not None:
        stats.fused_calls += 1
    q, k, v = self.calculate_qkv_matrices(query_input, key_input, value_input)  # (B, T, H, d_head)
    if self.cfg.positional_embedding_type == "rotary":
        q = self.hook_rot_q(self.apply_rotary(q, 0, None))
        k = self.hook_rot_k(self.apply_rotary(k, 0, None))
    v = v.to(q.dtype)
    z = F.scaled_dot_product_attention(
        q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), is_causal=True,
        scale=1.0 / float(self.attn_scale), enable_gqa=k.shape[2] != q.shape[2],
    ).transpose(1, 2)  # (B, T, H, d_head)
    z = self.hook_z(z)
    w = self.W_O.reshape(-1, self.W_O.shape[-1]).T  # (d_model, H * d_head), TransformerLens' layout
    b_O = self.b_O
    if w.device != z.device:
        w, b_O = w.to(z.device), b_O.to(z.device)
    if z.dtype != w.dtype:
        z = z.to(w.dtype)
    return F.linear(z.reshape(z.shape[0], z.shape[1], -1), w, b_O)


@contextmanager
def fast_attention(model: Any, enabled: bool = True) -> Iterator[FusedAttention]:
    """Use the fused attention kernel in every eligible attention module of ``model`` inside the block.

    Yields a :class:`FusedAttention` (``patched`` is 0 when ``enabled`` is False or none is eligible) whose
    call counts grow while the block runs.
    """
    stats = FusedAttention()
    patched: list[Any] = []
    tokenizer = getattr(model, "tokenizer", None)
    padding_side = getattr(tokenizer, "padding_side", None)
    try:
        if enabled:
            for block in getattr(model, "blocks", []):
                attn = getattr(block, "attn", None)
                if attn is not None and "forward" not in vars(attn) and eligible(attn):
                    attn.forward = _sdpa_forward.__get__(attn)
                    setattr(attn, _STATS, stats)
                    patched.append(attn)
            if patched and padding_side == "left" and tokenizer is not None:
                tokenizer.padding_side = "right"  # see the module docstring
        stats.patched = len(patched)
        yield stats
    finally:
        for attn in patched:
            del attn.forward
            delattr(attn, _STATS)
        if patched and padding_side == "left" and tokenizer is not None:
            tokenizer.padding_side = padding_side
