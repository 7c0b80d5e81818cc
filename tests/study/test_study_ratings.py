"""DreamBench++-style 0-4 ratings in the human study, from a real tiny run (random-init weights: the
numbers test the plumbing, not quality) judged by `dreambench judge` against the local test server:
`study create-ratings` stores the judge's items, raters rate them through the app (starlette's TestClient,
and one rating in a real headless Chromium), and `study analyze` reports Krippendorff's alpha (interval)
human-human and judge-human and the Pearson r of judge, DINO, CLIP-I and CLIP-T against people, checked
here against a computation from the database, the judge's records and per_image.csv."""

from __future__ import annotations

import hashlib
import math
import os
import re

import numpy as np
import pandas as pd
import pytest
import realrun
from starlette.testclient import TestClient

from dreambench.study import db as sdb
from dreambench.study.agreement import krippendorff_alpha
from dreambench.study.app import create_app

LABELS = ("dreambooth", "textual-inversion")
RATERS = ("r1", "r2", "r3")
JUDGE_RUNS = 2


@pytest.fixture(scope="module")
def judged(tiny_results, dataset_dir, cli_env, tmp_path_factory):
    """A copy of the tiny run, judged (2 runs, the two labels) on the local chat-completions server."""
    from judge_server import ChatServer
    from test_judge_requests import RUBRICS

    if not (RUBRICS / "prompts" / "user_prompt_text_full.txt").is_file():
        pytest.skip(f"DreamBench++ rubrics not found at {RUBRICS}")
    results = realrun.copy_run(tiny_results, tmp_path_factory.mktemp("ratings") / "r")
    env = {**cli_env, "DREAMBENCH_JUDGE_RUBRICS": str(RUBRICS), "OPENAI_API_KEY": "k"}
    with ChatServer() as srv:
        realrun.run_cli(["judge", results, "--base-url", srv.base_url, "--runs", str(JUDGE_RUNS), "--labels",
                         ",".join(LABELS), "--data", dataset_dir, "-q"], env)
    return results


@pytest.fixture(scope="module")
def study(judged, dataset_dir, cli_env):
    db = judged.parent / "study.sqlite"
    out = realrun.run_cli(["study", "create-ratings", "--db", db, "--results", judged, "--labels", ",".join(LABELS),
                           "--prompts", "4", "--data", dataset_dir, "--max-answers", "2"], cli_env)
    assert "stored 16 rating items (8 CP, 8 PF)" in out.stdout  # 4 (subject, prompt) pairs x 2 labels x 2
    conn = sdb.connect(db)
    try:
        tokens = {name: sdb.add_rater(conn, name) for name in RATERS}
    finally:
        conn.close()
    return {"db": db, "tokens": tokens}


def _score(rater: str, page: str) -> int:
    """A rater's deterministic 0-4 score of the item on ``page`` (raters disagree now and then)."""
    item = re.search(r'name="item_id" value="(\d+)"', page).group(1)
    return hashlib.sha256(f"{rater}:{item}".encode()).digest()[0] % 5


def _rate_all(study) -> None:
    """Each rater rates until the app says done (2 ratings an item: r1 and r2 rate all, r3 finds none left)."""
    c = TestClient(create_app(study["db"]), follow_redirects=False)
    for rater in RATERS:
        tok = study["tokens"][rater]
        for _ in range(40):
            page = c.get(f"/r/{tok}").text
            if "Thank you" in page:
                break
            item = re.search(r'name="item_id" value="(\d+)"', page).group(1)
            ftok = re.search(r'name="form_token" value="([0-9a-f]+)"', page).group(1)
            r = c.post(f"/r/{tok}/rate", data={"item_id": item, "score": str(_score(rater, page)),
                                               "form_token": ftok})
            assert r.status_code == 303, r.text
        else:
            raise AssertionError("the app never said done")


def test_rating_pages_show_one_image_with_its_reference_or_prompt(study):
    c = TestClient(create_app(study["db"]), follow_redirects=False)
    tok = study["tokens"]["r1"]
    page = c.get(f"/r/{tok}").text
    assert "Image rating" in page and page.count('name="score"') == 5
    assert not any(label in page for label in LABELS)  # raters never see the method
    keys = re.findall(r"/image/([0-9a-f]{24})", page)
    assert len(keys) in (1, 2) and all(c.get(f"/r/{tok}/image/{k}").status_code == 200 for k in keys)
    item = re.search(r'name="item_id" value="(\d+)"', page).group(1)
    bad = [{"item_id": item, "score": "5", "form_token": "x"},
           {"item_id": item, "score": "3", "form_token": "0" * 32}]
    assert [c.post(f"/r/{tok}/rate", data=d).status_code for d in bad] == [400, 403]


def _expected(study, judged) -> dict:
    """The agreement numbers computed here from the database, the judge's records and per_image.csv."""
    conn = sdb.connect(study["db"])
    try:
        rows = pd.read_sql_query(
            "SELECT r.id, r.item_id, r.score, i.metric, i.label, i.subject, i.prompt_index, g.seed"
            " FROM ratings r JOIN rating_items i ON i.id = r.item_id JOIN images g ON g.id = i.image_id"
            " ORDER BY r.id", conn)
    finally:
        conn.close()
    items = pd.read_csv(judged / "judge" / "judge_items.csv", keep_default_na=False)
    per_image = pd.read_csv(judged / "scores" / "per_image.csv", keep_default_na=False)
    out = {}
    for metric in ("cp", "pf"):
        mine = rows[rows["metric"] == metric].copy()
        mine["g"] = mine.groupby("item_id").cumcount()
        units = sorted(mine["item_id"].unique())
        key = {u: tuple(mine[mine["item_id"] == u][["label", "subject", "prompt_index", "seed"]].iloc[0])
               for u in units}
        h = [[float(mine[(mine["item_id"] == u) & (mine["g"] == g)]["score"].iloc[0])
              if len(mine[(mine["item_id"] == u) & (mine["g"] == g)]) else math.nan for u in units] for g in (0, 1)]
        out[(metric, "alpha", "human-human")] = round(krippendorff_alpha(h), 3)
        judge = []
        for run in range(JUDGE_RUNS):
            j = items[(items["metric"] == metric) & (items["run"] == run)]
            judge.append([float(j[(j["label"] == k[0]) & (j["subject"] == k[1]) & (j["prompt_index"] == k[2])]
                                ["score"].iloc[0]) for k in map(key.get, units)])
        per_run = [round(np.mean([round(krippendorff_alpha([hg, jr]), 3) for hg in h]), 3) for jr in judge]
        out[(metric, "alpha", "judge-human")] = round(float(np.mean(per_run)), 3)
        out[(metric, "pearson", "human-human")] = round(float(np.corrcoef(h[0], h[1])[0, 1]), 4)
        columns = {"cp": ("dino", "clip_i"), "pf": ("clip_t",)}[metric]
        sides = {"judge": judge[0]}
        for col in columns:
            pi = per_image.set_index(["method", "subject", "prompt_index", "seed"])[col].astype(float)
            sides[col] = [pi.loc[key[u]] for u in units]
        for name, x in sides.items():
            rs = [round(float(np.corrcoef(hg, x)[0, 1]), 4) for hg in h]
            out[(metric, "pearson", f"{name}-human")] = round(float(np.mean(rs)), 3)
    return out


def test_analyze_reports_alpha_and_pearson_as_the_reference_computes_them(study, judged, cli_env, tmp_path):
    _rate_all(study)
    conn = sdb.connect(study["db"])
    try:
        counts = [r[0] for r in conn.execute("SELECT COUNT(*) FROM ratings GROUP BY item_id")]
    finally:
        conn.close()
    assert len(counts) == 16 and set(counts) == {2}  # every item rated twice (--max-answers 2)
    conn = sdb.connect(study["db"])
    try:
        admin = sdb.new_admin_token(conn)
    finally:
        conn.close()
    page = TestClient(create_app(study["db"])).get(f"/admin/{admin}").text
    for label in LABELS:  # 4 items of each label and metric, each holding its 2 ratings
        assert f"<tr><td>{label}</td><td>CP</td><td>4</td><td>4</td>\n<td>4</td><td>8</td></tr>" in page
    out = tmp_path / "analysis"
    realrun.run_cli(["study", "analyze", "--db", study["db"], "--out", out, "--scores",
                     judged / "scores" / "per_image.csv", "--judged", judged], cli_env)
    df = pd.read_csv(out / "agreement.csv")
    assert len(pd.read_csv(out / "ratings.csv")) == 32 and "Krippendorff" in (out / "agreement.md").read_text()
    pooled = df[df["label"] == "all"].set_index(["metric", "measure", "pair"])
    expected = _expected(study, judged)
    assert set(pooled.index) == set(expected)
    for k, v in expected.items():
        got = pooled.loc[k]
        assert got["mean"] == pytest.approx(v, abs=1e-9) or (math.isnan(v) and math.isnan(got["mean"])), k
        assert got["n_items"] == 8 and got["n_stale"] == 0
    assert pooled.loc[("cp", "alpha", "judge-human"), "n_runs"] == JUDGE_RUNS
    assert pooled.loc[("pf", "pearson", "judge-human"), "n_runs"] == 1  # pearson.py reads the first run
    assert "random-init weights" in (out / "agreement.md").read_text()  # the tiny run's metric values
    assert set(df["label"]) == {*LABELS, "all"}


def test_analyze_refuses_a_folder_never_judged(study, tiny_results, cli_env, tmp_path):
    out = realrun.run_cli(["study", "analyze", "--db", study["db"], "--out", tmp_path / "a", "--judged",
                           tiny_results], cli_env, check=False)
    assert out.returncode == 2 and "no judge/judge_items.csv" in out.stderr


@pytest.mark.browser
@pytest.mark.skipif(not (os.access("/usr/bin/chromium", os.X_OK) and os.access("/usr/bin/chromedriver", os.X_OK)),
                    reason="needs chromium and chromedriver")
def test_a_rating_in_a_real_browser(judged, dataset_dir, tmp_path):
    import threading
    import time

    import uvicorn
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait
    from test_study_browser import _detached, _free_port

    from dreambench.study.ratings import create_ratings

    db = tmp_path / "s.sqlite"
    create_ratings(db, judged, list(LABELS), 2, 0, dataset_dir, None, 1)
    conn = sdb.connect(db)
    try:
        token = sdb.add_rater(conn, "alice")
    finally:
        conn.close()
    port = _free_port()
    srv = uvicorn.Server(uvicorn.Config(create_app(db), host="127.0.0.1", port=port, log_level="warning",
                                        lifespan="off"))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    while not srv.started:
        assert thread.is_alive()
        time.sleep(0.05)
    driver = _browser(tmp_path)
    try:
        driver.get(f"http://127.0.0.1:{port}/r/{token}")
        WebDriverWait(driver, 10).until(
            lambda d: all(d.execute_script("return arguments[0].complete && arguments[0].naturalWidth > 0", i)
                          for i in d.find_elements(By.TAG_NAME, "img")))
        button = driver.find_element(By.ID, "score-3")
        button.click()
        WebDriverWait(driver, 10).until(_detached(button))
        WebDriverWait(driver, 10).until(lambda d: "Answered so far: 1" in d.page_source)
    finally:
        driver.quit()
        srv.should_exit = True
        thread.join(timeout=10)
    conn = sdb.connect(db)
    try:
        assert [tuple(r) for r in conn.execute("SELECT score FROM ratings")] == [(3,)]
    finally:
        conn.close()


def _browser(tmp_path):
    pytest.importorskip("selenium")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = "/usr/bin/chromium"
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--disable-background-networking", "--no-first-run", "--window-size=1280,1000",
                f"--user-data-dir={tmp_path / 'chrome-profile'}"):
        opts.add_argument(arg)
    driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=opts)
    driver.set_page_load_timeout(30)
    return driver
