"""Validation of a report against ``report.schema.json`` (JSON Schema draft 2020-12, shipped as package data).

The schema is described key by key in docs/report.md; every violation is reported at once, each with the JSON
path of the offending key (``$.checks[3].status``), so a hand-edited or foreign report is fixed in one go.
"""

from __future__ import annotations

import functools
import json
from importlib import resources
from typing import Any

from sae_checks.errors import ReportError

SCHEMA_VERSION = 2  # the schema_version written (version 1 is upgraded on read: ``upgrade.upgrade_report``)
READABLE_VERSIONS = (1, 2)  # schema_versions ``io.read_report`` accepts
SCHEMA_FILE = "report.schema.json"
MAX_LISTED = 10  # violations spelled out in one error message; the rest are counted


@functools.cache
def load_schema() -> dict[str, Any]:
    """The report schema as a dict (read once from the package data)."""
    text = resources.files("sae_checks.report").joinpath(SCHEMA_FILE).read_text(encoding="utf-8")
    schema: dict[str, Any] = json.loads(text)
    return schema


@functools.cache
def _validator() -> Any:
    from jsonschema import Draft202012Validator

    schema = load_schema()
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema)


def schema_errors(report: Any) -> list[str]:
    """Every schema violation of ``report`` as ``"$.json.path: problem"``, sorted by path (empty when valid).

    Speed: jsonschema checks ~25k array items a second, and ``per_position`` holds SAEs x metrics x
    positions numbers (160k for gpt2-small at 1024 tokens). Those arrays are checked here in plain Python,
    by the same rule as the schema (``position``: integers >= 0; the rest: number or null), and handed
    to jsonschema empty; everything else goes through jsonschema unchanged.
    """
    view, problems = _check_per_position(report)
    errors = _validator().iter_errors(view)
    problems += [(e.json_path, _short(e.message)) for e in errors]
    return [f"{path}: {message}" for path, message in sorted(problems)]


def _check_per_position(report: Any) -> tuple[Any, list[tuple[str, str]]]:
    """(report with per_position arrays emptied, the first bad item of each array as (json path, problem))."""
    results = report.get("results") if isinstance(report, dict) else None
    per_position = results.get("per_position") if isinstance(results, dict) else None
    if not isinstance(results, dict) or not isinstance(per_position, dict):
        return report, []
    problems: list[tuple[str, str]] = []
    emptied: dict[str, Any] = {}
    for sae, arrays in per_position.items():
        if not isinstance(arrays, dict):
            emptied[sae] = arrays
            continue
        emptied[sae] = {}
        for name, values in arrays.items():
            if not isinstance(values, list):
                emptied[sae][name] = values  # jsonschema reports the wrong type
                continue
            ok, expected = (_is_position, "an integer >= 0") if name == "position" else (_is_num, "a number or null")
            bad = next((i for i, x in enumerate(values) if not ok(x)), None)
            if bad is not None:
                problems.append((f"$.results.per_position['{sae}'].{name}[{bad}]",
                                 f"{values[bad]!r} is not {expected}"))
            emptied[sae][name] = []
    return {**report, "results": {**results, "per_position": emptied}}, problems


def _is_num(x: Any) -> bool:
    return x is None or (isinstance(x, (int, float)) and not isinstance(x, bool))


def _is_position(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool) and x >= 0


def validate(report: Any, source: str = "<report>") -> None:
    """Raise ``ReportError`` naming ``source`` and the JSON path of every violation, if ``report`` breaks the schema.

    ``report`` must be in its JSON form (NaN already written as null: see ``io.canonical_json``).
    """
    problems = schema_errors(report)
    if not problems:
        return
    listed = "; ".join(problems[:MAX_LISTED])
    more = f"; and {len(problems) - MAX_LISTED} more" if len(problems) > MAX_LISTED else ""
    raise ReportError(
        f"{source}: does not match the sae-checks report schema (version {SCHEMA_VERSION}), "
        f"{len(problems)} violation(s): {listed}{more}"
    )


def _short(message: str, limit: int = 200) -> str:
    """jsonschema quotes whole sub-documents in some messages; keep one line of reasonable length."""
    message = " ".join(message.split())
    return message if len(message) <= limit else message[: limit - 3] + "..."
