"""Cloze tasks, each declared once in its own file and found here by name.

A task is a :class:`ClozeTask`: where its prompts come from (a Hugging Face dataset id, config and
split; whether the zoo ships prompts for it), how one record becomes a :class:`ClozeItem`, which fields a
local JSONL record needs, and which extra metrics it reports (CBT's ``acc_choice``, from the options its
items carry). Config validation, the policy parser, the data loader and the experiment runner all read
this registry when they run, so a task registered by the user (``register_task`` in a ``conftest.py``)
is a first-class task: run, reported and gated like the built-in ``lambada`` and ``cbt``. The recipe is
in ``docs/extending.md`` (section "A cloze task").

Foundation layer: no torch, no datasets; the built-in declarations live in ``tasks/lambada.py`` and
``tasks/cbt.py`` and are imported on the first lookup.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from sae_checks.errors import ConfigError

__all__ = ["ClozeItem", "ClozeTask", "Parse", "get_task", "register_task", "task_names", "task_source",
           "unregister_task"]


class ClozeItem(NamedTuple):
    """One cloze prompt. ``answer`` is the word (no leading space); ``options`` are the candidates of a
    multiple-choice task such as CBT's 10 (else None); ``continuation`` is the exact text scored after
    ``prompt`` (lm-eval's target, e.g. ``" " + answer``, whitespace as in the source), or None for
    ``" " + answer`` after the prompt with its trailing spaces dropped."""

    prompt: str
    answer: str
    options: tuple[str, ...] | None = None
    continuation: str | None = None


Parse = Callable[[Mapping[str, Any], str], ClozeItem]  # (record, "file:line" for errors) -> item


@dataclass(frozen=True, kw_only=True)
class ClozeTask:
    """The declaration of one cloze task (one file each: ``sae_checks/tasks/lambada.py`` is an example)."""

    name: str  # results.cloze key, policy section [cloze.<name>], --tasks value
    parse: Parse  # one record (a JSONL line or a dataset row) -> ClozeItem; DataError naming ``where`` if malformed
    fields: tuple[str, ...]  # fields a record needs (said in errors and docs)
    hub_dataset: str | None = None  # the default source off the zoo model (None: the user must pass task_data)
    hub_config: str | None = None  # its config name
    split: str = "test"  # its split
    zoo: bool = False  # the zoo ships prompts for this task (source "zoo", the default on the zoo model)
    extra_metrics: tuple[str, ...] = ()  # metrics beyond the common ones; "acc_choice" needs items with options
    variants: Mapping[str, Parse] = field(default_factory=dict)  # other ways to read a record, by name

    def __post_init__(self) -> None:
        if not self.name or not self.name.replace("_", "").isalnum():
            raise ConfigError("ClozeTask.name", self.name, "must be letters, digits and underscores")


_REGISTRY: dict[str, ClozeTask] = {}
_BUILTINS_LOADED = False


def _builtins() -> dict[str, ClozeTask]:
    global _BUILTINS_LOADED
    if not _BUILTINS_LOADED:
        _BUILTINS_LOADED = True
        from sae_checks.tasks import cbt, lambada

        for task in (lambada.TASK, cbt.TASK):
            _REGISTRY.setdefault(task.name, task)
    return _REGISTRY


def register_task(task: ClozeTask, *, replace: bool = False) -> ClozeTask:
    """Make ``task`` known by its name to every part of sae-checks; returns it. A second task of the same
    name is refused unless ``replace``."""
    registry = _builtins()
    if task.name in registry and not replace and registry[task.name] is not task:
        raise ConfigError("tasks", task.name, "a cloze task of this name is already registered",
                          "choose another name, or pass replace=True")
    registry[task.name] = task
    return task


def unregister_task(name: str) -> None:
    """Forget a task registered by ``register_task`` (tests)."""
    _builtins().pop(name, None)


def task_names() -> tuple[str, ...]:
    """Every known task's name, built-ins first, then in registration order."""
    return tuple(_builtins())


def get_task(name: str) -> ClozeTask:
    """The task called ``name``; ``ConfigError`` listing the known tasks otherwise."""
    registry = _builtins()
    if name not in registry:
        raise ConfigError("tasks", name, f"unknown cloze task; choose from {', '.join(registry)}",
                          "or register your own with sae_checks.tasks.register_task")
    return registry[name]


def task_source(name: str, model: str, task_data: Mapping[str, str] | None = None) -> str:
    """Where task ``name``'s prompts come from: ``task_data[name]`` when given; on the zoo model the zoo's
    prompts when the task has some; else the task's hub dataset (``ConfigError`` when it has none)."""
    if task_data and name in task_data:
        return task_data[name]
    task = get_task(name)
    if model == "zoo" and task.zoo:
        return "zoo"
    if task.hub_dataset is None:
        raise ConfigError("task_data", name, "this task has no default data",
                          f"name its prompts in task_data, e.g. task_data = [[{name!r}, 'prompts.jsonl']] in "
                          f"[tool.sae-checks] (JSONL records with {', '.join(task.fields)})")
    return task.hub_dataset
