"""Glue from a RunConfig to the cloze runner: which data each task reads, and where results go.

Tasks are declarations in the registry ``sae_checks.tasks`` (built-ins: ``tasks/lambada.py``,
``tasks/cbt.py``; the user's own through ``register_task``), read here at call time. Sources:
``config.task_data`` entries ``(task, source)`` win; otherwise on the zoo model a task the zoo ships
prompts for (lambada) reads the zoo's cloze set, and on any other model the task's declared hub dataset
(``EleutherAI/lambada_openai``, ``cam-cst/cbt`` config CN; test split). Feature helpfulness is reported
for the first task run (results.features is per SAE; each entry names its task).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sae_checks.config import RunConfig
from sae_checks.engine.retry import halving


def task_source(task: str, config: RunConfig) -> str:
    """Where ``task``'s prompts come from under ``config`` (see module docstring)."""
    from sae_checks.tasks import task_source as source

    return source(task, config.model, dict(config.task_data))


def cloze_options(config: RunConfig, model: Any, saes: Mapping[str, Any], *, task: str, batch_size: int,
                  features: bool) -> Any:
    """The ``experiments.cloze.ClozeOptions`` of ``task`` under ``config``: ``batch_size`` rows per pass,
    ``features`` on or off, the run's position buckets clipped to the model's context."""
    from sae_checks.engine.run import layer_buckets
    from sae_checks.experiments.cloze import ClozeOptions

    return ClozeOptions(
        task=task, batch_size=batch_size, chunk_tokens=config.chunk_tokens, splice_bos=config.splice_bos,
        features=features, n_causal=config.n_causal, causal_max_prompts=config.causal_max_prompts,
        n_bootstrap=config.n_bootstrap, ci_level=config.ci_level, seed=config.seed,
        fast_attention=config.fast_attention, dtype=config.dtype,
        buckets={n: layer_buckets(config, s.context_size, model.cfg.n_ctx) for n, s in saes.items()},
    )


def run_tasks(model: Any, saes: Mapping[str, Any], config: RunConfig,
              progress: Any = None) -> tuple[dict[str, Any], dict[str, Any]]:
    """Run every task of ``config.tasks``: returns (results.cloze, results.features). ``progress``: a
    ``sae_checks.progress.Progress`` told about each task's batches (None: ``config.progress`` decides)."""
    from sae_checks import progress as _progress
    from sae_checks.experiments import cloze as _cloze
    from sae_checks.loading.data import load_cloze

    cloze: dict[str, Any] = {}
    features: dict[str, Any] = {}
    for task in config.tasks:
        items = load_cloze(task, task_source(task, config), n_prompts=config.n_prompts)  # type: ignore[arg-type]
        # Batches run longest first, so an OOM nearly always comes at once: restarting the task at half the
        # batch size repeats little, and a task's results never mix two attempts.
        def attempt(batch_size: int, task: str = task, items: Any = items, first: bool = not features) -> Any:
            options = cloze_options(config, model, saes, task=task, batch_size=batch_size, features=first)
            return _cloze.run_cloze(model, dict(saes), items, options,
                                    progress=progress if progress is not None else _progress.enabled(config.progress))

        out = halving(attempt, config.batch_size or _cloze.auto_batch_size(model, items),
                      f"{task} (task restarted)").value
        cloze[task] = out.cloze
        if out.features and not features:
            features = out.features
    return cloze, features
