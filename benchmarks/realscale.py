"""Time and memory of sae-checks at gpt2-small size, on the offline world of tests/gpt2_world.py.

    python -m benchmarks.realscale --out DIR [--seqs 2,4] [--layers 1,2] [--ctx-len 1024] [--n-prompts 100]

Builds the world into ``DIR/world`` (kept: a second call with the same settings reuses it), then runs,
each in a fresh subprocess with the world's offline environment:

- ``run``: ``sae-checks run --model gpt2-small --saes gpt2-small-res-jb --layers 0[,1] --n-seqs N`` (the
  engine only: every reconstruction and splice metric, zero ablation, propagation) for each number of
  layers and each N;
- ``gate``: the README's gate command verbatim (``--sae-ctx-len 1024 --sae-tasks lambada``: the shipped
  policy's buckets end at 1024, so ``--ctx-len`` does not apply) with ``--sae-n-seqs N``, the largest layer
  set, ``--sae-n-prompts`` and a small causal check, writing its baseline (``--sae-update-baseline``).

Each measurement runs in its own wrapper process, which reads ``resource.getrusage(RUSAGE_CHILDREN)``
after its one child exits: ``peak_rss_mib`` is that child's peak resident memory; ``wall_s`` its wall
time, model loading included. Derived: ``s_per_1k_tok_layer`` = wall_s / (N x ctx_len / 1000) / layers,
and per configuration the marginal cost between the smallest and the largest N (fixed costs such as
loading cancel). Prints a table; writes ``DIR/realscale.json``; each command's output is in
``DIR/runs/<name>/out.log``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
# The wrapper: runs argv[1:] as its one child, then prints that child's exit code, wall time and peak RSS.
MEASURE = (
    "import json, resource, subprocess, sys, time\n"
    "start = time.perf_counter()\n"
    "rc = subprocess.call(sys.argv[1:])\n"
    "wall = time.perf_counter() - start\n"
    "peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024  # KiB on Linux\n"
    "print(json.dumps({'rc': rc, 'wall_s': round(wall, 2), 'peak_rss_mib': round(peak, 1)}))\n"
)


def measure(cmd: list[str], env: dict[str, str], run_dir: Path) -> dict[str, Any]:
    """Run ``cmd`` in ``run_dir`` under the wrapper; its output goes to ``run_dir/out.log``."""
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "cmd.txt").write_text(" ".join(cmd) + "\n")
    with open(run_dir / "out.log", "w") as log:
        proc = subprocess.run([sys.executable, "-c", MEASURE, *cmd], env=env, cwd=run_dir, stdout=subprocess.PIPE,
                              stderr=log, text=True, check=False)
    lines = proc.stdout.strip().splitlines()
    with open(run_dir / "out.log", "a") as log:
        log.write("\n".join(lines[:-1]) + "\n")
    return json.loads(lines[-1])


def world_env(out: Path, layers: int, seed: int) -> tuple[dict[str, str], dict[str, Any]]:
    """The world in ``out/world`` (built unless ``world.json`` there has these settings) and its environment."""
    from tests.gpt2_world import build_gpt2_small_world
    from tests.hf_cache import offline_env

    root = out / "world"
    summary = root / "work" / "world.json"
    wanted = list(range(layers))
    world = json.loads(summary.read_text()) if summary.is_file() else None
    if world is None or world["sae_layers"] != wanted or world["seed"] != seed:
        start = time.perf_counter()
        world = build_gpt2_small_world(root / "hf", root / "work", sae_layers=wanted, seed=seed)
        world["build_s"] = round(time.perf_counter() - start, 1)
        print(f"world built in {world['build_s']} s into {root}", flush=True)
    env = offline_env(root / "hf")
    env["PYTHONPATH"] = str(REPO) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env, world


def commands(args: argparse.Namespace) -> list[tuple[str, dict[str, Any], list[str]]]:
    """(name, settings, command) for every measurement."""
    from tests.gpt2_world import README_GATE

    console = Path(sys.executable).parent / "sae-checks"
    cli = [str(console)] if console.is_file() else [sys.executable, "-m", "sae_checks.cli"]
    device = ["--device", args.device] if args.device else []
    out = []
    for n in args.seqs:
        for k in args.layers:
            layers = ",".join(str(L) for L in range(k))
            out.append((f"run-L{k}-n{n}", {"what": "run", "layers": k, "n_seqs": n, "ctx_len": args.ctx_len},
                        [*cli, "run", "--model", "gpt2-small", "--saes", "gpt2-small-res-jb", "--layers", layers,
                         "--n-seqs", str(n), "--ctx-len", str(args.ctx_len), *device, "--report", "report.json"]))
        if not args.no_gate:
            k = max(args.layers)
            ctx = int(README_GATE[README_GATE.index("--sae-ctx-len") + 1])
            out.append((f"gate-L{k}-n{n}", {"what": "gate", "layers": k, "n_seqs": n, "ctx_len": ctx},
                        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", *README_GATE,
                         "--sae-n-seqs", str(n), "--sae-layers", ",".join(str(L) for L in range(k)),
                         "--sae-n-prompts", str(args.n_prompts), "--sae-n-causal", str(args.n_causal),
                         "--sae-causal-max-prompts", str(args.causal_max_prompts),
                         *(["--sae-device", args.device] if args.device else []), "--sae-update-baseline"]))
    return out


def derive(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Seconds per 1k tokens per layer, per row and as the marginal cost between the smallest and largest N."""
    for row in rows:
        row["tokens"] = row["n_seqs"] * row["ctx_len"]
        row["s_per_1k_tok_layer"] = round(row["wall_s"] / (row["tokens"] / 1000) / row["layers"], 3)
    marginal = []
    for what, layers in sorted({(r["what"], r["layers"]) for r in rows}):
        same = sorted((r for r in rows if (r["what"], r["layers"]) == (what, layers) and r["rc"] == 0),
                      key=lambda r: r["n_seqs"])
        if len(same) >= 2 and same[-1]["n_seqs"] > same[0]["n_seqs"]:
            lo, hi = same[0], same[-1]
            per_1k = (hi["wall_s"] - lo["wall_s"]) / ((hi["tokens"] - lo["tokens"]) / 1000) / layers
            marginal.append({"what": what, "layers": layers, "from_n": lo["n_seqs"], "to_n": hi["n_seqs"],
                             "marginal_s_per_1k_tok_layer": round(per_1k, 3),
                             "fixed_s": round(lo["wall_s"] - per_1k * layers * lo["tokens"] / 1000, 1)})
    return marginal


def table(rows: list[dict[str, Any]], marginal: list[dict[str, Any]]) -> str:
    head = f"{'name':<14}{'rc':>4}{'layers':>8}{'seqs':>6}{'tokens':>8}{'wall s':>9}{'peak MiB':>10}{'s/1k tok/layer':>16}"
    lines = [head, "-" * len(head)]
    for r in rows:
        lines.append(f"{r['name']:<14}{r['rc']:>4}{r['layers']:>8}{r['n_seqs']:>6}{r['tokens']:>8}{r['wall_s']:>9.1f}"
                     f"{r['peak_rss_mib']:>10.0f}{r['s_per_1k_tok_layer']:>16.3f}")
    for m in marginal:
        lines.append(f"marginal {m['what']} ({m['layers']} layer(s), n {m['from_n']} -> {m['to_n']}): "
                     f"{m['marginal_s_per_1k_tok_layer']} s per 1k tokens per layer, fixed ~{m['fixed_s']} s")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    def ints(text: str) -> list[int]:
        return [int(v) for v in text.split(",") if v.strip()]

    p = argparse.ArgumentParser(prog="python -m benchmarks.realscale", description=__doc__.split("\n\n")[0])
    p.add_argument("--out", required=True, type=Path, help="folder for the world, the runs and realscale.json")
    p.add_argument("--seqs", type=ints, default=[2, 4], help="sequence counts, comma-separated (default 2,4)")
    p.add_argument("--layers", type=ints, default=[1, 2], help="SAE layer counts for `run` (default 1,2); the "
                   "gate uses the largest")
    p.add_argument("--ctx-len", type=int, default=1024, help="run: tokens per sequence (default 1024); the gate "
                   "keeps the README's 1024: the shipped policy's buckets end there")
    p.add_argument("--n-prompts", type=int, default=100, help="gate: Lambada prompts (default 100)")
    p.add_argument("--n-causal", type=int, default=1, help="gate: causal check features per ranking (default 1)")
    p.add_argument("--causal-max-prompts", type=int, default=8, help="gate: causal check prompts (default 8)")
    p.add_argument("--device", default=None, help="cpu / cuda (default: sae-checks' own choice)")
    p.add_argument("--no-gate", action="store_true", help="measure `sae-checks run` only")
    p.add_argument("--seed", type=int, default=0, help="world seed (default 0)")
    args = p.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)

    env, world = world_env(args.out, max(args.layers), args.seed)
    rows = []
    for name, settings, cmd in commands(args):
        result = measure(cmd, env, args.out / "runs" / name)
        rows.append({"name": name, **settings, **result})
        print(f"{name}: exit {result['rc']}, {result['wall_s']} s, peak {result['peak_rss_mib']} MiB", flush=True)
    marginal = derive(rows)
    print(table(rows, marginal))
    import torch

    report = {
        "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "torch": torch.__version__,
                    "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
                    "load_avg_after": os.getloadavg()},
        "world": {k: world[k] for k in ("shape", "fit", "seconds", "tokenizer_vocab", "sae_layers") if k in world}
        | {"build_s": world.get("build_s")},
        "rows": rows, "marginal": marginal,
    }
    (args.out / "realscale.json").write_text(json.dumps(report, indent=1))
    print(f"written: {args.out / 'realscale.json'}")
    return 0 if all(r["rc"] == 0 for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
