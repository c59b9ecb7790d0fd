"""Check families: each kind of gate check declared once, and everything else reads the declaration.

A family says where its numbers live in the results (``read``: one check's value and CI, through
``sae_checks.results.Results``), which checks a policy entry plans for a run (``plan``), which policy
TOML table configures it (``section``, nested by task when ``tasks`` is set) and which overrides a metric
table may hold (``buckets``), which pytest function of ``gate.gate_tests`` runs its checks (``test``: part
of every pytest id), which of the results the diff compares (``points``) and what the terminal summary
prints (``summary``). Its metrics, with the direction that is better, are the registry's
(``sae_checks.metrics.registry.directions(name)``), read when a policy is parsed, so a metric a user
registers before the run is gateable. Reports list families in registration order.

The four built-in families (the ``results`` layout is in docs/report.md):

    bucket          [metrics.M]            results["per_bucket"][sae][bucket][M]               {"mean", "ci"}
    context_ratio   [context_ratio.M]      results["context_generalization"][sae][M]           {"ratio", "ci"}
    cloze           [cloze.TASK.M]         results["cloze"][TASK]["per_sae"][sae][M]           {"mean", "ci"}
    propagation     [propagation.M]        results["propagation"][M][i][j]                     float

A family of one's own is one module that builds a ``CheckFamily`` and passes it to ``register`` (in a
``conftest.py``, before the gate plans); docs/extending.md shows one.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from sae_checks.metrics import registry
from sae_checks.names import check_id, slug
from sae_checks.results import Estimate, Results
from sae_checks.tasks import task_names


class _TaskNames(Sequence[str]):
    """The registered cloze tasks (``sae_checks.tasks``), read at call time: a task registered after
    import (a user's conftest.py) has its policy section too."""

    def _names(self) -> tuple[str, ...]:
        return tuple(task_names())

    def __getitem__(self, i: Any) -> Any:
        return self._names()[i]

    def __len__(self) -> int:
        return len(self._names())

    def __repr__(self) -> str:
        return repr(self._names())


CLOZE_TASKS: Sequence[str] = _TaskNames()


@dataclass(frozen=True, kw_only=True)
class CheckSpec:
    """One planned check: what to read from the results and which policy entry judges it."""

    id: str
    family: str  # a registered family's name: "bucket", "context_ratio", "cloze", "propagation", ...
    metric: str  # policy name: "fvu", "context_ratio.fvu", "cloze.lambada.acc_word", "propagation.mse"
    sae: str  # the SAE's name; for propagation the downstream SAE
    layer: int  # the SAE's layer (policy overrides by layer apply)
    hook: str = ""  # the SAE's hook
    bucket: str | None = None
    upstream: int | None = None  # propagation only: the upstream SAE's layer
    upstream_sae: str | None = None  # propagation only: the upstream SAE's name

    @property
    def group(self) -> str:
        """xdist group: one per SAE (a propagation check goes with its upstream SAE, whose run fills it)."""
        return f"sae-{slug(self.upstream_sae or self.sae)}"

    @property
    def key(self) -> str:
        """The metric's key inside the results: the last part of the policy name (``acc_word``)."""
        return self.metric.rpartition(".")[2]

    @property
    def task(self) -> str | None:
        """The task of a policy name nested by task (``cloze.lambada.acc_word`` -> ``lambada``)."""
        parts = self.metric.split(".")
        return parts[1] if len(parts) == 3 else None


@dataclass(frozen=True)
class RunShape:
    """What a run holds, for planning: its SAEs, their buckets, the tasks run, the propagation pairs."""

    saes: Mapping[str, Any]  # name -> object with ``layer`` and ``hook``, in forward order
    buckets: Mapping[str, Sequence[str]]  # name -> its position buckets "a-b"
    tasks: Sequence[str]  # cloze tasks the run computes
    pairs: Sequence[tuple[str, str]] = ()  # (upstream, downstream) propagation pairs
    every: Mapping[str, Any] = field(default_factory=dict)  # also SAEs outside this shard (pair downstreams)


class Point(NamedTuple):
    """One number the diff compares: its key, section, SAE (None: not an SAE's), value and CI, and which
    way is better (None: unknown, so a real change is "changed")."""

    key: str  # "per_bucket/sae=<name>/bucket=1-128/fvu"
    section: str  # "per_bucket", "context_generalization", "cloze", ...
    sae: str | None
    value: Any  # as the report holds it (a number or null)
    ci: Any  # [lo, hi] as the report holds it (either may be null), or None
    direction: str | None


# metric name -> direction the report's checks declare (a policy may set one the registry leaves open)
CheckDirections = Mapping[str, str]


@dataclass(frozen=True, kw_only=True)
class CheckFamily:
    """One family of gate checks (see the module docstring)."""

    name: str  # CheckSpec.family, the registry family of its metrics, the prefix of its policy names
    section: str  # the policy TOML table of its metrics ("metrics" for bucket)
    test: str  # the gate_tests function running its checks ("test_metric"): part of every pytest id
    doc: str  # that function's docstring
    read: Callable[[Results, CheckSpec], Estimate]  # one check's value + CI; KeyError etc. when absent
    plan: Callable[[CheckFamily, str, RunShape], Iterable[CheckSpec]] | None = None  # None: one per SAE
    tasks: Sequence[str] = ()  # the section is nested by task: [section.TASK.METRIC]
    buckets: bool = False  # a metric's table may override by position bucket (buckets.a-b)
    prefixed: bool = True  # policy names are "<name>.<metric>" (bucket: the bare metric)
    points: Callable[[Results, CheckDirections], Iterator[Point]] | None = None  # what the diff compares
    summary: Callable[[Results], list[str]] | None = None  # terminal summary lines (None: none)
    detail: Callable[[Results, CheckSpec], str] | None = None  # added to the message of a check that does not pass

    def metrics(self) -> dict[str, registry.Direction | None]:
        """``{metric: direction}`` a policy may name, from the registry at call time."""
        return registry.directions(self.name)  # type: ignore[arg-type]  # a user's family is a str

    def policy_name(self, metric: str, task: str | None = None) -> str:
        """The policy name of a metric: ``fvu``, ``context_ratio.fvu``, ``cloze.lambada.acc_word``."""
        if not self.prefixed:
            return metric
        return f"{self.name}.{task}.{metric}" if task else f"{self.name}.{metric}"

    def policy_key(self, metric: str, task: str | None = None) -> tuple[str, ...]:
        """The TOML key path of a metric's table (for error lines)."""
        return (self.section, task, metric) if task else (self.section, metric)

    def spec(self, metric: str, name: str, run: RunShape, bucket: str | None = None) -> CheckSpec:
        """The check of policy metric ``metric`` on SAE ``name`` (and ``bucket``), with its id."""
        s = run.saes[name]
        return CheckSpec(id=check_id(self.name, metric, s.layer, name, bucket), family=self.name, metric=metric,
                         sae=name, layer=s.layer, hook=s.hook, bucket=bucket)

    def plan_checks(self, metric: str, run: RunShape) -> list[CheckSpec]:
        """The checks one policy metric plans for ``run``."""
        if self.plan is not None:
            return list(self.plan(self, metric, run))
        return [self.spec(metric, n, run) for n in run.saes]

    def lookup(self, results: Results, spec: CheckSpec) -> Estimate:
        """The check's value and CI; ``Estimate(None, None)`` when the results do not have it."""
        try:
            return self.read(results, spec)
        except (KeyError, IndexError, ValueError, TypeError):
            return Estimate(None, None)


# --------------------------------------------------------------------------------------------------
# the registered families

_FAMILIES: dict[str, CheckFamily] = {}


def register(family: CheckFamily) -> CheckFamily:
    """Add a family (or replace the one of that name); returns it. Its policy section and its test
    function must be its own, and the test's name must start with ``test_`` (pytest collects it)."""
    others = [f for f in _FAMILIES.values() if f.name != family.name]
    clash = next((f for f in others if f.section == family.section), None)
    if clash is not None:
        raise ValueError(f"family {family.name!r}: policy section [{family.section}] is family {clash.name!r}'s")
    clash = next((f for f in others if f.test == family.test), None)
    if clash is not None or not family.test.startswith("test_"):
        why = f"is family {clash.name!r}'s" if clash else "must start with test_"
        raise ValueError(f"family {family.name!r}: test function {family.test!r} {why}")
    _FAMILIES[family.name] = family
    return family


def unregister(name: str) -> None:
    """Remove a family (a test's own); built-ins can be removed too, so take care."""
    _FAMILIES.pop(name, None)


def families() -> tuple[CheckFamily, ...]:
    """Every registered family, in report order."""
    return tuple(_FAMILIES.values())


def get(name: str) -> CheckFamily:
    """The family ``name`` (KeyError listing the registered ones)."""
    try:
        return _FAMILIES[name]
    except KeyError:
        raise KeyError(f"no check family {name!r} (registered: {', '.join(_FAMILIES)})") from None


# --------------------------------------------------------------------------------------------------
# the built-ins


def _bucket_plan(family: CheckFamily, metric: str, run: RunShape) -> Iterator[CheckSpec]:
    for n in run.saes:
        for b in run.buckets.get(n, ()):
            yield family.spec(metric, n, run, b)


def _bucket_points(results: Results, directions: CheckDirections) -> Iterator[Point]:
    for sae, buckets in results.raw.get("per_bucket", {}).items():
        for bucket, metrics in buckets.items():
            for metric, est in metrics.items():
                yield Point(f"per_bucket/sae={sae}/bucket={bucket}/{metric}", "per_bucket", sae, est.get("mean"),
                            est.get("ci"), directions.get(metric) or registry.direction(metric, "bucket"))


def _context_points(results: Results, directions: CheckDirections) -> Iterator[Point]:
    # a larger beyond/inside ratio is a worse degradation past the training context, for every metric
    for sae, metrics in results.raw.get("context_generalization", {}).items():
        for metric, ratio in metrics.items():
            yield Point(f"context_generalization/sae={sae}/{metric}", "context_generalization", sae,
                        ratio.get("ratio"), ratio.get("ci"), registry.direction(metric, "context_ratio") or "lower")


def _context_plan(family: CheckFamily, metric: str, run: RunShape) -> Iterator[CheckSpec]:
    # an SAE evaluated only inside its training context (one bucket) has no ratio to check
    yield from (family.spec(metric, n, run) for n in run.saes if len(run.buckets.get(n, ())) >= 2)


def _cloze_plan(family: CheckFamily, metric: str, run: RunShape) -> Iterator[CheckSpec]:
    task = metric.split(".")[1]
    if task in run.tasks:
        yield from (family.spec(metric, n, run) for n in run.saes)


def _leaves(prefix: str, node: Any, sae: str | None, directions: CheckDirections) -> Iterator[Point]:
    """Numbers and {"mean", "ci"} pairs under ``node``, keyed by their joined path; lists are skipped."""
    if not isinstance(node, Mapping):
        return
    for key, value in node.items():
        path = f"{prefix}/{key}"
        direction = directions.get(key) or registry.direction(key, "cloze")
        if isinstance(value, Mapping) and "mean" in value:
            yield Point(path, "cloze", sae, value.get("mean"), value.get("ci"), direction)
        elif isinstance(value, Mapping):
            yield from _leaves(path, value, sae, directions)
        elif isinstance(value, (int, float)) and not isinstance(value, bool) or value is None:
            yield Point(path, "cloze", sae, value, None, direction)


def _cloze_points(results: Results, directions: CheckDirections) -> Iterator[Point]:
    for task, body in results.raw.get("cloze", {}).items():
        yield from _leaves(f"cloze/task={task}/baseline", body.get("baseline", {}), None, directions)
        for sae, per_sae in body.get("per_sae", {}).items():
            yield from _leaves(f"cloze/task={task}/sae={sae}", per_sae, sae, directions)


def _propagation_plan(family: CheckFamily, metric: str, run: RunShape) -> Iterator[CheckSpec]:
    every = {**run.every, **run.saes}
    for u, d in run.pairs:
        yield CheckSpec(id=check_id(family.name, metric, every[d].layer, d, upstream=every[u].layer, upstream_sae=u),
                        family=family.name, metric=metric, sae=d, layer=every[d].layer, hook=every[d].hook,
                        upstream=every[u].layer, upstream_sae=u)


def _propagation_read(results: Results, spec: CheckSpec) -> Estimate:
    return Estimate(results.propagation(spec.key)[(str(spec.upstream_sae), spec.sae)], None)


def _fmt(v: float | None) -> str:
    return "nan" if v is None else f"{v:.4g}"


SUMMARY_COLUMNS = ("fvu", "explained_variance", "mse", "l0", "delta_ce", "kl", "ce_loss_score")
SUMMARY_HEAD = {"explained_variance": "ev", "ce_loss_score": "ce_score"}


def _bucket_summary(results: Results) -> list[str]:
    per_bucket = results.raw.get("per_bucket", {})
    if not per_bucket:
        return []
    cols = [c for c in SUMMARY_COLUMNS if any(c in m for b in per_bucket.values() for m in b.values())]
    width = max(len("sae"), *(len(n) for n in per_bucket))
    header = f"{'sae':<{width}} {'bucket':>10} " + " ".join(f"{SUMMARY_HEAD.get(c, c):>9}" for c in cols)
    lines = [header, "-" * len(header)]
    for name in per_bucket:
        for bucket in per_bucket[name]:
            est = results.bucket(name, bucket)
            lines.append(f"{name:<{width}} {bucket:>10} " + " ".join(
                f"{_fmt(est[c].mean if c in est else None):>9}" for c in cols))
    return lines


def _context_summary(results: Results) -> list[str]:
    ratios = results.raw.get("context_generalization", {})
    if not ratios:
        return []
    lines = ["context generalization (beyond / inside the first bucket; 1 = no degradation):"]
    for name, r in ratios.items():
        any_r = next(iter(r.values()))
        parts = [f"{m} x{_fmt(results.context_ratio(name, m).mean)}" for m in r if m in ("fvu", "l0", "delta_ce")]
        lines.append(f"  {name} ({any_r['beyond']} vs {any_r['inside']}): " + ", ".join(parts))
    return lines


def _cloze_summary(results: Results) -> list[str]:
    lines = []
    for task, section in results.raw.get("cloze", {}).items():
        base = results.cloze_clean(task).get("acc_first_token", Estimate(None, None))
        accs = ", ".join(f"{name} {_fmt(results.cloze(task, name).get('acc_first_token', Estimate(None, None)).mean)}"
                         for name in section.get("per_sae", {}))
        lines.append(f"cloze {task}: clean acc_first_token {_fmt(base.mean)}; spliced {accs}")
    return lines


BUCKET = register(CheckFamily(
    name="bucket", section="metrics", test="test_metric", prefixed=False, buckets=True,
    doc="Reconstruction and splice metrics per (SAE, position bucket): ``fvu-L3-pos1_128-<sae>``.",
    read=lambda r, s: r.bucket(s.sae, str(s.bucket))[s.key], plan=_bucket_plan,
    points=_bucket_points, summary=_bucket_summary))
CONTEXT_RATIO = register(CheckFamily(
    name="context_ratio", section="context_ratio", test="test_context_ratio",
    doc="Beyond-context / inside-context ratio per SAE: ``context_ratio-fvu-L3-<sae>``.",
    read=lambda r, s: r.context_ratio(s.sae, s.key), plan=_context_plan, points=_context_points, summary=_context_summary))
CLOZE = register(CheckFamily(
    name="cloze", section="cloze", test="test_cloze", tasks=CLOZE_TASKS,
    doc="Cloze task accuracy with the SAE spliced in: ``cloze-lambada-acc_first_token-L3-<sae>``.",
    read=lambda r, s: r.cloze(str(s.task), s.sae)[s.key], plan=_cloze_plan,
    points=_cloze_points, summary=_cloze_summary))
PROPAGATION = register(CheckFamily(
    name="propagation", section="propagation", test="test_propagation",
    doc="Downstream metric change from splicing an upstream SAE: ``propagation-mse-L1-<up>-to-L3-<down>``.",
    read=_propagation_read, plan=_propagation_plan))


# latent health (docs/definitions.md#latent-health): results["latents"][sae][metric], a number per SAE


def _latents_points(results: Results, directions: CheckDirections) -> Iterator[Point]:
    for sae, health in results.raw.get("latents", {}).items():
        for metric, value in health.items():
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                yield Point(f"latents/sae={sae}/{metric}", "latents", sae, value, None,
                            directions.get(metric) or registry.direction(metric, "latents"))


def _latents_summary(results: Results) -> list[str]:
    lines = []
    for sae, h in results.raw.get("latents", {}).items():
        lines.append(f"latents {sae}: alive {_fmt(h.get('frac_alive'))} (dead {h.get('n_dead')} of {h.get('d_sae')} "
                     f"over {h.get('n_tokens')} tokens), >10% {_fmt(h.get('freq_over_10_percent'))}, densest "
                     f"{_fmt(h.get('max_density'))}, max decoder cos {_fmt(h.get('max_decoder_cosine'))}")
    return lines


LATENTS = register(CheckFamily(
    name="latents", section="latents", test="test_latents",
    doc="Latent health per SAE (dead and dense latents, duplicated decoder rows): ``latents-frac_dead-L3-<sae>``.",
    read=lambda r, s: Estimate.of(r.latents(s.sae)[s.key]), points=_latents_points, summary=_latents_summary))


# release cards (docs/definitions.md#release-cards): the card's figures against what the run measured
# inside the training context (the SAE's first bucket), and the declared facts against what loaded


def _inside(results: Results, sae: str, metric: str) -> Estimate:
    return results.bucket(sae, results.buckets(sae)[0])[metric]


def _card_read(results: Results, spec: CheckSpec) -> Estimate:
    card = results.card(spec.sae)
    if spec.key == "fact_problems":
        return Estimate(float(len(card["facts"])), None)
    if spec.key == "l0_ratio":
        l0, published = _inside(results, spec.sae, "l0"), float(card["l0"])
        ci = (l0.ci[0] / published, l0.ci[1] / published) if l0.ci else None
        return Estimate(None if l0.mean is None else l0.mean / published, ci)
    ev, published = _inside(results, spec.sae, "explained_variance"), float(card["variance_explained"])
    ci = (ev.ci[0] - published, ev.ci[1] - published) if ev.ci else None
    return Estimate(None if ev.mean is None else ev.mean - published, ci)


def _card_plan(family: CheckFamily, metric: str, run: RunShape) -> Iterator[CheckSpec]:
    key = metric.split(".")[-1]
    for n, s in run.saes.items():  # figures only where the card publishes them; facts for every SAE
        if (key == "fact_problems" or (key == "l0_ratio" and getattr(s, "card_l0", None))
                or (key == "variance_explained_gap" and getattr(s, "card_variance_explained", None))):
            yield family.spec(metric, n, run)


def _card_detail(results: Results, spec: CheckSpec) -> str:
    card = results.card(spec.sae)
    if spec.key == "fact_problems":
        return "; ".join(card.get("facts") or [])
    published = card.get("l0") if spec.key == "l0_ratio" else card.get("variance_explained")
    what = "L0" if spec.key == "l0_ratio" else "explained variance"
    return (f"the card ({card.get('source')}, release {card.get('release')!r}) says {what} {published}: a TopK or "
            "JumpReLU SAE loaded as another architecture, or the wrong SAE, fires far more latents"
            if spec.key == "l0_ratio" else
            f"the card ({card.get('source')}, release {card.get('release')!r}) says {what} {published}")


def _card_points(results: Results, directions: CheckDirections) -> Iterator[Point]:
    for sae, card in results.raw.get("cards", {}).items():
        yield Point(f"cards/sae={sae}/fact_problems", "cards", sae, len(card.get("facts") or []), None, "lower")


CARD = register(CheckFamily(
    name="card", section="card", test="test_card",
    doc="What the SAE's release card says against what loads and measures: ``card-l0_ratio-L3-<sae>``.",
    read=_card_read, plan=_card_plan, points=_card_points, detail=_card_detail))
