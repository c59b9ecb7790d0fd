"""pytest plugin for the sae-checks gate (options, fixtures, parametrization, report hooks)."""
