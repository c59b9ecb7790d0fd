"""The command-line form of every user-facing option, derived from the one table: ``config.RunConfig``'s
and ``config.GateConfig``'s fields (their ``option(...)`` metadata: help, flag name, aliases; their
annotations: the value's type and choices). The CLI (``--ctx-len``), the pytest plugin (``--sae-ctx-len``)
and ``sae-checks gate`` handing its options to pytest all read ``RUN`` and ``GATE`` below, so they always
have the same names, types and help; ``[tool.sae-checks]`` maps onto the same fields (``config.key_name``).

No torch, no pytest import: the plugin and the CLI both import this at start-up.
"""

from __future__ import annotations

import argparse
import dataclasses
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, Union

from sae_checks.config import GateConfig, RunConfig, flags_of, split_list

Kind = Literal["str", "int", "ints", "strs", "buckets", "shard", "on", "off", "choice", "float"]


@dataclass(frozen=True)
class Option:
    """An option: ``name`` is the flag without dashes (the CLI's ``--name``, pytest's ``--sae-name``);
    ``field`` the RunConfig / GateConfig field it sets; ``kind`` how its text is parsed (``on``/``off``:
    a flag that sets the field to True/False); ``const`` the value of a flag given without one."""

    name: str
    field: str
    kind: Kind
    help: str
    choices: tuple[str, ...] = ()
    aliases: tuple[str, ...] = ()  # older names, still accepted
    const: str | None = None


def _ints(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from err


def _buckets(text: str) -> tuple[tuple[int, int], ...]:
    """``1-32,32-256`` -> ((1, 32), (32, 256))."""
    try:
        return tuple((int(a), int(b)) for a, b in (part.split("-") for part in split_list(text)))
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"expected buckets like 1-128,128-1024, got {text!r}") from err


def parse_shard(text: str) -> tuple[int, int]:
    """``"1/3"`` -> (1, 3): the second of three shards (0-based)."""
    try:
        i, n = (int(v) for v in text.split("/"))
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"expected a shard as I/N (0-based, e.g. 0/3), got {text!r}") from err
    if not 0 <= i < n:
        raise argparse.ArgumentTypeError(f"shard {text!r}: need 0 <= I < N")
    return i, n


PARSERS: dict[str, Callable[[str], Any]] = {
    "str": str, "int": int, "float": float, "ints": _ints, "strs": split_list, "buckets": _buckets,
    "shard": parse_shard, "choice": str,
}


def _kind(tp: Any) -> tuple[Kind, tuple[str, ...]]:
    """How the text of a field annotated ``tp`` is parsed, and its choices (a ``Literal``'s values)."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (Union, types.UnionType):  # X | None: the option is unset when not given
        (inner,) = [a for a in args if a is not type(None)]
        return _kind(inner)
    if origin is Literal:
        return "choice", tuple(str(a) for a in args)
    if origin is tuple:
        kinds: dict[tuple[Any, ...], Kind] = {(int, Ellipsis): "ints", (str, Ellipsis): "strs", (int, int): "shard",
                                               (tuple[int, int], Ellipsis): "buckets"}
        if args in kinds:
            return kinds[args], ()
    if tp in (str, int, float):
        return typing.cast(Kind, tp.__name__), ()
    raise TypeError(f"no command-line form for a field of type {tp!r}: give it none, or a parser here")


def options_of(cls: type) -> tuple[Option, ...]:
    """The options of a config dataclass: one per ``Flag`` of each field, in field order."""
    hints = typing.get_type_hints(cls)
    out = []
    for f in dataclasses.fields(cls):
        for fl in flags_of(f):
            kind, choices = ("on" if fl.switch else "off", ()) if fl.switch is not None else _kind(hints[f.name])
            out.append(Option(fl.name or f.name.replace("_", "-"), f.name, kind, fl.help, choices, fl.aliases,
                              fl.const))
    return tuple(out)


RUN: tuple[Option, ...] = options_of(RunConfig)
GATE: tuple[Option, ...] = options_of(GateConfig)


def _add(add: Callable[..., Any], options: tuple[Option, ...], prefix: str, dest_prefix: str) -> None:
    """Register ``options`` with ``add`` (argparse's ``add_argument`` or pytest's ``addoption``) as
    ``--{prefix}{name}`` (and aliases), dest ``{dest_prefix}{field}``, default None so only the flags given
    override lower layers; ``on``/``off`` kinds are flags that store True/False."""
    for opt in options:
        flags = list(dict.fromkeys(flag(n, prefix) for n in (opt.name, *opt.aliases)))
        kind: dict[str, Any] = ({"action": "store_const", "const": opt.kind == "on"} if opt.kind in ("on", "off")
                                else {"type": PARSERS[opt.kind], "choices": opt.choices or None})
        if opt.const is not None:
            kind.update(nargs="?", const=opt.const)
        add(*flags, dest=f"{dest_prefix}{opt.field}", default=None, help=opt.help, **kind)


def flag(name: str, prefix: str = "sae-") -> str:
    """The command-line flag of option ``name`` under ``prefix``: ``--sae-ctx-len`` for pytest; an option
    whose name already starts with the prefix keeps it once (``sae-ids`` is ``--sae-ids``, not
    ``--sae-sae-ids``)."""
    return f"--{name}" if prefix and name.startswith(prefix) else f"--{prefix}{name}"


def add_argparse(group: Any, options: tuple[Option, ...], prefix: str = "") -> None:
    """Add ``options`` to an argparse parser or group as ``--{prefix}{name}`` (dest = the field)."""
    _add(group.add_argument, options, prefix, "")


def add_pytest(group: Any, options: tuple[Option, ...]) -> None:
    """Add ``options`` to a pytest option group as ``--sae-{name}`` (dest ``sae_{field}``)."""
    _add(group.addoption, options, "sae-", "sae_")


def pytest_values(getoption: Callable[[str], Any], options: tuple[Option, ...]) -> dict[str, Any]:
    """field -> value for the pytest options that were given."""
    values = {opt.field: getoption(f"sae_{opt.field}") for opt in options}
    return {k: v for k, v in values.items() if v is not None}


def as_pytest_args(values: dict[str, Any], options: tuple[Option, ...]) -> list[str]:
    """The ``--sae-*`` arguments that set ``values`` (field -> value): what ``sae-checks gate`` hands pytest."""
    out: list[str] = []
    for opt in options:
        v = values.get(opt.field)
        if v is None:
            continue
        if opt.kind in ("on", "off"):
            if v == (opt.kind == "on"):
                out.append(flag(opt.name))
            continue
        if opt.kind in ("ints", "strs"):
            text = ",".join(str(x) for x in v)
        elif opt.kind == "buckets":
            text = ",".join(f"{a}-{b}" for a, b in v)
        elif opt.kind == "shard":
            text = f"{v[0]}/{v[1]}"
        else:
            text = str(v)
        out.append(f"{flag(opt.name)}={text}")
    return out
