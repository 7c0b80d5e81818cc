"""Intervals, the one real row and missing subjects, from real CLI runs (tiny profile) over 3 and 4
subjects: every interval cell of every table CSV is finite and inside the metric's range, or NaN in both
bounds (issue 19.4); a ``real`` label's DINO / CLIP-I are the Real Images row's (19.5); a subject whose
score part is missing shows in ``n`` and in a footnote naming it, in CSV, Markdown and LaTeX (20.3)."""

from __future__ import annotations

import ast
import math
import re
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
    # paired.csv: the interval of a difference stays within the differences the metric allows
    for r in pd.read_csv(run / "scores" / "paired.csv").to_dict("records"):
        a, b = RANGES[r["metric"]]
        assert np.isnan(r["lo"]) == np.isnan(r["hi"]), r
        assert np.isnan(r["lo"]) or a - b <= r["lo"] <= r["diff"] <= r["hi"] <= b - a, r


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


#: A figure with its interval as Markdown and LaTeX cells show it: "m ± h" (symmetric) or "m [lo, hi]".
_CELL = re.compile(r"(-?\d+\.\d+)(?: (?:±|\$\\pm\$) (\d+\.\d+)| \[(-?\d+\.\d+), (-?\d+\.\d+)\])")


def _shown_bounds(text: str) -> list[tuple[float, float]]:
    """The bounds every interval cell of a Markdown or LaTeX table lets a reader work out."""
    out = []
    for m, half, lo, hi in _CELL.findall(text):
        out.append((float(m) - float(half), float(m) + float(half)) if half else (float(lo), float(hi)))
    return out


def test_fmt_shows_the_bounds_where_mean_pm_half_width_leaves_the_range():
    from dreambench.tables.render import fmt

    assert fmt(0.5, 0.4, 0.6, value_range=(-1, 1)) == "0.500 ± 0.100"
    # Clipped at 1 (a t interval of 0.889 ± 0.237): ± 0.174 would read as up to 1.063 for a cosine.
    assert fmt(0.889, 0.652, 1.0, value_range=(-1, 1)) == "0.889 [0.652, 1.000]"
    assert fmt(100.0, 20.66, 100.0, digits=1, value_range=(0, 100)) == "100.0 [20.7, 100.0]"  # Wilson, 1 of 1
    assert fmt(0.889, 0.652, 1.0) == "0.889 ± 0.174"  # no range known: as before


def test_no_table_cell_shows_a_value_out_of_range(run):
    """Markdown and LaTeX cells of Table 1 (raw cosines, [-1, 1]): the bounds a reader takes from each cell
    are inside the range, also where the interval was clipped to it."""
    for suffix in (".md", ".tex"):
        shown = _shown_bounds((run / "tables" / f"table1_fidelity{suffix}").read_text())
        assert shown, suffix
        for lo, hi in shown:
            assert -1 - 5e-4 <= lo <= hi <= 1 + 5e-4, (suffix, lo, hi)


def _answer(db: Path, answers: dict[str, int]) -> None:
    """Every question of type ``qtype`` answered "A" by the first ``answers[qtype]`` raters, as the web
    app stores an answer (:func:`dreambench.study.db.record_answer`)."""
    from dreambench.study import db as sdb

    conn = sdb.connect(db)
    raters = [r[0] for r in conn.execute("SELECT id FROM raters ORDER BY id")]
    for qid, qtype, a_on_left in conn.execute("SELECT id, qtype, a_on_left FROM questions ORDER BY id").fetchall():
        for rid in raters[:answers[qtype]]:
            sdb.mark_served(conn, rid, qid)
            assert sdb.record_answer(conn, rid, qid, "left" if a_on_left else "right")
    conn.close()


def test_table2_incomplete_rows_are_na_and_warned(run, tmp_path, cli_env, dataset_dir):
    """A study of the run (2 answers asked per question): subject questions fully answered (100% A: the
    Wilson interval, shown as its bounds, never 100 ± 0 nor past 100), prompt questions with one answer
    each: `tables` shows ± n/a in that row's cells and prints a warning line naming it."""
    db = tmp_path / "study.sqlite"
    realrun.run_cli(["study", "create", "--results", run, "--method-a", "pretrained", "--method-b", "real",
                     "--questions", "2", "--max-answers", "2", "--raters", "2", "--db", db, "--data", dataset_dir],
                    cli_env)
    _answer(db, {"subject": 2, "prompt": 1})
    out = tmp_path / "t"
    proc = realrun.run_cli(["tables", run, "--out", out, "--study", db], cli_env)
    warned = [ln for ln in proc.stderr.splitlines() if ln.startswith("warning:")]
    assert len(warned) == 1 and "prompt pretrained vs real: 2 of 2 questions have fewer answers" in warned[0], \
        proc.stderr
    t2 = _csv(out / "table2_preference.csv").set_index("question_type")
    assert t2.loc["prompt", "n_short"] == 2 and np.isnan(t2.loc["prompt", "pct_a_lo"])
    assert t2.loc["subject", "n_short"] == 0 and t2.loc["subject", "pct_a"] == 100
    _check_intervals(t2.reset_index().assign(method="t2"), "table2")
    for suffix in (".md", ".tex"):
        text = (out / f"table2_preference{suffix}").read_text().replace("$\\pm$", "±")
        rows = {ln.split("|")[1].strip() if suffix == ".md" else ln.split("&")[0].strip(): ln
                for ln in text.splitlines() if ln.startswith(("| subject", "| prompt", "subject &", "prompt &"))}
        assert rows["prompt"].count("± n/a") == 3, rows
        assert "100.0 [" in rows["subject"] and "n/a" not in rows["subject"], rows
        for lo, hi in _shown_bounds(text):
            assert 0 <= lo <= hi <= 100 + 0.05, (suffix, lo, hi)
    # study analyze: the same warning, and each short question marked in majority.csv
    proc = realrun.run_cli(["study", "analyze", "--db", db, "--out", tmp_path / "a"], cli_env)
    assert [ln for ln in proc.stderr.splitlines() if ln.startswith("warning:")] == warned
    mv = pd.read_csv(tmp_path / "a" / "majority.csv").set_index("question_type")
    assert (mv["n_asked"] == 2).all()
    assert mv.loc["prompt", "complete"].tolist() == [False, False] and (mv.loc["prompt", "n_answers"] == 1).all()
    assert mv.loc["subject", "complete"].tolist() == [True, True]


def test_no_report_cell_shows_a_value_out_of_range(run, tmp_path, cli_env, dataset_dir):
    """The HTML report's tables and per-category blocks follow the same rule as the table files."""
    out = tmp_path / "report"
    realrun.run_cli(["report", run, "--out", out, "--data", dataset_dir], cli_env)
    shown = _shown_bounds((out / "index.html").read_text())
    assert len(shown) > 10
    for lo, hi in shown:
        assert -1 - 5e-4 <= lo <= hi <= 1 + 5e-4, (lo, hi)
