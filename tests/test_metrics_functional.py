"""Pure metric functions, profiles and helpers, checked against hand-computed values."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch

from dreambench.errors import UnknownNameError
from dreambench.metrics import functional as F
from dreambench.metrics.aggregate import paired_table, per_subject_table
from dreambench.metrics.decode import prefetch_map
from dreambench.metrics.profiles import Scale, get_metric_profile, list_metric_profiles
from dreambench.metrics.scoring import _chunks, strip_identifier

S2 = math.sqrt(2) / 2


def test_cosine_matrix_hand_values():
    a = [[1, 0], [0, 2]]          # (1,0), (0,1) after normalization
    b = [[3, 0], [1, 1], [0, -5]]
    expect = np.array([[1, S2, 0], [0, S2, -1]])
    np.testing.assert_allclose(F.cosine_matrix(a, b), expect, atol=1e-12)
    # torch tensors are accepted the same way
    np.testing.assert_allclose(F.cosine_matrix(torch.tensor(a, dtype=torch.float32), b), expect, atol=1e-7)


def test_mean_and_max_to_reference():
    gen = [[1, 0], [0, 1]]
    real = [[1, 0], [1, 1], [-1, 0]]
    np.testing.assert_allclose(F.mean_cosine_to_reference(gen, real), [(1 + S2 - 1) / 3, (0 + S2 + 0) / 3])
    np.testing.assert_allclose(F.max_cosine_to_reference(gen, real), [1, S2])
    # subject-level value = mean over all (generated, real) pairs
    assert F.mean_pairwise_cosine(gen, real) == pytest.approx((1 + S2 - 1 + 0 + S2 + 0) / 6)


def test_real_pairs_mean_counts_each_ordered_pair_once():
    real = [[1, 0], [0, 1], [1, 1]]
    mean, n = F.real_pairs_mean(real)
    assert n == 6  # 3 * 2 ordered pairs, the diagonal excluded
    assert mean == pytest.approx((0 + S2 + 0 + S2 + S2 + S2) / 6)
    assert F.real_pairs_stat(real, np.max) == pytest.approx(S2)
    m, n1 = F.real_pairs_mean([[1, 2]])
    assert math.isnan(m) and n1 == 0
    assert F.offdiagonal(np.arange(9).reshape(3, 3)).tolist() == [1, 2, 3, 5, 6, 7]


def test_rowwise_cosine_and_shapes():
    np.testing.assert_allclose(F.rowwise_cosine([[1, 0], [1, 1]], [[2, 0], [0, 3]]), [1, S2])
    with pytest.raises(ValueError):
        F.rowwise_cosine([[1, 0]], [[1, 0], [0, 1]])


def test_copy_flags():
    np.testing.assert_array_equal(F.copy_flags([0.9, 0.5, 0.7], 0.7), [True, False, False])
    np.testing.assert_array_equal(F.copy_flags([0.9, 0.5], [0.8, np.nan]), [True, False])
    np.testing.assert_array_equal(F.copy_flags([0.9], np.nan), [False])


def test_unordered_pairs():
    i, j = F.unordered_pairs(4)
    assert list(zip(i.tolist(), j.tolist())) == [(0, 1), (0, 2), (0, 3), (1, 2), (1, 3), (2, 3)]


def test_scales_and_profiles():
    assert Scale(2.5, 0.0).apply([-0.2, 0.3]).tolist() == pytest.approx([0.0, 0.75])
    assert Scale(100.0).apply(0.25) == pytest.approx(25.0)
    names = {p.name for p in list_metric_profiles()}
    assert {"paper", "x100", "clipscore", "paper-vitl14"} <= names
    paper = get_metric_profile("paper")
    assert paper.scale("clip_t").apply(0.3) == pytest.approx(0.3)
    assert paper.dino.transform.resize == 256 and paper.dino.transform.crop == 224
    assert paper.clip.transform.resize == 224 and paper.clip.arch == "ViT-B-32-quickgelu"
    assert get_metric_profile("x100").scale("dino").apply(0.5) == pytest.approx(50)
    assert get_metric_profile("paper-vitl14").clip.arch.startswith("ViT-L-14")
    d = get_metric_profile("clipscore").to_dict()
    assert d["scales"]["clip_t"] == {"factor": 2.5, "floor": 0.0, "mean_floor": None} and d["scales"]["dino"]["factor"] == 1.0
    with pytest.raises(UnknownNameError, match="paper"):
        get_metric_profile("nope")


def test_mean_floor_applies_to_means_only():
    tm = get_metric_profile("torchmetrics").scale("clip_t")
    assert tm.apply([-0.05, 0.15]).tolist() == pytest.approx([-5.0, 15.0])  # per image: unclipped
    assert tm.finish(float(np.mean(tm.apply([-0.05, 0.15])))) == pytest.approx(5.0)
    assert tm.finish(-3.0) == 0.0 and np.isnan(tm.finish(float("nan")))
    assert get_metric_profile("paper").scale("clip_t").finish(-3.0) == -3.0


def test_strip_tokens_removes_placeholders_and_the_space_before_punctuation():
    from dreambench.metrics.text import strip_tokens

    assert strip_tokens("a <sks> dog in the jungle", ["<sks>", "sks"]) == "a dog in the jungle"
    assert strip_tokens("a sks dog in the jungle", ["<sks>", "sks"]) == "a dog in the jungle"
    assert strip_tokens("a photo of <sks>.", ["<sks>"]) == "a photo of."
    assert strip_tokens("a <sks> , wet dog ( <sks> )", ["<sks>"]) == "a, wet dog (" + ")"
    assert strip_tokens("asks a <sks>dog", ["<sks>"]) == "asks a <sks>dog"  # not a whole token: kept


def test_strip_identifier():
    assert strip_identifier("a sks dog in the jungle", "sks") == "a dog in the jungle"
    assert strip_identifier("a photo of sks", "sks") == "a photo of"
    assert strip_identifier("asks a sks, dog", "sks") == "asks a, dog"
    assert strip_identifier("a dog", "") == "a dog"


def test_chunks_cut_only_between_groups():
    rows = pd.DataFrame({"method": ["m"] * 7, "subject": ["s"] * 7, "prompt_index": [0, 0, 0, 1, 1, 2, 2]})
    chunks = _chunks(rows, np.arange(7), ["method", "subject", "prompt_index"], 2)
    assert chunks == [[0, 1, 2], [3, 4], [5, 6]]
    assert _chunks(rows, np.arange(7), ["method", "subject", "prompt_index"], 100) == [list(range(7))]


def test_prefetch_map_keeps_order_and_reports_errors():
    def f(x):
        if x == 3:
            raise ValueError("bad 3")
        return x * x

    out = list(prefetch_map(f, range(10), workers=3, ahead=2))
    assert [o[0] for o in out] == list(range(10))
    assert [o[1] for o in out if o[2] is None] == [x * x for x in range(10) if x != 3]
    assert isinstance(out[3][2], ValueError)


def test_per_subject_and_paired_tables():
    pi = pd.DataFrame({
        "method": ["a", "a", "a", "b", "b", "a"],
        "subject": ["s1", "s1", "s2", "s1", "s2", "s1"],
        "prompt_index": [0, 1, 0, 0, 0, -1],
        "dino": [0.5, 0.7, 0.4, 0.1, 0.2, 0.9],
        "clip_i": [0.0] * 6, "clip_t": [0.0] * 6,
    })
    div = pd.DataFrame({"method": ["a", "a"], "subject": ["s1", "s1"], "prompt_index": [0, 1], "div": [0.2, 0.4]})
    ps = per_subject_table(pi, div).set_index(["method", "subject", "metric"])["value"]
    assert ps[("a", "s1", "dino")] == pytest.approx(0.6)  # class-prompt row (0.9) excluded
    assert ps[("a", "s1", "pres")] == pytest.approx(0.9)
    assert ps[("a", "s1", "div")] == pytest.approx(0.3)
    pt = paired_table(per_subject_table(pi, div)).set_index("metric")
    assert pt.loc["dino", "n_subjects"] == 2
    assert pt.loc["dino", "diff"] == pytest.approx(((0.6 - 0.1) + (0.4 - 0.2)) / 2)
