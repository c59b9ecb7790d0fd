"""The public entry points: ``run`` (load from a RunConfig, evaluate, run the tasks) and ``plan``
(which SAEs and buckets a run will have, from SAE metadata alone: no model, no forward pass).

``plan`` is what the pytest plugin parametrizes its checks from at collection time, identically on
every xdist worker; ``run`` is what its session fixture calls once per process.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

from sae_checks.aggregate import bucket_name
from sae_checks.config import RunConfig
from sae_checks.engine.run import Evaluation, evaluate, layer_buckets, resolve_device
from sae_checks.errors import CompatibilityError, LoadError
from sae_checks.loading.saes import check_sae_cfg
from sae_checks.names import hook_site, sae_sort_key, supported_hooks_text
from sae_checks.progress import Progress

log = logging.getLogger("sae_checks")


@dataclass(frozen=True)
class PlannedSAE:
    """One SAE of a run, from its metadata alone."""

    name: str  # stable name: release id or folder name
    layer: int
    hook: str
    context_size: int | None
    d_in: int | None
    d_sae: int | None
    card_l0: float | None = None  # the release card's published L0 (loading.cards), when there is one
    card_variance_explained: float | None = None  # ... and its published explained variance


@dataclass(frozen=True)
class Plan:
    """What a run will measure, known before any forward pass."""

    saes: dict[str, PlannedSAE]  # name -> SAE, in forward order (layer, hook, name)
    buckets: dict[str, list[str]]  # name -> bucket names "a-b"
    tasks: list[str]  # cloze tasks to run
    n_ctx: int | None  # context length of the run, when known without loading the model

    @property
    def layers(self) -> list[int]:
        return sorted({s.layer for s in self.saes.values()})

    @property
    def context_size(self) -> dict[str, int | None]:
        return {n: s.context_size for n, s in self.saes.items()}


def _folder_metadata(folder: Path, source: str) -> list[tuple[str, dict[str, Any]]]:
    cfgs = [folder / "cfg.json"] if (folder / "cfg.json").exists() else sorted(folder.glob("*/cfg.json"))
    if not cfgs:
        raise LoadError(f"SAEs {source!r}: no cfg.json in {folder} or its subfolders (expected sae_lens format)")
    out = []
    for path in cfgs:
        try:
            cfg = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as err:
            raise LoadError(f"{path}: unreadable SAE config: {err}") from err
        if not isinstance(cfg, dict):
            raise LoadError(f"{path}: an SAE config must be a JSON object")
        check_sae_cfg(cfg, path)
        out.append((path.parent.name, {**cfg, **(cfg.get("metadata") or {}), "_where": str(path)}))
    return out


def sae_metadata(config: RunConfig) -> dict[str, dict[str, Any]]:
    """name -> SAE metadata (``hook_name``, ``context_size``, ``d_in``, ``layer``, ...) without loading
    weights, selected as ``loading.saes.load_saes`` selects (sources, ``sae_ids``, template, layers)."""
    from sae_checks.loading.saes import id_matcher, source_folder, split_sources

    keep = id_matcher(config.sae_ids)
    found: list[tuple[str, dict[str, Any]]] = []
    for source in split_sources(config.saes):
        folder = source_folder(source)
        if folder is not None:
            found += [(n, m) for n, m in _folder_metadata(folder, source) if keep(n)]
            continue
        found += _release_metadata(source, config)
    out: dict[str, dict[str, Any]] = {}
    for name, meta in found:
        hook = meta.get("hook_name")
        where = meta.get("_where", name)
        site = hook_site(hook) if isinstance(hook, str) else None
        if site is None:
            raise CompatibilityError(f"SAE {where}: hook {hook!r} cannot be spliced by sae-checks "
                                     f"(supported: {supported_hooks_text()})")
        if config.layers is not None and site.layer not in config.layers:
            continue
        if name in out:
            raise LoadError(f"SAEs {config.saes!r}: two SAEs are named {name!r}; rename a folder or drop a source")
        out[name] = {**meta, "layer": site.layer}
    return dict(sorted(out.items(), key=lambda kv: sae_sort_key(kv[1]["layer"], kv[1]["hook_name"], kv[0])))


def _release_metadata(release: str, config: RunConfig) -> list[tuple[str, dict[str, Any]]]:
    from sae_lens.loading.pretrained_saes_directory import get_pretrained_saes_directory

    from sae_checks.loading.cards import release_card
    from sae_checks.loading.saes import release_ids

    directory = get_pretrained_saes_directory()
    if release not in directory:
        raise LoadError(f"SAEs {release!r}: not a local path, not zoo:v1/zoo:v2/zoo:suite, and not a sae_lens "
                        "release")
    ids = release_ids(release, directory[release], n_layers=None, sae_id=config.sae_id, ids=config.sae_ids,
                      layers=config.layers)
    out = []
    for sid in ids:
        meta = _release_config(release, sid)
        out.append((sid, {**meta, **(meta.get("metadata") or {}), "_card": release_card(release, sid)}))
    return out


def _release_config(release: str, sae_id: str) -> dict[str, Any]:
    """A release SAE's config from the Hugging Face cache (offline: a one-line OfflineError if absent)."""
    from sae_lens.loading.pretrained_sae_loaders import load_sae_config_from_huggingface

    from sae_checks.errors import OfflineError
    from sae_checks.loading import hub_offline

    try:
        return dict(load_sae_config_from_huggingface(release, sae_id))
    except Exception as err:  # the hub library raises many types; name the resource either way
        if hub_offline():
            raise OfflineError(f"SAE config {release!r} / {sae_id!r}") from err
        raise LoadError(f"SAE config {release!r} / {sae_id!r}: {type(err).__name__}: {err}") from err


def shard_names(saes: dict[str, PlannedSAE], shard: tuple[int, int] | None) -> list[str]:
    """The SAEs of shard ``(i, n)``: a deterministic split balanced by estimated cost (greedy: costliest
    first, onto the lightest shard). Cost of an SAE ~ the layers its splice pass runs (n_layers - layer,
    so early layers cost more) plus its encoder width (d_in * d_sae relative to the largest)."""
    names = list(saes)
    if shard is None:
        return names
    i, n = shard
    if not saes:
        return []
    top_layer = max(s.layer for s in saes.values()) + 1
    widest = max((s.d_in or 1) * (s.d_sae or 1) for s in saes.values())

    def cost(name: str) -> float:
        s = saes[name]
        return (top_layer - s.layer) / top_layer + (s.d_in or 1) * (s.d_sae or 1) / widest

    load = [0.0] * n
    part: dict[str, int] = {}
    for name in sorted(names, key=lambda k: (-cost(k), k)):
        k = min(range(n), key=lambda j: (load[j], j))
        part[name] = k
        load[k] += cost(name)
    return [name for name in names if part[name] == i]


def plan(config: RunConfig) -> Plan:
    """SAEs, buckets and tasks of a run from SAE metadata alone (see module docstring). With
    ``config.shard``, only that shard's SAEs."""
    config.validate()
    meta = sae_metadata(config)
    if not meta:
        raise CompatibilityError(f"SAEs {config.saes!r}: no SAE selected"
                                 + (f" by sae_ids={config.sae_ids!r}" if config.sae_ids else "")
                                 + (f" at layers {list(config.layers)}" if config.layers else ""))
    if config.layers is not None:
        missing = sorted(set(config.layers) - {m["layer"] for m in meta.values()})
        if missing:
            raise CompatibilityError(f"layers={missing}: no SAE for these layers in {config.saes!r} "
                                     f"(available: {sorted({m['layer'] for m in meta.values()})})")
    n_ctx = config.ctx_len
    if n_ctx is None and config.model == "zoo":
        from sae_checks.zoo import zoo_eval_tokens

        n_ctx = int(zoo_eval_tokens().shape[1])
    saes = {name: PlannedSAE(name=name, layer=m["layer"], hook=m["hook_name"], context_size=m.get("context_size"),
                             d_in=m.get("d_in"), d_sae=m.get("d_sae"), card_l0=getattr(m.get("_card"), "l0", None),
                             card_variance_explained=getattr(m.get("_card"), "variance_explained", None))
            for name, m in meta.items()}
    saes = {n: saes[n] for n in shard_names(saes, config.shard)}
    buckets = {}
    for name, s in saes.items():
        if n_ctx is None and not config.buckets:
            raise CompatibilityError("ctx_len=None: give --ctx (or explicit buckets) to plan a non-zoo run")
        buckets[name] = [bucket_name(b) for b in layer_buckets(config, s.context_size, n_ctx or 10**9)]
    return Plan(saes=saes, buckets=buckets, tasks=list(config.tasks), n_ctx=n_ctx)


class Loaded(NamedTuple):
    """What ``load`` returns: the objects a run evaluates."""

    model: Any  # HookedTransformer, eval mode, on the run's device
    saes: dict[str, Any]  # name -> loading.saes.LoadedSAE, in forward order
    tokens: Any  # (n_seqs, ctx_len) token ids, BOS first


def load(config: RunConfig | None = None, *, saes: Sequence[str] | None = None) -> Loaded:
    """Load the model, the SAEs (all of the config's, or the names in ``saes``) and the evaluation tokens
    exactly as ``run`` does (same device, dtype, data sample, seed)."""
    config = (config or RunConfig()).validate()
    model = _model(config)
    loaded = _saes(config, model, saes)
    return Loaded(model=model, saes=loaded, tokens=_tokens(config, model))


def _model(config: RunConfig) -> Any:
    from sae_checks.loading.models import load_model

    return load_model(config.model, device=resolve_device(config.device), dtype=config.dtype)


def _saes(config: RunConfig, model: Any, names: Sequence[str] | None) -> dict[str, Any]:
    from sae_checks.loading.saes import load_saes

    return dict(load_saes(config.saes, model, sae_id=config.sae_id, layers=config.layers,
                          device=resolve_device(config.device), ids=config.sae_ids, names=names))


def _tokens(config: RunConfig, model: Any) -> Any:
    from sae_checks.loading.data import load_sequences

    n_ctx = int(model.cfg.n_ctx)
    ctx_len = config.ctx_len or n_ctx
    return load_sequences(
        config.data_source, model.tokenizer, n_seqs=config.n_seqs_for(ctx_len), ctx_len=ctx_len, seed=config.seed,
        split=config.data_split, config_name=config.data_config, text_field=config.text_field, n_ctx=n_ctx,
        d_vocab=int(model.cfg.d_vocab),
    )


def release_cards(model: Any, saes: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """results["cards"]: per SAE, its sae_lens registry card (release SAEs; docs/definitions.md#release-cards)
    and the problems between what its config declares and what loaded (``loading.cards.fact_problems``,
    every SAE), each problem also logged as a warning, before any compute."""
    from sae_checks.loading import cards as _cards

    out: dict[str, dict[str, Any]] = {}
    for name, s in saes.items():
        card = _cards.card_of(s)
        problems = _cards.fact_problems(name, s.sae, hook_name=s.hook_name, model_cfg=model.cfg, hooks=model.hook_dict,
                                 card=card, model_name=model.cfg.model_name)
        for line in problems:
            log.warning("sae-checks: %s", line)
        out[name] = {**(card.as_dict() if card else {"source": None}), "facts": problems}
    return out


def run(config: RunConfig | None = None, *, layers: Sequence[int] | None = None,
        saes: Sequence[str] | None = None, progress: Progress | None = None) -> Evaluation:
    """Load the model, the SAEs and the data named by ``config``, evaluate, then run its cloze tasks.

    ``saes`` restricts the run to these SAE names (an xdist worker's or a shard's part); ``layers`` to
    the SAEs at these layers. With ``config.shard`` and no ``saes``, the shard's SAEs (``plan``).
    ``progress`` hears about every engine batch and cloze batch (``sae_checks.progress``; None: a tqdm
    bar when ``config.progress`` asks for one).

    SAE weights over the memory budget (``config.sae_memory``; ``engine.parts``) are loaded one part of
    whole hook groups at a time, each part evaluated and its tasks run before the next is loaded, the
    results merged (``sae_checks.merge``) and the propagation matrix filled across parts
    (``engine.propagation.PartPropagation``). Within the budget, everything is loaded at once.
    """
    from sae_checks.engine.parts import Entry, budget_bytes, sae_bytes, split
    from sae_checks.loading.data import tokenizer_info

    config = (config or RunConfig()).validate()
    if layers is not None:
        config = config.replace(layers=tuple(layers))
    if saes is None and config.shard is not None:
        saes = list(plan(config).saes)
    model = _model(config)
    device = resolve_device(config.device)
    meta = sae_metadata(config)
    own = list(meta) if saes is None else [n for n in meta if n in set(saes)]
    later: list[str] = []
    if config.propagation and saes is not None:  # part of a suite: fill these SAEs' propagation rows
        from sae_checks.names import propagation_pairs

        pairs = propagation_pairs({n: m["hook_name"] for n, m in meta.items()})
        later = [n for n in meta if n not in own and any(u in own and d == n for u, d in pairs)]
    needed = [n for n in meta if n in own or n in later]
    sizes = {n: sae_bytes(meta[n].get("d_in"), meta[n].get("d_sae")) for n in needed}
    budget = budget_bytes(config.sae_memory, device)
    parts = split([Entry(n, meta[n]["hook_name"], sizes[n]) for n in needed], budget)
    if len(parts) > 1 and (saes is None or len(own) == len(set(saes))):
        every = {n: (int(meta[n]["layer"]), str(meta[n]["hook_name"])) for n in needed}
        widths = [meta[n].get("d_sae") or 0 for n in needed]
        return _run_in_parts(model, config, own, every, widths, parts, sizes, budget, progress)
    loaded = _saes(config, model, saes)
    tokens = _tokens(config, model)
    downstream = _saes(config, model, later) if later else None
    data_info = {"config_name": config.data_config or "", **tokenizer_info(model.tokenizer)}
    return _evaluate(model, loaded, tokens, config, data_info, downstream=downstream, progress=progress)


def _evaluate(model: Any, loaded: Mapping[str, Any], tokens: Any, config: RunConfig, data_info: dict[str, Any],
              *, downstream: Mapping[str, Any] | None = None, progress: Progress | None = None) -> Evaluation:
    """One loaded set of SAEs: release cards (before any compute), the engine, then the cloze tasks."""
    cards = release_cards(model, loaded)  # declared facts vs what loaded: said before any compute
    evaluation = evaluate(model, loaded, tokens, config, data_info=data_info, downstream=downstream,
                          progress=progress)
    evaluation.results["cards"] = cards
    if config.tasks:
        from sae_checks.experiments.tasks import run_tasks

        cloze, features = run_tasks(model, loaded, config, progress=progress)
        evaluation.results["cloze"] = cloze
        for section in cloze.values():  # cloze prompts with non-finite values, beside the engine's
            evaluation.results["nonfinite"] = [*evaluation.results.get("nonfinite", []),
                                               *section.get("nonfinite", [])]
        if features:
            evaluation.results["features"] = features
    return evaluation


def _run_in_parts(model: Any, config: RunConfig, own: list[str], every: dict[str, tuple[int, str]],
                  widths: list[int], parts: list[list[str]], sizes: dict[str, int], budget: int,
                  progress: Progress | None) -> Evaluation:
    """``run`` one part of the SAEs at a time (module ``engine.parts``): each part's SAEs loaded, evaluated
    without the propagation matrix, their tasks run, then dropped before the next part loads; the matrix
    (``every``: name -> (layer, hook) of the SAEs it covers) is filled across the parts
    (``PartPropagation``). The provenance's ``sae_memory`` lists the parts."""
    import gc
    from types import SimpleNamespace

    import torch

    from sae_checks.engine.chunks import chunk_sizes
    from sae_checks.engine.kernel import specials_of
    from sae_checks.engine.memory import model_batch_size
    from sae_checks.engine.parts import GIB, describe
    from sae_checks.engine.propagation import PartPropagation
    from sae_checks.loading.data import tokenizer_info
    from sae_checks.merge import merge_provenance, merge_results

    device = resolve_device(config.device)
    log.info("sae-checks: %d SAEs with %.2f GiB of weights, over the SAE memory budget of %.2f GiB "
             "(--sae-memory): loading them in %d parts of whole hook groups", len(sizes), sum(sizes.values()) / GIB,
             budget / GIB, len(parts))
    tokens = _tokens(config, model)
    data_info = {"config_name": config.data_config or "", **tokenizer_info(model.tokenizer)}
    prop = None
    if config.propagation:
        window = min(config.propagation_window[1], int(tokens.shape[1]))
        chunk = chunk_sizes(model, [SimpleNamespace(d_sae=w) for w in widths], device, config.chunk_tokens).sae
        prop = PartPropagation(every, own, tokens, config, device=device, specials=specials_of(model), chunk=chunk,
                               batch_size=config.batch_size or model_batch_size(model, device, window))
    results: dict[str, Any] = {}
    provenance: dict[str, Any] = {}
    for names in parts:
        loaded = _saes(config, model, names)
        mine = {n: s for n, s in loaded.items() if n in own}
        if mine:
            part = _evaluate(model, mine, tokens, config.replace(propagation=False), data_info, progress=progress)
            results = merge_results(results, part.results)
            provenance = merge_provenance(provenance, part.provenance)
            del part
        if prop is not None:
            prop.visit(model, loaded)
        del loaded, mine
        gc.collect()
        if device.startswith("cuda"):
            torch.cuda.empty_cache()
    if prop is not None:
        results["propagation"] = prop.to_json()
    provenance["sae_memory"] = describe(parts, sizes, budget)
    return Evaluation(provenance=provenance, results=results, config=config)
