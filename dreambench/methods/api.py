"""The public API of a method plug-in: everything a method may import, in one place (docs/methods.md).

Names here are stable across dreambench 0.x: their signatures only gain optional keyword arguments.
Anything else under :mod:`dreambench.methods` is internal and may change. The worked example is
``tests/plugin_example`` (package ``dreambench_example_plugin``, method ``example-paste``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..images import load_rgb
from ..lazy import LazyModule, lazy_exports
from .configs import SamplingConfig, TrainConfig
from .interface import GenerationRequest, Method, MethodConfig, SubjectData, field
from .priors import class_prompt, ensure_class_images
from .registry import register_method

# The helpers that need torch load on first use (PEP 562), so a plug-in importing only the light names
# keeps planning and the light commands torch-free (docs/methods.md).
_HOMES = {
    **dict.fromkeys(("load_tensors", "save_tensors"), "artifacts"),
    **dict.fromkeys(("encode_prompts", "sample_images", "sample_requests"), "sampling"),
    **dict.fromkeys(("Conditioning", "constant_time_ids", "crop_time_ids", "is_sdxl", "negative_conditioning",
                     "prompt_conditioning"), "conditioning"),
    **dict.fromkeys(("DreamBoothData", "TrainStats", "dreambooth_loss", "finish_unet", "freeze", "load_pixels",
                     "make_optimizer", "run_steps", "training_unet"), "training"),
}

__all__ = [
    "Conditioning",
    "DreamBoothData",
    "GenerationRequest",
    "LazyModule",
    "Method",
    "MethodConfig",
    "SamplingConfig",
    "SubjectData",
    "TrainConfig",
    "TrainStats",
    "class_prompt",
    "constant_time_ids",
    "crop_time_ids",
    "dreambooth_loss",
    "encode_prompts",
    "ensure_class_images",
    "field",
    "finish_unet",
    "freeze",
    "is_sdxl",
    "load_pixels",
    "load_rgb",
    "load_tensors",
    "make_optimizer",
    "negative_conditioning",
    "prompt_conditioning",
    "register_method",
    "run_steps",
    "sample_images",
    "sample_requests",
    "save_tensors",
    "training_unet",
]

if TYPE_CHECKING:
    from .artifacts import load_tensors, save_tensors
    from .conditioning import (
        Conditioning,
        constant_time_ids,
        crop_time_ids,
        is_sdxl,
        negative_conditioning,
        prompt_conditioning,
    )
    from .sampling import encode_prompts, sample_images, sample_requests
    from .training import (
        DreamBoothData,
        TrainStats,
        dreambooth_loss,
        finish_unet,
        freeze,
        load_pixels,
        make_optimizer,
        run_steps,
        training_unet,
    )

__getattr__ = lazy_exports(__name__, _HOMES, base="dreambench.methods")
