"""The gate: policy + baselines -> one judged check per (metric, SAE, bucket).

``thresholds`` parses the policy and reads/writes baselines, ``checks`` plans and judges checks (pure
functions over the results dict), and ``GateSession`` (here) is the small stateful layer the pytest
plugin drives: resolve the options, plan the checks, run the engine for the SAEs a process needs
(cached), judge, merge per-worker outputs, write the report and the baseline update. No torch import
here; the engine is imported only when a check needs results.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sae_checks.config import ALIASES, GATE_KEYS, RunConfig, read_pyproject
from sae_checks.errors import ConfigError, SaeChecksError
from sae_checks.gate.checks import (
    Check,
    CheckSpec,
    GateWarning,
    check_id,
    judge,
    legacy_id,
    lookup,
    plan_checks,
    rules_for,
    summarize,
    unused_baselines,
)
from sae_checks.gate.setup import (
    BUILTIN_POLICY,
    DEFAULT_BASELINE,
    DEFAULT_REPORT,
    GateOptions,
    check_gate_paths,
    choose_policy,
    default_policy_path,
    resolve_options,
)
from sae_checks.gate.thresholds import (
    BaselineEntry,
    Baselines,
    MetricPolicy,
    Override,
    Policy,
    Rule,
    load_baselines,
    load_policy,
    parse_policy,
    subject_mismatch,
    unsafe_tolerances,
    updated_baselines,
    write_baselines,
)
from sae_checks.merge import merge_provenance, merge_results

__all__ = [
    "ALIASES", "BUILTIN_POLICY", "DEFAULT_BASELINE", "DEFAULT_REPORT", "GATE_KEYS", "BaselineEntry", "Baselines",
    "Check", "CheckSpec", "EngineFailure", "GateOptions", "GateWarning", "GateSession", "MetricPolicy", "Override",
    "Policy", "Rule", "check_gate_paths", "check_id", "choose_policy", "default_policy_path", "judge",
    "load_baselines", "load_policy", "lookup", "parse_policy", "plan_checks", "read_pyproject", "resolve_options",
    "summarize", "unsafe_tolerances", "unused_baselines", "updated_baselines", "write_baselines",
]


class EngineFailure(SaeChecksError):
    """The engine run behind a check failed (e.g. a corrupt SAE file): every check it would answer fails
    with this one line, and the engine is not run again for them."""


@dataclass
class GateSession:
    """Per-process gate state (kept in ``config.stash`` by the plugin)."""

    config: RunConfig
    policy: Policy
    options: GateOptions
    baselines: Baselines
    worker: int | None = None  # xdist worker index (gwK -> K); None on the controller / without xdist
    specs: list[CheckSpec] = field(default_factory=list)
    rules: dict[str, Rule] = field(default_factory=dict)
    planned: bool = False
    planned_ids: list[str] = field(default_factory=list)  # every check the policy names for this run
    plan_saes: list[str] = field(default_factory=list)  # every SAE of this run (shard), in forward order
    selected: list[CheckSpec] = field(default_factory=list)  # after -k / deselection
    selected_ids: list[str] = field(default_factory=list)  # ... their ids (on the controller: from the workers)
    results: dict[str, Any] = field(default_factory=dict)
    provenance: dict[str, Any] = field(default_factory=dict)
    ran: list[tuple[str, ...]] = field(default_factory=list)  # SAE sets the engine ran for
    failures: list[tuple[tuple[str, ...], str]] = field(default_factory=list)  # (SAEs, one line): failed runs
    checks: dict[str, dict[str, Any]] = field(default_factory=dict)  # judged, by id
    custom: dict[str, dict[str, Any]] = field(default_factory=dict)  # sae_record entries, by name
    full_run: bool = True  # every planned check selected (on every worker)
    empty: bool = False  # the gate's tests were collected but the policy names no check for the run
    unsafe: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # said once, in the terminal summary
    errors: list[str] = field(default_factory=list)  # end-of-run refusals, shown in red
    baseline_written: list[str] = field(default_factory=list)
    report_written: Path | None = None
    baseline_updated: bool = False  # set only once the baseline file was written
    lock: Any = None  # sae_checks.io.OutputLock on the report path, held by the controller until finish
    progress: Any = None  # sae_checks.progress.Progress handed to the engine (None: its default)
    _loaded: Any = None  # api.load's result for the sae_model / sae_saes / sae_tokens fixtures

    @classmethod
    def create(cls, cli: Mapping[str, Any], *, rootdir: Path, invocation_dir: Path,
               worker: int | None = None, lock_report: bool = True) -> GateSession:
        """Resolve the options and refuse, before any model loads, what would fail only after the run: an
        output path that cannot be written, another run writing the same report (the process that writes it
        holds a lock on it until ``finish``; ``lock_report=False``: the xdist controller, whose session is
        created only when the first worker ends, too late to refuse). ``plan`` checks the data."""
        import os

        from sae_checks.io import OutputLock, check_writable

        config, policy, options = resolve_options(cli, read_pyproject(rootdir), rootdir=rootdir,
                                                  invocation_dir=invocation_dir)
        check_gate_paths(options, policy)
        if os.environ.get("GITHUB_STEP_SUMMARY") and worker is None:  # the Markdown summary finish appends
            check_writable(os.environ["GITHUB_STEP_SUMMARY"], "GITHUB_STEP_SUMMARY")
        lock = OutputLock(options.report, "--sae-report").acquire() if worker is None and lock_report else None
        try:
            return cls(config=config, policy=policy, options=options,
                       baselines=load_baselines(options.baseline), worker=worker, lock=lock)
        except BaseException:
            if lock is not None:
                lock.release()
            raise

    def close(self) -> None:
        """Release the report path's lock (idempotent; ``finish`` calls it)."""
        if self.lock is not None:
            self.lock.release()

    # --- planning (cheap, deterministic, identical on every worker) --------------------------------
    def plan(self, plan_fn: Callable[[RunConfig], Any]) -> list[CheckSpec]:
        """Plan the checks (once). Before any model loads: the SAEs' configs (``plan_fn``), then the data
        (a task's dataset missing offline, a local text file too short for the sequences asked for)."""
        if not self.planned:
            from sae_checks.loading.data import check_sequences_available, check_tasks_available
            from sae_checks.names import propagation_pairs

            plan = plan_fn(self.config)
            check_tasks_available(self.config)
            check_sequences_available(self.config)
            self.check_baseline_subject(list(plan.saes))
            buckets = {k: list(v) for k, v in plan.buckets.items()}
            self.policy.check_run(plan.layers, buckets, plan.tasks, restricted=self.restricted)
            suite = plan_fn(self.config.replace(shard=None)) if self.config.shard is not None else plan
            pairs = ([(u, d) for u, d in propagation_pairs({n: s.hook for n, s in suite.saes.items()})
                      if u in plan.saes] if self.config.propagation else [])
            self.specs = plan_checks(self.policy, saes=plan.saes, buckets=buckets, tasks=plan.tasks, pairs=pairs,
                                     others=suite.saes)
            self.plan_saes = list(plan.saes)
            self.rules = rules_for(self.policy, self.specs)
            self.planned_ids = [s.id for s in self.specs]
            self.baselines = self.baselines.remapped(lambda old: legacy_id(old, self.specs))
            self.unsafe = unsafe_tolerances(self.rules, self.baselines)
            self.planned = True
        return self.specs

    def check_baseline_subject(self, saes: list[str]) -> None:
        """Refuse a baseline of another model or SAE set (unless ``baseline_any``); note an older baseline
        that does not say what it is a baseline of."""
        why = subject_mismatch(self.baselines.subject, model=self.config.model, saes=saes)
        if why and not self.options.baseline_any:
            raise ConfigError("--sae-baseline", str(self.baselines.path), why,
                              "use the baseline of this model and SAE set, or pass --sae-baseline-any to "
                              "compare anyway")
        if self.baselines.subject is None and self.baselines.entries:
            note = (f"baseline {self.baselines.path} does not record which model and SAEs it is a baseline of "
                    "(an older file); rewrite it with --sae-update-baseline all to record them")
            warnings.warn(GateWarning(note), stacklevel=2)
            self.notes.append(note)

    def select(self, ids: Iterable[str]) -> None:
        wanted = set(ids)
        self.selected = [s for s in self.specs if s.id in wanted]
        self.selected_ids = [s.id for s in self.selected]
        # unused baseline entries are knowable only when every SAE and every check ran
        self.full_run = len(self.selected) == len(self.specs) and not self.restricted

    @property
    def restricted(self) -> bool:
        """The user selected part of the suite (layers or a shard): other SAEs' entries are fine."""
        return self.config.layers is not None or self.config.shard is not None

    # --- engine ------------------------------------------------------------------------------------
    def engine_config(self) -> RunConfig:
        """On xdist worker k with several GPUs, device "cuda" (or None with CUDA) becomes cuda:k % n."""
        if self.worker is None or self.config.device not in (None, "cuda"):
            return self.config
        import torch

        n = torch.cuda.device_count() if torch.cuda.is_available() else 0
        return self.config.replace(device=f"cuda:{self.worker % n}") if n > 1 else self.config

    def saes_for(self, spec: CheckSpec) -> tuple[str, ...]:
        """SAEs one engine run should cover to answer ``spec``: without xdist, every selected SAE (one
        run); on a worker, the spec's SAE (propagation: the upstream SAE, whose run also encodes the
        downstream SAEs: its row of the matrix), so each SAE runs once per worker."""
        pool = self.selected or self.specs
        order = {s.sae: i for i, s in enumerate(self.specs)}
        if self.worker is not None:  # the upstream SAE's run fills its row of the propagation matrix
            return (spec.upstream_sae if spec.family == "propagation" and spec.upstream_sae else spec.sae,)
        names = {s.sae for s in pool} | {s.upstream_sae for s in pool if s.upstream_sae is not None}
        return tuple(sorted(names, key=lambda n: order.get(n, 0)))

    def ensure(self, names: Iterable[str], run_fn: Callable[..., Any]) -> dict[str, Any]:
        """Results covering the SAEs ``names``: the engine runs once for those no earlier run covered (the
        gate's checks and the ``sae_results`` fixture share this cache). A failed run is remembered: its
        SAEs raise the same ``EngineFailure`` line again without re-running the engine."""
        names = tuple(names)
        failed = next((msg for done, msg in self.failures if set(done) & set(names)), None)
        if failed is not None:
            raise EngineFailure(failed)
        covered = {n for done in self.ran for n in done}
        missing = tuple(n for n in names if n not in covered)
        if missing:
            try:
                evaluation = run_fn(self.engine_config(), saes=list(missing), progress=self.progress)
            except SaeChecksError as exc:
                msg = f"the engine failed for SAE{'s' if len(missing) > 1 else ''} {', '.join(missing)}: {exc}"
                self.failures.append((missing, msg))
                raise EngineFailure(msg) from exc
            except Exception as exc:  # a bug: its traceback once, one line for the other checks
                self.failures.append((missing, f"the engine failed for {', '.join(missing)}: "
                                      f"{type(exc).__name__}: {str(exc).strip().splitlines()[:1]}"))
                raise
            self.results = merge_results(self.results, evaluation.results)
            self.provenance = merge_provenance(self.provenance, evaluation.provenance)
            self.ran.append(missing)
        return self.results

    def results_for(self, spec: CheckSpec, run_fn: Callable[..., Any]) -> Mapping[str, Any]:
        return self.ensure(self.saes_for(spec), run_fn)

    def all_results(self, plan_fn: Callable[[RunConfig], Any], run_fn: Callable[..., Any]) -> dict[str, Any]:
        """Results for every SAE of the run (the ``sae_results`` fixture): one engine run for those the
        gate's checks have not run yet."""
        self.plan(plan_fn)
        self.ensure(self.plan_saes, run_fn)
        return self.results

    def loaded(self, load_fn: Callable[..., Any]) -> Any:
        """``api.load`` of this run's config, once per process (the sae_model / sae_saes / sae_tokens fixtures)."""
        if self._loaded is None:
            self._loaded = load_fn(self.engine_config())
        return self._loaded

    # --- judging -----------------------------------------------------------------------------------
    def judge(self, spec: CheckSpec, run_fn: Callable[..., Any]) -> Check:
        """Judge one check. When its engine run failed, the check is recorded as failed with the
        engine's one line (reason ``error``) and the exception propagates."""
        try:
            results = self.results_for(spec, run_fn)
        except Exception as exc:
            msg = str(exc) if isinstance(exc, EngineFailure) else f"{type(exc).__name__}: {exc}"
            self.checks[spec.id] = _error_check(spec, self.rules[spec.id], msg).to_dict()
            raise
        check = judge(spec, results, self.rules[spec.id], self.baselines)
        self.checks[spec.id] = check.to_dict()
        return check

    def fails(self, check: Check) -> bool:
        """Whether the test fails. Under --sae-update-baseline, what the update fixes (new, band) passes."""
        if self.options.update_baseline and check.reason in ("no_baseline", "band"):
            return False
        return check.failed

    def record_custom(self, entry: Mapping[str, Any]) -> None:
        """A check of the user's own (the ``sae_record`` fixture), stored in report["custom_checks"]."""
        self.custom[str(entry["id"])] = dict(entry)

    # --- xdist -------------------------------------------------------------------------------------
    def worker_output(self) -> str:
        return json.dumps({"results": self.results, "provenance": self.provenance, "checks": self.checks,
                           "full_run": self.full_run, "planned": self.planned_ids, "selected": self.selected_ids,
                           "unsafe": self.unsafe, "failures": [[list(n), m] for n, m in self.failures],
                           "empty": self.empty, "notes": self.notes})

    def merge_worker(self, payload: str) -> None:
        data = json.loads(payload)
        self.results = merge_results(self.results, data["results"])
        self.provenance = merge_provenance(self.provenance, data["provenance"])
        self.checks.update(data["checks"])
        self.full_run = self.full_run and data["full_run"]
        self.planned_ids = self.planned_ids or data["planned"]
        self.selected_ids = self.selected_ids or data.get("selected", [])
        self.unsafe = sorted(set(self.unsafe) | set(data["unsafe"]))
        self.failures += [(tuple(n), m) for n, m in data.get("failures", []) if m not in {f[1] for f in self.failures}]
        self.empty = self.empty or data.get("empty", False)
        self.notes += [n for n in data.get("notes", []) if n not in self.notes]

    # --- end of run (controller only) --------------------------------------------------------------
    def unused(self) -> list[str] | None:
        """Unused baseline entries, or None when the run was not full (then they are unknowable)."""
        if not self.full_run or not self.planned_ids or set(self.planned_ids) - set(self.checks):
            return None
        return unused_baselines(self.baselines, self.checks)

    def not_run(self) -> list[str]:
        """Selected checks that never ran: the run stopped early (-x, --maxfail, a crashed worker, Ctrl-C)."""
        return [i for i in self.selected_ids if i not in self.checks]

    def checks_list(self) -> list[dict[str, Any]]:
        return [self.checks[k] for k in sorted(self.checks)]

    def _no_provenance(self) -> dict[str, Any]:
        """Provenance of a run whose engine never ran (it failed, or nothing needed it): the configuration."""
        import datetime as dt

        from sae_checks.version import __version__

        return {"sae_checks": __version__, "torch": None, "transformer_lens": None, "sae_lens": None,
                "device": self.config.device or "", "dtype": self.config.dtype, "git_commit": None,
                "created": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"), "model": self.config.model,
                "saes": [], "data": {"dataset": self.config.data_source, "n_sequences": 0, "ctx_len": self.config.ctx_len or 1,
                                     "seed": self.config.seed}}

    def summary_lines(self) -> list[str]:
        counts = summarize(self.checks.values())
        custom_counts = summarize(self.custom.values())
        custom = (f"{len(self.custom)} custom checks ({custom_counts['fail']} failed"
                  + (f", {custom_counts['warn']} warn" if custom_counts["warn"] else "") + ")")
        lines = [f"sae-checks: {', '.join(f'{v} {k}' for k, v in counts.items())}"
                 + (f"; {custom}" if self.custom else "") if self.checks
                 else f"sae-checks: no gate checks ran; {custom if self.custom else 'no custom checks'}"]
        lines.append(f"sae-checks: policy: {self.options.policy_source}")
        lines += [f"sae-checks: {msg}" for _, msg in self.failures]
        lines += [f"sae-checks: note: {n}" for n in self.notes]
        if self.report_written:
            lines.append(f"sae-checks: report written to {self.report_written}")
        not_run = self.not_run()
        if not_run:
            lines.append(f"sae-checks: the run stopped early: {len(not_run)} planned checks did not run "
                         "(report marked incomplete)")
        if self.options.update_baseline and self.baseline_updated:
            lines.append(f"sae-checks: baseline ({self.options.update_baseline}) updated "
                         f"{len(self.baseline_written)} entries in {self.baselines.path}")
            if self.options.baseline_target != self.options.baseline:
                lines.append(f"sae-checks: judge against it next time with --sae-baseline {self.baselines.path} "
                             "(or baseline = ... in [tool.sae-checks])")
        if self.unsafe:
            lines.append(f"sae-checks: {len(self.unsafe)} tolerances below the baseline CI half-width "
                         "(may fail on a rerun with other data): " + "; ".join(self.unsafe[:10])
                         + (" ..." if len(self.unsafe) > 10 else ""))
        unused = self.unused()
        if unused:
            lines.append(f"sae-checks: {len(unused)} unused baseline entries: " + ", ".join(unused[:10])
                         + (" ..." if len(unused) > 10 else ""))
        return lines


def _error_check(spec: CheckSpec, rule: Rule, message: str) -> Check:
    """A check that could not be judged because its engine run failed (status fail, reason error)."""
    return Check(id=spec.id, metric=spec.metric, sae=spec.sae, layer=spec.layer, hook=spec.hook, bucket=spec.bucket,
                 value=None, ci=None, baseline=None, limit=rule.limit, band=None, direction=rule.direction,
                 severity=rule.severity, status="fail", message=message, reason="error", upstream=spec.upstream,
                 upstream_sae=spec.upstream_sae)
