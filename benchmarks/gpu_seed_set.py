"""The seed experiment set on one CUDA GPU (issue 10.5), as one prepared program for a lent device machine.

Builds the gpt2-small-shaped offline world (tests/gpt2_world.py: real names, shapes and file layouts of
gpt2-small, gpt2-small-res-jb's 12 SAEs, openwebtext and lambada_openai rows) and times ``sae-checks run``
on it: 12 layers, 98 sequences of 1024 tokens (~100k tokens, the post's amount), Lambada on 1000 prompts,
propagation on, once in float32 and once in bfloat16 (autocast), with the engine's fused attention (on
CUDA: flash / memory-efficient scaled_dot_product_attention). Then it forces the CUDA out-of-memory halving
for real: one engine run whose batch is far larger than the card (``--batch-size 4096``), which must halve
until it fits and finish with the same numbers.

Run on the device machine (see docs/ci-gpu.md "Measuring on a GPU"): ``python3 -m benchmarks.gpu_seed_set
--out $OUT`` after installing the carried wheels (``benchmarks/gpu_wheels.sh``). Writes ``gpu_seed_set.json``
(seconds, peak CUDA memory and batch sizes per run) and each run's report under ``--out``. On CPU,
``--small`` runs the same steps at a few sequences and prompts, to check the program itself.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def _cli(args: list[str], env: dict[str, str], log: Path) -> float:
    start = time.perf_counter()
    with log.open("w") as f:
        proc = subprocess.run([sys.executable, "-m", "sae_checks.cli", *args], env=env, stdout=f,
                              stderr=subprocess.STDOUT, cwd=ROOT)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"sae-checks {' '.join(args)} exited {proc.returncode}; log: {log}\n"
                         + log.read_text()[-3000:])
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--small", action="store_true", help="a few sequences and prompts (program check, CPU)")
    parser.add_argument("--world", type=Path, help="an already built world (HF_HOME); default: build one")
    args = parser.parse_args()
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    sys.path.insert(0, str(ROOT))
    from tests.hf_cache import offline_env

    device = "cpu" if args.small else "cuda"
    n_seqs, n_prompts, layers = (2, 20, (0, 1)) if args.small else (98, 1000, tuple(range(12)))
    hf_home = args.world or Path(tempfile.mkdtemp(prefix="sae-checks-gpu-")) / "hf"
    summary: dict[str, Any] = {"device": device, "n_seqs": n_seqs, "ctx_len": 1024, "n_prompts": n_prompts,
                               "layers": list(layers), "runs": {}}
    if args.world is None:
        from tests.gpt2_world import build_gpt2_small_world

        start = time.perf_counter()
        world = build_gpt2_small_world(hf_home, hf_home.parent / "work", sae_layers=layers)
        summary["world_seconds"] = round(time.perf_counter() - start, 1)
        summary["world_fit"] = world["fit"]
    env = {**offline_env(hf_home), "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    base = ["run", "--model", "gpt2-small", "--saes", "gpt2-small-res-jb", "--layers", ",".join(map(str, layers)),
            "--ctx-len", "1024", "--device", device, "--no-progress"]
    seed_set = [*base, "--n-seqs", str(n_seqs), "--tasks", "lambada", "--n-prompts", str(n_prompts)]
    runs = {
        "float32": seed_set,
        "bfloat16": [*seed_set, "--dtype", "bfloat16"],
        # 128 sequences in one batch with the whole batch as one logits chunk: ~100 GB of (tokens, vocabulary)
        # work tensors, past the card; the engine must halve the batch (to 64, 32, ...) and finish
        "oom_halving": [*base, "--n-seqs", "128", "--batch-size", "128", "--chunk-tokens", "1000000",
                        "--no-propagation"],
    }
    if args.small:  # bfloat16 autocast is CUDA only; the OOM halving needs a CUDA allocator
        runs = {"float32": runs["float32"]}
    for name, cmd in runs.items():
        report = out / f"{name}.json"
        seconds = _cli([*cmd, "--report", str(report)], env, out / f"{name}.log")
        prov = json.loads(report.read_text())["provenance"]
        summary["runs"][name] = {"seconds": round(seconds, 1), "batch_size_used": prov.get("batch_size_used"),
                                 "chunk_tokens": prov.get("chunk_tokens"), "attention": prov.get("attention"),
                                 "device": prov.get("device"),
                                 "halved": "batch size halved" in (out / f"{name}.log").read_text()}
        print(name, json.dumps(summary["runs"][name]), flush=True)
    (out / "gpu_seed_set.json").write_text(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
