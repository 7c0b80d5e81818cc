"""Speed options change speed, not results: channels_last and torch.compile (the CUDA defaults) give the
same losses and images as the plain eager, contiguous path, and leave the UNet as they found it."""

from __future__ import annotations

import copy
import functools
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch._dynamo.utils import counters

from dreambench.errors import DreambenchError
from dreambench.methods.base import SubjectData, make_config
from dreambench.methods.dreambooth import DreamBooth
from dreambench.methods.sampling import SamplingConfig, auto_flag, sample_images
from dreambench.protocol import Subject


@pytest.fixture(scope="module")
def tiny():
    from dreambench.models import get_profile, load_sd

    c = load_sd(get_profile("tiny"))
    return c, copy.deepcopy(c.unet.state_dict())


def _photos(folder: Path) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for i in range(2):
        a = np.zeros((80, 80, 3), np.uint8)
        a[:] = (40 * i, 100, 200)
        a[20:60, 20:60] = (250, 10, 10)
        out.append(folder / f"{i}.png")
        Image.fromarray(a).save(out[-1])
    return out


def _train(c, state, photos, workdir: Path, **speed) -> list[float]:
    c.unet.load_state_dict(state)
    cfg = make_config(DreamBooth.Config, {"steps": 6, "lr": 1e-3, "with_prior_preservation": False, **speed})
    m = DreamBooth(cfg, c, "cpu")
    m.progress = False
    m.train(SubjectData(Subject("toy", "dog", "live"), photos), workdir)
    return m.stats.instance_loss


def _spy_compile(monkeypatch) -> list:
    """Record torch.compile calls and compile with aot_eager, which traces the UNet (and its backward) as
    inductor does, without minutes of C++ code generation on a CPU."""
    calls = []
    real_compile = torch.compile

    def spy(model, **kw):
        calls.append((model, kw))
        return real_compile(model, backend="aot_eager")

    monkeypatch.setattr(torch, "compile", spy)
    return calls


def test_auto_flag_resolves_per_device():
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert auto_flag("auto", cuda, "x") and not auto_flag("auto", cpu, "x")
    assert auto_flag("yes", cpu, "x") and auto_flag(True, cpu, "x") and not auto_flag("no", cuda, "x")
    with pytest.raises(DreambenchError, match="compile 'sometimes'"):
        auto_flag("sometimes", cpu, "compile")
    # On CPU the defaults keep the plain path (compiling a UNet on CPU costs a minute).
    cfg = make_config(DreamBooth.Config, {})
    assert (cfg.compile, cfg.channels_last, cfg.sample_compile) == ("auto", "auto", "no")
    from dreambench.methods.lora import DreamBoothLoRA

    assert make_config(DreamBoothLoRA.Config, {}).compile == "no"  # re-added adapters would recompile per subject


def test_compiled_channels_last_training_matches_eager(tiny, tmp_path, monkeypatch):
    c, state = tiny
    photos = _photos(tmp_path / "toy")
    eager = _train(c, state, photos, tmp_path / "a", compile="no", channels_last="no")

    compiled = _spy_compile(monkeypatch)
    graphs = counters["stats"]["unique_graphs"]
    fast = _train(c, state, photos, tmp_path / "b", compile="yes", channels_last="yes",
                  compile_mode="reduce-overhead")
    assert compiled == [(c.unet, {"mode": "reduce-overhead"})]
    assert counters["stats"]["unique_graphs"] > graphs  # the steps ran the traced graph, not an eager fallback
    np.testing.assert_allclose(fast, eager, rtol=1e-4, atol=1e-5)
    assert eager[-1] < eager[0]  # the comparison is between runs that learn
    assert c.unet.conv_in.weight.is_contiguous() and not c.unet.training


def test_channels_last_and_compiled_sampling_match_and_restore_layout(tiny, monkeypatch):
    c, state = tiny
    c.unet.load_state_dict(state)
    prompts, seeds = ["a dog", "a red dog"], [1, 2]
    plain = sample_images(c, prompts, seeds, SamplingConfig(channels_last="no"), 4)
    last = sample_images(c, prompts, seeds, SamplingConfig(channels_last="yes"), 4)
    compiled = _spy_compile(monkeypatch)
    graphs = counters["stats"]["unique_graphs"]
    fast = sample_images(c, prompts, seeds, SamplingConfig(channels_last="yes", sample_compile="yes"), 4)
    assert [m for m, _ in compiled] == [c.unet] and counters["stats"]["unique_graphs"] > graphs
    for a, b, f in zip(plain, last, fast):
        assert np.abs(np.asarray(a, np.int16) - np.asarray(b, np.int16)).max() <= 1
        assert np.abs(np.asarray(a, np.int16) - np.asarray(f, np.int16)).max() <= 1
    assert c.unet.conv_in.weight.is_contiguous()
    assert functools.reduce(lambda ok, p: ok and p.is_contiguous(), c.unet.parameters(), True)


def test_losses_read_in_blocks_still_stop_on_the_first_non_finite_step():
    from dreambench.methods.training import LOSS_READ_EVERY, TrainConfig, make_optimizer, run_steps

    w = torch.nn.Parameter(torch.ones(3))
    cfg = make_config(TrainConfig, {"steps": LOSS_READ_EVERY + 5, "lr": 1e-2})
    opt = make_optimizer([w], cfg, torch.device("cpu"))

    def step(i: int):
        loss = (w ** 2).sum() * (float("nan") if i == LOSS_READ_EVERY + 2 else 1.0)
        return loss, loss, loss / 2

    with pytest.raises(DreambenchError, match=f"loss became nan at step {LOSS_READ_EVERY + 2}"):
        run_steps(step, [w], opt, cfg, torch.device("cpu"), progress=False, desc="toy")

    w = torch.nn.Parameter(torch.ones(3))  # the NaN step poisoned the first one
    opt = make_optimizer([w], cfg, torch.device("cpu"))
    stats = run_steps(lambda i: ((w ** 2).sum(),) * 2 + ((w ** 2).sum() / 2,), [w], opt, cfg,
                      torch.device("cpu"), progress=False)
    assert len(stats.instance_loss) == len(stats.prior_loss) == LOSS_READ_EVERY + 5
    assert stats.prior_loss[0] == pytest.approx(stats.instance_loss[0] / 2)
    assert stats.instance_loss[-1] < stats.instance_loss[0] and stats.started > 0
