"""Pure metric functions: tensors in, per-token tensors (or sums) out; no model, no I/O, no ``.item()``."""
