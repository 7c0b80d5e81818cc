"""Single-file Stable Diffusion 1.x checkpoints (``.safetensors`` in the original LDM layout).

diffusers' ``StableDiffusionPipeline.from_single_file`` converts the keys; it needs the diffusers configs
of the parts, which it would fetch from the hub. Offline, the configs come from the suite's own config
sets (``dreambench/models/configs/<name>_*.json``, the SD 1.5 architecture as ``sd15``), written once as
a diffusers config folder and passed as ``config=``. The set is chosen by the checkpoint's shapes (UNet
input width, text width), so a checkpoint of another architecture is refused in one line, before loading.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import torch

from ..errors import ModelLoadError
from .sd_configs import CONFIG_DIR, config_family, read_config
from .tokenizer import _tokenizer_dir

#: The checkpoint tensors whose shapes pick the config set: UNet conv_in, text token embedding.
_PROBES = {"unet": ("model.diffusion_model.input_blocks.0.0.weight",),
           "text": ("cond_stage_model.transformer.text_model.embeddings.token_embedding.weight",
                    "cond_stage_model.transformer.embeddings.token_embedding.weight")}
_MODEL_INDEX = {"_class_name": "StableDiffusionPipeline", "feature_extractor": [None, None],
                "image_encoder": [None, None], "requires_safety_checker": False, "safety_checker": [None, None],
                "scheduler": ["diffusers", "DDPMScheduler"], "text_encoder": ["transformers", "CLIPTextModel"],
                "tokenizer": ["transformers", "CLIPTokenizer"], "unet": ["diffusers", "UNet2DConditionModel"],
                "vae": ["diffusers", "AutoencoderKL"]}


def config_sets() -> list[str]:
    """Names of the shipped SD 1.x config sets (``sd15``, ``tiny``, ...), ``sd15`` first (SDXL sets:
    :func:`dreambench.models.sdxl.xl_config_sets`)."""
    names = sorted({p.name[: -len("_unet.json")] for p in CONFIG_DIR.glob("*_unet.json")
                    if config_family(p.name[: -len("_unet.json")]) == "sd15"})
    return sorted(names, key=lambda n: n != "sd15")


def _shapes(path: Path) -> dict[str, tuple]:
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        keys = set(f.keys())
        return {k: tuple(f.get_slice(n).get_shape()) for k, names in _PROBES.items() for n in names if n in keys}


def _expected_shapes(name: str) -> dict[str, tuple]:
    unet, text = read_config(name, "unet"), read_config(name, "text_encoder")
    return {"unet": (unet["block_out_channels"][0], unet["in_channels"], 3, 3),
            "text": (text["vocab_size"], text["hidden_size"])}


def pick_config_set(path: Path, flag: str) -> str:
    """The config set whose shapes match the checkpoint's; one line naming expected and found otherwise."""
    found = _shapes(path)
    for name in config_sets():
        if _expected_shapes(name) == found:
            return name
    want = "; ".join(f"{n}: {_expected_shapes(n)}" for n in config_sets())
    raise ModelLoadError(f"{flag} {path}: not an SD 1.x architecture dreambench knows (UNet conv_in / text "
                         f"embedding shapes {found.get('unet')} / {found.get('text')}; expected {want})")


def config_folder(name: str, parts: tuple[str, ...] = ("unet", "vae", "text_encoder", "scheduler"),
                  tokenizers: tuple[str, ...] = ("tokenizer",), index: dict | None = None) -> Path:
    """A diffusers config folder for config set ``name`` (written once under ``$DREAMBENCH_CACHE``): each of
    ``parts``' config, the offline CLIP tokenizer under each of ``tokenizers``, ``model_index.json``
    (``index``, default SD 1.x's). Named by the configs' content, so a folder written from an older config
    set is never read."""
    root = Path(os.environ.get("DREAMBENCH_CACHE", Path.home() / ".cache" / "dreambench")).expanduser()
    configs = {part: read_config(name, part) for part in parts}
    digest = hashlib.sha256(json.dumps(configs, sort_keys=True).encode()).hexdigest()[:12]
    dest = root / "sd-configs" / f"{name}-{digest}"
    if (dest / "model_index.json").is_file():
        return dest
    tmp = dest.with_name(f".{name}.{os.getpid()}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    for part, config in configs.items():
        (tmp / part).mkdir(parents=True)
        fname = "scheduler_config.json" if part == "scheduler" else "config.json"
        (tmp / part / fname).write_text(json.dumps(config, indent=1))
    for tok in tokenizers:
        shutil.copytree(_tokenizer_dir(), tmp / tok)
    (tmp / "model_index.json").write_text(json.dumps(index or _MODEL_INDEX, indent=1))
    dest.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.replace(tmp, dest)
    except OSError:  # another process won the race
        shutil.rmtree(tmp, ignore_errors=True)
    return dest


def load_single_file(path: Path, flag: str, dtype: torch.dtype) -> tuple:
    """(unet, vae, text_encoder, tokenizer, scheduler config) of a single-file checkpoint, loaded in
    ``dtype`` (:data:`dreambench.models.sd.LOAD_DTYPE`) and kept in fp32."""
    from diffusers import StableDiffusionPipeline

    name = pick_config_set(path, flag)
    folder = config_folder(name)
    pipe = StableDiffusionPipeline.from_single_file(
        str(path), config=str(folder), local_files_only=True, torch_dtype=dtype, safety_checker=None,
        requires_safety_checker=False)
    for part in ("unet", "vae", "text_encoder"):
        module = getattr(pipe, part)
        bad = [n for n, t in module.state_dict().items() if t.is_meta]
        if bad:
            raise ModelLoadError(f"{flag} {path}: {part} weights missing from the checkpoint "
                                 f"({len(bad)} tensor(s), e.g. {bad[:3]})")
        module.to(torch.float32)
    return pipe.unet, pipe.vae, pipe.text_encoder, pipe.tokenizer, dict(read_config(name, "scheduler"))
