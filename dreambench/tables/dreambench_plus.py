"""DreamBench++'s table (Peng et al., ICLR 2025): each metric overall and broken down as the reference
code's ``benchmarking.py`` does, by subject category (animal, human, object, style) and by prompt group
(photorealistic: prompts 0-3, style transfer: 4-6, imaginative: 7-8).

Definition of a cell, for one label, one metric and one breakdown ``b``: each subject in ``b`` (all
subjects for a prompt-group or the overall column; the subjects of that category for a category column)
gets the mean of the metric over its images in ``b`` (the class-prompt samples excluded); the cell is the
mean of those per-subject values, with the suite's 95% interval over subjects
(:func:`dreambench.tables.compute.estimate`). With the protocol's one image per prompt and nine prompts per
subject this mean equals the reference's mean over items. ``n``: subjects behind the overall cell.

The published rows (``--reference dreambench-plus``) are the judge's CP, PF and CP·PF as printed; they are
marked "(reported)" and never mixed into the measured ones.
"""

from __future__ import annotations

import math

import pandas as pd

from ..data.dreambench_plus.layout import CATEGORY_DIRS, PROMPT_GROUPS, category_of
from ..metrics.registry import SCORED_COLUMNS, get_metric
from .compute import estimate, metric_range
from .reference import MEASURED, REPORTED, reported_name
from .render import Table

NUMBER = 7
KEY = "table7_dreambench_plus"
TITLE = "DreamBench++: each metric overall and by subject category and prompt group"
CATEGORIES = tuple(CATEGORY_DIRS)
GROUPS = tuple(dict.fromkeys(PROMPT_GROUPS))
BREAKDOWNS = (*CATEGORIES, *GROUPS, "overall")
HEADERS = {"animal": "Animal", "human": "Human", "object": "Object", "style": "Style",
           "photorealistic": "Photorealistic", "style_transfer": "Style transfer", "imaginative": "Imaginative",
           "overall": "Overall"}
#: The similarity metrics measured now (those the scorer computes per image, metrics.registry); the judge's
#: CP, PF and CP·PF join them when judged.
METRICS = tuple(SCORED_COLUMNS)
REFERENCE = "dreambench-plus"
CITATION = "Peng et al. 2025 (DreamBench++, ICLR), GPT-4o judge, mean of 3 runs"
#: (display name, model, {metric: value}) as published (github yuangpeng/dreambench_plus README, main table).
PUBLISHED = (
    ("DreamBooth", "SD1.5", {"cp": 0.494, "pf": 0.721, "cp_pf": 0.356}),
    ("DreamBooth-LoRA", "SDXL", {"cp": 0.598, "pf": 0.865, "cp_pf": 0.517}),
)
METRIC_NAMES = {"cp": "CP", "pf": "PF", "cp_pf": "CP·PF"}


def is_dreambench_plus(per_image: pd.DataFrame) -> bool:
    """Whether the images are of DreamBench++ subjects (every subject a collection_id)."""
    subjects = per_image["subject"].astype(str).unique() if len(per_image) else []
    return len(subjects) > 0 and all(category_of(s) for s in subjects)


def _subject_means(rows: pd.DataFrame, metric: str) -> pd.Series:
    return rows.groupby("subject")[metric].mean().dropna()


def _cells(rows: pd.DataFrame, metric: str, bounds: tuple[float, float]) -> dict:
    """The breakdown cells of one (label, metric): ``b``, ``b_lo``, ``b_hi`` per breakdown, plus n."""
    out: dict = {}
    kinds = rows["subject"].map(category_of)
    for b in BREAKDOWNS:
        subset = rows[kinds == b] if b in CATEGORIES else rows[rows["category"] == b] if b in GROUPS else rows
        e = estimate(_subject_means(subset, metric), bounds)
        out[b], out[f"{b}_lo"], out[f"{b}_hi"] = e.mean, e.lo, e.hi
        if b == "overall":
            out["n_subjects"] = e.n
    return out


def table_rows(per_image: pd.DataFrame, labels: list[str], metrics: tuple[str, ...] = METRICS) -> pd.DataFrame:
    """One row per (label, metric) with every breakdown (module docstring), labels in the order given."""
    df = per_image[per_image["prompt_index"].astype(int) >= 0]
    rows = []
    for label in labels:
        mine = df[df["method"] == label]
        for metric in metrics:
            if metric not in mine.columns:
                continue
            vals = mine.assign(**{metric: pd.to_numeric(mine[metric], errors="coerce")})
            rows.append({"method": label, "metric": get_metric(metric).display, "source": MEASURED,
                         **_cells(vals, metric, metric_range(per_image, metric))})
    return pd.DataFrame(rows)


def reported_rows() -> pd.DataFrame:
    """The published CP, PF, CP·PF rows (overall only; breakdown cells NaN)."""
    nan = math.nan
    rows = []
    for name, model, figures in PUBLISHED:
        for metric, value in figures.items():
            row = {"method": reported_name(f"{name} ({model})"), "metric": METRIC_NAMES[metric], "source": REPORTED,
                   "n_subjects": 150}
            for b in BREAKDOWNS:
                row[b] = value if b == "overall" else nan
                row[f"{b}_lo"] = row[f"{b}_hi"] = nan
            rows.append(row)
    return pd.DataFrame(rows)


def judge_table_rows(judged: pd.DataFrame, labels: list[str]) -> pd.DataFrame:
    """The judge's rows (:func:`dreambench.judge.table.judge_rows`) in this table's shape: CP by category,
    PF by prompt group, each overall with its interval over subjects, CP·PF overall (the product of the two
    rounded means, as the reference computes it); ``judged``: items judged / expected."""
    nan = math.nan
    rows = []
    for r in judged[judged["label"].isin(labels)].to_dict("records"):
        for metric, parts in (("cp", CATEGORIES), ("pf", GROUPS), ("cp_pf", ())):
            row = {"method": r["label"], "metric": METRIC_NAMES[metric], "source": MEASURED, "n_subjects": nan}
            for b in BREAKDOWNS:
                row[b] = r.get(f"{metric}_{b}", nan) if b in parts else nan
                row[f"{b}_lo"] = row[f"{b}_hi"] = nan
            row["overall"] = r[metric]
            if metric != "cp_pf":
                row["overall_lo"], row["overall_hi"] = r[f"{metric}_lo"], r[f"{metric}_hi"]
                row["judged"] = f"{int(r[f'{metric}_n_judged'])}/{int(r[f'{metric}_n_expected'])}"
            rows.append(row)
    return pd.DataFrame(rows)


def build(per_image: pd.DataFrame, labels: list[str], names: dict[str, str], reference: str | None,
          extra: pd.DataFrame | None = None) -> Table:
    """The DreamBench++ table of ``labels`` (display names from ``names``); ``extra``: more measured rows of
    the same shape (the judge's); ``reference="dreambench-plus"`` appends the published rows."""
    data = table_rows(per_image, labels)
    if extra is not None and len(extra):
        data = pd.concat([data, extra], ignore_index=True)
    notes = [("DINO, CLIP-I, CLIP-T cell: mean over subjects of each subject's mean in the breakdown; 95% interval "
              "over subjects; n: subjects behind the overall cell")]
    if extra is not None and len(extra):
        notes.append("CP, PF (VLM judge, docs/judge.md): mean over runs of each run's mean score / 4, rounded to 3 "
                     "decimals; interval over subjects; CP·PF: product of the rounded means; judged: items judged / "
                     "expected (a missing item is never averaged away)")
    if reference == REFERENCE:
        data = pd.concat([data, reported_rows()], ignore_index=True) if len(data) else reported_rows()
        notes.append(f"(reported): {CITATION}; overall only, as printed")
    if len(data):
        data.insert(1, "name", [names.get(m, m) for m in data["method"]])
    cols = [(b, HEADERS[b]) for b in BREAKDOWNS]
    return Table(KEY, NUMBER, TITLE, data if len(data) else pd.DataFrame(columns=["method", "name", "metric"]),
                 ids=[("name", "Method"), ("metric", "Metric")], metrics=cols,
                 trailing=[("n_subjects", "n")] + ([("judged", "judged")] if "judged" in data.columns else []),
                 notes=notes)


__all__ = ["BREAKDOWNS", "KEY", "NUMBER", "PUBLISHED", "build", "is_dreambench_plus", "reported_rows", "table_rows"]
