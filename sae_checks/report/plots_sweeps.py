"""The sweep frontier: for every hook with at least two SAEs (``results.sweeps``), L0 against FVU and
L0 against ΔCE, one point per SAE per position bucket, labelled with the SAE names.

The frontier is what people read first when comparing widths and sparsities at one hook: fewer active
features for the same reconstruction is better (down and left). One marker and colour per bucket, and
a line through each bucket's points in order of L0, so the frontier inside the training context and
the one beyond it are both visible: an SAE that wins inside and loses beyond shows as crossing lines.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from sae_checks.report import plots_data as data
from sae_checks.report.plots_base import PlotResult, new_figure, safe_name, save

SECTION = "Sweeps"
Y_METRICS = ("fvu", "delta_ce")  # drawn against l0
MARKERS = ("o", "^", "s", "D", "v", "P")


def outputs(report: Mapping[str, Any]) -> list[str]:
    """The PNGs :func:`plot_sweeps` writes: one per hook holding two or more SAEs."""
    return [f"sweep_{safe_name(hook)}.png" for hook in data.sweeps(report)]


def plot_sweeps(report: Mapping[str, Any], out_dir: Path) -> PlotResult:
    """One figure ``sweep_<hook>.png`` per hook in ``results.sweeps``; a note when there is none."""
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
        _frontier(hook, present, buckets, contexts, out_dir, result)
    return result


def _frontier(hook: str, names: list[str], buckets: dict[str, dict[str, dict[str, data.Estimate]]],
              contexts: dict[str, int], out_dir: Path, result: PlotResult) -> None:
    order = sorted({b for n in names for b in buckets[n]}, key=data.bucket_sort_key)
    ys = [m for m in Y_METRICS if any(m in buckets[n].get(b, {}) for n in names for b in order)]
    if not ys or not any("l0" in buckets[n].get(b, {}) for n in names for b in order):
        result.notes.append(f"sweeps: no l0 with fvu or delta_ce at {hook}; skipped sweep_{safe_name(hook)}.png")
        return
    ctx = sorted({contexts[n] for n in names if n in contexts})
    fig, axes = new_figure((6.0 * len(ys), 5.0), ncols=len(ys))
    for ax, metric in zip(axes[0], ys, strict=True):
        for q, bucket in enumerate(order):
            pts = [(n, buckets[n][bucket]["l0"], buckets[n][bucket][metric]) for n in names
                   if bucket in buckets[n] and "l0" in buckets[n][bucket] and metric in buckets[n][bucket]]
            pts = [p for p in pts if np.isfinite(p[1].value) and np.isfinite(p[2].value)]
            if not pts:
                continue
            pts.sort(key=lambda p: p[1].value)
            x = np.array([p[1].value for p in pts])
            y = np.array([p[2].value for p in pts])
            yerr = np.array([[max(e.value - e.lo, 0.0) if np.isfinite(e.lo) else 0.0,
                              max(e.hi - e.value, 0.0) if np.isfinite(e.hi) else 0.0] for _, _, e in pts]).T
            where = _where(bucket, ctx)
            ax.errorbar(x, y, yerr=yerr, color=f"C{q}", marker=MARKERS[q % len(MARKERS)], ms=6, lw=1.2,
                        capsize=2, label=f"positions {bucket}{where}")
            for name, lx, ly in zip((p[0] for p in pts), x, y, strict=True):
                ax.annotate(name, (lx, ly), xytext=(4, 4), textcoords="offset points", fontsize=7, color=f"C{q}")
        for axis, getter in ((ax.set_xscale, "get_xdata"), (ax.set_yscale, "get_ydata")):
            values = np.concatenate([np.asarray(getattr(line, getter)(), dtype=float) for line in ax.get_lines()]
                                    or [np.zeros(0)])
            values = values[np.isfinite(values)]
            if values.size and values.min() > 0 and values.max() / values.min() > 20:  # inside and beyond differ
                axis("log")  # by orders of magnitude past the training context
        ax.set_xlabel(data.metric_label("l0"))
        ax.set_ylabel(data.metric_label(metric))
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8, title="bucket (one point per SAE)")
    save(fig, out_dir, f"sweep_{safe_name(hook)}.png",
         f"Sweep at {hook}: L0 against " + " and ".join(ys) + f" ({len(names)} SAEs)", SECTION, result)


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
