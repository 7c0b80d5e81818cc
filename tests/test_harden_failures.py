"""Issue 11, failing cleanly: full disk, read-only folder, SQLite errors, bad manifest types, bad photos."""

from __future__ import annotations

import contextlib
import os
import shutil
import sqlite3
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
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
        status = CliRunner().invoke(main, ["--results", str(results), "status"])  # reads only: works when full
        assert status.exit_code == 0 and "last run interrupted" in status.output, status.output


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


def _png_header_only(path: Path, width: int, height: int) -> None:
    """A PNG whose header claims ``width`` x ``height`` pixels (a decompression bomb: no pixel is there)."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64))
                     + chunk(b"IEND", b""))


def _bad_photos(folder: Path, dataset_dir: Path) -> dict[Path, str]:
    """One of each bad photo in ``folder``: file -> what its error line says."""
    real = (dataset_dir / "dog" / "00.jpg").read_bytes()
    (folder / "90_cut.jpg").write_bytes(real[: len(real) // 3])
    _photo(folder / "91_animated.png", 300, frames=3)
    _png_header_only(folder / "92_bomb.png", 16384, 16384)
    (folder / "93_text.jpg").write_text("not a photo\n")
    _photo(folder / "94_small.png", 10)
    Image.new("RGB", (12, 9)).save(folder / "95_12x9.jpg")  # issue 25: a 12x9 JPEG
    broken = bytearray(real)
    broken[2:200] = bytes(198)  # issue 25: a JPEG whose header is overwritten
    (folder / "96_header.jpg").write_bytes(bytes(broken))
    return {folder / "95_12x9.jpg": "12x9 px, short side below 256 px", folder / "96_header.jpg": "unreadable",folder / "90_cut.jpg": "truncated", folder / "91_animated.png": "animated image (3 frames)",
            folder / "92_bomb.png": "decompression bomb", folder / "93_text.jpg": "not an image file",
            folder / "94_small.png": "10x10 px, short side below 256 px"}


def _snapshot(folder: Path) -> dict[str, str]:
    """Every file under ``folder`` (hidden ones included) -> its sha256: what "byte-identical" compares."""
    import hashlib

    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def test_bad_photos_are_refused_before_any_job(tiny_results, tmp_path, dataset_dir, cli_env):
    """Issue 20.3/20.4: bad photos added to a subject of a finished run: `data check` names each on one
    line, `run` (and `--dry-run`) refuse them all before any job (exit 2), the folder byte-identical."""
    data = tmp_path / "data"
    for s in realrun.TINY_SUBJECTS:
        shutil.copytree(dataset_dir / s, data / s)
    bad = _bad_photos(data / "dog", dataset_dir)
    r = realrun.run_cli(["data", "check", data], cli_env, check=False)
    assert r.returncode == 1 and "Traceback" not in r.stdout + r.stderr, r.stderr[-3000:]
    errors = [ln for ln in r.stdout.splitlines() if ln.startswith("error:")]
    assert len(errors) == len(bad), r.stdout
    for path, why in bad.items():
        assert any(ln.startswith(f"error: {path}: ") and why in ln for ln in errors), (path, errors)

    results = realrun.copy_run(tiny_results, tmp_path / "r")
    before = _snapshot(results)
    args = ["--results", results, "run", *[a for m in realrun.TINY_METHODS for a in ("--method", m)],
            "--subjects", ",".join(realrun.TINY_SUBJECTS), "--data", data, *realrun.TINY_ARGS]
    for extra in ([], ["--dry-run"]):
        r = realrun.run_cli([*args, *extra], cli_env, check=False)
        assert r.returncode == 2 and "Traceback" not in r.stderr, (extra, r.stderr[-3000:])
        lines = r.stderr.splitlines()
        for path, why in bad.items():
            assert sum(ln.startswith(f"error: {path}: ") and why in ln for ln in lines) == 1, (path, r.stderr)
        assert _snapshot(results) == before, extra
    # The same folder with the good photos only: a no-op resume.
    r = realrun.run_cli([*args[:-len(realrun.TINY_ARGS) - 2], "--data", dataset_dir, *realrun.TINY_ARGS], cli_env)
    assert "0 run now" in r.stdout, r.stdout


def test_bad_photos_never_enter_a_real_set(tmp_path, dataset_dir):
    """Scoring's real-photo set applies the same checks from the header: a 10x10 photo is not averaged in."""
    from dreambench.metrics.keys import find_real_sets

    shutil.copytree(dataset_dir / "dog", tmp_path / "dog")
    sets, bad = find_real_sets(["dog"], tmp_path)
    assert not bad and len(sets["dog"][0]) == 5
    _photo(tmp_path / "dog" / "99_small.png", 10)
    sets, bad = find_real_sets(["dog"], tmp_path)
    assert not sets and "99_small.png: 10x10 px, short side below 256 px" in bad["dog"]


def test_bad_manifest_value_fails_its_score_job_once(tiny_results, tmp_path, dataset_dir, cli_env):
    """Issue 20.4: prompt_index "two" in a manifest part: the score job fails with one line naming the
    file, row and column, and is not retried (one more attempt than the finished run's)."""
    results = realrun.copy_run(tiny_results, tmp_path / "r")
    part = results / "images" / "dreambooth" / "dog" / "manifest.csv"
    lines = part.read_text().splitlines()
    cols = lines[0].split(",")
    row = lines[1].split(",")
    row[cols.index("prompt_index")] = "two"
    part.write_text("\n".join([lines[0], ",".join(row), *lines[2:]]) + "\n")
    before = {r["id"]: r for r in realrun.job_rows(results).values()}
    score = next(r for r in before.values() if r["kind"] == "score" and r["label"] == "dreambooth"
                 and r["subject"] == "dog")
    r = realrun.run_cli(["--results", results, "run", *[a for m in realrun.TINY_METHODS for a in ("--method", m)],
                         "--subjects", ",".join(realrun.TINY_SUBJECTS), "--data", dataset_dir, *realrun.TINY_ARGS],
                        cli_env, check=False)
    assert r.returncode == 1 and "Traceback" not in r.stdout + r.stderr, r.stderr[-3000:]
    where = f"{part}: row 1 (line 2), column prompt_index: 'two' is not an integer"
    assert any(ln.startswith(f"job {score['id']} ") and "not retried" in ln and where in ln
               for ln in r.stderr.splitlines()), r.stderr[-3000:]
    after = realrun.job_rows(results)[score["id"]]
    assert after["status"] == "failed" and after["attempts"] == score["attempts"] + 1, after
    assert "retrying" not in r.stderr
    # The other parts are merged and the tables remade without it, not left as the earlier run's tables
    # counting dog for dreambooth: n one lower than the fresh run's, dog named with the cause.
    assert any(ln.startswith("error: dreambooth/dog: no scores (") and where in ln for ln in r.stderr.splitlines()), \
        r.stderr[-3000:]
    merge = next(r for r in realrun.job_rows(results).values() if r["kind"] == "score_merge")
    assert merge["status"] == "done", merge
    fresh = pd.read_csv(tiny_results / "tables" / "table1_fidelity.csv", comment="#").set_index("method")["n_subjects"]
    now = pd.read_csv(results / "tables" / "table1_fidelity.csv", comment="#").set_index("method")["n_subjects"]
    assert now["dreambooth"] == fresh["dreambooth"] - 1 and (now.drop("dreambooth") == fresh.drop("dreambooth")).all()
    md = (results / "tables" / "table1_fidelity.md").read_text()
    assert "- missing subjects (planned, no scores, not counted in n; see scores/missing.csv): dreambooth: dog" in md


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


@contextlib.contextmanager
def _read_only_view(src: Path, view: Path):
    """``src`` bind-mounted read-only at ``view`` (root only: root ignores file modes, so a chmod would not
    stop a write; the test is skipped where the mount is refused)."""
    if os.geteuid() != 0:
        pytest.skip("a read-only bind mount needs root")
    view.mkdir(parents=True)
    r = subprocess.run(["mount", "--bind", str(src), str(view)], capture_output=True, text=True, check=False)
    if r.returncode != 0:
        pytest.skip(f"cannot bind-mount here: {r.stderr.strip()}")
    try:
        r = subprocess.run(["mount", "-o", "remount,ro,bind", str(view)], capture_output=True, text=True,
                           check=False)
        if r.returncode != 0:
            pytest.skip(f"cannot remount read-only here: {r.stderr.strip()}")
        yield view
    finally:
        subprocess.run(["umount", "-l", str(view)], check=False)


def test_read_only_commands_write_nothing(tiny_results, tmp_path, dataset_dir, cli_env):
    """Issue 20.6: status, tables --out, report --out and protocol show leave a finished folder as it was
    (every path and every byte), and work on a read-only mount of it, answering the same."""
    results = realrun.copy_run(tiny_results, tmp_path / "r")

    def commands(folder: Path, out: Path) -> list[list]:
        return [["--results", folder, "status"], ["tables", folder, "--out", out / "tables"],
                ["report", folder, "--out", out / "report", "--data", dataset_dir], ["protocol", "show"]]

    listing = sorted(map(str, results.rglob("*")))
    before = _snapshot(results)
    outputs = [realrun.run_cli(c, cli_env, cwd=results).stdout for c in commands(results, tmp_path / "o1")]
    assert sorted(map(str, results.rglob("*"))) == listing and _snapshot(results) == before
    assert "last run done" in outputs[0] and (tmp_path / "o1" / "report" / "index.html").is_file()
    with _read_only_view(results, tmp_path / "ro") as ro:
        again = [realrun.run_cli(c, cli_env, cwd=ro).stdout for c in commands(ro, tmp_path / "o2")]
    assert again[0] == outputs[0] and again[3] == outputs[3]
    for sub in ("tables", "report"):
        names = [sorted(p.name for p in (tmp_path / o / sub).rglob("*")) for o in ("o1", "o2")]
        assert names[0] == names[1] and names[0], sub


def test_job_log_on_a_full_disk_is_a_failed_job_not_a_worker_traceback(tmp_path, dataset_dir, monkeypatch):
    """Issue 20.5 (probe: a disk that fills while a worker writes its job log): the worker returns a
    failed job with the errno the driver stops on, naming the log file; it raises nothing (a raise
    killed the worker process with a traceback on stderr)."""
    import errno
    import io

    from dreambench.engine import worker as worker_mod
    from dreambench.engine.plan import MethodRun, RunSpec, build_plan
    from dreambench.engine.worker import Worker, WorkerContext
    from dreambench.protocol import load_protocol

    class FullDisk(io.StringIO):
        def write(self, s):
            raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(worker_mod, "open", lambda *a, **k: FullDisk(), raising=False)
    results = tmp_path / "results"
    spec = RunSpec([MethodRun("real", "real", {"size": 32})], subjects=["dog"], images_per_prompt=1, prompts=1)
    job = build_plan(spec, load_protocol("dreambooth")).by_kind("subject")[0].to_dict()
    res = Worker(WorkerContext(str(results), str(dataset_dir))).run(job)
    assert not res["ok"] and not res.get("deterministic"), res
    assert res["os_error"][0] == errno.ENOSPC and res["os_error"][2].endswith(f"{job['id']}.log"), res
    assert not (results / "images" / "real" / "dog").exists()  # the job did not run without its log


def test_a_disk_filled_mid_run_still_resets_the_running_jobs(tmp_path):
    """Issue 20.5: the disk fills while a job runs (here: a file fills it to the last byte, then the job
    reports ENOSPC). The driver's last writes to state.sqlite still fit: no job stays 'running' and the
    run is recorded as interrupted (state.sqlite was folded into its main file at the run's start)."""
    from test_engine_state import ScriptedBackend, _opts, _plan

    class FillsTheDisk(ScriptedBackend):
        def wait(self, timeout=1.0):
            out = super().wait(timeout)
            with contextlib.suppress(OSError), (fs / "ballast").open("wb") as f:
                while True:
                    f.write(bytes(4096))
                    f.flush()
            return [{**r, "ok": False, "error": "OSError: no space",
                     "os_error": [28, "No space left on device", str(fs / "ballast")]} for r in out]

    with _tmpfs(tmp_path / "small", "256k") as fs:
        with pytest.raises(EnvironmentFailure) as e:
            run_plan(_plan(), _opts(fs), backend=FillsTheDisk())
        assert "No space left on device" in str(e.value) and "could not be reset" not in str(e.value), e.value
        _no_running(fs / "state.sqlite")
        conn = sqlite3.connect(fs / "state.sqlite")
        try:
            assert [r[0] for r in conn.execute("SELECT status FROM runs")] == ["interrupted"]
        finally:
            conn.close()
