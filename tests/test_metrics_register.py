"""metrics.registry: registering a per-token metric (as a user would) makes every run measure it: the
per-position and per-bucket results, its context ratio and its propagation matrix, from its declaration
alone; bad declarations are refused naming the field; built-in numbers do not move."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch

from sae_checks.config import RunConfig
from sae_checks.engine.run import evaluate
from sae_checks.errors import ConfigError
from sae_checks.gate.thresholds import parse_policy
from sae_checks.metrics import registry
from sae_checks.metrics.registry import SSE, Metric, Sum
from tests.engine_world import random_tokens, world

X_HAT_NORM = Sum("x_hat_norm", "tok", lambda c: c.x_hat.norm(dim=-1))


def _bucket(name: str = "x_hat_norm", **kw) -> Metric:
    fields = dict(name=name, family="bucket", direction="lower", label="‖x̂‖₂", unit="activation units",
                  sums=(X_HAT_NORM,), compute=lambda s: s["x_hat_norm"] / s["n_tok"])
    fields.update(kw)
    return Metric(**fields)  # type: ignore[arg-type]


def _derived(family: str, name: str = "x_hat_norm") -> Metric:
    return Metric(name=name, family=family, direction="lower", label=f"{name} ({family})", unit="ratio")  # type: ignore[arg-type]


@pytest.fixture
def x_hat_norm() -> Iterator[None]:
    """x_hat_norm registered in the three per-token families for one test, removed after it."""
    registry.register(_bucket())
    registry.register(_derived("context_ratio"))
    registry.register(_derived("propagation"))
    try:
        yield
    finally:
        registry.unregister("propagation", "x_hat_norm")
        registry.unregister("context_ratio", "x_hat_norm")
        registry.unregister("bucket", "x_hat_norm")


def test_families_are_read_at_call_time(x_hat_norm: None) -> None:
    assert registry.metrics("bucket")[-1].name == "x_hat_norm"
    assert registry.directions("bucket")["x_hat_norm"] == "lower"
    assert "x_hat_norm" in registry.directions("context_ratio") and "x_hat_norm" in registry.directions("propagation")
    policy = parse_policy("[metrics.x_hat_norm]\nlimit = 3.0\n[context_ratio.x_hat_norm]\nrel_tol = 0.1\n"
                          "[propagation.x_hat_norm]\nabs_tol = 0.1\n")
    assert [(m.family, m.metric) for m in policy.metrics] == [
        ("bucket", "x_hat_norm"), ("context_ratio", "x_hat_norm"), ("propagation", "x_hat_norm")]


def test_unregistered_metric_is_gone_everywhere() -> None:
    registry.register(_bucket())
    registry.unregister("bucket", "x_hat_norm")
    assert registry.get("bucket", "x_hat_norm") is None
    assert "x_hat_norm" not in registry.directions("bucket")
    with pytest.raises(Exception, match="unknown metric"):
        parse_policy("[metrics.x_hat_norm]\nlimit = 3.0\n")


@pytest.mark.parametrize(("metric", "field", "match"), [
    (_bucket(name="mse"), "Metric.name", "already registered"),
    (_bucket(name="bad name"), "Metric.name", "identifier"),
    (_bucket(name="position"), "Metric.name", "reserved"),
    (_bucket(family="no such family"), "Metric.family", "must be an identifier"),
    (_bucket(family="probe"), "Metric.sums", "computed by the code that writes their results"),
    (_bucket(direction="up"), "Metric.direction", "lower"),
    (_bucket(sums=()), "Metric.sums", "non-empty tuple of Sum"),
    (_bucket(sums=[X_HAT_NORM]), "Metric.sums", "non-empty tuple of Sum"),
    (_bucket(compute=None), "Metric.compute", "function of the sums"),
    (_bucket(sums=(Sum("sse", "tok", lambda c: c.x.abs().sum(-1)),)), "Metric.sums", "another definition"),
    (_bucket(sums=(Sum("n_tok", "tok", lambda c: c.x),)), "Metric.sums", "identifier other than"),
    (_bucket(sums=(X_HAT_NORM, Sum("x_hat_norm", "tok", lambda c: c.x_hat.sum(-1)))), "Metric.sums",
     "another definition"),
    (_bucket(sums=(Sum("v", "pred", lambda c: c.kl, per_dim=True),)), "Metric.sums", "per_dim"),
    (_bucket(sums=(Sum("v", "both", lambda c: c.kl),)), "Metric.sums", "over must be"),
    (_derived("context_ratio", "no_such_metric"), "Metric.name", "register the bucket metric first"),
    (_derived("propagation", "delta_ce"), "Metric.name", "propagation re-encodes"),
    (Metric(name="acc_x", family="cloze", direction="higher", label="x", unit="", sums=(SSE,)), "Metric.sums",
     "computed by the code that writes their results"),
])
def test_malformed_metric_is_refused_naming_the_field(metric: Metric, field: str, match: str) -> None:
    before = dict(registry._REGISTRY)
    with pytest.raises(ConfigError, match=match) as err:
        registry.register(metric)
    assert err.value.argument == field
    assert before == registry._REGISTRY  # nothing half-registered


def test_builtins_and_depended_on_metrics_stay(x_hat_norm: None) -> None:
    with pytest.raises(ConfigError, match="built-in"):
        registry.unregister("bucket", "mse")
    with pytest.raises(ConfigError, match="context_ratio and propagation metric of that name derives from it"):
        registry.unregister("bucket", "x_hat_norm")
    with pytest.raises(ConfigError, match="no bucket metric"):
        registry.unregister("bucket", "nope")


def test_shared_sum_object_is_summed_once() -> None:
    """Two metrics may share one Sum (like mse and fvu share sse): it is one column of the accumulator."""
    registry.register(_bucket(name="sse_twice", sums=(SSE,), compute=lambda s: 2 * s["sse"] / s["n_tok"]))
    try:
        layout = registry.SumLayout.of("bucket")
        assert layout.columns.count("sse") == 1 and "sse_twice" not in layout.columns
    finally:
        registry.unregister("bucket", "sse_twice")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    model, saes = world(tmp_path_factory.mktemp("w"), n_ctx=16)
    return model, saes, random_tokens(model, 6, seed=3)


CONFIG = RunConfig(n_bootstrap=20, progress=False, propagation_window=(1, 16), batch_size=4, buckets=((1, 8), (8, 16)))


def test_user_metric_is_measured_everywhere_and_builtins_do_not_move(tiny, x_hat_norm: None) -> None:
    model, saes, toks = tiny
    ev = evaluate(model, saes, toks, CONFIG)
    res = ev.results
    for L, loaded in saes.items():
        name = str(L)
        _, cache = model.run_with_cache(toks, names_filter=[loaded.hook_name])
        x = cache[loaded.hook_name]  # (N, T, d)
        by_hand = loaded.sae.decode(loaded.sae.encode(x)).float().norm(dim=-1).double()  # (N, T)
        by_hand[:, 0] = float("nan")  # BOS is excluded from every mean
        pp = res["per_position"][name]["x_hat_norm"]
        assert pp[0] is None
        torch.testing.assert_close(torch.tensor(pp[1:], dtype=torch.float64), by_hand[:, 1:].mean(0),
                                   rtol=1e-5, atol=1e-6)
        for bucket in res["buckets"][name]:
            a, b = (int(v) for v in bucket.split("-"))
            est = res["per_bucket"][name][bucket]["x_hat_norm"]
            assert est["mean"] == pytest.approx(by_hand[:, a:b].mean().item(), rel=1e-5)
            assert est["ci"][0] <= est["mean"] <= est["ci"][1]
        inside, beyond = res["buckets"][name]
        ratio = res["context_generalization"][name]["x_hat_norm"]
        assert ratio["ratio"] == pytest.approx(res["per_bucket"][name][beyond]["x_hat_norm"]["mean"]
                                               / res["per_bucket"][name][inside]["x_hat_norm"]["mean"], rel=1e-9)
    prop = res["propagation"]["x_hat_norm"]
    n = len(saes)
    assert [[v is not None for v in row] for row in prop] == [[j > i for j in range(n)] for i in range(n)]

    registry.unregister("propagation", "x_hat_norm")  # the fixture's finalizer tolerates neither; re-add after
    registry.unregister("context_ratio", "x_hat_norm")
    registry.unregister("bucket", "x_hat_norm")
    try:
        plain = evaluate(model, saes, toks, CONFIG).results
    finally:
        registry.register(_bucket())
        registry.register(_derived("context_ratio"))
        registry.register(_derived("propagation"))
    assert "x_hat_norm" not in plain["per_bucket"]["0"][res["buckets"]["0"][0]]
    assert "x_hat_norm" not in plain["propagation"] and "x_hat_norm" not in plain["context_generalization"]["0"]
    for section in ("per_position", "per_bucket", "context_generalization", "propagation"):
        assert _without(res[section], "x_hat_norm") == plain[section], section  # exact: not one bit moved


def _without(node, key):
    """``node`` with every dict entry named ``key`` removed, recursively."""
    if isinstance(node, dict):
        return {k: _without(v, key) for k, v in node.items() if k != key}
    return node
