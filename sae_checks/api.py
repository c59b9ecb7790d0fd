"""The public entry points: ``run`` (load from a RunConfig, evaluate, run the tasks) and ``plan``
(which layers and buckets a run will have, from SAE metadata alone: no model, no forward pass).

``plan`` is what the pytest plugin parametrizes its checks from at collection time, identically on
every xdist worker; ``run`` is what its session fixture calls once per process.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sae_checks.aggregate import bucket_name
from sae_checks.config import RunConfig
from sae_checks.engine.run import Evaluation, evaluate, layer_buckets, resolve_device
from sae_checks.errors import CompatibilityError, LoadError
from sae_checks.loading.saes import check_sae_cfg


@dataclass(frozen=True)
class Plan:
    """What a run will measure, known before any forward pass."""

    layers: list[int]  # layers with an SAE, in order
    buckets: dict[int, list[str]]  # layer -> bucket names "a-b"
    tasks: list[str]  # cloze tasks to run
    context_size: dict[int, int | None]  # layer -> SAE training context
    n_ctx: int | None  # context length of the run, when known without loading the model


def _template_regex(sae_id: str) -> re.Pattern[str]:
    return re.compile("^" + re.escape(sae_id).replace(re.escape("{layer}"), r"(\d+)") + "$")


def sae_metadata(config: RunConfig) -> dict[int, dict[str, Any]]:
    """layer -> SAE metadata (``hook_name``, ``context_size``, ``d_in``, ...) without loading weights."""
    spec = config.saes
    folder: Path | None = None
    if spec.startswith("zoo:"):
        from sae_checks.zoo import zoo_sae_dir

        folder = Path(zoo_sae_dir(spec.split(":", 1)[1]))
    elif Path(spec).expanduser().exists():
        folder = Path(spec).expanduser()
    if folder is not None:
        cfgs = [folder / "cfg.json"] if (folder / "cfg.json").exists() else sorted(folder.glob("*/cfg.json"))
        if not cfgs:
            raise LoadError(f"SAEs {spec!r}: no cfg.json in {folder} or its subfolders (expected sae_lens format)")
        out: dict[int, dict[str, Any]] = {}
        for path in cfgs:
            try:
                cfg = json.loads(path.read_text())
            except (OSError, json.JSONDecodeError) as err:
                raise LoadError(f"{path}: unreadable SAE config: {err}") from err
            check_sae_cfg(cfg, path)
            meta = {**cfg, **(cfg.get("metadata") or {})}
            hook = meta.get("hook_name")
            m = re.match(r"^blocks\.(\d+)\.", hook or "")
            if not m:
                raise LoadError(f"{path}: metadata hook_name={hook!r} names no layer (blocks.L.…)")
            out[int(m.group(1))] = meta
        return out
    from sae_lens.loading.pretrained_sae_loaders import load_sae_config_from_huggingface
    from sae_lens.loading.pretrained_saes_directory import get_pretrained_saes_directory

    directory = get_pretrained_saes_directory()
    if spec not in directory:
        raise LoadError(f"SAEs {spec!r}: not a local path, not zoo:v1/zoo:v2, and not a sae_lens release")
    pattern = _template_regex(config.sae_id)
    out = {}
    for sid in directory[spec].saes_map:
        m = pattern.match(sid)
        if m and (config.layers is None or int(m.group(1)) in config.layers):
            meta = load_sae_config_from_huggingface(spec, sid)
            out[int(m.group(1))] = {**meta, **(meta.get("metadata") or {})}
    return out


def plan(config: RunConfig) -> Plan:
    """Layers, buckets and tasks of a run from SAE metadata alone (see module docstring)."""
    config.validate()
    meta = sae_metadata(config)
    layers = sorted(meta) if config.layers is None else list(config.layers)
    missing = [L for L in layers if L not in meta]
    if missing:
        raise CompatibilityError(f"layers={missing}: no SAE for these layers in {config.saes!r} "
                                 f"(available: {sorted(meta)})")
    n_ctx = config.ctx_len
    if n_ctx is None and config.model == "zoo":
        from sae_checks.zoo import zoo_eval_tokens

        n_ctx = int(zoo_eval_tokens().shape[1])
    ctx = {L: meta[L].get("context_size") for L in layers}
    buckets = {}
    for L in layers:
        if n_ctx is None and not config.buckets:
            raise CompatibilityError("ctx_len=None: give --ctx (or explicit buckets) to plan a non-zoo run")
        buckets[L] = [bucket_name(b) for b in layer_buckets(config, ctx[L], n_ctx or 10**9)]
    return Plan(layers=layers, buckets=buckets, tasks=list(config.tasks), context_size=ctx, n_ctx=n_ctx)


def run(config: RunConfig | None = None, *, layers: Sequence[int] | None = None) -> Evaluation:
    """Load the model, the SAEs and the data named by ``config``, evaluate, then run its cloze tasks.

    ``layers`` restricts the run to a subset (used by pytest-xdist workers); default: ``config.layers``.
    """
    from sae_checks.loading.data import load_sequences
    from sae_checks.loading.models import load_model
    from sae_checks.loading.saes import load_saes

    config = (config or RunConfig()).validate()
    if layers is not None:
        config = config.replace(layers=tuple(layers))
    device = resolve_device(config.device)
    model = load_model(config.model, device=device, dtype=config.dtype)
    saes = load_saes(config.saes, model, sae_id=config.sae_id, layers=config.layers, device=device)
    n_ctx = int(model.cfg.n_ctx)
    ctx_len = config.ctx_len or n_ctx
    tokens = load_sequences(
        config.data, model.tokenizer, n_seqs=config.n_seqs_for(ctx_len), ctx_len=ctx_len, seed=config.seed,
        split=config.data_split, config_name=config.data_config, text_field=config.text_field, n_ctx=n_ctx,
    )
    evaluation = evaluate(model, saes, tokens, config, data_info={"config_name": config.data_config or ""})
    if config.tasks:
        from sae_checks.experiments.tasks import run_tasks

        cloze, features = run_tasks(model, saes, config)
        evaluation.results["cloze"] = cloze
        if features:
            evaluation.results["features"] = features
    return evaluation
