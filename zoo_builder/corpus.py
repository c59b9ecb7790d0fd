"""The zoo's text: English docstrings that ship with every CPython, split into train / held-out, and a
Lambada-style cloze set cut from the held-out part.

Pure Python (no torch). Everything here is deterministic for a given CPython build: files and
modules are visited in sorted order and the held-out split is a hash of the document name, so adding
or removing one document never moves another across the split.

Sources, one document each:
- every pure-Python stdlib file (found under ``sysconfig.get_paths()["stdlib"]``): its module, class
  and function docstrings, read with ``ast`` instead of importing the module, so no module can have
  import-time side effects (``antigravity`` opens a browser) and nothing depends on what happens to
  be importable;
- every built-in or C-extension stdlib module (``sys.stdlib_module_names``), imported: its docstring
  and those of its public members (these exist only at run time, e.g. ``builtins``, ``math``);
- every topic of ``pydoc_data.topics`` (the language reference text ``help()`` shows).
Skipped: test packages, ``idlelib``, ``tkinter``, ``turtle``/``turtledemo``, ``antigravity``, ``this``,
``site-packages``, C modules that are test helpers or touch the terminal (``readline``, curses), and
``_ast`` (its docstrings are ASDL grammar rules, not English).
"""

from __future__ import annotations

import ast
import hashlib
import importlib
import importlib.util
import inspect
import random
import re
import sys
import sysconfig
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

# Path parts (directories or file names) of pure-Python stdlib files that are not read.
SKIP_PARTS = frozenset(
    {
        "test",
        "tests",
        "idlelib",
        "tkinter",
        "turtledemo",
        "turtle.py",
        "antigravity.py",
        "this.py",
        "site-packages",
        "dist-packages",
        "__phello__",
        "ensurepip",
        "pydoc_data",
    }
)
# C modules that are not read: test helpers, GUI, terminal state, and ``_ast`` (ASDL grammar, not English).
SKIP_C_PREFIXES = ("_test", "_xx", "xx", "_tkinter", "readline", "_curses", "_ctypes_test", "nis", "_ast")
MIN_DOC_CHARS = 40  # docstrings shorter than this are mostly "Return x." noise
HELDOUT_MOD = 10  # a document is held out when sha256(name) % HELDOUT_MOD == 0 (about 10%)


@dataclass(frozen=True, kw_only=True)
class Document:
    name: str  # "py:json/decoder.py", "c:math" or "topic:assert"
    text: str


def _is_skipped(rel: Path) -> bool:
    return any(part in SKIP_PARTS or part.startswith("test_") for part in rel.parts)


def python_file_docs(stdlib: Path) -> list[Document]:
    """One document per pure-Python stdlib file: its docstrings (module, classes, functions) in source order."""
    docs = []
    for path in sorted(stdlib.rglob("*.py")):
        rel = path.relative_to(stdlib)
        if _is_skipped(rel):
            continue
        try:
            tree = ast.parse(path.read_text(encoding="utf-8"))
        except (SyntaxError, UnicodeDecodeError, ValueError):
            continue
        parts = []
        for node in ast.walk(tree):
            if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
                doc = ast.get_docstring(node)
                if doc and len(doc) >= MIN_DOC_CHARS:
                    parts.append(doc)
        if parts:
            docs.append(Document(name=f"py:{rel.as_posix()}", text="\n\n".join(parts)))
    return docs


def c_module_docs() -> list[Document]:
    """One document per built-in / extension stdlib module: its docstring and its public members' docstrings."""
    docs = []
    for name in sorted(sys.stdlib_module_names):
        if name.startswith(SKIP_C_PREFIXES):
            continue
        try:
            spec = importlib.util.find_spec(name)
        except (ImportError, ValueError):
            continue
        origin = spec.origin if spec is not None else None
        if origin is None or not (origin == "built-in" or origin.endswith((".so", ".pyd"))):
            continue
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                module = importlib.import_module(name)
        except Exception:  # noqa: BLE001 -- any import failure means "not on this build": skip it
            continue
        parts = [module.__doc__ or ""]
        for attr in sorted(dir(module)):
            if attr.startswith("_"):
                continue
            obj = getattr(module, attr, None)
            if inspect.isbuiltin(obj) or inspect.isclass(obj):
                parts.append(obj.__doc__ or "")
            if inspect.isclass(obj) and obj.__module__ in (name, module.__name__):
                for meth in sorted(vars(obj)):
                    if not meth.startswith("_"):
                        parts.append(getattr(vars(obj)[meth], "__doc__", None) or "")
        parts = [inspect.cleandoc(p) for p in parts if isinstance(p, str) and len(p) >= MIN_DOC_CHARS]
        if parts:
            docs.append(Document(name=f"c:{name}", text="\n\n".join(dict.fromkeys(parts))))
    return docs


def topic_docs() -> list[Document]:
    """One document per ``pydoc_data.topics`` topic."""
    from pydoc_data.topics import topics

    return [Document(name=f"topic:{k}", text=topics[k].strip()) for k in sorted(topics)]


def collect_documents() -> list[Document]:
    """All documents, sorted by name; text normalized to ``\\n`` line ends and no trailing spaces."""
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    docs = python_file_docs(stdlib) + c_module_docs() + topic_docs()
    out = []
    for d in docs:
        text = "\n".join(line.rstrip() for line in d.text.replace("\r\n", "\n").splitlines()).strip()
        if text:
            out.append(Document(name=d.name, text=text))
    return sorted(out, key=lambda d: d.name)


def is_heldout(name: str) -> bool:
    """The fixed held-out split: about 1 document in HELDOUT_MOD, chosen by a hash of its name."""
    return int(hashlib.sha256(name.encode()).hexdigest(), 16) % HELDOUT_MOD == 0


def split_documents(docs: Sequence[Document]) -> tuple[list[Document], list[Document]]:
    """(train, heldout), each in the input order."""
    train = [d for d in docs if not is_heldout(d.name)]
    heldout = [d for d in docs if is_heldout(d.name)]
    return train, heldout


# ---------------------------------------------------------------- cloze

STOPWORDS = frozenset(
    [
        "the",
        "and",
        "for",
        "are",
        "but",
        "not",
        "you",
        "all",
        "any",
        "can",
        "had",
        "her",
        "was",
        "one",
        "our",
        "out",
        "has",
        "him",
        "his",
        "how",
        "its",
        "may",
        "new",
        "now",
        "old",
        "see",
        "two",
        "who",
        "did",
        "get",
        "let",
        "put",
        "say",
        "she",
        "too",
        "use",
        "this",
        "that",
        "with",
        "from",
        "they",
        "will",
        "have",
        "been",
        "were",
        "when",
        "what",
        "which",
        "their",
        "there",
        "than",
        "then",
        "them",
        "these",
        "those",
        "into",
        "also",
        "more",
        "most",
        "some",
        "such",
        "only",
        "other",
        "each",
        "both",
        "very",
        "just",
        "over",
        "your",
        "does",
        "here",
        "where",
        "while",
        "about",
        "after",
        "before",
        "being",
        "under",
        "again",
    ]
)
# A sentence that ends in a plain word: "<space>word." at the end of a line or before whitespace.
_END_RE = re.compile(r"(?<= )([A-Za-z][a-z]{2,})(?=[.!?](?:\s|$))")


@dataclass(frozen=True, kw_only=True)
class ClozeBuild:
    n_passages: int = 400  # how many passages to keep
    min_tokens: int = 12  # shortest passage, in tokens (without BOS)
    max_tokens: int = 200  # longest passage, in tokens (without BOS)
    long_share: float = 0.5  # share of passages whose target length is drawn above 32 tokens
    seed: int = 0


def build_cloze(
    heldout: Sequence[Document], count_tokens: Callable[[str], int], cfg: ClozeBuild
) -> list[str]:
    """Lambada-style passages from held-out documents; each passage ends in a word that occurs earlier in it.

    For every sentence-final word (``" word."``, at least 3 letters, not a stop word) a target length in
    tokens is drawn (half of them in ``[min_tokens, 32]``, half in ``(32, max_tokens]``) and the passage is
    the longest stretch of the document that ends at that word, starts at a line or sentence start, and
    fits the target. It is kept when the word occurs earlier in it as a whole word after a space (as the
    same token ``" " + word``, so copying can solve it), the character before the word is a space (so ``prompt, word = text.rsplit(" ", 1)`` splits it), and it does not overlap the
    previous kept passage of the same document. The answer is the last word, as in
    ``EleutherAI/lambada_openai``; the passage keeps the document's line breaks.
    """
    rng = random.Random(cfg.seed)
    candidates: list[str] = []
    for doc in heldout:
        text = doc.text
        # Possible passage starts: document start, line starts, sentence starts.
        starts = sorted({0} | {m.end() for m in re.finditer(r"\n+|(?<=[.!?]) +", text)})
        last_end = -1
        for m in _END_RE.finditer(text):
            word = m.group(1)
            if word.lower() in STOPWORDS:
                continue
            long = rng.random() < cfg.long_share
            target = rng.randint(33, cfg.max_tokens) if long else rng.randint(cfg.min_tokens, 32)
            end = m.end()
            best = None
            for s in reversed([s for s in starts if last_end <= s < m.start()]):
                passage = text[s:end]
                n = count_tokens(passage)
                if n > target:
                    break
                best = (s, passage, n)
            if best is None or best[2] < cfg.min_tokens:
                continue
            s, passage, _ = best
            prompt = passage[: -len(word)]
            if not re.search(rf" {re.escape(word)}(?![A-Za-z0-9_])", prompt):
                continue
            candidates.append(passage)
            last_end = end
    rng.shuffle(candidates)
    return candidates[: cfg.n_passages]
