"""Per-prompt cloze values and the JSON-ready ``results.cloze[task]`` section made of them.

The runner (``experiments.cloze``) fills :class:`PromptValues` pass by pass; :func:`cloze_section` turns them
into means with percentile-bootstrap CIs over prompts, the four classes, the position buckets and the
per-prompt lists. A prompt with a non-finite logit or log-prob gets NaN for every value (its means are then
None and their checks fail, never silently dropped); they are counted and the first one is recorded.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from sae_checks.aggregate import bucket_name, clean_float
from sae_checks.metrics.cloze import (
    CLASSES,
    ClozeScores,
    PromptSaeSums,
    bootstrap_mean_ci,
    classify,
    perplexity,
)

if TYPE_CHECKING:
    from sae_checks.experiments.cloze_items import EncodedItems
    from sae_checks.experiments.cloze_options import ClozeOptions
    from sae_checks.loading.saes import LoadedSAE

SCORE_KEYS = ("logp", "acc_first_token", "acc_word", "ce", "cont_logp")  # of every pass, clean or spliced
SAE_KEYS = ("delta_logp", "delta_ce", "mse", "l0", "resid_norm")  # of a splice pass only


def _nan(n: int) -> Tensor:
    return torch.full((n,), float("nan"), dtype=torch.float64)


@dataclass
class PromptValues:
    """Per-prompt values (N,) of one task, clean and per SAE name, and which prompts were non-finite."""

    n: int
    names: Sequence[str]
    clean: dict[str, Tensor] = field(init=False)  # SCORE_KEYS -> (N,)
    per: dict[str, dict[str, Tensor]] = field(init=False)  # name -> SCORE_KEYS + SAE_KEYS -> (N,)
    choice: dict[str, Tensor] = field(default_factory=dict)  # "clean" / name -> acc_choice (N,) (CBT)
    bad_clean: Tensor = field(init=False)  # (N,) bool: non-finite clean pass
    bad: dict[str, Tensor] = field(init=False)  # name -> (N,) bool: non-finite splice pass or SAE terms

    def __post_init__(self) -> None:
        self.clean = {k: _nan(self.n) for k in SCORE_KEYS}
        self.per = {L: {k: _nan(self.n) for k in (*SCORE_KEYS, *SAE_KEYS)} for L in self.names}
        self.bad_clean = torch.zeros(self.n, dtype=torch.bool)
        self.bad = {L: torch.zeros(self.n, dtype=torch.bool) for L in self.names}

    def put_scores(self, name: str | None, idx: list[int], s: ClozeScores) -> None:
        """The scores of the clean pass (``name`` None) or of SAE ``name``'s splice pass for prompts ``idx``."""
        dst = self.clean if name is None else self.per[name]
        at = torch.tensor(idx)
        for key, v in (("logp", s.logp_first), ("acc_first_token", s.correct_first), ("acc_word", s.correct_word),
                       ("ce", s.ce_sum / s.ce_count), ("cont_logp", s.cont_logp)):
            dst[key][at] = v.detach().double().cpu()
        bad = self.bad_clean if name is None else self.bad[name]
        bad[at] |= _nonfinite(s)

    def put_sae(self, name: str, idx: list[int], s: ClozeScores, c: ClozeScores, sums: PromptSaeSums) -> None:
        """SAE ``name``'s delta_logp and delta_ce (splice ``s`` against clean ``c``) and mse, l0, resid_norm."""
        d, at = self.per[name], torch.tensor(idx)
        for key, v in (("delta_logp", s.logp_first - c.logp_first), ("delta_ce", (s.ce_sum - c.ce_sum) / c.ce_count),
                       ("mse", sums.sse / sums.n_tokens), ("l0", sums.l0 / sums.n_tokens),
                       ("resid_norm", sums.resid_norm / sums.n_tokens)):
            d[key][at] = v.detach().double().cpu()
        ok = torch.isfinite(sums.sse) & torch.isfinite(sums.l0) & torch.isfinite(sums.resid_norm)
        self.bad[name][at] |= (~ok).cpu()

    def mask_nonfinite(self) -> None:
        """NaN for every value of a non-finite prompt (deltas also where the clean pass was non-finite)."""
        for v in self.clean.values():
            v[self.bad_clean] = float("nan")
        for L in self.names:
            for k, v in self.per[L].items():
                v[self.bad[L]] = float("nan")
                if k.startswith("delta_"):
                    v[self.bad_clean] = float("nan")
            if self.choice:
                self.choice[L][self.bad[L]] = float("nan")
        if self.choice:
            self.choice["clean"][self.bad_clean] = float("nan")


def _nonfinite(s: ClozeScores) -> Tensor:
    ok = s.finite & torch.isfinite(s.logp_first) & torch.isfinite(s.cont_logp) & torch.isfinite(s.ce_sum)
    return (~ok).cpu()


def cloze_section(values: PromptValues, enc: EncodedItems, saes: Mapping[str, LoadedSAE],
                  buckets: Mapping[str, list[tuple[int, int]]], options: ClozeOptions) -> dict[str, Any]:
    """``results.cloze[task]`` (keys: ``experiments.cloze.run_cloze``) from the masked ``values``."""

    def summary(v: Tensor) -> dict[str, Any]:
        """Mean and bootstrap CI over prompts; None for both when any prompt's value is non-finite."""
        if v.numel() and not bool(torch.isfinite(v).all()):
            return {"mean": None, "ci": [None, None]}
        ci = bootstrap_mean_ci(v, n_bootstrap=options.n_bootstrap, level=options.ci_level, seed=options.seed)
        return {"mean": clean_float(float(v.mean())) if v.numel() else None,
                "ci": [clean_float(float(t)) for t in ci]}

    def ppl(cont_logp: Tensor) -> dict[str, Any]:
        """lm-eval's perplexity exp(−mean cont_logp); its CI maps the mean's bootstrap CI (monotone)."""
        s = summary(cont_logp)
        lo, hi = s["ci"]
        return {"mean": None if s["mean"] is None else clean_float(float(perplexity(cont_logp))),
                "ci": [None if hi is None else clean_float(math.exp(-hi)),
                       None if lo is None else clean_float(math.exp(-lo))]}

    clean, choice = values.clean, values.choice
    has_choice = enc.options is not None
    baseline = {k: summary(clean[k]) for k in ("acc_first_token", "acc_word", "logp", "ce", "cont_logp")}
    baseline["ppl"] = ppl(clean["cont_logp"])
    if has_choice:
        baseline["acc_choice"] = summary(choice["clean"])
    P_all = [len(p) for p in enc.prompts]
    answer_pos = torch.tensor(P_all) - 1  # the answer is predicted at the prompt's last position
    per_sae: dict[str, Any] = {}
    prompts: dict[str, Any] = {}
    for L in values.names:
        d = values.per[L]
        cls = classify(clean["acc_first_token"] > 0, d["acc_first_token"] > 0)
        entry: dict[str, Any] = {k: summary(v) for k, v in d.items()}
        entry["ppl"] = ppl(d["cont_logp"])
        if has_choice:
            entry["acc_choice"] = summary(choice[L])
        entry["classes"] = {name: int((cls == i).sum()) for i, name in enumerate(CLASSES)}
        entry["by_bucket"] = {}
        for a, b in buckets[L]:
            sel = (answer_pos >= a) & (answer_pos < b)
            sub: dict[str, Any] = {"n": int(sel.sum())}
            entry["by_bucket"][bucket_name((a, b))] = sub
            if not sub["n"]:  # no prompt in this bucket: nothing to summarize (absent, not null)
                continue
            for k in ("acc_first_token", "acc_word"):
                sub[k] = summary(d[k][sel])
                sub[f"{k}_clean"] = summary(clean[k][sel])
            if has_choice:
                sub["acc_choice"] = summary(choice[L][sel])
                sub["acc_choice_clean"] = summary(choice["clean"][sel])
            sub["delta_logp"] = summary(d["delta_logp"][sel])
        per_sae[str(L)] = entry
        prompts[str(L)] = {k: [clean_float(v) for v in d[k].tolist()] for k in SAE_KEYS}
        prompts[str(L)]["class"] = [CLASSES[i] for i in cls.tolist()]
    return {
        "task": options.task,
        "n_prompts": values.n,
        "n_truncated": sum(enc.truncated),
        "splice_bos": options.splice_bos,
        "prompt_lengths": P_all,
        "n_nonfinite": {"clean": int(values.bad_clean.sum()), **{str(L): int(values.bad[L].sum()) for L in values.names}},
        "nonfinite": _nonfinite_entries(values, saes, options.task),
        "baseline": baseline,
        "per_sae": per_sae,
        "prompts": prompts,
    }


def _nonfinite_entries(values: PromptValues, saes: Mapping[str, LoadedSAE], task: str) -> list[dict[str, Any]]:
    """``results.nonfinite`` entries, as the engine's: per pass, the first prompt with a non-finite value."""
    out = []
    for name, bad in ((None, values.bad_clean), *values.bad.items()):
        if bad.any():
            out.append({"sae": name, "layer": saes[name].layer if name is not None else None,
                        "where": f"cloze:{task}", "sequence": int(bad.nonzero()[0]), "position": None})
    return out
