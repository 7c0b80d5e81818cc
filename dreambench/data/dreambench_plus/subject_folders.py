"""The DreamBench++ reference images as one folder of real photos per subject, the shape
``dreambench score --subjects`` reads (``<folder>/<subject>/<photos>``).

A bridge until the protocol resolves a subject's photos itself: each reference image is copied byte for byte
(so the real-photo set's key, names and sha256, is that of the data folder's file) to
``<dest>/<collection_id>/<NN>.jpg``.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from .layout import DbpSubject


def write_subject_folders(data_dir: str | Path, dest: str | Path, subjects: list[DbpSubject]) -> Path:
    """``dest/<collection_id>/<NN>.jpg`` for each of ``subjects`` (read from ``data_dir``); existing folders
    are filled, an existing file is overwritten with the same bytes."""
    data_dir, dest = Path(data_dir), Path(dest)
    for s in subjects:
        folder = dest / s.collection_id
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(data_dir / s.image, folder / Path(s.image).name)
    return dest
