"""Model profiles: one name maps to every model the suite uses, through one code path.

A profile is data (like timm's registry: a name maps to a builder's arguments):

- ``sd15``: Stable Diffusion 1.5 with its real weights, from a hub id or a local diffusers folder
  (``--model PATH_OR_ID``); DINO and CLIP with their pretrained weights (or ``--dino-weights`` /
  ``--clip-weights`` files).
- ``sd15-random``: the same architectures built from the configs in ``dreambench/models/configs``
  with random init: real FLOPs and memory for throughput work, meaningless images.
- ``tiny``: tiny random-init UNet/VAE/text encoder and tiny DINO/CLIP towers that run on a CPU in
  seconds, for tests and the demo. Tokenization is CLIP's real BPE in every profile.
- ``sdxl``, ``sdxl-random``, ``tiny-sdxl``: the same three for Stable Diffusion XL 1.0 base (family
  ``sdxl``: two text encoders, added text/time conditioning; :mod:`dreambench.models.sdxl`).

Numbers computed with random weights (``pretrained_weights=False``) are labelled as such wherever they
are written; they are never quality results.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..registry import Registry

DEFAULT_SD15 = "stable-diffusion-v1-5/stable-diffusion-v1-5"
DEFAULT_SDXL = "stabilityai/stable-diffusion-xl-base-1.0"
#: The model families: what a profile's parts look like (``sd15``: one text encoder; ``sdxl``: two, plus
#: pooled-text and time-id conditioning). Methods and recipes resolve per family.
FAMILIES = ("sd15", "sdxl")


@dataclass(frozen=True)
class ModelProfile:
    """What one profile name builds.

    Attributes:
        name: registry name.
        description: one line for ``dreambench profiles``.
        sd_model: hub id or local folder of a diffusers SD pipeline (``pretrained_weights``), else the
            name of a config set in ``dreambench/models/configs`` (``<name>_unet.json`` ...).
        pretrained_weights: load trained weights; ``False`` builds random-init models from configs.
        resolution: training and sampling resolution in pixels.
        backbone_overrides: per metric backbone (``"dino"``, ``"clip"``), architecture arguments that
            replace the metric profile's (tiny towers); empty for full-size models.
        sample_steps_default: default sampler steps (50 for SD; fewer for tiny so CPU runs stay fast).
        family: the model family (:data:`FAMILIES`): which parts are built and which conditioning the
            UNet takes.
        recipe: the training recipe a method uses on this profile when it has one and none is named
            (``tiny`` for the CPU profiles); "" = the method's default for the family.
    """

    name: str
    description: str
    sd_model: str
    pretrained_weights: bool
    resolution: int
    backbone_overrides: dict = field(default_factory=dict)
    sample_steps_default: int = 50
    family: str = "sd15"
    recipe: str = ""

    @property
    def weights_label(self) -> str:
        """``"pretrained"`` or ``"random-init"``: written beside every number the profile produces."""
        return "pretrained" if self.pretrained_weights else "random-init"


TINY_DINO = {"embed_dim": 32, "depth": 2, "num_heads": 2}
#: The tiny CLIP tower: open_clip's ``CLIP`` at toy width, with QuickGELU like OpenAI's CLIP (the
#: ``*-quickgelu`` towers every metric profile scores with).
TINY_CLIP = {
    "embed_dim": 32,
    "quick_gelu": True,
    "vision_cfg": {"image_size": 224, "layers": 2, "width": 64, "patch_size": 32, "head_width": 32},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 2},
}

PROFILES: Registry[ModelProfile] = Registry("model profile")


def register_profile(profile: ModelProfile) -> ModelProfile:
    """Add a profile to the registry (plug-ins may add their own)."""
    PROFILES.register(profile.name, profile)
    return profile


register_profile(
    ModelProfile(
        "sd15",
        "Stable Diffusion 1.5 + DINO ViT-S/16 + CLIP, pretrained weights (hub id or local folder)",
        DEFAULT_SD15,
        True,
        512,
    )
)
register_profile(
    ModelProfile(
        "sd15-random",
        "SD1.5-shaped UNet/VAE/text encoder + full-size DINO/CLIP, random init (throughput work only)",
        "sd15",
        False,
        512,
    )
)
register_profile(
    ModelProfile(
        "tiny",
        "tiny random-init models for CPU tests and the demo (seconds; images are noise)",
        "tiny",
        False,
        64,
        {"dino": TINY_DINO, "clip": TINY_CLIP},
        sample_steps_default=4,
        recipe="tiny",
    )
)
register_profile(
    ModelProfile(
        "sdxl",
        "Stable Diffusion XL 1.0 base + DINO ViT-S/16 + CLIP, pretrained weights (hub id, local folder or "
        "single .safetensors; --vae for the fp16-fix VAE)",
        DEFAULT_SDXL,
        True,
        1024,
        family="sdxl",
    )
)
register_profile(
    ModelProfile(
        "sdxl-random",
        "SDXL-base-shaped UNet/VAE/two text encoders + full-size DINO/CLIP, random init (throughput work only)",
        "sdxl",
        False,
        1024,
        family="sdxl",
    )
)
register_profile(
    ModelProfile(
        "tiny-sdxl",
        "tiny random-init SDXL parts (diffusers' test components) for CPU tests (seconds; images are noise)",
        "tiny-sdxl",
        False,
        64,
        {"dino": TINY_DINO, "clip": TINY_CLIP},
        sample_steps_default=4,
        family="sdxl",
        recipe="tiny",
    )
)


def get_profile(name: str) -> ModelProfile:
    """The profile registered under ``name``; unknown names list the valid ones."""
    return PROFILES.get(name)


def list_profiles() -> list[ModelProfile]:
    """Every model profile, in registration order."""
    return PROFILES.values()
