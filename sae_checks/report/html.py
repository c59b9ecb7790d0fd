"""One self-contained HTML page for a report: verdict, a grid of SAEs x metric/bucket coloured by check
status (each cell links to its check row), checks, figures (the sweep frontier among them), provenance,
and the diff against a baseline report. Keyed by SAE name (schema_version 2).

Self-contained means: figures embedded as ``data:image/png;base64`` URIs, CSS and the one small script
inline, no network (a Content-Security-Policy forbids any fetch), so the file can be attached to a
release or a CI artifact and opened anywhere. Every piece of report text goes through
:func:`html.escape`. Reads only report dicts, never a model.
"""

from __future__ import annotations

import base64
import html
import json
import math
import re
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from sae_checks.report import plots_data as data
from sae_checks.report.plots import PlotResult, make_diff_plots, make_plots

__all__ = ["render_html", "write_html"]

# Ratio beyond/inside the training context above which the verdict line is coloured: a display
# aid only (the gate's thresholds decide pass/fail). 2x is where the post's v1 SAEs sit well past.
RATIO_BAD, RATIO_WARN = 2.0, 1.25
GENERALIZATION_METRICS = ("fvu", "l0", "delta_ce")
BLOCKING = ("fail", "error", "new")  # statuses that block publishing (DESIGN.md section 5)

_CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0 auto;max-width:1250px;
 padding:0 18px 40px;color:#1d1d1f;background:#fff}
h1{font-size:22px;margin:18px 0 4px}h2{font-size:18px;margin:28px 0 8px;border-bottom:1px solid #ddd}
h3{font-size:15px;margin:18px 0 6px}
table{border-collapse:collapse;margin:6px 0;font-size:13px}
th,td{border:1px solid #ddd;padding:3px 7px;text-align:left;vertical-align:top}
th{background:#f4f4f6}td.num{text-align:right;font-variant-numeric:tabular-nums}
.verdict{border:2px solid #888;border-radius:8px;padding:10px 16px;margin:12px 0}
.verdict.fail{border-color:#c62828;background:#fdecea}.verdict.pass{border-color:#2e7d32;background:#edf7ed}
.verdict.warn{border-color:#ef6c00;background:#fff4e5}
.verdict .big{font-size:26px;font-weight:700;margin-right:14px}
.chip{display:inline-block;border-radius:10px;padding:1px 9px;margin:2px 4px 2px 0;font-weight:600;color:#fff}
.s-fail,.s-error{background:#c62828}.s-new{background:#6a1b9a}.s-warn{background:#ef6c00}
.s-improved{background:#1565c0}.s-pass{background:#2e7d32}.s-other{background:#616161}
.r-bad{color:#b71c1c;font-weight:700}.r-warn{color:#e65100;font-weight:600}.r-ok{color:#2e7d32}
ul.ctx{margin:6px 0 0;padding-left:20px}
figure{display:inline-block;margin:8px 8px 14px 0;vertical-align:top}
figure img{max-width:100%;height:auto;border:1px solid #eee}
figcaption{font-size:12px;color:#555}
.notes{color:#555;font-size:13px}
pre{background:#f7f7f9;padding:8px;overflow:auto;font-size:12px}
.filter{margin:6px 0}.filter label{margin-right:10px}
tr[hidden]{display:none}
table.grid td{padding:0;text-align:center;min-width:34px}table.grid td a{display:block;padding:3px 6px;
 color:#fff;text-decoration:none;font-weight:600}table.grid th.sae{text-align:left;white-space:nowrap}
table.grid td.none{background:#f4f4f6}tr:target{outline:3px solid #1565c0}
"""

_SCRIPT = """
(function () {
  var box = document.getElementById("check-filter");
  var rows = Array.prototype.slice.call(document.querySelectorAll("#checks tbody tr"));
  var toggles = Array.prototype.slice.call(document.querySelectorAll("input.status-filter"));
  var count = document.getElementById("check-count");
  function apply() {
    var query = box ? box.value.toLowerCase() : "";
    var on = {};
    toggles.forEach(function (t) { on[t.value] = t.checked; });
    var shown = 0;
    rows.forEach(function (row) {
      var ok = on[row.getAttribute("data-status")] !== false &&
               row.textContent.toLowerCase().indexOf(query) !== -1;
      row.hidden = !ok;
      if (ok) { shown += 1; }
    });
    if (count) { count.textContent = shown + " of " + rows.length + " checks shown"; }
  }
  if (box) { box.addEventListener("input", apply); }
  toggles.forEach(function (t) { t.addEventListener("change", apply); });
  apply();
  document.body.setAttribute("data-js", "ready");
})();
"""

_CSP = ("default-src 'none'; img-src data:; style-src 'unsafe-inline'; script-src 'unsafe-inline'; "
        "base-uri 'none'; form-action 'none'")


def _e(value: Any) -> str:
    """Escaped text for any value (None as an empty string)."""
    return "" if value is None else html.escape(str(value), quote=True)


def _fmt(value: Any) -> str:
    """A number to 4 significant digits; anything else as text (escaped by the caller)."""
    x = data.to_float(value)
    if isinstance(value, bool) or value is None or not isinstance(value, int | float):
        return "" if value is None else str(value)
    if not math.isfinite(x):
        return str(x)
    return f"{x:.4g}"


def _ci(value: Any) -> str:
    if isinstance(value, list | tuple) and len(value) == 2:
        return f"[{_fmt(value[0])}, {_fmt(value[1])}]"
    return "" if value is None else str(value)


def _status_class(status: str) -> str:
    return f"s-{status}" if status in ("fail", "error", "new", "warn", "improved", "pass") else "s-other"


def _chips(counts: Mapping[str, int]) -> str:
    return "".join(f'<span class="chip {_status_class(s)}">{_e(s)}: {n}</span>' for s, n in counts.items())


# ------------------------------------------------------------------------------------------ verdict


def _verdict(report: Mapping[str, Any]) -> str:
    counts = data.status_counts(report)
    if any(counts.get(s, 0) for s in BLOCKING):
        word, cls = "FAIL", "fail"
        says = "not ready to publish: " + ", ".join(f"{counts[s]} {s}" for s in BLOCKING if counts.get(s))
    elif counts.get("warn") or counts.get("improved"):
        word, cls, says = "PASS", "warn", "passes with warnings (see warn / improved checks)"
    elif counts:
        word, cls, says = "PASS", "pass", "every check passes"
    else:
        word, cls, says = "NO CHECKS", "", "this report carries no checks"
    parts = [f'<section class="verdict {cls}" id="verdict"><span class="big">{_e(word)}</span>'
             f"<span>{_e(says)}</span><div>{_chips(counts)}</div>"]
    parts.append(_generalization(report))
    parts.append("</section>")
    return "".join(parts)


def _generalization(report: Mapping[str, Any]) -> str:
    """One line per SAE: beyond/inside ratio of fvu, l0, delta_ce, coloured by size."""
    gen = data.context_generalization(report)
    if not gen:
        return '<p class="notes">Context generalization: not in this report.</p>'
    sizes = data.context_sizes(report)
    items = []
    for layer, metrics in gen.items():
        bits = []
        for metric in GENERALIZATION_METRICS:
            r = metrics.get(metric)
            if r is None or not math.isfinite(r.ratio.mean):
                continue
            # Colour by the CI's lower bound where there is one: "surely worse by this much".
            low = r.ratio.lo if math.isfinite(r.ratio.lo) else r.ratio.mean
            cls = "r-bad" if low >= RATIO_BAD else "r-warn" if low >= RATIO_WARN else "r-ok"
            ci = f" [{r.ratio.lo:.3g}, {r.ratio.hi:.3g}]" if math.isfinite(r.ratio.lo) else ""
            bits.append(f'{_e(metric)} <span class="{cls}">×{r.ratio.mean:.3g}</span>{_e(ci)}')
        if not bits:
            continue
        first = next(iter(metrics.values()))
        ctx = f"training context {sizes[layer]}, " if layer in sizes else ""
        where = f"{ctx}bucket {first.beyond} vs {first.inside}"
        if first.from_buckets:
            where += ", from per-bucket means"
        items.append(f"<li>{_e(layer)} ({_e(where)}): " + " · ".join(bits) + "</li>")
    return ("<div><b>Context generalization</b> (mean beyond the training context / mean inside it; "
            "1 = no degradation):<ul class=\"ctx\">" + "".join(items) + "</ul></div>")


# --------------------------------------------------------------------------------------- provenance


def _table(header: Iterable[str], rows: Iterable[Iterable[str]], attrs: str = "") -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(rows_cell for rows_cell in row) + "</tr>" for row in rows)
    return f"<table{attrs}><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _cell(value: Any, num: bool = False) -> str:
    text = json.dumps(value, sort_keys=True) if isinstance(value, Mapping | list) else _fmt(value)
    return f'<td class="num">{_e(text)}</td>' if num else f"<td>{_e(text)}</td>"


def _provenance(report: Mapping[str, Any]) -> str:
    prov = data.provenance(report)
    out = ['<section id="provenance"><h2>Provenance</h2>']
    if not prov:
        out.append('<p class="notes">No provenance in this report.</p>')
    scalars = [(k, v) for k, v in sorted(prov.items()) if k not in ("saes", "data")]
    if scalars:
        out.append(_table(["field", "value"], ([f"<td>{_e(k)}</td>", _cell(v)] for k, v in scalars)))
    saes = [s for s in prov.get("saes") or [] if isinstance(s, Mapping)]
    if saes:
        order = ["name", "layer", "hook", "release", "id", "context_size", "architecture", "d_sae", "sha256"]
        keys = [k for k in order if any(k in s for s in saes)]
        keys += sorted({k for s in saes for k in s} - set(keys))
        rows = []
        for s in saes:
            row = []
            for k in keys:
                v = s.get(k)
                if k == "sha256" and isinstance(v, str) and len(v) > 12:
                    row.append(f'<td title="{_e(v)}">{_e(v[:12])}…</td>')
                else:
                    row.append(_cell(v, num=isinstance(v, int | float)))
            rows.append(row)
        out.append("<h3>SAEs</h3>" + _table(keys, rows))
    dat = prov.get("data")
    if isinstance(dat, Mapping) and dat:
        out.append("<h3>Data</h3>" + _table(["field", "value"],
                                            ([f"<td>{_e(k)}</td>", _cell(v)] for k, v in sorted(dat.items()))))
    config = report.get("config")
    if isinstance(config, Mapping) and config:
        out.append("<details><summary>Run configuration</summary><pre>"
                   + _e(json.dumps(config, indent=2, sort_keys=True, default=str)) + "</pre></details>")
    out.append("</section>")
    return "".join(out)


# ------------------------------------------------------------------------------------------- checks

_CHECK_COLUMNS = ("status", "id", "sae", "metric", "layer", "bucket", "value", "ci", "baseline", "limit",
                  "direction", "message")


def check_anchor(check_id: Any) -> str:
    """The HTML id of a check's row: ``check-`` + the id with characters outside ``[A-Za-z0-9_.-]`` as ``_``."""
    return "check-" + re.sub(r"[^A-Za-z0-9_.-]", "_", str(check_id))


def _grid_column(check: Mapping[str, Any]) -> str | None:
    """The grid column of a check: ``metric`` or ``metric @ bucket``; None for propagation checks (two
    SAEs each: the heat maps show them) and checks without an SAE."""
    metric = str(check.get("metric", ""))
    if not check.get("sae") or metric.startswith("propagation") or check.get("upstream_sae"):
        return None
    return f"{metric} @ {check['bucket']}" if check.get("bucket") else metric


def _grid(report: Mapping[str, Any]) -> str:
    """SAEs (rows) x metric/bucket (columns), each cell coloured by its check's status and linking to
    the check's row below. Empty when no check names an SAE."""
    cells: dict[tuple[str, str], Mapping[str, Any]] = {}
    for c in data.checks(report):
        column = _grid_column(c)
        if column is not None:
            cells.setdefault((str(c["sae"]), column), c)  # failures first: the worst check of a cell wins
    if not cells:
        return ""
    order = data.sae_sort_key(report)
    rows = sorted({sae for sae, _ in cells}, key=order)
    columns = sorted({col for _, col in cells}, key=lambda col: (col.count(".") > 0, col))
    head = "".join(f"<th>{_e(col)}</th>" for col in columns)
    body = []
    for sae in rows:
        tds = []
        for col in columns:
            found = cells.get((sae, col))
            if found is None:
                tds.append('<td class="none"></td>')
                continue
            c = found
            status = str(c.get("status", ""))
            title = f"{c.get('id')}: {status}, value {_fmt(c.get('value'))}"
            tds.append(f'<td class="{_status_class(status)}"><a href="#{_e(check_anchor(c.get("id")))}" '
                       f'title="{_e(title)}">{_e(status[:4])}</a></td>')
        body.append(f'<tr><th class="sae">{_e(sae)}</th>' + "".join(tds) + "</tr>")
    return ('<section id="grid-section"><h2>SAEs by check</h2><table class="grid" id="grid"><thead><tr>'
            f'<th>SAE</th>{head}</tr></thead><tbody>{"".join(body)}</tbody></table></section>')


def _checks(report: Mapping[str, Any]) -> str:
    rows = data.checks(report)
    out = ['<section id="checks-section"><h2>Checks</h2>']
    if not rows:
        out.append('<p class="notes">No checks in this report.</p></section>')
        return "".join(out)
    statuses = list(dict.fromkeys(str(c.get("status", "")) for c in rows))
    out.append('<div class="filter"><input type="search" id="check-filter" '
               'placeholder="filter: id, metric, layer, message…" aria-label="filter checks" size="40"> ')
    for s in statuses:
        out.append(f'<label><input type="checkbox" class="status-filter" value="{_e(s)}" checked> '
                   f'<span class="chip {_status_class(s)}">{_e(s)}</span></label>')
    out.append(f'<span id="check-count">{len(rows)} checks</span></div>')
    body = []
    for c in rows:
        status = str(c.get("status", ""))
        cells = [f'<td><span class="chip {_status_class(status)}">{_e(status)}</span></td>']
        for col in _CHECK_COLUMNS[1:]:
            v = c.get(col)
            if col == "ci":
                cells.append(f'<td class="num">{_e(_ci(v))}</td>')
            else:
                cells.append(_cell(v, num=col in ("value", "baseline", "limit")))
        body.append(f'<tr id="{_e(check_anchor(c.get("id")))}" data-status="{_e(status)}">' + "".join(cells)
                    + "</tr>")
    head = "".join(f"<th>{_e(h)}</th>" for h in _CHECK_COLUMNS)
    out.append(f'<table id="checks"><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table>')
    out.append("</section>")
    return "".join(out)


# --------------------------------------------------------------------------------------------- diff


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
          diff_plots: PlotResult) -> str:
    out = ['<section id="diff"><h2>Diff against the baseline report</h2>']
    bprov = data.provenance(baseline)
    if bprov:
        saes = bprov.get("saes") or []
        rel = ", ".join(sorted({str(s.get("release")) for s in saes if isinstance(s, Mapping)}))
        out.append(f"<p>Baseline: model {_e(bprov.get('model'))}, SAEs {_e(rel)}, "
                   f"created {_e(bprov.get('created'))}, commit {_e(bprov.get('git_commit'))}.</p>")
    out.append(_figures(diff_plots))
    changes = status_changes(baseline, report)
    n_same = len({str(c.get("id")) for c in data.checks(report)}) - sum(
        1 for r in changes if r["new_status"] is not None)
    out.append(f"<h3>Check status changes</h3><p>{len(changes)} changed, {max(n_same, 0)} unchanged.</p>")
    if changes:
        rows = []
        for r in changes:
            old_s = r["old_status"] or "(absent)"
            new_s = r["new_status"] or "(absent)"
            delta = ""
            if isinstance(r["old_value"], int | float) and isinstance(r["new_value"], int | float):
                delta = _fmt(r["new_value"] - r["old_value"])
            rows.append([f"<td>{_e(r['id'])}</td>",
                         f'<td><span class="chip {_status_class(str(r["old_status"]))}">{_e(old_s)}</span></td>',
                         f'<td><span class="chip {_status_class(str(r["new_status"]))}">{_e(new_s)}</span></td>',
                         _cell(r["old_value"], True), _cell(r["new_value"], True),
                         f'<td class="num">{_e(delta)}</td>'])
        out.append(_table(["check", "baseline status", "this run", "baseline value", "this run value", "Δ"],
                          rows, ' id="status-changes"'))
    text, note = (diff_text, None) if diff_text is not None else _diff_module_text(baseline, report)
    if note:
        out.append(f'<p class="notes">{_e(note)}</p>')
    if text:
        out.append(f"<details open><summary>Full diff</summary><pre>{_e(text)}</pre></details>")
    out.append("</section>")
    return "".join(out)


# ------------------------------------------------------------------------------------------ figures


def _figures(result: PlotResult) -> str:
    out, current = [], None
    for fig in result.figures:
        if fig.section != current:
            current = fig.section
            out.append(f"<h3>{_e(current)}</h3>")
        encoded = base64.b64encode(fig.path.read_bytes()).decode("ascii")
        out.append(f'<figure><img alt="{_e(fig.title)}" src="data:image/png;base64,{encoded}">'
                   f"<figcaption>{_e(fig.title)} ({_e(fig.name)})</figcaption></figure>")
    if result.notes:
        out.append('<ul class="notes">' + "".join(f"<li>{_e(n)}</li>" for n in result.notes) + "</ul>")
    return "".join(out)


# ------------------------------------------------------------------------------------------- public


def render_html(report: Mapping[str, Any], *, baseline: Mapping[str, Any] | None = None,
                diff_text: str | None = None, plot_result: PlotResult | None = None) -> str:
    """The report as one self-contained HTML page (a string).

    ``baseline``: an earlier report; adds the per-bucket delta figure and the check status changes.
    ``diff_text``: a precomputed text diff shown verbatim (else ``sae_checks.report.diff`` is used
    when importable). ``plot_result``: figures already drawn by :func:`make_plots` for this report,
    embedded instead of drawing them again."""
    if not isinstance(report, Mapping):
        raise TypeError(f"render_html: report must be a dict loaded from a report JSON, got "
                        f"{type(report).__name__}; load it with sae_checks.report.io.load_report(path)")
    with tempfile.TemporaryDirectory(prefix="sae-checks-html-") as tmp:
        plots = plot_result if plot_result is not None else make_plots(report, Path(tmp) / "figures")
        diff_plots = make_diff_plots(baseline, report, Path(tmp) / "diff") if baseline is not None else None
        prov = data.provenance(report)
        saes = [s for s in prov.get("saes") or [] if isinstance(s, Mapping)]
        releases = ", ".join(sorted({str(s.get("release")) for s in saes if s.get("release")}))
        title = f"sae-checks report: {prov.get('model', '?')}" + (f" / {releases}" if releases else "")
        parts = [
            "<!DOCTYPE html>",
            '<html lang="en"><head><meta charset="utf-8">',
            f'<meta http-equiv="Content-Security-Policy" content="{_e(_CSP)}">',
            '<meta name="viewport" content="width=device-width, initial-scale=1">',
            f"<title>{_e(title)}</title><style>{_CSS}</style></head><body>",
            f"<h1>{_e(title)}</h1>",
            f"<p class=\"notes\">created {_e(prov.get('created'))} · schema "
            f"{_e(report.get('schema_version'))} · sae-checks {_e(prov.get('sae_checks'))}</p>",
            _verdict(report),
            _grid(report),
            _checks(report),
        ]
        if baseline is not None and diff_plots is not None:
            parts.append(_diff(report, baseline, diff_text, diff_plots))
        elif diff_text:
            parts.append(f'<section id="diff"><h2>Diff</h2><pre>{_e(diff_text)}</pre></section>')
        parts.append(f'<section id="figures"><h2>Figures</h2>{_figures(plots)}</section>')
        parts.append(_provenance(report))
        parts.append(f"<script>{_SCRIPT}</script></body></html>")
        return "\n".join(parts)


def write_html(report: Mapping[str, Any], path: Path | str, baseline: Mapping[str, Any] | None = None,
               *, diff_text: str | None = None) -> Path:
    """Render :func:`render_html` and write it to ``path`` atomically (temporary file, then rename)."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    page = render_html(report, baseline=baseline, diff_text=diff_text)
    from sae_checks.report.io import atomic_write_text

    return atomic_write_text(target, page)
