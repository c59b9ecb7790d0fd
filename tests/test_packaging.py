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


def _anchors(doc: Path) -> set[str]:
    """GitHub's anchors of a Markdown file's headings: lower case, punctuation dropped, spaces to dashes,
    a repeated heading numbered ``-1``, ``-2``."""
    import re

    seen: dict[str, int] = {}
    out = set()
    for line in doc.read_text(encoding="utf-8").splitlines():
        m = re.match(r"#{1,6} (.+)", line)
        if m:
            slug = re.sub(r"[^\w\- ]", "", m.group(1).strip().lower()).replace(" ", "-")
            n = seen.get(slug, 0)
            seen[slug] = n + 1
            out.add(slug if n == 0 else f"{slug}-{n}")
    return out


def test_every_cited_docs_anchor_exists() -> None:
    """A citation ``docs/definitions.md#fvu`` (or ``gate.md#judging`` inside docs/) in the package, the tests,
    the README or the docs names a heading of that file: a renamed heading breaks no reader's link."""
    import re

    docs = {p.name: _anchors(p) for p in (ROOT / "docs").glob("*.md")}
    assert {"definitions.md", "gate.md", "report.md", "architecture.md"} <= docs.keys()
    files = [*(ROOT / "sae_checks").rglob("*.py"), *(ROOT / "sae_checks").rglob("*.json"),
             *(ROOT / "tests").glob("*.py"), *(ROOT / "docs").glob("*.md"), ROOT / "README.md",
             ROOT / "thresholds" / "README.md"]
    broken = []
    for path in files:
        for m in re.finditer(r"\b([a-z][\w-]*\.md)#([\w-]+)", path.read_text(encoding="utf-8")):
            if m.group(1) in docs and m.group(2) not in docs[m.group(1)]:
                broken.append(f"{path.relative_to(ROOT)}: {m.group(0)}")
    assert not broken, f"citations of headings that do not exist (docs/ anchors: GitHub's): {broken}"


def test_nothing_cites_a_document_outside_the_repository() -> None:
    """The definitions the code follows are in docs/: no file of the repository cites the old design notes
    or a path outside it (a reader of the package never needs a file it does not ship)."""
    import re
    import subprocess

    tracked = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=False).stdout.split()
    if not tracked:
        pytest.skip("not a git checkout")
    texts = [p for p in tracked if p.endswith((".py", ".md", ".json", ".toml", ".j2", ".txt", ".yml", ".cfg"))
             and "tests/test_packaging.py" not in p and (ROOT / p).is_file()]
    outside = re.compile(r"DESIGN\.md|STYLE\.md|/work/(?!main)|rekey-spec")
    hits = [f"{p}:{n}" for p in texts
            for n, line in enumerate((ROOT / p).read_text(encoding="utf-8", errors="replace").splitlines(), 1)
            if outside.search(line)]
    assert not hits, f"citations of documents outside the repository: {hits}"
