"""RunConfig.from_dict: wrong types are one ConfigError naming the source and the key, before computing."""

from __future__ import annotations

import pytest

from sae_checks.config import RunConfig
from sae_checks.errors import ConfigError

SOURCE = "[tool.sae-checks]"


@pytest.mark.parametrize("key, value, words", [
    ("n_seqs", "4", "must be an integer (or unset), got a string"),
    ("n-seqs", 4.0, "must be an integer"),
    ("layers", 1, "must be a list of integers (or unset), got an integer"),
    ("layers", [1, True], "must be a list of integers"),  # bool is not an int
    ("batch_size", 2.5, "must be an integer (or unset), got a float"),  # unset = auto from free memory
    ("tasks", "lambada", "must be a list of strings, got a string"),  # no bare string for a list
    ("buckets", [[1, "128"]], "must be a list of lists [an integer, an integer]"),
    ("splice_bos", 1, "must be true or false"),
    ("dtype", 16, "must be one of 'float32', 'bfloat16'"),
    ("seed", None, "must be an integer, got NoneType"),
    ("model", ["gpt2"], "must be a string, got a list"),
])
def test_wrong_types_name_source_and_key(key: str, value: object, words: str) -> None:
    with pytest.raises(ConfigError) as info:
        RunConfig.from_dict({key: value}, source=SOURCE)
    msg = str(info.value)
    assert msg.startswith(f"{SOURCE}: {key}={value!r}: ") and words in msg and "\n" not in msg


def test_right_types_pass_and_lists_become_tuples() -> None:
    config = RunConfig.from_dict({"n_seqs": 4, "layers": [0, 2], "buckets": [[1, 16], [16, 64]], "ci_level": 1 - 0.1,
                                  "n_bootstrap": 0, "tasks": ["lambada"], "task_data": [["lambada", "x.jsonl"]],
                                  "device": None, "propagation_window": [1, 9]}, source=SOURCE)
    assert config.layers == (0, 2) and config.buckets == ((1, 16), (16, 64)) and config.tasks == ("lambada",)
    assert config.task_data == (("lambada", "x.jsonl"),) and config.propagation_window == (1, 9)
    assert RunConfig.from_dict({"ci_level": 0.9, "n_prompts": 3}).n_prompts == 3  # an int where a float goes
