"""`dreambench bench` on CPU with the tiny profile: every figure measured, nothing invented."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from dreambench.cli import main


@pytest.mark.slow
def test_bench_tiny_cpu(tmp_path, monkeypatch):
    # No dataset (as on a GPU machine it cannot travel to): a synthetic stand-in is made and named.
    monkeypatch.setenv("DREAMBENCH_DATA", str(tmp_path / "no-dataset"))
    res = CliRunner().invoke(main, ["--results", str(tmp_path), "bench", "--profile", "tiny", "--device", "cpu",
                                    "--steps", "2", "--batch", "2", "--score-batch", "4", "--threads", "1",
                                    "--pack", "2", "--score-images", "12", "--set", "channels_last=no"])
    assert res.exit_code == 0, res.output
    b = json.loads((tmp_path / "bench.json").read_text())
    assert b["profile"] == "tiny" and b["device"] == "cpu" and b["weights"] == "random-init"
    assert b["data"].startswith("synthetic stand-in") and "no-dataset" in b["data"]
    assert b["peak"]["datasheet_tflops"] is None  # no datasheet figure for a CPU: none is made up
    assert b["peak"]["matmul"]["tflops"] > 0
    ref = b["reference"]
    assert ref["train_steps_per_s"] > 0 and ref["flops_per_step"] > 0 and ref["peak_mem_GB"] is None
    assert ref["fraction_of_datasheet_peak"] is None and 0 < ref["fraction_of_measured_matmul"]
    db = b["methods"]["dreambooth"]
    assert db["train_steps_per_s"] > 0 and db["flops_per_step"] > 0
    assert db["config"]["channels_last"] == "no" and db["config"]["compile"] == "auto"  # --set reached the method
    # A DreamBooth step (1 instance + 1 class image, UNet fwd+bwd) costs about what the reference step does
    # (the reference also runs the VAE encoder and text encoder, which the method caches).
    assert 0.2 < db["flops_per_step"] / ref["flops_per_step"] < 1.5
    assert b["sampling"]["images_per_s"] > 0 and b["sampling"]["flops_per_image"] > 0
    assert b["scoring"]["images_per_s"] > 0 and set(b["scoring"]["towers"]) == {"dino", "clip"}
    pk = b["packing"]  # two spawned workers training side by side, on one clock
    assert pk["method"] == "dreambooth" and pk["jobs"] == 2 and len(pk["per_job_steps_per_s"]) == 2
    assert pk["aggregate_steps_per_s"] > 0 and pk["window_s"] > 0
    assert pk["aggregate_steps_per_s"] <= sum(pk["per_job_steps_per_s"]) * 1.0001  # a window spans each loop
    assert pk["speedup_vs_reference"] == pytest.approx(pk["aggregate_steps_per_s"] / ref["train_steps_per_s"])
    pi = b["packing_inprocess"]  # the same two jobs in the bench process, beside the process kind
    assert pi["supported"] and pi["method"] == "dreambooth" and pi["jobs"] == 2 and pi["window_s"] > 0
    assert pi["aggregate_steps_per_s"] == pytest.approx(2 * 2 / pi["window_s"])
    assert pi["vs_process_packing"] == pytest.approx(pi["aggregate_steps_per_s"] / pk["aggregate_steps_per_s"])
    assert pi["speedup_vs_reference"] == pytest.approx(pi["aggregate_steps_per_s"] / ref["train_steps_per_s"])
    sf = b["score_folder"]  # `dreambench score` end to end on protocol-laid-out PNGs
    assert sf["images"] == 12 and sf["seconds"] > 0 and sf["images_per_s"] == pytest.approx(12 / sf["seconds"])
    est = b["estimate"]
    assert est["subjects"] == 30 and est["total_s"] > 0
    assert est["per_method"]["dreambooth"]["images"] == 30 * 25 * 4
    assert "random-init" in res.output and "estimated full protocol" in res.output and "x2 packed" in res.output
    assert "x2 in-process" in res.output and "process packing" in res.output


def test_protocol_folder_is_scoreable_layout(tmp_path):
    from dreambench.bench import write_protocol_folder
    from dreambench.manifest import read_manifest

    n = write_protocol_folder(tmp_path, 105, 32, distinct=7)
    m = read_manifest(tmp_path)
    assert n == len(m) == 105
    # The protocol's order: 25 prompts x 4 seeds of the first subject, then the second subject.
    assert m["subject"].nunique() == 2 and (m.groupby("subject").size().max() == 100)
    assert m.groupby(["subject", "prompt_index"]).size().max() == 4
    assert all((tmp_path / p).is_file() for p in m["path"])
    assert "sks" in m["prompt"].iloc[0] and "sks" not in m["prompt_plain"].iloc[0]


@pytest.mark.slow
def test_packing_reports_a_failing_worker_instead_of_hanging(tmp_path, dataset_dir):
    import torch

    from dreambench.bench import bench_packing

    with pytest.raises(RuntimeError, match=r"worker [01]: .*no-such-method"):
        bench_packing("no-such-method", "tiny", torch.device("cpu"), 2, 1, dataset_dir, tmp_path, threads=1,
                      timeout=120)


def test_synthetic_dataset_passes_the_data_check(tmp_path):
    from dreambench.bench import synthetic_dataset
    from dreambench.data.check import check_dataset

    report = check_dataset(synthetic_dataset(tmp_path / "data", photos=2, size=300), protocol="dreambooth")
    assert report.ok and report.subjects == 30 and report.images == 60


@pytest.mark.slow
def test_gpu_bench_script_runs_on_cpu(tmp_path):
    """benchmarks/gpu_bench.sh is what a GPU session runs; this keeps it working (a smoke test, no figure)."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "OUT": str(tmp_path), "PYTHON": sys.executable, "DEVICE": "cpu", "PROFILE": "tiny",
           "STEPS": "2", "PACK": "0", "SCORE_IMAGES": "8", "DREAMBENCH_DATA": str(tmp_path / "none"),
           "BUDGET_S": "590"}  # the script's own 450 s guard is for the GPU; a loaded CI CPU may need more
    res = subprocess.run(["bash", str(root / "benchmarks" / "gpu_bench.sh"), "all"], env=env, cwd=root,
                         capture_output=True, text=True, timeout=600, check=False)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
    b = json.loads((tmp_path / "bench.json").read_text())  # one call, one bench.json, every target
    assert b["profile"] == "tiny" and b["score_folder"]["images"] == 8 and b["data"].startswith("synthetic")
    assert set(b["methods"]) == {"dreambooth", "dreambooth-lora", "textual-inversion"} and b["reference"]
    summary = (tmp_path / "summary.md").read_text()
    assert "one call" in summary and "dreambooth-lora" in summary
