"""Batch size from a memory budget (issue 14.4): how many sequences of ``n_ctx`` tokens one pass can hold.

``batch_size=None`` in the RunConfig means "auto": :func:`auto_batch_size` divides a safe share of the
device's free memory (:func:`free_memory`: ``torch.cuda.mem_get_info`` on CUDA, ``MemAvailable`` of
``/proc/meminfo`` or psutil on CPU) by :func:`bytes_per_sequence`, an estimate of what one sequence
costs in the engine's batch loop, and clamps the result to ``[1, MAX_BATCH]``. The estimate is
deliberately generous (float32 everywhere, every tensor alive at once); a CUDA out-of-memory error still
halves the batch (``engine.run``), so a too-large guess costs one retry, never a crash.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

MAX_BATCH = 64  # more sequences per pass gains little speed and delays the first progress update
SAFETY = 0.5  # share of the free memory the batch may plan to use (the model, allocator slack, the OS)
FLOAT = 4  # bytes per float32
CPU_FALLBACK = 4 << 30  # when the free RAM cannot be read: assume 4 GiB


def bytes_per_sequence(*, n_ctx: int, d_vocab: int, d_model: int, n_layers: int, d_sae: int) -> int:
    """Estimated peak bytes one sequence of ``n_ctx`` tokens costs in a batch (float32):

    - logits: 4 tensors of (T, V): the clean logits kept for the comparison, the spliced (or zero-ablated)
      logits, and two log-softmax / KL temporaries;
    - the activation cache: one (T, d_model) tensor per layer (an upper bound on the cached hooks) plus
      the clean input, x̂ and the spliced activation of the SAE at work;
    - a transformer block's working memory: (T, 16 d_model) (MLP expansion, attention projections);
    - the SAE's features: f and its pre-activation, 2 tensors of (T, d_sae).
    """
    for name, v in (("n_ctx", n_ctx), ("d_vocab", d_vocab), ("d_model", d_model), ("n_layers", n_layers),
                    ("d_sae", d_sae)):
        if v < 1:
            raise ValueError(f"{name}={v!r}: must be >= 1")
    logits = 4 * n_ctx * d_vocab
    cache = (n_layers + 3) * n_ctx * d_model
    block = 16 * n_ctx * d_model
    features = 2 * n_ctx * d_sae
    return FLOAT * (logits + cache + block + features)


def auto_batch_size(free_bytes: int, per_sequence: int, *, safety: float = SAFETY, cap: int = MAX_BATCH) -> int:
    """``floor(safety * free_bytes / per_sequence)`` clamped to ``[1, cap]``: never 0 (one sequence is
    always tried; an out-of-memory error then says so)."""
    if per_sequence < 1:
        raise ValueError(f"per_sequence={per_sequence!r}: must be >= 1")
    return max(1, min(cap, int(safety * max(free_bytes, 0)) // per_sequence))


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


def model_batch_size(model: Any, saes: Iterable[Any], device: str, n_ctx: int | None = None) -> int:
    """The auto batch size for ``model`` (its ``cfg``: n_ctx, d_vocab, d_model, n_layers) with ``saes``
    (LoadedSAE-like objects with ``d_sae``; the widest counts) on ``device``, sequences of ``n_ctx``
    tokens (default the model's context)."""
    cfg = model.cfg
    widest = max((int(getattr(s, "d_sae", 0) or 0) for s in saes), default=0)
    per = bytes_per_sequence(n_ctx=int(n_ctx or cfg.n_ctx), d_vocab=int(cfg.d_vocab), d_model=int(cfg.d_model),
                             n_layers=int(cfg.n_layers), d_sae=max(widest, 1))
    return auto_batch_size(free_memory(device), per)
