"""A tiny, deterministic world for tests: a byte-level BPE tokenizer, a random HookedTransformer and
random SAEs of every sae_lens architecture. Everything is seeded; the same call gives the same weights.

Typical use::

    tok = tiny_tokenizer(tmp_path / "tok")
    model = tiny_model(tok)                          # 2 layers, d_model 16, n_ctx 32
    sae = tiny_sae(model, 1, arch="topk", path=tmp_path / "saes" / "blocks.1.hook_resid_pre")

Heavy imports happen inside the functions so importing this module is cheap.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

# Fixed training text for the tokenizer: a few hundred bytes, enough for ~100 merges.
TINY_CORPUS = (
    "The cat sat on the mat. The dog sat on the log. A bird sang in the tree and the cat watched it.\n"
    "She opened the door and walked into the garden, where the roses were in bloom.\n"
    "He said that the answer was in the book, but nobody had read the book to the end.\n"
    "Numbers: 0 1 2 3 4 5 6 7 8 9. Punctuation: , . ; : ! ? ' \" ( ) - \n"
)
BOS = "<|endoftext|>"  # GPT-2 convention: one token serves as BOS, EOS and document separator

Arch = Literal["standard", "topk", "jumprelu", "gated"]
ARCHS: tuple[Arch, ...] = ("standard", "topk", "jumprelu", "gated")


def tiny_tokenizer(tmp_dir: str | Path, vocab_size: int = 384) -> Any:
    """A GPT-2-style byte-level BPE tokenizer (``<|endoftext|>`` = BOS = EOS = id 0), trained on
    ``TINY_CORPUS``, saved to ``tmp_dir`` and reloaded from there (TransformerLens needs a tokenizer
    with a ``name_or_path``). Any text encodes (byte-level), so it works on arbitrary test data."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tmp_dir = Path(tmp_dir)
    tmp_dir.mkdir(parents=True, exist_ok=True)
    raw = Tokenizer(models.BPE())
    raw.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    raw.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=[BOS], initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    raw.train_from_iterator([TINY_CORPUS], trainer=trainer)
    tok = PreTrainedTokenizerFast(tokenizer_object=raw, bos_token=BOS, eos_token=BOS, unk_token=BOS)
    tok.save_pretrained(str(tmp_dir))
    return PreTrainedTokenizerFast.from_pretrained(str(tmp_dir))


def tiny_model(
    tokenizer: Any, *, n_layers: int = 2, d_model: int = 16, n_ctx: int = 32, seed: int = 0,
    model_name: str = "tiny",
) -> Any:
    """A random ``HookedTransformer`` (GPT-2 block layout, LayerNorm, GELU) in eval mode on CPU.
    ``cfg.model_name`` is ``model_name`` so SAE metadata can match it."""
    import torch
    from transformer_lens import HookedTransformer, HookedTransformerConfig

    torch.manual_seed(seed)
    cfg = HookedTransformerConfig(
        n_layers=n_layers, d_model=d_model, d_head=8, n_heads=d_model // 8, d_mlp=4 * d_model,
        d_vocab=len(tokenizer), n_ctx=n_ctx, act_fn="gelu", normalization_type="LN",
        model_name=model_name, device="cpu", seed=seed,
    )
    model = HookedTransformer(cfg, tokenizer=tokenizer)
    model.eval()
    return model


def tiny_sae(
    model: Any, layer: int, *, arch: Arch = "standard", d_sae: int = 32, seed: int = 0,
    context_size: int = 16, path: str | Path | None = None, d_in: int | None = None,
    hook_name: str | None = None, model_name: str | None = None, **metadata: Any,
) -> Any:
    """A random SAE of architecture ``arch`` at ``blocks.{layer}.hook_resid_pre`` of ``model``
    (``d_in``, ``hook_name`` and ``model_name`` overridable to build broken SAEs). Saved with
    ``sae.save_model(path)`` when ``path`` is given (a sae_lens folder: cfg.json +
    sae_weights.safetensors). TopK uses k = 4; JumpReLU thresholds are set to 0.01 so some units fire."""
    import torch
    from sae_lens import (
        GatedSAE,
        GatedSAEConfig,
        JumpReLUSAE,
        JumpReLUSAEConfig,
        StandardSAE,
        StandardSAEConfig,
        TopKSAE,
        TopKSAEConfig,
    )
    from sae_lens.saes.sae import SAEMetadata

    meta = SAEMetadata(
        hook_name=hook_name or f"blocks.{layer}.hook_resid_pre", context_size=context_size, prepend_bos=True,
        model_name=model_name if model_name is not None else model.cfg.model_name, **metadata,
    )
    d_in = d_in if d_in is not None else model.cfg.d_model
    torch.manual_seed(seed + 1000 * layer)
    sae: Any
    if arch == "standard":
        sae = StandardSAE(StandardSAEConfig(d_in=d_in, d_sae=d_sae, metadata=meta))
    elif arch == "topk":
        sae = TopKSAE(TopKSAEConfig(d_in=d_in, d_sae=d_sae, k=4, metadata=meta))
    elif arch == "jumprelu":
        sae = JumpReLUSAE(JumpReLUSAEConfig(d_in=d_in, d_sae=d_sae, metadata=meta))
        with torch.no_grad():
            sae.threshold.fill_(0.01)
    elif arch == "gated":
        sae = GatedSAE(GatedSAEConfig(d_in=d_in, d_sae=d_sae, metadata=meta))
    else:
        raise ValueError(f"arch={arch!r}: choose from {ARCHS}")
    with torch.no_grad():  # random encoder biases so not everything is dead at init
        for p in sae.parameters():
            if p.abs().sum() == 0:
                p.normal_(0, 0.1)
    if path is not None:
        Path(path).mkdir(parents=True, exist_ok=True)
        sae.save_model(str(path))
    return sae


def tiny_sae_folder(model: Any, root: str | Path, *, layers: list[int] | None = None,
                    arch: Arch = "standard", **kwargs: Any) -> Path:
    """A folder of per-layer SAE folders named ``blocks.L.hook_resid_pre`` (the zoo layout); returns it."""
    root = Path(root)
    for layer in layers if layers is not None else range(model.cfg.n_layers):
        tiny_sae(model, layer, arch=arch, path=root / f"blocks.{layer}.hook_resid_pre", **kwargs)
    return root


def identity_sae(model: Any, layer: int) -> Any:
    """A StandardSAE at ``blocks.{layer}.hook_resid_pre`` whose decoder reproduces its input exactly: W_enc = [I, -I], W_dec = [I; -I]."""
    import torch

    d = model.cfg.d_model
    sae = tiny_sae(model, layer, d_sae=2 * d)
    eye = torch.eye(d)
    with torch.no_grad():
        sae.W_enc.copy_(torch.cat([eye, -eye], dim=1))
        sae.W_dec.copy_(torch.cat([eye, -eye], dim=0))
        sae.b_enc.zero_()
        sae.b_dec.zero_()
    return sae
