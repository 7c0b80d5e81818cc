"""Reading a score from the judge's answer, as the reference does.

The reference: ``re.findall(r"(score|Score):\\s*[a-zA-Z]*\\s*(\\d+)", content)`` must match exactly once.
``"Score: 3"`` and ``"score: about 2"`` parse; ``"**Score:** 3"``, ``"SCORE: 3"``, no score, or two
scores do not. The suite also refuses a score outside the profile's range (0-4), which the reference
would keep (a deliberate difference, docs/judge.md): such an answer is asked again, as an unparseable one.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache


@dataclass(frozen=True)
class Parsed:
    """The score (None when the answer is refused) and why it was refused (``""`` when parsed)."""

    score: int | None
    problem: str = ""


@lru_cache(maxsize=8)
def _compile(pattern: str) -> re.Pattern:
    return re.compile(pattern)


def parse_score(content: str | None, pattern: str, score_range: tuple[int, int]) -> Parsed:
    """The score of ``content``: exactly one match of ``pattern`` (its last group the digits) inside
    ``score_range`` (inclusive)."""
    if content is None:
        return Parsed(None, "empty answer")
    found = _compile(pattern).findall(content)
    if len(found) != 1:
        return Parsed(None, "no score in the answer" if not found else f"{len(found)} scores in the answer")
    m = found[0]
    score = int(m[-1] if isinstance(m, tuple) else m)
    lo, hi = score_range
    if not lo <= score <= hi:
        return Parsed(None, f"score {score} outside {lo}-{hi}")
    return Parsed(score)
