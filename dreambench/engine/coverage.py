"""After a run: every (label, subject) it planned has per-image scores, or is named with the cause.

A table over fewer subjects than planned is a different table; the run must not end quietly when a
subject's scores are absent (its score job failed, its part was stale and left out of the merge, or its
part holds no scored image). Reads ``scores/score_meta.json`` and the ``method``/``subject`` columns of
``scores/per_image.csv`` with the csv module (no pandas: a no-op resume stays light).
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path

from ..layout import PER_IMAGE, SCORE_META, ResultsLayout
from .jobs import Plan


@dataclass(frozen=True)
class Unscored:
    """A planned (label, subject) with no per-image score, and why."""

    label: str
    subject: str
    reason: str

    def line(self) -> str:
        return f"{self.label}/{self.subject}: no scores ({self.reason})"


def unscored(plan: Plan, results_dir: str | Path) -> list[Unscored]:
    """The planned (label, subject) pairs of ``plan``'s score jobs that ``scores/per_image.csv`` has no
    row for; empty when the plan scores nothing."""
    planned = [(j.label, j.subject) for j in plan.by_kind("score")]
    if not planned:
        return []
    scores = ResultsLayout(results_dir).scores
    try:
        meta = json.loads((scores / SCORE_META).read_text())
    except (OSError, ValueError):
        meta = {}
    why = {(m.get("method"), m.get("subject")): m.get("reason") or "missing" for m in meta.get("missing") or []}
    have = _scored_pairs(scores / PER_IMAGE)
    out = []
    for label, subject in planned:
        if (label, subject) in have:
            continue
        reason = why.get((label, subject)) or ("its score part holds no scored image"
                                                if f"{label}/{subject}" in (meta.get("parts") or {})
                                                else "no score part was merged")
        out.append(Unscored(label, subject, str(reason)))
    return out


def _scored_pairs(per_image: Path) -> set[tuple[str, str]]:
    try:
        with per_image.open(newline="") as f:
            return {(r.get("method", ""), r.get("subject", "")) for r in csv.DictReader(f)}
    except OSError:
        return set()
