"""A random-init world at gpt2-small's shape for the memory benchmark (issue 10.2): vocabulary 50257,
d_model 768, 12 heads of 64, d_mlp 3072, context 1024, ``n_layers`` blocks (default 1) and one StandardSAE
of width 24576 on ``blocks.0.hook_resid_pre`` (gpt2-small-res-jb's shape).

Runnable as a script: ``python -m benchmarks.gpt2_shape BATCH [CHUNK]`` runs the engine (``evaluate``, zero
ablation on, as ``sae-checks run``) on BATCH sequences of 1024 tokens in one batch with ``chunk_tokens`` =
CHUNK (default: the engine's own choice) and prints one JSON line: the peak resident memory of the process
(max RSS, MiB), the RSS after building the model and the SAE, and the seconds the evaluation took.
"""

from __future__ import annotations

import dataclasses
import json
import resource
import sys
import time
from typing import Any

import torch

D_VOCAB, D_MODEL, N_CTX, D_SAE = 50257, 768, 1024, 24576


def gpt2_shaped_world(n_layers: int = 1, seed: int = 0) -> tuple[Any, dict[int, Any]]:
    from benchmarks.medium import random_world

    return random_world(n_layers=n_layers, d_model=D_MODEL, n_heads=12, n_ctx=N_CTX, d_vocab=D_VOCAB, d_sae=D_SAE,
                        sae_layers=[0], act_fn="gelu_new", seed=seed)


def tokens(n_seqs: int, seed: int = 0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    toks = torch.randint(1, D_VOCAB, (n_seqs, N_CTX), generator=gen)
    toks[:, 0] = 0  # the random model has no tokenizer: no token is special
    return toks


def _rss_mib() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def main(batch: int, chunk: int | None) -> None:
    from sae_checks.config import RunConfig
    from sae_checks.engine.run import evaluate

    torch.set_num_threads(2)
    model, saes = gpt2_shaped_world()
    toks = tokens(batch)
    loaded = _rss_mib()
    options: dict[str, Any] = dict(batch_size=batch, propagation=False, zero_ablation=True, n_bootstrap=0,
                                   progress=False, device="cpu")
    if chunk is not None and "chunk_tokens" in {f.name for f in dataclasses.fields(RunConfig)}:
        options["chunk_tokens"] = chunk
    start = time.perf_counter()
    ev = evaluate(model, saes, toks, RunConfig(**options))
    seconds = time.perf_counter() - start
    print(json.dumps({"batch": batch, "chunk": ev.provenance.get("chunk_tokens"), "seconds": round(seconds, 1),
                      "rss_loaded_mib": round(loaded), "peak_rss_mib":
                      round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)}))


if __name__ == "__main__":
    main(int(sys.argv[1]), int(sys.argv[2]) if len(sys.argv) > 2 else None)
