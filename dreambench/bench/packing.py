"""In-process packing: K DreamBooth jobs trained in one process on one device, their steps interleaved.

Packing K worker processes on one GPU (``run --jobs-per-gpu K``) time-slices them unless CUDA MPS runs.
Here one process holds K UNet copies, each with its own optimizer, data and seeded generator, and issues
step k of every job in turn; on CUDA each job's kernels go to its own ``torch.cuda.Stream``, so one job's
kernels can fill the gaps another leaves (host-side launches, small kernels, the optimizer). On a CPU the
same code runs the jobs one after the other.

Each job trains exactly as :func:`dreambench.methods.dreambooth.train_dreambooth_objective` trains one
(same :class:`~dreambench.methods.training.DreamBoothData`, loss, optimizer, schedule, clipping and
seeds), so its weights equal those of a separate run within float tolerance
(``tests/test_methods_packing.py``). Jobs share the frozen VAE, text encoder and tokenizer; only the
UNet is fine-tuned (``train_text_encoder`` is not supported here).
"""

from __future__ import annotations

import contextlib
import copy
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..errors import DreambenchError
from ..methods.dreambooth import DreamBooth, prior_class_images
from ..methods.interface import SubjectData
from ..methods.priors import class_prompt
from ..methods.training import (
    LOSS_READ_EVERY,
    DreamBoothData,
    LossLog,
    TrainConfig,
    TrainStats,
    check_steps,
    finish_unet,
    freeze,
    make_optimizer,
    optimizer_step,
    train_autocast,
    training_unet,
    warmup_schedule,
)


@dataclass
class PackedJob:
    """One job of a pack: its trained UNet (its own copy) and what its loop reported."""

    unet: torch.nn.Module
    stats: TrainStats


class _Job:
    """The per-job state of the interleaved loop."""

    def __init__(self, components: Any, data: SubjectData, cfg: TrainConfig, device: torch.device, workdir: Path):
        if getattr(cfg, "train_text_encoder", False):
            raise DreambenchError("in-process packing trains the UNet only: train_text_encoder must be off")
        check_steps(cfg)
        self.cfg = cfg
        classes = prior_class_images(cfg, DreamBooth(cfg, components, device), data, workdir)
        self.data = DreamBoothData(components, data.images, classes, data.training_prompt(data.identifier),
                                   class_prompt(data.class_noun), cfg, device)
        self.unet = copy.deepcopy(components.unet)
        self.unet.requires_grad_(True)
        self.params = list(self.unet.parameters())
        self.module = training_unet(self.unet, cfg, device)
        self.opt = make_optimizer(self.params, cfg, device)
        self.sched = warmup_schedule(self.opt, cfg)
        self.autocast = train_autocast(cfg, device)
        self.stats = TrainStats()
        self.log = LossLog(self.stats, f"packed dreambooth {data.subject.name}")
        self.stream = torch.cuda.Stream(device) if device.type == "cuda" else None

    def step(self, step: int) -> None:
        """Step ``step`` of this job (the body of :func:`~dreambench.methods.training.run_steps`)."""
        with self.autocast:
            loss, inst, prior = self.data.step_loss(self.module, self.cfg.prior_loss_weight)
        optimizer_step(loss, self.params, self.opt, self.sched, self.cfg)
        self.log.add(step, loss, inst, prior)
        if (step + 1) % LOSS_READ_EVERY == 0 or step + 1 == self.cfg.steps:
            self.log.flush()  # under this job's stream: waits for this job's kernels only


def train_packed(components: Any, subjects: list[SubjectData], cfgs: list[TrainConfig], device: torch.device,
                 workdir: Path) -> tuple[list[PackedJob], float]:
    """Train one DreamBooth UNet per ``(subjects[i], cfgs[i])`` in this process, steps interleaved.

    ``components.unet`` must hold the pristine weights: each job fine-tunes a deep copy of it and
    ``components`` is left unchanged. Returns the jobs' UNets (eval mode, frozen) with their stats, and
    the wall seconds of the interleaved loop (all jobs, first step to last)."""
    if len(subjects) != len(cfgs) or not subjects:
        raise DreambenchError(f"train_packed: {len(subjects)} subjects for {len(cfgs)} configs")
    components.to(device)
    freeze(components.vae, components.text_encoder, components.unet)
    jobs = [_Job(components, d, cfg, device, Path(workdir) / f"job{i}") for i, (d, cfg) in enumerate(zip(subjects, cfgs))]
    current = torch.cuda.current_stream(device) if device.type == "cuda" else None
    for j in jobs:
        if j.stream is not None:
            j.stream.wait_stream(current)  # the cached latents, embeddings and weights were made on it
    t0 = time.perf_counter()
    started = time.monotonic()
    try:
        for step in range(max(j.cfg.steps for j in jobs)):
            for j in jobs:
                if step < j.cfg.steps:
                    with torch.cuda.stream(j.stream) if j.stream is not None else contextlib.nullcontext():
                        j.step(step)
        if current is not None:
            for j in jobs:
                current.wait_stream(j.stream)
            torch.cuda.synchronize(device)
    finally:
        for j in jobs:
            finish_unet(j.unet, j.cfg)
            freeze(j.unet)
    seconds = time.perf_counter() - t0
    for j in jobs:
        j.stats.started, j.stats.seconds = started, seconds
    return [PackedJob(j.unet, j.stats) for j in jobs], seconds
