"""Intervals and paired tests of dreambench.stats: coverage measured by seeded simulation at 3, 4, 5, 10
and 30 subjects, intervals that never leave the metric's range nor lose one bound, the exact sign-flip
test against a brute-force enumeration, NaN below three subjects."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from dreambench import stats

# Per-subject value distributions: normal, and two skewed ones (skewness 0.6 and 1.0) with known means.
DISTS = {
    "normal": (lambda r, s: r.normal(0.6, 0.05, s), 0.6),
    "beta(2,5)": (lambda r, s: r.beta(2, 5, s), 2 / 7),
    "gamma(4)": (lambda r, s: r.gamma(4.0, 0.02, s), 0.08),
}
N_SIMS = 4000


def _coverage(draw, mu: float, n: int, seed: int) -> float:
    """Share of N_SIMS simulated samples of n subjects whose default interval contains the true mean.
    interval_bounds is the code mean_interval runs, vectorized over samples (one index draw per call,
    so each batch of 500 samples gets its own)."""
    rng = np.random.default_rng(seed)
    x = draw(rng, (N_SIMS, n))
    hits = 0
    for k in range(0, N_SIMS, 500):
        lo, hi = stats.interval_bounds(x[k:k + 500], seed=seed + k)
        assert np.all(np.isfinite(lo) & np.isfinite(hi))  # from 3 subjects on, always both bounds
        hits += int(np.sum((lo <= mu) & (mu <= hi)))
    return hits / N_SIMS


@pytest.mark.parametrize("n", [3, 4, 5, 10, 30])
@pytest.mark.parametrize("dist", list(DISTS))
def test_default_interval_covers_95(dist, n):
    """The coverage table (measured: t interval below 10 subjects 0.947-0.949 normal, 0.928-0.937 skewed;
    bootstrap-t at 10 and 30 subjects 0.945-0.959). +-0.015 is the requirement; 4000 simulations have a
    Monte Carlo sd of 0.0034. Below BOOTSTRAP_MIN_SUBJECTS the t interval of skewed values is allowed its
    documented shortfall (down to 0.92, stats module docstring), never more."""
    draw, mu = DISTS[dist]
    cov = _coverage(draw, mu, n, seed=1000 + n)
    print(f"coverage {dist} n={n}: {cov:.3f}")
    if dist != "normal" and n < stats.BOOTSTRAP_MIN_SUBJECTS:
        assert 0.92 <= cov <= 0.965, cov
    else:
        assert abs(cov - 0.95) <= 0.015, cov


@pytest.mark.parametrize("n", [3, 4, 5, 10, 30])
def test_intervals_stay_in_range_and_whole(n):
    """Cosine-like values near the top of [-1, 1] (Beta(20, 1)): every interval is inside the range with
    both bounds (the bootstrap-t at 3 subjects gave NaN / 1e13 bounds in about half of such cases)."""
    x = np.random.default_rng(n).beta(20, 1, (500, n))
    lo, hi = stats.interval_bounds(x, value_range=(-1.0, 1.0))
    assert np.all(np.isfinite(lo) & np.isfinite(hi)) and np.all((-1 <= lo) & (lo <= hi) & (hi <= 1))
    assert np.all((lo <= x.mean(axis=1)) & (x.mean(axis=1) <= hi))
    raw_lo, raw_hi = stats.studentized_bounds(x[:, :3]) if n == 3 else (lo, hi)
    if n == 3:  # what the bootstrap-t alone would have given: the failure this guards against
        assert np.mean(~np.isfinite(raw_lo) | ~np.isfinite(raw_hi) | (raw_hi > 1)) > 0.3


def test_percentile_bootstrap_would_fail_the_same_check():
    """The simulation can tell a bad interval: the old percentile bootstrap under-covers at 5 subjects."""
    rng = np.random.default_rng(5)
    hits = 0
    for k, x in enumerate(rng.normal(0.6, 0.05, (N_SIMS, 5))):
        means = x[np.random.default_rng(k).integers(0, 5, (1000, 5))].mean(axis=1)
        lo, hi = np.quantile(means, [0.025, 0.975])
        hits += lo <= 0.6 <= hi
    assert hits / N_SIMS < 0.90


def test_mean_interval_method_by_n():
    """t interval below BOOTSTRAP_MIN_SUBJECTS, studentized bootstrap from it; one resample count."""
    x = np.array([0.61, 0.55, 0.70, 0.58, 0.66, 0.52, 0.63, 0.59, 0.57, 0.68, 0.60])
    small, big = x[:stats.BOOTSTRAP_MIN_SUBJECTS - 1], x
    lo, hi = stats.t_bounds(small[None, :])
    e = stats.mean_interval(small)
    assert (e.lo, e.hi) == (lo[0], hi[0]) and e.lo < small.mean() < e.hi
    lo, hi = stats.studentized_bounds(big[None, :], n_resamples=stats.N_RESAMPLES)
    e = stats.mean_interval(big)
    assert (e.lo, e.hi) == (lo[0], hi[0]) and e.lo < big.mean() < e.hi
    assert stats.mean_interval(big, n_resamples=500) != e  # the count asked for is the count used


def test_proportion_interval_stays_in_0_1():
    lo, hi = stats.proportion_interval(np.array([0, 1]), 1)
    assert lo[1] == pytest.approx(0.2065, abs=1e-3) and hi[1] == 1.0 and lo[0] == 0.0 and hi[0] < 0.8
    lo, hi = stats.proportion_interval(30, 50)
    assert 0.45 < lo < 0.6 < hi < 0.75
    assert all(np.isnan(stats.proportion_interval(0, 0)))


def test_interval_nan_below_three_subjects_and_degenerate_cases():
    for vals in ([0.5], [0.5, 0.7]):
        e = stats.mean_interval(vals)
        assert e.mean == pytest.approx(np.mean(vals)) and np.isnan(e.lo) and np.isnan(e.hi)
        assert e.n == len(vals)
    e = stats.mean_interval([])
    assert np.isnan(e.mean) and e.n == 0
    e = stats.mean_interval([0.3, 0.3, 0.3, float("nan")])
    assert (e.lo, e.mean, e.hi, e.n) == (0.3, 0.3, 0.3, 3)
    e = stats.mean_interval([0.1, 0.4, 0.2, 0.9])
    assert e.lo < e.mean < e.hi and e.n == 4
    assert stats.mean_interval([0.1, 0.4, 0.2, 0.9]) == e  # seeded: the same interval every call


def test_exact_sign_flip_matches_enumeration():
    d = np.array([0.03, -0.01, 0.02, 0.05, 0.04, -0.02, 0.01])
    flips = [abs(np.mean(np.array(s) * d)) for s in itertools.product([-1, 1], repeat=d.size)]
    expect = np.mean(np.array(flips) >= abs(d.mean()) - 1e-15)
    p, test = stats.sign_flip_p_value(d)
    assert test == stats.EXACT_TEST and p == pytest.approx(expect, abs=1e-12)
    # all 5 differences positive: only the identity and the all-flipped vector are as extreme
    p5, _ = stats.sign_flip_p_value(np.array([0.1, 0.2, 0.3, 0.4, 0.5]))
    assert p5 == pytest.approx(2 / 32)


def test_paired_test_reports_test_and_n():
    rng = np.random.default_rng(0)
    a = rng.normal(0.6, 0.05, 30)
    t_small = stats.paired_test(a[:6], a[:6] - 0.01)
    assert t_small.test == stats.EXACT_TEST and t_small.n == 6 and t_small.p_value == pytest.approx(2 / 64)
    t_big = stats.paired_test(a, a - rng.normal(0.02, 0.01, 30))
    assert t_big.test == stats.MC_TEST and t_big.n == 30 and t_big.p_value < 0.001
    assert t_big.lo < t_big.diff < t_big.hi
    t_two = stats.paired_test([0.5, 0.6], [0.4, 0.7])
    assert t_two.n == 2 and np.isnan(t_two.lo) and np.isnan(t_two.hi) and t_two.test == stats.EXACT_TEST


def test_paired_interval_stays_within_the_possible_differences():
    """Cosines in [-1, 1] differ by at most 2: three subjects far apart give a t interval of about
    0.67 ± 5.7, clipped to [-2, 2] (both bounds), and the p-value is untouched."""
    a, b = [1.0, -1.0, 1.0], [-1.0, 1.0, -1.0]
    wide = stats.paired_test(a, b)
    assert wide.lo < -2 and wide.hi > 2  # what the interval alone gives
    t = stats.paired_test(a, b, value_range=(-1.0, 1.0))
    assert (t.lo, t.hi) == (-2.0, 2.0) and t.diff == wide.diff and t.p_value == wide.p_value
