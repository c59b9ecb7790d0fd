"""Shared builders for engine tests: tiny models with LoadedSAE wrappers around hand-set SAEs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from sae_checks.loading.saes import LoadedSAE
from tests.tiny import identity_sae, tiny_model, tiny_sae, tiny_tokenizer  # noqa: F401 (re-export)


def loaded(sae: Any, layer: int, context_size: int | None = 16) -> LoadedSAE:
    """Wrap an in-memory SAE as the loaders would."""
    return LoadedSAE(
        sae=sae, layer=layer, hook_name=sae.cfg.metadata.hook_name, release=None, sae_id=None, path="",
        sha256="", context_size=context_size, architecture=sae.cfg.architecture(), d_in=sae.cfg.d_in,
        d_sae=sae.cfg.d_sae, model_name=None, neuronpedia_id=None,
    )


def world(tmp: Path, *, n_layers: int = 3, d_model: int = 16, n_ctx: int = 24, seed: int = 0,
          arch: str = "standard", d_sae: int = 48) -> tuple[Any, dict[int, LoadedSAE]]:
    """A random model and one random SAE per layer."""
    tok = tiny_tokenizer(tmp / "tok")
    model = tiny_model(tok, n_layers=n_layers, d_model=d_model, n_ctx=n_ctx, seed=seed)
    saes = {L: loaded(tiny_sae(model, L, arch=arch, d_sae=d_sae, seed=seed, context_size=8), L)
            for L in range(n_layers)}
    return model, saes


def random_tokens(model: Any, n: int, seed: int = 0) -> torch.Tensor:
    """(n, n_ctx) random tokens with BOS at position 0 and no other special token."""
    gen = torch.Generator().manual_seed(seed)
    bos = model.tokenizer.bos_token_id
    toks = torch.randint(0, model.cfg.d_vocab, (n, model.cfg.n_ctx), generator=gen)
    toks[toks == bos] = (bos + 1) % model.cfg.d_vocab
    toks[:, 0] = bos
    return toks
