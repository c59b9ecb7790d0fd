"""Training the zoo's ReLU SAEs on residual-stream activations, and measuring them per position.

The SAE is trained in plain torch (a few hundred Adam steps on activations held in memory), then its
weights are copied into a ``sae_lens`` ``StandardSAE``, whose forward pass is the same function:
``f = relu((x - b_dec) @ W_enc + b_enc)``, ``x_hat = f @ W_dec + b_dec``.

Training works on ``x / s`` with ``s = sqrt(E ||x - mean(x)||^2)`` (so the loss is an FVU and one
sparsity coefficient fits every layer); the scale is folded back into the weights before saving,
which leaves every feature activation unchanged.
Loss: ``||x_hat - x||^2 + l1_coeff * sum_k f_k ||W_dec[k]||`` (Anthropic, April 2024 update).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any, NamedTuple

import torch

from sae_checks.engine.chunks import token_stats
from sae_checks.engine.hooks import keep_positions
from sae_checks.engine.kernel import clean_pass, pass_context, specials_of, splice_pass, unspliced


@dataclass(frozen=True, kw_only=True)
class SAETraining:
    d_sae: int = 512  # 4x d_model
    steps: int = 600  # Adam steps
    batch_size: int = 2048  # activation vectors per step
    lr: float = 3e-3  # Adam learning rate, linear decay to 0 over the last 20% of steps
    l1_coeff: float = 0.12  # sparsity coefficient on the normalized scale (L0 in the tens)
    l1_warmup: float = 0.1  # share of steps over which l1_coeff ramps up from 0
    seed: int = 0


class SAEWeights(NamedTuple):
    W_enc: torch.Tensor  # (d_in, d_sae)
    b_enc: torch.Tensor  # (d_sae,)
    W_dec: torch.Tensor  # (d_sae, d_in)
    b_dec: torch.Tensor  # (d_in,)


def train_sae(acts: torch.Tensor, cfg: SAETraining, *, label: str = "") -> SAEWeights:
    """Train a ReLU SAE on ``acts`` (N, d_in) and return its weights in the input's own scale."""
    gen = torch.Generator().manual_seed(cfg.seed)
    n, d_in = acts.shape
    mean = acts.mean(0)
    scale = (acts - mean).pow(2).sum(-1).mean().sqrt()  # sqrt(E||x - mean||^2)
    x_all = acts / scale

    w_dec = torch.randn(cfg.d_sae, d_in, generator=gen)
    w_dec = 0.1 * w_dec / w_dec.norm(dim=-1, keepdim=True)
    W_dec = torch.nn.Parameter(w_dec)
    W_enc = torch.nn.Parameter(w_dec.t().clone())
    b_enc = torch.nn.Parameter(torch.zeros(cfg.d_sae))
    b_dec = torch.nn.Parameter((mean / scale).clone())
    params = [W_enc, b_enc, W_dec, b_dec]
    opt = torch.optim.Adam(params, lr=cfg.lr, betas=(0.9, 0.999))
    decay_from = int(0.8 * cfg.steps)
    t0 = time.time()
    for step in range(cfg.steps):
        lr = cfg.lr * min(1.0, (cfg.steps - step) / max(1, cfg.steps - decay_from))
        for g in opt.param_groups:
            g["lr"] = lr
        l1 = cfg.l1_coeff * min(1.0, (step + 1) / max(1, cfg.l1_warmup * cfg.steps))
        x = x_all[torch.randint(0, n, (cfg.batch_size,), generator=gen)]  # (B, d_in)
        f = torch.relu((x - b_dec) @ W_enc + b_enc)  # (B, d_sae)
        x_hat = f @ W_dec + b_dec
        mse = (x_hat - x).pow(2).sum(-1).mean()
        sparsity = (f * W_dec.norm(dim=-1)).sum(-1).mean()
        loss = mse + l1 * sparsity
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
    with torch.no_grad():
        x = x_all[torch.randint(0, n, (8192,), generator=gen)]
        f = torch.relu((x - b_dec) @ W_enc + b_enc)
        fvu = ((f @ W_dec + b_dec - x).pow(2).sum() / (x - x.mean(0)).pow(2).sum()).item()
        l0 = (f != 0).float().sum(-1).mean().item()
        dead = int((f.sum(0) == 0).sum().item())
    print(
        f"  sae {label}: train fvu {fvu:.3f} l0 {l0:.1f} dead(8k) {dead}/{cfg.d_sae} ({time.time() - t0:.0f}s)",
        flush=True,
    )
    # Fold the scale back: pre = (x/s - b) W + c = (x - s b)(W / s) + c; x_hat = s (f W_dec + b).
    with torch.no_grad():
        return SAEWeights(
            W_enc=(W_enc / scale).contiguous(),
            b_enc=b_enc.detach().clone(),
            W_dec=(W_dec * scale).contiguous(),
            b_dec=(b_dec * scale).contiguous(),
        )


def to_standard_sae(w: SAEWeights, *, hook_name: str, context_size: int, extra: dict[str, Any]) -> Any:
    """A ``sae_lens`` ``StandardSAE`` holding ``w``, with the metadata sae-checks reads."""
    from sae_lens import StandardSAE, StandardSAEConfig
    from sae_lens.saes.sae import SAEMetadata

    d_in, d_sae = w.W_enc.shape
    meta = SAEMetadata(
        hook_name=hook_name,
        hook_head_index=None,
        context_size=context_size,
        model_name="sae-checks-zoo",
        prepend_bos=True,
        dataset_path="sae-checks-zoo:stdlib-docstrings",
        **extra,
    )
    sae = StandardSAE(StandardSAEConfig(d_in=d_in, d_sae=d_sae, metadata=meta))
    with torch.no_grad():
        sae.W_enc.copy_(w.W_enc)
        sae.b_enc.copy_(w.b_enc)
        sae.W_dec.copy_(w.W_dec)
        sae.b_dec.copy_(w.b_dec)
    return sae


class BucketStats(NamedTuple):
    l0: float  # mean #(f != 0) over tokens in the bucket
    ev: float  # 1 - sum (x - x_hat)^2 / sum (x - mean_bucket(x))^2, ratio of sums (docs/definitions.md)
    delta_ce: float  # mean CE with the SAE spliced (all positions but the special tokens) minus clean CE, same predictions


def _ce(model: Any, resid: torch.Tensor, toks: torch.Tensor) -> torch.Tensor:
    """Next-token CE (B, T-1) from final residuals (B, T, d_model) (``engine.chunks.token_stats``)."""
    B, T = toks.shape
    got = token_stats(model, resid[:, :-1].reshape(B * (T - 1), -1), toks[:, 1:].reshape(-1), 4096)
    return -got.logp.view(B, T - 1)


def measure(
    model: Any,
    saes: dict[int, Any],
    tokens: torch.Tensor,
    buckets: list[tuple[int, int]],
    batch_size: int = 16,
) -> dict[int, list[BucketStats]]:
    """Per layer and position bucket ``[a, b)``: L0, explained variance, delta-CE (BOS excluded).

    ``saes`` maps layer -> SAE on ``blocks.{layer}.hook_resid_pre``. delta-CE at position t is the
    prediction made at t (of token t+1); the passes are the engine's (``sae_checks.engine.kernel``): the
    splice starts at layer L from the cached residual and leaves the special tokens (BOS) clean.
    """
    layers = sorted(saes)
    T = tokens.shape[1]
    # Running sums per layer and position.
    sq_err = {L: torch.zeros(T, dtype=torch.float64) for L in layers}
    x_sum = {L: torch.zeros(T, model.cfg.d_model, dtype=torch.float64) for L in layers}
    x_sq = {L: torch.zeros(T, dtype=torch.float64) for L in layers}
    l0 = {L: torch.zeros(T, dtype=torch.float64) for L in layers}
    dce = {L: torch.zeros(T, dtype=torch.float64) for L in layers}
    count = 0
    names = [f"blocks.{L}.hook_resid_pre" for L in layers]
    specials = specials_of(model)
    with pass_context(model, fast=False):  # TransformerLens' own attention, as when the zoo was built
        for i in range(0, tokens.shape[0], batch_size):
            toks = tokens[i : i + batch_size]
            B = toks.shape[0]
            resid, cache = clean_pass(model, toks, names)
            ce_clean = _ce(model, resid, toks)  # (B, T-1)
            keep = unspliced(toks, specials, False)  # BOS and the other special tokens stay clean
            for L in layers:
                x = cache[f"blocks.{L}.hook_resid_pre"]  # (B, T, d)
                f = saes[L].encode(x)
                x_hat = saes[L].decode(f)
                sq_err[L] += (x - x_hat).pow(2).sum(-1).double().sum(0)
                x_sum[L] += x.double().sum(0)
                x_sq[L] += x.double().pow(2).sum(-1).sum(0)
                l0[L] += (f != 0).double().sum(-1).sum(0)
                spliced, _ = splice_pass(model, f"blocks.{L}.hook_resid_pre", cache, keep_positions(x, x_hat, keep), toks)
                dce[L][: T - 1] += (_ce(model, spliced, toks) - ce_clean).double().sum(0)
            count += B
    out: dict[int, list[BucketStats]] = {}
    for L in layers:
        stats = []
        for a, b in buckets:
            n_tok = count * (b - a)
            var = x_sq[L][a:b].sum() - x_sum[L][a:b].sum(0).pow(2).sum() / n_tok  # sum ||x - mean||^2
            ev = 1.0 - (sq_err[L][a:b].sum() / var).item()
            b_ce = min(b, T - 1)
            stats.append(
                BucketStats(
                    l0=(l0[L][a:b].sum() / n_tok).item(),
                    ev=ev,
                    delta_ce=(dce[L][a:b_ce].sum() / (count * (b_ce - a))).item() if b_ce > a else math.nan,
                )
            )
        out[L] = stats
    return out
