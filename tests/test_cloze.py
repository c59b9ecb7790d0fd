"""Cloze runner and its pure metrics (sae_checks.metrics.cloze, sae_checks.experiments.cloze) on a tiny
random model: tokenization, truncation, batching, classes, acc_choice, the identity SAE, leaked hooks."""

from __future__ import annotations

import math
from typing import Any

import pytest
import torch

from sae_checks.engine import kernel
from sae_checks.experiments import cloze as cloze_mod
from sae_checks.experiments.cloze import ClozeOptions, encode_items, run_cloze
from sae_checks.loading.data import ClozeItem
from sae_checks.loading.saes import LoadedSAE
from sae_checks.metrics.cloze import CLASSES, choice_correct, classify, cloze_scores
from tests.tiny import identity_sae, tiny_model, tiny_sae, tiny_tokenizer

OPTIONS = ("tree", "mat", "log", "dog", "cat", "door", "book", "end", "garden", "roses")
ITEMS = [
    ClozeItem("The cat sat on the", "mat"),
    ClozeItem("The dog sat on the", "log"),
    ClozeItem("A bird sang in the", "tree"),
    ClozeItem("She opened the door and walked into the", "garden"),
    ClozeItem("He said that the answer was in the book, but nobody had read the", "book"),
    ClozeItem("Numbers: 0 1 2 3", "4"),
]


def loaded(sae: Any, layer: int, context_size: int | None = 16, neuronpedia_id: str | None = None) -> LoadedSAE:
    return LoadedSAE(
        sae=sae, layer=layer, hook_name=f"blocks.{layer}.hook_resid_pre", release=None, sae_id=None, path="",
        sha256="", context_size=context_size, architecture="standard", d_in=sae.cfg.d_in, d_sae=sae.cfg.d_sae,
        model_name="tiny", neuronpedia_id=neuronpedia_id,
    )


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    tok = tiny_tokenizer(tmp_path_factory.mktemp("tok"))
    model = tiny_model(tok)  # 2 layers, d_model 16, n_ctx 32
    saes = {L: loaded(tiny_sae(model, L, context_size=8), L, context_size=8) for L in (0, 1)}
    return {"tok": tok, "model": model, "saes": saes}


def run(world: dict[str, Any], items: list[ClozeItem], **kw: Any) -> Any:
    kw = {"task": "lambada", "n_bootstrap": 50, "features": False, **kw}
    saes = kw.pop("saes", world["saes"])
    return run_cloze(world["model"], saes, items, ClozeOptions(**kw))


# --- pure metrics ----------------------------------------------------------------------------------


def test_cloze_scores_hand_built() -> None:
    # V = 4, one row: [BOS=0, 1, 2 | answer 3, 1], prompt_len 3, cont_len 2, one pad.
    tokens = torch.tensor([[0, 1, 2, 3, 1, 0]])
    logits = torch.zeros(1, 6, 4)
    logits[0, 1, 2] = 2.0  # predicts prompt token 2 at t=1 (the only non-BOS prompt prediction)
    logits[0, 2, 3] = 3.0  # argmax at the last prompt position = answer's first token
    logits[0, 3, 0] = 5.0  # second answer token (1) not the greedy choice
    s = cloze_scores(logits, tokens, torch.tensor([3]), torch.tensor([2]))
    lp = torch.log_softmax(logits[0], -1)
    assert torch.allclose(s.logp_first, lp[2, 3])
    assert s.correct_first.tolist() == [True]
    assert s.correct_word.tolist() == [False]
    assert torch.allclose(s.cont_logp, lp[2, 3] + lp[3, 1])
    assert s.ce_count.tolist() == [1]  # t = 1 only: BOS's prediction (t = 0) excluded
    assert torch.allclose(s.ce_sum, -lp[1, 2])


def test_acc_choice_picks_highest_summed_logprob() -> None:
    # Two options for one prompt [BOS, 1]: option A = [2, 3] (first token likelier, sum lower),
    # option B = [3] (single token). Summed log-probs decide, not the first token.
    V = 4
    rows = torch.tensor([[0, 1, 2, 3], [0, 1, 3, 0]])
    logits = torch.zeros(2, 4, V)
    logits[0, 1, 2] = 2.0
    logits[0, 2, 3] = -5.0  # second token of A very unlikely
    logits[1, 1, 3] = 1.0
    s = cloze_scores(logits, rows, torch.tensor([2, 2]), torch.tensor([2, 1]))
    lp0, lp1 = torch.log_softmax(logits[0], -1), torch.log_softmax(logits[1], -1)
    assert lp0[1, 2] > lp1[1, 3]  # A wins on the first token …
    assert torch.allclose(s.cont_logp, torch.stack([lp0[1, 2] + lp0[2, 3], lp1[1, 3]]))
    option_logp = s.cont_logp[None, :]  # (N=1, O=2)
    assert choice_correct(option_logp, torch.tensor([1])).tolist() == [True]  # … B wins on the sum
    assert choice_correct(option_logp, torch.tensor([0])).tolist() == [False]
    assert choice_correct(option_logp, torch.tensor([-1])).tolist() == [False]  # answer not an option


def test_four_classes() -> None:
    clean = torch.tensor([True, True, False, False])
    spliced = torch.tensor([True, False, False, True])
    got = [CLASSES[i] for i in classify(clean, spliced).tolist()]
    assert got == ["both_right", "clean_only", "both_wrong", "spliced_only"]


# --- tokenization and truncation ---------------------------------------------------------------------


def test_answer_tokens_have_leading_space_and_keep_all_tokens(world: dict[str, Any]) -> None:
    tok = world["tok"]
    items = [ClozeItem("The cat sat on the ", "xylophonic"), ClozeItem("The dog sat on the", "mat")]
    enc = encode_items(tok, items, n_ctx=32)
    ans = tok(" xylophonic", add_special_tokens=False)["input_ids"]
    assert len(ans) > 1, "test needs a multi-token answer"
    assert enc.answers[0] == ans
    assert enc.answers[1] == tok(" mat", add_special_tokens=False)["input_ids"]
    # BOS first; the prompt's trailing space is dropped (it belongs to the answer's first token)
    assert enc.prompts[0] == [tok.bos_token_id] + tok("The cat sat on the", add_special_tokens=False)["input_ids"]
    assert enc.truncated == [False, False]


def test_left_truncation_keeps_bos_and_is_counted(world: dict[str, Any]) -> None:
    tok = world["tok"]
    long_prompt = " ".join(["the cat sat on the mat"] * 12)
    items = [ClozeItem(long_prompt, "xylophonic"), ClozeItem("The dog sat on the", "log")]
    enc = encode_items(tok, items, n_ctx=32)
    body = tok(long_prompt, add_special_tokens=False)["input_ids"]
    p, a = enc.prompts[0], enc.answers[0]
    assert p[0] == tok.bos_token_id
    assert len(p) + len(a) == 32  # cut to fit exactly, continuation kept whole
    assert p[1:] == body[-(len(p) - 1):]  # cut from the left
    assert enc.truncated == [True, False]
    out = run(world, items)
    assert out.cloze["n_truncated"] == 1
    assert out.cloze["prompt_lengths"] == [len(p), len(enc.prompts[1])]


def test_cbt_options_count_toward_truncation(world: dict[str, Any]) -> None:
    tok = world["tok"]
    long_option = "xylophonicallyxylophonic"
    n_opt = len(tok(" " + long_option, add_special_tokens=False)["input_ids"])
    items = [ClozeItem(" ".join(["the cat"] * 20), "mat", ("mat", long_option))]
    enc = encode_items(tok, items, n_ctx=32)
    assert len(enc.prompts[0]) + n_opt == 32
    assert enc.answer_index == [0]


# --- the runner ------------------------------------------------------------------------------------


def test_batched_equals_one_at_a_time(world: dict[str, Any]) -> None:
    items = ITEMS + [ClozeItem(" ".join(["the dog sat"] * 10), "xylophonic")]  # mixed lengths, one truncated
    a = run(world, items, batch_size=3).cloze
    b = run(world, items, batch_size=1).cloze
    for L in ("0", "1"):
        for key in ("delta_logp", "delta_ce", "mse", "l0", "resid_norm"):
            got, want = a["prompts"][L][key], b["prompts"][L][key]
            assert len(got) == len(items)
            for g, w in zip(got, want, strict=True):
                assert (g is None and w is None) or math.isclose(g, w, rel_tol=1e-4, abs_tol=1e-4), (L, key, got, want)
        assert a["prompts"][L]["class"] == b["prompts"][L]["class"]
        assert a["per_sae"][L]["classes"] == b["per_sae"][L]["classes"]
        for m in ("acc_first_token", "acc_word"):
            assert a["per_sae"][L][m]["mean"] == b["per_sae"][L][m]["mean"]
    for m in ("acc_first_token", "acc_word", "logp", "ce"):
        assert math.isclose(a["baseline"][m]["mean"], b["baseline"][m]["mean"], rel_tol=1e-5, abs_tol=1e-6)


def test_fused_attention_equals_transformer_lens_attention(
    world: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The passes use the fused kernel by default and give TransformerLens' numbers. (That the passes
    need no attention mask is test_batched_equals_one_at_a_time: padded batches against unpadded rows.)"""
    from sae_checks.engine import attention

    calls = []
    sdpa = attention.F.scaled_dot_product_attention
    monkeypatch.setattr(attention.F, "scaled_dot_product_attention", lambda *a, **k: calls.append(1) or sdpa(*a, **k))
    items = ITEMS + [ClozeItem(" ".join(["the dog sat"] * 10), "xylophonic")]  # mixed lengths: padding
    fused = run(world, items, batch_size=3, features=True, n_causal=2).cloze
    assert calls, "the cloze passes did not use the fused attention"
    n_fused = len(calls)
    tl = run(world, items, batch_size=3, features=True, n_causal=2, fast_attention=False).cloze
    assert len(calls) == n_fused
    for L in ("0", "1"):
        for key in ("delta_logp", "delta_ce", "mse", "l0", "resid_norm"):
            for g, w in zip(fused["prompts"][L][key], tl["prompts"][L][key], strict=True):
                assert (g is None and w is None) or math.isclose(g, w, rel_tol=1e-4, abs_tol=1e-5), (L, key)
        assert fused["prompts"][L]["class"] == tl["prompts"][L]["class"]
    for m in ("acc_first_token", "acc_word", "logp", "ce"):
        assert math.isclose(fused["baseline"][m]["mean"], tl["baseline"][m]["mean"], rel_tol=1e-5, abs_tol=1e-6)


def test_matches_unbatched_reference(world: dict[str, Any]) -> None:
    """Clean logp / acc_word / ce recomputed by hand from one plain forward per prompt."""
    model, tok = world["model"], world["tok"]
    items = ITEMS[:4] + [ClozeItem("The cat sat on the", "xylophonic")]
    out = run(world, items, batch_size=4, n_bootstrap=0).cloze
    logps, words, ces = [], [], []
    for it in items:
        p = [tok.bos_token_id] + tok(it.prompt, add_special_tokens=False)["input_ids"]
        a = tok(" " + it.answer, add_special_tokens=False)["input_ids"]
        with torch.no_grad():
            lp = torch.log_softmax(model(torch.tensor([p + a]))[0].float(), -1)
        logps.append(lp[len(p) - 1, a[0]].item())
        words.append(all(lp[len(p) - 1 + i].argmax().item() == a[i] for i in range(len(a))))
        ces.append(-sum(lp[t, p[t + 1]].item() for t in range(1, len(p) - 1)) / (len(p) - 2))
    assert math.isclose(out["baseline"]["logp"]["mean"], sum(logps) / len(logps), rel_tol=1e-5)
    assert out["baseline"]["acc_word"]["mean"] == sum(words) / len(words)
    assert math.isclose(out["baseline"]["ce"]["mean"], sum(ces) / len(ces), rel_tol=1e-5)
    assert out["baseline"]["logp"]["ci"] == [None, None]  # n_bootstrap = 0


def test_section_shape_and_classes(world: dict[str, Any]) -> None:
    out = run(world, ITEMS, n_bootstrap=20).cloze
    assert set(out) >= {"n_prompts", "n_truncated", "baseline", "per_sae", "prompts", "prompt_lengths"}
    assert out["n_prompts"] == len(ITEMS)
    for L in ("0", "1"):
        layer = out["per_sae"][L]
        for m in ("acc_first_token", "acc_word", "logp", "delta_logp", "ce", "delta_ce", "mse", "l0", "resid_norm"):
            assert set(layer[m]) == {"mean", "ci"}
            lo, hi = layer[m]["ci"]
            assert lo <= layer[m]["mean"] <= hi or math.isclose(lo, hi)
        classes = out["prompts"][L]["class"]
        assert layer["classes"] == {c: classes.count(c) for c in CLASSES}
        assert sum(layer["classes"].values()) == len(ITEMS)
        by = layer["by_bucket"]  # default buckets: inside [1, 8) and beyond [8, 32) the SAE's context 8
        assert list(by) == ["1-8", "8-32"]
        lengths = out["prompt_lengths"]  # the answer is predicted at position length - 1
        assert by["1-8"]["n"] == sum(n - 1 < 8 for n in lengths)
        assert by["8-32"]["n"] == sum(n - 1 >= 8 for n in lengths)
        assert by["1-8"]["n"] > 0 and by["8-32"]["n"] > 0
        inside = [i for i, n in enumerate(lengths) if n - 1 < 8]
        assert by["1-8"]["acc_first_token"]["mean"] == pytest.approx(
            sum(classes[i] in ("both_right", "spliced_only") for i in inside) / len(inside))
        # the class is the (clean, spliced) pair of first-token hits
        assert layer["acc_first_token"]["mean"] == pytest.approx(
            sum(c in ("both_right", "spliced_only") for c in classes) / len(classes))
    assert out["baseline"]["acc_first_token"]["mean"] == pytest.approx(
        sum(c in ("both_right", "clean_only") for c in out["prompts"]["0"]["class"]) / len(ITEMS))


def test_by_bucket_follows_the_given_buckets_and_an_empty_one_holds_only_its_count(world: dict[str, Any]) -> None:
    """Given buckets (as the engine's per_bucket) are used as they are, whatever the SAE's context, so two
    reports with the same buckets compare the same prompts; a bucket without prompts says n = 0 instead
    of null metrics (which ``sae-checks diff`` would call a regression)."""
    out = run(world, ITEMS, n_bootstrap=20, buckets={0: [(1, 4), (4, 30), (30, 32)], 1: [(1, 32)]}).cloze
    lengths = out["prompt_lengths"]
    by0 = out["per_sae"]["0"]["by_bucket"]
    assert list(by0) == ["1-4", "4-30", "30-32"]
    assert [by0[k]["n"] for k in by0] == [sum(a <= n - 1 < b for n in lengths) for a, b in ((1, 4), (4, 30), (30, 32))]
    assert by0["30-32"] == {"n": 0}
    by1 = out["per_sae"]["1"]["by_bucket"]
    assert list(by1) == ["1-32"] and by1["1-32"]["n"] == len(ITEMS)
    assert by1["1-32"]["delta_logp"]["mean"] == pytest.approx(out["per_sae"]["1"]["delta_logp"]["mean"])


def test_identity_sae_changes_nothing(world: dict[str, Any]) -> None:
    model = world["model"]
    saes = {L: loaded(identity_sae(model, L), L) for L in (0, 1)}
    items = [ClozeItem(it.prompt, it.answer, OPTIONS[:4]) for it in ITEMS[:3]]
    items.append(ClozeItem("She opened the door", "xylophonic", ("xylophonic", *OPTIONS[:3])))
    out = run(world, items, saes=saes, task="cbt", batch_size=3).cloze
    for L in ("0", "1"):
        p = out["prompts"][L]
        assert all(abs(v) < 1e-5 for v in p["delta_logp"])
        assert all(v is None or abs(v) < 1e-5 for v in p["delta_ce"])
        assert all(v < 1e-10 for v in p["mse"])
        for m in ("acc_first_token", "acc_word", "acc_choice"):
            assert out["per_sae"][L][m]["mean"] == out["baseline"][m]["mean"]
        assert out["per_sae"][L]["classes"]["clean_only"] == 0
        assert out["per_sae"][L]["classes"]["spliced_only"] == 0


def test_acc_choice_end_to_end(world: dict[str, Any]) -> None:
    """acc_choice agrees with picking, by hand, the option with the highest summed log-prob: items 0 and
    1 get that option as their answer, item 2 another one, so acc_choice must be exactly 2/3."""
    model, tok = world["model"], world["tok"]
    options = ("tree", "mat", "xylophonic", "dog")  # one multi-token option
    best = []
    for it in ITEMS[:3]:
        p = [tok.bos_token_id] + tok(it.prompt, add_special_tokens=False)["input_ids"]
        scores = []
        for o in options:
            a = tok(" " + o, add_special_tokens=False)["input_ids"]
            with torch.no_grad():
                lp = torch.log_softmax(model(torch.tensor([p + a]))[0].float(), -1)
            scores.append(sum(lp[len(p) - 1 + i, a[i]].item() for i in range(len(a))))
        best.append(options[max(range(len(options)), key=scores.__getitem__)])
    answers = [best[0], best[1], next(o for o in options if o != best[2])]
    items = [ClozeItem(it.prompt, ans, options) for it, ans in zip(ITEMS[:3], answers, strict=True)]
    out = run(world, items, task="cbt", batch_size=5).cloze
    assert out["baseline"]["acc_choice"]["mean"] == pytest.approx(2 / 3)
    assert set(out["per_sae"]["0"]["acc_choice"]) == {"mean", "ci"}


def test_leaked_hook_before_run_is_caught(world: dict[str, Any]) -> None:
    model = world["model"]
    sae = world["saes"][1].sae
    model.add_hook("blocks.1.hook_resid_pre", lambda act, hook: sae.decode(sae.encode(act)))
    try:
        with pytest.raises(RuntimeError, match="hooks leaked"):
            run(world, ITEMS[:2])
    finally:
        model.reset_hooks()
    run(world, ITEMS[:2])  # clean again


def test_splice_that_leaks_is_caught(world: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    """A splice pass that leaves its hook attached (the seed notebook's bug) fails the run: the kernel's
    splice pass (engine.kernel, shared with the engine) checks after every pass."""
    model = world["model"]
    real = kernel.forward_from

    def leaky(model: Any, hook_name: str, *args: Any, **kw: Any) -> Any:
        out = real(model, hook_name, *args, **kw)
        model.add_hook(hook_name, lambda act, hook: act * 0.5)
        return out

    monkeypatch.setattr(kernel, "forward_from", leaky)
    try:
        with pytest.raises(RuntimeError, match="hooks leaked"):
            run(world, ITEMS[:2])
    finally:
        model.reset_hooks()


def test_splice_bos_option_changes_bos_only_when_asked(world: dict[str, Any]) -> None:
    a = run(world, ITEMS[:3]).cloze
    b = run(world, ITEMS[:3], splice_bos=True).cloze
    assert a["splice_bos"] is False and b["splice_bos"] is True
    assert a["prompts"]["0"]["delta_logp"] != b["prompts"]["0"]["delta_logp"]


def test_cuda_oom_restarts_the_task_at_half_the_batch_size(world: dict[str, Any], tmp_path, monkeypatch, caplog) -> None:
    import json

    from sae_checks.config import RunConfig
    from sae_checks.experiments.tasks import run_tasks

    path = tmp_path / "cloze.jsonl"
    path.write_text("".join(json.dumps({"text": f"{i.prompt} {i.answer}"}) + "\n" for i in ITEMS))
    config = RunConfig(tasks=("lambada",), task_data=(("lambada", str(path)),), n_bootstrap=0, progress=False,
                       n_causal=0, batch_size=8, device="cpu")
    real = cloze_mod.run_cloze
    sizes = []

    def flaky(model: Any, saes: Any, items: Any, options: ClozeOptions, **kw: Any) -> Any:
        sizes.append(options.batch_size)
        if options.batch_size > 2:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory (simulated)")
        return real(model, saes, items, options, **kw)

    monkeypatch.setattr(cloze_mod, "run_cloze", flaky)
    cloze, _ = run_tasks(world["model"], world["saes"], config)
    assert sizes == [8, 4, 2]
    assert "lambada (task restarted); batch size halved to 2" in caplog.text  # logged (logger sae_checks)
    monkeypatch.setattr(cloze_mod, "run_cloze", real)
    direct, _ = run_tasks(world["model"], world["saes"], config.replace(batch_size=2))
    assert cloze["lambada"]["prompts"] == direct["lambada"]["prompts"]
    assert cloze["lambada"]["n_prompts"] == len(ITEMS)


# --- lm-evaluation-harness lambada (issue 10.4) ----------------------------------------------------

ODD_TEXTS = ["The cat sat on the mat", "The dog sat on\n   the log", "A bird  sang in the tree",
             "She opened the door and walked into the\tgarden", "Numbers: 0 1 2 3 4\n"]


def lm_eval_encode_pair(tok: Any, context: str, continuation: str) -> tuple[list[int], list[int]]:
    """lm-evaluation-harness v0.4 HFLM._encode_pair, written out here as the reference."""
    n_spaces = len(context) - len(context.rstrip())
    if n_spaces > 0:
        continuation = context[-n_spaces:] + continuation
        context = context[:-n_spaces]
    whole = tok(context + continuation, add_special_tokens=False)["input_ids"]
    ctx = tok(context, add_special_tokens=False)["input_ids"]
    return ctx, whole[len(ctx):]


def test_lambada_items_encode_as_lm_eval_and_ppl_matches_a_hand_computation(world: dict[str, Any], tmp_path) -> None:
    import json

    from sae_checks.loading.data import load_cloze

    model, tok = world["model"], world["tok"]
    path = tmp_path / "odd.jsonl"
    path.write_text("".join(json.dumps({"text": t}) + "\n" for t in ODD_TEXTS))
    items = load_cloze("lambada", str(path), n_prompts=10)
    enc = encode_items(tok, items, n_ctx=32)
    conts, words, sums = [], [], []
    for i, text in enumerate(ODD_TEXTS):
        ctx, cont = lm_eval_encode_pair(tok, text.rsplit(" ", 1)[0], " " + text.rsplit(" ", 1)[1])
        assert enc.prompts[i] == [tok.bos_token_id] + ctx and enc.answers[i] == cont, text
        conts.append(cont)
        p = enc.prompts[i]
        with torch.no_grad():
            lp = torch.log_softmax(model(torch.tensor([p + cont]))[0].double(), -1)
        sums.append(sum(lp[len(p) - 1 + j, cont[j]].item() for j in range(len(cont))))
        words.append(all(lp[len(p) - 1 + j].argmax().item() == cont[j] for j in range(len(cont))))
    assert enc.answers[1][0] != tok(" the", add_special_tokens=False)["input_ids"][0]  # whitespace moved in
    out = run(world, items, batch_size=2, n_bootstrap=20).cloze
    base = out["baseline"]
    assert math.isclose(base["cont_logp"]["mean"], sum(sums) / len(sums), rel_tol=1e-5)
    assert math.isclose(base["ppl"]["mean"], math.exp(-sum(sums) / len(sums)), rel_tol=1e-5)
    assert base["acc_word"]["mean"] == sum(words) / len(words)
    lo, hi = base["ppl"]["ci"]
    assert lo <= base["ppl"]["mean"] * (1 + 1e-9) and hi >= base["ppl"]["mean"] * (1 - 1e-9)
    for name in ("0", "1"):
        sae = out["per_sae"][name]
        assert math.isclose(sae["ppl"]["mean"], math.exp(-sae["cont_logp"]["mean"]), rel_tol=1e-9)


# --- non-finite logits (issue 12) ------------------------------------------------------------------


def test_argmax_over_nan_logits_is_no_answer() -> None:
    tokens = torch.tensor([[0, 1, 2]])  # BOS, prompt token 1, answer token 2
    logits = torch.zeros(1, 3, 4)
    logits[0, 1, 2] = float("nan")  # argmax returns the NaN's index = the answer
    assert logits[0, 1].argmax().item() == 2
    s = cloze_scores(logits, tokens, torch.tensor([2]), torch.tensor([1]))
    assert not s.correct_first.item() and not s.correct_word.item() and not s.finite.item()
    logits[0, 1, 2] = 5.0
    s = cloze_scores(logits, tokens, torch.tensor([2]), torch.tensor([1]))
    assert s.correct_first.item() and s.finite.item()


def nan_sae(world: dict[str, Any], layer: int) -> LoadedSAE:
    sae = tiny_sae(world["model"], layer, context_size=8)
    with torch.no_grad():
        sae.W_dec[:] = float("nan")  # every spliced logit NaN
    return loaded(sae, layer, context_size=8)


def test_nonfinite_prompts_are_counted_recorded_and_fail_the_means(world: dict[str, Any]) -> None:
    saes = {"good": world["saes"][0], "bad": nan_sae(world, 1)}
    out = run(world, ITEMS, saes=saes, batch_size=4, n_bootstrap=20).cloze
    assert out["n_nonfinite"] == {"clean": 0, "good": 0, "bad": len(ITEMS)}
    assert out["nonfinite"] == [{"sae": "bad", "layer": 1, "where": "cloze:lambada", "sequence": 0,
                                 "position": None}]
    bad = out["per_sae"]["bad"]
    for metric in ("acc_first_token", "acc_word", "delta_logp", "delta_ce", "logp", "ppl", "mse"):
        assert bad[metric] == {"mean": None, "ci": [None, None]}, metric  # None fails the gate's judge
    assert bad["classes"]["both_right"] == 0 and bad["classes"]["spliced_only"] == 0
    assert all(v is None for v in out["prompts"]["bad"]["delta_logp"])
    good = out["per_sae"]["good"]
    assert good["delta_logp"]["mean"] is not None and out["baseline"]["acc_word"]["mean"] is not None
