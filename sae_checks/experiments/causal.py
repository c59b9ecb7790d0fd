"""The causal check of feature helpfulness (DESIGN.md section 3; the definition: ``experiments.features``).

For each SAE's candidate features (the first ``n_causal`` of every helpfulness ranking), over at most
``max_prompts`` of the prompts where the feature is active (the first ones in the order of the first sweep:
longest row first), the splice decodes ``sae.decode(f with f_k = 0)`` instead of x̂, and
``causal_delta_logp`` is the mean of ``logp_ablated − logp_spliced`` (the answer's first token).

What a row (prompt, feature) costs, and why it is cheap:

- the answer's first token is predicted at the last prompt position P − 1, and attention is causal, so a
  row is its prompt alone (no continuation), the pass stops at the final residual and only position
  P − 1 is unembedded: one vocabulary row per row instead of (T, vocabulary);
- zeroing f_k changes the decoded x̂ only where f_k ≠ 0, and the decoder works position by position, so
  only those positions are encoded and decoded again with f_k = 0 (exactly ``decode(f with f_k = 0)``
  there, x̂ elsewhere: no (T, d_sae) tensor per row);
- the clean activations come from the first sweep (:class:`ActivationCache`, the prompt positions on the
  CPU) when they fit a memory budget; otherwise each batch of prompts gets its clean pass again;
- rows of every (prompt, feature) pair of a batch run together, as many per pass as the memory budget
  allows (``engine.memory.model_batch_size`` for rows of the longest prompt), halved on CUDA OOM.

The numbers equal the per-row full passes of the definition up to float32 rounding
(tests/test_causal.py compares them).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from sae_checks.engine.chunks import sae_terms, spans
from sae_checks.engine.hooks import hook_layer, keep_positions, splice_start
from sae_checks.experiments.cloze_items import EncodedItems, RowBatch, batches
from sae_checks.experiments.cloze_passes import Passes, progress_iter
from sae_checks.experiments.features import causal_candidates
from sae_checks.metrics.cloze import window_mask

if TYPE_CHECKING:
    from sae_checks.loading.saes import LoadedSAE

CACHE_SHARE = 4  # the activation cache may take 1 / CACHE_SHARE of the free RAM


class ActivationCache:
    """Clean activations kept from the first sweep for the causal one: per hook, per prompt, its prompt
    positions (P, d) on the CPU (``None`` until the first sweep stored them)."""

    def __init__(self, hooks: Sequence[str], n_prompts: int) -> None:
        self.acts: dict[str, list[Tensor | None]] = {h: [None] * n_prompts for h in hooks}

    @staticmethod
    def size(model: Any, saes: Sequence[LoadedSAE], hooks: Sequence[str], prompt_lengths: Sequence[int]) -> int:
        """Bytes the cache of ``hooks`` takes for prompts of ``prompt_lengths`` tokens (an SAE's hook is
        ``d_in`` wide, a splice start point ``d_model``)."""
        width = {h: int(model.cfg.d_model) for h in hooks}
        width.update({s.hook_name: int(s.d_in or model.cfg.d_model) for s in saes})
        item = torch.empty(0, dtype=model.cfg.dtype).element_size()
        return sum(prompt_lengths) * sum(width[h] for h in hooks) * item

    @staticmethod
    def budget() -> int:
        """Bytes it may take by default: 1 / ``CACHE_SHARE`` of the free RAM."""
        from sae_checks.engine.memory import free_memory

        return free_memory("cpu") // CACHE_SHARE

    def keep(self, idx: list[int], prompt_len: Tensor, acts: Mapping[str, Tensor]) -> None:
        """Store the prompt positions of rows ``idx`` (one per batch row) of the batch's ``acts``."""
        lens = prompt_len.tolist()
        for hook, store in self.acts.items():
            for b, i in enumerate(idx):
                store[i] = acts[hook][b, :lens[b]].to("cpu", copy=True)

    def batch(self, idx: list[int], device: Any) -> dict[str, Tensor]:
        """The stored activations of prompts ``idx``, right-padded with zeros: (B, max P, d) per hook."""
        out = {}
        for hook, store in self.acts.items():
            rows = [store[i] for i in idx]
            assert all(r is not None for r in rows), f"prompts {idx} of {hook} were not cached"
            out[hook] = torch.nn.utils.rnn.pad_sequence(rows, batch_first=True).to(device)  # type: ignore[arg-type]
        return out


@dataclass
class CausalSweep:
    """The causal sweep of one task over ``saes`` (name -> LoadedSAE), after the first sweep."""

    passes: Passes
    saes: Mapping[str, LoadedSAE]
    enc: EncodedItems
    n_causal: int  # ablate the first n features of each ranking
    max_prompts: int  # ... each over at most this many of the prompts where it is active
    batch_size: int  # prompts per batch (the first sweep's); rows per pass come from memory
    cache: ActivationCache | None = None  # clean activations of the first sweep; None: clean passes again
    sums: dict[str, Tensor] = field(default_factory=dict)  # name -> Σ (logp_ablated − logp_spliced) (C,)
    counts: dict[str, Tensor] = field(default_factory=dict)  # name -> prompts ablated (C,)
    logp_spliced: Mapping[str, Tensor] = field(default_factory=dict)  # name -> the full splice's logp (N,)
    per_pass: int = 1  # rows per pass: from memory, halved on CUDA OOM

    def run(self, ranks: Mapping[str, dict[str, list[int]]], logp_spliced: Mapping[str, Tensor], progress: Any,
            task: str) -> dict[str, dict[int, tuple[float, int]]]:
        """SAE name -> feature -> (causal_delta_logp, number of prompts), from the rankings ``ranks`` and
        the first sweep's ``logp_spliced`` (N,) per SAE (the answer's first token)."""
        from sae_checks.engine.memory import model_batch_size

        cands = {L: torch.tensor(causal_candidates(ranks[L], self.n_causal), dtype=torch.long) for L in self.saes}
        if all(c.numel() == 0 for c in cands.values()):
            return {}
        self.sums = {L: torch.zeros(c.numel(), dtype=torch.float64) for L, c in cands.items()}
        self.counts = {L: torch.zeros(c.numel(), dtype=torch.float64) for L, c in cands.items()}
        self.logp_spliced = logp_spliced
        enc, model = self.enc, self.passes.model
        self.per_pass = model_batch_size(model, str(model.cfg.device), n_ctx=max(len(p) for p in enc.prompts))
        lengths = [len(p) + len(a) for p, a in zip(enc.prompts, enc.answers, strict=True)]  # the first sweep's
        for idx in progress_iter(list(batches(lengths, self.batch_size)), progress, f"{task} causal"):
            batch = self.passes.batch([enc.prompts[i] for i in idx], [[] for _ in idx])  # the prompts alone
            if self.cache is not None:
                acts = self.cache.batch(idx, model.cfg.device)
            else:
                stop = min(max(hook_layer(h) for h in self.passes.hooks) + 1, model.cfg.n_layers)
                acts = self.passes.clean(batch, stop=stop)[1]
            for L, ls in self.saes.items():
                if cands[L].numel():
                    self._ablate(L, _Job.of(self, ls, cands[L], acts, batch, idx))
        return {
            L: {int(k): (float(self.sums[L][i] / self.counts[L][i]) if self.counts[L][i] > 0 else float("nan"),
                         int(self.counts[L][i]))
                for i, k in enumerate(cands[L].tolist())}
            for L in self.saes
        }

    def _ablate(self, name: str, job: _Job) -> None:
        """Every row of one SAE on one batch of prompts, ``per_pass`` rows per pass, into sums and counts."""
        window = window_mask(job.batch.prompt_len, job.x.shape[1], include_bos=self.passes.splice_bos)
        active = ((job.f_c != 0) & window[..., None]).any(1)  # (B, C): metrics.cloze.active_features, candidates
        room = (self.max_prompts - self.counts[name]).clamp(min=0).to(active.device)
        active &= active.cumsum(0) <= room[None]  # each candidate over its first max_prompts prompts
        rb, rc = active.nonzero(as_tuple=True)  # (R,), (R,): row = (prompt b, candidate c)
        start = 0
        while start < rb.numel():
            stop = min(start + self.per_pass, rb.numel())
            try:
                diff = self._pass(name, job, rb[start:stop], rc[start:stop])
            except torch.cuda.OutOfMemoryError:
                if stop - start == 1:
                    raise
                torch.cuda.empty_cache()
                self.per_pass = max(1, (stop - start) // 2)
                continue
            c = rc[start:stop].cpu()
            self.sums[name].index_add_(0, c, diff)
            self.counts[name].index_add_(0, c, torch.ones_like(diff))
            start = stop

    def _pass(self, name: str, job: _Job, b: Tensor, c: Tensor) -> Tensor:
        """logp_ablated − logp_spliced (R,) of the rows (prompt ``b``, candidate ``c``) of one batch."""
        passes = self.passes
        sae = job.ls.sae
        P = job.batch.prompt_len[b]  # (R,)
        T = int(P.max())
        new = job.spliced[b, :T].clone()  # (R, T, d): x̂, x at BOS / padding
        redo = (job.f_c[b, :T, c] != 0) & ~job.keep[b, :T]  # (R, T): where f_k ≠ 0, x̂ changes
        r, t = redo.nonzero(as_tuple=True)
        for s in spans(r.numel(), passes.chunks.sae):  # encode / decode those positions again, f_k = 0
            f = sae.encode(job.x[b[r[s]], t[s]][None].to(sae.dtype))  # (1, n, d_sae)
            f[0, torch.arange(f.shape[1], device=f.device), job.cand[c[r[s]]]] = 0
            new[r[s], t[s]] = sae.decode(f)[0].to(new.dtype)
        hook = job.ls.hook_name
        needed = {hook, splice_start(hook, passes.model.cfg.n_layers)[1]}
        row_acts = {h: a[b, :T] for h, a in job.acts.items() if h in needed}
        resid = passes.forward(hook, row_acts, new, job.batch.tokens[b, :T])  # (R, T, d_model)
        last = resid[torch.arange(b.numel(), device=resid.device), P - 1]  # (R, d_model): predicts the answer
        prompts = [job.idx[i] for i in b.tolist()]
        answer = torch.tensor([self.enc.answers[i][0] for i in prompts], device=last.device)
        return passes.logp(last, answer).double().cpu() - self.logp_spliced[name][prompts].double()


@dataclass
class _Job:
    """What the rows of one SAE on one batch of prompts share."""

    ls: LoadedSAE
    cand: Tensor  # (C,) candidate features
    x: Tensor  # (B, T, d) clean activations at the SAE's hook, T = the longest prompt
    spliced: Tensor  # (B, T, d) the full splice's input: x̂, x at BOS / padding
    f_c: Tensor  # (B, T, C) the candidates' activations
    keep: Tensor  # (B, T) positions left clean
    acts: Mapping[str, Tensor]  # the batch's clean activations
    batch: RowBatch  # the prompts alone
    idx: list[int]  # (B,) prompt indices

    @classmethod
    def of(cls, sweep: CausalSweep, ls: LoadedSAE, cand: Tensor, acts: Mapping[str, Tensor], batch: RowBatch,
           idx: list[int]) -> _Job:
        """Encode / decode the batch once (in token chunks), keeping only the candidates' activations."""
        x = acts[ls.hook_name]
        B, T = batch.tokens.shape
        cand = cand.to(x.device)
        fc = torch.zeros(B * T, cand.numel(), dtype=x.dtype, device=x.device)

        def visit(s: slice, f: Tensor) -> None:
            fc[s] = f[:, cand].to(fc.dtype)

        x_hat, _ = sae_terms(ls.sae, x, sweep.passes.chunks.sae, visit)
        keep = sweep.passes.keep(batch)
        return cls(ls, cand, x, keep_positions(x, x_hat, keep), fc.view(B, T, -1), keep, acts, batch, idx)
