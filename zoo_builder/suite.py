"""The zoo's SAE suite (``zoo:suite``): SAEs that make the zoo look like a real release, for the suite
features (several SAEs per hook, hooks other than the residual stream).

Three SAEs on the shipped zoo model, trained like v2 (full 256-token context, same trainer):

- ``blocks.1.hook_resid_pre.w1024``: a second width (d_sae 1024) at the hook of v2's layer-1 SAE, so
  ``zoo:v2,zoo:suite`` is a width sweep at ``blocks.1.hook_resid_pre``;
- ``blocks.1.attn.hook_z``: per-head attention outputs, flattened to (H * d_head) = 128 as sae_lens does;
- ``blocks.2.hook_mlp_out``: the MLP's output.

``python -m zoo_builder.build --suite-only`` trains them from the shipped model and text without
rebuilding anything else; a full build runs this stage after the v1/v2 SAEs.
"""

from __future__ import annotations

import time
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

SUITE: tuple[tuple[str, str, int], ...] = (  # (folder name, hook, d_sae)
    ("blocks.1.hook_resid_pre.w1024", "blocks.1.hook_resid_pre", 1024),
    ("blocks.1.attn.hook_z", "blocks.1.attn.hook_z", 512),
    ("blocks.2.hook_mlp_out", "blocks.2.hook_mlp_out", 512),
)


def _collect(model: Any, windows: Any, hooks: list[str], batch_size: int = 32) -> dict[str, Any]:
    """Activations at ``hooks`` at positions >= 1 (BOS excluded), flattened per token: hook -> (N, d)."""
    import torch

    out: dict[str, list[Any]] = {h: [] for h in hooks}
    with torch.no_grad():
        for i in range(0, windows.shape[0], batch_size):
            _, cache = model.run_with_cache(windows[i:i + batch_size], names_filter=lambda n: n in hooks)
            for h in hooks:
                x = cache[h][:, 1:]  # (B, T - 1, d) or (B, T - 1, H, d_head)
                out[h].append(x.reshape(-1, x.shape[2] * (x.shape[3] if x.ndim == 4 else 1)).clone())
    return {h: torch.cat(v) for h, v in out.items()}


def build_suite(out: Path, *, train_stream: Any, model: Any, bos: int, n_windows: int, seed: int,
                sae_overrides: dict[str, Any]) -> dict[str, Any]:
    """Train the suite's SAEs into ``out/saes/suite/<name>``; returns their training stats."""
    import torch

    from zoo_builder import lm, sae_train

    t0 = time.time()
    gen = torch.Generator().manual_seed(seed + 2)
    ctx = int(model.cfg.n_ctx)
    windows = lm.random_windows(train_stream, n_windows, ctx, bos, gen)
    acts = _collect(model, windows, sorted({hook for _, hook, _ in SUITE}))
    stats: dict[str, Any] = {}
    for name, hook, d_sae in SUITE:
        cfg = replace(sae_train.SAETraining(seed=seed), **{**sae_overrides, "d_sae": sae_overrides.get("d_sae", d_sae)})
        w = sae_train.train_sae(acts[hook], cfg, label=f"suite {name} ({acts[hook].shape[0]} vectors)")
        sae = sae_train.to_standard_sae(w, hook_name=hook, context_size=ctx,
                                        extra={"sae_checks_zoo_version": "suite", "trained_positions": [1, ctx - 1]})
        if hook.endswith("hook_z"):
            sae.cfg.reshape_activations = "hook_z"  # as sae_lens stores hook_z SAEs; sae-checks flattens itself
        sae.save_model(out / "saes" / "suite" / name)
        stats[name] = {"hook": hook, "d_sae": cfg.d_sae, "vectors": int(acts[hook].shape[0]),
                       "training": asdict(cfg)}
    stats["seconds"] = time.time() - t0
    return stats


def build_suite_only(out: Path, cfg: Any) -> dict[str, Any]:
    """Train the suite from the shipped model and text in ``out``; merge its stats into zoo_stats.json."""
    import json

    from zoo_builder import corpus, lm

    docs = corpus.collect_documents()
    train_docs, _ = corpus.split_documents(docs)
    train_texts = [d.text for d in train_docs[:: cfg.doc_stride]]
    tok = lm.load_tokenizer(out / "tokenizer")
    train_stream = lm.encode_documents(tok, train_texts)
    model = lm.load_model(out / "model", tok)
    stats = build_suite(out, train_stream=train_stream, model=model, bos=tok.bos_token_id,
                        n_windows=cfg.v2_windows, seed=cfg.seed, sae_overrides=cfg.sae)
    path = out / "zoo_stats.json"
    full = json.loads(path.read_text()) if path.exists() else {}
    full["suite"] = stats
    path.write_text(json.dumps(full, indent=1, sort_keys=True) + "\n")
    return stats
