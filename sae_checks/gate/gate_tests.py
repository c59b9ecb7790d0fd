"""The gate's test module, shipped with the package: ``pytest --pyargs sae_checks.gate.gate_tests``.

One test function per registered check family (``sae_checks.gate.families``), named by the family's
``test`` (``test_metric``, ``test_context_ratio``, ``test_cloze``, ``test_propagation``, then those of
families registered before this module is collected, e.g. in a ``conftest.py``). The plugin
parametrizes each (``pytest_generate_tests``) with one ``CheckSpec`` per check id of its family;
``sae_judge`` reads the (cached) engine results, judges the check and fails the test with the check's
message. Select with ``-k``, e.g. ``-k "fvu and 128"`` or ``-k context_ratio``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from sae_checks.gate.families import CheckFamily, families


def _test(family: CheckFamily) -> Callable[..., None]:
    @pytest.mark.sae_family(family.name)
    def test(sae_check: Any, sae_judge: Any) -> None:
        sae_judge(sae_check)

    test.__name__ = test.__qualname__ = family.test
    test.__doc__ = family.doc
    return test


for _family in families():
    globals()[_family.test] = _test(_family)
