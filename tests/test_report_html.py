"""Tests for sae_checks.report.html: the page parses with balanced tags, embeds every figure, loads
nothing from the network, escapes report text, leads with the verdict and the SAE x check grid, orders
failures first, shows the diff; and, in Debian's headless chromium (installed by .ci/run), shows the
verdict and the grid on the first screen, decodes every figure, and filters the checks table."""

from __future__ import annotations

import re
import sys
import types
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from sae_checks.report.html import BLOCKING, check_anchor, render_html, status_changes, write_html
from sae_checks.report.plots import make_diff_plots, make_plots
from tests.browser import Browser, Row, body_attrs, count_colour, find_chromium, table_rows
from tests.test_report_plots import build_report, minimal_report

VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}
REMOTE = re.compile(r"""(?:src|href)\s*=\s*["']?\s*(?:https?:)?//""", re.IGNORECASE)


class _Balance(HTMLParser):
    """Tracks open tags; records every mismatch instead of stopping at the first."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.errors: list[str] = []
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        if tag not in VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_endtag(self, tag: str) -> None:
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"</{tag}> closes {self.stack[-1:] or 'nothing'} at {self.getpos()}")
            if tag in self.stack:
                while self.stack.pop() != tag:
                    pass
        else:
            self.stack.pop()


def parse(page: str) -> _Balance:
    parser = _Balance()
    parser.feed(page)
    parser.close()
    assert parser.errors == [], parser.errors[:10]
    assert parser.stack == [], f"unclosed: {parser.stack}"
    return parser


FAILING = "fvu-L0-pos32_256-blocks.0.hook_resid_pre"


def baseline_report() -> dict[str, Any]:
    """An earlier report: a smaller blow-up, one check that used to pass, one that did not exist."""
    old = build_report(seed=1, blowup=0.2)
    by_id = {c["id"]: c for c in old["checks"]}
    by_id[FAILING]["status"] = "pass"  # fails now: a regression
    old["checks"] = [c for c in old["checks"] if c["status"] != "new"]  # the "new" check is absent from the baseline
    old["checks"].append({"id": "l0/layer=9/bucket=1-32", "metric": "l0", "layer": 9, "bucket": "1-32",
                          "value": 1.0, "status": "pass"})
    return old


@pytest.fixture(scope="module")
def full(tmp_path_factory: pytest.TempPathFactory):
    """The full report drawn once, then rendered with a baseline (adds the diff figures: their number last)."""
    report = build_report()
    plots = make_plots(report, tmp_path_factory.mktemp("figs"))
    page = render_html(report, baseline=baseline_report(), plot_result=plots)
    n_diff = len(make_diff_plots(baseline_report(), report, tmp_path_factory.mktemp("diff")).paths)
    return report, plots, page, n_diff


def test_full_page_parses_and_embeds_every_figure(full) -> None:
    report, plots, page, n_diff = full
    parser = parse(page)
    assert page.startswith("<!DOCTYPE html>")
    imgs = [a for t, a in parser.tags if t == "img"]
    assert len(imgs) == len(plots.paths) + n_diff  # + diff_buckets.png, diff_latents_density.png
    assert page.count("data:image/png;base64,") == len(plots.paths) + n_diff
    assert all((a.get("src") or "").startswith("data:image/png;base64,") for a in imgs)
    for p in plots.paths:
        assert f"({p.name})" in page
    assert "diff_buckets.png" in page


def test_no_remote_resources(full) -> None:
    _, _, page, _ = full
    assert not REMOTE.search(page), REMOTE.search(page)
    assert "http://" not in page and "https://" not in page
    assert "Content-Security-Policy" in page


def test_report_text_is_escaped(full) -> None:
    _, _, page, _ = full
    assert "<script>alert(1)</script>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "zoo-text &lt;&amp;&gt;" in page
    assert page.count("<script") == 1  # only our filter script


SECTIONS = ('id="verdict"', 'id="grid-section"', 'id="generalization"', 'id="figures"', 'id="diff"',
            'id="provenance"', 'id="checks-section"')


def between(page: str, start: str, end: str) -> str:
    return page[page.index(start):page.index(end)]


def test_page_leads_with_the_verdict_and_ends_with_the_checks(full) -> None:
    _, _, page, _ = full
    where = [page.index(s) for s in SECTIONS]
    assert where == sorted(where), dict(zip(SECTIONS, where, strict=True))
    assert page.index('id="checks"') > page.index('id="provenance"')
    assert page.count("<section") == len(SECTIONS)


def test_verdict_counts_and_blocking_checks(full) -> None:
    report, _, page, _ = full
    verdict = between(page, 'id="verdict"', 'id="grid-section"')
    assert "FAIL" in verdict and "not ready to publish" in verdict
    for status, n in report["summary"].items():
        assert f"{status}: {n}</span>" in verdict
    assert f'href="#check-{FAILING}"' in verdict  # the blocking checks are named and linked
    blocking = {check_anchor(c["id"]) for c in report["checks"] if c["status"] in ("fail", "error", "new")}
    assert set(re.findall(r'href="#(check-[^"]+)"', verdict)) == blocking


def test_context_generalization_table(full) -> None:
    _, _, page, _ = full
    gen = between(page, 'id="generalization"', 'id="figures"')
    for layer in ("0", "1", "2", "3"):
        assert f'<th class="sae">blocks.{layer}.hook_resid_pre</th><td class="num">32</td><td>32-256 vs 1-32</td>' in gen
    assert gen.count('class="r-bad"') >= 4  # the v1 SAE blows up past its context at every layer


def test_checks_failures_first_and_filter_controls(full) -> None:
    report, _, page, _ = full
    parser = parse(page)
    statuses = [a["data-status"] for t, a in parser.tags if t == "tr" and "data-status" in a]
    assert len(statuses) == len(report["checks"])
    assert statuses[0] == "fail" and statuses.index("pass") > statuses.index("new")
    rank = {s: i for i, s in enumerate(("fail", "new", "warn", "improved", "pass"))}
    assert [rank[s] for s in statuses] == sorted(rank[s] for s in statuses)
    boxes = {a.get("value") for t, a in parser.tags if t == "input" and a.get("class") == "status-filter"}
    assert boxes == set(statuses)
    assert any(t == "input" and a.get("id") == "check-filter" for t, a in parser.tags)


def test_diff_section_lists_status_changes(full) -> None:
    report, _, page, _ = full
    changes = status_changes(baseline_report(), report)
    ids = {r["id"] for r in changes}
    assert FAILING in ids
    assert "acc_first_token/layer=3/task=lambada" in ids  # absent -> new
    assert "l0/layer=9/bucket=1-32" in ids  # pass -> absent
    assert changes[0]["new_status"] == "fail"
    diff = between(page, 'id="diff"', 'id="provenance"')
    assert 'id="status-changes"' in diff and "(absent)" in diff


def test_grid_of_saes_by_check_links_to_check_rows(full) -> None:
    _, _, page, _ = full
    parser = parse(page)
    grid = between(page, 'id="grid"', 'id="generalization"')
    rows = {a["id"] for t, a in parser.tags if t == "tr" and a.get("id", "").startswith("check-")}
    links = re.findall(r'href="#([^"]+)"', grid)
    assert links and set(links) <= rows
    assert grid.count('<th class="sae">') == 4 and "blocks.0.hook_resid_pre" in grid
    assert '<th colspan="2">fvu</th>' in grid and "<th>32-256</th>" in grid and 'class="s-fail"' in grid
    # every link's cell is coloured by its check's status
    for status, anchor in re.findall(r'<td class="s-(\w+)"><a href="#([^"]+)"', grid):
        assert f'id="{anchor}" data-status="{status}"' in page


def test_grid_escapes_hostile_sae_names() -> None:
    from sae_checks.report.io import read_report

    report = read_report(Path(__file__).parent / "data" / "report_minimal.json")
    report["checks"][0].update(sae='<img src=x onerror=alert(1)>"', id='fvu-L0-<b>"x', message="</script><b>")
    page = render_html(report)
    parse(page)
    assert "<img src=x" not in page and "&lt;img src=x onerror=alert(1)&gt;&#34;" in page
    assert 'href="#check-fvu-L0-_b__x"' in page and 'id="check-fvu-L0-_b__x"' in page
    assert "</script><b>" not in page and page.count("</script>") == 1


def test_suite_page_has_the_sweep_figure_and_names(tmp_path: Path) -> None:
    from sae_checks.report.io import read_report

    report = read_report(Path(__file__).parent / "data" / "report_full.json")
    page = render_html(report)
    parse(page)
    assert "Sweep at blocks.1.hook_resid_pre" in page and "sweep_blocks.1.hook_resid_pre.png" in page
    grid = between(page, 'id="grid"', 'id="generalization"')
    assert grid.count('<th class="sae">') == 7 and "blocks.1.hook_resid_pre.w1024" in grid


def test_diff_text_and_diff_module(full, monkeypatch: pytest.MonkeyPatch) -> None:
    report, plots, _, _ = full
    page = render_html(report, baseline=report, diff_text="## diff <b>", plot_result=plots)
    assert "## diff &lt;b&gt;" in page and "0 changed" in page
    fake = types.ModuleType("sae_checks.report.diff")
    fake.diff_reports = lambda old, new, force=False, **kw: {"force": force}  # type: ignore[attr-defined]
    fake.format_diff = lambda d, fmt: f"FAKE {fmt} {d['force']}"  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "sae_checks.report.diff", fake)
    page = render_html(report, baseline=report, plot_result=plots)
    assert "FAKE markdown True" in page
    parse(page)


def test_write_html_minimal_report(tmp_path: Path) -> None:
    """Draws its own figures; the missing sections are listed as skipped; written atomically."""
    out = write_html(minimal_report(), tmp_path / "sub" / "report.html")
    assert out == tmp_path / "sub" / "report.html"
    assert [p.name for p in out.parent.iterdir()] == ["report.html"]  # no temporary file left
    page = out.read_text(encoding="utf-8")
    parse(page)
    assert page.count("data:image/png;base64,") == 12
    for section in ("propagation", "cloze", "features"):
        assert f"{section}: section missing" in page
    assert "Context generalization: not in this report." in page
    assert not REMOTE.search(page)


def test_empty_and_invalid_reports() -> None:
    page = render_html({})
    parse(page)
    assert "NO CHECKS" in page and "No checks in this report." in page and "No provenance" in page
    with pytest.raises(TypeError, match="report must be a dict"):
        render_html([])  # type: ignore[arg-type]


# ------------------------------------------------------------------------------ in a real browser

CHROMIUM = find_chromium()
needs_chromium = pytest.mark.skipif(CHROMIUM is None,
                                    reason="no chromium on PATH (.ci/run installs it: apt-get install chromium)")
PASS_GREEN, FAIL_RED, TAB_BLUE = (46, 125, 50), (198, 40, 40), (31, 119, 180)  # CSS .s-pass, .s-fail; matplotlib C0


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Browser:
    assert CHROMIUM is not None
    return Browser(CHROMIUM, tmp_path_factory.mktemp("chromium"))


@pytest.fixture(scope="module")
def page_url(full, tmp_path_factory: pytest.TempPathFactory) -> str:
    _, _, page, _ = full
    path = tmp_path_factory.mktemp("page") / "report.html"
    path.write_text(page, encoding="utf-8")
    return path.as_uri()


def visible(rows: list[Row]) -> list[str]:
    return [r.id for r in rows if not r.hidden]


@pytest.mark.slow
@needs_chromium
def test_browser_first_screen_shows_verdict_and_grid(full, browser: Browser, page_url: str,
                                                     tmp_path: Path) -> None:
    """In a 1400x1000 window, before any scrolling: the verdict box and (nearly) every grid cell."""
    _, _, page, _ = full
    shot = browser.screenshot(page_url, tmp_path / "first_screen.png", 1400, 1000)
    grid = between(page, 'id="grid"', 'id="generalization"')
    n_pass = grid.count('<td class="s-pass">')
    assert n_pass >= 10
    # A grid cell is at least 46 x 20 px; chips and the verdict border add a little more of each colour.
    assert count_colour(shot, PASS_GREEN) >= 0.9 * n_pass * 46 * 20, "the grid is not on the first screen"
    assert count_colour(shot, FAIL_RED) >= 2 * 46 * 20, "the failing cells / verdict are not on the first screen"
    assert count_colour(shot, (253, 236, 234)) >= 100_000, "no FAIL verdict box on the first screen"


@pytest.mark.slow
@needs_chromium
def test_browser_figures_decode_and_paint(full, browser: Browser, page_url: str, tmp_path: Path) -> None:
    """Every <img> decodes (the page's script counts them) and the figures' lines are painted."""
    _, plots, _, n_diff = full
    dom = browser.dump_dom(page_url)
    body = body_attrs(dom)
    n = len(plots.paths) + n_diff  # + the diff figures
    assert body.get("data-js") == "ready", "the inline script did not run to the end"
    assert body.get("data-figures") == f"{n}/0/{n}", f"loaded/broken/total figures: {body.get('data-figures')}"
    assert 'class="broken"' not in dom
    shot = browser.screenshot(page_url, tmp_path / "whole_page.png", 1400, 16000)
    assert count_colour(shot, TAB_BLUE, tolerance=10) > 5_000, "no figure lines painted"  # ~10k here


@pytest.mark.slow
@needs_chromium
def test_browser_checks_collapsed_to_blocking_by_default(full, browser: Browser, page_url: str) -> None:
    report, _, _, _ = full
    dom = browser.dump_dom(page_url)
    rows = table_rows(dom, "checks")
    assert len(rows) == len(report["checks"])
    blocking = [check_anchor(c["id"]) for c in report["checks"] if c["status"] in BLOCKING]
    assert sorted(visible(rows)) == sorted(blocking)
    assert f"{len(blocking)} of {len(rows)} checks shown" in dom


@pytest.mark.slow
@needs_chromium
@pytest.mark.parametrize("address, keep", [
    ("#show=all", lambda r: True),
    ("#filter=fvu", lambda r: "fvu" in r.text.lower()),
    ("?filter=FVU", lambda r: "fvu" in r.text.lower()),
    ("#status=warn,improved", lambda r: r.attrs["data-status"] in ("warn", "improved")),
    ("#filter=hook_resid_pre&status=pass", lambda r: r.attrs["data-status"] == "pass"
     and "hook_resid_pre" in r.text),
], ids=["show-all", "text", "query-string", "statuses", "text-and-status"])
def test_browser_filter_from_the_address(browser: Browser, page_url: str, address: str, keep: Any) -> None:
    """The checks table starts from the filter in the address; hidden rows carry ``hidden``."""
    rows = table_rows(browser.dump_dom(page_url + address), "checks")
    expected = [r.id for r in rows if keep(r)]
    assert len(expected) > 0, f"{address} matches no row: a useless case"
    assert visible(rows) == expected
    if address != "#show=all":
        assert len(expected) < len(rows), f"{address} hides nothing: a useless case"


@pytest.mark.slow
@needs_chromium
def test_browser_grid_link_reveals_a_hidden_check(full, browser: Browser, page_url: str) -> None:
    """A grid cell links to ``#check-<id>``; opening it shows that row although passes start hidden."""
    report, _, page, _ = full
    grid = between(page, 'id="grid"', 'id="generalization"')
    anchor = re.findall(r'<td class="s-pass"><a href="#([^"]+)"', grid)[0]
    rows = {r.id: r for r in table_rows(browser.dump_dom(f"{page_url}#{anchor}"), "checks")}
    assert not rows[anchor].hidden
    assert rows[anchor].attrs["data-status"] == "pass"


def test_html_figures_folder_keeps_the_pages_figures(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``sae-checks html --figures DIR`` draws each figure once: the PNGs in DIR are the page's."""
    from matplotlib.figure import Figure

    from sae_checks.cli import main
    from sae_checks.report import figures
    from sae_checks.report.io import load_report
    from sae_checks.report.plots import make_plots

    monkeypatch.setattr(Figure, "savefig", lambda self, target, **kw: target.write(b"\x89PNG stub"))
    report = Path(__file__).parent / "data" / "report_full.json"
    assert main(["html", str(report), "-o", str(tmp_path / "page.html"), "--figures", str(tmp_path / "figs")]) == 0
    written = sorted(p.name for p in (tmp_path / "figs").iterdir())
    drawn = make_plots(load_report(report), tmp_path / "plot")  # what `sae-checks plot` writes
    assert written == sorted(p.name for p in drawn.paths) and set(written) <= set(figures.expected_outputs(
        load_report(report)))
    page = (tmp_path / "page.html").read_text()
    assert page.count("data:image/png;base64,") >= len(written)
