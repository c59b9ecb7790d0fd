"""My own checks on the SAEs under test, next to the gate's (README: "Your own checks").

Run: pytest tests/test_my_saes.py --sae-saes zoo:v2   (any --sae-* option, or [tool.sae-checks])
"""

import pytest
import torch


def test_fvu_inside_the_training_context(sae_results, sae_record):
    """Read the evaluation the gate computes (one engine run per session, shared with the gate)."""
    for sae in sae_results.saes():
        inside = sae_results.buckets(sae)[0]
        fvu = sae_results.bucket(sae, inside)["fvu"].mean
        sae_record(f"fvu_inside-{sae}", fvu, passed=fvu < 0.5, sae=sae)
        assert fvu < 0.5, f"{sae}: fvu {fvu:.3f} in positions {inside}"


def test_l0_stays_flat_across_positions(sae_results):
    for sae in sae_results.saes():
        l0 = [v for v in sae_results.per_position(sae, "l0") if v is not None]
        assert max(l0) < 3 * sum(l0) / len(l0), f"{sae}: L0 spikes at some position"


def test_dead_features(sae_model, sae_saes, sae_tokens, sae_record):
    """A measurement of your own, on the same model, SAEs and tokens (each loaded once per session)."""
    for name, s in sae_saes.items():
        with torch.no_grad():
            _, cache = sae_model.run_with_cache(sae_tokens[:4], names_filter=[s.hook_name],
                                                stop_at_layer=s.layer + 1)
            fired = (s.sae.encode(cache[s.hook_name].to(s.sae.dtype)) > 0).flatten(0, 1).any(0)
        dead = 1 - fired.float().mean().item()
        sae_record(f"dead_features-{name}", dead, passed=dead < 0.5, sae=name)
        assert dead < 0.5, f"{name}: {dead:.0%} of features never fire"


@pytest.mark.gpu
def test_model_is_on_the_gpu(sae_model):
    assert sae_model.cfg.device.startswith("cuda")
