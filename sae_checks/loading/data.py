"""Load evaluation data: packed token sequences (web text) and cloze prompts (Lambada, CBT-CN).

Sequences (:func:`load_sequences`): text is tokenized without special tokens, documents are joined by the
EOS token (BOS when the tokenizer has none; both are ``<|endoftext|>`` for GPT-2), and the stream is cut
into rows of ``ctx_len - 1`` tokens, each prefixed with BOS, so every row is ``[BOS, t_1 … t_{ctx_len-1}]``
and position 0 is always BOS (docs/definitions.md). Sampling is reproducible: local documents are
shuffled with ``random.Random(seed)``; a streamed HF dataset with ``ds.shuffle(seed, buffer_size)``.

Pre-tokenized data (records with a token column, ``input_ids`` or ``tokens``, in a local .jsonl/.parquet
file or a HF dataset; the column wins over the text field, as in sae_lens' ``ActivationsStore``): each
record's token row is used as-is, one sequence per row, BOS prepended when the row does not start with it
(sae_lens' ``prepend_bos``), cut to ``ctx_len``; rows shorter than ``ctx_len`` are skipped. Data tokenized
with another tokenizer is refused when that can be told: an id ``>= d_vocab``, or a recorded tokenizer name
(a ``tokenizer`` field, or ``tokenizer`` in a parquet file's metadata) that is not the model's.
Every source (the zoo's tokens too) is checked against the model's vocabulary: ids must lie in
``[0, d_vocab)``.

Cloze prompts (:func:`load_cloze`): the first ``n_prompts`` records in file order, as
``ClozeItem(prompt, answer, options, continuation)``, each record read by its task's declaration
(``sae_checks.tasks``: lambada is split exactly as lm-evaluation-harness' ``lambada_openai``, CBT items
score ``" " + answer``).

Before any model loads, :func:`check_tasks_available` and :func:`check_sequences_available` refuse what
would fail only after the engine ran: a task whose dataset is not available offline, a local text file
too short for the sequences asked for.
"""

from __future__ import annotations

import itertools
import json
import random
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, Literal, NamedTuple

from sae_checks.config import RunConfig
from sae_checks.errors import ConfigError, DataError, OfflineError
from sae_checks.loading import hub_offline
from sae_checks.tasks import ClozeItem, ClozeTask, get_task, task_source

__all__ = ["ClozeItem", "check_sequences_available", "check_tasks_available", "load_cloze", "load_sequences",
           "iter_jsonl", "tokenizer_info"]

LOCAL_SUFFIXES = (".jsonl", ".json", ".txt", ".parquet")
SHUFFLE_BUFFER = 10_000  # streamed-dataset shuffle buffer (documents)
# Default configs of HF datasets a task reads other than its own (its own: the task's hub_config).
CLOZE_DEFAULT_CONFIGS = {"lambada": "plain_text"}
TOKEN_COLUMNS = ("input_ids", "tokens")  # pre-tokenized data (sae_lens' names), first found wins
TOKENIZER_FIELD = "tokenizer"  # a field / parquet metadata key naming the tokenizer that made the ids


# --- sequences -------------------------------------------------------------------------------------


def load_sequences(
    source: str, tokenizer: Any, *, n_seqs: int, ctx_len: int, seed: int = 0, split: str = "train",
    config_name: str | None = None, text_field: str = "text", n_ctx: int | None = None, d_vocab: int | None = None,
) -> Any:
    """``n_seqs`` packed token rows ``(n_seqs, ctx_len)`` (LongTensor), BOS first (see module docstring).

    ``source``: ``"zoo"`` (the zoo's held-out tokens: the first ``n_seqs`` rows cut to ``ctx_len``), a
    local ``.jsonl`` (one record per line, text in ``text_field`` or token ids in ``input_ids``/``tokens``),
    ``.txt`` (the whole file is one document) or ``.parquet`` (column ``text_field``, ``input_ids`` or
    ``tokens``) file, or a HF dataset id (streamed, e.g. ``Skylion007/openwebtext``). ``n_ctx`` is the
    model's context; ``ctx_len`` may not exceed it. ``d_vocab`` is the model's vocabulary size: ids at or
    above it are refused (``DataError`` naming the source, the largest id and ``d_vocab``).
    """
    import torch

    if ctx_len < 2:
        raise ConfigError("ctx_len", ctx_len, "must be >= 2 (BOS plus one token)")
    if n_seqs < 1:
        raise ConfigError("n_seqs", n_seqs, "must be >= 1")
    if n_ctx is not None and ctx_len > n_ctx:
        raise ConfigError("ctx_len", ctx_len, f"exceeds the model's context n_ctx={n_ctx}", f"use ctx_len <= {n_ctx}")
    if source == "zoo":
        return _check_vocab(_zoo_sequences(n_seqs, ctx_len, seed), d_vocab, "data 'zoo' (the zoo's eval tokens)",
                            pretokenized=True)

    bos = getattr(tokenizer, "bos_token_id", None)
    if bos is None:
        raise DataError(f"tokenizer {getattr(tokenizer, 'name_or_path', tokenizer)!r} has no bos_token_id; "
                        "cannot prefix sequences with BOS")
    eos = getattr(tokenizer, "eos_token_id", None)
    sep = eos if eos is not None else bos
    if _is_local(source):
        docs: Iterable[str | TokenRow] = _local_documents(Path(source).expanduser(), text_field, seed)
        what = str(source)
    else:
        docs = _hub_documents(source, config_name, split, text_field, seed)
        what = f"dataset {source!r} (config {config_name!r}, split {split!r})"
    docs = iter(docs)
    first = next(docs, None)
    if isinstance(first, TokenRow):
        rows_t = _token_sequences(itertools.chain([first], docs), tokenizer, bos, n_seqs, ctx_len, what)
        return _check_vocab(rows_t, d_vocab, what, pretokenized=True)
    docs = itertools.chain([first], docs) if first is not None else iter(())

    rows: list[list[int]] = []
    buf: list[int] = []
    n_tokens, body = 0, ctx_len - 1
    for doc in docs:
        if isinstance(doc, TokenRow):  # a token row after text records
            raise DataError(f"{doc.where}: mixes pre-tokenized rows with text; use one or the other")
        ids = tokenizer(doc, add_special_tokens=False)["input_ids"]
        buf.extend(ids)
        buf.append(sep)
        n_tokens += len(ids) + 1
        while len(buf) >= body and len(rows) < n_seqs:
            rows.append([bos] + buf[:body])
            del buf[:body]
        if len(rows) >= n_seqs:
            break
    if len(rows) < n_seqs:
        need = n_seqs * body
        raise DataError(
            f"{what}: too little text: {n_tokens} tokens available, {need} needed for n_seqs={n_seqs} sequences "
            f"of ctx_len={ctx_len} ({body} text tokens each after BOS; {len(rows)} sequences fit); lower n_seqs "
            "or ctx_len, or use more text"
        )
    return _check_vocab(torch.tensor(rows, dtype=torch.long), d_vocab, what, pretokenized=False)


class TokenRow(NamedTuple):
    """One pre-tokenized record: its ids, where it came from, and the tokenizer it names (if any)."""

    ids: list[int]
    where: str  # file:line, file row i, or dataset record i
    tokenizer: str | None  # the record's / file's recorded tokenizer name


def _token_row(record: dict[str, Any], column: str, where: str, recorded: str | None = None) -> TokenRow:
    ids = record.get(column)
    if not isinstance(ids, (list, tuple)) or not all(isinstance(i, int) and not isinstance(i, bool) for i in ids):
        raise DataError(f"{where}: field {column!r} must be a list of integer token ids, got {str(ids)[:80]}")
    name = record.get(TOKENIZER_FIELD) or recorded
    return TokenRow(list(ids), where, name if isinstance(name, str) and name else None)


def _token_column(fields: Iterable[str]) -> str | None:
    fields = list(fields)
    return next((c for c in TOKEN_COLUMNS if c in fields), None)


def _token_sequences(rows: Iterable[str | TokenRow], tokenizer: Any, bos: int, n_seqs: int, ctx_len: int,
                     what: str) -> Any:
    """Pre-tokenized rows as-is (module docstring): BOS prepended when missing, cut to ``ctx_len``,
    shorter rows skipped; a recorded tokenizer other than the model's is refused."""
    import torch

    model_tok = tokenizer_info(tokenizer)["tokenizer"]
    out: list[list[int]] = []
    n_short, longest = 0, 0
    for row in rows:
        if not isinstance(row, TokenRow):
            raise DataError(f"{what}: mixes pre-tokenized rows with text records; use one or the other")
        if row.tokenizer is not None and model_tok and not same_tokenizer(row.tokenizer, model_tok):
            raise DataError(f"{row.where}: pre-tokenized with tokenizer {row.tokenizer!r} (field "
                            f"{TOKENIZER_FIELD!r}) but the model's tokenizer is {model_tok!r}; token ids differ "
                            "between tokenizers: tokenize the text with the model's tokenizer, or pass the text")
        ids = row.ids if row.ids[:1] == [bos] else [bos] + row.ids
        longest = max(longest, len(ids))
        if len(ids) < ctx_len:
            n_short += 1
            continue
        out.append(ids[:ctx_len])
        if len(out) >= n_seqs:
            break
    if len(out) < n_seqs:
        raise DataError(f"{what}: pre-tokenized rows give only {len(out)} of n_seqs={n_seqs} sequences of "
                        f"ctx_len={ctx_len} tokens (BOS included); {n_short} rows are shorter (longest "
                        f"{longest}); lower ctx_len (e.g. --ctx-len {longest}) or n_seqs")
    return torch.tensor(out, dtype=torch.long)


def _check_vocab(rows: Any, d_vocab: int | None, what: str, *, pretokenized: bool) -> Any:
    """``rows`` unchanged when every id lies in [0, d_vocab); else a one-line DataError."""
    if d_vocab is None or rows.numel() == 0:
        return rows
    hi, lo = int(rows.max()), int(rows.min())
    if hi >= d_vocab or lo < 0:
        bad = hi if hi >= d_vocab else lo
        hint = ("data tokenized with another tokenizer? pass text, or ids from the model's tokenizer"
                if pretokenized else "the tokenizer's vocabulary is larger than the model's: use the model's "
                "own tokenizer")
        raise DataError(f"{what}: token id {bad} outside the model's vocabulary (max id {hi}, d_vocab={d_vocab}); "
                        f"{hint}")
    return rows


def same_tokenizer(a: str, b: str) -> bool:
    """Whether two tokenizer names name the same tokenizer: compared by their last path component,
    case-insensitively (``openai-community/gpt2`` = ``gpt2``)."""
    def base(name: str) -> str:
        return name.rstrip("/").rsplit("/", 1)[-1].lower()

    return base(a) == base(b)


def tokenizer_info(tokenizer: Any) -> dict[str, str]:
    """``{"tokenizer": name, "tokenizer_sha256": hash}`` for ``provenance.data``: the tokenizer's
    ``name_or_path`` (the last component only for a local absolute path, which differs between machines)
    and the SHA-256 of its vocabulary (``get_vocab()``, sorted ``[token, id]`` pairs as JSON, added tokens
    included), so two runs that tokenized differently can be told apart."""
    import hashlib
    import os

    name = str(getattr(tokenizer, "name_or_path", "") or "")
    if os.path.isabs(name):
        name = Path(name).name
    vocab = tokenizer.get_vocab() if hasattr(tokenizer, "get_vocab") else {}
    blob = json.dumps(sorted(vocab.items(), key=lambda kv: (kv[1], kv[0])), ensure_ascii=False)
    return {"tokenizer": name, "tokenizer_sha256": hashlib.sha256(blob.encode("utf-8")).hexdigest() if vocab else ""}


def _zoo_sequences(n_seqs: int, ctx_len: int, seed: int) -> Any:
    """``n_seqs`` of the zoo's held-out sequences, drawn without replacement with ``seed``."""
    import torch

    from sae_checks.zoo import zoo_eval_tokens

    try:
        tokens = zoo_eval_tokens()  # (N, n_ctx)
    except FileNotFoundError as err:  # zoo files not built
        raise DataError(f"data 'zoo': {err}") from err
    n, t = tokens.shape
    if ctx_len > t:
        raise ConfigError("ctx_len", ctx_len, f"the zoo's eval sequences have {t} tokens", f"use ctx_len <= {t}")
    if n_seqs > n:
        raise DataError(f"zoo eval tokens: only {n} sequences available, n_seqs={n_seqs} requested")
    rows = torch.randperm(n, generator=torch.Generator().manual_seed(seed))[:n_seqs].sort().values
    return tokens[rows, :ctx_len].clone().long()


def _is_local(source: str) -> bool:
    """A local file (existing, or named like one: a known suffix or an explicit path) vs a HF dataset id."""
    path = Path(source).expanduser()
    if path.exists():
        if path.is_dir():
            raise DataError(f"{source}: is a folder; pass a .jsonl, .txt or .parquet file")
        return True
    if path.suffix in LOCAL_SUFFIXES or source.startswith((".", "/", "~")):
        raise DataError(f"{source}: data file not found")
    return False


def _local_documents(path: Path, field: str, seed: int) -> list[str | TokenRow]:
    """Every document (text, or a TokenRow for pre-tokenized records) of a local file, shuffled with
    ``random.Random(seed)``."""
    if path.suffix == ".txt":
        data = path.read_bytes()
        try:
            return [data.decode("utf-8")]
        except UnicodeDecodeError as err:
            raise _not_utf8(path, data, 0, err) from None
    docs: list[str | TokenRow]
    if path.suffix in (".jsonl", ".json"):
        docs = [_document(rec, field, f"{path}:{line}") for line, rec in iter_jsonl(path)]
    elif path.suffix == ".parquet":
        import pyarrow.parquet as pq

        try:
            table = pq.read_table(path)
        except Exception as err:
            raise DataError(f"{path}: not a readable parquet file: {err}") from err
        column = _token_column(table.column_names)
        if column is not None:
            meta = table.schema.metadata or {}
            recorded = meta.get(TOKENIZER_FIELD.encode())
            names = (table.column(TOKENIZER_FIELD).to_pylist() if TOKENIZER_FIELD in table.column_names
                     else [None] * table.num_rows)
            docs = [_token_row({column: v, TOKENIZER_FIELD: n}, column, f"{path} row {i}",
                               recorded.decode() if recorded else None)
                    for i, (v, n) in enumerate(zip(table.column(column).to_pylist(), names, strict=True))]
        elif field not in table.column_names:
            raise DataError(f"{path}: no field {field!r}; fields present: {table.column_names}")
        else:
            docs = [_text_field({field: v}, field, f"{path} row {i}")
                    for i, v in enumerate(table.column(field).to_pylist())]
    else:
        raise DataError(f"{path}: unknown data file type {path.suffix!r}; use .jsonl, .txt or .parquet")
    random.Random(seed).shuffle(docs)
    return docs


def iter_jsonl(path: str | Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """``(line_number, record)`` for each non-blank line; ``DataError`` naming ``file:line`` when a line
    is not a JSON object."""
    offset = 0  # byte offset of the line's start, to name a byte that is not UTF-8
    with open(path, "rb") as f:
        for line_no, raw in enumerate(f, start=1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as err:
                raise _not_utf8(path, raw, offset, err, line_no) from None
            offset += len(raw)
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as err:
                raise DataError(f"{path}:{line_no}: malformed JSON line ({err.msg} at column {err.colno})") from None
            if not isinstance(record, dict):
                raise DataError(f"{path}:{line_no}: expected a JSON object, got {type(record).__name__}")
            yield line_no, record


def _not_utf8(path: str | Path, data: bytes, base: int, err: UnicodeDecodeError, line: int | None = None) -> DataError:
    """One line naming the file, the byte offset (and line) of the first byte that is not UTF-8."""
    line = line if line is not None else data.count(b"\n", 0, err.start) + 1
    return DataError(f"{path}: not UTF-8 text at byte offset {base + err.start} (line {line}, byte "
                      f"0x{data[err.start]:02x}: {err.reason}); convert it to UTF-8, e.g. "
                      f"iconv -f latin1 -t utf-8 {path} > fixed{Path(path).suffix}")


def _document(record: dict[str, Any], field: str, where: str) -> str | TokenRow:
    """A record's token row when it has a token column (``TOKEN_COLUMNS``), else its text."""
    column = _token_column(record)
    return _token_row(record, column, where) if column is not None else _text_field(record, field, where)


def _text_field(record: dict[str, Any], field: str, where: str) -> str:
    if field not in record:
        raise DataError(f"{where}: no field {field!r}; fields present: {sorted(record)}")
    value = record[field]
    if not isinstance(value, str):
        raise DataError(f"{where}: field {field!r} is {type(value).__name__}, expected a string")
    return value


def _hub_documents(dataset_id: str, config_name: str | None, split: str, field: str,
                   seed: int) -> Iterator[str | TokenRow]:
    ds = _open_hub_dataset(dataset_id, config_name, split)
    ds = ds.shuffle(seed=seed, buffer_size=SHUFFLE_BUFFER) if _is_streaming(ds) else ds.shuffle(seed=seed)
    for i, record in enumerate(ds):
        yield _document(record, field, f"dataset {dataset_id!r} ({split}) record {i}")


def _open_hub_dataset(dataset_id: str, config_name: str | None, split: str) -> Any:
    """Stream the dataset; offline, a missing dataset is an ``OfflineError`` at once (datasets fails fast
    with HF_DATASETS_OFFLINE / HF_HUB_OFFLINE set)."""
    import datasets

    resource = f"dataset {dataset_id!r} (config {config_name!r}, split {split!r})"
    fix = ("pass a local .jsonl/.txt/.parquet file instead, or fill the Hugging Face cache with "
           f"datasets.load_dataset({dataset_id!r}, {config_name!r}, split={split!r}) on a machine with network "
           "access and copy it here (HF_HOME)")
    offline = hub_offline() or _datasets_offline()
    try:
        return datasets.load_dataset(dataset_id, config_name, split=split, streaming=not offline)
    except (ConnectionError, OSError) as err:
        if offline:
            raise OfflineError(resource, f"{fix}; {type(err).__name__}: {' '.join(str(err).split())[:200]}") from err
        raise DataError(f"{resource}: cannot load: {err}") from err
    except ValueError as err:  # unknown split / config
        raise DataError(f"{resource}: {' '.join(str(err).split())[:300]}") from err


def _is_streaming(ds: Any) -> bool:
    import datasets

    return isinstance(ds, datasets.IterableDataset)


# --- cloze -----------------------------------------------------------------------------------------


LambadaSplit = Literal["lm_eval", "words"]


def load_cloze(
    task: str, source: str, *, n_prompts: int, split: str | None = None,
    config_name: str | None = None, lambada_split: LambadaSplit = "lm_eval",
) -> list[ClozeItem]:
    """The first ``n_prompts`` cloze items of ``source`` in file order (fewer when it has fewer).

    ``task`` names a registered cloze task (``sae_checks.tasks``: ``lambada``, ``cbt`` or one of the
    user's); its declaration says how a record becomes a ``ClozeItem`` (``tasks/lambada.py``,
    ``tasks/cbt.py``). ``lambada_split="words"`` reads lambada records with its older split (the task's
    variant ``words``).

    ``source``: ``"zoo"`` (tasks the zoo ships prompts for: :func:`sae_checks.zoo.zoo_cloze_path`), a local
    JSONL with the task's fields, or a HF dataset id; the task's own dataset uses its declared config and
    split (``EleutherAI/lambada_openai``: ``default``; ``cam-cst/cbt``: ``CN``), ``lambada`` uses
    ``plain_text``, any other id ``config_name`` as given; ``split`` defaults to the task's (``test``).
    A task that declares ``acc_choice`` needs items with options: a record without is a ``DataError``.
    """
    spec = get_task(task)
    if n_prompts < 1:
        raise ConfigError("n_prompts", n_prompts, "must be >= 1")
    if lambada_split not in ("lm_eval", "words"):
        raise ConfigError("lambada_split", lambada_split, "choose lm_eval or words")
    parse = spec.variants["words"] if lambada_split == "words" and "words" in spec.variants else spec.parse

    def item(record: dict[str, Any], where: str) -> ClozeItem:
        out = parse(record, where)
        if "acc_choice" in spec.extra_metrics and not out.options:
            raise DataError(f"{where}: cloze task {task!r} reports acc_choice and needs options; the record gave none")
        return out

    if source == "zoo":
        if not spec.zoo:
            raise DataError(f"cloze task {task!r}: the zoo only ships lambada-style prompts; pass a local "
                            f"JSONL{' or ' + spec.hub_dataset if spec.hub_dataset else ''}")
        from sae_checks.zoo import zoo_cloze_path

        try:
            source = str(zoo_cloze_path())
        except FileNotFoundError as err:  # zoo files not built
            raise DataError(f"cloze source 'zoo': {err}") from err
    items: list[ClozeItem] = []
    if _is_local(source):
        for line, record in iter_jsonl(Path(source).expanduser()):
            items.append(item(record, f"{source}:{line}"))
            if len(items) >= n_prompts:
                break
        return items
    split, config = cloze_hub_split(spec, source, split, config_name)
    ds = _open_hub_dataset(source, config, split)
    for i, record in enumerate(ds):
        items.append(item(record, f"dataset {source!r} ({split}) record {i}"))
        if len(items) >= n_prompts:
            break
    return items


def cloze_hub_split(spec: ClozeTask, source: str, split: str | None, config_name: str | None) -> tuple[str, str | None]:
    """(split, config) read from hub dataset ``source`` for task ``spec`` (see :func:`load_cloze`)."""
    if config_name is None:
        config_name = spec.hub_config if source == spec.hub_dataset else CLOZE_DEFAULT_CONFIGS.get(source)
    return (split if split is not None else spec.split), config_name


def check_tasks_available(config: RunConfig) -> None:
    """Before any model loads: every task of ``config`` is known and, offline (``HF_HUB_OFFLINE`` /
    ``HF_DATASETS_OFFLINE``), its hub dataset is in the local cache (``OfflineError`` saying what is
    missing and how to provide it); a local source must exist. Online, a hub dataset is left to the run."""
    for name in config.tasks:
        spec = get_task(name)
        source = task_source(name, config.model, dict(config.task_data))
        if source == "zoo":
            continue
        if _is_local(source):
            continue
        if hub_offline() or _datasets_offline():
            split, config_name = cloze_hub_split(spec, source, None, None)
            try:
                _open_hub_dataset(source, config_name, split)
            except OfflineError as err:
                raise OfflineError(
                    f"cloze task {name!r}: dataset {source!r} (config {config_name!r}, split {split!r})",
                    f"pass local prompts instead (task_data = [[{name!r}, 'prompts.jsonl']], JSONL records with "
                    f"{', '.join(spec.fields)}), drop the task (--tasks), or fill the Hugging Face cache with "
                    f"datasets.load_dataset({source!r}, {config_name!r}, split={split!r}) on a machine with "
                    "network access and copy it here (HF_HOME)") from err


def _datasets_offline() -> bool:
    import os

    return os.environ.get("HF_DATASETS_OFFLINE", "").strip().lower() in ("1", "on", "yes", "true")


def check_sequences_available(config: RunConfig) -> None:
    """Before the model loads: a local text file (``config.data_source``) must hold enough tokens for the
    sequences asked for, else the ``DataError`` naming the file, the tokens available and the tokens
    needed comes now instead of after the model loaded (the gate: instead of every check an "error").

    Only local files are read (a hub dataset streams; its size is not known up front), with the model's
    tokenizer alone (the zoo's, or the hub model's from the cache); when that tokenizer or the model's
    context cannot be had cheaply, the check is left to the run.
    """
    source = config.data_source
    if source == "zoo" or not _is_local(source):
        return
    found = _tokenizer_and_context(config.model)
    if found is None:
        return
    tokenizer, n_ctx = found
    ctx_len = config.ctx_len or n_ctx  # a hub model without --ctx-len: its context is not known cheaply
    if ctx_len is None:
        return
    load_sequences(source, tokenizer, n_seqs=config.n_seqs_for(ctx_len), ctx_len=ctx_len, seed=config.seed,
                   split=config.data_split, config_name=config.data_config, text_field=config.text_field, n_ctx=n_ctx)


def _tokenizer_and_context(model: str) -> tuple[Any, int | None] | None:
    """(tokenizer, n_ctx) of ``model`` without loading its weights, or None when that is not cheap. A hub
    model's n_ctx is None: TransformerLens may use less context than the HF config says, and a guess too
    large would refuse data the run accepts (so a hub model is checked only with an explicit ctx_len)."""
    if model == "zoo":
        from sae_checks.zoo import ZOO_DIR, load_zoo_tokenizer

        try:
            n_ctx = json.loads((ZOO_DIR / "model" / "config.json").read_text())["n_ctx"]
            return load_zoo_tokenizer(), int(n_ctx)
        except (OSError, KeyError, ValueError):
            return None
    try:
        from transformers import AutoTokenizer

        from sae_checks.loading.models import official_model_name

        return AutoTokenizer.from_pretrained(official_model_name(model), local_files_only=hub_offline()), None
    except Exception:  # any failure: the run itself loads the model and says what is wrong
        return None
