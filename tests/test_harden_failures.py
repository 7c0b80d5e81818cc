"""Issue 11, failing cleanly: full disk, read-only folder, SQLite errors, bad manifest types, bad photos."""

from __future__ import annotations

import contextlib
import os
import sqlite3
import subprocess
from pathlib import Path

import numpy as np
import pytest
import realrun
import torch
from click.testing import CliRunner
from PIL import Image

from dreambench.cli import main
from dreambench.engine.runner import run_plan
from dreambench.engine.state import StateDB
from dreambench.errors import DataError, EnvironmentFailure
from dreambench.manifest import read_manifest


@contextlib.contextmanager
def _tmpfs(path: Path, size: str, readonly: bool = False):
    """A small tmpfs at ``path`` (root only; the test is skipped elsewhere)."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    path.mkdir(parents=True, exist_ok=True)
    opts = f"size={size}" + (",ro" if readonly else "")
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", opts, "tmpfs", str(path)], capture_output=True, text=True,
                       check=False)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {r.stderr.strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def _no_running(state: Path) -> None:
    conn = sqlite3.connect(state)
    try:
        statuses = [r[0] for r in conn.execute("SELECT status FROM jobs")]
    finally:
        conn.close()
    assert statuses and "running" not in statuses, statuses


def _error_line(stderr: str) -> str:
    assert "Traceback" not in stderr, stderr[-3000:]
    lines = [ln for ln in stderr.splitlines() if ln.startswith("error:")]
    assert len(lines) == 1, stderr[-3000:]
    return lines[0]


def test_full_disk_is_one_line_and_no_job_stays_running(tmp_path, dataset_dir, cli_env):
    with _tmpfs(tmp_path / "small", "1m") as fs:
        results = fs / "r"
        r = realrun.run_cli(["--results", results, "run", "--method", "real", "--subjects", "dog,cat",
                             "--profile", "tiny", "--prompts", "4", "--images-per-prompt", "4", "--no-score",
                             "--data", dataset_dir], cli_env, check=False)
        assert r.returncode == 1, r.stderr[-3000:]
        line = _error_line(r.stderr)
        assert "No space left on device" in line and str(results) in line, line
        _no_running(results / "state.sqlite")


def test_safetensors_on_a_full_disk_names_the_file(tmp_path):
    from dreambench.methods.artifacts import save_tensors

    with _tmpfs(tmp_path / "small", "64k") as fs:
        with pytest.raises(OSError) as e:
            save_tensors(fs / "unet.safetensors", {"w": torch.zeros(1 << 18)}, torch.float32)
        assert e.value.filename == str(fs / "unet.safetensors") and "No space left" in str(e.value)
        assert list(fs.iterdir()) == []  # the temporary file is gone too


def test_read_only_results_folder_is_one_line(tmp_path, dataset_dir, cli_env):
    with _tmpfs(tmp_path / "ro", "1m", readonly=True) as fs:
        r = realrun.run_cli(["--results", fs, "run", "--method", "real", "--subjects", "dog", "--profile", "tiny",
                             "--prompts", "1", "--images-per-prompt", "1", "--data", dataset_dir], cli_env,
                            check=False)
        assert r.returncode == 1
        line = _error_line(r.stderr)
        assert str(fs) in line and "Read-only file system" in line, line


def test_sqlite_error_while_writing_state_is_one_line(tmp_path, monkeypatch):
    from test_engine_state import ScriptedBackend, _opts, _plan

    def broken(self, *a, **k):
        raise sqlite3.OperationalError("database or disk is full")

    monkeypatch.setattr(StateDB, "mark_done", broken)
    with pytest.raises(EnvironmentFailure) as e:
        run_plan(_plan(), _opts(tmp_path), backend=ScriptedBackend())
    assert str(e.value) == f"{tmp_path / 'state.sqlite'}: database or disk is full"
    assert e.value.exit_code == 1
    _no_running(tmp_path / "state.sqlite")


def test_bad_manifest_types_name_file_row_and_column(tmp_path):
    images = tmp_path / "images"
    images.mkdir()
    rows = ["method,subject,prompt_index,prompt,seed,path",
            "m,dog,0,a dog,0,m/dog/00_0.png",
            "m,dog,1,a dog,0,m/dog/01_0.png",
            "m,dog,two,a dog,0,m/dog/02_0.png"]
    (images / "manifest.csv").write_text("\n".join(rows) + "\n")
    with pytest.raises(DataError, match=r"manifest.csv: row 3 \(line 4\), column prompt_index: 'two'"):
        read_manifest(images)
    (images / "manifest.csv").write_text("\n".join(rows[:3] + ["m,dog,2,a dog,1.5,m/dog/02_0.png"]) + "\n")
    r = CliRunner().invoke(main, ["score", "--images", str(images), "--subjects", str(tmp_path),
                                  "--out", str(tmp_path / "out"), "--model-profile", "tiny", "-q"])
    assert r.exit_code == 2
    assert "row 3 (line 4), column seed: '1.5' is not an integer" in r.output
    assert not (tmp_path / "out").exists()


def _photo(path: Path, size: int, frames: int = 1) -> None:
    rng = np.random.default_rng(size)
    ims = [Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8)) for _ in range(frames)]
    ims[0].save(path, save_all=frames > 1, append_images=ims[1:])


@pytest.mark.parametrize("bad", ["small", "animated"])
def test_run_handles_bad_photos_as_data_check_does(tmp_path, dataset_dir, bad):
    data = tmp_path / "data"
    (data / "dog").mkdir(parents=True)
    for i in range(2):
        _photo(data / "dog" / f"{i:02d}.png", 300)
    bad_file = data / "dog" / "02.png"
    _photo(bad_file, 10) if bad == "small" else _photo(bad_file, 300, frames=3)
    from dreambench.data.check import check_dataset

    report = check_dataset(data)  # what `dreambench data check` reports
    (msg,) = [m for p, m in report.errors if p == bad_file]
    assert ("below 256" in msg) if bad == "small" else ("animated" in msg), msg
    r = CliRunner().invoke(main, ["--results", str(tmp_path / "r"), "run", "--method", "real", "--subjects", "dog",
                                  "--profile", "tiny", "--prompts", "1", "--images-per-prompt", "1", "--retries", "0",
                                  "--no-score", "--data", str(data)])
    assert r.exit_code == 1
    assert f"{bad_file}: {msg}" in r.output, r.output
    assert not list((tmp_path / "r").glob("images/real/dog/*.png"))


def test_corrupt_state_database_is_one_line(tmp_path):
    (tmp_path / "state.sqlite").write_bytes(b"this is not a database" * 100)
    r = CliRunner().invoke(main, ["--results", str(tmp_path), "status"])
    assert r.exit_code == 1
    assert r.output.strip().splitlines()[-1].startswith(f"error: {tmp_path / 'state.sqlite'}: ")
    assert "Traceback" not in r.output


def test_phone_jpegs_with_a_preview_frame_are_not_animated(dataset_dir):
    """MPO JPEGs (a photo plus a preview of it) in the official dataset are still photos."""
    from dreambench.data.check import load_subject_image

    photo = dataset_dir / "bear_plushie" / "00.jpg"
    with Image.open(photo) as im:
        assert im.format == "MPO" and im.n_frames == 2
    assert min(load_subject_image(photo).size) >= 256
