"""The zoo's architecture set (``zoo:arch``): one SAE per sae_lens architecture the gate must handle,
trained by sae_lens' own trainer (``sae_lens.training.sae_trainer.SAETrainer``) on the shipped zoo model.

Four small SAEs (d_sae 128, so the set adds about 0.5 MB), trained at the full 256-token context on
activations held in memory (offline; the trainer's ``data_provider`` draws random rows from them):

- ``blocks.1.hook_resid_pre.topk``: ``TopKTrainingSAE``, k = 16 (saved as a ``topk`` SAE, the decoder
  norm folded into the encoder as sae_lens does on save);
- ``blocks.2.hook_resid_pre.jumprelu``: ``JumpReLUTrainingSAE`` (DeepMind's step L0 loss); thresholds saved;
- ``blocks.2.hook_mlp_out.gated``: ``GatedTrainingSAE`` at the MLP output (a hook other than the
  residual stream);
- ``blocks.3.hook_resid_pre.norm``: a standard (ReLU) SAE trained with
  ``normalize_activations = "expected_average_only_in"``.

What a user's sae_lens run writes for the last one, and so what ships here: the trainer estimates
``s = sqrt(d_in) / E||x||`` before training, trains on ``x * s``, and at the end of ``fit`` calls
``fold_activation_norm_scaling_factor(s)`` (``W_enc *= s``, ``W_dec /= s``, ``b_dec /= s``) which also sets
``cfg.normalize_activations = "none"``; ``save_inference_model`` then writes that cfg. So ``cfg.json`` says
``"none"``, the weights work on raw activations, and no activation-scaler file is written (only the
trainer's mid-run checkpoints write ``activation_scaler.json``). ``SAE.load_from_disk`` reads the cfg as
is and folds nothing (only ``SAE.from_pretrained`` folds, with the registry's ``norm_scaling_factor``).
The training setting and the factor are kept in ``metadata.sae_checks_zoo_training``
(``normalize_activations``, ``norm_scaling_factor``), as a record, not read by sae_lens.

``python -m zoo_builder.build --arch-only`` trains them from the shipped model and text without touching
any other zoo file (``zoo_stats.json`` included: the training numbers are in each SAE's metadata).
"""

from __future__ import annotations

import contextlib
import io
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

D_SAE = 128  # 1x d_model: keeps the set small (4 x ~130 KB)
TOPK_K = 16


@dataclass(frozen=True, kw_only=True)
class ArchSAE:
    name: str  # folder name under saes/arch
    hook: str  # TransformerLens hook it reads
    architecture: str  # "topk" | "jumprelu" | "gated" | "standard"
    normalize_activations: str = "none"  # sae_lens' training-time normalisation
    lr: float = 1e-3  # Adam learning rate (linear decay over the last 20% of steps)
    train: dict[str, Any] = field(default_factory=dict)  # fields of the sae_lens training config


ARCH: tuple[ArchSAE, ...] = (
    ArchSAE(name="blocks.1.hook_resid_pre.topk", hook="blocks.1.hook_resid_pre", architecture="topk",
            train={"k": TOPK_K}),
    ArchSAE(name="blocks.2.hook_resid_pre.jumprelu", hook="blocks.2.hook_resid_pre", architecture="jumprelu",
            train={"l0_coefficient": 1.0, "jumprelu_init_threshold": 0.3, "jumprelu_bandwidth": 0.3}),
    ArchSAE(name="blocks.2.hook_mlp_out.gated", hook="blocks.2.hook_mlp_out", architecture="gated",
            train={"l1_coefficient": 3.0}),
    ArchSAE(name="blocks.3.hook_resid_pre.norm", hook="blocks.3.hook_resid_pre", architecture="standard",
            normalize_activations="expected_average_only_in", train={"l1_coefficient": 2.0}),
)


@dataclass(frozen=True, kw_only=True)
class ArchTraining:
    steps: int = 3000  # trainer steps per SAE
    batch_size: int = 1024  # activation vectors per step
    n_windows: int = 400  # n_ctx windows of training text (x 255 positions)
    seed: int = 0


def _batches(acts: Any, batch_size: int, seed: int) -> Iterator[Any]:
    """Endless random batches of rows of ``acts`` (N, d): the trainer's data provider."""
    import torch

    gen = torch.Generator().manual_seed(seed)
    while True:
        yield acts[torch.randint(0, acts.shape[0], (batch_size,), generator=gen)]


def _training_sae(spec: ArchSAE, d_in: int, meta: Any) -> Any:
    from sae_lens import (
        GatedTrainingSAE,
        GatedTrainingSAEConfig,
        JumpReLUTrainingSAE,
        JumpReLUTrainingSAEConfig,
        StandardTrainingSAE,
        StandardTrainingSAEConfig,
        TopKTrainingSAE,
        TopKTrainingSAEConfig,
    )

    classes: dict[str, tuple[Any, Any]] = {
        "topk": (TopKTrainingSAE, TopKTrainingSAEConfig),
        "jumprelu": (JumpReLUTrainingSAE, JumpReLUTrainingSAEConfig),
        "gated": (GatedTrainingSAE, GatedTrainingSAEConfig),
        "standard": (StandardTrainingSAE, StandardTrainingSAEConfig),
    }
    sae_cls, cfg_cls = classes[spec.architecture]
    cfg = cfg_cls(d_in=d_in, d_sae=D_SAE, normalize_activations=spec.normalize_activations, metadata=meta,
                  **spec.train)
    return sae_cls(cfg)


def train_arch_sae(spec: ArchSAE, acts: Any, cfg: ArchTraining, *, ctx: int, index: int) -> tuple[Any, dict[str, Any]]:
    """Train one SAE of :data:`ARCH` on ``acts`` (N, d_in) with sae_lens' ``SAETrainer``; returns the trained
    (folded) training SAE and its stats."""
    import torch
    from sae_lens.config import SAETrainerConfig
    from sae_lens.saes.sae import SAEMetadata
    from sae_lens.training.sae_trainer import SAETrainer

    meta = SAEMetadata(hook_name=spec.hook, hook_head_index=None, context_size=ctx, model_name="sae-checks-zoo",
                       prepend_bos=True, dataset_path="sae-checks-zoo:stdlib-docstrings",
                       sae_checks_zoo_version="arch", trained_positions=[1, ctx - 1])
    torch.manual_seed(cfg.seed + 100 + index)  # the SAE's initial weights
    sae = _training_sae(spec, acts.shape[1], meta)
    decay = cfg.steps // 5
    trainer_cfg = SAETrainerConfig(
        total_training_samples=cfg.steps * cfg.batch_size, train_batch_size_samples=cfg.batch_size, lr=spec.lr,
        lr_end=0.0, lr_scheduler_name="constant", lr_decay_steps=decay, device="cpu",
        dead_feature_window=cfg.steps // 4, feature_sampling_window=cfg.steps // 4, n_batches_for_norm_estimate=100,
    )
    t0 = time.time()
    trainer = SAETrainer(cfg=trainer_cfg, sae=sae, data_provider=_batches(acts, cfg.batch_size, cfg.seed + index))
    scaler = trainer.activation_scaler
    factor: list[float | None] = [None]
    estimate = scaler.estimate_scaling_factor

    def remember(*args: Any, **kwargs: Any) -> None:  # the factor fit() folds and then forgets
        estimate(*args, **kwargs)
        factor[0] = scaler.scaling_factor

    scaler.estimate_scaling_factor = remember  # type: ignore[method-assign]
    with contextlib.redirect_stderr(io.StringIO()):  # tqdm's progress bar
        trainer.fit()
    training = {"normalize_activations": spec.normalize_activations, "norm_scaling_factor": factor[0],
                "steps": cfg.steps, "batch_size": cfg.batch_size, "lr": spec.lr, "vectors": int(acts.shape[0]),
                **spec.train}
    sae.cfg.metadata.sae_checks_zoo_training = training
    with torch.no_grad():  # on raw activations: the factor is folded in by now
        x = next(_batches(acts, 8192, cfg.seed + 1000))
        f = sae.encode(x)
        fvu = ((sae.decode(f) - x).pow(2).sum() / (x - x.mean(0)).pow(2).sum()).item()
        l0 = (f != 0).float().sum(-1).mean().item()
    stats = {"hook": spec.hook, "architecture": spec.architecture, "d_sae": D_SAE, **training, "fvu": fvu, "l0": l0,
             "dead": sae.cfg.metadata.num_dead_features, "seconds": time.time() - t0}
    print(f"  arch {spec.name}: fvu {fvu:.3f} l0 {l0:.1f} dead {stats['dead']}/{D_SAE} factor {factor[0]} "
          f"({stats['seconds']:.0f}s)", flush=True)
    return sae, stats


def sorted_keys(cfg_path: Path) -> None:
    """Rewrite a ``cfg.json`` with its keys sorted, nothing else changed: sae_lens builds the inference cfg
    from a set of field names, so its key order follows the interpreter's string hashing (PYTHONHASHSEED)
    and two identical builds would otherwise differ in bytes."""
    import json

    cfg_path.write_text(json.dumps(json.loads(cfg_path.read_text()), sort_keys=True))


def build_arch(out: Path, *, train_stream: Any, model: Any, bos: int, cfg: ArchTraining) -> dict[str, Any]:
    """Train :data:`ARCH` into ``out/saes/arch/<name>`` (``save_inference_model``, as sae_lens' training
    runner saves its final SAE); returns their training stats. Leaves the global torch RNG as it found it."""
    import torch

    from zoo_builder import lm
    from zoo_builder.suite import _collect

    t0 = time.time()
    with torch.random.fork_rng():
        gen = torch.Generator().manual_seed(cfg.seed + 3)
        ctx = int(model.cfg.n_ctx)
        windows = lm.random_windows(train_stream, cfg.n_windows, ctx, bos, gen)
        acts = _collect(model, windows, sorted({s.hook for s in ARCH}))
        stats: dict[str, Any] = {}
        for i, spec in enumerate(ARCH):
            sae, stats[spec.name] = train_arch_sae(spec, acts[spec.hook], cfg, ctx=ctx, index=i)
            _, cfg_path = sae.save_inference_model(out / "saes" / "arch" / spec.name)
            sorted_keys(cfg_path)
    stats["seconds"] = time.time() - t0
    return stats


def build_arch_only(out: Path, cfg: Any) -> dict[str, Any]:
    """Train :data:`ARCH` from the shipped model and text in ``out`` (``cfg``: the build's ``BuildConfig``,
    whose ``arch`` overrides :class:`ArchTraining`); every other file stays as it is."""
    from dataclasses import replace

    from zoo_builder import corpus, lm

    docs = corpus.collect_documents()
    train_docs, _ = corpus.split_documents(docs)
    train_texts = [d.text for d in train_docs[:: cfg.doc_stride]]
    tok = lm.load_tokenizer(out / "tokenizer")
    train_stream = lm.encode_documents(tok, train_texts)
    model = lm.load_model(out / "model", tok)
    return build_arch(out, train_stream=train_stream, model=model, bos=tok.bos_token_id,
                      cfg=replace(ArchTraining(seed=cfg.seed), **cfg.arch))
