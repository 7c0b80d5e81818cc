"""`dreambench bench` on CPU with the tiny profile: every figure measured, nothing invented."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from dreambench.cli import main


@pytest.mark.slow
def test_bench_tiny_cpu(tmp_path, dataset_dir, monkeypatch):
    monkeypatch.setenv("DREAMBENCH_DATA", str(dataset_dir))
    res = CliRunner().invoke(main, ["--results", str(tmp_path), "bench", "--profile", "tiny", "--device", "cpu",
                                    "--steps", "2", "--batch", "2", "--score-batch", "4", "--threads", "1"])
    assert res.exit_code == 0, res.output
    b = json.loads((tmp_path / "bench.json").read_text())
    assert b["profile"] == "tiny" and b["device"] == "cpu" and b["weights"] == "random-init"
    assert b["peak"]["datasheet_tflops"] is None  # no datasheet figure for a CPU: none is made up
    assert b["peak"]["matmul"]["tflops"] > 0
    ref = b["reference"]
    assert ref["train_steps_per_s"] > 0 and ref["flops_per_step"] > 0 and ref["peak_mem_GB"] is None
    assert ref["fraction_of_datasheet_peak"] is None and 0 < ref["fraction_of_measured_matmul"]
    db = b["methods"]["dreambooth"]
    assert db["train_steps_per_s"] > 0 and db["flops_per_step"] > 0
    # A DreamBooth step (1 instance + 1 class image, UNet fwd+bwd) costs about what the reference step does
    # (the reference also runs the VAE encoder and text encoder, which the method caches).
    assert 0.2 < db["flops_per_step"] / ref["flops_per_step"] < 1.5
    assert b["sampling"]["images_per_s"] > 0 and b["sampling"]["flops_per_image"] > 0
    assert b["scoring"]["images_per_s"] > 0 and set(b["scoring"]["towers"]) == {"dino", "clip"}
    est = b["estimate"]
    assert est["subjects"] == 30 and est["total_s"] > 0
    assert est["per_method"]["dreambooth"]["images"] == 30 * 25 * 4
    assert "random-init" in res.output and "estimated full protocol" in res.output
