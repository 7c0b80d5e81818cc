"""Tables 1-6: pure functions on hand-made frames, and write_tables on a synthetic results folder.

The synthetic folder (``make_results`` in builders.py, also used by test_report.py) follows the scoring
contract. Each score is ``BASE[label][metric] + SUBJ[subject] + PROMPT[prompt] + SEED[seed]`` with the
offsets summing to zero per subject, so a label's figure is ``BASE``; with two subjects (offsets -0.1
and +0.1) its interval is NaN (``dreambench.stats``: no interval below 3 subjects) and displays "n/a".
"""

from __future__ import annotations

import json
import sys
import types
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from builders import BASE, INFO, RUN, make_results


@pytest.fixture
def results(tmp_path: Path) -> Path:
    return make_results(tmp_path)


def read_table(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, comment="#")


# ---------------------------------------------------------------- pure functions


def test_table1_is_mean_over_subjects_of_subject_means_and_excludes_class_prompts():
    from dreambench.tables import table1

    pi = pd.DataFrame(
        {
            "method": ["A", "A", "A", "A"],
            "subject": ["s1", "s1", "s2", "s1"],
            "prompt_index": [0, 1, 0, -1],
            "dino": [0.2, 0.4, 0.9, 0.99],  # s1 -> 0.3, s2 -> 0.9; the class-prompt 0.99 is PRES, not DINO
            "clip_i": [0.5, 0.5, 0.7, np.nan],
            "clip_t": [0.1, 0.3, 0.3, np.nan],
        }
    )
    real = pd.DataFrame({"subject": ["s1", "s2"], "dino": [0.8, 0.7], "clip_i": [0.9, 0.8]})
    t = table1(pi, real)
    assert list(t["method"]) == ["Real Images", "A"]
    r, a = t.iloc[0], t.iloc[1]
    assert r["dino"] == pytest.approx(0.75) and r["clip_i"] == pytest.approx(0.85)
    assert np.isnan(r["clip_t"])
    assert a["dino"] == pytest.approx(0.6)  # pooled images would give 0.5
    assert a["clip_i"] == pytest.approx(0.6) and a["clip_t"] == pytest.approx(0.25)
    # Two subjects: no interval (stats.MIN_SUBJECTS = 3).
    assert np.isnan(a["dino_lo"]) and np.isnan(a["dino_hi"])
    assert a["n_subjects"] == 2


def test_table3_pres_and_div():
    from dreambench.tables import table3

    pi = pd.DataFrame(
        {
            "method": ["P", "P", "P", "Q", "Q"],
            "subject": ["s1", "s1", "s2", "s1", "s1"],
            "prompt_index": [-1, -1, -1, -1, 0],
            "dino": [0.2, 0.4, 0.6, 0.9, 0.5],
            "clip_i": [np.nan] * 4 + [0.5],
            "clip_t": [np.nan] * 4 + [0.3],
        }
    )
    div = pd.DataFrame(
        {
            "method": ["P", "P", "P"],
            "subject": ["s1", "s1", "s2"],
            "prompt_index": [0, 1, 0],
            "div": [0.1, 0.3, 0.5],
        }
    )
    t = table3(pi, div, {"P": True, "Q": False})
    p, q = t.iloc[0], t.iloc[1]
    assert (p["ppl"], q["ppl"]) == ("yes", "no")
    assert p["pres"] == pytest.approx((0.3 + 0.6) / 2)
    assert p["div"] == pytest.approx((0.2 + 0.5) / 2)
    assert np.isnan(p["dino"])  # P has only class-prompt samples
    assert q["pres"] == pytest.approx(0.9) and q["dino"] == pytest.approx(0.5) and np.isnan(q["div"])


def test_table2_intervals_from_questions():
    from dreambench.tables import table2

    pref = pd.DataFrame(
        [
            {
                "question_type": "subject",
                "method_a": "A",
                "method_b": "B",
                "pct_a": 60.0,
                "pct_b": 30.0,
                "pct_undecided": 10.0,
                "n_questions": 50,
            },
            {
                "question_type": "prompt",
                "method_a": "A",
                "method_b": "B",
                "pct_a": 100.0,
                "pct_b": 0.0,
                "pct_undecided": 0.0,
                "n_questions": 10,
            },
            {
                "question_type": "prompt",
                "method_a": "A",
                "method_b": "C",
                "pct_a": 0.0,
                "pct_b": 0.0,
                "pct_undecided": 0.0,
                "n_questions": 0,
            },
        ]
    )
    t = table2(pref)
    r = t.iloc[0]
    assert r["pct_a"] == 60.0 and r["pct_a_lo"] < 60.0 < r["pct_a_hi"]
    assert 40.0 < r["pct_a_lo"] and r["pct_a_hi"] < 80.0
    # 10 of 10 questions: Wilson [72.2, 100], never the old "100 +- 0"
    assert t.iloc[1]["pct_a_lo"] == pytest.approx(72.25, abs=0.01) and t.iloc[1]["pct_a_hi"] == 100.0
    assert np.isnan(t.iloc[2]["pct_a_lo"])
    pd.testing.assert_frame_equal(t, table2(pref))  # seeded


def test_label_selection_infers_roles_of_legacy_infos():
    """Numeric-table support: the synthetic folder's method.json files have the pre-role shape (no role,
    ppl false for textual inversion); membership itself is tested from real runs in
    test_tables_membership.py."""
    from dreambench.tables import select

    infos = {lab: dict(zip(["method", "ppl", "class_noun_mode", "num_inputs"], v)) for lab, v in INFO.items()}
    labels = sorted(infos)
    assert select.main_labels(labels, infos) == ["dreambooth", "textual-inversion"]
    assert select.ppl_ablation(labels, infos) == {"dreambooth": True, "dreambooth-noppl": False}
    assert select.noun_ablation(labels, infos) == {
        "dreambooth": "correct",
        "dreambooth-noun-none": "none",
        "dreambooth-noun-wrong": "wrong",
    }
    assert select.inputs_ablation(labels, infos) == {
        "dreambooth-n1": 1,
        "dreambooth-n2": 2,
        "dreambooth-n3": 3,
    }


# ---------------------------------------------------------------- write_tables on a results folder


def test_write_tables_files_and_values(results: Path):
    from dreambench.tables import KEYS, write_tables

    written = write_tables(results)
    out = results / "tables"
    for n in (1, 3, 4, 5, 6):
        for suffix in (".csv", ".tex", ".md"):
            assert (out / f"{KEYS[n]}{suffix}").is_file(), (n, suffix)
            assert f"{KEYS[n]}{suffix}" in written
    assert (out / f"{KEYS[5]}.png").stat().st_size > 1000 and (out / f"{KEYS[6]}.png").is_file()
    assert not any(out.glob("table2*"))  # no study database
    assert "Table 2: no study database" in (out / "README.md").read_text()

    t1 = read_table(out / f"{KEYS[1]}.csv")
    assert list(t1["method"]) == ["Real Images", "dreambooth", "textual-inversion"]
    real, db, ti = (t1.iloc[i] for i in range(3))
    assert real["dino"] == pytest.approx(0.75) and np.isnan(real["dino_lo"]) and np.isnan(real["dino_hi"])
    assert real["clip_i"] == pytest.approx(0.875) and np.isnan(real["clip_t"])
    for row, label in ((db, "dreambooth"), (ti, "textual-inversion")):
        for m in ("dino", "clip_i", "clip_t"):
            b = BASE[label][m]
            assert (row[m], row[f"{m}_lo"], row[f"{m}_hi"]) == pytest.approx((b, np.nan, np.nan), nan_ok=True), (
                label,
                m,
            )

    md = (out / f"{KEYS[1]}.md").read_text()
    # Two subjects: intervals are n/a in every display (NaN in the CSV); n = 2.
    assert "| Real Images | 0.750 | 0.875 | N/A | 2 |" in md
    assert "| dreambooth | 0.600 | 0.800 | 0.300 | 2 |" in md
    tex = (out / f"{KEYS[1]}.tex").read_text()
    assert r"0.600" in tex and r"\caption{Random-init weights: not quality results." in tex
    for text in (md, tex, (out / f"{KEYS[1]}.csv").read_text()):
        assert "random-init weights: not quality results" in text
        assert f"run: {RUN}" in text and "model profile: tiny" in text
        assert "vit_small_patch16_224.dino (dino-tiny-rand)" in text and "ViT-B-32/openai" in text
        assert "tables by dreambench commit" in text and "scored at commit feedbeef" in text

    t3 = read_table(out / f"{KEYS[3]}.csv")
    assert list(t3["method"]) == ["dreambooth", "dreambooth-noppl"] and list(t3["ppl"]) == ["yes", "no"]
    for row, label in zip(t3.to_dict("records"), ["dreambooth", "dreambooth-noppl"]):
        for m in ("pres", "div", "dino", "clip_i", "clip_t"):
            assert row[m] == pytest.approx(BASE[label][m]), (label, m)
    assert "PRES" in (out / f"{KEYS[3]}.md").read_text()

    t4 = read_table(out / f"{KEYS[4]}.csv")
    assert list(t4["class_noun"]) == ["correct", "none", "wrong"]
    assert list(t4["dino"]) == pytest.approx([0.60, 0.40, 0.50])
    assert list(t4["clip_i"]) == pytest.approx([0.80, 0.70, 0.74])

    t5 = read_table(out / f"{KEYS[5]}.csv")
    bp = t5[t5["subject"] == "backpack"].sort_values("num_inputs")
    assert list(bp["num_inputs"]) == [1, 2, 3]
    assert list(bp["dino"]) == pytest.approx([0.20, 0.30, 0.40])
    # The interval would be over the subject's two per-prompt means: below 3 values, none.
    assert bp["dino_lo"].isna().all()
    md5 = (out / f"{KEYS[5]}.md").read_text()
    assert "| Input images | backpack | dog |" in md5 and "| 1 | 0.200 | 0.400 |" in md5
    t6 = read_table(out / f"{KEYS[6]}.csv")
    assert t6.loc[(t6["subject"] == "dog") & (t6["num_inputs"] == 3), "clip_t"].item() == pytest.approx(0.43)


def test_no_ci_and_subject_choice(results: Path):
    from dreambench.tables import KEYS, write_tables

    write_tables(results, ci=False, inputs_subjects=["dog"])
    out = results / "tables"
    for n in (1, 3, 4, 5, 6):
        for suffix in (".tex", ".md"):
            text = (out / f"{KEYS[n]}{suffix}").read_text()
            assert "±" not in text and r"\pm" not in text, (n, suffix)
    assert "| dreambooth | 0.600 | 0.800 | 0.300 |" in (out / f"{KEYS[1]}.md").read_text()
    assert "dino_lo" in (out / f"{KEYS[1]}.csv").read_text()  # CSV keeps the interval columns
    assert set(read_table(out / f"{KEYS[5]}.csv")["subject"]) == {"dog"}


def test_pretrained_run_has_no_random_init_caption(tmp_path: Path):
    from dreambench.tables import KEYS, write_tables

    res = make_results(tmp_path, weights="pretrained")
    write_tables(res)
    for suffix in (".csv", ".tex", ".md"):
        text = (res / "tables" / f"{KEYS[1]}{suffix}").read_text()
        assert "random-init" not in text and "weights: pretrained" in text


def test_without_method_json_all_labels_in_table1_and_no_ablations(tmp_path: Path):
    from dreambench.tables import KEYS, write_tables

    res = make_results(tmp_path, with_info=False)
    write_tables(res)
    t1 = read_table(res / "tables" / f"{KEYS[1]}.csv")
    # Built-in method names first in the documented order, then the other labels by name.
    rest = sorted(set(BASE) - {"dreambooth", "textual-inversion"})
    assert list(t1["method"]) == ["Real Images", "dreambooth", "textual-inversion", *rest]
    assert not (res / "tables" / f"{KEYS[3]}.csv").exists()


def test_table2_from_study(results: Path, monkeypatch):
    from dreambench.tables import KEYS, write_tables

    calls = []

    def preference_table(db_path):
        calls.append(Path(db_path))
        return pd.DataFrame(
            [
                {
                    "question_type": "subject fidelity",
                    "method_a": "dreambooth",
                    "method_b": "textual-inversion",
                    "pct_a": 68.0,
                    "pct_b": 22.0,
                    "pct_undecided": 10.0,
                    "n_questions": 100,
                }
            ]
        )

    fake = types.ModuleType("dreambench.study.analysis")
    fake.preference_table = preference_table
    monkeypatch.setitem(sys.modules, "dreambench.study.analysis", fake)
    db = results / "study.sqlite"
    db.write_bytes(b"")
    write_tables(results)
    assert calls == [db]
    out = results / "tables"
    t2 = read_table(out / f"{KEYS[2]}.csv")
    assert t2.iloc[0]["pct_a"] == 68.0 and t2.iloc[0]["pct_a_lo"] < 68.0 < t2.iloc[0]["pct_a_hi"]
    md = (out / f"{KEYS[2]}.md").read_text()
    assert "| subject fidelity | dreambooth | textual-inversion | 68.0 ±" in md and "| 100 |" in md
    # An explicit database that does not exist is an error naming it.
    from dreambench.errors import DataError

    with pytest.raises(DataError, match="nope.sqlite"):
        write_tables(results, study_db=results / "nope.sqlite")


def test_stale_table_files_removed(results: Path):
    from dreambench.tables import KEYS, write_tables

    stale = results / "tables" / f"{KEYS[2]}.csv"
    stale.parent.mkdir(parents=True)
    stale.write_text("old")
    write_tables(results)
    assert not stale.exists()


def test_disagreement_with_aggregates_warns(results: Path):
    from dreambench.tables import AggregateMismatchWarning, build_tables

    agg_path = results / "scores" / "aggregates.csv"
    with warnings.catch_warnings():
        warnings.simplefilter("error", AggregateMismatchWarning)
        assert build_tables(results).problems == []
    agg = pd.read_csv(agg_path)
    agg.loc[(agg["method"] == "dreambooth") & (agg["metric"] == "dino"), "mean"] = 0.9
    agg.to_csv(agg_path, index=False)
    with pytest.warns(AggregateMismatchWarning, match="dreambooth dino"):
        ts = build_tables(results)
    assert len(ts.problems) == 1


def test_missing_or_bad_scores_are_clear_errors(tmp_path: Path):
    from dreambench.errors import DataError
    from dreambench.tables import write_tables

    with pytest.raises(DataError, match="per_image.csv"):
        write_tables(tmp_path)
    scores = tmp_path / "scores"
    scores.mkdir()
    (scores / "per_image.csv").write_text("method,subject,prompt_index,dino,clip_i\nA,s,x,0.1,0.2\n")
    with pytest.raises(DataError, match="missing column.*clip_t"):
        write_tables(tmp_path)
    (scores / "per_image.csv").write_text(
        "method,subject,prompt_index,dino,clip_i,clip_t\nA,s,x,0.1,0.2,0.3\n"
    )
    with pytest.raises(DataError, match="prompt_index must be integers"):
        write_tables(tmp_path)


def test_cli_tables(results: Path):
    from click.testing import CliRunner

    from dreambench.commands.tables import tables_cmd
    from dreambench.errors import DataError

    r = CliRunner().invoke(tables_cmd, [str(results), "--no-ci", "--subjects", "backpack"])
    assert r.exit_code == 0, r.output
    assert "wrote Table(s) 1, 3, 4, 5, 6" in r.output and "Table 2 not written" in r.output
    assert "±" not in (results / "tables" / "table1_fidelity.md").read_text()
    assert set(read_table(results / "tables" / "table5_inputs_dino.csv")["subject"]) == {"backpack"}
    r = CliRunner().invoke(tables_cmd, [str(results.parent / "missing")])
    assert isinstance(r.exception, DataError) and "per_image.csv" in str(r.exception)


def test_cli_main_group_has_tables_and_report():
    from click.testing import CliRunner

    from dreambench.cli import main

    r = CliRunner().invoke(main, ["tables", "--help"])
    assert r.exit_code == 0 and "--no-ci" in r.output and "--study" in r.output
    r = CliRunner().invoke(main, ["report", "--help"])
    assert r.exit_code == 0 and "--data" in r.output


def test_inputs_tables_keep_labels_with_other_settings_apart(results: Path):
    """A no-PPL one-input label beside the PPL ones gets its own line instead of overwriting a cell."""
    from dreambench.tables import KEYS, write_tables

    pi_path = results / "scores" / "per_image.csv"
    pi = pd.read_csv(pi_path)
    extra = pi[pi["method"] == "dreambooth-n1"].assign(method="dreambooth-noppl-n1")
    extra["dino"] += 0.05
    pd.concat([pi, extra]).to_csv(pi_path, index=False)
    info = json.loads((results / "images" / "dreambooth-n1" / "method.json").read_text())
    (results / "images" / "dreambooth-noppl-n1").mkdir()
    (results / "images" / "dreambooth-noppl-n1" / "method.json").write_text(
        json.dumps({**info, "ppl": False})
    )
    write_tables(results)
    md = (results / "tables" / f"{KEYS[5]}.md").read_text()
    assert "| Input images | dreambooth: backpack | dreambooth: dog | dreambooth (no PPL): backpack |" in md
    assert "| 1 | 0.200 | 0.400 | 0.250 |" in md
    assert "| 2 | 0.300 | 0.500 | N/A |" in md


def test_per_category_computed_or_read(results: Path):
    from dreambench.tables import build_tables

    cat = build_tables(results).per_category
    row = cat[
        (cat["method"] == "dreambooth") & (cat["category"] == "accessorization") & (cat["metric"] == "dino")
    ]
    assert row["mean"].item() == pytest.approx(0.60 - 0.04)  # prompt 1 only
    pi_path = results / "scores" / "per_image.csv"
    pd.read_csv(pi_path).drop(columns=["category"]).to_csv(pi_path, index=False)
    cat.assign(mean=cat["mean"] + 1).to_csv(results / "scores" / "per_category.csv", index=False)
    again = build_tables(results).per_category
    assert again["mean"].to_numpy() == pytest.approx(cat["mean"].to_numpy() + 1)
