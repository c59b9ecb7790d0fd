"""The ways published SAEs have shipped broken, each planted in a copy of a zoo SAE: the gate must fail it
with a message a publisher understands; and the controls (the unbroken SAE, the same SAE as a correct
TopK SAE, a perfect identity SAE) must pass. One engine run over the whole folder of SAEs, judged by the
built-in policy's latent-health and card rules plus limit-only context-ratio checks.

The zoo SAEs have no sae_lens release, so their cards are planted (``loading.cards.card_of``), as a
release's registry entry would give them: L0 and explained variance from zoo_stats.json (v2, layer 1)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch

from sae_checks.gate.setup import HEALTH_AND_CARD_POLICY
from sae_checks.loading import cards
from sae_checks.zoo import ZOO_DIR, zoo_sae_dir

HOOK = "blocks.1.hook_resid_pre"
K = 8  # the TopK SAEs' k
# as a publisher who gates dead latents sets it (the built-in rule warns: "dead" depends on the tokens seen)
POLICY = HEALTH_AND_CARD_POLICY.replace('severity = "warn"            # so it warns', 'severity = "fail"  #') + """
[context_ratio.fvu]
limit = 3.0
baseline = false
[context_ratio.delta_ce]
limit = 4.0
baseline = false
[latents.max_density.saes.perfect]  # an identity SAE's latents are the residual's coordinates: one can be on always
severity = "warn"
"""


def _zoo_sae() -> Any:
    from sae_lens import SAE

    return SAE.load_from_disk(str(zoo_sae_dir("v2") / HOOK), device="cpu")


def _as(cls_name: str, state: dict[str, torch.Tensor], hook: str = HOOK, **cfg: Any) -> Any:
    import sae_lens
    from sae_lens.saes.sae import SAEMetadata

    d_sae, d_in = state["W_dec"].shape
    meta = SAEMetadata(hook_name=hook, model_name="sae-checks-zoo", context_size=256, prepend_bos=True)
    sae = getattr(sae_lens, f"{cls_name}SAE")(getattr(sae_lens, f"{cls_name}SAEConfig")(
        d_in=d_in, d_sae=d_sae, metadata=meta, **cfg))
    own = sae.state_dict()
    sae.load_state_dict({k: state[k] if k in state else own[k] for k in own})
    return sae


def _planted(folder: Path) -> dict[str, Any]:
    """name -> (the SAE saved under folder/name, its card or None)."""
    base = _zoo_sae()
    state = {k: v.clone() for k, v in base.state_dict().items()}
    d_sae, d_in = state["W_dec"].shape
    stats = json.loads((ZOO_DIR / "zoo_stats.json").read_text())["saes"]["v2"]["1"]["1-32"]
    out: dict[str, Any] = {}

    def plant(name: str, sae: Any, l0: float | None = stats["l0"], ev: float | None = stats["ev"]) -> None:
        sae.save_model(str(folder / name))
        out[name] = cards.Card(release="planted", sae_id=name, model="sae-checks-zoo", repo_id="-", l0=l0,
                               variance_explained=ev, norm_scaling_factor=None, source="test card")

    plant("ok", _as("Standard", state))
    plant("topk_true", _as("TopK", state, k=K), l0=K, ev=None)  # its card publishes L0 only
    plant("topk_as_relu", _as("Standard", state), l0=K)  # a TopK release whose cfg says standard
    s = 4.0  # trained on activations x 4: the factor folded into W_enc / W_dec, not into b_dec
    plant("folded_not_bdec", _as("Standard", {**state, "b_dec": state["b_dec"] * s}))
    plant("wrong_layer", _as("Standard", state, hook="blocks.2.hook_resid_pre"))
    dead = {**state, "W_enc": state["W_enc"].clone(), "b_enc": state["b_enc"].clone()}
    n_dead = int(0.4 * d_sae)
    dead["W_enc"][:, :n_dead] = 0.0
    dead["b_enc"][:n_dead] = -1e3
    plant("dead40", _as("Standard", dead))
    on = {**state, "b_enc": state["b_enc"].clone(), "W_dec": state["W_dec"].clone()}
    on["b_enc"][0], on["W_dec"][0] = 1e3, 0.0  # fires on every token, writes nothing
    plant("always_on", _as("Standard", on))
    dup = {**state, "W_dec": state["W_dec"].clone()}
    dup["W_dec"][1] = dup["W_dec"][0]
    plant("dup_rows", _as("Standard", dup))
    jump = _as("JumpReLU", state)
    with torch.no_grad():
        jump.threshold.zero_()  # thresholds lost on conversion: a JumpReLU SAE acting as a ReLU SAE
    plant("jumprelu_no_thresholds", jump, l0=None, ev=None)
    eye = torch.eye(d_in)
    perfect = {"W_enc": torch.cat([eye, -eye], 1), "W_dec": torch.cat([eye, -eye], 0),
               "b_enc": torch.zeros(2 * d_in), "b_dec": torch.zeros(d_in)}
    plant("perfect", _as("Standard", perfect), l0=None, ev=None)  # x̂ = relu(x) − relu(−x) = x
    return out


@pytest.fixture(scope="module")
def judged(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[dict[str, Any]]]:
    import sae_checks
    from sae_checks.gate import parse_policy

    folder = tmp_path_factory.mktemp("planted")
    planted = _planted(folder)
    patch = pytest.MonkeyPatch()
    patch.setattr(cards, "card_of", lambda loaded: planted.get(loaded.name))
    try:
        report = sae_checks.run(saes=str(folder), n_seqs=6, ctx_len=64, buckets=((1, 32), (32, 64)),
                                tasks=(), propagation=False, n_bootstrap=0, device="cpu")
    finally:
        patch.undo()
    checks = sae_checks.judge(report, parse_policy(POLICY))
    by_sae: dict[str, list[dict[str, Any]]] = {n: [] for n in planted}
    for c in checks:
        by_sae[c["sae"]].append(c)
    return by_sae


def _failing(checks: list[dict[str, Any]]) -> dict[str, str]:
    return {c["metric"]: c["message"] for c in checks if c["status"] == "fail"}


@pytest.mark.parametrize(("sae", "metric", "words"), [
    ("topk_as_relu", "card.l0_ratio", ["above the limit 1.5", "says L0 8", "TopK"]),
    ("folded_not_bdec", "card.variance_explained_gap", ["below the limit -0.05", "explained variance"]),
    ("wrong_layer", "card.variance_explained_gap", ["below the limit -0.05", "layer 2"]),
    ("dead40", "latents.frac_dead", ["above the limit 0.3"]),
    ("always_on", "latents.max_density", ["above the limit 0.99"]),
    ("dup_rows", "latents.max_decoder_cosine", ["above the limit 0.999"]),
    ("jumprelu_no_thresholds", "card.fact_problems", ["threshold", "acts as a ReLU SAE"]),
])
def test_each_way_releases_broke_fails_the_gate_saying_why(judged: dict[str, Any], sae: str, metric: str,
                                                            words: list[str]) -> None:
    failing = _failing(judged[sae])
    assert metric in failing, f"{sae}: expected {metric} to fail; failing: {failing}"
    assert f"SAE {sae}" in failing[metric] and all(w in failing[metric] for w in words), failing[metric]


@pytest.mark.parametrize("sae", ["ok", "topk_true", "perfect"])
def test_unbroken_and_perfect_saes_pass(judged: dict[str, Any], sae: str) -> None:
    checks = judged[sae]
    assert _failing(checks) == {}
    planned = {c["metric"] for c in checks}
    assert {"latents.frac_dead", "card.fact_problems", "context_ratio.fvu"} <= planned
    if sae == "ok":  # a card with both figures: both card checks run
        assert {"card.l0_ratio", "card.variance_explained_gap"} <= planned
    elif sae == "topk_true":  # L0 only: no variance check planned
        assert "card.l0_ratio" in planned and "card.variance_explained_gap" not in planned
    else:  # 0/0 beyond/inside is no degradation, not a missing value
        assert all(c["status"] in ("pass", "warn") for c in checks if c["metric"].startswith("context_ratio"))
