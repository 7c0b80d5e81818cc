"""Intervals and paired tests of dreambench.stats: coverage measured by seeded simulation, the exact
sign-flip test against a brute-force enumeration, NaN below three subjects."""

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
    studentized_bounds is the code mean_interval runs, vectorized over samples (one index draw per
    call, so each batch of 500 samples gets its own)."""
    rng = np.random.default_rng(seed)
    x = draw(rng, (N_SIMS, n))
    hits = 0
    for k in range(0, N_SIMS, 500):
        lo, hi = stats.studentized_bounds(x[k:k + 500], seed=seed + k)
        hits += int(np.sum((lo <= mu) & (mu <= hi)))
    return hits / N_SIMS


@pytest.mark.parametrize("n", [5, 10, 30])
@pytest.mark.parametrize("dist", list(DISTS))
def test_default_interval_covers_95(dist, n):
    draw, mu = DISTS[dist]
    cov = _coverage(draw, mu, n, seed=1000 + n)
    print(f"coverage {dist} n={n}: {cov:.3f}")
    # +-0.015 is the requirement; 4000 simulations have a Monte Carlo sd of 0.0034.
    assert abs(cov - 0.95) <= 0.015, cov


def test_percentile_bootstrap_would_fail_the_same_check():
    """The simulation can tell a bad interval: the old percentile bootstrap under-covers at 5 subjects."""
    rng = np.random.default_rng(5)
    hits = 0
    for k, x in enumerate(rng.normal(0.6, 0.05, (N_SIMS, 5))):
        means = x[np.random.default_rng(k).integers(0, 5, (1000, 5))].mean(axis=1)
        lo, hi = np.quantile(means, [0.025, 0.975])
        hits += lo <= 0.6 <= hi
    assert hits / N_SIMS < 0.90


def test_mean_interval_is_studentized_bounds():
    x = np.array([0.61, 0.55, 0.70, 0.58, 0.66, 0.52])
    lo, hi = stats.studentized_bounds(x[None, :])
    e = stats.mean_interval(x)
    assert (e.lo, e.hi) == (lo[0], hi[0]) and e.lo < x.mean() < e.hi


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
