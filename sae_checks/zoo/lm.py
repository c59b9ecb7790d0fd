"""The zoo's tokenizer and language model, as the runtime loads them (``sae_checks.zoo``): the byte-level BPE
tokenizer and the small GPT-style TransformerLens ``HookedTransformer`` that ``zoo_builder`` (outside the
package, ``python -m zoo_builder.build``) trained and saved. The heavy imports (transformers,
transformer_lens, safetensors) happen inside the functions.
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

BOS = "<|endoftext|>"  # BOS = EOS = PAD, as gpt2
MODEL_NAME = "sae-checks-zoo"


DEPRECATION_MESSAGE = ".*HookedTransformer is deprecated.*"  # the one warning the zoo hides


def load_tokenizer(tok_dir: Path) -> Any:
    """``PreTrainedTokenizerFast`` from a folder written by :func:`train_tokenizer`."""
    from transformers import PreTrainedTokenizerFast

    return PreTrainedTokenizerFast.from_pretrained(str(tok_dir))


@dataclass(frozen=True, kw_only=True)
class ModelSpec:
    """The HookedTransformerConfig fields the zoo model needs; saved as ``model/config.json``."""

    n_layers: int = 4
    d_model: int = 128
    n_heads: int = 4
    d_head: int = 32
    d_mlp: int = 512
    n_ctx: int = 256
    d_vocab: int = 4096
    act_fn: str = "gelu"
    normalization_type: str = "LN"
    positional_embedding_type: str = "standard"  # learned absolute positions, as gpt2
    seed: int = 0


def make_model(spec: ModelSpec | dict[str, Any], tokenizer: Any, device: str = "cpu") -> Any:
    """A freshly initialized ``HookedTransformer`` with the zoo tokenizer attached (``to_tokens`` prepends BOS)."""
    from transformer_lens import HookedTransformer, HookedTransformerConfig

    fields = spec if isinstance(spec, dict) else spec.__dict__
    cfg = HookedTransformerConfig(
        **fields, model_name=MODEL_NAME, default_prepend_bos=True, device=device, tokenizer_name=None
    )
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=DEPRECATION_MESSAGE)
        model = HookedTransformer(cfg, tokenizer=tokenizer)
    model.eval()
    return model


def load_model(model_dir: Path, tokenizer: Any, device: str = "cpu") -> Any:
    """Rebuild the model saved by :func:`save_model`."""
    from safetensors.torch import load_file

    spec = json.loads((model_dir / "config.json").read_text())
    model = make_model(spec, tokenizer, device=device)
    params = load_file(str(model_dir / "model.safetensors"), device=device)
    missing, unexpected = model.load_state_dict(params, strict=False)
    param_names = {k for k, _ in model.named_parameters()}
    bad_missing = [k for k in missing if k in param_names]
    assert not bad_missing and not unexpected, (
        f"{model_dir / 'model.safetensors'}: missing {bad_missing}, unexpected {unexpected}"
    )
    return model
