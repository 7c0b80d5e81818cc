"""Reading and writing image manifests (see :mod:`dreambench.schema` for the layout).

Writers of one (method, subject) write its own part, ``<images>/<method>/<subject>/manifest.csv``, so
parallel workers never write the same file; :func:`merge_manifest` assembles ``<images>/manifest.csv``.
Readers take the top-level manifest when present, else the parts.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from pathlib import Path

import pandas as pd

from .errors import DataError
from .io import atomic_path
from .protocol import name_problem
from .schema import MANIFEST, MANIFEST_COLUMNS


def write_part(rows: list[dict], images_dir: str | Path, method: str, subject: str) -> Path:
    """Write the manifest part of one (method, subject) atomically; returns its path."""
    path = Path(images_dir) / method / subject / MANIFEST
    df = pd.DataFrame(rows)
    missing = [c for c in MANIFEST_COLUMNS if c not in df.columns]
    if missing:
        raise ValueError(f"manifest rows lack columns {missing}")
    with atomic_path(path) as tmp:
        df.to_csv(tmp, index=False)
    return path


def _parts(images_dir: Path) -> list[Path]:
    return sorted(images_dir.glob(f"*/*/{MANIFEST}"))


def read_part(path: str | Path) -> pd.DataFrame:
    """One manifest file, its columns checked and ``prompt_index``/``seed`` made integers; a wrong type
    raises :class:`DataError` naming the file, the row (its line in the file) and the column."""
    try:
        df = pd.read_csv(path, keep_default_na=False, dtype=str)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as e:
        raise DataError(f"{path}: not a readable manifest CSV ({str(e).strip().splitlines()[0]})") from None
    missing = [c for c in MANIFEST_COLUMNS if c not in df.columns]
    if missing:
        raise DataError(f"{path}: missing column(s) {', '.join(missing)} (need {', '.join(MANIFEST_COLUMNS)})")
    for col in ("prompt_index", "seed"):
        ints = pd.to_numeric(df[col].str.strip(), errors="coerce")
        bad = ints.isna() | (ints != ints.round()) | (ints.abs() >= 2**63)
        if bad.any():
            i = int(bad.to_numpy().nonzero()[0][0])
            raise DataError(f"{path}: row {i + 1} (line {i + 2}), column {col}: {df[col].iloc[i]!r} is not an "
                            "integer")
        df[col] = ints.astype("int64")
    return df


def read_manifest(images_dir: str | Path) -> pd.DataFrame:
    """The manifest of an images folder: ``manifest.csv`` at its top, else the concatenated parts.

    Raises :class:`DataError` when there is none, a required column is missing, or a value has the wrong
    type (naming the file, row and column). Paths are *not* checked here: see :func:`row_problem`."""
    images_dir = Path(images_dir)
    top = images_dir / MANIFEST
    if top.is_file():
        return read_part(top)
    parts = _parts(images_dir)
    if not parts:
        raise DataError(f"{images_dir}: no {MANIFEST} (nor <method>/<subject>/{MANIFEST} parts)")
    return pd.concat([read_part(p) for p in parts], ignore_index=True)


def path_problem(images_dir: str | Path, rel: str) -> str | None:
    """Why the manifest path ``rel`` may not be read, or None: it must be relative and resolve (symlinks
    followed) inside ``images_dir``; absolute paths and ``..`` that leave the folder are refused."""
    rel = str(rel)
    if not rel or os.path.isabs(rel) or rel.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", rel):
        return f"path {rel!r} is not relative to the images folder; refused"
    root = os.path.realpath(images_dir)
    resolved = os.path.realpath(os.path.join(root, rel))
    if os.path.commonpath([root, resolved]) != root or resolved == root:
        return f"path {rel!r} resolves outside the images folder ({resolved}); refused"
    return None


def row_problem(images_dir: str | Path, row: dict) -> str | None:
    """Why a manifest row must not be used (scored, served), or None: its path (:func:`path_problem`),
    or a subject name / method label that is not a plain folder name."""
    for col, what in (("subject", "subject"), ("method", "method label")):
        problem = name_problem(str(row.get(col, "")))
        if problem:
            return f"{what} {problem}; refused"
    return path_problem(images_dir, str(row.get("path", "")))


def merge_manifest(images_dir: str | Path, on_bad: Callable[[DataError], None] | None = None) -> Path:
    """Write ``<images>/manifest.csv`` from all parts, sorted by method, subject, prompt index, seed.
    ``on_bad``: given, a part that cannot be read (a bad value, named by file, row and column) is passed
    to it and left out, so one broken part does not block the others (the run names its subject as
    unscored); else its :class:`DataError` is raised."""
    images_dir = Path(images_dir)
    parts = _parts(images_dir)
    if not parts:
        raise DataError(f"{images_dir}: no manifest parts to merge")
    frames = []
    for p in parts:
        try:
            frames.append(read_part(p))
        except DataError as e:
            if on_bad is None:
                raise
            on_bad(e)
    if not frames:
        raise DataError(f"{images_dir}: no readable manifest part to merge")
    df = pd.concat(frames, ignore_index=True)
    df = df.sort_values(["method", "subject", "prompt_index", "seed"], kind="stable")
    with atomic_path(images_dir / MANIFEST) as tmp:
        df.to_csv(tmp, index=False)
    return images_dir / MANIFEST
