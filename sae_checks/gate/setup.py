"""Which policy, which baseline, which paths: a gate run's settings from its options, before any model loads.

The policy (docs/gate.md#which-policy) is, in order: ``--sae-thresholds`` / ``thresholds`` in
``[tool.sae-checks]``; the packaged zoo policy for the zoo (model ``zoo`` and only ``zoo:*`` SAEs); the
packaged policy of a sae_lens release (``thresholds/<release>.toml``, e.g. ``gpt2-small-res-jb``); else
``BUILTIN_POLICY``, a generic one. ``policy_source`` says which, in the terminal summary and the report.

A baseline update is never written inside the installed package: without a baseline path given by an
option it goes next to the user's policy file (its ``baseline =``, or ``sae-baseline.json`` there) or, for
a packaged or built-in policy, to ``./sae-baseline.json``.
"""

from __future__ import annotations

import importlib.resources
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sae_checks.config import UPDATE_MODES, RunConfig, UpdateMode, key_name
from sae_checks.errors import ConfigError
from sae_checks.gate.thresholds import Policy, load_policy, parse_policy

DEFAULT_REPORT = "sae-report.json"
DEFAULT_BASELINE = "sae-baseline.json"
BUILTIN_SOURCE = "built-in generic policy (sae_checks.gate.BUILTIN_POLICY)"
# Latent health and the release card, limit-only (no baseline needed): what shipped SAEs broke on
# (docs/gate.md#latent-health-and-release-cards). Part of the built-in policy; packaged policies repeat it.
HEALTH_AND_CARD_POLICY = """\
[latents.frac_dead]
limit = 0.3                  # latents that never fired over the run's tokens: depends on how many were seen,
severity = "warn"            # so it warns; set "fail" when n_seqs is large (e.g. 100k tokens for 24k latents)
baseline = false
[latents.max_density]
limit = 0.99                 # one latent firing on (nearly) every token: a bias, not a feature
baseline = false
[latents.max_decoder_cosine]
limit = 0.999                # two latents with the same decoder direction: duplicated rows
baseline = false
[card.l0_ratio]
limit = 1.5                  # L0 inside the training context at most 1.5x the release card's
baseline = false
[card.variance_explained_gap]
limit = -0.05                # explained variance at most 0.05 below the card's
baseline = false
[card.fact_problems]
limit = 0                    # every declared fact (hook, d_in, architecture, k, thresholds, dtype, model) holds
baseline = false
"""
# For a model and SAEs with no policy of their own: reconstruction and splice checks against a baseline.
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
""" + HEALTH_AND_CARD_POLICY


def packaged_thresholds() -> Path | None:
    """The folder of the packaged policies: ``sae_checks/thresholds`` when shipped as package data, else
    the repository's ``thresholds/`` (editable install); None when neither exists."""
    packaged = importlib.resources.files("sae_checks").joinpath("thresholds", "zoo.toml")
    if packaged.is_file():
        return Path(str(packaged)).parent
    repo = Path(__file__).resolve().parents[2] / "thresholds"
    return repo if (repo / "zoo.toml").is_file() else None


def default_policy_path() -> Path | None:
    """The packaged zoo policy ``zoo.toml``; None when it is not shipped."""
    folder = packaged_thresholds()
    return folder / "zoo.toml" if folder else None


def inside_package(path: Path) -> bool:
    """Whether ``path`` lies in the installed package or its packaged thresholds folder."""
    roots = [Path(__file__).resolve().parents[1], *filter(None, [packaged_thresholds()])]
    target = path.resolve()
    return any(target.is_relative_to(r.resolve()) for r in roots)


def choose_policy(model: str, saes: str) -> tuple[Path | None, str]:
    """(policy file, source) when no policy option is given: see the module docstring. None = built-in."""
    from sae_checks.loading.saes import split_sources  # stdlib-only imports: no torch at gate set-up

    sources = split_sources(saes)
    folder = packaged_thresholds()
    if model == "zoo" and sources and all(s.startswith("zoo:") for s in sources):
        zoo = default_policy_path()
        if zoo is not None:
            return zoo, f"the zoo's packaged policy ({zoo})"
    for source in sources:
        candidate = folder / f"{source}.toml" if folder and "/" not in source and not source.startswith("zoo") \
            else None
        if candidate is not None and candidate.is_file():
            return candidate, f"the packaged policy of sae_lens release {source!r} ({candidate})"
    return None, BUILTIN_SOURCE


@dataclass(frozen=True, kw_only=True)
class GateOptions:
    """Gate-only settings (not part of RunConfig)."""

    thresholds: Path | None  # policy file; None = built-in policy
    policy_source: str  # which policy and why (an option, the zoo's, a release's, built-in), for people
    baseline: Path | None  # baseline JSON read; None = none configured
    baseline_target: Path  # where --sae-update-baseline writes (never inside the installed package)
    baseline_given: bool  # the baseline path came from an option / [tool.sae-checks], not from a policy
    report: Path  # where the JSON report is written
    update_baseline: UpdateMode | None  # rewrite baselines at the end of the run
    baseline_any: bool = False  # compare against a baseline of another model / SAE set anyway


def resolve_options(cli: Mapping[str, Any], pyproject: Mapping[str, Any], *, rootdir: Path,
                    invocation_dir: Path) -> tuple[RunConfig, Policy, GateOptions]:
    """Precedence, lowest first: RunConfig defaults < policy top-level keys (buckets, tasks, baseline)
    < ``[tool.sae-checks]`` < command line. Paths in pyproject are relative to the rootdir, on the command
    line to the invocation dir. ``cli`` holds only the options actually given (None values dropped)."""
    def norm(d: Mapping[str, Any], base: Path) -> dict[str, Any]:
        out = {}
        for k, v in d.items():
            k = key_name(k)
            if v is None:
                continue
            if k in ("thresholds", "baseline", "report"):
                v = base / str(v)
            out[k] = v
        return out

    pp, cl = norm(pyproject, rootdir), norm(cli, invocation_dir)
    merged = {**pp, **cl}
    thresholds = merged.pop("thresholds", None)
    if thresholds is not None:
        source = (f"--sae-thresholds {thresholds}" if "thresholds" in cl
                  else f"[tool.sae-checks] thresholds = {thresholds}")
    else:
        thresholds, source = choose_policy(str(merged.get("model", RunConfig.model)),
                                           str(merged.get("saes", RunConfig.saes)))
    policy = load_policy(thresholds) if thresholds else parse_policy(BUILTIN_POLICY, path="<built-in policy>")
    update = merged.pop("update_baseline", None)
    if update is not None and update not in UPDATE_MODES:
        raise ConfigError("update_baseline", update, f"must be {' or '.join(map(repr, UPDATE_MODES))}")
    given = merged.pop("baseline", None)
    baseline = given or policy.baseline
    if given is not None:
        target = given
    elif "thresholds" in pp or "thresholds" in cl:  # the user's own policy: next to it
        target = policy.baseline or Path(thresholds).parent / DEFAULT_BASELINE  # type: ignore[arg-type]
    else:
        target = invocation_dir / DEFAULT_BASELINE
    if given is None and inside_package(target):
        target = invocation_dir / DEFAULT_BASELINE
    options = GateOptions(thresholds=Path(thresholds) if thresholds else None, policy_source=source,
                          baseline=baseline, baseline_target=target, baseline_given=given is not None,
                          report=merged.pop("report", None) or invocation_dir / DEFAULT_REPORT,
                          update_baseline=update, baseline_any=bool(merged.pop("baseline_any", False)))
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
    from sae_checks.io import check_writable

    baseline = options.baseline
    if baseline is not None and baseline != policy.baseline and not options.update_baseline \
            and not baseline.exists():
        raise ConfigError("--sae-baseline", str(baseline), "no such file",
                          "check the path, or create it with --sae-update-baseline all")
    check_writable(options.report, "--sae-report")
    if options.update_baseline:
        check_writable(options.baseline_target, "--sae-baseline")
