"""Scores you can trust (issue 10 parts 2, 3, 6 and issue 15 part 4), on results the real CLI wrote.

- content-addressed reuse: after swapping a PNG, editing prompt_plain, adding or removing a real photo or
  changing the metric profile, re-running the same command re-scores exactly what changed and gives the
  numbers that scoring a fresh copy of the folder gives;
- per-subject scoring: a failing score part leaves the other subjects' scores and tables, which name it;
- provenance columns in every score file and in the tables' CSV headers;
- a no-op resume does no model work.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import pandas as pd
import pytest
import realrun
from PIL import Image

from dreambench.metrics.scoring import PROVENANCE

pytestmark = pytest.mark.slow

NUMBERS = ["dino", "clip_i", "clip_t", "max_dino_real"]
SCORE_FILES = ["per_image", "div", "real", "per_subject", "aggregates", "per_category", "paired"]


def _data_copy(dataset_dir: Path, dst: Path) -> Path:
    """A private dataset folder with the tiny run's subjects (tests add and remove photos in it)."""
    for s in realrun.TINY_SUBJECTS:
        shutil.copytree(dataset_dir / s, dst / s)
    return dst


def _scores(results: Path, name: str = "scores") -> dict[str, pd.DataFrame]:
    d = results / name
    return {f: pd.read_csv(d / f"{f}.csv", keep_default_na=False) for f in ("per_image", "div", "real")}


def _assert_same_numbers(a: dict[str, pd.DataFrame], b: dict[str, pd.DataFrame]) -> None:
    keys = {"per_image": ["path"], "div": ["method", "subject", "prompt_index"], "real": ["subject"]}
    nums = {"per_image": NUMBERS, "div": ["div"], "real": ["dino", "clip_i", "copy_reference"]}
    exact = {"per_image": ["clip_t_text", "score_key"], "div": ["n_images", "div_key"],
             "real": ["n_images", "real_key"]}
    for name, key in keys.items():
        x = a[name].sort_values(key).reset_index(drop=True)
        y = b[name].sort_values(key).reset_index(drop=True)
        assert x[key + exact[name]].equals(y[key + exact[name]]), name
        # Same inputs, same numbers; only float rounding of another batch composition may differ (a
        # stale value differs by orders of magnitude more).
        pd.testing.assert_frame_equal(x[nums[name]], y[nums[name]], check_exact=False, rtol=0, atol=1e-6,
                                      obj=name)


def _fresh(results: Path, dst: Path) -> Path:
    """A copy of a results folder with no scores and no caches: everything is scored from scratch."""
    realrun.copy_run(results, dst)
    shutil.rmtree(dst / "scores")
    shutil.rmtree(dst / "cache")
    return dst


def _attempts(results: Path) -> dict[tuple[str, str, str], int]:
    return {(j["kind"], j["label"], j["subject"]): j["attempts"] for j in realrun.job_rows(results).values()}


def _ran_since(results: Path, before: dict[str, dict]) -> set[tuple[str, str, str]]:
    """(kind, label, subject) of the jobs that ran after ``before`` (job rows by id): new ids (changed
    inputs make new jobs) and old ids run again."""
    return {(j["kind"], j["label"], j["subject"]) for i, j in realrun.job_rows(results).items()
            if i not in before or j["attempts"] != before[i]["attempts"]}


def test_run_rescores_exactly_what_changed(tiny_results, dataset_dir, cli_env, tmp_path):
    res = realrun.copy_run(tiny_results, tmp_path / "r")
    data = _data_copy(dataset_dir, tmp_path / "data")
    realrun.tiny_run(res, data, cli_env)  # same inputs, another --data folder: nothing to redo
    before = _attempts(res)
    assert before == _attempts(tiny_results)
    rows_before = realrun.job_rows(res)
    old = _scores(res)
    # Swap a generated PNG, edit a CLIP-T text, remove a real photo of backpack.
    images = res / "images"
    shutil.copyfile(images / "dreambooth/dog/01_0.png", images / "dreambooth/dog/00_0.png")
    part = images / "pretrained" / "dog" / "manifest.csv"
    man = pd.read_csv(part, keep_default_na=False)
    man.loc[0, "prompt_plain"] = "a dog on the moon"
    man.to_csv(part, index=False)
    removed = min((data / "backpack").iterdir())
    removed.unlink()
    realrun.tiny_run(res, data, cli_env)
    rerun = _ran_since(res, rows_before)
    changed = {("score", "dreambooth", "dog"), ("score", "pretrained", "dog")} | {
        ("score", label, "backpack") for label in realrun.TINY_METHODS}
    # A removed photo also re-makes the backpack subject jobs of every method that reads photos (issue
    # 20.1: training and generation are content-addressed); pretrained reads none.
    remade = {("subject", label, "backpack") for label in realrun.TINY_METHODS if label != "pretrained"}
    assert rerun == changed | remade | {("score_merge", "", ""), ("tables", "", "")}
    new = _scores(res)
    pi_old, pi_new = (x["per_image"].set_index("path") for x in (old, new))
    moved = pi_old.index[(pi_old[NUMBERS] != pi_new.loc[pi_old.index, NUMBERS]).any(axis=1)]
    assert set(moved) == {"dreambooth/dog/00_0.png", man.loc[0, "path"]} | {
        p for p in pi_old.index if "/backpack/" in p}
    assert pi_new.loc[man.loc[0, "path"], "clip_t_text"] == "a dog on the moon"
    real = new["real"].set_index("subject")
    assert real.loc["backpack", "n_images"] == old["real"].set_index("subject").loc["backpack", "n_images"] - 1
    # The numbers equal scoring a fresh copy of the folder (no scores, no caches).
    fresh = _fresh(res, tmp_path / "fresh")
    realrun.tiny_run(fresh, data, cli_env)
    _assert_same_numbers(new, _scores(fresh))
    agg = pd.read_csv(res / "scores" / "aggregates.csv")
    pd.testing.assert_frame_equal(agg, pd.read_csv(fresh / "scores" / "aggregates.csv"))


def test_score_command_rescores_added_photo_and_new_profile(tiny_results, dataset_dir, cli_env, tmp_path):
    res = realrun.copy_run(tiny_results, tmp_path / "r")
    data = _data_copy(dataset_dir, tmp_path / "data")
    base = ["--results", res, "score", "--subjects", data, "--model-profile", "tiny", "-q"]
    # Add a real photo of dog (a copy of a backpack photo under a new name).
    shutil.copyfile(min((data / "backpack").iterdir()), data / "dog" / "zz_added.jpg")
    realrun.run_cli(base, cli_env)
    meta = json.loads((res / "scores" / "score_meta.json").read_text())
    n_dog = int((pd.read_csv(res / "scores" / "per_image.csv")["subject"] == "dog").sum())
    assert meta["stats"]["scored_now"] == n_dog and meta["stats"]["real_now"] == 1
    fresh = ["score", "--images", res / "images", "--subjects", data, "--model-profile", "tiny", "-q",
             "--cache-dir", tmp_path / "fresh-cache"]
    realrun.run_cli([*fresh, "--out", tmp_path / "fresh"], cli_env)
    _assert_same_numbers(_scores(res), _scores(tmp_path, "fresh"))
    assert pd.read_csv(res / "scores" / "real.csv").set_index("subject").loc["dog", "n_images"] == \
        len(list((data / "dog").iterdir()))
    # Another metric profile: every number is recomputed, equal to a fresh x100 score.
    realrun.run_cli([*base, "--profile", "x100"], cli_env)
    meta = json.loads((res / "scores" / "score_meta.json").read_text())
    assert meta["stats"]["reused"] == 0 and meta["metric_profile"]["name"] == "x100"
    realrun.run_cli([*fresh, "--profile", "x100", "--out", tmp_path / "fresh100"], cli_env)
    _assert_same_numbers(_scores(res), _scores(tmp_path, "fresh100"))


def test_failing_score_part_does_not_block_the_others(tiny_results, dataset_dir, cli_env, tmp_path):
    res = realrun.copy_run(tiny_results, tmp_path / "r")
    part = res / "scores" / "parts" / "dreambooth" / "backpack"
    shutil.rmtree(part)
    part.write_text("not a folder")  # the part's score job cannot write: it fails, the others stand
    proc = realrun.run_cli(["--results", res, "run", *[a for m in realrun.TINY_METHODS for a in ("--method", m)],
                            "--subjects", ",".join(realrun.TINY_SUBJECTS), "--data", dataset_dir,
                            *realrun.TINY_ARGS], cli_env, check=False)
    assert proc.returncode != 0
    jobs = {(j["kind"], j["label"], j["subject"]): j for j in realrun.job_rows(res).values()}
    assert jobs[("score", "dreambooth", "backpack")]["status"] == "failed"
    assert jobs[("score_merge", "", "")]["status"] == "done" and jobs[("tables", "", "")]["status"] == "done"
    pi = pd.read_csv(res / "scores" / "per_image.csv")
    got = set(zip(pi["method"], pi["subject"]))
    want = {(m, s) for m in realrun.TINY_METHODS for s in realrun.TINY_SUBJECTS} - {("dreambooth", "backpack")}
    assert got == want
    missing = pd.read_csv(res / "scores" / "missing.csv")
    assert missing[["method", "subject"]].values.tolist() == [["dreambooth", "backpack"]]
    table1 = (res / "tables" / "table1_fidelity.csv").read_text()
    assert table1.count("missing") == 2  # one footnote naming the label and the file (no provenance line)
    assert "missing subjects (planned, no scores, not counted in n; see scores/missing.csv): dreambooth: backpack" \
        in table1
    agg = pd.read_csv(res / "scores" / "aggregates.csv").set_index(["method", "metric"])
    assert agg.loc[("dreambooth", "dino"), "n_subjects"] == 1 and agg.loc[("pretrained", "dino"), "n_subjects"] == 2


def test_every_score_and_table_file_records_provenance(tiny_results):
    scores = tiny_results / "scores"
    for name in SCORE_FILES:
        df = pd.read_csv(scores / f"{name}.csv", keep_default_na=False)
        assert set(PROVENANCE) <= set(df.columns), name
        assert len(df) and (df[PROVENANCE].astype(str) != "").all().all(), name
        assert (df["dreambench_version"].astype(str) == __import__("dreambench").__version__).all()
    pi = pd.read_csv(scores / "per_image.csv", keep_default_na=False)
    gen = pi[pi["method"] != "real"]
    assert (gen["sd_source"] == "config:tiny").all() and gen["sd_digest"].nunique() == 1
    assert (pi.loc[pi["method"] == "real", "sd_source"] == "none").all()
    info = json.loads((tiny_results / "images" / "dreambooth" / "method.json").read_text())
    assert (info["sd_source"], info["sd_digest"]) == ("config:tiny", gen["sd_digest"].iloc[0])
    header = [ln for ln in (tiny_results / "tables" / "table1_fidelity.csv").read_text().splitlines()
              if ln.startswith("#")]
    text = "\n".join(header)
    assert f"stable diffusion: config:tiny (digest {info['sd_digest']})" in text and "metric profile: paper" in text
    assert "dreambench " in text and "weights: random-init" in text


def test_noop_resume_does_no_model_work(tiny_results, dataset_dir, cli_env, tmp_path):
    res = realrun.copy_run(tiny_results, tmp_path / "r")
    meta_before = (res / "scores" / "score_meta.json").read_bytes()
    t0 = time.perf_counter()
    realrun.tiny_run(res, dataset_dir, cli_env)
    run_s = time.perf_counter() - t0
    summary = json.loads((res / "summary.json").read_text())
    assert summary["done"] == 0 and summary["skipped_already_done"] == summary["jobs"]
    assert (res / "scores" / "score_meta.json").read_bytes() == meta_before  # nothing was re-scored
    proc = realrun.run_cli(["--results", res, "score", "--subjects", dataset_dir, "--model-profile", "tiny"],
                           cli_env)
    assert "nothing to score" in proc.stderr and "no model built" in proc.stderr
    # Every score is current, so `score` answered from the content keys and rewrote nothing (that it
    # imports no torch either is checked in test_light_imports.py).
    assert (res / "scores" / "score_meta.json").read_bytes() == meta_before
    assert "(0 now, " in proc.stdout, proc.stdout
    assert run_s < 120  # generous: the point is no model work (3 s on an idle 2-core machine)


def test_run_with_a_cache_elsewhere_merges_every_part(tmp_path, dataset_dir, cli_env):
    """$DREAMBENCH_CACHE set (the tokenizer and weight-digest cache of a user): the run's score jobs still
    keep their tower digests in <results>/cache, and the merge checks the parts against that same cache
    (it read $DREAMBENCH_CACHE and left every part out as missing)."""
    res = tmp_path / "r"
    env = {**cli_env, "DREAMBENCH_CACHE": str(tmp_path / "user-cache")}
    realrun.run_cli(["--results", res, "run", "--method", "real", "--subjects", "dog,backpack", "--data",
                     dataset_dir, "--profile", "tiny", "--prompts", "1", "--images-per-prompt", "1"], env)
    per_image = pd.read_csv(res / "scores" / "per_image.csv")
    assert set(per_image["subject"]) == {"dog", "backpack"}
    assert not (res / "scores" / "missing.csv").is_file() or pd.read_csv(res / "scores" / "missing.csv").empty


def test_score_names_a_subject_whose_photos_are_unusable_and_every_table_marks_it(tiny_results, dataset_dir,
                                                                                   cli_env, tmp_path):
    """Issue 20.3/20.4 probe: `dreambench score` of a finished run against a dataset copy where dog/ holds a
    10x10 photo. The subject is left out of every label (the photo never enters a real set), named once per
    label with the file and the cause, exit 1; `tables` then counts one subject fewer than the fresh run's
    and names dog under Table 1 (it dropped the row's subject silently before)."""
    data = tmp_path / "data"
    for s in realrun.TINY_SUBJECTS:
        shutil.copytree(dataset_dir / s, data / s)
    Image.new("RGB", (10, 10)).save(data / "dog" / "99_small.png")
    res = realrun.copy_run(tiny_results, tmp_path / "r")
    proc = realrun.run_cli(["score", "--results", res, "--subjects", data, "--model-profile", "tiny", "-q"], cli_env,
                           check=False)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
    labels = sorted(set(pd.read_csv(tiny_results / "scores" / "per_image.csv")["method"]))
    bad = f"{data / 'dog' / '99_small.png'}: 10x10 px, short side below 256 px"
    for label in labels:
        named = [ln for ln in proc.stderr.splitlines() if ln.startswith(f"error: {label}/dog")]
        assert len(named) == 2 and all(bad in ln for ln in named), (label, proc.stderr[-3000:])  # its images; no scores
        assert any(ln.startswith(f"error: {label}/dog: no scores (") for ln in named), named
    missing = pd.read_csv(res / "scores" / "missing.csv")
    assert sorted(missing["method"]) == labels and set(missing["subject"]) == {"dog"}
    assert "dog" not in set(pd.read_csv(res / "scores" / "per_image.csv")["subject"])
    realrun.run_cli(["tables", res, "--out", tmp_path / "t"], cli_env)
    fresh = pd.read_csv(tiny_results / "tables" / "table1_fidelity.csv", comment="#").set_index("method")
    now = pd.read_csv(tmp_path / "t" / "table1_fidelity.csv", comment="#").set_index("method")
    assert (now["n_subjects"] == fresh.loc[now.index, "n_subjects"] - 1).all(), (now, fresh)
    md = (tmp_path / "t" / "table1_fidelity.md").read_text()
    note = next(ln for ln in md.splitlines() if ln.startswith("- missing subjects (planned, no scores"))
    assert all(f"{label}: dog" in note for label in now.index if label in labels), note
