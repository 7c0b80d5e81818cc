"""The judge's records per judged image (``dreambench judge``), for the report and the human study: its CP
and PF scores per run and the judge's raw answers, read from ``<results>/judge/judge_items.csv`` (one row
per call) and ``calls.jsonl`` (the store: every attempt's answer and the sha256 of the image judged).

The judge judges *image 0* of each (label, subject, prompt): the image of the lowest seed
(:mod:`dreambench.judge.items`). A call's scores are shown against that image only when the store's
``image_sha256`` equals the image scored now (``per_image.csv``); otherwise the image changed after it was
judged and the view says so instead of showing stale scores. Scores are the judge's 0-4 ratings.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from pathlib import Path

import pandas as pd

from ..layout import ResultsLayout
from .store import CallStore

#: Metric -> how the report names it (DreamBench++'s Concept Preservation and Prompt Following).
SHOWN = {"cp": "CP", "pf": "PF"}


@dataclass
class JudgedCall:
    """One judge call of an image: ``score`` the parsed 0-4 rating (None when unparsed or not yet made),
    ``answers`` the raw answer of every attempt, oldest first."""

    metric: str
    run: int
    status: str
    score: int | None
    answers: list[str] = field(default_factory=list)


@dataclass
class JudgedImage:
    """The judge's calls of one image: ``stale`` when the image changed after it was judged."""

    label: str
    subject: str
    prompt_index: int
    image_sha256: str
    calls: list[JudgedCall] = field(default_factory=list)
    stale: bool = False

    def scores(self, metric: str) -> list[int | None]:
        return [c.score for c in sorted(self.calls, key=lambda c: c.run) if c.metric == metric]

    def summary(self) -> str:
        """``CP 3, 2 · PF 4, 4`` (one score per run, ``–`` for a call without a score), or why none."""
        if self.stale:
            return "image changed since it was judged (run `dreambench judge` again)"
        parts = []
        for metric, name in SHOWN.items():
            vals = self.scores(metric)
            if vals:
                parts.append(f"{name} " + ", ".join("–" if v is None else str(v) for v in vals))
        return " · ".join(parts)


def _score(x) -> int | None:
    try:
        v = float(x)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(v) else int(v)


def load_judged(results_dir: str | Path) -> dict[tuple[str, str, int], JudgedImage]:
    """(label, subject, prompt index) -> the judged image 0 of that prompt; empty when the folder was not
    judged. Reads only; a call the store lacks (``pending``) is listed without a score."""
    layout = ResultsLayout(Path(results_dir))
    if not layout.judge_items.is_file():
        return {}
    rows = pd.read_csv(layout.judge_items, keep_default_na=False, dtype={"key": str, "status": str})
    records = CallStore(layout.judge_calls).load()
    out: dict[tuple[str, str, int], JudgedImage] = {}
    for r in rows.to_dict("records"):
        rec = records.get(str(r["key"])) or {}
        key = (str(r["label"]), str(r["subject"]), int(r["prompt_index"]))
        judged = out.setdefault(key, JudgedImage(*key, image_sha256=str(rec.get("image_sha256", ""))))
        if not judged.image_sha256:
            judged.image_sha256 = str(rec.get("image_sha256", ""))
        answers = [str(a) for a in rec.get("answers") or []] or ([str(r["answer"])] if r["answer"] else [])
        judged.calls.append(JudgedCall(str(r["metric"]), int(r["run"]), str(r["status"]), _score(r["score"]),
                                       answers))
    return out


def attach(judged: dict[tuple[str, str, int], JudgedImage], records: list[dict]) -> dict[int, JudgedImage]:
    """Prompt index -> the judged image among one (label, subject)'s per-image ``records``, marked stale when
    the lowest-seed image of that prompt is not the one judged (by sha256)."""
    out: dict[int, JudgedImage] = {}
    if not judged:
        return out
    firsts: dict[int, dict] = {}
    for r in sorted(records, key=lambda r: (int(r["prompt_index"]), int(r.get("seed", 0) or 0))):
        firsts.setdefault(int(r["prompt_index"]), r)
    for idx, r in firsts.items():
        j = judged.get((str(r["method"]), str(r["subject"]), idx))
        if j is not None:
            sha = str(r.get("image_sha256", "") or "")
            out[idx] = replace(j, stale=bool(j.image_sha256 and sha and j.image_sha256 != sha))
    return out
