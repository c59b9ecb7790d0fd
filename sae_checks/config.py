"""The run configuration: one frozen dataclass whose fields are the one table of options. Each field says
why it exists (its comment) and, through ``option(...)``, how users set it: the help text and the flag
(``Flag``). The CLI (``--ctx-len``), the pytest plugin (``--sae-ctx-len``), ``[tool.sae-checks]``
(``ctx_len`` or ``ctx-len``) and the Python API (``sae_checks.run(ctx_len=...)``) are all derived from
these fields (``sae_checks.options``, ``sae_checks.notebook``); ``GateConfig`` is the same for the
gate-only options. ``validate()`` names the field at fault. Imports only the standard library and
``errors``.
"""

from __future__ import annotations

import dataclasses
import math
import tomllib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Union

from sae_checks.errors import ConfigError
from sae_checks.tasks import task_names

Dtype = Literal["float32", "bfloat16"]
DEFAULT_TOKENS = 100_000  # tokens evaluated by default, as the post (~100k tokens of web text)
ZOO_DEFAULT_SEQS = 64  # default on the zoo: half its 128 held-out rows of 256 tokens
# The data of a non-zoo model without --data: web text as the post (Anders & Bloom used OpenWebText), split train
DEFAULT_DATA = "Skylion007/openwebtext"
DTYPES: tuple[Dtype, ...] = typing.get_args(Dtype)  # the one list of run dtypes
UpdateMode = Literal["new", "all"]  # --sae-update-baseline: add new and failing checks, or rewrite every one
UPDATE_MODES: tuple[UpdateMode, ...] = typing.get_args(UpdateMode)


@dataclass(frozen=True)
class Flag:
    """How users set a config field from the command line: ``--{name}`` in the CLI, ``--sae-{name}``
    under pytest. The type of the value, and its choices (a ``Literal``), come from the field's annotation."""

    help: str
    name: str = ""  # the flag without dashes; "" = the field's name with dashes for underscores
    aliases: tuple[str, ...] = ()  # older names, still accepted (also as [tool.sae-checks] keys)
    switch: bool | None = None  # a flag without a value that sets the field to this (True / False)
    const: str | None = None  # the value when the flag is given without one (``--sae-update-baseline``)


def option(default: Any, *flags: Flag | str) -> Any:
    """A config field settable from the command line: ``default`` and its flags (a string is the help of
    the one flag named after the field). The field's comment still says why it exists."""
    return field(default=default, metadata={"flags": tuple(Flag(f) if isinstance(f, str) else f for f in flags)})


def flags_of(f: dataclasses.Field[Any]) -> tuple[Flag, ...]:
    """The flags of a config field (``option``), none for a field settable only from a file or the API."""
    return tuple(f.metadata.get("flags", ()))


@dataclass(frozen=True, kw_only=True)
class RunConfig:
    """What a run loads, how it runs and what it measures (one field, one comment). ``replace`` and
    ``from_dict`` validate; the CLI, the pytest options and ``[tool.sae-checks]`` all map onto these fields.

    >>> from sae_checks import RunConfig
    >>> config = RunConfig(n_seqs=2, device="cpu")
    >>> config.replace(layers=(1, 2)).layers, config.to_dict()["n_seqs"]
    ((1, 2), 2)
    >>> RunConfig.from_dict({"n_seqs": 0})
    Traceback (most recent call last):
    ...
    sae_checks.errors.ConfigError: n_seqs=0: must be >= 1
    """

    # --- what to load -------------------------------------------------------------------------
    model: str = option("zoo", "TransformerLens model name (gpt2-small) or 'zoo' (the default)")
    saes: str = option("zoo:v2", "SAE sources, comma-separated: a sae_lens release, a local SAE folder or folder "
                       "of folders, zoo:v1 / zoo:v2 / zoo:suite (default zoo:v2)")
    sae_id: str = option("blocks.{layer}.hook_resid_pre", Flag(
        "id template in a release, {layer} filled per layer (default blocks.{layer}.hook_resid_pre)", aliases=("id",)))
    sae_ids: str | None = option(None, "regex or glob over release ids / folder names, whole id "
                                 "(e.g. 'blocks\\.[0-9]+\\.hook_resid_pre' or 'blocks.*.hook_z'); overrides --sae-id")
    # regex or shell glob over release ids / folder names (whole id); None = all in a folder, the {layer}
    # template (sae_id) in a release
    layers: tuple[int, ...] | None = option(None, "comma-separated layers: keep the SAEs at these layers (default: all)")
    shard: tuple[int, int] | None = option(None, "I/N: evaluate the I-th (0-based) of N cost-balanced parts of the "
                                           "SAEs; merge the parts with `sae-checks merge`")
    data: str | None = option(None, "evaluation data: HF dataset id or local .jsonl/.txt/.parquet (text, or "
                              "pre-tokenized input_ids/tokens), or 'zoo' (zoo model only); default: zoo on the zoo "
                              "model, Skylion007/openwebtext otherwise")
    # HF dataset id, a local .jsonl/.txt/.parquet file (text, or pre-tokenized input_ids/tokens), or "zoo"
    # (held-out zoo tokens, zoo model only); None = the model's default (data_source: "zoo" on the zoo
    # model, DEFAULT_DATA otherwise)
    data_split: str = option("train", "split of a HF dataset (default train)")
    data_config: str | None = option(None, "config name of a HF dataset")  # e.g. "CN" for cam-cst/cbt
    text_field: str = option("text", "field holding the text (default text)")  # in JSONL / parquet / HF records
    n_seqs: int | None = option(None, "sequences evaluated (default: about 100k tokens, ceil(100000 / ctx-len); "
                                "64 on the zoo)")
    # None = about DEFAULT_TOKENS tokens as the post (ceil(100_000 / ctx_len): 98 x 1024 for gpt2-small), on
    # the zoo's held-out rows ZOO_DEFAULT_SEQS
    ctx_len: int | None = option(None, Flag("tokens per sequence including BOS (default: the model's n_ctx)",
                                            aliases=("ctx",)))  # incl. BOS; None = the model's n_ctx
    seed: int = option(0, "data sampling and bootstrap seed (default 0)")  # so a run is reproducible
    # --- how to run ---------------------------------------------------------------------------
    device: str | None = option(None, "cpu, cuda or cuda:N (default: CUDA when available)")
    dtype: Dtype = option("float32", f"{' or '.join(DTYPES)} (autocast, CUDA only)")
    # bfloat16 = autocast on CUDA only; recorded in the report
    batch_size: int | None = option(None, "sequences per forward pass (default: from the free memory; halved on "
                                    "CUDA OOM)")
    # sequences (cloze: rows) per forward pass; None = auto from the device's free memory and the model's
    # size for rows as long as the data's (engine/memory.py); halved on CUDA OOM
    chunk_tokens: int | None = option(None, "tokens per chunk of the reductions over the vocabulary and the "
                                      "SAE's features (default: from a 256 MB budget; bounds peak memory)")
    # tokens per chunk of the per-token reductions over the vocabulary (CE, KL, cloze scores) and the SAE's
    # features; None = from a 256 MB budget (engine/chunks.py): memory bounded by a chunk
    sae_memory: float | None = option(None, "GiB of SAE weights held at once (default: a quarter of the device's "
                                      "free memory); a suite that needs more runs one group of hooks at a time")
    # GiB of SAE weights loaded at once; None = a quarter of the device's free memory once the model is loaded
    # (engine/parts.py). A suite over it runs in parts of whole hook groups, never splitting a hook's SAEs
    # --- what to measure ----------------------------------------------------------------------
    buckets: tuple[tuple[int, int], ...] | None = option(None, "position buckets, e.g. 1-128,128-1024 (default: "
                                                         "inside / beyond each SAE's training context)")
    # position buckets [a, b); None = inside / beyond SAE context
    fast_attention: bool = option(True, Flag("TransformerLens' own attention instead of the fused kernel (same "
                                             "function, slower)", name="no-fast-attention", switch=False))
    # fused scaled_dot_product_attention in the engine's passes (same function, about 2x faster on CPU; see
    # sae_checks/engine/attention.py); False = TransformerLens' own attention
    splice_bos: bool = option(False, Flag("also splice the BOS position", switch=True))
    # also replace the BOS residual by its reconstruction (it is huge; off by default)
    exclude_special: bool = True  # leave BOS/special tokens out of every mean
    zero_ablation: bool = option(True, Flag("skip the zero-ablation pass (no ce_loss_score)", name="no-zero-ablation",
                                            switch=False))  # the zero-ablated pass for ce_loss_score (one extra splice pass)
    propagation: bool = option(True, Flag("skip the error-propagation matrix", name="no-propagation", switch=False))
    # upstream x downstream error-propagation matrix (extra SAE passes only)
    latent_health: bool = option(True, Flag("skip latent health (firing counts and decoder figures)",
                                            name="no-latent-health", switch=False))
    # per-latent firing counts from the engine's own feature chunks, decoder norms and cosines (no extra pass)
    propagation_window: tuple[int, int] = (1, 101)  # half-open position window for propagation (the post's 1..100)
    n_bootstrap: int = option(1000, "bootstrap resamples per CI (default 1000)")  # over sequences, per bucket CI
    ci_level: float = 0.95  # confidence level of the bucket CIs
    tasks: tuple[str, ...] = option((), "comma-separated cloze tasks: lambada, cbt (on the zoo, lambada is its "
                                    "cloze set)")  # cloze tasks to run (the names validate() accepts)
    n_prompts: int = option(1000, "prompts per cloze task (default 1000)")  # the post used the first 1000
    task_data: tuple[tuple[str, str], ...] = ()  # (task, source) overrides: a local JSONL or a HF dataset id
    n_causal: int = option(5, "causal check: ablate the top-n features of each helpfulness ranking (0 = off; "
                           "default 5)")
    causal_max_prompts: int = option(32, "causal check: at most this many prompts per feature (default 32)")
    # ... each over at most this many prompts where it is active
    progress: bool | None = option(None, Flag(
        "progress with time left even when not on a terminal or in CI (default: only on an interactive terminal "
        "with $CI unset; never under pytest -q)", switch=True), Flag("no progress output", name="no-progress",
                                                                      switch=False))
    # progress bars/lines; None = only on an interactive terminal outside CI ($CI unset), so CI logs stay
    # clean (sae_checks.progress.enabled)

    @property
    def data_source(self) -> str:
        """The data a run reads: ``data``, or the model's default when unset ("zoo" on the zoo model,
        ``DEFAULT_DATA`` otherwise: never the zoo's tokens, whose ids only the zoo's tokenizer gave)."""
        if self.data is not None:
            return self.data
        return "zoo" if self.model == "zoo" else DEFAULT_DATA

    def n_seqs_for(self, ctx_len: int) -> int:
        """How many sequences of ``ctx_len`` tokens a run evaluates (see ``n_seqs``)."""
        if self.n_seqs is not None:
            return self.n_seqs
        if self.data_source == "zoo":
            return ZOO_DEFAULT_SEQS
        return math.ceil(DEFAULT_TOKENS / ctx_len)

    def validate(self) -> RunConfig:
        """Check every field; raise ConfigError naming the first one at fault. Returns self."""
        if self.n_seqs is not None and self.n_seqs < 1:
            raise ConfigError("n_seqs", self.n_seqs, "must be >= 1")
        if self.batch_size is not None and self.batch_size < 1:
            raise ConfigError("batch_size", self.batch_size, "must be >= 1")
        if self.chunk_tokens is not None and self.chunk_tokens < 1:
            raise ConfigError("chunk_tokens", self.chunk_tokens, "must be >= 1")
        if self.sae_memory is not None and not self.sae_memory > 0:
            raise ConfigError("sae_memory", self.sae_memory, "must be > 0 (GiB)")
        if self.data == "zoo" and self.model != "zoo":
            raise ConfigError("data", self.data, f"the zoo's tokens are ids of the zoo's tokenizer, not of model "
                              f"{self.model!r}'s", f"pass --data with a dataset or file for this model, or leave "
                              f"--data unset for {DEFAULT_DATA}")
        if self.ctx_len is not None and self.ctx_len < 2:
            raise ConfigError("ctx_len", self.ctx_len, "must be >= 2 (BOS plus one token)")
        if self.dtype not in DTYPES:
            raise ConfigError("dtype", self.dtype, f"must be {' or '.join(DTYPES)}")
        if self.device is not None and not (
            self.device == "cpu" or self.device == "cuda" or self.device.startswith("cuda:")
            or self.device == "mps"
        ):
            raise ConfigError("device", self.device, "must be cpu, cuda or cuda:N")
        a, b = self.propagation_window
        if not 0 <= a < b:
            raise ConfigError("propagation_window", self.propagation_window, "must be [a, b) with 0 <= a < b")
        for bucket in self.buckets or ():
            if len(bucket) != 2 or not 0 <= bucket[0] < bucket[1]:
                raise ConfigError("buckets", bucket, "each bucket must be [a, b) with 0 <= a < b")
        for task in self.tasks:  # the cloze task registry, read now (tasks the user registered included)
            if task not in task_names():
                raise ConfigError("tasks", task, f"unknown task; choose from {', '.join(task_names())}")
        if self.n_bootstrap < 0:
            raise ConfigError("n_bootstrap", self.n_bootstrap, "must be >= 0")
        if not 0 < self.ci_level < 1:
            raise ConfigError("ci_level", self.ci_level, "must be in (0, 1)")
        if self.n_causal < 0 or self.causal_max_prompts < 1:
            raise ConfigError("n_causal", (self.n_causal, self.causal_max_prompts),
                              "n_causal must be >= 0 and causal_max_prompts >= 1")
        if self.shard is not None and (len(self.shard) != 2 or not 0 <= self.shard[0] < self.shard[1]):
            raise ConfigError("shard", self.shard, "must be I/N with 0 <= I < N (e.g. 0/3, 1/3, 2/3)")
        if self.n_prompts < 1:
            raise ConfigError("n_prompts", self.n_prompts, "must be >= 1")
        return self

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able dict (tuples become lists), as stored in the report's ``config``."""
        return json_ready(dataclasses.asdict(self))

    @classmethod
    def from_dict(cls, values: dict[str, Any], source: str = "config") -> RunConfig:
        """Build from a mapping (TOML table, CLI namespace); unknown keys are errors naming ``source``."""
        names = {f.name: f for f in dataclasses.fields(cls)}
        kwargs: dict[str, Any] = {}
        for key, value in values.items():
            name = key.replace("-", "_")
            if name not in names:
                raise ConfigError(f"{source}: {key}", value, "unknown option",
                                  f"known options: {', '.join(sorted(names))}")
            if isinstance(value, list):
                value = tuple(tuple(v) if isinstance(v, list) else v for v in value)
            kwargs[name] = value
        hints = typing.get_type_hints(cls)
        for key, value in values.items():  # before __init__/validate compare or compute with a wrong type
            name = key.replace("-", "_")
            if not conforms(kwargs[name], hints[name]):
                raise ConfigError(f"{source}: {key}", value,
                                  f"must be {describe(hints[name])}, got {_type_name(kwargs[name])}")
        return cls(**kwargs).validate()

    def replace(self, **changes: Any) -> RunConfig:
        return dataclasses.replace(self, **changes).validate()


@dataclass(frozen=True, kw_only=True)
class GateConfig:
    """The gate-only options (``sae-checks gate``, the pytest plugin, ``[tool.sae-checks]``), as given:
    ``gate.setup.resolve_options`` turns them into ``GateOptions`` (paths resolved, the policy chosen)."""

    thresholds: str | None = option(None, "policy TOML (default: the zoo's for the zoo, a release's shipped "
                                    "policy, else a built-in generic one)")  # None: gate.setup.choose_policy
    baseline: str | None = option(None, "baseline JSON (default: 'baseline' in the policy; updates of a packaged "
                                  "policy's baseline go to ./sae-baseline.json, never into the package)")
    report: str | None = option(None, "where to write the JSON report (default: sae-report.json)")
    baseline_any: bool = option(False, Flag("judge against a baseline recorded for another model or SAE set "
                                            "anyway (refused by default)", switch=True))
    # a baseline of another model / SAE set is refused unless asked: its numbers are not comparable
    update_baseline: UpdateMode | None = option(None, Flag(
        "rewrite the baseline file at the end: 'new' (default) adds new and failing checks, 'all' rewrites every "
        "check run", const="new"))  # a run that stops early never updates it


GATE_KEYS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(GateConfig))  # not RunConfig fields
# Older option names -> the field they set ({"ctx": "ctx_len", "id": "sae_id"}), as [tool.sae-checks] keys too.
ALIASES: dict[str, str] = {a.replace("-", "_"): f.name for cls in (RunConfig, GateConfig)
                           for f in dataclasses.fields(cls) for fl in flags_of(f) for a in fl.aliases}


def key_name(key: str) -> str:
    """The field a ``[tool.sae-checks]`` key or option name sets: dashes as underscores, aliases resolved."""
    name = key.replace("-", "_")
    return ALIASES.get(name, name)


def split_list(text: str) -> tuple[str, ...]:
    """``"a, b,,c"`` -> ``("a", "b", "c")``: comma-separated values, blanks dropped (options, SAE sources)."""
    return tuple(v.strip() for v in text.split(",") if v.strip())


def read_pyproject(path: Path) -> dict[str, Any]:
    """``[tool.sae-checks]`` of ``path`` (a pyproject.toml, or a folder holding one); {} when absent.
    Invalid TOML raises ConfigError naming the file."""
    path = path / "pyproject.toml" if path.is_dir() else path
    if not path.is_file():
        return {}
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(str(path), "[tool.sae-checks]", f"invalid TOML: {err}") from err
    return dict(data.get("tool", {}).get("sae-checks", {}))


def conforms(value: Any, tp: Any) -> bool:
    """Whether ``value`` has the annotated type ``tp`` (the field types RunConfig uses: int, float, str,
    bool, None, unions, Literal, tuple[X, ...], tuple[X, Y]). bool is not an int; an int is a float."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if tp is Any:
        return True
    if tp is type(None):
        return value is None
    if origin in (Union, types.UnionType):
        return any(conforms(value, a) for a in args)
    if origin is Literal:
        return any(type(value) is type(a) and value == a for a in args)
    if origin is tuple:
        if not isinstance(value, tuple):
            return False
        if len(args) == 2 and args[1] is Ellipsis:
            return all(conforms(v, args[0]) for v in value)
        return len(value) == len(args) and all(conforms(v, a) for v, a in zip(value, args, strict=True))
    if tp is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if tp is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, tp)


def describe(tp: Any) -> str:
    """``tp`` in words, for error messages: ``tuple[int, ...] | None`` -> "a list of integers (or unset)"."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (Union, types.UnionType):
        kinds = [describe(a) for a in args if a is not type(None)]
        return " or ".join(kinds) + (" (or unset)" if type(None) in args else "")
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in args)
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            inner = args[0]
            if typing.get_origin(inner) is tuple:
                return "a list of lists [" + ", ".join(describe(a) for a in typing.get_args(inner)) + "]"
            return f"a list of {_PLURAL.get(inner, describe(inner))}"
        return "a list [" + ", ".join(describe(a) for a in args) + "]"
    return _WORDS.get(tp, getattr(tp, "__name__", str(tp)))


_WORDS = {int: "an integer", float: "a number", str: "a string", bool: "true or false"}
_PLURAL = {int: "integers", float: "numbers", str: "strings"}


def _type_name(value: Any) -> str:
    return {tuple: "a list", str: "a string", bool: "a boolean", int: "an integer",
            float: "a float"}.get(type(value), type(value).__name__)


def json_ready(value: Any) -> Any:
    """Tuples to lists, recursively, so the value round-trips through JSON unchanged."""
    if isinstance(value, dict):
        return {k: json_ready(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_ready(v) for v in value]
    return value


