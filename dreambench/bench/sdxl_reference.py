"""The reference loop of ``dreambench bench`` on SDXL: one step of diffusers' ``train_dreambooth_lora_sdxl.py``.

Full fine-tuning is not the SDXL reference (DreamBooth on SDXL is refused: more than 80 GB at fp32 AdamW);
the script's own LoRA loop is. Its step: PEFT LoRA (rank 4, alpha 4, Gaussian init) on the UNet's
``to_q``/``to_k``/``to_v``/``to_out.0``, the VAE encoding the 1024 px pixels every step (fp32, as the
script keeps it), prompt embeddings computed once (frozen text encoders), constant time ids, the UNet under
autocast (bf16 on CUDA, as the suite's SD 1.5 reference loop; the script's fp16 needs a grad scaler), AdamW
(weight decay 1e-4), gradient clipping at 1.0.
"""

from __future__ import annotations

import contextlib
from typing import Any

import torch

from ..methods.conditioning import prompt_conditioning

ADAPTER = "reference"


def sdxl_lora_reference_step_fn(components: Any, device: torch.device, seed: int = 0, rank: int = 4):
    """One step of the script's loop, as a closure (``step.close()`` removes its adapter afterwards)."""
    from peft import LoraConfig

    c = components
    gen = torch.Generator("cpu").manual_seed(seed)
    res = c.resolution
    pixels = (torch.rand(1, 3, res, res, generator=gen) * 2 - 1).to(device)
    sched = c.noise_scheduler()
    for m in c.modules():
        m.requires_grad_(False)
    with torch.no_grad():
        cond = prompt_conditioning(c, ["a photo of sks dog"], device)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        c.unet.add_adapter(LoraConfig(r=rank, lora_alpha=rank, init_lora_weights="gaussian",
                                      target_modules=["to_k", "to_q", "to_v", "to_out.0"]), adapter_name=ADAPTER)
    params = [p for n, p in c.unet.named_parameters() if "lora_" in n]
    for p in params:
        p.requires_grad_(True)
    c.unet.to(device).train()
    opt = torch.optim.AdamW(params, lr=1e-4, weight_decay=1e-4)
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else contextlib.nullcontext()

    def step() -> None:
        with torch.no_grad():
            latents = c.vae.encode(pixels).latent_dist.sample() * c.vae.config.scaling_factor
        with autocast:
            noise = torch.randn_like(latents)
            t = torch.randint(0, sched.config.num_train_timesteps, (latents.shape[0],), device=device)
            noisy = sched.add_noise(latents, noise, t)
            pred = c.unet(noisy, t, **cond.unet_kwargs()).sample
        loss = torch.nn.functional.mse_loss(pred.float(), noise.float())
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)

    def close() -> None:
        c.unet.unload_lora()
        c.unet.eval()

    step.close = close  # type: ignore[attr-defined]
    return step
