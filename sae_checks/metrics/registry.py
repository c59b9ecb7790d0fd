"""The one place that defines each reported metric: name, family, which direction is better, label,
unit and how it aggregates over tokens. Pure data, no torch.

Read by the diff, the figures and the HTML page (and, once merged, by the threshold policy: the
``directions(family)`` of the gated families are exactly ``gate.thresholds`` ``BUCKET_METRICS``,
``CONTEXT_RATIO_METRICS``, ``CLOZE_METRICS`` and ``PROPAGATION_METRICS``; the gate's directions are the
truth, e.g. ``l0``: lower is better).

Families:

- ``bucket``: per-position / per-bucket metrics of one SAE (``results.per_bucket[sae][bucket][metric]``);
- ``context_ratio``: mean beyond the training context / mean inside it (``results.context_generalization``);
- ``cloze``: per-SAE cloze numbers (``results.cloze[task].per_sae[sae]``);
- ``propagation``: fractional change of a downstream SAE's metric with an upstream SAE spliced in.

``gated=False`` marks numbers the report carries and the diff compares but no policy can name (cloze
``logp``, prompt-class counts): they never change what the gate accepts.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Family = Literal["bucket", "context_ratio", "cloze", "propagation"]
Direction = Literal["lower", "higher"]
Aggregation = Literal["mean", "ratio_of_sums"]
FAMILIES: tuple[Family, ...] = ("bucket", "context_ratio", "cloze", "propagation")


@dataclass(frozen=True, kw_only=True)
class Metric:
    """One metric of one family."""

    name: str  # key inside the results ("fvu", "acc_word", ...)
    family: Family
    direction: Direction | None  # which way is better; None: no universal good direction
    label: str  # short human name for axes and tables ("ΔCE = CE spliced − CE clean")
    unit: str  # unit of the value ("nats / token", "fraction"); "" when unitless
    aggregation: Aggregation  # "mean": Σx / n over tokens (or prompts); "ratio_of_sums": Σa / Σb, once at the end
    gated: bool = True  # a threshold policy may name it

    @property
    def axis_label(self) -> str:
        """``label  [unit]`` for a figure axis."""
        return f"{self.label}  [{self.unit}]" if self.unit else self.label


def _m(family: Family, name: str, direction: Direction | None, label: str, unit: str,
       aggregation: Aggregation = "mean", gated: bool = True) -> Metric:
    return Metric(name=name, family=family, direction=direction, label=label, unit=unit,
                  aggregation=aggregation, gated=gated)


METRICS: tuple[Metric, ...] = (
    # per bucket / per position (mse is a sum over d, DESIGN.md section 3: squared activation units)
    _m("bucket", "mse", "lower", "MSE  Σ_d (x − x̂)²", "activation units²"),
    _m("bucket", "fvu", "lower", "FVU", "fraction of variance", "ratio_of_sums"),
    _m("bucket", "explained_variance", "higher", "explained variance", "fraction", "ratio_of_sums"),
    _m("bucket", "l0", "lower", "L0", "active features / token"),
    _m("bucket", "feat_l1", "lower", "feature L1  Σ_k |f_k|", "activation units"),
    _m("bucket", "resid_norm", None, "residual norm ‖x‖₂", "activation units"),
    _m("bucket", "cos", "higher", "cos(x, x̂)", "unitless"),
    _m("bucket", "ce_clean", "lower", "CE clean", "nats / token"),
    _m("bucket", "ce_spliced", "lower", "CE spliced", "nats / token"),
    _m("bucket", "ce_zero", None, "CE zero-ablated", "nats / token"),
    _m("bucket", "delta_ce", "lower", "ΔCE = CE spliced − CE clean", "nats / token"),
    _m("bucket", "kl", "lower", "KL(p_clean ‖ p_spliced)", "nats / token"),
    _m("bucket", "ce_loss_score", "higher", "CE loss score", "fraction recovered", "ratio_of_sums"),
    # beyond / inside the training context: larger is a worse degradation, for every metric (l0 included)
    *(_m("context_ratio", name, "lower", f"{name} beyond / inside the training context", "ratio",
         "ratio_of_sums") for name in ("fvu", "l0", "delta_ce", "kl", "mse")),
    # cloze (per prompt, averaged over prompts)
    _m("cloze", "acc_first_token", "higher", "accuracy, first answer token", "fraction"),
    _m("cloze", "acc_word", "higher", "accuracy, whole answer word", "fraction"),
    _m("cloze", "acc_choice", "higher", "accuracy, multiple choice", "fraction"),
    _m("cloze", "delta_logp", "higher", "Δlog p(answer) = log p spliced − log p clean", "nats"),
    _m("cloze", "logp", "higher", "log p(answer)", "nats", gated=False),
    _m("cloze", "only_clean_right", "lower", "prompts only the clean model gets right", "prompts", gated=False),
    # propagation: with upstream / clean − 1, over the window
    _m("propagation", "mse", "lower", "downstream SAE MSE", "fractional change", "ratio_of_sums"),
    _m("propagation", "l0", "lower", "downstream SAE L0", "fractional change", "ratio_of_sums"),
    _m("propagation", "resid_norm", "lower", "downstream residual norm", "fractional change", "ratio_of_sums"),
)

_BY_KEY: dict[tuple[str, str], Metric] = {(m.family, m.name): m for m in METRICS}
assert len(_BY_KEY) == len(METRICS), "a (family, name) pair is defined twice"


def get(family: Family, name: str) -> Metric | None:
    """The metric ``name`` of ``family``; None when the registry does not define it."""
    return _BY_KEY.get((family, name))


def direction(name: str, family: Family = "bucket") -> Direction | None:
    """Which way is better for ``name``: its entry in ``family``, else its ``bucket`` entry (cloze runs
    also report ``mse``, ``l0``, ``delta_ce``), else None (unknown)."""
    metric = get(family, name) or get("bucket", name)
    return metric.direction if metric else None


def directions(family: Family) -> dict[str, Direction | None]:
    """``{name: direction}`` of the gated metrics of ``family``, in definition order (what
    ``gate.thresholds`` calls ``BUCKET_METRICS`` etc.)."""
    return {m.name: m.direction for m in METRICS if m.family == family and m.gated}


def axis_label(name: str, family: Family = "bucket") -> str:
    """Axis label with unit for ``name`` (looked up as in :func:`direction`; the bare name if unknown)."""
    metric = get(family, name) or get("bucket", name)
    return metric.axis_label if metric else name
