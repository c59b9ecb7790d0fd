"""The sweep figure with a baseline (``report/plots_sweeps.py``): ``sweep_<hook>.png`` draws the baseline's SAEs
at the hook as hollow markers beside the new report's filled ones and joins each SAE's two points, through
``make_plots(..., baseline=)`` as ``sae-checks plot --baseline`` and the HTML page (``html --baseline``) call it.

The new report is the example suite of tests/data (a sweep of two widths at ``blocks.1.hook_resid_pre``); the
baseline is that report with the sweep's numbers made worse and one more SAE at the hook that the new report
lacks, written and read back through the schema (both trimmed to the sections the sweep figure reads). What the figure drew is read off its axes before it is
saved, and compared with the two reports' numbers.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from sae_checks.report import plots_sweeps
from sae_checks.report.html import render_html
from sae_checks.report.io import read_report, write_report
from sae_checks.report.plots import make_plots

DATA = Path(__file__).parent / "data"
HOOK = "blocks.1.hook_resid_pre"
GONE = "blocks.1.hook_resid_pre.w256"  # in the baseline only


def baseline_of(report: dict[str, Any], tmp_path: Path) -> dict[str, Any]:
    """``report`` as an older version: the sweep's L0 x1.3, fvu x1.5, ΔCE x1.4, and an SAE ``GONE`` at the hook."""
    old = copy.deepcopy(report)
    res = old["results"]
    for name in res["sweeps"][HOOK]:
        for metrics in res["per_bucket"][name].values():
            for metric, factor in (("l0", 1.3), ("fvu", 1.5), ("delta_ce", 1.4)):
                e = metrics[metric]
                e["mean"], e["ci"] = e["mean"] * factor, [v * factor for v in e["ci"]]
    src = res["sweeps"][HOOK][0]
    res["per_bucket"][GONE] = copy.deepcopy(res["per_bucket"][src])
    for metrics in res["per_bucket"][GONE].values():
        metrics["l0"]["mean"] *= 0.5
        metrics["l0"]["ci"] = [v * 0.5 for v in metrics["l0"]["ci"]]
    res["saes"][GONE] = {**res["saes"][src], "id": GONE, "d_sae": 256}
    res["sweeps"][HOOK] = sorted([*res["sweeps"][HOOK], GONE])
    entry = next(s for s in old["provenance"]["saes"] if s["name"] == src)
    old["provenance"]["saes"].append({**entry, "name": GONE, "id": GONE, "d_sae": 256})
    write_report(tmp_path / "baseline.json", old)  # valid against report.schema.json
    return read_report(tmp_path / "baseline.json")


@pytest.fixture
def reports(tmp_path: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """(the new report, its baseline), both without the sections other figures draw (fast: only the sweep
    figure and the diff figures are drawn; every section is optional)."""
    report = read_report(DATA / "report_full.json")
    keep = ("saes", "sweeps", "per_bucket", "buckets", "context_size")
    report["results"] = {k: v for k, v in report["results"].items() if k in keep}
    return report, baseline_of(report, tmp_path)


def drawn(monkeypatch: pytest.MonkeyPatch) -> dict[str, list[dict[str, Any]]]:
    """Per PNG name, per panel: each plotted series (label -> x, y, marker face) and the joining lines,
    read off the figure just before ``plots_sweeps`` saves (and clears) it."""
    seen: dict[str, list[dict[str, Any]]] = {}
    save = plots_sweeps.save

    def spy(fig: Any, out_dir: Path, name: str, title: str, section: str, result: Any) -> None:
        seen[name] = [{"title": title, "ylabel": ax.get_ylabel(),
                       "series": {c.get_label(): (list(c.lines[0].get_xdata()), list(c.lines[0].get_ydata()),
                                                  c.lines[0].get_markerfacecolor()) for c in ax.containers},
                       "pairs": [(list(line.get_xdata()), list(line.get_ydata())) for line in ax.get_lines()
                                 if line.get_gid() == plots_sweeps.PAIR]}
                      for ax in fig.axes]
        save(fig, out_dir, name, title, section, result)

    monkeypatch.setattr(plots_sweeps, "save", spy)
    return seen


def points(report: dict[str, Any], names: list[str], bucket: str, metric: str) -> tuple[list[float], list[float]]:
    """(L0s, metric values) of ``names`` in ``bucket``, in order of L0, straight from the report dict."""
    pb = report["results"]["per_bucket"]
    pts = sorted((pb[n][bucket]["l0"]["mean"], pb[n][bucket][metric]["mean"]) for n in names)
    return [p[0] for p in pts], [p[1] for p in pts]


def test_the_sweep_figure_draws_the_baseline_beside_the_new_points(reports, tmp_path, monkeypatch) -> None:
    report, baseline = reports
    seen = drawn(monkeypatch)
    result = make_plots(report, tmp_path / "figs", baseline=baseline)
    name = f"sweep_{HOOK}.png"
    assert (tmp_path / "figs" / name).stat().st_size > 10_000 and name in [f.name for f in result.figures]
    new_names = report["results"]["sweeps"][HOOK]
    old_names = baseline["results"]["sweeps"][HOOK]
    assert GONE in old_names and GONE not in new_names
    panels = seen[name]
    assert "baseline: 3 SAEs, hollow" in panels[0]["title"]
    for panel, metric in zip(panels, ("fvu", "delta_ce"), strict=True):
        series = panel["series"]
        for bucket in ("1-32", "32-256"):
            (new,) = [v for k, v in series.items() if k.startswith(f"new, positions {bucket}")]
            (old,) = [v for k, v in series.items() if k.startswith(f"baseline, positions {bucket}")]
            assert new[:2] == points(report, new_names, bucket, metric), (metric, bucket)
            assert old[:2] == points(baseline, old_names, bucket, metric), (metric, bucket)
            assert old[2] == "none" and new[2] != "none"  # hollow baseline, filled new
        # one thin line per SAE in both reports and bucket, from its baseline point to its new one
        pb_new, pb_old = report["results"]["per_bucket"], baseline["results"]["per_bucket"]
        want = sorted(([pb_old[n][b]["l0"]["mean"], pb_new[n][b]["l0"]["mean"]],
                       [pb_old[n][b][metric]["mean"], pb_new[n][b][metric]["mean"]])
                      for n in new_names for b in ("1-32", "32-256"))
        assert sorted(panel["pairs"]) == want, metric

    # the data behind it, for readers: the same points
    f = plots_sweeps.frontier(report, HOOK, "fvu", baseline)
    assert [p.sae for p in f.baseline["1-32"]] == [GONE, *sorted(new_names)]  # GONE has half the L0
    assert [(a.sae, b.sae) for a, b in f.pairs("1-32")] == [(n, n) for n in sorted(new_names)]


def test_without_a_baseline_the_figure_has_only_the_new_points(reports, tmp_path, monkeypatch) -> None:
    report, _ = reports
    seen = drawn(monkeypatch)
    make_plots(report, tmp_path)
    (panel, _) = seen[f"sweep_{HOOK}.png"]
    assert all(label.startswith("positions ") for label in panel["series"]) and not panel["pairs"], panel
    assert "baseline" not in panel["title"]
    assert plots_sweeps.frontier(report, HOOK, "fvu").baseline == {}


def test_the_html_page_embeds_the_sweep_figure_with_the_baseline(reports, tmp_path, monkeypatch) -> None:
    report, baseline = reports
    seen = drawn(monkeypatch)
    page = render_html(report, baseline=baseline)
    name = f"sweep_{HOOK}.png"
    title = seen[name][0]["title"]
    assert "baseline: 3 SAEs, hollow" in title and title in page and name in page
    sweeps = page[page.index(title) - 2000: page.index(title) + 200]
    assert "data:image/png;base64," in sweeps  # embedded, not linked


def test_the_commands_pass_the_baseline_to_the_sweep_figure(reports, tmp_path, monkeypatch) -> None:
    """`sae-checks plot --baseline` and `sae-checks html --baseline --figures` draw the sweep with the baseline."""
    from sae_checks.cli import main

    report, baseline = reports
    write_report(tmp_path / "new.json", report)
    old = tmp_path / "baseline.json"  # written by baseline_of
    name = f"sweep_{HOOK}.png"
    seen = drawn(monkeypatch)
    assert main(["plot", str(tmp_path / "new.json"), "--baseline", str(old), "-o", str(tmp_path / "plots")]) == 0
    assert "baseline: 3 SAEs, hollow" in seen.pop(name)[0]["title"]
    assert (tmp_path / "plots" / name).is_file() and (tmp_path / "plots" / "diff_buckets.png").is_file()
    assert main(["html", str(tmp_path / "new.json"), "--baseline", str(old), "-o", str(tmp_path / "page.html"),
                 "--figures", str(tmp_path / "figs")]) == 0
    title = seen.pop(name)[0]["title"]
    assert "baseline: 3 SAEs, hollow" in title and title in (tmp_path / "page.html").read_text()
    assert not seen, sorted(seen)  # drawn once, for the folder and the page
