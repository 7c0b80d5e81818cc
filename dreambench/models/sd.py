"""Stable Diffusion parts (UNet, VAE, text encoder, tokenizer, noise schedule) for a model profile.

Real weights come from a hub id or a local diffusers folder via ``from_pretrained``; random-init
models are built from the JSON configs in ``configs/`` with the same classes, so every later step
runs the same code whatever the weights.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..errors import ModelLoadError
from .profiles import ModelProfile
from .tokenizer import clip_tokenizer

CONFIG_DIR = Path(__file__).resolve().parent / "configs"


@dataclass
class SDComponents:
    """The parts of a Stable Diffusion pipeline that methods train and sample with.

    ``source`` names where the weights came from (hub id, folder, or ``config:<name>``) and
    ``pretrained_weights`` whether they are trained weights; both are recorded with results.
    """

    unet: Any
    vae: Any
    text_encoder: Any
    tokenizer: Any
    scheduler_config: dict
    resolution: int
    source: str
    pretrained_weights: bool

    @property
    def vae_scale_factor(self) -> int:
        return 2 ** (len(self.vae.config.block_out_channels) - 1)

    @property
    def latent_size(self) -> int:
        return self.resolution // self.vae_scale_factor

    def to(self, device: torch.device | str, dtype: torch.dtype | None = None) -> SDComponents:
        for m in (self.unet, self.vae, self.text_encoder):
            m.to(device=device, dtype=dtype) if dtype is not None else m.to(device)
        return self

    def noise_scheduler(self):
        """The DDPM training schedule (1000 steps, scaled-linear betas, epsilon prediction)."""
        from diffusers import DDPMScheduler

        return DDPMScheduler.from_config(self.scheduler_config)


def _read_config(name: str, part: str) -> dict:
    path = CONFIG_DIR / f"{name}_{part}.json"
    if not path.is_file():
        raise ModelLoadError(f"no model config {path.name} in {CONFIG_DIR}")
    return json.loads(path.read_text())


def build_random_sd(config_name: str, resolution: int, seed: int = 0) -> SDComponents:
    """Random-init SD parts from the configs ``configs/<config_name>_{unet,vae,text_encoder}.json``.

    Seeded, so two builds with the same seed are identical (the engine relies on it to restore
    pristine weights)."""
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        unet = UNet2DConditionModel.from_config(_read_config(config_name, "unet"))
        vae = AutoencoderKL.from_config(_read_config(config_name, "vae"))
        text_cfg = {k: v for k, v in _read_config(config_name, "text_encoder").items() if k != "architectures"}
        text_encoder = CLIPTextModel(CLIPTextConfig(**text_cfg))
    return SDComponents(
        unet, vae, text_encoder, clip_tokenizer(), _read_config(config_name, "scheduler"), resolution,
        f"config:{config_name}", False,
    )


def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", "", "false", "False")


def hub_reachable(timeout: float = 3.0) -> bool:
    """Whether the Hugging Face hub's host accepts a TCP connection (``HF_ENDPOINT`` respected)."""
    import socket
    from urllib.parse import urlparse

    host = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co")).hostname or "huggingface.co"
    try:
        socket.create_connection((host, 443), timeout=timeout).close()
        return True
    except OSError:
        return False


def _cached(repo_id: str) -> bool:
    try:
        from huggingface_hub import snapshot_download

        snapshot_download(repo_id, local_files_only=True)
        return True
    except Exception:  # noqa: BLE001  (any failure means: not in the local cache)
        return False


def load_pretrained_sd(model: str, resolution: int, profile_name: str = "sd15") -> SDComponents:
    """SD parts from a local diffusers folder or a hub id (``model_index.json`` layout).

    Raises :class:`ModelLoadError` with one line naming the profile, the path or id and what to do."""
    from diffusers import AutoencoderKL, DDPMScheduler, UNet2DConditionModel
    from transformers import CLIPTextModel, CLIPTokenizer

    looks_local = model.startswith((".", "/", "~")) or os.sep in model and Path(model).expanduser().exists()
    path = Path(model).expanduser()
    if looks_local or path.exists():
        if not (path / "model_index.json").is_file():
            raise ModelLoadError(
                f"profile {profile_name}: {path} is not a diffusers Stable Diffusion folder (no model_index.json); "
                "pass --model /path/to/stable-diffusion-v1-5 or a hub id"
            )
        kwargs: dict = {"local_files_only": True}
        src = str(path)
    else:
        src = model
        # The local hub cache first; the network only when the cache lacks it and the hub answers, so an
        # offline machine fails in seconds rather than after a minute of retries.
        kwargs = {"local_files_only": _offline() or _cached(model) or not hub_reachable()}
    try:
        unet = UNet2DConditionModel.from_pretrained(src, subfolder="unet", **kwargs)
        vae = AutoencoderKL.from_pretrained(src, subfolder="vae", **kwargs)
        text_encoder = CLIPTextModel.from_pretrained(src, subfolder="text_encoder", **kwargs)
        tokenizer = CLIPTokenizer.from_pretrained(src, subfolder="tokenizer", **kwargs)
        scheduler = DDPMScheduler.from_pretrained(src, subfolder="scheduler", **kwargs)
    except Exception as e:  # hub/network/file errors come in many types; the user needs one line
        raise ModelLoadError(
            f"profile {profile_name}: cannot load Stable Diffusion from {src!r} ({type(e).__name__}); "
            "pass --model /path/to/local/stable-diffusion-v1-5 (a diffusers folder), or download it first "
            "(with HF_HUB_OFFLINE=1 only the local hub cache is used)"
        ) from e
    return SDComponents(unet, vae, text_encoder, tokenizer, dict(scheduler.config), resolution, src, True)


def load_sd(profile: ModelProfile, model: str | None = None, seed: int = 0) -> SDComponents:
    """The SD parts of ``profile`` on the CPU in fp32; ``model`` overrides the profile's hub id/folder."""
    if profile.pretrained_weights:
        return load_pretrained_sd(model or profile.sd_model, profile.resolution, profile.name)
    if model:
        raise ModelLoadError(
            f"profile {profile.name} builds random-init models from configs; --model applies to --profile sd15"
        )
    return build_random_sd(profile.sd_model, profile.resolution, seed)
