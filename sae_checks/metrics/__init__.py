"""Metrics: the registry that declares every reported metric (``registry``: the per-token sums each needs
and how its value is computed from them) and the pure functions behind them: tensors in, per-token
tensors (or sums) out; no model, no I/O, no ``.item()``."""
