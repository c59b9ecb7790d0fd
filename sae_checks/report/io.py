"""Build, serialize, write and read the JSON report (DESIGN.md section 6). JSON only: no torch, no model.

The bytes are canonical so that two reports of the same run diff to nothing: keys sorted, floats rounded
to ``SIG_DIGITS`` significant digits, NaN and infinities written as ``null`` (JSON has none), checks
sorted by id, no per-check timestamps. Dicts are indented; lists of scalars stay on one line so a
per-position array is one line, not 1024.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import secrets
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from sae_checks.errors import ConfigError, ReportError
from sae_checks.report.schema import READABLE_VERSIONS, SCHEMA_VERSION, validate
from sae_checks.report.upgrade import sae_name, sort_key, upgrade_report
from sae_checks.status import STATUSES

__all__ = ["build_report", "canonical_json", "check_writable", "load_report", "read_report", "upgrade_report",
           "write_report"]

SIG_DIGITS = 6  # significant digits kept for every float: far below any CI, far above float32 noise
INDENT = "  "
TMP_PREFIX = ".saeck-"  # temporary files of atomic writes: .saeck-<8 hex>.tmp, shorter than any name it replaces


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

    Atomic: the text goes to a temporary file in the same folder, is flushed to disk, then renamed over
    ``path`` (``os.replace``). On any failure (a value JSON cannot hold, a schema violation, a full disk)
    the previous file is untouched and no temporary file is left behind. Returns the path written.
    """
    path = Path(path)
    try:
        text = canonical_json(report)
    except ReportError as exc:
        raise ReportError(f"{path}: cannot write report: {exc}") from None
    validate(json.loads(text), source=str(path))
    path.parent.mkdir(parents=True, exist_ok=True)
    return atomic_write_text(path, text)


def atomic_write_text(path: str | os.PathLike[str], text: str) -> Path:
    """Write ``text`` (UTF-8, ``\\n`` newlines) to ``path`` atomically: a temporary file in the same folder,
    flushed to disk, then renamed over ``path``. On failure the previous file is untouched and the
    temporary file removed.

    The temporary name is short and fixed-length (``TMP_PREFIX`` + 8 hex + ``.tmp``), so any name valid
    for ``path`` works (a temp name built from the target's would break names near NAME_MAX). It is
    created with mode 0o666 and O_EXCL, so the user's umask applies as for any new file (``mkstemp``
    makes 0600, which a CI job or colleague in the same group cannot read).
    """
    path = Path(path)
    while True:
        tmp = path.parent / f"{TMP_PREFIX}{secrets.token_hex(4)}.tmp"
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
            break
        except FileExistsError:  # 1 in 4 billion: draw another name
            continue
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return path


def check_writable(path: str | os.PathLike[str], option: str, *, directory: bool = False) -> Path:
    """Raise ``ConfigError`` naming ``option`` and ``path`` unless a file (``directory``: a folder, which
    may not exist yet) can be written there: checked before any model is loaded, so a bad output path
    fails in one line, not after the whole run. The parent folder must exist and be writable, ``path``
    must not be a directory (a folder: not a file), and its name must fit the file system's NAME_MAX.
    Returns ``path``."""
    path = Path(path)
    parent = path.parent

    def fail(problem: str, fix: str) -> ConfigError:
        return ConfigError(option, str(path), problem, fix)

    if path.name in ("", ".", ".."):  # "." or "dir/..": a folder, judged as itself
        parent = path
    if not parent.exists():
        raise fail(f"the directory {parent} does not exist", f"create it first: mkdir -p {parent}")
    if not parent.is_dir():
        raise fail(f"{parent} is not a directory", "choose a path inside an existing folder")
    try:
        name_max = os.pathconf(parent, "PC_NAME_MAX")
    except (OSError, ValueError, AttributeError):  # no pathconf (Windows) or no such limit
        name_max = 255
    size = len(os.fsencode(path.name))
    if size > name_max:
        raise fail(f"the file name is {size} bytes, longer than this file system allows ({name_max})",
                   "choose a shorter name")
    if directory and path.exists() and not path.is_dir():
        raise fail("exists and is not a directory", "choose a folder name, or remove the file")
    if not directory and path.is_dir():
        raise fail("is a directory", f"give a file name inside it, e.g. {path / 'out.json'}")
    target = path if directory and path.is_dir() else parent
    if not os.access(target, os.W_OK | os.X_OK):
        raise fail(f"the directory {target} is not writable", "choose another folder or fix its permissions")
    return path


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
