"""The record of finished judge calls: content-addressed, append-only, safe to kill.

A *call* is one (item, metric, run). Its key (:func:`call_key`) is the sha256 of everything that decides
its answer: the profile, metric, rubric sha256, model, temperature, run index, the generated image's bytes
(sha256) and the reference photo's bytes (CP) or the prompt text (PF). A finished call appends one JSON
line to ``calls.jsonl`` (written with one ``write`` on an ``O_APPEND`` descriptor and fsync'd, under a
thread lock): a judge killed at any point loses at most the calls in flight, a truncated last line is
ignored when read, and a changed image or rubric has a new key, so it is judged again while the stale
record is never read. The latest line of a key wins.

A run holds ``.lock`` (``flock``) so two judges never write one folder at once.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import threading
from collections.abc import Iterator
from pathlib import Path

from ..errors import DataError
from ..io import check_write

#: What a record's ``status`` says: a score was parsed, or no answer parsed within the attempts allowed.
OK, UNPARSED = "ok", "unparsed"


def call_key(**fields) -> str:
    """sha256 (hex) of the JSON of ``fields`` with sorted keys: the content key of a call."""
    return hashlib.sha256(json.dumps(fields, sort_keys=True, ensure_ascii=True).encode()).hexdigest()


def call_seed(key: str, attempt: int) -> int:
    """The request seed of attempt ``attempt`` (0-based) of the call ``key``: the first 31 bits of
    sha256("<key>:<attempt>"). Derived, not random, so a rerun sends the same requests (the reference draws
    a fresh random seed per request; docs/judge.md)."""
    return int(hashlib.sha256(f"{key}:{attempt}".encode()).hexdigest()[:8], 16) & 0x7FFFFFFF


class CallStore:
    """``calls.jsonl`` of one folder: :meth:`load` the latest record per key, :meth:`append` one record."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._lock = threading.Lock()

    def load(self) -> dict[str, dict]:
        """Latest record per key; lines that are not a complete JSON object with a key are skipped."""
        out: dict[str, dict] = {}
        if not self.path.is_file():
            return out
        with open(self.path, encoding="utf-8") as f:
            for line in f:
                if not line.endswith("\n"):
                    continue  # the tail a killed writer left
                try:
                    rec = json.loads(line)
                except ValueError:
                    continue
                if isinstance(rec, dict) and isinstance(rec.get("key"), str):
                    out[rec["key"]] = rec
        return out

    def append(self, record: dict) -> None:
        """Append ``record`` as one line, durably (fsync) and atomically with respect to other threads."""
        line = (json.dumps(record, ensure_ascii=False, sort_keys=True) + "\n").encode("utf-8")
        with self._lock:
            check_write(self.path)
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
            try:
                if os.fstat(fd).st_size and not self._ends_with_newline():
                    line = b"\n" + line  # never glue a record onto a killed writer's partial line
                os.write(fd, line)
                os.fsync(fd)
            finally:
                os.close(fd)

    def _ends_with_newline(self) -> bool:
        with open(self.path, "rb") as f:
            f.seek(-1, os.SEEK_END)
            return f.read(1) == b"\n"


@contextlib.contextmanager
def exclusive(lock_path: str | Path) -> Iterator[None]:
    """Hold ``lock_path`` exclusively for the block; another holder makes a one-line :class:`DataError`."""
    lock_path = Path(lock_path)
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise DataError(f"{lock_path}: another `dreambench judge` is writing this folder; wait for it") from None
        yield
    finally:
        os.close(fd)
