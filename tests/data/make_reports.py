"""Write the example reports ``report_minimal.json``, ``report_full.json`` and ``report_v1.json``
(deterministic; no torch).

The full report (schema_version 2, keyed by SAE name) looks like a zoo suite run: 4 SAEs on
``hook_resid_pre`` at layers 0-3, a second width at layer 1 (``blocks.1.hook_resid_pre.w1024``: a sweep),
one SAE on ``blocks.2.attn.hook_z`` and one on ``blocks.2.hook_mlp_out``, all trained at context 32 and
evaluated on 64 x 256 tokens, buckets 1-32 (inside) and 32-256 (beyond), propagation between the
resid_pre SAEs, a Lambada cloze, features, and checks with every status. The numbers are made up but
shaped like the post's: inside the training context the SAEs are fine, beyond it L0, FVU and ΔCE blow
up, early layers most; the wider SAE trades L0 for FVU. Plots, html and gate tests reuse them.

``report_v1.json`` is the same run restricted to the four resid_pre SAEs, written in the old
schema_version 1 layout (keyed by layer, cloze ``per_layer``, legacy check ids): upgrading it on read
gives exactly ``v2_of_v1()``, the version 2 report of those four SAEs.

    .venv/bin/python tests/data/make_reports.py          # rewrite the files
    .venv/bin/python tests/data/make_reports.py --check  # exit 1 if a file is out of date
"""

from __future__ import annotations

import copy
import hashlib
import json
import sys
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE.parent.parent))  # this checkout's sae_checks, whatever the venv has installed

from sae_checks.report.io import build_report, canonical_json  # noqa: E402

T = 256  # ctx_len, BOS at position 0
CONTEXT = 32  # the SAEs' training context
BUCKETS = ("1-32", "32-256")
N_SEQS = 64
PROV_BASE = {
    "sae_checks": "0.1.0", "torch": "2.13.0", "transformer_lens": "3.9.0", "sae_lens": "6.54.0",
    "device": "cpu", "dtype": "float32", "git_commit": "3f2a9c1d0b7e4a5f8c6d2e1b0a9f8e7d6c5b4a39",
    "created": "2025-01-01T00:00:00+00:00", "model": "zoo",
}


class Sae(NamedTuple):
    name: str
    layer: int
    hook: str
    d_in: int = 64
    d_sae: int = 512
    fvu_scale: float = 1.0  # relative to a resid_pre SAE of width 512 at this layer
    l0_scale: float = 1.0


RESID = tuple(Sae(f"blocks.{L}.hook_resid_pre", L, f"blocks.{L}.hook_resid_pre") for L in range(4))
SUITE = (
    *RESID,
    Sae("blocks.1.hook_resid_pre.w1024", 1, "blocks.1.hook_resid_pre", d_sae=1024, fvu_scale=0.7, l0_scale=1.6),
    Sae("blocks.2.hook_z", 2, "blocks.2.attn.hook_z", d_in=64, fvu_scale=1.8, l0_scale=0.6),
    Sae("blocks.2.hook_mlp_out", 2, "blocks.2.hook_mlp_out", fvu_scale=2.2, l0_scale=1.2),
)


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def provenance(saes: tuple[Sae, ...], n_seqs: int, ctx_len: int) -> dict[str, Any]:
    entries = [{"name": s.name, "layer": s.layer, "hook": s.hook, "release": "zoo:v2", "id": s.name,
                "sha256": sha(f"zoo:v2/{s.name}"), "context_size": CONTEXT} for s in saes]
    data = {"dataset": "zoo", "split": "train", "revision": None, "n_sequences": n_seqs, "ctx_len": ctx_len, "seed": 0}
    return {**PROV_BASE, "saes": entries, "data": data}


def sae_info(s: Sae) -> dict[str, Any]:
    return {"layer": s.layer, "hook": s.hook, "d_in": s.d_in, "d_sae": s.d_sae, "architecture": "standard",
            "context_size": CONTEXT, "release": "zoo:v2", "id": s.name}


def config(**changes: Any) -> dict[str, Any]:
    values = {"model": "zoo", "saes": "zoo:v2", "data": "zoo", "n_seqs": N_SEQS, "ctx_len": T, "seed": 0,
              "device": "cpu", "tasks": ("lambada",), "n_prompts": 200, "n_bootstrap": 200}
    values.update(changes)
    try:  # the real RunConfig when it imports; the same fields by hand otherwise
        from sae_checks.config import RunConfig

        return RunConfig(**values).validate().to_dict()
    except ImportError:  # pragma: no cover
        return {k: list(v) if isinstance(v, tuple) else v for k, v in values.items()}


def per_position(rng: np.random.Generator, s: Sae) -> dict[str, list[float | None]]:
    layer = s.layer
    pos = np.arange(T, dtype=float)
    beyond = np.clip((pos - CONTEXT + 1) / CONTEXT, 0, None)  # 0 inside, grows past the context
    blow = beyond ** 1.3 * (4.0 - layer) / 4.0  # early layers degrade most beyond the context
    noise = lambda scale: 1 + scale * rng.standard_normal(T)  # noqa: E731
    resid_norm = (20 + 6 * layer) * noise(0.02)
    fvu = s.fvu_scale * (0.03 + 0.02 * layer) * (1 + 3 * blow) * noise(0.05)
    l0 = s.l0_scale * (10 + 5 * layer) * (1 + 8 * blow) * noise(0.05)
    mse = fvu * resid_norm ** 2 / 3
    delta_ce = s.fvu_scale * (0.05 + 0.04 * layer) * (1 + 6 * blow) * noise(0.08)
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


def rng_for(*parts: Any) -> np.random.Generator:
    """A generator seeded by ``parts``: an SAE's numbers do not depend on which other SAEs the suite holds."""
    return np.random.default_rng(int(sha("/".join(map(str, parts)))[:12], 16))


METRICS = ("mse", "fvu", "explained_variance", "l0", "feat_l1", "resid_norm", "cos", "ce_clean", "ce_spliced",
           "delta_ce", "kl")
RATIO_METRICS = ("fvu", "l0", "delta_ce", "kl", "mse")


def suite_report(saes: tuple[Sae, ...]) -> dict[str, Any]:
    """The version 2 report of a run over ``saes`` (propagation between the resid_pre SAEs among them)."""
    per_pos, per_bucket, context_gen = {}, {}, {}
    for s in saes:
        rng = rng_for("sae", s.name)
        per_pos[s.name] = per_position(rng, s)
        per_bucket[s.name] = {}
        for bucket in BUCKETS:
            a, b = map(int, bucket.split("-"))
            est = {m: estimate(per_pos[s.name][m], a, b, rng) for m in METRICS}
            ce_zero = 9.5 + 0.3 * s.layer
            score = (ce_zero - est["ce_spliced"]["mean"]) / (ce_zero - est["ce_clean"]["mean"])
            est["ce_zero"] = {"mean": ce_zero, "ci": [ce_zero - 0.05, ce_zero + 0.05]}
            est["ce_loss_score"] = {"mean": score, "ci": [score - 0.004, score + 0.004]}
            per_bucket[s.name][bucket] = est
        context_gen[s.name] = {}
        for m in RATIO_METRICS:
            inside, beyond = per_bucket[s.name]["1-32"][m]["mean"], per_bucket[s.name]["32-256"][m]["mean"]
            ratio = beyond / inside
            context_gen[s.name][m] = {"inside": "1-32", "beyond": "32-256", "ratio": ratio,
                                      "ci": [ratio * 0.93, ratio * 1.08]}
    chain = [s for s in saes if s in RESID]
    propagation: dict[str, Any] = {"saes": [s.name for s in chain], "layers": [s.layer for s in chain],
                                   "window": [1, 101]}
    for m, scale in (("mse", 0.25), ("l0", 0.15), ("resid_norm", 0.02)):
        propagation[m] = [[scale * (d.layer - u.layer) * (1 + 0.1 * rng_for("prop", m, u.name, d.name).random())
                           if u.layer < d.layer else None for d in chain] for u in chain]
    cloze = {"lambada": lambada(saes)}
    infos = {s.name: sae_info(s) for s in saes}
    by_hook: dict[str, list[str]] = {}
    for s in saes:
        by_hook.setdefault(s.hook, []).append(s.name)
    results = {
        "saes": infos, "sweeps": {h: sorted(n) for h, n in sorted(by_hook.items()) if len(n) >= 2},
        "per_position": per_pos, "per_bucket": per_bucket, "context_generalization": context_gen,
        "propagation": propagation, "cloze": cloze,
        "features": {s.name: feature_lists(rng_for("features", s.name)) for s in saes}, "nonfinite": [],
        "latents": {s.name: latents(rng_for("latents", s.name), 512) for s in saes},
        "buckets": {s.name: list(BUCKETS) for s in saes}, "context_size": {s.name: CONTEXT for s in saes},
    }
    return build_report(provenance=provenance(saes, N_SEQS, T), config=config(), results=results,
                        checks=make_checks(saes, per_bucket, context_gen, cloze, propagation),
                        unused_baseline=["fvu-L4-pos1_32-blocks.4.hook_resid_pre",
                                         "fvu-L4-pos32_256-blocks.4.hook_resid_pre"])


def full_report() -> dict[str, Any]:
    """The suite: 7 SAEs, a sweep at blocks.1.hook_resid_pre."""
    return suite_report(SUITE)


def v2_of_v1() -> dict[str, Any]:
    """The version 2 report of the four resid_pre SAEs as ``report_v1.json`` upgrades to it: what a
    version 1 report cannot know stays out (``results.saes`` holds only the provenance fields; the
    unused baseline ids of layer 4, where the report has no SAE, keep their legacy form)."""
    report = suite_report(RESID)
    known = ("layer", "hook", "context_size", "release", "id")
    report["results"]["saes"] = {n: {k: v for k, v in info.items() if k in known}
                                 for n, info in report["results"]["saes"].items()}
    report["unused_baseline"] = ["fvu/layer=4/bucket=1-32", "fvu/layer=4/bucket=32-256"]
    return report


def lambada(saes: tuple[Sae, ...]) -> dict[str, Any]:
    n = 200
    clean_acc = 0.265

    def acc(p: float) -> dict[str, Any]:
        half = 1.96 * np.sqrt(p * (1 - p) / n)
        return {"mean": p, "ci": [p - half, p + half]}

    per_sae = {}
    for s in saes:
        L = s.layer
        drop = round((0.010, 0.018, 0.041, 0.054)[L] * s.fvu_scale, 4)
        p = clean_acc - drop
        both_right = int(round(n * (p - 0.01)))
        only_spliced = int(round(n * 0.01))
        only_clean = int(round(n * clean_acc)) - both_right
        per_sae[s.name] = {
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
            "per_sae": per_sae}


def latents(rng: np.random.Generator, d_sae: int) -> dict[str, Any]:
    """results.latents[sae]: a log10 firing-density histogram around 10^-1.5 with a few dead latents."""
    edges = [-8 + 0.25 * i for i in range(33)]
    dens = 10 ** rng.normal(-1.5, 0.4, size=d_sae)
    dead = int(rng.integers(0, 6))
    counts, _ = np.histogram(np.log10(dens[dead:]), bins=np.array(edges))
    alive = (d_sae - dead) / d_sae
    return {"n_tokens": N_SEQS * (T - 1), "d_sae": d_sae, "frac_alive": alive, "frac_dead": 1 - alive, "n_dead": dead,
            "freq_over_1_percent": float((dens[dead:] > 0.01).sum() / d_sae),
            "freq_over_10_percent": float((dens[dead:] > 0.1).sum() / d_sae), "max_density": float(dens[dead:].max()),
            "density_histogram": {"log10_edges": edges, "counts": [int(c) for c in counts]},
            "decoder_norm_min": 0.8, "decoder_norm_mean": 1.0, "decoder_norm_max": 1.2,
            "max_decoder_cosine": float(rng.uniform(0.9, 0.99)), "mean_max_decoder_cosine": float(rng.uniform(0.3, 0.5))}


def feature_lists(rng: np.random.Generator) -> dict[str, Any]:
    feats = rng.choice(512, size=10, replace=False)
    rows = [{"feature": int(k), "n_prompts": int(rng.integers(5, 60)),
             "mean_delta_logp": float(rng.normal(0, 0.3)), "score": int(rng.integers(-20, 21))} for k in feats]
    rows.sort(key=lambda r: (-r["score"], r["feature"]))
    return {"top": rows[:5], "bottom": rows[5:][::-1]}


def make_checks(saes: tuple[Sae, ...], per_bucket: dict[str, Any], context_gen: dict[str, Any],
                cloze: dict[str, Any], propagation: dict[str, Any]) -> list[dict[str, Any]]:
    """Checks as the gate writes them (ids of the spec). Statuses: layer 0 beyond-context fvu and
    delta_ce fail (limit), the layer-1 context ratio of l0 warns (severity warn), layer 3 inside fvu
    improved, layer 3 cloze accuracy is new (no baseline); the rest pass."""
    checks = []

    def add(cid: str, metric: str, s: Sae, bucket: str | None, est: dict[str, Any], direction: str, *,
            baseline: float | None, rel_tol: float, limit: float | None = None, status: str = "pass",
            message: str = "") -> None:
        value = est["mean"] if "mean" in est else est["ratio"]
        band = None
        if baseline is not None:
            tol = rel_tol * abs(baseline)
            band = [baseline - tol, baseline + tol]
        checks.append({
            "id": cid, "metric": metric, "sae": s.name, "hook": s.hook, "layer": s.layer, "bucket": bucket,
            "value": value, "ci": est.get("ci"), "baseline": baseline, "limit": limit, "band": band,
            "direction": direction, "status": status, "message": message or None,
        })

    for s in saes:
        L, name = s.layer, s.name
        main = s in RESID
        for bucket in BUCKETS:
            for metric, direction, limit in (("fvu", "lower", 0.5), ("delta_ce", "lower", 1.0),
                                             ("explained_variance", "higher", None)):
                est = per_bucket[name][bucket][metric]
                baseline = est["mean"] * 0.99
                status, message, lim = "pass", "", limit
                if main and L == 0 and bucket == "32-256" and metric in ("fvu", "delta_ce"):
                    lim = round(est["mean"] * 0.6, 3)
                    status = "fail"
                    message = (f"{metric} {est['mean']:.4g} above the limit {lim:g} beyond the SAE context (32): "
                               "the SAE does not generalize past its training context")
                elif main and L == 3 and bucket == "1-32" and metric == "fvu":
                    baseline = est["mean"] * 1.4
                    status, message = "improved", (f"fvu {est['mean']:.4g} better than baseline {baseline:.4g} "
                                                   "beyond the band: update the baseline (--sae-update-baseline)")
                a, b = bucket.split("-")
                add(f"{metric}-L{L}-pos{a}_{b}-{name}", metric, s, bucket, est, direction, baseline=baseline,
                    rel_tol=0.1, limit=lim, status=status, message=message)
        ratio = context_gen[name]["l0"]
        status, message = "pass", ""
        if main and L == 1:
            status, message = "warn", f"l0 grows {ratio['ratio']:.3g}x beyond the context (severity=warn)"
        add(f"context_ratio-l0-L{L}-{name}", "context_ratio.l0", s, None, ratio, "lower",
            baseline=ratio["ratio"], rel_tol=0.25, status=status, message=message)
        acc = cloze["lambada"]["per_sae"][name]["acc_first_token"]
        cid = f"cloze-lambada-acc_first_token-L{L}-{name}"
        if main and L == 3:
            add(cid, "cloze.lambada.acc_first_token", s, None, acc, "higher", baseline=None, rel_tol=0.0,
                status="new", message="no baseline entry: run with --sae-update-baseline to record one")
        else:
            add(cid, "cloze.lambada.acc_first_token", s, None, acc, "higher", baseline=acc["mean"], rel_tol=0.1,
                limit=0.15)
    chain = [s for s in saes if s.name in propagation["saes"]]
    for i, up in enumerate(chain):
        for j, down in enumerate(chain):
            if up.layer < down.layer:
                value = propagation["mse"][i][j]
                add(f"propagation-mse-L{up.layer}-{up.name}-to-L{down.layer}-{down.name}", "propagation.mse",
                    down, None, {"mean": value, "ci": None}, "lower", baseline=value, rel_tol=0.5)
                checks[-1].update(upstream=up.layer, upstream_sae=up.name)
    return checks


def minimal_report() -> dict[str, Any]:
    """The least a valid report holds: one SAE, no results sections, one passing check."""
    s = RESID[0]
    check = {"id": f"fvu-L0-pos1_32-{s.name}", "metric": "fvu", "sae": s.name, "hook": s.hook, "layer": 0,
             "bucket": "1-32", "value": 0.031, "ci": [0.028, 0.034], "baseline": 0.03, "limit": None,
             "direction": "lower", "status": "pass"}
    return build_report(provenance=provenance((s,), 8, 64), config={}, results={}, checks=[check])


# ------------------------------------------------------------------------------ the version 1 layout


def legacy_id(check: dict[str, Any]) -> str:
    """The schema_version 1 id of a check (the gate's old ``check_id``)."""
    metric, layer = check["metric"], check["layer"]
    if metric.startswith("propagation."):
        return f"{metric.replace('.', '/')}/up={check['upstream']}/down={layer}"
    if check.get("bucket"):
        return f"{metric}/layer={layer}/bucket={check['bucket']}"
    return f"{metric.replace('.', '/')}/layer={layer}"


def v1_report() -> dict[str, Any]:
    """``v2_of_v1()`` written in the schema_version 1 layout: keyed by layer, no names, legacy ids."""
    v2 = copy.deepcopy(suite_report(RESID))
    layer_of = {e["name"]: str(e["layer"]) for e in v2["provenance"]["saes"]}
    for e in v2["provenance"]["saes"]:
        del e["name"]
    res = v2["results"]
    del res["saes"], res["sweeps"], res["propagation"]["saes"]
    for key in ("per_position", "per_bucket", "context_generalization", "buckets", "context_size", "features"):
        res[key] = {layer_of[name]: value for name, value in res[key].items()}
    res["cloze"]["lambada"]["per_layer"] = {layer_of[n]: v for n, v in res["cloze"]["lambada"].pop("per_sae").items()}
    for check in v2["checks"]:
        check["id"] = legacy_id(check)
        for key in ("sae", "hook", "upstream_sae"):
            check.pop(key, None)
    v2["checks"].sort(key=lambda c: c["id"])
    v2["unused_baseline"] = ["fvu/layer=4/bucket=1-32", "fvu/layer=4/bucket=32-256"]
    v2["schema_version"] = 1
    assert "blocks.0" not in json.dumps(v2["results"]["per_bucket"]), "v1 is keyed by layer"
    return v2


def main(argv: list[str]) -> int:
    stale = []
    reports = (("report_minimal.json", minimal_report()), ("report_full.json", full_report()),
               ("report_v1.json", v1_report()))
    for name, report in reports:
        path, text = HERE / name, canonical_json(report)
        if "--check" in argv:
            if not path.exists() or path.read_text(encoding="utf-8") != text:
                stale.append(name)
            continue
        if report["schema_version"] == 1:  # write_report validates against the current schema only
            json.loads(text)
            path.write_text(text, encoding="utf-8")
        else:
            from sae_checks.report.io import write_report

            write_report(path, report)
        print(f"wrote {path} ({len(text)} bytes)")
    if stale:
        print(f"out of date: {', '.join(stale)}; rerun: python {Path(__file__).name}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
