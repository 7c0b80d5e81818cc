"""In-process packing (bench.packing.train_packed) gives each job the weights a separate run gives it."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from dreambench.bench.packing import train_packed
from dreambench.methods.base import SubjectData, make_config
from dreambench.methods.dreambooth import DreamBooth, train_dreambooth_objective
from dreambench.protocol import Subject


def _images(folder: Path, n: int, seed: int) -> list[Path]:
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        a = np.zeros((72, 72, 3), np.uint8)
        a[:] = rng.integers(0, 255, 3)
        a[16:56, 10 + 4 * i:50 + 4 * i] = rng.integers(0, 255, 3)
        paths.append(folder / f"{i:02d}.png")
        Image.fromarray(a).save(paths[-1])
    return paths


def _separate_run(c, pristine: dict, data: SubjectData, cfg, workdir: Path) -> dict:
    """One job trained alone, through the single-job path DreamBooth.train uses (fp32 weights, not rounded)."""
    c.unet.load_state_dict(pristine)
    method = DreamBooth(cfg, c)
    method.progress = False

    def trainable():
        c.unet.requires_grad_(True)
        return list(c.unet.parameters())

    stats = train_dreambooth_objective(method, data, workdir, trainable, "separate")
    return {"state": copy.deepcopy(c.unet.state_dict()), "loss": stats.instance_loss}


def test_packed_jobs_equal_separate_runs(tmp_path):
    from dreambench.models import get_profile, load_sd

    c = load_sd(get_profile("tiny"))
    pristine = copy.deepcopy(c.unet.state_dict())
    jobs = []
    for k, (name, noun) in enumerate([("dog", "dog"), ("backpack", "backpack")]):
        data = SubjectData(Subject(name, noun, "live" if noun == "dog" else "object"),
                           _images(tmp_path / name, 2, seed=k), "sks", noun,
                           class_images=_images(tmp_path / f"class_{name}", 2, seed=10 + k))
        cfg = make_config(DreamBooth.Config, {"lr": 1e-3, "steps": 4, "num_class_images": 2, "seed": 7 * k,
                                              "lr_warmup_steps": 2})
        jobs.append((data, cfg))

    packed, seconds = train_packed(c, [d for d, _ in jobs], [cfg for _, cfg in jobs], torch.device("cpu"),
                                   tmp_path / "packed")
    assert seconds > 0 and len(packed) == 2
    for k, v in c.unet.state_dict().items():  # the shared UNet is left pristine
        assert torch.equal(v, pristine[k]), k
    separate = [_separate_run(c, pristine, d, cfg, tmp_path / f"sep{i}") for i, (d, cfg) in enumerate(jobs)]

    worst = 0.0
    for job, sep in zip(packed, separate):
        assert len(job.stats.instance_loss) == 4
        np.testing.assert_allclose(job.stats.instance_loss, sep["loss"], rtol=1e-5, atol=1e-6)
        state = job.unet.state_dict()
        assert state.keys() == sep["state"].keys()
        for k, v in state.items():
            torch.testing.assert_close(v, sep["state"][k], atol=1e-5, rtol=1e-5, msg=k)
            worst = max(worst, (v - sep["state"][k]).abs().max().item())
    # Training moved the weights, and the two jobs (other photos, other seed) moved them differently.
    moved = [max((job.unet.state_dict()[k] - pristine[k]).abs().max().item() for k in pristine) for job in packed]
    apart = max((packed[0].unet.state_dict()[k] - packed[1].unet.state_dict()[k]).abs().max().item() for k in pristine)
    print(f"packed vs separate: max |dw| {worst:.2e}; moved {moved}; jobs apart {apart:.2e}")
    assert min(moved) > 1e-4 and apart > 1e-4
