"""End to end on CPU with the tiny profile: a local run, a run killed with SIGKILL and resumed, and the
Ray backend, all giving the same numbers.

Settings are cut to the smallest that still exercise every job kind (2 subjects, 1 prompt, 2 images per
prompt, a few training steps); the demo command (20 steps, all prompts) runs the same code.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import realrun

from dreambench.errors import EnvironmentFailure

pytestmark = pytest.mark.slow

ARGS = ["run", "--method", "dreambooth", "--profile", "tiny", "--subjects", "dog,backpack", "--steps", "2",
        "--prompts", "1", "--images-per-prompt", "2", "--set", "num_class_images=2"]
NUMBERS = ["dino", "clip_i", "clip_t", "max_dino_real"]


def _env(dataset_dir: Path) -> dict:
    return {**os.environ, "HF_HUB_OFFLINE": "1", "DREAMBENCH_DATA": str(dataset_dir),
            "TOKENIZERS_PARALLELISM": "false"}


def _cli(results: Path, *extra: str) -> list[str]:
    return [sys.executable, "-c", "from dreambench.cli import main; main()", "--results", str(results), *ARGS,
            *extra]


def _run(results: Path, dataset_dir: Path, *extra: str, timeout: int = 600) -> subprocess.CompletedProcess:
    return subprocess.run(_cli(results, *extra), env=_env(dataset_dir), capture_output=True, text=True,
                          timeout=timeout, check=False)


def _numbers(results: Path) -> pd.DataFrame:
    df = pd.read_csv(results / "scores" / "per_image.csv")
    return df.sort_values(["method", "subject", "prompt_index", "seed"]).reset_index(drop=True)


def _tables_module() -> bool:
    from dreambench.engine.plan import tables_available

    return tables_available()


@pytest.fixture(scope="module")
def local_run(tmp_path_factory, dataset_dir) -> Path:
    results = tmp_path_factory.mktemp("local")
    proc = _run(results, dataset_dir)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return results


def test_local_run_writes_images_scores_tables(local_run):
    r = local_run
    pngs = sorted((r / "images" / "dreambooth").glob("*/*.png"))
    assert [p.relative_to(r / "images").as_posix() for p in pngs] == [
        "dreambooth/backpack/00_0.png", "dreambooth/backpack/00_1.png",
        "dreambooth/dog/00_0.png", "dreambooth/dog/00_1.png"]
    df = _numbers(r)
    assert len(df) == 4 and df[["dino", "clip_i", "clip_t"]].notna().all().all()
    assert set(df["weights"]) == {"random-init"}
    if _tables_module():
        assert (r / "tables" / "table1_fidelity.csv").is_file()
    jobs = realrun.job_rows(r)
    assert {j["kind"] for j in jobs.values()} >= {"class_images", "subject", "score"}
    assert all(j["status"] == "done" and j["attempts"] == 1 for j in jobs.values())
    assert all((r / "logs" / f"{jid}.log").is_file() for jid in jobs)
    import json

    summary = json.loads((r / "summary.json").read_text())
    assert summary["failed"] == [] and summary["images"] >= 4 and summary["device_seconds_per_label"]["dreambooth"] > 0
    # A second run is a no-op: every job is skipped.
    again = _run(r, _data(), timeout=300)
    assert again.returncode == 0, again.stderr[-2000:]
    assert "already done" in again.stdout
    assert {k: (v["attempts"], v["started"]) for k, v in realrun.job_rows(r).items()} == \
        {k: (v["attempts"], v["started"]) for k, v in jobs.items()}


def _data() -> Path:
    from dreambench.paths import default_data_dir

    return default_data_dir()


def test_sigkill_then_resume_finishes_without_redoing(local_run, tmp_path, dataset_dir):
    results = tmp_path / "killed"
    proc = subprocess.Popen(_cli(results), env=_env(dataset_dir), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.time() + 300
        done: dict[str, dict] = {}
        while time.time() < deadline and proc.poll() is None:
            if (results / "state.sqlite").is_file():
                try:
                    done = {k: v for k, v in realrun.job_rows(results).items() if v["status"] == "done"}
                except (sqlite3.OperationalError, EnvironmentFailure):  # the database is still being made
                    done = {}
                if done:
                    break
            time.sleep(0.2)
        assert done, "no job finished before the deadline"
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)  # the driver and its workers, like a crash
        proc.wait()
    at_kill = realrun.job_rows(results)
    done = {k: v for k, v in at_kill.items() if v["status"] == "done"}
    assert len(done) < len(at_kill), "the run finished before it could be killed"
    resumed = _run(results, dataset_dir)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    after = realrun.job_rows(results)
    assert all(v["status"] == "done" for v in after.values())
    for jid, row in done.items():  # finished jobs were not run again
        assert (after[jid]["attempts"], after[jid]["started"], after[jid]["finished"]) == \
            (row["attempts"], row["started"], row["finished"])
    pd.testing.assert_frame_equal(_numbers(results)[NUMBERS], _numbers(local_run)[NUMBERS])


@pytest.mark.ray
def test_ray_backend_gives_the_same_numbers(local_run, tmp_path, dataset_dir):
    pytest.importorskip("ray")
    results = tmp_path / "ray"
    proc = _run(results, dataset_dir, "--backend", "ray")
    assert proc.returncode == 0, proc.stderr[-3000:]
    jobs = realrun.job_rows(results)
    assert all(j["status"] == "done" and j["worker"].startswith("ray-") for j in jobs.values())
    pd.testing.assert_frame_equal(_numbers(results)[NUMBERS], _numbers(local_run)[NUMBERS])


FAILING_PLUGIN = '''
from dreambench.errors import DataError
from dreambench.methods import real


class FailsOnBackpack(real.RealImages):
    """The real photos, except for backpack, whose job fails with bad data (deterministic)."""

    name = "fails-on-backpack"

    def generate(self, data, requests):
        if data.subject.name == "backpack":
            raise DataError("backpack: this method cannot handle backpacks")
        return super().generate(data, requests)
'''


def _failing_plugin(site: Path) -> Path:
    """A plug-in installed by hand into ``site``: a module and a dist-info with its entry point."""
    site.mkdir()
    (site / "fails_on_backpack.py").write_text(FAILING_PLUGIN)
    info = site / "fails_on_backpack-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: fails-on-backpack\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[dreambench.methods]\nfails-on-backpack = fails_on_backpack:FailsOnBackpack\n")
    (info / "top_level.txt").write_text("fails_on_backpack\n")
    return site


def test_failing_job_is_named_and_others_go_on(tmp_path, dataset_dir):
    # A method whose backpack job fails on bad data (the driver refuses bad photos before any job, so the
    # failure comes from the method); it needs no model.
    data = tmp_path / "data"
    data.mkdir()
    for subject in ("dog", "backpack"):
        (data / subject).symlink_to(dataset_dir / subject)
    env = {**_env(dataset_dir), "PYTHONPATH": os.pathsep.join([str(realrun.REPO), str(_failing_plugin(tmp_path / "site"))])}
    args = ["--results", str(tmp_path / "r"), "run", "--method", "fails-on-backpack", "--profile", "tiny",
            "--subjects", "dog,backpack", "--prompts", "1", "--images-per-prompt", "1", "--retries", "1"]
    cmd = [sys.executable, "-c", "from dreambench.cli import main; main()", *args]
    # A subject folder missing altogether is found before anything runs: exit 2, nothing written.
    (data / "gone").mkdir()
    proc = subprocess.run([*cmd, "--data", str(data / "gone")], env=env, capture_output=True,
                          text=True, timeout=300, check=False)
    assert proc.returncode == 2 and "subject folder not found" in proc.stderr, proc.stderr[-2000:]
    assert not (tmp_path / "r" / "state.sqlite").exists()
    proc = subprocess.run([*cmd, "--data", str(data)], env=env, capture_output=True, text=True,
                          timeout=300, check=False)
    assert proc.returncode == 1, proc.stderr[-2000:]
    jobs = {(j["kind"], j["subject"]): j for j in realrun.job_rows(tmp_path / "r").values()}
    bad = jobs[("subject", "backpack")]
    # Bad data fails the same way every time: not retried although --retries 1 allows one more attempt.
    assert bad["status"] == "failed" and bad["attempts"] == 1 and "cannot handle backpacks" in bad["error"]
    assert jobs[("subject", "dog")]["status"] == "done"
    # Scoring is per subject: backpack's score job cannot run, dog's is done, and the merge still writes
    # the scores and tables of dog, naming backpack as missing.
    assert jobs[("score", "backpack")]["status"] == "failed" and "dependency" in jobs[("score", "backpack")]["error"]
    assert jobs[("score", "dog")]["status"] == "done" and jobs[("score_merge", "")]["status"] == "done"
    scores = tmp_path / "r" / "scores"
    assert set(pd.read_csv(scores / "per_image.csv")["subject"]) == {"dog"}
    missing = pd.read_csv(scores / "missing.csv")
    assert missing[["method", "subject"]].values.tolist() == [["fails-on-backpack", "backpack"]]
    if _tables_module():
        assert jobs[("tables", "")]["status"] == "done"
        assert "backpack" in (tmp_path / "r" / "tables" / "README.md").read_text()
    assert bad["id"] in proc.stderr and "failed" in proc.stderr
    # The run names the planned subject that has no scores, with the cause (issue 20.3).
    assert "error: fails-on-backpack/backpack: no scores" in proc.stderr, proc.stderr[-2000:]
    assert "DataError" in (tmp_path / "r" / "logs" / f"{bad['id']}.log").read_text()
    # Issue 25: the failed job is one root-cause line naming what was not run because of it (no cascading
    # FAILED line per dependant), in the run's summary, its closing error and `status`.
    score = jobs[("score", "backpack")]
    assert score["error"] == f"not run: dependency job(s) failed: {bad['id']}"
    failed_lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("FAILED")]
    expected = (f"FAILED {bad['id']} subject fails-on-backpack/backpack: {bad['error']} "
                f"(see logs/{bad['id']}.log); not run because of it: 1 job(s) (score fails-on-backpack/backpack)")
    assert failed_lines == [expected], proc.stdout
    assert (f"error: 1 job(s) failed: {bad['id']} (subject fails-on-backpack/backpack); 1 job(s) that need "
            "them were not run") in proc.stderr, proc.stderr[-2000:]
    status = subprocess.run([*cmd[:3], "--results", str(tmp_path / "r"), "status"], env=env, capture_output=True,
                            text=True, timeout=300, check=True)
    assert [ln.split(":")[0] for ln in status.stdout.splitlines() if ln.startswith("FAILED")] == \
        [f"FAILED {bad['id']} subject fails-on-backpack/backpack"], status.stdout
