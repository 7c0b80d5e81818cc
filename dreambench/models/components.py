"""The parts of a Stable Diffusion pipeline as methods see them (:class:`SDComponents`), the dtype they are
loaded in, and the digest of seeded random-init parts: shared by the SD 1.5 (:mod:`.sd`) and SDXL
(:mod:`.sdxl`) builders."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch

from .digest import memo, tensor_digest
from .sd_configs import random_sd_key

if TYPE_CHECKING:
    from .sd_source import SDSource


@dataclass
class SDComponents:
    """The parts of a Stable Diffusion pipeline that methods train and sample with.

    ``source`` names where the weights came from (hub id, absolute folder or file, or ``config:<name>``),
    ``pretrained_weights`` whether they are trained weights, ``where`` how they were found (``folder``,
    ``hub cache``, ``file``, ``config``) and ``digest`` the short digest of the weight files (random-init:
    of the tensors); all are recorded with results (:func:`dreambench.provenance.sd_provenance`).
    """

    unet: Any
    vae: Any
    text_encoder: Any
    tokenizer: Any
    scheduler_config: dict
    resolution: int
    source: str
    pretrained_weights: bool
    where: str = "config"
    digest: str | None = None
    #: ``{"vae_source", "vae_digest"}`` when ``--vae`` replaced the model's VAE, else None.
    vae_override: dict | None = None

    #: The model family (:data:`dreambench.models.profiles.FAMILIES`); :class:`~.sdxl.SDXLComponents` is ``sdxl``.
    family = "sd15"

    def modules(self) -> tuple:
        """Every part that holds weights."""
        return (self.unet, self.vae, self.text_encoder)

    @property
    def vae_scale_factor(self) -> int:
        return 2 ** (len(self.vae.config.block_out_channels) - 1)

    @property
    def latent_size(self) -> int:
        return self.resolution // self.vae_scale_factor

    def to(self, device: torch.device | str, dtype: torch.dtype | None = None) -> SDComponents:
        for m in self.modules():
            m.to(device=device, dtype=dtype) if dtype is not None else m.to(device)
        return self

    def noise_scheduler(self):
        """The DDPM training schedule (1000 steps, scaled-linear betas, epsilon prediction)."""
        from diffusers import DDPMScheduler

        return DDPMScheduler.from_config(self.scheduler_config)


#: The dtype every part is loaded in, whatever the dtype of the files: fp32 master weights (training
#: needs them; on CUDA, sampling runs under fp16 autocast and training under bf16 autocast).
LOAD_DTYPE = torch.float32


def load_folder_parts(src: SDSource, scheduler_cls: type) -> tuple:
    """(unet, vae, text_encoder, tokenizer, scheduler config) of a diffusers folder, the parts SD 1.x and
    SDXL share, each in fp32 from its own weight files (plain or variant); ``scheduler_cls``: the family's
    scheduler (its config is read from the folder)."""
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextModel, CLIPTokenizer

    root, v = str(src.root), src.variants
    kw = {"local_files_only": True}
    unet = UNet2DConditionModel.from_pretrained(root, subfolder="unet", variant=v.get("unet"),
                                                torch_dtype=LOAD_DTYPE, **kw)
    vae = AutoencoderKL.from_pretrained(root, subfolder="vae", variant=v.get("vae"), torch_dtype=LOAD_DTYPE, **kw)
    text_encoder = CLIPTextModel.from_pretrained(root, subfolder="text_encoder", variant=v.get("text_encoder"),
                                                 dtype=LOAD_DTYPE, **kw)
    tokenizer = CLIPTokenizer.from_pretrained(root, subfolder="tokenizer", **kw)
    scheduler = scheduler_cls.from_pretrained(root, subfolder="scheduler", **kw)
    return unet, vae, text_encoder, tokenizer, dict(scheduler.config)


def _random_digest(config_name: str, seed: int, modules: tuple) -> str:
    """The tensor digest of seeded random-init parts, remembered per (configs, seed, library versions):
    the same inputs always build the same tensors, so each combination is hashed once per machine."""
    return memo(random_sd_key(config_name, seed), lambda: tensor_digest(*modules))
