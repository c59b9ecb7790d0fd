"""The causal check of feature helpfulness (docs/definitions.md; the definition: ``experiments.features``).

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
- which prompts a feature is active on comes from the first sweep (:class:`Kept`: the helpfulness window's
  active features of every prompt, as indices), so the rows are known before any pass, and only the
  prompts that have a row are visited (at most ``max_prompts`` per candidate, however many prompts the
  task has);
- their clean activations come from the first sweep too (:class:`Kept`, the prompt positions on the CPU)
  when they fit a memory budget; otherwise each batch of those prompts gets its clean pass again;
- the rows of a batch of prompts run together, as many per pass as the memory budget allows
  (``engine.memory.model_batch_size`` for rows of the longest prompt), halved on CUDA OOM
  (``engine.retry.halving``).

The numbers equal the per-row full passes of the definition up to float32 rounding
(tests/test_causal.py compares them).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from sae_checks.engine import memory
from sae_checks.engine.chunks import sae_terms, spans
from sae_checks.engine.hooks import hook_layer, keep_positions, splice_start
from sae_checks.engine.retry import halving
from sae_checks.experiments.cloze_items import EncodedItems, RowBatch, batches
from sae_checks.experiments.cloze_passes import Passes, progress_iter
from sae_checks.experiments.features import causal_candidates

if TYPE_CHECKING:
    from sae_checks.loading.saes import LoadedSAE

CACHE_SHARE = 4  # the clean activations kept may take 1 / CACHE_SHARE of the free RAM


class Kept:
    """What the causal sweep takes from the first sweep: per SAE name, each prompt's active features over the
    helpfulness window (their indices, int32), and, when given ``hooks`` (they fit a memory budget), each
    prompt's clean activations at those hooks, prompt positions only, (P, d) on the CPU."""

    def __init__(self, names: Sequence[str], n_prompts: int, hooks: Sequence[str] | None = None) -> None:
        self.activity: dict[str, list[Tensor | None]] = {L: [None] * n_prompts for L in names}
        self.acts: dict[str, list[Tensor | None]] | None = (
            {h: [None] * n_prompts for h in hooks} if hooks is not None else None)

    @staticmethod
    def size(model: Any, saes: Sequence[LoadedSAE], hooks: Sequence[str], prompt_lengths: Sequence[int]) -> int:
        """Bytes the activations of ``hooks`` take for prompts of ``prompt_lengths`` tokens (an SAE's hook
        is ``d_in`` wide, a splice start point ``d_model``)."""
        width = {h: int(model.cfg.d_model) for h in hooks}
        width.update({s.hook_name: int(s.d_in or model.cfg.d_model) for s in saes})
        item = torch.empty(0, dtype=model.cfg.dtype).element_size()
        return sum(prompt_lengths) * sum(width[h] for h in hooks) * item

    @staticmethod
    def budget() -> int:
        """Bytes the activations may take by default: 1 / ``CACHE_SHARE`` of the free RAM."""
        return memory.free_memory("cpu") // CACHE_SHARE

    def keep_activity(self, name: str, idx: list[int], active: Tensor) -> None:
        """Store ``active`` (B, d_sae) bool, the window activity of the batch rows (prompts ``idx``)."""
        b, k = active.nonzero(as_tuple=True)
        per_row = torch.bincount(b, minlength=len(idx)).tolist()
        for i, features in zip(idx, k.to(torch.int32).cpu().split(per_row), strict=True):
            self.activity[name][i] = features

    def keep_acts(self, idx: list[int], prompt_len: Tensor, acts: Mapping[str, Tensor]) -> None:
        """Store the prompt positions of the batch's clean ``acts`` (rows = prompts ``idx``)."""
        if self.acts is None:
            return
        lens = prompt_len.tolist()
        for hook, store in self.acts.items():
            a = acts[hook].to("cpu")  # one transfer per batch (the batch itself on a CPU run: clone below)
            for b, i in enumerate(idx):
                store[i] = a[b, :lens[b]].clone()

    def activity_of(self, name: str, cand: Tensor) -> Tensor:
        """(N, C) bool: candidate c active on prompt i, over the helpfulness window."""
        return torch.stack([torch.isin(cand, r.to(cand.dtype)) for r in _stored(self.activity[name], name)])

    def acts_batch(self, idx: list[int], device: Any) -> dict[str, Tensor]:
        """The stored activations of prompts ``idx``, right-padded with zeros: (B, max P, d) per hook."""
        assert self.acts is not None
        return {hook: torch.nn.utils.rnn.pad_sequence(_stored([store[i] for i in idx], hook),
                                                       batch_first=True).to(device)
                for hook, store in self.acts.items()}


def _stored(rows: list[Tensor | None], what: str) -> list[Tensor]:
    """``rows``, every one stored by the first sweep (an AssertionError naming ``what`` otherwise)."""
    present = [r for r in rows if r is not None]
    assert len(present) == len(rows), f"{what}: {len(rows) - len(present)} prompts were not stored by the first sweep"
    return present


@dataclass
class CausalSweep:
    """The causal sweep of one task over ``saes`` (name -> LoadedSAE), after the first sweep."""

    passes: Passes
    saes: Mapping[str, LoadedSAE]
    enc: EncodedItems
    n_causal: int  # ablate the first n features of each ranking
    max_prompts: int  # ... each over at most this many of the prompts where it is active
    batch_size: int  # prompts per batch; rows per pass come from memory
    kept: Kept  # what the first sweep kept: window activity, clean activations when they fit
    sums: dict[str, Tensor] = field(default_factory=dict)  # name -> Σ (logp_ablated − logp_spliced) (C,)
    counts: dict[str, Tensor] = field(default_factory=dict)  # name -> prompts ablated (C,)
    logp_spliced: Mapping[str, Tensor] = field(default_factory=dict)  # name -> the full splice's logp (N,)
    per_pass: int = 1  # rows per pass: from memory, halved on CUDA OOM

    def run(self, ranks: Mapping[str, dict[str, list[int]]], logp_spliced: Mapping[str, Tensor], progress: Any,
            task: str) -> dict[str, dict[int, tuple[float, int]]]:
        """SAE name -> feature -> (causal_delta_logp, number of prompts), from the rankings ``ranks`` and
        the first sweep's ``logp_spliced`` (N,) per SAE (the answer's first token)."""
        cands = {L: torch.tensor(causal_candidates(ranks[L], self.n_causal), dtype=torch.long) for L in self.saes}
        if all(c.numel() == 0 for c in cands.values()):
            return {}
        self.sums = {L: torch.zeros(c.numel(), dtype=torch.float64) for L, c in cands.items()}
        self.counts = {L: torch.zeros(c.numel(), dtype=torch.float64) for L, c in cands.items()}
        self.logp_spliced = logp_spliced
        enc, model = self.enc, self.passes.model
        rows = self.rows(cands)
        needed = sorted(set().union(*(r.any(1).nonzero().flatten().tolist() for r in rows.values())))
        if not needed:
            return self._result(cands)
        self.per_pass = memory.model_batch_size(model, str(model.cfg.device), n_ctx=max(len(enc.prompts[i]) for i in needed))
        for pos in progress_iter(list(batches([len(enc.prompts[i]) for i in needed], self.batch_size)), progress,
                                 f"{task} causal"):
            idx = [needed[p] for p in pos]
            batch = self.passes.batch([enc.prompts[i] for i in idx], [[] for _ in idx])  # the prompts alone
            if self.kept.acts is not None:
                acts = self.kept.acts_batch(idx, model.cfg.device)
            else:
                stop = min(max(hook_layer(h) for h in self.passes.hooks) + 1, model.cfg.n_layers)
                acts = self.passes.clean(batch, stop=stop)[1]
            for L, ls in self.saes.items():
                sub = rows[L][idx]  # (B, C)
                if bool(sub.any()):
                    self._ablate(L, _Job.of(self, ls, cands[L], acts, batch, idx, sub))
        return self._result(cands)

    def rows(self, cands: Mapping[str, Tensor]) -> dict[str, Tensor]:
        """Name -> (N, C) bool: the rows (prompt i, candidate c): each candidate over the first
        ``max_prompts`` prompts where it is active, in the first sweep's order (longest row first)."""
        enc = self.enc
        order = torch.tensor(sorted(range(len(enc.prompts)), key=lambda i: (-len(enc.prompts[i]) - len(enc.answers[i]), i)))
        out = {}
        for L, cand in cands.items():
            active = self.kept.activity_of(L, cand)[order]  # (N, C) in the first sweep's order
            picked = torch.zeros_like(active)
            picked[order] = active & (active.cumsum(0) <= self.max_prompts)
            out[L] = picked
        return out

    def _result(self, cands: Mapping[str, Tensor]) -> dict[str, dict[int, tuple[float, int]]]:
        return {
            L: {int(k): (float(self.sums[L][i] / self.counts[L][i]) if self.counts[L][i] > 0 else float("nan"),
                         int(self.counts[L][i]))
                for i, k in enumerate(cands[L].tolist())}
            for L in self.saes
        }

    def _ablate(self, name: str, job: _Job) -> None:
        """Every row of one SAE on one batch of prompts, ``per_pass`` rows per pass (halved on CUDA OOM,
        ``engine.retry.halving``), into sums and counts."""
        rb, rc = job.rows.nonzero(as_tuple=True)  # (R,), (R,): row = (prompt b, candidate c)
        start = 0
        while start < rb.numel():
            def attempt(size: int, start: int = start) -> Tensor:
                return self._pass(name, job, rb[start:start + size], rc[start:start + size])

            done = halving(attempt, min(self.per_pass, rb.numel() - start), f"the causal sweep of {name}")
            if done.halved:  # the later passes at the halved size too
                self.per_pass = done.size
            c = rc[start:start + done.size].cpu()
            self.sums[name].index_add_(0, c, done.value)
            self.counts[name].index_add_(0, c, torch.ones_like(done.value))
            start += done.size

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
    """What the rows of one SAE on one batch of prompts share (only the prompts that have a row)."""

    ls: LoadedSAE
    cand: Tensor  # (C,) candidate features
    rows: Tensor  # (B, C) bool: the rows (prompt b, candidate c), on the activations' device
    x: Tensor  # (B, T, d) clean activations at the SAE's hook, T = the longest prompt of the batch
    spliced: Tensor  # (B, T, d) the full splice's input: x̂, x at BOS / padding
    f_c: Tensor  # (B, T, C) the candidates' activations
    keep: Tensor  # (B, T) positions left clean
    acts: Mapping[str, Tensor]  # the prompts' clean activations
    batch: RowBatch  # the prompts alone
    idx: list[int]  # (B,) prompt indices

    @classmethod
    def of(cls, sweep: CausalSweep, ls: LoadedSAE, cand: Tensor, acts: Mapping[str, Tensor], batch: RowBatch,
           idx: list[int], rows: Tensor) -> _Job:
        """The prompts of ``batch`` (``idx``) that have a row in ``rows`` (B, C), encoded / decoded once (in
        token chunks), keeping only the candidates' activations."""
        has = rows.any(1).nonzero().flatten()
        sel = has.to(batch.tokens.device)
        batch = RowBatch(*(t[sel] for t in batch))
        acts = {h: a[sel.to(a.device)] for h, a in acts.items()}
        x = acts[ls.hook_name]
        B, T = batch.tokens.shape
        cand = cand.to(x.device)
        fc = torch.zeros(B * T, cand.numel(), dtype=x.dtype, device=x.device)

        def visit(s: slice, f: Tensor) -> None:
            fc[s] = f[:, cand].to(fc.dtype)

        x_hat, _ = sae_terms(ls.sae, x, sweep.passes.chunks.sae, visit)
        keep = sweep.passes.keep(batch)
        return cls(ls, cand, rows[has].to(x.device), x, keep_positions(x, x_hat, keep), fc.view(B, T, -1), keep,
                   acts, batch, [idx[i] for i in has.tolist()])
