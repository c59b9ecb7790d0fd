"""Latent-health figures: each SAE's log10 firing-density histogram (``results.latents[sae]``), and with a
baseline report both versions overlaid (docs/definitions.md#latent-health). JSON only, no torch."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from sae_checks.report.plots_base import PlotResult, new_figure, save
from sae_checks.results import Results

SECTION = "Latent health"
MAX_PANELS = 12  # SAEs drawn in one figure (first in forward order); the report holds them all


def _histograms(report: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """SAE -> its latents entry, for the SAEs with a usable histogram, in forward order."""
    latents = Results.from_report(report).section("latents") or {}
    out = {}
    for sae, h in latents.items():
        hist = h.get("density_histogram") if isinstance(h, Mapping) else None
        if isinstance(hist, Mapping) and len(hist.get("log10_edges") or []) == len(hist.get("counts") or []) + 1:
            out[str(sae)] = dict(h)
    return out


def outputs(report: Mapping[str, Any]) -> list[str]:
    return ["latents_density.png"] if _histograms(report) else []


def _panels(n: int) -> tuple[int, int]:
    cols = min(n, 4)
    return (n + cols - 1) // cols, cols


def _draw(report_sets: list[tuple[str, dict[str, dict[str, Any]]]], names: list[str], out_dir: Path, name: str,
          title: str, result: PlotResult) -> None:
    rows, cols = _panels(len(names))
    fig, axes = new_figure((3.2 * cols, 2.9 * rows + 1.0), ncols=cols, nrows=rows, sharey=False)
    for i, sae in enumerate(names):
        ax = axes[i // cols, i % cols]
        for label, hists in report_sets:
            h = hists.get(sae)
            if h is None:
                continue
            edges, counts = h["density_histogram"]["log10_edges"], h["density_histogram"]["counts"]
            ax.stairs(counts, edges, label=f"{label}: dead {h.get('n_dead')} of {h.get('d_sae')}")
        ax.set_title(sae, fontsize=8)
        ax.set_xlabel("log10 firing density", fontsize=7)
        ax.set_ylabel("latents", fontsize=7)
        ax.tick_params(labelsize=7)
        ax.legend(fontsize=6)
    for j in range(len(names), rows * cols):
        axes[j // cols, j % cols].set_visible(False)
    save(fig, out_dir, name, title, SECTION, result)


def plot_latents(report: Mapping[str, Any], out_dir: Path) -> PlotResult:
    """``latents_density.png``: per SAE, how many latents fire at each log10 density (dead ones counted in
    the legend: log10 0 is -inf), over the report's ``n_tokens``."""
    result = PlotResult()
    hists = _histograms(report)
    if not hists:
        result.notes.append("latents: no density histograms; skipped latents_density.png")
        return result
    names = list(hists)[:MAX_PANELS]
    tokens = {h.get("n_tokens") for h in hists.values()}
    _draw([("this run", hists)], names, out_dir, "latents_density.png",
          f"Latent firing density (over {', '.join(map(str, sorted(t for t in tokens if t is not None)))} tokens)",
          result)
    return result


def plot_latents_diff(old: Mapping[str, Any], new: Mapping[str, Any], out_dir: Path) -> PlotResult:
    """``diff_latents_density.png``: each SAE in both reports, the baseline's histogram over the new one's."""
    result = PlotResult()
    a, b = _histograms(old), _histograms(new)
    names = [n for n in b if n in a][:MAX_PANELS]
    if not names:
        result.notes.append("diff: no SAE has a density histogram in both reports; skipped diff_latents_density.png")
        return result
    _draw([("baseline", a), ("new", b)], names, out_dir, "diff_latents_density.png",
          "Latent firing density: baseline and new", result)
    return result
