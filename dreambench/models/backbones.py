"""Metric backbones: DINO (timm) and CLIP (open_clip), pretrained, random-init, tiny or from files.

A backbone is named by the metric profile (architecture and pretrained tag) and built according to the
model profile: pretrained weights (``sd15``), the same architecture random-init (``sd15-random``), or a
tiny version of it (``tiny``). A local weights file (safetensors, or a ``torch.load(weights_only=True)``
state dict) replaces any download.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..errors import ModelLoadError
from .profiles import ModelProfile


@dataclass
class Backbone:
    """A built image (and for CLIP, text) tower plus a fingerprint of its weights for caches."""

    name: str
    model: Any
    weights_id: str
    tokenizer: Any = None


def load_state_dict_file(path: str | Path) -> dict[str, torch.Tensor]:
    """A state dict from a ``.safetensors`` file or a plain tensor pickle loaded with ``weights_only``."""
    p = Path(path).expanduser()
    if not p.is_file():
        raise ModelLoadError(f"weights file {p} does not exist")
    try:
        if p.suffix == ".safetensors":
            from safetensors.torch import load_file

            return load_file(str(p))
        sd = torch.load(str(p), map_location="cpu", weights_only=True)
    except Exception as e:
        raise ModelLoadError(f"cannot read weights file {p}: {type(e).__name__}: {e}") from e
    if isinstance(sd, dict) and "state_dict" in sd and isinstance(sd["state_dict"], dict):
        sd = sd["state_dict"]
    if not isinstance(sd, dict):
        raise ModelLoadError(f"weights file {p} does not hold a state dict")
    return sd


def file_digest(path: str | Path, chunk: int = 1 << 20) -> str:
    """sha256 of a file's bytes (first 16 hex digits), used to key caches by weights."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()[:16]


def _apply_weights(model: torch.nn.Module, path: str | Path, what: str) -> str:
    sd = load_state_dict_file(path)
    own = model.state_dict()
    # A state dict saved from the classifier (timm's default num_classes) carries head.* weights that the
    # embedding tower (num_classes=0) does not have and never uses.
    sd = {k: v for k, v in sd.items() if not (k.startswith("head.") and k not in own)}
    missing, unexpected = sorted(set(own) - set(sd)), sorted(set(sd) - set(own))
    if missing or unexpected:
        raise ModelLoadError(f"{what}: weights file {path} does not match the architecture: "
                             f"{len(missing)} missing key(s) {missing[:5]}, {len(unexpected)} unexpected key(s) "
                             f"{unexpected[:5]}")
    try:
        model.load_state_dict(sd, strict=True)
    except RuntimeError as e:
        lines = str(e).strip().splitlines()
        detail = " ".join(x.strip() for x in lines[1:4]) or lines[0]
        raise ModelLoadError(f"{what}: weights file {path} does not match the architecture: {detail}") from e
    return f"file:{file_digest(path)}"


def build_dino(
    profile: ModelProfile, arch: str = "vit_small_patch16_224.dino", weights_file: str | Path | None = None
) -> Backbone:
    """DINO ViT image tower from timm with ``num_classes=0`` (forward returns the final-norm class token)."""
    import timm

    overrides = profile.backbone_overrides.get("dino", {})
    base = arch.split(".")[0]
    pretrained = profile.pretrained_weights and weights_file is None and not overrides
    try:
        model = _seeded(
            lambda: timm.create_model(arch if pretrained else base, pretrained=pretrained, num_classes=0, **overrides)
        )
    except Exception as e:
        raise ModelLoadError(
            f"profile {profile.name}: cannot load DINO {arch!r} ({type(e).__name__}); pass --dino-weights FILE "
            f"(a timm {base} state dict) or use --profile sd15-random/tiny"
        ) from e
    if weights_file is not None:
        weights_id = _apply_weights(model, weights_file, f"DINO {base}")
    elif pretrained:
        weights_id = f"timm:{arch}"
    else:
        weights_id = f"random:{profile.name}:{_fingerprint(model)}"
    return Backbone(arch, model.eval(), weights_id)


def build_clip(
    profile: ModelProfile,
    arch: str = "ViT-B-32",
    tag: str = "openai",
    weights_file: str | Path | None = None,
) -> Backbone:
    """CLIP image and text towers from open_clip; the tokenizer is open_clip's (CLIP's real BPE)."""
    import open_clip

    overrides = profile.backbone_overrides.get("clip")
    tokenizer = open_clip.get_tokenizer(arch)
    pretrained = profile.pretrained_weights and weights_file is None and overrides is None
    try:
        if overrides is not None:
            from open_clip.model import CLIP

            model = _seeded(lambda: CLIP(**overrides))
        else:
            model = _seeded(lambda: open_clip.create_model(arch, pretrained=tag if pretrained else None))
    except Exception as e:
        raise ModelLoadError(
            f"profile {profile.name}: cannot load CLIP {arch}/{tag} ({type(e).__name__}); pass --clip-weights FILE "
            f"(an open_clip {arch} state dict) or use --profile sd15-random/tiny"
        ) from e
    if weights_file is not None:
        weights_id = _apply_weights(model, weights_file, f"CLIP {arch}")
    elif pretrained:
        weights_id = f"open_clip:{arch}:{tag}"
    else:
        weights_id = f"random:{profile.name}:{_fingerprint(model)}"
    return Backbone(f"{arch}:{tag}", model.eval(), weights_id, tokenizer)


def _fingerprint(model: torch.nn.Module) -> str:
    """A short fingerprint of a model's weights (names, shapes, sums and leading values of each tensor)."""
    h = hashlib.sha256()
    with torch.no_grad():
        for name, t in sorted(model.state_dict().items()):
            h.update(name.encode())
            h.update(str(tuple(t.shape)).encode())
            flat = t.detach().flatten().double()
            h.update(flat[:64].numpy().tobytes())
            h.update(flat.sum().numpy().tobytes())
    return h.hexdigest()[:12]


def _seeded(build, seed: int = 0):
    """Run a model builder under a fixed seed without touching the caller's random state.

    Random-init backbones must be identical across processes (cache keys, resumed runs, Ray workers)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return build()
