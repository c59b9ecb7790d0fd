"""The Python API for notebooks and scripts: ``run`` -> report dict, ``judge`` it against a policy and a
baseline, ``diff`` two reports. Importable from ``sae_checks`` (lazily: ``import sae_checks`` stays light).

    >>> import sae_checks
    >>> report = sae_checks.run(n_seqs=2, n_bootstrap=0, device="cpu", propagation=False)
    >>> results = sae_checks.Results.from_report(report)
    >>> results.saes()[:2]
    ['blocks.0.hook_resid_pre', 'blocks.1.hook_resid_pre']

The report is the same JSON-ready dict ``sae-checks run --report`` writes (``report.io.write_report``
saves it); ``judge`` plans every check a policy names for its results, as the pytest gate does.
"""

from __future__ import annotations

import dataclasses
import inspect
import os
import typing
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, NamedTuple, TypedDict

from sae_checks.config import RunConfig

PathLike = str | os.PathLike[str]


def _run_options() -> Any:
    """``RunConfig``'s fields as a TypedDict (names and types), for code that introspects ``run``'s keywords."""
    hints = typing.get_type_hints(RunConfig)
    return TypedDict("RunOptions", {f.name: hints[f.name] for f in dataclasses.fields(RunConfig)},  # type: ignore[operator]
                     total=False)


# ``run``'s keyword arguments: RunConfig's fields, derived from them (see RunConfig for what each means).
RunOptions = _run_options()


def run(config: RunConfig | None = None, /, **options: Any) -> dict[str, Any]:
    """Evaluate (``api.run``: load the model, SAEs and data, run the engine and the cloze tasks) and return
    the report dict (schema 2, no checks: ``judge`` adds them). ``options`` override ``config``'s fields:
    any ``RunConfig`` field by name (its signature lists them; a wrong name or type is a ConfigError).

    >>> import sae_checks
    >>> report = sae_checks.run(n_seqs=2, n_bootstrap=0, device="cpu", propagation=False)
    >>> report["provenance"]["data"]["n_sequences"], sorted(report["results"]["per_bucket"])[0]
    (2, 'blocks.0.hook_resid_pre')
    >>> report["results"]["per_bucket"]["blocks.0.hook_resid_pre"]["1-256"]["fvu"]["mean"] < 1
    True
    """
    from sae_checks.api import run as _run
    from sae_checks.report.io import build_report

    config = RunConfig.from_dict({**(config or RunConfig()).to_dict(), **options}, source="sae_checks.run")
    evaluation = _run(config)
    return build_report(provenance=evaluation.provenance, config=config.to_dict(), results=evaluation.results,
                        checks=[])


def _signature() -> inspect.Signature:
    """``run(config=None, /, *, model="zoo", ...)``: RunConfig's fields as keyword-only parameters, so
    ``help(sae_checks.run)`` and notebooks' completion show them."""
    hints = typing.get_type_hints(RunConfig)
    params = [inspect.Parameter("config", inspect.Parameter.POSITIONAL_ONLY, default=None,
                                annotation=RunConfig | None)]
    params += [inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY, default=f.default, annotation=hints[f.name])
               for f in dataclasses.fields(RunConfig)]
    return inspect.Signature(params, return_annotation=dict[str, Any])


run.__signature__ = _signature()  # type: ignore[attr-defined]


class _SAE(NamedTuple):
    layer: int
    hook: str
    card_l0: float | None = None  # the release card's figures (results.cards), for the card checks' plan
    card_variance_explained: float | None = None


def judge(results: Mapping[str, Any], policy: Any = None, baseline: Any = None) -> list[dict[str, Any]]:
    """Every check ``policy`` names for ``results``, judged against ``baseline``: the report's check dicts
    (``id``, ``value``, ``ci``, ``baseline``, ``status``, ``message``, ...), in plan order.

    ``results``: a report dict (``run``, ``report.io.load_report``) or its ``results`` section.
    ``policy``: a TOML path or a ``Policy``; None = the gate's choice for the report's model and SAEs
    (the zoo's policy for the zoo, a release's shipped one, else the built-in generic policy).
    ``baseline``: a JSON path or ``Baselines``; None = the policy's ``baseline =`` (none: every check new).

    >>> import sae_checks
    >>> report = sae_checks.run(n_seqs=2, n_bootstrap=0, device="cpu", propagation=False,
    ...                         buckets=((1, 32), (32, 256)))
    >>> checks = sae_checks.judge(report)  # the zoo: its packaged policy and baseline
    >>> checks[0]["id"], checks[0]["baseline"] is not None
    ('fvu-L0-pos1_32-blocks.0.hook_resid_pre', True)
    >>> from sae_checks.status import STATUSES
    >>> {c["status"] for c in checks} <= set(STATUSES)
    True
    """
    from sae_checks.gate import Baselines, Policy, load_baselines, load_policy, parse_policy
    from sae_checks.gate.checks import judge as judge_one
    from sae_checks.gate.checks import legacy_id, plan_checks, rules_for
    from sae_checks.gate.setup import BUILTIN_POLICY, choose_policy
    from sae_checks.names import propagation_pairs

    is_report = "results" in results
    res: Mapping[str, Any] = results["results"] if is_report else results
    config: Mapping[str, Any] = results.get("config", {}) if is_report else {}
    if policy is None:
        path, _ = choose_policy(str(config.get("model", RunConfig.model)), str(config.get("saes", RunConfig.saes)))
        policy = load_policy(path) if path else parse_policy(BUILTIN_POLICY, path="<built-in policy>")
    elif not isinstance(policy, Policy):
        policy = load_policy(policy)
    if not isinstance(baseline, Baselines):
        baseline = load_baselines(baseline if baseline is not None else policy.baseline)
    cards = res.get("cards") or {}
    saes = {n: _SAE(int(s["layer"]), str(s["hook"]), (cards.get(n) or {}).get("l0"),
                    (cards.get(n) or {}).get("variance_explained")) for n, s in (res.get("saes") or {}).items()}
    prop = res.get("propagation") or {}
    pairs = ([(u, d) for u, d in propagation_pairs({n: s.hook for n, s in saes.items()})
              if u in prop.get("saes", []) and d in prop.get("saes", [])] if prop else [])
    specs = plan_checks(policy, saes=saes, buckets=res.get("buckets", {}), tasks=list(res.get("cloze", {})),
                        pairs=pairs)
    rules = rules_for(policy, specs)
    baseline = baseline.remapped(lambda old: legacy_id(old, specs))
    return [judge_one(s, res, rules[s.id], baseline).to_dict() for s in specs]


def diff(a: Mapping[str, Any] | PathLike, b: Mapping[str, Any] | PathLike, *, force: bool = False,
         allow_different: bool = False, exclude: Iterable[str] = ()) -> Any:
    """``sae-checks diff`` of two reports (dicts or paths): a ``report.diff.ReportDiff`` whose entries are
    regressed / improved / changed / unchanged / added / excluded by CI overlap; ``.regressions`` lists
    what got worse.

    >>> import sae_checks
    >>> report = sae_checks.run(n_seqs=2, n_bootstrap=0, device="cpu", propagation=False)
    >>> d = sae_checks.diff(report, report)
    >>> len(d.regressions), {e.category for e in d.entries}
    (0, {'unchanged'})
    """
    from sae_checks.report.diff import diff_reports
    from sae_checks.report.io import load_report

    def load(r: Mapping[str, Any] | PathLike) -> Mapping[str, Any]:
        return r if isinstance(r, Mapping) else load_report(Path(r))

    labels = (str(a) if not isinstance(a, Mapping) else "a", str(b) if not isinstance(b, Mapping) else "b")
    return diff_reports(load(a), load(b), force=force, allow_different=allow_different, exclude=tuple(exclude),
                        labels=labels)
