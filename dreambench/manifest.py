"""Reading and writing image manifests (see :mod:`dreambench.schema` for the layout).

Writers of one (method, subject) write its own part, ``<images>/<method>/<subject>/manifest.csv``, so
parallel workers never write the same file; :func:`merge_manifest` assembles ``<images>/manifest.csv``.
Readers take the top-level manifest when present, else the parts.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from .errors import DataError
from .io import atomic_path
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


def read_manifest(images_dir: str | Path) -> pd.DataFrame:
    """The manifest of an images folder: ``manifest.csv`` at its top, else the concatenated parts.

    Raises :class:`DataError` when there is none or a required column is missing."""
    images_dir = Path(images_dir)
    top = images_dir / MANIFEST
    if top.is_file():
        df = pd.read_csv(top, keep_default_na=False)
        source = str(top)
    else:
        parts = _parts(images_dir)
        if not parts:
            raise DataError(f"{images_dir}: no {MANIFEST} (nor <method>/<subject>/{MANIFEST} parts)")
        df = pd.concat([pd.read_csv(p, keep_default_na=False) for p in parts], ignore_index=True)
        source = f"{len(parts)} manifest parts under {images_dir}"
    missing = [c for c in MANIFEST_COLUMNS if c not in df.columns]
    if missing:
        raise DataError(f"{source}: missing column(s) {', '.join(missing)} (need {', '.join(MANIFEST_COLUMNS)})")
    df["prompt_index"] = df["prompt_index"].astype(int)
    df["seed"] = df["seed"].astype(int)
    return df


def merge_manifest(images_dir: str | Path) -> Path:
    """Write ``<images>/manifest.csv`` from all parts, sorted by method, subject, prompt index, seed."""
    images_dir = Path(images_dir)
    parts = _parts(images_dir)
    if not parts:
        raise DataError(f"{images_dir}: no manifest parts to merge")
    df = pd.concat([pd.read_csv(p, keep_default_na=False) for p in parts], ignore_index=True)
    df = df.sort_values(["method", "subject", "prompt_index", "seed"], kind="stable")
    with atomic_path(images_dir / MANIFEST) as tmp:
        df.to_csv(tmp, index=False)
    return images_dir / MANIFEST
