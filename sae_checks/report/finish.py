"""The end of a gate run: build the report from the gate's state, write it, the GitHub step summary and
the baseline update. The report layer's job (the gate judges; this writes what it judged): the pytest
plugin calls :func:`finish_gate` once per session, on the controller."""

from __future__ import annotations

from typing import Any

from sae_checks.errors import ThresholdError
from sae_checks.gate import GateSession
from sae_checks.gate.thresholds import Baselines, baselines_from_report, write_baselines
from sae_checks.io import OutputError
from sae_checks.report.io import build_report, write_failed, write_report
from sae_checks.report.markdown import append_github_summary


def finish_gate(gate: GateSession) -> dict[str, Any] | None:
    """Write the report (and the baseline update); returns the report, None if nothing ran. A run
    that stopped early is marked ``"incomplete": true`` with the ids ``not_run``, and never updates
    the baseline. An output that cannot be written is said in ``errors`` (what, where, why; a report
    is saved elsewhere), never lost silently; the other outputs are still written. Releases the lock."""
    try:
        return _finish(gate)
    finally:
        gate.close()


def _finish(gate: GateSession) -> dict[str, Any] | None:
    if not gate.checks and not gate.custom and not gate.results:
        return None
    config = gate.config.to_dict()
    config["gate"] = {"thresholds": str(gate.options.thresholds or gate.policy.path),
                      "policy_source": gate.options.policy_source,
                      "baseline": str(gate.options.baseline) if gate.options.baseline else None,
                      "unsafe_tolerances": gate.unsafe}
    report = build_report(provenance=gate.provenance or gate._no_provenance(), config=config, results=gate.results,
                          checks=gate.checks_list(), unused_baseline=gate.unused(),
                          custom_checks=list(gate.custom.values()))
    not_run = gate.not_run()
    if not_run:
        report["incomplete"] = True
        report["not_run"] = not_run
    try:
        gate.report_written = write_report(gate.options.report, report)
    except OutputError as exc:
        gate.errors.append(f"sae-checks: {write_failed('report', exc, report)}")
    try:
        append_github_summary(report)
    except OutputError as exc:
        gate.errors.append(f"sae-checks: {write_failed('GitHub step summary', exc)}")
    if gate.options.update_baseline:
        path = gate.options.baseline_target
        try:
            entries, gate.baseline_written, subject = baselines_from_report(
                report, Baselines(path=path, entries=dict(gate.baselines.entries), subject=gate.baselines.subject),
                gate.options.update_baseline, model=gate.config.model)
        except ThresholdError as exc:
            gate.errors.append(f"sae-checks: baseline not updated: {exc}")
            return report
        try:
            write_baselines(path, entries, subject)
        except OutputError as exc:
            gate.errors.append(f"sae-checks: baseline not updated: {write_failed('baseline', exc)}")
            return report
        gate.baselines = Baselines(path=path, entries=entries, subject=subject)
        gate.baseline_updated = True
    return report
