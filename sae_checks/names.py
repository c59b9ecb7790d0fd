"""SAE names and hook kinds: what an SAE is called in results, check ids and baselines, and which
TransformerLens hooks sae-checks can splice.

The unit of every result is an SAE, named by its id inside a sae_lens release (``blocks.3.hook_resid_pre``,
``layer_0/width_16k/average_l0_71``) or by its folder name. Layer and hook are fields of the SAE, so a
suite can hold several SAEs at one hook. Pure functions, no torch.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, NamedTuple

_SLUG_BAD = re.compile(r"[^A-Za-z0-9_.+-]")

# Hook kinds inside block L, in forward order (the stage orders propagation: upstream before downstream).
# value: (stage, activation width from the model config)
HOOK_KINDS: dict[str, tuple[int, str]] = {
    "hook_resid_pre": (0, "d_model"),
    "attn.hook_z": (1, "d_attn"),  # (B, T, H, d_head), flattened to (B, T, H * d_head) as sae_lens does
    "hook_attn_out": (2, "d_model"),
    "hook_resid_mid": (3, "d_model"),
    "mlp.hook_pre": (4, "d_mlp"),
    "mlp.hook_post": (5, "d_mlp"),
    "hook_mlp_out": (6, "d_model"),
    "hook_resid_post": (7, "d_model"),
}
_HOOK_RE = re.compile(r"^blocks\.(\d+)\.(.+)$")  # the one parse of a hook name: blocks.<layer>.<kind>


class HookSite(NamedTuple):
    """Where an SAE reads and splices: ``blocks.<layer>.<kind>``."""

    layer: int
    kind: str  # a key of HOOK_KINDS

    @property
    def name(self) -> str:
        return f"blocks.{self.layer}.{self.kind}"

    @property
    def order(self) -> tuple[int, int]:
        """Position in the forward pass: (layer, stage)."""
        return self.layer, HOOK_KINDS[self.kind][0]


def hook_site(hook_name: str) -> HookSite | None:
    """The site of a hook sae-checks can splice, or None (an unsupported hook)."""
    m = _HOOK_RE.match(hook_name or "")
    if not m or m.group(2) not in HOOK_KINDS:
        return None
    return HookSite(int(m.group(1)), m.group(2))


def hook_layer(hook_name: str | None) -> int | None:
    """The layer L of a hook named ``blocks.L.<anything>`` (supported by the splice or not), else None."""
    m = _HOOK_RE.match(hook_name or "")
    return int(m.group(1)) if m else None


def supported_hooks_text() -> str:
    return ", ".join(f"blocks.L.{k}" for k in HOOK_KINDS)


def hook_width(model_cfg: Any, kind: str) -> int:
    """Width of the (flattened) activation at a hook of kind ``kind`` for a TransformerLens config."""
    what = HOOK_KINDS[kind][1]
    if what == "d_attn":
        return int(model_cfg.n_heads) * int(model_cfg.d_head)
    if what == "d_mlp":
        return int(model_cfg.d_mlp)
    return int(model_cfg.d_model)


def slug(name: str) -> str:
    """``name`` with every character outside ``[A-Za-z0-9_.+-]`` replaced by ``_``: safe in check ids,
    pytest ids and ``-k`` expressions."""
    return _SLUG_BAD.sub("_", name)


def sae_sort_key(layer: int, hook_name: str, name: str) -> tuple[int, int, str]:
    """Order SAEs by their place in the forward pass, then by name."""
    site = hook_site(hook_name)
    return (layer, site.order[1] if site else 99, name)


def propagation_pairs(hooks: dict[str, str]) -> list[tuple[str, str]]:
    """(upstream, downstream) pairs of SAE names (``hooks``: name -> hook, in forward order) whose
    downstream hook comes strictly later in the forward pass; SAEs at the same hook form no pair."""
    def order(hook: str) -> tuple[int, int]:
        site = hook_site(hook)
        return site.order if site is not None else (10**9, 0)

    return [(a, b) for a in hooks for b in hooks if order(hooks[a]) < order(hooks[b])]


def check_id(family: str, metric: str, layer: int, sae: str, bucket: str | None = None,
             upstream: int | None = None, upstream_sae: str | None = None) -> str:
    """The baseline key of a check (never a pytest node id: xdist rewrites those), built only from
    characters pytest's ``-k`` accepts: ``fvu-L3-pos1_128-<sae>``, ``context_ratio-fvu-L3-<sae>``,
    ``cloze-lambada-acc_word-L3-<sae>``, ``propagation-mse-L1-<up>-to-L3-<down>`` (``metric`` is the
    policy name, e.g. ``context_ratio.fvu``; ``<sae>`` is ``slug(name)``)."""
    name = slug(sae)
    if family == "bucket":
        a, b = (bucket or "-").split("-", 1)
        return f"{metric}-L{layer}-pos{a}_{b}-{name}"
    if family == "propagation":
        return f"{metric.replace('.', '-')}-L{upstream}-{slug(upstream_sae or '')}-to-L{layer}-{name}"
    return f"{metric.replace('.', '-')}-L{layer}-{name}"


# schema-1 check ids (``metric/layer=L/...``), mapped on load so published baselines stay valid
_BUCKET_ID = re.compile(r"^(?P<metric>[^/]+)/layer=(?P<layer>\d+)/bucket=(?P<a>\d+)-(?P<b>\d+)$")
_PROPAGATION_ID = re.compile(r"^propagation/(?P<metric>[^/]+)/up=(?P<up>\d+)/down=(?P<down>\d+)$")
_LAYER_ID = re.compile(r"^(?P<path>.+)/layer=(?P<layer>\d+)$")


def upgrade_check_id(old: str, names: Mapping[str, list[str]]) -> tuple[str, dict[str, Any]]:
    """(new id, fields to add) for a legacy check id; ``(old, {})`` when it is not legacy or its
    layer does not have exactly one SAE in ``names`` (``{"<layer>": [name, ...]}``).

    ``fvu/layer=3/bucket=1-32`` -> ``fvu-L3-pos1_32-<sae>``; ``context_ratio/fvu/layer=3`` ->
    ``context_ratio-fvu-L3-<sae>``; ``cloze/lambada/acc_word/layer=3`` -> ``cloze-lambada-acc_word-L3-<sae>``;
    ``propagation/mse/up=1/down=3`` -> ``propagation-mse-L1-<up>-to-L3-<down>``.
    """
    def one(layer: str) -> str | None:
        found = names.get(str(int(layer)), [])
        return found[0] if len(found) == 1 else None

    if m := _PROPAGATION_ID.match(old):
        up, down = one(m["up"]), one(m["down"])
        if up is None or down is None:
            return old, {}
        new = check_id("propagation", f"propagation.{m['metric']}", int(m["down"]), down, upstream=int(m["up"]),
                       upstream_sae=up)
        return new, {"sae": down, "upstream_sae": up}
    if m := _BUCKET_ID.match(old):
        sae = one(m["layer"])
        if sae is None:
            return old, {}
        return check_id("bucket", m["metric"], int(m["layer"]), sae, f"{m['a']}-{m['b']}"), {"sae": sae}
    if m := _LAYER_ID.match(old):
        sae = one(m["layer"])
        if sae is None:
            return old, {}
        return check_id("layer", m["path"].replace("/", "."), int(m["layer"]), sae), {"sae": sae}
    return old, {}
