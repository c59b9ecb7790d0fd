"""A gpt2-small-shaped offline world at real size, built by the tests: the model, tokenizer, SAEs and
datasets that the README's gate command names, in a local Hugging Face cache, with weights *fitted* (by
counting, in seconds) so that the shipped policy ``thresholds/gpt2-small-res-jb.toml`` can pass.

What is real (names, shapes, file layouts):

- model ``gpt2`` (TransformerLens' HF repo for ``gpt2-small``): ``config.json`` + ``model.safetensors`` from
  transformers' ``GPT2LMHeadModel.save_pretrained``, 12 layers, d_model 768, 12 heads, n_ctx 1024, vocab
  50257 (163M parameters: the LM head is untied, see below), and a GPT-2 byte-level BPE tokenizer
  (``GPT2Tokenizer``, ``<|endoftext|>`` = BOS = EOS) saved with it;
- SAEs of release ``gpt2-small-res-jb`` in the repo and folders that sae_lens' pretrained directory gives
  (``jbloom/GPT2-Small-SAEs-Reformatted``, ``blocks.L.hook_resid_pre/``): ``cfg.json`` in sae_lens'
  pre-6.0 format, as the release was published (``hook_point``, ``hook_point_layer``, ``context_size`` 128,
  ``d_sae`` 24576, no ``sae_lens_version``: sae_lens maps it with ``handle_pre_6_0_config``; the training
  settings in it are our reconstruction, the hub cannot be reached here to compare), ``sae_weights.safetensors``
  (``W_enc`` (768, 24576), ``W_dec``, ``b_enc``, ``b_dec``, ~150 MB) and ``sparsity.safetensors``
  (log10 feature density);
- datasets ``Skylion007/openwebtext`` (split train, column text) and ``EleutherAI/lambada_openai``
  (config default, split test, column text) as prepared Arrow files in the datasets cache.

What is made up and fitted:

- text: walks of a word-level Markov chain over ``n_words`` made-up words (each word has one preferred
  successor, taken with probability ``p_follow``, else a uniformly random word); Lambada passages are
  walks of 40-80 words whose last word is the preferred successor of the one before;
- the tokenizer is trained on that text (vocabulary < 50257: ids above it are never produced);
- the model is a bigram model fitted by counting. Atoms a_k: an orthonormal set in R^d_model orthogonal
  to the all-ones vector (so TransformerLens' ``center_writing_weights`` leaves them alone). Every token
  id t gets a distinct atom pair (i, j): ``W_E[t] = c (a_i + a_j)``; position p adds ``pos_scale c`` times
  one of ``n_pos_atoms`` reserved atoms (one per block of n_ctx / n_pos_atoms positions). The LM head
  column of token s is ``gain / sqrt(d_model)`` times the sum of the unit codes (a_i + a_j) / sqrt(2) of
  the tokens whose most frequent successor (counted on the tokenized web text) is s; ``gain`` is the
  value on a grid that minimises the bigram cross-entropy on that text. A last reserved atom a_b carries
  a logit bias: ``ln_f.bias = a_b`` and row a_b of the head is ``-unseen_logit`` for the ids that never
  occur in the text (byte tokens inside words, the ~43k ids above the tokenizer's vocabulary), 0 else
  (TransformerLens' ``fold_ln`` turns it into ``b_U``). Blocks keep GPT-2's random init with both
  ``c_proj`` weights scaled by ``block_scale``, so the residual stream stays the token + position code at
  every layer; LayerNorm weights are 1 and the blocks' LayerNorm biases 0;
- the SAEs: features 0..m-1 are the atoms (``W_enc[:, k] = W_dec[k] = a_k``, ``b_enc = -theta c``,
  ``b_dec = 0``): L0 3 (two token atoms and a position atom), explained variance ~0.9999; the other
  features are dead (``W_enc`` column 0, ``b_enc = -1``, ``W_dec`` a random unit row).

Why the LM head is untied: HF gpt2 ties ``lm_head`` to ``wte``, and a bigram model needs W_U different
from W_E. ``tie_word_embeddings=False`` makes ``save_pretrained`` write ``lm_head.weight`` and
TransformerLens' gpt2 converter reads ``unembed.W_U`` from ``lm_head.weight``, so the real
``from_pretrained`` path loads it unchanged.

Everything is seeded: the same call writes the same bytes (``build_gpt2_small_world`` returns sha256s).
Heavy imports happen inside the functions. ``WorldShape`` sizes it: ``GPT2_SMALL`` (real) or ``TINY``.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from tests.hf_cache import GPT2_REPO, JB_RELEASE, JB_REPO, add_cached_dataset

BOS = "<|endoftext|>"  # GPT-2 convention: BOS = EOS = document separator (id 0 here, 50256 in gpt2)
OWT = "Skylion007/openwebtext"
LAMBADA = "EleutherAI/lambada_openai"
CONSONANTS, VOWELS = "bcdfghjklmnprstvwz", "aeiou"
README_GATE = [  # README.md, "Using it on your SAEs": the gate's pytest arguments, verbatim
    "--pyargs", "sae_checks.gate.gate_tests",
    "--sae-model", "gpt2-small", "--sae-saes", "gpt2-small-res-jb", "--sae-data", "Skylion007/openwebtext",
    "--sae-ctx-len", "1024", "--sae-tasks", "lambada",
    "--sae-baseline", "my-baseline.json", "--sae-report", "report.json",
]


@dataclass(frozen=True, kw_only=True)
class WorldShape:
    """Sizes of a world: ``GPT2_SMALL`` is gpt2-small and gpt2-small-res-jb; ``TINY`` the same recipe small."""

    n_layers: int = 12  # gpt2-small
    d_model: int = 768
    n_heads: int = 12
    n_ctx: int = 1024
    d_vocab: int = 50257  # model vocabulary; the tokenizer's is smaller (ids above it never occur)
    d_sae: int = 24576  # gpt2-small-res-jb: expansion factor 32
    context_size: int = 128  # the SAEs' training context (cfg.json)
    n_words: int = 3000  # made-up words in the Markov chain
    tokenizer_vocab: int = 8192  # BPE vocab_size cap (training stops earlier when every word is one token)
    n_pos_atoms: int = 8  # reserved atoms for position codes
    p_follow: float = 0.8  # probability that a walk takes the preferred successor
    code_scale: float = 3.0  # c: W_E[t] = c (a_i + a_j), a GPT-2-like embedding norm (~4.2)
    pos_scale: float = 0.2  # position code = pos_scale * c * a_pos (fires its SAE feature: > theta)
    gains: tuple[float, ...] = tuple(g / 2 for g in range(4, 41))  # LM head gains tried (logits per code)
    unseen_logit: float = 12.0  # logit bias pushing down ids that never occur in the text
    block_scale: float = 1e-2  # factor on GPT-2's init of attn.c_proj and mlp.c_proj (blocks add ~0.1% each)
    theta: float = 0.01  # SAE threshold as a fraction of c: b_enc = -theta * c
    doc_words: tuple[int, int] = (300, 700)  # words per web-text document
    lambada_words: tuple[int, int] = (40, 80)  # words per Lambada passage


GPT2_SMALL = WorldShape()
TINY = WorldShape(n_layers=2, d_model=128, n_heads=4, n_ctx=128, d_vocab=1024, d_sae=256, context_size=32,
                  n_words=120, tokenizer_vocab=1000, n_pos_atoms=4, doc_words=(100, 200))


@dataclass(frozen=True)
class Text:
    """The made-up language: words, each word's preferred successor, web-text documents, Lambada passages."""

    words: list[str]
    successor: list[int]  # index of each word's preferred successor
    docs: list[str]
    lambada: list[str]


def make_text(shape: WorldShape, *, n_docs: int, n_lambada: int, seed: int = 0) -> Text:
    """Words of 2-3 consonant-vowel(-consonant) syllables, a random successor per word (never itself),
    ``n_docs`` walks for web text and ``n_lambada`` passages whose last word follows the chain."""
    import numpy as np

    rng = np.random.default_rng(seed)
    words: list[str] = []
    seen: set[str] = set()
    while len(words) < shape.n_words:
        syllables = [CONSONANTS[rng.integers(len(CONSONANTS))] + VOWELS[rng.integers(len(VOWELS))]
                     + (CONSONANTS[rng.integers(len(CONSONANTS))] if rng.random() < 0.4 else "")
                     for _ in range(int(rng.integers(2, 4)))]
        word = "".join(syllables)
        if word not in seen:
            seen.add(word)
            words.append(word)
    n = len(words)
    successor = [(i + 1 + int(s)) % n for i, s in enumerate(rng.integers(0, n - 1, size=n))]  # never i

    def walk(length: int) -> list[int]:
        out = [int(rng.integers(n))]
        for _ in range(length - 1):
            out.append(successor[out[-1]] if rng.random() < shape.p_follow else int(rng.integers(n)))
        return out

    docs = [" ".join(words[i] for i in walk(int(rng.integers(*shape.doc_words)))) for _ in range(n_docs)]
    lambada = []
    for _ in range(n_lambada):
        passage = walk(int(rng.integers(*shape.lambada_words)) - 1)
        passage.append(successor[passage[-1]])
        lambada.append(" ".join(words[i] for i in passage))
    return Text(words, successor, docs, lambada)


def train_tokenizer(docs: Sequence[str], vocab_size: int, out_dir: Path) -> Any:
    """A GPT-2 tokenizer (``GPT2Tokenizer``: byte-level BPE, GPT-2's pre-tokenizer regex, no prefix space)
    with vocabulary and merges trained on ``docs``; ``<|endoftext|>`` is id 0. Saved to and reloaded from
    ``out_dir`` (TransformerLens re-opens a tokenizer by its ``name_or_path``)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import GPT2Tokenizer

    raw = Tokenizer(models.BPE())
    raw.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    raw.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=[BOS], show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    raw.train_from_iterator(docs, trainer=trainer)
    model = json.loads(raw.to_str())["model"]
    merges = [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in model["merges"]]
    # merges as pairs: the annotation says list[str], but tokenizers' BPE takes only tuples from Python
    tok = GPT2Tokenizer(vocab=model["vocab"], merges=merges, unk_token=BOS,  # type: ignore[arg-type]
                        bos_token=BOS, eos_token=BOS)
    out_dir.mkdir(parents=True, exist_ok=True)
    tok.save_pretrained(str(out_dir))
    tok = GPT2Tokenizer.from_pretrained(str(out_dir))
    probe = docs[0][:200]
    assert tok(probe)["input_ids"] == raw.encode(probe).ids, "GPT2Tokenizer and the trained BPE disagree"
    assert tok.bos_token_id == tok.eos_token_id == 0, (tok.bos_token_id, tok.eos_token_id)
    return tok



@dataclass(frozen=True)
class Fit:
    """The fitted weights (numpy float32) and how well the bigram fits the web text it was counted on."""

    atoms: Any  # (n_atoms, d_model): orthonormal rows, each orthogonal to the all-ones vector
    pairs: Any  # (d_vocab, 2): the atom pair of each token id's code
    W_E: Any  # (d_vocab, d_model) = c (a_i + a_j)
    W_pos: Any  # (n_ctx, d_model) = pos_scale c a_pos(p)
    W_U: Any  # (d_model, d_vocab): the LM head (lm_head.weight transposed)
    ln_f_bias: Any  # (d_model,) = a_b, the logit-bias atom
    n_tok_atoms: int  # atoms 0..n_tok_atoms-1 build token codes, then n_pos_atoms position atoms, then a_b
    seen: Any  # token ids that occur in the text
    successor: Any  # (d_vocab,): most frequent successor of each seen id, -1 for the others
    gain: float  # the chosen LM head gain
    ce: float  # bigram cross-entropy (nats/token) of the fitted head on the text
    acc: float  # next-token top-1 accuracy on the text (the chain's ceiling is about p_follow)


def ids_stream(tok: Any, docs: Sequence[str]) -> Any:
    """The web text as ``load_sequences`` packs it: each document's ids followed by EOS (= BOS = 0)."""
    import numpy as np

    rows = tok(list(docs), add_special_tokens=False)["input_ids"]
    return np.concatenate([np.array([*r, tok.eos_token_id], dtype=np.int64) for r in rows])


def fit_bigram(shape: WorldShape, stream: Any, *, seed: int = 0) -> Fit:
    """Fit the bigram model of the module docstring to the token ``stream`` (1-D int array)."""
    import numpy as np

    d, V = shape.d_model, shape.d_vocab
    rng = np.random.default_rng(seed + 1)
    g = rng.standard_normal((d, d))
    g -= g.mean(axis=0, keepdims=True)  # columns orthogonal to ones: their span is the ones-complement
    atoms = np.linalg.qr(g)[0][:, : d - 1].T.astype(np.float64)  # (d - 1, d)
    n_tok = d - 2 - shape.n_pos_atoms
    assert n_tok * ((n_tok - 1) // 2) >= V, f"d_vocab={V} needs more than {n_tok} token atoms"

    seen = np.unique(stream)
    assert seen.max() < V, (int(seen.max()), V)
    order = np.concatenate([seen, np.setdiff1d(np.arange(V), seen)])  # seen ids take the widest-spread pairs
    k = np.arange(V)
    pairs = np.empty((V, 2), dtype=np.int64)
    pairs[order, 0] = k % n_tok
    pairs[order, 1] = (k % n_tok + k // n_tok + 1) % n_tok  # (i, i + delta), delta = 1, 2, ...: all distinct
    c = shape.code_scale
    unit = (atoms[pairs[:, 0]] + atoms[pairs[:, 1]]) / np.sqrt(2)  # (V, d), unit codes
    W_E = c * np.sqrt(2) * unit
    blocks = np.arange(shape.n_ctx) * shape.n_pos_atoms // shape.n_ctx
    W_pos = shape.pos_scale * c * atoms[n_tok + blocks]
    a_b = atoms[n_tok + shape.n_pos_atoms]

    # most frequent successor per id: sort bigrams by (source, -count, target)
    src, dst = stream[:-1], stream[1:]
    uniq, counts = np.unique(src * V + dst, return_counts=True)
    u_src, u_dst = uniq // V, uniq % V
    o = np.lexsort((u_dst, -counts, u_src))
    first = np.r_[True, u_src[o][1:] != u_src[o][:-1]]
    successor = np.full(V, -1, dtype=np.int64)
    successor[u_src[o][first]] = u_dst[o][first]

    head = np.zeros((d, V))  # per unit gain
    has = np.nonzero(successor >= 0)[0]
    np.add.at(head.T, successor[has], unit[has])
    head /= np.sqrt(d)
    bias = np.full(V, -shape.unseen_logit)
    bias[seen] = 0.0

    # the LayerNorm output at a seen token: its code rescaled to norm sqrt(d) (position code included)
    x = W_E[seen] + W_pos[1]
    x = x / np.linalg.norm(x, axis=1, keepdims=True) * np.sqrt(d)
    base = x @ head[:, seen]  # (n_seen, n_seen) logits per unit gain; unseen columns have logit bias only
    row = np.full(V, -1, dtype=np.int64)
    row[seen] = np.arange(len(seen))
    r, col = row[src], row[dst]
    n_unseen = V - len(seen)

    def score(gain: float) -> tuple[float, float]:
        logits = gain * base
        top = logits.max(axis=1, keepdims=True)
        lse = top[:, 0] + np.log(np.exp(logits - top).sum(axis=1) + n_unseen * np.exp(-shape.unseen_logit - top[:, 0]))
        return float(np.mean(lse[r] - logits[r, col])), float(np.mean(logits.argmax(axis=1)[r] == col))

    scores = {gain: score(gain) for gain in shape.gains}
    gain = min(scores, key=lambda gn: scores[gn][0])
    W_U = gain * head + np.outer(a_b, bias)  # ln_f.bias = a_b adds `bias` to every position's logits
    f32 = np.float32
    return Fit(atoms=atoms.astype(f32), pairs=pairs, W_E=W_E.astype(f32), W_pos=W_pos.astype(f32),
               W_U=W_U.astype(f32), ln_f_bias=a_b.astype(f32), n_tok_atoms=n_tok, seen=seen, successor=successor,
               gain=gain, ce=scores[gain][0], acc=scores[gain][1])


def write_model(shape: WorldShape, fit: Fit, tok: Any, out_dir: Path, *, seed: int = 0) -> Path:
    """``GPT2LMHeadModel.save_pretrained(out_dir)`` (config.json, model.safetensors) with the fitted
    embeddings and head, GPT-2's init in the blocks (``c_proj`` scaled by ``block_scale``), and the
    tokenizer next to it. Returns ``out_dir``."""
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    # n_ctx is not a GPT2Config argument but gpt2's config.json carries it (kept as an extra attribute)
    cfg = GPT2Config(vocab_size=shape.d_vocab, n_positions=shape.n_ctx, n_ctx=shape.n_ctx,  # type: ignore[call-arg]
                     n_embd=shape.d_model, n_layer=shape.n_layers, n_head=shape.n_heads, activation_function="gelu_new",
                     bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
                     tie_word_embeddings=False)  # a bigram head differs from the embedding
    torch.manual_seed(seed)
    model = GPT2LMHeadModel(cfg).eval()
    assert model.lm_head.weight.data_ptr() != model.transformer.wte.weight.data_ptr(), "LM head still tied"
    with torch.no_grad():
        model.transformer.wte.weight.copy_(torch.from_numpy(fit.W_E))
        model.transformer.wpe.weight.copy_(torch.from_numpy(fit.W_pos))
        for block in model.transformer.h:
            block.attn.c_proj.weight.mul_(shape.block_scale)
            block.mlp.c_proj.weight.mul_(shape.block_scale)
        model.transformer.ln_f.bias.copy_(torch.from_numpy(fit.ln_f_bias))
        model.lm_head.weight.copy_(torch.from_numpy(fit.W_U.T))
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(out_dir))
    tok.save_pretrained(str(out_dir))
    return out_dir


def sae_cfg(shape: WorldShape, layer: int) -> dict[str, Any]:
    """The release's cfg.json for ``blocks.{layer}.hook_resid_pre``, in the pre-6.0 sae_lens format it was
    published in (the training run's settings as recorded; what sae_lens reads: hook_point, d_in, d_sae,
    context_size, model_name, dtype, prepend_bos defaulting to true, apply_b_dec_to_input to true)."""
    hook = f"blocks.{layer}.hook_resid_pre"
    return {
        "model_name": "gpt2-small", "hook_point": hook, "hook_point_layer": layer, "hook_point_head_index": None,
        "dataset_path": OWT, "is_dataset_tokenized": False, "context_size": shape.context_size,
        "use_cached_activations": False, "d_in": shape.d_model, "d_sae": shape.d_sae,
        "expansion_factor": shape.d_sae // shape.d_model, "b_dec_init_method": "geometric_median",
        "n_batches_in_buffer": 128, "total_training_tokens": 300_000_000, "store_batch_size": 32,
        "train_batch_size": 4096, "l1_coefficient": 8e-05, "lr": 0.0004, "lr_warm_up_steps": 5000,
        "lr_scheduler_name": None, "use_ghost_grads": False, "feature_sampling_window": 1000,
        "dead_feature_window": 5000, "dead_feature_threshold": 1e-08, "device": "cpu", "seed": 42,
        "dtype": "torch.float32", "log_to_wandb": False, "run_name": f"{shape.d_sae}-L1-8e-05-LR-0.0004-Tokens-3.000e+08",
    }


def write_sae(shape: WorldShape, fit: Fit, layer: int, density: Any, out_dir: Path, *, seed: int = 0) -> Path:
    """One SAE folder (cfg.json, sae_weights.safetensors, sparsity.safetensors) at ``blocks.{layer}``:
    features 0..m-1 are the token and position atoms, the rest dead (module docstring)."""
    import torch
    from safetensors.torch import save_file

    d, m = shape.d_model, fit.n_tok_atoms + shape.n_pos_atoms
    atoms = torch.from_numpy(fit.atoms[:m])  # (m, d)
    gen = torch.Generator().manual_seed(seed * 1000 + layer)
    W_dec = torch.randn(shape.d_sae, d, generator=gen)
    W_dec /= W_dec.norm(dim=1, keepdim=True)
    W_dec[:m] = atoms
    W_enc = torch.zeros(d, shape.d_sae)
    W_enc[:, :m] = atoms.T
    b_enc = torch.full((shape.d_sae,), -1.0)
    b_enc[:m] = -shape.theta * shape.code_scale
    out_dir.mkdir(parents=True, exist_ok=True)
    tensors = {"W_enc": W_enc, "W_dec": W_dec.contiguous(), "b_enc": b_enc, "b_dec": torch.zeros(d)}
    save_file(tensors, str(out_dir / "sae_weights.safetensors"))
    save_file({"sparsity": torch.from_numpy(density).float().add(1e-10).log10()},
              str(out_dir / "sparsity.safetensors"))
    (out_dir / "cfg.json").write_text(json.dumps(sae_cfg(shape, layer), indent=2))
    return out_dir


def feature_density(shape: WorldShape, fit: Fit, stream: Any) -> Any:
    """(d_sae,) fraction of the web text's tokens (BOS/EOS excluded) on which each feature fires."""
    import numpy as np

    toks = stream[stream != 0]
    density = np.zeros(shape.d_sae)
    np.add.at(density, fit.pairs[toks].ravel(), 1.0 / len(toks))
    density[fit.n_tok_atoms: fit.n_tok_atoms + shape.n_pos_atoms] = 1.0 / shape.n_pos_atoms
    return density


class Laps:
    """Seconds per step of a world build: ``lap(step)`` records the time since the previous lap."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self._start = time.perf_counter()

    def lap(self, step: str) -> None:
        now = time.perf_counter()
        self.seconds[step] = round(now - self._start, 2)
        self._start = now


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def build_gpt2_small_world(hf_home: str | Path, work_dir: str | Path, *, sae_layers: Sequence[int] = (0, 1),
                           n_owt_rows: int = 400, n_lambada_rows: int = 5153, shape: WorldShape = GPT2_SMALL,
                           seed: int = 0) -> dict[str, Any]:
    """Write the world of the module docstring: model and tokenizer (repo ``gpt2``) and SAEs at
    ``sae_layers`` (release ``gpt2-small-res-jb``) into the hub cache ``hf_home/hub``, the two datasets into
    ``hf_home/datasets`` (``n_owt_rows`` documents of 300-700 words: ~200k tokens at the default;
    ``n_lambada_rows`` passages: 5153 as lambada_openai's test split). ``work_dir`` takes the tokenizer's
    first save and ``world.json``. Point a subprocess at it with ``tests.hf_cache.offline_env(hf_home)``.

    Returns what was built: the shape, the fit's quality (``fit``: gain, bigram CE and accuracy on the
    web text), file sizes and sha256s (``files``: path relative to ``hf_home`` -> {bytes, sha256}; ``sae_sha256``
    by layer), and seconds per step."""
    from sae_lens.loading.pretrained_saes_directory import get_repo_id_and_folder_name

    from tests.hf_cache import repo_snapshot

    hf_home, work_dir = Path(hf_home), Path(work_dir)
    hub = hf_home / "hub"
    laps = Laps()
    seconds, lap = laps.seconds, laps.lap

    text = make_text(shape, n_docs=n_owt_rows, n_lambada=n_lambada_rows, seed=seed)
    tok = train_tokenizer(text.docs, shape.tokenizer_vocab, work_dir / "tokenizer")
    assert len(tok) <= shape.d_vocab, (len(tok), shape.d_vocab)
    stream = ids_stream(tok, text.docs)
    lap("text_and_tokenizer")
    fit = fit_bigram(shape, stream, seed=seed)
    lap("fit")
    model_dir = write_model(shape, fit, tok, repo_snapshot(hub, GPT2_REPO), seed=seed)
    lap("model")
    density = feature_density(shape, fit, stream)
    sae_dirs = {}
    for layer in sae_layers:
        repo_id, folder = get_repo_id_and_folder_name(JB_RELEASE, f"blocks.{layer}.hook_resid_pre")
        assert repo_id == JB_REPO, repo_id
        sae_dirs[layer] = write_sae(shape, fit, layer, density, repo_snapshot(hub, repo_id) / folder, seed=seed)
    lap("saes")
    add_cached_dataset(hf_home / "datasets", OWT, {"text": text.docs}, split="train")
    add_cached_dataset(hf_home / "datasets", LAMBADA, {"text": text.lambada}, split="test", config_name="default")
    lap("datasets")

    files = {str(p.relative_to(hf_home)): {"bytes": p.stat().st_size, "sha256": sha256(p)}
             for p in sorted(hf_home.rglob("*")) if p.is_file() and p.suffix in (".json", ".safetensors", ".arrow")
             and "_scratch" not in p.parts}
    lap("hash")
    world = {
        "shape": asdict(shape), "seed": seed, "tokenizer_vocab": len(tok), "n_tokens": int(len(stream)),
        "n_owt_rows": n_owt_rows, "n_lambada_rows": n_lambada_rows, "sae_layers": list(sae_layers),
        "fit": {"gain": fit.gain, "ce": round(fit.ce, 4), "acc": round(fit.acc, 4), "n_seen": int(len(fit.seen))},
        "model_dir": str(model_dir), "sae_dirs": {L: str(p) for L, p in sae_dirs.items()},
        "sae_sha256": {L: sha256(p / "sae_weights.safetensors") for L, p in sae_dirs.items()},
        "files": files, "seconds": seconds,
    }
    work_dir.mkdir(parents=True, exist_ok=True)
    (work_dir / "world.json").write_text(json.dumps(world, indent=1))
    return world
