"""Atomic, confined file writes.

Every output is written to a temporary name in its folder, then renamed: a killed process therefore never
leaves a half-written file under a final name (the temporary names, ``.<name>.<random>.tmp<suffix>``, are
swept by :func:`remove_stale_temps` at the next run).

Every write is also *confined*: inside :func:`write_roots` (the driver, each worker job, the commands that
write an output folder) :func:`atomic_path` refuses a path that does not resolve inside one of the roots,
symlinks followed, so a symlink or a ``..`` inside a results folder cannot send a write elsewhere.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import inspect
import os
import re
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

from .errors import DreambenchError


class ConfinementError(DreambenchError):
    """A write (or a path from a file) that would leave the folder it must stay in."""


def _read_umask() -> int:
    mask = os.umask(0)  # the only way to read it; done once, at import, before any worker thread exists
    os.umask(mask)
    return mask


_UMASK = _read_umask()
F = TypeVar("F", bound=Callable[..., Any])
#: Folders writes are confined to while :func:`write_roots` is active (resolved, absolute).
_ROOTS: list[Path] = []
#: What :func:`atomic_path` names its temporary files: ``.<name>.<8 random chars>.tmp<suffix>``.
TEMP_RE = re.compile(r"^\..+\.[a-z0-9_]{8}\.tmp(\.[A-Za-z0-9]+)?$")


def _inside(root: Path, path: Path) -> bool:
    return path == root or root in path.parents


def confined(root: str | Path, path: str | Path) -> Path:
    """``path`` resolved (symlinks followed, ``..`` removed; relative paths taken from ``root``) when it
    lies inside ``root`` (resolved the same way); else :class:`ConfinementError` naming both."""
    root_r = Path(os.path.realpath(root))
    path = Path(path)
    resolved = Path(os.path.realpath(path if path.is_absolute() else Path(root) / path))
    if not _inside(root_r, resolved):
        raise ConfinementError(f"{path}: resolves to {resolved}, outside {root_r}; refusing to write there "
                               "(a symlink or '..' leaves the folder)")
    return resolved


@contextlib.contextmanager
def write_roots(*roots: str | Path | None) -> Iterator[None]:
    """Confine every :func:`atomic_path` write in this block to the given folders (None entries skipped).

    Nested inside another confinement, a root must itself resolve inside an active one (a ``tables``
    folder that is a symlink out of its results folder is refused), so nesting never widens the set."""
    added = []
    for r in roots:
        if r is None:
            continue
        resolved = Path(os.path.realpath(r))
        if _ROOTS and not any(_inside(x, resolved) for x in _ROOTS):
            raise ConfinementError(f"{r}: resolves to {resolved}, outside {', '.join(map(str, _ROOTS))}; "
                                   "refusing to write there (a symlink or '..' leaves the folder)")
        added.append(resolved)
    _ROOTS.extend(added)
    try:
        yield
    finally:
        for r in added:
            _ROOTS.remove(r)


def writes_under(*params: str) -> Callable[[F], F]:
    """Decorator: run the function inside :func:`write_roots` of its arguments named ``params`` (folders;
    None skipped), so every write it makes stays in them, e.g. ``@writes_under("results_dir")``."""

    def deco(fn: F) -> F:
        sig = inspect.signature(fn)

        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            bound = sig.bind_partial(*args, **kwargs)
            with write_roots(*(bound.arguments.get(p) for p in params)):
                return fn(*args, **kwargs)

        return wrapper  # type: ignore[return-value]

    return deco


def check_write(path: str | Path) -> Path:
    """``path`` resolved, when no :func:`write_roots` is active or it lies inside one of them; else
    :class:`ConfinementError`."""
    if not _ROOTS:
        return Path(path)
    resolved = Path(os.path.realpath(path))
    if not any(_inside(r, resolved) for r in _ROOTS):
        raise ConfinementError(f"{path}: resolves to {resolved}, outside {', '.join(map(str, _ROOTS))}; "
                               "refusing to write there (a symlink or '..' leaves the folder)")
    return resolved


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success rename it to ``path``, on error delete it.

    An ``OSError`` that names no file (disk full, read-only file system) is re-raised naming ``path``."""
    path = Path(path)
    check_write(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp" + path.suffix, dir=path.parent)
    except OSError as e:
        raise _named(e, path) from None
    # mkstemp creates the file readable by its owner only; give it the mode a plain open() would
    # (0666 less the umask), so results on a shared file system are readable by collaborators.
    os.fchmod(fd, 0o666 & ~_UMASK)
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, 0o666 & ~_UMASK)  # a writer that replaced the file (safetensors does) reset its mode
        os.replace(tmp, path)
    except BaseException as e:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        if isinstance(e, OSError) and not isinstance(e, FileNotFoundError):
            raise _named(e, path) from None
        raise


def _named(e: OSError, path: Path) -> OSError:
    """``e`` with ``path`` as its file name when it had none (PIL and safetensors drop it)."""
    if e.filename is not None or e.errno is None:
        return e
    return type(e)(e.errno, e.strerror or os.strerror(e.errno), str(path))


def write_text_atomic(path: str | Path, text: str) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_text(text)
    return Path(path)


def save_image_atomic(image, path: str | Path) -> Path:
    """Save a PIL image (format from the suffix of ``path``) atomically."""
    path = Path(path)
    with atomic_path(path) as tmp:
        image.save(tmp, format=(path.suffix.lstrip(".") or "png").upper().replace("JPG", "JPEG"))
    return path


def remove_stale_temps(root: str | Path, older_than: float = 0.0) -> list[Path]:
    """Delete the temporary files :func:`atomic_path` left under ``root`` when its process was killed
    (names matching :data:`TEMP_RE`, modified more than ``older_than`` seconds ago); symlinks are not
    followed. Call it only while no other process writes under ``root`` (the driver holds the run lock).
    Returns the files removed."""
    removed = []
    now = time.time()
    for folder, dirs, files in os.walk(root):
        for name in files:
            p = Path(folder) / name
            if TEMP_RE.match(name) and not p.is_symlink():
                with contextlib.suppress(FileNotFoundError):
                    if now - p.stat().st_mtime >= older_than:
                        p.unlink()
                        removed.append(p)
    return removed


__all__ = ["ConfinementError", "atomic_path", "check_write", "confined", "remove_stale_temps",
           "save_image_atomic", "write_roots", "write_text_atomic", "writes_under"]


def connect_readonly(path: str | Path, timeout: float = 30.0):
    """A SQLite connection that reads ``path`` and creates or changes no file beside it (``status``,
    ``tables``: read-only commands, also on a read-only mount).

    Plain ``mode=ro`` on a WAL-mode database still creates its ``-shm`` and ``-wal`` files (and fails where
    they cannot be created). Without a ``-wal`` file no writer has the database open (a writer that closes
    cleanly folds the log into the main file and deletes it), so the file is opened ``immutable``: no lock,
    no side file. While a writer runs (or after one was killed) the ``-wal`` file exists and is read as
    usual, so the reader sees its latest commits; should that fail where the side files cannot be made, the
    main file is read ``immutable`` (the last checkpoint). Raises ``sqlite3.Error``."""
    import sqlite3
    from urllib.parse import quote

    def open_(uri: str) -> sqlite3.Connection:
        conn = sqlite3.connect(uri, uri=True, timeout=timeout)
        conn.execute("PRAGMA schema_version")  # opens the file now: a missing or foreign one fails here
        return conn

    base = f"file:{quote(str(Path(path).absolute()))}?mode=ro"
    if not Path(f"{path}-wal").exists():
        return open_(base + "&immutable=1")
    try:
        return open_(base)
    except sqlite3.Error:
        return open_(base + "&immutable=1")


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    """Full sha256 (64 hex digits) of a file's bytes, read in chunks: the one raw file hash behind image
    keys, real-photo sets and weights digests."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def move_into_place(staged: Path, dest: Path, work: Path) -> None:
    """Rename the finished folder ``staged`` to ``dest``; an existing ``dest`` is first renamed into ``work``
    (a scratch folder on the same filesystem, removed by the caller) and put back if the rename fails, so
    ``dest`` is always either the old folder or the new one."""
    if not dest.exists():
        os.rename(staged, dest)
        return
    old = work / "previous"
    os.rename(dest, old)
    try:
        os.rename(staged, dest)
    except BaseException:
        os.rename(old, dest)
        raise
