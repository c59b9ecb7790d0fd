"""The embedded tiny model zoo: an offline world to run sae-checks on without any download.

A 4-layer GPT-style model (d_model 128, n_ctx 256) trained on the English docstrings that ship with
CPython, its byte-level BPE tokenizer, two versions of per-layer ReLU SAEs on ``blocks.L.hook_resid_pre``
(``v1``: trained on positions < 32 only; ``v2``: trained at the full context of 256), held-out
evaluation tokens and text, and a Lambada-style cloze set; ``suite`` adds SAEs at other hooks and widths,
``arch`` one small SAE per sae_lens architecture (TopK, JumpReLU, gated, and a standard SAE trained with
``normalize_activations = "expected_average_only_in"``). ``v1`` reproduces in miniature the failure
Anders & Bloom (2024) found in gpt2-small-res-jb: fine inside its training context, broken past it.

Files live in :data:`ZOO_DIR`; ``python -m zoo_builder.build`` (outside the package, in the source repository) rebuilds them (``zoo_stats.json``
holds the numbers the build printed). Heavy imports (torch, transformer_lens, sae_lens) happen inside
the functions.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch
    from transformer_lens import HookedTransformer

__all__ = [
    "ZOO_DIR",
    "ZOO_SAE_SETS",
    "ZOO_VERSIONS",
    "load_zoo_model",
    "load_zoo_tokenizer",
    "zoo_cloze_path",
    "zoo_eval_tokens",
    "zoo_sae_dir",
    "zoo_text_path",
]

ZOO_DIR: Path = Path(__file__).resolve().parent / "files"
ZOO_VERSIONS: tuple[str, ...] = ("v1", "v2")  # per-layer SAE versions
ZOO_SAE_SETS: tuple[str, ...] = (*ZOO_VERSIONS, "suite", "arch")  # everything zoo_sae_dir knows


def _existing(path: Path) -> Path:
    if not path.exists():
        raise FileNotFoundError(
            f"zoo file {path} is missing; rebuild the zoo with `python -m zoo_builder.build` (in a source checkout)"
        )
    return path


def load_zoo_tokenizer() -> Any:
    """The zoo's byte-level BPE tokenizer (``PreTrainedTokenizerFast``; BOS = EOS = PAD = ``<|endoftext|>``).

    Like gpt2's, calling it does not add BOS; ``model.to_tokens`` on :func:`load_zoo_model` does.
    """
    from sae_checks.zoo.lm import load_tokenizer

    return load_tokenizer(_existing(ZOO_DIR / "tokenizer"))


def load_zoo_model(device: str = "cpu") -> HookedTransformer:
    """The zoo's ``HookedTransformer`` in eval mode, float32, tokenizer attached (``to_tokens`` prepends BOS).

    Only TransformerLens' "HookedTransformer is deprecated" warning is silenced.
    """
    from sae_checks.zoo.lm import load_model

    model_dir = _existing(ZOO_DIR / "model")
    return load_model(model_dir, load_zoo_tokenizer(), device=device)  # type: ignore[no-any-return]


def zoo_sae_dir(version: str) -> Path:
    """Folder of the SAE folders of ``"v1"`` / ``"v2"`` (per-layer, ``blocks.L.hook_resid_pre``),
    ``"suite"`` (``zoo_builder.suite``: a second width at layer 1, ``attn.hook_z``, ``hook_mlp_out``) or
    ``"arch"`` (``zoo_builder.arch``: ``topk``, ``jumprelu``, ``gated`` and a folded
    ``expected_average_only_in`` SAE, d_sae 128, trained by sae_lens' own trainer).

    Each is loadable with ``sae_lens.SAE.load_from_disk``; ``cfg.metadata.context_size`` is 32 (v1) or 256.
    """
    if version not in ZOO_SAE_SETS:
        raise ValueError(
            f"zoo SAE version {version!r} does not exist; choose one of {', '.join(ZOO_SAE_SETS)}"
        )
    return _existing(ZOO_DIR / "saes" / version)


def zoo_eval_tokens() -> torch.Tensor:
    """Held-out evaluation tokens, int64 ``(N, n_ctx)``, BOS first in every row (packed held-out text)."""
    from safetensors.torch import load_file

    tokens = load_file(str(_existing(ZOO_DIR / "data" / "eval_tokens.safetensors")))["tokens"]
    return tokens.long()


def zoo_cloze_path() -> Path:
    """JSONL of Lambada-style passages, one key ``text``; the answer is the passage's last word, which
    also occurs earlier in it (as ``EleutherAI/lambada_openai``)."""
    return _existing(ZOO_DIR / "data" / "cloze.jsonl")


def zoo_text_path() -> Path:
    """Held-out plain text (documents the model never trained on, separated by blank lines)."""
    return _existing(ZOO_DIR / "data" / "heldout.txt")
