"""Running sums per layer x position and per sequence x bucket; means and bootstrap CIs at the end.

The engine hands every batch's per-token terms to a :class:`LayerAccumulator`, which only *adds*:
sums per position (memory independent of the number of tokens) and sums per sequence and position
bucket (small: sequences x buckets x sums, plus the per-dimension sums, Σx for fvu) for the bootstrap.
Which sums, and how each metric is computed from them, comes from the metric registry
(``sae_checks.metrics.registry``), read when an accumulator is made. Merging two
accumulators (shards, workers) is addition. Every mean is a ratio of sums, taken once in ``finalize``.
Bucket CIs resample *sequences* with replacement, since tokens in one sequence are not independent.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from sae_checks.metrics import registry
from sae_checks.metrics.bootstrap import percentile_ci, resample_counts
from sae_checks.metrics.registry import N_TOK, Metric, SumLayout


def bucket_name(bucket: tuple[int, int]) -> str:
    """``(1, 128)`` -> ``"1-128"`` (half-open range of positions)."""
    return f"{bucket[0]}-{bucket[1]}"


def metrics_from_sums(metrics: Sequence[Metric], layout: SumLayout, s: Tensor,
                      vectors: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Each metric's ``compute`` from the sums ``s`` (..., len(layout.columns)) and the per-dimension sums
    ``vectors`` (name -> (..., d)); shapes (...) out, NaN where undefined (no token: 0 / 0)."""
    sums: dict[str, Tensor] = {name: s[..., i] for i, name in enumerate(layout.columns)}
    sums.update(vectors)
    out = {}
    for m in metrics:
        assert m.compute is not None, m
        out[m.name] = m.compute(sums)
    return out


@dataclass
class LayerAccumulator:
    """Sums for one layer's SAE over sequences of length ``n_ctx`` and width ``d``, of the sums the
    ``metrics`` need (default: the ``bucket`` metrics registered when it is made).

    ``pos`` (T, C) and ``pos_v[name]`` (T, d) are the per-position sums (C = ``layout.columns``, per_dim
    sums in ``pos_v``); ``seq`` (N, K, C) and ``seq_v[name]`` (N, K, d) the per-sequence per-bucket sums,
    appended batch by batch.
    """

    n_ctx: int
    d: int
    buckets: Sequence[tuple[int, int]]
    metrics: tuple[Metric, ...] = field(default_factory=lambda: registry.metrics("bucket"))
    layout: SumLayout = field(init=False)
    pos: Tensor = field(init=False)
    pos_v: dict[str, Tensor] = field(init=False)
    seq: list[Tensor] = field(init=False, default_factory=list)
    seq_v: dict[str, list[Tensor]] = field(init=False)
    seen: set[str] = field(init=False, default_factory=set)  # sums measured (a None sum, e.g. ce_zero
    # without the zero-ablation pass, is not: the metrics that need it are not reported)

    def __post_init__(self) -> None:
        self.layout = SumLayout(self.metrics)
        self.pos = torch.zeros(self.n_ctx, len(self.layout.columns), dtype=torch.float64)
        self.pos_v = {v: torch.zeros(self.n_ctx, self.d, dtype=torch.float64) for v in self.layout.vectors}
        self.seq_v = {v: [] for v in self.layout.vectors}
        bm = torch.zeros(len(self.buckets), self.n_ctx, dtype=torch.float64)  # (K, T)
        for k, (a, b) in enumerate(self.buckets):
            bm[k, a:min(b, self.n_ctx)] = 1
        self._bucket_mask = bm

    def add(self, terms: Mapping[str, Tensor], tok_mask: Tensor, pred_mask: Tensor) -> None:
        """Add one batch: ``terms`` sum name -> (B, T) per-token values ((B, T, d) for a per_dim sum),
        masks (B, T) of the tokens (resp. predictions) that count. A sum missing from ``terms`` was not
        measured (adds 0, not ``seen``), or, for a per_dim sum, was added by :meth:`add_per_dim`.
        Masked-out entries contribute exactly 0, even when they are NaN/inf (the engine reports those
        separately)."""
        B, T = tok_mask.shape
        assert self.n_ctx == T, f"batch has {T} positions, accumulator {self.n_ctx}"
        lay = self.layout
        vals = torch.zeros(B, T, len(lay.columns), dtype=torch.float64, device=tok_mask.device)
        i = 0
        for s in lay.tok:
            if not s.per_dim:
                vals[..., i] = torch.where(tok_mask, terms[s.name].double(), 0.0)
                i += 1
        vals[..., i] = tok_mask.double()
        for s in lay.pred:
            i += 1
            if s.name in terms:
                vals[..., i] = torch.where(pred_mask, terms[s.name].double(), 0.0)
        vals[..., i + 1] = pred_mask.double()
        self.seen.update(name for name in lay.columns if name in terms)
        self.pos += vals.sum(0).cpu()
        self.seq.append(torch.einsum("btm,kt->bkm", vals, self._bucket_mask.to(vals.device)).cpu())
        self.add_per_dim(terms, tok_mask)

    def add_per_dim(self, terms: Mapping[str, Tensor], tok_mask: Tensor) -> None:
        """Add the batch's per_dim sums found in ``terms`` (name -> (B, T, d)); once per batch, before or
        within :meth:`add`. The engine adds them as soon as an SAE's terms exist, so no (B, T, d) tensor
        per SAE waits for the batch's losses."""
        bm = self._bucket_mask.to(tok_mask.device)
        for v in self.layout.vectors:
            if v in terms:
                vm = torch.where(tok_mask[..., None], terms[v].double(), 0.0)  # (B, T, d)
                self.pos_v[v] += vm.sum(0).cpu()
                self.seq_v[v].append(torch.einsum("btd,kt->bkd", vm, bm).cpu())
                self.seen.add(v)

    def merge(self, other: LayerAccumulator) -> None:
        """Add another shard's sums (same shape, buckets and metrics): merging is addition."""
        assert (other.n_ctx, other.d, list(other.buckets), other.layout.columns, other.layout.vectors) == (
            self.n_ctx, self.d, list(self.buckets), self.layout.columns, self.layout.vectors)
        self.pos += other.pos
        for v in self.layout.vectors:
            self.pos_v[v] += other.pos_v[v]
            self.seq_v[v].extend(other.seq_v[v])
        self.seq.extend(other.seq)
        self.seen |= other.seen

    @property
    def n_seqs(self) -> int:
        return sum(t.shape[0] for t in self.seq)

    def reported(self) -> tuple[Metric, ...]:
        """The metrics whose every sum was measured (ce_zero, ce_loss_score only with zero ablation)."""
        return tuple(m for m in self.metrics if all(s.name in self.seen for s in m.sums))

    def finalize(
        self, *, n_bootstrap: int, ci_level: float, seed: int, ratio_pair: tuple[int, int] | None
    ) -> LayerSummary:
        """Means per position and per bucket, bucket CIs, and the context-generalization ratios.

        ``ratio_pair`` = (inside bucket index, beyond bucket index), or None for no ratio.
        """
        lay, metrics = self.layout, self.reported()
        K = len(self.buckets)
        per_pos = metrics_from_sums(metrics, lay, self.pos, self.pos_v)  # each (T,)
        seq = torch.cat(self.seq) if self.seq else torch.zeros(0, K, len(lay.columns))
        seq_v = {v: torch.cat(p) if p else torch.zeros(0, K, self.d) for v, p in self.seq_v.items()}
        point = metrics_from_sums(metrics, lay, seq.sum(0), {v: t.sum(0) for v, t in seq_v.items()})  # each (K,)
        boot: dict[str, Tensor] | None = None
        if n_bootstrap > 0 and seq.shape[0] > 0:
            weights = resample_counts(seq.shape[0], n_bootstrap, seed)  # (R, N): how often each sequence is drawn
            boot = metrics_from_sums(
                metrics, lay, torch.einsum("rn,nkm->rkm", weights, seq),
                {v: torch.einsum("rn,nkd->rkd", weights, t) for v, t in seq_v.items()},
            )  # each (R, K)
        names = tuple(m.name for m in metrics)
        ratios = tuple(m.name for m in registry.metrics("context_ratio") if m.name in names)
        return LayerSummary(
            per_position=per_pos, per_bucket=point, bootstrap=boot, ci_level=ci_level,
            bucket_names=[bucket_name(b) for b in self.buckets], ratio_pair=ratio_pair,
            metrics=names, ratio_metrics=ratios, n_tokens=self.pos[:, lay.columns.index(N_TOK)].clone(),
        )


@dataclass
class LayerSummary:
    """Finalized means; ``to_json`` gives the report's per_position / per_bucket / ratio entries."""

    per_position: dict[str, Tensor]  # metric -> (T,)
    per_bucket: dict[str, Tensor]  # metric -> (K,)
    bootstrap: dict[str, Tensor] | None  # metric -> (R, K)
    ci_level: float
    bucket_names: list[str]
    ratio_pair: tuple[int, int] | None
    metrics: tuple[str, ...]  # the reported bucket metrics, in registry order
    ratio_metrics: tuple[str, ...]  # the context_ratio metrics (of reported bucket metrics)
    n_tokens: Tensor  # (T,)

    def _ci(self, samples: Tensor | None) -> list[float | None] | None:
        if samples is None:
            return None
        finite = samples[torch.isfinite(samples)]
        if finite.numel() == 0:
            return [None, None]
        return [clean_float(v) for v in percentile_ci(finite, self.ci_level).tolist()]

    def per_position_json(self) -> dict[str, list[float | None]]:
        T = self.n_tokens.shape[0]
        out: dict[str, list[float | None]] = {"position": list(range(T))}  # type: ignore[dict-item]
        for m in self.metrics:
            out[m] = [clean_float(v) for v in self.per_position[m].tolist()]
        out["n_tokens"] = [int(v) for v in self.n_tokens.tolist()]  # type: ignore[misc]
        return out

    def per_bucket_json(self) -> dict[str, dict[str, dict[str, Any]]]:
        out: dict[str, dict[str, dict[str, Any]]] = {}
        for k, name in enumerate(self.bucket_names):
            out[name] = {
                m: {
                    "mean": clean_float(self.per_bucket[m][k].item()),
                    "ci": self._ci(None if self.bootstrap is None else self.bootstrap[m][:, k]),
                }
                for m in self.metrics
            }
        return out

    def context_ratio_json(self) -> dict[str, dict[str, Any]] | None:
        if self.ratio_pair is None:
            return None
        i, j = self.ratio_pair
        out = {}
        for m in self.ratio_metrics:
            ratio = context_ratio(self.per_bucket[m][j], self.per_bucket[m][i]).item()
            samples = None if self.bootstrap is None else context_ratio(self.bootstrap[m][:, j], self.bootstrap[m][:, i])
            out[m] = {
                "inside": self.bucket_names[i], "beyond": self.bucket_names[j],
                "ratio": clean_float(ratio), "ci": self._ci(samples),
            }
        return out


def context_ratio(beyond: Tensor, inside: Tensor) -> Tensor:
    """beyond / inside, and 1 where both are exactly 0: a metric that is 0 inside and beyond the training
    context (a perfect reconstruction's fvu, ΔCE, KL) has not degraded (docs/definitions.md)."""
    both_zero = (beyond == 0) & (inside == 0)
    return torch.where(both_zero, torch.ones_like(beyond), beyond / inside)


def clean_float(v: float) -> float | None:
    """NaN/inf become None (JSON has neither); everything else a plain float."""
    return float(v) if math.isfinite(v) else None
