"""The error-propagation matrix: how splicing an upstream SAE moves a downstream SAE's metrics.

One set of sums (:class:`Propagation`), filled one of two ways:

- inside the engine's batch loop (``engine.run``), when every SAE of the run is loaded at once: each
  upstream SAE's splice pass records the later hooks in the same pass, and the downstream SAEs encode
  them there;
- part by part (:class:`PartPropagation`), when the run's SAEs are loaded one part at a time
  (``engine.parts``): the spliced input of each upstream SAE over the window's positions is kept, and the
  part holding a downstream SAE re-runs the splice over those positions only. The model is causal, so the
  activations at positions ``[a, b)`` depend only on the tokens and the spliced input before ``b``: the
  cells equal the one-pass run's up to float32 summation order (tests/test_parts.py).

Definitions: docs/definitions.md#propagation.
"""

from __future__ import annotations

import functools
from collections.abc import Collection, Mapping, Sequence
from typing import Any

import torch
from torch import Tensor

from sae_checks.aggregate import clean_float
from sae_checks.config import RunConfig
from sae_checks.engine.chunks import sae_terms
from sae_checks.engine.hooks import keep_positions, start_hooks
from sae_checks.engine.kernel import clean_pass, pass_context, splice_pass, unspliced
from sae_checks.engine.retry import halving
from sae_checks.metrics import registry
from sae_checks.names import hook_site, propagation_pairs


class Propagation:
    """Sums for the error-propagation matrix over the position window (upstream i, downstream j).

    Its metrics are the registry's ``propagation`` family, each the ``bucket`` metric of the same name
    (read when the run starts): the downstream SAE's per-token sums over the window with the upstream
    SAE spliced in (``up``) and clean (``clean``), the value ``compute(up) / compute(clean) − 1``."""

    def __init__(self, names: Sequence[str], layers: Sequence[int], hooks: Sequence[str]) -> None:
        self.names = list(names)
        self.layers = list(layers)
        self.hooks = list(hooks)
        self.metrics = [(m.name, registry.get("bucket", m.name)) for m in registry.metrics("propagation")]
        self.tok_sums = registry.sums_of(base for _, base in self.metrics if base is not None)
        width = len(self.tok_sums) + 1  # the sums, then the token count
        n = len(names)
        self.clean = torch.zeros(n, width, dtype=torch.float64)  # (j, sum + count)
        self.up = torch.zeros(n, n, width, dtype=torch.float64)  # (i, j, sum + count)

    def sums(self, x: Tensor, sae: Any, mask: Tensor, chunk: int) -> Tensor:
        """Σ over masked tokens of each sum and the count, for activations x (B, W, d)."""
        _, t = sae_terms(sae, x, chunk, sums=self.tok_sums, mask=mask)
        m = mask.double()
        return torch.stack([*((t[s.name].double() * m).sum() for s in self.tok_sums), m.sum()]).cpu()

    def merge(self, other: Propagation) -> None:
        self.clean += other.clean
        self.up += other.up

    def _value(self, compute: Any, sums: Tensor) -> Tensor:
        """A metric's value from one cell's sums (sum + count)."""
        return compute({**{s.name: sums[k] for k, s in enumerate(self.tok_sums)}, registry.N_TOK: sums[-1]})

    def to_json(self, window: tuple[int, int]) -> dict[str, Any]:
        """matrix[i][j] = metric_with_upstream_i / metric_clean_j − 1 when SAE j's hook comes after SAE i's,
        else None; rows and columns follow ``saes`` (names), ``layers`` holds their layers."""
        out: dict[str, Any] = {"saes": self.names, "layers": self.layers, "hooks": self.hooks,
                               "window": list(window)}
        for name, base in self.metrics:
            assert base is not None and base.compute is not None, name
            rows = []
            for i in range(len(self.names)):
                row: list[float | None] = []
                for j in range(len(self.names)):
                    if self.up[i, j, -1] == 0 or self.clean[j, -1] == 0:
                        row.append(None)
                        continue
                    up = self._value(base.compute, self.up[i, j])
                    clean = self._value(base.compute, self.clean[j])
                    row.append(clean_float((up / clean - 1).item()))
                rows.append(row)
            out[name] = rows
        return out


class PartPropagation:
    """The propagation matrix of a run whose SAEs are loaded one part at a time (``engine.parts``).

    ``every``: name -> (layer, hook) of every SAE the matrix covers (the run's own and any downstream-only
    ones), in forward order; ``own``: the upstream SAEs whose rows this run fills. Call :meth:`visit` with
    each part's loaded SAEs, in forward order; then :meth:`to_json`.

    A visit runs the window's tokens ``[0, b)`` of every batch through a clean pass (stopped after the
    part's last hook), keeps each own SAE's spliced input x̂ there (restoring the unspliced positions) for
    later parts, adds the clean window sums of the part's downstream SAEs, and re-runs the splice of every
    upstream SAE that has a downstream SAE in the part from its kept input, recording those hooks."""

    def __init__(self, every: Mapping[str, tuple[int, str]], own: Collection[str], tokens: Tensor,
                 config: RunConfig, *, device: str, specials: Tensor, batch_size: int, chunk: int) -> None:
        self.hooks = {n: hook for n, (_, hook) in every.items()}
        self.sums = Propagation(list(every), [layer for layer, _ in every.values()], list(self.hooks.values()))
        self.index = {n: i for i, n in enumerate(every)}
        self.pairs = {(u, d) for u, d in propagation_pairs(self.hooks) if u in own}
        a, b = config.propagation_window
        self.window = (a, min(b, int(tokens.shape[1])))
        self.tokens = tokens[:, :self.window[1]]
        self.config = config
        self.device = device
        self.specials = specials.to(device)
        self.seen: set[str] = set()
        self.batch_size = batch_size
        self.chunk = chunk
        self.kept: dict[str, Tensor] = {}  # upstream -> (n_seqs, b, d_in) spliced input, on the CPU

    def _layer_after(self, hooks: Sequence[str], n_layers: int) -> int:
        """The block a pass may stop before once ``hooks`` are recorded."""
        sites = [hook_site(h) for h in hooks]
        return min(n_layers, max((s.layer + 1 for s in sites if s is not None), default=n_layers))

    def visit(self, model: Any, part: Mapping[str, Any]) -> None:
        """Fill every cell whose downstream SAE is in ``part`` (name -> LoadedSAE, in forward order) and keep
        the spliced input of the part's upstream SAEs that have a downstream SAE."""
        hooks = self.hooks
        keep = [u for u in part if any(p[0] == u for p in self.pairs)]
        downs = [d for d in part if any(p[1] == d for p in self.pairs)]
        ups = [u for u in self.index if any((u, d) in self.pairs for d in downs)]
        self.seen |= set(part)
        if not keep and not downs:
            return
        n_layers = int(model.cfg.n_layers)
        cached = sorted({hooks[n] for n in [*keep, *downs]} | set(start_hooks([hooks[u] for u in ups], n_layers)))
        stop = self._layer_after(cached, n_layers)
        n, b = self.tokens.shape
        device = self.device
        for u in keep:
            self.kept.setdefault(u, torch.empty(n, b, part[u].d_in, dtype=torch.float32))
        a = self.window[0]

        def job(size: int, start: int) -> tuple[Tensor, Tensor]:
            toks = self.tokens[start:start + size].to(device)
            special = torch.isin(toks, self.specials)
            mask = (~special if self.config.exclude_special else torch.ones_like(special))[:, a:]
            clean, up = torch.zeros_like(self.sums.clean), torch.zeros_like(self.sums.up)
            _, acts = clean_pass(model, toks, cached, stop=stop)
            unchanged = unspliced(toks, self.specials, self.config.splice_bos)
            for u in keep:
                x = acts[hooks[u]]
                x_hat, _ = sae_terms(part[u].sae, x, self.chunk, sums=())
                self.kept[u][start:start + size] = keep_positions(x, x_hat, unchanged).float().cpu()
            for d in downs:
                clean[self.index[d]] += self.sums.sums(acts[hooks[d]][:, a:], part[d].sae, mask, self.chunk)
            for u in ups:
                targets = [d for d in downs if (u, d) in self.pairs]
                new = self.kept[u][start:start + size].to(device)
                want = sorted({hooks[d] for d in targets})
                _, captured = splice_pass(model, hooks[u], {**acts, hooks[u]: new}, new, toks, capture_hooks=want,
                                          stop=self._layer_after(want, n_layers))
                for d in targets:
                    up[self.index[u], self.index[d]] += self.sums.sums(captured[hooks[d]][:, a:], part[d].sae, mask,
                                                                       self.chunk)
            return clean, up

        with pass_context(model, dtype=self.config.dtype, fast=self.config.fast_attention):
            start = 0
            while start < n:
                done = halving(functools.partial(job, start=start), min(self.batch_size, n - start),
                               "the propagation matrix")
                self.batch_size = done.size
                self.sums.clean += done.value[0]
                self.sums.up += done.value[1]
                start += done.size
        for u in [u for u in self.kept if all(d in self.seen for v, d in self.pairs if v == u)]:
            del self.kept[u]  # every cell of this row is filled: its input is no longer needed

    def to_json(self) -> dict[str, Any]:
        """The matrix, as :meth:`Propagation.to_json` (cells of pairs never visited stay None)."""
        return self.sums.to_json(self.config.propagation_window)
