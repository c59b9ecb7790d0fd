"""Capture and splice, each scoped to exactly one forward pass.

Every hook sae-checks adds lives inside a context manager that removes it in ``finally``: no hook
outlives the pass that needs it. (The seed research's published notebook measured its Lambada MSE/L0
with a splice hook still attached, i.e. the SAE applied to its own reconstruction; ``assert_no_hooks``
is how the engine and the tests make sure that cannot happen here.)
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, Literal

import torch
from torch import Tensor

from sae_checks.names import hook_layer as names_hook_layer
from sae_checks.names import hook_site


def resid_pre_layer(hook_name: str) -> int | None:
    """Layer L if ``hook_name`` is ``blocks.L.hook_resid_pre`` (the start_at_layer fast path), else None."""
    site = hook_site(hook_name)
    return site.layer if site is not None and site.kind == "hook_resid_pre" else None


def hook_layer(hook_name: str) -> int:
    """The block index a hook belongs to (``blocks.L.…``); ``hook_embed``-style hooks count as layer 0."""
    layer = names_hook_layer(hook_name)
    return 0 if layer is None else layer


def active_hooks(model: Any) -> list[str]:
    """Names of the model's hook points that still have a forward hook attached."""
    return [
        name for name, hp in model.hook_dict.items()
        if len(hp._forward_hooks) or len(hp._forward_pre_hooks) or len(hp._backward_hooks)
    ]


def assert_no_hooks(model: Any) -> None:
    """Raise if any hook is attached: a leaked splice would corrupt every later measurement."""
    leaked = active_hooks(model)
    if leaked:
        raise RuntimeError(f"hooks leaked onto the model (a splice outlived its pass): {leaked}")


def _capture_hooks(hook_names: Sequence[str], store: dict[str, Tensor], detach: bool = True) -> list[Any]:
    def save(act: Tensor, hook: Any) -> None:
        act = act.detach() if detach else act
        # per-head activations (B, T, H, d_head), e.g. attn.hook_z: flattened as sae_lens trains on them
        store[hook.name] = act.flatten(-2) if act.ndim == 4 else act

    return [(name, save) for name in hook_names]


@contextmanager
def capture(model: Any, hook_names: Sequence[str], detach: bool = True) -> Iterator[dict[str, Tensor]]:
    """Record the activations at ``hook_names`` during the passes run inside the block.

    Yields a dict hook name -> activation (the last pass's), filled as the pass runs. The hooks are
    removed when the block exits, also on error.
    """
    store: dict[str, Tensor] = {}
    with model.hooks(fwd_hooks=_capture_hooks(hook_names, store, detach), reset_hooks_end=True):
        yield store


@contextmanager
def splice(
    model: Any, hook_name: str, replace: Callable[[Tensor], Tensor], capture_into: dict[str, Tensor] | None = None,
    capture_hooks: Sequence[str] = (),
) -> Iterator[None]:
    """Replace the activation at ``hook_name`` by ``replace(act)`` for the passes run inside the block
    (and record ``capture_hooks`` into ``capture_into`` in the same pass).

    Used for hooks where the start_at_layer fast path does not apply (not ``hook_resid_pre``); the
    hooks are removed when the block exits, also on error.
    """

    def hook(act: Tensor, hook: Any) -> Tensor:
        new = replace(act.flatten(-2) if act.ndim == 4 else act)
        return new.reshape(act.shape).to(act.dtype)  # back to (B, T, H, d_head) for per-head hooks

    extra = _capture_hooks(capture_hooks, capture_into if capture_into is not None else {})
    with model.hooks(fwd_hooks=[(hook_name, hook), *extra], reset_hooks_end=True):
        yield


def keep_positions(x: Tensor, x_hat: Tensor, keep_mask: Tensor | None) -> Tensor:
    """``x_hat`` with the original ``x`` restored where ``keep_mask`` (B, T) is True (BOS by default)."""
    if keep_mask is None:
        return x_hat
    return torch.where(keep_mask[..., None], x, x_hat.to(x.dtype))


def splice_start(hook_name: str, n_layers: int) -> tuple[int | None, str | None]:
    """Where a splice pass at ``hook_name`` can start: (layer, hook whose clean activation is the input).

    ``blocks.L.hook_resid_pre``: at layer L from the new activation itself (input hook None);
    ``blocks.L.hook_resid_post``: at layer L + 1 from the new activation (L + 1 = n_layers runs only the
    final norm and unembedding); any other hook in block L: at layer L from the cached clean
    ``blocks.L.hook_resid_pre``, with a scoped splice hook. (None, None): a full pass with a splice hook.
    """
    site = hook_site(hook_name)
    if site is None:
        return None, None
    if site.kind == "hook_resid_pre":
        return site.layer, None
    if site.kind == "hook_resid_post":
        return site.layer + 1 if site.layer + 1 <= n_layers else None, None
    return site.layer, f"blocks.{site.layer}.hook_resid_pre"


def forward_from(
    model: Any,
    hook_name: str,
    clean_act: Tensor,
    new_act: Tensor,
    tokens: Tensor,
    attention_mask: Tensor | None = None,
    capture_hooks: Sequence[str] = (),
    start_act: Tensor | None = None,
    final: Literal["logits", "resid"] = "logits",
    stop: int | None = None,
) -> tuple[Tensor, dict[str, Tensor]]:
    """Logits of one pass in which the activation at ``hook_name`` is ``new_act`` instead of ``clean_act``.

    The pass starts as late as it can (``splice_start``): for ``blocks.L.hook_resid_pre`` at layer L from
    ``new_act`` (``start_at_layer``: bit-identical to a full hooked pass but skipping layers < L), for
    ``hook_resid_post`` at layer L + 1; for other hooks at layer L from ``start_act`` (the clean
    ``blocks.L.hook_resid_pre``) with a scoped splice hook, or, without ``start_act``, a full pass.
    ``capture_hooks`` (downstream hooks) are recorded in the same pass.
    ``final="resid"`` stops after the last block: the final residual (B, T, d_model) instead of the logits,
    for reductions over the vocabulary in chunks of tokens (``engine.chunks``); ``stop`` (with "resid") stops
    before that block instead (the residual there), when only ``capture_hooks`` before it are wanted.
    Returns (logits (B, T, V) or final residual, captured activations).
    """
    layer, source = splice_start(hook_name, model.cfg.n_layers)
    stop = (model.cfg.n_layers if stop is None else stop) if final == "resid" else None
    if layer is not None and source is None:
        with capture(model, capture_hooks) as captured:
            out = model(new_act, start_at_layer=layer, tokens=tokens, attention_mask=attention_mask,
                        return_type="logits", stop_at_layer=stop)
        return out, dict(captured)
    captured = {}
    with splice(model, hook_name, lambda act: new_act, captured, capture_hooks):
        if layer is not None and start_act is not None:
            out = model(start_act, start_at_layer=layer, tokens=tokens, attention_mask=attention_mask,
                        return_type="logits", stop_at_layer=stop)
        else:
            out = model(tokens, attention_mask=attention_mask, return_type="logits", stop_at_layer=stop)
    return out, dict(captured)


def start_hooks(hook_names: Sequence[str], n_layers: int) -> list[str]:
    """The clean activations a batch must cache so every splice in ``hook_names`` starts late."""
    return sorted({src for h in hook_names if (src := splice_start(h, n_layers)[1]) is not None})


def start_activation(acts: Mapping[str, Tensor], hook_name: str, n_layers: int) -> Tensor | None:
    """The cached clean activation a splice at ``hook_name`` starts from (``splice_start``; the block's
    ``hook_resid_pre`` for hooks off the residual stream), or None when the splice needs none."""
    source = splice_start(hook_name, n_layers)[1]
    return acts.get(source) if source is not None else None
