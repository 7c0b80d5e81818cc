"""DreamBooth-LoRA: the DreamBooth objective (instance + prior-preservation loss), training only
low-rank adapters (Hu et al. 2022, via ``peft``) on the UNet attention projections ``to_q``, ``to_k``,
``to_v`` and ``to_out.0``; every base weight stays frozen and unchanged.

Defaults (recipe ``diffusers``): rank 4 (alpha = rank, so the LoRA scale is 1), lr 1e-4, 500 steps, as
diffusers' ``train_dreambooth_lora.py``; prior preservation with 200 class images and lambda 1.
Artifact: ``lora.safetensors`` holding the adapter weights only. :meth:`close` removes the adapter
layers, leaving the UNet exactly as it was.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

from ..errors import ModelLoadError
from ..lazy import LazyModule
from .configs import TrainConfig
from .dreambooth import train_dreambooth_objective
from .interface import GenerationRequest, Method, SubjectData
from .recipes import DREAMBENCH_PLUS_SD15, TINY_RECIPE, Recipe, register_recipe

torch = LazyModule("torch")  # see dreambooth.py: the class is read without torch, the work loads it
artifacts = LazyModule("dreambench.methods.artifacts")
sampling = LazyModule("dreambench.methods.sampling")
lora_sdxl = LazyModule("dreambench.methods.lora_sdxl")

LORA_FILE = "lora.safetensors"
TARGET_MODULES = ["to_q", "to_k", "to_v", "to_out.0"]
ADAPTER = "dreambench"


@dataclass
class LoRAConfig(TrainConfig):
    lr: float = field(default=1e-4, metadata={"gt": 0, "help": "AdamW learning rate for the LoRA weights"})
    steps: int = field(default=500, metadata={"min": 1, "help": "optimizer steps"})
    num_class_images: int = field(default=200, metadata={"min": 0, "help": "class images for prior preservation"})
    rank: int = field(default=4, metadata={"min": 1, "help": "LoRA rank r of each adapted projection"})
    alpha: float = field(default=0.0, metadata={"min": 0, "help": "LoRA alpha (scale = alpha / rank); 0 = rank"})
    # The worker replaces the adapted UNet by a pristine clone after each subject, so a compiled graph
    # would be rebuilt for every subject: minutes of compiling for a 500-step run.
    compile: str = field(default="no", metadata={
        "help": "torch.compile the UNet: no (default: recompiled per subject, which costs more than it saves) "
                "| auto (on CUDA) | yes"})


# ---------------------------------------------------------------------------------------------- SDXL
@dataclass
class SDXLLoRAConfig(LoRAConfig):
    """The config of dreambooth-lora on a model of family ``sdxl`` (:attr:`DreamBoothLoRA.family_configs`)."""

    time_ids: str = field(default="crop", metadata={"choices": ("crop", "constant"), "help":
        "SDXL time ids of the instance images: crop (the photo's size and crop corner, as the current "
        "train_dreambooth_lora_sdxl.py) | constant ((res, res, 0, 0, res, res), as diffusers v0.24 and DreamBench++)"})


# ------------------------------------------------------------------------------------------- (all)
def _lora_config(cfg: LoRAConfig):
    from peft import LoraConfig

    return LoraConfig(r=cfg.rank, lora_alpha=cfg.alpha or cfg.rank, init_lora_weights="gaussian",
                      target_modules=TARGET_MODULES)


class DreamBoothLoRA(Method):
    name = "dreambooth-lora"
    description = "DreamBooth objective training LoRA adapters on the UNet attention projections (peft)"
    Config = LoRAConfig
    family_configs: ClassVar[dict[str, type]] = {"sdxl": SDXLLoRAConfig}
    trains = True

    _added = False

    def _add_adapter(self) -> None:
        if self._added:
            return
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.config.seed)  # the Gaussian init of the A matrices
            self.components.unet.add_adapter(_lora_config(self.config), adapter_name=ADAPTER)
        self._added = True

    def lora_state_dict(self) -> dict[str, torch.Tensor]:
        from peft import get_peft_model_state_dict

        return get_peft_model_state_dict(self.components.unet, adapter_name=ADAPTER)

    def train(self, data: SubjectData, workdir: Path) -> Path:
        cfg: LoRAConfig = self.config
        c = self.components

        def trainable() -> list[torch.nn.Parameter]:
            self._add_adapter()  # called once the training data is built, so after it (keep this order)
            c.unet.to(self.device)
            params = [p for n, p in c.unet.named_parameters() if "lora_" in n]
            for p in params:
                p.requires_grad_(True)
                p.data = p.data.float()  # fp32 master weights for the adapters
            return params

        self.stats = train_dreambooth_objective(self, data, workdir, trainable, f"lora {data.subject.name}")
        workdir.mkdir(parents=True, exist_ok=True)
        if lora_sdxl.is_sdxl(c):  # the diffusers SDXL file (StableDiffusionXLPipeline.load_lora_weights)
            return lora_sdxl.save_sdxl_lora(workdir, self.lora_state_dict(), c.unet.peft_config[ADAPTER])
        path = workdir / LORA_FILE
        return artifacts.save_tensors(path, self.lora_state_dict(), torch.float32,
                                      {"rank": str(cfg.rank), "target_modules": ",".join(TARGET_MODULES)})

    def load_artifact(self, path: Path) -> None:
        from peft import set_peft_model_state_dict

        path = Path(path)
        state = (lora_sdxl.load_sdxl_lora(path) if lora_sdxl.is_sdxl(self.components)
                 else artifacts.load_tensors(path))
        self._add_adapter()
        expected = set(self.lora_state_dict())
        if set(state) != expected:
            raise ModelLoadError(f"{path}: LoRA keys do not match this model/rank (rank {self.config.rank})")
        set_peft_model_state_dict(self.components.unet, state, adapter_name=ADAPTER)
        self.components.unet.to(self.device)

    def generate(self, data: SubjectData, requests: list[GenerationRequest]) -> list:
        return sampling.sample_requests(self.components, requests, self.config, self.device)

    def close(self) -> None:
        if self._added:
            self.components.unet.unload_lora()  # replaces each LoRA layer by its untouched base layer
            self._added = False


# Recipes (methods/recipes.py; the sources are in docs/methods.md).
register_recipe("dreambooth-lora", Recipe(
    "diffusers", "diffusers train_dreambooth_lora.py defaults: rank 4, lr 1e-4, 500 steps; plus the DreamBooth "
    "prior preservation (200 class images, lambda 1) so the objective matches dreambooth",
    {"lr": 1e-4, "steps": 500, "rank": 4, "prior_loss_weight": 1.0, "with_prior_preservation": True,
     "batch_size": 1, "num_class_images": 200, "lr_warmup_steps": 0},
    "huggingface/diffusers examples/dreambooth/README.md (LoRA section) and train_dreambooth_lora.py --rank default",
), default=True)
register_recipe("dreambooth-lora", Recipe(
    "dreambench-plus", "DreamBench++'s DreamBooth-LoRA SD1.5 setting: one reference image, prompt 'a photo of "
    "{subject}', rank 4, lr 1e-4 constant x 100 steps, batch 1, no prior preservation, seed 42; sampling with the "
    "pipeline's default PNDM scheduler, 100 steps, CFG 7.5",
    {"lr": 1e-4, "steps": 100, "rank": 4, "batch_size": 1, "with_prior_preservation": False, "lr_warmup_steps": 0,
     **DREAMBENCH_PLUS_SD15},
    "github yuangpeng/dreambench_plus@66ca27e generate_models.py (DEFAULT_PARAMS dreambooth_lora_sd) and "
    "generate_images.py",
))
register_recipe("dreambooth-lora", Recipe(
    "tiny", TINY_RECIPE, {"lr": 1e-2, "steps": 50, "rank": 4, "num_class_images": 4, "batch_size": 1}, "dreambench tests",
))


# SDXL recipes (family ``sdxl``: used on the sdxl, sdxl-random and tiny-sdxl profiles; docs/sdxl.md).
register_recipe("dreambooth-lora", Recipe(
    "diffusers-sdxl", "diffusers train_dreambooth_lora_sdxl.py README example: rank 4, lr 1e-4 constant, 500 "
    "steps, batch 1, AdamW weight decay 1e-4, no prior preservation, time ids from the photo's size and crop "
    "(the README's gradient accumulation of 4 is not applied: one image per step)",
    {"lr": 1e-4, "steps": 500, "rank": 4, "batch_size": 1, "lr_warmup_steps": 0, "adam_weight_decay": 1e-4,
     "with_prior_preservation": False, "num_class_images": 0, "time_ids": "crop"},
    "huggingface/diffusers examples/dreambooth/README_sdxl.md and train_dreambooth_lora_sdxl.py defaults",
    family="sdxl",
), default=True)
register_recipe("dreambooth-lora", Recipe(
    "dreambench-plus", "DreamBench++ DreamBooth-LoRA SDXL row (diffusers v0.24 script): rank 4, lr 5e-5 "
    "constant, 500 steps, batch 1, constant time ids (1024, 1024, 0, 0, 1024, 1024), seed 42, no prior "
    "preservation, text encoders frozen; sampling Euler 100 steps, CFG 7.5 at the profile's 1024 px "
    "(their fp16 run: pass --vae madebyollin/sdxl-vae-fp16-fix; here training is bf16 autocast on CUDA and on "
    "the photo's centre square, not their random crops: docs/sdxl.md)",
    {"lr": 5e-5, "steps": 500, "rank": 4, "batch_size": 1, "lr_warmup_steps": 0, "adam_weight_decay": 1e-4,
     "with_prior_preservation": False, "num_class_images": 0, "time_ids": "constant", "seed": 42,
     "sampler": "euler", "sample_steps": 100, "guidance_scale": 7.5},
    "DreamBench++ (Peng et al., ICLR 2025) appendix: DreamBooth-LoRA SDXL settings; "
    "yuangpeng/dreambench_plus",
    family="sdxl",
))
