"""sae-checks: a publishing gate for sparse autoencoders on language-model activations.

Data flows loading -> engine -> aggregate -> gate -> report; the pytest plugin and the CLI are thin
shells over it. Heavy imports (torch, sae_lens) happen lazily so the pytest plugin loads fast.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"
__all__ = ["evaluate", "run", "__version__"]


def evaluate(*args: Any, **kwargs: Any) -> Any:
    """See :func:`sae_checks.engine.run.evaluate`."""
    from sae_checks.engine.run import evaluate as _evaluate

    return _evaluate(*args, **kwargs)


def run(*args: Any, **kwargs: Any) -> Any:
    """See :func:`sae_checks.api.run`: load model, SAEs and data from a RunConfig, then evaluate."""
    from sae_checks.api import run as _run

    return _run(*args, **kwargs)
