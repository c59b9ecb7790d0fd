"""The run configuration: one frozen dataclass that the CLI, the pytest options and ``[tool.sae-checks]``
all map onto. Every field says why it exists; ``validate()`` names the field at fault."""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from dataclasses import dataclass
from typing import Any, Literal, Union

from sae_checks.errors import ConfigError
from sae_checks.tasks import task_names

Dtype = Literal["float32", "bfloat16"]
DEFAULT_TOKENS = 100_000  # tokens evaluated by default, as the post (~100k tokens of web text)
ZOO_DEFAULT_SEQS = 64  # default on the zoo: half its 128 held-out rows of 256 tokens
# The data of a non-zoo model without --data: web text as the post (Anders & Bloom used OpenWebText), split train
DEFAULT_DATA = "Skylion007/openwebtext"


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
    model: str = "zoo"  # TransformerLens pretrained name ("gpt2-small") or "zoo" (the embedded tiny model)
    saes: str = "zoo:v2"  # comma-separated sources: sae_lens release, local SAE folder / folder of folders,
    # "zoo:v1" / "zoo:v2" / "zoo:suite"
    sae_id: str = "blocks.{layer}.hook_resid_pre"  # id template inside a release; {layer} is filled per layer
    sae_ids: str | None = None  # regex or shell glob over release ids / folder names (whole id); None = all
    # in a folder, the {layer} template (sae_id) in a release
    layers: tuple[int, ...] | None = None  # keep the SAEs at these layers; None = every SAE selected
    shard: tuple[int, int] | None = None  # (i, n): evaluate the i-th of n cost-balanced parts of the suite
    data: str | None = None  # HF dataset id, a local .jsonl/.txt/.parquet file (text, or pre-tokenized
    # input_ids/tokens), or "zoo" (held-out zoo tokens, zoo model only); None = the model's default
    # (data_source: "zoo" on the zoo model, DEFAULT_DATA otherwise)
    data_split: str = "train"  # split of a HF dataset
    data_config: str | None = None  # config name of a HF dataset (e.g. "CN" for cam-cst/cbt)
    text_field: str = "text"  # field holding the text in JSONL / parquet / HF records
    n_seqs: int | None = None  # sequences evaluated; None = about DEFAULT_TOKENS tokens as the post
    # (ceil(100_000 / ctx_len): 98 x 1024 for gpt2-small), on the zoo's held-out rows ZOO_DEFAULT_SEQS
    ctx_len: int | None = None  # tokens per sequence incl. BOS; None = the model's n_ctx
    seed: int = 0  # sampling seed for the data (and the bootstrap), so a run is reproducible
    # --- how to run ---------------------------------------------------------------------------
    device: str | None = None  # "cpu", "cuda", "cuda:N"; None = CUDA when available
    dtype: Dtype = "float32"  # bfloat16 = autocast on CUDA only; recorded in the report
    batch_size: int | None = None  # sequences (cloze: rows) per forward pass; None = auto from the device's
    # free memory and the model's size for rows as long as the data's (engine/memory.py); halved on CUDA OOM
    chunk_tokens: int | None = None  # tokens per chunk of the per-token reductions over the vocabulary (CE, KL,
    # cloze scores) and the SAE's features; None = from a 256 MB budget (engine/chunks.py): memory bounded by a chunk
    fast_attention: bool = True  # fused scaled_dot_product_attention in the engine's passes (same function,
    # about 2x faster on CPU; see sae_checks/engine/attention.py); False = TransformerLens' own attention
    # --- what to measure ----------------------------------------------------------------------
    splice_bos: bool = False  # also replace the BOS residual by its reconstruction (it is huge; off by default)
    exclude_special: bool = True  # leave BOS/special tokens out of every mean
    zero_ablation: bool = True  # also run the zero-ablated pass for ce_loss_score (one extra splice pass)
    propagation: bool = True  # upstream x downstream error-propagation matrix (extra SAE passes only)
    propagation_window: tuple[int, int] = (1, 101)  # half-open position window for propagation (the post's 1..100)
    buckets: tuple[tuple[int, int], ...] | None = None  # position buckets [a, b); None = inside / beyond SAE context
    n_bootstrap: int = 1000  # bootstrap resamples over sequences for each bucket CI
    ci_level: float = 0.95  # confidence level of the bucket CIs
    tasks: tuple[str, ...] = ()  # cloze tasks to run: "lambada", "cbt"
    n_prompts: int = 1000  # prompts per cloze task (the post used the first 1000)
    task_data: tuple[tuple[str, str], ...] = ()  # (task, source) overrides: a local JSONL or a HF dataset id
    n_causal: int = 5  # causal check: ablate the top-n features of each helpfulness ranking (0 = off)
    causal_max_prompts: int = 32  # ... each over at most this many prompts where it is active
    progress: bool | None = None  # progress bars/lines; None = only on an interactive terminal outside CI
    # ($CI unset), so CI logs stay clean (sae_checks.progress.enabled)

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
        if self.data == "zoo" and self.model != "zoo":
            raise ConfigError("data", self.data, f"the zoo's tokens are ids of the zoo's tokenizer, not of model "
                              f"{self.model!r}'s", f"pass --data with a dataset or file for this model, or leave "
                              f"--data unset for {DEFAULT_DATA}")
        if self.ctx_len is not None and self.ctx_len < 2:
            raise ConfigError("ctx_len", self.ctx_len, "must be >= 2 (BOS plus one token)")
        if self.dtype not in ("float32", "bfloat16"):
            raise ConfigError("dtype", self.dtype, "must be float32 or bfloat16")
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


