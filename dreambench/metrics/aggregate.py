"""Aggregation of scored tables: per-subject means, then means over subjects with 95% intervals.

Pure pandas over ``per_image.csv`` and ``div.csv`` (see :mod:`.scoring`); no models. The subject is the
unit of replication: every figure is a mean over subjects of per-subject means, with a 95% interval over
subjects (:func:`dreambench.stats.mean_interval`: t interval for 3-9 subjects, studentized bootstrap from
10, NaN below 3, clipped to the metric's range :meth:`MetricProfile.value_range`), and
two methods are compared on the subjects they share (:func:`dreambench.stats.paired_test`: exact
sign-flip p-value up to 16 subjects, Monte Carlo beyond; ``paired.csv`` names the test).

**One real row.** A label whose images are the subject's own photos (the ``real`` method: ``gen_weights``
``real``) has, per subject, DINO and CLIP-I equal to ``real.csv``'s Real Images values: each photo against
the subject's *other* photos (a photo compared with a set holding itself would score near 1). Its CLIP-T
(the photos against the prompts) is its own. :func:`with_real_rule` applies this wherever per-subject
values are made (scores, tables), so the ``real`` label and the Real Images row never disagree.
"""

from __future__ import annotations

import itertools

import pandas as pd

from .. import stats
from ..errors import DreambenchError
from ..schema import CLASS_PROMPT_INDEX
from ..stats import Estimate, mean_interval, paired_test
from .profiles import MetricProfile, get_metric_profile
from .registry import CLASS_ROWS, DIV_ROWS, PROMPT_ROWS, Metric, get_metric, list_metrics, real_metrics

_LONG = ["method", "subject", "metric", "value"]
#: How intervals and p-values are made (written to score_meta.json as ``bootstrap``).
BOOTSTRAP = {"interval": stats.INTERVAL_METHOD, "n_resamples": stats.N_RESAMPLES, "seed": stats.SEED,
             "min_subjects": stats.MIN_SUBJECTS,
             "paired_p_value": f"{stats.EXACT_TEST} up to {stats.EXACT_MAX_SUBJECTS} subjects, else {stats.MC_TEST}"}
_ARGS = {"n_resamples": stats.N_RESAMPLES, "seed": stats.SEED}
#: ``gen_weights`` of images that are the subject's own photos (the ``real`` method), not a model's output.
#: The method name of the Real Images rows (per_subject.csv, aggregates.csv).
REAL_METHOD = "real-images"
REAL_PHOTOS = "real"


def real_photo_labels(per_image: pd.DataFrame) -> list[str]:
    """Labels whose images are real photos (``gen_weights == "real"``), sorted."""
    if "gen_weights" not in per_image.columns or per_image.empty:
        return []
    sel = per_image["gen_weights"].astype(str) == REAL_PHOTOS
    return sorted(per_image.loc[sel, "method"].astype(str).unique())


def with_real_rule(long: pd.DataFrame, per_image: pd.DataFrame, real: pd.DataFrame | None) -> pd.DataFrame:
    """``long`` (method, subject, metric, value) with the DINO / CLIP-I rows of every real-photo label
    replaced by real.csv's values of the same subjects (module docstring, "One real row"); subjects
    without a real.csv value keep no DINO / CLIP-I row."""
    labels = real_photo_labels(per_image)
    if not labels:
        return long
    rule = real_metrics()  # the metrics a real-photo label takes from real.csv (leave-self-out)
    drop = long["method"].isin(labels) & long["metric"].isin(rule)
    parts = [long[~drop]]
    if real is not None and len(real):
        r = real.astype({"subject": str}).groupby("subject")[[get_metric(m).column for m in rule]].mean()
        r.columns = rule
        r = r.reset_index().melt("subject", var_name="metric", value_name="value").dropna(subset=["value"])
        r = r[r["metric"].isin(set(long["metric"]))]  # only the metrics ``long`` holds
        for lab in labels:
            subjects = set(per_image.loc[per_image["method"] == lab, "subject"].astype(str))
            parts.append(r[r["subject"].isin(subjects)].assign(method=lab))
    return pd.concat(parts, ignore_index=True)[list(long.columns)]


def value_range(prof: MetricProfile | None, metric: str) -> tuple[float, float]:
    """The possible values of ``metric`` under ``prof`` (unbounded without a known profile)."""
    return prof.value_range(metric) if prof is not None else stats.UNBOUNDED


def metric_rows(per_image: pd.DataFrame, div: pd.DataFrame | None, metric: Metric) -> pd.DataFrame:
    """The rows ``metric`` reads (its declaration's ``rows``), with its per-image value in column
    ``metric.column`` (computed by ``metric.per_image`` for a metric the scorer does not write)."""
    if metric.rows == DIV_ROWS:
        if div is None or not len(div) or metric.column not in div.columns:
            return pd.DataFrame(columns=["method", "subject", "category", metric.column])
        return div.dropna(subset=[metric.column])
    cls = per_image["prompt_index"] == CLASS_PROMPT_INDEX
    rows = per_image[cls if metric.rows == CLASS_ROWS else ~cls]
    if metric.per_image is not None:
        rows = rows.assign(**{metric.column: metric.per_image(rows) if len(rows) else []})
    return rows


def reduce_per_subject(rows: pd.DataFrame, metric: Metric, by: list[str]) -> pd.DataFrame:
    """``by`` + ``value``: the declared per-subject reduction of ``metric`` over ``rows``."""
    out = rows.groupby(by)[metric.column].agg(metric.reduction).reset_index()
    return out.rename(columns={metric.column: "value"})


def _sorted_long(out: pd.DataFrame) -> pd.DataFrame:
    order = {m: i for i, m in enumerate(m.name for m in list_metrics())}
    return out.sort_values(["method", "metric", "subject"], key=lambda c: c.map(order) if c.name == "metric" else c,
                           kind="stable").reset_index(drop=True)



def per_subject_table(per_image: pd.DataFrame, div: pd.DataFrame, real: pd.DataFrame | None = None,
                      metrics: list[str] | None = None) -> pd.DataFrame:
    """Long table method, subject, metric, value: the per-subject value of each registered metric
    (``metrics``: only those), its declared reduction over the rows it reads
    (:mod:`dreambench.metrics.registry`). Built in: DINO, CLIP-I, CLIP-T: mean over the subject's prompt
    images (prompt_index >= 0); PRES: mean ``dino`` of its class-prompt images (prompt_index == -1); DIV:
    mean over the subject's prompts of div.csv. A real-photo label's DINO / CLIP-I are real.csv's
    (:func:`with_real_rule`)."""
    parts = []
    for metric in list_metrics():
        if metrics is not None and metric.name not in metrics:
            continue
        rows = metric_rows(per_image, div, metric)
        if len(rows):
            parts.append(reduce_per_subject(rows, metric, ["method", "subject"]).assign(metric=metric.name))
    if not parts:
        return pd.DataFrame(columns=_LONG)
    out = pd.concat(parts, ignore_index=True)[_LONG]
    out = with_real_rule(out.dropna(subset=["value"]), per_image, real)
    return _sorted_long(out)


def _estimate(values, prof: MetricProfile | None, metric: str) -> Estimate:
    """Mean and interval of per-subject values (clipped to the metric's range), then the profile's
    ``mean_floor`` on mean and bounds (torchmetrics-style profiles report ``max(mean, 0)``)."""
    est = mean_interval(values, **_ARGS, value_range=value_range(prof, metric))
    if prof is None:
        return est
    fin = prof.metric_scale(metric).finish
    return Estimate(fin(est.mean), fin(est.lo), fin(est.hi), est.n, est.level)


def profile_of(per_image: pd.DataFrame) -> MetricProfile | None:
    """The one metric profile that scored ``per_image`` (None when several, none or an unregistered one)."""
    names = per_image["metric_profile"].dropna().unique() if "metric_profile" in per_image.columns else []
    try:
        return get_metric_profile(str(names[0])) if len(names) == 1 else None
    except DreambenchError:
        return None


def aggregate_table(per_subject: pd.DataFrame, labels: dict[tuple[str, str], str], profile_name: str) -> pd.DataFrame:
    """Per (method, metric): mean over subjects with its 95% interval over subjects (NaN below 3), the
    profile's ``mean_floor`` applied to the mean and bounds."""
    rows = []
    prof = get_metric_profile(profile_name)
    for (method, metric), g in per_subject.groupby(["method", "metric"], sort=False):
        est = _estimate(g["value"].to_numpy(), prof, metric)
        rows.append({"method": method, "metric": metric, "mean": est.mean, "lo": est.lo, "hi": est.hi,
                     "n_subjects": est.n, "metric_profile": profile_name,
                     "weights": labels.get((method, metric), "random-init")})
    return pd.DataFrame(rows, columns=["method", "metric", "mean", "lo", "hi", "n_subjects", "metric_profile",
                                       "weights"])


def per_category_table(per_image: pd.DataFrame, div: pd.DataFrame) -> pd.DataFrame:
    """Per (method, prompt category, metric) for the metrics declared ``per_category`` (DINO, CLIP-I,
    CLIP-T, DIV): per-subject values over that category's prompts, then mean over subjects with its 95%
    interval."""
    rows = []
    prof = profile_of(per_image)
    prompt, other = [], []  # prompt-row metrics in one frame, then the others (DIV), as the file lists them
    for metric in list_metrics():
        if not metric.per_category or metric.rows == CLASS_ROWS:
            continue
        src = metric_rows(per_image, div, metric)
        if len(src) and "category" in src.columns:
            lg = reduce_per_subject(src, metric, ["method", "category", "subject"]).assign(metric=metric.name)
            (prompt if metric.rows == PROMPT_ROWS else other).append(lg)
    groups = ([pd.concat(prompt, ignore_index=True)] if prompt else []) + other
    for lg in groups:
        for (method, cat, metric), g in lg.groupby(["method", "category", "metric"], sort=True):
            est = _estimate(g["value"].to_numpy(), prof, metric)
            rows.append({"method": method, "category": cat, "metric": metric, "mean": est.mean, "lo": est.lo,
                         "hi": est.hi, "n_subjects": est.n})
    return pd.DataFrame(rows, columns=["method", "category", "metric", "mean", "lo", "hi", "n_subjects"])


def paired_table(per_subject: pd.DataFrame, prof: MetricProfile | None = None) -> pd.DataFrame:
    """Every two methods, every metric: paired difference (a - b) over the subjects both have, its 95%
    interval (clipped to the differences ``prof``'s metric range allows), the sign-flip p-value, the test
    that made it (``test``) and the number of subjects. Differences are of the unfloored per-subject
    values (a ``mean_floor`` applies to reported means only)."""
    rows = []
    methods = sorted(per_subject["method"].unique())
    for a, b in itertools.combinations(methods, 2):
        for metric in (m.name for m in list_metrics()):
            sa = per_subject[(per_subject.method == a) & (per_subject.metric == metric)].set_index("subject")["value"]
            sb = per_subject[(per_subject.method == b) & (per_subject.metric == metric)].set_index("subject")["value"]
            shared = sorted(set(sa.index) & set(sb.index))
            if not shared:
                continue
            t = paired_test(sa.loc[shared].to_numpy(), sb.loc[shared].to_numpy(), **_ARGS,
                            value_range=value_range(prof, metric))
            rows.append({"method_a": a, "method_b": b, "metric": metric, "diff": t.diff, "lo": t.lo, "hi": t.hi,
                         "p_value": t.p_value, "test": t.test, "n_subjects": t.n})
    return pd.DataFrame(rows, columns=["method_a", "method_b", "metric", "diff", "lo", "hi", "p_value", "test",
                                       "n_subjects"])
