"""Figures from ``results.propagation``, ``results.cloze``, ``results.features`` and the per-bucket
diff between two reports.

Reproduces Anders & Bloom (2024): error-propagation heatmaps (fractional change of a downstream SAE's
metric when an upstream SAE is spliced in, red = larger), cloze accuracy and CE per SAE against the
clean model per SAE, the per-SAE Δlog p strip plot, the per-prompt scatter coloured by outcome class, and
the feature-helpfulness histograms.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np
from matplotlib.colors import TwoSlopeNorm
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from sae_checks.metrics import registry
from sae_checks.report import plots_data as data
from sae_checks.report.plots_base import WIDE, PlotResult, layer_colors, new_figure, safe_name, save

DIFF_METRICS = ("fvu", "mse", "l0", "delta_ce", "kl", "explained_variance", "feat_l1", "cos")


# ------------------------------------------------------------------------------------- propagation


CLOZE_FIGURES = ("accuracy", "ce", "delta_logp_strip", "prompt_scatter")


def propagation_outputs(report: Mapping[str, Any]) -> list[str]:
    """The PNGs :func:`plot_propagation` writes for a report whose matrices are all there."""
    prop = data.propagation(report)
    return [f"propagation_{m}.png" for m in data.propagation_metrics()] if prop is not None else []


def cloze_outputs(report: Mapping[str, Any]) -> list[str]:
    """The PNGs :func:`plot_cloze` writes for a report whose tasks have every column."""
    return [f"cloze_{safe_name(task)}_{kind}.png" for task in data.cloze(report) for kind in CLOZE_FIGURES]


def features_outputs(report: Mapping[str, Any]) -> list[str]:
    """The PNG :func:`plot_features` writes when the report has feature histograms."""
    return ["features_helpfulness.png"] if data.feature_hists(report) else []


def plot_propagation(report: Mapping[str, Any], out_dir: Path) -> PlotResult:
    """One heatmap per metric (mse, l0, resid_norm): x = spliced upstream SAE, y = downstream SAE
    (labelled by name), colour = metric_with_upstream / metric_clean − 1, diverging and centred on zero."""
    result = PlotResult()
    prop = data.propagation(report)
    if prop is None:
        result.notes.append("propagation: section missing; skipped propagation_*.png")
        return result
    window = f"positions {prop.window[0]:g}–{prop.window[1]:g}" if prop.window else "all positions"
    for metric in data.propagation_metrics():
        matrix = prop.matrices.get(metric)
        if matrix is None or not np.isfinite(matrix).any():
            result.notes.append(f"propagation: no '{metric}' matrix; skipped propagation_{metric}.png")
            continue
        _heatmap(matrix, prop.labels, metric, window, out_dir, result)
    return result


def _propagation_label(metric: str) -> str:
    """The registry's label of a propagation metric ("downstream SAE MSE"); the name if it has none."""
    entry = registry.get("propagation", metric)
    return entry.label if entry else metric


def _heatmap(matrix: np.ndarray, layers: list[str], metric: str, window: str, out_dir: Path,
             result: PlotResult) -> None:
    img = np.ma.masked_invalid(matrix.T)  # rows = downstream j, columns = upstream i
    finite = matrix[np.isfinite(matrix)]
    span = max(float(np.abs(finite).max()), 1e-9)
    # TwoSlopeNorm needs vmin < 0 < vmax; a side with little or no data still gets a tenth of the
    # range, so the colour bar stays readable and zero stays white.
    norm = TwoSlopeNorm(vmin=min(float(finite.min()), -0.1 * span), vcenter=0.0,
                        vmax=max(float(finite.max()), 0.1 * span))
    cmap = matplotlib.colormaps["RdBu_r"].with_extremes(bad="0.92")
    longest = max((len(x) for x in layers), default=1)
    fig, axes = new_figure((8.0 + 0.05 * longest, 5.0 + 0.06 * longest))
    ax = axes[0, 0]
    mesh = ax.imshow(img, cmap=cmap, norm=norm, origin="lower", aspect="auto")
    n = len(layers)
    if n <= 16:
        for i in range(n):
            for j in range(n):
                v = matrix[i, j]
                if np.isfinite(v):
                    ax.text(i, j, f"{100 * v:+.0f}%", ha="center", va="center", fontsize=8,
                            color="white" if abs(norm(v) - 0.5) > 0.35 else "black")
    ax.set_xticks(range(n), layers, rotation=30 if longest > 3 else 0, ha="right" if longest > 3 else "center",
                  fontsize=8)
    ax.set_yticks(range(n), layers, fontsize=8)
    ax.set_xlabel("upstream SAE i (spliced in)")
    ax.set_ylabel("downstream SAE j (applied)")
    fig.colorbar(mesh, ax=ax, label=f"fractional change of {_propagation_label(metric)}\n"
                                    "(with upstream / clean − 1; 1 = +100%)")
    ax.legend(handles=[Patch(color="0.92", label="undefined (i ≥ j)")], fontsize=8, loc="lower right")
    save(fig, out_dir, f"propagation_{metric}.png",
         f"Error propagation: {_propagation_label(metric)} ({window})", "Error propagation", result)


# ------------------------------------------------------------------------------------------- cloze


def plot_cloze(report: Mapping[str, Any], out_dir: Path) -> PlotResult:
    """Per task: accuracy and CE per SAE with the clean baseline, the Δlog p strip plot and the
    per-prompt scatter; a note for each figure without data."""
    result = PlotResult()
    tasks = data.cloze(report)
    if not tasks:
        result.notes.append("cloze: section missing; skipped cloze_*.png")
        return result
    for task, t in tasks.items():
        name = safe_name(task)
        _cloze_accuracy(task, name, t, out_dir, result)
        _cloze_ce(task, name, t, out_dir, result)
        _cloze_strip(task, name, t, out_dir, result)
        _cloze_scatter(task, name, t, out_dir, result)
    return result


def _layer_x(names: list[str]) -> np.ndarray:
    """x positions of SAEs along a per-SAE axis (their order), tick labels are their names."""
    return np.arange(len(names), dtype=float)


def _sae_ticks(ax: Any, xs: np.ndarray, names: list[str]) -> None:
    long = max((len(n) for n in names), default=0) > 3
    ax.set_xticks(xs, names, rotation=30 if long else 0, ha="right" if long else "center", fontsize=8)


def _errorbar(ax: Any, xs: np.ndarray, ests: list[data.Estimate], scale: float, **kw: Any) -> None:
    mean = np.array([e.value for e in ests]) * scale
    lo = np.array([e.lo for e in ests]) * scale
    hi = np.array([e.hi for e in ests]) * scale
    yerr = np.vstack([np.where(np.isfinite(lo), mean - lo, 0), np.where(np.isfinite(hi), hi - mean, 0)])
    ax.errorbar(xs, mean, yerr=np.abs(yerr), marker="o", ms=4, capsize=3, lw=1.4, **kw)


def _cloze_accuracy(task: str, name: str, t: data.ClozeTask, out_dir: Path, result: PlotResult) -> None:
    metrics = t.accuracy_metrics()
    if not metrics:
        result.notes.append(f"cloze/{task}: no accuracy per SAE; skipped cloze_{name}_accuracy.png")
        return
    layers = list(t.per_sae)
    xs = _layer_x(layers)
    values = [t.per_sae[lay][m].value for lay in layers for m in metrics if m in t.per_sae[lay]]
    scale = 100.0 if np.nanmax(np.abs(values)) <= 1.0 else 1.0  # fractions shown as percent
    fig, axes = new_figure()
    ax = axes[0, 0]
    for k, metric in enumerate(metrics):
        color = f"C{k}"
        ests = [t.per_sae[lay].get(metric, data.Estimate(None, None)) for lay in layers]
        _errorbar(ax, xs, ests, scale, color=color, label=f"{metric}, SAE spliced")
        if metric in t.baseline and np.isfinite(t.baseline[metric].value):
            ax.axhline(t.baseline[metric].value * scale, color=color, ls="--", lw=1.2,
                       label=f"{metric}, clean baseline")
    _sae_ticks(ax, xs, layers)
    ax.set_xlabel("SAE spliced in")
    ax.set_ylabel("accuracy  [%]" if scale == 100.0 else "accuracy")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.13), ncol=2)
    save(fig, out_dir, f"cloze_{name}_accuracy.png", f"{task}: accuracy per SAE vs clean model",
         f"Cloze: {task}", result)


def _cloze_ce(task: str, name: str, t: data.ClozeTask, out_dir: Path, result: PlotResult) -> None:
    ce = t.ce_metric()
    if ce is None:
        result.notes.append(f"cloze/{task}: no answer CE or logp per SAE; skipped cloze_{name}_ce.png")
        return
    metric, sign = ce
    label = "−log p(answer first token)" if sign < 0 else metric
    layers = list(t.per_sae)
    xs = _layer_x(layers)
    ests = []
    for lay in layers:
        e = t.per_sae[lay].get(metric, data.Estimate(None, None))
        ests.append(data.Estimate(-e.value, (-e.hi, -e.lo) if e.ci else None) if sign < 0 else e)
    fig, axes = new_figure()
    ax = axes[0, 0]
    _errorbar(ax, xs, ests, 1.0, color="C3", label=f"{label}, SAE spliced")
    if metric in t.baseline and np.isfinite(t.baseline[metric].value):
        ax.axhline(sign * t.baseline[metric].value, color="black", ls="--", lw=1.2, label="clean baseline")
    _sae_ticks(ax, xs, layers)
    ax.set_xlabel("SAE spliced in")
    ax.set_ylabel(f"{label}  [nats / prompt, mean]")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    save(fig, out_dir, f"cloze_{name}_ce.png", f"{task}: answer CE per SAE vs clean model",
         f"Cloze: {task}", result)


def _cloze_strip(task: str, name: str, t: data.ClozeTask, out_dir: Path, result: PlotResult) -> None:
    layers = [lay for lay in t.prompts if "delta_logp" in t.prompts[lay]]
    if not layers:
        result.notes.append(f"cloze/{task}: no per-prompt delta_logp; skipped cloze_{name}_delta_logp_strip.png")
        return
    rng = np.random.default_rng(0)  # fixed jitter: same report, same picture
    colors = layer_colors(layers)
    fig, axes = new_figure()
    ax = axes[0, 0]
    for k, lay in enumerate(layers):
        y = t.prompts[lay]["delta_logp"]
        y = y[np.isfinite(y)]
        ax.scatter(k + rng.uniform(-0.3, 0.3, y.size), y, s=6, alpha=0.5, color=colors[lay], linewidths=0)
        ax.plot([k - 0.38, k + 0.38], [y.mean()] * 2, color="black", lw=2)
    ax.axhline(0.0, color="0.4", lw=1, ls=":")
    _sae_ticks(ax, np.arange(len(layers), dtype=float), layers)
    ax.set_xlabel("SAE spliced in")
    ax.set_ylabel("Δlog p(answer) = log p spliced − log p clean  [nats]")
    ax.grid(True, axis="y", alpha=0.3)
    ax.legend(handles=[Line2D([], [], ls="", marker="o", color="0.5", label="one prompt"),
                       Line2D([], [], color="black", lw=2, label="mean over prompts"),
                       Line2D([], [], color="0.4", ls=":", label="no change")], fontsize=8)
    save(fig, out_dir, f"cloze_{name}_delta_logp_strip.png", f"{task}: Δlog p of the answer per SAE",
         f"Cloze: {task}", result)


def _cloze_scatter(task: str, name: str, t: data.ClozeTask, out_dir: Path, result: PlotResult) -> None:
    layers = [lay for lay in t.prompts if "mse" in t.prompts[lay]]
    targets = [m for m in ("delta_ce", "delta_logp") if any(m in t.prompts[lay] for lay in layers)]
    if not layers or not targets:
        result.notes.append(f"cloze/{task}: no per-prompt mse with delta_ce/delta_logp; "
                            f"skipped cloze_{name}_prompt_scatter.png")
        return
    fig, axes = new_figure(WIDE, ncols=len(targets))
    seen: set[str] = set()
    for ax, target in zip(axes[0], targets, strict=True):
        for lay in layers:
            cols, classes = t.prompts[lay], t.classes.get(lay, [])
            if target not in cols:
                continue
            x, y = cols["mse"], cols[target]
            n = min(x.size, y.size)
            cls = np.array((classes + ["unknown"] * n)[:n])
            kinds, counts = np.unique(cls, return_counts=True)
            for c in kinds[np.argsort(-counts, kind="stable")]:  # rare classes drawn last, on top
                m = (cls == c) & np.isfinite(x[:n]) & np.isfinite(y[:n])
                ax.scatter(x[:n][m], y[:n][m], s=8, alpha=0.55, linewidths=0,
                           color=data.CLASS_COLORS.get(c, "0.5"))
                seen.add(c)
        ax.axhline(0.0, color="0.4", lw=1, ls=":")
        if np.nanmin(np.concatenate([t.prompts[lay]["mse"] for lay in layers])) > 0:
            ax.set_xscale("log")
        ax.set_xlabel("SAE MSE, mean over the prompt  [activation units²]")
        ax.set_ylabel("ΔCE, mean over the prompt  [nats / token]" if target == "delta_ce"
                      else "Δlog p(answer)  [nats]")
        ax.grid(True, alpha=0.3)
    handles = [Line2D([], [], ls="", marker="o", color=data.CLASS_COLORS.get(c, "0.5"),
                      label=data.CLASS_LABELS.get(c, c)) for c in sorted(seen, key=str)]
    axes[0, 0].legend(handles=handles, fontsize=8, title="outcome (clean vs spliced)")
    save(fig, out_dir, f"cloze_{name}_prompt_scatter.png",
         f"{task}: per prompt, MSE against ΔCE and Δlog p (all SAEs)", f"Cloze: {task}", result)


# ---------------------------------------------------------------------------------------- features


def plot_features(report: Mapping[str, Any], out_dir: Path) -> PlotResult:
    """Feature-helpfulness histograms: mean Δlog p (top) and score (bottom), one step line per SAE."""
    result = PlotResult()
    hists = data.feature_hists(report)
    if not hists:
        result.notes.append("features: section missing or without histograms; skipped features_helpfulness.png")
        return result
    kinds = [k for k in data.FEATURE_HISTS if k in hists]
    fig, axes = new_figure((8.0, 3.6 * len(kinds)), nrows=len(kinds))
    labels = {"mean_delta_logp": "mean Δlog p over prompts where the feature is active  [nats]",
              "score": "score = #(Δlog p > 0) − #(Δlog p < 0)  [prompts]"}
    for ax, kind in zip(axes[:, 0], kinds, strict=True):
        colors = layer_colors(list(hists[kind]))
        for lay, (edges, counts) in hists[kind].items():
            ax.stairs(counts, edges, color=colors[lay], lw=1.4, label=lay)
        ax.axvline(0.0, color="black", lw=1.2, label="zero (no effect)")
        if max(float(c.max()) for _, c in hists[kind].values()) > 100:
            ax.set_yscale("log")
        ax.set_xlabel(labels[kind])
        ax.set_ylabel("features  [count]")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8, ncol=2 if len(hists[kind]) > 6 else 1)
    save(fig, out_dir, "features_helpfulness.png", "Feature helpfulness histograms per SAE",
         "Features", result)
    return result


# -------------------------------------------------------------------------------------------- diff


def plot_bucket_diff(old: Mapping[str, Any], new: Mapping[str, Any], out_dir: Path) -> PlotResult:
    """Per SAE (matched by name) and bucket, the relative change (new − old) / |old| of each shared per-bucket metric,
    in percent: one panel per metric, bars per bucket, error bars √(h_old² + h_new²) / |old| from the
    two CI half-widths. Relative, so a 10% regression inside the context is as visible as one past it
    (absolute deltas past the context dwarf everything else)."""
    result = PlotResult()
    a, b = data.per_bucket(old), data.per_bucket(new)
    layers = sorted(set(a) & set(b), key=data.sae_sort_key(new))
    if not layers:
        result.notes.append("diff: no SAE has per_bucket results in both reports; skipped diff_buckets.png")
        return result
    buckets = sorted({bk for lay in layers for bk in set(a[lay]) & set(b[lay])}, key=data.bucket_sort_key)
    shared = {m for lay in layers for bk in buckets if bk in a[lay] and bk in b[lay]
              for m in set(a[lay][bk]) & set(b[lay][bk])}
    metrics = [m for m in DIFF_METRICS if m in shared][:6]
    if not metrics or not buckets:
        result.notes.append("diff: no shared per-bucket metric; skipped diff_buckets.png")
        return result
    ncols = min(3, len(metrics))
    nrows = -(-len(metrics) // ncols)
    fig, axes = new_figure((4.2 * ncols, 3.6 * nrows + 0.6), ncols=ncols, nrows=nrows)
    xs = np.arange(len(layers))
    width = 0.8 / len(buckets)
    for k, metric in enumerate(metrics):
        ax = axes[k // ncols, k % ncols]
        for q, bk in enumerate(buckets):
            d, err = [], []
            for lay in layers:
                e_old, e_new = a[lay].get(bk, {}).get(metric), b[lay].get(bk, {}).get(metric)
                if e_old is None or e_new is None or not abs(e_old.value) > 0:
                    d.append(np.nan)
                    err.append(0.0)
                    continue
                d.append(100 * (e_new.value - e_old.value) / abs(e_old.value))
                h = [(e.hi - e.lo) / 2 for e in (e_old, e_new) if np.isfinite(e.hi - e.lo)]
                err.append(100 * float(np.sqrt(sum(x * x for x in h))) / abs(e_old.value))
            ax.bar(xs + (q - (len(buckets) - 1) / 2) * width, d, width, yerr=err, capsize=2,
                   color=f"C{q}", label=f"bucket {bk}")
        ax.axhline(0.0, color="black", lw=0.8)
        _sae_ticks(ax, xs, layers)
        ax.set_xlabel("SAE")
        ax.set_ylabel(f"{metric}: (new − old) / |old|  [%]")
        ax.set_title(data.metric_label(metric), fontsize=9)
        ax.grid(True, axis="y", alpha=0.3)
        ax.legend(fontsize=7)
    for k in range(len(metrics), nrows * ncols):
        axes[k // ncols, k % ncols].set_visible(False)
    save(fig, out_dir, "diff_buckets.png", "Per-bucket relative change between reports, new vs old "
         "(bars ± combined CI half-width)", "Diff", result)
    return result
