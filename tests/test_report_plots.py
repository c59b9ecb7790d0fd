"""Tests for sae_checks.report.plots: every figure from a full report, skips with notes from partial
ones, nothing left open in pyplot, readable PNGs.

``build_report`` makes a realistic report dict here (4 layers, 256 positions, buckets 1-32 and 32-256,
a v1-style SAE trained at context 32 whose metrics jump past position 32), written in the schema_version 1
layout and upgraded (``upgrade_report``) as ``read_report`` does; the example suite report of tests/data
(7 SAEs, a sweep) is plotted as well.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from sae_checks.report import figures, plots_data
from sae_checks.report.io import read_report
from sae_checks.report.plots import make_diff_plots, make_plots
from sae_checks.report.upgrade import upgrade_report

DATA = Path(__file__).parent / "data"
LAYERS = (0, 1, 2, 3)
T = 256
CONTEXT = 32
BUCKETS = ("1-32", "32-256")
PP_METRICS = ("mse", "fvu", "explained_variance", "l0", "feat_l1", "resid_norm", "cos",
              "ce_clean", "ce_spliced", "delta_ce", "kl", "n_tokens")


def _r(x: float) -> float:
    return round(float(x), 6)


def _ci(mean: float, half: float) -> dict[str, Any]:
    return {"mean": _r(mean), "ci": [_r(mean - half), _r(mean + half)]}


def build_report(seed: int = 0, blowup: float = 1.0) -> dict[str, Any]:
    """:func:`build_v1_report` upgraded to the current layout (keyed by SAE name), plus the sections version 1
    never had (latent health: a density histogram per SAE, dead latents apart)."""
    report = upgrade_report(build_v1_report(seed, blowup))
    rng = np.random.default_rng(seed + 1)
    edges = [-8 + 0.25 * i for i in range(33)]
    report["results"]["latents"] = {
        name: {"n_tokens": 64 * (T - 1), "d_sae": 512, "n_dead": int(rng.integers(0, 5)), "frac_dead": 0.01,
               "density_histogram": {"log10_edges": edges,
                                     "counts": np.histogram(rng.normal(-1.5, 0.4, 500), bins=edges)[0].tolist()}}
        for name in report["results"]["per_bucket"]}
    return report


def build_v1_report(seed: int = 0, blowup: float = 1.0) -> dict[str, Any]:
    """A version 1 report dict shaped like docs/report.md#versions-and-upgrade, every section present.

    ``blowup`` scales how much the metrics jump past the training context (a v2 SAE: smaller)."""
    rng = np.random.default_rng(seed)
    pos = np.arange(T)
    beyond = pos >= CONTEXT
    per_position, per_bucket, ctx_gen = {}, {}, {}
    for layer in LAYERS:
        # Early layers degrade most past the context, late layers most inside (the post's finding).
        jump = blowup * (40.0 / (1 + layer)) * (1 + 0.02 * (pos - CONTEXT)) * beyond + 1.0
        noise = 1 + 0.05 * rng.standard_normal(T)
        resid = (20 + 15 * layer) * (1 + 0.002 * pos) * noise
        resid[0] = 3000.0  # BOS
        mse = (2.0 + 1.5 * layer) * jump * noise
        l0 = (12 + 3 * layer) * jump * noise
        fvu = np.clip(0.05 * (1 + 0.3 * layer) * jump * noise, 0, 5)
        dce = (0.03 + 0.02 * layer) * jump * noise
        arr = {
            "mse": mse, "fvu": fvu, "explained_variance": 1 - fvu, "l0": l0, "feat_l1": 3 * l0 * noise,
            "resid_norm": resid, "cos": np.clip(1 - fvu / 2, 0, 1), "ce_clean": 3.5 - 0.3 * np.log1p(pos),
            "delta_ce": dce, "kl": 0.9 * dce, "n_tokens": np.full(T, 64.0),
        }
        arr["ce_spliced"] = arr["ce_clean"] + dce
        entry: dict[str, Any] = {"position": pos.tolist()}
        for m in PP_METRICS:
            vals = [_r(v) for v in arr[m]]
            if m in ("ce_clean", "ce_spliced", "delta_ce", "kl"):
                vals[-1] = None  # no prediction at T-1
            if m != "n_tokens" and m != "resid_norm":
                vals[0] = None  # BOS excluded
            entry[m] = vals
        per_position[str(layer)] = entry
        per_bucket[str(layer)] = {}
        for bucket, mask in zip(BUCKETS, (~beyond & (pos > 0), beyond & (pos < T - 1)), strict=True):
            per_bucket[str(layer)][bucket] = {
                m: _ci(arr[m][mask].mean(), 0.05 * abs(arr[m][mask].mean())) for m in PP_METRICS[:-1]
            }
        ctx_gen[str(layer)] = {
            m: {"inside": BUCKETS[0], "beyond": BUCKETS[1],
                "ratio": _r(per_bucket[str(layer)][BUCKETS[1]][m]["mean"] / per_bucket[str(layer)][BUCKETS[0]][m]["mean"]),
                "ci": [0.0, 0.0]}
            for m in ("fvu", "l0", "delta_ce", "kl", "mse")
        }
        for m in ctx_gen[str(layer)]:
            r = ctx_gen[str(layer)][m]["ratio"]
            ctx_gen[str(layer)][m]["ci"] = [_r(0.9 * r), _r(1.1 * r)]
    n = len(LAYERS)
    prop = {"layers": list(LAYERS), "window": [1, 100]}
    for m, scale in (("mse", 1.0), ("l0", 0.6), ("resid_norm", -0.05)):
        prop[m] = [[_r(scale * (0.2 + 0.3 * j - 0.1 * i) + 0.05 * rng.standard_normal()) if i < j else None
                    for j in range(n)] for i in range(n)]
    n_prompts = 60
    classes = ("both_right", "both_wrong", "clean_only", "spliced_only")
    cloze: dict[str, Any] = {}
    for task, base_acc in (("lambada", 0.266), ("cbt", 0.419)):
        per_layer, prompts = {}, {}
        for layer in LAYERS:
            acc = base_acc - 0.015 * layer
            per_layer[str(layer)] = {
                "acc_first_token": _ci(acc, 0.03), "acc_word": _ci(acc - 0.05, 0.03),
                "logp": _ci(-4.0 - 0.2 * layer, 0.1), "delta_logp": _ci(-0.1 - 0.1 * layer, 0.05),
                "delta_ce": _ci(0.05 + 0.03 * layer, 0.01), "mse": _ci(2 + 1.5 * layer, 0.2),
                "l0": _ci(12 + 3 * layer, 1.0),
            }
            prompts[str(layer)] = {
                "delta_logp": [_r(v) for v in -0.1 * layer + 0.5 * rng.standard_normal(n_prompts)],
                "delta_ce": [_r(v) for v in 0.05 + 0.03 * layer + 0.02 * rng.standard_normal(n_prompts)],
                "mse": [_r(v) for v in (2 + 1.5 * layer) * np.exp(0.3 * rng.standard_normal(n_prompts))],
                "l0": [_r(v) for v in 12 + 3 * layer + rng.standard_normal(n_prompts)],
                "class": [classes[k] for k in rng.choice(4, n_prompts, p=[0.22, 0.7, 0.05, 0.03])],
            }
        cloze[task] = {"baseline": {"acc_first_token": base_acc, "acc_word": base_acc - 0.05, "logp": -3.9},
                       "per_layer": per_layer, "prompts": prompts}
    cloze["cbt"]["baseline"]["acc_choice"] = 0.6
    for layer in LAYERS:
        cloze["cbt"]["per_layer"][str(layer)]["acc_choice"] = _ci(0.58 - 0.02 * layer, 0.03)
    features = {}
    for layer in LAYERS:
        md = rng.normal(-0.1 * (layer + 1), 0.3, 2000)
        sc = np.round(rng.normal(-3 - layer, 3, 2000))
        h1, e1 = np.histogram(md, bins=40)
        h2, e2 = np.histogram(sc, bins=np.arange(sc.min() - 0.5, sc.max() + 1.5))
        features[str(layer)] = {
            "hist": {"mean_delta_logp": {"bins": [_r(x) for x in e1], "counts": h1.tolist()},
                     "score": {"bins": [_r(x) for x in e2], "counts": h2.tolist()}},
            "top": [{"feature": 7, "mean_delta_logp": 0.8, "score": 5, "n_prompts": 9}],
            "bottom": [{"feature": 3, "mean_delta_logp": -1.2, "score": -9, "n_prompts": 11}],
        }
    checks = []
    for layer in LAYERS:
        for bucket in BUCKETS:
            for m in ("fvu", "l0", "delta_ce"):
                est = per_bucket[str(layer)][bucket][m]
                bad = bucket == BUCKETS[1] and layer < 2
                checks.append({
                    "id": f"{m}/layer={layer}/bucket={bucket}", "metric": m, "layer": layer, "bucket": bucket,
                    "value": est["mean"], "ci": est["ci"], "baseline": _r(est["mean"] * (0.5 if bad else 1.0)),
                    "limit": None, "direction": "lower", "status": "fail" if bad else "pass",
                    "message": f"{m} {est['mean']:.3g} > baseline band <script>alert(1)</script>" if bad else "",
                })
    checks[1]["status"] = "warn"
    checks[2]["status"] = "improved"
    checks.append({"id": "acc_first_token/layer=3/task=lambada", "metric": "acc_first_token", "layer": 3,
                   "bucket": None, "value": 0.22, "ci": [0.19, 0.25], "baseline": None, "limit": None,
                   "direction": "higher", "status": "new", "message": "no baseline entry"})
    summary: dict[str, int] = {}
    for c in checks:
        summary[c["status"]] = summary.get(c["status"], 0) + 1
    return {
        "schema_version": 1,
        "provenance": {
            "sae_checks": "0.1.0", "torch": "2.13.0", "transformer_lens": "3.9.0", "sae_lens": "6.54.0",
            "device": "cpu", "dtype": "float32", "git_commit": "abc1234", "created": "2025-11-25T03:00:00Z",
            "model": "zoo",
            "saes": [{"layer": layer, "hook": f"blocks.{layer}.hook_resid_pre", "release": "zoo:v1",
                      "id": f"blocks.{layer}.hook_resid_pre", "sha256": "0" * 64, "context_size": CONTEXT}
                     for layer in LAYERS],
            "data": {"dataset": "zoo-text <&>", "split": "train", "revision": "", "n_sequences": 64,
                     "ctx_len": T, "seed": 0},
        },
        "config": {"layers": list(LAYERS), "ctx_len": T, "buckets": "auto", "exclude_bos": True},
        "results": {"per_position": per_position, "per_bucket": per_bucket,
                    "context_generalization": ctx_gen, "propagation": prop, "cloze": cloze,
                    "features": features, "buckets": {str(layer): list(BUCKETS) for layer in LAYERS},
                    "context_size": {str(layer): CONTEXT for layer in LAYERS}},
        "checks": checks,
        "summary": summary,
    }


def minimal_report() -> dict[str, Any]:
    """Provenance, one layer of per-position results and the checks; every other section missing."""
    full = build_v1_report()
    return upgrade_report({"schema_version": 1, "provenance": full["provenance"], "config": {},
                           "results": {"per_position": {"2": full["results"]["per_position"]["2"]}},
                           "checks": full["checks"][:3], "summary": {"pass": 3}})




def _assert_png(path: Path, min_px: tuple[int, int] = (600, 350)) -> None:
    """A real PNG, at least ``min_px`` (width, height) at dpi 100, not blank."""
    import matplotlib.image as mpimg

    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", path
    img = mpimg.imread(path)
    h, w = img.shape[:2]
    assert w >= min_px[0] and h >= min_px[1], (path.name, w, h)
    assert img[..., :3].std() > 0.01, f"{path.name} looks blank"


@pytest.fixture(scope="module")
def full_plots(tmp_path_factory: pytest.TempPathFactory):
    """The full report drawn once for the module (rendering is the slow part: ~0.1-1 s a figure)."""
    out = tmp_path_factory.mktemp("full")
    report = build_report()
    before = copy.deepcopy(report)
    result = make_plots(report, out)
    assert report == before, "make_plots mutated the report"
    return result, out


@pytest.fixture
def no_raster(monkeypatch: pytest.MonkeyPatch) -> None:
    """Build every figure but skip rasterizing it (a stub file is written): for tests of which
    figures are made or skipped, not of how they look. The full-report test draws for real."""
    from matplotlib.figure import Figure

    monkeypatch.setattr(Figure, "savefig", lambda self, target, **kw: target.write(b"stub"))  # save() renders to a buffer


def test_full_report_produces_every_figure(full_plots) -> None:
    """Every registered figure writes what its declaration says for this report (nothing else)."""
    result, out = full_plots
    names = [p.name for p in result.paths]
    expected = figures.expected_outputs(build_report())
    assert sorted(names) == sorted(expected), set(names) ^ set(expected)
    drawn = {f.name for f in figures.figures() if f.outputs(build_report())}
    assert drawn == {f.name for f in figures.figures()} - {"sweeps"}  # the report has no sweep
    assert result.notes == ["sweeps: no hook has two or more SAEs; skipped sweep_*.png"], result.notes
    for fig in result.figures:
        assert fig.path.parent == out and fig.title and fig.section
        _assert_png(fig.path)


def test_figures_are_not_left_open(full_plots) -> None:
    import matplotlib.pyplot as plt

    assert plt.get_fignums() == []


def test_minimal_report_skips_missing_sections_with_notes(tmp_path: Path) -> None:
    """Drawn for real: the one-layer report's figures are readable too."""
    result = make_plots(minimal_report(), tmp_path)
    names = {p.name for p in result.paths}
    assert "position_mse.png" in names and "layer_l0.png" in names and "mse_vs_resid_norm.png" in names
    assert not any(n.startswith(("propagation_", "cloze_", "features_")) for n in names), names
    joined = "\n".join(result.notes)
    for section in ("propagation", "cloze", "features"):
        assert f"{section}: section missing" in joined, result.notes
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(names)
    for p in result.paths:
        _assert_png(p)


@pytest.mark.parametrize("section", [k for f in figures.figures() for k in f.needs if k != "sweeps"])  # no sweep here
def test_each_missing_section_is_skipped_alone(tmp_path: Path, section: str, no_raster: None) -> None:
    report = build_report()
    del report["results"][section]
    result = make_plots(report, tmp_path)
    notes = [n for n in result.notes if not n.startswith("sweeps:")]
    assert any(n.startswith(f"{section}: section missing") for n in notes), result.notes
    assert len(notes) == 1, result.notes
    assert result.paths, "other sections still plotted"


@pytest.mark.parametrize("report", [{}, {"results": None}, {"results": {"per_position": {"0": {}}}},
                                    {"results": {"propagation": {"mse": [[None]]}, "cloze": {"x": 3}}}, []])
def test_degenerate_reports_do_not_crash(tmp_path: Path, report: Any) -> None:
    result = make_plots(report, tmp_path)
    assert result.paths == [] and result.notes


def test_partial_metrics_give_per_figure_notes(tmp_path: Path, no_raster: None) -> None:
    report = build_report()
    for entry in report["results"]["per_position"].values():
        entry["kl"] = [None] * T
    del report["results"]["propagation"]["l0"]
    result = make_plots(report, tmp_path)
    names = {p.name for p in result.paths}
    assert "position_kl.png" not in names and "layer_kl.png" not in names
    assert "propagation_l0.png" not in names and "propagation_mse.png" in names
    assert any("position_kl.png" in n for n in result.notes)
    assert any("propagation_l0.png" in n for n in result.notes)


def test_cloze_and_feature_key_variants(tmp_path: Path, no_raster: None) -> None:
    """Inner-key variants the cloze/features runners may emit still plot."""
    report = build_report()
    task = report["results"]["cloze"]["lambada"]
    del report["results"]["cloze"]["cbt"]
    del report["results"]["per_position"], report["results"]["propagation"]
    for layer, cols in task.pop("prompts").items():  # list of dicts, other class spellings
        n = len(cols["mse"])
        cls = [{"clean_only": "only clean", "spliced_only": "only-spliced"}.get(c, c) for c in cols["class"]]
        task.setdefault("per_prompt", {})[layer] = [
            {"delta_logp": cols["delta_logp"][i], "delta_ce": cols["delta_ce"][i], "mse": cols["mse"][i],
             "outcome": cls[i]} for i in range(n)]
    for metrics in task["per_sae"].values():  # bare numbers instead of {"mean", "ci"}
        for k in metrics:
            metrics[k] = metrics[k]["mean"]
    for entry in report["results"]["features"].values():  # centres instead of edges; raw scores
        h = entry.pop("hist")
        edges = np.array(h["mean_delta_logp"]["bins"])
        entry["histogram"] = {"mean_delta_logp": {"bins": ((edges[1:] + edges[:-1]) / 2).tolist(),
                                                  "counts": h["mean_delta_logp"]["counts"]},
                              "score": [1, -2, 3, 0, -5, -1, -1]}
    result = make_plots(report, tmp_path)
    names = {p.name for p in result.paths}
    for k in ("accuracy", "ce", "delta_logp_strip", "prompt_scatter"):
        assert f"cloze_lambada_{k}.png" in names, result.notes
    assert "features_helpfulness.png" in names, result.notes


def test_diff_plots(tmp_path: Path) -> None:
    old, new = build_report(seed=0), build_report(seed=1, blowup=0.2)
    result = make_diff_plots(old, new, tmp_path)
    assert [p.name for p in result.paths] == ["diff_buckets.png", "diff_latents_density.png"] and result.notes == []
    for path in result.paths:
        _assert_png(path)
    empty = make_diff_plots(old, {"results": {}}, tmp_path / "e")
    assert empty.paths == [] and all("diff" in note for note in empty.notes)


def test_builder_report_is_json(tmp_path: Path) -> None:
    """The builder makes what a report file holds: it survives a JSON round trip unchanged."""
    report = build_report()
    assert json.loads(json.dumps(report, allow_nan=False)) == report


@pytest.mark.parametrize("name", ["report_minimal.json", "report_v1.json"])
def test_example_reports_from_tests_data(tmp_path: Path, name: str, no_raster: None) -> None:
    """The example reports of tests/data plot without error (version 1 upgraded on read)."""
    result = make_plots(read_report(DATA / name), tmp_path)
    assert result.paths or result.notes


@pytest.fixture(scope="module")
def suite_plots(tmp_path_factory: pytest.TempPathFactory):
    """The example suite (7 SAEs at 6 hooks, a sweep of two widths at blocks.1.hook_resid_pre), drawn once."""
    out = tmp_path_factory.mktemp("suite")
    report = read_report(DATA / "report_full.json")
    return report, make_plots(report, out)


def test_suite_report_draws_the_sweep_frontier(suite_plots) -> None:
    report, result = suite_plots
    sweep = [f for f in result.figures if f.name.startswith("sweep_")]
    assert [f.name for f in sweep] == ["sweep_blocks.1.hook_resid_pre.png"]
    assert sweep[0].section == "Sweeps" and "L0 against fvu and delta_ce" in sweep[0].title
    _assert_png(sweep[0].path, (1000, 450))
    assert not any(n.startswith("sweeps:") for n in result.notes), result.notes
    for fig in result.figures:
        _assert_png(fig.path)


def test_sweep_figure_only_with_sweeps(tmp_path: Path, no_raster: None) -> None:
    report = read_report(DATA / "report_full.json")
    del report["results"]["sweeps"]
    result = make_plots(report, tmp_path)
    assert not any(p.name.startswith("sweep_") for p in result.paths)
    assert "sweeps: no hook has two or more SAEs; skipped sweep_*.png" in result.notes
    report["results"]["sweeps"] = {"blocks.9.hook_resid_pre": ["ghost1", "ghost2"]}  # no results for them
    result = make_plots(report, tmp_path / "ghost")
    assert not any(p.name.startswith("sweep_") for p in result.paths)
    assert any("fewer than two SAEs at blocks.9.hook_resid_pre" in n for n in result.notes)


def test_positions_one_panel_per_hook_and_names(suite_plots) -> None:
    report, result = suite_plots
    groups = plots_data.by_hook(report, list(plots_data.per_position(report)))
    assert len(groups) == 6 and groups["blocks.1.hook_resid_pre"] == ["blocks.1.hook_resid_pre",
                                                                       "blocks.1.hook_resid_pre.w1024"]
    assert plots_data.propagation(report).labels == [f"blocks.{L}.hook_resid_pre" for L in range(4)]
    names = {p.name for p in result.paths}
    assert {"position_mse.png", "layer_mse.png", "propagation_mse.png", "cloze_lambada_accuracy.png"} <= names
