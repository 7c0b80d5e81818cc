"""Reading and validating a scoring call's inputs: the manifest (whole or one part), its rows and the
subjects' real photos. No torch, no model: the engine's freshness check runs this on every resume.

A bad row (unsafe or missing file, duplicate path, empty prompt) or a subject whose real photos are
unusable becomes a :class:`ScoreError` (reported in errors.csv) and is skipped; every good row goes on.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from ..errors import DataError
from ..images import MIN_SHORT_SIDE, list_images
from ..manifest import read_manifest, read_part, row_problem
from ..photos import check_header
from ..protocol import name_problem
from ..schema import MANIFEST, METHOD_INFO
from .keys import file_sha256, short_hash
from .text import strip_tokens, token_lookup


@dataclass(frozen=True)
class ScoreError:
    """One skipped input: the file at fault, where it belongs and what is wrong."""

    path: str
    method: str
    subject: str
    prompt_index: int | None
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"



def strip_identifier(prompt: str, identifier: str) -> str:
    """The prompt without the identifier token: ``"a sks dog in the jungle"`` -> ``"a dog in the jungle"``.

    Only whole tokens are removed (``"sks"`` in ``"asks"`` stays); whitespace is collapsed and no space is
    left before punctuation (:func:`.text.strip_tokens`)."""
    return strip_tokens(prompt, [identifier])



def method_identifiers(images_dir: Path, methods, default: str) -> dict[str, str]:
    out = {}
    for m in methods:
        ident = default
        info = images_dir / m / METHOD_INFO
        if name_problem(str(m)) is None and info.is_file():  # a label like '../x' is never looked up
            try:
                ident = json.loads(info.read_text()).get("identifier") or default
            except (OSError, ValueError) as e:
                raise DataError(f"{info}: not valid JSON ({e})") from None
        out[m] = ident
    return out


def read_selection(images_dir: Path, only: tuple[str, str] | None) -> pd.DataFrame:
    """The manifest of the whole folder, or of one (label, subject) part."""
    if only is None:
        return read_manifest(images_dir)
    part = images_dir / only[0] / only[1] / MANIFEST
    if not part.is_file():
        raise DataError(f"{part}: no manifest part for {only[0]}/{only[1]}")
    return read_part(part)  # columns and integer types checked: a bad value names file, row and column



def validate_rows(
    manifest: pd.DataFrame, images_dir: Path, identifiers: dict[str, str], errors: list[ScoreError]
) -> pd.DataFrame:
    """Good manifest rows with ``abspath`` and ``clip_t_text`` added; bad rows go to ``errors``."""
    has_plain = "prompt_plain" in manifest.columns
    tokens = token_lookup(images_dir, identifiers)  # what each job wrote in its prompts (TI: its placeholder)
    keep, abspaths, texts, seen = [], [], [], set()
    for i, r in enumerate(manifest.itertuples(index=False)):
        row = r._asdict()
        rel, prompt = str(row["path"]), str(row["prompt"]).strip()
        where = (rel, str(row["method"]), str(row["subject"]), int(row["prompt_index"]))
        path = images_dir / rel
        unsafe = row_problem(images_dir, row)  # absolute, '..', symlink out, bad name: never read
        if unsafe:
            errors.append(ScoreError(*where, unsafe))
            continue
        if rel in seen:
            errors.append(ScoreError(*where, "duplicate manifest row for this path (first one kept)"))
            continue
        seen.add(rel)
        if not prompt:
            errors.append(ScoreError(*where, "empty prompt in the manifest"))
            continue
        if not path.is_file():
            errors.append(ScoreError(*where, f"file not found ({path})"))
            continue
        plain = str(row["prompt_plain"]).strip() if has_plain else ""
        text = plain or strip_tokens(prompt, tokens(str(row["method"]), str(row["subject"])))
        if not text:
            errors.append(ScoreError(*where, "prompt is empty once the identifier is removed"))
            continue
        keep.append(i)
        abspaths.append(str(path))
        texts.append(text)
    good = manifest.iloc[keep].reset_index(drop=True)
    good["abspath"] = abspaths
    good["clip_t_text"] = texts
    return good


def find_real_sets(subjects: list[str], subjects_dir: Path) -> tuple[dict[str, tuple[list[Path], str]], dict[str, str]]:
    """Per subject, its real photos and the key of the set (names and bytes); unusable folders apart. A
    photo that fails the subject-photo checks read from its header (not an image, decompression bomb,
    animated, short side below 256 px: :func:`dreambench.photos.check_header`, what ``data check``
    and ``run`` refuse) never enters a real set: its subject is skipped with a message naming it."""
    sets, bad = {}, {}
    for s in subjects:
        folder = subjects_dir / s
        if not folder.is_dir():
            bad[s] = f"real-image folder {folder} not found (is --subjects the dataset folder?)"
            continue
        paths = list_images(folder)
        if not paths:
            bad[s] = f"real-image folder {folder} holds no images"
            continue
        try:
            for p in paths:
                check_header(p, MIN_SHORT_SIDE)
            sets[s] = (paths, short_hash([[p.name, file_sha256(p)] for p in paths]))
        except (OSError, DataError) as e:
            bad[s] = f"real image unusable, subject skipped: {e}"
    return sets, bad


def drop_subjects(rows: pd.DataFrame, bad: dict[str, str], errors: list[ScoreError]) -> pd.DataFrame:
    """Rows of subjects whose real photos are unusable go to ``errors``."""
    if not bad:
        return rows
    mask = rows["subject"].isin(list(bad))
    for r in rows[mask].itertuples(index=False):
        errors.append(ScoreError(str(r.path), r.method, r.subject, int(r.prompt_index), bad[r.subject]))
    return rows[~mask].reset_index(drop=True)


def unscored_pairs(per_image: pd.DataFrame, errors: list[ScoreError]) -> list[dict]:
    """The (method, subject) pairs the manifest has rows for but ``per_image`` none, each with the first
    error that left it out (its real photos unusable, every image of it unreadable): score_meta.json's
    ``missing`` (method, subject, reason), which every table names under its rows."""
    scored = set(zip(per_image["method"].astype(str), per_image["subject"].astype(str))) if len(per_image) else set()
    first: dict[tuple[str, str], str] = {}
    for e in errors:
        pair = (str(e.method), str(e.subject))
        if all(pair) and pair not in scored:
            first.setdefault(pair, e.message)
    return [{"method": m, "subject": s, "reason": why} for (m, s), why in sorted(first.items())]
