"""CPU threads (issue 15.2): one worker gets every core, K workers split them, and ``run``, ``train`` and
``generate`` take their count from the same rule and say which they chose."""

from __future__ import annotations

import re

import pytest
import realrun

from dreambench.engine.local import cpu_threads, cpu_threads_choice, plan_slots, usable_cores
from dreambench.engine.runner import RunOptions, make_backend
from dreambench.engine.worker import WorkerContext


@pytest.mark.parametrize(("cores", "workers", "given", "expected"), [
    (2, 1, None, 2),    # one worker: every core (was cores - 1 = 1 on a 2-core machine)
    (16, 1, None, 16),
    (16, 4, None, 4),   # split: together never more threads than cores
    (16, 3, None, 5),
    (2, 4, None, 1),    # more workers than cores: at least one thread each
    (16, 4, 3, 3),      # --threads wins
])
def test_cpu_threads_rule(cores, workers, given, expected):
    assert cpu_threads(cores, workers, given) == expected


def test_plan_slots_logs_its_choice():
    lines: list[str] = []
    slots = plan_slots("cpu", None, 2, cpu_count=8, log=lines.append)
    assert [s.threads for s in slots] == [4, 4]
    assert lines == ["cpu: 2 worker(s) x 4 torch thread(s) (default: 8 core(s) split between 2 worker(s))"]
    lines.clear()
    assert [s.threads for s in plan_slots("cpu", None, 1, cpu_count=8, threads=3, log=lines.append)] == [3]
    assert lines == ["cpu: 1 worker(s) x 3 torch thread(s) (--threads)"]
    assert plan_slots("cuda", [0], 2, log=lines.append)[0].threads is None  # GPUs: no CPU threads to set


def test_run_backend_uses_every_core_for_one_worker(tmp_path, capsys):
    ctx = WorkerContext(str(tmp_path), str(tmp_path), "cpu")
    backend = make_backend(RunOptions(tmp_path, tmp_path, device="cpu", jobs_per_gpu=1), ctx)  # starts nothing
    assert [s.threads for s in backend.slots] == [usable_cores()]
    assert cpu_threads_choice(1)[1] in capsys.readouterr().err


def test_generate_logs_the_same_choice(tmp_path, dataset_dir, cli_env):
    """``generate`` (and ``train``, which shares its set-up) on a CPU: the same count as ``run``'s worker."""
    proc = realrun.run_cli(["--results", tmp_path / "r", "generate", "--method", "real", "--subject", "dog",
                            "--profile", "tiny", "--device", "cpu", "--data", dataset_dir, "--prompts", "1",
                            "--images-per-prompt", "1"], cli_env)
    (line,) = [ln for ln in proc.stderr.splitlines() if ln.startswith("cpu: ")]
    assert line == cpu_threads_choice(1)[1]
    assert int(re.search(r"x (\d+) torch", line).group(1)) == usable_cores()
