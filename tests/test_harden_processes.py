"""Issue 11, processes: workers die with their driver, leftovers are swept, artifacts get open()'s mode."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import realrun

from dreambench.io import remove_stale_temps

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="prctl is Linux only")


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state not in ("Z", "X")  # a zombie has exited; only its parent's reaping is left


def _wait_dead(pid: int, seconds: float) -> bool:
    deadline = time.time() + seconds
    while time.time() < deadline:
        if not _alive(pid):
            return True
        time.sleep(0.1)
    return not _alive(pid)


def test_die_with_parent_kills_a_busy_child(tmp_path):
    """The mechanism alone: a child busy in a loop (never polling) dies when its parent is SIGKILLed."""
    script = textwrap.dedent("""
        import os, subprocess, sys, time
        child = subprocess.Popen([sys.executable, "-c",
            "import os, time\\n"
            "from dreambench.engine.local import die_with_parent\\n"
            "assert die_with_parent(os.getppid())\\n"
            "print('ready', flush=True)\\n"
            "t = time.time()\\n"
            "while time.time() - t < 120: sum(range(10000))\\n"], stdout=subprocess.PIPE, text=True)
        assert child.stdout.readline().strip() == 'ready'
        print(child.pid, flush=True)
        time.sleep(120)
    """)
    driver = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True,
                              env=realrun.cli_env())
    try:
        child = int(driver.stdout.readline())
        assert _alive(child)
        os.kill(driver.pid, signal.SIGKILL)
        driver.wait(timeout=10)
        assert _wait_dead(child, 5), "the child outlived its parent"
    finally:
        driver.kill()


def test_local_worker_stops_mid_job_when_the_driver_is_killed(tmp_path, dataset_dir):
    """A real LocalBackend worker, busy with a subject job (so not polling), exits within seconds of a
    kill -9 of its driver, and writes no more images."""
    script = textwrap.dedent(f"""
        import time
        from dreambench.engine.local import LocalBackend, Slot
        from dreambench.engine.plan import MethodRun, RunSpec, build_plan
        from dreambench.engine.worker import WorkerContext
        from dreambench.protocol import load_protocol
        spec = RunSpec([MethodRun("real", "real", {{"size": 256}})], subjects=["dog"], images_per_prompt=4)
        job = build_plan(spec, load_protocol("dreambooth")).by_kind("subject")[0]
        b = LocalBackend(WorkerContext({str(tmp_path / 'r')!r}, {str(dataset_dir)!r}), [Slot("cpu-0", None, 1)])
        b.start()
        b.submit("cpu-0", job.to_dict())
        print(b._procs["cpu-0"].pid, flush=True)
        time.sleep(300)
    """)
    driver = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True,
                              env=realrun.cli_env())
    images = tmp_path / "r" / "images" / "real" / "dog"
    try:
        worker = int(driver.stdout.readline())
        deadline = time.time() + 120
        while time.time() < deadline and not list(images.glob("*.png")):
            time.sleep(0.2)
        assert list(images.glob("*.png")), "the worker never started its job"
        os.kill(driver.pid, signal.SIGKILL)
        driver.wait(timeout=10)
        assert _wait_dead(worker, 5), "the worker outlived its driver"
        n = len(list(images.glob("*.png")))
        time.sleep(1.5)
        assert len(list(images.glob("*.png"))) == n < 100
    finally:
        driver.kill()


def test_stale_temp_files_are_removed_at_the_next_run(tmp_path, dataset_dir, cli_env):
    results = tmp_path / "r"
    stale = [results / "images" / "real" / "dog" / ".00_0.png.k3j_9xq2.tmp.png",
             results / "artifacts" / "x" / "dog" / ".unet.safetensors.abcdefgh.tmp.safetensors",
             results / "scores" / ".per_image.csv.0a1b2c3d.tmp.csv"]
    keep = results / "images" / "notes.tmp.txt"
    for p in [*stale, keep]:
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text("half written")
    realrun.run_cli(["--results", results, "run", "--method", "real", "--subjects", "dog", "--profile", "tiny",
                     "--prompts", "1", "--images-per-prompt", "1", "--no-score", "--data", dataset_dir], cli_env)
    assert not any(p.exists() for p in stale)
    assert keep.exists() and (results / "images" / "real" / "dog" / "00_0.png").is_file()
    assert remove_stale_temps(results) == []


def test_outputs_get_the_mode_of_a_plain_open(tiny_results, tmp_path):
    probe = tmp_path / "probe"
    probe.touch()
    expected = probe.stat().st_mode & 0o777
    files = [*tiny_results.glob("artifacts/*/*/*.safetensors"), *tiny_results.glob("images/*/*/*.png"),
             tiny_results / "scores" / "per_image.csv", tiny_results / "images" / "manifest.csv"]
    assert any(p.suffix == ".safetensors" for p in files)
    for p in files:
        assert p.stat().st_mode & 0o777 == expected, (p, oct(p.stat().st_mode))


def _images(folder: Path) -> dict[str, str]:
    import hashlib

    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*.png"))}


def _worker_pids(driver: int) -> list[int]:
    """The driver's child processes that are dreambench workers (multiprocessing spawn children)."""
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            ppid = int(stat.read_text().rsplit(")", 1)[1].split()[1])
            cmd = (stat.parent / "cmdline").read_bytes()
        except (OSError, IndexError, ValueError):
            continue
        if ppid == driver and b"multiprocessing" in cmd and b"resource_tracker" not in cmd:
            out.append(int(stat.parent.name))
    return out


def _sigint_shielded(pid: int) -> bool:
    """SIGINT ignored or blocked in the process (its main thread's /proc status)."""
    fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)
    bit = 1 << (signal.SIGINT - 1)
    return bool((int(fields["SigIgn"], 16) | int(fields["SigBlk"], 16)) & bit)


def test_ctrl_c_is_clean_and_the_rerun_matches_an_uninterrupted_run(tiny_results, tmp_path, dataset_dir, cli_env):
    """Issue 20.5: SIGINT to the process group of `dreambench run` mid-training: it stops within seconds,
    prints one line, leaves no job 'running' and records the run as interrupted (status says so); the same
    command run again finishes with the images of an uninterrupted run (the shared tiny run)."""
    results = tmp_path / "r"
    args = [sys.executable, "-m", "dreambench", "--results", str(results), "run", "--method", "dreambooth",
            "--subjects", ",".join(realrun.TINY_SUBJECTS), "--data", str(dataset_dir), *realrun.TINY_ARGS,
            "--no-score"]
    proc = subprocess.Popen(args, env=cli_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        deadline = time.time() + 300
        while time.time() < deadline and proc.poll() is None:  # the first subject job has started training
            logs = list((results / "logs").glob("*.log")) if (results / "logs").is_dir() else []
            if any("kind=subject" in p.read_text() for p in logs):
                break
            time.sleep(0.2)
        assert proc.poll() is None, "the run ended before its training started"
        time.sleep(1.0)
        # Workers leave Ctrl-C to the driver whatever the kernel does with signal masks across exec (a
        # spawned worker here starts with an empty mask, and printed KeyboardInterrupt tracebacks).
        workers = _worker_pids(proc.pid)
        assert workers and all(_sigint_shielded(pid) for pid in workers), workers
        t0 = time.time()
        os.killpg(proc.pid, signal.SIGINT)
        _, err = proc.communicate(timeout=60)
        stopped = time.time() - t0
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 130 and stopped < 15, (proc.returncode, stopped, err[-3000:])
    assert "Traceback" not in err and "Warning" not in err, err[-3000:]
    assert [ln for ln in err.splitlines() if "interrupt" in ln.lower()] == [
        "interrupted: re-run the same command to resume"], err[-3000:]
    rows = realrun.job_rows(results).values()
    assert "running" not in {r["status"] for r in rows}
    assert any(r["kind"] == "subject" and r["status"] == "pending" for r in rows)
    status = realrun.run_cli(["--results", results, "status"], cli_env).stdout
    assert "last run interrupted" in status, status
    realrun.run_cli(args[3:], cli_env)  # the same command again: resumes and finishes
    done = _images(results / "images" / "dreambooth")
    assert done and done == _images(tiny_results / "images" / "dreambooth")
    assert "last run done" in realrun.run_cli(["--results", results, "status"], cli_env).stdout
