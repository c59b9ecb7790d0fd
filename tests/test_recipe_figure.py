"""Recipe "a figure in one file" (docs/extending.md): a module outside the package declares a figure;
once imported, ``sae-checks plot`` writes it and the HTML page embeds it under its section."""

from __future__ import annotations

import importlib
import sys
import textwrap
from pathlib import Path

import pytest

from sae_checks.cli import main
from sae_checks.report import figures

DATA = Path(__file__).parent / "data"

# The one file a user writes: the mean fvu per SAE, one bar each, from results["per_bucket"].
L0_BARS = textwrap.dedent('''
    """Mean fvu over buckets per SAE, as bars."""
    from sae_checks.report.figures import FigureSpec, register
    from sae_checks.report.plots_base import PlotResult, new_figure, save
    from sae_checks.results import Results


    def means(report):
        results = Results.from_report(report)
        out = {}
        for sae in results.saes():
            values = [e["fvu"].mean for e in map(lambda b: results.bucket(sae, b), results.buckets(sae))
                      if "fvu" in e and e["fvu"].mean is not None]
            if values:
                out[sae] = sum(values) / len(values)
        return out


    def draw(report, out_dir):
        result = PlotResult()
        fig, axes = new_figure()
        bars = means(report)
        axes[0, 0].bar(range(len(bars)), list(bars.values()))
        axes[0, 0].set_xticks(range(len(bars)), list(bars), rotation=90, fontsize=6)
        save(fig, out_dir, "fvu_bars.png", "Mean FVU per SAE", "My figures", result)
        return result


    FVU_BARS = register(FigureSpec(name="fvu_bars", needs=("per_bucket",), draw=draw,
                                   outputs=lambda report: ["fvu_bars.png"] if means(report) else [],
                                   files="fvu_bars.png"))
''')


@pytest.fixture
def user_figure(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    (tmp_path / "fvu_bars_figure.py").write_text(L0_BARS)
    monkeypatch.syspath_prepend(str(tmp_path))
    module = importlib.import_module("fvu_bars_figure")
    yield module.FVU_BARS
    figures.unregister("fvu_bars")
    sys.modules.pop("fvu_bars_figure", None)


def test_figure_in_one_file_is_plotted_and_in_the_html(user_figure, tmp_path: Path, capsys,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    from matplotlib.figure import Figure

    from sae_checks.report.io import load_report

    # build every figure, skip rasterizing (a stub file): which figures, not how they look
    monkeypatch.setattr(Figure, "savefig", lambda self, target, **kw: target.write(b"\x89PNG stub"))  # save() renders to a buffer
    report_path = DATA / "report_full.json"
    expected = figures.expected_outputs(load_report(report_path))
    assert "fvu_bars.png" in expected
    assert main(["plot", str(report_path), "--out", str(tmp_path / "figs")]) == 0
    written = [Path(line).name for line in capsys.readouterr().out.split()]
    assert "fvu_bars.png" in written and set(written) <= set(expected)  # nothing undeclared
    assert (tmp_path / "figs" / "fvu_bars.png").exists()
    assert main(["html", str(report_path), "--out", str(tmp_path / "page.html")]) == 0
    page = (tmp_path / "page.html").read_text()
    assert "My figures" in page and "Mean FVU per SAE" in page


def test_a_figure_missing_its_results_is_skipped_with_a_note(user_figure, tmp_path: Path) -> None:
    from sae_checks.report.plots import make_plots

    result = make_plots({"results": {"saes": {}}}, tmp_path)
    assert "fvu_bars: section missing; skipped fvu_bars.png" in result.notes
    assert not result.figures
