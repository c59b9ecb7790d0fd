"""The figures of a report, each declared once: what it is called, which results it needs, how it draws.

``make_plots`` (so ``sae-checks plot`` and the HTML page) draws every registered figure in registration
order (given a baseline report, a figure that declares ``beside`` draws the baseline's data beside the
run's); a figure whose ``needs`` are absent from ``results`` is skipped with its ``missing`` note, and a
draw function notes whatever else it skips (a metric without values, a task without prompts). One
declaration may write several PNGs (one per metric, per task, per hook); each is recorded in the
``PlotResult`` with the HTML section it belongs to.

A figure of one's own is one module that builds a ``FigureSpec`` and passes it to ``register`` (in a
``conftest.py`` or a plugin imported before ``make_plots`` runs); docs/extending.md shows one. Its draw
function reads the report (``sae_checks.results.Results.from_report``) and saves with
``plots_base.new_figure`` / ``plots_base.save``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sae_checks.report import plots_latents, plots_positions, plots_sweeps, plots_tasks
from sae_checks.report.plots_base import PlotResult


@dataclass(frozen=True, kw_only=True)
class FigureSpec:
    """One figure (or one family of PNGs drawn by one function)."""

    name: str  # "per_position"; the prefix of its notes
    needs: tuple[str, ...]  # keys of the report's ``results`` it reads; all must be present to draw
    draw: Callable[[Mapping[str, Any], Path], PlotResult]  # (report, out_dir) -> the PNGs written, notes
    outputs: Callable[[Mapping[str, Any]], list[str]]  # the PNG names it writes for a report with full data
    files: str  # the PNG names it writes, for people: "propagation_<metric>.png"
    missing: str = ""  # the note when a need is absent (default: "section missing; skipped <files>")
    beside: Callable[[Mapping[str, Any], Mapping[str, Any], Path], PlotResult] | None = None
    # (report, baseline, out_dir) -> the same PNGs with a baseline report's data beside this run's, drawn
    # instead of ``draw`` when a baseline is given (plot/html --baseline); None: the figure ignores baselines

    def skip_note(self, report: Mapping[str, Any]) -> str | None:
        """The note saying why this figure is not drawn for ``report``, or None when it can be."""
        results = report.get("results")
        absent = [k for k in self.needs if not isinstance(results, Mapping) or k not in results]
        if not absent:
            return None
        return f"{self.name}: {self.missing or f'section missing; skipped {self.files}'}"


_FIGURES: dict[str, FigureSpec] = {}


def register(figure: FigureSpec) -> FigureSpec:
    """Add a figure (or replace the one of that name); returns it."""
    _FIGURES[figure.name] = figure
    return figure


def unregister(name: str) -> None:
    """Remove a figure (a test's own)."""
    _FIGURES.pop(name, None)


def figures() -> tuple[FigureSpec, ...]:
    """Every registered figure, in drawing order."""
    return tuple(_FIGURES.values())


PER_POSITION = register(FigureSpec(
    name="per_position", needs=("per_position",), draw=plots_positions.plot_per_position,
    outputs=plots_positions.outputs,
    files="position_<metric>.png, layer_<metric>.png, resid_norm_by_layer.png, mse_vs_resid_norm.png",
    missing="section missing; skipped per-position, per-layer and residual-norm figures"))
SWEEPS = register(FigureSpec(
    name="sweeps", needs=("sweeps",), draw=plots_sweeps.plot_sweeps, outputs=plots_sweeps.outputs,
    files="sweep_<hook>.png", beside=plots_sweeps.plot_sweeps_beside,
    missing="no hook has two or more SAEs; skipped sweep_*.png"))
PROPAGATION = register(FigureSpec(
    name="propagation", needs=("propagation",), draw=plots_tasks.plot_propagation,
    outputs=plots_tasks.propagation_outputs, files="propagation_<metric>.png",
    missing="section missing; skipped propagation_*.png"))
CLOZE = register(FigureSpec(
    name="cloze", needs=("cloze",), draw=plots_tasks.plot_cloze, outputs=plots_tasks.cloze_outputs,
    files="cloze_<task>_{accuracy,ce,delta_logp_strip,prompt_scatter}.png",
    missing="section missing; skipped cloze_*.png"))
FEATURES = register(FigureSpec(
    name="features", needs=("features",), draw=plots_tasks.plot_features, outputs=plots_tasks.features_outputs,
    files="features_helpfulness.png",
    missing="section missing or without histograms; skipped features_helpfulness.png"))

LATENTS = register(FigureSpec(
    name="latents", needs=("latents",), draw=plots_latents.plot_latents, outputs=plots_latents.outputs,
    files="latents_density.png", missing="section missing; skipped latents_density.png"))


def expected_outputs(report: Mapping[str, Any]) -> list[str]:
    """Every PNG the registered figures write for ``report`` when its data is complete."""
    return [name for f in figures() if f.skip_note(report) is None for name in f.outputs(report)]
