"""The one writer of every output (report, baseline, HTML page, figures, step summary) and the checks
run on output paths before any compute.

Every write is atomic: the bytes go to a temporary file in the target's folder, are flushed to disk
(``fsync``), then renamed over the target (``os.replace``). A failure at any point (a full disk, a
folder that vanished, a permission) leaves the previous file untouched, removes the temporary file and
raises ``OutputError`` naming the *target* and the reason, never the temporary name.

``check_writable`` is the before-compute check (a bad output path fails in one line before a model
loads); ``OutputLock`` keeps two runs off one report path. Foundation layer: no sae_checks import but
``errors``.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import secrets
import socket
import sys
import time
from pathlib import Path
from typing import Any

from sae_checks.errors import ConfigError, SaeChecksError

try:
    import fcntl
except ImportError:  # Windows: no flock; OutputLock does nothing there
    fcntl = None  # type: ignore[assignment]

__all__ = ["OutputError", "OutputLock", "TMP_PREFIX", "atomic_append_text", "atomic_write_bytes",
           "atomic_write_json", "atomic_write_text", "check_writable"]

TMP_PREFIX = ".saeck-"  # temporary files of atomic writes: .saeck-<8 hex>.tmp, shorter than any name it replaces
LOCK_SUFFIX = ".lock"  # lock file beside the report: .<report name>.lock


class OutputError(SaeChecksError):
    """An output that could not be written: ``path`` (the target, not a temporary file) and ``reason``."""

    def __init__(self, path: str | os.PathLike[str], reason: str, errno_: int | None = None) -> None:
        self.path, self.reason, self.errno = Path(path), reason, errno_
        super().__init__(f"{path}: not written: {reason}")


def _reason(exc: OSError) -> str:
    """An OSError's reason without the file name it carries (that may be the temporary file's)."""
    return exc.strerror or str(exc) or type(exc).__name__


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (module docstring); returns ``path``.

    The temporary name is short and fixed-length (``TMP_PREFIX`` + 8 hex + ``.tmp``), so any name valid
    for ``path`` works (a temp name built from the target's would break names near NAME_MAX). It is
    created with mode 0o666 and O_EXCL, so the user's umask applies as for any new file (``mkstemp``
    makes 0600, which a CI job or colleague in the same group cannot read). Raises ``OutputError``.
    """
    path = Path(path)
    while True:
        tmp = path.parent / f"{TMP_PREFIX}{secrets.token_hex(4)}.tmp"
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
            break
        except FileExistsError:  # 1 in 4 billion: draw another name
            continue
        except OSError as exc:
            raise OutputError(path, f"cannot create a file in {path.parent}: {_reason(exc)}", exc.errno) from None
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        if isinstance(exc, OSError):
            raise OutputError(path, _reason(exc), exc.errno) from None
        raise
    return path


def atomic_write_text(path: str | os.PathLike[str], text: str) -> Path:
    """Write ``text`` (UTF-8, ``\\n`` newlines as given) to ``path`` atomically; see :func:`atomic_write_bytes`."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike[str], data: Any, *, indent: int | None = 1) -> Path:
    """``data`` as JSON (sorted keys, no NaN) written atomically, with a trailing newline."""
    return atomic_write_text(path, json.dumps(data, indent=indent, sort_keys=True, allow_nan=False) + "\n")


def atomic_append_text(path: str | os.PathLike[str], text: str) -> Path:
    """Append ``text`` to ``path`` atomically: the old content plus ``text`` are written to a temporary
    file that replaces ``path``, so a full disk leaves the file as it was, never half a section."""
    path = Path(path)
    try:
        old = path.read_bytes()
    except FileNotFoundError:
        old = b""
    except OSError as exc:
        raise OutputError(path, f"cannot read it to append: {_reason(exc)}", exc.errno) from None
    return atomic_write_bytes(path, old + text.encode("utf-8"))


def check_writable(path: str | os.PathLike[str], option: str, *, directory: bool = False) -> Path:
    """Raise ``ConfigError`` naming ``option`` and ``path`` unless a file (``directory``: a folder, which
    may not exist yet) can be written there: checked before any model is loaded, so a bad output path
    fails in one line, not after the whole run. The parent folder must exist and be a writable folder,
    ``path`` must not be a directory (a folder: not a file), and its name must fit the file system's
    NAME_MAX. Writability is tried, not guessed from the mode bits (which root ignores and a read-only
    mount does not show): a temporary file is created and removed in the folder. Returns ``path``."""
    path = Path(path)
    parent = path.parent

    def fail(problem: str, fix: str) -> ConfigError:
        return ConfigError(option, str(path), problem, fix)

    if path.name in ("", ".", ".."):  # "." or "dir/..": a folder, judged as itself
        parent = path
    if not parent.exists():
        blocker = next((p for p in parent.parents if p.exists()), None)
        if blocker is not None and not blocker.is_dir():
            raise fail(f"{blocker} is a file, not a directory", "choose a path inside an existing folder")
        raise fail(f"the directory {parent} does not exist", f"create it first: mkdir -p {parent}")
    if not parent.is_dir():
        raise fail(f"{parent} is not a directory", "choose a path inside an existing folder")
    try:
        name_max = os.pathconf(parent, "PC_NAME_MAX")
    except (OSError, ValueError, AttributeError):  # no pathconf (Windows) or no such limit
        name_max = 255
    size = len(os.fsencode(path.name))
    if size > name_max:
        raise fail(f"the file name is {size} bytes, longer than this file system allows ({name_max})",
                   "choose a shorter name")
    if directory and path.exists() and not path.is_dir():
        raise fail("exists and is not a directory", "choose a folder name, or remove the file")
    if not directory and path.is_dir():
        raise fail("is a directory", f"give a file name inside it, e.g. {path / 'out.json'}")
    target = path if directory and path.is_dir() else parent
    problem = _try_create(target)
    if problem is not None:
        raise fail(f"the directory {target} is not writable ({problem})",
                   "choose another folder or fix its permissions")
    return path


def _try_create(folder: Path) -> str | None:
    """None when a file can be created in ``folder``; else the reason."""
    if not os.access(folder, os.W_OK | os.X_OK):
        return "permission denied"
    probe = folder / f"{TMP_PREFIX}{secrets.token_hex(4)}.tmp"
    try:
        fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except OSError as exc:
        return _reason(exc)
    os.close(fd)
    with contextlib.suppress(OSError):
        os.unlink(probe)
    return None


class OutputLock:
    """An exclusive lock on an output path for a run's duration: two runs writing one report would
    overwrite each other silently, so the second is refused (``ConfigError`` naming the path and the
    holder: pid, host, command, start time).

    The lock is ``flock`` on ``.<name>.lock`` beside ``path``, removed on release. It is advisory: only
    sae-checks runs honour it. A holder that dies releases it (the kernel drops the lock with the file
    descriptor), so a stale lock file never blocks a later run.
    """

    def __init__(self, path: str | os.PathLike[str], option: str) -> None:
        self.path, self.option = Path(path), option
        self.lock_path = self.path.parent / f".{self.path.name}{LOCK_SUFFIX}"
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self) -> OutputLock:
        """Take the lock or raise ``ConfigError``; a no-op when already held (or without ``fcntl``)."""
        while self._fd is None and fcntl is not None:
            try:
                fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o666)
            except OSError as exc:
                raise ConfigError(self.option, str(self.path), f"cannot create the lock file {self.lock_path}: "
                                  f"{_reason(exc)}", "choose a writable folder") from None
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                os.close(fd)
                if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                    raise ConfigError(self.option, str(self.path), f"cannot lock {self.lock_path}: "
                                      f"{_reason(exc)}") from None
                raise ConfigError(self.option, str(self.path),
                                  f"another sae-checks run writes this report ({self._holder()})",
                                  "wait for it to finish, or give this run another report path") from None
            # The file we locked may have been removed by its last holder between our open and our lock:
            # then it is not the lock file any more; open the new one.
            try:
                same = os.path.samestat(os.fstat(fd), os.stat(self.lock_path))
            except FileNotFoundError:
                same = False
            if not same:
                os.close(fd)
                continue
            info = f"pid {os.getpid()} on {socket.gethostname()}, started {time.strftime('%Y-%m-%d %H:%M:%S')}, " \
                   f"command: {' '.join(sys.argv)[:200]}"
            os.ftruncate(fd, 0)
            os.write(fd, info.encode("utf-8", "replace"))
            self._fd = fd
        return self

    def _holder(self) -> str:
        try:
            text = self.lock_path.read_text(encoding="utf-8", errors="replace").strip()
        except OSError:
            text = ""
        return f"held by {text}; lock file {self.lock_path}" if text else f"lock file {self.lock_path}"

    def release(self) -> None:
        """Remove the lock file and drop the lock (idempotent)."""
        fd, self._fd = self._fd, None
        if fd is None:
            return
        with contextlib.suppress(OSError):
            os.unlink(self.lock_path)
        os.close(fd)

    def __del__(self) -> None:  # a holder dropped without release (an aborted session) frees the path
        self.release()

    def __enter__(self) -> OutputLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()
