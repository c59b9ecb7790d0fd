"""SAE files of the sae_lens registry's gpt2-small, pythia-70m-deduped and Gemma Scope releases, written by
the tests in the layout and format that sae_lens' loader for each release reads from the Hugging Face
cache, into a local cache (``tests/hf_cache.py``), next to tiny models under the models' real repo ids.

Where each file goes comes from sae_lens itself (``get_repo_id_and_folder_name(release, sae_id)``: the
registry ``pretrained_saes.yaml`` is the truth); what goes in it follows the loader named by the release's
``conversion_func`` (``sae_lens.loading.pretrained_sae_loaders``):

=========================  =========================================  ==========================================
format (``LAYOUTS`` key)   loader                                     files under ``<repo>/`` (``P`` = registry path)
=========================  =========================================  ==========================================
``sae_lens``               ``sae_lens_huggingface_loader`` (None)     ``P/cfg.json`` (pre-6.0 keys: ``hook_point``
                                                                      ...), ``P/sae_weights.safetensors``,
                                                                      ``P/sparsity.safetensors``
``connor_rob_hook_z``      ``connor_rob_hook_z_huggingface_loader``   ``P`` (a ``.pt`` state dict: W_enc, W_dec,
                                                                      b_enc, b_dec) and ``P[:-3]_cfg.json``
                                                                      (``act_size``, ``dict_size``, ``act_name``)
``dictionary_learning_1``  ``dictionary_learning_sae_huggingface_     ``P/ae.pt`` (dictionary_learning's
                           loader_1``                                 ``state_dict``: ``encoder.weight`` ...) and
                                                                      ``P/config.json`` (``trainer``, ``buffer``)
``gemma_2``                ``gemma_2_sae_huggingface_loader``         ``P/params.npz`` (W_enc, W_dec, b_enc,
                                                                      b_dec, threshold); the config is made
                                                                      from the repo id and ``P`` alone
=========================  =========================================  ==========================================

The OpenAI v5 TopK releases (``gpt2-small-*-v5-32k/128k``) use the ``sae_lens`` folder layout (their
registry path ``v5_32k_layer_0.pt`` is a *folder*); their ``cfg.json`` carries ``activation_fn_str: topk``
with ``activation_fn_kwargs.k`` and ``normalize_activations: layer_norm``, which sae_lens maps to its TopK
architecture. The cfg.json contents are our reconstruction (the hub cannot be reached here): the keys the
loaders read, with the release's own values where the registry or the format fixes them.

Shapes are tiny wherever the loader takes them from the files. Gemma Scope's cannot be: ``gemma_2``
derives ``d_in`` from the repo id (2304 for 2b) and ``d_sae`` from the folder (``width_16k``), so its
params.npz is full-size (16384 x 2304 float32, ~300 MB for one SAE). Weights: at residual-stream hooks of
the gpt2 world (``tests/gpt2_world.py``) features are that world's atoms (L0 ~3, explained variance ~1);
elsewhere (attention and MLP outputs, the random pythia) the SAE is the identity written as +-e_j pairs
(explained variance 1, L0 = d_in): exact, so a test can state what the gate must measure.

Heavy imports happen inside the functions.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.hf_cache import repo_snapshot

PYTHIA_REPO = "EleutherAI/pythia-70m-deduped"  # TransformerLens' official name for pythia-70m-deduped


def registry(release: str) -> Any:
    """The sae_lens pretrained-directory entry of ``release`` (repo_id, conversion_func, saes_map ...)."""
    from sae_lens.loading.pretrained_saes_directory import get_pretrained_saes_directory

    return get_pretrained_saes_directory()[release]


def layout_of(release: str) -> str:
    """The loader format of ``release``: its ``conversion_func``, ``sae_lens`` when the registry has none."""
    return registry(release).conversion_func or "sae_lens"


def where(hub: Path, release: str, sae_id: str) -> tuple[str, Path]:
    """(repo id, snapshot path of the registry path) of one SAE of ``release``, as sae_lens resolves it."""
    from sae_lens.loading.pretrained_saes_directory import get_repo_id_and_folder_name

    repo_id, path = get_repo_id_and_folder_name(release, sae_id)
    return repo_id, repo_snapshot(hub, repo_id) / path


@dataclass(frozen=True)
class Weights:
    """An SAE's tensors in sae_lens' orientation (numpy float32): ``W_enc`` (d_in, d_sae), ``W_dec``
    (d_sae, d_in), ``b_enc`` (d_sae,), ``b_dec`` (d_in,), ``threshold`` (d_sae,) for JumpReLU."""

    W_enc: Any
    W_dec: Any
    b_enc: Any
    b_dec: Any
    threshold: Any

    @property
    def d_in(self) -> int:
        return int(self.W_enc.shape[0])

    @property
    def d_sae(self) -> int:
        return int(self.W_enc.shape[1])


def atom_weights(atoms: Any, d_sae: int, *, bias: float, seed: int) -> Weights:
    """Features 0..m-1 are the rows of ``atoms`` (m, d_in) (encoder = decoder = atom, ``b_enc = bias``);
    the rest are dead (encoder column 0, ``b_enc = -1``, decoder a random unit row)."""
    import numpy as np

    m, d = atoms.shape
    assert m <= d_sae, (m, d_sae)
    rng = np.random.default_rng(seed)
    W_dec = rng.standard_normal((d_sae, d))
    W_dec /= np.linalg.norm(W_dec, axis=1, keepdims=True)
    W_dec[:m] = atoms
    W_enc = np.zeros((d, d_sae))
    W_enc[:, :m] = atoms.T
    b_enc = np.full(d_sae, -1.0)
    b_enc[:m] = bias
    f32 = np.float32
    return Weights(W_enc=W_enc.astype(f32), W_dec=W_dec.astype(f32), b_enc=b_enc.astype(f32),
                   b_dec=np.zeros(d, f32), threshold=np.full(d_sae, max(bias, 0.0) + 1e-3, f32))


def identity_weights(d_in: int, d_sae: int, *, seed: int) -> Weights:
    """Features 2j and 2j+1 are +e_j and -e_j (encoder = decoder transposed, ``b_enc = 0``), so the SAE
    reconstructs any input exactly with L0 = the number of non-zero coordinates (d_in on a dense
    activation); the rest are dead (encoder column 0, ``b_enc = -1``, decoder a random unit row)."""
    import numpy as np

    assert d_sae >= 2 * d_in, (d_in, d_sae)
    f32 = np.float32  # built in float32: Gemma Scope's 16384 x 2304 is 150 MB per matrix
    rng = np.random.default_rng(seed)
    W_dec = rng.standard_normal((d_sae, d_in), dtype=f32)
    W_dec /= np.linalg.norm(W_dec, axis=1, keepdims=True)
    eye = np.eye(d_in, dtype=f32)
    W_dec[0: 2 * d_in: 2], W_dec[1: 2 * d_in: 2] = eye, -eye
    W_enc = np.zeros((d_in, d_sae), f32)
    W_enc[:, : 2 * d_in] = W_dec[: 2 * d_in].T
    b_enc = np.full(d_sae, -1.0, f32)
    b_enc[: 2 * d_in] = 0.0
    return Weights(W_enc=W_enc, W_dec=W_dec, b_enc=b_enc, b_dec=np.zeros(d_in, f32),
                   threshold=np.full(d_sae, 1e-6, f32))


# --- writers, one per loader format ------------------------------------------------------------------


def write_sae_lens(hub: Path, release: str, sae_id: str, w: Weights, *, hook: str, model_name: str,
                   context_size: int, k: int | None = None, normalize: str | None = None) -> Path:
    """``cfg.json`` (pre-6.0 sae_lens keys, as these releases were published), ``sae_weights.safetensors``
    and ``sparsity.safetensors`` (a flat log10 density: the loaders only read it) in the release's folder.
    ``k``: a TopK SAE (``activation_fn_str: topk``); ``normalize``: its ``normalize_activations`` (OpenAI's
    v5 SAEs: ``layer_norm``)."""
    import numpy as np
    import torch
    from safetensors.torch import save_file

    _, folder = where(hub, release, sae_id)
    folder.mkdir(parents=True, exist_ok=True)
    layer = int(hook.split(".")[1])
    cfg: dict[str, Any] = {
        "model_name": model_name, "hook_point": hook, "hook_point_layer": layer, "hook_point_head_index": None,
        "dataset_path": "Skylion007/openwebtext", "is_dataset_tokenized": False, "context_size": context_size,
        "d_in": w.d_in, "d_sae": w.d_sae, "expansion_factor": max(1, w.d_sae // w.d_in), "dtype": "torch.float32",
        "device": "cpu", "seed": 42, "l1_coefficient": 8e-05, "lr": 0.0004,
    }
    if k is not None:
        cfg.update(activation_fn_str="topk", activation_fn_kwargs={"k": k})
    if normalize is not None:
        cfg["normalize_activations"] = normalize
    (folder / "cfg.json").write_text(json.dumps(cfg, indent=2))
    t = {name: torch.from_numpy(np.ascontiguousarray(getattr(w, name))) for name in ("W_enc", "W_dec", "b_enc", "b_dec")}
    save_file(t, str(folder / "sae_weights.safetensors"))
    save_file({"sparsity": torch.full((w.d_sae,), -3.0)}, str(folder / "sparsity.safetensors"))
    return folder / "sae_weights.safetensors"


def write_hook_z_kk(hub: Path, release: str, sae_id: str, w: Weights, *, hook: str) -> Path:
    """Kissane & Krzyzanowski's attention SAEs: ``<name>.pt`` (``torch.save`` of the state dict W_enc,
    W_dec, b_enc, b_dec) and ``<name>_cfg.json`` at the repo root (``connor_rob_hook_z`` loader)."""
    import torch

    _, pt = where(hub, release, sae_id)
    assert pt.name.endswith(".pt"), pt
    pt.parent.mkdir(parents=True, exist_ok=True)
    layer = int(hook.split(".")[1])
    cfg = {"act_size": w.d_in, "dict_size": w.d_sae, "act_name": hook, "layer": layer, "site": "z",
           "model_name": "gpt2-small", "seq_len": 128, "dict_mult": max(1, w.d_sae // w.d_in), "l1_coeff": 1.8,
           "lr": 0.0012, "enc_dtype": "fp32", "seed": 49, "remove_rare_dir": False}
    (pt.parent / (pt.name.split(".pt")[0] + "_cfg.json")).write_text(json.dumps(cfg))
    torch.save({name: torch.from_numpy(getattr(w, name).copy()) for name in ("W_enc", "W_dec", "b_enc", "b_dec")},
               str(pt))
    return pt


DICT_CLASSES = {  # SAEBench sweep -> (dictionary_learning dict_class, trainer_class)
    "standard": ("AutoEncoder", "StandardTrainer"),
    "panneal": ("AutoEncoder", "PAnnealTrainer"),
    "gated": ("GatedAutoEncoder", "GatedSAETrainer"),
    "topk": ("AutoEncoderTopK", "TopKTrainer"),
}


def write_dictionary_learning(hub: Path, release: str, sae_id: str, w: Weights, *, kind: str, layer: int,
                              ctx_len: int = 128, k: int | None = None) -> Path:
    """SAEBench's dictionary_learning folders: ``ae.pt`` (the ``nn.Module`` state dict of ``dict_class``:
    ``encoder.weight`` (d_sae, d_in), ``decoder.weight`` (d_in, d_sae), biases named per class) and
    ``config.json`` (``trainer``: dict_class, activation_dim, dict_size, layer, lm_name, k; ``buffer``:
    ctx_len)."""
    import torch

    dict_class, trainer_class = DICT_CLASSES[kind]
    _, folder = where(hub, release, sae_id)
    folder.mkdir(parents=True, exist_ok=True)

    def t(a: Any) -> Any:
        return torch.from_numpy(a.copy())

    state = {"encoder.weight": t(w.W_enc.T), "decoder.weight": t(w.W_dec.T)}
    if dict_class == "AutoEncoder":
        state.update({"bias": t(w.b_dec), "encoder.bias": t(w.b_enc)})
    elif dict_class == "GatedAutoEncoder":
        state = {"decoder_bias": t(w.b_dec), "r_mag": torch.zeros(w.d_sae), "gate_bias": t(w.b_enc),
                 "mag_bias": t(w.b_enc), "encoder.weight": state["encoder.weight"],
                 "decoder.weight": state["decoder.weight"]}
    else:  # AutoEncoderTopK
        assert k is not None
        state.update({"b_dec": t(w.b_dec), "encoder.bias": t(w.b_enc), "k": torch.tensor(k),
                      "threshold": torch.tensor(-1.0)})
    torch.save(state, str(folder / "ae.pt"))
    trainer: dict[str, Any] = {"dict_class": dict_class, "trainer_class": trainer_class, "activation_dim": w.d_in,
                               "dict_size": w.d_sae, "lr": 0.0003, "layer": layer, "lm_name": PYTHIA_REPO,
                               "submodule_name": f"resid_post_layer_{layer}", "seed": 0, "steps": 48828}
    if k is not None:
        trainer["k"] = k
    config = {"trainer": trainer, "buffer": {"d_submodule": w.d_in, "io": "out", "ctx_len": ctx_len,
                                             "refresh_batch_size": 24, "out_batch_size": 2048}}
    (folder / "config.json").write_text(json.dumps(config, indent=2))
    return folder / "ae.pt"


def write_gemma_scope(hub: Path, release: str, sae_id: str, w: Weights) -> Path:
    """Gemma Scope: ``params.npz`` (W_enc, W_dec, b_enc, b_dec, threshold, float32) in the release's folder."""
    import numpy as np

    _, folder = where(hub, release, sae_id)
    folder.mkdir(parents=True, exist_ok=True)
    np.savez(folder / "params.npz", W_enc=w.W_enc, W_dec=w.W_dec, b_enc=w.b_enc, b_dec=w.b_dec,
             threshold=w.threshold)
    return folder / "params.npz"


# --- models ------------------------------------------------------------------------------------------


def write_pythia(hub: Path, work_dir: Path, *, n_layers: int = 6, d_model: int = 32, n_heads: int = 4,
                 n_ctx: int = 128, d_vocab: int | None = None, seed: int = 0) -> dict[str, Any]:
    """A GPT-NeoX (rotary on a quarter of each head, parallel attention and MLP, as pythia; random init)
    saved with ``transformers`` under repo ``EleutherAI/pythia-70m-deduped``, with a byte-level tokenizer
    (``tests.tiny.tiny_tokenizer``) beside it; TransformerLens reads this config.json for pythia. Tiny by
    default; ``PYTHIA_70M`` gives pythia-70m-deduped's own sizes (``d_vocab`` None: the tokenizer's)."""
    import torch
    from transformers import GPTNeoXConfig, GPTNeoXForCausalLM

    from tests.tiny import tiny_tokenizer

    tok = tiny_tokenizer(work_dir / "pythia-tok")
    cfg = GPTNeoXConfig(vocab_size=d_vocab or len(tok), hidden_size=d_model, num_hidden_layers=n_layers,
                        num_attention_heads=n_heads,
                        intermediate_size=4 * d_model, max_position_embeddings=n_ctx, rotary_pct=0.25,
                        use_parallel_residual=True, hidden_act="gelu", bos_token_id=tok.bos_token_id,
                        eos_token_id=tok.eos_token_id, tie_word_embeddings=False)
    torch.manual_seed(seed)
    model = GPTNeoXForCausalLM(cfg).eval()
    out = repo_snapshot(hub, PYTHIA_REPO)
    model.save_pretrained(str(out))
    tok.save_pretrained(str(out))
    return {"d_model": d_model, "n_layers": n_layers, "n_ctx": n_ctx, "vocab": cfg.vocab_size,
            "params": sum(p.numel() for p in model.parameters())}


# pythia-70m-deduped's sizes (its HF config.json): 6 layers, d_model 512, 8 heads, d_mlp 2048, 2048 positions
PYTHIA_70M = {"n_layers": 6, "d_model": 512, "n_heads": 8, "n_ctx": 2048, "d_vocab": 50304}


def gemma2_standin(tokenizer: Any, *, d_model: int = 2304, n_layers: int = 2, n_ctx: int = 64, seed: int = 0) -> Any:
    """A tiny gemma-2-style ``HookedTransformer`` at gemma-2-2b's width (Gemma Scope's ``d_in``): RMSNorm
    before and after each sublayer, gated GELU-tanh MLP, rotary, grouped-query attention, local/global
    layers, attention and logit soft-capping, named ``gemma-2-2b``. Not under the hub name: TransformerLens
    fixes gemma-2-2b's configuration in code (26 layers, vocabulary 256000), so no tiny model can load as
    ``google/gemma-2-2b``; this one is handed to ``load_saes`` and the engine directly (the full-size model,
    loaded by name and gated, is ``tests/gemma_world.py``'s, in ``make realscale``)."""
    import torch
    from transformer_lens import HookedTransformer, HookedTransformerConfig

    torch.manual_seed(seed)
    cfg = HookedTransformerConfig(
        n_layers=n_layers, d_model=d_model, d_head=32, n_heads=2, n_key_value_heads=1, d_mlp=64,
        d_vocab=len(tokenizer), n_ctx=n_ctx, act_fn="gelu_pytorch_tanh", normalization_type="RMS",
        positional_embedding_type="rotary", rotary_dim=32, use_attn_scale=True, attn_scores_soft_cap=50.0,
        output_logits_soft_cap=30.0, gated_mlp=True, final_rms=True, use_normalization_before_and_after=True,
        use_local_attn=True, attn_types=["local", "global"] * (n_layers // 2), window_size=32,
        model_name="gemma-2-2b", original_architecture="Gemma2ForCausalLM", device="cpu", seed=seed,
    )
    model = HookedTransformer(cfg, tokenizer=tokenizer)
    return model.eval()


# --- worlds ------------------------------------------------------------------------------------------

def gpt2_tiny12() -> Any:
    """gpt2-small's 12 blocks (the releases' SAEs sit at layers 0-11) at tiny width: d_model 64, 4 heads of
    16 (hook_z width 64), context 128, vocabulary 1024; the rest as ``tests.gpt2_world.TINY``."""
    from tests.gpt2_world import WorldShape

    return WorldShape(n_layers=12, d_model=64, n_heads=4, n_ctx=128, d_vocab=1024, d_sae=128, context_size=32,
                      n_words=120, tokenizer_vocab=1000, n_pos_atoms=4, doc_words=(100, 200))


@dataclass(frozen=True)
class Gpt2Release:
    """One gpt2-small release of the registry as the tiny world writes it."""

    release: str
    ids: tuple[str, ...]  # the registry ids written (each with its files)
    d_sae: tuple[int, ...]  # width per id
    k: int | None = None  # TopK k (v5)


def gpt2_releases(layer: int = 1) -> list[Gpt2Release]:
    """The gpt2-small releases the tests write, one SAE per release at ``layer`` (the feature-splitting
    sweep: all 8 widths at blocks.8.hook_resid_pre; the ajt releases: blocks.2, their first layer)."""
    out = [Gpt2Release("gpt2-small-res-jb-feature-splitting",
                       tuple(f"blocks.8.hook_resid_pre_{768 * 2 ** i}" for i in range(8)),
                       (64, 80, 96, 112, 128, 160, 192, 256))]
    for width, d_sae in (("32k", 128), ("128k", 256)):
        for hook, name in (("hook_resid_post", "resid-post"), ("hook_resid_mid", "resid-mid"),
                           ("hook_attn_out", "attn-out"), ("hook_mlp_out", "mlp-out")):
            out.append(Gpt2Release(f"gpt2-small-{name}-v5-{width}", (f"blocks.{layer}.{hook}",), (d_sae,), k=8))
    out.append(Gpt2Release("gpt2-small-hook-z-kk", (f"blocks.{layer}.hook_z",), (128,)))
    out.append(Gpt2Release("gpt2-small-mlp-tm", (f"blocks.{layer}.hook_mlp_out",), (128,)))
    for suffix in ("sce", "scefr", "scl", "sle", "slefr", "sll"):
        out.append(Gpt2Release(f"gpt2-small-res_{suffix}-ajt", ("blocks.2.hook_resid_pre",), (128,)))
    return out


def build_gpt2_releases(hf_home: Path, work_dir: Path, *, layer: int = 1) -> dict[str, Any]:
    """The 12-block tiny gpt2 world (``tests/gpt2_world.py``: model ``gpt2``, its tokenizer, openwebtext and
    lambada_openai in the datasets cache, no res-jb SAEs) plus every release of :func:`gpt2_releases` in its
    loader's layout. Returns ``{"world": ..., "files": {release: {sae_id: weights path}}}``."""
    from tests.gpt2_world import build_gpt2_small_world, fit_bigram, ids_stream, make_text

    shape = gpt2_tiny12()
    n_owt, n_lambada = 60, 200
    world = build_gpt2_small_world(hf_home, work_dir, sae_layers=(), shape=shape, n_owt_rows=n_owt,
                                   n_lambada_rows=n_lambada)
    # the fit again (deterministic, cheap at this size) for its atoms, tokenizing with the saved tokenizer
    from transformers import GPT2Tokenizer

    tok = GPT2Tokenizer.from_pretrained(world["model_dir"])
    text = make_text(shape, n_docs=n_owt, n_lambada=n_lambada)
    stream = ids_stream(tok, text.docs)
    fit = fit_bigram(shape, stream)
    assert fit.gain == world["fit"]["gain"], (fit.gain, world["fit"])
    atoms = fit.atoms[: fit.n_tok_atoms + shape.n_pos_atoms]
    bias = -shape.theta * shape.code_scale
    hub = Path(hf_home) / "hub"
    files: dict[str, dict[str, str]] = {}
    for seed, rel in enumerate(gpt2_releases(layer)):
        files[rel.release] = {}
        for sae_id, d_sae in zip(rel.ids, rel.d_sae, strict=True):
            hook = sae_id.removesuffix("_" + sae_id.rsplit("_", 1)[-1]) if "feature-splitting" in rel.release \
                else sae_id.replace("hook_z", "attn.hook_z")
            resid = "resid" in hook
            w = (atom_weights(atoms, d_sae, bias=bias, seed=seed) if resid
                 else identity_weights(shape.d_model, d_sae, seed=seed))
            if layout_of(rel.release) == "connor_rob_hook_z":
                path = write_hook_z_kk(hub, rel.release, sae_id, w, hook=hook)
            else:
                path = write_sae_lens(hub, rel.release, sae_id, w, hook=hook, model_name="gpt2-small",
                                      context_size=shape.context_size, k=rel.k,
                                      normalize="layer_norm" if rel.k is not None else None)
            files[rel.release][sae_id] = str(path)
    return {"world": world, "files": files, "shape": shape}


SWEEPS = {  # SAEBench's pythia-70m-deduped sweeps (dictionary_learning format) -> DICT_CLASSES key
    "sae_bench_pythia70m_sweep_standard_ctx128_0712": "standard",
    "sae_bench_pythia70m_sweep_gated_ctx128_0730": "gated",
    "sae_bench_pythia70m_sweep_topk_ctx128_0730": "topk",
    "sae_bench_pythia70m_sweep_panneal_ctx128_0730": "panneal",
}
PYTHIA_SM = ("pythia-70m-deduped-res-sm", "pythia-70m-deduped-mlp-sm", "pythia-70m-deduped-att-sm")


def sweep_ids(release: str, layer: int = 3, n: int = 4) -> list[str]:
    """The first ``n`` registry ids of a SAEBench sweep at ``blocks.{layer}.hook_resid_post``, by trainer."""
    ids = [i for i in registry(release).saes_map if i.startswith(f"blocks.{layer}.hook_resid_post__")]
    return sorted(ids, key=lambda i: int(i.rsplit("_", 1)[1]))[:n]


def build_pythia_releases(hf_home: Path, work_dir: Path, *, layer: int = 1, n_sweep: int = 4) -> dict[str, Any]:
    """The tiny GPT-NeoX under ``EleutherAI/pythia-70m-deduped`` (:func:`write_pythia`), the three "sm"
    releases at ``layer`` (sae_lens folders) and ``n_sweep`` SAEs of each SAEBench sweep at blocks.3
    (dictionary_learning folders, widths 2 d_in .. 2 d_in + 16 (n_sweep - 1); TopK with k = d_in). All
    identity SAEs (:func:`identity_weights`). Returns ``{"model": ..., "files": {release: {sae_id: path}}}``."""
    hub = Path(hf_home) / "hub"
    model = write_pythia(hub, Path(work_dir))
    d = model["d_model"]
    files: dict[str, dict[str, str]] = {}
    for seed, release in enumerate(PYTHIA_SM):
        hook = {"res": "hook_resid_post", "mlp": "hook_mlp_out", "att": "hook_attn_out"}[release.split("-")[-2]]
        sae_id = f"blocks.{layer}.{hook}"
        w = identity_weights(d, 2 * d + 32, seed=seed)
        files[release] = {sae_id: str(write_sae_lens(hub, release, sae_id, w, hook=sae_id,
                                                      model_name="pythia-70m-deduped", context_size=128))}
    for seed, (release, kind) in enumerate(SWEEPS.items(), start=10):
        files[release] = {}
        for i, sae_id in enumerate(sweep_ids(release, n=n_sweep)):
            w = identity_weights(d, 2 * d + 16 * i, seed=seed + i)
            files[release][sae_id] = str(write_dictionary_learning(
                hub, release, sae_id, w, kind=kind, layer=3, k=d if kind == "topk" else None))
    return {"model": model, "files": files}


GEMMA_RELEASE = "gemma-scope-2b-pt-res-canonical"
GEMMA_ID = "layer_0/width_16k/canonical"  # -> google/gemma-scope-2b-pt-res, layer_0/width_16k/average_l0_105


def build_gemma_scope(hf_home: Path) -> dict[str, Any]:
    """One Gemma Scope SAE, ``gemma-scope-2b-pt-res-canonical`` / ``layer_0/width_16k/canonical``, at its
    real shape (the ``gemma_2`` loader fixes d_in 2304 and d_sae 16384 from the names): an identity SAE
    (:func:`identity_weights`) in ``params.npz``. Returns ``{"path", "d_in", "d_sae"}``."""
    from sae_lens.loading.pretrained_sae_loaders import get_gemma_2_config_from_hf

    repo_id, _ = where(Path(hf_home) / "hub", GEMMA_RELEASE, GEMMA_ID)
    cfg = get_gemma_2_config_from_hf(repo_id, str(registry(GEMMA_RELEASE).saes_map[GEMMA_ID]), "cpu")
    w = identity_weights(cfg["d_in"], cfg["d_sae"], seed=0)
    path = write_gemma_scope(Path(hf_home) / "hub", GEMMA_RELEASE, GEMMA_ID, w)
    return {"path": str(path), "d_in": w.d_in, "d_sae": w.d_sae}


def build_pythia_full(hf_home: Path, work_dir: Path, *, layer: int = 3) -> dict[str, Any]:
    """pythia-70m-deduped at its real shape (``PYTHIA_70M``, random init, 70M parameters) with two SAEs at
    ``blocks.{layer}.hook_resid_post`` at their real widths: ``pythia-70m-deduped-res-sm`` (32768, a sae_lens
    folder) and trainer_0 of SAEBench's TopK sweep (4096, dictionary_learning; k = d_in so the identity is
    exact), plus openwebtext and lambada_openai rows of ``tests/gpt2_world.py``'s made-up text."""
    from tests.gpt2_world import LAMBADA, OWT, TINY, make_text
    from tests.hf_cache import add_cached_dataset

    hub = Path(hf_home) / "hub"
    model = write_pythia(hub, Path(work_dir), **PYTHIA_70M)
    d = model["d_model"]
    res = "pythia-70m-deduped-res-sm"
    sae_id = f"blocks.{layer}.hook_resid_post"
    files = {res: {sae_id: str(write_sae_lens(hub, res, sae_id, identity_weights(d, 64 * d, seed=0), hook=sae_id,
                                              model_name="pythia-70m-deduped", context_size=128))}}
    topk = "sae_bench_pythia70m_sweep_topk_ctx128_0730"
    (first,) = sweep_ids(topk, layer=layer, n=1)
    files[topk] = {first: str(write_dictionary_learning(hub, topk, first, identity_weights(d, 8 * d, seed=1),
                                                         kind="topk", layer=layer, k=d))}
    text = make_text(TINY, n_docs=40, n_lambada=200)
    add_cached_dataset(Path(hf_home) / "datasets", OWT, {"text": text.docs}, split="train")
    add_cached_dataset(Path(hf_home) / "datasets", LAMBADA, {"text": text.lambada}, split="test",
                       config_name="default")
    return {"model": model, "files": files}
