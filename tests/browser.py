"""Headless Debian chromium for tests: screenshots and the DOM after the page's script ran.

No Playwright: chromium's own ``--screenshot`` and ``--dump-dom`` flags, one process per call, a fresh
profile per test. Pages read their state from the address (``#show=all``), so JS behaviour is tested
by loading an address and reading the dumped DOM. ``.ci/run`` installs chromium when it is missing;
tests skip only where no binary is found.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path
from typing import NamedTuple

FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--enable-logging=stderr", "--v=0")
# Lines chromium logs for a page problem: an uncaught exception, a console message, a CSP refusal.
CONSOLE_PROBLEMS = re.compile(r"Uncaught|:CONSOLE\(|Refused to|Content Security Policy", re.IGNORECASE)
TIMEOUT_S = 120


def find_chromium() -> str | None:
    """The chromium binary on PATH (Debian: ``chromium``, Ubuntu: ``chromium-browser``), or None."""
    return shutil.which("chromium") or shutil.which("chromium-browser")


class Browser:
    """Runs headless chromium on ``file://`` (or any) addresses with a profile under ``workdir``."""

    def __init__(self, binary: str, workdir: Path) -> None:
        self.binary = binary
        self.workdir = workdir
        self.calls = 0

    def _run(self, *args: str) -> subprocess.CompletedProcess[str]:
        self.calls += 1
        profile = self.workdir / f"profile-{self.calls}"
        cmd = [self.binary, *FLAGS, f"--user-data-dir={profile}", *args]
        run = subprocess.run(cmd, capture_output=True, text=True, timeout=TIMEOUT_S)
        assert run.returncode == 0, f"{' '.join(cmd)} exited {run.returncode}:\n{run.stderr[-3000:]}"
        problem = CONSOLE_PROBLEMS.search(run.stderr)
        assert problem is None, f"the page logged a problem ({problem.group(0)!r}):\n{run.stderr[-3000:]}"
        return run

    def screenshot(self, url: str, out: Path, width: int = 1400, height: int = 1000) -> Path:
        """A PNG of the first ``width x height`` pixels of the page, after 2 s of (virtual) time."""
        self._run(f"--screenshot={out}", f"--window-size={width},{height}", "--virtual-time-budget=2000", url)
        assert out.exists() and out.stat().st_size > 1000, f"no screenshot at {out}"
        return out

    def dump_dom(self, url: str) -> str:
        """The serialized DOM after the page's scripts ran (2 s of virtual time)."""
        return self._run("--dump-dom", "--virtual-time-budget=2000", url).stdout


class Row(NamedTuple):
    """A ``<tr>`` in a table's body: its id, attributes, whether it is hidden, and its text."""

    id: str
    attrs: dict[str, str | None]
    hidden: bool
    text: str


class _Rows(HTMLParser):
    def __init__(self, table_id: str) -> None:
        super().__init__(convert_charrefs=True)
        self.table_id = table_id
        self.depth = 0  # nesting depth of <table> while inside the wanted table, 0 outside
        self.in_body = False
        self.row: dict[str, str | None] | None = None
        self.text: list[str] = []
        self.rows: list[Row] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "table" and (self.depth or a.get("id") == self.table_id):
            self.depth += 1
        elif self.depth == 1 and tag == "tbody":
            self.in_body = True
        elif self.depth == 1 and self.in_body and tag == "tr":
            self.row, self.text = a, []

    def handle_endtag(self, tag: str) -> None:
        if tag == "table" and self.depth:
            self.depth -= 1
        elif self.depth == 1 and tag == "tbody":
            self.in_body = False
        elif self.depth == 1 and tag == "tr" and self.row is not None:
            self.rows.append(Row(self.row.get("id") or "", self.row, "hidden" in self.row,
                                 " ".join("".join(self.text).split())))
            self.row = None

    def handle_data(self, data: str) -> None:
        if self.row is not None:
            self.text.append(data)


def table_rows(dom: str, table_id: str) -> list[Row]:
    """The body rows of ``<table id=table_id>`` in a (dumped) DOM."""
    parser = _Rows(table_id)
    parser.feed(dom)
    parser.close()
    return parser.rows


def body_attrs(dom: str) -> dict[str, str | None]:
    """The attributes of ``<body>`` (the report page's script writes its state there)."""
    match = re.search(r"<body\b([^>]*)>", dom)
    assert match, "no <body> in the DOM"
    return {k: v for k, v in re.findall(r'([\w-]+)="([^"]*)"', match.group(1))}


def count_colour(png: Path, rgb: tuple[int, int, int], box: tuple[int, int, int, int] | None = None,
                 tolerance: int = 6) -> int:
    """Pixels of ``png`` (within ``box`` = left, top, right, bottom) within ``tolerance`` of ``rgb``."""
    import numpy as np
    from PIL import Image

    with Image.open(png) as im:
        pixels = np.asarray((im.crop(box) if box else im).convert("RGB"), dtype=np.int16)
    return int((np.abs(pixels - np.array(rgb, dtype=np.int16)).max(axis=-1) <= tolerance).sum())
