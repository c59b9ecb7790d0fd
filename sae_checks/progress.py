"""Progress reporting: a three-method callback protocol the engine and the cloze runner call.

The library never decides where progress goes: ``evaluate`` and ``run_cloze`` call ``start(total, what)``,
``update(n)`` per batch and ``close()`` on whatever ``Progress`` they are given. Implementations:

- ``NoProgress``: nothing (tests, ``-q``, CI logs);
- ``TqdmProgress``: a tqdm bar on stderr (the CLI);
- ``LineProgress``: one line per update, at most every ``interval`` seconds, with the time left
  (``sae-checks: engine (4 SAEs): 16/64 seq (25%), 3s elapsed, ~9s left``); the pytest plugin hands it a
  writer that goes through the terminal reporter.

``enabled(requested)`` is the shared default: an explicit choice wins, otherwise progress shows only on an
interactive terminal outside CI (``$CI`` set = a CI log, where bars are noise).
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Protocol, TextIO, TypeVar

T = TypeVar("T")


class Progress(Protocol):
    """What the engine calls: ``start`` once per loop, ``update`` per unit done, ``close`` at the end."""

    def start(self, total: int, what: str) -> None: ...

    def update(self, n: int = 1) -> None: ...

    def close(self) -> None: ...


class NoProgress:
    """Reports nothing."""

    def start(self, total: int, what: str) -> None:
        pass

    def update(self, n: int = 1) -> None:
        pass

    def close(self) -> None:
        pass


class TqdmProgress:
    """A tqdm bar on ``file`` (default stderr); left in place only while running."""

    def __init__(self, unit: str = "it", file: TextIO | None = None) -> None:
        self.unit, self.file, self.bar = unit, file, None  # type: ignore[var-annotated]

    def start(self, total: int, what: str) -> None:
        from tqdm.auto import tqdm

        self.close()
        self.bar = tqdm(total=total, desc=what, unit=self.unit, leave=False, file=self.file or sys.stderr)

    def update(self, n: int = 1) -> None:
        if self.bar is not None:
            self.bar.update(n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


class LineProgress:
    """Whole lines through ``write`` (one string, no newline): at ``start``, then after an update when
    ``interval`` seconds passed since the last line, and always when the loop completes. Time left =
    elapsed / done * (total - done)."""

    def __init__(self, write: Callable[[str], None], *, interval: float = 2.0,
                 clock: Callable[[], float] = time.monotonic, unit: str = "") -> None:
        self.write, self.interval, self.clock, self.unit = write, interval, clock, unit
        self.total, self.done, self.what = 0, 0, ""
        self.t0 = self.last = 0.0

    def start(self, total: int, what: str) -> None:
        self.total, self.done, self.what = total, 0, what
        self.t0 = self.last = self.clock()
        self.write(f"sae-checks: {what}: 0/{total}{self.unit} ...")

    def update(self, n: int = 1) -> None:
        self.done += n
        now = self.clock()
        if self.done < self.total and now - self.last < self.interval:
            return
        self.last = now
        elapsed = now - self.t0
        pct = 100 * self.done // max(1, self.total)
        left = elapsed / self.done * (self.total - self.done) if self.done else 0.0
        tail = f", ~{_seconds(left)} left" if self.done < self.total else ", done"
        self.write(f"sae-checks: {self.what}: {self.done}/{self.total}{self.unit} ({pct}%), "
                   f"{_seconds(elapsed)} elapsed{tail}")

    def close(self) -> None:
        self.total = self.done = 0


def _seconds(s: float) -> str:
    s = max(0, round(s))
    return f"{s // 60}m{s % 60:02d}s" if s >= 60 else f"{s}s"


def interactive(stream: Any = None) -> bool:
    """Whether ``stream`` (default stderr) is a terminal a person watches: a TTY and ``$CI`` unset."""
    stream = stream if stream is not None else sys.stderr
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty()) and not os.environ.get("CI")


def enabled(requested: bool | None, stream: Any = None) -> bool:
    """``RunConfig.progress``: True / False as asked; None (the default) = ``interactive(stream)``."""
    return requested if requested is not None else interactive(stream)


def default(requested: bool | None, unit: str = "it") -> Progress:
    """The library's default when no reporter is passed: tqdm when ``enabled(requested)``, else nothing."""
    return TqdmProgress(unit=unit) if enabled(requested) else NoProgress()


def iterate(items: Iterable[T], progress: Progress | None, what: str) -> Iterator[T]:
    """Yield ``items``, reporting one update per item to ``progress`` (None: no reporting)."""
    items = list(items)
    if progress is None:
        yield from items
        return
    progress.start(len(items), what)
    try:
        for item in items:
            yield item
            progress.update(1)
    finally:
        progress.close()
