"""Image generation shared by the Stable-Diffusion-based methods.

Classifier-free guidance with a choice of sampler (``ddim`` default, ``dpm++`` = DPM-Solver++ multistep,
``euler``), batched across prompts. Determinism: the initial latent of every image is drawn from its own
``torch.Generator`` seeded with the image's seed, on the CPU, before batching; the samplers used are
deterministic (DDIM with eta = 0, Euler without churn, DPM-Solver++), so the same (model, prompt, seed,
sampler, steps, guidance) gives the same image whatever the batch it is computed in, on the same device.
On CUDA out-of-memory the batch is halved and retried.
"""

from __future__ import annotations

import contextlib
from typing import Any

import numpy as np
import torch
from PIL import Image

from ..errors import DreambenchError
from .conditioning import (
    Conditioning,
    encode_prompts,  # noqa: F401  (re-exported: its home before conditioning.py)
    is_sdxl,
    negative_conditioning,
    prompt_conditioning,
)
from .configs import SAMPLERS, SamplingConfig  # re-exported: their home before configs.py
from .interface import GenerationRequest


def auto_flag(value: str | bool, device: torch.device, name: str) -> bool:
    """An ``auto | yes | no`` option resolved for ``device``: ``auto`` means on CUDA only."""
    if isinstance(value, bool):
        return value
    v = str(value).lower()
    if v == "auto":
        return device.type == "cuda"
    if v in ("yes", "true", "on", "1"):
        return True
    if v in ("no", "false", "off", "0"):
        return False
    raise DreambenchError(f"{name} {value!r}: use auto, yes or no")


def compile_module(module: torch.nn.Module, mode: str = "default"):
    """``torch.compile(module)``. A graph that fails to compile (a missing Triton, an unsupported op)
    runs eagerly instead of failing the job: compiling is a speed option, never a correctness one.
    Compiled code is cached per module, so compiling the same module again costs nothing."""
    from torch import _dynamo

    _dynamo.config.suppress_errors = True
    return torch.compile(module) if mode == "default" else torch.compile(module, mode=mode)


@contextlib.contextmanager
def sampling_unet(unet: torch.nn.Module, cfg: SamplingConfig, device: torch.device):
    """The UNet to call while sampling: in channels_last for the duration when ``cfg.channels_last``
    resolves on (then back to the contiguous format, so a worker's next job sees the same layout as a
    fresh process: convolution kernels, and so the last bits of images, depend on it), and compiled when
    ``cfg.sample_compile`` resolves on."""
    last = auto_flag(cfg.channels_last, device, "channels_last")
    if last:
        unet.to(memory_format=torch.channels_last)
    try:
        yield compile_module(unet) if auto_flag(cfg.sample_compile, device, "sample_compile") else unet
    finally:
        if last:
            unet.to(memory_format=torch.contiguous_format)


def make_scheduler(scheduler_config: dict, sampler: str):
    """A fresh inference scheduler of kind ``sampler`` built from the model's DDPM training schedule."""
    from diffusers import DDIMScheduler, DPMSolverMultistepScheduler, EulerDiscreteScheduler, PNDMScheduler

    cfg = {k: v for k, v in scheduler_config.items() if not k.startswith("_")}
    if sampler == "ddim":
        return DDIMScheduler.from_config(cfg)
    if sampler == "dpm++":
        return DPMSolverMultistepScheduler.from_config(cfg, algorithm_type="dpmsolver++")
    if sampler == "euler":
        return EulerDiscreteScheduler.from_config(cfg)
    if sampler == "pndm":  # as StableDiffusionPipeline's scheduler folder configures it for SD 1.x
        return PNDMScheduler.from_config({**cfg, "skip_prk_steps": True})
    raise DreambenchError(f"unknown sampler {sampler!r}; valid: {', '.join(SAMPLERS)}")


def _autocast(device: torch.device, precision: str):
    if precision == "auto":
        precision = "fp16" if device.type == "cuda" else "fp32"
    if precision == "fp32":
        return contextlib.nullcontext()
    dtype = {"fp16": torch.float16, "bf16": torch.bfloat16}.get(precision)
    if dtype is None:
        raise DreambenchError(f"sample_precision {precision!r}: use auto, fp32, fp16 or bf16")
    return torch.autocast(device.type, dtype=dtype)


def initial_latents(seeds: list[int], shape: tuple[int, ...]) -> torch.Tensor:
    """Standard-normal latents, one per seed, each from its own CPU generator (batch-independent)."""
    return torch.stack([torch.randn(shape, generator=torch.Generator("cpu").manual_seed(int(s))) for s in seeds])


def latents_to_images(latents: torch.Tensor) -> list[Image.Image]:
    """Decoded images in [-1, 1] (batch, 3, H, W) -> 8-bit RGB PIL images."""
    arr = ((latents.float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
    return [Image.fromarray(np.ascontiguousarray(a)) for a in arr]


@torch.no_grad()
def sample_latents(components: Any, prompts: list[str], seeds: list[int], cfg: SamplingConfig, steps: int,
                   device: torch.device | str = "cpu", text_encoder=None, tokenizer=None, unet=None) -> torch.Tensor:
    """Final denoised latents of one batch (the UNet's scaled latent space), before VAE decoding.
    ``unet``: the module to call (a compiled wrapper of ``components.unet``), default the UNet itself.
    The conditioning is the family's (:mod:`.conditioning`; SDXL: constant time ids at the profile's
    resolution, as ``StableDiffusionXLPipeline``'s default call)."""
    device = torch.device(device)
    text_encoder = text_encoder or components.text_encoder
    tokenizer = tokenizer or components.tokenizer
    unet = unet if unet is not None else components.unet
    sched = make_scheduler(components.scheduler_config, cfg.sampler)
    sched.set_timesteps(steps, device=device)
    shape = (components.unet.config.in_channels, components.latent_size, components.latent_size)
    latents = initial_latents(seeds, shape).to(device) * sched.init_noise_sigma
    with _autocast(device, cfg.sample_precision):
        cond = prompt_conditioning(components, prompts, device, text_encoder=text_encoder, tokenizer=tokenizer)
        uncond = negative_conditioning(components, cfg.negative_prompt, len(prompts), device, text_encoder, tokenizer)
        context = Conditioning.cat([uncond, cond]).unet_kwargs()
        for t in sched.timesteps:
            model_in = sched.scale_model_input(torch.cat([latents, latents]), t)
            eps_u, eps_c = unet(model_in, t, **context).sample.chunk(2)
            eps = eps_u.float() + cfg.guidance_scale * (eps_c.float() - eps_u.float())
            latents = sched.step(eps, t, latents).prev_sample
    return latents


@torch.no_grad()
def _sample_batch(components: Any, prompts: list[str], seeds: list[int], cfg: SamplingConfig, steps: int,
                  device: torch.device, text_encoder=None, tokenizer=None, unet=None) -> list[Image.Image]:
    latents = sample_latents(components, prompts, seeds, cfg, steps, device, text_encoder, tokenizer, unet)
    vae = components.vae
    # SDXL's own VAE overflows in fp16 (force_upcast): decoded in fp32 as the SDXL pipeline does; the
    # fp16-fix VAE (--vae) clears the flag and decodes under the sampling precision.
    upcast = is_sdxl(components) and getattr(vae.config, "force_upcast", False)
    with contextlib.nullcontext() if upcast else _autocast(device, cfg.sample_precision):
        decoded = vae.decode(latents.float() / vae.config.scaling_factor if upcast else
                             latents / vae.config.scaling_factor).sample
    return latents_to_images(decoded)


def sample_images(components: Any, prompts: list[str], seeds: list[int], cfg: SamplingConfig, steps: int,
                  device: torch.device | str = "cpu", text_encoder=None, tokenizer=None,
                  progress: bool = False) -> list[Image.Image]:
    """One image per (prompt, seed), in order, sampled with classifier-free guidance.

    ``steps`` is the number of sampler steps; ``text_encoder``/``tokenizer`` override the components'
    (textual inversion passes its extended ones). Batches of ``cfg.sample_batch_size``; on CUDA
    out-of-memory the batch size is halved and the batch retried, down to 1."""
    if len(prompts) != len(seeds):
        raise ValueError("one seed per prompt")
    device = torch.device(device)
    batch = max(1, cfg.sample_batch_size)
    out: list[Image.Image] = []
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(prompts), desc="sampling", unit="img", leave=False)
    i = 0
    with sampling_unet(components.unet, cfg, device) as unet:
        while i < len(prompts):
            try:
                imgs = _sample_batch(components, prompts[i:i + batch], seeds[i:i + batch], cfg, steps, device,
                                     text_encoder, tokenizer, unet)
            except torch.OutOfMemoryError:
                if batch == 1:
                    raise
                batch //= 2
                torch.cuda.empty_cache()
                continue
            out.extend(imgs)
            i += len(imgs)
            if bar is not None:
                bar.update(len(imgs))
    if bar is not None:
        bar.close()
    return out


def sampling_info(cfg: SamplingConfig, steps: int) -> dict:
    """What is recorded with results about how images were sampled."""
    return {"sampler": cfg.sampler, "sample_steps": steps, "guidance_scale": cfg.guidance_scale}


#: Sampler steps when a method config leaves ``sample_steps`` unset (the protocol's DDIM 50).
DEFAULT_SAMPLE_STEPS = 50


def sample_requests(components: Any, requests: list[GenerationRequest], cfg: SamplingConfig,
                    device: torch.device | str = "cpu", tokenizer=None) -> list[Image.Image]:
    """One image per generation request, with the sampler settings of a method config; the
    ``generate`` of every SD-based method."""
    components.to(device)
    return sample_images(components, [r.prompt for r in requests], [r.seed for r in requests], cfg,
                         cfg.sample_steps or DEFAULT_SAMPLE_STEPS, device, tokenizer=tokenizer)
