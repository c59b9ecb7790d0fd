"""Build, serialize, write and read the JSON report (docs/report.md). JSON only: no torch, no model.

The bytes are canonical so that two reports of the same run diff to nothing: keys sorted, floats rounded
to ``SIG_DIGITS`` significant digits, NaN and infinities written as ``null`` (JSON has none), checks
sorted by id, no per-check timestamps. Dicts are indented; lists of scalars stay on one line so a
per-position array is one line, not 1024.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from sae_checks.errors import ReportError
from sae_checks.io import TMP_PREFIX, OutputError, atomic_write_text, check_writable
from sae_checks.report.schema import READABLE_VERSIONS, SCHEMA_VERSION, validate
from sae_checks.report.upgrade import sae_name, sort_key, upgrade_report
from sae_checks.status import STATUSES

__all__ = ["TMP_PREFIX", "OutputError", "atomic_write_text", "build_report", "canonical_json", "check_writable",
           "load_report", "read_report", "rescue_report", "upgrade_report", "write_failed", "write_report"]

SIG_DIGITS = 6  # significant digits kept for every float: far below any CI, far above float32 noise
INDENT = "  "


def build_report(
    *,
    provenance: dict[str, Any],
    config: dict[str, Any],
    results: dict[str, Any],
    checks: list[dict[str, Any]],
    unused_baseline: Iterable[str] | None = None,
    custom_checks: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """Assemble a report: adds ``schema_version`` (2), sorts checks by id and counts them per status in ``summary``
    (the gate's checks and ``custom_checks``, one's own from ``sae_record``, stored sorted by id when given:
    a failing status of either fails the gate, ``sae_checks.status``).

    ``provenance["saes"]`` entries get a ``"name"`` where they lack one (``upgrade.sae_name``: id, else
    the folder name of ``path``, else ``layer<L>``) and are sorted by (layer, hook, name).
    ``unused_baseline`` (baseline check ids that a full run did not exercise) is stored sorted when given.
    Raises ``ReportError`` for a check without an id or with an unknown status (naming the check).

    >>> from sae_checks import build_report
    >>> report = build_report(provenance={}, config={}, results={},
    ...                       checks=[{"id": "fvu-L0-pos1_32-a", "status": "pass"}])
    >>> report["schema_version"], report["summary"]["pass"], report["summary"]["fail"]
    (2, 1, 0)
    """
    summary = dict.fromkeys(STATUSES, 0)
    for where, entries in (("checks", checks), ("custom_checks", custom_checks or [])):
        for i, check in enumerate(entries):
            status = check.get("status")
            if status not in summary:
                raise ReportError(f"{where}[{i}] (id {check.get('id')!r}): status {status!r} is not one of "
                                  f"{', '.join(STATUSES)}")
            summary[status] += 1
    saes = provenance.get("saes")
    if isinstance(saes, list):
        named = [{**e, "name": e.get("name") or sae_name(e)} if isinstance(e, Mapping) else e for e in saes]
        provenance = {**provenance, "saes": sorted(named, key=lambda e: sort_key(e) if isinstance(e, Mapping)
                                                      else (1 << 30, "", ""))}
    report: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "provenance": provenance,
        "config": config,
        "results": results,
        "checks": sorted(checks, key=lambda c: str(c.get("id"))),
        "summary": summary,
    }
    if unused_baseline is not None:
        report["unused_baseline"] = sorted(unused_baseline)
    if custom_checks:
        report["custom_checks"] = sorted(custom_checks, key=lambda c: str(c.get("id")))
    return report


def to_json_ready(value: Any, path: str = "$") -> Any:
    """``value`` as plain JSON types, floats rounded to ``SIG_DIGITS`` significant digits, NaN/inf -> None.

    Tuples become lists, numpy scalars and arrays become Python numbers and lists, integer dict keys
    become strings (layer keys). Anything else raises ``ReportError`` naming its JSON path.
    """
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, int):
        return int(value)  # IntEnum and friends -> plain int
    if isinstance(value, float):
        return round_float(value)
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for key, item in value.items():
            if isinstance(key, bool) or not isinstance(key, (str, int)):
                raise ReportError(f"{path}: key {key!r} is a {type(key).__name__}; report keys must be strings")
            out[str(key)] = to_json_ready(item, f"{path}.{key}")
        return out
    if isinstance(value, (list, tuple)):
        return [to_json_ready(v, f"{path}[{i}]") for i, v in enumerate(value)]
    if type(value).__module__ == "numpy" and hasattr(value, "tolist"):
        return to_json_ready(value.tolist(), path)  # numpy scalar or array
    raise ReportError(
        f"{path}: a {type(value).__module__}.{type(value).__name__} cannot be written to JSON "
        f"({_preview(value)}); convert it to a number, string, list or dict first"
    )


def round_float(x: float) -> float | None:
    """``x`` rounded to ``SIG_DIGITS`` significant digits; NaN and infinities become None, -0.0 becomes 0.0."""
    if not math.isfinite(x):
        return None
    r = float(f"{x:.{SIG_DIGITS}g}")
    return 0.0 if r == 0 else r


def canonical_json(report: Any) -> str:
    """The canonical text of ``report``: sorted keys, rounded floats, null for NaN/inf, trailing newline.

    Equal content gives equal bytes, whatever the dict insertion order or float noise past
    ``SIG_DIGITS`` digits.
    """
    return _emit(to_json_ready(report), 0) + "\n"


def _emit(value: Any, depth: int) -> str:
    pad, inner = INDENT * depth, INDENT * (depth + 1)
    if isinstance(value, dict):
        if not value:
            return "{}"
        items = [f"{inner}{json.dumps(k, ensure_ascii=False)}: {_emit(value[k], depth + 1)}" for k in sorted(value)]
        return "{\n" + ",\n".join(items) + "\n" + pad + "}"
    if isinstance(value, list):
        if all(not isinstance(v, (dict, list)) for v in value):
            return "[" + ", ".join(_scalar(v) for v in value) + "]"
        return "[\n" + ",\n".join(inner + _emit(v, depth + 1) for v in value) + "\n" + pad + "]"
    return _scalar(value)


def _scalar(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, allow_nan=False)


def write_report(path: str | os.PathLike[str], report: dict[str, Any]) -> Path:
    """Validate ``report`` against the schema, then write its canonical JSON to ``path`` atomically.

    Atomic (``sae_checks.io.atomic_write_text``): the text goes to a temporary file in the same folder, is
    flushed to disk, then renamed over ``path``. On any failure (a value JSON cannot hold, a schema
    violation, a full disk) the previous file is untouched and no temporary file is left behind; a failed
    write raises ``OutputError`` naming ``path`` and the reason. Returns the path written.
    """
    path = Path(path)
    try:
        text = canonical_json(report)
    except ReportError as exc:
        raise ReportError(f"{path}: cannot write report: {exc}") from None
    validate(json.loads(text), source=str(path))
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(path, f"cannot create its folder: {exc.strerror or exc}", exc.errno) from None
    return atomic_write_text(path, text)


def rescue_report(report: dict[str, Any], failed: str | os.PathLike[str]) -> Path | None:
    """Save ``report`` where a failed write (to ``failed``) cannot take it down with it: the system's
    temporary folder, ``sae-checks-report-<pid>-<name>``. Returns the path, or None when that fails too.
    No schema validation: the point is to keep the numbers."""
    import tempfile

    target = Path(tempfile.gettempdir()) / f"sae-checks-report-{os.getpid()}-{Path(failed).name or 'report.json'}"
    try:
        return atomic_write_text(target, canonical_json(report))
    except (OutputError, ReportError):
        return None


def write_failed(what: str, exc: OutputError, report: dict[str, Any] | None = None) -> str:
    """One line saying which output was not written, where and why, and (``report`` given) where the
    report was saved instead, so the results are not lost."""
    line = f"{what} not written to {exc.path}: {exc.reason}"
    if report is None:
        return line
    saved = rescue_report(report, exc.path)
    return line + (f"; the report was saved to {saved} instead" if saved is not None
                   else "; it could not be saved elsewhere either: the summary above is all that is left of the run")


def read_report(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a report, upgrade it to the current layout and validate it; ``ReportError`` names the file
    and says what is wrong and where.

    A schema_version 1 report (keyed by layer) is upgraded to version 2 (keyed by SAE name) with
    :func:`upgrade_report` before validation. Errors: unreadable file; invalid JSON (line and column);
    NaN/Infinity literals (not JSON); a ``schema_version`` not in ``READABLE_VERSIONS``; a schema
    violation (JSON path of each offending key, in the upgraded layout).
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ReportError(f"{path}: cannot read report: {exc}") from None
    try:
        report = json.loads(text, parse_constant=_reject_constant)
    except json.JSONDecodeError as exc:
        raise ReportError(
            f"{path}:{exc.lineno}:{exc.colno}: not valid JSON: {exc.msg} (is this a sae-checks report?)"
        ) from None
    except ValueError as exc:
        raise ReportError(f"{path}: not valid JSON: {exc}") from None
    if not isinstance(report, dict):
        raise ReportError(f"{path}: a report is a JSON object, found a {type(report).__name__}")
    version = report.get("schema_version", "<missing>")
    if version not in READABLE_VERSIONS or isinstance(version, bool):
        readable = " and ".join(map(str, READABLE_VERSIONS))
        raise ReportError(
            f"{path}: unsupported schema_version {version!r}; this sae-checks reads schema_version "
            f"{readable} (regenerate the report with this version, or use the sae-checks that wrote it)"
        )
    report = upgrade_report(report)
    validate(report, source=str(path) + (" (upgraded from schema_version 1)" if version == 1 else ""))
    return report


load_report = read_report  # the name the CLI and the gate use


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON value; sae-checks writes NaN and infinities as null")


def _preview(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
