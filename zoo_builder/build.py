"""Build the embedded tiny model zoo: ``python -m zoo_builder.build [--out DIR] [--quick]``.

Deterministic (seeded, sorted inputs, 2 torch threads) for a given CPython and torch build; the full
build takes about 5 minutes on 2 idle CPU cores (300 s measured; most of it is the language model),
``--quick`` (tiny step counts, a subset of the text) about 20 seconds. Stages and outputs (under ``--out``, default ``sae_checks/zoo/files``):

1. text: stdlib docstrings and ``pydoc_data.topics`` (``corpus``), ~10% of documents held out;
   ``data/heldout.txt`` (held-out documents separated by blank lines).
2. tokenizer: byte-level BPE, BOS = EOS = PAD = ``<|endoftext|>``; ``tokenizer/`` (Hugging Face format).
3. model: 4-layer GPT-style ``HookedTransformer``, started from a hand-set induction circuit
   (``lm.init_induction``) and trained with AdamW; ``model/config.json`` and ``model/model.safetensors``.
   Held-out CE is printed next to a unigram model's, and CE on repeated random tokens (copying).
4. eval tokens: held-out text packed into rows of ``n_ctx`` tokens, BOS first; ``data/eval_tokens.safetensors``.
5. SAEs: one ReLU SAE per layer on ``blocks.L.hook_resid_pre``, in two versions: ``v1`` trained only on
   positions 1..31 (metadata ``context_size`` 32), ``v2`` on positions 1..255 (``context_size`` 256);
   ``saes/{v1,v2}/blocks.L.hook_resid_pre/`` (sae_lens format). v1 is the seed research's failure in
   miniature: it was never shown the residual stream past position 31, and it breaks there. Then the
   ``zoo:suite`` SAEs (``zoo_builder.suite``, ``--suite-only``) and the ``zoo:arch`` SAEs, one per
   architecture, trained by sae_lens' own trainer (``zoo_builder.arch``, ``--arch-only``).
6. cloze: Lambada-style passages from held-out text; ``data/cloze.jsonl`` (one key, ``text``).
7. ``zoo_stats.json``: every number printed at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from sae_checks.engine.chunks import unembed
from sae_checks.engine.hooks import keep_positions
from sae_checks.engine.kernel import clean_pass, pass_context, specials_of, splice_pass, unspliced
from sae_checks.zoo import ZOO_DIR

DEFAULT_OUT = ZOO_DIR  # sae_checks/zoo/files: what the package ships
N_THREADS = 2


@dataclass(frozen=True, kw_only=True)
class BuildConfig:
    vocab_size: int = 4096  # BPE vocabulary incl. the one special token
    doc_stride: int = 1  # keep every doc_stride-th training document (quick builds use a subset)
    short_ctx: int = 32  # v1's training context: positions 1..short_ctx-1
    n_eval_seqs: int = 128  # held-out rows of n_ctx tokens shipped as eval tokens
    n_ce_seqs: int = 256  # held-out rows used for the model's CE (about all of them at full size)
    v2_windows: int = 1200  # n_ctx windows of training text for v2's activations (x 255 positions)
    v1_windows: int = 10000  # short_ctx windows for v1's activations (x 31 positions): about as many vectors
    seed: int = 0
    lm: dict[str, Any] = field(default_factory=dict)  # overrides of lm.LMTraining fields
    model: dict[str, Any] = field(default_factory=dict)  # overrides of lm.ModelSpec fields
    sae: dict[str, Any] = field(default_factory=dict)  # overrides of sae_train.SAETraining fields
    cloze: dict[str, Any] = field(default_factory=dict)  # overrides of corpus.ClozeBuild fields
    arch: dict[str, Any] = field(default_factory=dict)  # overrides of arch.ArchTraining fields


QUICK = BuildConfig(
    vocab_size=512,
    doc_stride=10,
    n_eval_seqs=8,
    n_ce_seqs=16,
    v2_windows=16,
    v1_windows=64,
    lm={"steps": 4, "batch_size": 4, "warmup": 2},
    model={"n_ctx": 64},
    sae={"steps": 5, "batch_size": 256, "d_sae": 64},
    cloze={"n_passages": 20, "max_tokens": 60},
    arch={"steps": 5, "n_windows": 4},
)


def _seed_everything(seed: int) -> None:
    import random

    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.set_num_threads(N_THREADS)


def _collect_acts(model: Any, windows: Any, first_pos: int, batch_size: int = 32) -> dict[int, Any]:
    """resid_pre of every layer at positions >= first_pos of every window: layer -> (N * (T - first_pos), d)."""
    import torch

    names = [f"blocks.{L}.hook_resid_pre" for L in range(model.cfg.n_layers)]
    out: dict[int, list[Any]] = {L: [] for L in range(model.cfg.n_layers)}
    with torch.no_grad():
        for i in range(0, windows.shape[0], batch_size):
            _, cache = model.run_with_cache(
                windows[i : i + batch_size],
                names_filter=lambda n: n in names,
                stop_at_layer=model.cfg.n_layers,
            )
            for L in out:
                x = cache[names[L]][:, first_pos:]  # (B, T - first_pos, d)
                out[L].append(x.reshape(-1, x.shape[-1]).clone())
    return {L: torch.cat(v) for L, v in out.items()}


def _cloze_eval(
    model: Any,
    tok: Any,
    passages: list[str],
    saes: dict[str, dict[int, Any]] | None,
    short_ctx: int,
    batch_size: int = 16,
) -> dict[str, Any]:
    """First-token accuracy (docs/definitions.md) on the passages, clean and with each SAE spliced (the
    passes of ``sae_checks.engine.kernel``: special tokens and padding left clean, as the engine does).

    Returns ``{"n", "n_long", "clean": {"all", "short", "long"}, "<version>": {"<layer>": {...}}}`` where
    long prompts have more than ``short_ctx`` tokens (BOS included).
    """
    import torch

    prompts, answers = [], []
    for text in passages:
        prompt, word = text.rsplit(" ", 1)
        prompts.append(prompt)
        answers.append(tok(" " + word, add_special_tokens=False)["input_ids"][0])
    bos = tok.bos_token_id
    seqs = [[bos, *tok(p, add_special_tokens=False)["input_ids"]] for p in prompts]
    lengths = torch.tensor([len(s) for s in seqs])
    answer = torch.tensor(answers)
    long = lengths > short_ctx

    specials = specials_of(model)

    def accuracy(version: str | None, layer: int | None) -> torch.Tensor:
        right = torch.zeros(len(seqs), dtype=torch.bool)
        with pass_context(model, fast=False):  # TransformerLens' own attention, as when the zoo was built
            for i in range(0, len(seqs), batch_size):
                chunk = seqs[i : i + batch_size]
                T = max(len(s) for s in chunk)
                toks = torch.tensor([s + [bos] * (T - len(s)) for s in chunk])  # right padding: causal, harmless
                if version is None:
                    resid, _ = clean_pass(model, toks, [])
                else:
                    assert saes is not None and layer is not None
                    name = f"blocks.{layer}.hook_resid_pre"
                    _, acts = clean_pass(model, toks, [name], stop=layer + 1)
                    x = acts[name]  # (B, T, d)
                    x_hat = saes[version][layer].decode(saes[version][layer].encode(x))
                    resid, _ = splice_pass(model, name, acts, keep_positions(x, x_hat, unspliced(toks, specials, False)),
                                           toks)
                last = torch.tensor([len(s) - 1 for s in chunk])
                pred = unembed(model, resid[torch.arange(len(chunk)), last]).argmax(-1)
                right[i : i + len(chunk)] = pred == answer[i : i + len(chunk)]
        return right

    def summary(right: torch.Tensor) -> dict[str, float]:
        return {
            "all": right.float().mean().item(),
            "short": right[~long].float().mean().item() if (~long).any() else float("nan"),
            "long": right[long].float().mean().item() if long.any() else float("nan"),
        }

    out: dict[str, Any] = {"n": len(seqs), "n_long": int(long.sum()), "clean": summary(accuracy(None, None))}
    for version in saes or {}:
        out[version] = {str(L): summary(accuracy(version, L)) for L in sorted(saes[version])}  # type: ignore[index]
    return out


def build(out: Path, cfg: BuildConfig) -> dict[str, Any]:
    """Run every stage into ``out`` and return the stats written to ``out/zoo_stats.json``."""
    import torch
    from safetensors.torch import save_file

    from zoo_builder import corpus, lm, sae_train

    t_start = time.time()
    _seed_everything(cfg.seed)
    out.mkdir(parents=True, exist_ok=True)
    stats: dict[str, Any] = {"command": "python -m zoo_builder.build", "config": asdict(cfg)}

    print("[1/7] text", flush=True)
    docs = corpus.collect_documents()
    train_docs, held_docs = corpus.split_documents(docs)
    train_docs = train_docs[:: cfg.doc_stride]
    train_texts = [d.text for d in train_docs]
    (out / "data").mkdir(exist_ok=True)
    (out / "data" / "heldout.txt").write_text("\n\n".join(d.text for d in held_docs) + "\n", encoding="utf-8")
    stats["text"] = {
        "documents_train": len(train_docs),
        "documents_heldout": len(held_docs),
        "chars_train": sum(len(t) for t in train_texts),
        "chars_heldout": sum(len(d.text) for d in held_docs),
        "python": sys.version.split()[0],
    }

    print("[2/7] tokenizer", flush=True)
    tok = lm.train_tokenizer(train_texts, cfg.vocab_size, out / "tokenizer")
    train_stream = lm.encode_documents(tok, train_texts)
    held_stream = lm.encode_documents(tok, [d.text for d in held_docs])
    stats["text"].update(
        tokens_train=train_stream.numel(), tokens_heldout=held_stream.numel(), vocab=len(tok)
    )

    print("[3/7] model", flush=True)
    spec = replace(lm.ModelSpec(d_vocab=len(tok), seed=cfg.seed), **cfg.model)
    model = lm.make_model(spec, tok)
    lm_cfg = replace(lm.LMTraining(seed=cfg.seed), **cfg.lm)
    t0 = time.time()
    losses = lm.train_model(model, train_stream, lm_cfg)
    lm.save_model(model, spec, out / "model")
    model = lm.load_model(out / "model", lm.load_tokenizer(out / "tokenizer"))  # measure what ships
    held_tokens = lm.pack(
        held_stream, spec.n_ctx, tok.bos_token_id, max_seqs=max(cfg.n_ce_seqs, cfg.n_eval_seqs)
    )
    ce = lm.heldout_ce(model, held_tokens[: cfg.n_ce_seqs])
    uni = lm.unigram_ce(train_stream, held_tokens[: cfg.n_ce_seqs], len(tok))
    rep_first, rep_second = lm.induction_ce(model, seed=cfg.seed)
    stats["model"] = {
        "repeat_ce_first": rep_first,
        "repeat_ce_second": rep_second,
        "spec": asdict(spec),
        "training": asdict(lm_cfg),
        "train_loss_last": sum(losses[-10:]) / len(losses[-10:]),
        "heldout_ce": ce,
        "unigram_ce": uni,
        "heldout_sequences": held_tokens[: cfg.n_ce_seqs].shape[0],
        "seconds": time.time() - t0,
    }
    print(
        f"  held-out CE {ce:.3f} vs unigram {uni:.3f}; random tokens {rep_first:.2f}, repeated {rep_second:.2f}",
        flush=True,
    )

    print("[4/7] eval tokens", flush=True)
    eval_tokens = held_tokens[: cfg.n_eval_seqs]
    save_file(
        {"tokens": eval_tokens.to(torch.int32).contiguous()}, str(out / "data" / "eval_tokens.safetensors")
    )

    print("[5/7] SAEs", flush=True)
    t0 = time.time()
    gen = torch.Generator().manual_seed(cfg.seed + 1)
    sae_cfg = replace(sae_train.SAETraining(seed=cfg.seed), **cfg.sae)
    contexts = {"v1": cfg.short_ctx, "v2": spec.n_ctx}
    saes: dict[str, dict[int, Any]] = {}
    for version, ctx in contexts.items():
        n_windows = cfg.v1_windows if version == "v1" else cfg.v2_windows
        windows = lm.random_windows(train_stream, n_windows, ctx, tok.bos_token_id, gen)
        acts = _collect_acts(model, windows, first_pos=1)  # BOS excluded: its norm is huge
        saes[version] = {}
        for L in range(spec.n_layers):
            w = sae_train.train_sae(acts[L], sae_cfg, label=f"{version} L{L} ({acts[L].shape[0]} vectors)")
            hook = f"blocks.{L}.hook_resid_pre"
            sae = sae_train.to_standard_sae(
                w,
                hook_name=hook,
                context_size=ctx,
                extra={"sae_checks_zoo_version": version, "trained_positions": [1, ctx - 1]},
            )
            sae.save_model(out / "saes" / version / hook)
        del acts
    from zoo_builder.suite import build_suite

    print("[5b/7] SAE suite (zoo:suite)", flush=True)
    stats["suite"] = build_suite(out, train_stream=train_stream, model=model, bos=tok.bos_token_id,
                                 n_windows=cfg.v2_windows, seed=cfg.seed, sae_overrides=cfg.sae)
    from zoo_builder.arch import ArchTraining, build_arch

    print("[5c/7] SAE architectures (zoo:arch)", flush=True)
    stats["arch"] = build_arch(out, train_stream=train_stream, model=model, bos=tok.bos_token_id,
                               cfg=replace(ArchTraining(seed=cfg.seed), **cfg.arch))
    from sae_lens import SAE

    for version in contexts:  # measure what ships
        for L in range(spec.n_layers):
            saes[version][L] = SAE.load_from_disk(out / "saes" / version / f"blocks.{L}.hook_resid_pre")
    buckets = [(1, cfg.short_ctx), (cfg.short_ctx, spec.n_ctx)]
    stats["saes"] = {
        "training": asdict(sae_cfg),
        "buckets": [f"{a}-{b}" for a, b in buckets],
        "eval_sequences": eval_tokens.shape[0],
    }
    for version in contexts:
        measured = sae_train.measure(model, saes[version], eval_tokens, buckets)
        stats["saes"][version] = {
            str(L): {f"{a}-{b}": s._asdict() for (a, b), s in zip(buckets, measured[L], strict=True)}
            for L in measured
        }
    stats["saes"]["seconds"] = time.time() - t0

    print("[6/7] cloze", flush=True)
    cloze_cfg = replace(corpus.ClozeBuild(seed=cfg.seed), **cfg.cloze)
    passages = corpus.build_cloze(
        held_docs, lambda s: len(tok(s, add_special_tokens=False)["input_ids"]), cloze_cfg
    )
    with open(out / "data" / "cloze.jsonl", "w", encoding="utf-8") as fh:
        for p in passages:
            fh.write(json.dumps({"text": p}, ensure_ascii=False) + "\n")
    stats["cloze"] = _cloze_eval(model, tok, passages, saes, cfg.short_ctx)
    stats["cloze"]["tokens"] = _length_summary([len(tok(p)["input_ids"]) for p in passages])

    stats["files_bytes"] = sum(
        p.stat().st_size for p in out.rglob("*") if p.is_file() and p.name != "zoo_stats.json"
    )
    stats["build_seconds"] = time.time() - t_start
    (out / "zoo_stats.json").write_text(json.dumps(_rounded(stats), indent=1, sort_keys=True) + "\n")
    print("[7/7] stats", flush=True)
    print(format_stats(stats), flush=True)
    return stats


def _length_summary(lengths: list[int]) -> dict[str, float]:
    s = sorted(lengths)
    return {
        "min": s[0],
        "median": s[len(s) // 2],
        "max": s[-1],
        "share_over_32": sum(n > 32 for n in s) / len(s),
    }


def _rounded(obj: Any) -> Any:
    if isinstance(obj, float):
        return round(obj, 5)
    if isinstance(obj, dict):
        return {k: _rounded(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_rounded(v) for v in obj]
    return obj


def format_stats(stats: dict[str, Any]) -> str:
    """The human-readable summary printed at the end of a build."""
    m = stats["model"]
    lines = [
        f"text: {stats['text']['documents_train']} train / {stats['text']['documents_heldout']} held-out documents, "
        f"{stats['text']['tokens_train']} / {stats['text']['tokens_heldout']} tokens, vocab {stats['text']['vocab']}",
        f"model: held-out CE {m['heldout_ce']:.3f} nats/token vs unigram {m['unigram_ce']:.3f} "
        f"(train loss {m['train_loss_last']:.3f}, {m['seconds']:.0f}s); copying: CE {m['repeat_ce_first']:.2f} on "
        f"random tokens, {m['repeat_ce_second']:.2f} on their repeat",
        "SAEs on blocks.L.hook_resid_pre, eval tokens; inside = positions [1, 32), beyond = [32, n_ctx):",
        f"  {'ver':3s} {'L':>2s} | {'L0 in':>7s} {'L0 out':>7s} | {'EV in':>6s} {'EV out':>7s} | {'dCE in':>7s} {'dCE out':>7s}",
    ]
    in_b, out_b = stats["saes"]["buckets"]
    for version in ("v1", "v2"):
        for L, b in stats["saes"][version].items():
            i, o = b[in_b], b[out_b]
            lines.append(
                f"  {version:3s} {L:>2s} | {i['l0']:7.1f} {o['l0']:7.1f} | {i['ev']:6.3f} {o['ev']:7.3f} | "
                f"{i['delta_ce']:7.3f} {o['delta_ce']:7.3f}"
            )
    c = stats["cloze"]
    lines.append(
        f"cloze: {c['n']} passages ({c['n_long']} prompts > 32 tokens; tokens min/median/max "
        f"{c['tokens']['min']}/{c['tokens']['median']}/{c['tokens']['max']}); first-token accuracy clean "
        f"{c['clean']['all']:.3f} (short {c['clean']['short']:.3f}, long {c['clean']['long']:.3f})"
    )
    for version in ("v1", "v2"):
        accs = " ".join(f"L{L}={v['all']:.3f}/{v['long']:.3f}" for L, v in c.get(version, {}).items())
        lines.append(f"  spliced {version} (all/long): {accs}")
    lines.append(f"files: {stats['files_bytes'] / 1e6:.2f} MB; build {stats['build_seconds']:.0f}s")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m zoo_builder.build", description=__doc__.splitlines()[0]
    )
    parser.add_argument(
        "--out", type=Path, default=DEFAULT_OUT, help=f"output folder (default {DEFAULT_OUT})"
    )
    parser.add_argument(
        "--quick", action="store_true", help="tiny step counts, a subset of the text (for tests)"
    )
    parser.add_argument(
        "--suite-only", action="store_true",
        help="train only the zoo:suite SAEs from the model and text already in --out (zoo_builder.suite)",
    )
    parser.add_argument(
        "--arch-only", action="store_true",
        help="train only the zoo:arch SAEs (TopK, JumpReLU, gated, expected_average_only_in) from the model and "
             "text already in --out, touching no other file (zoo_builder.arch)",
    )
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # no spinning threads on a shared, busy CPU
    if args.arch_only:
        from zoo_builder.arch import build_arch_only

        _seed_everything(0)
        build_arch_only(args.out, QUICK if args.quick else BuildConfig())
        return 0
    if args.suite_only:
        from zoo_builder.suite import build_suite_only

        _seed_everything(0)
        build_suite_only(args.out, QUICK if args.quick else BuildConfig())
        return 0
    build(args.out, QUICK if args.quick else BuildConfig())
    if args.out.resolve() == DEFAULT_OUT.resolve() and not args.quick:
        # the published numbers come from the shipped tool, not from the build's own measurements
        from zoo_builder.stats import main as stats_main

        stats_main([])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
