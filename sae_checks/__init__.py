"""sae-checks: a publishing gate for sparse autoencoders on language-model activations.

Data flows loading -> engine -> aggregate -> gate -> report; the pytest plugin and the CLI are thin
shells over it. The Python API (``run``, ``judge``, ``diff``, ``RunConfig``, ``Results``, ``build_report``,
``evaluate``, ``load``, ``register_metric``) is imported lazily on first use (module ``__getattr__``), so ``import sae_checks``
and the pytest plugin load fast and torch is imported only when a run needs it.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from sae_checks.version import __version__

# public name -> module that defines it
_LAZY = {
    "run": "sae_checks.notebook", "judge": "sae_checks.notebook", "diff": "sae_checks.notebook",
    "RunOptions": "sae_checks.notebook", "RunConfig": "sae_checks.config", "Results": "sae_checks.results",
    "Estimate": "sae_checks.results", "build_report": "sae_checks.report.io", "evaluate": "sae_checks.engine.run",
    "load": "sae_checks.api", "Progress": "sae_checks.progress",
    "register_metric": "sae_checks.metrics.registry", "unregister_metric": "sae_checks.metrics.registry",
}
__all__ = ["Estimate", "Progress", "Results", "RunConfig", "RunOptions", "__version__", "build_report", "diff",
           "evaluate", "judge", "load", "register_metric", "run", "unregister_metric"]  # = _LAZY's names (a test checks)

if TYPE_CHECKING:
    from sae_checks.api import load
    from sae_checks.config import RunConfig
    from sae_checks.engine.run import evaluate
    from sae_checks.metrics.registry import register_metric, unregister_metric
    from sae_checks.notebook import RunOptions, diff, judge, run
    from sae_checks.progress import Progress
    from sae_checks.report.io import build_report
    from sae_checks.results import Estimate, Results


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(import_module(_LAZY[name]), name)
        globals()[name] = value  # later lookups skip this function
        return value
    raise AttributeError(f"module 'sae_checks' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY])
