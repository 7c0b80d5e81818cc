"""Tables 1-6 as pure functions of the score tables (no I/O).

Definitions (the DreamBooth protocol, scoring contract; each metric declared once in
:mod:`dreambench.metrics.registry`): a method's figure for a metric is the mean over subjects of its
per-subject value (per_subject.csv when the folder has a current one, else the same reduction made here
by :func:`dreambench.metrics.aggregate.per_subject_table`), where the per-subject mean of DINO / CLIP-I / CLIP-T averages the
subject's generated images (class-prompt rows, ``prompt_index == -1``, excluded), PRES averages the
``dino`` column of the class-prompt rows, and DIV averages div.csv's per-prompt values. Its 95% interval
is :func:`dreambench.stats.mean_interval` over the per-subject values, subjects in name order (t interval
for 3-9 values, studentized bootstrap from 10, NaN below 3; clipped to the metric's possible range,
:func:`dreambench.metrics.aggregate.value_range`). Real Images use real.csv's per-subject values, and so do
the DINO / CLIP-I of a label whose images are real photos (``real``; one real row, see
:mod:`dreambench.metrics.aggregate`). Tables 5 and 6 report single subjects, so their interval is over
the subject's per-prompt means instead.

Every table is a tidy DataFrame: identifying columns, then for each metric ``<m>``, ``<m>_lo``, ``<m>_hi``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .. import stats
from ..metrics.aggregate import REAL_METHOD, per_subject_table, profile_of, value_range
from ..metrics.registry import PROMPT_ROWS, get_metric, list_metrics, real_metrics, table_metrics
from ..protocol import CLASS_PROMPT_INDEX
from ..stats import Estimate, mean_interval

REAL_LABEL = "Real Images"
#: The method name of the Real Images rows in aggregates.csv (declared in metrics.aggregate).
REAL_AGG_METHOD = REAL_METHOD
N_RESAMPLES = stats.N_RESAMPLES
SEED = stats.SEED
_NAN = Estimate(float("nan"), float("nan"), float("nan"), 0)


def per_subject(
    per_image: pd.DataFrame, metric: str, div: pd.DataFrame | None = None, real: pd.DataFrame | None = None,
    known: pd.DataFrame | None = None,
) -> pd.Series:
    """Per-(method, subject) value of a registered ``metric`` (its declared reduction, made by
    :func:`dreambench.metrics.aggregate.per_subject_table`: the one definition), indexed by (method,
    subject); a real-photo label's DINO / CLIP-I are ``real``'s (one real row).

    ``known``: per_subject.csv's rows (method, subject, metric, value) as ``dreambench score`` wrote
    them; they are read instead of recomputed when they hold ``metric`` (a folder scored before a metric
    was registered has none of its rows: recomputed from ``per_image``)."""
    try:
        m = get_metric(metric)
    except KeyError as e:
        raise ValueError(str(e.args[0])) from None
    if known is not None and (known["metric"] == metric).any():
        long = known[known["metric"] == metric]
    else:
        long = per_subject_table(per_image, div, real, metrics=[metric])
    return long.set_index(["method", "subject"])["value"].astype(float).sort_index().rename(m.column)


def estimate(
    values: pd.Series | np.ndarray | list[float], value_range: tuple[float, float] = stats.UNBOUNDED
) -> Estimate:
    """Mean and 95% interval (:func:`dreambench.stats.mean_interval`, clipped to ``value_range``) of
    per-unit values (a Series is taken in index order)."""
    if isinstance(values, pd.Series):
        values = values.sort_index().to_numpy(dtype=float)
    return mean_interval(values, n_resamples=N_RESAMPLES, seed=SEED, value_range=value_range)


def metric_range(per_image: pd.DataFrame, metric: str) -> tuple[float, float]:
    """The possible values of ``metric`` in ``per_image``'s metric profile (intervals are clipped to it)."""
    return value_range(profile_of(per_image), metric)


def _method_estimate(ps: pd.Series, label: str, bounds: tuple[float, float] = stats.UNBOUNDED) -> Estimate:
    if label not in ps.index.get_level_values("method"):
        return _NAN
    return estimate(ps.xs(label, level="method"), bounds)


def _cells(metrics: dict[str, Estimate]) -> dict:
    out: dict = {}
    for m, e in metrics.items():
        out[m], out[f"{m}_lo"], out[f"{m}_hi"] = e.mean, e.lo, e.hi
    return out


def _metric_rows(
    per_image: pd.DataFrame,
    div: pd.DataFrame | None,
    labels: list[str],
    metrics: list[str],
    extra: dict[str, dict] | None = None,
    real: pd.DataFrame | None = None,
    known: pd.DataFrame | None = None,
) -> list[dict]:
    ps = {m: per_subject(per_image, m, div, real, known) for m in metrics}
    rng = {m: metric_range(per_image, m) for m in metrics}
    rows = []
    for lab in labels:
        ests = {m: _method_estimate(ps[m], lab, rng[m]) for m in metrics}
        rows.append(
            {
                "method": lab,
                **(extra or {}).get(lab, {}),
                **_cells(ests),
                "n_subjects": max(e.n for e in ests.values()),
            }
        )
    return rows


def table1(
    per_image: pd.DataFrame, real: pd.DataFrame | None = None, labels: list[str] | None = None,
    known: pd.DataFrame | None = None, div: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Table 1: the metrics declared for it (subject fidelity DINO, CLIP-I; prompt fidelity CLIP-T) per
    method; the Real Images row first (a metric real.csv does not hold, such as CLIP-T, is not applicable:
    NaN). ``known``: per_subject.csv's rows (:func:`per_subject`)."""
    metrics = table_metrics(1)
    labels = sorted(per_image["method"].unique()) if labels is None else list(labels)
    rows = []
    rm = [m for m in real_metrics() if m in metrics]
    if real is not None and len(real) and rm:
        r = real.groupby("subject", sort=True)[[get_metric(m).column for m in rm]].mean()
        ests = {m: estimate(r[get_metric(m).column], metric_range(per_image, m)) for m in rm}
        cells = {m: ests.get(m, _NAN) for m in metrics}
        rows.append({"method": REAL_LABEL, **_cells(cells), "n_subjects": ests[rm[0]].n})
    rows += _metric_rows(per_image, div, labels, metrics, real=real, known=known)
    return pd.DataFrame(rows, columns=["method", *_metric_columns(metrics), "n_subjects"])


def _metric_columns(metrics: list[str]) -> list[str]:
    return [c for m in metrics for c in (m, f"{m}_lo", f"{m}_hi")]


def table2(preference: pd.DataFrame) -> pd.DataFrame:
    """Table 2: the study's preference table plus a 95% interval of each percentage.

    The interval is the Wilson score interval of (questions with that majority) / ``n_questions``
    (:func:`dreambench.stats.proportion_interval`, times 100): inside [0, 100] and not zero-width at 0% or
    100%. It is NaN (both bounds) for a row without answered questions and for an incomplete row
    (``n_short > 0``: questions with fewer answers than the study asked for; see
    :mod:`dreambench.study.analysis`)."""
    rows = []
    keys = ("pct_a", "pct_b", "pct_undecided")
    for r in preference.to_dict("records"):
        n = int(r.get("n_questions") or 0)
        short = int(r.get("n_short") or 0)
        p = np.array([r[k] for k in keys], dtype=float)
        row = {k: r[k] for k in ("question_type", "method_a", "method_b")}
        lo = hi = np.full(3, np.nan)
        if n > 0 and short == 0 and np.all(np.isfinite(p)):
            lo, hi = (100.0 * b for b in stats.proportion_interval(np.round(p / 100.0 * n), n))
        for i, k in enumerate(keys):
            row[k], row[f"{k}_lo"], row[f"{k}_hi"] = float(p[i]), float(lo[i]), float(hi[i])
        row.update(n_questions=n, n_planned=int(r.get("n_planned") or n), n_short=short)
        rows.append(row)
    cols = ["question_type", "method_a", "method_b", *_metric_columns(list(keys)), "n_questions", "n_planned",
            "n_short"]
    return pd.DataFrame(rows, columns=cols)


def table3(per_image: pd.DataFrame, div: pd.DataFrame | None, ppl: dict[str, bool],
           known: pd.DataFrame | None = None) -> pd.DataFrame:
    """Table 3: prior-preservation ablation: the metrics declared for it (PRES, DIV, DINO, CLIP-I, CLIP-T)
    for labels with (``True``) and without (``False``) prior preservation, in the order given."""
    metrics = table_metrics(3)
    extra = {lab: {"ppl": "yes" if on else "no"} for lab, on in ppl.items()}
    rows = _metric_rows(per_image, div, list(ppl), metrics, extra, known=known)
    return pd.DataFrame(rows, columns=["method", "ppl", *_metric_columns(metrics), "n_subjects"])


def table4(per_image: pd.DataFrame, noun: dict[str, str], known: pd.DataFrame | None = None) -> pd.DataFrame:
    """Table 4: class-noun ablation: the metrics declared for it (DINO, CLIP-I) for the correct, no and
    wrong class noun."""
    metrics = table_metrics(4)
    extra = {lab: {"class_noun": mode} for lab, mode in noun.items()}
    rows = _metric_rows(per_image, None, list(noun), metrics, extra, known=known)
    return pd.DataFrame(rows, columns=["method", "class_noun", *_metric_columns(metrics), "n_subjects"])


def table_inputs(
    per_image: pd.DataFrame, inputs: dict[str, int], metric: str, subjects: list[str] | None = None
) -> pd.DataFrame:
    """Tables 5 (``metric="dino"``) and 6 (``"clip_t"``): number of input images vs ``metric`` per subject.

    One row per (label, subject): the mean over the subject's generated images and a 95% interval over
    its per-prompt means (``n_prompts``)."""
    rows_df = per_image[
        (per_image["prompt_index"] != CLASS_PROMPT_INDEX) & per_image["method"].isin(list(inputs))
    ]
    if subjects is None:
        subjects = sorted(rows_df["subject"].unique())
    rows = []
    for lab, n_in in inputs.items():
        for subj in subjects:
            sel = rows_df[(rows_df["method"] == lab) & (rows_df["subject"] == subj)]
            if sel.empty:
                continue
            per_prompt = sel.groupby("prompt_index", sort=True)[metric].mean()
            e = estimate(per_prompt, metric_range(per_image, metric))
            # The point figure is the image mean, the same as the per-subject mean of Tables 1, 3, 4.
            mean = float(sel[metric].mean())
            rows.append(
                {
                    "num_inputs": int(n_in),
                    "subject": subj,
                    "method": lab,
                    metric: mean,
                    f"{metric}_lo": e.lo,
                    f"{metric}_hi": e.hi,
                    "n_prompts": e.n,
                }
            )
    df = pd.DataFrame(
        rows, columns=["num_inputs", "subject", "method", *_metric_columns([metric]), "n_prompts"]
    )
    return df.sort_values(["subject", "num_inputs", "method"], kind="stable").reset_index(drop=True)


def aggregates(per_image: pd.DataFrame, div: pd.DataFrame | None, real: pd.DataFrame | None) -> pd.DataFrame:
    """The figures in aggregates.csv's layout (method, metric, mean, lo, hi, n_subjects), for checking."""
    rows = []
    for m in (metric.name for metric in list_metrics()):
        ps = per_subject(per_image, m, div, real)
        for lab in sorted(ps.index.get_level_values("method").unique()):
            e = _method_estimate(ps, lab, metric_range(per_image, m))
            rows.append(
                {"method": lab, "metric": m, "mean": e.mean, "lo": e.lo, "hi": e.hi, "n_subjects": e.n}
            )
    if real is not None and len(real):
        rm = real_metrics()
        r = real.groupby("subject", sort=True)[[get_metric(m).column for m in rm]].mean()
        for m in rm:
            e = estimate(r[get_metric(m).column], metric_range(per_image, m))
            rows.append(
                {
                    "method": REAL_AGG_METHOD,
                    "metric": m,
                    "mean": e.mean,
                    "lo": e.lo,
                    "hi": e.hi,
                    "n_subjects": e.n,
                }
            )
    return pd.DataFrame(rows, columns=["method", "metric", "mean", "lo", "hi", "n_subjects"])


def compare_aggregates(mine: pd.DataFrame, theirs: pd.DataFrame, tol: float = 1e-6) -> list[str]:
    """Disagreements between our figures (mean, lo, hi, n_subjects) and aggregates.csv's, for the
    (method, metric) rows in both. Both sides resample subjects in name order with the same seed, so
    even the intervals must match."""
    if not {"method", "metric", "mean"} <= set(theirs.columns):
        return ["aggregates.csv lacks the columns method, metric, mean"]
    theirs = theirs.astype({"method": str, "metric": str})
    merged = mine.merge(theirs, on=["method", "metric"], suffixes=("", "_theirs"))
    problems = []
    for r in merged.to_dict("records"):
        for col in ("mean", "lo", "hi"):
            if f"{col}_theirs" not in r:
                continue
            a, b = float(r[col]), pd.to_numeric(r[f"{col}_theirs"], errors="coerce")
            if not (np.isnan(a) and np.isnan(b)) and not abs(a - b) <= tol * max(1.0, abs(a)):
                problems.append(
                    f"{r['method']} {r['metric']} {col}: tables {a:.6g} vs aggregates.csv {b:.6g}"
                )
        n = pd.to_numeric(r.get("n_subjects_theirs"), errors="coerce")
        if pd.notna(n) and int(n) != r["n_subjects"]:
            problems.append(
                f"{r['method']} {r['metric']}: {r['n_subjects']} subjects vs aggregates.csv {int(n)}"
            )
    return problems


def per_category(per_image: pd.DataFrame) -> pd.DataFrame:
    """Per prompt category (recontextualization, accessorization, property): DINO, CLIP-I, CLIP-T per
    method, mean over subjects of per-subject means with intervals; empty without a ``category`` column."""
    cols = ["method", "category", "metric", "mean", "lo", "hi", "n_subjects"]
    if "category" not in per_image.columns:
        return pd.DataFrame(columns=cols)
    gen = per_image[
        (per_image["prompt_index"] != CLASS_PROMPT_INDEX) & (per_image["category"].astype(str) != "")
    ]
    metrics = [m for m in list_metrics() if m.per_category and m.rows == PROMPT_ROWS]
    if any(m.per_image is not None for m in metrics) and len(gen):
        gen = gen.assign(**{m.column: m.per_image(gen) for m in metrics if m.per_image is not None})
    rows = []
    for (lab, cat), sel in gen.groupby(["method", "category"], sort=True):
        for metric in metrics:
            m = metric.name
            e = estimate(sel.groupby("subject", sort=True)[metric.column].agg(metric.reduction),
                         metric_range(per_image, m))
            rows.append(
                {
                    "method": lab,
                    "category": cat,
                    "metric": m,
                    "mean": e.mean,
                    "lo": e.lo,
                    "hi": e.hi,
                    "n_subjects": e.n,
                }
            )
    return pd.DataFrame(rows, columns=cols)
