"""Stable Diffusion XL parts: the SD parts plus a second text encoder (OpenCLIP bigG with projection)
and its tokenizer, built or loaded like the SD 1.5 parts (:mod:`.sd`).

SDXL's UNet takes, besides the penultimate hidden states of both encoders concatenated (768 + 1280 =
2048 wide), ``added_cond_kwargs``: the second encoder's pooled projection (1280) and six time ids;
:mod:`dreambench.methods.conditioning` builds them. The second tokenizer is CLIP's BPE too (the
suite's offline tokenizer serves both in the random-init profiles).

On-disk forms, as for SD 1.5: a diffusers folder (``text_encoder_2/``, ``tokenizer_2/`` besides the SD
1.5 parts; fp32, fp16 or variant files), a hub id from the local cache, or a single-file ``.safetensors``
in the SGM layout (``conditioner.embedders.0`` = CLIP ViT-L in transformers' keys,
``conditioner.embedders.1.model`` = OpenCLIP bigG), read by diffusers' ``from_single_file`` with the
suite's own config set (no hub).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..errors import ModelLoadError
from .components import LOAD_DTYPE, SDComponents, _random_digest, load_folder_parts
from .sd_configs import CONFIG_DIR, read_config
from .sd_source import SDSource
from .single_file import config_folder
from .tokenizer import clip_tokenizer

#: Parts of an SDXL pipeline that hold weights.
XL_PARTS = ("unet", "vae", "text_encoder", "text_encoder_2")


@dataclass
class SDXLComponents(SDComponents):
    """:class:`SDComponents` of the ``sdxl`` family: ``text_encoder_2`` (``CLIPTextModelWithProjection``)
    and ``tokenizer_2`` besides the SD parts. ``force_zeros_for_empty_prompt``: an empty negative prompt
    is the zero conditioning (SDXL base's pipeline setting) rather than the encoding of ""."""

    text_encoder_2: Any = None
    tokenizer_2: Any = None
    force_zeros_for_empty_prompt: bool = True

    family = "sdxl"

    def modules(self) -> tuple:
        return (self.unet, self.vae, self.text_encoder, self.text_encoder_2)

    def to(self, device: torch.device | str, dtype: torch.dtype | None = None) -> SDXLComponents:
        for m in self.modules():
            m.to(device=device, dtype=dtype) if dtype is not None else m.to(device)
        return self


def _text_model(cfg: dict):
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    arch = (cfg.get("architectures") or ["CLIPTextModel"])[0]
    cls = CLIPTextModelWithProjection if arch == "CLIPTextModelWithProjection" else CLIPTextModel
    return cls(CLIPTextConfig(**{k: v for k, v in cfg.items() if k != "architectures"}))


def build_random_sdxl(config_name: str, resolution: int, seed: int = 0) -> SDXLComponents:
    """Random-init SDXL parts from ``configs/<config_name>_{unet,vae,text_encoder,text_encoder_2}.json``,
    seeded (two builds with the same seed are identical)."""
    from diffusers import AutoencoderKL, UNet2DConditionModel

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        unet = UNet2DConditionModel.from_config(read_config(config_name, "unet"))
        vae = AutoencoderKL.from_config(read_config(config_name, "vae"))
        text_encoder = _text_model(read_config(config_name, "text_encoder"))
        text_encoder_2 = _text_model(read_config(config_name, "text_encoder_2"))
    modules = (unet, vae, text_encoder, text_encoder_2)
    return SDXLComponents(unet, vae, text_encoder, clip_tokenizer(), read_config(config_name, "scheduler"),
                          resolution, f"config:{config_name}", False, "config",
                          _random_digest(config_name, seed, modules), text_encoder_2=text_encoder_2,
                          tokenizer_2=clip_tokenizer())


def load_folder_xl(src: SDSource) -> tuple:
    """(unet, vae, text_encoder, tokenizer, scheduler config, text_encoder_2, tokenizer_2) of an SDXL
    diffusers folder, each part in fp32 from its own weight files (plain or variant)."""
    from diffusers import EulerDiscreteScheduler
    from transformers import CLIPTextModelWithProjection, CLIPTokenizer

    unet, vae, te, tok, scheduler_config = load_folder_parts(src, EulerDiscreteScheduler)
    root, kw = str(src.root), {"local_files_only": True}
    te2 = CLIPTextModelWithProjection.from_pretrained(root, subfolder="text_encoder_2",
                                                      variant=src.variants.get("text_encoder_2"), dtype=LOAD_DTYPE, **kw)
    tok2 = CLIPTokenizer.from_pretrained(root, subfolder="tokenizer_2", **kw)
    return unet, vae, te, tok, scheduler_config, te2, tok2


# ----------------------------------------------------------------------------------- single files
#: The checkpoint tensors whose shapes pick the SDXL config set: UNet conv_in, the two token embeddings.
_XL_PROBES = {"unet": "model.diffusion_model.input_blocks.0.0.weight",
              "text": "conditioner.embedders.0.transformer.text_model.embeddings.token_embedding.weight",
              "text_2": "conditioner.embedders.1.model.token_embedding.weight"}
_XL_INDEX = {"_class_name": "StableDiffusionXLPipeline", "feature_extractor": [None, None],
             "force_zeros_for_empty_prompt": True, "image_encoder": [None, None],
             "scheduler": ["diffusers", "EulerDiscreteScheduler"], "text_encoder": ["transformers", "CLIPTextModel"],
             "text_encoder_2": ["transformers", "CLIPTextModelWithProjection"],
             "tokenizer": ["transformers", "CLIPTokenizer"], "tokenizer_2": ["transformers", "CLIPTokenizer"],
             "unet": ["diffusers", "UNet2DConditionModel"], "vae": ["diffusers", "AutoencoderKL"]}


def xl_config_sets() -> list[str]:
    """The shipped SDXL config sets (those with a ``text_encoder_2``), ``sdxl`` first."""
    names = sorted(p.name[: -len("_text_encoder_2.json")] for p in CONFIG_DIR.glob("*_text_encoder_2.json"))
    return sorted(names, key=lambda n: n != "sdxl")


def _expected_xl(name: str) -> dict[str, tuple]:
    unet, t1, t2 = (read_config(name, p) for p in ("unet", "text_encoder", "text_encoder_2"))
    return {"unet": (unet["block_out_channels"][0], unet["in_channels"], 3, 3),
            "text": (t1["vocab_size"], t1["hidden_size"]), "text_2": (t2["vocab_size"], t2["hidden_size"])}


def pick_xl_config_set(path: Path, flag: str) -> str:
    """The SDXL config set whose shapes match the checkpoint's; one line naming expected and found."""
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        keys = set(f.keys())
        found = {k: tuple(f.get_slice(n).get_shape()) for k, n in _XL_PROBES.items() if n in keys}
    for name in xl_config_sets():
        if _expected_xl(name) == found:
            return name
    want = "; ".join(f"{n}: {_expected_xl(n)}" for n in xl_config_sets())
    raise ModelLoadError(f"{flag} {path}: not an SDXL architecture dreambench knows (conv_in / text / text_2 "
                         f"shapes {found.get('unet')} / {found.get('text')} / {found.get('text_2')}; expected {want})")


def xl_config_folder(name: str) -> Path:
    """A diffusers SDXL config folder for config set ``name`` (written once under ``$DREAMBENCH_CACHE``)."""
    return config_folder(name, (*XL_PARTS, "scheduler"), ("tokenizer", "tokenizer_2"), _XL_INDEX)


def load_single_file_xl(path: Path, flag: str, dtype: torch.dtype) -> tuple:
    """The parts (as :func:`load_folder_xl`) of a single-file SGM-layout SDXL checkpoint, kept in fp32."""
    from diffusers import StableDiffusionXLPipeline

    name = pick_xl_config_set(path, flag)
    folder = xl_config_folder(name)
    pipe = StableDiffusionXLPipeline.from_single_file(str(path), config=str(folder), local_files_only=True,
                                                      torch_dtype=dtype)
    for part in XL_PARTS:
        module = getattr(pipe, part)
        bad = [n for n, t in module.state_dict().items() if t.is_meta]
        if bad:
            raise ModelLoadError(f"{flag} {path}: {part} weights missing from the checkpoint "
                                 f"({len(bad)} tensor(s), e.g. {bad[:3]})")
        module.to(torch.float32)
    return (pipe.unet, pipe.vae, pipe.text_encoder, pipe.tokenizer, dict(read_config(name, "scheduler")),
            pipe.text_encoder_2, pipe.tokenizer_2)
