"""The configs of the Stable-Diffusion-based methods: sampling options and the fine-tuning options.

Plain dataclasses with no torch import, so planning a run (which builds every method's config to derive
job ids) and the light commands never load torch. Field metadata carries the help text and the range
rules of :mod:`dreambench.methods.config_rules`. :mod:`dreambench.methods.sampling` and
:mod:`dreambench.methods.training` re-export them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .interface import MethodConfig

#: ``pndm``: PNDM with PRK steps skipped, the Stable Diffusion 1.x pipeline's default scheduler (DreamBench++
#: samples with the pipeline's default).
SAMPLERS = ("ddim", "dpm++", "euler", "pndm")


@dataclass
class SamplingConfig(MethodConfig):
    """Sampling options shared by every Stable-Diffusion-based method (recorded with results)."""

    sampler: str = field(default="ddim", metadata={"choices": SAMPLERS, "help": f"sampler: one of {', '.join(SAMPLERS)}"})
    sample_steps: int = field(default=0, metadata={"min": 0,
        "help": "sampler steps; 0 = the model profile's default (50 for SD, 4 for tiny)"})
    guidance_scale: float = field(default=7.5, metadata={"min": 0, "help": "classifier-free guidance scale"})
    sample_batch_size: int = field(default=25, metadata={"min": 1,
        "help": "images per sampler batch (halved automatically on CUDA out-of-memory)"})
    sample_precision: str = field(default="auto", metadata={"choices": ("auto", "fp32", "fp16", "bf16"),
        "help": "sampling precision: auto (fp16 autocast on CUDA, fp32 on CPU) | fp32 | fp16 | bf16"})
    negative_prompt: str = field(default="", metadata={"help": "unconditional prompt for guidance"})
    channels_last: str = field(default="auto", metadata={
        "help": "UNet in channels_last memory format while training and sampling: auto (on CUDA) | yes | no"})
    sample_compile: str = field(default="no", metadata={
        "help": "torch.compile the UNet for sampling: no | auto (on CUDA) | yes; falls back to eager on errors"})



@dataclass
class TrainConfig(SamplingConfig):
    """Options shared by the fine-tuning methods. Defaults are the DreamBooth paper's SD settings."""

    lr: float = field(default=5e-6, metadata={"gt": 0, "help": "AdamW learning rate (constant after warm-up)"})
    steps: int = field(default=1000, metadata={"min": 1, "help": "optimizer steps"})
    batch_size: int = field(default=1, metadata={"min": 1,
        "help": "instance images per step (as many class images are added when prior preservation is on)"})
    lr_warmup_steps: int = field(default=0, metadata={"min": 0, "help": "linear learning-rate warm-up steps"})
    with_prior_preservation: bool = field(default=True, metadata={
        "help": "add the class-specific prior-preservation loss (class images from the frozen model)"})
    prior_loss_weight: float = field(default=1.0, metadata={"min": 0, "help": "lambda, weight of the prior-preservation term"})
    num_class_images: int = field(default=1000, metadata={"min": 0, "help": "class images sampled for prior preservation"})
    class_sample_steps: int = field(default=0, metadata={"min": 0, "help": "sampler steps for class images; 0 = sample_steps"})
    adam_beta1: float = field(default=0.9, metadata={"min": 0, "lt": 1, "help": "AdamW beta1"})
    adam_beta2: float = field(default=0.999, metadata={"min": 0, "lt": 1, "help": "AdamW beta2"})
    adam_weight_decay: float = field(default=1e-2, metadata={"min": 0, "help": "AdamW decoupled weight decay"})
    adam_epsilon: float = field(default=1e-8, metadata={"gt": 0, "help": "AdamW epsilon"})
    max_grad_norm: float = field(default=1.0, metadata={"min": 0, "help": "gradient clipping norm (0 = off)"})
    mixed_precision: str = field(default="auto", metadata={"choices": ("auto", "no", "bf16"),
        "help": "auto (bf16 autocast with fp32 master weights on CUDA, fp32 on CPU) | no | bf16"})
    gradient_checkpointing: bool = field(default=False, metadata={"help": "UNet gradient checkpointing"})
    compile: str = field(default="auto", metadata={
        "help": "torch.compile the UNet for training: auto (on CUDA) | yes | no; falls back to eager on errors"})
    compile_mode: str = field(default="default", metadata={"choices": ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs"),
        "help": "torch.compile mode for training: default | reduce-overhead (CUDA graphs) | max-autotune"})
    cache_latents: bool = field(default=True, metadata={
        "help": "encode instance/class images with the VAE once instead of every step"})
    seed: int = field(default=0, metadata={"min": 0, "help": "training seed (image order, timesteps, noise)"})

