"""sae_checks.status: the one status vocabulary, and the places that cannot import it agree with it."""

from __future__ import annotations

import typing

import pytest

from sae_checks import status
from sae_checks.report.io import build_report
from sae_checks.report.schema import load_schema


def test_vocabulary_is_consistent() -> None:
    assert set(status.STATUSES) == set(typing.get_args(status.Status)) == set(status.ORDER) == set(status.MEANING)
    assert set(status.STATUSES) > status.FAILING | status.NOTEWORTHY and not status.FAILING & status.NOTEWORTHY
    assert set(typing.get_args(status.CustomStatus)) < set(status.STATUSES)
    assert [s for s in status.ORDER if status.fails(s)] == list(status.ORDER[:len(status.FAILING)])  # blocking first


def test_the_report_schema_uses_the_vocabulary() -> None:
    schema = load_schema()
    assert schema["$defs"]["check"]["properties"]["status"]["enum"] == list(status.STATUSES)
    assert schema["$defs"]["summary"]["required"] == list(status.STATUSES)
    custom = schema["properties"]["custom_checks"]["items"]["properties"]["status"]["enum"]
    assert custom == list(typing.get_args(status.CustomStatus))


def test_summary_counts_the_gate_checks_and_ones_own() -> None:
    report = build_report(provenance={}, config={}, results={}, checks=[{"id": "a", "status": "new"}],
                          custom_checks=[{"id": "c", "status": "fail"}, {"id": "b", "status": "warn"}])
    assert report["summary"] == {"pass": 0, "fail": 1, "warn": 1, "improved": 0, "new": 1}
    assert [c["id"] for c in report["custom_checks"]] == ["b", "c"]
    with pytest.raises(Exception, match=r"custom_checks\[0\] \(id 'x'\): status 'error'"):
        build_report(provenance={}, config={}, results={}, checks=[], custom_checks=[{"id": "x", "status": "error"}])
    with pytest.raises(ValueError, match="status 'skip'"):
        status.count([{"id": "y", "status": "skip"}])
