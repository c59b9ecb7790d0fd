"""Running sums per layer x position and per sequence x bucket; means and bootstrap CIs at the end.

The engine hands every batch's per-token terms to a :class:`LayerAccumulator`, which only *adds*:
sums per position (memory independent of the number of tokens) and sums per sequence and position
bucket (small: sequences x buckets x metrics, plus Σx per bucket for fvu) for the bootstrap. Merging two
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

from sae_checks.metrics.bootstrap import percentile_ci, resample_counts
from sae_checks.metrics.reconstruction import fvu_from_sums

# Summed per token. "tok" terms are counted where the token is valid (not BOS/special); "pred" terms
# (next-token losses, the prediction made at position t) where position t is valid and t < T-1.
TOK_TERMS = ("sse", "x2", "l0", "feat_l1", "resid_norm", "cos")
PRED_TERMS = ("ce_clean", "ce_spliced", "ce_zero", "kl")
TERMS = (*TOK_TERMS, "n_tok", *PRED_TERMS, "n_pred")
_IDX = {name: i for i, name in enumerate(TERMS)}

# Metrics derived from the sums, in report order.
METRICS = (
    "mse", "fvu", "explained_variance", "l0", "feat_l1", "resid_norm", "cos",
    "ce_clean", "ce_spliced", "delta_ce", "kl", "ce_zero", "ce_loss_score",
)
RATIO_METRICS = ("fvu", "mse", "l0", "delta_ce", "kl")  # context generalization: beyond / inside


def bucket_name(bucket: tuple[int, int]) -> str:
    """``(1, 128)`` -> ``"1-128"`` (half-open range of positions)."""
    return f"{bucket[0]}-{bucket[1]}"


def metrics_from_sums(s: Tensor, sum_x: Tensor) -> dict[str, Tensor]:
    """All metrics from sums ``s`` (..., len(TERMS)) and Σx (..., d); shapes (...) out, NaN where undefined.

    mse, l0, feat_l1, resid_norm, cos: Σ / n_tok. fvu: ratio of sums (see ``fvu_from_sums``).
    ce_*, kl: Σ / n_pred; delta_ce = (Σ ce_spliced − Σ ce_clean) / n_pred;
    ce_loss_score = (ce_zero − ce_spliced) / (ce_zero − ce_clean), ratio of means, as SAELens.
    """
    g = {name: s[..., i] for name, i in _IDX.items()}
    n, n_pred = g["n_tok"], g["n_pred"]
    fvu = fvu_from_sums(g["sse"], g["x2"], sum_x, n)
    out = {
        "mse": g["sse"] / n,
        "fvu": fvu,
        "explained_variance": 1 - fvu,
        "l0": g["l0"] / n,
        "feat_l1": g["feat_l1"] / n,
        "resid_norm": g["resid_norm"] / n,
        "cos": g["cos"] / n,
        "ce_clean": g["ce_clean"] / n_pred,
        "ce_spliced": g["ce_spliced"] / n_pred,
        "delta_ce": (g["ce_spliced"] - g["ce_clean"]) / n_pred,
        "kl": g["kl"] / n_pred,
        "ce_zero": g["ce_zero"] / n_pred,
        "ce_loss_score": (g["ce_zero"] - g["ce_spliced"]) / (g["ce_zero"] - g["ce_clean"]),
    }
    return out


@dataclass
class LayerAccumulator:
    """Sums for one layer's SAE over sequences of length ``n_ctx`` and width ``d``.

    ``pos`` (T, len(TERMS)) and ``pos_x`` (T, d) are the per-position sums; ``seq`` (N, K, len(TERMS))
    and ``seq_x`` (N, K, d) the per-sequence per-bucket sums, appended batch by batch.
    """

    n_ctx: int
    d: int
    buckets: Sequence[tuple[int, int]]
    pos: Tensor = field(init=False)
    pos_x: Tensor = field(init=False)
    seq: list[Tensor] = field(init=False, default_factory=list)
    seq_x: list[Tensor] = field(init=False, default_factory=list)
    has_zero: bool = False  # whether ce_zero was measured (ce_zero, ce_loss_score are reported only then)

    def __post_init__(self) -> None:
        self.pos = torch.zeros(self.n_ctx, len(TERMS), dtype=torch.float64)
        self.pos_x = torch.zeros(self.n_ctx, self.d, dtype=torch.float64)
        bm = torch.zeros(len(self.buckets), self.n_ctx, dtype=torch.float64)  # (K, T)
        for k, (a, b) in enumerate(self.buckets):
            bm[k, a:min(b, self.n_ctx)] = 1
        self._bucket_mask = bm

    def add(self, terms: Mapping[str, Tensor], x: Tensor, tok_mask: Tensor, pred_mask: Tensor) -> None:
        """Add one batch: ``terms`` name -> (B, T) per-token values, ``x`` (B, T, d) activations,
        masks (B, T) of the tokens (resp. predictions) that count. Masked-out entries contribute
        exactly 0, even when they are NaN/inf (the engine reports those separately)."""
        B, T = tok_mask.shape
        assert self.n_ctx == T, f"batch has {T} positions, accumulator {self.n_ctx}"
        vals = torch.zeros(B, T, len(TERMS), dtype=torch.float64, device=tok_mask.device)
        for name in TOK_TERMS:
            vals[..., _IDX[name]] = torch.where(tok_mask, terms[name].double(), 0.0)
        vals[..., _IDX["n_tok"]] = tok_mask.double()
        for name in PRED_TERMS:
            if name in terms:
                vals[..., _IDX[name]] = torch.where(pred_mask, terms[name].double(), 0.0)
        vals[..., _IDX["n_pred"]] = pred_mask.double()
        xm = torch.where(tok_mask[..., None], x.double(), 0.0)  # (B, T, d)
        bm = self._bucket_mask.to(vals.device)
        self.has_zero = self.has_zero or "ce_zero" in terms
        self.pos += vals.sum(0).cpu()
        self.pos_x += xm.sum(0).cpu()
        self.seq.append(torch.einsum("btm,kt->bkm", vals, bm).cpu())
        self.seq_x.append(torch.einsum("btd,kt->bkd", xm, bm).cpu())

    def merge(self, other: LayerAccumulator) -> None:
        """Add another shard's sums (same shape and buckets): merging is addition."""
        assert (other.n_ctx, other.d, list(other.buckets)) == (self.n_ctx, self.d, list(self.buckets))
        self.pos += other.pos
        self.pos_x += other.pos_x
        self.seq.extend(other.seq)
        self.seq_x.extend(other.seq_x)
        self.has_zero = self.has_zero or other.has_zero

    @property
    def n_seqs(self) -> int:
        return sum(t.shape[0] for t in self.seq)

    def finalize(
        self, *, n_bootstrap: int, ci_level: float, seed: int, ratio_pair: tuple[int, int] | None
    ) -> LayerSummary:
        """Means per position and per bucket, bucket CIs, and the context-generalization ratios.

        ``ratio_pair`` = (inside bucket index, beyond bucket index), or None for no ratio.
        """
        per_pos = metrics_from_sums(self.pos, self.pos_x)  # each (T,)
        seq = torch.cat(self.seq) if self.seq else torch.zeros(0, len(self.buckets), len(TERMS))
        seq_x = torch.cat(self.seq_x) if self.seq_x else torch.zeros(0, len(self.buckets), self.d)
        point = metrics_from_sums(seq.sum(0), seq_x.sum(0))  # each (K,)
        boot: dict[str, Tensor] | None = None
        if n_bootstrap > 0 and seq.shape[0] > 0:
            weights = resample_counts(seq.shape[0], n_bootstrap, seed)  # (R, N): how often each sequence is drawn
            boot = metrics_from_sums(
                torch.einsum("rn,nkm->rkm", weights, seq), torch.einsum("rn,nkd->rkd", weights, seq_x)
            )  # each (R, K)
        return LayerSummary(
            per_position=per_pos, per_bucket=point, bootstrap=boot, ci_level=ci_level,
            bucket_names=[bucket_name(b) for b in self.buckets], ratio_pair=ratio_pair,
            has_zero=self.has_zero, n_tokens=self.pos[:, _IDX["n_tok"]].clone(),
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
    has_zero: bool
    n_tokens: Tensor  # (T,)

    def _metrics(self) -> tuple[str, ...]:
        return METRICS if self.has_zero else tuple(m for m in METRICS if m not in ("ce_zero", "ce_loss_score"))

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
        for m in self._metrics():
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
                for m in self._metrics()
            }
        return out

    def context_ratio_json(self) -> dict[str, dict[str, Any]] | None:
        if self.ratio_pair is None:
            return None
        i, j = self.ratio_pair
        out = {}
        for m in RATIO_METRICS:
            ratio = (self.per_bucket[m][j] / self.per_bucket[m][i]).item()
            samples = None if self.bootstrap is None else self.bootstrap[m][:, j] / self.bootstrap[m][:, i]
            out[m] = {
                "inside": self.bucket_names[i], "beyond": self.bucket_names[j],
                "ratio": clean_float(ratio), "ci": self._ci(samples),
            }
        return out


def clean_float(v: float) -> float | None:
    """NaN/inf become None (JSON has neither); everything else a plain float."""
    return float(v) if math.isfinite(v) else None
