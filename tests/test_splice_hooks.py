"""Every hook kind sae-checks splices, against an independent TransformerLens ``run_with_hooks`` splice.

For each hook kind (residual stream pre/mid/post, attention and MLP outputs, per-head ``attn.hook_z``,
MLP neurons), an SAE of the right width is evaluated by the engine, and the same numbers are computed
here from a plain full forward pass with one replacing hook: per position mse, l0, ΔCE and KL must agree
to 1e-5. Also: two SAEs at one hook are both evaluated, and an unsupported hook is refused up front.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from sae_checks.config import RunConfig
from sae_checks.engine.run import evaluate
from sae_checks.errors import CompatibilityError
from sae_checks.names import HOOK_KINDS, hook_width
from tests.engine_world import loaded, random_tokens
from tests.tiny import tiny_model, tiny_sae, tiny_tokenizer

N_LAYERS = 3


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Any:
    tok = tiny_tokenizer(tmp_path_factory.mktemp("tok"))
    return tiny_model(tok, n_layers=N_LAYERS, d_model=16, n_ctx=12, seed=3)


def _sae(model: Any, layer: int, kind: str, d_sae: int = 40, seed: int = 0) -> Any:
    return tiny_sae(model, layer, d_sae=d_sae, seed=seed, d_in=hook_width(model.cfg, kind),
                    hook_name=f"blocks.{layer}.{kind}")


def _reference(model: Any, sae: Any, hook: str, toks: torch.Tensor) -> dict[str, torch.Tensor]:
    """Per position (T,) means over sequences from a full pass with a run_with_hooks splice."""
    with torch.no_grad():
        logits_c, cache = model.run_with_cache(toks, names_filter=[hook])
        x = cache[hook]
        flat = x.flatten(-2) if x.ndim == 4 else x  # (B, T, d_in)
        f = sae.encode(flat)
        x_hat = sae.decode(f)
        spliced = x_hat.clone()
        spliced[:, 0] = flat[:, 0]  # BOS is not spliced

        def replace(act: torch.Tensor, hook: Any) -> torch.Tensor:
            return spliced.reshape(act.shape)

        logits_s = model.run_with_hooks(toks, fwd_hooks=[(hook, replace)])
    assert not model.hook_dict[hook]._forward_hooks
    lp_c = logits_c.double().log_softmax(-1)
    lp_s = logits_s.double().log_softmax(-1)
    nxt = toks[:, 1:, None]
    ce_c = -lp_c[:, :-1].gather(-1, nxt)[..., 0]
    ce_s = -lp_s[:, :-1].gather(-1, nxt)[..., 0]
    kl = (lp_c.exp() * (lp_c - lp_s)).sum(-1)
    return {
        "mse": ((flat - x_hat) ** 2).sum(-1).double().mean(0),
        "l0": (f != 0).sum(-1).double().mean(0),
        "delta_ce": (ce_s - ce_c).mean(0),
        "kl": kl.mean(0),
    }


def _engine(model: Any, saes: dict[str, Any], toks: torch.Tensor) -> dict[str, Any]:
    config = RunConfig(n_bootstrap=0, propagation=False, zero_ablation=True, progress=False, device="cpu")
    return evaluate(model, saes, toks, config).results


def _close(got: list[float | None], want: torch.Tensor, positions: range, what: str) -> None:
    for t in positions:
        assert got[t] is not None, f"{what}: position {t} missing"
        assert abs(got[t] - float(want[t])) <= 1e-5 * max(1.0, abs(float(want[t]))), (
            f"{what} at position {t}: engine {got[t]!r} vs run_with_hooks {float(want[t])!r}")


@pytest.mark.parametrize("kind", list(HOOK_KINDS))
@pytest.mark.parametrize("layer", [0, N_LAYERS - 1])
def test_splice_matches_run_with_hooks(model: Any, kind: str, layer: int) -> None:
    sae = _sae(model, layer, kind)
    hook = f"blocks.{layer}.{kind}"
    toks = random_tokens(model, 5, seed=layer)
    results = _engine(model, {"the-sae": loaded(sae, layer)}, toks)
    pos = results["per_position"]["the-sae"]
    ref = _reference(model, sae, hook, toks)
    T = toks.shape[1]
    _close(pos["mse"], ref["mse"], range(1, T), f"{hook} mse")
    _close(pos["l0"], ref["l0"], range(1, T), f"{hook} l0")
    _close(pos["delta_ce"], ref["delta_ce"], range(1, T - 1), f"{hook} delta_ce")
    _close(pos["kl"], ref["kl"], range(1, T - 1), f"{hook} kl")
    assert results["saes"]["the-sae"]["hook"] == hook


def test_splice_test_can_fail(model: Any) -> None:
    """The comparison above notices a splice at the wrong hook (here: resid_mid measured as resid_pre)."""
    sae = _sae(model, 1, "hook_resid_pre")
    toks = random_tokens(model, 4, seed=9)
    results = _engine(model, {"s": loaded(sae, 1)}, toks)
    ref = _reference(model, sae, "blocks.1.hook_resid_mid", toks)
    with pytest.raises(AssertionError):
        _close(results["per_position"]["s"]["delta_ce"], ref["delta_ce"], range(1, toks.shape[1] - 1), "x")


def test_two_saes_at_one_hook_are_both_evaluated(model: Any) -> None:
    small = _sae(model, 1, "hook_resid_pre", d_sae=24, seed=1)
    wide = _sae(model, 1, "hook_resid_pre", d_sae=64, seed=2)
    toks = random_tokens(model, 4, seed=2)
    results = _engine(model, {"w24": loaded(small, 1), "w64": loaded(wide, 1)}, toks)
    assert set(results["per_bucket"]) == {"w24", "w64"}
    assert results["sweeps"] == {"blocks.1.hook_resid_pre": ["w24", "w64"]}
    for name, sae in (("w24", small), ("w64", wide)):
        ref = _reference(model, sae, "blocks.1.hook_resid_pre", toks)
        _close(results["per_position"][name]["delta_ce"], ref["delta_ce"], range(1, toks.shape[1] - 1), name)


def test_propagation_follows_the_forward_order(model: Any) -> None:
    """Pairs run upstream -> strictly later hooks; SAEs at one hook form no pair."""
    saes = {"a": loaded(_sae(model, 0, "hook_mlp_out"), 0), "b": loaded(_sae(model, 1, "hook_resid_pre"), 1),
            "b2": loaded(_sae(model, 1, "hook_resid_pre", seed=5), 1),
            "c": loaded(_sae(model, 1, "attn.hook_z"), 1)}
    config = RunConfig(n_bootstrap=0, propagation=True, progress=False, device="cpu")
    prop = evaluate(model, saes, random_tokens(model, 3), config).results["propagation"]
    names = prop["saes"]
    m = prop["mse"]
    defined = {(names[i], names[j]) for i in range(len(names)) for j in range(len(names)) if m[i][j] is not None}
    assert defined == {("a", "b"), ("a", "b2"), ("a", "c"), ("b", "c"), ("b2", "c")}


def test_unsupported_hook_is_refused_up_front(model: Any, tmp_path: Path) -> None:
    from sae_checks.loading.saes import load_saes

    tiny_sae(model, 0, hook_name="blocks.0.attn.hook_pattern", path=tmp_path / "pattern")
    with pytest.raises(CompatibilityError, match=r"blocks\.0\.attn\.hook_pattern.*cannot be spliced"):
        load_saes(str(tmp_path / "pattern"), model)


def test_wrong_width_names_the_hook(model: Any, tmp_path: Path) -> None:
    from sae_checks.loading.saes import load_saes

    tiny_sae(model, 0, hook_name="blocks.0.mlp.hook_post", path=tmp_path / "mlp")  # d_in = d_model, not d_mlp
    with pytest.raises(CompatibilityError, match=r"d_in=16 .*blocks\.0\.mlp\.hook_post.*width 64"):
        load_saes(str(tmp_path / "mlp"), model)
