"""Tests of the shipped zoo files (sae_checks/zoo/files) and of the zoo build script."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

torch = pytest.importorskip("torch")

from sae_checks import zoo  # noqa: E402

SIZE_BUDGET_BYTES = 25 * 1024 * 1024
SHORT_CTX = 32  # v1's training context


@pytest.fixture(scope="module")
def model() -> Any:
    return zoo.load_zoo_model("cpu")


@pytest.fixture(scope="module")
def saes() -> dict[str, dict[int, Any]]:
    from sae_lens import SAE

    return {
        v: {L: SAE.load_from_disk(zoo.zoo_sae_dir(v) / f"blocks.{L}.hook_resid_pre") for L in range(4)}
        for v in zoo.ZOO_VERSIONS
    }


def test_paths_exist() -> None:
    assert zoo.ZOO_DIR.is_dir()
    assert zoo.ZOO_VERSIONS == ("v1", "v2")
    assert zoo.zoo_text_path().stat().st_size > 10_000
    assert zoo.zoo_cloze_path().is_file()
    assert (zoo.ZOO_DIR / "zoo_stats.json").is_file()


def test_tokenizer() -> None:
    tok = zoo.load_zoo_tokenizer()
    assert tok.bos_token == tok.eos_token == tok.pad_token == "<|endoftext|>"
    assert 2048 <= len(tok) <= 4096
    ids = tok("Return the value.", add_special_tokens=False)["input_ids"]
    assert tok.decode(ids) == "Return the value."


def test_model_shape_and_bos(model: Any) -> None:
    cfg = model.cfg
    assert (cfg.n_layers, cfg.d_model, cfg.n_heads, cfg.d_mlp, cfg.n_ctx) == (4, 128, 4, 512, 256)
    assert cfg.d_vocab == len(model.tokenizer)
    assert not model.training
    toks = model.to_tokens("Return the value of the attribute.")
    assert toks[0, 0].item() == model.tokenizer.bos_token_id
    with torch.no_grad():
        logits = model(toks)
    assert logits.shape == (1, toks.shape[1], cfg.d_vocab)
    assert torch.isfinite(logits).all()


def test_model_beats_unigram() -> None:
    stats = json.loads((zoo.ZOO_DIR / "zoo_stats.json").read_text())
    assert stats["model"]["heldout_ce"] < stats["model"]["unigram_ce"] - 1.0, stats["model"]


@pytest.mark.parametrize("version,context_size", [("v1", 32), ("v2", 256)])
def test_sae_metadata(saes: dict[str, dict[int, Any]], version: str, context_size: int) -> None:
    for layer, sae in saes[version].items():
        meta = sae.cfg.metadata
        assert meta.hook_name == f"blocks.{layer}.hook_resid_pre"
        assert meta.context_size == context_size
        assert meta.model_name == "sae-checks-zoo"
        assert meta.prepend_bos is True
        assert sae.cfg.d_in == 128
        assert sae.cfg.architecture() == "standard"


def test_sae_dir_rejects_unknown_version() -> None:
    with pytest.raises(ValueError, match="'v3'"):
        zoo.zoo_sae_dir("v3")


def test_eval_tokens() -> None:
    tokens = zoo.zoo_eval_tokens()
    tok = zoo.load_zoo_tokenizer()
    assert tokens.dtype == torch.int64
    assert tokens.ndim == 2 and tokens.shape[1] == 256 and tokens.shape[0] >= 64
    assert (tokens[:, 0] == tok.bos_token_id).all()
    assert tokens.min() >= 0 and tokens.max() < len(tok)


def test_cloze_file() -> None:
    tok = zoo.load_zoo_tokenizer()
    lines = zoo.zoo_cloze_path().read_text(encoding="utf-8").splitlines()
    assert len(lines) >= 200
    n_long = 0
    for i, line in enumerate(lines):
        item = json.loads(line)
        assert list(item) == ["text"], f"line {i + 1}: keys {list(item)}"
        prompt, word = item["text"].rsplit(" ", 1)
        assert re.fullmatch(r"[A-Za-z]+", word), f"line {i + 1}: answer {word!r}"
        assert re.search(rf" {word}(?![A-Za-z0-9_])", prompt), f"line {i + 1}: {word!r} not earlier"
        n_long += len(tok(prompt, add_special_tokens=False)["input_ids"]) + 1 > SHORT_CTX
    assert n_long >= 0.3 * len(lines)


def test_init_induction_sets_a_working_circuit() -> None:
    from zoo_builder import lm

    tok = zoo.load_zoo_tokenizer()
    spec = lm.ModelSpec(n_layers=2, d_model=64, n_heads=4, d_head=16, d_mlp=128, n_ctx=128, d_vocab=len(tok))
    torch.manual_seed(0)
    fresh = lm.make_model(spec, tok)
    untouched = lm.induction_attention(fresh)
    acc = lm.init_induction(fresh, std=0.25, seed=0)
    assert acc == lm.induction_attention(fresh)
    assert acc["prev_token"] > 0.9 and acc["induction"] > 0.9, acc
    assert untouched["prev_token"] < 0.5 and untouched["induction"] < 0.5, untouched
    first, second = lm.induction_ce(fresh)
    assert abs(second - first) < 0.5  # the circuit is there, but the unembedding must learn to read it


def test_init_induction_rejects_a_layout_it_cannot_hold() -> None:
    from zoo_builder import lm

    tok = zoo.load_zoo_tokenizer()
    spec = lm.ModelSpec(n_layers=2, d_model=96, n_heads=4, d_head=16, d_mlp=128, n_ctx=64, d_vocab=len(tok))
    with pytest.raises(ValueError, match="d_model = 4 \\* d_head.*d_model=96, d_head=16"):
        lm.init_induction(lm.make_model(spec, tok), std=0.25, seed=0)


def test_zoo_model_copies(model: Any) -> None:
    """The shipped model predicts a repeated random sequence far better than its first pass (induction)."""
    from zoo_builder import lm

    first, second = lm.induction_ce(model)
    assert second < first - 1.0, (first, second)


def test_cloze_is_solved_by_copying(model: Any) -> None:
    """Clean first-token cloze accuracy is well above chance, and most of it goes when the induction
    head (block 1 head 0, set at init and kept by training) is zero-ablated."""
    from zoo_builder.build import _cloze_eval

    tok = zoo.load_zoo_tokenizer()
    passages = [json.loads(line)["text"] for line in zoo.zoo_cloze_path().read_text().splitlines()]
    clean = _cloze_eval(model, tok, passages, None, SHORT_CTX)["clean"]["all"]

    # zero-ablate head 0's z by its output weights: the passes (sae_checks.engine.kernel) refuse a model
    # that carries a hook, and z_0 @ W_O[0] is all the head adds to the residual stream
    w_o = model.blocks[1].attn.W_O
    saved = w_o.detach().clone()
    try:
        with torch.no_grad():
            w_o[0] = 0.0
        ablated = _cloze_eval(model, tok, passages, None, SHORT_CTX)["clean"]["all"]
    finally:
        with torch.no_grad():
            w_o.copy_(saved)
    stats = json.loads((zoo.ZOO_DIR / "zoo_stats.json").read_text())
    assert clean == pytest.approx(stats["cloze"]["clean"]["all"], abs=1e-3)
    assert clean > 0.08, clean
    assert ablated < 0.25 * clean, (clean, ablated)


def test_size_budget() -> None:
    total = sum(p.stat().st_size for p in zoo.ZOO_DIR.rglob("*") if p.is_file())
    assert total < SIZE_BUDGET_BYTES, f"zoo files are {total / 1e6:.1f} MB, over the 25 MiB budget"


def _explained_variance(x: Any, x_hat: Any) -> float:
    """1 - sum ||x - x_hat||^2 / sum ||x - mean(x)||^2 over the (N, d) tokens given
    (docs/definitions.md#explained_variance)."""
    return 1.0 - ((x - x_hat).pow(2).sum() / (x - x.mean(0)).pow(2).sum()).item()


def test_v1_breaks_beyond_its_context_v2_does_not(model: Any, saes: dict[str, dict[int, Any]]) -> None:
    tokens = zoo.zoo_eval_tokens()[:8]
    names = [f"blocks.{L}.hook_resid_pre" for L in range(4)]
    with torch.no_grad():
        _, cache = model.run_with_cache(tokens, names_filter=lambda n: n in names)
        ev: dict[tuple[str, int], tuple[float, float]] = {}
        for version in zoo.ZOO_VERSIONS:
            for layer, sae in saes[version].items():
                x = cache[names[layer]]  # (B, T, d)
                x_hat = sae.decode(sae.encode(x))
                d = x.shape[-1]
                inside = _explained_variance(
                    x[:, 1:SHORT_CTX].reshape(-1, d), x_hat[:, 1:SHORT_CTX].reshape(-1, d)
                )
                beyond = _explained_variance(
                    x[:, SHORT_CTX:].reshape(-1, d), x_hat[:, SHORT_CTX:].reshape(-1, d)
                )
                ev[version, layer] = (inside, beyond)
    for layer in range(4):
        v1_in, v1_out = ev["v1", layer]
        v2_in, v2_out = ev["v2", layer]
        assert v1_in > 0.8 and v2_in > 0.8 and v2_out > 0.8, ev
        assert v2_out > v2_in - 0.05, ev
    # The failure is strongest where positional embeddings dominate the residual: the early layers.
    assert ev["v1", 0][1] < ev["v1", 0][0] - 0.2, ev


@pytest.mark.slow
def test_quick_build(tmp_path: Path) -> None:
    from sae_lens import SAE

    from zoo_builder import build, lm

    assert build.main(["--quick", "--out", str(tmp_path)]) == 0
    tok = lm.load_tokenizer(tmp_path / "tokenizer")
    m = lm.load_model(tmp_path / "model", tok)
    assert m.to_tokens("x")[0, 0].item() == tok.bos_token_id
    for version, ctx in (("v1", 32), ("v2", m.cfg.n_ctx)):
        for layer in range(m.cfg.n_layers):
            sae = SAE.load_from_disk(tmp_path / "saes" / version / f"blocks.{layer}.hook_resid_pre")
            assert sae.cfg.metadata.context_size == ctx
    stats = json.loads((tmp_path / "zoo_stats.json").read_text())
    assert set(stats) >= {"model", "saes", "cloze", "text", "build_seconds"}
    assert (tmp_path / "data" / "cloze.jsonl").read_text().strip()
    assert (tmp_path / "data" / "heldout.txt").read_text().strip()
