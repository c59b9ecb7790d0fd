"""The zoo numbers the README repeats are the numbers in ``zoo_stats.json``, and those are what the shipped
tool (``sae_checks.api.run``, via ``zoo_builder.stats``) reports for the same setting."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

import pytest

from sae_checks.zoo import ZOO_DIR
from zoo_builder.stats import DIGITS, table_lines, tool_stats

README = Path(__file__).resolve().parents[1] / "README.md"


@pytest.fixture(scope="module")
def stats() -> dict[str, Any]:
    return json.loads((ZOO_DIR / "zoo_stats.json").read_text())


def _readme() -> str:
    return README.read_text(encoding="utf-8")


def _numbers(text: str) -> list[float]:
    return [float(x.replace("−", "-")) for x in re.findall(r"[−-]?\d+\.\d+", text)]


def test_readme_zoo_table_is_zoo_stats(stats: dict[str, Any]) -> None:
    rows = [line.replace("**", "") for line in _readme().splitlines() if re.match(r"\| v[12] \| \d \|", line)]
    assert rows == table_lines(stats)


def test_readme_cloze_numbers_are_zoo_stats(stats: dict[str, Any]) -> None:
    text = " ".join(_readme().split())
    c = stats["cloze"]
    acc = re.search(r"first-token accuracy ([\d.]+) clean; spliced, per layer 0–3, v1 (.+?) and v2 (.+?)\. ", text)
    assert acc, "the README's cloze sentence moved"
    assert float(acc.group(1)) == round(c["clean"]["all"], 3)
    for version, group in (("v1", acc.group(2)), ("v2", acc.group(3))):
        assert _numbers(group) == [round(c[version][L]["all"], 3) for L in "0123"], version
    dl = re.search(r"layers 0–3, was v1 (.+?) and v2 (.+?) \(", text)
    assert dl, "the README's delta-logp sentence moved"
    for version, group in (("v1", dl.group(1)), ("v2", dl.group(2))):
        assert _numbers(group) == [round(c[version][L]["delta_logp_long"], 2) for L in "0123"], version
    assert f"{c['n']} Lambada-style passages" in text and f"{c['n_long']} of them longer than 32" in text


@pytest.mark.slow
def test_zoo_stats_are_what_the_tool_reports(stats: dict[str, Any]) -> None:
    """Recompute the SAE table (128 sequences) and the cloze numbers with the tool, both versions, and
    compare with the file (which the two tests above compare with the README)."""
    fresh = tool_stats()
    for version in ("v1", "v2"):
        _same(fresh["saes"][version], stats["saes"][version], version)
        _same(fresh["cloze"][version], stats["cloze"][version], version)
    _same(fresh["cloze"]["clean"], stats["cloze"]["clean"], "clean")


def _same(fresh: Any, stored: Any, where: str) -> None:
    """Equal keys, and numbers equal up to one unit in the fifth significant digit the file keeps: the
    order of float additions in torch's CPU reductions follows the thread count, so a mean that sits on a
    rounding boundary (L0 31.1015) rounds either way on different machines; anything larger is a change."""
    if isinstance(stored, dict):
        assert isinstance(fresh, dict) and set(fresh) == set(stored), where
        for key in stored:
            _same(fresh[key], stored[key], f"{where}/{key}")
    elif isinstance(stored, float) and stored != 0 and math.isfinite(stored):
        unit = 10 ** (math.floor(math.log10(abs(stored))) - (DIGITS - 1))
        assert abs(fresh - stored) <= unit * 1.0001, (where, fresh, stored)
    else:
        assert fresh == stored, (where, fresh, stored)
