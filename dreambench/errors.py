"""Errors the suite raises for bad input.

Every error a user can cause derives from :class:`DreambenchError`; the CLI prints its message as one
line (no traceback) and exits with status 2 (1 for :class:`EnvironmentFailure`: disk full, read-only
folder, SQLite errors; the CLI turns a stray ``OSError`` or ``sqlite3.Error`` into the same one line). Messages name the file, option or value at fault and say
what to do. Errors other than :class:`EnvironmentFailure` are deterministic: the same input fails the same
way, so the engine never retries a job that raised one.
"""

from __future__ import annotations

from collections.abc import Iterable


class DreambenchError(Exception):
    """A user-facing error: bad input, missing file, unknown name. Printed as one line by the CLI."""

    #: The CLI's exit status for it: 2 for bad input; 1 for a failure of the environment (see below).
    exit_code = 2


class EnvironmentFailure(DreambenchError):
    """The machine failed a write (disk full, read-only folder, SQLite error): exit status 1. The message
    names the file and the cause."""

    exit_code = 1


def describe_os_error(e: BaseException, default_file: str | None = None) -> str:
    """One line naming the file and the cause of an ``OSError`` / ``sqlite3.Error``, e.g.
    ``"/r/state.sqlite: database or disk is full"``."""
    filename = getattr(e, "filename", None) or default_file
    cause = getattr(e, "strerror", None) or str(e) or type(e).__name__
    return f"{filename}: {cause}" if filename else f"{type(e).__name__}: {cause}"


class UnknownNameError(DreambenchError, KeyError):
    """A name (method, profile, subject, recipe...) that is not registered."""

    def __init__(self, what: str, name: str, valid: Iterable[str]):
        self.what, self.name, self.valid = what, name, sorted(valid)
        super().__init__(f"unknown {what} {name!r}; valid: {', '.join(self.valid) or '(none)'}")

    def __str__(self) -> str:  # KeyError would otherwise quote the whole message
        return self.args[0]


class ConfigError(DreambenchError):
    """A config value of the wrong type or outside its declared range; ``field`` names the config field."""

    def __init__(self, message: str, field: str | None = None):
        super().__init__(message)
        self.field = field


class DataError(DreambenchError):
    """A dataset or image problem (missing folder, unreadable or too small image)."""


class ModelLoadError(DreambenchError):
    """A model that cannot be loaded (missing local path, unreachable hub id, bad weights file)."""


def first_problems(problems: list[str], limit: int = 3) -> str:
    """The first ``limit`` of ``problems`` joined by ``"; "``, then ``" (and N more)"`` when some are left out:
    the tail of a one-line error that lists what is wrong."""
    more = f" (and {len(problems) - limit} more)" if len(problems) > limit else ""
    return "; ".join(problems[:limit]) + more
