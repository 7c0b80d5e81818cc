"""Validate before anything destructive or expensive (issue 10, part 4), on a finished real run.

- every invalid option exits 2 with one line naming the option and what it allows, and every file of the
  finished folder is byte-identical afterwards (sha256 of each file);
- a label reused with another valid config moves its old outputs aside (``.superseded/``) and they are
  deleted only when every job of the label has written its replacement;
- a deterministic error (bad data) is not retried.
"""

from __future__ import annotations

import hashlib
import shutil
import time
from pathlib import Path

import pytest
import realrun
from click.testing import CliRunner

#: (extra options, text the one error line must hold: the option and what it allows)
INVALID = [
    (["--steps", "-5"], "--steps -5: must be an integer >= 1"),
    (["--set", "lr=-1"], "--set lr=-1: method dreambooth (label dreambooth) lr=-1.0: must be a number > 0"),
    (["--set", "batch_size=0"], "batch_size=0: must be an integer >= 1"),
    (["--set", "lr=abc"], "lr='abc': must be a number > 0"),
    (["--set", "dreambooth.sampler=foo"], "must be one of ddim, dpm++, euler"),
    (["--set", "sample_batch_size=0"], "sample_batch_size=0: must be an integer >= 1"),
    (["--set", f"{realrun.PLUGIN_METHOD}.scale=2"], "scale=2.0: must be a number > 0 <= 1"),  # plug-in's own rule
    (["--set", "nope=1"], "no method among"),
    (["--set", "dreambooth.nope=1"], "method dreambooth has no config field 'nope'; fields:"),
    (["--metric-profile", "nope"], "--metric-profile: unknown metric profile 'nope'; valid: "),
    (["--recipe", "nope"], "--recipe nope: unknown recipe of method dreambooth 'nope'; valid: "),
    (["--subjects", "dog,nope"], "--subjects: unknown subject 'nope'"),
    (["--images-per-prompt", "0"], "--images-per-prompt 0: must be an integer >= 1"),
    (["--sample-steps", "0"], "--sample-steps 0: must be an integer >= 1"),
    (["--prompts", "0"], "--prompts 0: must be an integer >= 1"),
    (["--class-samples", "-1"], "--class-samples -1: must be an integer >= 0"),
    (["--jobs-per-gpu", "0"], "--jobs-per-gpu 0: must be an integer >= 1"),
    (["--data", "/nonexistent-dreambench-data"], "--data /nonexistent-dreambench-data: dataset folder not found"),
    (["--profile", "nope"], "--profile: unknown"),
    # Replacing is explicit (issue 19.2): a changed config of a finished label, and --replace of no label.
    (["--set", "real.size=48"], "label 'real' (8 images) was made with other settings: size"),
    (["--set", "real.size=48"], "-> 48; re-run with --replace real to delete them"),
    (["--replace", "nope"], "--replace nope: not a label of this run"),
    (["--method", "a/b=dreambooth"], "--method 'a/b=dreambooth': label 'a/b' is not a valid name"),
    (["--method", "dreambooth=real"], "--method: label(s) dreambooth given for two different methods"),
]


#: Issue 25: model options, devices and table needs, each refused by `run` and `run --dry-run` alike.
REFUSED_BY_BOTH = [
    (["--model", "/nonexistent"], "--model /nonexistent: profile tiny builds random-init models"),
    (["--gpus", "0", "--device", "cpu"], "--gpus 0: GPU indices with --device cpu"),
    (["--tables", "paper", "--images-per-prompt", "1"],
     "--images-per-prompt 1: --tables paper needs >= 2 images per prompt"),
]
#: Refused on a machine without a CUDA GPU (as these tests run: CPU only).
REFUSED_WITHOUT_GPU = [
    (["--device", "cuda"], "--device cuda: no CUDA GPU on this machine"),
    (["--gpus", "0"], "--gpus 0: no CUDA GPU on this machine"),
]


def _no_gpu() -> bool:
    import torch

    return not torch.cuda.is_available()


def _digest(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def _run_args(results: Path, data: Path, methods=realrun.TINY_METHODS) -> list[str]:
    return ["--results", str(results), "run", *[a for m in methods for a in ("--method", m)],
            "--subjects", ",".join(realrun.TINY_SUBJECTS), "--data", str(data), *realrun.TINY_ARGS]


@pytest.fixture
def plugin_registered(plugin_site, monkeypatch):
    """The example plug-in in this process's registry (the CLI subprocesses find it by entry point)."""
    monkeypatch.syspath_prepend(str(plugin_site))
    from dreambench_example_plugin import PasteBaseline

    from dreambench.methods import registry

    registry.list_methods()  # load the built-ins and entry points first
    monkeypatch.setattr(registry, "METHODS", registry.METHODS.copy())
    registry.METHODS.register(realrun.PLUGIN_METHOD, PasteBaseline, replace=True)


def test_every_invalid_option_exits_2_and_touches_nothing(tiny_results, tmp_path, dataset_dir, plugin_registered):
    from dreambench.cli import main

    res = realrun.copy_run(tiny_results, tmp_path / "r")
    before = _digest(res)
    for extra, expected in INVALID:
        t0 = time.perf_counter()
        r = CliRunner().invoke(main, [*_run_args(res, dataset_dir), *extra])
        seconds = time.perf_counter() - t0
        lines = [x for x in r.output.splitlines() if x.strip()]
        assert r.exit_code == 2, (extra, r.output)
        assert len(lines) == 1 and lines[0].startswith("error: ") and expected in lines[0], (extra, r.output)
        assert seconds < 10, (extra, seconds)  # planning only: no model, no job
        assert _digest(res) == before, extra


def test_dry_run_refuses_what_run_refuses(tiny_results, tmp_path, dataset_dir, plugin_registered):
    """Issue 25: `--dry-run` applies every check `run` applies: each invalid option of INVALID and
    REFUSED_BY_BOTH (and, without a GPU, REFUSED_WITHOUT_GPU) exits 2 with the same error line, run or dry
    run, and the folder is byte-identical."""
    from dreambench.cli import main

    res = realrun.copy_run(tiny_results, tmp_path / "r")
    before = _digest(res)
    cases = INVALID + REFUSED_BY_BOTH + (REFUSED_WITHOUT_GPU if _no_gpu() else [])
    for extra, expected in cases:
        errors = []
        for dry in ([], ["--dry-run"]):
            r = CliRunner().invoke(main, [*_run_args(res, dataset_dir), *extra, *dry])
            assert r.exit_code == 2, (extra, dry, r.output)
            errors.append([x for x in r.output.splitlines() if x.startswith("error: ")])
            assert errors[-1] and expected in errors[-1][0], (extra, dry, r.output)
        assert errors[0] == errors[1], extra
        assert _digest(res) == before, extra


@pytest.mark.skipif(not _no_gpu(), reason="a CUDA GPU is visible: these are the refusals of a CPU machine")
def test_device_errors_are_one_line_without_a_gpu(tmp_path, dataset_dir, cli_env):
    """Issue 25: `run --device cuda`, `run --gpus 0` and `doctor --device cuda` on a machine without a GPU
    print one error line (no traceback), exit 2, and write nothing; `--gpus 0` never runs on CPU instead."""
    args = ["--results", tmp_path / "r", "run", "--method", "dreambooth", "--subjects", "dog", "--data",
            dataset_dir, *realrun.TINY_ARGS]
    for cmd, expected in [([*args, "--device", "cuda"], "error: --device cuda: no CUDA GPU on this machine"),
                          ([*args, "--gpus", "0"], "error: --gpus 0: no CUDA GPU on this machine"),
                          (["doctor", "--profile", "tiny", "--device", "cuda"],
                           "error: --device cuda: no CUDA GPU on this machine")]:
        proc = realrun.run_cli(cmd, cli_env, check=False)
        assert proc.returncode == 2, proc.stderr[-3000:]
        assert proc.stderr.strip().count("\n") == 0 and proc.stderr.startswith(expected), proc.stderr[-3000:]
        assert not (tmp_path / "r").exists()


def test_invalid_option_through_the_cli_in_seconds(tiny_results, tmp_path, dataset_dir, cli_env):
    """The issue's own examples, as a user types them: exit 2, one line, every file byte-identical."""
    res = realrun.copy_run(tiny_results, tmp_path / "r")
    before = _digest(res)
    for extra in (["--steps", "-5"], ["--set", "lr=-1"]):
        t0 = time.perf_counter()
        proc = realrun.run_cli([*_run_args(res, dataset_dir), *extra], cli_env, check=False)
        assert proc.returncode == 2, proc.stderr
        assert proc.stderr.strip().count("\n") == 0 and extra[-1] in proc.stderr
        # Interpreter start and imports only (torch alone takes 15 s on a loaded 2-core machine); the
        # validation itself is timed in-process above. A job would take minutes and write state.sqlite.
        assert time.perf_counter() - t0 < 120
        assert _digest(res) == before


def _dataset_copy(src: Path, dst: Path, broken: str | None = None) -> Path:
    for subject in realrun.TINY_SUBJECTS:
        (dst / subject).mkdir(parents=True)
        for p in sorted((src / subject).iterdir()):
            shutil.copyfile(p, dst / subject / p.name)
    if broken:
        first = min((dst / broken).iterdir())
        first.write_bytes(b"not a jpeg")
    return dst


def test_bad_data_is_refused_before_a_reused_label_is_moved_aside(tiny_results, tmp_path, dataset_dir, cli_env):
    """A broken photo is refused by the driver's data check (issue 20.3) before the label's outputs are
    moved aside: the folder stays as it was. (A deterministic job error is not retried:
    test_deterministic_errors_are_not_retried_others_are, test_harden_failures.)"""
    res = realrun.copy_run(tiny_results, tmp_path / "r")
    before = _digest(res)
    bad = _dataset_copy(dataset_dir, tmp_path / "bad-data", broken="backpack")
    args = [*_run_args(res, bad, methods=("real",)), "--set", "real.size=48", "--retries", "3", "--no-score",
            "--replace", "real"]
    proc = realrun.run_cli(args, cli_env, check=False)
    assert proc.returncode == 2 and "not an image file" in proc.stderr, proc.stderr
    assert _digest(res) == before and not (res / ".superseded").exists()

    good = _dataset_copy(dataset_dir, tmp_path / "good-data")
    realrun.run_cli([*_run_args(res, good, methods=("real",)), "--set", "real.size=48", "--no-score",
                     "--replace", "real"], cli_env)
    assert not (res / ".superseded").exists()  # every job of the label has replaced its outputs
    from PIL import Image

    for subject in realrun.TINY_SUBJECTS:
        pngs = sorted((res / "images" / "real" / subject).glob("*.png"))
        assert pngs and all(Image.open(p).size == (48, 48) for p in pngs)


def test_deterministic_errors_are_not_retried_others_are(tmp_path):
    """The driver's rule, with a backend whose jobs fail: a DreambenchError result runs once, any other
    error runs 1 + retries times."""
    from dreambench.engine.plan import Job, Plan, RunSpec
    from dreambench.engine.runner import RunOptions, run_plan

    class FailingBackend:
        def __init__(self):
            self.submitted: list[str] = []
            self.queue: list[dict] = []

        def start(self):
            pass

        def close(self):
            pass

        def free_slots(self):
            return [0] if not self.queue else []

        def describe(self, slot):
            return "fake"

        def submit(self, slot, job):
            self.submitted.append(job["id"])
            deterministic = job["label"] == "det"
            self.queue.append({"id": job["id"], "ok": False, "deterministic": deterministic,
                               "error": "DataError: bad photo" if deterministic else "RuntimeError: flaky"})

        def wait(self, timeout=1.0):
            out, self.queue = self.queue, []
            return out

    jobs = [Job("a" * 16, "tables", "det", "", {}), Job("b" * 16, "tables", "flaky", "", {})]
    backend = FailingBackend()
    summary = run_plan(Plan(RunSpec([]), jobs), RunOptions(tmp_path, tmp_path, retries=2, progress=False,
                                                           device="cpu"), backend=backend)
    assert backend.submitted.count("a" * 16) == 1
    assert backend.submitted.count("b" * 16) == 3
    assert {f["id"] for f in summary.failed} == {"a" * 16, "b" * 16}


def test_dry_run_into_a_closed_pipe_ends_quietly(tmp_path, dataset_dir, cli_env):
    """Issue 25: `run --dry-run | head` whose reader has left: no BrokenPipeError, no traceback, no line."""
    import subprocess
    import sys

    cmd = [sys.executable, "-m", "dreambench", "--results", str(tmp_path / "r"), "run", "--dry-run", "--tables",
           "paper", "--profile", "tiny", "--data", str(dataset_dir)]
    proc = subprocess.Popen(cmd, env=cli_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.close()  # the reader is gone before the plan is printed
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=300) in (0, 1), err
    assert "BrokenPipe" not in err and "Traceback" not in err and "Exception ignored" not in err, err
    assert not (tmp_path / "r").exists()
