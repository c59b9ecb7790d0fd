"""The ``lambada`` cloze task: predict the last word of a passage (LAMBADA, OpenAI's version).

Records have one field, ``text``. The default split (``parse``) is exactly lm-evaluation-harness'
``lambada_openai`` (``doc_to_text``/``doc_to_target``): ``prompt = text.rsplit(" ", 1)[0]`` and
``continuation = " " + text.rsplit(" ", 1)[1]``, whitespace left where it is (the encoder then moves the
prompt's trailing whitespace into the continuation, as lm-eval's ``_encode_pair``), so ``acc_word`` is
lm-eval's ``acc`` and the summed continuation log-prob its loglikelihood.

The variant ``words`` (``load_cloze(..., lambada_split="words")``) is the older split, kept for one
reason: the post's first-token accuracy reads the *word's* first token, and where whitespace other than
one space precedes the last word (``"...\\n   word"``) lm-eval's continuation starts with a whitespace
token instead. It strips the text, takes the last whitespace-separated word as the answer and the text
before it (stripped) as the prompt, scoring ``" " + answer``. For lambada_openai's texts (one space
before the last word, nothing after it) both splits give the same tokens.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sae_checks.errors import DataError
from sae_checks.tasks import ClozeItem, ClozeTask


def text_field(record: Mapping[str, Any], field: str, where: str) -> str:
    """``record[field]`` as a string; ``DataError`` naming ``where`` and the fields present otherwise."""
    if field not in record:
        raise DataError(f"{where}: no field {field!r}; fields present: {sorted(record)}")
    value = record[field]
    if not isinstance(value, str):
        raise DataError(f"{where}: field {field!r} is {type(value).__name__}, expected a string")
    return value


def parse(record: Mapping[str, Any], where: str) -> ClozeItem:
    """lm-eval's lambada_openai split (module docstring)."""
    text = text_field(record, "text", where)
    if " " not in text.strip(" "):
        raise DataError(f"{where}: field 'text' needs at least two words (a prompt and the answer), got {text!r}")
    context, word = text.rsplit(" ", 1)
    return ClozeItem(prompt=context, answer=word, continuation=" " + word)


def parse_words(record: Mapping[str, Any], where: str) -> ClozeItem:
    """The older whitespace-stripped split (variant ``words``, module docstring)."""
    text = text_field(record, "text", where).rstrip()
    words = text.split()
    if len(words) < 2:
        raise DataError(f"{where}: field 'text' needs at least two words (a prompt and the answer), got {text!r}")
    answer = words[-1]
    return ClozeItem(prompt=text[: len(text) - len(answer)].rstrip(), answer=answer)


TASK = ClozeTask(name="lambada", parse=parse, fields=("text",), hub_dataset="EleutherAI/lambada_openai",
                 hub_config="default", split="test", zoo=True, variants={"words": parse_words})
