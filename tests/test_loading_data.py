"""load_sequences and load_cloze: packing, reproducible sampling, every source kind, and one test per
error (each checks that the message names the culprit: file, line, field, numbers)."""

from __future__ import annotations

import json
import sys
import time
import types

import pytest
import torch

from sae_checks.errors import ConfigError, DataError, OfflineError
from sae_checks.loading.data import ClozeItem, load_cloze, load_sequences
from tests.tiny import tiny_tokenizer

DOCS = [f"Document number {i} says that the cat sat on the mat {i} times." for i in range(40)]


@pytest.fixture(scope="module")
def tok(tmp_path_factory):
    return tiny_tokenizer(tmp_path_factory.mktemp("tok"))


@pytest.fixture
def jsonl(tmp_path):
    path = tmp_path / "docs.jsonl"
    path.write_text("".join(json.dumps({"text": d, "id": i}) + "\n" for i, d in enumerate(DOCS)))
    return path


def write_jsonl(path, records):
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


# --- sequences -------------------------------------------------------------------------------------


def test_jsonl_rows_are_bos_plus_packed_documents(tok, jsonl):
    rows = load_sequences(str(jsonl), tok, n_seqs=6, ctx_len=12, seed=3)
    assert rows.dtype == torch.long and rows.shape == (6, 12)
    assert (rows[:, 0] == tok.bos_token_id).all()
    # the bodies, concatenated, are the shuffled documents joined by EOS
    body = rows[:, 1:].reshape(-1).tolist()
    stream = []
    for doc in _shuffled(DOCS, 3):
        stream += tok(doc, add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
    assert body == stream[: len(body)]


def _shuffled(docs, seed):
    import random

    docs = list(docs)
    random.Random(seed).shuffle(docs)
    return docs


def test_sampling_is_reproducible_with_the_seed(tok, jsonl):
    a = load_sequences(str(jsonl), tok, n_seqs=4, ctx_len=10, seed=0)
    b = load_sequences(str(jsonl), tok, n_seqs=4, ctx_len=10, seed=0)
    c = load_sequences(str(jsonl), tok, n_seqs=4, ctx_len=10, seed=1)
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_custom_text_field(tok, tmp_path):
    path = write_jsonl(tmp_path / "c.jsonl", [{"content": d} for d in DOCS])
    assert load_sequences(str(path), tok, n_seqs=2, ctx_len=8, text_field="content").shape == (2, 8)


def test_txt_is_one_document(tok, tmp_path):
    path = tmp_path / "book.txt"
    path.write_text(" ".join(DOCS))
    rows = load_sequences(str(path), tok, n_seqs=3, ctx_len=9)
    expected = tok(" ".join(DOCS), add_special_tokens=False)["input_ids"][:24]
    assert rows[:, 1:].reshape(-1).tolist() == expected and (rows[:, 0] == tok.bos_token_id).all()


def test_parquet(tok, tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = tmp_path / "docs.parquet"
    pq.write_table(pa.table({"text": DOCS, "n": list(range(len(DOCS)))}), path)
    rows = load_sequences(str(path), tok, n_seqs=5, ctx_len=16, seed=2)
    jl = write_jsonl(tmp_path / "same.jsonl", [{"text": d} for d in DOCS])
    assert torch.equal(rows, load_sequences(str(jl), tok, n_seqs=5, ctx_len=16, seed=2))
    with pytest.raises(DataError, match=r"docs\.parquet: no field 'body'; fields present: \['text', 'n'\]"):
        load_sequences(str(path), tok, n_seqs=1, ctx_len=8, text_field="body")


def test_ctx_len_beyond_model_context_names_both(tok, jsonl):
    with pytest.raises(ConfigError, match=r"ctx_len=64: exceeds the model's context n_ctx=32"):
        load_sequences(str(jsonl), tok, n_seqs=1, ctx_len=64, n_ctx=32)


def test_too_little_text_says_how_many_were_possible(tok, tmp_path):
    path = write_jsonl(tmp_path / "short.jsonl", [{"text": "The cat sat on the mat."}])  # 7 tokens + EOS
    with pytest.raises(DataError, match=r"short\.jsonl: too little text: 8 tokens available, 12 needed for n_seqs=3 sequences of "
                       r"ctx_len=5 .*2 sequences fit"):
        load_sequences(str(path), tok, n_seqs=3, ctx_len=5)


def test_missing_field_names_field_file_line_and_fields_present(tok, tmp_path):
    path = write_jsonl(tmp_path / "mixed.jsonl", [{"text": "a b c"}, {"body": "x", "id": 2}])
    with pytest.raises(DataError, match=r"mixed\.jsonl:2: no field 'text'; fields present: \['body', 'id'\]"):
        load_sequences(str(path), tok, n_seqs=1, ctx_len=4)


def test_malformed_jsonl_names_file_and_line(tok, tmp_path):
    path = tmp_path / "broken.jsonl"
    path.write_text('{"text": "fine"}\n\n{"text": oops}\n')
    with pytest.raises(DataError, match=r"broken\.jsonl:3: malformed JSON line"):
        load_sequences(str(path), tok, n_seqs=1, ctx_len=4)


def test_missing_file(tok, tmp_path):
    with pytest.raises(DataError, match=r"nope\.jsonl: data file not found"):
        load_sequences(str(tmp_path / "nope.jsonl"), tok, n_seqs=1, ctx_len=4)


@pytest.fixture
def offline_datasets_cache(empty_offline_hub, monkeypatch):
    """An empty datasets cache, offline: where a user copies what ``load_dataset`` wrote on a networked
    machine (tests fill it with tests.hf_cache.add_cached_dataset). datasets and huggingface_hub read
    these settings at import time, so their module constants are patched too."""
    import datasets
    from huggingface_hub import constants

    cache = empty_offline_hub.parent / "datasets"
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True, raising=False)
    monkeypatch.setattr(datasets.config, "HF_DATASETS_OFFLINE", True, raising=False)
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", cache)
    return cache


def test_hf_dataset_not_cached_offline_fails_fast(tok, offline_datasets_cache):
    start = time.perf_counter()
    with pytest.raises(OfflineError, match=r"dataset 'Skylion007/openwebtext' \(config None, split 'train'\)"):
        load_sequences("Skylion007/openwebtext", tok, n_seqs=1, ctx_len=8)
    assert time.perf_counter() - start < 5


def test_zoo_tokens_sampled_by_seed_and_cut(tok, monkeypatch):
    tokens = torch.arange(5 * 20).reshape(5, 20)
    fake = types.ModuleType("sae_checks.zoo")
    fake.zoo_eval_tokens = lambda: tokens  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "sae_checks.zoo", fake)
    a = load_sequences("zoo", tok, n_seqs=3, ctx_len=8, seed=0)
    assert a.shape == (3, 8) and torch.equal(a, load_sequences("zoo", tok, n_seqs=3, ctx_len=8, seed=0))
    rows = {int(r[0]) // 20 for r in a}
    assert len(rows) == 3 and all(torch.equal(r, tokens[int(r[0]) // 20, :8]) for r in a)
    others = {tuple(load_sequences("zoo", tok, n_seqs=3, ctx_len=8, seed=s)[:, 0].tolist()) for s in range(1, 6)}
    assert len(others) > 1  # another seed, another sample
    assert torch.equal(load_sequences("zoo", tok, n_seqs=5, ctx_len=20, seed=3), tokens)  # all rows, in order
    with pytest.raises(DataError, match=r"only 5 sequences available, n_seqs=6"):
        load_sequences("zoo", tok, n_seqs=6, ctx_len=8)
    with pytest.raises(ConfigError, match=r"ctx_len=21: the zoo's eval sequences have 20 tokens"):
        load_sequences("zoo", tok, n_seqs=1, ctx_len=21)


# --- cloze -----------------------------------------------------------------------------------------


def test_lambada_prompt_and_answer(tmp_path):
    path = write_jsonl(tmp_path / "lambada.jsonl", [
        {"text": "she handed him the cup and he drank the tea"},
        {"text": "  trailing space is stripped\n"},
        {"text": "a third record"},
    ])
    items = load_cloze("lambada", str(path), n_prompts=2)  # lm-eval's split: whitespace left where it is
    assert items == [ClozeItem("she handed him the cup and he drank the", "tea", None, " tea"),
                     ClozeItem("  trailing space is", "stripped\n", None, " stripped\n")]
    assert items[0].options is None
    words = load_cloze("lambada", str(path), n_prompts=2, lambada_split="words")  # the older split
    assert words == [ClozeItem("she handed him the cup and he drank the", "tea"),
                     ClozeItem("  trailing space is", "stripped")]


ODD = ["a b  c", "first line\n   word", "tab\tsep last", "ends here\n", "two\u00a0spaces\u00a0nbsp x",
       "lead  double  gap"]


def test_lambada_split_is_lm_eval_rule_on_odd_whitespace(tmp_path):
    """lm-eval lambada_openai: doc_to_text = text.split(' ')[:-1] joined, doc_to_target = ' ' + last."""
    path = write_jsonl(tmp_path / "odd.jsonl", [{"text": t} for t in ODD])
    items = load_cloze("lambada", str(path), n_prompts=len(ODD))
    for text, item in zip(ODD, items, strict=True):
        lm_eval_context = " ".join(text.split(" ")[:-1])
        lm_eval_target = " " + text.split(" ")[-1]
        assert (item.prompt, item.continuation) == (lm_eval_context, lm_eval_target)
        assert (item.prompt, item.continuation) == (text.rsplit(" ", 1)[0], " " + text.rsplit(" ", 1)[1])
        assert item.prompt + item.continuation == text  # nothing dropped, nothing moved


def test_lambada_missing_text_and_one_word(tmp_path):
    path = write_jsonl(tmp_path / "l.jsonl", [{"text": "a b"}, {"sentence": "x"}])
    with pytest.raises(DataError, match=r"l\.jsonl:2: no field 'text'; fields present: \['sentence'\]"):
        load_cloze("lambada", str(path), n_prompts=5)
    path = write_jsonl(tmp_path / "one.jsonl", [{"text": "alone"}])
    with pytest.raises(DataError, match=r"one\.jsonl:1: field 'text' needs at least two words"):
        load_cloze("lambada", str(path), n_prompts=5)


def cbt_record(**changes):
    record = {"sentences": [f"Sentence {i} ." for i in range(20)], "question": "The XXXXX ran home .",
              "answer": "dog", "options": [f"w{i}" for i in range(9)] + ["dog"]}
    record.update(changes)
    return record


def test_cbt_prompt_answer_options(tmp_path):
    path = write_jsonl(tmp_path / "cbt.jsonl", [cbt_record(), cbt_record(question="XXXXX was there .")])
    first, second = load_cloze("cbt", str(path), n_prompts=10)
    assert first.prompt == " ".join(f"Sentence {i} ." for i in range(20)) + " The"
    assert first.answer == "dog" and first.options is not None and len(first.options) == 10
    assert second.prompt.endswith("Sentence 19 .")


@pytest.mark.parametrize("field", ["sentences", "question", "answer", "options"])
def test_cbt_missing_field_names_field_and_line(tmp_path, field):
    bad = cbt_record()
    del bad[field]
    path = write_jsonl(tmp_path / "cbt.jsonl", [cbt_record(), bad])
    with pytest.raises(DataError, match=rf"cbt\.jsonl:2: no field '{field}'"):
        load_cloze("cbt", str(path), n_prompts=10)


def test_cbt_malformed_fields(tmp_path):
    path = write_jsonl(tmp_path / "cbt.jsonl", [cbt_record(question="no blank here")])
    with pytest.raises(DataError, match=r"cbt\.jsonl:1: field 'question' has no blank 'XXXXX'"):
        load_cloze("cbt", str(path), n_prompts=1)
    path = write_jsonl(tmp_path / "cbt2.jsonl", [cbt_record(options="dog")])
    with pytest.raises(DataError, match=r"cbt2\.jsonl:1: field 'options' must be a non-empty list of strings"):
        load_cloze("cbt", str(path), n_prompts=1)


def test_cloze_zoo_source(tmp_path, monkeypatch):
    path = write_jsonl(tmp_path / "zoo_cloze.jsonl", [{"text": "the end of the story"}])
    fake = types.ModuleType("sae_checks.zoo")
    fake.zoo_cloze_path = lambda: path  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "sae_checks.zoo", fake)
    assert load_cloze("lambada", "zoo", n_prompts=3) == [ClozeItem("the end of the", "story", None, " story")]
    with pytest.raises(DataError, match=r"cloze task 'cbt': the zoo only ships lambada"):
        load_cloze("cbt", "zoo", n_prompts=3)


def test_cloze_hf_dataset_offline(offline_datasets_cache):
    with pytest.raises(OfflineError, match=r"dataset 'cam-cst/cbt' \(config 'CN', split 'test'\)"):
        load_cloze("cbt", "cam-cst/cbt", n_prompts=5)


def test_cloze_hf_dataset_from_the_local_datasets_cache(offline_datasets_cache):
    from tests.hf_cache import add_cached_dataset

    texts = ["the cat sat on the mat and the cat", "a dog saw a big dog", "one more line here"]
    add_cached_dataset(offline_datasets_cache, "EleutherAI/lambada_openai", {"text": texts})
    items = load_cloze("lambada", "EleutherAI/lambada_openai", n_prompts=2)
    assert [(i.prompt, i.answer) for i in items] == [("the cat sat on the mat and the", "cat"), ("a dog saw a big", "dog")]


def test_cbt_hf_dataset_config_from_the_local_datasets_cache(offline_datasets_cache):
    from tests.hf_cache import add_cached_dataset

    row = {"sentences": [[f"Sentence {i} ." for i in range(20)]], "question": ["The XXXXX sat ."],
           "answer": ["cat"], "options": [["cat", "dog", "mat", "hat", "bat", "rat", "car", "cap", "cup", "can"]]}
    add_cached_dataset(offline_datasets_cache, "cam-cst/cbt", row, config_name="CN")
    (item,) = load_cloze("cbt", "cam-cst/cbt", n_prompts=5)
    assert item.answer == "cat" and item.options is not None and len(item.options) == 10
    assert item.prompt.startswith("Sentence 0 .") and item.prompt.endswith("The")


def test_web_text_hf_dataset_from_the_local_datasets_cache(tok, offline_datasets_cache):
    from tests.hf_cache import add_cached_dataset

    docs = [" ".join(["the cat sat on the mat"] * 5), " ".join(["a dog saw a log"] * 5)]
    add_cached_dataset(offline_datasets_cache, "Skylion007/openwebtext", {"text": docs}, split="train")
    a = load_sequences("Skylion007/openwebtext", tok, n_seqs=3, ctx_len=8, seed=0)
    assert a.shape == (3, 8) and (a[:, 0] == tok.bos_token_id).all()
    assert torch.equal(a, load_sequences("Skylion007/openwebtext", tok, n_seqs=3, ctx_len=8, seed=0))


def test_unknown_task():
    with pytest.raises(ConfigError, match=r"tasks='hellaswag'"):
        load_cloze("hellaswag", "zoo", n_prompts=1)  # type: ignore[arg-type]


@pytest.mark.parametrize("suffix", [".txt", ".jsonl"])
def test_non_utf8_text_names_file_and_byte_offset(tok, tmp_path, suffix):
    path = tmp_path / f"latin1{suffix}"
    first = b'{"text": "all fine"}\n' if suffix == ".jsonl" else b"all fine\n"
    path.write_bytes(first + '{"text": "caf\u00e9"}\n'.encode("latin-1"))  # 0xe9 is not UTF-8 here
    offset = len(first) + len(b'{"text": "caf')
    with pytest.raises(DataError) as info:
        load_sequences(str(path), tok, n_seqs=1, ctx_len=4)
    msg = str(info.value)
    assert msg.startswith(f"{path}: not UTF-8 text at byte offset {offset} (line 2, byte 0xe9")
    assert "iconv" in msg and "\n" not in msg
    if suffix == ".jsonl":  # cloze files go through the same reader
        with pytest.raises(DataError, match=f"byte offset {offset} "):
            load_cloze("lambada", str(path), n_prompts=2)


# --- data follows the model (issue 14.2) ------------------------------------------------------------


def test_data_default_follows_the_model_and_zoo_data_needs_the_zoo_model():
    from sae_checks.config import DEFAULT_DATA, RunConfig

    assert RunConfig().data is None and RunConfig().data_source == "zoo"
    gpt2 = RunConfig(model="gpt2-small")
    assert gpt2.data_source == DEFAULT_DATA == "Skylion007/openwebtext" and gpt2.data_split == "train"
    assert gpt2.n_seqs_for(1024) == 98  # ~100k tokens, not the zoo's 64 rows
    assert RunConfig(model="gpt2-small", data="x.jsonl").data_source == "x.jsonl"
    assert RunConfig(data="zoo").validate().data_source == "zoo"  # explicit zoo with the zoo model: fine
    with pytest.raises(ConfigError, match=r"data='zoo': the zoo's tokens .* model 'gpt2-small'.*--data"):
        RunConfig(model="gpt2-small", data="zoo").validate()


def test_token_ids_outside_the_vocabulary_are_refused_in_one_line(tok, jsonl, monkeypatch):
    big = max(tok(d, add_special_tokens=False)["input_ids"] for d in DOCS)
    d_vocab = 50  # smaller than the tokenizer's: its ids run past the model's vocabulary
    with pytest.raises(DataError, match=rf"docs\.jsonl: token id \d+ outside the model's vocabulary \(max id "
                                        rf"\d+, d_vocab={d_vocab}\)") as err:
        load_sequences(str(jsonl), tok, n_seqs=6, ctx_len=12, seed=3, d_vocab=d_vocab)
    assert "\n" not in str(err.value) and max(big) >= d_vocab
    assert load_sequences(str(jsonl), tok, n_seqs=6, ctx_len=12, seed=3, d_vocab=len(tok)).shape == (6, 12)
    tokens = torch.arange(5 * 20).reshape(5, 20)
    fake = types.ModuleType("sae_checks.zoo")
    fake.zoo_eval_tokens = lambda: tokens  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "sae_checks.zoo", fake)
    with pytest.raises(DataError, match=r"data 'zoo' .*token id 99 .*max id 99, d_vocab=64\)"):
        load_sequences("zoo", tok, n_seqs=5, ctx_len=20, d_vocab=64)


@pytest.mark.parametrize("column", ["input_ids", "tokens"])
def test_pre_tokenized_jsonl_rows_are_used_as_is_with_bos_prepended_when_missing(tok, tmp_path, column):
    bos = tok.bos_token_id
    rows = [[bos, 5, 6, 7, 8, 9], [11, 12, 13, 14, 15, 16, 17], [1, 2], [bos, 21, 22, 23, 24, 25, 26, 27]]
    path = write_jsonl(tmp_path / "tok.jsonl", [{column: r, "text": "ignored"} for r in rows])
    got = load_sequences(str(path), tok, n_seqs=3, ctx_len=6, seed=0, d_vocab=len(tok))
    want = {(bos, 5, 6, 7, 8, 9), (bos, 11, 12, 13, 14, 15), (bos, 21, 22, 23, 24, 25)}  # [1, 2] too short
    assert {tuple(r) for r in got.tolist()} == want
    with pytest.raises(DataError, match=r"only 3 of n_seqs=4 .*1 rows are shorter \(longest 8\).*--ctx-len 8"):
        load_sequences(str(path), tok, n_seqs=4, ctx_len=6, d_vocab=len(tok))


def test_pre_tokenized_parquet_and_hf_dataset(tok, tmp_path, offline_datasets_cache):
    import pyarrow as pa
    import pyarrow.parquet as pq

    from tests.hf_cache import add_cached_dataset

    bos = tok.bos_token_id
    rows = [[bos] + list(range(10 * i + 1, 10 * i + 8)) for i in range(4)]
    path = tmp_path / "tok.parquet"
    pq.write_table(pa.table({"input_ids": rows}), path)
    got = load_sequences(str(path), tok, n_seqs=4, ctx_len=8, d_vocab=len(tok))
    assert sorted(got.tolist()) == sorted(rows)
    add_cached_dataset(offline_datasets_cache, "someone/owt-tokenized", {"tokens": [r[1:] for r in rows]},
                       split="train")
    hub = load_sequences("someone/owt-tokenized", tok, n_seqs=4, ctx_len=8, d_vocab=len(tok))
    assert sorted(hub.tolist()) == sorted(rows)  # BOS prepended to rows without it
    with pytest.raises(DataError, match=r"someone/owt-tokenized.*token id 37 .*d_vocab=30\).*another tokenizer"):
        load_sequences("someone/owt-tokenized", tok, n_seqs=4, ctx_len=8, d_vocab=30)


def test_data_tokenized_by_a_recorded_other_tokenizer_is_refused(tok, tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    from sae_checks.loading.data import tokenizer_info

    own = tokenizer_info(tok)["tokenizer"]
    rows = [{"input_ids": [tok.bos_token_id, 3, 4, 5], "tokenizer": name} for name in (own, "EleutherAI/pythia-70m")]
    path = write_jsonl(tmp_path / "tok.jsonl", rows)
    with pytest.raises(DataError, match=r"tok\.jsonl:2: pre-tokenized with tokenizer 'EleutherAI/pythia-70m'"):
        load_sequences(str(path), tok, n_seqs=2, ctx_len=4, seed=0)
    ok = write_jsonl(tmp_path / "ok.jsonl", rows[:1])  # the model's own tokenizer, recorded: accepted
    assert load_sequences(str(ok), tok, n_seqs=1, ctx_len=4).tolist() == [[tok.bos_token_id, 3, 4, 5]]
    table = pa.table({"input_ids": [[0, 1, 2, 3]]}).replace_schema_metadata({"tokenizer": "gpt2"})
    pq.write_table(table, tmp_path / "t.parquet")
    with pytest.raises(DataError, match=r"t\.parquet row 0: pre-tokenized with tokenizer 'gpt2'.*model's "
                                        rf"tokenizer is '{own}'"):
        load_sequences(str(tmp_path / "t.parquet"), tok, n_seqs=1, ctx_len=4)


def test_tokenizer_name_and_vocabulary_hash(tok, tmp_path):
    from sae_checks.loading.data import same_tokenizer, tokenizer_info

    info = tokenizer_info(tok)
    assert info["tokenizer"].startswith("tok")  # the folder's name, not the machine's path
    assert "/" not in info["tokenizer"] and len(info["tokenizer_sha256"]) == 64
    assert tokenizer_info(tok) == info
    other = tiny_tokenizer(tmp_path / "tok", vocab_size=300)
    assert tokenizer_info(other)["tokenizer_sha256"] != info["tokenizer_sha256"]
    assert same_tokenizer("openai-community/gpt2", "gpt2") and not same_tokenizer("gpt2", "EleutherAI/pythia-70m")
