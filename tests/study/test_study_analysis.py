"""Study analysis: majority vote and Table 2 on a hand-made database; the metric-vs-human correlation
recovers a correlation planted in simulated raters; question sampling; the CLI end to end."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from scipy import stats
from study_fixtures import METHOD_A, METHOD_B, make_dataset, make_results

from dreambench.manifest import read_manifest
from dreambench.study import db as sdb
from dreambench.study.analysis import (
    IncompleteStudyWarning,
    correlation_points,
    export_answers,
    majority,
    majority_votes,
    metric_correlation,
    preference_markdown,
    preference_table,
)
from dreambench.study.questions import INSTRUCTIONS, create_study, sample_questions
from dreambench.tables.compute import table2


def test_majority_rule():
    assert majority(["a", "a", "b"]) == "a"
    assert majority(["b", "b", "undecided"]) == "b"
    assert majority(["a", "b", "undecided"]) == "undecided"  # three-way tie
    assert majority(["a", "undecided", "undecided"]) == "undecided"  # "cannot determine" wins
    assert majority(["a", "a", "b", "b"]) == "undecided"  # tie
    assert majority(["b"]) == "b"
    assert majority([]) == "undecided"


def _bare_db(path, questions, answers):
    """A database from ``questions`` = [(qtype, method_a, method_b, subject, prompt_index, seed_a, seed_b)]
    and ``answers`` = {rater: [(question index, choice)]}; choices are stored directly (choice a|b|undecided)."""
    conn = sdb.connect(path, create=True)
    conn.execute("PRAGMA synchronous = OFF")
    with sdb.transaction(conn):
        qids = []
        for qt, ma, mb, s, p, sa, sb in questions:
            ia = sdb.add_image(conn, "/nowhere", f"{ma}/{s}/{p:02d}_{sa}.png", "generated", s, ma, p, sa)
            ib = sdb.add_image(conn, "/nowhere", f"{mb}/{s}/{p:02d}_{sb}.png", "generated", s, mb, p, sb)
            qids.append(sdb.add_question(conn, qtype=qt, subject=s, prompt_index=p, prompt=f"a sks {s}",
                                         reference_text=f"a {s}", method_a=ma, method_b=mb, image_a=ia,
                                         image_b=ib, a_on_left=True, reference_images=[]))
        for name, items in answers.items():
            rid = conn.execute("INSERT INTO raters (name, token_hash, created_at) VALUES (?, ?, '')",
                               (name, sdb.hash_token(name))).lastrowid
            shown = {"a": "left", "b": "right", "undecided": "undecided"}
            conn.executemany("INSERT INTO answers (rater_id, question_id, choice, shown, created_at)"
                             " VALUES (?, ?, ?, ?, '')", [(rid, qids[i], ch, shown[ch]) for i, ch in items])
    conn.close()
    return qids


def test_table2_hand_computed(tmp_path):
    db_path = tmp_path / "s.sqlite"
    q = [("subject", "db", "ti", "dog", i, 0, 0) for i in range(5)] + \
        [("prompt", "db", "ti", "dog", i, 0, 0) for i in range(4)] + [("subject", "db", "sd", "cat", 0, 0, 0)]
    # subject db-vs-ti majorities: q0 a (a,a,b), q1 a (a,a,a), q2 b (b,b,undecided), q3 undecided (a,b,undecided),
    # q4 undecided (a,undecided,undecided) -> 40% a, 20% b, 40% undecided over 5 questions
    # prompt: q5 b (b,b,a), q6 b (b), q7 undecided (a,b), q8 unanswered -> 0 / 66.7 / 33.3 over 3
    # subject db-vs-sd: q9 a (a)
    answers = {
        "r1": [(0, "a"), (1, "a"), (2, "b"), (3, "a"), (4, "a"), (5, "b"), (6, "b"), (7, "a"), (9, "a")],
        "r2": [(0, "a"), (1, "a"), (2, "b"), (3, "b"), (4, "undecided"), (5, "b"), (7, "b")],
        "r3": [(0, "b"), (1, "a"), (2, "undecided"), (3, "undecided"), (4, "undecided"), (5, "a")],
    }
    _bare_db(db_path, q, answers)
    mv = majority_votes(db_path)
    assert list(mv["majority"]) == ["a", "a", "b", "undecided", "undecided", "b", "b", "undecided", "a"]
    assert list(mv["n_answers"]) == [3, 3, 3, 3, 3, 3, 1, 2, 1]
    with pytest.warns(IncompleteStudyWarning, match="prompt db vs ti: 1 of 4 questions"):
        t = preference_table(db_path)
    assert list(t.columns) == ["question_type", "method_a", "method_b", "pct_a", "pct_b", "pct_undecided",
                               "n_questions", "n_planned", "n_short"]
    assert list(zip(t["question_type"], t["method_a"], t["method_b"])) == [
        ("subject", "db", "sd"), ("subject", "db", "ti"), ("prompt", "db", "ti")]
    expect = [[100, 0, 0, 1], [40, 20, 40, 5], [0, 200 / 3, 100 / 3, 3]]
    np.testing.assert_allclose(t[["pct_a", "pct_b", "pct_undecided", "n_questions"]].to_numpy(float), expect)
    # q8 was never answered: the prompt row is incomplete; Table 2 shows its interval n/a (both bounds)
    assert t["n_planned"].tolist() == [1, 5, 4] and t["n_short"].tolist() == [0, 0, 1]
    t2 = table2(t)
    assert t2.loc[2, ["pct_a_lo", "pct_a_hi", "pct_b_lo", "pct_b_hi"]].isna().all()
    # one question answered "a": Wilson [20.7, 100], not "100 +- 0"
    assert t2.loc[0, "pct_a_lo"] == pytest.approx(20.65, abs=0.01) and t2.loc[0, "pct_a_hi"] == 100.0
    assert "n/a: 1 of 4 questions short" in preference_markdown(t)
    ex = export_answers(db_path, tmp_path / "answers.csv")
    assert len(ex) == 22 and len(pd.read_csv(tmp_path / "answers.csv")) == 22
    assert ex.groupby("choice")["preference"].first().to_dict() == {"a": 1, "b": -1, "undecided": 0}


def _sigmoid(z):
    return 1 / (1 + np.exp(-z))


K, SD_DINO, NOISE_CLIP_I, P_UNDECIDED = 12.0, 0.1, 0.15, 0.2


def _simulate(rng, n_questions, n_raters):
    """Metric values of the two images of each question and simulated answers (a|b|undecided): a rater is
    undecided with probability P_UNDECIDED, else prefers A with probability sigmoid(K (dino_A - dino_B)).
    CLIP-I is DINO plus independent noise, so it correlates less with the answers."""
    dino = rng.normal(0.5, SD_DINO, size=(n_questions, 2))
    clip_i = dino + rng.normal(0, NOISE_CLIP_I, size=dino.shape)
    p_a = _sigmoid(K * (dino[:, 0] - dino[:, 1]))
    u = rng.random((n_questions, n_raters))
    v = rng.random((n_questions, n_raters))
    choice = np.where(u < P_UNDECIDED, "undecided", np.where(v < p_a[:, None], "a", "b"))
    return dino, clip_i, choice


def _population_r(metric: str) -> float:
    """The planted per-answer Pearson correlation, by simulation with many questions (one answer each)."""
    dino, clip_i, choice = _simulate(np.random.default_rng(12345), 400_000, 1)
    m = dino if metric == "dino" else clip_i
    pref = np.select([choice[:, 0] == "a", choice[:, 0] == "b"], [1.0, -1.0], 0.0)
    return float(np.corrcoef(m[:, 0] - m[:, 1], pref)[0, 1])


def test_metric_correlation_recovers_planted_r(tmp_path):
    n_q, n_r = 300, 3
    dino, clip_i, choice = _simulate(np.random.default_rng(7), n_q, n_r)
    questions = [("subject", "dreambooth", "textual-inversion", f"s{i % 30}", i, 0, 1) for i in range(n_q)]
    # prompt questions reuse the same images with clip_t := dino (same planted relation)
    questions += [("prompt", "dreambooth", "textual-inversion", f"s{i % 30}", i, 0, 1) for i in range(n_q)]
    answers = {f"r{j}": [(i, choice[i, j]) for i in range(n_q)] + [(n_q + i, choice[i, j]) for i in range(n_q)]
               for j in range(n_r)}
    db_path = tmp_path / "s.sqlite"
    _bare_db(db_path, questions, answers)
    rows = []
    for i in range(n_q):
        for side, meth, seed in ((0, "dreambooth", 0), (1, "textual-inversion", 1)):
            rows.append({"method": meth, "subject": f"s{i % 30}", "prompt_index": i, "prompt": "x", "seed": seed,
                         "path": f"{meth}/{i}.png", "dino": dino[i, side], "clip_i": clip_i[i, side],
                         "clip_t": dino[i, side], "weights": "pretrained", "metric_profile": "paper"})
    rows.append({"method": "dreambooth", "subject": "s0", "prompt_index": -1, "prompt": "a dog", "seed": 0,
                 "path": "pres.png", "dino": 99.0, "clip_i": 99.0, "clip_t": 99.0, "weights": "pretrained",
                 "metric_profile": "paper"})  # a PRES row: never matched to a question
    scores = tmp_path / "per_image.csv"
    pd.DataFrame(rows).to_csv(scores, index=False)

    res = metric_correlation(db_path, scores).set_index(["question_type", "metric"])
    assert set(res.index) == {("subject", "dino"), ("subject", "clip_i"), ("prompt", "clip_t")}
    pts = correlation_points(db_path, scores)
    for (qtype, metric), row in res.iterrows():
        sub = pts[pts["question_type"] == qtype]
        direct_r, direct_p = stats.pearsonr(sub[f"{metric}_diff"], sub["preference"])
        direct_rho, _ = stats.spearmanr(sub[f"{metric}_diff"], sub["preference"])
        assert row["n_points"] == n_q * n_r and row["n_questions"] == n_q and row["n_unmatched"] == 0
        assert row["pearson_r"] == pytest.approx(direct_r, abs=1e-12)
        assert row["pearson_p"] == pytest.approx(direct_p, rel=1e-9)
        assert row["spearman_rho"] == pytest.approx(direct_rho, abs=1e-12)
        assert row["pearson_lo"] < row["pearson_r"] < row["pearson_hi"]
        assert row["spearman_lo"] < row["spearman_rho"] < row["spearman_hi"]
        planted = _population_r("clip_i" if metric == "clip_i" else "dino")
        assert row["pearson_lo"] <= planted <= row["pearson_hi"], (metric, planted, row["pearson_lo"], row["pearson_hi"])
    r_dino, r_clip = _population_r("dino"), _population_r("clip_i")
    assert r_dino > r_clip + 0.1  # the planted ordering, recovered by the point estimates
    assert res.loc[("subject", "dino"), "pearson_r"] > res.loc[("subject", "clip_i"), "pearson_r"]
    assert res.loc[("subject", "dino"), "pearson_p"] < 1e-6

    # per-question unit: one point per question, y its majority; same direct check
    resq = metric_correlation(db_path, scores, unit="question").set_index(["question_type", "metric"])
    mv = majority_votes(db_path)
    mv = mv[mv["question_type"] == "subject"].sort_values("question_id")
    x = dino[:, 0] - dino[:, 1]
    assert resq.loc[("subject", "dino"), "n_points"] == n_q
    assert resq.loc[("subject", "dino"), "pearson_r"] == pytest.approx(
        stats.pearsonr(x, mv["preference"].to_numpy(float)).statistic, abs=1e-12)
    # seeded: the same call gives the same interval
    again = metric_correlation(db_path, scores).set_index(["question_type", "metric"])
    assert again.loc[("subject", "dino"), "pearson_lo"] == res.loc[("subject", "dino"), "pearson_lo"]


def test_unmatched_questions_are_counted(tmp_path):
    db_path = tmp_path / "s.sqlite"
    q = [("subject", "m1", "m2", "dog", i, 0, 0) for i in range(4)]
    _bare_db(db_path, q, {"r": [(0, "a"), (1, "b"), (2, "a"), (3, "undecided")]})
    rows = [{"method": m, "subject": "dog", "prompt_index": i, "prompt": "", "seed": 0, "path": "",
             "dino": v, "clip_i": v, "clip_t": v}
            for i, (va, vb) in enumerate([(0.9, 0.1), (0.2, 0.8), (0.7, 0.5)]) for m, v in (("m1", va), ("m2", vb))]
    pd.DataFrame(rows).to_csv(tmp_path / "p.csv", index=False)
    res = metric_correlation(db_path, tmp_path / "p.csv", n_resamples=50).set_index("metric")
    assert res.loc["dino", "n_points"] == 3 and res.loc["dino", "n_unmatched"] == 1
    assert res.loc["dino", "pearson_r"] == pytest.approx(stats.pearsonr([0.8, -0.6, 0.2], [1, -1, 1]).statistic)


def test_sample_questions_is_seeded_and_balanced(tmp_path):
    data = make_dataset(tmp_path)
    results = make_results(tmp_path)
    man = read_manifest(results / "images")
    q1 = sample_questions(man, METHOD_A, METHOD_B, 6, seed=3, data_dir=data)
    q2 = sample_questions(man, METHOD_A, METHOD_B, 6, seed=3, data_dir=data)
    q3 = sample_questions(man, METHOD_A, METHOD_B, 6, seed=4, data_dir=data)
    assert q1 == q2 and q1 != q3
    assert [q.qtype for q in q1] == ["subject"] * 6 + ["prompt"] * 6
    for qs in (q1[:6], q1[6:]):
        # 2 subjects x 3 prompts: 6 questions use each (subject, prompt) exactly once
        assert sorted((q.subject, q.prompt_index) for q in qs) == sorted(
            (s, p) for s in ("dog", "backpack") for p in range(3))
    for q in q1:
        assert q.a.method == METHOD_A and q.b.method == METHOD_B and q.prompt_index >= 0
        assert (q.a.subject, q.a.prompt_index) == (q.b.subject, q.b.prompt_index) == (q.subject, q.prompt_index)
        assert q.reference_images == [f"{q.subject}/{n:02d}.jpg" for n in range(3)]
        assert "sks" in q.prompt and "sks" not in q.reference_text
    assert {q.a_on_left for q in q1} == {True, False}
    with pytest.raises(Exception, match="no images"):
        sample_questions(man, METHOD_A, "nope", 2)


def test_cli_create_raters_export_analyze(tmp_path):
    from dreambench.cli import main

    data = make_dataset(tmp_path)
    results = make_results(tmp_path)
    db_path = tmp_path / "study.sqlite"
    run = CliRunner().invoke
    r = run(main, ["--results", str(results), "study", "create", "--method-a", METHOD_A, "--method-b", METHOD_B,
                   "--questions", "4", "--seed", "1", "--db", str(db_path), "--data", str(data), "--raters", "2"])
    assert r.exit_code == 0, r.output
    assert "stored 8 questions" in r.output and r.output.count("/r/") == 2
    again = run(main, ["study", "create", "--results", str(results), "--method-a", METHOD_A, "--method-b",
                       METHOD_B, "--db", str(db_path), "--data", str(data)])
    assert again.exit_code == 2 and "already holds 8 questions" in again.output
    bad = run(main, ["study", "create", "--results", str(results), "--method-a", METHOD_A, "--method-b", "nope",
                     "--db", str(tmp_path / "x.sqlite"), "--data", str(data)])
    assert bad.exit_code == 2 and "'nope' has no images" in bad.output
    r = run(main, ["study", "raters", "add", "--db", str(db_path), "carol", "--count", "1"])
    assert r.exit_code == 0 and "carol: http://127.0.0.1:8000/r/" in r.output and "rater-03" in r.output
    token = r.output.split("carol: http://127.0.0.1:8000/r/")[1].split()[0]
    conn = sdb.connect(db_path)
    rater = sdb.rater_by_token(conn, token)
    assert rater["name"] == "carol"
    while (qid := sdb.next_question_id(conn, rater["id"])) is not None:
        sdb.mark_served(conn, rater["id"], qid)  # what the server records when it shows the question
        sdb.record_answer(conn, rater["id"], qid, "left" if qid % 2 else "right")
    conn.close()
    r = run(main, ["study", "export", "--db", str(db_path), "--out", str(tmp_path / "a.csv")])
    assert r.exit_code == 0 and "8 answers" in r.output
    r = run(main, ["study", "analyze", "--db", str(db_path), "--out", str(tmp_path / "out")])
    assert r.exit_code == 0, r.output
    table = pd.read_csv(tmp_path / "out" / "preference.csv")
    assert table["n_questions"].tolist() == [4, 4]
    assert (table[["pct_a", "pct_b", "pct_undecided"]].sum(axis=1) == 100).all()
    md = (tmp_path / "out" / "preference.md").read_text()
    assert INSTRUCTIONS["subject"] in md and METHOD_A in md
    r = run(main, ["study", "raters", "list", "--db", str(db_path)])
    assert "carol\t8 answers" in r.output and "rater-01\t0 answers" in r.output


def test_create_refuses_missing_images_and_reference_folders(tmp_path):
    data = make_dataset(tmp_path)
    results = make_results(tmp_path)
    with pytest.raises(Exception, match="reference images of subject"):
        create_study(tmp_path / "s.sqlite", results, METHOD_A, METHOD_B, 2, data_dir=tmp_path / "empty")
    for p in (results / "images" / METHOD_B).rglob("*.png"):
        p.unlink()
    with pytest.raises(Exception, match="image listed in the manifest is missing"):
        create_study(tmp_path / "s.sqlite", results, METHOD_A, METHOD_B, 2, data_dir=data)


def test_bootstrap_replicates_match_naive_resampling():
    """The vectorized cluster bootstrap equals resampling questions and calling scipy on each replicate."""
    from dreambench.study.analysis import bootstrap_replicates

    rng = np.random.default_rng(0)
    x = rng.random(60).round(1)  # ties on both sides
    y = np.sign(rng.random(60) - 0.4)
    cluster = rng.integers(0, 25, 60) * 7
    rs, rhos = bootstrap_replicates(x, y, cluster, n_resamples=100, seed=3)
    _, cl = np.unique(cluster, return_inverse=True)
    picks = np.random.default_rng(3).integers(0, cl.max() + 1, size=(100, cl.max() + 1))
    for k in range(100):
        idx = np.concatenate([np.nonzero(cl == j)[0] for j in picks[k]])
        assert rs[k] == pytest.approx(stats.pearsonr(x[idx], y[idx]).statistic, abs=1e-9)
        assert rhos[k] == pytest.approx(stats.spearmanr(x[idx], y[idx]).statistic, abs=1e-9)
