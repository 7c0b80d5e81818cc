"""Aggregation of scored tables: per-subject means, then means over subjects with 95% intervals.

Pure pandas over ``per_image.csv`` and ``div.csv`` (see :mod:`.scoring`); no models. The subject is the
unit of replication: every figure is a mean over subjects of per-subject means, with a 95% studentized
bootstrap interval over subjects (:func:`dreambench.stats.mean_interval`; NaN below 3 subjects), and
two methods are compared on the subjects they share (:func:`dreambench.stats.paired_test`: exact
sign-flip p-value up to 16 subjects, Monte Carlo beyond; ``paired.csv`` names the test).
"""

from __future__ import annotations

import itertools

import pandas as pd

from .. import stats
from ..errors import DreambenchError
from ..schema import CLASS_PROMPT_INDEX
from ..stats import Estimate, mean_interval, paired_test
from .profiles import MetricProfile, get_metric_profile

METRICS = ["dino", "clip_i", "clip_t", "pres", "div"]
#: How intervals and p-values are made (written to score_meta.json as ``bootstrap``).
BOOTSTRAP = {"interval": stats.INTERVAL_METHOD, "n_resamples": stats.N_RESAMPLES, "seed": stats.SEED,
             "min_subjects": stats.MIN_SUBJECTS,
             "paired_p_value": f"{stats.EXACT_TEST} up to {stats.EXACT_MAX_SUBJECTS} subjects, else {stats.MC_TEST}"}
_ARGS = {"n_resamples": stats.N_RESAMPLES, "seed": stats.SEED}




def per_subject_table(per_image: pd.DataFrame, div: pd.DataFrame) -> pd.DataFrame:
    """Long table method, subject, metric, value: per-subject means of each metric.

    DINO, CLIP-I, CLIP-T: mean over the subject's prompt images (prompt_index >= 0). PRES: mean ``dino``
    of its class-prompt images (prompt_index == -1). DIV: mean over the subject's prompts of div.csv."""
    parts = []
    reg = per_image[per_image["prompt_index"] != CLASS_PROMPT_INDEX]
    if len(reg):
        m = reg.groupby(["method", "subject"])[["dino", "clip_i", "clip_t"]].mean().reset_index()
        parts.append(m.melt(["method", "subject"], var_name="metric", value_name="value"))
    cls = per_image[per_image["prompt_index"] == CLASS_PROMPT_INDEX]
    if len(cls):
        p = cls.groupby(["method", "subject"])["dino"].mean().reset_index().rename(columns={"dino": "value"})
        parts.append(p.assign(metric="pres"))
    d = div.dropna(subset=["div"]) if len(div) else div
    if len(d):
        v = d.groupby(["method", "subject"])["div"].mean().reset_index().rename(columns={"div": "value"})
        parts.append(v.assign(metric="div"))
    if not parts:
        return pd.DataFrame(columns=["method", "subject", "metric", "value"])
    out = pd.concat(parts, ignore_index=True)[["method", "subject", "metric", "value"]]
    out = out.dropna(subset=["value"])
    order = {m: i for i, m in enumerate(METRICS)}
    return out.sort_values(["method", "metric", "subject"], key=lambda c: c.map(order) if c.name == "metric" else c,
                           kind="stable").reset_index(drop=True)


def _estimate(values, prof: MetricProfile | None, metric: str) -> Estimate:
    """Mean and interval of per-subject values, then the profile's ``mean_floor`` on mean and bounds
    (torchmetrics-style profiles report ``max(mean, 0)``)."""
    est = mean_interval(values, **_ARGS)
    if prof is None:
        return est
    fin = prof.metric_scale(metric).finish
    return Estimate(fin(est.mean), fin(est.lo), fin(est.hi), est.n, est.level)


def _profile_of(per_image: pd.DataFrame) -> MetricProfile | None:
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
    """Per (method, prompt category, metric) for DINO, CLIP-I, CLIP-T and DIV: per-subject means over
    that category's prompts, then mean over subjects with its 95% interval."""
    rows = []
    prof = _profile_of(per_image)
    reg = per_image[per_image["prompt_index"] != CLASS_PROMPT_INDEX]
    longs = []
    if len(reg):
        m = reg.groupby(["method", "category", "subject"])[["dino", "clip_i", "clip_t"]].mean().reset_index()
        longs.append(m.melt(["method", "category", "subject"], var_name="metric", value_name="value"))
    d = div.dropna(subset=["div"]) if len(div) else div
    if len(d) and "category" in d.columns:
        v = d.groupby(["method", "category", "subject"])["div"].mean().reset_index()
        longs.append(v.rename(columns={"div": "value"}).assign(metric="div"))
    for lg in longs:
        for (method, cat, metric), g in lg.groupby(["method", "category", "metric"], sort=True):
            est = _estimate(g["value"].to_numpy(), prof, metric)
            rows.append({"method": method, "category": cat, "metric": metric, "mean": est.mean, "lo": est.lo,
                         "hi": est.hi, "n_subjects": est.n})
    return pd.DataFrame(rows, columns=["method", "category", "metric", "mean", "lo", "hi", "n_subjects"])


def paired_table(per_subject: pd.DataFrame) -> pd.DataFrame:
    """Every two methods, every metric: paired difference (a - b) over the subjects both have, its 95%
    interval, the sign-flip p-value, the test that made it (``test``) and the number of subjects.
    Differences are of the unfloored per-subject values (a ``mean_floor`` applies to reported means only)."""
    rows = []
    methods = sorted(per_subject["method"].unique())
    for a, b in itertools.combinations(methods, 2):
        for metric in METRICS:
            sa = per_subject[(per_subject.method == a) & (per_subject.metric == metric)].set_index("subject")["value"]
            sb = per_subject[(per_subject.method == b) & (per_subject.metric == metric)].set_index("subject")["value"]
            shared = sorted(set(sa.index) & set(sb.index))
            if not shared:
                continue
            t = paired_test(sa.loc[shared].to_numpy(), sb.loc[shared].to_numpy(), **_ARGS)
            rows.append({"method_a": a, "method_b": b, "metric": metric, "diff": t.diff, "lo": t.lo, "hi": t.hi,
                         "p_value": t.p_value, "test": t.test, "n_subjects": t.n})
    return pd.DataFrame(rows, columns=["method_a", "method_b", "metric", "diff", "lo", "hi", "p_value", "test",
                                       "n_subjects"])
