"""Agreement of the study's 0-4 ratings (:mod:`.ratings`) with each other, with the VLM judge and with the
similarity metrics, as DreamBench++ reports it (``krippendorff_analysis.py`` and ``pearson.py`` of
yuangpeng/dreambench_plus 66ca27e; the formulas are in :mod:`.agreement`).

Definitions, per label (and ``all``: every label's items pooled) and metric (CP, PF):

* An *item* is one rated image of one metric. A *group* plays the part of the reference's groups of
  annotators: group ``g`` holds the ``g``-th rating of every item, in the order received (so each group
  rates an item at most once; the study's ``--max-answers 2`` gives the reference's two groups).
* **alpha human-human**: Krippendorff's alpha (interval) over the groups (``kd_alpha``); needs 2 groups.
* **alpha judge-human**: per judge run, the mean over groups of alpha(group, judge run) (the reference's
  ``average_kd_alpha``); ``mean`` and ``spread`` are the mean and sample std over runs (``avg_std``, as the
  reference's ``G-H`` column over its three runs ``full``, ``full2``, ``full3``).
* **pearson human-human**: Pearson r between groups 1 and 2 on the items both rated.
* **pearson judge-human / <metric>-human**: per group, r(group, x) on the items both have; ``mean`` the
  mean over groups and ``spread`` half their range (the reference's ``(r1 + r2) / 2 ± |r1 - r2| / 2``);
  x is the judge's first run (the reference's ``full``) or the metric's per-image value: DINO and CLIP-I
  for CP, CLIP-T for PF (the metrics' ``study`` declaration).

A judge score or metric value counts only for the very image rated (same label, subject, prompt, seed and
image sha256); a changed image is counted in ``n_stale`` and left out. NaN where fewer than two pairs
exist or a side does not vary.
"""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from ..judge.aggregate import avg_std
from ..judge.judged import load_judged
from ..metrics.registry import get_metric, study_metrics
from .agreement import judge_human_alpha, kd_alpha, pearson_r
from .ratings import load_ratings

#: Study question type whose metrics each rating metric is compared with (:func:`study_metrics`).
QUESTION_TYPE = {"cp": "subject", "pf": "prompt"}
COLUMNS = ["label", "metric", "measure", "pair", "mean", "spread", "n_items", "n_groups", "n_runs", "n_stale"]
Key = tuple[str, str, int]  # (label, subject, prompt index)


def _pearson(x: dict[Key, float], y: dict[Key, float]) -> float:
    keys = sorted(k for k in x if k in y and x[k] is not None and y[k] is not None)
    if len(keys) < 2:
        return math.nan
    a, b = np.array([x[k] for k in keys], float), np.array([y[k] for k in keys], float)
    if a.std() == 0 or b.std() == 0:
        return math.nan
    return pearson_r(a, b)


def _groups(ratings: pd.DataFrame) -> list[dict[Key, float]]:
    """Group g -> {item key: its g-th rating} (module docstring)."""
    r = ratings.sort_values("rating_id")
    r = r.assign(group=r.groupby("item_id").cumcount())
    return [{(str(x.label), str(x.subject), int(x.prompt_index)): float(x.score) for x in g.itertuples()}
            for _, g in sorted(r.groupby("group"), key=lambda t: t[0])]


def _judge_runs(items: pd.DataFrame, metric: str, judged: dict) -> tuple[list[dict[Key, float]], int]:
    """Per judge run, {item key: score} of the rated images (same sha256), and how many were stale."""
    runs: dict[int, dict[Key, float]] = {}
    stale = 0
    for it in items.drop_duplicates("item_id").itertuples():
        key = (str(it.label), str(it.subject), int(it.prompt_index))
        j = judged.get(key)
        if j is None:
            continue
        if j.image_sha256 and j.image_sha256 != it.image_sha256:
            stale += 1
            continue
        for c in j.calls:
            if c.metric == metric and c.score is not None:
                runs.setdefault(c.run, {})[key] = float(c.score)
    return [runs[r] for r in sorted(runs)], stale


def _metric_values(items: pd.DataFrame, per_image: pd.DataFrame | None, column: str) -> tuple[dict, int]:
    if per_image is None or column not in per_image.columns:
        return {}, 0
    pi = per_image.assign(_key=list(zip(per_image["method"].astype(str), per_image["subject"].astype(str),
                                        per_image["prompt_index"].astype(int), per_image["seed"].astype(int))))
    by = {k: r for k, r in zip(pi["_key"], pi.to_dict("records"))}
    out, stale = {}, 0
    for it in items.drop_duplicates("item_id").itertuples():
        row = by.get((str(it.label), str(it.subject), int(it.prompt_index), int(it.seed)))
        if row is None:
            continue
        if str(row.get("image_sha256", "")) != str(it.image_sha256):
            stale += 1
            continue
        v = pd.to_numeric(row.get(column), errors="coerce")
        if not pd.isna(v):
            out[(str(it.label), str(it.subject), int(it.prompt_index))] = float(v)
    return out, stale


def _rows(label: str, metric: str, ratings: pd.DataFrame, judged: dict, per_image: pd.DataFrame | None) -> list:
    groups = _groups(ratings)
    n_items = int(ratings["item_id"].nunique())
    base = {"label": label, "metric": metric, "n_items": n_items, "n_groups": len(groups)}
    nan = math.nan
    rows = [{**base, "measure": "alpha", "pair": "human-human", "mean": kd_alpha(groups) if len(groups) > 1 else nan,
             "spread": nan, "n_runs": 0, "n_stale": 0}]
    runs, stale = _judge_runs(ratings, metric, judged)
    if runs:
        mean, std = avg_std([judge_human_alpha(groups, run) for run in runs])
        rows.append({**base, "measure": "alpha", "pair": "judge-human", "mean": mean, "spread": std,
                     "n_runs": len(runs), "n_stale": stale})
    rows.append({**base, "measure": "pearson", "pair": "human-human", "n_runs": 0, "n_stale": 0, "spread": nan,
                 "mean": _pearson(groups[0], groups[1]) if len(groups) > 1 else nan})
    sides = [("judge", runs[0] if runs else None, stale, 1)]  # the first run, as pearson.py reads ``full``
    for column in study_metrics().get(QUESTION_TYPE[metric], ()):
        values, st = _metric_values(ratings, per_image, get_metric(column).column)
        sides.append((column, values if per_image is not None else None, st, 0))
    for name, x, st, n_runs in sides:
        if x is None:
            continue
        rs = [_pearson(g, x) for g in groups]
        ok = [r for r in rs if not math.isnan(r)]
        rows.append({**base, "measure": "pearson", "pair": f"{name}-human", "n_runs": n_runs, "n_stale": st,
                     "mean": round(sum(ok) / len(ok), 3) if ok else nan,
                     "spread": round((max(ok) - min(ok)) / 2, 3) if ok else nan})
    return rows


def rating_agreement(db_path: str | Path, per_image_csv: str | Path | None = None,
                     judged_results: str | Path | None = None) -> pd.DataFrame:
    """The agreement table (:data:`COLUMNS`, module docstring) of the study's ratings; empty without ratings.
    ``per_image_csv``: the scores of the rated folder (metric rows); ``judged_results``: the results folder
    whose ``judge/`` records to compare (judge rows)."""
    ratings = load_ratings(db_path)
    if ratings.empty:
        return pd.DataFrame(columns=COLUMNS)
    judged = load_judged(judged_results) if judged_results is not None else {}
    per_image = None
    if per_image_csv is not None:
        per_image = pd.read_csv(per_image_csv, keep_default_na=False, dtype={"image_sha256": str})
        per_image = per_image[pd.to_numeric(per_image["prompt_index"], errors="coerce") >= 0]
    rows = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        for metric in ("cp", "pf"):
            mine = ratings[ratings["metric"] == metric]
            if mine.empty:
                continue
            scopes = [(label, g) for label, g in mine.groupby("label", sort=True)]
            if len(scopes) > 1:
                scopes.append(("all", mine))
            for label, g in scopes:
                rows += _rows(str(label), metric, g, judged, per_image)
    return pd.DataFrame(rows, columns=COLUMNS)


def agreement_markdown(df: pd.DataFrame, random_init: bool = False) -> str:
    """The agreement table as Markdown, one row per (label, metric, measure, pair); ``random_init``: the
    metric values come from random-init weights (said on top)."""
    def f(v, d=3):
        return "N/A" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.{d}f}"

    lines = ["# Agreement of the 0-4 ratings (DreamBench++ style)", "",
             *(["**random-init weights: the metric rows are not quality results**", ""] if random_init else []),
             ("alpha: Krippendorff's alpha (interval); judge-human alpha: mean over judge runs +- sample std "
             "of (mean over rating groups of alpha(group, run)); pearson X-human: mean over rating groups "
             "+- half their range; judge runs: the runs behind the row (Pearson reads the first). "
              "Definitions: dreambench/study/rating_agreement.py."), "",
             "| Label | Metric | Measure | Pair | Value | ± | Items | Groups | Judge runs | Stale |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in df.to_dict("records"):
        lines.append(f"| {r['label']} | {r['metric'].upper()} | {r['measure']} | {r['pair']} | {f(r['mean'])} | "
                     f"{f(r['spread'])} | {r['n_items']} | {r['n_groups']} | {r['n_runs']} | {r['n_stale']} |")
    return "\n".join(lines) + "\n"
