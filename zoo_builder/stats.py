"""The zoo's published SAE and cloze numbers, measured with the shipped tool (``sae_checks.api.run``).

``zoo_stats.json`` and the README's zoo table repeat these numbers; they must be what ``sae-checks run``
reports for the same setting, so they come from the tool itself, not from the build's own code:

    python -m zoo_builder.stats            # recompute, rewrite the "saes"/"cloze" sections, print the table
    python -m zoo_builder.stats --check    # exit 1 when zoo_stats.json differs from the tool

Setting: the 128 held-out evaluation rows of 256 tokens, buckets [1, 32) (inside v1's training context)
and [32, 256), every layer's SAE of v1 and v2; the zoo's cloze set (Lambada's split: the prompt is the
text before the last space) with first-token accuracy, ``long`` = prompts of more than 32 tokens (BOS
included).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any

BUCKETS = ((1, 32), (32, 256))
SHORT_CTX = 32
N_SEQS = 128
DIGITS = 5  # significant digits kept in zoo_stats.json


def _round(x: float) -> float:
    return float(f"{x:.{DIGITS}g}") if math.isfinite(x) else x


def tool_stats(versions: tuple[str, ...] = ("v1", "v2"), *, cloze: bool = True) -> dict[str, Any]:
    """``{"saes": {version: {layer: {bucket: {l0, ev, delta_ce}}}}, "cloze": {...}}`` from ``api.run``."""
    from sae_checks.api import run
    from sae_checks.config import RunConfig

    saes: dict[str, Any] = {"buckets": [f"{a}-{b}" for a, b in BUCKETS], "eval_sequences": N_SEQS}
    cl: dict[str, Any] = {}
    for version in versions:
        config = RunConfig(saes=f"zoo:{version}", n_seqs=N_SEQS, buckets=BUCKETS, n_bootstrap=0,
                           propagation=False, zero_ablation=False, progress=False, device="cpu",
                           tasks=("lambada",) if cloze else (), n_prompts=1000, n_causal=0)
        results = run(config).results
        saes[version] = {}
        for name, entry in results["saes"].items():
            saes[version][str(entry["layer"])] = {
                bucket: {"l0": _round(m["l0"]["mean"]), "ev": _round(m["explained_variance"]["mean"]),
                         "delta_ce": _round(m["delta_ce"]["mean"])}
                for bucket, m in results["per_bucket"][name].items()}
        if cloze:
            section = results["cloze"]["lambada"]
            long = [n > SHORT_CTX for n in section["prompt_lengths"]]

            def summary(right: list[bool], long: list[bool] = long) -> dict[str, float]:
                def mean(sel: list[bool]) -> float:
                    picked = [r for r, s in zip(right, sel, strict=True) if s]
                    return _round(sum(picked) / len(picked)) if picked else float("nan")

                return {"all": mean([True] * len(right)), "long": mean(long), "short": mean([not x for x in long])}

            any_sae = next(iter(section["prompts"].values()))["class"]
            cl["n"], cl["n_long"] = len(long), sum(long)
            cl["clean"] = summary([c in ("both_right", "clean_only") for c in any_sae])
            cl[version] = {}
            for name, p in section["prompts"].items():
                entry = summary([c in ("both_right", "spliced_only") for c in p["class"]])
                d_long = [d for d, x in zip(p["delta_logp"], long, strict=True) if x and d is not None]
                entry["delta_logp_long"] = _round(sum(d_long) / len(d_long)) if d_long else float("nan")
                cl[version][str(results["saes"][name]["layer"])] = entry
    return {"saes": saes, "cloze": cl} if cloze else {"saes": saes}


def table_lines(stats: dict[str, Any]) -> list[str]:
    """The README's zoo table rows: ver | layer | L0 in | L0 beyond | EV in | EV beyond | ΔCE in | ΔCE beyond."""
    inside, beyond = stats["saes"]["buckets"]
    lines = []
    for version in ("v1", "v2"):
        for layer, b in sorted(stats["saes"][version].items(), key=lambda kv: int(kv[0])):
            lines.append(f"| {version} | {layer} | {b[inside]['l0']:.1f} | {b[beyond]['l0']:.1f} | "
                         f"{b[inside]['ev']:.3f} | {b[beyond]['ev']:.3f} | {b[inside]['delta_ce']:.3f} | "
                         f"{b[beyond]['delta_ce']:.3f} |")
    return lines


def main(argv: list[str] | None = None) -> int:
    from sae_checks.zoo import ZOO_DIR

    p = argparse.ArgumentParser(prog="python -m zoo_builder.stats", description=__doc__.splitlines()[0])
    p.add_argument("--check", action="store_true", help="compare with zoo_stats.json instead of rewriting it")
    args = p.parse_args(argv)
    path = ZOO_DIR / "zoo_stats.json"
    stats = json.loads(path.read_text())
    fresh = tool_stats()
    if args.check:
        same = all(stats.get(sec, {}).get(k) == v for sec, part in fresh.items() for k, v in part.items())
        print("zoo_stats.json matches the tool" if same else "zoo_stats.json differs from the tool")
        return 0 if same else 1
    for sec, part in fresh.items():  # keep the build's other keys (training settings, seconds)
        stats.setdefault(sec, {}).update(part)
    stats["saes"]["measured_by"] = "python -m zoo_builder.stats (sae_checks.api.run)"
    Path(path).write_text(json.dumps(stats, indent=1, sort_keys=True) + "\n")
    print("\n".join(table_lines(stats)))
    c = stats["cloze"]
    for version in ("v1", "v2"):
        layers = sorted(c[version], key=int)
        accs = " / ".join(f"{c[version][L]['all']:.3f}" for L in layers)
        dl = " / ".join(f"{c[version][L]['delta_logp_long']:.2f}" for L in layers)
        print(f"cloze {version}: {accs} (clean {c['clean']['all']:.3f}; {c['n']} prompts, {c['n_long']} long); "
              f"mean delta_logp on long prompts {dl}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
