"""tests/gpt2_world.py at tiny dims: the fitted bigram predicts the chain through a real GPT-2 forward
(transformers' own), the SAEs reconstruct the residual stream with L0 3 through sae_lens' own loader, and
the build is deterministic. The real-size world is exercised by tests/test_realscale.py (``--realscale``)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.gpt2_world import TINY, build_gpt2_small_world, ids_stream, make_text


@pytest.fixture(scope="module")
def tiny_world(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny_world")
    return root, build_gpt2_small_world(root / "hf", root / "work", shape=TINY, sae_layers=(0, 1), n_owt_rows=60,
                                        n_lambada_rows=200)


def test_the_files_sit_where_the_hub_and_datasets_look(tiny_world):
    root, world = tiny_world
    files = set(world["files"])
    snapshot = "hub/models--gpt2/snapshots/" + Path(world["model_dir"]).name
    assert {f"{snapshot}/config.json", f"{snapshot}/model.safetensors", f"{snapshot}/tokenizer.json"} <= files
    for layer in (0, 1):
        folder = Path(world["sae_dirs"][layer]).relative_to(root / "hf")
        assert str(folder).startswith("hub/models--jbloom--GPT2-Small-SAEs-Reformatted/snapshots/")
        assert folder.name == f"blocks.{layer}.hook_resid_pre"
        for name in ("cfg.json", "sae_weights.safetensors", "sparsity.safetensors"):
            assert f"{folder}/{name}" in files
    assert any(f.startswith("datasets/Skylion007___openwebtext/default/") and f.endswith("openwebtext-train.arrow")
               for f in files)
    assert any(f.startswith("datasets/EleutherAI___lambada_openai/default/")
               and f.endswith("lambada_openai-test.arrow") for f in files)
    config = json.loads((Path(world["model_dir"]) / "config.json").read_text())
    assert config["tie_word_embeddings"] is False and config["vocab_size"] == TINY.d_vocab


def test_the_fitted_bigram_predicts_the_chain_through_gpt2s_forward(tiny_world):
    import torch
    from transformers import GPT2LMHeadModel, GPT2Tokenizer

    _, world = tiny_world
    model = GPT2LMHeadModel.from_pretrained(world["model_dir"]).eval()
    tok = GPT2Tokenizer.from_pretrained(world["model_dir"])
    text = make_text(TINY, n_docs=world["n_owt_rows"], n_lambada=world["n_lambada_rows"])
    # web text packed as load_sequences does: BOS, then the stream
    toks = torch.tensor(ids_stream(tok, text.docs)[: 4 * (TINY.n_ctx - 1)]).view(4, -1)
    toks = torch.cat([torch.zeros(4, 1, dtype=torch.long), toks], dim=1)
    with torch.no_grad():
        logp = model(toks).logits.log_softmax(-1)
    ce = -logp[:, 1:-1].gather(-1, toks[:, 2:, None]).mean().item()
    assert abs(ce - world["fit"]["ce"]) < 0.25, (ce, world["fit"])
    assert world["fit"]["acc"] > 0.6, world["fit"]  # the chain's ceiling is p_follow = 0.8
    # every passage in one right-padded batch: GPT-2's positions of the real tokens are unchanged
    prompts = [[tok.bos_token_id, *tok(p.rsplit(" ", 1)[0])["input_ids"]] for p in text.lambada]
    answers = torch.tensor([tok(" " + p.rsplit(" ", 1)[1])["input_ids"][0] for p in text.lambada])
    lengths = torch.tensor([len(p) for p in prompts])
    batch = torch.zeros(len(prompts), int(lengths.max()), dtype=torch.long)
    for i, p in enumerate(prompts):
        batch[i, : len(p)] = torch.tensor(p)
    mask = (torch.arange(batch.shape[1]) < lengths[:, None]).long()
    with torch.no_grad():
        last = model(batch, attention_mask=mask).logits[torch.arange(len(prompts)), lengths - 1]
    right = int((last.argmax(-1) == answers).sum())
    assert right / len(text.lambada) > 0.7, right


def test_the_saes_load_with_sae_lens_and_reconstruct(tiny_world):
    import torch
    from sae_lens import SAE
    from transformers import GPT2LMHeadModel

    _, world = tiny_world
    model = GPT2LMHeadModel.from_pretrained(world["model_dir"]).eval()
    toks = torch.randint(1, world["tokenizer_vocab"], (2, TINY.n_ctx), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        hidden = model(toks, output_hidden_states=True).hidden_states  # hidden[L] = blocks.L.hook_resid_pre
    for layer, folder in world["sae_dirs"].items():
        sae = SAE.load_from_disk(folder)  # the pre-6.0 cfg.json, mapped by sae_lens
        meta = sae.cfg.metadata
        assert (meta.hook_name, meta.context_size, meta.model_name, meta.prepend_bos) == (
            f"blocks.{layer}.hook_resid_pre", TINY.context_size, "gpt2-small", True)
        x = hidden[layer][:, 1:].reshape(-1, TINY.d_model)
        with torch.no_grad():
            f = sae.encode(x)
            ev = 1 - ((x - sae.decode(f)) ** 2).sum() / ((x - x.mean(0)) ** 2).sum()
        assert (f != 0).sum(-1).float().mean().item() == pytest.approx(3.0), layer
        assert ev.item() > 0.999, (layer, ev.item())


def test_the_build_is_deterministic(tiny_world, tmp_path):
    _, world = tiny_world
    again = build_gpt2_small_world(tmp_path / "hf", tmp_path / "work", shape=TINY, sae_layers=(0, 1),
                                   n_owt_rows=60, n_lambada_rows=200)
    assert {k: v["sha256"] for k, v in again["files"].items()} == {k: v["sha256"] for k, v in world["files"].items()}
