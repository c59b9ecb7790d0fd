"""A gemma-2-2b world at its real size, built by the tests: the model, tokenizer, one Gemma Scope SAE and
the datasets that the README's gate command names, in a local Hugging Face cache, offline.

What is real (names, shapes, file layouts):

- model ``google/gemma-2-2b`` (TransformerLens' HF repo for ``gemma-2-2b``, whose configuration
  TransformerLens fixes in code): ``config.json`` from transformers' ``Gemma2Config`` at its real sizes
  (26 layers, d_model 2304, 8 query / 4 key-value heads of 256, d_mlp 9216, vocabulary 256000, local /
  global attention, attention and logit soft-capping, tied embeddings, ``torch_dtype`` bfloat16), the
  weights as bfloat16 safetensors shards with ``model.safetensors.index.json`` (2.6B parameters,
  ~5.2 GB), and a tokenizer of exactly 256000 tokens (``tokenizer.json`` + ``tokenizer_config.json``;
  ``<pad>`` 0, ``<eos>`` 1, ``<bos>`` 2 as gemma's, BOS prepended) that
  ``AutoTokenizer.from_pretrained("google/gemma-2-2b")`` loads offline;
- one SAE of ``gemma-scope-2b-pt-res-canonical`` (``layer_L/width_16k/canonical`` ->
  ``google/gemma-scope-2b-pt-res``, ``layer_L/width_16k/average_l0_N/params.npz``, JumpReLU, 16384 x 2304,
  float32, ~300 MB) written by ``tests.release_worlds.write_gemma_scope``;
- datasets ``Skylion007/openwebtext`` and ``EleutherAI/lambada_openai`` as in ``tests/gpt2_world.py``.

What is made up: the text (``tests.gpt2_world.make_text``), the tokenizer's merges (BPE trained on it,
padded with unreachable ``<unusedN>`` entries to 256000), and the weights. Atoms a_k: ``n_atoms``
orthonormal rows in R^2304. Every token id that the tokenizer can produce gets its own random set S_t of
``l0`` atoms (``l0`` = the N of the SAE's ``average_l0_N`` folder, so the SAE's L0 is what its name
says): gemma scales embeddings by sqrt(d_model), so ``embed_tokens[t] = code_scale / sqrt(d_model) *
sum_{k in S_t} a_k`` puts ``code_scale`` on each of its atoms in the residual stream; the ids it cannot
produce have zero rows. The blocks are random (normal, std 0.02, gemma's init range; one draw shared by
all layers, with the output rows of ``o_proj`` and ``down_proj`` permuted per layer so the layers write
different directions), and each post-attention / post-MLP RMSNorm has weight ``-1 + 2^-8`` (gemma's norm
multiplies by 1 + weight): every sublayer adds a vector of RMS 2^-8, so the residual stream at every layer
is its token's code plus a little of the blocks. The SAE's features 0..n_atoms-1 are the atoms
(JumpReLU threshold ``code_scale / 2``, ``b_enc`` 0), the rest dead: L0 = ``l0`` on every token, and it
reconstructs all but the blocks' small part. The LM head is the embedding (tied), so the model predicts
the token it reads: a poor language model, but splicing the SAE in changes its loss very little.

Everything is seeded; heavy imports happen inside the functions. ``build_gemma_world`` returns what was
built (sizes, sha256 of the SAE file, seconds per step).
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from tests.gpt2_world import LAMBADA, OWT, Laps, WorldShape, make_text, sha256
from tests.release_worlds import GEMMA_RELEASE as RELEASE

GEMMA_REPO = "google/gemma-2-2b"  # TransformerLens' official name for gemma-2-2b
SPECIALS = ("<pad>", "<eos>", "<bos>", "<unk>")  # ids 0-3, as gemma's tokenizer


@dataclass(frozen=True, kw_only=True)
class GemmaShape:
    """Sizes of the world: ``GEMMA_2_2B`` (real; the defaults are ``Gemma2Config``'s, gemma-2-2b's own).
    A smaller shape builds the same files quickly (to check the builder), but neither TransformerLens
    (``gemma-2-2b``'s config is fixed in code) nor sae_lens' ``gemma_2`` loader (d_in 2304 from the repo id)
    will load it under these names: open it with transformers and numpy."""

    n_layers: int = 26  # gemma-2-2b
    d_model: int = 2304
    n_heads: int = 8
    n_kv_heads: int = 4
    d_head: int = 256
    d_mlp: int = 9216
    d_vocab: int = 256000  # model and tokenizer vocabulary
    n_atoms: int = 2048  # orthonormal atoms (< d_model) that make the token codes and the SAE's live features
    code_scale: float = 4.0  # each atom's coefficient in the residual stream (threshold: half of it)
    post_norm: float = -1 + 2**-8  # post-sublayer RMSNorm weight: each sublayer adds RMS 2^-8 (bf16-exact)
    init_std: float = 0.02  # block weights (gemma's initializer_range)
    n_words: int = 3000  # made-up words (tests.gpt2_world.make_text)
    bpe_vocab: int = 8192  # BPE training cap; the rest of the vocabulary is <unusedN>
    doc_words: tuple[int, int] = (300, 700)


GEMMA_2_2B = GemmaShape()


def train_tokenizer(docs: Sequence[str], shape: GemmaShape, out_dir: Path) -> Any:
    """A gemma-like BPE tokenizer (spaces as "▁", no prefix space, byte fallback, ``<bos>`` prepended)
    trained on ``docs``, its vocabulary padded with unreachable ``<unusedN>`` entries to ``shape.d_vocab``;
    saved as tokenizer.json + tokenizer_config.json in ``out_dir`` and reloaded with ``AutoTokenizer``."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import AutoTokenizer, PreTrainedTokenizerFast

    raw = Tokenizer(models.BPE(unk_token="<unk>", byte_fallback=True))
    raw.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="never")
    raw.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="never")
    trainer = trainers.BpeTrainer(vocab_size=shape.bpe_vocab, special_tokens=list(SPECIALS), show_progress=False,
                                  initial_alphabet=[f"<0x{b:02X}>" for b in range(256)])
    raw.train_from_iterator(docs, trainer=trainer)
    spec = json.loads(raw.to_str())
    vocab = spec["model"]["vocab"]
    n_real = len(vocab)
    assert n_real < shape.d_vocab, (n_real, shape.d_vocab)
    vocab.update({f"<unused{i}>": n_real + i for i in range(shape.d_vocab - n_real)})
    raw = Tokenizer.from_str(json.dumps(spec))
    raw.post_processor = processors.TemplateProcessing(single="<bos> $A", pair="<bos> $A <bos> $B",
                                                       special_tokens=[("<bos>", 2)])
    tok = PreTrainedTokenizerFast(tokenizer_object=raw, pad_token="<pad>", eos_token="<eos>", bos_token="<bos>",
                                  unk_token="<unk>")
    out_dir.mkdir(parents=True, exist_ok=True)
    tok.save_pretrained(str(out_dir))
    tok = AutoTokenizer.from_pretrained(str(out_dir))
    assert len(tok) == shape.d_vocab and (tok.pad_token_id, tok.eos_token_id, tok.bos_token_id) == (0, 1, 2), (
        len(tok), tok.pad_token_id, tok.eos_token_id, tok.bos_token_id)
    probe = docs[0][:200]
    assert tok.decode(tok(probe, add_special_tokens=False)["input_ids"]) == probe, "tokenizer does not round-trip"
    return tok


def gemma_config(shape: GemmaShape) -> Any:
    """``Gemma2Config`` at ``shape`` (gemma-2-2b's own values elsewhere), bfloat16 weights, tied embeddings."""
    from transformers import Gemma2Config

    return Gemma2Config(vocab_size=shape.d_vocab, hidden_size=shape.d_model, intermediate_size=shape.d_mlp,
                        num_hidden_layers=shape.n_layers, num_attention_heads=shape.n_heads,
                        num_key_value_heads=shape.n_kv_heads, head_dim=shape.d_head, pad_token_id=0,
                        eos_token_id=1, bos_token_id=2, tie_word_embeddings=True, dtype="bfloat16",
                        architectures=["Gemma2ForCausalLM"])


def atoms_and_codes(shape: GemmaShape, n_ids: int, l0: int, *, seed: int = 0) -> tuple[Any, Any]:
    """(atoms (n_atoms, d_model) float32 orthonormal, codes (n_ids, n_atoms) 0/1 with ``l0`` ones per row)."""
    import torch

    gen = torch.Generator().manual_seed(seed)
    q, _ = torch.linalg.qr(torch.randn(shape.d_model, shape.n_atoms, generator=gen, dtype=torch.float64))
    atoms = q.T.contiguous().float()  # (n_atoms, d_model)
    order = torch.rand(n_ids, shape.n_atoms, generator=gen).argsort(dim=1)[:, :l0]
    codes = torch.zeros(n_ids, shape.n_atoms).scatter_(1, order, 1.0)
    assert len(torch.unique(codes, dim=0)) == n_ids, "two token ids drew the same atoms"
    return atoms, codes


def write_model(shape: GemmaShape, atoms: Any, codes: Any, out_dir: Path, *, seed: int = 0) -> dict[str, Any]:
    """config.json, two bfloat16 safetensors shards and model.safetensors.index.json (module docstring's
    weights; names and shapes from ``Gemma2ForCausalLM`` built on the meta device). Returns the parameter
    count and the files."""
    import torch
    from safetensors.torch import save_file
    from transformers import Gemma2ForCausalLM

    cfg = gemma_config(shape)
    with torch.device("meta"):
        meta = Gemma2ForCausalLM(cfg)
    shapes = {n: tuple(p.shape) for n, p in meta.named_parameters()}  # tied: lm_head is embed_tokens
    gen = torch.Generator().manual_seed(seed + 1)
    bf16 = torch.bfloat16
    base = {kind: (torch.randn(shapes[f"model.layers.0.{kind}.weight"], generator=gen) * shape.init_std).to(bf16)
            for kind in ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
                         "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj")}
    embed = torch.zeros(shape.d_vocab, shape.d_model)
    embed[: len(codes)] = codes @ atoms * (shape.code_scale / shape.d_model**0.5)

    def tensor(name: str) -> Any:
        if name == "model.embed_tokens.weight":
            return embed.to(bf16)
        if name == "model.norm.weight" or name.endswith(("input_layernorm.weight", "pre_feedforward_layernorm.weight")):
            return torch.zeros(shapes[name], dtype=bf16)  # gemma's RMSNorm scales by 1 + weight
        if name.endswith(("post_attention_layernorm.weight", "post_feedforward_layernorm.weight")):
            return torch.full(shapes[name], shape.post_norm, dtype=bf16)
        layer = int(name.split(".")[2])
        kind = name.split(".", 3)[3].removesuffix(".weight")
        w = base[kind]
        if kind in ("self_attn.o_proj", "mlp.down_proj"):  # each layer writes its own directions
            return w[torch.randperm(shape.d_model, generator=torch.Generator().manual_seed(seed * 100 + layer))]
        return w.clone()  # safetensors writes no shared storage

    out_dir.mkdir(parents=True, exist_ok=True)
    cfg.save_pretrained(str(out_dir))
    half = shape.n_layers // 2
    names = list(shapes)
    shards = [[n for n in names if n.startswith("model.embed") or (n.startswith("model.layers.")
                                                                   and int(n.split(".")[2]) < half)]]
    shards.append([n for n in names if n not in shards[0]])
    weight_map, total = {}, 0
    for i, shard in enumerate(shards, start=1):
        fname = f"model-{i:05d}-of-{len(shards):05d}.safetensors"
        tensors = {n: tensor(n) for n in shard}
        total += sum(t.numel() * t.element_size() for t in tensors.values())
        save_file(tensors, str(out_dir / fname), metadata={"format": "pt"})
        weight_map.update(dict.fromkeys(shard, fname))
        del tensors
    index = {"metadata": {"total_size": total}, "weight_map": weight_map}
    (out_dir / "model.safetensors.index.json").write_text(json.dumps(index, indent=2))
    return {"params": sum(int(torch.tensor(s).prod()) for s in shapes.values()), "bytes": total,
            "files": sorted({*weight_map.values()})}


def sae_folder(layer: int) -> str:
    """The registry path of ``layer_{layer}/width_16k/canonical`` (``layer_L/width_16k/average_l0_N``)."""
    from tests.release_worlds import registry

    return str(registry(RELEASE).saes_map[f"layer_{layer}/width_16k/canonical"])


def build_gemma_world(hf_home: str | Path, work_dir: str | Path, *, layer: int = 20, n_owt_rows: int = 100,
                      n_lambada_rows: int = 200, shape: GemmaShape = GEMMA_2_2B, seed: int = 0) -> dict[str, Any]:
    """Write the world of the module docstring into ``hf_home`` (hub cache ``hf_home/hub``, datasets
    ``hf_home/datasets``): ``google/gemma-2-2b``, the Gemma Scope SAE ``layer_{layer}/width_16k/canonical``
    of ``gemma-scope-2b-pt-res-canonical``, and the two datasets. ``work_dir`` takes the tokenizer's first
    save and ``world.json``. Point a subprocess at it with ``tests.hf_cache.offline_env(hf_home)``.

    Returns the shape, the SAE's id, folder, L0 (``l0``: the N of its folder name), path and sha256, the
    model's parameter count and files, and seconds per step."""
    import numpy as np

    from tests.hf_cache import add_cached_dataset, repo_snapshot
    from tests.release_worlds import atom_weights, write_gemma_scope

    hf_home, work_dir = Path(hf_home), Path(work_dir)
    hub = hf_home / "hub"
    laps = Laps()
    seconds, lap = laps.seconds, laps.lap

    sae_id = f"layer_{layer}/width_16k/canonical"
    folder = sae_folder(layer)
    match = re.search(r"average_l0_(\d+)$", folder)
    assert match, folder
    l0 = int(match.group(1))
    text = make_text(WorldShape(n_words=shape.n_words, doc_words=shape.doc_words), n_docs=n_owt_rows,
                     n_lambada=n_lambada_rows, seed=seed)
    model_dir = repo_snapshot(hub, GEMMA_REPO)
    tok = train_tokenizer(text.docs, shape, work_dir / "tokenizer")
    tok.save_pretrained(str(model_dir))
    n_ids = _n_reachable(tok)
    lap("text_and_tokenizer")
    atoms, codes = atoms_and_codes(shape, n_ids, l0, seed=seed)
    model = write_model(shape, atoms, codes, model_dir, seed=seed)
    lap("model")
    w = atom_weights(atoms.numpy(), 16384, bias=0.0, seed=seed)
    w = replace(w, threshold=np.full_like(w.threshold, shape.code_scale / 2))  # JumpReLU: half an atom's weight
    sae_path = write_gemma_scope(hub, RELEASE, sae_id, w)
    lap("sae")
    add_cached_dataset(hf_home / "datasets", OWT, {"text": text.docs}, split="train")
    add_cached_dataset(hf_home / "datasets", LAMBADA, {"text": text.lambada}, split="test", config_name="default")
    lap("datasets")
    digest = sha256(sae_path)
    lap("hash")
    world = {"shape": asdict(shape), "seed": seed, "layer": layer, "sae_id": sae_id, "folder": folder, "l0": l0,
             "sae_path": str(sae_path), "sae_sha256": digest, "d_sae": w.d_sae, "n_reachable_ids": n_ids,
             "model": model, "model_dir": str(model_dir), "seconds": seconds}
    work_dir.mkdir(parents=True, exist_ok=True)
    (work_dir / "world.json").write_text(json.dumps(world, indent=1))
    return world


def _n_reachable(tok: Any) -> int:
    """How many ids the tokenizer can produce: everything before the first ``<unusedN>`` padding entry."""
    return int(tok.convert_tokens_to_ids("<unused0>"))
