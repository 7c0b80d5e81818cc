"""Intervals, the one real row and missing subjects, from real CLI runs (tiny profile) over 3 and 4
subjects: every interval cell of every table CSV is finite and inside the metric's range, or NaN in both
bounds (issue 19.4); a ``real`` label's DINO / CLIP-I are the Real Images row's (19.5); a subject whose
score part is missing shows in ``n`` and in a footnote naming it, in CSV, Markdown and LaTeX (20.3)."""

from __future__ import annotations

import ast
import math
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import realrun

METHODS = ("pretrained", "real")  # no training: the fastest runs that have both kinds of row
SUBJECTS = {3: ("backpack", "can", "dog"), 4: ("backpack", "can", "cat", "dog")}
#: Possible values per figure column (metric profile "paper": raw cosines; LPIPS >= 0; percentages).
RANGES = {"dino": (-1, 1), "clip_i": (-1, 1), "clip_t": (-1, 1), "pres": (-1, 1), "div": (0, math.inf),
          "pct_a": (0, 100), "pct_b": (0, 100), "pct_undecided": (0, 100)}


@pytest.fixture(scope="module", params=sorted(SUBJECTS))
def run(request, tmp_path_factory, dataset_dir, cli_env) -> Path:
    n = request.param
    results = tmp_path_factory.mktemp(f"iv{n}") / "results"
    return realrun.tiny_run(results, dataset_dir, cli_env, methods=METHODS, subjects=SUBJECTS[n])


def _csv(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, comment="#")


def _check_intervals(df: pd.DataFrame, where: str) -> int:
    """Every (m, m_lo, m_hi) cell: both bounds NaN, or both finite, in range and around the mean."""
    checked = 0
    for m, (a, b) in RANGES.items():
        if f"{m}_lo" not in df.columns:
            continue
        for r in df.to_dict("records"):
            lo, hi, mean = r[f"{m}_lo"], r[f"{m}_hi"], r[m]
            if np.isnan(lo) or np.isnan(hi):
                assert np.isnan(lo) and np.isnan(hi), f"{where} {r['method']} {m}: half an interval {lo}, {hi}"
                continue
            assert a <= lo <= mean <= hi <= b, f"{where} {r['method']} {m}: [{lo}, {hi}] around {mean}"
            checked += 1
    return checked


def test_every_interval_is_in_range_or_both_nan(run):
    csvs = sorted((run / "tables").glob("*.csv"))
    assert csvs
    checked = sum(_check_intervals(_csv(p), p.name) for p in csvs)
    t1 = _csv(run / "tables" / "table1_fidelity.csv")
    n = int(t1["n_subjects"].max())
    assert n in SUBJECTS and (t1["n_subjects"] == n).all()
    # From 3 subjects on every measured figure has an interval (only Real Images' CLIP-T is N/A).
    assert checked == 2 + 3 * (len(t1) - 1)
    md = (run / "tables" / "table1_fidelity.md").read_text()
    assert "± n/a" not in md and "t interval for 3-9 subjects" in md
    # aggregates.csv (what scoring wrote) obeys the same rule and agrees with the tables
    agg = pd.read_csv(run / "scores" / "aggregates.csv")
    for r in agg.to_dict("records"):
        a, b = RANGES[r["metric"]]
        assert a <= r["lo"] <= r["mean"] <= r["hi"] <= b, r
    assert "Disagreements" not in (run / "tables" / "README.md").read_text()


def test_real_label_is_the_real_images_row(run):
    t1 = _csv(run / "tables" / "table1_fidelity.csv").set_index("method")
    cols = ["dino", "dino_lo", "dino_hi", "clip_i", "clip_i_lo", "clip_i_hi", "n_subjects"]
    assert t1.loc["real", cols].tolist() == t1.loc["Real Images", cols].tolist()
    assert np.isnan(t1.loc["Real Images", "clip_t"]) and np.isfinite(t1.loc["real", "clip_t"])
    real = pd.read_csv(run / "scores" / "real.csv")
    assert t1.loc["real", "dino"] == pytest.approx(real["dino"].mean(), abs=1e-9)
    md = (run / "tables" / "table1_fidelity.md").read_text()
    assert "DINO and CLIP-I are the Real Images row's (each photo against the subject's other photos)" in md


def test_missing_subject_is_counted_and_named(run, tmp_path, cli_env, dataset_dir):
    """A subject's score part gone (as when its job failed): the merge the run does leaves it out, and
    `dreambench tables` shows n one lower and a footnote naming it in CSV, Markdown and LaTeX."""
    from dreambench.metrics.keys import merge_parts
    from dreambench.metrics.scoring import merge_scores

    res = realrun.copy_run(run, tmp_path / "r")
    shutil.rmtree(res / "scores" / "parts" / "pretrained" / "can")
    spec = next(r["spec"] for r in realrun.job_rows(res).values() if r["kind"] == "score_merge")
    spec = spec if isinstance(spec, dict) else ast.literal_eval(spec)
    # what the run's score_merge job does (engine/worker.py), now without the part
    merge_scores(res / "scores", merge_parts(res / "scores", spec["parts"]), res / "images",
                 dataset_dir, metric_profile=spec["metric_profile"],
                 model_profile=spec["model_profile"], metric_weights=spec.get("metric_weights") or {})
    assert "pretrained,can" in (res / "scores" / "missing.csv").read_text()
    realrun.run_cli(["tables", res], cli_env)
    t1 = _csv(res / "tables" / "table1_fidelity.csv").set_index("method")
    n = int(t1.loc["real", "n_subjects"])
    assert int(t1.loc["pretrained", "n_subjects"]) == n - 1
    note = "missing subjects (planned, no scores, not counted in n; see scores/missing.csv): pretrained: can"
    for suffix in (".csv", ".md", ".tex"):
        text = (res / "tables" / f"table1_fidelity{suffix}").read_text()
        assert note in text.replace("\\_", "_"), suffix
    tex = (res / "tables" / "table1_fidelity.tex").read_text()
    caption = tex[tex.index("\\caption{"):].split("\n", 1)[0]
    assert "pretrained: can" in caption  # visible in the compiled table, not only in a comment
    _check_intervals(t1.reset_index(), "missing")
