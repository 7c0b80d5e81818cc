"""Krippendorff's alpha (interval) and Pearson r for judge-human agreement (dreambench.study.agreement)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from dreambench.study.agreement import judge_human_alpha, kd_alpha, krippendorff_alpha, pearson_r

NAN = math.nan
#: Krippendorff (2011), "Computing Krippendorff's alpha-reliability", the 4 observers x 12 units example,
#: whose published alphas are nominal 0.743, ordinal 0.815, interval 0.849, ratio 0.797.
KRIPPENDORFF_2011 = [
    [1, 2, 3, 3, 2, 1, 4, 1, 2, NAN, NAN, NAN],
    [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, NAN, 3],
    [NAN, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, NAN],
    [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, NAN],
]


def test_alpha_interval_matches_the_published_example():
    assert round(krippendorff_alpha(KRIPPENDORFF_2011), 3) == 0.849


def test_alpha_perfect_and_degenerate():
    assert krippendorff_alpha([[0, 1, 2, 3, 4], [0, 1, 2, 3, 4]]) == 1.0
    assert math.isnan(krippendorff_alpha([[2, 2, 2], [2, 2, 2]]))  # no variation: undefined
    assert math.isnan(krippendorff_alpha([[1, NAN], [NAN, 2]]))    # nothing pairable


def test_kd_alpha_takes_the_union_of_keys_as_the_reference():
    a = {"x-0": 1, "x-1": 2, "x-2": 3}
    b = {"x-0": 1, "x-1": 3, "x-3": 4}
    want = round(krippendorff_alpha([[1, 2, 3, NAN], [1, 3, NAN, 4]]), 3)
    assert kd_alpha([a, b]) == want
    assert judge_human_alpha([a, b], a) == round((1.0 + kd_alpha([b, a])) / 2, 3)


def test_pearson_matches_scipy():
    rng = np.random.default_rng(0)
    x = rng.integers(0, 5, 50).astype(float)
    y = x + rng.normal(0, 1, 50)
    assert pearson_r(x, y) == round(float(stats.pearsonr(x, y)[0]), 4)
    with pytest.raises(ValueError):
        pearson_r([1.0], [2.0])
