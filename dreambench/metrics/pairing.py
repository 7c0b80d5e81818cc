"""Which real photo each generated image is compared with under a one-reference profile.

DreamBench++, Kosmos-G and ImagenHub compare every generated image with ONE photo of its subject (the
one it was generated from), not with the mean over all of them. The photo is named per manifest row by
an optional ``reference`` column: a file name inside the subject's folder (``<subjects>/<subject>/``),
e.g. ``00.jpg``. A row without it (no column, or an empty cell) uses the subject's first photo in
sorted order (``dreambench.images.list_images``: sorted by file name), which for the DreamBooth dataset
is ``00.jpg``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import pandas as pd

REFERENCE_COLUMN = "reference"


def with_references(
    rows: pd.DataFrame, photos: Mapping[str, Sequence[str]], on_error: Callable[[dict, str], None]
) -> pd.DataFrame:
    """``rows`` with a ``reference`` column (the photo's file name) filled in for every row; a row whose
    named reference is not a photo of its subject is dropped and reported through ``on_error(row, msg)``.

    ``photos``: per subject, the file names of its real photos in sorted order (subjects missing here
    are not checked; their rows were dropped already)."""
    given = rows[REFERENCE_COLUMN] if REFERENCE_COLUMN in rows.columns else pd.Series("", index=rows.index)
    given = given.fillna("").astype(str).str.strip()
    chosen, keep = [], []
    for i, (subject, name) in enumerate(zip(rows["subject"].astype(str), given)):
        names = photos.get(subject, ())
        if not name:
            name = names[0] if names else ""
        elif name not in names:
            on_error(rows.iloc[i].to_dict(), f"reference {name!r} is not a photo of subject {subject!r} "
                                             f"(photos: {', '.join(names[:6])}{', ...' if len(names) > 6 else ''})")
            continue
        keep.append(i)
        chosen.append(name)
    out = rows.iloc[keep].copy()
    out[REFERENCE_COLUMN] = chosen
    return out.reset_index(drop=True)
