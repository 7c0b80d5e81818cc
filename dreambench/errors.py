"""Errors the suite raises for bad input.

Every error a user can cause derives from :class:`DreambenchError`; the CLI prints its message as one
line (no traceback) and exits with status 2. Messages name the file, option or value at fault and say
what to do.
"""

from __future__ import annotations

from collections.abc import Iterable


class DreambenchError(Exception):
    """A user-facing error: bad input, missing file, unknown name. Printed as one line by the CLI."""


class UnknownNameError(DreambenchError, KeyError):
    """A name (method, profile, subject, recipe...) that is not registered."""

    def __init__(self, what: str, name: str, valid: Iterable[str]):
        self.what, self.name, self.valid = what, name, sorted(valid)
        super().__init__(f"unknown {what} {name!r}; valid: {', '.join(self.valid) or '(none)'}")

    def __str__(self) -> str:  # KeyError would otherwise quote the whole message
        return self.args[0]


class DataError(DreambenchError):
    """A dataset or image problem (missing folder, unreadable or too small image)."""


class ModelLoadError(DreambenchError):
    """A model that cannot be loaded (missing local path, unreachable hub id, bad weights file)."""
