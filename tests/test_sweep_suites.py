"""A whole SAEBench sweep gated as one suite, from its real file layout (issue #21 item 4).

``tests/sweep_worlds.py`` writes every trainer of the p-anneal sweep at ``blocks.3.hook_resid_post`` (28, the
registry's count) in dictionary_learning's layout next to the tiny pythia, plus a few trainers of the standard
and gated sweeps. The README's gate command (``tests/test_releases.py`` ``gate``) gates the sweep by release
name as one suite, inside a wrapper that counts the engine's and the cloze task's forward passes: SAEs at one
hook share the clean pass of every batch, so the run makes one clean pass per batch (not one per SAE and
batch) and one splice pass per SAE and batch. The standard and gated sweeps share their ids with the
p-anneal one (``blocks.3.hook_resid_post__trainer_N``), so they are gated in a run of their own (a run
refuses two releases with one id); the three gate runs go side by side.

Each SAE keeps the first m coordinates of its input (m differs per trainer): its L0 must be exactly m and its
FVU must fall as m grows, so the test also knows that each name got its own weights.
"""

from __future__ import annotations

import json
import math
import textwrap
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from tests.hf_cache import offline_env
from tests.sweep_worlds import GATED, HOOK, PANNEAL, STANDARD, build_sweep_world
from tests.test_releases import REPO, SMALL, gate, judged, sha256

pytestmark = pytest.mark.slow

# SMALL with 4 sequences in batches of 2 (two engine batches) and 8 Lambada prompts in rows of 2
BATCHED = [*SMALL[:2], "--sae-n-seqs", "4", *SMALL[4:], "--sae-batch-size", "2"]

COUNTING = textwrap.dedent(
    r"""
    # pytest, with the engine's and the cloze task's passes counted into passes.json
    import json, sys
    import pytest
    import sae_checks.engine.run as run
    from sae_checks.experiments.cloze_passes import Passes

    n = {"engine_clean_rows": [], "engine_splice": 0, "engine_zero": 0, "cloze_clean_rows": [], "cloze_splice": 0}
    clean, splice = run.clean_pass, run.splice_pass
    cloze_clean, cloze_splice = Passes.clean, Passes.splice

    def count_clean(model, tokens, hooks, stop=None):
        n["engine_clean_rows"].append(int(tokens.shape[0]))
        return clean(model, tokens, hooks, stop)

    def count_splice(model, hook, acts, new, tokens, capture_hooks=(), stop=None):
        n["engine_zero" if not bool(new.any()) else "engine_splice"] += 1  # zero ablation: all zeros
        return splice(model, hook, acts, new, tokens, capture_hooks, stop)

    def count_cloze_clean(self, batch, stop=None):
        if stop is None:  # the clean + splice sweep's pass (the causal sweep stops early)
            n["cloze_clean_rows"].append(int(batch.tokens.shape[0]))
        return cloze_clean(self, batch, stop)

    def count_cloze_splice(self, ls, acts, batch, visit=None):
        n["cloze_splice"] += 1
        return cloze_splice(self, ls, acts, batch, visit)

    run.clean_pass, run.splice_pass = count_clean, count_splice
    Passes.clean, Passes.splice = count_cloze_clean, count_cloze_splice
    code = pytest.main(sys.argv[2:])
    with open(sys.argv[1], "w") as f:
        json.dump(n, f)
    sys.exit(code)
    """
)


def limits(d: int) -> dict[str, Any]:
    """What every SAE of the world must meet: L0 at most d_in (it keeps m <= d_in coordinates), and FVU at most
    1.5 (the dropped coordinates' share of the variance; loose: a coordinate's mean counts in its square)."""
    return {"l0": ("lower", d + 0.5, {}), "fvu": ("lower", 1.5, {})}


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The world and its three gate runs, side by side (each is mostly a subprocess importing torch and
    sae_lens; two cores): the whole p-anneal sweep with its passes counted, and the standard and gated
    sweeps' trainers. ``reports``: release -> report."""
    root = tmp_path_factory.mktemp("sweeps")
    built = build_sweep_world(root / "hf", root / "work")
    env = offline_env(root / "hf")
    env.update(PYTHONPATH=str(REPO), OMP_NUM_THREADS="1")
    world = {"root": root, "env": env, **built}
    d = built["model"]["d_model"]
    runs = {PANNEAL: ("gate-panneal", r"blocks\.3\.hook_resid_post__trainer_\d+", BATCHED, ("-c", COUNTING, "passes.json"))}
    for release in (STANDARD, GATED):
        ids = "|".join(i.replace(".", r"\.") for i in built["files"][release])
        runs[release] = (f"gate-{release}", ids, SMALL, ("-m", "pytest"))
    with ThreadPoolExecutor(len(runs)) as pool:
        jobs = {r: pool.submit(gate, world, name, "pythia-70m-deduped", [r], ids, limits(d), small, runner)
                for r, (name, ids, small, runner) in runs.items()}
        world["reports"] = {r: job.result() for r, job in jobs.items()}
    return world


def frontier(report: dict[str, Any], keep: dict[str, int]) -> list[tuple[int, float, float]]:
    """(m, l0, fvu) per SAE of ``keep``, in order of m, from the report's one bucket."""
    out = []
    for name, m in keep.items():
        (bucket,) = report["results"]["per_bucket"][name].values()
        out.append((m, bucket["l0"]["mean"], bucket["fvu"]["mean"]))
    return sorted(out)


def test_a_whole_sweep_is_one_suite_with_one_clean_pass_per_batch(world):
    files, keep = world["files"][PANNEAL], world["keep"][PANNEAL]
    assert len(files) == 28  # the registry's count at blocks.3 (tests/sweep_worlds.py all_sweep_ids)
    d = world["model"]["d_model"]
    report = world["reports"][PANNEAL]
    checks = judged(report)
    n = len(files)
    assert report["results"]["sweeps"] == {HOOK: sorted(files)}  # one suite, one hook, every trainer
    by_name = {s["name"]: s for s in report["provenance"]["saes"]}
    assert set(by_name) == set(files)
    for name, s in by_name.items():  # each SAE from its own ae.pt, loaded by the release's name
        assert (s["release"], s["architecture"], s["hook"]) == (PANNEAL, "standard", HOOK), s
        assert s["sha256"] == sha256(files[name]) and Path(s["path"]).name == "ae.pt", name
        assert (name, "l0", "1-128") in checks and (name, "fvu", "1-128") in checks, name

    passes = json.loads((world["root"] / "gate-panneal" / "passes.json").read_text())
    prov = report["provenance"]
    n_seqs, batch = prov["data"]["n_sequences"], prov["batch_size_used"]
    batches = math.ceil(n_seqs / batch)
    assert (n_seqs, batch, batches) == (4, 2, 2), (n_seqs, batch)
    # the engine: one clean pass per batch for the whole suite; one splice (and one zero-ablation) pass per SAE
    assert passes["engine_clean_rows"] == [batch] * batches, passes
    assert passes["engine_splice"] == n * batches and passes["engine_zero"] == n * batches, passes
    # the Lambada task: one clean pass per row batch, one splice pass per SAE and row batch
    cloze = passes["cloze_clean_rows"]
    assert sum(cloze) == report["results"]["cloze"]["lambada"]["n_prompts"] == 8 and len(cloze) >= 2, passes
    assert passes["cloze_splice"] == n * len(cloze), passes

    points = frontier(report, keep)  # m from d - 27 to d: L0 is m, FVU falls to 0 as m grows
    assert [p[0] for p in points] == list(range(d - n + 1, d + 1))
    for m, l0, _ in points:
        assert l0 == pytest.approx(m, abs=1e-3), (m, l0)
    fvus = [p[2] for p in points]
    assert all(a > b for a, b in zip(fvus, fvus[1:], strict=False)), fvus
    assert fvus[-1] < 1e-4 and fvus[0] > 0.2, fvus


@pytest.mark.parametrize("release, arch", [(STANDARD, "standard"), (GATED, "gated")])
def test_the_standard_and_gated_sweeps_load_and_gate(world, release, arch):
    files, keep = world["files"][release], world["keep"][release]
    report = world["reports"][release]
    judged(report)
    assert report["results"]["sweeps"] == {HOOK: sorted(files)}
    by_name = {s["name"]: s for s in report["provenance"]["saes"]}
    assert {(n, s["release"], s["architecture"], s["sha256"]) for n, s in by_name.items()} == {
        (n, release, arch, sha256(p)) for n, p in files.items()}
    for m, l0, _ in frontier(report, keep):
        assert l0 == pytest.approx(m, abs=1e-3), (release, m, l0)
