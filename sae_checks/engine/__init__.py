"""The engine: the only part of sae-checks that touches the model (forward passes, hooks, splices)."""
