"""One runner per experiment: cloze tasks (``cloze``) and feature helpfulness (``features``).

Each runner takes a model, the loaded SAEs and its data, and returns the JSON-ready section of the
report's ``results`` (docs/report.md#results); the per-token arithmetic lives in ``sae_checks.metrics``.
"""
