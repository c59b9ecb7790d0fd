"""The medium random-init world of the speed benchmark (issue 3): 8 layers, d_model 256, context 256,
d_sae 4096, a 4096-token vocabulary, one StandardSAE per layer on ``blocks.L.hook_resid_pre``.

Also runnable as a script for the memory benchmark: ``python -m benchmarks.medium N_SEQS`` runs the
engine on N_SEQS sequences and prints the peak resident memory (max RSS, MiB) of that process.
"""

from __future__ import annotations

import resource
import sys
import warnings
from collections.abc import Iterable
from typing import Any

import torch

N_LAYERS, D_MODEL, N_CTX, D_SAE, D_VOCAB = 8, 256, 256, 4096, 4096


def medium_world(seed: int = 0) -> tuple[Any, dict[int, Any]]:
    return random_world(n_layers=N_LAYERS, d_model=D_MODEL, n_heads=8, n_ctx=N_CTX, d_vocab=D_VOCAB, d_sae=D_SAE,
                        sae_layers=range(N_LAYERS), act_fn="gelu", seed=seed)


def random_world(*, n_layers: int, d_model: int, n_heads: int, n_ctx: int, d_vocab: int, d_sae: int,
                 sae_layers: Iterable[int], act_fn: str = "gelu", seed: int = 0,
                 tokenizer: Any = None) -> tuple[Any, dict[int, Any]]:
    """A random-init HookedTransformer (LayerNorm, d_mlp = 4 d_model) and one StandardSAE (context 128) on
    ``blocks.L.hook_resid_pre`` for each L in ``sae_layers``, encoder N(0, 1/d_model), decoder half its
    transpose, b_enc −0.5 (some features fire, reconstructions are not absurd); ``tokenizer`` attached to
    the model when given."""
    from sae_lens import StandardSAE, StandardSAEConfig
    from sae_lens.saes.sae import SAEMetadata
    from transformer_lens import HookedTransformer, HookedTransformerConfig

    from sae_checks.loading.saes import LoadedSAE

    warnings.filterwarnings("ignore", message=".*deprecated.*")
    torch.manual_seed(seed)
    cfg = HookedTransformerConfig(
        n_layers=n_layers, d_model=d_model, n_heads=n_heads, d_head=d_model // n_heads, d_mlp=4 * d_model,
        n_ctx=n_ctx, d_vocab=d_vocab, act_fn=act_fn, normalization_type="LN", device="cpu", seed=seed,
    )
    model = HookedTransformer(cfg, tokenizer=tokenizer)
    model.eval()
    saes = {}
    for L in sae_layers:
        hook = f"blocks.{L}.hook_resid_pre"
        sae = StandardSAE(StandardSAEConfig(
            d_in=d_model, d_sae=d_sae,
            metadata=SAEMetadata(hook_name=hook, context_size=128, prepend_bos=True)))
        with torch.no_grad():
            sae.W_enc.normal_(0, d_model ** -0.5)
            sae.W_dec.copy_(sae.W_enc.T * 0.5)
            sae.b_enc.fill_(-0.5)
        sae.eval()
        saes[L] = LoadedSAE(sae=sae, layer=L, hook_name=hook, release=None, sae_id=None, path="", sha256="",
                            context_size=128, architecture="standard", d_in=d_model, d_sae=d_sae,
                            model_name=None, neuronpedia_id=None)
    return model, saes


def medium_tokens(n_seqs: int, seed: int = 0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    toks = torch.randint(1, D_VOCAB, (n_seqs, N_CTX), generator=gen)
    toks[:, 0] = 0  # the random model has no tokenizer: no token is special
    return toks


def _peak_rss(n_seqs: int) -> None:
    from sae_checks.config import RunConfig
    from sae_checks.engine.run import evaluate

    torch.set_num_threads(2)
    model, saes = medium_world()
    evaluate(model, saes, medium_tokens(n_seqs), RunConfig(
        batch_size=8, propagation=False, zero_ablation=False, n_bootstrap=100, progress=False, device="cpu"))
    print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)


if __name__ == "__main__":
    _peak_rss(int(sys.argv[1]))
