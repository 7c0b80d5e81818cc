"""Uncertainty over subjects: bootstrap confidence intervals and paired tests.

The protocol's unit of replication is the subject (30 of them), so intervals resample subjects:
a method's score is the mean over subjects of per-subject means, and each bootstrap replicate draws
``n_subjects`` subjects with replacement and recomputes that mean.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Estimate:
    """A mean over subjects with its percentile bootstrap interval (``level``, e.g. 0.95)."""

    mean: float
    lo: float
    hi: float
    n: int
    level: float = 0.95


def bootstrap_mean(
    per_subject: np.ndarray | list[float], n_resamples: int = 1000, seed: int = 0, level: float = 0.95
) -> Estimate:
    """Mean of per-subject values with a percentile bootstrap interval resampling subjects.

    With one subject the interval collapses to the mean; with none every field is NaN."""
    x = np.asarray(per_subject, dtype=np.float64)
    x = x[~np.isnan(x)]
    if x.size == 0:
        return Estimate(float("nan"), float("nan"), float("nan"), 0, level)
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, x.size, size=(n_resamples, x.size))
    means = x[idx].mean(axis=1)
    alpha = (1 - level) / 2
    lo, hi = np.quantile(means, [alpha, 1 - alpha])
    return Estimate(float(x.mean()), float(lo), float(hi), int(x.size), level)


@dataclass(frozen=True)
class PairedTest:
    """Difference of means (a − b) over shared subjects, its bootstrap interval and a two-sided
    permutation p-value (random sign flips of the per-subject differences)."""

    diff: float
    lo: float
    hi: float
    p_value: float
    n: int


def paired_test(
    a: np.ndarray | list[float], b: np.ndarray | list[float], n_resamples: int = 1000, seed: int = 0,
    level: float = 0.95,
) -> PairedTest:
    """Paired comparison of two methods on the same subjects (arrays aligned by subject)."""
    d = np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)
    d = d[~np.isnan(d)]
    if d.size == 0:
        nan = float("nan")
        return PairedTest(nan, nan, nan, nan, 0)
    est = bootstrap_mean(d, n_resamples, seed, level)
    rng = np.random.default_rng(seed + 1)
    signs = rng.choice([-1.0, 1.0], size=(n_resamples, d.size))
    null = np.abs((signs * d).mean(axis=1))
    # +1 in numerator and denominator: the observed labelling is one of the permutations.
    p = (1 + np.sum(null >= abs(d.mean()) - 1e-12)) / (n_resamples + 1)
    return PairedTest(est.mean, est.lo, est.hi, float(p), int(d.size))
