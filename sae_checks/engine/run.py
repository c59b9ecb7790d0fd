"""The batch loop: one clean pass per batch, then one splice pass per SAE, starting at its hook's layer.

The unit is an SAE (keyed by its name; several may share a hook). Per batch of token sequences (B, T):

1. one clean forward, capturing only the SAEs' hooks (and, for hooks other than the residual stream,
   the ``hook_resid_pre`` of their block), giving clean log-probs and CE; SAEs at the same hook share
   this pass and the cached activation;
2. per SAE: ``f = sae.encode(x)``, ``x_hat = sae.decode(f)``, per-token reconstruction terms; then one
   splice pass from the SAE's block (``forward_from``: ``start_at_layer`` for ``hook_resid_pre``, L + 1
   for ``hook_resid_post``, a scoped splice hook from the cached ``hook_resid_pre`` otherwise) with x
   replaced by x_hat except at BOS/special tokens (unless ``splice_bos``), giving ΔCE and KL per position
   and, in the same pass, the activations of later SAEs' hooks for error propagation;
3. optionally one zero-ablation pass per SAE for ``ce_loss_score`` (all positions zeroed, as SAELens).

One SAE per layer costs about 1 + (n+1)/2 full passes (plus n/2 more with zero ablation) instead of
SAELens' 3-4 passes per SAE; each further SAE at a hook costs one splice pass, no clean pass. Sums go
into per-batch accumulators that are merged into the totals only once the batch has fully succeeded, so a CUDA out-of-memory error can halve the batch and retry cleanly (``engine.retry.halving``). Every pass
runs through ``engine.kernel`` (the context, the clean and splice passes, the unspliced positions, the leak
checks), shared with the cloze tasks, the causal sweep and the zoo builder.
"""

from __future__ import annotations

import datetime as dt
import logging
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from sae_checks import progress as _progress
from sae_checks.aggregate import LayerAccumulator, bucket_name
from sae_checks.config import RunConfig
from sae_checks.engine.chunks import Chunks, chunk_sizes, losses, sae_terms
from sae_checks.engine.hooks import keep_positions, start_hooks
from sae_checks.engine.kernel import clean_pass, pass_context, specials_of, splice_pass, unspliced
from sae_checks.engine.memory import model_batch_size
from sae_checks.engine.propagation import Propagation
from sae_checks.engine.retry import halving
from sae_checks.errors import ConfigError
from sae_checks.metrics import registry
from sae_checks.metrics.latents import firing_counts, latent_health
from sae_checks.names import propagation_pairs, sae_sort_key
from sae_checks.progress import Progress

log = logging.getLogger("sae_checks")


@dataclass
class Evaluation:
    """What a run produced: provenance (what ran, on what) and the JSON-ready ``results`` section."""

    provenance: dict[str, Any]
    results: dict[str, Any]
    config: RunConfig = field(default_factory=RunConfig)


def resolve_device(device: str | None) -> str:
    """``None`` -> "cuda" when available, else "cpu"; a CUDA device without CUDA is an error."""
    if device is None:
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError("device", device, "CUDA is not available on this machine", "use --device cpu")
    return device


def default_buckets(context_size: int | None, n_ctx: int, first: int = 1) -> list[tuple[int, int]]:
    """Inside and beyond the SAE's training context: [1, ctx) and [ctx, T); one bucket if ctx >= T."""
    if context_size is None or context_size >= n_ctx or context_size <= first:
        return [(first, n_ctx)]
    return [(first, context_size), (context_size, n_ctx)]


def layer_buckets(config: RunConfig, context_size: int | None, n_ctx: int) -> list[tuple[int, int]]:
    """The buckets an SAE is aggregated over: the configured ones (the last clipped to T; one that starts at
    or past T is an error naming it), else the default (inside / beyond the SAE's training context)."""
    if config.buckets:
        outside = [f"{a}-{b}" for a, b in config.buckets if a >= n_ctx]
        if outside:  # a silently dropped bucket could leave a policy with nothing to check
            raise ConfigError("buckets", outside, f"start at or past the evaluated context of {n_ctx} tokens",
                              "drop them, or evaluate longer sequences (--ctx-len)")
        return [(a, min(b, n_ctx)) for a, b in config.buckets]
    return default_buckets(context_size, n_ctx)


def evaluate(
    model: Any,
    saes: Mapping[Any, Any],
    tokens: Tensor,
    config: RunConfig | None = None,
    *,
    data_info: Mapping[str, Any] | None = None,
    downstream: Mapping[Any, Any] | None = None,
    progress: Progress | None = None,
) -> Evaluation:
    """Evaluate every SAE in ``saes`` (name -> LoadedSAE, in forward order) on ``tokens`` (N, T), BOS first.

    Results are keyed by ``str(name)``. Returns per SAE x position arrays, per SAE x bucket means with
    bootstrap CIs over sequences,
    the context-generalization ratios (last bucket over first), the error-propagation matrix and the
    non-finite values found. Definitions: docs/definitions.md, ``sae_checks.metrics.registry``
    and ``sae_checks.aggregate``.

    ``downstream``: further SAEs (name -> LoadedSAE) used only as downstream encoders for the
    propagation matrix (no splice pass of their own): a shard fills its SAEs' rows of the whole suite's
    matrix, so merged shards equal one unsharded run.

    ``progress``: told ``start(n_seqs, ...)`` and ``update(batch)`` per batch (``sae_checks.progress``);
    None = a tqdm bar when ``config.progress`` asks for one (default: on an interactive terminal).
    """
    config = (config or RunConfig()).validate()
    device = resolve_device(config.device)
    if config.dtype == "bfloat16" and not device.startswith("cuda"):
        raise ConfigError("dtype", config.dtype, "bfloat16 autocast is supported on CUDA only", "use float32")
    if tokens.ndim != 2 or tokens.shape[1] < 2:
        raise ConfigError("tokens", tuple(tokens.shape), "must be (n_seqs, ctx_len) with ctx_len >= 2")
    saes = {str(k): v for k, v in saes.items()}
    extra = {str(k): v for k, v in (downstream or {}).items() if str(k) not in saes}
    names = list(saes)
    if not names:
        raise ConfigError("saes", "{}", "no SAE to evaluate")
    n_seqs, n_ctx = tokens.shape
    specials = specials_of(model)
    buckets = {n: layer_buckets(config, saes[n].context_size, n_ctx) for n in names}
    layout = _Layout.of(model, saes, extra, config)
    state = _new_state(model, saes, layout, buckets, config, n_ctx)
    batch_size, batch_source = _batch_size(model, saes, extra, device, config, n_ctx)
    chunks = chunk_sizes(model, [*saes.values(), *extra.values()], device, config.chunk_tokens)
    if progress is None:
        progress = (_progress.default(config.progress, unit="seq") if n_seqs > batch_size
                    else _progress.NoProgress())
    progress.start(n_seqs, f"engine ({len(names)} SAE{'s' if len(names) != 1 else ''}, {n_seqs} seq)")
    bar = progress
    with pass_context(model, dtype=config.dtype, fast=config.fast_attention) as fused:
        start = 0
        while start < n_seqs:
            def job(size: int, start: int = start) -> _State:
                return _run_batch(model, saes, layout, tokens[start:start + size].to(device), start,
                                  specials.to(device), config, buckets, n_ctx, chunks)

            # a later batch runs at the halved size too: one at the old size would only fail again
            done = halving(job, min(batch_size, n_seqs - start), "the engine")
            if done.halved:
                batch_size = done.size
            state.merge(done.value)
            bar.update(done.size)
            start += done.size
    bar.close()
    for name in names:  # non-finite weights (loading.saes): every check of the SAE fails (gate.checks.judge)
        if getattr(saes[name], "nonfinite_params", ()):
            state.nonfinite.append({"sae": name, "layer": saes[name].layer, "where": "weights", "sequence": None,
                                    "position": None})
    results = _results(state, names, buckets, saes, config)
    prov = provenance(model, saes, device, config, data_info, n_seqs=n_seqs, n_ctx=n_ctx,
                      batch_size=min(batch_size, n_seqs))
    prov["batch_size_source"] = batch_source
    prov["chunk_tokens"] = {"logits": chunks.logits, "sae": chunks.sae}
    prov["attention"] = fused.describe(model.cfg.n_layers)
    return Evaluation(provenance=prov, results=results, config=config)


def _batch_size(model: Any, saes: Mapping[str, Any], extra: Mapping[str, Any], device: str, config: RunConfig,
                n_ctx: int) -> tuple[int, str]:
    """(sequences per pass, "config" | "auto"): ``config.batch_size``, or when None the memory budget's
    (``engine.memory.model_batch_size``: free memory over the estimated bytes per sequence, in [1, 64])."""
    if config.batch_size is not None:
        return config.batch_size, "config"
    passes = len(saes) * (2 if config.zero_ablation else 1)
    return model_batch_size(model, device, n_ctx, passes), "auto"


@dataclass
class _State:
    accs: dict[str, LayerAccumulator]
    prop: Propagation | None
    nonfinite: list[dict[str, Any]] = field(default_factory=list)
    fires: dict[str, Tensor] = field(default_factory=dict)  # SAE -> (d_sae,) int64: valid tokens each latent fired on
    fire_tokens: dict[str, int] = field(default_factory=dict)  # SAE -> valid tokens those counts are over

    def merge(self, other: _State) -> None:
        for name, acc in other.accs.items():
            self.accs[name].merge(acc)
        for name, counts in other.fires.items():
            self.fires[name] = self.fires[name] + counts if name in self.fires else counts
            self.fire_tokens[name] = self.fire_tokens.get(name, 0) + other.fire_tokens[name]
        if self.prop is not None and other.prop is not None:
            self.prop.merge(other.prop)
        seen = {(e["sae"], e["where"]) for e in self.nonfinite}
        self.nonfinite += [e for e in other.nonfinite if (e["sae"], e["where"]) not in seen]


@dataclass(frozen=True)
class _Layout:
    """What every batch needs to know about the SAEs, derived once per run: the own SAEs and the
    downstream-only ones together in forward order, their hooks, the propagation pairs and the clean
    activations a batch caches."""

    every: dict[str, Any]  # name -> LoadedSAE: own and downstream-only SAEs, in forward order
    hooks: dict[str, str]  # name -> hook, for every SAE
    index: dict[str, int]  # name -> row / column of the propagation matrix
    pairs: list[tuple[str, str]]  # (upstream, downstream) propagation pairs; upstream is an own SAE
    downstream_of: dict[str, list[str]]  # own SAE -> the SAEs its splice pass feeds
    downstreams: list[str]  # every SAE that is downstream of some pair: its clean window sums are needed
    cached: list[str]  # hooks the clean pass records: own SAEs', their downstreams', splice start points

    @classmethod
    def of(cls, model: Any, saes: Mapping[str, Any], extra: Mapping[str, Any], config: RunConfig) -> _Layout:
        both = {**saes, **extra}
        every = dict(sorted(both.items(), key=lambda kv: sae_sort_key(kv[1].layer, kv[1].hook_name, kv[0])))
        hooks = {n: s.hook_name for n, s in every.items()}
        pairs = [(u, d) for u, d in propagation_pairs(hooks) if u in saes] if config.propagation else []
        downstream_of: dict[str, list[str]] = {n: [] for n in saes}
        for up, down in pairs:
            downstream_of[up].append(down)
        downstreams = sorted({d for _, d in pairs})
        starts = start_hooks([hooks[n] for n in saes], model.cfg.n_layers)
        cached = sorted({hooks[n] for n in saes} | {hooks[d] for d in downstreams} | set(starts))
        return cls(every=every, hooks=hooks, index={n: i for i, n in enumerate(every)}, pairs=pairs,
                   downstream_of=downstream_of, downstreams=downstreams, cached=cached)


def _new_state(model: Any, saes: Mapping[str, Any], layout: _Layout,
               buckets: Mapping[str, list[tuple[int, int]]], config: RunConfig, n_ctx: int) -> _State:
    every = layout.every
    metrics = tuple(m for m in registry.metrics("bucket")  # --no-latent-health: without its per-token metrics too
                    if config.latent_health or m.name not in registry.LATENT_HEALTH_METRICS)
    return _State(
        accs={n: LayerAccumulator(n_ctx, saes[n].d_in or model.cfg.d_model, buckets[n], metrics=metrics) for n in saes},
        prop=Propagation(list(every), [s.layer for s in every.values()], [s.hook_name for s in every.values()])
        if layout.pairs else None,
    )


def _first_nonfinite(t: Tensor, offset: int) -> tuple[int, int] | None:
    """(global sequence index, position) of the first NaN/inf in t (B, T), or None."""
    bad = ~torch.isfinite(t)
    if not bool(bad.any()):
        return None
    b, p = (int(v) for v in bad.nonzero()[0].tolist())
    return offset + b, p


def _run_batch(
    model: Any, saes: Mapping[str, Any], layout: _Layout, toks: Tensor, offset: int, specials: Tensor,
    config: RunConfig, buckets: Mapping[str, list[tuple[int, int]]], n_ctx: int, chunks: Chunks,
) -> _State:
    """All measurements for one batch, into fresh accumulators (merged by the caller on success)."""
    state = _new_state(model, saes, layout, buckets, config, n_ctx)
    names = list(saes)
    every, hooks, index = layout.every, layout.hooks, layout.index
    special = torch.isin(toks, specials)  # (B, T)
    tok_mask = ~special if config.exclude_special else torch.ones_like(special)
    pred_mask = tok_mask.clone()
    pred_mask[:, -1] = False  # no next token to predict at T-1
    keep = unspliced(toks, specials, config.splice_bos)  # positions whose residual stays original
    a, b = config.propagation_window
    win = slice(a, min(b, n_ctx))

    def flag(name: str | None, where: str, per_token: Tensor) -> None:
        """Report the first non-finite value of ``per_token`` (B, T): a per-token summary that is non-finite
        wherever the tensor it sums over (logits, features, activations) is."""
        hit = _first_nonfinite(per_token, offset)
        if hit is not None:
            layer = saes[name].layer if name is not None else None
            state.nonfinite.append({"sae": name, "layer": layer, "where": where, "sequence": hit[0],
                                    "position": hit[1]})

    flat_mask = tok_mask.reshape(-1)  # (B * T,): the chunks' token order in sae_terms
    resid_clean, acts = clean_pass(model, toks, layout.cached)  # (B, T, d_model): logits come in chunks
    finals: dict[str, Tensor] = {}  # pass key -> final residual (B, T, d_model): 65x smaller than logits at gpt2
    terms_of: dict[str, dict[str, Tensor]] = {}
    for name in names:
        loaded = saes[name]
        sae, hook = loaded.sae, hooks[name]
        x = acts[hook]  # (B, T, d); per-head hooks flattened to (B, T, H * d_head)
        acc = state.accs[name]
        fires = torch.zeros(loaded.d_sae, dtype=torch.int64, device=x.device)

        def count(span: slice, f: Tensor, fires: Tensor = fires, valid: Tensor = flat_mask) -> None:
            fires.add_(firing_counts(f, valid[span]))  # latent health, from the features this pass makes anyway

        x_hat, rec = sae_terms(sae, x, chunks.sae, count if config.latent_health else None, sums=acc.layout.tok,
                               mask=tok_mask)
        if config.latent_health:
            state.fires[name] = fires.cpu()
            state.fire_tokens[name] = int(tok_mask.sum())
        acc.add_per_dim(rec, tok_mask)  # now: no (B, T, d) sum per SAE waits for the losses
        flag(name, "activations", rec["x2"])
        flag(name, "features", rec["feat_l1"])
        flag(name, "reconstruction", rec["sse"])
        downstream = sorted({hooks[d] for d in layout.downstream_of[name]})
        finals[name], captured = splice_pass(model, hook, acts, keep_positions(x, x_hat, keep), toks,
                                             capture_hooks=downstream)
        del x_hat
        terms_of[name] = {k: v for k, v in rec.items() if k not in acc.layout.vectors}
        if config.zero_ablation:
            finals[f"{name}\0zero"], _ = splice_pass(model, hook, acts, torch.zeros_like(x), toks)
        if state.prop is not None:
            m = tok_mask[:, win]
            for down in layout.downstream_of[name]:
                state.prop.up[index[name], index[down]] += state.prop.sums(captured[hooks[down]][:, win],
                                                                           every[down].sae, m, chunks.sae)
        del captured
    loss = losses(model, toks, resid_clean, finals, kl=set(names), chunk=chunks.logits)
    del finals
    flag(None, "logits_clean", loss.clean_bad)
    for name in names:
        # KL is non-finite exactly where a spliced logit is, given finite clean logits (flagged above)
        flag(name, "logits_spliced", loss.kl[name])
        acc = state.accs[name]
        per_pred = registry.LossContext(ce_clean=loss.ce_clean, ce_spliced=loss.ce[name], kl=loss.kl[name],
                                        ce_zero=loss.ce.get(f"{name}\0zero"), mask=pred_mask)
        acc.add({**terms_of[name], **registry.evaluate(acc.layout.pred, per_pred)}, tok_mask, pred_mask)
    if state.prop is not None:  # clean sums of every downstream SAE, own or downstream-only, one formula:
        m = tok_mask[:, win]  # a shard's cells equal the unsharded run's
        for down in layout.downstreams:
            state.prop.clean[index[down]] += state.prop.sums(acts[hooks[down]][:, win], every[down].sae, m,
                                                             chunks.sae)
    return state


def sae_table(saes: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """results["saes"]: name -> what the SAE is (layer, hook, widths, architecture, context, source)."""
    return {name: {"layer": s.layer, "hook": s.hook_name, "d_in": s.d_in, "d_sae": s.d_sae,
                   "architecture": s.architecture or "", "context_size": s.context_size,
                   "release": s.release or "", "id": s.sae_id or ""}
            for name, s in saes.items()}


def sweeps(saes: Mapping[str, Any]) -> dict[str, list[str]]:
    """results["sweeps"]: hooks holding two or more SAEs -> their names (a width/sparsity sweep)."""
    by_hook: dict[str, list[str]] = {}
    for name, s in saes.items():
        by_hook.setdefault(s.hook_name, []).append(name)
    return {h: sorted(ns) for h, ns in sorted(by_hook.items()) if len(ns) > 1}


def _results(
    state: _State, names: list[str], buckets: Mapping[str, list[tuple[int, int]]],
    saes: Mapping[str, Any], config: RunConfig,
) -> dict[str, Any]:
    per_position, per_bucket, ratios = {}, {}, {}
    for name in names:
        pair = (0, len(buckets[name]) - 1) if len(buckets[name]) > 1 else None
        summary = state.accs[name].finalize(
            n_bootstrap=config.n_bootstrap, ci_level=config.ci_level, seed=config.seed + saes[name].layer,
            ratio_pair=pair,
        )
        per_position[name] = summary.per_position_json()
        per_bucket[name] = summary.per_bucket_json()
        ratio = summary.context_ratio_json()
        if ratio is not None:
            ratios[name] = ratio
    results: dict[str, Any] = {
        "saes": sae_table(saes),
        "sweeps": sweeps(saes),
        "per_position": per_position,
        "per_bucket": per_bucket,
        "context_generalization": ratios,
        "buckets": {n: [bucket_name(b) for b in buckets[n]] for n in names},
        "context_size": {n: saes[n].context_size for n in names},
        "nonfinite": sorted(state.nonfinite, key=lambda e: (e["layer"] if e["layer"] is not None else -1,
                                                            e["sae"] or "", e["where"])),
    }
    if state.prop is not None:
        results["propagation"] = state.prop.to_json(config.propagation_window)
    if config.latent_health:
        results["latents"] = {n: latent_health(state.fires[n], state.fire_tokens[n], saes[n].sae.W_dec.detach())
                              for n in names if n in state.fires}
    return results


def _git_commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5,
                             cwd=Path(__file__).parent)
        return out.stdout.strip() if out.returncode == 0 else ""
    except (OSError, subprocess.SubprocessError):
        return ""


def provenance(
    model: Any, saes: Mapping[Any, Any], device: str, config: RunConfig,
    data_info: Mapping[str, Any] | None, *, n_seqs: int, n_ctx: int, batch_size: int,
) -> dict[str, Any]:
    """What ran, on what: library versions, device, dtype, git commit, model, SAE hashes, data.
    ``batch_size``: the sequences per pass actually used (at most ``n_seqs``; after any OOM halving)."""
    import importlib.metadata as md

    from sae_checks.version import __version__

    def version(name: str) -> str:
        try:
            return md.version(name)
        except md.PackageNotFoundError:
            return ""

    data = {"dataset": config.data_source, "split": config.data_split, "revision": "", "seed": config.seed}
    data.update(data_info or {})
    data.update({"n_sequences": n_seqs, "ctx_len": n_ctx})
    return {
        "sae_checks": __version__,
        "torch": torch.__version__,
        "transformer_lens": version("transformer-lens"),
        "sae_lens": version("sae-lens"),
        "device": device if not device.startswith("cuda") else f"{device} ({torch.cuda.get_device_name(device)})",
        "dtype": config.dtype,
        "git_commit": _git_commit(),
        "created": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "model": getattr(model.cfg, "model_name", "") or config.model,
        "model_shape": {"n_layers": int(model.cfg.n_layers), "d_model": int(model.cfg.d_model),
                        "d_vocab": int(model.cfg.d_vocab), "n_ctx": int(model.cfg.n_ctx),
                        "n_params": sum(int(p.numel()) for p in model.parameters()),
                        "normalization": str(model.cfg.normalization_type)},
        "batch_size_used": batch_size,
        "saes": [
            {
                "name": str(name), "layer": s.layer, "hook": s.hook_name, "release": s.release or "",
                "id": s.sae_id or "", "path": str(s.path or ""), "sha256": s.sha256 or "",
                "context_size": s.context_size, "architecture": s.architecture or "", "d_in": s.d_in,
                "d_sae": s.d_sae, "nonfinite_params": [dict(b) for b in getattr(s, "nonfinite_params", ())],
            }
            for name, s in saes.items()
        ],
        "data": data,
    }


