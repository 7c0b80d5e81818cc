"""The content of one method/subject page: one row per prompt (its text, category, scores and images)."""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field
from urllib.parse import quote

from ..judge.judged import JudgedImage
from ..metrics.registry import CLASS_ROWS, DIV_ROWS, PROMPT_ROWS, Metric, list_metrics
from ..protocol import CLASS_PROMPT_INDEX


@dataclass
class GridRow:
    """One prompt of a page: ``images`` are (relative URL, alt text) pairs in seed order; ``scores`` maps a
    metric label to its mean over the row's images (``DIV`` from div.csv), already formatted; ``judged``: the
    judge's calls of the row's first image (the one it judges), when the folder was judged."""

    index: int
    prompt: str
    category: str
    images: list[tuple[str, str]] = field(default_factory=list)
    scores: dict[str, str] = field(default_factory=dict)
    judged: JudgedImage | None = None


def _f(x: float) -> str:
    return "N/A" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.3f}"


def url_of(prefix: str, relpath: str) -> str:
    """``prefix`` + the relative path with each part percent-encoded (spaces, '#', '?' in names)."""
    return prefix + "/".join(quote(part) for part in str(relpath).replace("\\", "/").split("/"))


def mean_of(values) -> float:
    vals = [float(v) for v in values if v is not None and not math.isnan(float(v))]
    return sum(vals) / len(vals) if vals else float("nan")


def page_values(records: list[dict], metric: Metric) -> list:
    """The per-image values of ``metric`` in ``records`` (per-image dicts): its column, or what its
    ``per_image`` computes from them (pandas only for such a metric)."""
    if metric.per_image is None:
        return [r.get(metric.column) for r in records]
    import pandas as pd

    return list(metric.per_image(pd.DataFrame(records))) if records else []


def grid_rows(records: list[dict], div_records: list[dict] | None, images_prefix: str,
              judged: dict[int, JudgedImage] | None = None) -> list[GridRow]:
    """The rows of one (method, subject) page from that pair's per-image records (and div.csv records):
    prompts in protocol order, then the class prompt (``prompt_index == -1``, whose ``dino`` is PRES).
    Image URLs are ``images_prefix`` + the manifest path; ``judged``: prompt index -> the judge's view of its
    first image (:func:`dreambench.judge.judged.attach`). Plain Python: a report has hundreds of pages."""
    by_prompt: dict[int, list[dict]] = defaultdict(list)
    for r in records:
        by_prompt[int(r["prompt_index"])].append(r)
    divs: dict[int, list[dict]] = defaultdict(list)
    for r in div_records or []:
        divs[int(r["prompt_index"])].append(r)
    rows = []
    # Class-prompt samples last: they are the PRES check, not one of the 25 prompts.
    for idx in sorted(by_prompt, key=lambda i: (i == CLASS_PROMPT_INDEX, i)):
        g = sorted(by_prompt[idx], key=lambda r: r.get("seed", 0))
        prompt = str(g[0].get("prompt", ""))
        if idx == CLASS_PROMPT_INDEX:
            shown = [m for m in list_metrics() if m.rows == CLASS_ROWS]
            category = f"class prompt ({', '.join(m.display for m in shown)})"
        else:
            shown = [m for m in list_metrics() if m.rows == PROMPT_ROWS]
            category = str(g[0].get("category", "") or "")
        scores = {m.display: _f(mean_of(page_values(g, m))) for m in shown}
        if idx in divs:
            scores.update({m.display: _f(mean_of(r.get(m.column) for r in divs[idx]))
                           for m in list_metrics() if m.rows == DIV_ROWS})
        images = [
            (url_of(images_prefix, r["path"]), f"{prompt} (seed {r.get('seed', '?')})")
            for r in g
            if str(r.get("path", ""))
        ]
        rows.append(GridRow(idx, prompt, category, images, scores, (judged or {}).get(idx)))
    return rows
