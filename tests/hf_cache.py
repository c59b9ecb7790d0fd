"""Build a local Hugging Face hub cache folder for tests, so the hub code paths (``from_pretrained``,
``hf_hub_download``, ``load_dataset``) run offline against files we wrote.

Layout written (what huggingface_hub reads with ``HF_HUB_OFFLINE=1``)::

    <hub_cache>/models--<org>--<name>/refs/main              -> "<commit hash>"
    <hub_cache>/models--<org>--<name>/snapshots/<hash>/<file> (plain files; real caches use symlinks to blobs/)

Point ``HF_HUB_CACHE`` (or ``HF_HOME`` = its parent, with the cache in ``hub/``) at it. huggingface_hub
reads these variables at import time, so load in a subprocess started with that environment
(:func:`offline_env`) rather than in the test process.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Any

GPT2_REPO = "gpt2"  # TransformerLens' official name for gpt2-small (its HF repo id, cached as models--gpt2)
JB_RELEASE = "gpt2-small-res-jb"
JB_REPO = "jbloom/GPT2-Small-SAEs-Reformatted"  # sae_lens pretrained directory: repo of gpt2-small-res-jb


def repo_snapshot(hub_cache: str | Path, repo_id: str, repo_type: str = "model") -> Path:
    """The snapshot folder of ``repo_id`` in ``hub_cache`` (created, with ``refs/main`` pointing at it).
    The commit hash is derived from the repo id, so repeated calls give the same folder."""
    prefix = {"model": "models", "dataset": "datasets", "space": "spaces"}[repo_type]
    repo_dir = Path(hub_cache) / f"{prefix}--{repo_id.replace('/', '--')}"
    commit = hashlib.sha1(f"{repo_type}:{repo_id}".encode()).hexdigest()
    (repo_dir / "refs").mkdir(parents=True, exist_ok=True)
    (repo_dir / "refs" / "main").write_text(commit)
    snapshot = repo_dir / "snapshots" / commit
    snapshot.mkdir(parents=True, exist_ok=True)
    return snapshot


def add_files(hub_cache: str | Path, repo_id: str, src: str | Path, *, subfolder: str = "",
              repo_type: str = "model") -> Path:
    """Copy every file of folder ``src`` into ``repo_id``'s snapshot under ``subfolder``; returns that folder."""
    dest = repo_snapshot(hub_cache, repo_id, repo_type) / subfolder
    dest.mkdir(parents=True, exist_ok=True)
    for path in Path(src).iterdir():
        if path.is_file():
            shutil.copy2(path, dest / path.name)
    return dest


def add_cached_dataset(datasets_cache: str | Path, repo_id: str, rows: dict[str, list[Any]], *,
                       split: str = "test", config_name: str | None = None) -> Path:
    """Put ``rows`` where ``datasets.load_dataset(repo_id, config_name, split=split)`` finds them offline.

    With ``HF_HUB_OFFLINE=1`` datasets does not read the hub cache: it loads the prepared Arrow files of
    an earlier download from its own cache, ``<datasets_cache>/<org>___<name>/<config>/<version>/<hash>/``
    (``dataset_info.json`` and ``<name>-<split>.arrow``). This prepares ``rows`` with datasets' own
    parquet builder in a scratch cache and moves its output there. Returns the folder.
    """
    import datasets
    import pyarrow as pa
    import pyarrow.parquet as pq

    root = Path(datasets_cache)
    scratch = root / "_scratch"
    scratch.mkdir(parents=True, exist_ok=True)
    src = scratch / f"{split}.parquet"
    pq.write_table(pa.table(rows), src)
    datasets.load_dataset("parquet", data_files={split: str(src)}, split=split, cache_dir=str(scratch / "cache"))
    (info,) = (scratch / "cache").glob("parquet/*/*/*/dataset_info.json")
    name = repo_id.split("/")[-1]
    dest = root / repo_id.replace("/", "___") / (config_name or "default") / "0.0.0" / hashlib.sha1(
        repo_id.encode()).hexdigest()
    dest.mkdir(parents=True, exist_ok=True)
    meta = json.loads(info.read_text())
    meta.update(config_name=config_name or "default", dataset_name=name)  # datasets checks config_name
    (dest / "dataset_info.json").write_text(json.dumps(meta))
    shutil.copy2(info.parent / f"parquet-{split}.arrow", dest / f"{name}-{split}.arrow")
    shutil.rmtree(scratch)
    return dest


def build_gpt2_world(hub_cache: str | Path, work_dir: str | Path, *, sae_layers: tuple[int, ...] = (0,)) -> dict[str, Any]:
    """A tiny GPT-2 (2 layers, d_model 32, n_ctx 64) saved with ``transformers`` under repo ``gpt2`` and
    tiny standard SAEs under the repo/folders that ``gpt2-small-res-jb`` / ``blocks.L.hook_resid_pre``
    resolve to. Returns the sizes and the SAE weights' sha256 (keyed by layer) for assertions."""
    import torch
    from sae_lens import StandardSAE, StandardSAEConfig
    from sae_lens.loading.pretrained_saes_directory import get_repo_id_and_folder_name
    from sae_lens.saes.sae import SAEMetadata
    from transformers import GPT2Config, GPT2LMHeadModel

    from tests.tiny import tiny_tokenizer

    work_dir = Path(work_dir)
    tok = tiny_tokenizer(work_dir / "tok")
    torch.manual_seed(0)
    cfg = GPT2Config(vocab_size=len(tok), n_positions=64, n_ctx=64, n_embd=32, n_layer=2, n_head=4,
                     bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id)
    model_dir = work_dir / "gpt2"
    # n_ctx: the real gpt2 config.json carries it and TransformerLens reads it
    GPT2LMHeadModel(cfg).save_pretrained(str(model_dir))
    tok.save_pretrained(str(model_dir))
    add_files(hub_cache, GPT2_REPO, model_dir)

    sha: dict[int, str] = {}
    for layer in sae_layers:
        sae_id = f"blocks.{layer}.hook_resid_pre"
        repo_id, folder = get_repo_id_and_folder_name(JB_RELEASE, sae_id)
        assert repo_id == JB_REPO, repo_id
        torch.manual_seed(layer)
        meta = SAEMetadata(hook_name=sae_id, context_size=16, prepend_bos=True, model_name="gpt2-small")
        sae = StandardSAE(StandardSAEConfig(d_in=32, d_sae=64, metadata=meta))
        sae_dir = work_dir / "saes" / sae_id
        sae_dir.mkdir(parents=True)
        sae.save_model(str(sae_dir))
        add_files(hub_cache, repo_id, sae_dir, subfolder=folder)
        sha[layer] = hashlib.sha256((sae_dir / "sae_weights.safetensors").read_bytes()).hexdigest()
    return {"d_model": 32, "n_layers": 2, "n_ctx": 64, "d_sae": 64, "vocab": len(tok), "sha256": sha}


def offline_env(hf_home: str | Path) -> dict[str, str]:
    """The environment for a subprocess that must see only ``hf_home`` (cache in ``hf_home/hub``), offline."""
    env = dict(os.environ)
    env.update(HF_HOME=str(hf_home), HF_HUB_CACHE=str(Path(hf_home) / "hub"), HF_HUB_OFFLINE="1",
               HF_DATASETS_OFFLINE="1", TRANSFORMERS_OFFLINE="1",
               HF_DATASETS_CACHE=str(Path(hf_home) / "datasets"))
    return env
