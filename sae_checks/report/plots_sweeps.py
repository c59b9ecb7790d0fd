"""The sweep frontier: for every hook with at least two SAEs (``results.sweeps``), L0 against FVU and
L0 against ΔCE, one point per SAE per position bucket, labelled with the SAE names.

The frontier is what people read first when comparing widths and sparsities at one hook: fewer active
features for the same reconstruction is better (down and left). One marker and colour per bucket, and
a line through each bucket's points in order of L0, so the frontier inside the training context and
the one beyond it are both visible: an SAE that wins inside and loses beyond shows as crossing lines.

With a baseline report (``sae-checks plot --baseline``, ``sae-checks html --baseline``) the same figure also
draws the baseline's SAEs at that hook as hollow markers on a dotted line ("baseline"), and joins each SAE's
baseline point to its new one with a thin grey line, so a retrained sweep shows where every SAE moved.
:func:`frontier` computes every point and pair the figure draws.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from sae_checks.report import plots_data as data
from sae_checks.report.plots_base import PlotResult, new_figure, safe_name, save

SECTION = "Sweeps"
Y_METRICS = ("fvu", "delta_ce")  # drawn against l0
MARKERS = ("o", "^", "s", "D", "v", "P")
PAIR = "pair"  # gid of the thin line joining an SAE's baseline point to its new one


class Point(NamedTuple):
    """One SAE in one bucket: its L0 and the plotted metric (finite means; CIs may be nan)."""

    sae: str
    l0: data.Estimate
    y: data.Estimate


class Frontier(NamedTuple):
    """What ``sweep_<hook>.png`` draws for one metric: per bucket, the new report's points and the
    baseline's (each in order of L0), and the SAEs in both (joined by a line)."""

    metric: str
    new: dict[str, list[Point]]  # bucket -> points of the report's SAEs at the hook
    baseline: dict[str, list[Point]]  # bucket -> points of the baseline's SAEs at the hook ({} without one)

    def pairs(self, bucket: str) -> list[tuple[Point, Point]]:
        """(baseline point, new point) of every SAE drawn in ``bucket`` by both reports."""
        old = {p.sae: p for p in self.baseline.get(bucket, [])}
        return [(old[p.sae], p) for p in self.new.get(bucket, []) if p.sae in old]


def outputs(report: Mapping[str, Any]) -> list[str]:
    """The PNGs :func:`plot_sweeps` writes: one per hook holding two or more SAEs."""
    return [f"sweep_{safe_name(hook)}.png" for hook in data.sweeps(report)]


def plot_sweeps(report: Mapping[str, Any], out_dir: Path) -> PlotResult:
    """One figure ``sweep_<hook>.png`` per hook in ``results.sweeps``; a note when there is none."""
    return plot_sweeps_beside(report, None, out_dir)


def plot_sweeps_beside(report: Mapping[str, Any], baseline: Mapping[str, Any] | None, out_dir: Path) -> PlotResult:
    """:func:`plot_sweeps`, with the ``baseline`` report's SAEs at each hook drawn beside the new ones
    (hollow markers, "baseline"; each SAE in both joined by a thin line). None: no baseline."""
    result = PlotResult()
    sweeps = data.sweeps(report)
    if not sweeps:
        result.notes.append("sweeps: no hook has two or more SAEs; skipped sweep_*.png")
        return result
    buckets = data.per_bucket(report)
    contexts = data.context_sizes(report)
    for hook, names in sweeps.items():
        present = [n for n in names if n in buckets]
        if len(present) < 2:
            result.notes.append(f"sweeps: fewer than two SAEs at {hook} have per_bucket results; "
                                f"skipped sweep_{safe_name(hook)}.png")
            continue
        curves = [f for f in (frontier(report, hook, m, baseline) for m in Y_METRICS) if f.new]
        if not curves:
            result.notes.append(f"sweeps: no l0 with fvu or delta_ce at {hook}; skipped sweep_{safe_name(hook)}.png")
            continue
        n_old = len({p.sae for f in curves for pts in f.baseline.values() for p in pts})
        _draw(hook, present, n_old, curves, sorted({contexts[n] for n in present if n in contexts}), out_dir, result)
    return result


def baseline_saes(baseline: Mapping[str, Any], hook: str, names: list[str]) -> list[str]:
    """The baseline's SAEs at ``hook`` with per-bucket results: by the hook it records for each SAE, or,
    where it records none, the names of the new sweep (``names``)."""
    buckets = data.per_bucket(baseline)
    info = data.saes(baseline)
    return [n for n in buckets if (info[n].hook == hook if n in info and info[n].hook else n in names)]


def frontier(report: Mapping[str, Any], hook: str, metric: str,
             baseline: Mapping[str, Any] | None = None) -> Frontier:
    """The points of ``sweep_<hook>.png``'s ``metric`` panel: every SAE of ``results.sweeps[hook]`` (and of
    ``baseline`` at ``hook``) with finite L0 and ``metric`` means, per bucket, in order of L0."""
    names = data.sweeps(report).get(hook, [])
    new = _points(data.per_bucket(report), names, metric)
    old = _points(data.per_bucket(baseline), baseline_saes(baseline, hook, names), metric) if baseline else {}
    return Frontier(metric, new, old)


def _points(buckets: dict[str, dict[str, dict[str, data.Estimate]]], names: list[str],
            metric: str) -> dict[str, list[Point]]:
    out: dict[str, list[Point]] = {}
    for bucket in sorted({b for n in names for b in buckets.get(n, {})}, key=data.bucket_sort_key):
        pts = [Point(n, buckets[n][bucket]["l0"], buckets[n][bucket][metric]) for n in names
               if "l0" in buckets.get(n, {}).get(bucket, {}) and metric in buckets[n][bucket]]
        pts = [p for p in pts if np.isfinite(p.l0.value) and np.isfinite(p.y.value)]
        if pts:
            out[bucket] = sorted(pts, key=lambda p: p.l0.value)
    return out


def short_names(names: list[str], crowded: int = 4) -> tuple[str, dict[str, str]]:
    """(the prefix all of more than ``crowded`` names share, cut after its last non-alphanumeric character;
    name -> the rest): ``blocks.3.hook_resid_post__trainer_7`` reads ``7`` on a sweep of 28. Few names, or a
    name that is the whole shared prefix, keep their full names (prefix "")."""
    prefix = os.path.commonprefix(names) if len(names) > crowded else ""
    if prefix in names:
        prefix = ""
    prefix = prefix[:max((i + 1 for i, ch in enumerate(prefix) if not ch.isalnum()), default=0)]
    return prefix, {n: n[len(prefix):] or n for n in names}


def _draw(hook: str, names: list[str], n_old: int, curves: list[Frontier], ctx: list[int], out_dir: Path,
          result: PlotResult) -> None:
    everyone = sorted({p.sae for f in curves for side in (f.new, f.baseline) for pts in side.values() for p in pts})
    prefix, label = short_names(everyone)
    fig, axes = new_figure((6.0 * len(curves), 5.0), ncols=len(curves))
    for ax, curve in zip(axes[0], curves, strict=True):
        order = sorted({*curve.new, *curve.baseline}, key=data.bucket_sort_key)
        for q, bucket in enumerate(order):
            where = f"positions {bucket}{_where(bucket, ctx)}"
            marker, colour = MARKERS[q % len(MARKERS)], f"C{q}"
            for old, new in curve.pairs(bucket):
                ax.plot([old.l0.value, new.l0.value], [old.y.value, new.y.value], color="0.6", lw=0.6, zorder=1,
                        gid=PAIR)
            if bucket in curve.baseline:
                pts = curve.baseline[bucket]
                _series(ax, pts, colour, marker, f"baseline, {where}", hollow=True)
                for p in pts:  # an SAE the new report lacks keeps its name; the others are joined
                    if p.sae not in names:
                        ax.annotate(label[p.sae], (p.l0.value, p.y.value), xytext=(4, -9), textcoords="offset points",
                                    fontsize=7, color="0.4")
            if bucket in curve.new:
                pts = curve.new[bucket]
                _series(ax, pts, colour, marker, where if not curve.baseline else f"new, {where}", hollow=False)
                for p in pts:
                    ax.annotate(label[p.sae], (p.l0.value, p.y.value), xytext=(4, 4), textcoords="offset points",
                                fontsize=7, color=colour)
        for axis, getter in ((ax.set_xscale, "get_xdata"), (ax.set_yscale, "get_ydata")):
            values = np.concatenate([np.asarray(getattr(line, getter)(), dtype=float) for line in ax.get_lines()]
                                    or [np.zeros(0)])
            values = values[np.isfinite(values)]
            if values.size and values.min() > 0 and values.max() / values.min() > 20:  # inside and beyond differ
                axis("log")  # by orders of magnitude past the training context
        ax.set_xlabel(data.metric_label("l0"))
        ax.set_ylabel(data.metric_label(curve.metric))
        ax.grid(True, alpha=0.3)
        title = "bucket (one point per SAE" + (f"; names after {prefix!r}" if prefix else "") + ")"
        ax.legend(fontsize=8, title=title, title_fontsize=8)
    beside = f"; baseline: {n_old} SAEs, hollow" if n_old else ""
    save(fig, out_dir, f"sweep_{safe_name(hook)}.png",
         f"Sweep at {hook}: L0 against " + " and ".join(c.metric for c in curves) + f" ({len(names)} SAEs{beside})",
         SECTION, result)


def _series(ax: Any, pts: list[Point], colour: str, marker: str, label: str, *, hollow: bool) -> None:
    """One bucket's points with their CIs, joined in order of L0: filled and solid for the report, hollow
    and dotted for the baseline."""
    x = np.array([p.l0.value for p in pts])
    y = np.array([p.y.value for p in pts])
    yerr = np.array([[max(p.y.value - p.y.lo, 0.0) if np.isfinite(p.y.lo) else 0.0,
                      max(p.y.hi - p.y.value, 0.0) if np.isfinite(p.y.hi) else 0.0] for p in pts]).T
    ax.errorbar(x, y, yerr=yerr, color=colour, marker=marker, ms=6, lw=0.9 if hollow else 1.2, capsize=2,
                ls=":" if hollow else "-", mfc="none" if hollow else colour, alpha=0.8 if hollow else 1.0,
                label=label)


def _where(bucket: str, contexts: list[int]) -> str:
    """`` (inside the training context)`` / `` (beyond ...)`` when one context size applies to the sweep."""
    if len(contexts) != 1:
        return ""
    try:
        lo, hi = (int(x) for x in bucket.split("-"))
    except ValueError:
        return ""
    if hi <= contexts[0]:
        return ", inside the training context"
    if lo >= contexts[0]:
        return ", beyond the training context"
    return ", across the training context"
