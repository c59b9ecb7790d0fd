"""Memory that follows the work: a suite whose SAE weights do not fit the budget runs in parts.

A release of 12 SAEs with 131072 latents at d_in 768 is about 10 GB of float32 weights; one of Gemma
Scope's 1M-latent SAEs alone is 19 GB. ``api.run`` therefore holds at most one *part* of the run's SAEs at
a time: consecutive hook groups in forward order (never splitting the SAEs of one hook, which share their
clean activation), packed while their weights stay within the budget (``RunConfig.sae_memory`` GiB,
default :data:`AUTO_SHARE` of the device's free memory once the model is loaded). A hook group larger than
the budget is a part of its own (it is the least a run can hold). A suite within the budget is one part:
the run is exactly the unsplit one.

What a split run pays and keeps (docs/architecture.md#memory-per-hook-group):

- each part repeats the clean forward pass of every batch (and the cloze tasks' clean passes);
- the error-propagation matrix is filled across parts by ``engine.propagation.PartPropagation``: the
  spliced input of every upstream SAE over the propagation window's positions is kept (n_seqs x window x
  d_in float32: 30 MB per gpt2-small SAE at the default 98 sequences), and each later part re-runs the
  splice on those positions only (the model is causal: the window's activations depend on nothing after
  it), so no two parts' SAEs are ever loaded together.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from sae_checks.engine.memory import FLOAT, free_memory

AUTO_SHARE = 0.25  # share of the device's free memory (after the model) the SAE weights of one part may use
GIB = 1 << 30


def sae_bytes(d_in: int | None, d_sae: int | None) -> int:
    """Estimated float32 bytes of one SAE's parameters: encoder and decoder (2 d_in d_sae), and up to four
    d_sae-sized vectors (encoder bias, JumpReLU threshold, the gated SAE's gate bias, magnitude scale and
    bias) plus the decoder bias. 0 when a width is unknown (such an SAE never forces a split)."""
    if not d_in or not d_sae:
        return 0
    return FLOAT * (2 * d_in * d_sae + 4 * d_sae + d_in)


def budget_bytes(sae_memory: float | None, device: str) -> int:
    """The SAE weight budget in bytes: ``sae_memory`` GiB, or :data:`AUTO_SHARE` of ``device``'s free memory."""
    if sae_memory is not None:
        return int(sae_memory * GIB)
    return int(AUTO_SHARE * free_memory(device))


@dataclass(frozen=True)
class Entry:
    """One SAE as the split sees it."""

    name: str
    hook: str
    nbytes: int


def split(entries: Sequence[Entry], budget: int) -> list[list[str]]:
    """Names in parts: ``entries`` (in forward order) grouped by consecutive hook, groups packed in order
    while a part's bytes stay within ``budget``; a group over the budget alone. One part when all fit."""
    groups: list[list[Entry]] = []
    for e in entries:
        if groups and groups[-1][0].hook == e.hook:
            groups[-1].append(e)
        else:
            groups.append([e])
    parts: list[list[Entry]] = []
    used = 0
    for group in groups:
        size = sum(e.nbytes for e in group)
        if parts and used + size <= budget:
            parts[-1] += group
            used += size
        else:
            parts.append(list(group))
            used = size
    return [[e.name for e in part] for part in parts]


def describe(parts: Sequence[Sequence[str]], sizes: Mapping[str, int], budget: int) -> dict[str, object]:
    """The provenance entry of a split run: the budget, each part's SAEs and weights (GiB)."""
    return {"budget_gib": round(budget / GIB, 3),
            "parts": [{"saes": list(p), "weights_gib": round(sum(sizes[n] for n in p) / GIB, 3)} for p in parts]}
