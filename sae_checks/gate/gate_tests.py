"""The gate's test module, shipped with the package: ``pytest --pyargs sae_checks.gate.gate_tests``.

Each test is parametrized by the plugin (``pytest_generate_tests``) with one ``CheckSpec`` per check id
of its family; ``sae_judge`` reads the (cached) engine results, judges the check and fails the test with
the check's message. Select with ``-k``, e.g. ``-k "fvu and 128"`` or ``-k context_ratio``.
"""

from __future__ import annotations

from typing import Any

import pytest


@pytest.mark.sae_family("bucket")
def test_metric(sae_check: Any, sae_judge: Any) -> None:
    """Reconstruction and splice metrics per (layer, position bucket): ``fvu/layer=3/bucket=1-128``."""
    sae_judge(sae_check)


@pytest.mark.sae_family("context_ratio")
def test_context_ratio(sae_check: Any, sae_judge: Any) -> None:
    """Beyond-context / inside-context ratio per layer: ``context_ratio/fvu/layer=3``."""
    sae_judge(sae_check)


@pytest.mark.sae_family("cloze")
def test_cloze(sae_check: Any, sae_judge: Any) -> None:
    """Cloze task accuracy with the SAE spliced in: ``cloze/lambada/acc_first_token/layer=3``."""
    sae_judge(sae_check)


@pytest.mark.sae_family("propagation")
def test_propagation(sae_check: Any, sae_judge: Any) -> None:
    """Downstream metric change from splicing an upstream SAE: ``propagation/mse/up=1/down=3``."""
    sae_judge(sae_check)
