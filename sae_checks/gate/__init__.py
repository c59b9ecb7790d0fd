"""The gate: policy + baselines -> one judged check per (metric, SAE, bucket).

``thresholds`` parses the policy and reads/writes baselines, ``checks`` plans and judges checks (pure
functions over the results dict), and ``GateSession`` (here) is the small stateful layer the pytest
plugin drives: resolve the options, plan the checks, run the engine for the SAEs a process needs
(cached), judge, merge per-worker outputs, write the report and the baseline update. No torch import
here; the engine is imported only when a check needs results.
"""

from __future__ import annotations

import importlib.resources
import json
import tomllib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from sae_checks.config import RunConfig
from sae_checks.errors import ConfigError
from sae_checks.gate.checks import (
    Check,
    CheckSpec,
    GateWarning,
    check_id,
    judge,
    legacy_id,
    lookup,
    merge_provenance,
    merge_results,
    plan_checks,
    rules_for,
    summarize,
    unused_baselines,
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
    unsafe_tolerances,
    updated_baselines,
    write_baselines,
)

__all__ = [
    "BaselineEntry", "Baselines", "Check", "CheckSpec", "GateOptions", "GateWarning", "GateSession", "MetricPolicy",
    "Override", "Policy", "Rule", "check_id", "default_policy_path", "judge", "load_baselines", "load_policy",
    "lookup", "parse_policy", "plan_checks", "resolve_options", "summarize", "unsafe_tolerances",
    "unused_baselines", "updated_baselines", "write_baselines",
]

GATE_KEYS = ("thresholds", "baseline", "report", "update_baseline")  # options that are not RunConfig fields
ALIASES = {"ctx": "ctx_len", "id": "sae_id"}  # option name -> RunConfig field
DEFAULT_REPORT = "sae-report.json"
DEFAULT_BASELINE = "sae-baseline.json"
# Used only when neither an option nor a packaged zoo policy is found: a minimal sanity policy.
BUILTIN_POLICY = """\
description = "built-in default: reconstruction and splice checks against a baseline"
[defaults]
abs_tol = 0.0
rel_tol = 0.1
[metrics.fvu]
[metrics.l0]
[metrics.delta_ce]
[metrics.kl]
[context_ratio.fvu]
"""


def default_policy_path() -> Path | None:
    """The packaged zoo policy: ``sae_checks/thresholds/zoo.toml`` when shipped as package data, else the
    repository's ``thresholds/zoo.toml`` (editable install); None when neither exists."""
    packaged = importlib.resources.files("sae_checks").joinpath("thresholds", "zoo.toml")
    if packaged.is_file():
        return Path(str(packaged))
    repo = Path(__file__).resolve().parents[2] / "thresholds" / "zoo.toml"
    return repo if repo.is_file() else None


@dataclass(frozen=True, kw_only=True)
class GateOptions:
    """Gate-only settings (not part of RunConfig)."""

    thresholds: Path | None  # policy file; None = built-in policy
    baseline: Path | None  # baseline JSON; None = none configured (updates go to DEFAULT_BASELINE)
    report: Path  # where the JSON report is written
    update_baseline: Literal["new", "all"] | None  # rewrite baselines at the end of the run


def read_pyproject(rootdir: Path) -> dict[str, Any]:
    """``[tool.sae-checks]`` of ``rootdir/pyproject.toml`` ({} if absent)."""
    path = rootdir / "pyproject.toml"
    if not path.is_file():
        return {}
    with path.open("rb") as fh:
        return dict(tomllib.load(fh).get("tool", {}).get("sae-checks", {}))


def resolve_options(cli: Mapping[str, Any], pyproject: Mapping[str, Any], *, rootdir: Path,
                    invocation_dir: Path) -> tuple[RunConfig, Policy, GateOptions]:
    """Precedence, lowest first: RunConfig defaults < policy top-level keys (buckets, tasks, baseline)
    < ``[tool.sae-checks]`` < command line. Paths in pyproject are relative to the rootdir, on the command
    line to the invocation dir. ``cli`` holds only the options actually given (None values dropped)."""
    def norm(d: Mapping[str, Any], base: Path, source: str) -> dict[str, Any]:
        out = {}
        for k, v in d.items():
            k = ALIASES.get(k.replace("-", "_"), k.replace("-", "_"))
            if v is None:
                continue
            if k in ("thresholds", "baseline", "report"):
                v = base / str(v)
            out[k] = v
        return out

    pp = norm(pyproject, rootdir, "pyproject")
    cl = norm(cli, invocation_dir, "cli")
    merged = {**pp, **cl}
    thresholds = merged.pop("thresholds", None) or default_policy_path()
    policy = load_policy(thresholds) if thresholds else parse_policy(BUILTIN_POLICY, path="<built-in policy>")
    update = merged.pop("update_baseline", None)
    if update not in (None, "new", "all"):
        raise ConfigError("update_baseline", update, "must be 'new' or 'all'")
    options = GateOptions(thresholds=Path(thresholds) if thresholds else None,
                          baseline=merged.pop("baseline", None) or policy.baseline,
                          report=merged.pop("report", None) or invocation_dir / DEFAULT_REPORT,
                          update_baseline=update)
    run: dict[str, Any] = {}
    if policy.buckets is not None:
        run["buckets"] = [list(b) for b in policy.buckets]
    if policy.tasks is not None:
        run["tasks"] = list(policy.tasks)
    run.update(merged)
    return RunConfig.from_dict(run, source="sae-checks options"), policy, options


def check_gate_paths(options: GateOptions, policy: Policy) -> None:
    """Before any model loads: a baseline named by an option must exist (only the policy's own
    ``baseline =`` may be absent, or any file being created by --sae-update-baseline), and the report
    and the baseline to update must be writable. Raises ConfigError naming the option and the path."""
    from sae_checks.report.io import check_writable

    baseline = options.baseline
    if baseline is not None and baseline != policy.baseline and not options.update_baseline \
            and not baseline.exists():
        raise ConfigError("--sae-baseline", str(baseline), "no such file",
                          "check the path, or create it with --sae-update-baseline all")
    check_writable(options.report, "--sae-report")
    if options.update_baseline:
        check_writable(options.baseline or options.report.parent / DEFAULT_BASELINE, "--sae-baseline")


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
    selected: list[CheckSpec] = field(default_factory=list)  # after -k / deselection
    results: dict[str, Any] = field(default_factory=dict)
    provenance: dict[str, Any] = field(default_factory=dict)
    ran: list[tuple[str, ...]] = field(default_factory=list)  # SAE sets the engine ran for
    checks: dict[str, dict[str, Any]] = field(default_factory=dict)  # judged, by id
    full_run: bool = True  # every planned check selected (on every worker)
    unsafe: list[str] = field(default_factory=list)
    baseline_written: list[str] = field(default_factory=list)
    report_written: Path | None = None

    @classmethod
    def create(cls, cli: Mapping[str, Any], *, rootdir: Path, invocation_dir: Path,
               worker: int | None = None) -> GateSession:
        config, policy, options = resolve_options(cli, read_pyproject(rootdir), rootdir=rootdir,
                                                  invocation_dir=invocation_dir)
        check_gate_paths(options, policy)
        return cls(config=config, policy=policy, options=options,
                   baselines=load_baselines(options.baseline), worker=worker)

    # --- planning (cheap, deterministic, identical on every worker) --------------------------------
    def plan(self, plan_fn: Callable[[RunConfig], Any]) -> list[CheckSpec]:
        if not self.planned:
            from sae_checks.names import propagation_pairs

            plan = plan_fn(self.config)
            buckets = {k: list(v) for k, v in plan.buckets.items()}
            self.policy.check_run(plan.layers, buckets, plan.tasks, restricted=self.restricted)
            suite = plan_fn(self.config.replace(shard=None)) if self.config.shard is not None else plan
            pairs = ([(u, d) for u, d in propagation_pairs({n: s.hook for n, s in suite.saes.items()})
                      if u in plan.saes] if self.config.propagation else [])
            self.specs = plan_checks(self.policy, saes=plan.saes, buckets=buckets, tasks=plan.tasks, pairs=pairs,
                                     others=suite.saes)
            self.rules = rules_for(self.policy, self.specs)
            self.planned_ids = [s.id for s in self.specs]
            self.baselines = self.baselines.remapped(lambda old: legacy_id(old, self.specs))
            self.unsafe = unsafe_tolerances(self.rules, self.baselines)
            self.planned = True
        return self.specs

    def select(self, ids: Iterable[str]) -> None:
        wanted = set(ids)
        self.selected = [s for s in self.specs if s.id in wanted]
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

    def results_for(self, spec: CheckSpec, run_fn: Callable[..., Any]) -> Mapping[str, Any]:
        names = self.saes_for(spec)
        if not any(set(names) <= set(done) for done in self.ran):
            evaluation = run_fn(self.engine_config(), saes=list(names))
            self.results = merge_results(self.results, evaluation.results)
            self.provenance = merge_provenance(self.provenance, evaluation.provenance)
            self.ran.append(names)
        return self.results

    # --- judging -----------------------------------------------------------------------------------
    def judge(self, spec: CheckSpec, run_fn: Callable[..., Any]) -> Check:
        check = judge(spec, self.results_for(spec, run_fn), self.rules[spec.id], self.baselines)
        self.checks[spec.id] = check.to_dict()
        return check

    def fails(self, check: Check) -> bool:
        """Whether the test fails. Under --sae-update-baseline, what the update fixes (new, band) passes."""
        if self.options.update_baseline and check.reason in ("no_baseline", "band"):
            return False
        return check.failed

    # --- xdist -------------------------------------------------------------------------------------
    def worker_output(self) -> str:
        return json.dumps({"results": self.results, "provenance": self.provenance, "checks": self.checks,
                           "full_run": self.full_run, "planned": self.planned_ids,
                           "unsafe": self.unsafe})

    def merge_worker(self, payload: str) -> None:
        data = json.loads(payload)
        self.results = merge_results(self.results, data["results"])
        self.provenance = merge_provenance(self.provenance, data["provenance"])
        self.checks.update(data["checks"])
        self.full_run = self.full_run and data["full_run"]
        self.planned_ids = self.planned_ids or data["planned"]
        self.unsafe = sorted(set(self.unsafe) | set(data["unsafe"]))

    # --- end of run (controller only) --------------------------------------------------------------
    def unused(self) -> list[str] | None:
        """Unused baseline entries, or None when the run was not full (then they are unknowable)."""
        if not self.full_run or not self.planned_ids or set(self.planned_ids) - set(self.checks):
            return None
        return unused_baselines(self.baselines, self.checks)

    def checks_list(self) -> list[dict[str, Any]]:
        return [self.checks[k] for k in sorted(self.checks)]

    def finish(self) -> dict[str, Any] | None:
        """Write the report (and the baseline update); returns the report, None if no check ran."""
        if not self.checks:
            return None
        from sae_checks.report.io import build_report, write_report
        from sae_checks.report.markdown import append_github_summary

        config = self.config.to_dict()
        config["gate"] = {"thresholds": str(self.options.thresholds or self.policy.path),
                          "baseline": str(self.options.baseline) if self.options.baseline else None,
                          "unsafe_tolerances": self.unsafe}
        report = build_report(provenance=self.provenance, config=config, results=self.results,
                              checks=self.checks_list(), unused_baseline=self.unused())
        self.report_written = write_report(self.options.report, report)
        append_github_summary(report)
        if self.options.update_baseline:
            path = self.options.baseline or self.options.report.parent / DEFAULT_BASELINE
            entries, self.baseline_written = updated_baselines(self.baselines, self.checks_list(),
                                                               self.options.update_baseline)
            write_baselines(path, entries)
            self.baselines = Baselines(path=path, entries=entries)
        return report

    def summary_lines(self) -> list[str]:
        counts = summarize(self.checks.values())
        lines = [f"sae-checks: {', '.join(f'{v} {k}' for k, v in counts.items())}"]
        if self.report_written:
            lines.append(f"sae-checks: report written to {self.report_written}")
        if self.options.update_baseline:
            lines.append(f"sae-checks: baseline ({self.options.update_baseline}) updated "
                         f"{len(self.baseline_written)} entries in {self.baselines.path}")
        if self.unsafe:
            lines.append(f"sae-checks: {len(self.unsafe)} tolerances below the baseline CI half-width "
                         "(may fail on a rerun with other data): " + "; ".join(self.unsafe[:10])
                         + (" ..." if len(self.unsafe) > 10 else ""))
        unused = self.unused()
        if unused:
            lines.append(f"sae-checks: {len(unused)} unused baseline entries: " + ", ".join(unused[:10])
                         + (" ..." if len(unused) > 10 else ""))
        return lines


