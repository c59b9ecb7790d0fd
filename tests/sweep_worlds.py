"""A whole SAEBench sweep at its real count, in its real file layout, for gating as one suite.

SAEBench's pythia-70m-deduped sweeps (``tests/release_worlds.py`` ``SWEEPS``) hold 20-28 trainers per hook;
the registry lists their ids. :func:`build_sweep_world` writes the tiny GPT-NeoX under
``EleutherAI/pythia-70m-deduped`` (``release_worlds.write_pythia``), openwebtext and lambada_openai rows in
the datasets cache, and the dictionary_learning folders (``ae.pt``, ``config.json``) of every trainer of the
p-anneal sweep at ``blocks.3.hook_resid_post`` (28) plus a few trainers of the standard and gated sweeps.

Each SAE keeps the first ``m`` coordinates of its input and drops the rest (:func:`partial_identity`), with
``m`` different per trainer: its L0 is exactly ``m`` on a dense activation and its FVU falls as ``m`` grows
(0 at ``m = d_in``), whatever the activations' scale. So the sweep's points spread along a frontier and a
test knows what each SAE must measure. Heavy imports happen inside the functions.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from tests.release_worlds import (
    DICT_CLASSES,
    Weights,
    identity_weights,
    registry,
    write_dictionary_learning,
    write_pythia,
)

PANNEAL = "sae_bench_pythia70m_sweep_panneal_ctx128_0730"  # 28 trainers at blocks.3.hook_resid_post
STANDARD = "sae_bench_pythia70m_sweep_standard_ctx128_0712"
GATED = "sae_bench_pythia70m_sweep_gated_ctx128_0730"
LAYER = 3
HOOK = f"blocks.{LAYER}.hook_resid_post"


def all_sweep_ids(release: str, layer: int = LAYER) -> list[str]:
    """Every registry id of a SAEBench sweep at ``blocks.{layer}.hook_resid_post``, by trainer number."""
    ids = [i for i in registry(release).saes_map if i.startswith(f"blocks.{layer}.hook_resid_post__")]
    return sorted(ids, key=lambda i: int(i.rsplit("_", 1)[1]))


def partial_identity(d_in: int, d_sae: int, m: int, *, seed: int, scale: float = 1.0) -> Weights:
    """``release_worlds.identity_weights`` with only coordinates 0..m-1 kept (features ±e_j for j < m): the
    SAE reconstructs x's first ``m`` coordinates exactly and zeroes the rest, so L0 = m on a dense input and
    FVU = the share of x's variance in coordinates m..d_in-1. The dropped features are dead (encoder 0,
    ``b_enc = -1``). ``scale``: the kept coordinates come back times ``scale`` (a worse SAE, same L0)."""
    assert 1 <= m <= d_in, (m, d_in)
    w = identity_weights(d_in, d_sae, seed=seed)
    W_enc, b_enc = w.W_enc.copy(), w.b_enc.copy()
    W_enc[:, 2 * m: 2 * d_in] = 0.0
    b_enc[2 * m: 2 * d_in] = -1.0
    W_dec = w.W_dec.copy()
    W_dec[: 2 * m] *= scale
    return replace(w, W_enc=W_enc, W_dec=W_dec, b_enc=b_enc)


def build_sweep_world(hf_home: Path, work_dir: Path, *, n_other: int = 3, scale: float = 1.0) -> dict[str, Any]:
    """The tiny pythia, its text data, the whole p-anneal sweep at blocks.3 and the first ``n_other``
    trainers of the standard and gated sweeps there. Trainer i of the p-anneal sweep keeps
    ``m = d_in - n + 1 + i`` coordinates (n = 28 trainers: m from d_in - 27 to d_in) at width
    ``2 d_in + 8 (i % 4)``; the others keep ``d_in - i``; ``scale``: :func:`partial_identity`'s. Returns ``{"model", "files": {release: {id: path}},
    "keep": {release: {id: m}}}``."""
    from tests.gpt2_world import LAMBADA, OWT, TINY, make_text
    from tests.hf_cache import add_cached_dataset

    hub = Path(hf_home) / "hub"
    model = write_pythia(hub, Path(work_dir))
    d = model["d_model"]
    text = make_text(TINY, n_docs=20, n_lambada=40)
    add_cached_dataset(Path(hf_home) / "datasets", OWT, {"text": text.docs}, split="train")
    add_cached_dataset(Path(hf_home) / "datasets", LAMBADA, {"text": text.lambada}, split="test",
                       config_name="default")
    files: dict[str, dict[str, str]] = {}
    keep: dict[str, dict[str, int]] = {}
    panneal = all_sweep_ids(PANNEAL)
    plan = {PANNEAL: [(sae_id, d - len(panneal) + 1 + i) for i, sae_id in enumerate(panneal)]}
    for release in (STANDARD, GATED):
        plan[release] = [(sae_id, d - i) for i, sae_id in enumerate(all_sweep_ids(release)[:n_other])]
    kinds = {PANNEAL: "panneal", STANDARD: "standard", GATED: "gated"}
    for r, (release, saes) in enumerate(plan.items()):
        assert kinds[release] in DICT_CLASSES
        files[release], keep[release] = {}, {}
        for i, (sae_id, m) in enumerate(saes):
            w = partial_identity(d, 2 * d + 8 * (i % 4), m, seed=100 * r + i, scale=scale)
            files[release][sae_id] = str(write_dictionary_learning(hub, release, sae_id, w, kind=kinds[release],
                                                                   layer=LAYER))
            keep[release][sae_id] = m
    return {"model": model, "files": files, "keep": keep}


def main(out: Path) -> None:
    """The README's sweep figure: ``sae-checks run`` over the whole p-anneal sweep twice, first with every
    SAE's reconstruction shrunk by 0.5 (the baseline: same L0, higher FVU), then exact (the new version), and
    ``sae-checks plot new.json --baseline old.json`` (``python -m tests.sweep_worlds OUT``)."""
    import subprocess
    import sys

    from tests.hf_cache import offline_env

    env = offline_env(out / "hf")
    env.update(OMP_NUM_THREADS="1")
    run = [sys.executable, "-m", "sae_checks.cli", "run", "--model", "pythia-70m-deduped", "--saes", PANNEAL,
           "--sae-ids", r"blocks\.3\.hook_resid_post__trainer_\d+", "--data", "Skylion007/openwebtext",
           "--ctx-len", "128", "--n-seqs", "8", "--no-progress"]
    for name, scale in (("old", 0.5), ("new", 1.0)):
        build_sweep_world(out / "hf", out / "work", n_other=0, scale=scale)
        subprocess.run([*run, "--report", str(out / f"{name}.json")], env=env, check=True)
    subprocess.run([sys.executable, "-m", "sae_checks.cli", "plot", str(out / "new.json"), "--baseline",
                    str(out / "old.json"), "-o", str(out / "plots")], env=env, check=True)


if __name__ == "__main__":
    import sys

    main(Path(sys.argv[1]))
