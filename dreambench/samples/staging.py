"""A folder written in full beside its destination, then renamed into place: a failed or interrupted import or
export leaves the destination as it was."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def staged_folder(dest: Path, replace: bool) -> Iterator[Path]:
    """Yield a new hidden folder beside ``dest``; when the block succeeds it becomes ``dest`` (an existing
    ``dest`` is swapped out and removed only when ``replace``, else the caller must have refused it). The
    hidden folder and anything swapped out are removed whatever happens."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{dest.name}.staging-", dir=dest.parent))
    try:
        staged = work / "new"
        staged.mkdir()
        yield staged
        if dest.exists():
            if not replace:
                raise FileExistsError(f"{dest}: appeared while it was being written; nothing replaced")
            os.rename(dest, work / "old")
            try:
                os.rename(staged, dest)
            except BaseException:
                os.rename(work / "old", dest)
                raise
        else:
            os.rename(staged, dest)
    finally:
        shutil.rmtree(work, ignore_errors=True)
