"""The one place that defines each reported metric: what it is (name, family, which direction is better,
label, unit) and, for a per-token metric, the per-token sums it needs and how its value is computed from
them. Everything that measures a per-token metric derives from these declarations: the engine's per-token
terms (``engine.chunks.sae_terms``), the accumulators (``sae_checks.aggregate``: per position, per sequence
x bucket, merging = addition), the per_position / per_bucket / context_generalization results and the
propagation matrix. The threshold policy, the diff and the figures read the names and directions.

Families:

- ``bucket``: per-position / per-bucket metrics of one SAE (``results.per_bucket[sae][bucket][metric]``):
  declared with ``sums`` and ``compute``;
- ``context_ratio``: the ``bucket`` metric of the same name, mean beyond the training context / mean
  inside it (``results.context_generalization``);
- ``cloze``: per-SAE cloze numbers (``results.cloze[task].per_sae[sae]``), computed by the cloze runner;
- ``propagation``: the ``bucket`` metric of the same name for a downstream SAE over the position window,
  with an upstream SAE spliced in / clean − 1 (``results.propagation``).

A per-token sum (:class:`Sum`) is a pure function of one batch's per-token context, summed over tokens:
``"tok"`` sums read :class:`SaeContext` (the activations x, the reconstruction x̂, the features f) and
count the valid tokens (not BOS/special); ``"pred"`` sums read :class:`LossContext` (the per-token CE of
the clean, spliced and zero-ablated passes and the KL) and count the valid predicting positions (t < T−1).
The counts ``n_tok`` and ``n_pred`` are always summed. A metric's ``compute`` turns the sums (over any set
of tokens: a position, a bucket, a bootstrap resample) into its value, once at the end: a ratio of sums,
never a mean of per-batch means. Definitions of the built-in metrics: docs/definitions.md.

A user's own metric is one declaration (e.g. in a ``conftest.py``, before the run), see :func:`register`.
The lists are read at call time (:func:`metrics`, :func:`directions`), never frozen at import. This module
imports no torch (the diff and the plugin read it): the built-in sums import ``metrics.reconstruction``
when first called.

``gated=False`` marks numbers the report carries and the diff compares but no policy can name (cloze
``logp``, prompt-class counts): they never change what the gate accepts.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from importlib import import_module
from typing import TYPE_CHECKING, Any, Literal, NamedTuple

from sae_checks.errors import ConfigError

if TYPE_CHECKING:
    from torch import Tensor

Family = str  # "bucket", "context_ratio", "cloze", "propagation", or a check family registered in the gate
Direction = Literal["lower", "higher"]
Aggregation = Literal["mean", "ratio_of_sums"]
Over = Literal["tok", "pred"]
FAMILIES: tuple[Family, ...] = ("bucket", "context_ratio", "cloze", "propagation")  # the built-in ones
N_TOK, N_PRED = "n_tok", "n_pred"  # the counts every accumulator sums, available to every ``compute``
RESERVED = (N_TOK, N_PRED, "position", "n_tokens")  # keys the accumulators and the report use themselves
NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")  # a JSON key, a TOML bare key and part of a check id


class SaeContext(NamedTuple):
    """What a ``"tok"`` sum reads: one chunk of tokens of one SAE, float32, leading dims (...) = tokens."""

    x: Tensor  # (..., d) activations at the SAE's hook
    x_hat: Tensor  # (..., d) the SAE's reconstruction decode(encode(x))
    f: Tensor  # (..., d_sae) feature activations encode(x)
    mask: Tensor  # (...) bool: the valid tokens (all True where the caller has no mask); sums are masked anyway


class LossContext(NamedTuple):
    """What a ``"pred"`` sum reads: one batch (B, T) of per-token next-token losses of one SAE (the
    prediction made at t of token t + 1; position T−1 holds 0)."""

    ce_clean: Tensor  # (B, T) CE of the clean pass
    ce_spliced: Tensor  # (B, T) CE with the SAE's reconstruction spliced in
    kl: Tensor  # (B, T) KL(p_clean ‖ p_spliced)
    ce_zero: Tensor | None  # (B, T) CE with the activation zero-ablated; None when not measured
    mask: Tensor  # (B, T) bool: the valid predicting positions


@dataclass(frozen=True)
class Sum:
    """One per-token quantity, summed over tokens (torchmetrics' ``add_state(..., dist_reduce_fx="sum")``).

    ``of(ctx)`` is pure: a :class:`SaeContext` for ``over="tok"``, a :class:`LossContext` for
    ``over="pred"``; it returns per-token values (...) (or (..., d) when ``per_dim``), or None when its
    input was not measured (then the metrics that need it are not reported). Metrics that need the same
    quantity share one ``Sum`` object: a name stands for one function.
    """

    name: str  # key of the sum ("sse"); unique across the registry
    over: Over  # "tok": summed over valid tokens; "pred": over valid predicting positions
    of: Callable[[Any], Tensor | None]  # context -> per-token values
    per_dim: bool = False  # one sum per dimension of x (width d, e.g. Σx for fvu); "tok" sums only


@dataclass(frozen=True, kw_only=True)
class Metric:
    """One metric of one family. A ``bucket`` metric declares ``sums`` and ``compute``; the other families
    declare neither (context_ratio / propagation derive from the bucket metric of the same name)."""

    name: str  # key inside the results ("fvu", "acc_word", ...)
    family: Family
    direction: Direction | None  # which way is better; None: no universal good direction
    label: str  # short human name for axes and tables ("ΔCE = CE spliced − CE clean")
    unit: str  # unit of the value ("nats / token", "fraction"); "" when unitless
    aggregation: Aggregation = "mean"  # "mean": Σx / n over tokens; "ratio_of_sums": Σa / Σb, once at the end
    gated: bool = True  # a threshold policy may name it
    curve: bool = True  # bucket metrics: drawn against position and layer (position_<name>.png, layer_<name>.png)
    sums: tuple[Sum, ...] = ()  # the per-token sums ``compute`` reads (the counts n_tok, n_pred come free)
    # sums name -> tensor (...) ((..., d) for a per_dim sum), plus "n_tok" and "n_pred" -> the value (...)
    compute: Callable[[Mapping[str, Tensor]], Tensor] | None = None

    @property
    def axis_label(self) -> str:
        """``label  [unit]`` for a figure axis."""
        return f"{self.label}  [{self.unit}]" if self.unit else self.label


# The registry: (family, name) -> Metric, in registration order (the report's and the figures' order).
_REGISTRY: dict[tuple[str, str], Metric] = {}
_BUILTIN: set[tuple[str, str]] = set()


def register(metric: Metric) -> Metric:
    """Add ``metric`` to the registry; from then on every run reports it (and a policy may gate it).

    Raises ``ConfigError`` naming the field for a malformed declaration, and for a (family, name) that is
    already registered (``unregister`` it first). Returns ``metric``. A per-token metric in one place::

        from sae_checks.metrics.registry import Metric, Sum, register

        X_HAT_NORM = Sum("x_hat_norm", "tok", lambda c: c.x_hat.norm(dim=-1))  # ‖x̂‖₂ per token
        register(Metric(name="x_hat_norm", family="bucket", direction=None, label="‖x̂‖₂",
                        unit="activation units", sums=(X_HAT_NORM,),
                        compute=lambda s: s["x_hat_norm"] / s["n_tok"]))
        # optional: its beyond / inside-context ratio, gateable as [context_ratio.x_hat_norm]
        register(Metric(name="x_hat_norm", family="context_ratio", direction="lower",
                        label="‖x̂‖₂ beyond / inside the training context", unit="ratio"))

    The built-in sums (``SSE``, ``X2``, ``SUM_X``, ``L0``, ...) may be reused in ``sums``.
    """
    _validate(metric)
    _REGISTRY[(metric.family, metric.name)] = metric
    return metric


register_metric = register  # the name ``sae_checks`` re-exports


def unregister(family: Family, name: str) -> Metric:
    """Remove the metric ``name`` of ``family`` (a user's; built-ins stay) and return it."""
    key = (family, name)
    if key not in _REGISTRY:
        raise ConfigError("name", name, f"no {family} metric of that name is registered")
    if key in _BUILTIN:
        raise ConfigError("name", name, f"is a built-in {family} metric; only registered ones can be removed")
    if family == "bucket":
        users = [f for f in ("context_ratio", "propagation") if (f, name) in _REGISTRY]
        if users:
            raise ConfigError("name", name, f"the {' and '.join(users)} metric of that name derives from it",
                              f"unregister those first: unregister({users[0]!r}, {name!r})")
    return _REGISTRY.pop(key)


unregister_metric = unregister


def _validate(m: Metric) -> None:
    def bad(fieldname: str, value: object, problem: str, fix: str = "") -> ConfigError:
        return ConfigError(f"Metric.{fieldname}", value, f"{problem} (metric {m.family}.{m.name})"
                           if fieldname != "name" else problem, fix)

    if not isinstance(m.name, str) or not NAME_RE.match(m.name):
        raise bad("name", m.name, "must be an identifier (letters, digits, _): it is a JSON and TOML key")
    if not isinstance(m.family, str) or not NAME_RE.match(m.family):
        raise bad("family", m.family, f"must be an identifier: one of {', '.join(FAMILIES)} or the name of a "
                  "check family of your own (sae_checks.gate.families)")
    if (m.family, m.name) in _REGISTRY:
        raise bad("name", m.name, f"a {m.family} metric of that name is already registered",
                  f"unregister({m.family!r}, {m.name!r}) first, or choose another name")
    if m.direction not in ("lower", "higher", None):
        raise bad("direction", m.direction, 'must be "lower", "higher" or None')
    for fieldname in ("label", "unit"):
        if not isinstance(getattr(m, fieldname), str):
            raise bad(fieldname, getattr(m, fieldname), "must be a string")
    if m.aggregation not in ("mean", "ratio_of_sums"):
        raise bad("aggregation", m.aggregation, 'must be "mean" or "ratio_of_sums"')
    if m.family != "bucket":
        if m.sums or m.compute is not None:
            raise bad("sums", m.sums, f"only bucket metrics declare sums and compute; a {m.family} metric "
                      "derives from the bucket metric of its name" if m.family in ("context_ratio", "propagation")
                      else f"{m.family} metrics are computed by the code that writes their results")
        base = _REGISTRY.get(("bucket", m.name))
        if m.family in ("context_ratio", "propagation") and base is None:
            raise bad("name", m.name, f"a {m.family} metric is the bucket metric of the same name, and no "
                      "bucket metric of that name is registered", "register the bucket metric first")
        if m.family == "propagation" and base is not None and any(s.over != "tok" or s.per_dim
                                                                  for s in base.sums):
            raise bad("name", m.name, "propagation re-encodes downstream activations: its bucket metric may "
                      "use per-token \"tok\" sums only (no \"pred\" or per_dim sum)")
        return
    if m.name in RESERVED:
        raise bad("name", m.name, f"is reserved ({', '.join(RESERVED)})")
    if not isinstance(m.sums, tuple) or not m.sums or not all(isinstance(s, Sum) for s in m.sums):
        raise bad("sums", m.sums, "must be a non-empty tuple of Sum", "e.g. sums=(Sum('x', 'tok', fn),)")
    if not callable(m.compute):
        raise bad("compute", m.compute, "must be a function of the sums (name -> tensor) giving the value")
    known = {s.name: s for s in sums_of(metrics("bucket"))}
    for s in m.sums:
        if not isinstance(s.name, str) or not NAME_RE.match(s.name) or s.name in RESERVED:
            raise bad("sums", s.name, f"a sum name must be an identifier other than {', '.join(RESERVED)}")
        if s.over not in ("tok", "pred"):
            raise bad("sums", s.over, f'sum {s.name!r}: over must be "tok" or "pred"')
        if not callable(s.of):
            raise bad("sums", s.of, f"sum {s.name!r}: of must be a function of the context")
        if s.per_dim and s.over != "tok":
            raise bad("sums", s.name, "per_dim sums read x: they must be over \"tok\"")
        if s.name in known and known[s.name] != s:
            raise bad("sums", s.name, "another sum of that name is registered with another definition",
                      "reuse that Sum object, or give yours another name")
        known.setdefault(s.name, s)  # two different sums of one name within this metric are refused too


def metrics(family: Family) -> tuple[Metric, ...]:
    """The registered metrics of ``family``, in registration order, read now (a later ``register``
    shows up in the next call)."""
    return tuple(m for (f, _), m in _REGISTRY.items() if f == family)


def get(family: Family, name: str) -> Metric | None:
    """The metric ``name`` of ``family``; None when the registry does not define it."""
    return _REGISTRY.get((family, name))


def direction(name: str, family: Family = "bucket") -> Direction | None:
    """Which way is better for ``name``: its entry in ``family``, else its ``bucket`` entry (cloze runs
    also report ``mse``, ``l0``, ``delta_ce``), else None (unknown)."""
    metric = get(family, name) or get("bucket", name)
    return metric.direction if metric else None


def directions(family: Family) -> dict[str, Direction | None]:
    """``{name: direction}`` of the gated metrics of ``family``, in registration order (the names a
    threshold policy may use in that family's section)."""
    return {m.name: m.direction for m in metrics(family) if m.gated}


def axis_label(name: str, family: Family = "bucket") -> str:
    """Axis label with unit for ``name`` (looked up as in :func:`direction`; the bare name if unknown)."""
    metric = get(family, name) or get("bucket", name)
    return metric.axis_label if metric else name


def sums_of(ms: Iterable[Metric]) -> tuple[Sum, ...]:
    """The distinct sums ``ms`` need, in order of first appearance."""
    out: dict[str, Sum] = {}
    for m in ms:
        for s in m.sums:
            out.setdefault(s.name, s)
    return tuple(out.values())


@dataclass(frozen=True)
class SumLayout:
    """Where each sum of a set of metrics lives in an accumulator: the scalar ``columns`` (``tok`` sums,
    ``n_tok``, ``pred`` sums, ``n_pred``) of one float64 tensor (..., len(columns)), and one (..., d)
    tensor per ``per_dim`` sum (``vectors``)."""

    metrics: tuple[Metric, ...]
    tok: tuple[Sum, ...] = field(init=False)  # every "tok" sum (scalar and per_dim): what sae_terms computes
    pred: tuple[Sum, ...] = field(init=False)  # every "pred" sum: computed from the batch's losses
    columns: tuple[str, ...] = field(init=False)
    vectors: tuple[str, ...] = field(init=False)

    def __post_init__(self) -> None:
        every = sums_of(self.metrics)
        tok = tuple(s for s in every if s.over == "tok")
        pred = tuple(s for s in every if s.over == "pred")
        object.__setattr__(self, "tok", tok)
        object.__setattr__(self, "pred", pred)
        object.__setattr__(self, "columns", (*(s.name for s in tok if not s.per_dim), N_TOK,
                                             *(s.name for s in pred), N_PRED))
        object.__setattr__(self, "vectors", tuple(s.name for s in tok if s.per_dim))

    @classmethod
    def of(cls, family: Family = "bucket") -> SumLayout:
        """The layout of the metrics registered now in ``family``."""
        return cls(metrics(family))


def evaluate(sums: Iterable[Sum], ctx: SaeContext | LossContext) -> dict[str, Tensor]:
    """``{name: sum.of(ctx)}`` per token, leaving out the sums whose input was not measured (None)."""
    out = {}
    for s in sums:
        value = s.of(ctx)
        if value is not None:
            out[s.name] = value
    return out


def _lazy(module: str, name: str) -> Callable[..., Tensor]:
    """``sae_checks.metrics.<module>.<name>``, imported on first call (this module imports no torch)."""

    def call(*args: Any) -> Tensor:
        fn: Callable[..., Tensor] = getattr(import_module(f"sae_checks.metrics.{module}"), name)
        return fn(*args)

    call.__name__ = call.__qualname__ = name
    return call


def _reconstruction(name: str) -> Callable[..., Tensor]:
    return _lazy("reconstruction", name)


_sse, _x2, _l0 = _reconstruction("sse"), _reconstruction("x2"), _reconstruction("l0")
_feat_l1, _resid_norm, _cos = _reconstruction("feat_l1"), _reconstruction("resid_norm"), _reconstruction("cos")
_fvu = _reconstruction("fvu_from_sums")

# The built-in per-token sums (definitions: metrics.reconstruction, metrics.loss, docs/definitions.md).
SSE = Sum("sse", "tok", lambda c: _sse(c.x, c.x_hat))  # Σ_d (x − x̂)²
X2 = Sum("x2", "tok", lambda c: _x2(c.x))  # Σ_d x²
SUM_X = Sum("sum_x", "tok", lambda c: c.x, per_dim=True)  # x itself: Σ_tokens x (d,) for fvu's variance
L0 = Sum("l0", "tok", lambda c: _l0(c.f))  # #{k : f_k ≠ 0}
FEAT_L1 = Sum("feat_l1", "tok", lambda c: _feat_l1(c.f))  # Σ_k |f_k|
RESID_NORM = Sum("resid_norm", "tok", lambda c: _resid_norm(c.x))  # ‖x‖₂
COS = Sum("cos", "tok", lambda c: _cos(c.x, c.x_hat))  # cos(x, x̂)
CE_CLEAN = Sum("ce_clean", "pred", lambda c: c.ce_clean)
CE_SPLICED = Sum("ce_spliced", "pred", lambda c: c.ce_spliced)
CE_ZERO = Sum("ce_zero", "pred", lambda c: c.ce_zero)  # None without the zero-ablation pass
KL = Sum("kl", "pred", lambda c: c.kl)


def _fvu_of(s: Mapping[str, Tensor]) -> Tensor:
    return _fvu(s["sse"], s["x2"], s["sum_x"], s[N_TOK])


_FVU_SUMS = (SSE, X2, SUM_X)


def _builtin(family: Family, name: str, direction: Direction | None, label: str, unit: str,
             aggregation: Aggregation = "mean", gated: bool = True, sums: tuple[Sum, ...] = (),
             compute: Callable[[Mapping[str, Tensor]], Tensor] | None = None, curve: bool = False) -> None:
    register(Metric(name=name, family=family, direction=direction, label=label, unit=unit,
                    aggregation=aggregation, gated=gated, curve=curve, sums=sums, compute=compute))
    _BUILTIN.add((family, name))


def _mean(total: str, count: str = N_TOK) -> Callable[[Mapping[str, Tensor]], Tensor]:
    """Σ total / Σ count: the token mean of one per-token sum."""
    return lambda s: s[total] / s[count]


# per bucket / per position (mse is a sum over d, docs/definitions.md: squared activation units)
_builtin("bucket", "mse", "lower", "MSE  Σ_d (x − x̂)²", "activation units²", sums=(SSE,), compute=_mean("sse"),
         curve=True)
_builtin("bucket", "fvu", "lower", "FVU", "fraction of variance", "ratio_of_sums", sums=_FVU_SUMS, compute=_fvu_of)
_builtin("bucket", "explained_variance", "higher", "explained variance", "fraction", "ratio_of_sums",
         sums=_FVU_SUMS, compute=lambda s: 1 - _fvu_of(s))
_builtin("bucket", "l0", "lower", "L0", "active features / token", sums=(L0,), compute=_mean("l0"), curve=True)
_builtin("bucket", "feat_l1", "lower", "feature L1  Σ_k |f_k|", "activation units", sums=(FEAT_L1,),
         compute=_mean("feat_l1"), curve=True)
_builtin("bucket", "resid_norm", None, "residual norm ‖x‖₂", "activation units", sums=(RESID_NORM,),
         compute=_mean("resid_norm"))
_builtin("bucket", "cos", "higher", "cos(x, x̂)", "unitless", sums=(COS,), compute=_mean("cos"))
_builtin("bucket", "ce_clean", "lower", "CE clean", "nats / token", sums=(CE_CLEAN,),
         compute=_mean("ce_clean", N_PRED))
_builtin("bucket", "ce_spliced", "lower", "CE spliced", "nats / token", sums=(CE_SPLICED,),
         compute=_mean("ce_spliced", N_PRED))
_builtin("bucket", "ce_zero", None, "CE zero-ablated", "nats / token", sums=(CE_ZERO,),
         compute=_mean("ce_zero", N_PRED))
_builtin("bucket", "delta_ce", "lower", "ΔCE = CE spliced − CE clean", "nats / token",
         sums=(CE_SPLICED, CE_CLEAN), compute=lambda s: (s["ce_spliced"] - s["ce_clean"]) / s[N_PRED], curve=True)
_builtin("bucket", "kl", "lower", "KL(p_clean ‖ p_spliced)", "nats / token", sums=(KL,), compute=_mean("kl", N_PRED),
         curve=True)
# (ce_zero − ce_spliced) / (ce_zero − ce_clean): a ratio of means, as SAELens (the counts cancel)
_builtin("bucket", "ce_loss_score", "higher", "CE loss score", "fraction recovered", "ratio_of_sums",
         sums=(CE_ZERO, CE_SPLICED, CE_CLEAN),
         compute=lambda s: (s["ce_zero"] - s["ce_spliced"]) / (s["ce_zero"] - s["ce_clean"]))
# beyond / inside the training context: larger is a worse degradation, for every metric (l0 included)
for _name in ("fvu", "l0", "delta_ce", "kl", "mse"):
    _builtin("context_ratio", _name, "lower", f"{_name} beyond / inside the training context", "ratio",
             "ratio_of_sums")
# cloze (per prompt, averaged over prompts)
_builtin("cloze", "acc_first_token", "higher", "accuracy, first answer token", "fraction")
_builtin("cloze", "acc_word", "higher", "accuracy, whole answer word", "fraction")
_builtin("cloze", "acc_choice", "higher", "accuracy, multiple choice", "fraction")
_builtin("cloze", "delta_logp", "higher", "Δlog p(answer) = log p spliced − log p clean", "nats")
_builtin("cloze", "logp", "higher", "log p(answer)", "nats", gated=False)
_builtin("cloze", "only_clean_right", "lower", "prompts only the clean model gets right", "prompts", gated=False)
# propagation: the downstream SAE's bucket metric with upstream / clean − 1, over the window
_builtin("propagation", "mse", "lower", "downstream SAE MSE", "fractional change", "ratio_of_sums")
_builtin("propagation", "l0", "lower", "downstream SAE L0", "fractional change", "ratio_of_sums")
_builtin("propagation", "resid_norm", "lower", "downstream residual norm", "fractional change", "ratio_of_sums")
# latent health, per token (docs/definitions.md#latent-health; SAEBench core's l2_ratio and
# relative_reconstruction_bias): 1 is ideal for both, so neither has a better direction
_l2_ratio = _lazy("latents", "l2_ratio")
L2_RATIO = Sum("l2_ratio", "tok", lambda c: _l2_ratio(c.x, c.x_hat))  # ‖x̂‖ / ‖x‖
XHAT2 = Sum("xhat2", "tok", lambda c: c.x_hat.pow(2).sum(-1))  # ‖x̂‖²
X_DOT_XHAT = Sum("x_dot_xhat", "tok", lambda c: (c.x * c.x_hat).sum(-1))  # ⟨x, x̂⟩
LATENT_HEALTH_METRICS = ("l2_ratio", "relative_reconstruction_bias")  # off with RunConfig.latent_health=False
_builtin("bucket", "l2_ratio", None, "‖x̂‖ / ‖x‖", "ratio", sums=(L2_RATIO,), compute=_mean("l2_ratio"))
_builtin("bucket", "relative_reconstruction_bias", None, "relative reconstruction bias Σ‖x̂‖² / Σ⟨x, x̂⟩", "ratio",
         "ratio_of_sums", sums=(XHAT2, X_DOT_XHAT), compute=lambda s: s["xhat2"] / s["x_dot_xhat"])
# latent health per SAE, over every evaluated token (results["latents"][sae]) and from the weights alone
_builtin("latents", "frac_alive", "higher", "latents that fired at least once", "fraction")
_builtin("latents", "frac_dead", "lower", "latents that never fired (over n_tokens)", "fraction")
_builtin("latents", "freq_over_1_percent", "lower", "latents firing on > 1% of tokens", "fraction")
_builtin("latents", "freq_over_10_percent", "lower", "latents firing on > 10% of tokens", "fraction")
_builtin("latents", "max_density", "lower", "firing density of the densest latent", "fraction of tokens")
_builtin("latents", "max_decoder_cosine", "lower", "largest cosine between two decoder rows", "cosine")
_builtin("latents", "mean_max_decoder_cosine", "lower", "mean over latents of the largest decoder cosine", "cosine")
_builtin("latents", "decoder_norm_min", None, "smallest decoder row norm", "activation units", gated=True)
_builtin("latents", "decoder_norm_max", None, "largest decoder row norm", "activation units", gated=True)
# release cards (results["cards"][sae]): what loads and measures against what the release publishes
_builtin("card", "l0_ratio", "lower", "L0 inside the training context / the card's L0", "ratio")
_builtin("card", "variance_explained_gap", "higher", "explained variance inside the training context − the card's",
         "fraction")
_builtin("card", "fact_problems", "lower", "declared facts that disagree with what loaded", "problems")
