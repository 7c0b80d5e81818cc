"""The DreamBooth-LoRA artifact on SDXL: the file ``train_dreambooth_lora_sdxl.py`` writes.

``pytorch_lora_weights.safetensors`` holds the UNet adapters in diffusers' key format
(``convert_state_dict_to_diffusers`` of PEFT's state dict: ``...to_q.lora.down.weight`` /
``lora.up``), prefixed ``unet.``, with the PEFT ``LoraConfig`` in the header under
``lora_adapter_metadata`` (so rank and alpha travel with the file). ``StableDiffusionXLPipeline
.load_lora_weights(folder)`` loads it unchanged; :func:`load_sdxl_lora` reads it back to PEFT keys.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from ..errors import ModelLoadError
from . import artifacts
from .conditioning import is_sdxl  # noqa: F401  (lora.py asks through this module)

SDXL_LORA_FILE = "pytorch_lora_weights.safetensors"
PREFIX = "unet."
METADATA_KEY = "lora_adapter_metadata"  # diffusers.loaders.lora_base.LORA_ADAPTER_METADATA_KEY


def _metadata(peft_config) -> dict[str, str]:
    cfg = {k: (sorted(v) if isinstance(v, set) else v) for k, v in peft_config.to_dict().items()}
    packed = {f"{PREFIX}{k}": v for k, v in cfg.items()}
    return {METADATA_KEY: json.dumps(packed, indent=2, sort_keys=True, default=str)}


def save_sdxl_lora(workdir: Path, peft_state: dict[str, torch.Tensor], peft_config) -> Path:
    """Write the adapters (PEFT keys, as ``get_peft_model_state_dict`` gives them) as diffusers' SDXL
    LoRA file in ``workdir`` (fp32, atomically). Returns its path."""
    from diffusers.utils import convert_state_dict_to_diffusers

    state = {PREFIX + k: v for k, v in convert_state_dict_to_diffusers(peft_state).items()}
    return artifacts.save_tensors(Path(workdir) / SDXL_LORA_FILE, state, torch.float32, _metadata(peft_config))


def load_sdxl_lora(path: Path) -> dict[str, torch.Tensor]:
    """The adapters of an SDXL LoRA file (:func:`save_sdxl_lora`, or the script's) in PEFT keys."""
    from diffusers.utils import convert_unet_state_dict_to_peft

    state = artifacts.load_tensors(Path(path))
    unet = {k[len(PREFIX):]: v for k, v in state.items() if k.startswith(PREFIX)}
    if not unet:
        raise ModelLoadError(f"{path}: no UNet LoRA weights (expected keys unet.*)")
    if len(unet) != len(state):
        raise ModelLoadError(f"{path}: holds text-encoder LoRA weights, which dreambench does not train or load")
    return convert_unet_state_dict_to_peft(unet)
