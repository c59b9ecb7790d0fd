"""Release cards (the sae_lens registry's published figures) and declared facts vs what loads."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
from sae_lens import (
    GatedSAE,
    GatedSAEConfig,
    JumpReLUSAE,
    JumpReLUSAEConfig,
    StandardSAE,
    StandardSAEConfig,
    TopKSAE,
    TopKSAEConfig,
)
from sae_lens.saes.sae import SAEMetadata

from sae_checks.loading.cards import Card, fact_problems, release_card

MODEL_CFG = SimpleNamespace(n_layers=2, d_model=8, d_mlp=32, n_heads=2, d_head=4)
HOOK = "blocks.1.hook_resid_pre"


def _meta(**kw: object) -> SAEMetadata:
    return SAEMetadata(hook_name=HOOK, model_name="zoo", **kw)


def _standard(**kw: object) -> StandardSAE:
    return StandardSAE(StandardSAEConfig(d_in=8, d_sae=16, metadata=_meta(), **kw))


def _declared(sae: StandardSAE, **cfg: object) -> StandardSAE:
    """``sae`` whose config says ``cfg`` while its weights stay as built (a config that lies)."""
    for key, value in cfg.items():
        setattr(sae.cfg, key, value)
    return sae


def test_card_of_a_listed_sae_carries_the_published_figures() -> None:
    card = release_card("gpt2-small-res-jb", "blocks.0.hook_resid_pre")
    assert card is not None
    assert (card.model, card.l0, card.variance_explained) == ("gpt2-small", 10.0, 0.999)
    assert card.source.startswith("sae_lens ") and card.as_dict()["l0"] == 10.0


def test_card_without_published_variance_reads_none_not_the_directory_default() -> None:
    from sae_lens.loading.pretrained_saes_directory import get_pretrained_saes_directory

    directory = get_pretrained_saes_directory()
    release, sid = next((r, s) for r, lk in directory.items() for s in lk.saes_map
                        if lk.expected_var_explained.get(s) == 1.0 and lk.expected_l0.get(s))
    card = release_card(release, sid)
    assert card is not None and card.variance_explained is None and card.l0 == directory[release].expected_l0[sid]


def test_unknown_release_or_id_has_no_card() -> None:
    assert release_card("no-such-release", "x") is None
    assert release_card("gpt2-small-res-jb", "blocks.99.hook_resid_pre") is None


def test_healthy_saes_of_each_architecture_have_no_problems() -> None:
    saes = [
        _standard(),
        TopKSAE(TopKSAEConfig(d_in=8, d_sae=16, k=4, metadata=_meta())),
        GatedSAE(GatedSAEConfig(d_in=8, d_sae=16, metadata=_meta())),
    ]
    jump = JumpReLUSAE(JumpReLUSAEConfig(d_in=8, d_sae=16, metadata=_meta()))
    with torch.no_grad():
        jump.threshold.fill_(0.1)
    for sae in [*saes, jump]:
        assert fact_problems("s", sae, hook_name=HOOK, model_cfg=MODEL_CFG, model_name="zoo") == []


@pytest.mark.parametrize(("make", "hook", "field"), [
    (lambda: TopKSAE(TopKSAEConfig(d_in=8, d_sae=16, k=40, metadata=_meta())), HOOK, "k"),
    (lambda: JumpReLUSAE(JumpReLUSAEConfig(d_in=8, d_sae=16, metadata=_meta())), HOOK, "threshold"),
    (lambda: _standard(), "blocks.5.hook_resid_pre", "hook_name"),
    (lambda: StandardSAE(StandardSAEConfig(d_in=32, d_sae=16, metadata=_meta())), HOOK, "d_in"),
    (lambda: _standard(normalize_activations="expected_average_only_in"), HOOK, "normalize_activations"),
    (lambda: _declared(_standard(), dtype="bfloat16"), HOOK, "dtype"),
])
def test_each_broken_fact_is_one_line_naming_the_sae_and_the_field(make, hook, field) -> None:
    problems = fact_problems("my-sae", make(), hook_name=hook, model_cfg=MODEL_CFG, model_name="zoo")
    assert len(problems) == 1, problems
    assert problems[0].startswith(f"SAE my-sae: {field}: ")


def test_gated_sae_missing_its_gate_and_wrong_model_are_reported() -> None:
    sae = GatedSAE(GatedSAEConfig(d_in=8, d_sae=16, metadata=_meta()))
    del sae.b_gate
    card = Card(release="r", sae_id="s", model="gpt2-small", repo_id="x", l0=None, variance_explained=None,
                norm_scaling_factor=None, source="test")
    problems = fact_problems("g", sae, hook_name=HOOK, model_cfg=MODEL_CFG, model_name="pythia-70m", card=card)
    assert [p.split(":")[1].strip() for p in problems] == ["b_gate", "model_name", "model_name"], problems


def test_hook_missing_from_the_model_is_reported() -> None:
    problems = fact_problems("s", _standard(), hook_name=HOOK, model_cfg=MODEL_CFG, hooks={"blocks.0.hook_resid_pre"})
    assert problems == [f"SAE s: hook_name: {HOOK!r} is not a hook of the model"]
