"""Where pretrained backbone weights sit in the local caches, found without loading them.

A timm or open_clip pretrained config names its Hugging Face hub repository (``hf_hub_id`` /
``hf_hub``), and torchvision's weights enum names the file of the LPIPS trunk's ImageNet checkpoint in
torch's hub cache. Reading either imports the library (and torch: seconds), so each answer is remembered
in the digest cache per library version: a resumed run's preflight key and score keys then cost file
lookups only.
"""

from __future__ import annotations

import os
from importlib import metadata
from pathlib import Path

from .digest import memo

#: File names a backbone repository stores its weights under, in the order they are looked for.
WEIGHT_FILES = ("model.safetensors", "open_clip_model.safetensors", "open_clip_pytorch_model.bin",
                "pytorch_model.bin")


def hub_weights(cfg: dict) -> Path | None:
    """The cached weights file of a timm / open_clip pretrained config (``hf_hub_id`` or ``hf_hub``)."""
    return repo_weights(_repo_of(cfg))


def repo_weights(repo: str) -> Path | None:
    """The first of :data:`WEIGHT_FILES` of hub repository ``repo`` present in the local cache."""
    if not repo:
        return None
    from huggingface_hub import try_to_load_from_cache

    for name in WEIGHT_FILES:
        hit = try_to_load_from_cache(repo, name)
        if isinstance(hit, str):
            return Path(hit)
    return None


def _repo_of(cfg: dict) -> str:
    return (cfg.get("hf_hub_id") or cfg.get("hf_hub") or "").strip("/")


def pretrained_repo(library: str, arch: str, tag: str = "") -> str:
    """The hub repository of timm ``arch`` (``library="timm"``) or open_clip ``arch``/``tag``
    (``library="open_clip"``); "" when the config names none. Remembered per installed library version."""
    dist = {"timm": "timm", "open_clip": "open_clip_torch"}[library]
    return memo(f"hub-repo|{library}=={metadata.version(dist)}|{arch}|{tag}",
                lambda: _repo_of(_pretrained_cfg(library, arch, tag)))


def _pretrained_cfg(library: str, arch: str, tag: str) -> dict:
    if library == "timm":
        import timm

        cfg = timm.models.get_pretrained_cfg(arch)
        return cfg.to_dict() if cfg is not None else {}
    import open_clip

    return open_clip.get_pretrained_cfg(arch, tag) or {}


def torch_hub_dir() -> str:
    """``torch.hub.get_dir()`` without importing torch: ``$TORCH_HOME/hub``, else
    ``$XDG_CACHE_HOME/torch/hub`` (``~/.cache`` by default)."""
    home = os.environ.get("TORCH_HOME") or os.path.join(os.environ.get("XDG_CACHE_HOME", "~/.cache"), "torch")
    return str(Path(home).expanduser() / "hub")


def torchvision_imagenet_weights(net: str):
    """torchvision's ImageNet weights enum of LPIPS trunk ``net`` (``alex`` | ``vgg`` | ``squeeze``)."""
    from torchvision.models import AlexNet_Weights, SqueezeNet1_1_Weights, VGG16_Weights

    return {"alex": AlexNet_Weights.IMAGENET1K_V1, "vgg": VGG16_Weights.IMAGENET1K_V1,
            "squeeze": SqueezeNet1_1_Weights.IMAGENET1K_V1}[net]


def trunk_weights_cached(net: str = "alex") -> Path | None:
    """The torchvision ImageNet checkpoint of the LPIPS trunk in torch's hub cache, if present (the
    suite never downloads it). Its file name is remembered per torchvision version."""
    name = memo(f"torchvision-checkpoint|torchvision=={metadata.version('torchvision')}|{net}",
                lambda: torchvision_imagenet_weights(net).url.rsplit("/", 1)[-1])
    path = Path(torch_hub_dir()) / "checkpoints" / name
    return path if path.is_file() else None
