"""Shared passes for a sweep (issue 11): k SAEs at one hook cost one clean pass plus one splice pass each,
not k clean passes. Same medium world as test_speed.py (8 layers, d_model 256, context 256, d_sae 4096),
k = 4 SAEs at ``blocks.4.hook_resid_pre`` (a splice there runs half the model), batch 8.

- ``sweep_together``: the engine over the 4 SAEs in one run;
- ``sweep_one_by_one``: the engine run 4 times, one SAE each (what a loop over SAEs costs);
- ``one_sae``: a single SAE (one clean pass + one splice pass per batch);
- ``clean_only``: the clean pass alone (with the activation capture).

Targets, printed and asserted with a generous margin: together <= one_sae + (k - 1) * splice * 1.5,
where splice = one_sae - clean_only (at most one extra splice pass per extra SAE, no extra clean pass),
and together < one_by_one.
"""

from __future__ import annotations

import os

import pytest
import torch

from benchmarks.medium import D_MODEL, D_SAE, medium_tokens, medium_world

K = 4
LAYER = 4
N_SEQS = int(os.environ.get("SAE_CHECKS_BENCH_SEQS", "32"))
TIMES: dict[str, float] = {}


@pytest.fixture(scope="module")
def sweep():
    from sae_lens import StandardSAE, StandardSAEConfig
    from sae_lens.saes.sae import SAEMetadata

    torch.set_num_threads(int(os.environ.get("SAE_CHECKS_BENCH_THREADS", "2")))
    model, saes = medium_world()
    base = saes[LAYER]
    out = {}
    for k in range(K):
        torch.manual_seed(100 + k)
        sae = StandardSAE(StandardSAEConfig(d_in=D_MODEL, d_sae=D_SAE, metadata=SAEMetadata(
            hook_name=base.hook_name, context_size=128, prepend_bos=True)))
        with torch.no_grad():
            sae.W_enc.normal_(0, D_MODEL ** -0.5)
            sae.W_dec.copy_(sae.W_enc.T * 0.5)
            sae.b_enc.fill_(-0.5)
        out[f"w{k}"] = base._replace(sae=sae.eval(), name=f"w{k}")
    tokens = medium_tokens(N_SEQS)
    _engine(model, {"w0": out["w0"]}, tokens[:16])  # warm-up: allocator growth, fused kernels
    return model, out, tokens


def _engine(model, saes, tokens):
    from sae_checks.config import RunConfig
    from sae_checks.engine.run import evaluate

    return evaluate(model, saes, tokens, RunConfig(batch_size=8, propagation=False, zero_ablation=False,
                                                  n_bootstrap=0, progress=False, device="cpu"))


@torch.inference_mode()
def _clean_only(model, saes, tokens):
    from sae_checks.engine.attention import fast_attention
    from sae_checks.engine.hooks import capture

    hook = next(iter(saes.values())).hook_name
    with fast_attention(model, enabled=True):
        for s in range(0, tokens.shape[0], 8):
            with capture(model, [hook]):
                model(tokens[s:s + 8])


def _time(benchmark, name, fn, *args):
    benchmark.pedantic(fn, args=args, rounds=1, iterations=1, warmup_rounds=0)
    TIMES[name] = benchmark.stats.stats.mean
    print(f"\n{name}: {TIMES[name]:.2f} s for {N_SEQS} sequences")


def test_clean_only(benchmark, sweep):
    model, saes, tokens = sweep
    _time(benchmark, "clean_only", _clean_only, model, saes, tokens)


def test_one_sae(benchmark, sweep):
    model, saes, tokens = sweep
    _time(benchmark, "one_sae", _engine, model, {"w0": saes["w0"]}, tokens)


def test_sweep_together(benchmark, sweep):
    model, saes, tokens = sweep
    _time(benchmark, "sweep_together", _engine, model, saes, tokens)


def test_sweep_one_by_one(benchmark, sweep):
    model, saes, tokens = sweep
    _time(benchmark, "sweep_one_by_one", lambda: [_engine(model, {n: s}, tokens) for n, s in saes.items()])


def test_sweep_targets():
    if not {"clean_only", "one_sae", "sweep_together", "sweep_one_by_one"} <= TIMES.keys():
        pytest.skip("run the whole file to get the targets")
    splice = TIMES["one_sae"] - TIMES["clean_only"]
    bound = TIMES["one_sae"] + (K - 1) * splice
    print(f"\nsplice pass + SAE ~ {splice:.2f} s; {K} SAEs together {TIMES['sweep_together']:.2f} s vs bound "
          f"{bound:.2f} s (one clean + {K} splices) and {TIMES['sweep_one_by_one']:.2f} s one by one "
          f"({TIMES['sweep_one_by_one'] / TIMES['sweep_together']:.2f}x)")
    assert TIMES["sweep_together"] <= TIMES["one_sae"] + (K - 1) * splice * 1.5, TIMES
    assert TIMES["sweep_together"] < TIMES["sweep_one_by_one"], TIMES
