"""Figures from ``results.per_position``: metrics against position (one panel per hook, the SAEs at that
hook overlaid and labelled by name, training context marked), against layer (one line per position of
the post's view, over the SAEs of the most common hook kind, one per layer), and the residual norm.

Reproduces Anders & Bloom (2024), figures 1-3: SAEs trained at context C are fine before C and blow
up after it; early layers degrade most past C. Position 0 (BOS) is excluded from every figure: it is
excluded from every mean (docs/definitions.md), and a log-x axis cannot show it.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np
from matplotlib.colors import LogNorm
from matplotlib.lines import Line2D

from sae_checks.metrics import registry
from sae_checks.report import plots_data as data
from sae_checks.report.plots_base import WIDE, PlotResult, layer_colors, new_figure, save

SECTION = "Per position and per layer"


def outputs(report: Mapping[str, Any]) -> list[str]:
    """The PNGs :func:`plot_per_position` writes for a report whose per-position data is complete."""
    if not data.per_position(report):
        return []
    curves = curve_metrics(data.per_position(report))
    return ([f"position_{m}.png" for m in curves] + [f"layer_{m}.png" for m in curves]
            + ["resid_norm_by_layer.png", "mse_vs_resid_norm.png"])


def _auto_log_y(ax: Any, values: list[np.ndarray]) -> None:
    """Log y when every value is positive and they span more than a factor of 50 (the blow-up
    past the training context spans orders of magnitude; a linear axis flattens the inside part)."""
    finite = np.concatenate([v[np.isfinite(v)] for v in values]) if values else np.zeros(0)
    if finite.size and finite.min() > 0 and finite.max() / finite.min() > 50:
        ax.set_yscale("log")


def _position_colors(positions: list[int]) -> tuple[dict[int, Any], LogNorm]:
    """Colour per position on a log scale (plasma), shared by the per-layer figures."""
    norm = LogNorm(vmin=max(min(positions), 1), vmax=max(max(positions), 2))
    cmap = matplotlib.colormaps["plasma"]
    return {p: cmap(0.85 * norm(max(p, 1))) for p in positions}, norm


def _mark_context(ax: Any, report: Mapping[str, Any], names: list[str], max_pos: float) -> None:
    """A dashed vertical line at each distinct training context size, labelled with its SAEs."""
    sizes = data.context_sizes(report)
    by_size: dict[int, list[str]] = {}
    for name in names:
        if name in sizes:
            by_size.setdefault(sizes[name], []).append(name)
    for k, (size, members) in enumerate(sorted(by_size.items())):
        if not 0 < size <= max_pos:
            continue
        who = "all SAEs" if len(members) == len(names) else ", ".join(members)
        ax.axvline(size, color="0.3", ls=("--", ":", "-.")[k % 3], lw=1.2,
                   label=f"training context = {size} ({who})")


def chain(report: Mapping[str, Any], names: list[str]) -> tuple[str, list[str]]:
    """(hook kind, one SAE per layer): the SAEs of the hook kind most of ``names`` share, the first by
    name at each layer (a sweep's other widths are in the sweep figure). Figures against layer use it."""
    info = data.saes(report)
    kinds: dict[str, dict[int, str]] = {}
    for name in names:
        sae = info.get(name)
        if sae is not None and sae.layer is not None:
            kinds.setdefault(sae.kind, {}).setdefault(sae.layer, name)
    if not kinds:  # nothing known about the SAEs: every name, in order
        return "", list(names)
    kind = max(kinds, key=lambda k: (len(kinds[k]), k == "hook_resid_pre"))
    return kind, [kinds[kind][layer] for layer in sorted(kinds[kind])]


def _layer_ticks(report: Mapping[str, Any], names: list[str]) -> tuple[np.ndarray, list[str]]:
    """x positions (the layers, else 0..n-1) and tick labels for SAEs drawn against layer."""
    info = data.saes(report)
    layers = [info[n].layer if n in info else None for n in names]
    if all(layer is not None for layer in layers):
        return np.array(layers, dtype=float), [str(layer) for layer in layers]
    return np.arange(len(names), dtype=float), list(names)


def curve_metrics(pp: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """Metrics drawn against position and against layer: the registry's bucket metrics marked ``curve``
    (read now: mse, l0, feat_l1, delta_ce, kl and any registered later), then the report's per-position
    metrics the registry does not know (a user's metric registered in the process that wrote the report)."""
    known = registry.metrics("bucket")
    others = {k for cols in pp.values() for k in cols} - {m.name for m in known} - {"position", "n_tokens"}
    return [*(m.name for m in known if m.curve), *sorted(others)]


def plot_per_position(report: Mapping[str, Any], out_dir: Path) -> PlotResult:
    """All per-position figures; a note for each one that has no data."""
    result = PlotResult()
    pp = data.per_position(report)
    if not pp:
        result.notes.append("per_position: section missing; skipped per-position, per-layer and "
                            "residual-norm figures")
        return result
    curves = curve_metrics(pp)
    for metric in curves:
        _metric_vs_position(report, pp, metric, out_dir, result)
    for metric in curves:
        _metric_vs_layer(report, pp, metric, out_dir, result)
    _resid_norm_vs_layer(report, pp, out_dir, result)
    _mse_vs_resid_norm(pp, out_dir, result)
    return result


def _metric_vs_position(report: Mapping[str, Any], pp: dict[str, dict[str, np.ndarray]], metric: str,
                        out_dir: Path, result: PlotResult) -> None:
    """``metric`` (mean over sequences) against token position, log-x: one panel per hook, one line per
    SAE at that hook (labelled by name), so a suite of many SAEs stays readable."""
    names = [n for n in pp if metric in pp[n] and np.isfinite(pp[n][metric]).any()]
    if not names:
        result.notes.append(f"per_position: no '{metric}' values; skipped position_{metric}.png")
        return
    groups = data.by_hook(report, names)
    ncols = min(3, len(groups))
    nrows = -(-len(groups) // ncols)
    fig, axes = new_figure((5.2 * ncols if ncols > 1 else 8.0, 4.2 * nrows + 0.4), ncols=ncols, nrows=nrows)
    for k, (hook, members) in enumerate(groups.items()):
        ax = axes[k // ncols, k % ncols]
        shown, max_pos = [], 1.0
        for q, name in enumerate(members):
            pos, y = pp[name]["position"], pp[name][metric]
            n = min(pos.size, y.size)
            keep = (pos[:n] > 0) & np.isfinite(y[:n])
            ax.plot(pos[:n][keep], y[:n][keep], color=f"C{q % 10}", lw=1.4, label=name)
            shown.append(y[:n][keep])
            max_pos = max(max_pos, float(np.nanmax(pos[:n])))
        ax.set_xscale("log", base=2)
        _auto_log_y(ax, shown)
        _mark_context(ax, report, members, max_pos)
        ax.set_title(hook, fontsize=9)
        ax.set_xlabel("token position t (log; BOS excluded)")
        ax.set_ylabel(data.metric_label(metric))
        ax.grid(True, which="major", alpha=0.3)
        ax.legend(fontsize=7)
    for k in range(len(groups), nrows * ncols):
        axes[k // ncols, k % ncols].set_visible(False)
    save(fig, out_dir, f"position_{metric}.png",
         f"{metric} by token position, one panel per hook, one line per SAE", SECTION, result)


def _metric_vs_layer(report: Mapping[str, Any], pp: dict[str, dict[str, np.ndarray]], metric: str,
                     out_dir: Path, result: PlotResult) -> None:
    """``metric`` against layer, one line per position of the post's view (1, 2, 4, ..., T−2), over
    one SAE per layer (:func:`chain`)."""
    kind, layers = chain(report, [n for n in pp if metric in pp[n] and np.isfinite(pp[n][metric]).any()])
    if not layers:
        result.notes.append(f"per_position: no '{metric}' values; skipped layer_{metric}.png")
        return
    positions = sorted({p for layer in layers for p in data.post_positions(pp[layer]["position"])})
    if not positions:
        result.notes.append(f"per_position: no positions for '{metric}'; skipped layer_{metric}.png")
        return
    colors, _ = _position_colors(positions)
    last = max(positions)
    fig, axes = new_figure()
    ax = axes[0, 0]
    shown = []
    xs, ticks = _layer_ticks(report, layers)
    for p in positions:
        ys = np.array([_value_at(pp[layer], metric, p) for layer in layers])
        if not np.isfinite(ys).any():
            continue
        label = f"t = {p}" + (" (T−2)" if p == last and p not in data.POST_POSITIONS else "")
        ax.plot(xs, ys, marker="o", ms=4, lw=1.3, color=colors[p], label=label)
        shown.append(ys)
    _auto_log_y(ax, shown)
    ax.set_xticks(xs, ticks)
    ax.set_xlabel(f"layer L (SAE at blocks.L.{kind})" if kind else "SAE")
    ax.set_ylabel(data.metric_label(metric))
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8, title="token position", loc="center left", bbox_to_anchor=(1.01, 0.5))
    save(fig, out_dir, f"layer_{metric}.png", f"{metric} by layer, one line per token position",
         SECTION, result)


def _value_at(arrays: dict[str, np.ndarray], metric: str, position: int) -> float:
    """``arrays[metric]`` at ``position`` (looked up in the position array), nan when absent."""
    pos, y = arrays["position"], arrays.get(metric, np.zeros(0))
    idx = np.flatnonzero(pos == position)
    return float(y[idx[0]]) if idx.size and idx[0] < y.size else float("nan")


def _mean_over_positions(arrays: dict[str, np.ndarray], metric: str) -> float:
    """Token-weighted mean of a per-position metric over positions ≥ 1 (weights: ``n_tokens``)."""
    pos, y = arrays["position"], arrays.get(metric, np.zeros(0))
    n = min(pos.size, y.size)
    w = arrays.get("n_tokens", np.ones(n))[:n] if arrays.get("n_tokens", np.zeros(0)).size >= n else np.ones(n)
    keep = (pos[:n] > 0) & np.isfinite(y[:n]) & np.isfinite(w) & (w > 0)
    return float(np.average(y[:n][keep], weights=w[keep])) if keep.any() else float("nan")


def _resid_norm_vs_layer(report: Mapping[str, Any], pp: dict[str, dict[str, np.ndarray]], out_dir: Path,
                         result: PlotResult) -> None:
    """Mean residual norm against layer: all positions (token-weighted) and the post's positions."""
    kind, layers = chain(report, [n for n in pp if np.isfinite(pp[n].get("resid_norm", np.zeros(0))).any()])
    if not layers:
        result.notes.append("per_position: no 'resid_norm' values; skipped resid_norm_by_layer.png "
                            "and mse_vs_resid_norm.png")
        return
    fig, axes = new_figure()
    ax = axes[0, 0]
    xs, ticks = _layer_ticks(report, layers)
    positions = sorted({p for layer in layers for p in data.post_positions(pp[layer]["position"])})
    colors, _ = _position_colors(positions or [1])
    for p in positions:
        ys = np.array([_value_at(pp[layer], "resid_norm", p) for layer in layers])
        ax.plot(xs, ys, marker="o", ms=3, lw=1.0, color=colors[p], alpha=0.8, label=f"t = {p}")
    mean = np.array([_mean_over_positions(pp[layer], "resid_norm") for layer in layers])
    ax.plot(xs, mean, color="black", lw=2.2, ls="--", marker="s", label="mean over t ≥ 1")
    ax.set_xticks(xs, ticks)
    ax.set_xlabel(f"layer L (at blocks.L.{kind})" if kind else "SAE")
    ax.set_ylabel(data.metric_label("resid_norm"))
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8, title="token position", loc="center left", bbox_to_anchor=(1.01, 0.5))
    save(fig, out_dir, "resid_norm_by_layer.png", "Mean residual-stream norm by layer", SECTION, result)


def _mse_vs_resid_norm(pp: dict[str, dict[str, np.ndarray]], out_dir: Path, result: PlotResult) -> None:
    """MSE against residual norm, one point per (SAE, position ≥ 1): coloured by position (left)
    and by SAE (right), as in the post."""
    pts: list[tuple[str, np.ndarray, np.ndarray, np.ndarray]] = []
    for layer, arrays in pp.items():
        pos = arrays["position"]
        x, y = arrays.get("resid_norm", np.zeros(0)), arrays.get("mse", np.zeros(0))
        n = min(pos.size, x.size, y.size)
        keep = (pos[:n] > 0) & np.isfinite(x[:n]) & np.isfinite(y[:n])
        if keep.any():
            pts.append((layer, pos[:n][keep], x[:n][keep], y[:n][keep]))
    if not pts:
        result.notes.append("per_position: no (resid_norm, mse) pairs; skipped mse_vs_resid_norm.png")
        return
    fig, axes = new_figure(WIDE, ncols=2, sharey=True)
    left, right = axes[0]
    all_pos = np.concatenate([p for _, p, _, _ in pts])
    norm = LogNorm(vmin=max(all_pos.min(), 1), vmax=max(all_pos.max(), 2))
    colors = layer_colors([layer for layer, *_ in pts])
    for layer, pos, x, y in pts:
        sc = left.scatter(x, y, c=pos, cmap="plasma", norm=norm, s=8, alpha=0.7, linewidths=0)
        right.scatter(x, y, color=colors[layer], s=8, alpha=0.7, linewidths=0, label=layer)
    fig.colorbar(sc, ax=left, label="token position t (log scale)")
    left.legend(handles=[Line2D([], [], ls="", marker="o", color="0.4", label="one point per (SAE, t)")],
                fontsize=8, loc="upper left")
    right.legend(fontsize=8, ncol=2 if len(pts) > 6 else 1, markerscale=2)
    for ax in (left, right):
        xs = np.concatenate([x for _, _, x, _ in pts])
        ys = np.concatenate([y for _, _, _, y in pts])
        if xs.min() > 0:
            ax.set_xscale("log")
        if ys.min() > 0:
            ax.set_yscale("log")
        ax.set_xlabel(data.metric_label("resid_norm"))
        ax.grid(True, alpha=0.3)
    left.set_ylabel(data.metric_label("mse"))
    left.set_title("coloured by token position")
    right.set_title("coloured by SAE")
    save(fig, out_dir, "mse_vs_resid_norm.png", "Reconstruction MSE against residual norm", SECTION, result)
