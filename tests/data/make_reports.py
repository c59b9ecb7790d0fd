"""Write the example reports ``report_minimal.json`` and ``report_full.json`` (deterministic; no torch).

The full report looks like a zoo run: 4 SAEs (layers 0-3) trained at context 32, evaluated on 64 x 256
tokens, buckets 1-32 (inside) and 32-256 (beyond), propagation, a Lambada cloze, features, and checks
with every status. The numbers are made up but shaped like the post's: inside the training context the
SAEs are fine, beyond it L0, FVU and ΔCE blow up, early layers most. Plots, html and gate tests reuse them.

    .venv/bin/python tests/data/make_reports.py          # rewrite both files
    .venv/bin/python tests/data/make_reports.py --check  # exit 1 if a file is out of date
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path
from typing import Any

import numpy as np

from sae_checks.report.io import build_report, canonical_json

HERE = Path(__file__).parent
LAYERS = (0, 1, 2, 3)
T = 256  # ctx_len, BOS at position 0
CONTEXT = 32  # the SAEs' training context
BUCKETS = ("1-32", "32-256")
N_SEQS = 64
PROV_BASE = {
    "sae_checks": "0.1.0", "torch": "2.13.0", "transformer_lens": "3.9.0", "sae_lens": "6.54.0",
    "device": "cpu", "dtype": "float32", "git_commit": "3f2a9c1d0b7e4a5f8c6d2e1b0a9f8e7d6c5b4a39",
    "created": "2025-01-01T00:00:00+00:00", "model": "zoo",
}


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def provenance(layers: tuple[int, ...], n_seqs: int, ctx_len: int) -> dict[str, Any]:
    saes = [{"layer": L, "hook": f"blocks.{L}.hook_resid_pre", "release": "zoo:v2", "id": f"blocks.{L}.hook_resid_pre",
             "sha256": sha(f"zoo:v2/{L}"), "context_size": CONTEXT} for L in layers]
    data = {"dataset": "zoo", "split": "train", "revision": None, "n_sequences": n_seqs, "ctx_len": ctx_len, "seed": 0}
    return {**PROV_BASE, "saes": saes, "data": data}


def config(**changes: Any) -> dict[str, Any]:
    values = {"model": "zoo", "saes": "zoo:v2", "data": "zoo", "n_seqs": N_SEQS, "ctx_len": T, "seed": 0,
              "device": "cpu", "tasks": ("lambada",), "n_prompts": 200, "n_bootstrap": 200}
    values.update(changes)
    try:  # the real RunConfig when it imports; the same fields by hand otherwise
        from sae_checks.config import RunConfig

        return RunConfig(**values).validate().to_dict()
    except ImportError:  # pragma: no cover
        return {k: list(v) if isinstance(v, tuple) else v for k, v in values.items()}


def per_position(rng: np.random.Generator, layer: int) -> dict[str, list[float | None]]:
    pos = np.arange(T, dtype=float)
    beyond = np.clip((pos - CONTEXT + 1) / CONTEXT, 0, None)  # 0 inside, grows past the context
    blow = beyond ** 1.3 * (4.0 - layer) / 4.0  # early layers degrade most beyond the context
    noise = lambda scale: 1 + scale * rng.standard_normal(T)  # noqa: E731
    resid_norm = (20 + 6 * layer) * noise(0.02)
    fvu = (0.03 + 0.02 * layer) * (1 + 3 * blow) * noise(0.05)
    l0 = (10 + 5 * layer) * (1 + 8 * blow) * noise(0.05)
    mse = fvu * resid_norm ** 2 / 3
    delta_ce = (0.05 + 0.04 * layer) * (1 + 6 * blow) * noise(0.08)
    ce_clean = 3.2 + 1.5 / np.sqrt(pos + 1) + 0.05 * rng.standard_normal(T)
    arrays = {
        "mse": mse, "fvu": fvu, "explained_variance": 1 - fvu, "l0": l0,
        "feat_l1": l0 * (0.8 + 0.1 * layer) * noise(0.03), "resid_norm": resid_norm,
        "cos": 1 - fvu / 2, "ce_clean": ce_clean, "ce_spliced": ce_clean + delta_ce, "delta_ce": delta_ce,
        "kl": delta_ce * 1.1 * noise(0.05),
    }
    out: dict[str, list[float | None]] = {"position": list(range(T))}
    for name, values in arrays.items():
        v: list[float | None] = [float(x) for x in values]
        v[0] = None  # BOS: excluded from every mean
        if name in ("ce_clean", "ce_spliced", "delta_ce", "kl"):
            v[T - 1] = None  # no next token to predict
        out[name] = v
    out["n_tokens"] = [0] + [N_SEQS] * (T - 1)
    return out


def estimate(values: list[float | None], lo: int, hi: int, rng: np.random.Generator) -> dict[str, Any]:
    x = np.array([v for v in values[lo:hi] if v is not None])
    mean = float(x.mean())
    half = float(x.std() / np.sqrt(N_SEQS) * 1.96 * (1 + 0.2 * rng.random()))
    return {"mean": mean, "ci": [mean - half, mean + half]}


def full_report() -> dict[str, Any]:
    rng = np.random.default_rng(20250101)
    per_pos = {str(L): per_position(rng, L) for L in LAYERS}
    metrics = ("mse", "fvu", "explained_variance", "l0", "feat_l1", "resid_norm", "cos", "ce_clean",
               "ce_spliced", "delta_ce", "kl")
    per_bucket: dict[str, Any] = {}
    for L in LAYERS:
        per_bucket[str(L)] = {}
        for bucket in BUCKETS:
            a, b = map(int, bucket.split("-"))
            est = {m: estimate(per_pos[str(L)][m], a, b, rng) for m in metrics}
            ce_zero = 9.5 + 0.3 * L
            score = (ce_zero - est["ce_spliced"]["mean"]) / (ce_zero - est["ce_clean"]["mean"])
            est["ce_zero"] = {"mean": ce_zero, "ci": [ce_zero - 0.05, ce_zero + 0.05]}
            est["ce_loss_score"] = {"mean": score, "ci": [score - 0.004, score + 0.004]}
            per_bucket[str(L)][bucket] = est
    context_gen: dict[str, Any] = {}
    for L in LAYERS:
        context_gen[str(L)] = {}
        for m in ("fvu", "l0", "delta_ce", "kl", "mse"):
            inside, beyond = per_bucket[str(L)]["1-32"][m]["mean"], per_bucket[str(L)]["32-256"][m]["mean"]
            ratio = beyond / inside
            context_gen[str(L)][m] = {"inside": "1-32", "beyond": "32-256", "ratio": ratio,
                                      "ci": [ratio * 0.93, ratio * 1.08]}
    n = len(LAYERS)
    propagation: dict[str, Any] = {"layers": list(LAYERS), "window": [1, 101]}
    for m, scale in (("mse", 0.25), ("l0", 0.15), ("resid_norm", 0.02)):
        propagation[m] = [[scale * (j - i) * (1 + 0.1 * rng.random()) if i < j else None for j in range(n)]
                          for i in range(n)]
    cloze = {"lambada": lambada(rng)}
    features = {str(L): feature_lists(rng, L) for L in LAYERS}
    results = {
        "per_position": per_pos, "per_bucket": per_bucket, "context_generalization": context_gen,
        "propagation": propagation, "cloze": cloze, "features": features, "nonfinite": [],
        "buckets": {str(L): list(BUCKETS) for L in LAYERS}, "context_size": {str(L): CONTEXT for L in LAYERS},
    }
    return build_report(provenance=provenance(LAYERS, N_SEQS, T), config=config(), results=results,
                        checks=make_checks(per_bucket, context_gen, cloze),
                        unused_baseline=["fvu/layer=4/bucket=1-32", "fvu/layer=4/bucket=32-256"])


def lambada(rng: np.random.Generator) -> dict[str, Any]:
    n = 200
    clean_acc = 0.265

    def acc(p: float) -> dict[str, Any]:
        half = 1.96 * np.sqrt(p * (1 - p) / n)
        return {"mean": p, "ci": [p - half, p + half]}

    per_layer = {}
    for L, drop in zip(LAYERS, (0.010, 0.018, 0.041, 0.054), strict=True):
        p = clean_acc - drop
        both_right = int(round(n * (p - 0.01)))
        only_spliced = int(round(n * 0.01))
        only_clean = int(round(n * clean_acc)) - both_right
        per_layer[str(L)] = {
            "acc_first_token": acc(p), "acc_word": acc(p - 0.07),
            "logp": {"mean": -4.1 - drop * 5, "ci": [-4.3 - drop * 5, -3.9 - drop * 5]},
            "delta_logp": {"mean": -drop * 5, "ci": [-drop * 5 - 0.05, -drop * 5 + 0.05]},
            "delta_ce": {"mean": 0.06 + 0.05 * L, "ci": [0.05 + 0.05 * L, 0.07 + 0.05 * L]},
            "mse": {"mean": 1.5 + L, "ci": [1.4 + L, 1.6 + L]},
            "l0": {"mean": 11.0 + 5 * L, "ci": [10.5 + 5 * L, 11.5 + 5 * L]},
            "classes": {"both_right": both_right, "only_clean_right": only_clean,
                        "only_spliced_right": only_spliced,
                        "both_wrong": n - both_right - only_clean - only_spliced},
        }
    return {"n_prompts": n, "baseline": {"acc_first_token": acc(clean_acc), "acc_word": acc(clean_acc - 0.07),
                                         "logp": {"mean": -4.1, "ci": [-4.3, -3.9]}},
            "per_layer": per_layer}


def feature_lists(rng: np.random.Generator, layer: int) -> dict[str, Any]:
    feats = rng.choice(512, size=10, replace=False)
    rows = [{"feature": int(k), "n_prompts": int(rng.integers(5, 60)),
             "mean_delta_logp": float(rng.normal(0, 0.3)), "score": int(rng.integers(-20, 21))} for k in feats]
    rows.sort(key=lambda r: (-r["score"], r["feature"]))
    return {"top": rows[:5], "bottom": rows[5:][::-1]}


def make_checks(per_bucket: dict[str, Any], context_gen: dict[str, Any], cloze: dict[str, Any]) -> list[dict[str, Any]]:
    """Checks as the gate writes them. Statuses: layer 0 beyond-context fvu and delta_ce fail (limit),
    layer 1 beyond-context l0 context ratio warns (severity warn), layer 3 inside fvu improved,
    layer 3 cloze accuracy is new (no baseline); the rest pass."""
    checks = []

    def add(metric: str, layer: int, bucket: str | None, est: dict[str, Any], direction: str, *,
            baseline: float | None, rel_tol: float, limit: float | None = None, status: str = "pass",
            message: str = "", cid: str | None = None) -> None:
        value = est["mean"] if "mean" in est else est["ratio"]
        band = None
        if baseline is not None:
            tol = rel_tol * abs(baseline)
            band = [baseline - tol, baseline + tol]
        checks.append({
            "id": cid or f"{metric}/layer={layer}" + (f"/bucket={bucket}" if bucket else ""),
            "metric": metric, "layer": layer, "bucket": bucket, "value": value, "ci": est.get("ci"),
            "baseline": baseline, "limit": limit, "band": band, "direction": direction, "status": status,
            "message": message or None,
        })

    for L in LAYERS:
        for bucket in BUCKETS:
            for metric, direction, limit in (("fvu", "lower", 0.5), ("delta_ce", "lower", 1.0),
                                             ("explained_variance", "higher", None)):
                est = per_bucket[str(L)][bucket][metric]
                baseline = est["mean"] * 0.99
                status, message, lim = "pass", "", limit
                if L == 0 and bucket == "32-256" and metric in ("fvu", "delta_ce"):
                    lim = round(est["mean"] * 0.6, 3)
                    status = "fail"
                    message = (f"{metric} {est['mean']:.4g} above the limit {lim:g} beyond the SAE context (32): "
                               "the SAE does not generalize past its training context")
                elif L == 3 and bucket == "1-32" and metric == "fvu":
                    baseline = est["mean"] * 1.4
                    status, message = "improved", (f"fvu {est['mean']:.4g} better than baseline {baseline:.4g} "
                                                   "beyond the band: update the baseline (--sae-update-baseline)")
                add(metric, L, bucket, est, direction, baseline=baseline, rel_tol=0.1, limit=lim,
                    status=status, message=message)
        ratio = context_gen[str(L)]["l0"]
        status, message = "pass", ""
        if L == 1:
            status, message = "warn", f"l0 grows {ratio['ratio']:.3g}x beyond the context (severity=warn)"
        add("context_ratio_l0", L, None, ratio, "lower", baseline=ratio["ratio"], rel_tol=0.25,
            status=status, message=message, cid=f"context_ratio_l0/layer={L}")
        acc = cloze["lambada"]["per_layer"][str(L)]["acc_first_token"]
        if L == 3:
            add("cloze_acc_first_token", L, None, acc, "higher", baseline=None, rel_tol=0.0, status="new",
                message="no baseline entry: run with --sae-update-baseline to record one",
                cid=f"cloze_acc_first_token/task=lambada/layer={L}")
        else:
            add("cloze_acc_first_token", L, None, acc, "higher", baseline=acc["mean"], rel_tol=0.1, limit=0.15,
                cid=f"cloze_acc_first_token/task=lambada/layer={L}")
    return checks


def minimal_report() -> dict[str, Any]:
    """The least a valid report holds: one SAE, no results sections, one passing check."""
    check = {"id": "fvu/layer=0/bucket=1-32", "metric": "fvu", "layer": 0, "bucket": "1-32", "value": 0.031,
             "ci": [0.028, 0.034], "baseline": 0.03, "limit": None, "direction": "lower", "status": "pass"}
    return build_report(provenance=provenance((0,), 8, 64), config={}, results={}, checks=[check])


def main(argv: list[str]) -> int:
    stale = []
    for name, report in (("report_minimal.json", minimal_report()), ("report_full.json", full_report())):
        path, text = HERE / name, canonical_json(report)
        if "--check" in argv:
            if not path.exists() or path.read_text(encoding="utf-8") != text:
                stale.append(name)
            continue
        from sae_checks.report.io import write_report

        write_report(path, report)
        print(f"wrote {path} ({len(text)} bytes)")
    if stale:
        print(f"out of date: {', '.join(stale)}; rerun: python {Path(__file__).name}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
