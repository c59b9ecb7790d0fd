"""metrics.registry: one definition per metric, with the gate's directions."""

from __future__ import annotations

from sae_checks.gate import thresholds
from sae_checks.metrics import registry


def test_directions_are_the_gates():
    assert registry.directions("bucket") == thresholds.BUCKET_METRICS
    assert registry.directions("context_ratio") == thresholds.CONTEXT_RATIO_METRICS
    assert registry.directions("cloze") == thresholds.CLOZE_METRICS
    assert registry.directions("propagation") == thresholds.PROPAGATION_METRICS
    assert registry.direction("l0") == "lower"  # the gate's truth (diff used to say "unknown")


def test_lookup_and_labels():
    assert registry.get("bucket", "fvu").aggregation == "ratio_of_sums"  # type: ignore[union-attr]
    assert registry.get("bucket", "nope") is None
    assert registry.direction("mse", "cloze") == "lower"  # falls back to the bucket entry
    assert registry.direction("logp", "cloze") == "higher"
    assert registry.direction("resid_norm") is None
    assert registry.axis_label("delta_ce") == "ΔCE = CE spliced − CE clean  [nats / token]"
    assert registry.axis_label("custom") == "custom"


