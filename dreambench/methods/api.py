"""The public API of a method plug-in: everything a method may import, in one place (docs/methods.md).

Names here are stable across dreambench 0.x: their signatures only gain optional keyword arguments.
Anything else under :mod:`dreambench.methods` is internal and may change. The worked example is
``tests/plugin_example`` (package ``dreambench_example_plugin``, method ``example-paste``).
"""

from __future__ import annotations

from ..images import load_rgb
from .artifacts import load_tensors, save_tensors
from .base import GenerationRequest, Method, MethodConfig, SubjectData, field, register_method
from .priors import class_prompt, ensure_class_images
from .sampling import SamplingConfig, encode_prompts, sample_images, sample_requests
from .training import (
    DreamBoothData,
    TrainConfig,
    TrainStats,
    dreambooth_loss,
    finish_unet,
    freeze,
    load_pixels,
    make_optimizer,
    run_steps,
    training_unet,
)

__all__ = [
    "DreamBoothData",
    "GenerationRequest",
    "Method",
    "MethodConfig",
    "SamplingConfig",
    "SubjectData",
    "TrainConfig",
    "TrainStats",
    "class_prompt",
    "dreambooth_loss",
    "encode_prompts",
    "ensure_class_images",
    "field",
    "finish_unet",
    "freeze",
    "load_pixels",
    "load_rgb",
    "load_tensors",
    "make_optimizer",
    "register_method",
    "run_steps",
    "sample_images",
    "sample_requests",
    "save_tensors",
    "training_unet",
]
