"""Capture and splice, each scoped to exactly one forward pass.

Every hook sae-checks adds lives inside a context manager that removes it in ``finally``: no hook
outlives the pass that needs it. (The seed research's published notebook measured its Lambada MSE/L0
with a splice hook still attached, i.e. the SAE applied to its own reconstruction; ``assert_no_hooks``
is how the engine and the tests make sure that cannot happen here.)
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import torch
from torch import Tensor

_RESID_PRE = re.compile(r"^blocks\.(\d+)\.hook_resid_pre$")


def resid_pre_layer(hook_name: str) -> int | None:
    """Layer L if ``hook_name`` is ``blocks.L.hook_resid_pre`` (the start_at_layer fast path), else None."""
    m = _RESID_PRE.match(hook_name)
    return int(m.group(1)) if m else None


def hook_layer(hook_name: str) -> int:
    """The block index a hook belongs to (``blocks.L.…``); ``hook_embed``-style hooks count as layer 0."""
    m = re.match(r"^blocks\.(\d+)\.", hook_name)
    return int(m.group(1)) if m else 0


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
        store[hook.name] = act.detach() if detach else act

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
        return replace(act).to(act.dtype)

    extra = _capture_hooks(capture_hooks, capture_into if capture_into is not None else {})
    with model.hooks(fwd_hooks=[(hook_name, hook), *extra], reset_hooks_end=True):
        yield


def keep_positions(x: Tensor, x_hat: Tensor, keep_mask: Tensor | None) -> Tensor:
    """``x_hat`` with the original ``x`` restored where ``keep_mask`` (B, T) is True (BOS by default)."""
    if keep_mask is None:
        return x_hat
    return torch.where(keep_mask[..., None], x, x_hat.to(x.dtype))


def forward_from(
    model: Any,
    hook_name: str,
    clean_act: Tensor,
    new_act: Tensor,
    tokens: Tensor,
    attention_mask: Tensor | None = None,
    capture_hooks: Sequence[str] = (),
) -> tuple[Tensor, dict[str, Tensor]]:
    """Logits of one pass in which the activation at ``hook_name`` is ``new_act`` instead of ``clean_act``.

    For ``blocks.L.hook_resid_pre`` the pass starts at layer L from ``new_act`` (``start_at_layer``):
    bit-identical to a full hooked pass but skipping layers < L. Other hooks fall back to a full pass
    with a scoped splice hook. ``capture_hooks`` (downstream hooks) are recorded in the same pass.
    Returns (logits (B, T, V), captured activations).
    """
    layer = resid_pre_layer(hook_name)
    if layer is not None:
        with capture(model, capture_hooks) as captured:
            logits = model(
                new_act, start_at_layer=layer, tokens=tokens, attention_mask=attention_mask,
                return_type="logits",
            )
    else:
        captured = {}
        with splice(model, hook_name, lambda act: new_act, captured, capture_hooks):
            logits = model(tokens, attention_mask=attention_mask, return_type="logits")
    return logits, dict(captured)
