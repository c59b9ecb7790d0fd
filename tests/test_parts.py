"""Memory that follows the work (``engine.parts``, ``api.run``): a suite over the SAE memory budget is loaded
one part of whole hook groups at a time, and its report equals the one-part run's.

- ``split`` keeps hook groups whole and in forward order, fills parts greedily within the budget, and puts
  a group over the budget alone (hypothesis);
- ``sae_bytes`` is at least what each architecture's parameters hold (zoo:v2 and zoo:arch loaded);
- a zoo suite (7 SAEs at 6 hooks, a sweep of two widths at one hook) with a budget below one SAE runs in 6
  parts, never holding an SAE of an earlier part when the next loads (weak references), and its results,
  cloze and propagation matrix included, equal the one-part run's to float32 summation order; a shard of the
  suite likewise;
- the CLI's ``--sae-memory`` reaches the run (the parts are in the report's provenance), and a budget that
  is not positive is refused naming the option.
"""

from __future__ import annotations

import gc
import json
import math
import subprocess
import sys
import weakref
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sae_checks import api
from sae_checks.config import RunConfig
from sae_checks.engine.parts import Entry, sae_bytes, split
from sae_checks.errors import ConfigError

SUITE = RunConfig(saes="zoo:v2,zoo:suite", n_seqs=6, n_bootstrap=50, tasks=("lambada",), n_prompts=16, n_causal=1,
                  causal_max_prompts=4, progress=False, device="cpu", batch_size=4)
TINY = 1e-6  # GiB: below any zoo SAE, so every hook group is a part


@st.composite
def suites(draw: Any) -> tuple[list[Entry], int]:
    hooks = draw(st.lists(st.integers(1, 4), min_size=1, max_size=8))  # SAEs per hook, hooks in forward order
    entries = [Entry(f"h{h}s{k}", f"blocks.{h}.hook_resid_pre", draw(st.integers(0, 100)))
               for h, n in enumerate(hooks) for k in range(n)]
    return entries, draw(st.integers(0, 300))


@given(suites())
def test_split_keeps_hook_groups_whole_in_order_and_within_the_budget(case: tuple[list[Entry], int]) -> None:
    entries, budget = case
    parts = split(entries, budget)
    assert [n for p in parts for n in p] == [e.name for e in entries]  # every SAE once, in forward order
    by_name = {e.name: e for e in entries}
    hooks_of = [{by_name[n].hook for n in p} for p in parts]
    for i, hooks in enumerate(hooks_of):  # a hook's SAEs are never split across parts
        assert all(not hooks & other for other in hooks_of[i + 1:])
    sizes = [sum(by_name[n].nbytes for n in p) for p in parts]
    for p, size in zip(parts, sizes, strict=True):
        assert size <= budget or len({by_name[n].hook for n in p}) == 1  # over budget only as one hook group
    for i in range(len(parts) - 1):  # greedy: the next part's first group did not fit in this one
        first_hook = by_name[parts[i + 1][0]].hook
        first_group = sum(by_name[n].nbytes for n in parts[i + 1] if by_name[n].hook == first_hook)
        assert sizes[i] + first_group > budget
    if sum(sizes) <= budget:
        assert len(parts) == 1


def test_sae_bytes_covers_every_architectures_parameters() -> None:
    loaded = api.load(RunConfig(saes="zoo:v2,zoo:arch", n_seqs=1, progress=False, device="cpu"))
    assert {s.architecture for s in loaded.saes.values()} >= {"standard", "topk", "jumprelu", "gated"}
    for name, s in loaded.saes.items():
        held = sum(t.numel() * t.element_size() for t in [*s.sae.parameters(), *s.sae.buffers()])
        estimate = sae_bytes(s.d_in, s.d_sae)
        assert held <= estimate <= 1.1 * held + 4096, (name, s.architecture, held, estimate)


def _close(a: Any, b: Any, path: str = "") -> list[str]:
    """Paths where two results differ beyond float32 summation order (relative 1e-5, or 1e-6 absolute: the
    causal sweep's logp differences are differences of float32 log-probabilities)."""
    if isinstance(a, dict) and isinstance(b, dict):
        if set(a) != set(b):
            return [f"{path}: keys {sorted(set(a) ^ set(b))}"]
        return [p for k in a for p in _close(a[k], b[k], f"{path}.{k}")]
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            return [f"{path}: length {len(a)} != {len(b)}"]
        return [p for i, (x, y) in enumerate(zip(a, b, strict=True)) for p in _close(x, y, f"{path}[{i}]")]
    if isinstance(a, float) and isinstance(b, float):
        return [] if math.isclose(a, b, rel_tol=1e-5, abs_tol=1e-6) or (math.isnan(a) and math.isnan(b)) else [
            f"{path}: {a} != {b}"]
    return [] if a == b else [f"{path}: {a!r} != {b!r}"]


@pytest.fixture()
def watched(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """Wraps ``api._saes``: records each load's names and how many SAEs of earlier loads were still alive."""
    seen: dict[str, Any] = {"loads": [], "alive_at_load": [], "refs": []}
    real = api._saes

    def loading(config: RunConfig, model: Any, names: Any) -> dict[str, Any]:
        gc.collect()
        seen["alive_at_load"].append(sum(r() is not None for r in seen["refs"]))
        out = real(config, model, names)
        seen["loads"].append(list(out))
        seen["refs"] += [weakref.ref(s.sae) for s in out.values()]
        return out

    monkeypatch.setattr(api, "_saes", loading)
    return seen


@pytest.mark.slow
def test_a_suite_over_the_budget_runs_one_hook_group_at_a_time_and_equals_the_one_part_run(
        watched: dict[str, Any]) -> None:
    whole = api.run(SUITE)
    assert "sae_memory" not in whole.provenance and len(watched["loads"]) == 1
    watched["loads"].clear()
    watched["alive_at_load"].clear()
    gc.collect()
    split_run = api.run(SUITE.replace(sae_memory=TINY))
    hooks = {n: s["hook"] for n, s in whole.results["saes"].items()}
    assert len(watched["loads"]) == len(set(hooks.values())) == 6  # one load per hook group
    assert any(len(names) == 2 for names in watched["loads"])  # the sweep's two widths load together
    assert all(len({hooks[n] for n in names}) == 1 for names in watched["loads"])
    assert watched["alive_at_load"] == [0] * 6  # nothing of an earlier part is held when the next loads
    parts = split_run.provenance["sae_memory"]["parts"]
    assert [p["saes"] for p in parts] == watched["loads"]
    assert whole.results["propagation"]["mse"] and whole.results["cloze"]
    assert _close(whole.results, split_run.results) == []


@pytest.mark.slow
def test_a_shard_over_the_budget_equals_the_shard_in_one_part(watched: dict[str, Any]) -> None:
    shard = SUITE.replace(shard=(0, 2), tasks=())
    one = api.run(shard)
    parts = api.run(shard.replace(sae_memory=TINY))
    own = set(one.results["saes"])
    assert own == set(parts.results["saes"]) and len(own) < 7
    later = {n for names in watched["loads"][1:] for n in names} - own  # downstream-only SAEs of its rows
    assert later, "the shard's propagation rows need SAEs of the other shard"
    assert _close(one.results, parts.results) == []


def test_a_budget_that_is_not_positive_is_refused_naming_it() -> None:
    for bad in (0.0, -1.0, float("nan")):
        with pytest.raises(ConfigError, match="sae_memory"):
            RunConfig(sae_memory=bad).validate()


@pytest.mark.slow
def test_the_cli_budget_reaches_the_run(tmp_path: Path) -> None:
    out = tmp_path / "report.json"
    proc = subprocess.run([sys.executable, "-m", "sae_checks.cli", "run", "--saes", "zoo:v2", "--n-seqs", "2",
                           "--n-bootstrap", "20", "--sae-memory", str(TINY), "--no-progress", "--report", str(out)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    parts = json.loads(out.read_text())["provenance"]["sae_memory"]["parts"]
    assert [p["saes"] for p in parts] == [[f"blocks.{layer}.hook_resid_pre"] for layer in range(4)]
