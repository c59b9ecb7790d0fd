"""The wheel a user installs carries everything the offline default needs: the zoo's files and its
gate policy and baseline (``thresholds/`` is packaged as ``sae_checks.thresholds``)."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_wheel_ships_zoo_files_and_zoo_policy(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(tmp_path),
         str(ROOT)],
        check=True, capture_output=True,
    )
    (wheel,) = tmp_path.glob("sae_checks-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    shipped = {p.relative_to(ROOT / "sae_checks").as_posix() for p in (ROOT / "sae_checks" / "zoo" / "files").rglob("*")
               if p.is_file()}
    missing = {f"sae_checks/{n}" for n in shipped} - names
    assert not missing, f"zoo files left out of {wheel.name}: {sorted(missing)}"
    for name in ("zoo.toml", "zoo.baseline.json", "gpt2-small-res-jb.toml"):
        assert f"sae_checks/thresholds/{name}" in names, name
    assert "sae_checks/report/report.schema.json" in names
    assert "sae_checks/py.typed" in names


def test_every_subpackage_is_listed_in_pyproject() -> None:
    """pyproject lists the packages by hand (for the thresholds/ mapping): a new one must be added there."""
    import tomllib

    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {".".join(p.parent.relative_to(ROOT).parts) for p in (ROOT / "sae_checks").rglob("__init__.py")}
    assert found <= listed, f"add to [tool.setuptools] packages in pyproject.toml: {sorted(found - listed)}"
    assert "sae_checks.thresholds" in listed


def test_editable_default_policy_is_the_repository_file() -> None:
    from sae_checks.gate import default_policy_path

    assert default_policy_path() == ROOT / "thresholds" / "zoo.toml"
