"""Uncertainty over subjects: confidence intervals of a mean and paired tests.

The protocol's unit of replication is the subject (30 of them): a method's score is the mean over
subjects of per-subject means, and its interval treats the per-subject values as the sample.

**Interval** (:func:`mean_interval`, the default everywhere) depends on the number n of per-subject
values ``x`` (``m = mean(x)``, ``se = sd(x) / sqrt(n)``, sd with n - 1, ``a = 1 - level``):

* ``n < MIN_SUBJECTS`` (3): no interval (both bounds NaN, renderers print "n/a"): two subjects say
  nothing about between-subject spread.
* ``MIN_SUBJECTS <= n < BOOTSTRAP_MIN_SUBJECTS`` (3 to 9): the Student t interval
  ``m -+ t(1 - a/2; n - 1) se``. Why not the bootstrap here: with 3 subjects 1 in 9 resamples repeats one
  subject (``se* = 0``, ``t* = +-inf``), so the bootstrap-t quantiles are infinite (bounds NaN or near
  1e13); at 4-5 subjects near-repeats still make intervals hundreds of times too wide. The t interval
  covers 0.95 for normal values and 0.93 for skewed ones (Beta(2, 5), Gamma(4); measured in
  ``tests/test_stats.py``): about 2 points short, never absurd.
* ``n >= BOOTSTRAP_MIN_SUBJECTS`` (10): the *studentized bootstrap* (bootstrap-t; Efron & Tibshirani 1993,
  ch. 12; Hall 1988): each of ``n_resamples`` replicates draws n subjects with replacement and computes
  ``t* = (m* - m) / se*``; the interval is ``[m - q(1 - a/2) se, m - q(a/2) se]`` with ``q`` the
  quantiles of ``t*`` (a replicate with ``se* = 0`` gets ``t* = +-inf``, 0 when ``m* = m``). It corrects
  the t interval's skewness error to second order (coverage 0.945-0.96 at 10 and 30 subjects); the
  percentile bootstrap (the default before it) is too narrow by ``sqrt((n - 1) / n)`` and covered 0.927
  at 30 subjects. Non-finite bootstrap bounds (not seen at n >= 10) fall back to the t interval.

Then both bounds are clipped to the metric's possible range (``value_range``, e.g. [-1, 1] for a cosine,
[0, inf) for LPIPS DIV, [0, 100] for a percentage). Clipping is honest: the true mean lies in the range,
so the clipped interval contains it exactly when the unclipped one does (coverage unchanged). An interval
is never half-missing: both bounds are finite or both are NaN.

A *proportion* (Table 2's percentages, :func:`proportion_interval`) gets the Wilson score interval, which
stays inside [0, 1] and is not zero-width at 0% or 100% (one question answered "A" gives [0.21, 1], not
100 +- 0).

**Paired test** (:func:`paired_test`): differences ``d_s = a_s - b_s`` on the shared subjects; the
interval of their mean is :func:`mean_interval`; the two-sided p-value is the sign-flip permutation
test of ``|mean(d)|`` (under H0 each ``d_s`` is symmetric about 0). It is *exact* (all ``2^n`` sign
vectors) for ``n <= EXACT_MAX_SUBJECTS`` (16), else Monte Carlo (``PERM_RESAMPLES`` random sign vectors,
``p = (1 + #{|mean*| >= |mean|}) / (1 + N)``). :attr:`PairedTest.test` names which one made the p-value.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: Fewer values than this give a NaN interval.
MIN_SUBJECTS = 3
#: From this many values on the interval is the bootstrap-t; below it (from MIN_SUBJECTS) the t interval.
BOOTSTRAP_MIN_SUBJECTS = 10
#: Bootstrap-t replicates (enough for stable 2.5% / 97.5% quantiles of t*): the one value every caller uses.
N_RESAMPLES = 2000
SEED = 0
#: Up to this many subjects the sign-flip test enumerates all 2^n sign vectors.
EXACT_MAX_SUBJECTS = 16
PERM_RESAMPLES = 20000
#: What every table and score_meta.json says about the interval.
INTERVAL_METHOD = (f"Student t interval for {MIN_SUBJECTS}-{BOOTSTRAP_MIN_SUBJECTS - 1} subjects, studentized "
                   f"bootstrap (bootstrap-t, {N_RESAMPLES} resamples, seed {SEED}) from {BOOTSTRAP_MIN_SUBJECTS}; "
                   f"n/a below {MIN_SUBJECTS}; bounds clipped to the metric's range")
#: No bound: the range of a metric without one.
UNBOUNDED = (-np.inf, np.inf)
EXACT_TEST = "sign-flip exact"
MC_TEST = f"sign-flip monte-carlo ({PERM_RESAMPLES})"


@dataclass(frozen=True)
class Estimate:
    """A mean over units with its interval (``level``, e.g. 0.95); ``lo``/``hi`` NaN below 3 units."""

    mean: float
    lo: float
    hi: float
    n: int
    level: float = 0.95


def mean_interval(
    values: np.ndarray | list[float], n_resamples: int = N_RESAMPLES, seed: int = SEED, level: float = 0.95,
    value_range: tuple[float, float] = UNBOUNDED,
) -> Estimate:
    """Mean of ``values`` (NaNs dropped) with its 95% interval (:func:`interval_bounds`, module docstring),
    bounds clipped to ``value_range``. No values: every field NaN; fewer than :data:`MIN_SUBJECTS`: the
    mean with NaN bounds; all values equal: a zero-width interval."""
    x = np.asarray(values, dtype=np.float64)
    x = x[~np.isnan(x)]
    n = int(x.size)
    nan = float("nan")
    if n == 0:
        return Estimate(nan, nan, nan, 0, level)
    m = float(x.mean())
    if n < MIN_SUBJECTS:
        return Estimate(m, nan, nan, n, level)
    lo, hi = interval_bounds(x[None, :], n_resamples, seed, level, value_range)
    return Estimate(m, float(lo[0]), float(hi[0]), n, level)


def interval_bounds(
    samples: np.ndarray, n_resamples: int = N_RESAMPLES, seed: int = SEED, level: float = 0.95,
    value_range: tuple[float, float] = UNBOUNDED,
) -> tuple[np.ndarray, np.ndarray]:
    """The default interval of the mean of each row of ``samples`` (shape (k, n), no NaN): NaN below
    :data:`MIN_SUBJECTS` columns, :func:`t_bounds` below :data:`BOOTSTRAP_MIN_SUBJECTS`, else
    :func:`studentized_bounds` (rows with a non-finite bound fall back to :func:`t_bounds`); then clipped
    to ``value_range``. Both bounds of a row are finite, or both NaN."""
    x = np.asarray(samples, dtype=np.float64)
    n = x.shape[1]
    if n < MIN_SUBJECTS:
        nan = np.full(x.shape[0], np.nan)
        return nan, nan.copy()
    t_lo, t_hi = t_bounds(x, level)
    if n < BOOTSTRAP_MIN_SUBJECTS:
        lo, hi = t_lo, t_hi
    else:
        lo, hi = studentized_bounds(x, n_resamples, seed, level)
        bad = ~(np.isfinite(lo) & np.isfinite(hi))
        lo, hi = np.where(bad, t_lo, lo), np.where(bad, t_hi, hi)
    lo, hi = np.clip(lo, *value_range), np.clip(hi, *value_range)
    both = np.isfinite(lo) & np.isfinite(hi)  # never half an interval
    return np.where(both, lo, np.nan), np.where(both, hi, np.nan)


def t_bounds(samples: np.ndarray, level: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
    """Student t interval ``m -+ t(1 - a/2; n - 1) sd / sqrt(n)`` of the mean of each row (n >= 2)."""
    from scipy.stats import t as student_t  # scipy only where intervals are made

    x = np.asarray(samples, dtype=np.float64)
    n = x.shape[1]
    m = x.mean(axis=1)
    half = float(student_t.ppf(1 - (1 - level) / 2, n - 1)) * x.std(axis=1, ddof=1) / np.sqrt(n)
    return m - half, m + half


def studentized_bounds(
    samples: np.ndarray, n_resamples: int = N_RESAMPLES, seed: int = SEED, level: float = 0.95
) -> tuple[np.ndarray, np.ndarray]:
    """Bootstrap-t bounds of the mean of each row of ``samples`` (shape (k, n), n >= 2, no NaN); rows
    share one draw of ``n_resamples`` resampling indices (seeded). A row with sd 0 gets a zero-width
    interval. Unclipped, and infinite when a tail quantile of t* is (small n: use :func:`interval_bounds`)."""
    x = np.asarray(samples, dtype=np.float64)
    n = x.shape[1]
    m = x.mean(axis=1)
    se = x.std(axis=1, ddof=1) / np.sqrt(n)
    idx = np.random.default_rng(seed).integers(0, n, size=(n_resamples, n))
    lo, hi = m.copy(), m.copy()
    alpha = (1 - level) / 2
    rows = np.flatnonzero(se > 0)
    step = max(1, 4_000_000 // idx.size)  # bounds memory: step x n_resamples x n values at a time
    for start in range(0, rows.size, step):
        r = rows[start:start + step]
        xb = x[r][:, idx]  # (rows, n_resamples, n)
        se_b = xb.std(axis=2, ddof=1) / np.sqrt(n)
        diff = xb.mean(axis=2) - m[r, None]
        with np.errstate(divide="ignore", invalid="ignore"):
            t = np.where(se_b > 0, diff / se_b, np.sign(diff) * np.inf)  # se* = 0: the limit, +-inf (0 if equal)
        t = np.nan_to_num(t, nan=0.0, posinf=np.inf, neginf=-np.inf)
        with np.errstate(invalid="ignore"):  # inf - inf inside quantile interpolation: NaN, caught above
            q = np.quantile(t, [alpha, 1 - alpha], axis=1)
        lo[r], hi[r] = m[r] - q[1] * se[r], m[r] - q[0] * se[r]
    return lo, hi


def proportion_interval(k: np.ndarray | int, n: int, level: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
    """Wilson score interval of the proportion ``k / n`` (inside [0, 1] for every k, n >= 1); NaN for
    n = 0. ``k`` may be an array of counts out of the same n."""
    from scipy.stats import norm

    k = np.asarray(k, dtype=np.float64)
    if n <= 0:
        return np.full(k.shape, np.nan), np.full(k.shape, np.nan)
    z = float(norm.ppf(1 - (1 - level) / 2))
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    lo, hi = np.clip(centre - half, 0.0, 1.0), np.clip(centre + half, 0.0, 1.0)
    # exact ends at 0 and n (the formula gives them up to rounding)
    return np.where(k <= 0, 0.0, lo), np.where(k >= n, 1.0, hi)


#: The name the callers know; the interval is :func:`mean_interval`'s (no longer a percentile bootstrap).
bootstrap_mean = mean_interval


@dataclass(frozen=True)
class PairedTest:
    """Difference of means (a − b) over shared subjects, its interval, a two-sided sign-flip p-value,
    the number of subjects and which test made the p-value (:data:`EXACT_TEST` or :data:`MC_TEST`)."""

    diff: float
    lo: float
    hi: float
    p_value: float
    n: int
    test: str = ""


def sign_flip_p_value(d: np.ndarray, seed: int = SEED) -> tuple[float, str]:
    """Two-sided p-value of H0 "differences symmetric about 0" for ``|mean(d)|``, and the test's name.

    Exact enumeration of all 2^n sign vectors for n <= :data:`EXACT_MAX_SUBJECTS` (the observed one is
    among them, so p >= 2 / 2^n for n >= 1); Monte Carlo beyond."""
    d = np.asarray(d, dtype=np.float64)
    n = d.size
    obs = abs(d.mean()) - 1e-12 * max(1.0, float(np.abs(d).max(initial=0.0)))  # ties count as extreme
    if n <= EXACT_MAX_SUBJECTS:
        codes = np.arange(2**n, dtype=np.int64)[:, None]
        signs = 1.0 - 2.0 * ((codes >> np.arange(n)) & 1)
        return float(np.mean(np.abs(signs @ d) / n >= obs)), EXACT_TEST
    rng = np.random.default_rng(seed)
    signs = rng.choice([-1.0, 1.0], size=(PERM_RESAMPLES, n))
    hits = int(np.sum(np.abs(signs @ d) / n >= obs))
    return (1 + hits) / (PERM_RESAMPLES + 1), MC_TEST


def paired_test(
    a: np.ndarray | list[float], b: np.ndarray | list[float], n_resamples: int = N_RESAMPLES, seed: int = SEED,
    level: float = 0.95, value_range: tuple[float, float] = UNBOUNDED,
) -> PairedTest:
    """Paired comparison of two methods on the same subjects (arrays aligned by subject; a pair with a
    NaN is dropped). ``value_range``: the possible values of ``a`` and ``b``; the interval of the mean
    difference is clipped to the differences they allow (``[low - high, high - low]``). No shared subject:
    every field NaN, n = 0."""
    d = np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)
    d = d[~np.isnan(d)]
    if d.size == 0:
        nan = float("nan")
        return PairedTest(nan, nan, nan, nan, 0, "")
    low, high = value_range
    est = mean_interval(d, n_resamples, seed, level, value_range=(low - high, high - low))
    p, test = sign_flip_p_value(d, seed + 1)
    return PairedTest(est.mean, est.lo, est.hi, p, int(d.size), test)
