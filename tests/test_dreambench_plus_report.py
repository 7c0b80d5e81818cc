"""A DreamBench++ results folder judged by ``run --judge`` / ``score --judge`` and reported on, all through the
real CLI (tiny profile: random-init weights, so the numbers test the plumbing, not quality; the judge is the
local test server of tests/judge_server.py, whose scores are a hash of the request). The report finds each
subject's one reference photo in the protocol's own data folder without --data, lists the subject's own 9
prompts with its one image each, shows the DreamBench++ table, and each judged image's CP and PF per run
with the judge's raw answers, as judge_items.csv records them."""

from __future__ import annotations

import re
import time
from html import unescape

import pandas as pd
import pytest
import realrun
import test_dreambench_plus_run as plus_run
from PIL import Image

from dreambench.data.dreambench_plus.layout import read_layout

RUNS = 2
METHODS, RUN_ARGS = plus_run.METHODS, plus_run.RUN_ARGS
#: The DreamBench++ folder and its tiny run (module fixtures of tests/test_dreambench_plus_run.py, made again here).
plus, run = plus_run.plus, plus_run.run


@pytest.fixture(scope="module")
def rubric_env(plus):
    from test_judge_requests import RUBRICS

    if not (RUBRICS / "prompts" / "user_prompt_text_full.txt").is_file():
        pytest.skip(f"DreamBench++ rubrics not found at {RUBRICS}")
    return {**plus["env"], "DREAMBENCH_JUDGE_RUBRICS": str(RUBRICS), "OPENAI_API_KEY": "k"}


def _run_args(plus, results):
    return ["--results", results, "run", "--protocol", "dreambench-plus", "--subjects", ",".join(plus["subjects"]),
            *[x for m in METHODS for x in ("--method", m)], *RUN_ARGS]


@pytest.fixture(scope="module")
def judged(run, plus, rubric_env):
    """A copy of the run, resumed with ``--judge`` (every job done: only the judge works) on the test server."""
    from judge_server import ChatServer

    results = realrun.copy_run(run["results"], plus["tmp"] / "run-judged")
    with ChatServer() as srv:
        out = realrun.run_cli([*_run_args(plus, results), "--judge", "--judge-base-url", srv.base_url,
                               "--judge-runs", str(RUNS), "--judge-model", "judge-m"], rubric_env)
    return {"results": results, "out": out, "requests": srv.requests}


def test_run_judge_judges_every_label_after_the_run(judged, plus):
    n_items = 9 * len(plus["subjects"]) * len(METHODS)
    assert len(judged["requests"]) == 2 * RUNS * n_items  # CP and PF of image 0 of each prompt, every run
    assert {r["model"] for r in judged["requests"]} == {"judge-m"}
    assert "0 run now" in judged["out"].stdout and "CP*PF" in judged["out"].stdout
    # the run's tables are written again after the judge: the DreamBench++ table has its CP and PF
    df = pd.read_csv(judged["results"] / "tables" / "table7_dreambench_plus.csv", comment="#")
    for label in METHODS:
        assert set(df[df["method"] == label]["metric"]) >= {"DINO", "CP", "PF", "CP·PF"}


def _rows(page: str) -> dict[int, str]:
    """Prompt index (0-based) -> the HTML of that prompt's row on a method page (ids and numbers shown 1-based)."""
    parts = re.split(r'<div class="grid-row" id="prompt-(\d+)">', page)
    return {int(parts[i]) - 1: parts[i + 1] for i in range(1, len(parts), 2)}


def test_report_shows_references_prompts_images_and_the_judges_answers(judged, plus):
    results, env = judged["results"], plus["env"]
    realrun.run_cli(["report", results], env)  # no --data: the recorded protocol's own data folder
    report = results / "report"
    index = (report / "index.html").read_text()
    assert 'id="table7"' in index and ">CP·PF<" in index
    items = pd.read_csv(results / "judge" / "judge_items.csv", keep_default_na=False)
    subjects = {s.collection_id: s for s in read_layout(plus["data"])}
    for name, s in subjects.items():
        thumbs = sorted((report / "real" / name).glob("*.jpg"))
        assert [p.name for p in thumbs] == ["00.jpg"], name  # the subject's one reference photo
        for label in METHODS:
            page = (report / "pages" / f"{label}__{name}.html").read_text()
            assert f"../real/{name}/00.jpg" in page and "Reference image" in page
            assert f"({s.subject}, {s.category})" in unescape(page)  # the subject noun and its kind
            rows = _rows(page)
            assert sorted(rows) == list(range(9))
            mine = items[(items["label"] == label) & (items["subject"] == name)]
            for i, row in rows.items():
                assert unescape(row).count("<img ") == 1  # one image per prompt
                prompt = s.prompts[i] if label == "dreambooth" else s.prompts[i].replace(s.subject, "<sks>")
                assert f"{i + 1}. {prompt}</div>" in unescape(row)
                calls = mine[mine["prompt_index"] == i].sort_values("run")
                cp = ", ".join(str(int(x)) for x in calls[calls["metric"] == "cp"]["score"])
                pf = ", ".join(str(int(x)) for x in calls[calls["metric"] == "pf"]["score"])
                assert f"CP {cp} · PF {pf}" in unescape(row), (label, name, i)
                for answer in calls["answer"]:
                    assert f"<pre>{answer}</pre>" in unescape(row)
            compare = unescape((report / "compare" / f"{name}.html").read_text())
            assert compare.count(" · CP ") == 9 * len(METHODS)


def test_report_says_when_an_image_changed_after_it_was_judged(judged, plus, tmp_path):
    results = realrun.copy_run(judged["results"], tmp_path / "changed")
    name = plus["subjects"][0]
    manifest = pd.read_csv(results / "images" / "manifest.csv", keep_default_na=False)
    row = manifest[(manifest["method"] == "dreambooth") & (manifest["subject"] == name)
                   & (manifest["prompt_index"] == 3)].iloc[0]
    Image.new("RGB", (64, 64), (200, 10, 10)).save(results / "images" / row["path"])
    realrun.run_cli(["--results", results, "score", "--subjects", plus["data"] / "subjects", "--model-profile", "tiny",
                     "--metric-profile", "dreambench-plus", "-q"], plus["env"])
    realrun.run_cli(["report", results], plus["env"])
    rows = _rows((results / "report" / "pages" / f"dreambooth__{name}.html").read_text())
    assert "image changed since it was judged" in rows[3] and "score " not in rows[3]
    assert "image changed" not in rows[2] and "score " in rows[2]


def test_score_judge_judges_the_folder(judged, plus, rubric_env, tmp_path):
    from judge_server import ChatServer

    results = realrun.copy_run(judged["results"], tmp_path / "scored")
    (results / "judge" / "calls.jsonl").unlink()
    with ChatServer() as srv:
        out = realrun.run_cli(["--results", results, "score", "--subjects", plus["data"] / "subjects",
                               "--model-profile", "tiny", "--metric-profile", "dreambench-plus", "-q", "--judge",
                               "--judge-base-url", srv.base_url, "--judge-runs", "1", "--judge-protocol",
                               "dreambench-plus"], rubric_env)
    assert len(srv.requests) == 2 * 9 * len(plus["subjects"]) * len(METHODS)
    scores = pd.read_csv(results / "judge" / "judge_scores.csv")
    assert set(scores["label"]) == set(METHODS) and "CP*PF" in out.stdout


@pytest.mark.parametrize("extra, message", [
    (["--judge-model", "m"], "--judge-model given without --judge"),
    (["--judge", "--judge-base-url", "ftp://x"], "--judge-base-url must start with http"),
    (["--judge", "--judge-runs", "0"], "--judge-runs"),
    (["--judge", "--judge-rubrics", "/no/such/folder"], "--judge-rubrics: /no/such/folder is not a folder"),
    (["--judge", "--judge-api-key-env", "DREAMBENCH_NO_SUCH_KEY"], "$DREAMBENCH_NO_SUCH_KEY is not set"),
])
def test_bad_judge_options_exit_2_before_any_work(plus, tmp_path, extra, message):
    env = {k: v for k, v in plus["env"].items() if k not in ("OPENAI_BASE_URL", "OPENAI_API_KEY")}
    for args in (_run_args(plus, tmp_path / "r"),
                 ["--results", tmp_path / "s", "score", "--subjects", plus["data"] / "subjects", "--model-profile",
                  "tiny"]):
        start = time.monotonic()
        out = realrun.run_cli([*args, *extra], env, check=False)
        assert out.returncode == 2 and message in out.stderr, (args, out.stderr)
        assert time.monotonic() - start < 30 and not (tmp_path / "r").exists() and not (tmp_path / "s").exists()
