"""RMSNorm models load unprocessed (``loading.models``): a tiny Qwen2 stored in bfloat16 under
``Qwen/Qwen2-0.5B`` (TransformerLens reads its sizes from config.json) gives through ``load_model`` the
same logits and hook activations as ``HookedTransformer.from_pretrained_no_processing``, in float32 and
with ``normalization_type`` "RMS"; a LayerNorm model (tiny gpt2) is still processed ("LNPre").

One offline subprocess (huggingface_hub reads ``HF_HUB_CACHE`` at import time)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.hf_cache import build_gpt2_world, offline_env, repo_snapshot

REPO = Path(__file__).resolve().parents[1]
QWEN2 = "Qwen/Qwen2-0.5B"  # a TransformerLens official name whose config TransformerLens reads from config.json
HOOKS = ("hook_resid_pre", "attn.hook_z", "hook_attn_out", "hook_resid_mid", "hook_mlp_out", "hook_resid_post")

SCRIPT = textwrap.dedent(
    r"""
    import json
    import torch
    from transformer_lens import HookedTransformer
    from sae_checks.loading.models import checkpoint_dtype, load_model

    hooks = json.loads(__import__("sys").argv[1])
    ours = load_model("qwen2-0.5b")
    ref = HookedTransformer.from_pretrained_no_processing("Qwen/Qwen2-0.5B", dtype=torch.float32)
    tokens = torch.randint(1, ours.cfg.d_vocab, (2, 12), generator=torch.Generator().manual_seed(0))
    names = [f"blocks.{L}.{h}" for L in range(ours.cfg.n_layers) for h in hooks]
    logits, cache = ours.run_with_cache(tokens, names_filter=names)
    ref_logits, ref_cache = ref.run_with_cache(tokens, names_filter=names)
    diff = {n: float((cache[n] - ref_cache[n]).abs().max()) for n in names}
    diff["logits"] = float((logits - ref_logits).abs().max())
    scale = {n: float(ref_cache[n].abs().max()) for n in names}
    gpt2 = load_model("gpt2-small")
    print("RESULT" + json.dumps({
        "diff": diff, "scale": scale, "norm": ours.cfg.normalization_type,
        "dtypes": sorted({str(p.dtype) for p in ours.parameters()}), "ckpt": str(checkpoint_dtype("Qwen/Qwen2-0.5B")),
        "b_V": float(ours.blocks[0].attn._b_V.abs().max()), "training": ours.training,
        "gpt2_norm": gpt2.cfg.normalization_type,
    }))
    """
)


def write_tiny_qwen2(hub: Path, work: Path) -> None:
    """A 2-layer Qwen2 (d_model 64, grouped-query attention, value biases) saved in bfloat16, with a tiny
    tokenizer, under ``Qwen/Qwen2-0.5B``; norm weights and biases random so folding would show."""
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    from tests.tiny import tiny_tokenizer

    tok = tiny_tokenizer(work / "qwen-tok")
    cfg = Qwen2Config(vocab_size=len(tok), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64,
                      tie_word_embeddings=False, bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id)
    torch.manual_seed(0)
    model = Qwen2ForCausalLM(cfg).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("bias") or "norm" in name:
                p.copy_(torch.randn_like(p) * 0.5 + (1.0 if "norm" in name else 0.0))
    model = model.to(torch.bfloat16)
    out = repo_snapshot(hub, QWEN2)
    model.save_pretrained(str(out))
    tok.save_pretrained(str(out))


@pytest.mark.slow
def test_rmsnorm_models_load_unprocessed_and_layernorm_models_processed(tmp_path):
    hf = tmp_path / "hf"
    write_tiny_qwen2(hf / "hub", tmp_path / "work")
    build_gpt2_world(hf / "hub", tmp_path / "work", sae_layers=())
    env = offline_env(hf)
    env.update(PYTHONPATH=str(REPO), OMP_NUM_THREADS="1")
    proc = subprocess.run([sys.executable, "-c", SCRIPT, json.dumps(HOOKS)], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    result = json.loads(proc.stdout.split("RESULT", 1)[1])
    assert result["ckpt"] == "torch.bfloat16" and result["dtypes"] == ["torch.float32"], result
    assert result["norm"] == "RMS" and result["gpt2_norm"] == "LNPre", result
    assert result["b_V"] > 0.1 and result["training"] is False, result  # value biases kept, not folded into b_O
    assert len(result["diff"]) == 2 * len(HOOKS) + 1
    for name, diff in result["diff"].items():
        assert diff <= 1e-5 * max(1.0, result["scale"].get(name, 1.0)), (name, diff, result["scale"].get(name))
