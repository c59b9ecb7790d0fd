"""Halve and retry on CUDA out-of-memory: the one scheme the engine, the cloze tasks and the causal sweep use.

A job takes a size (sequences, rows or prompts per pass) and either succeeds or raises
``torch.cuda.OutOfMemoryError``; :func:`halving` then frees the cached blocks, halves the size and runs the
job again, until it succeeds or fails at size 1 (the error is raised: nothing smaller can be tried). The
job must leave no partial result behind when it fails: callers merge its output only on success.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Generic, NamedTuple, TypeVar

import torch

log = logging.getLogger("sae_checks")
T = TypeVar("T")


class Retried(NamedTuple, Generic[T]):
    """What :func:`halving` returns: the job's value, the size it succeeded at, whether it was halved."""

    value: T
    size: int  # the size the successful attempt ran at
    halved: bool  # True when at least one attempt ran out of memory


def halving(job: Callable[[int], T], size: int, what: str) -> Retried[T]:
    """``job(size)``, and on ``torch.cuda.OutOfMemoryError`` again at ``max(1, size // 2)`` (the cache
    emptied first, a warning naming ``what`` logged), until it succeeds; at size 1 the error propagates."""
    if size < 1:
        raise ValueError(f"size={size!r}: must be >= 1")
    halved = False
    while True:
        try:
            return Retried(job(size), size, halved)
        except torch.cuda.OutOfMemoryError:
            if size == 1:
                raise
            torch.cuda.empty_cache()
            size = max(1, size // 2)
            halved = True
            log.warning("sae-checks: CUDA out of memory in %s; batch size halved to %d", what, size)
