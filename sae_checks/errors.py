"""Exceptions that say where (file, key, argument), what (the value) and how to fix it.

Every error sae-checks raises on bad input is a ``SaeChecksError``; the CLI prints its message on one
line and exits with status 4 (pytest's usage error), the pytest plugin turns it into a usage error.
"""

from __future__ import annotations


class SaeChecksError(Exception):
    """Base class: a problem with the user's input, stated in one line."""


class ConfigError(SaeChecksError, ValueError):
    """A bad option value: names the option (``argument``) and the value."""

    def __init__(self, argument: str, value: object, problem: str, fix: str = "") -> None:
        self.argument, self.value = argument, value
        msg = f"{argument}={value!r}: {problem}"
        super().__init__(msg + (f" ({fix})" if fix else ""))


class LoadError(SaeChecksError):
    """A model, SAE or dataset that cannot be loaded: names the resource, and the file if there is one."""


class OfflineError(LoadError):
    """A hub resource asked for while offline (``HF_HUB_OFFLINE=1``) and absent from the local cache."""

    def __init__(self, resource: str, fix: str = "") -> None:
        self.resource = resource
        super().__init__(
            f"{resource} is not available offline (HF_HUB_OFFLINE=1 and not in the Hugging Face cache): "
            + (fix or "pass a local path instead, or fill the cache on a machine with network access "
                      "(HF_HOME / HF_HUB_CACHE) and copy it here")
        )


class CompatibilityError(SaeChecksError):
    """An SAE that does not fit the model: width, hook name or context."""


class DataError(SaeChecksError):
    """A dataset file or record that is missing a field or is malformed: names the file and the field."""


class ThresholdError(SaeChecksError):
    """A threshold or baseline file with an unknown key, a wrong type or an impossible layer."""

    def __init__(self, path: str, key: str, problem: str, line: int | None = None) -> None:
        self.path, self.key, self.line = path, key, line
        where = f"{path}:{line}" if line is not None else path
        super().__init__(f"{where}: key {key!r}: {problem}")


class ReportError(SaeChecksError):
    """A report file that cannot be read, fails its schema, or cannot be compared with another."""
