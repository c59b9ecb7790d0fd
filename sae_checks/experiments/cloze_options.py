"""How one cloze task runs (:class:`ClozeOptions`): a frozen dataclass of its own, so the runner
(``experiments.cloze``) and the report builder (``experiments.cloze_report``) both read it without
importing each other."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sae_checks.engine.kernel import Dtype


@dataclass(frozen=True, kw_only=True)
class ClozeOptions:
    """How :func:`run_cloze` runs one task (one field, one comment); ``experiments.tasks`` maps a RunConfig
    onto it."""

    task: str  # the task's name ("lambada", "cbt"): results.cloze key, progress lines
    batch_size: int = 16  # rows (prompt + continuation) per clean / splice pass; prompts per causal batch
    chunk_tokens: int | None = None  # tokens per chunk of the unembedding and of the SAE's features; None =
    # from a 256 MB budget (engine.chunks)
    splice_bos: bool = False  # also replace the BOS activation by its reconstruction
    features: bool = True  # feature-helpfulness sums, rankings and the causal check
    n_causal: int = 10  # causal check: ablate the first n features of each ranking (0 = off)
    causal_max_prompts: int = 64  # ... each over at most this many of the prompts where it is active
    min_count: int = 5  # a feature is ranked when active on at least this many prompts
    n_top: int = 10  # features per ranking
    n_bootstrap: int = 1000  # bootstrap resamples over prompts for each CI (0 = no CI)
    ci_level: float = 0.95  # confidence level of the CIs
    seed: int = 0  # bootstrap seed
    fast_attention: bool = True  # the engine's fused attention in every pass (engine.attention)
    dtype: Dtype = "float32"  # "bfloat16": every pass under bfloat16 autocast, as the engine's (engine.kernel)
    buckets: Mapping[Any, Sequence[tuple[int, int]]] | None = None  # SAE name -> position buckets of
    # by_bucket; None (or a name missing) = inside / beyond the SAE's training context
    cache_bytes: int | None = None  # the clean activations kept from the first sweep for the causal one may
    # take this much (CPU); None = a quarter of the free RAM; too small = a clean pass per causal batch
