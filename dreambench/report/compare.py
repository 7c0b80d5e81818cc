"""Comparison pages (``report/compare/<subject>.html``): the paper's qualitative figure for one subject.

The subject's real photos on top, then one row per prompt (its text and category), with each method's
images side by side in columns, every image captioned with its own DINO / CLIP-T. Methods are in Table 1
order (:func:`dreambench.tables.select.table1_order`) and shown by their display names.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field

from ..judge.judged import JudgedImage
from ..protocol import CLASS_PROMPT_INDEX
from .grid import url_of


def _f(x) -> str:
    try:
        v = float(x)
    except (TypeError, ValueError):
        return "N/A"
    return "N/A" if math.isnan(v) else f"{v:.3f}"


@dataclass
class CompareRow:
    """One prompt: ``cells[i]`` holds the images of ``methods[i]`` as (url, alt, caption) triples."""

    index: int
    prompt: str
    category: str
    cells: list[list[tuple[str, str, str]]] = field(default_factory=list)


def compare_rows(records: list[dict], methods: list[str], images_prefix: str,
                 judged: dict[str, dict[int, JudgedImage]] | None = None) -> list[CompareRow]:
    """The rows of one subject's comparison page from its per-image records (all methods): protocol
    prompts in order, then the class prompt (PRES samples) when any method made them. The prompt shown
    is the identifier-free text (``prompt_plain``) so rows read the same for every method. ``judged``:
    method -> prompt index -> the judge's view of its first image, whose caption adds the judge's scores."""
    by_prompt: dict[int, dict[str, list[dict]]] = defaultdict(lambda: defaultdict(list))
    for r in records:
        by_prompt[int(r["prompt_index"])][r["method"]].append(r)
    rows = []
    for idx in sorted(by_prompt, key=lambda i: (i == CLASS_PROMPT_INDEX, i)):
        first = next(iter(by_prompt[idx].values()))[0]
        prompt = str(first.get("prompt_plain") or first.get("prompt") or "")
        category = "class prompt (PRES)" if idx == CLASS_PROMPT_INDEX else str(first.get("category") or "")
        row = CompareRow(idx, prompt, category)
        for m in methods:
            imgs = sorted(by_prompt[idx].get(m, []), key=lambda r: r.get("seed", 0))
            mine = (judged or {}).get(m, {}).get(idx)
            row.cells.append([
                (url_of(images_prefix, r["path"]), f"{m}: {r.get('prompt', prompt)} (seed {r.get('seed', '?')})",
                 f"DINO {_f(r.get('dino'))} / CLIP-T {_f(r.get('clip_t'))}"
                 + (f" · {mine.summary()}" if mine is not None and i == 0 else ""))
                for i, r in enumerate(imgs) if str(r.get("path", ""))
            ])
        rows.append(row)
    return rows
