"""Figures for a report JSON, and for the difference between two reports.

Reads only the report dict (never torch, never a model). Every section is optional: a missing or
malformed section is skipped with a note in :attr:`PlotResult.notes`, never an exception. The figures
are declared in ``report.figures`` (name, the results they need, the draw function; a user's own is
one more declaration); their code lives in ``plots_positions`` (per-position / per-layer / residual
norm), ``plots_sweeps`` and ``plots_tasks`` (propagation, cloze, features, diff).

The built-in figures written by :func:`make_plots` (when their data is present)::

    position_{mse,l0,feat_l1,delta_ce,kl}.png   metric vs token position (log-x), one panel per hook, one
                                                line per SAE (by name), context marked
    layer_{mse,l0,feat_l1,delta_ce,kl}.png      metric vs layer, one line per position 1, 2, 4, ..., T-2
    sweep_<hook>.png                            per hook with >= 2 SAEs: L0 vs fvu and vs delta_ce, one
                                                point per SAE per bucket; with a baseline, its SAEs'
                                                points hollow beside them, each SAE's two joined
    resid_norm_by_layer.png                     mean residual norm vs layer
    mse_vs_resid_norm.png                       mse vs residual norm, coloured by position / by layer
    propagation_{mse,l0,resid_norm}.png         upstream x downstream SAE fractional change, centred on 0
    cloze_<task>_accuracy.png                   accuracy per SAE, clean baseline as a line
    cloze_<task>_ce.png                         answer CE per SAE, clean baseline as a line
    cloze_<task>_delta_logp_strip.png           per-prompt Δlog p per SAE
    cloze_<task>_prompt_scatter.png             per-prompt mse vs ΔCE and Δlog p, coloured by class
    features_helpfulness.png                    mean Δlog p and score histograms per SAE

and by :func:`make_diff_plots`: ``diff_buckets.png`` (per SAE and bucket, new − old).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from sae_checks.report import figures
from sae_checks.report.plots_base import FigureInfo, PlotResult
from sae_checks.report.plots_latents import plot_latents_diff
from sae_checks.report.plots_tasks import plot_bucket_diff

__all__ = ["FigureInfo", "PlotResult", "make_diff_plots", "make_plots"]


def make_plots(report: Mapping[str, Any], out_dir: Path | str, *,
               baseline: Mapping[str, Any] | None = None) -> PlotResult:
    """Write every registered figure (``report.figures``) the report has data for into ``out_dir``
    (created if needed). ``baseline``: an earlier report; a figure that declares ``beside`` (the sweep
    frontier) draws its data beside this report's, the others ignore it.

    Returns the written PNG paths (``result.paths``, with titles and sections in ``result.figures``)
    and one note per skipped figure or section."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    result = PlotResult()
    if not isinstance(report, Mapping):
        result.notes.append(f"report is a {type(report).__name__}, not a JSON object; no figures")
        return result
    for figure in figures.figures():
        note = figure.skip_note(report)
        if note is not None:
            result.notes.append(note)
        elif isinstance(baseline, Mapping) and figure.beside is not None:
            result.extend(figure.beside(report, baseline, out))
        else:
            result.extend(figure.draw(report, out))
    return result


def make_diff_plots(old: Mapping[str, Any], new: Mapping[str, Any], out_dir: Path | str) -> PlotResult:
    """Write the per-SAE, per-bucket deltas (new − old) between two reports into ``out_dir``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if not isinstance(old, Mapping) or not isinstance(new, Mapping):
        return PlotResult(notes=["diff: both reports must be JSON objects; skipped diff_buckets.png"])
    result = plot_bucket_diff(old, new, out)
    result.extend(plot_latents_diff(old, new, out))
    return result
