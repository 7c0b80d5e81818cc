"""``dreambench judge`` on a results folder the real tiny CLI run wrote, against a local chat-completions
server (tests/judge_server.py): faults, resume after a kill, a changed image, the aggregation, missing calls
and bad options."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import realrun
from judge_server import ChatServer, default_score
from test_judge_requests import RUBRICS

from dreambench.judge.aggregate import avg_std, summarize
from dreambench.judge.evaluate import JudgeOptions, judge_results
from dreambench.judge.table import judge_rows
from dreambench.layout import ResultsLayout

LABEL = "dreambooth"


@pytest.fixture(scope="module")
def rubric_env():
    if not (RUBRICS / "prompts" / "user_prompt_text_full.txt").is_file():
        pytest.skip(f"DreamBench++ rubrics not found at {RUBRICS}")
    return {"DREAMBENCH_JUDGE_RUBRICS": str(RUBRICS)}


@pytest.fixture
def results(tiny_results, tmp_path, rubric_env, monkeypatch, dataset_dir) -> Path:
    for k, v in rubric_env.items():
        monkeypatch.setenv(k, v)
    monkeypatch.setenv("DREAMBENCH_DATA", str(dataset_dir))
    return realrun.copy_run(tiny_results, tmp_path / "r")


def _records(r: Path) -> dict[str, dict]:
    out = {}
    for line in ResultsLayout(r).judge_calls.read_text().splitlines():
        rec = json.loads(line)
        out[rec["key"]] = rec
    return out


def _opts(srv: ChatServer, **kw) -> JudgeOptions:
    return JudgeOptions(base_url=srv.base_url, **{"concurrency": 4, **kw})


def test_faults_retries_and_missing_calls(results):
    """429 (Retry-After), 500 and a timeout are retried by the openai library; two scores, '**Score:** 3'
    and an out-of-range score are asked again and, three times wrong, make a missing call recorded with its
    raw answers; a no-score answer then a good one is a score at attempt 2."""
    with ChatServer(hang_s=3.0, retry_after="1.5") as srv:
        srv.inject("429", "500", "timeout", "twoscores", "bold", "range", "noscore")
        res = judge_results(results, _opts(srv, concurrency=1, runs=1, labels=[LABEL], timeout_s=0.5))
    assert srv.statuses[:2] == [429, 500]
    assert srv.times[1] - srv.times[0] >= 1.4  # Retry-After honoured (the library's own first wait is <= 0.5 s)
    assert len(srv.requests) == 3 + 3 + 2 + 6  # 3 transport failures retried, 3 + 2 attempts, 6 good calls
    recs = list(_records(results).values())
    bad = [r for r in recs if r["status"] == "unparsed"]
    assert len(bad) == 1 and bad[0]["attempts"] == 3 and bad[0]["score"] is None
    assert bad[0]["answers"] == ["Score: 1\nOn reflection, Score: 3", "Analysis: fine.\n**Score:** 3", "Score: 7"]
    assert bad[0]["problems"] == ["2 scores in the answer", "no score in the answer", "score 7 outside 0-4"]
    second = [r for r in recs if r["attempts"] == 2]
    assert len(second) == 1 and second[0]["status"] == "ok" and len(set(second[0]["seeds"])) == 2
    assert len(recs) == res.distinct == 8  # 4 items x 2 metrics x 1 run
    scores = pd.read_csv(ResultsLayout(results).judge_scores)
    row = scores[(scores.metric == bad[0]["metric"]) & (scores.breakdown == "overall")].iloc[0]
    assert (row.n_judged, row.n_expected) == (3, 4)  # counted, not averaged away
    missing = pd.read_csv(ResultsLayout(results).judge_missing)
    assert set(missing[missing.label == LABEL].status) == {"unparsed"}  # the other labels: pending
    unparsed = missing[missing.status == "unparsed"]
    assert len(unparsed) == 1 and json.loads(unparsed.answers.iloc[0])[1] == "Analysis: fine.\n**Score:** 3"
    others = scores[(scores.label != LABEL) & (scores.breakdown == "overall") & (scores.metric != "cp_pf")]
    assert len(others) and (others.n_judged == 0).all() and (others.n_expected == 4).all()
    for r in recs:
        assert {"model", "endpoint", "seeds", "temperature", "rubric_sha256", "answers", "attempts"} <= set(r)


def test_aggregation_equals_a_hand_computation(results):
    with ChatServer() as srv:
        judge_results(results, _opts(srv, runs=2, labels=[LABEL, "pretrained"]))
        answered = {b["seed"]: default_score(b) for b in srv.requests}  # what the server said, by seed
    items = pd.read_csv(ResultsLayout(results).judge_items)
    scores = pd.read_csv(ResultsLayout(results).judge_scores)
    recs = _records(results)
    assert len(answered) == len(srv.requests) == 32  # 2 labels x 4 items x 2 metrics x 2 runs, seeds distinct
    for label in (LABEL, "pretrained"):
        means = {}
        for metric in ("cp", "pf"):
            per_run = []
            for run in (0, 1):
                sel = items[(items.label == label) & (items.metric == metric) & (items.run == run)]
                s = [answered[recs[k]["seeds"][-1]] for k in sel.key]
                per_run.append(sum(s) / len(s) / 4)
            avg = sum(per_run) / 2
            std = math.sqrt(sum((x - avg) ** 2 for x in per_run) / 1)
            row = scores[(scores.label == label) & (scores.metric == metric) & (scores.breakdown == "overall")].iloc[0]
            assert (row["mean"], row["std"]) == (round(avg, 3), round(std, 3))
            assert (row.n_judged, row.n_expected) == (8, 8)
            means[metric] = round(avg, 3)
        both = scores[(scores.label == label) & (scores.metric == "cp_pf")].iloc[0]
        assert both["mean"] == round(means["cp"] * means["pf"], 3)
    assert scores[scores.metric == "cp"]["std"].max() > 0  # the runs differ: the std is really tested
    rows = judge_rows(results).set_index("label")
    assert rows.loc[LABEL, "cp_animal"] == scores[(scores.label == LABEL) & (scores.group == "animal")
                                                  & (scores.metric == "cp")]["mean"].iloc[0]
    assert rows.loc[LABEL, "cp_n_judged"] == 8 and not math.isnan(rows.loc[LABEL, "cp_pf"])


def test_summarize_by_hand():
    """Two items, three runs, scores chosen by hand: run means 6/2/4, 6/2/4, 4/2/4."""
    scores = {0: (4, 2), 1: (3, 3), 2: (0, 4)}
    rows = pd.DataFrame([
        {"label": "m", "subject": f"s{i}", "prompt_index": 4 * i, "kind": ("animal", "style")[i],
         "prompt_group": ("photorealistic", "style_transfer")[i], "metric": metric, "run": run, "status": "ok",
         "score": scores[run][i] if metric == "cp" else 4}
        for i in (0, 1) for metric in ("cp", "pf") for run in (0, 1, 2)])
    rows.loc[(rows.metric == "pf") & (rows.run == 2) & (rows.subject == "s1"), ["status", "score"]] = ["unparsed", None]
    got = summarize(rows).set_index(["metric", "breakdown", "group"])
    assert got.loc[("cp", "overall", "all"), "mean"] == 0.667  # (0.75 + 0.75 + 0.5) / 3
    assert got.loc[("cp", "overall", "all"), "std"] == 0.144   # sqrt((2 * 0.0833^2 + 0.1667^2) / 2)
    assert got.loc[("cp", "kind", "animal"), "mean"] == round((1 + 0.75 + 0) / 3, 3)
    assert got.loc[("cp", "kind", "style"), "mean"] == round((0.5 + 0.75 + 1) / 3, 3)
    assert got.loc[("pf", "overall", "all"), "mean"] == 1.0
    assert tuple(got.loc[("pf", "overall", "all"), ["n_judged", "n_expected"]]) == (5, 6)
    assert got.loc[("cp_pf", "overall", "all"), "mean"] == 0.667
    assert avg_std([0.5])[0] == 0.5 and math.isnan(avg_std([0.5])[1])  # one run: no std


def _cli(args, env, **kw) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "dreambench", *map(str, args)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)


def test_resume_after_kill_repeats_no_finished_call(results, cli_env, rubric_env, dataset_dir):
    env = {**cli_env, **rubric_env, "DREAMBENCH_DATA": str(dataset_dir), "OPENAI_API_KEY": "k"}
    calls = ResultsLayout(results).judge_calls
    with ChatServer(delay_s=0.15) as srv:
        args = ["judge", results, "--base-url", srv.base_url, "--concurrency", "2", "-q"]
        proc = _cli(args, env)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and (not calls.is_file() or len(calls.read_text().splitlines()) < 6):
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        before = _records(results)
        assert 6 <= len(before) < 100
        n_first = len(srv.requests)
        done = subprocess.run([sys.executable, "-m", "dreambench", *map(str, args)], env=env, capture_output=True,
                              text=True, timeout=120, check=False)
        assert done.returncode == 0, done.stderr[-2000:]
        resumed = srv.requests[n_first:]
    finished_seeds = {s for r in before.values() for s in r["seeds"]}
    assert not finished_seeds & {b["seed"] for b in resumed}  # no finished call asked again
    after = _records(results)
    assert all(after[k] == v for k, v in before.items())
    items = pd.read_csv(ResultsLayout(results).judge_items)
    assert set(items.key) == set(after) and (items.status == "ok").all()
    assert len(resumed) == len(after) - len(before)  # the server answers every request: one per call left


def test_changed_image_is_judged_again(results):
    with ChatServer() as srv:
        judge_results(results, _opts(srv, runs=1, labels=[LABEL]))
        first = len(srv.requests)
        judge_results(results, _opts(srv, runs=1, labels=[LABEL]))
        assert len(srv.requests) == first  # all current: nothing asked
        items = pd.read_csv(ResultsLayout(results).judge_items)
        img = Path(items[items.label == LABEL].image.iloc[0])
        from PIL import Image

        with Image.open(img) as im:
            im = im.convert("RGB")
            im.putpixel((0, 0), tuple(255 - v for v in im.getpixel((0, 0))))
            im.save(img)
        judge_results(results, _opts(srv, runs=1, labels=[LABEL]))
        assert len(srv.requests) == first + 2  # CP and PF of that image, nothing else
    items2 = pd.read_csv(ResultsLayout(results).judge_items)
    changed = items2[items2.image == str(img)]
    assert not set(changed.key) & set(items.key) and (items2[items2.label == LABEL].status == "ok").all()


def test_dry_run_and_bad_options_write_nothing(results, cli_env, rubric_env, dataset_dir):
    env = {**cli_env, **rubric_env, "DREAMBENCH_DATA": str(dataset_dir)}
    env.pop("OPENAI_API_KEY", None)
    env.pop("OPENAI_BASE_URL", None)
    dry = subprocess.run([sys.executable, "-m", "dreambench", "judge", results, "--dry-run"], env=env,
                         capture_output=True, text=True, timeout=120, check=False)
    assert dry.returncode == 0, dry.stderr
    n_items = len({(r.method, r.subject, r.prompt_index) for r in pd.read_csv(
        ResultsLayout(results).images / "manifest.csv").itertuples() if r.prompt_index >= 0})
    assert f"{n_items} items x 2 metrics x 3 runs = {n_items * 6} calls" in dry.stdout
    assert "estimated prompt tokens" in dry.stdout
    bad = [["--concurrency", "0"], ["--runs", "0"], ["--temperature", "3"], ["--base-url", "ftp://x"],
           ["--rubrics", results / "nope"], ["--labels", "no-such-label"], ["--profile", "nope"],
           ["--max-requests", "0"], []]  # the last: no key for OpenAI's endpoint
    for extra in bad:
        t0 = time.monotonic()
        p = subprocess.run([sys.executable, "-m", "dreambench", "judge", results, *map(str, extra)], env=env,
                           capture_output=True, text=True, timeout=120, check=False)
        assert p.returncode == 2, (extra, p.stderr)
        assert time.monotonic() - t0 < 30 and "Traceback" not in p.stderr, (extra, p.stderr)
        assert not ResultsLayout(results).judge.exists(), extra
