"""Load the language model: the embedded zoo model or a TransformerLens pretrained model (``gpt2-small``).

LayerNorm models (gpt2, pythia) load with TransformerLens' default weight processing. RMSNorm models
(gemma-2, Llama, Qwen2 ...) load *unprocessed*: the Hugging Face model in its checkpoint's dtype (config.json
``torch_dtype`` / ``dtype``: bfloat16 weights stay bfloat16 until converted), handed to
``HookedTransformer.from_pretrained_no_processing`` (float32 weights, no fold_ln, no centering, no value-bias
folding; ``cfg.normalization_type`` stays ``"RMS"``). TransformerLens never centers RMSNorm models, folding
a norm's weight changes no activation an SAE reads (residual stream, attention and MLP outputs, ``hook_z``),
and the default path holds a float32 Hugging Face copy beside the converted model: for gemma-2-2b (2.6B
parameters, 12.8 GB as a float32 HookedTransformer) over 23 GB by parameter count; this path holds the
bfloat16 copy, 5.2 GB, beside it (README, "Releases and file layouts tested").

Offline (``HF_HUB_OFFLINE=1``), the Hugging Face cache is checked first, so a model that is not there
fails at once with an ``OfflineError`` that says how to provide it, instead of hanging in retries.
"""

from __future__ import annotations

import difflib
import warnings
from typing import Any

from sae_checks.config import DTYPES
from sae_checks.errors import ConfigError, LoadError, OfflineError
from sae_checks.loading import cached_file, hub_offline

__all__ = ["checkpoint_dtype", "load_model", "official_model_name", "same_model", "unprocessed"]

# Files of a HF model repo, one of which must be cached for the weights to load offline.
_WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin",
                 "pytorch_model.bin.index.json")


def load_model(name: str, device: str = "cpu", dtype: str = "float32") -> Any:
    """The model ``name`` on ``device``, in eval mode.

    ``name`` is ``"zoo"`` (the embedded tiny model, :func:`sae_checks.zoo.load_zoo_model`) or a
    TransformerLens pretrained name or alias (``gpt2-small``, ``gpt2``, ``pythia-70m`` ...), loaded with
    ``HookedTransformer.from_pretrained(name, device=device)`` and its default weight processing
    (fold_ln, center_writing_weights, center_unembed), which is what sae_lens' GPT-2 SAEs were trained on;
    an RMSNorm model (TransformerLens config ``normalization_type`` ``"RMS"``) loads unprocessed from its
    Hugging Face weights in the checkpoint's dtype (module docstring, :func:`unprocessed`).

    Weights stay float32 whatever ``dtype`` says: ``bfloat16`` means autocast in the engine (CUDA only),
    so only the value is validated here.
    """
    if dtype not in DTYPES:
        raise ConfigError("dtype", dtype, f"must be one of {', '.join(DTYPES)}")
    if name == "zoo":
        from sae_checks.zoo import load_zoo_model

        try:
            model = load_zoo_model(device)
        except FileNotFoundError as err:  # zoo files not built
            raise LoadError(f"model 'zoo': {err}") from err
    else:
        model = _load_pretrained(name, device)
    model.eval()
    return model


def official_model_name(name: str) -> str:
    """TransformerLens' official (HF repo) name for ``name`` (``gpt2-small`` -> ``gpt2``); ``LoadError``
    naming the model, close matches and where to find the valid names when it is unknown."""
    from transformer_lens import loading_from_pretrained as tl_loading

    try:
        return str(tl_loading.get_official_model_name(name))
    except ValueError:
        aliases = sorted(tl_loading.make_model_alias_map())
        close = difflib.get_close_matches(name.lower(), aliases, n=3, cutoff=0.6)
        hint = f"did you mean {', '.join(close)}? " if close else ""
        raise LoadError(
            f"model {name!r} is not a TransformerLens pretrained model name: {hint}valid names and aliases are "
            "listed in transformer_lens.loading_from_pretrained.OFFICIAL_MODEL_NAMES / MODEL_ALIASES "
            "(or the TransformerLens model table); use 'zoo' for the embedded tiny model"
        ) from None


def same_model(a: str | None, b: str | None) -> bool:
    """Whether two model names denote the same TransformerLens model (``gpt2-small`` == ``gpt2`` ==
    ``openai-community/gpt2``); unknown names compare case-insensitively."""
    if a is None or b is None:
        return True

    def canonical(name: str) -> str:
        from transformer_lens import loading_from_pretrained as tl_loading

        for candidate in (name, name.split("/")[-1]):
            official = tl_loading.make_model_alias_map().get(candidate.lower())
            if official is not None:
                return str(official).split("/")[-1].lower()
        return name.split("/")[-1].lower()

    return a == b or canonical(a) == canonical(b)


def _load_pretrained(name: str, device: str) -> Any:
    official = official_model_name(name)
    offline = hub_offline()
    fix = (f"fill the Hugging Face cache with {official!r} on a machine with network access "
           "(e.g. `HookedTransformer.from_pretrained(...)` there) and copy it here (HF_HOME / HF_HUB_CACHE), "
           "or use --sae-model zoo")
    if offline and not _is_cached(official):
        raise OfflineError(f"model {name!r} (Hugging Face repo {official!r})", fix)

    from transformer_lens import HookedTransformer

    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*HookedTransformer.*deprecated", category=DeprecationWarning)
            if unprocessed(official):
                return _load_unprocessed(name, official, device)
            return HookedTransformer.from_pretrained(name, device=device)
    except OSError as err:  # transformers / huggingface_hub: missing files, offline mode, connection errors
        detail = " ".join(str(err).split())[:300]
        if offline:
            raise OfflineError(f"model {name!r} (Hugging Face repo {official!r})", f"{fix}; {detail}") from err
        raise LoadError(f"model {name!r} (Hugging Face repo {official!r}) could not be loaded: {detail}") from err


def _is_cached(repo_id: str) -> bool:
    """The config and a weights file of ``repo_id`` are in the local Hugging Face cache."""
    return cached_file(repo_id, "config.json") is not None and any(
        cached_file(repo_id, f) is not None for f in _WEIGHT_FILES
    )


def unprocessed(official: str) -> bool:
    """Whether ``official`` (a TransformerLens official name) is an RMSNorm model, loaded unprocessed:
    TransformerLens' config for it (hard-coded or read from the cached config.json) says ``"RMS"``."""
    from transformer_lens import loading_from_pretrained as tl_loading

    return str(tl_loading.get_pretrained_model_config(official).normalization_type) == "RMS"


def checkpoint_dtype(official: str) -> Any:
    """The torch dtype the checkpoint of ``official`` is stored in: its cached config.json's ``torch_dtype``
    (``dtype`` in configs written by transformers 5); float32 when absent or unknown."""
    import json
    from pathlib import Path

    import torch

    path = cached_file(official, "config.json")
    config = json.loads(Path(path).read_text()) if path is not None else {}
    name = str(config.get("torch_dtype") or config.get("dtype") or "float32").removeprefix("torch.")
    dtype = getattr(torch, name, None)
    return dtype if isinstance(dtype, torch.dtype) else torch.float32


def _load_unprocessed(name: str, official: str, device: str) -> Any:
    """The Hugging Face model in its checkpoint dtype, converted by TransformerLens without processing
    (float32 weights); the Hugging Face copy is released when this returns."""
    import torch
    from transformer_lens import HookedTransformer
    from transformers import AutoModelForCausalLM

    hf_model = AutoModelForCausalLM.from_pretrained(official, dtype=checkpoint_dtype(official))
    return HookedTransformer.from_pretrained_no_processing(name, hf_model=hf_model, dtype=torch.float32,
                                                           device=device)
