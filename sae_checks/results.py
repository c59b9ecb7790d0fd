"""Typed read access to a run's results: the same structure as the JSON report's ``results`` section.

``Results`` is what the ``sae_results`` pytest fixture returns and what ``Results.from_report(report)``
gives for a saved report or ``sae_checks.run(...)``: small accessors instead of nested dict lookups, with
errors that list what is there. Nothing is copied or recomputed; ``.raw`` is the dict itself.

    results.saes()                          -> ["blocks.0.hook_resid_pre", ...]   (forward order)
    results.buckets(sae)                    -> ["1-32", "32-256"]
    results.bucket(sae, "1-32")["fvu"]      -> Estimate(mean=0.08, ci=(0.07, 0.09))
    results.per_position(sae, "l0")         -> [None, 10.2, 11.0, ...]           (one value per position)
    results.context_ratio(sae, "fvu")       -> Estimate(mean=1.1, ci=(1.0, 1.2))  (beyond / inside)
    results.cloze("lambada", sae)           -> {"acc_first_token": Estimate(...), ...}
    results.propagation("mse")[(up, down)]  -> 0.12
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple


class Estimate(NamedTuple):
    """A mean over sequences (or prompts) with its bootstrap CI (None when not computed). The one
    estimate type of the package: the gate, the diff, the summary, the figures and the HTML page."""

    mean: float | None  # None: not in the results (the gate's "missing")
    ci: tuple[float, float] | None

    @classmethod
    def of(cls, value: Any, key: str = "mean") -> Estimate:
        """Read ``{key: x, "ci": [lo, hi]}`` (``key`` is ``ratio`` for context ratios) or a bare number;
        a CI with a null bound is no CI."""
        if isinstance(value, Mapping):
            ci = value.get("ci")
            if isinstance(ci, (list, tuple)) and len(ci) == 2 and None not in ci:
                return cls(_num(value.get(key)), (float(ci[0]), float(ci[1])))
            return cls(_num(value.get(key)), None)
        return cls(_num(value), None)

    @classmethod
    def lenient(cls, value: Any) -> Estimate:
        """For drawing: read ``{"mean", "ci": [lo, hi]}``, ``{"value", "ci_lo", "ci_hi"}`` or a bare
        number, anything unreadable as nan (never an exception); a CI keeps a readable bound."""
        if isinstance(value, Mapping):
            mean = _nan(value.get("mean", value.get("value")))
            ci = value.get("ci")
            if isinstance(ci, Sequence) and not isinstance(ci, str) and len(ci) == 2:
                lo, hi = _nan(ci[0]), _nan(ci[1])
            else:
                lo, hi = _nan(value.get("ci_lo")), _nan(value.get("ci_hi"))
            return cls(mean, (lo, hi) if math.isfinite(lo) or math.isfinite(hi) else None)
        return cls(_nan(value), None)

    @property
    def value(self) -> float:
        """The mean, nan when missing (for arithmetic and drawing)."""
        return math.nan if self.mean is None else self.mean

    @property
    def lo(self) -> float:
        """The CI's lower bound, nan without one."""
        return self.ci[0] if self.ci is not None else math.nan

    @property
    def hi(self) -> float:
        """The CI's upper bound, nan without one."""
        return self.ci[1] if self.ci is not None else math.nan


def _num(v: Any) -> float | None:
    return None if v is None else float(v)


def _nan(v: Any) -> float:
    """``v`` as a float; nan for None, booleans and anything else unreadable."""
    if isinstance(v, bool) or v is None:
        return math.nan
    try:
        return float(v)
    except (TypeError, ValueError):
        return math.nan


def _pick(table: Mapping[str, Any], key: str, what: str) -> Any:
    if key not in table:
        known = ", ".join(map(str, table)) or "none"
        raise KeyError(f"no {what} {key!r} in the results (there are: {known})")
    return table[key]


class Results:
    """Accessors over a ``results`` dict (report schema 2, keyed by SAE name); see the module docstring."""

    def __init__(self, results: Mapping[str, Any], provenance: Mapping[str, Any] | None = None) -> None:
        self.raw = results  # the report's "results" section, as is
        self.provenance = dict(provenance or {})

    @classmethod
    def from_report(cls, report: Mapping[str, Any]) -> Results:
        """From a report dict (``sae_checks.run``, ``report.io.load_report``); anything that is not a
        JSON object (or a report whose sections are not) reads as empty."""
        if not isinstance(report, Mapping):
            return cls({})
        results, provenance = report.get("results"), report.get("provenance")
        return cls(results if isinstance(results, Mapping) else {},
                   provenance if isinstance(provenance, Mapping) else None)

    def section(self, name: str) -> Mapping[str, Any] | None:
        """``results[name]`` when it is a non-empty mapping, else None (for readers that skip what is
        absent or malformed instead of raising: the figures, the HTML page)."""
        sec = self.raw.get(name)
        return sec if isinstance(sec, Mapping) and sec else None

    def saes(self) -> list[str]:
        """SAE names, in forward order (layer, hook, name)."""
        table = self.raw.get("saes") or {}
        return list(table) if table else list(self.raw.get("per_bucket", {}))

    def sae(self, sae: str) -> dict[str, Any]:
        """What the SAE is: layer, hook, d_in, d_sae, architecture, context_size, release, id."""
        return dict(_pick(self.raw.get("saes", {}), sae, "SAE"))

    def latents(self, sae: str) -> dict[str, Any]:
        """Latent health of one SAE: frac_alive, frac_dead, n_tokens, the density histogram, decoder figures."""
        return dict(_pick(self.raw.get("latents", {}), sae, "SAE with latent health"))

    def card(self, sae: str) -> dict[str, Any]:
        """The SAE's release card (published l0, variance_explained, source) and its declared-fact problems."""
        return dict(_pick(self.raw.get("cards", {}), sae, "SAE with a card"))

    def buckets(self, sae: str) -> list[str]:
        """The SAE's position buckets ``"a-b"`` (half-open), first to last."""
        return list(_pick(self.raw.get("per_bucket", {}), sae, "SAE"))

    def bucket(self, sae: str, bucket: str) -> dict[str, Estimate]:
        """metric -> Estimate for one (SAE, position bucket): fvu, mse, l0, delta_ce, kl, ..."""
        table = _pick(_pick(self.raw.get("per_bucket", {}), sae, "SAE"), bucket, f"bucket of SAE {sae}")
        return {m: Estimate.of(v) for m, v in table.items()}

    def per_position(self, sae: str, metric: str) -> list[float | None]:
        """One value per position (None where undefined, e.g. BOS)."""
        table = _pick(self.raw.get("per_position", {}), sae, "SAE")
        return [_num(v) for v in _pick(table, metric, f"per-position metric of SAE {sae}")]

    def context_ratio(self, sae: str, metric: str) -> Estimate:
        """Beyond-context / inside-context ratio of ``metric`` (last bucket over first) with its CI."""
        table = _pick(self.raw.get("context_generalization", {}), sae, "SAE with a context ratio")
        return Estimate.of(_pick(table, metric, f"context-ratio metric of SAE {sae}"), key="ratio")

    def cloze(self, task: str, sae: str) -> dict[str, Estimate]:
        """metric -> Estimate for a cloze task with the SAE spliced in (acc_first_token, delta_logp, ...)."""
        section = _pick(self.raw.get("cloze", {}), task, "cloze task")
        table = _pick(section.get("per_sae", {}), sae, f"SAE in cloze task {task}")
        return {m: Estimate.of(v) for m, v in table.items() if m not in ("classes", "by_bucket")}

    def cloze_clean(self, task: str) -> dict[str, Estimate]:
        """metric -> Estimate for a cloze task without any SAE (the clean model)."""
        section = _pick(self.raw.get("cloze", {}), task, "cloze task")
        return {m: Estimate.of(v) for m, v in section.get("baseline", {}).items()}

    def propagation(self, metric: str) -> dict[tuple[str, str], float]:
        """(upstream SAE, downstream SAE) -> relative change of ``metric`` at the downstream SAE."""
        prop = self.raw.get("propagation") or {}
        names = list(prop.get("saes", []))
        matrix = _pick(prop, metric, "propagation metric") if prop else _pick({}, metric, "propagation metric")
        return {(names[i], names[j]): float(v) for i, row in enumerate(matrix) for j, v in enumerate(row)
                if v is not None}

    def __repr__(self) -> str:
        return f"Results({len(self.saes())} SAEs: {', '.join(self.saes()[:4])}{' ...' if len(self.saes()) > 4 else ''})"
