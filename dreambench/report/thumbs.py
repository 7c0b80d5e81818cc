"""Small JPEG thumbnails of a subject's real images, so a report opens without the dataset folder."""

from __future__ import annotations

import warnings
from pathlib import Path

from ..images import ImageWarning, list_images, load_rgb
from ..io import save_image_atomic

THUMB_SIZE = 128


def real_thumbnails(subject_dir: Path, out_dir: Path, size: int = THUMB_SIZE) -> list[Path]:
    """Write ``<out_dir>/<stem>.jpg`` (longest side ``size`` px, EXIF orientation applied) for every image
    in ``subject_dir``; an existing thumbnail newer than its source is kept. Returns the thumbnail paths,
    in the dataset's file order; none when ``subject_dir`` does not exist."""
    if not subject_dir.is_dir():
        return []
    return [thumbnail(src, out_dir / f"{src.stem}.jpg", size) for src in list_images(subject_dir)]


def thumbnail(src: Path, dst: Path, size: int = THUMB_SIZE) -> Path | None:
    """A JPEG thumbnail of one image (longest side ``size`` px), rewritten only when older than ``src``;
    ``None`` when ``src`` is missing (the row was scored from a file since removed)."""
    if not src.is_file():
        return None
    if not (dst.is_file() and dst.stat().st_mtime >= src.stat().st_mtime):
        with warnings.catch_warnings():
            # Phone photos carry EXIF rotations; load_rgb applies them, which is all a thumbnail needs.
            warnings.simplefilter("ignore", ImageWarning)
            im = load_rgb(src)
        im.thumbnail((size, size))
        save_image_atomic(im, dst)
    return dst
