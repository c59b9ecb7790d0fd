"""The ``cbt`` cloze task: the Children's Book Test, common nouns (CBT-CN).

Records have ``sentences`` (20 strings), ``question`` (with the blank ``XXXXX``), ``answer`` and
``options`` (10 strings): prompt = ``" ".join(sentences) + " " + question up to XXXXX`` (stripped),
answer = ``answer``, options = ``options``, scored as ``" " + answer``. Beside the common metrics it
reports ``acc_choice``: of the options, the one whose ``" " + option`` tokens have the highest summed
log-prob is the model's answer (``docs/definitions.md``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sae_checks.errors import DataError
from sae_checks.tasks import ClozeItem, ClozeTask
from sae_checks.tasks.lambada import text_field

MASK = "XXXXX"  # CBT's blank in `question`
FIELDS = ("sentences", "question", "answer", "options")


def parse(record: Mapping[str, Any], where: str) -> ClozeItem:
    """One CBT record as a ClozeItem (module docstring)."""
    for name in FIELDS:
        if name not in record:
            raise DataError(f"{where}: no field {name!r} (cbt needs sentences, question, answer, options); "
                            f"fields present: {sorted(record)}")
    sentences, options = record["sentences"], record["options"]
    for name, value in (("sentences", sentences), ("options", options)):
        if not isinstance(value, list) or not value or not all(isinstance(s, str) for s in value):
            raise DataError(f"{where}: field {name!r} must be a non-empty list of strings, got {value!r:.80}")
    question, answer = text_field(record, "question", where), text_field(record, "answer", where)
    if MASK not in question:
        raise DataError(f"{where}: field 'question' has no blank {MASK!r}: {question!r:.80}")
    head = question[: question.index(MASK)].strip()
    prompt = " ".join(s.strip() for s in [*sentences, head] if s.strip())
    return ClozeItem(prompt=prompt, answer=answer.strip(), options=tuple(options))


TASK = ClozeTask(name="cbt", parse=parse, fields=FIELDS, hub_dataset="cam-cst/cbt", hub_config="CN", split="test",
                 extra_metrics=("acc_choice",))
