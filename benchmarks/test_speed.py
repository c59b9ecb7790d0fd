"""Engine speed against SAELens' ``run_evals`` loop and against the floor (issue 3).

Same tokens, same medium random-init world (benchmarks/medium.py), batch size 8:

- ``engine``: every layer, per-position mse, fvu, l0, delta_ce, kl (propagation and zero ablation off),
  with its default fused attention (``sae_checks/engine/attention.py``);
- ``engine_tl_attention``: the same with TransformerLens' own attention (``fast_attention=False``);
- ``floor``: one clean forward plus one start_at_layer pass per layer with the SAE encode/decode, plain
  TransformerLens passes (the issue's floor);
- ``floor_fused``: the same passes with the engine's fused attention: what the engine adds on top of its
  own forward passes is ``engine / floor_fused``;
- ``run_evals_loop``: ``sae_lens.evals.run_evals`` looped over the layers (CE with/without SAE and
  zero-ablated, sparsity and variance metrics), the metrics the two share;
- ``engine_propagation``: the engine with the propagation matrix, for its overhead.

Each is timed once, after a warm-up of every engine and floor path on two batches (rounds=1: the
run_evals loop alone takes minutes on 2 CPU cores); the ratios are
printed at the end. ``test_peak_memory`` runs the engine in subprocesses on two data sizes, prints their
peak RSS and asserts it does not grow with the data.
"""

from __future__ import annotations

import os
import subprocess
import sys
import warnings

import pytest
import torch

from benchmarks.medium import N_LAYERS, medium_tokens, medium_world

N_SEQS = int(os.environ.get("SAE_CHECKS_BENCH_SEQS", "64"))
BATCH = 8
TIMES: dict[str, float] = {}
PEAKS: dict[int, float] = {}  # sequences -> peak RSS (MiB) of test_peak_memory


@pytest.fixture(scope="module")
def world():
    torch.set_num_threads(int(os.environ.get("SAE_CHECKS_BENCH_THREADS", "2")))
    model, saes = medium_world()
    tokens = medium_tokens(N_SEQS)
    # Warm-up on two batches through every timed path: the first pass of a fresh process pays for the
    # allocator's growth (measured: the floor took 22.0 s cold and 15.6 s right after, same tokens).
    warm = tokens[: 2 * BATCH]
    for fused in (False, True):
        _floor(model, saes, warm, fused=fused)
        _engine(model, saes, warm, propagation=False, fast_attention=fused)
    return model, saes, tokens


def _engine(model, saes, tokens, propagation: bool, fast_attention: bool = True):
    from sae_checks.config import RunConfig
    from sae_checks.engine.run import evaluate

    return evaluate(model, saes, tokens, RunConfig(batch_size=BATCH, propagation=propagation, zero_ablation=False,
                                                  n_bootstrap=100, progress=False, device="cpu",
                                                  fast_attention=fast_attention))


@torch.inference_mode()
def _floor(model, saes, tokens, fused: bool = False):
    from sae_checks.engine.attention import fast_attention

    with fast_attention(model, enabled=fused):
        _floor_passes(model, saes, tokens)


def _floor_passes(model, saes, tokens):
    from sae_checks.engine.hooks import capture

    hooks = [saes[L].hook_name for L in range(N_LAYERS)]
    for s in range(0, tokens.shape[0], BATCH):
        toks = tokens[s:s + BATCH]
        with capture(model, hooks) as acts:
            model(toks)
        for L in range(N_LAYERS):
            sae = saes[L].sae
            x_hat = sae.decode(sae.encode(acts[hooks[L]]))
            model(x_hat, start_at_layer=L, tokens=toks)


def _run_evals_loop(model, saes, tokens):
    import datasets
    from sae_lens import ActivationsStore
    from sae_lens.evals import EvalConfig, run_evals
    from sae_lens.training.activation_scaler import ActivationScaler

    rows = torch.cat([tokens, tokens]).tolist()
    n_batches = tokens.shape[0] // BATCH
    cfg = EvalConfig(batch_size_prompts=BATCH, n_eval_reconstruction_batches=n_batches,
                     n_eval_sparsity_variance_batches=n_batches, compute_ce_loss=True, compute_kl=True,
                     compute_sparsity_metrics=True, compute_variance_metrics=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for L in range(N_LAYERS):
            store = ActivationsStore.from_sae(model, saes[L].sae, dataset=datasets.Dataset.from_dict({"tokens": rows}),
                                              context_size=tokens.shape[1], streaming=False,
                                              store_batch_size_prompts=BATCH, device="cpu")
            run_evals(saes[L].sae, store, model, ActivationScaler(), eval_config=cfg)


def _time(benchmark, name, fn, *args):
    benchmark.pedantic(fn, args=args, rounds=1, iterations=1, warmup_rounds=0)
    TIMES[name] = benchmark.stats.stats.mean
    print(f"\n{name}: {TIMES[name]:.1f} s for {N_SEQS} sequences x {medium_tokens(1).shape[1]} tokens")


def test_floor(benchmark, world):
    _time(benchmark, "floor", _floor, *world)


def test_floor_fused(benchmark, world):
    _time(benchmark, "floor_fused", lambda m, s, t: _floor(m, s, t, fused=True), *world)


def test_engine(benchmark, world):
    _time(benchmark, "engine", lambda m, s, t: _engine(m, s, t, False), *world)


def test_engine_tl_attention(benchmark, world):
    _time(benchmark, "engine_tl_attention", lambda m, s, t: _engine(m, s, t, False, fast_attention=False), *world)


def test_engine_propagation(benchmark, world):
    _time(benchmark, "engine_propagation", lambda m, s, t: _engine(m, s, t, True), *world)


def test_run_evals_loop(benchmark, world):
    _time(benchmark, "run_evals_loop", _run_evals_loop, *world)


def test_ratios():
    """Prints the issue's targets (run_evals loop / engine >= 4, engine / floor <= 1.3) and asserts them
    with a margin for a shared machine (>= 3, <= 1.6)."""
    if not {"engine", "floor", "run_evals_loop"} <= TIMES.keys():
        pytest.skip("run the whole file to get the ratios")
    print(f"\nrun_evals_loop / engine = {TIMES['run_evals_loop'] / TIMES['engine']:.2f}x (target >= 4)")
    print(f"engine / floor          = {TIMES['engine'] / TIMES['floor']:.2f}x (target <= 1.3)")
    if "floor_fused" in TIMES:
        print(f"engine / floor_fused    = {TIMES['engine'] / TIMES['floor_fused']:.2f}x (same attention kernel)")
    if "engine_tl_attention" in TIMES:
        print(f"engine_tl_attention / floor = {TIMES['engine_tl_attention'] / TIMES['floor']:.2f}x "
              "(both with TransformerLens' attention)")
    if "engine_propagation" in TIMES:
        print(f"propagation overhead    = {TIMES['engine_propagation'] / TIMES['engine'] - 1:+.1%}")
    # the targets, with a generous margin for a shared machine (measured: 5.7x and 1.02x, README)
    assert TIMES["run_evals_loop"] / TIMES["engine"] >= 3.0, TIMES
    assert TIMES["engine"] / TIMES["floor"] <= 1.6, TIMES


@pytest.mark.parametrize("n_seqs", [16, 64])
def test_peak_memory(n_seqs):
    """Peak RSS of the engine in a fresh process; it must not grow with the number of sequences: once both
    sizes ran, 4x the sequences may cost at most 10% more (measured: equal, README)."""
    out = subprocess.run([sys.executable, "-m", "benchmarks.medium", str(n_seqs)], capture_output=True,
                         text=True, check=True, cwd=os.path.dirname(os.path.dirname(__file__)))
    PEAKS[n_seqs] = float(out.stdout.strip().splitlines()[-1])
    print(f"\npeak RSS with {n_seqs} sequences: {PEAKS[n_seqs]:.0f} MiB")
    if {16, 64} <= PEAKS.keys():
        assert PEAKS[64] <= 1.1 * PEAKS[16], PEAKS
