"""The results folder's run lock: one writer at a time (a run's driver, an import of samples)."""

from __future__ import annotations

from pathlib import Path
from typing import IO

from ..errors import DreambenchError
from ..io import confined
from ..layout import ResultsLayout


def run_lock(results: Path) -> IO[str]:
    """An exclusive lock on ``<results>/.run.lock`` for this process (released by the OS if it dies), so two
    drivers never share one state database and nothing else writes a folder a run is writing; close the
    returned file to release it. :class:`DreambenchError` naming the holder's pid when it is held."""
    import fcntl
    import os

    # confined: the lock is truncated and rewritten, so a .run.lock symlinked out of the folder is refused
    f = open(confined(results, ResultsLayout(results).lock), "a+")  # noqa: SIM115  (held for the whole run)
    try:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        f.seek(0)
        holder = f.read().strip() or "?"
        f.close()
        raise DreambenchError(f"{results}: another dreambench run (pid {holder}) is using this results folder") from None
    f.seek(0)
    f.truncate()
    f.write(str(os.getpid()))
    f.flush()
    return f
