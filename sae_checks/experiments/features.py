"""Feature helpfulness on a cloze task, and the causal check of the top features
(docs/definitions.md#feature-helpfulness, docs/definitions.md#causal-check).

Definition (used exactly): per layer, per feature k, over the prompts where k is active (f_k ≠ 0) at
any of the last 32 prompt positions (``metrics.cloze.window_mask``; BOS left out unless it is
spliced), ``mean_delta_logp`` (delta_logp = logp_spliced − logp_clean of the answer's first token)
and ``score = #(delta_logp > 0) − #(delta_logp < 0)``. The sums come from the cloze runner's passes
(``metrics.cloze.feature_sums``); this module turns them into the report and runs the causal check.

Causal check: for the top features by each measure, the reconstruction is decoded with that one
feature zeroed (``sae.decode(f with f_k = 0)``, i.e. x̂ − f_k·W_dec[k] for linear decoders, and
correct for any architecture), spliced instead of the full x̂, and ``causal_delta_logp`` is the mean
over the prompts where k is active of ``logp_ablated − logp_spliced``: negative means removing the
feature hurts the answer, i.e. the feature helps it causally. Reported beside the correlational numbers.
The sweep that runs it: ``experiments.causal``.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from sae_checks.aggregate import clean_float
from sae_checks.metrics.cloze import FEATURE_WINDOW, FeatureSums, feature_stats

RANKINGS = ("top", "bottom", "top_by_score", "bottom_by_score")


def neuronpedia_url(neuronpedia_id: str | None, index: int) -> str | None:
    """``https://www.neuronpedia.org/<model>/<layer>-<set>/<index>`` from an id like
    ``gpt2-small/0-res-jb`` (sae_lens' pretrained directory); None when the SAE has no id."""
    if not neuronpedia_id:
        return None
    return f"https://www.neuronpedia.org/{neuronpedia_id.strip('/')}/{index}"


def rank_features(sums: FeatureSums, *, min_count: int, n_top: int) -> dict[str, list[int]]:
    """Feature indices for each ranking in ``RANKINGS`` among features active on >= ``min_count``
    prompts: by mean_delta_logp (top = highest) and by score; ties go to the lower index."""
    mean, score = feature_stats(sums)
    eligible = torch.nonzero(sums.n_active >= max(min_count, 1)).flatten()
    out: dict[str, list[int]] = {}
    for name, values, descending in (
        ("top", mean, True), ("bottom", mean, False),
        ("top_by_score", score, True), ("bottom_by_score", score, False),
    ):
        v = values[eligible]
        order = torch.sort(v, descending=descending, stable=True).indices[:n_top]
        out[name] = eligible[order].tolist()
    return out


def causal_candidates(ranks: dict[str, list[int]], n_causal: int) -> list[int]:
    """The union of the first ``n_causal`` features of every ranking, sorted."""
    return sorted({k for name in RANKINGS for k in ranks.get(name, [])[:n_causal]})


def histogram(values: Tensor, n_bins: int = 20, *, integer: bool = False) -> dict[str, list[float]]:
    """``{"bins": edges (n+1), "counts": (n)}`` of the finite ``values``; ``integer``: unit-wide bins
    centred on the integers when the range spans at most ``2 * n_bins`` of them."""
    v = values.double().cpu()
    v = v[torch.isfinite(v)]
    if v.numel() == 0:
        return {"bins": [], "counts": []}
    lo, hi = float(v.min()), float(v.max())
    if integer and hi - lo <= 2 * n_bins:
        edges = torch.arange(lo - 0.5, hi + 1.0, 1.0, dtype=torch.float64)
    else:
        if hi == lo:
            lo, hi = lo - 0.5, hi + 0.5
        edges = torch.linspace(lo, hi, n_bins + 1, dtype=torch.float64)
    counts = torch.histogram(v, bins=edges).hist
    return {"bins": edges.tolist(), "counts": [int(c) for c in counts.tolist()]}


def feature_report(
    sums: FeatureSums, *, task: str, n_prompts: int, neuronpedia_id: str | None, min_count: int,
    ranks: dict[str, list[int]], causal: dict[int, tuple[float, int]] | None, n_bins: int = 20,
) -> dict[str, Any]:
    """The JSON-ready ``results.features[layer]`` section for one layer.

    Keys: ``task, n_prompts, window, min_count, n_features, n_active, n_eligible``, ``hist`` (bins and
    counts of ``mean_delta_logp`` and ``score`` over features active on >= ``min_count`` prompts), and
    one list per ranking (``top``/``bottom`` by mean_delta_logp, ``top_by_score``/``bottom_by_score``)
    of ``{index, count, mean_delta_logp, score, n_pos, n_neg, url, causal_delta_logp, causal_n}``
    (``causal_*`` null when the feature was not ablated).
    """
    mean, score = feature_stats(sums)
    eligible = sums.n_active >= max(min_count, 1)

    def entry(k: int) -> dict[str, Any]:
        c = (causal or {}).get(k)
        return {
            "index": k,
            "count": int(sums.n_active[k]),
            "mean_delta_logp": clean_float(float(mean[k])),
            "score": int(score[k]),
            "n_pos": int(sums.n_pos[k]),
            "n_neg": int(sums.n_neg[k]),
            "url": neuronpedia_url(neuronpedia_id, k),
            "causal_delta_logp": None if c is None else clean_float(c[0]),
            "causal_n": None if c is None else c[1],
        }

    out: dict[str, Any] = {
        "task": task,
        "n_prompts": n_prompts,
        "window": FEATURE_WINDOW,
        "min_count": min_count,
        "n_features": int(sums.n_active.numel()),
        "n_active": int((sums.n_active > 0).sum()),
        "n_eligible": int(eligible.sum()),
        "hist": {
            "mean_delta_logp": histogram(mean[eligible], n_bins),
            "score": histogram(score[eligible], n_bins, integer=True),
        },
    }
    for name in RANKINGS:
        out[name] = [entry(k) for k in ranks[name]]
    return out
