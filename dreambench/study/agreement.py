"""Agreement between raters (people or a judge) on ratings of the same items, as DreamBench++ reports it
(``krippendorff_analysis.py`` and ``pearson.py`` of yuangpeng/dreambench_plus 66ca27e).

* **Krippendorff's alpha, interval level** (:func:`krippendorff_alpha`): ``reliability`` is a raters x
  units array (NaN: not rated). Only units with at least two ratings are pairable; ``n`` is the number of
  their ratings. Observed disagreement ``D_o = sum_u [sum_{i != j in u} (v_i - v_j)^2 / (m_u - 1)] / n``
  and expected ``D_e = sum_{i != j over all pairable ratings} (v_i - v_j)^2 / (n (n - 1))``;
  ``alpha = 1 - D_o / D_e`` (Krippendorff 2011, "Computing Krippendorff's alpha-reliability"). The reference
  calls the ``krippendorff`` package with ``level_of_measurement="interval"`` and rounds to 3 decimals
  (:func:`kd_alpha`); judge-human alpha is the mean over human groups of alpha(group, judge), rounded.
* **Pearson r** (:func:`pearson_r`): ``sum((x - mx)(y - my)) / sqrt(sum((x - mx)^2) sum((y - my)^2))``,
  rounded to 4 decimals as the reference prints it; x and y are paired per item.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np


def krippendorff_alpha(reliability: Sequence[Sequence[float]] | np.ndarray) -> float:
    """Krippendorff's alpha at the interval level of a raters x units array (NaN = missing); NaN when
    fewer than two pairable ratings or no variation at all (``D_e = 0``)."""
    data = np.asarray(reliability, dtype=np.float64)
    if data.ndim != 2:
        raise ValueError("reliability data must be raters x units")
    d_o, pooled = 0.0, []
    for unit in data.T:
        v = unit[~np.isnan(unit)]
        m = v.size
        if m < 2:
            continue
        d_o += 2.0 * (m * np.sum(v * v) - np.sum(v) ** 2) / (m - 1)
        pooled.append(v)
    if not pooled:
        return math.nan
    allv = np.concatenate(pooled)
    n = allv.size
    d_e = 2.0 * (n * np.sum(allv * allv) - np.sum(allv) ** 2) / (n * (n - 1))
    if d_e <= 0:
        return math.nan
    return float(1.0 - (d_o / n) / d_e)


def kd_alpha(ratings: Sequence[Mapping[str, float]]) -> float:
    """The reference's ``kd_alpha``: per rater a ``{item key: score}`` mapping; items are the union of the
    keys (a rater without an item: missing); alpha (interval) rounded to 3 decimals."""
    keys = sorted(set().union(*[set(r) for r in ratings]))
    data = [[float(r.get(k, math.nan)) if r.get(k) is not None else math.nan for k in keys] for r in ratings]
    return round(krippendorff_alpha(data), 3)


def pearson_r(x: Sequence[float] | np.ndarray, y: Sequence[float] | np.ndarray) -> float:
    """Pearson's r of paired values, rounded to 4 decimals (the reference's ``calculate_correlations``)."""
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if x.shape != y.shape or x.size < 2:
        raise ValueError("pearson_r needs two paired arrays of at least two values")
    xd, yd = x - x.mean(), y - y.mean()
    return round(float(np.sum(xd * yd) / np.sqrt(np.sum(xd**2) * np.sum(yd**2))), 4)


def judge_human_alpha(human_groups: Sequence[Mapping[str, float]], judge: Mapping[str, float]) -> float:
    """Judge-human agreement as the reference reports it: the mean over human groups of
    ``kd_alpha([group, judge])``, rounded to 3 decimals."""
    values = [kd_alpha([g, judge]) for g in human_groups]
    return round(sum(values) / len(values), 3)
