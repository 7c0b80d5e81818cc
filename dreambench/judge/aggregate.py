"""From call records to the DreamBench++ figures, as the reference's ``benchmarking.py`` computes them.

Definitions (``s`` a parsed score, 0-4; a *judged* call is one with a parsed score):

* **run mean** of a slice (a label's calls of one metric, optionally one kind or prompt group) in run ``r``:
  ``sum(s) / n / 4`` over the judged calls of run ``r`` (the reference's ``cal_score``).
* **mean +- std**: over the runs, the mean and the sample standard deviation (n - 1) of the run means, each
  rounded to 3 decimals (the reference's ``avg_std``); std is NaN with one run.
* **CP*PF**: the product of the two *rounded* means, rounded to 3 decimals (what the reference prints).
* **breakdowns**: by subject kind (animal, human, object, style) and by prompt group (photorealistic 0-3,
  style transfer 4-6, imaginative 7-8); the reference reports kinds for CP and groups for PF, both are
  computed for both here. The reference selects a kind by a substring of the ``collection_id``; the suite
  by the item's kind (the same except for a subject named after another kind).
* **n judged / n expected**: judged calls / all calls of the slice (items x runs): an unparsed or not yet
  made call is missing, never averaged away.
* **interval**: the 95% interval over subjects (:func:`dreambench.stats.mean_interval`, bootstrap-t from
  10 subjects) of the per-subject means of ``s / 4`` (all runs pooled); it describes the spread over
  subjects, which the +- over runs does not.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from ..stats import INTERVAL_METHOD, mean_interval
from .profiles import KINDS, METRICS, PROMPT_GROUPS, prompt_group
from .runner import Call
from .store import OK

#: Columns of judge_items.csv (one row per call).
ITEM_COLUMNS = ["label", "subject", "prompt_index", "kind", "prompt_group", "metric", "run", "status", "score",
                "attempts", "prompt", "image", "reference", "answer", "problems", "key"]
#: Columns of judge_scores.csv (one row per label, metric and slice).
SCORE_COLUMNS = ["label", "metric", "breakdown", "group", "mean", "std", "runs", "run_means", "n_judged",
                 "n_expected", "n_subjects", "ci_lo", "ci_hi"]
PENDING = "pending"


def call_rows(calls: list[Call], records: dict[str, dict]) -> pd.DataFrame:
    """One row per call (:data:`ITEM_COLUMNS`): its record's status, score and last answer, or ``pending``."""
    rows = []
    for c in calls:
        rec = records.get(c.key) or {}
        answers = rec.get("answers") or []
        rows.append({
            "label": c.item.label, "subject": c.item.subject, "prompt_index": c.item.prompt_index,
            "kind": c.item.kind, "prompt_group": prompt_group(c.item.prompt_index), "metric": c.metric,
            "run": c.run, "status": rec.get("status", PENDING),
            "score": rec.get("score") if rec.get("status") == OK else None, "attempts": rec.get("attempts", 0),
            "prompt": c.item.prompt, "image": str(c.item.image), "reference": str(c.item.reference),
            "answer": answers[-1] if answers else "", "problems": "; ".join(rec.get("problems") or []),
            "key": c.key,
        })
    df = pd.DataFrame(rows, columns=ITEM_COLUMNS)
    df["score"] = pd.to_numeric(df["score"], errors="coerce")
    return df


def avg_std(data: list[float]) -> tuple[float, float]:
    """The reference's ``avg_std``: mean and sample std (n - 1), each rounded to 3 decimals (std NaN for one
    value; both NaN for none)."""
    if not data:
        return math.nan, math.nan
    avg = sum(data) / len(data)
    if len(data) < 2:
        return round(avg, 3), math.nan
    std = math.sqrt(sum([(x - avg) ** 2 for x in data]) / (len(data) - 1))
    return round(avg, 3), round(std, 3)


def run_mean(scores: list[int], score_max: int) -> float:
    """The reference's ``cal_score``: ``sum(scores) / len(scores) / score_max`` (NaN for no score)."""
    return sum(scores) / len(scores) / score_max if scores else math.nan


def _slices(rows: pd.DataFrame) -> list[tuple[str, str, pd.Series]]:
    out = [("overall", "all", pd.Series(True, index=rows.index))]
    out += [("kind", k, rows["kind"] == k) for k in KINDS if (rows["kind"] == k).any()]
    out += [("prompt_group", g, rows["prompt_group"] == g) for g in PROMPT_GROUPS if (rows["prompt_group"] == g).any()]
    return out


def _summary(sub: pd.DataFrame, runs: list[int], score_max: int) -> dict:
    judged = sub[sub["status"] == OK]
    means = [run_mean([int(s) for s in judged.loc[judged["run"] == r, "score"]], score_max) for r in runs]
    means = [m for m in means if not math.isnan(m)]
    mean, std = avg_std(means)
    per_subject = (judged.groupby("subject")["score"].mean() / score_max).to_numpy(dtype=float)
    est = mean_interval(per_subject, value_range=(0.0, 1.0))
    return {"mean": mean, "std": std, "runs": len(means), "run_means": ";".join(f"{m:.6f}" for m in means),
            "n_judged": len(judged), "n_expected": len(sub), "n_subjects": len(per_subject),
            "ci_lo": est.lo, "ci_hi": est.hi}


def summarize(rows: pd.DataFrame, score_max: int = 4) -> pd.DataFrame:
    """:data:`SCORE_COLUMNS` for every label: CP and PF overall, by kind and by prompt group, and CP*PF."""
    out = []
    runs = sorted(int(r) for r in rows["run"].unique())
    for label in sorted(rows["label"].unique()):
        lab = rows[rows["label"] == label]
        overall = {}
        for metric in METRICS:
            met = lab[lab["metric"] == metric]
            for breakdown, group, mask in _slices(met):
                s = _summary(met[mask], runs, score_max)
                out.append({"label": label, "metric": metric, "breakdown": breakdown, "group": group, **s})
                if breakdown == "overall":
                    overall[metric] = s
        cp, pf = overall.get("cp", {}).get("mean", math.nan), overall.get("pf", {}).get("mean", math.nan)
        both = {k: min(overall[m][k] for m in overall) for k in ("n_judged", "n_expected")} if overall else {}
        out.append({"label": label, "metric": "cp_pf", "breakdown": "overall", "group": "all",
                    "mean": round(cp * pf, 3) if not (math.isnan(cp) or math.isnan(pf)) else math.nan,
                    "std": math.nan, "runs": min((overall[m]["runs"] for m in overall), default=0), "run_means": "",
                    "n_subjects": min((overall[m]["n_subjects"] for m in overall), default=0),
                    "ci_lo": np.nan, "ci_hi": np.nan, **both})
    return pd.DataFrame(out, columns=SCORE_COLUMNS)


__all__ = ["INTERVAL_METHOD", "ITEM_COLUMNS", "SCORE_COLUMNS", "avg_std", "call_rows", "run_mean", "summarize"]
