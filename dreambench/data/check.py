"""Validate a folder of subject folders before anything trains on it.

Every image is decoded through :func:`load_subject_image` (:mod:`dreambench.photos`), as training reads
it, so a file that passes here loads the same way later. Errors (the file cannot be used): missing or
empty subject folder, unreadable or truncated image, decompression bomb, animated image, short side below
the minimum. Warnings (the file is usable after a conversion): CMYK, palette, alpha, grayscale or 16-bit
modes converted to RGB, EXIF orientation applied, non-image files that are ignored.

:func:`check_photos` is the one per-photo check: ``dreambench data check`` runs it over a folder, and
``dreambench run`` (and ``--dry-run``) over the photos of the plan's subjects before any job. It decodes
at :data:`CHECK_SHORT_SIDE`: JPEG's smallest DCT scale (1/8), which still reads every byte of the file
(so a cut-off JPEG fails) at a fraction of a full decode (158 DreamBooth photos: about 0.8 s).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path

from tqdm.auto import tqdm

from .. import photos  # module: tests wrap decode_photo, read at call time
from ..errors import DataError, first_problems
from ..images import IMAGE_SUFFIXES, MIN_SHORT_SIDE, list_images
from ..protocol import Protocol, load_protocol


@dataclass
class CheckReport:
    """What :func:`check_dataset` found.

    Attributes:
        data_dir: the folder checked.
        subjects: number of subject folders present and checked.
        images: number of image files decoded.
        errors: ``(path, message)`` for every unusable file or folder.
        warnings: ``(path, message)`` for every file used after a conversion, or ignored.
        subject_names: the subject folders checked, in order.
    """

    data_dir: Path
    subjects: int = 0
    images: int = 0
    errors: list[tuple[Path, str]] = field(default_factory=list)
    warnings: list[tuple[Path, str]] = field(default_factory=list)
    subject_names: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """No errors (warnings allowed)."""
        return not self.errors

    def summary(self) -> str:
        """One line, e.g. ``"30 subjects, 158 images, 0 errors, 0 warnings"``."""
        return (f"{self.subjects} subjects, {self.images} images, {len(self.errors)} errors, "
                f"{len(self.warnings)} warnings")

    def to_dict(self) -> dict:
        """JSON-ready form (paths as strings)."""
        return {
            "data_dir": str(self.data_dir),
            "subjects": self.subjects,
            "images": self.images,
            "ok": self.ok,
            "subject_names": list(self.subject_names),
            "errors": [{"path": str(p), "message": m} for p, m in self.errors],
            "warnings": [{"path": str(p), "message": m} for p, m in self.warnings],
        }

    def raise_for_errors(self, limit: int = 5) -> CheckReport:
        """Raise :class:`DataError` naming the first ``limit`` bad files; return ``self`` when clean."""
        if self.errors:
            shown = first_problems([f"{p}: {m}" for p, m in self.errors], limit)
            raise DataError(f"{self.data_dir}: {len(self.errors)} bad subject file(s): {shown}; "
                            f"run `dreambench data check {self.data_dir}` for the full list")
        return self


def load_subject_image(path: str | Path, min_short_side: int = MIN_SHORT_SIDE, short_side: int | None = None):
    """A subject photo decoded once as training, ``data check`` and ``run`` all read it (EXIF, RGB; reduced
    for a training ``short_side`` when given, see :mod:`dreambench.photos`) and checked from its
    header, or :class:`DataError` naming it: unreadable, animated, or short side below ``min_short_side``
    (the protocol's minimum, :data:`dreambench.images.MIN_SHORT_SIDE`). Returns the
    :class:`~dreambench.photos.Photo`."""
    return photos.check_photo(photos.decode_photo(path, short_side), min_short_side)


#: The training short side a check decodes for: JPEG draft mode then decodes at 1/8 scale, the smallest.
CHECK_SHORT_SIDE = 1


def check_photos(paths: list[Path], min_short_side: int = MIN_SHORT_SIDE, progress: bool = False
                 ) -> tuple[list[tuple[Path, str]], list[tuple[Path, str]]]:
    """``(errors, warnings)`` of subject photos, each ``(path, message)``: every file is decoded (reduced,
    :data:`CHECK_SHORT_SIDE`) and checked by :func:`load_subject_image`. A photo with an error is unusable:
    missing, not an image, truncated, a decompression bomb, animated, or a short side below
    ``min_short_side``."""
    errors: list[tuple[Path, str]] = []
    warned: list[tuple[Path, str]] = []
    for path in tqdm(paths, desc="check", unit="img", disable=not progress):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                load_subject_image(path, min_short_side=min_short_side, short_side=CHECK_SHORT_SIDE)
            except DataError as e:
                errors.append((path, _strip_path(path, str(e))))
        warned.extend((path, _strip_path(path, str(w.message))) for w in caught)
    return errors, warned


def _strip_path(path: Path, message: str) -> str:
    # load_rgb prefixes its messages with the path; the report keeps the path in its own column.
    prefix = f"{path}: "
    return message.removeprefix(prefix)


def _subject_folders(data_dir: Path, protocol: Protocol | None, subjects: list[str] | None) -> list[str]:
    if subjects is not None:
        return list(subjects)
    if protocol is not None:
        return [s.name for s in protocol.subjects]
    return sorted(p.name for p in data_dir.iterdir() if p.is_dir() and not p.name.startswith("."))


def check_dataset(
    data_dir: str | Path,
    protocol: str | Path | Protocol | None = None,
    min_short_side: int = MIN_SHORT_SIDE,
    progress: bool = False,
    subjects: list[str] | None = None,
) -> CheckReport:
    """Check every subject folder of ``data_dir`` and every image in it.

    Args:
        data_dir: folder holding one sub-folder of images per subject.
        protocol: a protocol (name, folder or :class:`Protocol`) whose subjects must all be present; only
            their folders are checked. ``None`` checks every non-hidden sub-folder.
        min_short_side: smallest accepted short side in pixels (after EXIF rotation).
        progress: show a progress bar over images.
        subjects: check only these subject folders (each must exist), e.g. the subjects of a run's plan.

    Raises :class:`DataError` only when ``data_dir`` itself is not a folder or the protocol cannot be
    loaded; per-file problems are collected in the returned :class:`CheckReport`.
    """
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise DataError(f"{data_dir}: data folder not found")
    proto = load_protocol(protocol) if isinstance(protocol, (str, Path)) else protocol
    report = CheckReport(data_dir)
    todo: list[Path] = []
    for name in _subject_folders(data_dir, proto, subjects):
        folder = data_dir / name
        if not folder.is_dir():
            why = "is not a folder" if folder.exists() else "not found"
            report.errors.append((folder, f"missing subject folder: {why}"
                                  + (f" (subject of protocol {proto.name!r})" if proto else "")))
            continue
        report.subjects += 1
        report.subject_names.append(name)
        images = list_images(folder)
        for other in sorted(folder.iterdir()):
            if other.name.startswith("."):
                continue
            if other.is_dir():
                report.warnings.append((other, "sub-folder ignored (images must sit directly in the subject folder)"))
            elif other.suffix.lower() not in IMAGE_SUFFIXES:
                report.warnings.append((other, f"ignored: not an image suffix ({', '.join(IMAGE_SUFFIXES)})"))
        if not images:
            report.errors.append((folder, "empty subject folder: no images"))
        todo.extend(images)
    errors, warned = check_photos(todo, min_short_side, progress)
    report.images += len(todo)
    report.errors.extend(errors)
    report.warnings.extend(warned)
    return report


def subject_images(data_dir: str | Path, subject_name: str) -> list[Path]:
    """The image files of one subject (``data_dir/subject_name/*``), sorted by name.

    Raises :class:`DataError` naming the folder when it is missing or holds no images. Images are not
    decoded here; :func:`check_dataset` does that."""
    folder = Path(data_dir) / subject_name
    if not folder.is_dir():
        raise DataError(f"{folder}: subject folder not found (subject {subject_name!r} in {data_dir}); "
                        "set --data or $DREAMBENCH_DATA to the dataset folder")
    images = list_images(folder)
    if not images:
        raise DataError(f"{folder}: no images in subject folder {subject_name!r} "
                        f"(expected {', '.join(IMAGE_SUFFIXES)} files)")
    return images
