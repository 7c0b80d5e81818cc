"""A folder written in full beside its destination, then renamed into place (a failed or interrupted import or
export leaves the destination as it was), and the image conversions that fill it, run on a few threads."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")


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


def run_all(fn: Callable[[T], object], items: list[T], desc: str, progress: bool = False) -> None:
    """``fn(item)`` for every item on a few threads (Pillow decodes and encodes without the GIL), with a
    progress bar when ``progress``; the first exception is raised once the running calls are done."""
    from tqdm.auto import tqdm

    workers = max(1, min(8, os.cpu_count() or 1))
    with ThreadPoolExecutor(workers) as pool, tqdm(total=len(items), desc=desc, unit="img",
                                                   disable=not progress) as bar:
        futures = [pool.submit(fn, item) for item in items]
        try:
            for f in as_completed(futures):
                f.result()
                bar.update(1)
        except BaseException:
            for f in futures:
                f.cancel()
            raise
