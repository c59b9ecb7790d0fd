"""Release cards: what a sae_lens release says about each of its SAEs, and whether the SAE that loads agrees.

A *card* is the sae_lens registry's entry for one SAE (``pretrained_saes.yaml``, shipped inside the
sae_lens wheel and readable offline): the published L0 and, for a few releases, the variance explained,
the normalisation scaling factor, the model. :func:`release_card` reads it through sae_lens' own
directory (one parse per process, cached by sae_lens).

*Declared facts* are what an SAE's config says it is (hook, d_in, architecture and its parameters,
normalisation, dtype, model); :func:`fact_problems` checks them against the SAE object that loaded and
the model it is spliced into, before any compute, one line per problem naming the SAE and the field.
These catch the ways published SAEs have shipped broken: a TopK SAE whose cfg says ``standard`` (so it
loads as a ReLU SAE), a JumpReLU SAE without thresholds, an ``expected_average_only_in`` SAE whose
scaling factor was never folded, an SAE attached to a hook its model does not have.

Definitions: ``docs/definitions.md#release-cards``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

NORMALIZATIONS = ("none", "expected_average_only_in", "constant_norm_rescale", "layer_norm",
                  "covariance_whitening")


@dataclass(frozen=True, kw_only=True)
class Card:
    """One SAE's entry in the sae_lens registry. ``None`` where the registry gives no figure."""

    release: str
    sae_id: str
    model: str  # the registry's model name for the release ("gpt2-small")
    repo_id: str  # Hugging Face repository the weights come from
    l0: float | None  # published mean L0 (active latents per token)
    variance_explained: float | None  # published explained variance (a fraction)
    norm_scaling_factor: float | None  # for expected_average_only_in SAEs: the factor sae_lens folds in
    source: str  # where the card came from, e.g. "sae_lens 6.54.12 pretrained_saes.yaml"

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready (the report's ``results.cards[sae]``)."""
        return {"release": self.release, "sae_id": self.sae_id, "model": self.model, "repo_id": self.repo_id,
                "l0": self.l0, "variance_explained": self.variance_explained,
                "norm_scaling_factor": self.norm_scaling_factor, "source": self.source}


def _sae_lens_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("sae-lens")
    except PackageNotFoundError:  # pragma: no cover - sae_lens is a dependency
        return "?"


def release_card(release: str, sae_id: str) -> Card | None:
    """The card of ``sae_id`` in sae_lens release ``release``; None when the registry does not list it.

    sae_lens' directory fills absent figures with defaults (``l0`` 0.0, ``variance_explained`` 1.0):
    those are read as "not published" (no real SAE has L0 0 or explains variance exactly 1.0).
    """
    from sae_lens.loading.pretrained_saes_directory import get_pretrained_saes_directory

    lookup = get_pretrained_saes_directory().get(release)
    if lookup is None or sae_id not in lookup.saes_map:
        return None
    l0 = lookup.expected_l0.get(sae_id)
    ve = lookup.expected_var_explained.get(sae_id)
    return Card(
        release=release, sae_id=sae_id, model=lookup.model, repo_id=lookup.repo_id,
        l0=float(l0) if l0 else None,
        variance_explained=float(ve) if ve is not None and float(ve) != 1.0 else None,
        norm_scaling_factor=lookup.norm_scaling_factor.get(sae_id),
        source=f"sae_lens {_sae_lens_version()} pretrained_saes.yaml",
    )


def card_of(loaded: Any) -> Card | None:
    """The card of a loaded SAE (``loading.saes.LoadedSAE``): its release's registry entry; None for a local
    folder or the zoo (no registry entry)."""
    release, sae_id = getattr(loaded, "release", None), getattr(loaded, "sae_id", None)
    if not release or not sae_id or release.startswith("zoo:"):
        return None
    return release_card(release, sae_id)


def fact_problems(name: str, sae: Any, *, hook_name: str, model_cfg: Any, hooks: Any = None,
                  card: Card | None = None, model_name: str | None = None) -> list[str]:
    """Every disagreement between what SAE ``name`` declares and what loaded, one line each naming the SAE
    and the field; empty when everything agrees.

    ``sae``: the loaded sae_lens SAE; ``hook_name``: where it reads; ``model_cfg``: the TransformerLens
    config of the model it is spliced into; ``hooks``: the model's hook names (``model.hook_dict``), to
    check the hook exists; ``card``: its registry entry, if any; ``model_name``: the run's model.
    Checked: hook and layer vs the model, d_in vs the activation width at the hook, architecture and its
    parameters (TopK ``k``; JumpReLU thresholds present, finite, not all zero; gated SAE's gate weights),
    normalisation setting (known; ``expected_average_only_in`` folded), dtype of the weights vs the
    config, and the model the SAE was trained on vs the run's model and the card's.
    """
    import torch

    from sae_checks.loading.models import same_model
    from sae_checks.names import hook_site, hook_width

    cfg = sae.cfg
    out: list[str] = []

    def bad(field: str, text: str) -> None:
        out.append(f"SAE {name}: {field}: {text}")

    site = hook_site(hook_name)
    n_layers = int(getattr(model_cfg, "n_layers", 0) or 0)
    if site is None:
        bad("hook_name", f"{hook_name!r} is not a hook sae-checks can splice")
    else:
        if n_layers and site.layer >= n_layers:
            bad("hook_name", f"{hook_name!r} is at layer {site.layer} but the model has {n_layers} blocks "
                             f"(0..{n_layers - 1})")
        elif hooks is not None and hook_name not in hooks:
            bad("hook_name", f"{hook_name!r} is not a hook of the model")
        else:
            width = hook_width(model_cfg, site.kind)
            if int(cfg.d_in) != width:
                bad("d_in", f"{cfg.d_in} but the activation at {hook_name} has width {width}")

    state = dict(sae.state_dict())
    arch = str(cfg.architecture())
    d_sae = int(cfg.d_sae)
    if "topk" in arch:
        k = getattr(cfg, "k", None)
        if not isinstance(k, int) or isinstance(k, bool) or not 1 <= k <= d_sae:
            bad("k", f"{k!r}: a {arch} SAE needs an integer k in 1..d_sae={d_sae}")
    if "jumprelu" in arch:
        threshold = state.get("threshold")
        if threshold is None:
            bad("threshold", f"a {arch} SAE without a threshold tensor")
        elif tuple(threshold.shape) != (d_sae,):
            bad("threshold", f"shape {tuple(threshold.shape)}, expected ({d_sae},)")
        elif not bool(torch.isfinite(threshold).all()):
            bad("threshold", "non-finite values")
        elif not bool((threshold != 0).any()):
            bad("threshold", "every threshold is 0: this JumpReLU SAE acts as a ReLU SAE")
    if arch == "gated":
        for tensor in ("b_gate", "r_mag", "b_mag"):
            if tensor not in state:
                bad(tensor, f"a gated SAE without {tensor}")
    norm = getattr(cfg, "normalize_activations", "none")
    if norm not in NORMALIZATIONS:
        bad("normalize_activations", f"{norm!r} is not one of {', '.join(NORMALIZATIONS)}")
    elif norm == "expected_average_only_in":
        where = (f"release {card.release!r} gives no norm_scaling_factor" if card is not None
                 else "no scaling factor is known for a local folder")
        bad("normalize_activations", f"'expected_average_only_in' is still set after loading ({where}): the "
                                     "activations reach the SAE unscaled; fold the factor into the weights "
                                     "(sae.fold_activation_norm_scaling_factor) and set it to 'none'")

    declared = str(getattr(cfg, "dtype", "float32")).removeprefix("torch.")
    dtypes = {str(t.dtype).removeprefix("torch.") for t in state.values() if torch.is_floating_point(t)}
    if declared not in ("float32", "float16", "bfloat16", "float64"):
        bad("dtype", f"{declared!r} is not a floating-point dtype")
    elif dtypes and dtypes != {declared}:
        bad("dtype", f"{declared!r} but the weights are {', '.join(sorted(dtypes))}")

    trained_on = getattr(getattr(cfg, "metadata", None), "model_name", None)
    if model_name and trained_on and not same_model(trained_on, model_name):
        bad("model_name", f"trained on {trained_on!r} but spliced into {model_name!r}")
    if card is not None and trained_on and not same_model(trained_on, card.model):
        bad("model_name", f"{trained_on!r} but release {card.release!r} is for {card.model!r}")
    return out

