"""One definition of every user-facing option: the CLI (``--ctx-len``), the pytest plugin
(``--sae-ctx-len``) and ``[tool.sae-checks]`` (``ctx_len`` or ``ctx-len``) are generated from ``RUN`` and
``GATE`` below, so the three always have the same names, types and help.

No torch, no pytest import: the plugin and the CLI both import this at start-up.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

Kind = Literal["str", "int", "ints", "strs", "buckets", "shard", "on", "off", "choice", "float"]


@dataclass(frozen=True)
class Option:
    """An option: ``name`` is the flag without dashes (the CLI's ``--name``, pytest's ``--sae-name``);
    ``field`` the RunConfig field or gate key it sets; ``kind`` how its text is parsed (``on``/``off``:
    a flag that sets the field to True/False)."""

    name: str
    field: str
    kind: Kind
    help: str
    choices: tuple[str, ...] = ()
    aliases: tuple[str, ...] = ()  # older names, still accepted


def _ints(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from err


def split_list(text: str) -> tuple[str, ...]:
    """``"a, b,,c"`` -> ``("a", "b", "c")``: comma-separated values, blanks dropped (also SAE sources)."""
    return tuple(v.strip() for v in text.split(",") if v.strip())


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

RUN: tuple[Option, ...] = (
    Option("model", "model", "str", "TransformerLens model name (gpt2-small) or 'zoo' (the default)"),
    Option("saes", "saes", "str", "SAE sources, comma-separated: a sae_lens release, a local SAE folder or folder "
           "of folders, zoo:v1 / zoo:v2 / zoo:suite (default zoo:v2)"),
    Option("sae-id", "sae_id", "str", "id template in a release, {layer} filled per layer "
           "(default blocks.{layer}.hook_resid_pre)", aliases=("id",)),
    Option("sae-ids", "sae_ids", "str", "regex or glob over release ids / folder names, whole id "
           "(e.g. 'blocks\\.[0-9]+\\.hook_resid_pre' or 'blocks.*.hook_z'); overrides --sae-id"),
    Option("layers", "layers", "ints", "comma-separated layers: keep the SAEs at these layers (default: all)"),
    Option("shard", "shard", "shard", "I/N: evaluate the I-th (0-based) of N cost-balanced parts of the SAEs; "
           "merge the parts with `sae-checks merge`"),
    Option("data", "data", "str", "evaluation data: HF dataset id or local .jsonl/.txt/.parquet (text, or "
           "pre-tokenized input_ids/tokens), or 'zoo' (zoo model only); default: zoo on the zoo model, "
           "Skylion007/openwebtext otherwise"),
    Option("data-split", "data_split", "str", "split of a HF dataset (default train)"),
    Option("data-config", "data_config", "str", "config name of a HF dataset"),
    Option("text-field", "text_field", "str", "field holding the text (default text)"),
    Option("n-seqs", "n_seqs", "int", "sequences evaluated (default: about 100k tokens, ceil(100000 / ctx-len); "
           "64 on the zoo)"),
    Option("ctx-len", "ctx_len", "int", "tokens per sequence including BOS (default: the model's n_ctx)",
           aliases=("ctx",)),
    Option("seed", "seed", "int", "data sampling and bootstrap seed (default 0)"),
    Option("device", "device", "str", "cpu, cuda or cuda:N (default: CUDA when available)"),
    Option("dtype", "dtype", "choice", "float32 or bfloat16 (autocast, CUDA only)", choices=("float32", "bfloat16")),
    Option("batch-size", "batch_size", "int", "sequences per forward pass (default: from the free memory; halved on "
           "CUDA OOM)"),
    Option("chunk-tokens", "chunk_tokens", "int", "tokens per chunk of the reductions over the vocabulary and "
           "the SAE's features (default: from a 256 MB budget; bounds peak memory)"),
    Option("buckets", "buckets", "buckets", "position buckets, e.g. 1-128,128-1024 (default: inside / beyond "
           "each SAE's training context)"),
    Option("no-fast-attention", "fast_attention", "off", "TransformerLens' own attention instead of the fused "
           "kernel (same function, slower)"),
    Option("splice-bos", "splice_bos", "on", "also splice the BOS position"),
    Option("no-zero-ablation", "zero_ablation", "off", "skip the zero-ablation pass (no ce_loss_score)"),
    Option("no-propagation", "propagation", "off", "skip the error-propagation matrix"),
    Option("n-bootstrap", "n_bootstrap", "int", "bootstrap resamples per CI (default 1000)"),
    Option("tasks", "tasks", "strs", "comma-separated cloze tasks: lambada, cbt (on the zoo, lambada is its "
           "cloze set)"),
    Option("n-prompts", "n_prompts", "int", "prompts per cloze task (default 1000)"),
    Option("n-causal", "n_causal", "int", "causal check: ablate the top-n features of each helpfulness ranking "
           "(0 = off; default 5)"),
    Option("causal-max-prompts", "causal_max_prompts", "int", "causal check: at most this many prompts per "
           "feature (default 32)"),
    Option("progress", "progress", "on", "progress with time left even when not on a terminal or in CI "
           "(default: only on an interactive terminal with $CI unset; never under pytest -q)"),
    Option("no-progress", "progress", "off", "no progress output"),
)

GATE: tuple[Option, ...] = (
    Option("thresholds", "thresholds", "str", "policy TOML (default: the zoo's for the zoo, a release's shipped "
           "policy, else a built-in generic one)"),
    Option("baseline", "baseline", "str", "baseline JSON (default: 'baseline' in the policy; updates of a "
           "packaged policy's baseline go to ./sae-baseline.json, never into the package)"),
    Option("report", "report", "str", "where to write the JSON report (default: sae-report.json)"),
    Option("baseline-any", "baseline_any", "on", "judge against a baseline recorded for another model or SAE "
           "set anyway (refused by default)"),
)


def aliases() -> dict[str, str]:
    """Older option names (``ctx``, ``id``) -> the RunConfig field they set, as ``[tool.sae-checks]`` keys."""
    return {a.replace("-", "_"): opt.field for opt in RUN for a in opt.aliases}


def _add(add: Callable[..., Any], options: tuple[Option, ...], prefix: str, dest_prefix: str) -> None:
    """Register ``options`` with ``add`` (argparse's ``add_argument`` or pytest's ``addoption``) as
    ``--{prefix}{name}`` (and aliases), dest ``{dest_prefix}{field}``, default None so only the flags given
    override lower layers; ``on``/``off`` kinds are flags that store True/False."""
    for opt in options:
        flags = list(dict.fromkeys(flag(n, prefix) for n in (opt.name, *opt.aliases)))
        kind: dict[str, Any] = ({"action": "store_const", "const": opt.kind == "on"} if opt.kind in ("on", "off")
                                else {"type": PARSERS[opt.kind], "choices": opt.choices or None})
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
