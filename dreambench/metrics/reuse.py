"""What of a scoring call can be reused: its inputs read, validated and keyed (:func:`prepare`), matched
against the previous outputs in its folder. No torch, no model (the engine runs this on every resume).

A per-image score is reused when its ``score_key`` (image bytes, real-photo set, CLIP-T text, metric
profile, tower ids; :mod:`.keys`) is unchanged, a DIV group when its ``div_key`` is, a real.csv row when
its ``real_key`` is. ``stale_outputs``: the previous files hold rows that are no longer current (they must
be rewritten even when nothing is to compute).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ..layout import DIV as DIV_CSV
from ..layout import REAL as REAL_CSV
from ..schema import CLASS_PROMPT_INDEX, PER_IMAGE, SCORE_COLUMNS
from .inputs import (
    ScoreError,
    drop_subjects,
    find_real_sets,
    method_identifiers,
    read_selection,
    validate_rows,
)
from .keys import TowerIds, file_sha256, lib_version, short_hash
from .pairing import with_references
from .profiles import MetricProfile

#: The per-image columns a reused score brings along.
SCORE_VALUE_COLUMNS = [*SCORE_COLUMNS, "max_dino_real"]
#: A DIV group: (method, subject, prompt_index).
GROUP_COLUMNS = ["method", "subject", "prompt_index"]


@dataclass
class Work:
    """A scoring call's inputs and what of it can be reused (computed without any model)."""

    rows: pd.DataFrame
    errors: list
    real_sets: dict
    ids: tuple[str, str] | None
    profile_key: str
    div_groups: dict
    div_keys: dict
    done: np.ndarray
    div_done: dict
    real_done: dict
    stale_outputs: bool
    n_manifest: int = 0


def read_csv_or_none(path: Path) -> pd.DataFrame | None:
    """A previous output, or None when absent or unreadable (then it is simply recomputed)."""
    if not path.is_file():
        return None
    try:
        return pd.read_csv(path, keep_default_na=False, na_values=["", "nan", "NaN"])
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError):
        return None  # an unreadable previous output is simply recomputed


def div_groups_of(rows: pd.DataFrame) -> dict[tuple[str, str, int], np.ndarray]:
    """Row indices of each DIV group: the regular prompts' (method, subject, prompt) with >= 2 images."""
    regular = rows[rows["prompt_index"] != CLASS_PROMPT_INDEX].groupby(GROUP_COLUMNS).groups
    return {(str(k[0]), str(k[1]), int(k[2])): np.asarray(v, dtype=int) for k, v in regular.items() if len(v) >= 2}


def prepare(images_dir: Path, subjects_dir: Path, out_dir: Path, prof: MetricProfile, towers: TowerIds,
            lpips: str, identifier: str, only: tuple[str, str] | None) -> Work:
    """Validate the inputs, hash them, and match them against the previous outputs in ``out_dir``."""
    errors: list[ScoreError] = []
    # 1. Read and validate the manifest and the real photos
    manifest = read_selection(images_dir, only)
    rows, real_sets = _good_rows(manifest, images_dir, subjects_dir, prof, identifier, errors)
    # 2. Content keys
    ids = towers.ids()
    pkey = short_hash(prof.to_dict())
    rows = _keyed(rows, real_sets, pkey, ids)
    # 3. What the previous outputs already hold
    done, stale = _match_per_image(rows, out_dir)
    div_groups = div_groups_of(rows)
    sha = rows["image_sha256"].to_numpy()
    div_keys = {k: short_hash([sorted(sha[v]), pkey, lpips, lib_version("lpips")]) for k, v in div_groups.items()}
    div_done, div_stale = _match_div(div_keys, out_dir)
    dino_id, clip_id = ids if ids else ("?", "?")
    real_keys = {s: short_hash([k, pkey, dino_id, clip_id]) for s, (_, k) in real_sets.items()}
    real_done, real_stale = _match_real(real_keys, out_dir)
    return Work(rows, errors, real_sets, ids, pkey, div_groups, div_keys, done, div_done, real_done,
                stale or div_stale or real_stale, len(manifest))


def _good_rows(manifest: pd.DataFrame, images_dir: Path, subjects_dir: Path, prof: MetricProfile,
               identifier: str, errors: list[ScoreError]) -> tuple[pd.DataFrame, dict]:
    """The good rows (with ``abspath``, ``clip_t_text`` and, for one-photo pairing, ``reference``) and the
    real-photo set of each of their subjects; bad rows and subjects go to ``errors``."""
    identifiers = method_identifiers(images_dir, manifest["method"].astype(str).unique(), identifier)
    rows = validate_rows(manifest, images_dir, identifiers, errors)
    rows["method"] = rows["method"].astype(str)
    rows["subject"] = rows["subject"].astype(str)
    real_sets, bad = find_real_sets(sorted(rows["subject"].unique()), subjects_dir)
    rows = drop_subjects(rows, bad, errors)
    if prof.pairing == "one":  # each image against one reference photo (metrics/pairing.py)
        rows = with_references(rows, {s: tuple(p.name for p in v[0]) for s, v in real_sets.items()},
                               lambda r, msg: errors.append(ScoreError(str(r["path"]), str(r["method"]),
                                                                       str(r["subject"]), int(r["prompt_index"]), msg)))
    return rows, real_sets


def _keyed(rows: pd.DataFrame, real_sets: dict, pkey: str, ids: tuple[str, str] | None) -> pd.DataFrame:
    """``rows`` with ``image_sha256``, ``real_set`` and ``score_key``, sorted by group, seed and path."""
    rows["image_sha256"] = [file_sha256(p) for p in rows["abspath"]]
    rows["real_set"] = rows["subject"].map({s: k for s, (_, k) in real_sets.items()}).astype(str)
    dino_id, clip_id = ids if ids else ("?", "?")
    ref = rows["reference"].astype(str) if "reference" in rows.columns else pd.Series("", index=rows.index)
    rows["score_key"] = [short_hash([h, r, t, pkey, dino_id, clip_id] + ([f] if f else [])) for h, r, t, f in
                         zip(rows["image_sha256"], rows["real_set"], rows["clip_t_text"], ref)]
    return rows.sort_values(["method", "subject", "prompt_index", "seed", "path"], kind="stable").reset_index(drop=True)


def _match_per_image(rows: pd.DataFrame, out_dir: Path) -> tuple[np.ndarray, bool]:
    """Fill the score columns of ``rows`` whose (path, score_key) the previous per_image.csv holds;
    returns which rows are done and whether the previous file holds rows no longer current."""
    done = np.zeros(len(rows), dtype=bool)
    for c in SCORE_VALUE_COLUMNS:
        rows[c] = np.nan
    prev = read_csv_or_none(out_dir / PER_IMAGE)
    if prev is None or not {"path", "score_key", *SCORE_VALUE_COLUMNS} <= set(prev.columns) or not len(rows):
        return done, prev is not None or len(rows) > 0
    prev = prev.drop_duplicates("path").astype({"path": str, "score_key": str})
    key = rows[["path", "score_key"]].astype(str).reset_index()
    merged = key.merge(prev[["path", "score_key", *SCORE_VALUE_COLUMNS]], on=["path", "score_key"])
    merged = merged.dropna(subset=SCORE_COLUMNS)
    rows.loc[merged["index"].to_numpy(), SCORE_VALUE_COLUMNS] = merged[SCORE_VALUE_COLUMNS].to_numpy()
    done[merged["index"].to_numpy()] = True
    return done, len(prev) != len(merged)


def _match_div(div_keys: dict, out_dir: Path) -> tuple[dict[tuple, dict], bool]:
    """The previous div.csv's groups whose ``div_key`` is unchanged, and whether it holds others."""
    div_done: dict[tuple, dict] = {}
    prev_div = read_csv_or_none(out_dir / DIV_CSV)
    if prev_div is None or not {"div", "div_key"} <= set(prev_div.columns):
        return div_done, False
    for r in prev_div.itertuples(index=False):
        k = (str(r.method), str(r.subject), int(r.prompt_index))
        if div_keys.get(k) == str(r.div_key) and not pd.isna(r.div):
            div_done[k] = {"div": float(r.div), "n_images": int(r.n_images), "n_pairs": int(r.n_pairs)}
    return div_done, len(prev_div) != len(div_done)


def _match_real(real_keys: dict[str, str], out_dir: Path) -> tuple[dict[str, dict], bool]:
    """The previous real.csv's rows whose ``real_key`` is unchanged, and whether it holds others."""
    real_done: dict[str, dict] = {}
    prev_real = read_csv_or_none(out_dir / REAL_CSV)
    if prev_real is None or "real_key" not in prev_real.columns:
        return real_done, False
    for r in prev_real.to_dict("records"):
        if real_keys.get(str(r["subject"])) == str(r["real_key"]):
            real_done[str(r["subject"])] = r
    return real_done, len(prev_real) != len(real_done)
