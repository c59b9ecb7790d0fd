"""One self-contained HTML page for a report, rendered from ``templates/report.html.j2``.

The page leads with the verdict: the first screen holds the verdict (with the blocking checks named)
and a grid of SAEs (rows) by metric and bucket (columns) coloured by check status, each cell linking to
its check; then the context-generalization ratios, the figures (per-position ones first), the diff
against a baseline, the provenance, and last the long checks table, collapsed to blocking checks.
Keyed by SAE name (schema_version 2).

Self-contained means: figures embedded as ``data:image/png;base64`` URIs, CSS and the one small script
inline, no network (a Content-Security-Policy forbids any fetch), so the file can be attached to a
release or a CI artifact and opened anywhere. jinja2 renders with autoescape on, so every piece of
report text is escaped; this module only shapes the report into plain strings and numbers for the
template. Reads only report dicts, never a model.

The checks table's view can be set from the address: ``#show=all`` (every status), ``#status=fail,warn``,
``#filter=fvu`` (text filter; implies every status unless ``status`` is given); the same keys work as a
query string. A link to ``#check-<id>`` reveals that check's row even when its status is hidden.
"""

from __future__ import annotations

import base64
import functools
import json
import math
import re
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any, NamedTuple

import jinja2

from sae_checks.report import plots_data as data
from sae_checks.report.plots import PlotResult, make_diff_plots, make_plots
from sae_checks.status import FAILING, NOTEWORTHY, ORDER

__all__ = ["check_anchor", "render_html", "status_changes", "write_html"]

# Ratio beyond/inside the training context above which a ratio is coloured: a display aid only (the
# gate's thresholds decide pass/fail). 2x is where the post's v1 SAEs sit well past.
RATIO_BAD, RATIO_WARN = 2.0, 1.25
GENERALIZATION_METRICS = ("fvu", "l0", "delta_ce")
BLOCKING = tuple(s for s in ORDER if s in FAILING)  # statuses that block publishing (sae_checks.status)
CHECK_COLUMNS = ("status", "id", "sae", "metric", "layer", "bucket", "value", "ci", "baseline", "limit",
                 "direction", "message")
NUMERIC_COLUMNS = ("layer", "value", "ci", "baseline", "limit")
CSP = ("default-src 'none'; img-src data:; style-src 'unsafe-inline'; script-src 'unsafe-inline'; "
       "base-uri 'none'; form-action 'none'")


class Cell(NamedTuple):
    """One table cell as text; ``num`` right-aligns it, ``title`` is its tooltip."""

    text: str
    num: bool = False
    title: str = ""


class CheckRef(NamedTuple):
    """A check as the grid and the verdict show it: a coloured link to its row in the checks table."""

    id: str
    anchor: str  # the row's HTML id, see check_anchor
    status: str
    cls: str  # CSS class of the status colour
    title: str


class Ratio(NamedTuple):
    """One beyond/inside-context ratio: ``text`` is the mean, ``ci`` its interval, ``cls`` its colour."""

    text: str
    ci: str
    cls: str


class Figure(NamedTuple):
    title: str
    name: str
    uri: str  # data:image/png;base64,...


# ----------------------------------------------------------------------------------------- helpers


def _fmt(value: Any) -> str:
    """A number to 4 significant digits; a dict or list as JSON; anything else as text."""
    if value is None:
        return ""
    if isinstance(value, Mapping | list):
        return json.dumps(value, sort_keys=True, default=str)
    if isinstance(value, bool) or not isinstance(value, int | float):
        return str(value)
    return f"{value:.4g}" if math.isfinite(value) else str(float(value))


def _ci(value: Any) -> str:
    if isinstance(value, list | tuple) and len(value) == 2:
        return f"[{_fmt(value[0])}, {_fmt(value[1])}]"
    return _fmt(value)


def status_class(status: Any) -> str:
    """The CSS class that colours a status: ``s-<status>`` for known ones, ``s-other`` otherwise."""
    return f"s-{status}" if status in ORDER else "s-other"


def check_anchor(check_id: Any) -> str:
    """The HTML id of a check's row: ``check-`` + the id with characters outside ``[A-Za-z0-9_.-]`` as ``_``."""
    return "check-" + re.sub(r"[^A-Za-z0-9_.-]", "_", str(check_id))


def _ref(check: Mapping[str, Any]) -> CheckRef:
    status = str(check.get("status", ""))
    title = f"{check.get('id')}: {status}, value {_fmt(check.get('value'))}"
    if check.get("limit") is not None:
        title += f", limit {_fmt(check.get('limit'))}"
    return CheckRef(str(check.get("id")), check_anchor(check.get("id")), status, status_class(status), title)


def _figures(result: PlotResult | None) -> dict[str, Any]:
    """Figures grouped by section (drawing order kept), each embedded as a data URI, and the notes."""
    sections: dict[str, list[Figure]] = {}
    for fig in result.figures if result is not None else []:
        uri = "data:image/png;base64," + base64.b64encode(fig.path.read_bytes()).decode("ascii")
        sections.setdefault(fig.section, []).append(Figure(fig.title, fig.name, uri))
    return {"sections": list(sections.items()), "notes": list(result.notes) if result is not None else []}


# ------------------------------------------------------------------------------ verdict and grid


def _verdict(report: Mapping[str, Any]) -> dict[str, Any]:
    counts = data.status_counts(report)
    if any(counts.get(s, 0) for s in BLOCKING):
        word, cls = "FAIL", "fail"
        says = "not ready to publish: " + ", ".join(f"{counts[s]} {s}" for s in BLOCKING if counts.get(s))
        own = [str(c.get("id")) for c in data.custom_checks(report) if c.get("status") in BLOCKING]
        if own:
            says += f" (checks of your own: {', '.join(own[:12])}{' ...' if len(own) > 12 else ''})"
    elif any(counts.get(s) for s in NOTEWORTHY):
        word, cls, says = "PASS", "warn", "passes with warnings (see warn / improved checks)"
    elif counts:
        word, cls, says = "PASS", "pass", "every check passes"
    else:
        word, cls, says = "NO CHECKS", "none", "this report carries no checks"
    blocking = [_ref(c) for c in data.checks(report) if c.get("status") in BLOCKING]
    return {"word": word, "cls": cls, "says": says, "blocking": blocking,
            "counts": [(s, n, status_class(s)) for s, n in counts.items()]}


def _grid_key(check: Mapping[str, Any]) -> tuple[str, str] | None:
    """The grid column of a check, ``(metric, bucket)`` (bucket ``""`` when none); None for propagation
    checks (two SAEs each: the heat maps show them) and checks without an SAE."""
    metric = str(check.get("metric", ""))
    if not check.get("sae") or metric.startswith("propagation") or check.get("upstream_sae"):
        return None
    return metric, str(check.get("bucket") or "")


def _grid(report: Mapping[str, Any]) -> dict[str, Any] | None:
    """SAEs (rows) x metric/bucket (columns), each cell the worst check there; None when no check names
    an SAE. ``groups`` spans the metric header row over the bucket header row."""
    cells: dict[tuple[str, tuple[str, str]], CheckRef] = {}
    for c in data.checks(report):  # failures first: the worst check of a cell wins
        key = _grid_key(c)
        if key is not None:
            cells.setdefault((str(c["sae"]), key), _ref(c))
    if not cells:
        return None
    saes = sorted({sae for sae, _ in cells}, key=data.sae_sort_key(report))
    columns = sorted({col for _, col in cells},
                     key=lambda col: ("." in col[0], col[0], data.bucket_sort_key(col[1]) if col[1] else (0.0, "")))
    groups: list[list[Any]] = []
    for metric, _ in columns:
        if groups and groups[-1][0] == metric:
            groups[-1][1] += 1
        else:
            groups.append([metric, 1])
    rows = [(sae, [cells.get((sae, col)) for col in columns]) for sae in saes]
    return {"groups": groups, "columns": columns, "rows": rows}


def _generalization(report: Mapping[str, Any]) -> list[dict[str, Any]]:
    """One row per SAE: mean beyond / inside its training context of fvu, l0, delta_ce, coloured by the
    CI's lower bound where there is one ("surely worse by this much")."""
    sizes = data.context_sizes(report)
    rows = []
    for sae, metrics in data.context_generalization(report).items():
        ratios: list[Ratio | None] = []
        for metric in GENERALIZATION_METRICS:
            r = metrics.get(metric)
            if r is None or not math.isfinite(r.ratio.value):
                ratios.append(None)
                continue
            low = r.ratio.lo if math.isfinite(r.ratio.lo) else r.ratio.value
            cls = "r-bad" if low >= RATIO_BAD else "r-warn" if low >= RATIO_WARN else "r-ok"
            ci = f"[{r.ratio.lo:.3g}, {r.ratio.hi:.3g}]" if math.isfinite(r.ratio.lo) else ""
            ratios.append(Ratio(f"×{r.ratio.value:.3g}", ci, cls))
        if not any(ratios):
            continue
        first = next(iter(metrics.values()))
        compared = f"{first.beyond} vs {first.inside}" + (" (from per-bucket means)" if first.from_buckets else "")
        rows.append({"sae": sae, "context": sizes.get(sae, ""), "compared": compared, "ratios": ratios})
    return rows


# --------------------------------------------------------------------------- checks, diff, provenance


def _checks(report: Mapping[str, Any]) -> dict[str, Any]:
    """Every check as a row (failures first), and the statuses present with their counts."""
    rows: list[dict[str, Any]] = []
    statuses: dict[str, int] = {}
    for c in data.checks(report):
        cells = [Cell(_ci(c.get(col)) if col == "ci" else _fmt(c.get(col)), col in NUMERIC_COLUMNS)
                 for col in CHECK_COLUMNS[1:]]
        ref = _ref(c)
        rows.append({"ref": ref, "cells": cells})
        statuses[ref.status] = statuses.get(ref.status, 0) + 1
    return {"columns": CHECK_COLUMNS, "rows": rows, "blocking": BLOCKING,
            "statuses": [(s, n, status_class(s)) for s, n in statuses.items()]}


def status_changes(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Checks whose status differs between two reports, plus added and removed checks, worst first.

    Each row: ``id, old_status, new_status, old_value, new_value`` (None where absent)."""
    a = {str(c.get("id")): c for c in data.checks(old)}
    b = {str(c.get("id")): c for c in data.checks(new)}
    rows = []
    for cid in sorted(set(a) | set(b)):
        ca, cb = a.get(cid, {}), b.get(cid, {})
        sa, sb = ca.get("status"), cb.get("status")
        if sa != sb:
            rows.append({"id": cid, "old_status": sa, "new_status": sb,
                         "old_value": ca.get("value"), "new_value": cb.get("value")})
    rows.sort(key=lambda r: (data.status_rank(str(r["new_status"])), r["id"]))
    return rows


def _diff_module_text(old: Mapping[str, Any], new: Mapping[str, Any]) -> tuple[str | None, str | None]:
    """(markdown, note) from ``sae_checks.report.diff`` when that module exists."""
    try:
        from sae_checks.report.diff import diff_reports, format_diff  # type: ignore[import-not-found]
    except ImportError:
        return None, None
    try:
        diff = diff_reports(old, new, force=True, allow_different=True)
        return str(format_diff(diff, "markdown")), None
    except Exception as exc:  # the page must still render when the diff module rejects a report
        return None, f"sae_checks.report.diff failed: {type(exc).__name__}: {exc}"


def _diff(report: Mapping[str, Any], baseline: Mapping[str, Any], diff_text: str | None,
          diff_plots: PlotResult) -> dict[str, Any]:
    bprov = data.provenance(baseline)
    releases = ", ".join(sorted({str(s.get("release")) for s in bprov.get("saes") or [] if isinstance(s, Mapping)}))
    changes = []
    for r in status_changes(baseline, report):
        old, new = r["old_value"], r["new_value"]
        numeric = all(isinstance(v, int | float) and not isinstance(v, bool) for v in (old, new))
        changes.append({"id": r["id"], "delta": _fmt(new - old) if numeric else "",
                        "old": (r["old_status"] or "(absent)", status_class(r["old_status"]), _fmt(old)),
                        "new": (r["new_status"] or "(absent)", status_class(r["new_status"]), _fmt(new))})
    n_now = len({str(c.get("id")) for c in data.checks(report)})
    n_same = max(n_now - sum(1 for r in changes if r["new"][0] != "(absent)"), 0)
    text, note = (diff_text, None) if diff_text is not None else _diff_module_text(baseline, report)
    return {"baseline": bprov and {"model": bprov.get("model"), "releases": releases,
                                   "created": bprov.get("created"), "commit": bprov.get("git_commit")},
            "figures": _figures(diff_plots), "changes": changes, "n_same": n_same, "text": text, "note": note}


def _provenance(report: Mapping[str, Any]) -> dict[str, Any]:
    prov = data.provenance(report)
    scalars = [(k, _fmt(v)) for k, v in sorted(prov.items()) if k not in ("saes", "data")]
    saes = [s for s in prov.get("saes") or [] if isinstance(s, Mapping)]
    order = ["name", "layer", "hook", "release", "id", "context_size", "architecture", "d_sae", "sha256"]
    keys = [k for k in order if any(k in s for s in saes)]
    keys += sorted({str(k) for s in saes for k in s} - set(keys))
    rows = []
    for s in saes:
        row = []
        for k in keys:
            v = s.get(k)
            if k == "sha256" and isinstance(v, str) and len(v) > 12:
                row.append(Cell(v[:12] + "…", title=v))
            else:
                row.append(Cell(_fmt(v), isinstance(v, int | float) and not isinstance(v, bool)))
        rows.append(row)
    dat = prov.get("data")
    config = report.get("config")
    return {"present": bool(prov), "scalars": scalars, "sae_keys": keys, "sae_rows": rows,
            "data": [(k, _fmt(v)) for k, v in sorted(dat.items())] if isinstance(dat, Mapping) else [],
            "config": json.dumps(config, indent=2, sort_keys=True, default=str)
            if isinstance(config, Mapping) and config else ""}


# ------------------------------------------------------------------------------------------ public


@functools.cache
def _environment() -> jinja2.Environment:
    """The template environment: autoescape on for everything, undefined names are errors."""
    return jinja2.Environment(loader=jinja2.PackageLoader("sae_checks.report", "templates"),
                              autoescape=True, undefined=jinja2.StrictUndefined,
                              trim_blocks=True, lstrip_blocks=True)


def render_html(report: Mapping[str, Any], *, baseline: Mapping[str, Any] | None = None,
                diff_text: str | None = None, plot_result: PlotResult | None = None) -> str:
    """The report as one self-contained HTML page (a string).

    ``baseline``: an earlier report; adds the per-bucket delta figure and the check status changes, and
    the figures that draw a baseline (the sweep frontier) show its points beside this report's.
    ``diff_text``: a precomputed text diff shown verbatim (else ``sae_checks.report.diff`` is used
    when importable). ``plot_result``: figures already drawn by :func:`make_plots` for this report (with
    the same ``baseline``), embedded instead of drawing them again."""
    if not isinstance(report, Mapping):
        raise TypeError(f"render_html: report must be a dict loaded from a report JSON, got "
                        f"{type(report).__name__}; load it with sae_checks.report.io.load_report(path)")
    with tempfile.TemporaryDirectory(prefix="sae-checks-html-") as tmp:
        plots = (plot_result if plot_result is not None
                 else make_plots(report, Path(tmp) / "figures", baseline=baseline))
        diff = None
        if baseline is not None:
            diff = _diff(report, baseline, diff_text, make_diff_plots(baseline, report, Path(tmp) / "diff"))
        prov = data.provenance(report)
        saes = [s for s in prov.get("saes") or [] if isinstance(s, Mapping)]
        releases = ", ".join(sorted({str(s.get("release")) for s in saes if s.get("release")}))
        title = f"sae-checks report: {prov.get('model', '?')}" + (f" / {releases}" if releases else "")
        page = _environment().get_template("report.html.j2").render(
            csp=CSP, title=title, created=_fmt(prov.get("created")),
            schema=_fmt(report.get("schema_version")), version=_fmt(prov.get("sae_checks")),
            verdict=_verdict(report), grid=_grid(report), generalization=_generalization(report),
            figures=_figures(plots), diff=diff, diff_text=diff_text, provenance=_provenance(report),
            checks=_checks(report))
    return page


def write_html(report: Mapping[str, Any], path: Path | str, baseline: Mapping[str, Any] | None = None,
               *, diff_text: str | None = None, figures: Path | str | None = None) -> Path:
    """Render :func:`render_html` and write it to ``path`` atomically (temporary file, then rename).
    ``figures``: a folder that also keeps the figures as PNG files (each drawn once, for both)."""
    from sae_checks.io import OutputError, atomic_write_text

    target = Path(path)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(target, f"cannot create its folder: {exc.strerror or exc}", exc.errno) from None
    drawn = make_plots(report, Path(figures), baseline=baseline) if figures is not None else None
    return atomic_write_text(target, render_html(report, baseline=baseline, diff_text=diff_text, plot_result=drawn))
