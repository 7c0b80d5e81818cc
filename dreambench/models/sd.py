"""Stable Diffusion parts (UNet, VAE, text encoder, tokenizer, noise schedule) for a model profile.

Real weights come from a hub id or a local diffusers folder via ``from_pretrained``; random-init
models are built from the JSON configs in ``configs/`` with the same classes, so every later step
runs the same code whatever the weights.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import torch

from ..errors import ModelLoadError
from .components import LOAD_DTYPE, SDComponents, _random_digest, load_folder_parts
from .profiles import ModelProfile, list_profiles
from .sd_configs import CONFIG_DIR, config_family, read_config
from .sd_source import (
    FAMILY_HUB_PATTERNS,
    SDSource,
    hub_reachable,
    resolve_folder,
    resolve_sd_source,
    sd_digest,
)
from .sdxl import SDXLComponents, build_random_sdxl, load_folder_xl, load_single_file_xl
from .single_file import load_single_file
from .tokenizer import clip_tokenizer
from .vae_source import replace_vae

# Re-exported from their homes (sd_configs, sd_source), where they lived here before.
__all__ = ["CONFIG_DIR", "LOAD_DTYPE", "SDComponents", "build_random_sd", "hub_reachable", "load_pretrained_sd",
           "load_sd", "read_config"]


def build_random_sd(config_name: str, resolution: int, seed: int = 0) -> SDComponents:
    """Random-init SD parts from the configs ``configs/<config_name>_{unet,vae,text_encoder}.json``.

    Seeded, so two builds with the same seed are identical (the engine relies on it to restore
    pristine weights). A set with a second text encoder builds SDXL parts (:func:`.sdxl.build_random_sdxl`)."""
    if config_family(config_name) == "sdxl":
        return build_random_sdxl(config_name, resolution, seed)
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        unet = UNet2DConditionModel.from_config(read_config(config_name, "unet"))
        vae = AutoencoderKL.from_config(read_config(config_name, "vae"))
        text_cfg = {k: v for k, v in read_config(config_name, "text_encoder").items() if k != "architectures"}
        text_encoder = CLIPTextModel(CLIPTextConfig(**text_cfg))
    return SDComponents(
        unet, vae, text_encoder, clip_tokenizer(), read_config(config_name, "scheduler"), resolution,
        f"config:{config_name}", False, "config", _random_digest(config_name, seed, (unet, vae, text_encoder)),
    )


def _load_folder(src: SDSource) -> tuple:
    """(unet, vae, text_encoder, tokenizer, scheduler config) of a diffusers folder, each part in fp32
    from its own weight files (plain or variant)."""
    from diffusers import DDPMScheduler

    return load_folder_parts(src, DDPMScheduler)


@contextlib.contextmanager
def _quiet_loading():
    """No per-tensor "Loading weights" / "Loading pipeline components" progress bars while the parts
    load (they drown the one-line messages of doctor and run); restored afterwards."""
    from diffusers.utils import logging as dlog
    from transformers.utils import logging as tlog

    was = (tlog.is_progress_bar_enabled(), dlog.is_progress_bar_enabled())
    tlog.disable_progress_bar()
    dlog.disable_progress_bar()
    try:
        yield
    finally:
        if was[0]:
            tlog.enable_progress_bar()
        if was[1]:
            dlog.enable_progress_bar()


def _download(src: SDSource, flag: str, family: str = "sd15") -> SDSource:
    """Fetch the files a ``hub-download`` source needs (plain fp32 safetensors), then read it from the cache."""
    from huggingface_hub import snapshot_download

    snap = Path(snapshot_download(src.source, allow_patterns=FAMILY_HUB_PATTERNS[family]))
    return resolve_folder(snap, "hub", src.source, flag, family)


def _load_parts(src: SDSource, flag: str, family: str) -> tuple:
    """The parts of a resolved source: (unet, vae, text_encoder, tokenizer, scheduler config[, text_encoder_2,
    tokenizer_2])."""
    if family == "sdxl":
        return load_single_file_xl(src.root, flag, LOAD_DTYPE) if src.kind == "single-file" else load_folder_xl(src)
    return load_single_file(src.root, flag, LOAD_DTYPE) if src.kind == "single-file" else _load_folder(src)


def load_pretrained_sd(model: str, resolution: int, profile_name: str = "sd15", flag: str = "--model",
                       family: str = "sd15") -> SDComponents:
    """SD parts of model family ``family`` from a diffusers folder (fp32 or fp16, plain or variant files), a
    hub id (the local hub cache) or a single-file ``.safetensors`` checkpoint, every part in fp32
    (:data:`LOAD_DTYPE`).

    Raises :class:`ModelLoadError` with one line naming ``flag``, the path or id and what to do."""
    src = resolve_sd_source(model, flag, family)
    try:
        if src.kind == "hub-download":
            src = _download(src, flag, family)
        with _quiet_loading():
            parts = _load_parts(src, flag, family)
    except ModelLoadError:
        raise
    except Exception as e:  # library errors come in many types; the user needs one line
        first = (str(e).strip().splitlines() or [""])[0][:300]
        raise ModelLoadError(f"profile {profile_name}: cannot load Stable Diffusion from {src.source} "
                             f"({type(e).__name__}: {first})") from e
    if family == "sdxl":
        comps = SDXLComponents(*parts[:5], resolution, src.source, True, text_encoder_2=parts[5],
                               tokenizer_2=parts[6])
    else:
        comps = SDComponents(*parts[:4], parts[4], resolution, src.source, True)
    comps.where, comps.digest = src.where, sd_digest(src)
    return comps


def load_sd(profile: ModelProfile, model: str | None = None, seed: int = 0, vae: str | None = None) -> SDComponents:
    """The SD parts of ``profile`` on the CPU in fp32; ``model`` overrides the profile's hub id/folder and
    ``vae`` its VAE (:mod:`.vae_source`: a folder, hub id or file, e.g. SDXL's fp16-fix VAE)."""
    if profile.pretrained_weights:
        comps = load_pretrained_sd(model or profile.sd_model, profile.resolution, profile.name,
                                   family=profile.family)
    elif model:
        pretrained = [p.name for p in list_profiles() if p.pretrained_weights]
        raise ModelLoadError(
            f"--model {model}: profile {profile.name} builds random-init models from configs; --model applies "
            f"to the pretrained profiles ({', '.join(pretrained)})"
        )
    else:
        comps = build_random_sd(profile.sd_model, profile.resolution, seed)
    if vae:
        replace_vae(comps, vae)
    return comps
