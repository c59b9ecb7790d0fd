"""Where a gate run's time goes at gpt2-small's shape (issue 14.4): the engine, the cloze clean + splice passes,
feature helpfulness and the causal sweep, timed with the sae-checks code on this machine.

The world: a random TransformerLens model with gpt2-small's vocabulary (50257), width (768), heads (12) and
context (1024) but fewer layers (``--layers``, default 4, to keep a CPU run in minutes), one random standard
SAE of width 24576 per layer at ``blocks.L.hook_resid_pre``, and the zoo's first ``--items`` cloze passages
(Lambada-style, lm-eval's split; the zoo's tokenizer gives prompts of 76 tokens on average, gpt2's tokenizer
about 80 on lambada_openai)::

    python -m benchmarks.cost_split                 # timings, one line per phase
    python -m benchmarks.cost_split --peak 16       # peak memory of the cloze clean + splice passes
                                                    # at 16 rows per pass (0 = the auto batch size)

Phases: ``engine`` = ``evaluate`` on ``--seqs`` random sequences of 1024 tokens with the gate's defaults
(zero ablation, propagation); then one ``run_cloze`` with features and the causal check (``n_causal`` 5,
``causal_max_prompts`` 32: the RunConfig defaults), split into ``cloze clean+splice`` (its first loop less
the helpfulness work in it), ``helpfulness`` (the window's active features and the sums in that loop, timed
by wrappers, plus the rankings and reports around the loops) and ``causal sweep`` (its causal loop). Every
phase runs with the batch sizes the gate would pick on this machine (``engine.memory``). Times are CPU
seconds of the process, all threads (``--clock cpu``, the default): on a shared machine the wall-clock time
(``--clock wall``) of the same work varies with what else runs. ``--peak``: the growth of the process' peak
resident memory (``VmHWM`` − ``VmRSS`` before the passes) while the clean + splice passes run.
"""

from __future__ import annotations

import argparse
import contextlib
import time
from collections.abc import Callable, Iterator
from typing import Any

import torch

D_VOCAB, D_MODEL, N_HEADS, N_CTX, D_SAE = 50257, 768, 12, 1024, 24576
CLOCKS: dict[str, Callable[[], float]] = {"cpu": time.process_time, "wall": time.perf_counter}


def world(n_layers: int, seed: int = 0) -> tuple[Any, dict[int, Any]]:
    """The random gpt2-shaped model (the zoo's tokenizer attached) and one random StandardSAE per layer."""
    from benchmarks.medium import random_world
    from sae_checks.zoo import load_zoo_tokenizer

    return random_world(n_layers=n_layers, d_model=D_MODEL, n_heads=N_HEADS, n_ctx=N_CTX, d_vocab=D_VOCAB,
                        d_sae=D_SAE, sae_layers=range(n_layers), act_fn="gelu_new", seed=seed,
                        tokenizer=load_zoo_tokenizer())


class PhaseClock:
    """A ``sae_checks.progress.Progress`` that records how long each loop (``start`` … ``close``) took, and
    how much of the cloze clean + splice loop went to feature helpfulness (:meth:`timed`)."""

    def __init__(self, now: Callable[[], float] = time.process_time) -> None:
        self.now = now
        self.times: dict[str, float] = {}
        self.helpfulness = 0.0
        self._what, self._t0 = "", 0.0

    def start(self, total: int, what: str) -> None:
        self._what, self._t0 = what, self.now()

    def update(self, n: int = 1) -> None:
        pass

    def close(self) -> None:
        if self._what:
            self.times[self._what] = self.times.get(self._what, 0.0) + self.now() - self._t0
            self._what = ""

    def timed(self, fn: Any) -> Any:
        """``fn``, its time inside the clean + splice loop added to ``helpfulness``."""

        def wrapper(*args: Any, **kw: Any) -> Any:
            t0 = self.now()
            try:
                return fn(*args, **kw)
            finally:
                if self._what.endswith("clean+splice"):
                    self.helpfulness += self.now() - t0

        return wrapper

    @contextlib.contextmanager
    def helpfulness_timers(self) -> Iterator[None]:
        """Time the feature-helpfulness work of the cloze runner: the window's active features (the visitor
        of the SAE's feature chunks, ``_window_activity``) and the sums; the rankings and reports run outside
        the loops (and are timed by the difference of the totals)."""
        from sae_checks.experiments import cloze as mod

        saved = {n: getattr(mod, n) for n in ("feature_sums", "add_feature_sums")}
        visitor = mod._window_activity
        for n, fn in saved.items():
            setattr(mod, n, self.timed(fn))
        mod._window_activity = lambda *a: self.timed(visitor(*a))
        try:
            yield
        finally:
            for n, fn in saved.items():
                setattr(mod, n, fn)
            mod._window_activity = visitor


def cloze(model: Any, saes: dict[int, Any], items: list[Any], progress: Any, batch: int = 0, **options: Any) -> Any:
    """``run_cloze`` with ``options`` (the RunConfig's cloze defaults otherwise), ``batch`` rows per pass (0:
    the batch size the gate would pick)."""
    from sae_checks.config import RunConfig
    from sae_checks.experiments import cloze as mod

    c = RunConfig()
    opts = {"task": "lambada", "n_bootstrap": 0, "n_causal": c.n_causal, "causal_max_prompts": c.causal_max_prompts,
            **options}
    batch = batch or mod.auto_batch_size(model, items)
    return mod.run_cloze(model, saes, items, mod.ClozeOptions(batch_size=batch, **opts), progress=progress)


def timings(n_layers: int, n_items: int, n_seqs: int, now: Callable[[], float]) -> dict[str, float]:
    """Seconds (``now``'s) per phase (module docstring)."""
    from sae_checks.config import RunConfig
    from sae_checks.engine.run import evaluate
    from sae_checks.loading.data import load_cloze

    model, saes = world(n_layers)
    items = load_cloze("lambada", "zoo", n_prompts=n_items)
    gen = torch.Generator().manual_seed(0)
    tokens = torch.randint(1, D_VOCAB, (n_seqs, N_CTX), generator=gen)
    tokens[:, 0] = model.tokenizer.bos_token_id
    cloze(model, saes, items[:4], PhaseClock(), features=False)  # warm-up: the allocator's first growth
    out: dict[str, float] = {}
    t0 = now()
    evaluate(model, saes, tokens, RunConfig(n_bootstrap=0, progress=False, device="cpu"))
    out["engine"] = now() - t0
    clock = PhaseClock(now)
    t0 = now()
    with clock.helpfulness_timers():
        cloze(model, saes, items, clock, features=True)
    total = now() - t0
    out["cloze clean+splice"] = clock.times["lambada clean+splice"] - clock.helpfulness
    out["causal sweep"] = clock.times.get("lambada causal", 0.0)
    out["helpfulness"] = total - out["cloze clean+splice"] - out["causal sweep"]  # in the loop + rankings
    return out


def _status(key: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
    raise KeyError(key)


def peak(n_layers: int, n_items: int, batch: int) -> float:
    """MiB the process' peak RSS grew by during the clean + splice passes (no features), ``batch`` rows per
    pass (0: the gate's batch size)."""
    from sae_checks.loading.data import load_cloze

    model, saes = world(n_layers)
    items = load_cloze("lambada", "zoo", n_prompts=n_items)
    before = _status("VmRSS")
    cloze(model, saes, items, PhaseClock(), batch, features=False)
    return (_status("VmHWM") - before) / 2**20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--items", type=int, default=100)
    parser.add_argument("--seqs", type=int, default=8, help="engine sequences of 1024 tokens")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--clock", choices=sorted(CLOCKS), default="cpu", help="CPU seconds (default) or wall time")
    parser.add_argument("--peak", type=int, default=None, metavar="ROWS",
                        help="measure the peak memory of the clean + splice passes at ROWS per pass (0 = auto)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.peak is not None:
        mib = peak(args.layers, args.items, args.peak)
        print(f"cloze clean+splice peak RSS growth: {mib:.0f} MiB ({args.peak or 'auto'} rows per pass)")
        return
    times = timings(args.layers, args.items, args.seqs, CLOCKS[args.clock])
    total = sum(times.values())
    for k, v in times.items():
        print(f"{k:20s} {v:8.1f} s  {100 * v / total:5.1f}%")
    print(f"{'total':20s} {total:8.1f} s ({args.clock} time)")


if __name__ == "__main__":
    main()
