"""GateSession.create: input and output paths are checked before any model loads (no torch here)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from sae_checks.errors import ConfigError
from sae_checks.gate import GateSession

POLICY = 'baseline = "policy-base.json"\n[metrics.fvu]\nabs_tol = 0.1\n'


def create(root: Path, **cli: Any) -> GateSession:
    (root / "policy.toml").write_text(POLICY)
    return GateSession.create({"thresholds": "policy.toml", **cli}, rootdir=root, invocation_dir=root)


def test_only_the_default_baseline_may_be_absent(tmp_path: Path) -> None:
    assert create(tmp_path).baselines.entries == {}  # the policy's own baseline: not written yet
    with pytest.raises(ConfigError) as info:  # a typo in --sae-baseline must not make every check "new"
        create(tmp_path, baseline="typo.json")
    msg = str(info.value)
    assert msg.startswith(f"--sae-baseline={str(tmp_path / 'typo.json')!r}: no such file")
    assert "--sae-update-baseline" in msg
    (tmp_path / "pyproject.toml").write_text('[tool.sae-checks]\nbaseline = "nope.json"\n')
    with pytest.raises(ConfigError, match="nope.json"):
        create(tmp_path)
    session = create(tmp_path, baseline="typo.json", update_baseline="all")  # being created: fine
    assert session.options.baseline == tmp_path / "typo.json"


@pytest.mark.parametrize("cli, option", [
    ({"report": "missing/r.json"}, "--sae-report"),
    ({"report": "."}, "--sae-report"),
    ({"report": "r" * 300}, "--sae-report"),
    ({"baseline": "missing/b.json", "update_baseline": "new"}, "--sae-baseline"),
])
def test_output_paths_checked_up_front(tmp_path: Path, cli: dict[str, str], option: str) -> None:
    with pytest.raises(ConfigError) as info:
        create(tmp_path, **cli)
    assert str(info.value).startswith(f"{option}=")
