"""DreamBooth (Ruiz et al., CVPR 2023): fine-tune the whole UNet on 3-5 subject images.

Instance prompt "a [V] [class noun]" with a rare-token identifier ``[V]`` (default ``sks``), plus the
class-specific prior-preservation loss on class images "a [class noun]" sampled from the frozen model
(see :mod:`dreambench.methods.training` for the loss, :mod:`dreambench.methods.priors` for the class
images). The text encoder is frozen unless ``train_text_encoder``. Settings come from named recipes
(:mod:`dreambench.methods.recipes`: ``paper`` default, ``diffusers``, ``tiny``).

Artifact: ``unet.safetensors`` (fp16 UNet weights; plus ``text_encoder.safetensors`` when the text
encoder is trained). Never the pipeline or optimizer state, never pickles. After training the weights in
memory are rounded to fp16 too, so images generated right after training equal those generated later
from the artifact.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from ..errors import DreambenchError, ModelLoadError
from ..lazy import LazyModule
from .configs import TrainConfig
from .interface import GenerationRequest, Method, SubjectData
from .priors import class_image_need, class_prompt, ensure_class_images
from .recipes import DREAMBENCH_PLUS_SD15, TINY_RECIPE, Recipe, register_recipe

if TYPE_CHECKING:
    from .training import TrainStats

# Planning reads the class (its Config, trains, description) without torch; the work loads it.
torch = LazyModule("torch")
artifacts = LazyModule("dreambench.methods.artifacts")
sampling = LazyModule("dreambench.methods.sampling")
training = LazyModule("dreambench.methods.training")

UNET_FILE = "unet.safetensors"
TEXT_ENCODER_FILE = "text_encoder.safetensors"


@dataclass
class DreamBoothConfig(TrainConfig):
    train_text_encoder: bool = field(default=False, metadata={
        "help": "also fine-tune the text encoder (same lr); default frozen as in the paper's SD setting"})


def refuse_family(method: Method, components) -> None:
    """Raise the method's one-line refusal when ``components`` are of a family it does not run on (the
    run's planning refuses first; this guards library callers)."""
    family = getattr(components, "family", "sd15")
    if method.families is not None and family not in method.families:
        raise DreambenchError(f"method {method.name} does not run on model family {family}: "
                              + method.family_refusals.get(family, f"it runs on {', '.join(method.families)}"))


def save_fp16(module: torch.nn.Module, path: Path) -> Path:
    """The module's state dict as fp16 safetensors, written atomically."""
    return artifacts.save_tensors(path, module.state_dict(), torch.float16, {"dtype": "float16"})


def load_into(module: torch.nn.Module, path: Path) -> None:
    """Load a safetensors state dict into ``module`` (cast to its dtype); all keys must match."""
    state = artifacts.load_tensors(path)
    ref = module.state_dict()
    missing, unexpected = set(ref) - set(state), set(state) - set(ref)
    if missing or unexpected:
        raise ModelLoadError(f"{path}: does not match the model ({len(missing)} missing, {len(unexpected)} "
                             "unexpected keys); was it trained with another model profile?")
    module.load_state_dict({k: v.to(ref[k].dtype) for k, v in state.items()})


def prior_class_images(cfg: TrainConfig, method: Method, data: SubjectData, workdir: Path) -> list[Path]:
    """The class images to use: those the caller prepared, else made here (cached under ``workdir``).
    Empty when the config reads none (:func:`dreambench.methods.priors.class_image_need`)."""
    need = class_image_need(cfg, data.class_noun)
    if need is None:
        return []
    if len(data.class_images) >= need["count"]:
        return list(data.class_images[: need["count"]])
    return ensure_class_images(method.components, cache_root=workdir / "class_images", device=method.device,
                               progress=False, **need)


def train_dreambooth_objective(method: Method, data: SubjectData, workdir: Path,
                               trainable: Callable[[], list[torch.nn.Parameter]], desc: str,
                               cache_embeddings: bool = True) -> TrainStats:
    """Train ``method.components`` on the DreamBooth objective (instance + prior-preservation loss):
    the run shared by DreamBooth and DreamBooth-LoRA.

    Moves the SD parts to ``method.device`` and freezes them, prepares the class images and the
    :class:`~dreambench.methods.training.DreamBoothData` (instance prompt "a [V] [class noun]"), then
    calls ``trainable()``, which makes the method's own parameters trainable and returns them (the UNet,
    the LoRA adapters, ...), sets up the UNet for training, builds the optimizer and runs
    ``method.config.steps`` steps. Afterwards the UNet is back in eval mode and frozen, also when
    training fails; anything else ``trainable`` changed is the caller's to undo.
    ``cache_embeddings=False`` when the text encoder is trained."""
    cfg: TrainConfig = method.config
    training.check_steps(cfg)
    c = method.components
    c.to(method.device)
    training.freeze(c.vae, c.text_encoder, c.unet)
    class_images = prior_class_images(cfg, method, data, workdir)
    batch = training.DreamBoothData(c, data.images, class_images, data.training_prompt(data.identifier),
                                    class_prompt(data.class_noun), cfg, method.device,
                                    cache_embeddings=cache_embeddings)
    params = trainable()
    unet = training.training_unet(c.unet, cfg)
    opt = training.make_optimizer(params, cfg, method.device)
    try:
        return training.run_steps(lambda step: batch.step_loss(unet, cfg.prior_loss_weight), params, opt, cfg,
                                  method.device, progress=method.progress, desc=desc)
    finally:
        training.finish_unet(c.unet, cfg)
        training.freeze(c.unet)


class DreamBooth(Method):
    name = "dreambooth"
    description = "DreamBooth: full UNet fine-tune with rare-token identifier and prior-preservation loss"
    Config = DreamBoothConfig
    trains = True
    families = ("sd15",)
    family_refusals: ClassVar[dict[str, str]] = {"sdxl": (
        "full DreamBooth on SDXL fine-tunes the 2.6B-parameter UNet, which with fp32 AdamW needs more than "
        "80 GB of GPU memory (weights, gradients and the two AdamW moments alone are 4 x 10.3 GB = 41 GB, "
        "before the activations at 1024 px); use dreambooth-lora (the DreamBench++ SDXL row)")}

    def train(self, data: SubjectData, workdir: Path) -> Path:
        cfg: DreamBoothConfig = self.config
        c = self.components
        refuse_family(self, c)

        def trainable() -> list[torch.nn.Parameter]:
            c.unet.requires_grad_(True)
            params = list(c.unet.parameters())
            if cfg.train_text_encoder:
                c.text_encoder.requires_grad_(True)
                c.text_encoder.train()
                params += list(c.text_encoder.parameters())
            return params

        try:
            self.stats = train_dreambooth_objective(self, data, workdir, trainable, f"dreambooth {data.subject.name}",
                                                    cache_embeddings=not cfg.train_text_encoder)
        finally:
            c.text_encoder.eval()
            training.freeze(c.text_encoder)
        workdir.mkdir(parents=True, exist_ok=True)
        path = save_fp16(c.unet, workdir / UNET_FILE)
        if cfg.train_text_encoder:
            save_fp16(c.text_encoder, workdir / TEXT_ENCODER_FILE)
        self.load_artifact(path)  # round to fp16 so fresh and resumed generation agree
        return path

    def load_artifact(self, path: Path) -> None:
        path = Path(path)
        load_into(self.components.unet, path)
        te = path.parent / TEXT_ENCODER_FILE
        if self.config.train_text_encoder:
            load_into(self.components.text_encoder, te)

    def generate(self, data: SubjectData, requests: list[GenerationRequest]) -> list:
        return sampling.sample_requests(self.components, requests, self.config, self.device)


# Recipes (methods/recipes.py; the sources are in docs/methods.md).
register_recipe("dreambooth", Recipe(
    "paper", "DreamBooth paper, Stable Diffusion: lr 5e-6 constant, 1000 steps, lambda 1, batch 1 instance "
    "+ 1 class image, text encoder frozen, ~1000 class images",
    {"lr": 5e-6, "steps": 1000, "prior_loss_weight": 1.0, "with_prior_preservation": True, "batch_size": 1,
     "num_class_images": 1000, "train_text_encoder": False, "lr_warmup_steps": 0},
    "Ruiz et al., DreamBooth, CVPR 2023, sec. 4 / supp. (SD: lr 5e-6, ~1000 iterations, lambda=1, ~1000 class samples)",
), default=True)
register_recipe("dreambooth", Recipe(
    "diffusers", "diffusers train_dreambooth.py README example with prior preservation: lr 5e-6, 800 steps, "
    "200 class images, batch 1",
    {"lr": 5e-6, "steps": 800, "prior_loss_weight": 1.0, "with_prior_preservation": True, "batch_size": 1,
     "num_class_images": 200, "train_text_encoder": False, "lr_warmup_steps": 0},
    "huggingface/diffusers examples/dreambooth/README.md ('Training with prior-preservation loss')",
))
register_recipe("dreambooth", Recipe(
    "dreambench-plus", "DreamBench++'s DreamBooth SD1.5 row: one reference image, prompt 'a photo of {subject}' "
    "(the protocol's), lr 2.5e-6 constant x 250 steps, batch 1, no prior preservation, text encoder frozen, "
    "seed 42; sampling with the pipeline's default PNDM scheduler, 100 steps, CFG 7.5",
    {"lr": 2.5e-6, "steps": 250, "batch_size": 1, "with_prior_preservation": False, "train_text_encoder": False,
     "lr_warmup_steps": 0, **DREAMBENCH_PLUS_SD15},
    "github yuangpeng/dreambench_plus@66ca27e generate_models.py (DEFAULT_PARAMS dreambooth_sd, train_dreambooth.py "
    "flags) and generate_images.py (guidance 7.5, 100 steps, no negative prompt)",
))
register_recipe("dreambooth", Recipe(
    "tiny", TINY_RECIPE, {"lr": 3e-3, "steps": 50, "num_class_images": 4, "batch_size": 1}, "dreambench tests",
))
