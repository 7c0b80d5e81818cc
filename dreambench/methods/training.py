"""Training code shared by the fine-tuning methods (DreamBooth, DreamBooth-LoRA, textual inversion).

The objective is the DreamBooth loss (Ruiz et al. 2023, eq. 2) with the epsilon- (or v-) prediction
parameterization of Stable Diffusion::

    L = mean_i ||eps_hat(z_t, t, c_inst) - eps||^2  +  lambda * mean_j ||eps_hat(z'_t', t', c_cls) - eps'||^2

the first term over the instance images with the prompt "a [V] [class noun]", the second (prior
preservation) over class images sampled from the frozen model with "a [class noun]". Each term is averaged
over its own examples; instance and class examples go through the UNet in ONE forward pass (batch concat).

Speed: VAE latent distributions of instance and class images are computed once (``cache_latents``) and a
latent is sampled from them each step; prompt embeddings are computed once when the text encoder is
frozen; on CUDA the step runs under bf16 autocast with fp32 master weights and a fused AdamW (foreach on
CPU), the UNet in channels_last and wrapped in ``torch.compile`` (options ``channels_last`` and
``compile``, ``auto`` = on CUDA only); SDPA attention is diffusers' default; ``gradient_checkpointing``
trades compute for memory. ``/work/shared/perf/README.md`` measured each of these on an H100:
4.5 steps/s for the plain loop, 6.8 with the caches and fused AdamW, 11.6 with compile.
"""

from __future__ import annotations

import contextlib
import math
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from ..errors import DreambenchError
from ..photos import square_pixels, take
from .conditioning import (
    Conditioning,
    as_conditioning,
    constant_time_ids,
    crop_time_ids,
    is_sdxl,
    prompt_conditioning,
)
from .configs import TrainConfig  # re-exported: its home before configs.py
from .sampling import auto_flag, compile_module


# ----------------------------------------------------------------------------------------------- data
def load_pixels(paths: list[Path], resolution: int) -> torch.Tensor:
    """Images as training squares (:func:`dreambench.photos.square_pixels`: the centre square,
    bicubic, antialiased), a float tensor (N, 3, resolution, resolution) in [-1, 1]. Photos the job's data
    check already decoded are taken from it (:func:`dreambench.photos.take`), not decoded again."""
    return load_photos(paths, resolution)[0]


def load_photos(paths: list[Path], resolution: int) -> tuple[torch.Tensor, list[tuple[int, int]]]:
    """(:func:`load_pixels`, each photo's full (width, height) after its EXIF orientation)."""
    import numpy as np

    out, sizes = [], []
    for p in paths:
        with warnings.catch_warnings():  # the data check reported conversions already
            warnings.simplefilter("ignore")
            photo = take(p, resolution)
            im = square_pixels(photo.image, resolution)
        out.append(torch.from_numpy(np.asarray(im).copy()).permute(2, 0, 1))
        sizes.append(tuple(photo.size))
    return torch.stack(out).float() / 127.5 - 1, sizes


@torch.no_grad()
def latent_distribution(vae, pixels: torch.Tensor, device: torch.device, batch: int = 8) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and std of the VAE posterior q(z|x) for each image (unscaled latent space), on ``device``."""
    means, stds = [], []
    dtype = next(vae.parameters()).dtype
    for i in range(0, len(pixels), batch):
        dist = vae.encode(pixels[i:i + batch].to(device, dtype)).latent_dist
        means.append(dist.mean.float())
        stds.append(dist.std.float())
    return torch.cat(means), torch.cat(stds)


def host_to_device(t: torch.Tensor, device: torch.device) -> torch.Tensor:
    """A CPU tensor on ``device``. To CUDA it goes through pinned memory without blocking, so drawing the
    step's noise on the CPU (seeded, batch-independent) never makes the host wait for the GPU."""
    if device.type != "cuda":
        return t.to(device)
    return t.pin_memory().to(device, non_blocking=True)


class LatentSource:
    """Training latents of a set of images: sampled each step from the cached posterior, or (without
    caching) re-encoded from pixels each step. Latents are scaled by the VAE's scaling factor."""

    def __init__(self, vae, pixels: torch.Tensor, device: torch.device, cache: bool):
        self.vae, self.device, self.cache = vae, device, cache
        self.scale = vae.config.scaling_factor
        self.pixels = pixels
        self.n = len(pixels)
        if cache:
            self.mean, self.std = latent_distribution(vae, pixels, device)

    def sample(self, idx: list[int], generator: torch.Generator) -> torch.Tensor:
        if self.cache:
            mean, std = self.mean[idx], self.std[idx]
        else:
            mean, std = latent_distribution(self.vae, self.pixels[idx], self.device)
        eps = host_to_device(torch.randn(mean.shape, generator=generator), self.device)
        return (mean + std * eps) * self.scale


class IndexStream:
    """Indices 0..n-1 in a fresh seeded permutation per epoch (every image used once per epoch)."""

    def __init__(self, n: int, generator: torch.Generator):
        self.n, self.gen, self.order, self.pos = n, generator, [], 0

    def take(self, k: int) -> list[int]:
        out = []
        while len(out) < k:
            if self.pos >= len(self.order):
                self.order, self.pos = torch.randperm(self.n, generator=self.gen).tolist(), 0
            out.append(self.order[self.pos])
            self.pos += 1
        return out


# ----------------------------------------------------------------------------------------------- loss
def diffusion_target(noise_scheduler, latents: torch.Tensor, noise: torch.Tensor, timesteps: torch.Tensor):
    pred_type = noise_scheduler.config.prediction_type
    if pred_type == "epsilon":
        return noise
    if pred_type == "v_prediction":
        return noise_scheduler.get_velocity(latents, noise, timesteps)
    raise DreambenchError(f"unsupported prediction type {pred_type!r}")


def dreambooth_loss(unet, noise_scheduler, instance_latents: torch.Tensor,
                    instance_embeds: torch.Tensor | Conditioning, class_latents: torch.Tensor | None,
                    class_embeds: torch.Tensor | Conditioning | None, prior_loss_weight: float,
                    generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """The DreamBooth loss of one step: ``(loss, instance_loss, prior_loss)``.

    Instance and class examples are concatenated into one UNet batch; noise and timesteps are drawn
    from ``generator`` (CPU) in a fixed order. Without class examples the loss is the instance term.
    The embeddings are hidden states (SD 1.5) or a :class:`~.conditioning.Conditioning` (any family).
    Each term is the mean over its own examples, with no SNR weighting (so none of the SDXL script's
    min-SNR weights over the doubled batch, diffusers PR #6356)."""
    n = len(instance_latents)
    latents, cond = instance_latents, as_conditioning(instance_embeds)
    if class_latents is not None:
        latents = torch.cat([instance_latents, class_latents])
        cond = Conditioning.cat([cond, as_conditioning(class_embeds)])
    device = latents.device
    noise = host_to_device(torch.randn(latents.shape, generator=generator), device)
    timesteps = host_to_device(torch.randint(0, noise_scheduler.config.num_train_timesteps, (len(latents),),
                                             generator=generator), device)
    noisy = noise_scheduler.add_noise(latents, noise, timesteps)
    pred = unet(noisy, timesteps, **cond.unet_kwargs()).sample.float()
    target = diffusion_target(noise_scheduler, latents, noise, timesteps).float()
    instance_loss = F.mse_loss(pred[:n], target[:n], reduction="mean")
    if class_latents is None:
        return instance_loss, instance_loss, None
    prior_loss = F.mse_loss(pred[n:], target[n:], reduction="mean")
    return instance_loss + prior_loss_weight * prior_loss, instance_loss, prior_loss


# ----------------------------------------------------------------------------------------------- loop
def use_bf16(cfg: TrainConfig, device: torch.device) -> bool:
    if cfg.mixed_precision not in ("auto", "no", "bf16"):
        raise DreambenchError(f"mixed_precision {cfg.mixed_precision!r}: use auto, no or bf16")
    return cfg.mixed_precision == "bf16" or (cfg.mixed_precision == "auto" and device.type == "cuda")


def make_optimizer(params: list[torch.nn.Parameter], cfg: TrainConfig, device: torch.device,
                   lr: float | None = None, weight_decay: float | None = None) -> torch.optim.Optimizer:
    """AdamW, fused on CUDA and foreach (multi-tensor) on CPU."""
    kw = {"fused": True} if device.type == "cuda" else {"foreach": True}
    return torch.optim.AdamW(params, lr=cfg.lr if lr is None else lr, betas=(cfg.adam_beta1, cfg.adam_beta2),
                             weight_decay=cfg.adam_weight_decay if weight_decay is None else weight_decay,
                             eps=cfg.adam_epsilon, **kw)


@dataclass
class TrainStats:
    """What a training run reports: per-step losses, wall time and throughput (steps per second).
    ``started`` is ``time.monotonic()`` when the first step began (comparable across processes of one
    machine, so concurrent runs can be put on one time line)."""

    instance_loss: list[float] = field(default_factory=list)
    prior_loss: list[float] = field(default_factory=list)
    seconds: float = 0.0
    started: float = 0.0

    @property
    def steps_per_s(self) -> float:
        return len(self.instance_loss) / self.seconds if self.seconds > 0 else 0.0

    def summary(self) -> dict[str, Any]:
        def tail(xs):
            k = max(1, len(xs) // 10)
            return float(sum(xs[-k:]) / k) if xs else None

        def head(xs):
            k = max(1, len(xs) // 10)
            return float(sum(xs[:k]) / k) if xs else None

        return {"steps": len(self.instance_loss), "seconds": round(self.seconds, 3),
                "steps_per_s": round(self.steps_per_s, 3),
                "instance_loss_first10pct": head(self.instance_loss),
                "instance_loss_last10pct": tail(self.instance_loss),
                "prior_loss_last10pct": tail(self.prior_loss)}


#: Losses are read back from the device every this many steps: reading one makes the host wait for the
#: GPU, which at one read per step leaves the GPU idle while the next step's kernels are launched.
LOSS_READ_EVERY = 25


class LossLog:
    """Per-step losses kept on the device and read back in blocks of :data:`LOSS_READ_EVERY` steps."""

    def __init__(self, stats: TrainStats, desc: str):
        self.stats, self.desc = stats, desc
        self.pending: list[tuple[int, torch.Tensor, torch.Tensor, torch.Tensor | None]] = []

    def add(self, step: int, loss: torch.Tensor, inst: torch.Tensor, prior: torch.Tensor | None) -> None:
        self.pending.append((step, loss.detach(), inst.detach(), None if prior is None else prior.detach()))

    def flush(self) -> None:
        """Read the pending losses (one device sync); a non-finite loss stops training, naming its step."""
        if not self.pending:
            return
        rows = torch.stack([torch.stack([loss.float(), inst.float(), (inst if prior is None else prior).float()])
                            for _, loss, inst, prior in self.pending]).tolist()
        for (step, _, _, prior), (loss, inst, p) in zip(self.pending, rows):
            if not math.isfinite(loss):
                raise DreambenchError(f"{self.desc}: loss became {loss} at step {step} (lower the learning rate)")
            self.stats.instance_loss.append(inst)
            if prior is not None:
                self.stats.prior_loss.append(p)
        self.pending = []


def warmup_schedule(optimizer: torch.optim.Optimizer, cfg: TrainConfig) -> torch.optim.lr_scheduler.LambdaLR:
    """Linear learning-rate warm-up over ``cfg.lr_warmup_steps`` steps, then constant."""
    warm = max(0, cfg.lr_warmup_steps)
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: min(1.0, (s + 1) / warm) if warm else 1.0)


def train_autocast(cfg: TrainConfig, device: torch.device):
    """The autocast context of a training step: bf16 per :func:`use_bf16`, else none."""
    return torch.autocast(device.type, dtype=torch.bfloat16) if use_bf16(cfg, device) else contextlib.nullcontext()


def optimizer_step(loss: torch.Tensor, params: list[torch.nn.Parameter], optimizer: torch.optim.Optimizer,
                   sched: torch.optim.lr_scheduler.LRScheduler, cfg: TrainConfig) -> None:
    """Backward, gradient clipping at ``cfg.max_grad_norm`` (0 = off), one optimizer and schedule step."""
    loss.backward()
    if cfg.max_grad_norm > 0:
        torch.nn.utils.clip_grad_norm_(params, cfg.max_grad_norm)
    optimizer.step()
    sched.step()
    optimizer.zero_grad(set_to_none=True)


def run_steps(step_fn: Callable[[int], tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]],
              params: list[torch.nn.Parameter], optimizer: torch.optim.Optimizer, cfg: TrainConfig,
              device: torch.device, progress: bool = True, desc: str = "training",
              after_step: Callable[[], None] | None = None) -> TrainStats:
    """``cfg.steps`` optimizer steps of ``step_fn(step) -> (loss, instance_loss, prior_loss)``.

    Linear warm-up then constant learning rate; gradient clipping at ``cfg.max_grad_norm``; bf16
    autocast per :func:`use_bf16`. ``after_step`` runs after each optimizer step (textual inversion
    restores the frozen embedding rows there)."""
    sched = warmup_schedule(optimizer, cfg)
    autocast = train_autocast(cfg, device)
    stats = TrainStats()
    log = LossLog(stats, desc)
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=cfg.steps, desc=desc, unit="step", leave=False)
    stats.started = time.monotonic()
    t0 = time.perf_counter()
    for step in range(cfg.steps):
        with autocast:
            loss, inst, prior = step_fn(step)
        optimizer_step(loss, params, optimizer, sched, cfg)
        if after_step is not None:
            after_step()
        log.add(step, loss, inst, prior)
        if (step + 1) % LOSS_READ_EVERY == 0 or step + 1 == cfg.steps:
            log.flush()
            if bar is not None:
                bar.set_postfix(loss=f"{stats.instance_loss[-1]:.4f}")
        if bar is not None:
            bar.update(1)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    stats.seconds = time.perf_counter() - t0
    if bar is not None:
        bar.close()
    return stats


class DreamBoothData:
    """Everything a DreamBooth-style step needs that does not change between steps: latent sources of the
    instance and class images, and (frozen text encoder) the instance/class prompt embeddings."""

    def __init__(self, components: Any, instance_images: list[Path], class_images: list[Path],
                 instance_prompt: str, class_prompt: str, cfg: TrainConfig, device: torch.device,
                 text_encoder=None, tokenizer=None, cache_embeddings: bool = True):
        self.components, self.cfg, self.device = components, cfg, device
        self.text_encoder = text_encoder or components.text_encoder
        self.tokenizer = tokenizer or components.tokenizer
        res = components.resolution
        pixels, sizes = load_photos(instance_images, res)
        self.instance = LatentSource(components.vae, pixels, device, cfg.cache_latents)
        self.cls = (LatentSource(components.vae, load_pixels(class_images, res), device, cfg.cache_latents)
                    if class_images else None)
        self.time_ids = self._time_ids(sizes, len(class_images))
        self.instance_prompt, self.class_prompt = instance_prompt, class_prompt
        self.ids = self.tokenizer([instance_prompt, class_prompt], padding="max_length", truncation=True,
                                  max_length=self.tokenizer.model_max_length, return_tensors="pt").input_ids.to(device)
        self.cached: Conditioning | None = None
        if cache_embeddings:
            self.cached = prompt_conditioning(components, [instance_prompt, class_prompt], device,
                                              text_encoder=self.text_encoder, tokenizer=self.tokenizer)
        elif is_sdxl(components):
            raise DreambenchError("training a text encoder on SDXL is not supported (prompt embeddings are cached)")
        self.gen = torch.Generator("cpu").manual_seed(cfg.seed)
        self.inst_idx = IndexStream(self.instance.n, self.gen)
        self.cls_idx = IndexStream(self.cls.n, self.gen) if self.cls is not None else None
        self.noise_scheduler = components.noise_scheduler()

    def _time_ids(self, sizes: list[tuple[int, int]], n_class: int) -> dict[str, torch.Tensor] | None:
        """SDXL: per instance and class image, its time ids (``cfg.time_ids``: ``constant`` or ``crop``,
        :mod:`.conditioning`); class images are sampled at the training resolution, so theirs are the
        constant ones either way. None for SD 1.5."""
        if not is_sdxl(self.components):
            return None
        res = self.components.resolution
        mode = getattr(self.cfg, "time_ids", "constant")
        inst = crop_time_ids(sizes, res) if mode == "crop" else constant_time_ids(res, len(sizes))
        return {"instance": inst, "class": constant_time_ids(res, max(1, n_class))}

    def embeddings(self) -> tuple[Conditioning, Conditioning]:
        """(instance, class) prompt conditioning, one row each (hidden (1, 77, width); SDXL: with pooled
        text and time ids); with gradients when not cached (SD 1.5 only)."""
        if self.cached is not None:
            return self.cached.rows(slice(0, 1)), self.cached.rows(slice(1, 2))
        hidden = self.text_encoder(self.ids)[0]
        return Conditioning(hidden[0:1]), Conditioning(hidden[1:2])

    def _batch(self, cond: Conditioning, kind: str, idx: list[int]) -> Conditioning:
        """``cond`` for the examples ``idx`` of ``kind`` (their own time ids on SDXL)."""
        out = cond.expand(len(idx))
        return out if self.time_ids is None else out.with_time_ids(self.time_ids[kind][idx])

    def step_loss(self, unet, prior_loss_weight: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        b = self.cfg.batch_size
        idx = self.inst_idx.take(b)
        inst = self.instance.sample(idx, self.gen)
        inst_emb, cls_emb = self.embeddings()
        cls_lat = cls_e = None
        if self.cls is not None:
            cidx = self.cls_idx.take(b)
            cls_lat = self.cls.sample(cidx, self.gen)
            cls_e = self._batch(cls_emb, "class", cidx)
        return dreambooth_loss(unet, self.noise_scheduler, inst, self._batch(inst_emb, "instance", idx), cls_lat,
                               cls_e, prior_loss_weight, self.gen)


def training_unet(unet, cfg: TrainConfig, device: torch.device | None = None):
    """The UNet module to call in training, with checkpointing, channels_last and ``torch.compile``
    applied per the config (``auto`` options resolve for the UNet's device). Call it before building the
    optimizer (the memory format changes the parameters' storage) and :func:`finish_unet` after."""
    device = device or next(unet.parameters()).device
    if cfg.gradient_checkpointing:
        unet.enable_gradient_checkpointing()
    if auto_flag(cfg.channels_last, device, "channels_last"):
        unet.to(memory_format=torch.channels_last)
    unet.train()
    return compile_module(unet, cfg.compile_mode) if auto_flag(cfg.compile, device, "compile") else unet


def finish_unet(unet, cfg: TrainConfig) -> None:
    """Undo :func:`training_unet`: eval mode, no checkpointing, contiguous weights (so images sampled
    later do not depend on whether this worker trained before)."""
    if cfg.gradient_checkpointing:
        unet.disable_gradient_checkpointing()
    unet.to(memory_format=torch.contiguous_format)
    unet.eval()


def freeze(*modules) -> None:
    for m in modules:
        m.requires_grad_(False)


def check_steps(cfg: TrainConfig) -> None:
    if cfg.steps < 0 or cfg.batch_size < 1 or not math.isfinite(cfg.lr) or cfg.lr <= 0:
        raise DreambenchError(f"bad training settings: steps={cfg.steps}, batch_size={cfg.batch_size}, lr={cfg.lr}")
