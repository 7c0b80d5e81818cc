"""Issue 25, first run: `make demo` on a fresh clone with no dataset beside it fetches and verifies the
dataset itself (the download replaced by a local copy of the archive through $DREAMBENCH_DATA_URL), says
so, and runs; without the dataset and without --data, `run` names where it looked and `dreambench data
fetch`."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import realrun


def _fresh_clone(dest: Path) -> Path:
    """The checkout's tracked files (symlinks kept) in ``dest``: a clone with no ``shared/`` beside it."""
    files = subprocess.run(["git", "ls-files", "-z"], cwd=realrun.REPO, capture_output=True, check=True,
                           ).stdout.decode().split("\0")
    for name in filter(None, files):
        src, dst = realrun.REPO / name, dest / name
        if not (src.exists() or src.is_symlink()):
            continue
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, dst, follow_symlinks=False)
    return dest


def _github_archive(dataset: Path, out: Path) -> Path:
    """A zip laid out as GitHub's archive of google/dreambooth: ``dreambooth-main/dataset/...``."""
    with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as zf:
        for p in sorted(dataset.rglob("*")):
            if p.is_file():
                zf.write(p, f"dreambooth-main/dataset/{p.relative_to(dataset).as_posix()}")
    return out


def _env(clone: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("DREAMBENCH_DATA", "PYTHONPATH", "MAKEFLAGS")}
    env.update(PYTHONPATH=str(clone), DREAMBENCH_CACHE=str(clone / ".cache"), TOKENIZERS_PARALLELISM="false",
               **extra)
    return env


@pytest.mark.skipif(shutil.which("make") is None or shutil.which("git") is None, reason="needs make and git")
def test_make_demo_on_a_fresh_clone_fetches_the_dataset(tmp_path, dataset_dir):
    clone = _fresh_clone(tmp_path / "clone")
    assert not (tmp_path / "shared").exists()
    env = _env(clone)

    # Without the dataset, `run` names where it looked and how to get it: one line, exit 2.
    proc = realrun.run_cli(["--results", clone / "r", "run", "--method", "real", "--profile", "tiny",
                            "--subjects", "dog"], env, check=False, cwd=clone)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1, proc.stderr
    line = proc.stderr
    assert "--data" not in line.split(";")[0] and str(clone / "dreambooth-dataset") in line, line
    assert "$DREAMBENCH_DATA (unset)" in line and "dreambench data fetch" in line, line

    archive = _github_archive(dataset_dir, tmp_path / "dreambooth-main.zip")
    demo = ["make", "-C", str(clone), "demo", "STAMP=", f"DREAMBENCH={sys.executable} -m dreambench",
            "DEMO_RESULTS=results/demo", "DEMO_ARGS=--subjects dog --steps 2 --prompts 1 --images-per-prompt 2"]
    proc = subprocess.run(demo, env={**env, "DREAMBENCH_DATA_URL": str(archive)}, cwd=clone, capture_output=True,
                          text=True, timeout=900, check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-4000:]
    assert "dataset: none found" in out and f"fetching {archive}" in out, out[-4000:]
    assert "30 subjects, 158 images (sha256 verified)" in out, out[-4000:]
    assert (clone / "dreambooth-dataset" / "dog").is_dir()
    # The run ends with where Table 1 is; its cost table says it is cumulative over runs.
    assert "Table 1: results/demo/tables/table1_fidelity.md" in proc.stdout, proc.stdout[-3000:]
    assert "device-seconds (cumulative" in proc.stdout, proc.stdout[-3000:]
    assert (clone / "results" / "demo" / "report" / "index.html").is_file()
    assert (clone / "results" / "demo" / "tables" / "table1_fidelity.md").is_file()

    # A second demo finds the fetched copy and fetches nothing.
    proc = subprocess.run(["make", "-C", str(clone), "demo", *demo[4:]], env={**env, "DREAMBENCH_DATA_URL": "/nonexistent.zip"},
                          cwd=clone, capture_output=True, text=True, timeout=900, check=False)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    assert f"dataset: using {clone / 'dreambooth-dataset'}" in proc.stdout, proc.stdout[-3000:]
