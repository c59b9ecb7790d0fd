"""Loaders: the model (TransformerLens), the SAEs (sae_lens) and the data (token sequences, cloze prompts).

- :func:`sae_checks.loading.models.load_model`
- :func:`sae_checks.loading.saes.load_saes` -> ``dict[int, LoadedSAE]``
- :func:`sae_checks.loading.data.load_sequences`, :func:`sae_checks.loading.data.load_cloze`

Hub resources are checked against the local Hugging Face cache *before* anything touches the network:
with ``HF_HUB_OFFLINE=1`` a missing model, SAE or dataset raises ``OfflineError`` at once instead of
sitting in retries. The helpers below are shared by the three modules; heavy imports stay inside them.
"""

from __future__ import annotations

import os

__all__ = ["cached_file", "hub_cache_dir", "hub_offline"]

_TRUE = {"1", "on", "yes", "true"}


def hub_offline() -> bool:
    """True when Hugging Face hub access is disabled: ``HF_HUB_OFFLINE`` (read from the environment now,
    and from ``huggingface_hub.constants``, which reads it at import time) or ``TRANSFORMERS_OFFLINE``."""
    if any(os.environ.get(var, "").strip().lower() in _TRUE for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")):
        return True
    try:
        from huggingface_hub import constants
    except ImportError:  # pragma: no cover - huggingface_hub is a dependency of transformers
        return False
    return bool(constants.HF_HUB_OFFLINE)


def cached_file(repo_id: str, filename: str, repo_type: str = "model", revision: str | None = None) -> str | None:
    """Local path of ``filename`` of ``repo_id`` in the Hugging Face cache, or None when not cached
    (never touches the network). The cache location is read from the environment at call time
    (``HF_HUB_CACHE``, else ``HF_HOME``/hub), so a test that sets these variables is honoured."""
    from huggingface_hub import try_to_load_from_cache

    path = try_to_load_from_cache(repo_id, filename, cache_dir=hub_cache_dir(), repo_type=repo_type,
                                  revision=revision)
    return path if isinstance(path, str) else None


def hub_cache_dir() -> str:
    """The hub cache folder: ``HF_HUB_CACHE``, else ``$HF_HOME/hub``, else huggingface_hub's default."""
    if os.environ.get("HF_HUB_CACHE"):
        return os.environ["HF_HUB_CACHE"]
    if os.environ.get("HF_HOME"):
        return os.path.join(os.environ["HF_HOME"], "hub")
    from huggingface_hub import constants

    return constants.HF_HUB_CACHE
