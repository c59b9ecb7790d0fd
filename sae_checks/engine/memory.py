"""Batch size from a memory budget (issue 14.4): how many sequences of ``n_ctx`` tokens one pass can hold.

``batch_size=None`` in the RunConfig means "auto": :func:`auto_batch_size` divides a safe share of the
device's free memory (:func:`free_memory`: ``torch.cuda.mem_get_info`` on CUDA, ``MemAvailable`` of
``/proc/meminfo`` or psutil on CPU) by :func:`bytes_per_sequence`, an estimate of what one sequence
costs in the engine's batch loop (after the fixed chunk budgets of ``engine.chunks``), and clamps the
result to ``[1, MAX_BATCH]``. The estimate is
deliberately generous (float32 everywhere, every tensor alive at once); a CUDA out-of-memory error still
halves the batch (``engine.retry.halving``), so a too-large guess costs one retry, never a crash.
"""

from __future__ import annotations

from typing import Any

MAX_BATCH = 64  # more sequences per pass gains little speed and delays the first progress update
SAFETY = 0.5  # share of the free memory the batch may plan to use (the model, allocator slack, the OS)
FLOAT = 4  # bytes per float32
LOGIT_BUDGET = 256 << 20  # bytes of (tokens x vocabulary) float32 work tensors alive at once (engine.chunks)
CPU_FALLBACK = 4 << 30  # when the free RAM cannot be read: assume 4 GiB


def bytes_per_sequence(*, n_ctx: int, d_model: int, n_layers: int, n_heads: int = 12, n_passes: int = 1) -> int:
    """Estimated peak bytes one sequence of ``n_ctx`` tokens costs in a batch (float32). Nothing here scales
    with the vocabulary or the SAE's width: CE, KL and the SAE terms are computed in chunks of tokens
    (``engine.chunks``, a fixed budget, :func:`fixed_bytes`). Per sequence:

    - the activation cache: one (T, d_model) tensor per layer (an upper bound on the cached hooks) plus
      the clean input, x̂ and the spliced activation of the SAE at work;
    - the final residuals kept until the chunked losses: the clean one and ``n_passes`` others (one splice
      pass per SAE, one more each with zero ablation);
    - a transformer block's working memory: (T, 16 d_model) (MLP expansion, attention projections) and
      two (heads, T, T) attention tensors (TransformerLens' scores and pattern, when the fused kernel
      falls back to them).
    """
    for name, v in (("n_ctx", n_ctx), ("d_model", d_model), ("n_layers", n_layers), ("n_heads", n_heads),
                    ("n_passes", n_passes)):
        if v < 1:
            raise ValueError(f"{name}={v!r}: must be >= 1")
    cache = (n_layers + 3) * n_ctx * d_model
    finals = (1 + n_passes) * n_ctx * d_model
    block = 16 * n_ctx * d_model + 2 * n_heads * n_ctx * n_ctx
    return FLOAT * (cache + finals + block)


def fixed_bytes() -> int:
    """What a batch holds whatever its size: the chunks of (tokens, vocabulary) and (tokens, d_sae) tensors."""
    return 2 * LOGIT_BUDGET


def auto_batch_size(free_bytes: int, per_sequence: int, *, safety: float = SAFETY, cap: int = MAX_BATCH,
                    fixed: int = 0) -> int:
    """``floor((safety * free_bytes - fixed) / per_sequence)`` clamped to ``[1, cap]``: never 0 (one sequence
    is always tried; an out-of-memory error then says so)."""
    if per_sequence < 1:
        raise ValueError(f"per_sequence={per_sequence!r}: must be >= 1")
    return max(1, min(cap, (int(safety * max(free_bytes, 0)) - fixed) // per_sequence))


def free_memory(device: str) -> int:
    """Free bytes on ``device``: ``torch.cuda.mem_get_info`` on CUDA; on CPU the available RAM
    (psutil when installed, else ``MemAvailable`` of ``/proc/meminfo``, else ``CPU_FALLBACK``)."""
    import torch

    if device.startswith("cuda"):
        free, _total = torch.cuda.mem_get_info(torch.device(device))
        return int(free)
    try:
        import psutil

        return int(psutil.virtual_memory().available)
    except ImportError:
        pass
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024  # kB
    except (OSError, ValueError, IndexError):
        pass
    return CPU_FALLBACK


def model_batch_size(model: Any, device: str, n_ctx: int | None = None, n_passes: int = 1) -> int:
    """The auto batch size for ``model`` (its ``cfg``: n_ctx, d_model, n_layers, n_heads) on ``device``,
    sequences of ``n_ctx`` tokens (default the model's context), ``n_passes`` final residuals kept per
    sequence (``bytes_per_sequence``)."""
    cfg = model.cfg
    per = bytes_per_sequence(n_ctx=int(n_ctx or cfg.n_ctx), d_model=int(cfg.d_model), n_layers=int(cfg.n_layers),
                             n_heads=int(cfg.n_heads), n_passes=max(1, n_passes))
    return auto_batch_size(free_memory(device), per, fixed=fixed_bytes())
