"""``dreambench data check --protocol dreambench-plus``: the layout, every image decoded, and whether the folder
is the complete published set."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ...errors import DataError
from ...images import MIN_SHORT_SIDE
from .layout import PUBLISHED_COUNTS, DbpSubject, category_counts, is_complete, scan_layout


@dataclass
class DbpCheck:
    """What :func:`check_folder` found.

    Attributes:
        folder: the data folder checked.
        subjects: the well-formed subjects (sorted by collection_id).
        problems: one line per bad file (naming it); empty when the folder is valid.
        warnings: one line per image used after a conversion (mode, EXIF orientation).
    """

    folder: Path
    subjects: list[DbpSubject] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def counts(self) -> dict[str, int]:
        return category_counts(self.subjects)

    @property
    def complete(self) -> bool:
        """Valid and as many subjects per category as the published set."""
        return self.ok and is_complete(self.subjects)

    def summary(self) -> str:
        """One line, e.g. ``"150 subjects (45 animal, 20 human, 65 object, 20 style), 1350 prompts, 0 errors:
        the complete published set"``."""
        counts = ", ".join(f"{n} {c}" for c, n in self.counts.items())
        published = ", ".join(f"{n} {c}" for c, n in PUBLISHED_COUNTS.items())
        verdict = ("the complete published set" if self.complete else
                   f"not the complete published set ({sum(PUBLISHED_COUNTS.values())} subjects: {published})")
        return (f"{len(self.subjects)} subjects ({counts}), {sum(len(s.prompts) for s in self.subjects)} prompts, "
                f"{len(self.problems)} errors, {len(self.warnings)} warnings: {verdict}")

    def to_dict(self) -> dict:
        return {"data_dir": str(self.folder), "ok": self.ok, "complete": self.complete, "counts": self.counts,
                "subjects": [s.collection_id for s in self.subjects], "errors": list(self.problems),
                "warnings": list(self.warnings)}


def check_folder(folder: str | Path, min_short_side: int = MIN_SHORT_SIDE, progress: bool = False) -> DbpCheck:
    """Check a DreamBench++ data folder: its layout (:func:`.layout.scan_layout`) and every reference image
    fully decoded as training and scoring read it (:func:`dreambench.data.check.check_photos`: truncated,
    animated, short side below ``min_short_side`` px are errors). Raises :class:`DataError` only when ``folder`` has no
    ``images/`` or ``captions/``; per-file problems are collected."""
    from ..check import check_photos  # PIL, tqdm

    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"{folder}: DreamBench++ data folder not found (run `dreambench data fetch --protocol "
                        "dreambench-plus`, or set $DREAMBENCH_PLUS_DATA)")
    subjects, problems = scan_layout(folder)
    errors, warned = check_photos([folder / s.image for s in subjects], min_short_side, progress=progress)
    bad = {p for p, _ in errors}
    report = DbpCheck(folder, [s for s in subjects if folder / s.image not in bad], problems)
    report.problems.extend(f"{p}: {m}" for p, m in errors)
    report.warnings.extend(f"{p}: {m}" for p, m in warned)
    return report
