"""Engine properties on random tiny models and SAEs (docs/definitions.md).

Identity SAE -> zero error everywhere; zero decoder == zero ablation; feature permutation, batch size and
batch order change nothing; the start_at_layer splice equals a full hooked pass; no hook outlives a pass;
non-finite values are reported with layer, sequence and position.
"""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sae_checks.config import RunConfig
from sae_checks.engine.hooks import active_hooks, forward_from
from sae_checks.engine.run import default_buckets, evaluate
from tests.engine_world import identity_sae, loaded, random_tokens
from tests.tiny import tiny_model, tiny_sae, tiny_tokenizer

FAST = dict(n_bootstrap=0, progress=False, zero_ablation=True, propagation=True, propagation_window=(1, 20))
PROPS = settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@pytest.fixture(scope="module")
def tok(tmp_path_factory):
    return tiny_tokenizer(tmp_path_factory.mktemp("tok"))


def _model(tok, seed, n_layers=3):
    return tiny_model(tok, n_layers=n_layers, d_model=16, n_ctx=20, seed=seed)


def _values(ev, layer, metric):
    return ev.results["per_position"][str(layer)][metric]


@PROPS
@given(seed=st.integers(0, 1000), splice_bos=st.booleans())
def test_identity_sae_gives_zero_error_everywhere(tok, seed, splice_bos):
    model = _model(tok, seed)
    saes = {L: loaded(identity_sae(model, L), L) for L in range(3)}
    ev = evaluate(model, saes, random_tokens(model, 5, seed), RunConfig(**FAST, splice_bos=splice_bos))
    for L in range(3):
        for metric in ("delta_ce", "kl", "mse"):
            vals = [v for v in _values(ev, L, metric) if v is not None]
            assert vals and max(abs(v) for v in vals) < 1e-4, (L, metric, vals)
        prop = ev.results["propagation"]["mse"]
        assert all(v is None or abs(v) < 1e-3 or math.isnan(v) for row in prop for v in row)


@PROPS
@given(seed=st.integers(0, 1000))
def test_zero_decoder_equals_zero_ablation(tok, seed):
    model = _model(tok, seed)
    saes = {}
    for L in range(3):
        sae = tiny_sae(model, L, d_sae=24, seed=seed)
        with torch.no_grad():
            sae.W_dec.zero_()
            sae.b_dec.zero_()
        saes[L] = loaded(sae, L)
    ev = evaluate(model, saes, random_tokens(model, 4, seed), RunConfig(**FAST, splice_bos=True))
    for L in range(3):
        for bucket in ev.results["per_bucket"][str(L)].values():
            assert bucket["ce_spliced"]["mean"] == pytest.approx(bucket["ce_zero"]["mean"], rel=1e-6)
            assert bucket["ce_loss_score"]["mean"] == pytest.approx(0.0, abs=1e-5)


@PROPS
@given(seed=st.integers(0, 1000))
def test_permuting_features_changes_nothing(tok, seed):
    model = _model(tok, seed, n_layers=2)
    saes = {L: loaded(tiny_sae(model, L, d_sae=24, seed=seed), L) for L in range(2)}
    toks = random_tokens(model, 4, seed)
    before = evaluate(model, saes, toks, RunConfig(**FAST))
    perm = torch.randperm(24, generator=torch.Generator().manual_seed(seed))
    for s in saes.values():
        with torch.no_grad():
            s.sae.W_enc.copy_(s.sae.W_enc[:, perm])
            s.sae.b_enc.copy_(s.sae.b_enc[perm])
            s.sae.W_dec.copy_(s.sae.W_dec[perm])
    after = evaluate(model, saes, toks, RunConfig(**FAST))
    _assert_results_close(before.results, after.results, rel=1e-4)


@PROPS
@given(seed=st.integers(0, 1000), batch_size=st.integers(1, 7))
def test_batch_size_and_order_change_nothing(tok, seed, batch_size):
    model = _model(tok, seed, n_layers=2)
    saes = {L: loaded(tiny_sae(model, L, d_sae=24, seed=seed), L) for L in range(2)}
    toks = random_tokens(model, 7, seed)
    whole = evaluate(model, saes, toks, RunConfig(**FAST, batch_size=7))
    order = torch.randperm(7, generator=torch.Generator().manual_seed(seed))
    other = evaluate(model, saes, toks[order], RunConfig(**FAST, batch_size=batch_size))
    _assert_results_close(whole.results, other.results, rel=1e-4)


def _assert_results_close(a, b, rel):
    for L, buckets in a["per_bucket"].items():
        for name, metrics in buckets.items():
            for m, v in metrics.items():
                w = b["per_bucket"][L][name][m]["mean"]
                if v["mean"] is None:
                    assert w is None
                else:
                    assert w == pytest.approx(v["mean"], rel=rel, abs=1e-6), (L, name, m)
    for m in ("mse", "l0", "resid_norm"):
        for ra, rb in zip(a["propagation"][m], b["propagation"][m], strict=True):
            for va, vb in zip(ra, rb, strict=True):
                assert (va is None) == (vb is None)
                if va is not None:
                    assert vb == pytest.approx(va, rel=1e-3, abs=1e-5)


@pytest.mark.parametrize("hook", ["blocks.1.hook_resid_pre", "blocks.1.hook_mlp_out", "blocks.0.hook_resid_post"])
def test_splice_from_layer_equals_full_hooked_pass(tok, hook):
    model = _model(tok, 1)
    toks = random_tokens(model, 3, 1)
    with torch.inference_mode():
        _, cache = model.run_with_cache(toks, names_filter=[hook, "blocks.2.hook_resid_pre"])
        x = cache[hook]
        new = x * 0.5 + 0.1
        fast, captured = forward_from(model, hook, x, new, toks, capture_hooks=["blocks.2.hook_resid_pre"])
        full_cache = {}
        def replace(act, hook):
            return new
        def save(act, hook):
            full_cache[hook.name] = act
        full = model.run_with_hooks(toks, fwd_hooks=[(hook, replace), ("blocks.2.hook_resid_pre", save)])
    assert torch.equal(fast, full)
    assert torch.equal(captured["blocks.2.hook_resid_pre"], full_cache["blocks.2.hook_resid_pre"])
    assert active_hooks(model) == []


def test_no_hook_survives_a_failing_pass(tok):
    model = _model(tok, 2)
    toks = random_tokens(model, 2, 2)
    x = torch.zeros(2, 20, 16)
    with pytest.raises(RuntimeError):
        forward_from(model, "blocks.0.hook_mlp_out", x, torch.zeros(3, 3), toks)  # bad shape fails mid-pass
    assert active_hooks(model) == []


def test_a_leaked_hook_is_caught_before_it_corrupts_results(tok):
    """The seed's notebook measured Lambada MSE/L0 with its splice hook still attached."""
    model = _model(tok, 3)
    saes = {0: loaded(tiny_sae(model, 0, d_sae=24), 0)}
    model.blocks[0].hook_resid_pre.add_hook(lambda act, hook: act * 0)  # a leaked splice
    with pytest.raises(RuntimeError, match="hooks leaked"):
        evaluate(model, saes, random_tokens(model, 2), RunConfig(**FAST))
    model.reset_hooks()
    evaluate(model, saes, random_tokens(model, 2), RunConfig(**FAST))


def test_nonfinite_values_are_reported_with_layer_sequence_position(tok):
    model = _model(tok, 4, n_layers=2)
    sae = tiny_sae(model, 1, d_sae=24)
    with torch.no_grad():
        sae.W_dec[:] = float("nan")
    saes = {1: loaded(sae, 1)}
    toks = random_tokens(model, 3)
    ev = evaluate(model, saes, toks, RunConfig(**FAST))
    where = {(e["layer"], e["where"]) for e in ev.results["nonfinite"]}
    assert (1, "reconstruction") in where
    first = next(e for e in ev.results["nonfinite"] if e["where"] == "reconstruction")
    assert first["sequence"] == 0 and first["position"] == 0
    assert ev.results["per_bucket"]["1"]["1-16"]["mse"]["mean"] is None  # never averaged away



def test_nonfinite_logits_are_reported_for_the_clean_and_the_spliced_pass(tok):
    model = _model(tok, 4, n_layers=2)
    saes = {1: loaded(tiny_sae(model, 1, d_sae=24), 1)}
    toks = random_tokens(model, 3)
    with torch.no_grad():
        model.unembed.b_U[3] = float("inf")
    ev = evaluate(model, saes, toks, RunConfig(**FAST))
    found = {e["where"]: e for e in ev.results["nonfinite"]}
    assert found["logits_clean"]["layer"] is None and found["logits_clean"]["sequence"] == 0
    assert found["logits_clean"]["position"] == 0 and found["logits_spliced"]["layer"] == 1
    assert "activations" not in found and "reconstruction" not in found  # the SAE side is clean


@pytest.mark.parametrize("value", [float("-inf"), float("nan")])
def test_a_single_minus_inf_or_nan_clean_logit_is_reported(tok, value):
    """-inf leaves logsumexp finite (and NaN only one entry): the clean check must still see it."""
    model = _model(tok, 4, n_layers=2)
    saes = {1: loaded(tiny_sae(model, 1, d_sae=24), 1)}
    toks = random_tokens(model, 3)
    with torch.no_grad():
        model.unembed.b_U[5] = value
    ev = evaluate(model, saes, toks, RunConfig(**FAST))
    found = {e["where"]: e for e in ev.results["nonfinite"]}
    assert found["logits_clean"]["layer"] is None
    assert (found["logits_clean"]["sequence"], found["logits_clean"]["position"]) == (0, 0)


def test_default_buckets_split_at_training_context():
    assert default_buckets(128, 1024) == [(1, 128), (128, 1024)]
    assert default_buckets(1024, 1024) == [(1, 1024)]
    assert default_buckets(None, 64) == [(1, 64)]


def test_bos_is_excluded_and_not_spliced_by_default(tok):
    model = _model(tok, 5, n_layers=2)
    saes = {0: loaded(tiny_sae(model, 0, d_sae=24), 0)}
    ev = evaluate(model, saes, random_tokens(model, 3), RunConfig(**FAST))
    pp = ev.results["per_position"]["0"]
    assert pp["mse"][0] is None and pp["n_tokens"][0] == 0  # BOS out of every mean
    assert pp["delta_ce"][-1] is None  # no prediction at T-1
    spliced = evaluate(model, saes, random_tokens(model, 3), RunConfig(**FAST, splice_bos=True))
    # splicing BOS changes the prediction made at BOS only through the BOS residual itself
    assert spliced.results["per_position"]["0"]["kl"][1] != pp["kl"][1]


def test_cuda_oom_halves_the_batch_and_loses_nothing(tok, monkeypatch, caplog):
    from sae_checks.engine import run as run_mod

    model = _model(tok, 7, n_layers=2)
    saes = {L: loaded(tiny_sae(model, L, d_sae=24), L) for L in (0, 1)}
    toks = random_tokens(model, 8)
    cfg = RunConfig(**FAST, batch_size=8)
    ref = evaluate(model, saes, toks, cfg)
    real = run_mod._run_batch
    sizes = []

    def flaky(model, saes, layers, batch, *args, **kw):
        sizes.append(batch.shape[0])
        if batch.shape[0] > 2:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory (simulated)")
        return real(model, saes, layers, batch, *args, **kw)

    monkeypatch.setattr(run_mod, "_run_batch", flaky)
    out = evaluate(model, saes, toks, cfg)
    assert sizes == [8, 4, 2, 2, 2, 2]  # a failed batch is halved, and so is the rest of the run
    assert out.provenance["batch_size_used"] == 2  # the final size, after halving
    assert "batch size halved to 2" in caplog.text  # logged (logger sae_checks), not printed
    for L in ("0", "1"):
        for metric in ("mse", "l0", "delta_ce", "kl", "ce_loss_score"):
            a = out.results["per_bucket"][L]["1-16"][metric]["mean"]
            b = ref.results["per_bucket"][L]["1-16"][metric]["mean"]
            assert a == pytest.approx(b, rel=1e-5, abs=1e-7), (L, metric)
    for metric in ("mse", "l0", "resid_norm"):
        got = [v for row in out.results["propagation"][metric] for v in row]
        want = [v for row in ref.results["propagation"][metric] for v in row]
        assert [v is None for v in got] == [v is None for v in want]
        assert [v for v in got if v is not None] == pytest.approx([v for v in want if v is not None], rel=1e-5, abs=1e-7)



def test_a_bucket_past_the_evaluated_context_is_an_error_naming_it():
    from sae_checks.engine.run import layer_buckets
    from sae_checks.errors import ConfigError

    config = RunConfig(buckets=((1, 32), (32, 256), (256, 1024)))
    with pytest.raises(ConfigError, match=r"buckets=\['256-1024'\]: start at or past the evaluated context of 256"):
        layer_buckets(config, 32, 256)
    assert layer_buckets(RunConfig(buckets=((1, 32), (32, 1024))), 32, 256) == [(1, 32), (32, 256)]  # clipped


@PROPS
@given(seed=st.integers(0, 1000), chunk=st.integers(1, 60))
def test_token_chunks_change_nothing(tok, seed, chunk):
    """CE, KL, zero-ablation CE, every SAE term and the propagation sums computed ``chunk`` tokens at a time
    (engine.chunks; chunks that straddle sequences, down to one token) equal the one-chunk computation."""
    model = _model(tok, seed, n_layers=2)
    saes = {L: loaded(tiny_sae(model, L, d_sae=24, seed=seed), L) for L in range(2)}
    toks = random_tokens(model, 5, seed)
    whole = evaluate(model, saes, toks, RunConfig(**FAST, batch_size=5, chunk_tokens=10_000))
    chunked = evaluate(model, saes, toks, RunConfig(**FAST, batch_size=5, chunk_tokens=chunk))
    assert chunked.provenance["chunk_tokens"] == {"logits": chunk, "sae": chunk}
    _assert_results_close(whole.results, chunked.results, rel=1e-5)
    for L in ("0", "1"):
        for m in ("ce_clean", "ce_spliced", "kl", "ce_zero", "mse", "l0"):
            a, b = _values(whole, L, m), _values(chunked, L, m)
            assert [v is None for v in a] == [v is None for v in b], (L, m)
            assert [v for v in b if v is not None] == pytest.approx([v for v in a if v is not None],
                                                                   rel=1e-5, abs=1e-6), (L, m)


def test_chunked_losses_equal_the_full_logits(tok):
    """engine.chunks.losses on final residuals == CE and KL from the model's own full logits."""
    from sae_checks.engine.chunks import losses
    from sae_checks.metrics.loss import kl_div, next_token_ce

    model = _model(tok, 3)
    toks = random_tokens(model, 3, 3)
    with torch.inference_mode():
        logits = model(toks)
        resid = model(toks, stop_at_layer=model.cfg.n_layers)
        other = resid + 0.3 * torch.randn(resid.shape, generator=torch.Generator().manual_seed(0))
        out = losses(model, toks, resid, {"x": other}, kl={"x"}, chunk=7)
        other_logits = model.unembed(model.ln_final(other))
    assert torch.allclose(out.ce_clean[:, :-1], next_token_ce(logits, toks), atol=1e-5)
    assert torch.allclose(out.ce["x"][:, :-1], next_token_ce(other_logits, toks), atol=1e-5)
    ref_kl = kl_div(torch.log_softmax(logits, -1), other_logits)
    assert torch.allclose(out.kl["x"][:, :-1], ref_kl[:, :-1], atol=1e-5)
    assert bool((out.kl["x"][:, :-1] > 0).all()) and bool((out.ce["x"][:, -1] == 0).all())
